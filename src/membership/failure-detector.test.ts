// Proves the failure detector meets issue 6's bounds with the default timeout model, on seeded
// random heartbeat schedules (phases, message delays up to a heartbeat, tick jitter): a node that
// stalls for less than the 1 s stall bound is never failed or quarantined, whatever the phase; a
// node that dies is failed within 3 s (with and without corroborating rows); partial connectivity
// (the leader cannot hear B, C hears both) ends in at most one quarantine and no fail/rejoin cycle,
// driven through the real membership state machine; the leader's own stalls suppress accusations;
// a new leader times members from followers' rows; repeated failures become one quarantine; and
// proof that a process is gone fails exactly that incarnation at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Prng } from '../lib/prng.js';
import { incarnation, logIndex, nodeId, term, type NodeId } from '../lib/ids.js';
import { DEFAULT_VOTEQUORUM_OPTIONS } from '../quorum/index.js';
import { deriveTimeouts, TIMEOUT_DEFAULTS, type TimeoutModel } from '../node/timeouts.js';
import {
  detectorOptions,
  FailureDetector,
  type DetectorDecision,
  type DetectorTimes,
  type FailureDetectorOptions,
} from './failure-detector.js';
import { ReachabilityTracker, type ReachabilityRow } from './reachability-tracker.js';
import { MembershipStateMachine } from './membership-state-machine.js';
import type { MembershipCommand } from './membership-command.js';
import type { ViewMember } from './membership-event.js';

const model: TimeoutModel = (() => {
  const m = deriveTimeouts(TIMEOUT_DEFAULTS);
  assert.ok(m.ok);
  return m.value;
})();
const TIMES: DetectorTimes = { heartbeatMs: model.inputs.heartbeatMs, ...model.detector };
const H = TIMES.heartbeatMs;
const TICK_MS = model.tickMs;
const STALL_BOUND_MS = model.inputs.stallToleranceMs;
const DETECTION_BOUND_MS = 3000;
const LEADER = nodeId(1);
const n = (i: number): NodeId => nodeId(i);

// ------------------------------------------------------------------------------------------------
// A small discrete-event model: node 1 leads and runs the detector; every node pings every other
// node each heartbeat at its own phase, carrying its reachability row; messages take a random
// delay; stalled nodes neither send nor process until the stall ends (then they answer at once);
// dead nodes fall silent; cut links drop messages.

interface Scenario {
  readonly nodes: number;
  readonly endMs: number;
  readonly seed: number;
  readonly delayMaxMs: number;
  readonly tickJitterMs: number;
  readonly stalls: readonly { readonly node: number; readonly atMs: number; readonly forMs: number }[];
  readonly deaths: readonly { readonly node: number; readonly atMs: number }[];
  readonly cuts: readonly { readonly from: number; readonly to: number; readonly atMs: number }[];
}

interface Decided {
  readonly atMs: number;
  readonly decision: DetectorDecision;
}

class DetectorSim {
  private readonly queue: { at: number; seq: number; fn: () => void }[] = [];
  private seq = 0;
  private readonly prng: Prng;
  private readonly trackers = new Map<number, ReachabilityTracker>();
  readonly decided: Decided[] = [];
  readonly fd: FailureDetector;
  /** Called for every decision (tests may change the membership in response). */
  onDecision: (atMs: number, d: DetectorDecision) => void = () => undefined;

  constructor(
    readonly s: Scenario,
    members: readonly ViewMember[] = Array.from({ length: s.nodes }, (_, i) => ({
      node: n(i + 1),
      incarnation: incarnation(1),
    })),
    options: FailureDetectorOptions = detectorOptions(LEADER, TIMES),
  ) {
    this.prng = new Prng(s.seed);
    this.fd = new FailureDetector(options, 0);
    this.fd.setMembers(members, 0);
    const all = Array.from({ length: s.nodes }, (_, i) => n(i + 1));
    for (const id of all) {
      const t = new ReachabilityTracker(id);
      t.setPeers(all);
      this.trackers.set(id, t);
      this.at(this.prng.int(0, H), () => {
        this.emit(id);
      });
    }
    this.at(TICK_MS, () => {
      this.tick(TICK_MS);
    });
  }

