// Proves the client connection's own contract: `await using` compiles (tsc, target ES2023) and
// closes the connection at the end of the scope; an unreachable daemon is DAEMON_UNREACHABLE
// naming the socket and how to select another (--socket, COHORT_SOCKET); COHORT_SOCKET is the
// default; connecting honours an AbortSignal; and a closed connection fails calls with CLOSED.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ApiServer } from '../platform/api-server.js';
import { SOCKET_ENV, connectLocal, type ClientConnection } from './index.js';
import { clientFailure } from '../testing/api-support.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'cohort-client-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('await using closes the connection at the end of the scope', async () => {
  await withDir(async (dir) => {
    const socket = join(dir, 'api.sock');
    const server = new ApiServer({ socketPath: socket });
    server.register('echo', (p) => p);
    await server.listen();
    try {
      let escaped: ClientConnection | undefined;
      {
        await using conn = await connectLocal({ socket });
        escaped = conn;
        assert.equal(await conn.request('echo', 7), 7);
        assert.equal(conn.open, true);
      }
      assert.equal(escaped.open, false, 'disposed at scope exit');
      const e = await clientFailure(escaped.request('echo', 1));
      assert.equal(e.code, 'CLOSED');
      for (let i = 0; i < 200 && server.snapshot().clients > 0; i++) await sleep(5);
      assert.equal(server.snapshot().clients, 0, 'the daemon saw the client leave');
    } finally {
      await server.close();
    }
  });
});

test('an unreachable daemon is DAEMON_UNREACHABLE naming the socket and how to pick another', async () => {
  await withDir(async (dir) => {
    const missing = join(dir, 'none.sock');
    const e = await clientFailure(connectLocal({ socket: missing }));
    assert.equal(e.code, 'DAEMON_UNREACHABLE');
    assert.ok(e.is('DAEMON_UNREACHABLE'));
    assert.ok(e.message.includes(missing));
    assert.match(e.message, /no socket there.*cohort status --socket PATH.*COHORT_SOCKET=PATH/);
    const saved = process.env[SOCKET_ENV];
    Reflect.deleteProperty(process.env, SOCKET_ENV);
    try {
      const none = await clientFailure(connectLocal({}));
      assert.match(none.message, /no daemon socket given; pass --socket PATH or set COHORT_SOCKET/);
      process.env[SOCKET_ENV] = missing;
      const fromEnv = await clientFailure(connectLocal({}));
      assert.ok(fromEnv.message.includes(missing), 'COHORT_SOCKET is the default socket');
    } finally {
      if (saved === undefined) Reflect.deleteProperty(process.env, SOCKET_ENV);
      else process.env[SOCKET_ENV] = saved;
    }
  });
});

test('connecting to something that never answers the hello honours the signal and the deadline', async () => {
  await withDir(async (dir) => {
    const socket = join(dir, 'mute.sock');
    // Reads and ignores everything: never answers the hello.
    const mute = createServer((s) => s.resume());
    await new Promise<void>((r) => mute.listen(socket, r));
    try {
      const ac = new AbortController();
      setTimeout(() => {
        ac.abort();
      }, 30);
      assert.equal((await clientFailure(connectLocal({ socket, signal: ac.signal }))).code, 'ABORTED');
      assert.equal((await clientFailure(connectLocal({ socket, timeoutMs: 30 }))).code, 'TIMEOUT');
    } finally {
      // The client destroyed its sockets on failure, so closing the listener completes.
      await new Promise<void>((r) =>
        mute.close(() => {
          r();
        }),
      );
    }
  });
});
