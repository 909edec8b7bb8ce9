// Proves the local API server over a real Unix socket with the real client: request and stream
// round trips, typed handler errors, a wrong protocol version refused with both versions named,
// cancellation by AbortSignal reaching the handler, a slow client's stream closed with
// SLOW_CONSUMER while the server's queue stays bounded, a server restart failing open calls with
// a typed error, socket mode, stale-socket removal only when nothing listens, max clients, idle
// clients timed out (never one with a request or stream open), the longest idle client evicted for
// a new one when every slot is taken, connections past the cap closed at once, and clients that
// send no hello or garbage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, stat, writeFile, readFile, rename } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { API_FRAME_LIMITS, ApiError, serverFrameCodec, type ApiData, type ServerFrame } from '../api/index.js';
import { FrameDecoder } from '../transport/frame-decoder.js';
import { CohortClientError, connectLocal, type ClientConnection } from '../client/index.js';
import { ApiServer, ApiServerError, type ApiServerOptions } from './api-server.js';

async function withServer(
  options: Partial<ApiServerOptions>,
  fn: (server: ApiServer, socket: string, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'cohort-api-'));
  const socket = join(dir, 'api.sock');
  const server = new ApiServer({ socketPath: socket, serverName: 'test-node', ...options });
  server.register('echo', (params) => params);
  try {
    await fn(server, socket, dir);
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

async function rejectsWith(p: Promise<unknown>, code: string, message?: RegExp): Promise<CohortClientError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CohortClientError, `expected CohortClientError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message !== undefined) assert.match(e.message, message);
    return e;
  }
  assert.fail(`expected rejection with ${code}`);
}

async function collect(it: AsyncIterable<ApiData>): Promise<ApiData[]> {
  const out: ApiData[] = [];
  for await (const v of it) out.push(v);
  return out;
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

test('requests and streams round-trip; handler errors arrive typed', async () => {
  await withServer({}, async (server, socket) => {
    server.register('missing', () => {
      throw new ApiError('NOT_FOUND', 'no group named g1');
    });
    server.register('broken', () => {
      throw new Error('secret internals');
    });
    server.registerStream('count', (params) =>
      (async function* () {
        for (let i = 0; i < (params as number); i++) yield await Promise.resolve(i);
      })(),
    );
    server.registerStream('pushed', (_params, _ctx, sink) => {
      sink.push('a');
      sink.push({ b: new Uint8Array([1, 2]) });
      sink.end();
      return undefined;
    });
    await server.listen();
    const c = await connectLocal({ socket });
    assert.equal(c.server, 'test-node');
    assert.deepEqual(await c.request('echo', { x: [1, 'two', null, true] }), { x: [1, 'two', null, true] });
    assert.deepEqual(await collect(c.stream('count', 5)), [0, 1, 2, 3, 4]);
    const pushed = await collect(c.stream('pushed'));
    assert.equal(pushed[0], 'a');
    assert.deepEqual([...(pushed[1] as { b: Uint8Array }).b], [1, 2]);
    await rejectsWith(c.request('missing'), 'NOT_FOUND', /no group named g1/);
    const internal = await rejectsWith(c.request('broken'), 'INTERNAL');
    assert.ok(!internal.message.includes('secret'), 'handler internals do not leak to clients');
    await rejectsWith(c.request('nope'), 'UNKNOWN_METHOD');
    await rejectsWith(c.request('count'), 'INVALID_ARGUMENT', /is a stream/);
    await rejectsWith(collect(c.stream('echo')), 'INVALID_ARGUMENT', /is a request/);
    // Many concurrent requests on one connection resolve to their own answers.
    const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => c.request('echo', i)));
    assert.deepEqual(
      answers,
      Array.from({ length: 50 }, (_, i) => i),
    );
    await c.close();
  });
});

test('a client speaking another protocol version gets VERSION_MISMATCH naming both versions', async () => {
  await withServer({}, async (server, socket) => {
    await server.listen();
    await rejectsWith(
      connectLocal({ socket, protocolVersion: 99 }),
      'VERSION_MISMATCH',
      /client speaks cohort API version 99 but this daemon speaks version 1/,
    );
    await until(() => server.snapshot().clients === 0, 'the refused client to be dropped');
  });
});

test('aborting a request or a stream cancels it in the handler', async () => {
  await withServer({}, async (server, socket) => {
    let requestAborted = false;
    let streamCleaned = false;
    server.register(
      'wait',
      (_p, ctx) =>
        new Promise<ApiData>((resolve) => {
          ctx.signal.addEventListener('abort', () => {
            requestAborted = true;
            resolve(null);
          });
        }),
    );
    server.registerStream('ticks', (_p, _ctx, sink) => {
      let n = 0;
      const timer = setInterval(() => sink.push(n++), 2);
      return () => {
        clearInterval(timer);
        streamCleaned = true;
      };
    });
    await server.listen();
    const c = await connectLocal({ socket });
    const ac = new AbortController();
    const pending = c.request('wait', null, { signal: ac.signal });
    await sleep(20);
    ac.abort();
    await rejectsWith(pending, 'ABORTED');
    await until(() => requestAborted, 'the handler to see the abort');
    await rejectsWith(c.request('wait', null, { signal: AbortSignal.timeout(20) }), 'TIMEOUT');

    const sc = new AbortController();
    const seen: ApiData[] = [];
    await rejectsWith(
      (async () => {
        for await (const v of c.stream('ticks', null, { signal: sc.signal })) {
          seen.push(v);
          if (seen.length === 3) sc.abort();
        }
      })(),
      'ABORTED',
    );
    assert.deepEqual(seen, [0, 1, 2]);
    await until(() => streamCleaned, 'the stream cleanup to run');
    // Breaking out of for-await cancels too.
    streamCleaned = false;
    for await (const v of c.stream('ticks')) if (v === 1) break;
    await until(() => streamCleaned, 'the stream cleanup after break');
    assert.equal(await c.request('echo', 'still usable'), 'still usable');
    await c.close();
  });
});

test('a slow client: a pushed stream is closed with SLOW_CONSUMER and the queue stays bounded', async () => {
  const queueBytesMax = 256 * 1024;
  await withServer({ queueBytesMax }, async (server, socket) => {
    let pushes = 0;
    server.registerStream('firehose', (_p, _ctx, sink) => {
      const item = 'x'.repeat(1024);
      const timer = setInterval(() => {
        for (let i = 0; i < 64; i++) {
          pushes++;
          if (!sink.push(item)) return;
        }
      }, 1);
      return () => {
        clearInterval(timer);
      };
    });
    await server.listen();
    const c = await connectLocal({ socket });
    const stream = c.stream('firehose');
    // Do not read: the client buffers up to its bound, pauses the socket, and the daemon's
    // queue fills until it closes the stream.
    await until(() => server.snapshot().slowConsumerClosures === 1, 'the slow consumer to be cut off', 10_000);
    assert.ok(
      server.snapshot().queuedBytesPeak <= queueBytesMax + 64 * 1024,
      `queue peaked at ${server.snapshot().queuedBytesPeak}`,
    );
    const got = await rejectsWith(collect(stream), 'SLOW_CONSUMER', /fell \d+ bytes behind/);
    assert.ok(got instanceof CohortClientError);
    assert.ok(pushes > 0);
    assert.equal(await c.request('echo', 1), 1, 'the connection survives the closed stream');
    await c.close();
  });
});

test('a slow client: a pulled stream waits for the client, then gives up with SLOW_CONSUMER', async () => {
  await withServer({ queueBytesMax: 128 * 1024, streamStallMs: 200 }, async (server, socket) => {
    let finalized = false;
    server.registerStream('endless', () =>
      (async function* () {
        try {
          for (;;) yield await Promise.resolve('y'.repeat(2048));
        } finally {
          finalized = true;
        }
      })(),
    );
    await server.listen();
    const c = await connectLocal({ socket });
    const stream = c.stream('endless');
    await until(() => server.snapshot().slowConsumerClosures === 1, 'the stalled stream to be closed', 10_000);
    assert.ok(server.snapshot().queuedBytesPeak <= 128 * 1024 + 8192);
    await until(() => finalized, 'the generator to be closed');
    await rejectsWith(collect(stream), 'SLOW_CONSUMER');
    await c.close();
  });
});

test('a server restart fails open calls with a typed error; a new connection works', async () => {
  await withServer({}, async (server, socket) => {
    server.register('hang', () => new Promise<ApiData>(() => undefined));
    await server.listen();
    const c: ClientConnection = await connectLocal({ socket });
    const pending = rejectsWith(c.request('hang'), 'UNAVAILABLE', /shutting down/);
    await sleep(10);
    await server.close();
    await pending;
    assert.equal(c.open, false);
    const after = await rejectsWith(c.request('echo', 1), 'UNAVAILABLE');
    assert.ok(after instanceof CohortClientError);
    await rejectsWith(connectLocal({ socket }), 'DAEMON_UNREACHABLE', /no socket there/);
    const again = new ApiServer({ socketPath: socket });
    again.register('echo', (p) => p);
    await again.listen();
    try {
      const d = await connectLocal({ socket });
      assert.equal(await d.request('echo', 'back'), 'back');
      await d.close();
    } finally {
      await again.close();
    }
  });
});

test('the socket gets the configured mode; a missing directory is created owner-only', async () => {
  for (const mode of [0o660, 0o600]) {
    await withServer({ mode }, async (server, socket) => {
      await server.listen();
      const info = await stat(socket);
      assert.ok(info.isSocket());
      assert.equal(info.mode & 0o777, mode);
    });
  }
  await withServer({}, async (_server, _socket, dir) => {
    const nested = new ApiServer({ socketPath: join(dir, 'run', 'api.sock') });
    await nested.listen();
    try {
      assert.equal((await stat(join(dir, 'run'))).mode & 0o777, 0o700);
    } finally {
      await nested.close();
    }
  });
});

test('a stale socket is removed; a live one or a regular file is never touched', async () => {
  await withServer({}, async (server, socket, dir) => {
    // A stale socket: bound elsewhere, moved into place, then its listener closed.
    const other = createServer();
    const temp = join(dir, 'temp.sock');
    await new Promise<void>((r) => other.listen(temp, r));
    await rename(temp, socket);
    await new Promise<void>((r) =>
      other.close(() => {
        r();
      }),
    );
    await server.listen();
    const c = await connectLocal({ socket });
    await c.close();
    // A second server on the same path finds a live listener and refuses.
    const second = new ApiServer({ socketPath: socket });
    await assert.rejects(
      second.listen(),
      (e: unknown) =>
        e instanceof ApiServerError && e.code === 'SOCKET_IN_USE' && /another process is listening/.test(e.message),
    );
  });
  await withServer({}, async (server, socket) => {
    await writeFile(socket, 'precious');
    await assert.rejects(
      server.listen(),
      (e: unknown) =>
        e instanceof ApiServerError &&
        e.code === 'SOCKET_IN_USE' &&
        /not a socket; refusing to remove it/.test(e.message),
    );
    assert.equal(await readFile(socket, 'utf8'), 'precious');
  });
});

test('clients beyond the maximum are refused with OVERLOADED while no slot is idle long enough to evict', async () => {
  await withServer({ clientsMax: 2, evictIdleMs: 60_000, idleMs: 120_000 }, async (server, socket) => {
    await server.listen();
    const a = await connectLocal({ socket });
    const b = await connectLocal({ socket });
    await rejectsWith(connectLocal({ socket }), 'OVERLOADED', /every one of the 2 API client slots is busy/);
    assert.equal(server.snapshot().connectionsRefused, 1);
    await a.close();
    await until(() => server.snapshot().clients === 1, 'a slot to free up');
    const c = await connectLocal({ socket });
    await Promise.all([b.close(), c.close()]);
  });
});

test('an idle client is closed with IDLE after the idle timeout; one with a request in flight or a stream open is not', async () => {
  await withServer({ idleMs: 300, evictIdleMs: 100 }, async (server, socket) => {
    let release = (): void => undefined;
    server.register(
      'slow',
      () =>
        new Promise<ApiData>((resolve) => {
          release = () => {
            resolve('done');
          };
        }),
    );
    server.registerStream('forever', () => undefined);
    await server.listen();
    const idle = await connectLocal({ socket });
    const busy = await connectLocal({ socket });
    const subscribed = await connectLocal({ socket });
    const slow = busy.request('slow');
    const stream = subscribed.stream('forever');
    await until(() => !idle.open, 'the idle client to be closed', 3000);
    await rejectsWith(idle.request('echo', 1), 'IDLE', /without a request or stream; connect again/);
    await sleep(600);
    assert.ok(busy.open && subscribed.open, 'a client with work open is never idle');
    assert.equal(server.snapshot().idleClosures, 1);
    // Once its request is answered, the busy client is idle again and times out in turn.
    release();
    assert.equal(await slow, 'done');
    await until(() => !busy.open, 'the formerly busy client to be closed', 3000);
    assert.ok(subscribed.open);
    await stream.return();
    await subscribed.close();
  });
});

test('when every slot is taken a new client gets the slot of the client idle longest; busy slots refuse with OVERLOADED', async () => {
  await withServer({ clientsMax: 3, idleMs: 60_000, evictIdleMs: 200 }, async (server, socket) => {
    server.registerStream('forever', () => undefined);
    await server.listen();
    const first = await connectLocal({ socket });
    await sleep(50);
    const second = await connectLocal({ socket });
    const third = await connectLocal({ socket });
    await sleep(300);
    // All three idle past evictIdleMs: the first (idle longest) gives its slot.
    const fourth = await connectLocal({ socket });
    await until(() => !first.open, 'the longest idle client to be evicted');
    await rejectsWith(first.request('echo', 1), 'IDLE', /to give its slot to a new client/);
    assert.ok(second.open && third.open);
    assert.equal(server.snapshot().evictions, 1);
    // Every slot busy (streams open): a new client is refused, nobody is evicted.
    const streams = [second, third, fourth].map((c) => c.stream('forever'));
    await sleep(300);
    await rejectsWith(connectLocal({ socket }), 'OVERLOADED', /slots is busy/);
    assert.equal(server.snapshot().evictions, 1);
    assert.ok(
      [second, third, fourth].every((c) => c.open),
      'busy clients are never evicted',
    );
    assert.equal(server.snapshot().connectionsRefused, 1);
    for (const st of streams) await st.return();
    await Promise.all([second.close(), third.close(), fourth.close()]);
  });
});

test('past connectionsMax a connection is closed at once and counted', async () => {
  await withServer(
    { clientsMax: 1, connectionsMax: 2, evictIdleMs: 60_000, idleMs: 120_000 },
    async (server, socket) => {
      await server.listen();
      const held = await connectLocal({ socket });
      // Raw connections that never read keep their refusal lingering: the second is past the cap.
      const raws = [createConnection(socket), createConnection(socket), createConnection(socket)];
      for (const r of raws) r.on('error', () => undefined);
      await until(() => server.snapshot().connectionsRefused === 3, 'three refusals (one OVERLOADED, two dropped)');
      assert.ok(held.open);
      for (const r of raws) r.destroy();
      await held.close();
    },
  );
});

function errorMessage(frame: ServerFrame | undefined): string {
  assert.ok(frame !== undefined && frame.type === 'error', `expected an error frame, got ${JSON.stringify(frame)}`);
  return frame.message;
}

/** Connects a raw socket, sends `bytes`, and returns the server frames received until close. */
async function rawSession(socket: string, bytes: Uint8Array | undefined): Promise<ServerFrame[]> {
  const decoder = new FrameDecoder(API_FRAME_LIMITS);
  const codec = serverFrameCodec();
  const frames: ServerFrame[] = [];
  await new Promise<void>((resolve, reject) => {
    const s = createConnection(socket);
    s.on('data', (chunk: Buffer) => {
      decoder.push(chunk);
      for (let f = decoder.next(); f !== undefined; f = decoder.next()) frames.push(codec.decode(f.subarray(4)));
    });
    s.on('close', () => {
      resolve();
    });
    s.on('error', reject);
    if (bytes !== undefined) s.write(bytes);
  });
  return frames;
}

test('no hello in time, or garbage, gets a PROTOCOL_ERROR and the connection closes', async () => {
  await withServer({ helloTimeoutMs: 100 }, async (server, socket) => {
    await server.listen();
    const silent = await rawSession(socket, undefined);
    assert.equal(silent.length, 1);
    assert.deepEqual(
      { ...silent[0], message: undefined },
      { type: 'error', id: 0, code: 'PROTOCOL_ERROR', message: undefined },
    );
    const garbage = await rawSession(socket, new Uint8Array([3, 0, 0, 0, 0xc1, 0xc1, 0xc1]));
    assert.match(errorMessage(garbage[0]), /bad frame from the client/);
    const huge = await rawSession(socket, new Uint8Array([0xff, 0xff, 0xff, 0x7f]));
    assert.match(errorMessage(huge[0]), /limit/);
  });
});