  at(atMs: number, fn: () => void): void {
    const item = { at: atMs, seq: this.seq++, fn };
    let lo = 0;
    let hi = this.queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const q = this.queue[mid]!;
      if (q.at < atMs || (q.at === atMs && q.seq < item.seq)) lo = mid + 1;
      else hi = mid;
    }
    this.queue.splice(lo, 0, item);
  }

  run(): Decided[] {
    for (;;) {
      const next = this.queue.shift();
      if (next === undefined || next.at > this.s.endMs) return this.decided;
      this.now = next.at;
      next.fn();
    }
  }

  now = 0;

  private pausedUntil(node: number, t: number): number | null {
    for (const st of this.s.stalls)
      if (st.node === node && t >= st.atMs && t < st.atMs + st.forMs) return st.atMs + st.forMs;
    return null;
  }

  private dead(node: number, t: number): boolean {
    return this.s.deaths.some((d) => d.node === node && t >= d.atMs);
  }

  private cut(from: number, to: number, t: number): boolean {
    return this.s.cuts.some((c) => c.from === from && c.to === to && t >= c.atMs);
  }

  /** A regular ping round of `id`; a stalled node answers once when its stall ends. */
  private emit(id: NodeId, regular = true): void {
    const t = this.now;
    if (this.dead(id, t)) return;
    if (regular) {
      this.at(t + H, () => {
        this.emit(id);
      });
    }
    const until = this.pausedUntil(id, t);
    if (until !== null) {
      if (regular && this.pausedUntil(id, t - H) !== until) {
        this.at(until, () => {
          this.emit(id, false);
        });
      }
      return;
    }
    const row = this.trackers.get(id)!.row(t);
    for (let k = 1; k <= this.s.nodes; k++) {
      if (k === id || this.cut(id, k, t)) continue;
      this.at(t + this.prng.int(0, this.s.delayMaxMs + 1), () => {
        this.deliver(id, n(k), row);
      });
    }
  }

  private deliver(from: NodeId, to: NodeId, row: ReachabilityRow): void {
    const t = this.now;
    if (this.dead(to, t)) return;
    const until = this.pausedUntil(to, t);
    if (until !== null) {
      this.at(until, () => {
        this.deliver(from, to, row);
      });
      return;
    }
    this.trackers.get(to)!.observe(from, t);
    if (to === LEADER) this.fd.reachabilityRow(from, row, t);
  }

  private tick(scheduledMs: number): void {
    const t = this.now;
    const until = this.pausedUntil(LEADER, t);
    if (until !== null) {
      // The overdue timer fires when the stall ends, late by the stall, before queued input.
      this.at(until, () => {
        this.fire(until - scheduledMs);
      });
      this.at(scheduledMs + TICK_MS * Math.ceil((until - scheduledMs) / TICK_MS + 1), () => {
        this.tick(this.now);
      });
      return;
    }
    this.fire(t - scheduledMs);
    const next = scheduledMs + TICK_MS;
    this.at(next + this.prng.int(0, this.s.tickJitterMs + 1), () => {
      this.tick(next);
    });
  }

  private fire(lagMs: number): void {
    this.fd.localLag(lagMs);
    for (const d of this.fd.tick(this.now)) {
      this.decided.push({ atMs: this.now, decision: d });
      this.onDecision(this.now, d);
    }
  }
}

/**
 * Stalls of one node, in time order, each starting after the previous one ended: back-to-back
 * stalls would be one longer stall, outside the property's premise.
 */
function separateStalls(stalls: readonly Scenario['stalls'][number][], nodes: number): Scenario['stalls'] {
  const out: Scenario['stalls'][number][] = [];
  for (const st of [...stalls].sort((a, b) => a.atMs - b.atMs)) {
    if (st.node > nodes) continue;
    const prev = out.filter((x) => x.node === st.node).at(-1);
    if (prev === undefined || st.atMs > prev.atMs + prev.forMs) out.push(st);
  }
  return out;
}

