/**
 * Group messaging benchmark (issue 6): one sender, a group of 3 members, 100-byte and 1 KiB
 * messages. Reports messages per second delivered to every member, and the round trip (send until
 * the sender's own stream delivers the message back).
 *
 * Modes:
 * - `--mode process` (default): 3 real `cohort start` daemons on loopback (encrypted TCP, fsync'd
 *   WAL), one typed client per node (`src/client`), the sender on a follower (its messages are
 *   forwarded to the leader) and, for the round trip, also on the leader.
 * - `--mode sim`: the same on the simulator's `ClusterHarness` (virtual time: 0.2-1 ms network
 *   delay, 0.1 ms disk); figures are simulated, not wall-clock.
 *
 * Usage: node dist/bench/group-messaging.js [--mode process|sim] [--seconds S] [--rtt-samples N] [--window W] [--json]
 * Not a timed test: take figures on an idle machine; anything else on the cores skews them.
 * For comparison (issue 6, measured on this machine): corosync CPG, 3 nodes in network
 * namespaces, about 14,000 msgs/s at 100 B and 1 KiB, round trip p50 0.98 ms, p99 2.1 ms.
 */
import { performance } from 'node:perf_hooks';
import { connect, type CohortClient, type GroupHandle, type GroupItem } from '../src/client/index.js';
import { ProcessCluster } from '../src/node/process-cluster.js';
import { ClusterHarness } from '../src/sim/cluster-harness.js';
import type { CohortNode } from '../src/services.js';
import { API_CLIENT_REQUESTS_MAX } from '../src/constants.js';
import { runBench, benchArgs, benchUsageError, percentile } from './bench-args.js';

const SIZES = [100, 1024] as const;
const QUORATE_BOUND_MS = 20_000;

interface Figures {
  readonly size: number;
  readonly messagesPerSecond: number;
  readonly delivered: number;
  readonly seconds: number;
  readonly rttFollowerP50Ms: number;
  readonly rttFollowerP99Ms: number;
  readonly rttLeaderP50Ms: number;
  readonly rttLeaderP99Ms: number;
}

function payloadOf(size: number, tag: number): Uint8Array {
  const b = new Uint8Array(size);
  new DataView(b.buffer).setUint32(0, tag, true);
  return b;
}

function tagOf(payload: Uint8Array): number {
  return new DataView(payload.buffer, payload.byteOffset, payload.byteLength).getUint32(0, true);
}

// ------------------------------------------------------------------------------------------------
// Real processes

/** Counts deliveries per member and resolves waiters for a tag on one member. */
class Receiver {
  count = 0;
  private readonly waiters = new Map<number, () => void>();
  constructor(private readonly stream: AsyncIterableIterator<GroupItem> & { cancel(): void }) {
    void this.pump();
  }

  private async pump(): Promise<void> {
    try {
      for await (const item of this.stream) {
        if (item.kind !== 'message') continue;
        this.count++;
        const tag = tagOf(item.payload);
        const w = this.waiters.get(tag);
        if (w !== undefined) {
          this.waiters.delete(tag);
          w();
        }
      }
    } catch {
      // the stream ends when the benchmark closes the clients
    }
  }

  waitFor(tag: number): Promise<void> {
    return new Promise((resolve) => this.waiters.set(tag, resolve));
  }

  close(): void {
    this.stream.cancel();
  }
}

async function rttSamples(
  sender: GroupHandle,
  self: Receiver,
  size: number,
  samples: number,
  tagBase: number,
): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < samples; i++) {
    const tag = tagBase + i;
    const arrived = self.waitFor(tag);
    const t0 = performance.now();
    await sender.send(payloadOf(size, tag));
    await arrived;
    out.push(performance.now() - t0);
  }
  return out.sort((a, b) => a - b);
}

async function throughput(
  sender: GroupHandle,
  receivers: readonly Receiver[],
  size: number,
  seconds: number,
  window: number,
  tagBase: number,
): Promise<{ delivered: number; seconds: number }> {
  const start = receivers.map((r) => r.count);
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  let tag = tagBase;
  const lane = async (): Promise<void> => {
    while (performance.now() < deadline) await sender.send(payloadOf(size, tag++));
  };
  await Promise.all(Array.from({ length: window }, lane));
  // Let the last messages reach every member.
  const sent = tag - tagBase;
  const settle = performance.now() + 5000;
  while (receivers.some((r, i) => r.count - (start[i] ?? 0) < sent) && performance.now() < settle)
    await new Promise((r) => setTimeout(r, 5));
  const elapsed = (performance.now() - t0) / 1000;
  const delivered = Math.min(...receivers.map((r, i) => r.count - (start[i] ?? 0)));
  return { delivered, seconds: elapsed };
}

