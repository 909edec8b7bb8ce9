// Proves the real environment's clock is monotonic and follows real time, its timers fire no
// earlier than asked and can be cancelled, its PRNG is seeded (fixed seeds reproduce, default
// seeds differ), trace maps to pino debug records only when debug is on, and the loop monitor
// sees a real event-loop stall (and the suspicion extension grows with it, bounded); fail-stop
// closes the environment's gate at once and the daemon's handler logs one fatal line and exits 3.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { nodeId } from '../lib/ids.js';
import { MemoryDisk } from '../storage/memory-disk.js';
import type { Transport } from '../transport/transport.js';
import { deriveTimeouts, suspicionExtensionMs, TIMEOUT_DEFAULTS } from '../node/timeouts.js';
import { createLogger } from './logger.js';
import { MemoryBlockStore } from '../storage/memory-block-store.js';
import { createRealEnv, exitOnFailStop, FAIL_STOP_EXIT_CODE, monitorEventLoop } from './real-env.js';

const transport: Transport<string> = {
  self: nodeId(1),
  setHandlers: () => undefined,
  send: () => false,
  close: () => Promise.resolve(),
};

function env(level: 'info' | 'debug', lines: string[], seed?: number) {
  const logger = createLogger({ level, format: 'json', destination: { write: (t: string) => lines.push(t) } });
  return createRealEnv({
    nodeId: nodeId(1),
    transport,
    disk: new MemoryDisk(),
    blocks: new MemoryBlockStore(),
    logger,
    ...(seed === undefined ? {} : { seed }),
  });
}

test('clock: monotonic, in milliseconds, following real time', async () => {
  const e = env('info', []);
  const a = e.clock.nowMs();
  let last = a;
  for (let i = 0; i < 10_000; i++) {
    const t = e.clock.nowMs();
    assert.ok(t >= last);
    last = t;
  }
  await sleep(50);
  const elapsed = e.clock.nowMs() - a;
  assert.ok(elapsed >= 49 && elapsed < 2000, `elapsed ${elapsed}`);
});

test('timers: fire no earlier than the delay, once; cancel prevents firing; bad delays assert', async () => {
  const e = env('info', []);
  const start = e.clock.nowMs();
  const fired: number[] = [];
  e.timers.after(30, () => fired.push(e.clock.nowMs() - start));
  const cancelled = e.timers.after(10, () => fired.push(-1));
  cancelled.cancel();
  await sleep(80);
  assert.equal(fired.length, 1);
  assert.ok((fired[0] ?? 0) >= 29, `fired after ${fired[0]} ms`);
  assert.throws(() => e.timers.after(-1, () => undefined), /timer delay/);
  assert.throws(() => e.timers.after(Number.NaN, () => undefined), /timer delay/);
  assert.throws(() => e.timers.after(2 ** 31, () => undefined), /timer delay/);
});

test('prng: a fixed seed reproduces the stream; default seeds are random and logged at debug', () => {
  const a = env('info', [], 42).prng;
  const b = env('info', [], 42).prng;
  const seqA = Array.from({ length: 8 }, () => a.nextU32());
  assert.deepEqual(
    Array.from({ length: 8 }, () => b.nextU32()),
    seqA,
  );
  const lines: string[] = [];
  const seeds = new Set([env('debug', lines).seed, env('debug', lines).seed, env('debug', lines).seed]);
  assert.equal(seeds.size, 3);
  assert.ok(lines.some((l) => /"msg":"node prng seeded"/.test(l) && /"seed":\d+/.test(l)));
});

test('trace: a debug record with the event and fields, nothing at info level', () => {
  const lines: string[] = [];
  env('debug', lines, 1).trace('become-leader', { term: 3, commit: 7 });
  const rec = JSON.parse(lines.at(-1) ?? '{}') as Record<string, unknown>;
  assert.deepEqual(
    [rec['level'], rec['msg'], rec['event'], rec['term'], rec['commit']],
    [20, 'become-leader', 'become-leader', 3, 7],
  );
  const quiet: string[] = [];
  env('info', quiet, 1).trace('become-leader', { term: 3 });
  assert.deepEqual(quiet, []);
});

test('loop monitor: a 300 ms stall shows as a delay, and the suspicion extension follows it', async () => {
  const monitor = monitorEventLoop({ resolutionMs: 10, windowMs: 1000 });
  try {
    await sleep(50);
    const before = monitor.health();
    assert.ok(before.maxDelayMs < 250, `quiet loop shows ${before.maxDelayMs} ms`);
    const until = Date.now() + 300;
    while (Date.now() < until) {
      // Busy-wait: a real stall of the event loop.
    }
    await sleep(30);
    const after = monitor.health();
    assert.ok(after.maxDelayMs >= 250, `stall seen as ${after.maxDelayMs} ms`);
    const model = deriveTimeouts(TIMEOUT_DEFAULTS);
    assert.ok(model.ok);
    const ext = suspicionExtensionMs(model.value, after.maxDelayMs);
    assert.ok(ext >= 2 * 250 && ext % TIMEOUT_DEFAULTS.heartbeatMs === 0, `extension ${ext}`);
    assert.equal(suspicionExtensionMs(model.value, 1e9), model.value.detector.localHealthExtensionMaxMs);
    assert.equal(suspicionExtensionMs(model.value, 0), 0);
  } finally {
    monitor.close();
  }
});