const accusations = (ds: readonly Decided[]): Decided[] =>
  ds.filter((d) => d.decision.type === 'fail' || d.decision.type === 'quarantine');

const arbBase = fc.record({
  nodes: fc.integer({ min: 2, max: 5 }),
  seed: fc.integer(),
  delayMaxMs: fc.integer({ min: 0, max: H }),
  tickJitterMs: fc.integer({ min: 0, max: 5 }),
});

// ------------------------------------------------------------------------------------------------

test('the detector options derive from the timeout model and reproduce its eviction bounds', () => {
  const fd = new FailureDetector(detectorOptions(LEADER, TIMES), 0);
  fd.setMembers(
    [1, 2, 3, 4, 5].map((i) => ({ node: n(i), incarnation: incarnation(1) })),
    0,
  );
  assert.equal(fd.thresholdMs(0, 0), model.detector.evictAfterMaxMs, 'no corroboration: the longest window');
  assert.equal(fd.thresholdMs(3, 0), model.detector.evictAfterMinMs, 'K corroborations: the shortest window');
  assert.ok(
    fd.thresholdMs(1, 0) < model.detector.evictAfterMaxMs && fd.thresholdMs(1, 0) > model.detector.evictAfterMinMs,
  );
  assert.ok(model.detector.evictAfterMinMs > STALL_BOUND_MS + 2 * H, 'the stall bound leaves two heartbeats of margin');
  assert.ok(model.detector.evictAfterMaxMs + TICK_MS <= DETECTION_BOUND_MS, 'the slowest path fits the 3 s bound');
});

test('a node that stalls for less than the stall bound is never failed or quarantined, whatever the heartbeat phase', () => {
  const arbStall = fc.record({
    node: fc.integer({ min: 2, max: 5 }),
    atMs: fc.integer({ min: 0, max: 12_000 }),
    forMs: fc.integer({ min: 1, max: STALL_BOUND_MS - 1 }),
  });
  fc.assert(
    fc.property(arbBase, fc.array(arbStall, { minLength: 1, maxLength: 6 }), (base, stalls) => {
      const s: Scenario = { ...base, endMs: 16_000, stalls: separateStalls(stalls, base.nodes), deaths: [], cuts: [] };
      const bad = accusations(new DetectorSim(s).run());
      assert.deepEqual(bad, [], `stalls ${JSON.stringify(s.stalls)}`);
    }),
    { numRuns: 120 },
  );
});

test('canary: a naive detector (evict after three missed heartbeats) does fail nodes in the same stall schedules', () => {
  const naive = detectorOptions(LEADER, { ...TIMES, suspectAfterMs: 3 * H, suspicionMinMs: 1, suspicionMaxMs: 1 });
  let accused = 0;
  fc.assert(
    fc.property(
      arbBase,
      fc.integer({ min: 0, max: 5000 }),
      fc.integer({ min: 500, max: STALL_BOUND_MS - 1 }),
      (base, atMs, forMs) => {
        const s: Scenario = { ...base, endMs: 8000, stalls: [{ node: 2, atMs, forMs }], deaths: [], cuts: [] };
        accused += accusations(new DetectorSim(s, undefined, naive).run()).length;
      },
    ),
    { numRuns: 30 },
  );
  assert.ok(
    accused >= 30,
    `the schedules must be able to catch a detector that evicts stalled nodes (${accused} accusations)`,
  );
});