async function processMode(seconds: number, samples: number, window: number): Promise<Figures[]> {
  const c = await ProcessCluster.create(3);
  const clients: CohortClient[] = [];
  try {
    c.startAll();
    await c.waitQuorate(c.ids, QUORATE_BOUND_MS);
    const { leader } = await c.waitLeader(c.ids, QUORATE_BOUND_MS);
    for (const id of c.ids) clients.push(await connect({ socket: c.socket(id) }));
    const handles: GroupHandle[] = [];
    for (const client of clients) handles.push(await client.groups.join('bench'));
    const receivers = handles.map((h) => new Receiver(h.messages()));
    const leaderIndex = c.ids.indexOf(leader);
    const followerIndex = c.ids.findIndex((id) => id !== leader);
    const follower = handles[followerIndex] as GroupHandle;
    const lead = handles[leaderIndex] as GroupHandle;
    const out: Figures[] = [];
    let tagBase = 1;
    for (const size of SIZES) {
      await rttSamples(follower, receivers[followerIndex] as Receiver, size, 50, (tagBase += 1_000_000)); // warm-up
      const rf = await rttSamples(
        follower,
        receivers[followerIndex] as Receiver,
        size,
        samples,
        (tagBase += 1_000_000),
      );
      const rl = await rttSamples(lead, receivers[leaderIndex] as Receiver, size, samples, (tagBase += 1_000_000));
      const t = await throughput(follower, receivers, size, seconds, window, (tagBase += 10_000_000));
      out.push({
        size,
        messagesPerSecond: t.delivered / t.seconds,
        delivered: t.delivered,
        seconds: t.seconds,
        rttFollowerP50Ms: percentile(rf, 50),
        rttFollowerP99Ms: percentile(rf, 99),
        rttLeaderP50Ms: percentile(rl, 50),
        rttLeaderP99Ms: percentile(rl, 99),
      });
    }
    for (const r of receivers) r.close();
    return out;
  } finally {
    for (const client of clients) await client.close().catch(() => undefined);
    await c.close();
  }
}

// ------------------------------------------------------------------------------------------------
// Simulator (virtual time)

function simMode(seconds: number, samples: number, window: number): Figures[] {
  const counts = new Map<number, number>();
  /** node -> tag -> virtual ms of delivery. */
  const arrived = new Map<number, Map<number, number>>();
  let now = (): number => 0;
  const h = new ClusterHarness({
    seed: 7,
    observerOf: (id) => ({
      onGroupDeliver: (_g, _v, _s, _from, payload) => {
        counts.set(id, (counts.get(id) ?? 0) + 1);
        const m = arrived.get(id) ?? new Map<number, number>();
        m.set(tagOf(payload), now());
        arrived.set(id, m);
      },
    }),
  });
  now = () => h.nowMs();
  h.runUntil(() => h.allJoinedAndQuorate([1, 2, 3]), QUORATE_BOUND_MS);
  for (const id of [1, 2, 3]) {
    let done = false;
    h.node(id).services.groups.join('bench', 0, (r) => {
      if (!r.ok) throw r.error;
      done = true;
    });
    h.runUntil(() => done, 5000);
  }
  const leader = h.leader();
  const follower = h.followers()[0] as CohortNode;
  const rtt = (node: CohortNode, size: number, tagBase: number): number[] => {
    const out: number[] = [];
    for (let i = 0; i < samples; i++) {
      const tag = tagBase + i;
      const t0 = h.nowMs();
      node.services.groups.send('bench', payloadOf(size, tag), (r) => {
        if (!r.ok) throw r.error;
      });
      h.runUntil(() => arrived.get(node.nodeId)?.has(tag) === true, 5000);
      out.push((arrived.get(node.nodeId)?.get(tag) ?? Number.NaN) - t0);
    }
    return out.sort((a, b) => a - b);
  };
  const out: Figures[] = [];
  let tagBase = 1;
  for (const size of SIZES) {
    const rf = rtt(follower, size, (tagBase += 1_000_000));
    const rl = rtt(leader, size, (tagBase += 1_000_000));
    const start = [1, 2, 3].map((id) => counts.get(id) ?? 0);
    const t0 = h.nowMs();
    const deadline = t0 + seconds * 1000;
    let tag = (tagBase += 10_000_000);
    let inFlight = 0;
    const pump = (): void => {
      while (inFlight < window && h.nowMs() < deadline) {
        inFlight++;
        follower.services.groups.send('bench', payloadOf(size, tag++), () => {
          inFlight--;
          pump();
        });
      }
    };
    pump();
    h.runMs(seconds * 1000);
    h.runUntil(() => inFlight === 0, 10_000);
    const elapsed = (h.nowMs() - t0) / 1000;
    const delivered = Math.min(...[1, 2, 3].map((id, i) => (counts.get(id) ?? 0) - (start[i] ?? 0)));
    out.push({
      size,
      messagesPerSecond: delivered / elapsed,
      delivered,
      seconds: elapsed,
      rttFollowerP50Ms: percentile(rf, 50),
      rttFollowerP99Ms: percentile(rf, 99),
      rttLeaderP50Ms: percentile(rl, 50),
      rttLeaderP99Ms: percentile(rl, 99),
    });
  }
  return out;
}

