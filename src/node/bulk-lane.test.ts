// Proves that a node's control traffic never waits behind bulk traffic, at the node level: three
// cohort nodes, each in its own process over real TCP on loopback with the daemon's default
// timeouts, settle into a quorate view; then node 1 streams bytes to node 2 on the bulk lane,
// continuously, for several seconds (at least 64 MiB), while every node keeps measuring the
// membership pings it receives. The test requires the stream to move at least 64 MiB, no detector
// decision (not even a suspicion) and no view change anywhere during it, and node 2's pings from
// node 1 (the same peer pair as the stream) to keep their normal interval. The stream is paced
// (32 MiB/s by default, `COHORT_BULK_RATE`): lanes keep control frames from queueing behind bulk
// ones, but a producer that saturates its node's one event loop delays that node's timers too;
// that is CPU, not queueing, and bulk services must pace themselves (docs/transport.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TEST_PORT_BLOCKS, findFreePortBlock } from '../platform/ports.js';
import { formatClusterKey, generateClusterKey } from '../platform/cluster-key.js';
import { formatSummary } from '../testing/interval-meter.js';
import type { LaneNodeCommand, LaneNodeEvent, LaneNodeSetup } from '../testing/lane-node.js';

const PROGRAM = fileURLToPath(new URL('../testing/lane-node.js', import.meta.url));
const NODES = 3;
const STREAM_MS = 6000;
const CHUNK_BYTES = 256 * 1024;
const STREAM_BYTES_MIN = 64 * 1024 * 1024;
const RATE = Number(process.env['COHORT_BULK_RATE'] ?? 32 * 1024 * 1024);
/** The default heartbeat (`TIMEOUT_DEFAULTS.heartbeatMs`). */
const HEARTBEAT_MS = 100;
/** The default failure timeout: the detector suspects a node silent this long. */
const SUSPECT_AFTER_MS = 1000;

type Report = Extract<LaneNodeEvent, { type: 'report' }>;

class Child {
  status: Extract<LaneNodeEvent, { type: 'status' }> | null = null;
  private readonly waiters: ((e: LaneNodeEvent) => boolean)[] = [];

  constructor(readonly proc: ChildProcess) {
    proc.on('message', (e: LaneNodeEvent) => {
      if (e.type === 'status') this.status = e;
      for (const w of [...this.waiters]) if (w(e)) this.waiters.splice(this.waiters.indexOf(w), 1);
    });
  }

  send(c: LaneNodeCommand): void {
    this.proc.send(c);
  }

  next<T extends LaneNodeEvent['type']>(type: T, timeoutMs: number): Promise<Extract<LaneNodeEvent, { type: T }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`no ${type} from node within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.push((e) => {
        if (e.type !== type) return false;
        clearTimeout(timer);
        resolve(e as Extract<LaneNodeEvent, { type: T }>);
        return true;
      });
    });
  }
}

async function until(cond: () => boolean, what: string, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('a 64 MiB+ bulk stream between two nodes leaves heartbeats, suspicion and views untouched', async (t) => {
  const base = await findFreePortBlock(NODES, { ...TEST_PORT_BLOCKS, attempts: 20 });
  assert.ok(base !== null, 'free ports on loopback');
  const key = formatClusterKey(generateClusterKey());
  const ports = Array.from({ length: NODES }, (_, i) => base + 1 + i);
  const children = ports.map((_, i) => {
    const setup: LaneNodeSetup = { id: i + 1, ports, key };
    return new Child(fork(PROGRAM, [JSON.stringify(setup)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  });
  t.after(() => {
    for (const c of children) c.proc.kill('SIGKILL');
  });
  const at = (id: number): Child => children[id - 1] as Child;
  await until(
    () =>
      children.every((c) => c.status?.joined === true && c.status.quorate) &&
      new Set(children.map((c) => c.status?.viewId)).size === 1,
    'three joined, quorate nodes in one view',
    30_000,
  );
  const viewBefore = at(1).status?.viewId;
  // A second of steady state, then measure.
  await new Promise((r) => setTimeout(r, 1000));
  for (const c of children) c.send({ type: 'measure' });
  const streamed = at(1).next('streamed', STREAM_MS + 30_000);
  at(1).send({ type: 'stream', to: 2, durationMs: STREAM_MS, chunkBytes: CHUNK_BYTES, rateBytesPerSec: RATE });
  const { bytes, ms } = await streamed;
  // Let the last chunks and pings arrive.
  await new Promise((r) => setTimeout(r, 500));
  const reports: Report[] = [];
  for (const c of children) {
    const r = c.next('report', 10_000);
    c.send({ type: 'report' });
    reports.push(await r);
  }
  for (const c of children) c.send({ type: 'exit' });
  const receiver = reports[1] as Report;
  const mib = (n: number): string => (n / 1024 / 1024).toFixed(1);
  t.diagnostic(`stream: ${mib(bytes)} MiB sent, ${mib(receiver.received)} MiB received in ${ms.toFixed(0)} ms`);
  reports.forEach((r, i) => {
    for (const [from, s] of Object.entries(r.pings))
      t.diagnostic(`node ${i + 1} pings from node ${from}: ${formatSummary(s)}`);
  });
  assert.ok(receiver.received >= STREAM_BYTES_MIN, `node 2 received ${mib(receiver.received)} MiB (at least 64)`);
  for (const [i, r] of reports.entries()) {
    assert.deepEqual(r.decisions, [], `node ${i + 1}: no detector decision during the stream`);
    assert.deepEqual(r.views, [], `node ${i + 1}: no view change during the stream`);
  }
  assert.equal(at(1).status?.viewId, viewBefore, 'the view is the one from before the stream');
  // Pings on the stream's own path (node 1 -> node 2) keep their interval: as many as the period
  // allows, a median within 20 % of the heartbeat, and a p99 below half the detector's suspicion
  // threshold (the default failure timeout, 1 s), so a loaded CI machine's jitter does not fail
  // the test while a lane that queued pings behind the stream would.
  const onPath = receiver.pings['1'];
  assert.ok(onPath !== undefined && onPath.count >= (STREAM_MS / HEARTBEAT_MS) * 0.8, 'node 2 measured pings from 1');
  assert.ok(onPath.p50 <= 1.2 * HEARTBEAT_MS, `ping interval p50 ${onPath.p50.toFixed(1)} ms on the bulk path`);
  assert.ok(onPath.p99 <= SUSPECT_AFTER_MS / 2, `ping interval p99 ${onPath.p99.toFixed(1)} ms on the bulk path`);
});