test('a node silent for good is failed within 3 s, with or without corroborating rows', (t) => {
  const detections: number[] = [];
  fc.assert(
    fc.property(arbBase, fc.integer({ min: 500, max: 6000 }), fc.integer({ min: 2, max: 5 }), (base, atMs, victim) => {
      const dies = Math.min(victim, base.nodes);
      const s: Scenario = {
        ...base,
        endMs: atMs + DETECTION_BOUND_MS + 500,
        stalls: [],
        deaths: [{ node: dies, atMs }],
        cuts: [],
      };
      const bad = accusations(new DetectorSim(s).run());
      assert.equal(bad.length, 1, `exactly one accusation, got ${JSON.stringify(bad)}`);
      const d = bad[0]!;
      assert.ok(d.decision.type === 'fail' && d.decision.node === dies && d.decision.reason.kind === 'detector');
      assert.ok(d.atMs - atMs <= DETECTION_BOUND_MS, `detected after ${d.atMs - atMs} ms`);
      if (base.nodes >= 3) assert.ok(d.decision.reason.corroborators.length > 0, 'other nodes corroborate');
      detections.push(d.atMs - atMs);
    }),
    { numRuns: 150 },
  );
  detections.sort((a, b) => a - b);
  t.diagnostic(
    `simulated detection after death: min ${detections[0]} ms, p50 ${detections[Math.floor(detections.length / 2)]} ms, max ${detections.at(-1)} ms over ${detections.length} runs`,
  );
});

test("the leader's own stalls suppress accusations of live nodes", () => {
  const arbLeaderStall = fc.record({
    node: fc.constant(1),
    atMs: fc.integer({ min: 200, max: 10_000 }),
    forMs: fc.integer({ min: 50, max: 8000 }),
  });
  fc.assert(
    fc.property(arbBase, fc.array(arbLeaderStall, { minLength: 1, maxLength: 3 }), (base, stalls) => {
      const s: Scenario = { ...base, endMs: 20_000, stalls: separateStalls(stalls, base.nodes), deaths: [], cuts: [] };
      assert.deepEqual(accusations(new DetectorSim(s).run()), [], `leader stalls ${JSON.stringify(stalls)}`);
    }),
    { numRuns: 100 },
  );
});

test('a leader that lags for good still fails a dead node, later, by the lag extension', () => {
  const fd = new FailureDetector(detectorOptions(LEADER, TIMES), 0);
  fd.setMembers(
    [1, 2].map((i) => ({ node: n(i), incarnation: incarnation(1) })),
    0,
  );
  fd.observe(n(2), 0);
  let failedAt: number | null = null;
  for (let t = TICK_MS; t <= 10_000 && failedAt === null; t += TICK_MS + 150) {
    fd.localLag(150);
    if (fd.tick(t).some((d) => d.type === 'fail')) failedAt = t;
  }
  assert.ok(failedAt !== null, 'the suppression of accusations is bounded');
  const bound = model.detector.evictAfterMaxMs + model.detector.localHealthExtensionMaxMs + 2 * (TICK_MS + 150);
  assert.ok(failedAt > model.detector.evictAfterMaxMs && failedAt <= bound, `failed at ${failedAt} ms, bound ${bound}`);
});