test('fail-stop: the gate closes at once (no timer fires, nothing is sent or written) and the handler runs once', async () => {
  const sent: number[] = [];
  const inner: Transport<string> = {
    self: nodeId(1),
    setHandlers: () => undefined,
    send: (to) => {
      sent.push(to);
      return true;
    },
    close: () => Promise.resolve(),
  };
  const disk = new MemoryDisk({ schedule: (fn) => setImmediate(fn) });
  const stops: string[] = [];
  const e = createRealEnv({
    nodeId: nodeId(1),
    transport: inner,
    disk,
    blocks: new MemoryBlockStore({ schedule: (fn) => setImmediate(fn) }),
    logger: createLogger({ level: 'info', format: 'json', destination: { write: () => undefined } }),
    onFailStop: (reason) => stops.push(reason),
  });
  let fired = 0;
  e.timers.after(5, () => fired++);
  assert.equal(e.transport.send(nodeId(2), 'before'), true);
  e.failStop('storage failure: fsync of wal-1.log failed: EIO: i/o error', new Error('EIO'));
  e.failStop('again', new Error('EIO'));
  assert.equal(e.transport.send(nodeId(2), 'after'), false);
  let wrote = false;
  e.disk.write('f', 0, new Uint8Array(1), () => (wrote = true));
  await sleep(30);
  assert.deepEqual(sent, [2], 'nothing is sent after the fail-stop');
  assert.equal(fired, 0, 'no timer of the incarnation fires');
  assert.equal(wrote, false, 'no disk completion runs');
  assert.equal(disk.read('f'), null, 'nothing is written');
  assert.deepEqual(stops, ['storage failure: fsync of wal-1.log failed: EIO: i/o error']);
});

test("the daemon's fail-stop logs one fatal line naming the file and the error, then exits with code 3", () => {
  const lines: string[] = [];
  const logger = createLogger({ level: 'info', format: 'json', destination: { write: (t: string) => lines.push(t) } });
  const codes: number[] = [];
  const handler = exitOnFailStop(logger, (code) => codes.push(code));
  const cause = Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
  handler('storage failure: fsync of wal-0000000000000001.log failed: EIO: i/o error', cause);
  assert.deepEqual(codes, [FAIL_STOP_EXIT_CODE]);
  assert.equal(FAIL_STOP_EXIT_CODE, 3);
  const records = lines.map((l) => JSON.parse(l) as { level: number; msg: string; code: string });
  assert.equal(records.length, 1, 'one line');
  const [record] = records;
  assert.ok(record !== undefined);
  assert.equal(record.level, 60, 'fatal');
  assert.equal(
    record.msg,
    'storage failure: fsync of wal-0000000000000001.log failed: EIO: i/o error; stopping (fail-stop)',
  );
  assert.equal(record.code, 'EIO');
});

test('the gated transport passes the lane and the incarnation through, and sends nothing after a fail-stop', () => {
  const sent: [number, string, string | undefined][] = [];
  const identified: number[] = [];
  const inner: Transport<string> = {
    self: nodeId(1),
    setHandlers: () => undefined,
    send: (to, m, lane) => {
      sent.push([to, m, lane]);
      return true;
    },
    close: () => Promise.resolve(),
    identify: (inc) => {
      identified.push(inc);
    },
  };
  const e = createRealEnv({
    nodeId: nodeId(1),
    transport: inner,
    disk: new MemoryDisk(),
    blocks: new MemoryBlockStore(),
    logger: createLogger({ level: 'info', format: 'json', destination: { write: () => undefined } }),
    onFailStop: () => undefined,
  });
  assert.equal(e.transport.send(nodeId(2), 'bulk', 'bulk'), true);
  assert.equal(e.transport.send(nodeId(2), 'plain'), true);
  e.transport.identify?.(7);
  assert.deepEqual(sent, [
    [2, 'bulk', 'bulk'],
    [2, 'plain', undefined],
  ]);
  assert.deepEqual(identified, [7]);
  e.failStop('test', new Error('test'));
  assert.equal(e.transport.send(nodeId(2), 'late', 'bulk'), false, 'nothing is sent once the incarnation fail-stopped');
  assert.equal(sent.length, 2);
});