// ------------------------------------------------------------------------------------------------

function print(mode: string, window: number, figures: readonly Figures[]): void {
  const f = (x: number, d = 2): string => x.toFixed(d);
  process.stdout.write(
    `group messaging, one sender (a follower), 3 members, ${mode === 'sim' ? 'SIMULATED (virtual time)' : '3 processes on loopback'}, ${window} sends in flight\n`,
  );
  process.stdout.write('size    msgs/s to all   RTT follower p50/p99 ms   RTT leader p50/p99 ms\n');
  for (const x of figures)
    process.stdout.write(
      `${String(x.size).padEnd(6)}  ${Math.round(x.messagesPerSecond).toString().padStart(13)}   ${`${f(x.rttFollowerP50Ms)} / ${f(x.rttFollowerP99Ms)}`.padStart(23)}   ${`${f(x.rttLeaderP50Ms)} / ${f(x.rttLeaderP99Ms)}`.padStart(21)}\n`,
    );
  process.stdout.write(
    'corosync CPG on this machine (issue 6): ~14,000 msgs/s at 100 B and 1 KiB, RTT p50 0.98 ms, p99 2.1 ms\n',
  );
}

async function main(): Promise<void> {
  const values = benchArgs(
    {
      name: 'group-messaging',
      summary: `One sender, a group of 3 members, 100-byte and 1 KiB messages: messages per second delivered to
every member, and the round trip. --mode process: 3 real \`cohort start\` daemons on loopback, one client per
node; --mode sim: the simulator's ClusterHarness (virtual time). In process mode the window is at most the
client's in-flight limit (API_CLIENT_REQUESTS_MAX = ${API_CLIENT_REQUESTS_MAX}). Not a timed test.`,
    },
    {
      mode: { kind: 'choice', default: 'process', choices: ['process', 'sim'], help: 'real daemons or the simulator' },
      seconds: { kind: 'number', default: 3, min: 0.1, max: 600, value: 'S', help: 'seconds of sending per size' },
      'rtt-samples': { kind: 'int', default: 500, min: 1, max: 1_000_000, value: 'N', help: 'round trips timed' },
      window: {
        kind: 'int',
        default: API_CLIENT_REQUESTS_MAX,
        min: 1,
        max: 4096,
        value: 'W',
        help: 'sends in flight',
      },
      json: { kind: 'boolean', help: 'print one JSON object instead of the table' },
    },
  );
  const seconds = values.seconds;
  const samples = values['rtt-samples'];
  const window = values.window;
  // One client connection carries every send: more in flight than it allows fails with OVERLOADED.
  if (values.mode === 'process' && window > API_CLIENT_REQUESTS_MAX)
    benchUsageError(
      'group-messaging',
      `--window ${window} is above the client's in-flight limit in --mode process (API_CLIENT_REQUESTS_MAX = ${API_CLIENT_REQUESTS_MAX})`,
    );
  const figures =
    values.mode === 'sim' ? simMode(seconds, samples, window) : await processMode(seconds, samples, window);
  if (values.json) process.stdout.write(`${JSON.stringify({ mode: values.mode, window, figures })}\n`);
  else print(values.mode, window, figures);
}

await runBench('group-messaging', main);