test('partial connectivity ends in at most one quarantine, never a fail/rejoin cycle', () => {
  fc.assert(
    fc.property(arbBase, fc.integer({ min: 0, max: 5000 }), fc.boolean(), (base, cutAt, bothWays) => {
      const nodes = Math.max(3, base.nodes);
      const B = n(2);
      const cuts = [{ from: 2, to: 1, atMs: cutAt }, ...(bothWays ? [{ from: 1, to: 2, atMs: cutAt }] : [])];
      const s: Scenario = { ...base, nodes, endMs: cutAt + 30_000, stalls: [], deaths: [], cuts };
      const sm = new MembershipStateMachine();
      const apply = (c: MembershipCommand): void => {
        sm.apply(logIndex(sm.appliedIndex + 1), term(1), c);
      };
      apply({
        type: 'configure',
        nodes: Array.from({ length: nodes }, (_, i) => ({
          nodeId: n(i + 1),
          name: `n${i + 1}`,
          address: `h${i + 1}:1`,
          votes: 1,
          role: 'voter',
        })),
        options: DEFAULT_VOTEQUORUM_OPTIONS,
        resetExpectedTracking: false,
      });
      for (let i = 1; i <= nodes; i++) apply({ type: 'join', node: n(i), incarnation: incarnation(1) });
      const firstSeq = sm.nextEventSeq;
      const sim = new DetectorSim(s, sm.view().members);
      const sync = (): void => {
        sim.fd.setMembers(sm.view().members, sim.now);
      };
      sim.onDecision = (_at, d) => {
        if (d.type === 'fail') apply({ type: 'fail', node: d.node, incarnation: d.incarnation, reason: d.reason });
        if (d.type === 'quarantine')
          apply({ type: 'quarantine', node: d.node, incarnation: d.incarnation, reason: d.reason });
        sync();
      };
      // B keeps trying to get back in the naive way: restart with a new incarnation, rejoin, and
      // have its old incarnation fenced, every 500 ms while it is not a member.
      const retry = (): void => {
        const b = sm.nodes().find((x) => x.nodeId === B)!;
        if (b.status === 'needs-fencing')
          apply({ type: 'fenced', node: B, incarnation: incarnation(b.incarnation), proof: { by: 'confirm' } });
        else if (b.status !== 'member') apply({ type: 'join', node: B, incarnation: incarnation(b.seen + 1) });
        sync();
        sim.at(sim.now + 500, retry);
      };
      sim.at(500, retry);
      const decided = sim.run();
      assert.deepEqual(
        decided.filter((d) => d.decision.type === 'fail'),
        [],
        'a node others can hear is never failed',
      );
      const quarantines = decided.filter((d) => d.decision.type === 'quarantine');
      assert.ok(quarantines.length <= 1, `${quarantines.length} quarantines`);
      assert.equal(
        sm.nodes().find((x) => x.nodeId === B)?.status,
        'quarantined',
        'the gray node ends quarantined, not cycling',
      );
      const bViews = sm.eventsFrom(firstSeq, 1000);
      assert.ok(bViews.ok);
      const changes = bViews.value.events.filter((e) => e.kind === 'view' && e.payload.change.node === B);
      assert.equal(changes.length, 1, `one view change for B (the quarantine), got ${changes.length}`);
    }),
    { numRuns: 40 },
  );
});

test('a new leader times a member from the rows, so a dead old leader is failed about one timeout after it died', () => {
  const members = [1, 2, 3].map((i) => ({ node: n(i), incarnation: incarnation(1) }));
  // Node 3 (the old leader) died at 8800; node 1 is elected and starts its detector at 10000.
  const fd = new FailureDetector(detectorOptions(LEADER, TIMES), 10_000);
  fd.setMembers(members, 10_000);
  fd.reachabilityRow(
    LEADER,
    [
      { node: n(2), silentMs: 20 },
      { node: n(3), silentMs: 1200 },
    ],
    10_000,
  );
  let failedAt: number | null = null;
  for (let t = 10_000; t <= 14_000 && failedAt === null; t += TICK_MS) {
    fd.reachabilityRow(
      n(2),
      [
        { node: n(1), silentMs: 10 },
        { node: n(3), silentMs: t - 8800 },
      ],
      t,
    );
    if (fd.tick(t).some((d) => d.type === 'fail' && d.node === n(3))) failedAt = t;
  }
  assert.ok(failedAt !== null);
  assert.ok(
    failedAt - 8800 <= model.detector.evictAfterMaxMs + TICK_MS,
    `failed ${failedAt - 8800} ms after death, not timed from the election`,
  );
  assert.ok(failedAt >= 10_000 + H, 'not before the seed grace let every row arrive');
});

test('a new leader does not fail a live member during the seed grace, before its rows arrive', () => {
  const fd = new FailureDetector(detectorOptions(LEADER, TIMES), 5000);
  fd.setMembers(
    [1, 2, 3].map((i) => ({ node: n(i), incarnation: incarnation(1) })),
    5000,
  );
  // Node 2 reports node 3 silent for long (its own link to 3 is bad); node 3's own messages come next.
  fd.reachabilityRow(n(2), [{ node: n(3), silentMs: 4000 }], 5000);
  const early = fd.tick(5000 + TICK_MS);
  assert.ok(!early.some((d) => d.type === 'fail'), 'within the grace nobody is failed on rows alone');
  fd.observe(n(3), 5000 + H);
  assert.ok(!fd.tick(5000 + 2 * H).some((d) => d.type === 'fail'));
});

test('proof that a process is gone fails that incarnation at once, even in the seed grace; never another incarnation', () => {
  const fd = new FailureDetector(detectorOptions(LEADER, TIMES), 1000);
  fd.setMembers(
    [1, 2, 3].map((i) => ({ node: n(i), incarnation: incarnation(i === 3 ? 4 : 1) })),
    1000,
  );
  fd.observe(n(2), 1000);
  fd.observe(n(3), 1000);
  // A proof about an older process of node 3 (incarnation 3) never touches incarnation 4.
  assert.equal(fd.processGone(n(3), 3, 1010), null);
  // Within the seed grace, 10 ms after last hearing it: failed at once, reason process-gone.
  assert.deepEqual(fd.processGone(n(2), 1, 1010), {
    type: 'fail',
    node: n(2),
    incarnation: incarnation(1),
    reason: { kind: 'process-gone', silentMs: 10 },
  });
  assert.equal(fd.processGone(n(2), 1, 1020), null, 'one decision per (member, incarnation)');
  assert.equal(fd.processGone(n(9), 1, 1020), null, 'a non-member is ignored');
  // The timeout rules go on for the others: node 3 (heard) is not accused by the next tick.
  assert.ok(!fd.tick(1000 + TICK_MS).some((d) => d.type === 'fail'));
});

test('suspect and clear bracket a short silence; repeated failures of a rejoining node become one quarantine', () => {
  const opts = detectorOptions(LEADER, TIMES);
  const fd = new FailureDetector(opts, 0);
  let inc = 1;
  fd.setMembers(
    [
      { node: LEADER, incarnation: incarnation(1) },
      { node: n(2), incarnation: incarnation(inc) },
    ],
    0,
  );
  fd.observe(n(2), 0);
  const suspect = fd.tick(opts.suspectAfterMs);
  assert.deepEqual(
    suspect.map((d) => d.type),
    ['suspect'],
  );
  fd.observe(n(2), opts.suspectAfterMs + 10);
  assert.deepEqual(
    fd.tick(opts.suspectAfterMs + 20).map((d) => d.type),
    ['clear'],
  );
  const kinds: string[] = [];
  let t = opts.suspectAfterMs + 20;
  for (let round = 0; round < 3; round++) {
    for (let k = 0; k < 60; k++) {
      t += TICK_MS;
      for (const d of fd.tick(t)) if (d.type === 'fail' || d.type === 'quarantine') kinds.push(d.type);
    }
    inc++;
    fd.setMembers(
      [
        { node: LEADER, incarnation: incarnation(1) },
        { node: n(2), incarnation: incarnation(inc) },
      ],
      t,
    );
  }
  assert.deepEqual(
    kinds,
    ['fail', 'fail', 'quarantine'],
    `${opts.flapFailuresMax} failures within the window, then a quarantine`,
  );
});

test('rows bounded and malformed, non-members and time running backwards are handled', () => {
  const fd = new FailureDetector(detectorOptions(LEADER, TIMES), 0);
  fd.setMembers(
    [1, 2].map((i) => ({ node: n(i), incarnation: incarnation(1) })),
    0,
  );
  fd.reachabilityRow(n(9), [{ node: n(2), silentMs: 5 }], 10); // not a member: ignored
  fd.reachabilityRow(
    n(2),
    [
      { node: n(2), silentMs: -5 },
      { node: n(1), silentMs: Number.NaN },
    ],
    20,
  );
  assert.equal(fd.status(20)[0]?.silentMs, 0, 'a row from node 2 counts as hearing it');
  assert.throws(() => {
    fd.tick(5);
  }, /backwards/);
});
