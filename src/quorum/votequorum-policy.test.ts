// Proves the votequorum policy helpers keep the arithmetic's safety: last-man-standing only ever
// proposes a valid configuration the present nodes can commit, one voter at a time, never below
// 2 and never letting witnesses alone win; expected votes never drop below the voters' total;
// tie-breakers resolve from the configuration alone; wait_for_all blocks quorum until released;
// and arbitration is quorate exactly when the arithmetic (or a confirmed two_node fence) says so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { nodeId, type NodeId } from '../lib/ids.js';
import {
  arbitrate,
  buildVotequorum,
  computeExpectedVotes,
  decideLastManStanding,
  hasQuorum,
  initialWaitForAll,
  resolveTieBreaker,
  stepWaitForAll,
  validateQuorumConfig,
  DEFAULT_VOTEQUORUM_OPTIONS,
  type QuorumConfig,
  type TieBreakerMode,
  type WaitForAllState,
} from './index.js';

const n = (i: number): NodeId => nodeId(i);

const arbMode: fc.Arbitrary<TieBreakerMode> = fc.oneof(
  fc.constant<TieBreakerMode>({ kind: 'off' }),
  fc.constant<TieBreakerMode>({ kind: 'lowest' }),
  fc.constant<TieBreakerMode>({ kind: 'highest' }),
  fc
    .uniqueArray(fc.integer({ min: 1, max: 10 }), { minLength: 1, maxLength: 4 })
    .map((xs): TieBreakerMode => ({ kind: 'list', nodes: xs.map(n) })),
);

/** A random LMS situation: 1-9 voters of 1-5 votes, maybe slack, present set, witnesses. */
const arbLms = fc.uniqueArray(fc.integer({ min: 1, max: 10 }), { minLength: 1, maxLength: 9 }).chain((voterIds) =>
  fc.record({
    voterIds: fc.constant(voterIds),
    weights: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: voterIds.length, maxLength: voterIds.length }),
    slack: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 3 })),
    present: fc.subarray(voterIds),
    parked: fc.subarray([11, 12]),
    presentParked: fc.boolean(),
    witnesses: fc.subarray(voterIds, { maxLength: Math.min(2, voterIds.length) }),
    mode: arbMode,
    stableTicks: fc.integer({ min: 0, max: 30 }),
  }),
);

test('last-man-standing proposals are always valid, committable, one voter at a time, never below 2', () => {
  let proposals = 0;
  fc.assert(
    fc.property(arbLms, (s) => {
      const voters = new Map(s.voterIds.map((id, i) => [n(id), s.weights[i]!]));
      const total = s.weights.reduce((a, b) => a + b, 0);
      const base: QuorumConfig = { voters, expectedVotes: total + s.slack };
      const tb = resolveTieBreaker(s.mode, voters);
      const config = tb === undefined ? base : { ...base, tieBreaker: tb };
      const present = new Set(s.present.map(n));
      if (s.presentParked) for (const p of s.parked) present.add(n(p));
      const configuredVotes = new Map<NodeId, number>([...voters, ...s.parked.map((p): [NodeId, number] => [n(p), 2])]);
      const witnesses = new Set(s.witnesses.map(n));
      const d = decideLastManStanding({
        enabled: true,
        windowTicks: 10,
        stableTicks: s.stableTicks,
        config,
        jointInFlight: false,
        present,
        configuredVotes,
        tieBreaker: s.mode,
        witnesses,
      });
      if (d.kind === 'hold') {
        if (s.stableTicks < 10) return d.reason === 'window-pending' && d.ticksRemaining === 10 - s.stableTicks;
        if (!hasQuorum({ incoming: config }, present)) return d.reason === 'not-quorate';
        return true;
      }
      proposals++;
      const p = d.proposed;
      assert.ok(validateQuorumConfig(p).ok, 'proposal must validate');
      assert.ok(
        hasQuorum({ incoming: p, outgoing: config }, present),
        'present nodes must be able to commit the joint change',
      );
      assert.ok(s.stableTicks >= 10);
      assert.equal(p.expectedVotes, d.expectedVotesAfter);
      if (d.kind === 'lower') {
        assert.ok(d.expectedVotesAfter >= 2 && d.expectedVotesAfter < d.expectedVotesBefore);
        const removed = [...voters.keys()].filter((id) => !p.voters.has(id));
        if (d.node === undefined) assert.deepEqual(removed, []);
        else {
          assert.deepEqual(removed, [d.node]);
          assert.ok(!present.has(d.node), 'only an absent voter loses its vote');
        }
      } else {
        assert.ok(d.node !== undefined && present.has(d.node) && !voters.has(d.node));
        assert.equal(d.expectedVotesAfter, d.expectedVotesBefore + 2);
      }
      assert.ok(witnesses.size === 0 || !hasQuorum({ incoming: p }, witnesses), 'witnesses alone never win');
      return true;
    }),
    { numRuns: 3000 },
  );
  assert.ok(proposals > 100, `the generator must reach proposals, reached ${proposals}`);
});

test('repeated last-man-standing steps from any start keep every reached configuration safe', () => {
  // Walks a cluster down as nodes fail one by one; each committed step keeps E >= total votes,
  // and two disjoint halves of the final configuration are never both quorate.
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 9 }),
      fc.array(fc.integer({ min: 1, max: 9 }), { maxLength: 12 }),
      (size, failures) => {
        const ids = Array.from({ length: size }, (_, i) => n(i + 1));
        let config: QuorumConfig = { voters: new Map(ids.map((id) => [id, 1])), expectedVotes: size };
        const present = new Set(ids);
        for (const f of failures) {
          present.delete(n(Math.min(f, size)));
          const d = decideLastManStanding({
            enabled: true,
            windowTicks: 1,
            stableTicks: 1,
            config,
            jointInFlight: false,
            present,
            configuredVotes: new Map(ids.map((id) => [id, 1])),
            tieBreaker: { kind: 'lowest' },
            witnesses: new Set(),
          });
          if (d.kind !== 'hold') config = d.proposed;
          if (!validateQuorumConfig(config).ok) return false;
        }
        const voters = [...config.voters.keys()];
        for (let mask = 0; mask < 1 << voters.length; mask++) {
          const a = new Set(voters.filter((_, i) => mask & (1 << i)));
          const b = new Set(voters.filter((_, i) => !(mask & (1 << i))));
          if (hasQuorum({ incoming: config }, a) && hasQuorum({ incoming: config }, b)) return false;
        }
        return true;
      },
    ),
    { numRuns: 500 },
  );
});

test('last-man-standing holds while disabled or while a configuration change is in flight', () => {
  const config: QuorumConfig = {
    voters: new Map([
      [n(1), 1],
      [n(2), 1],
      [n(3), 1],
    ]),
    expectedVotes: 3,
  };
  const input = {
    enabled: true,
    windowTicks: 5,
    stableTicks: 50,
    config,
    jointInFlight: false,
    present: new Set([n(1), n(2)]),
    configuredVotes: config.voters,
    tieBreaker: { kind: 'off' } as const,
    witnesses: new Set<NodeId>(),
  };
  assert.equal(decideLastManStanding(input).kind, 'lower');
  assert.deepEqual(decideLastManStanding({ ...input, enabled: false }), {
    kind: 'hold',
    reason: 'disabled',
    expectedVotes: 3,
    ticksRemaining: 0,
  });
  assert.deepEqual(decideLastManStanding({ ...input, jointInFlight: true }), {
    kind: 'hold',
    reason: 'joint-in-flight',
    expectedVotes: 3,
    ticksRemaining: 0,
  });
  // Slack above the total is trimmed one vote at a time before any voter is removed.
  const slack = decideLastManStanding({
    ...input,
    config: { ...config, expectedVotes: 4 },
    present: new Set([n(1), n(2), n(3)]),
  });
  assert.ok(slack.kind === 'lower' && slack.node === undefined && slack.expectedVotesAfter === 3);
  // The fewest-votes absent voter goes first, then the highest id.
  const weighted: QuorumConfig = {
    voters: new Map([
      [n(1), 3],
      [n(2), 1],
      [n(3), 2],
      [n(4), 1],
      [n(5), 1],
    ]),
    expectedVotes: 8,
  };
  const pick = decideLastManStanding({
    ...input,
    config: weighted,
    configuredVotes: weighted.voters,
    present: new Set([n(1), n(3), n(5)]),
  });
  assert.ok(pick.kind === 'lower' && pick.node === n(4) && pick.expectedVotesAfter === 7);
});

test('expected votes never fall below the voters total; override and tracking only raise it', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 9 }),
      fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined }),
      fc.boolean(),
      fc.integer({ min: 0, max: 60 }),
      (weights, extra, tracking, highest) => {
        const voters = new Map(weights.map((w, i) => [n(i + 1), w]));
        const total = weights.reduce((a, b) => a + b, 0);
        const override = extra === undefined ? undefined : total + extra;
        const d = computeExpectedVotes({ voters, override, tracking, highestExpected: highest });
        const want = Math.max(total, override ?? 0, tracking ? highest : 0);
        return (
          d.expectedVotes === want &&
          d.totalVotes === total &&
          d.highestExpected >= d.expectedVotes &&
          (tracking || d.highestExpected === d.expectedVotes)
        );
      },
    ),
  );
  const d = computeExpectedVotes({
    voters: new Map([
      [n(1), 1],
      [n(2), 1],
    ]),
    override: undefined,
    tracking: true,
    highestExpected: 5,
  });
  assert.deepEqual(d, { expectedVotes: 5, totalVotes: 2, source: 'highest-tracked', highestExpected: 5 });
  assert.throws(
    () => computeExpectedVotes({ voters: new Map([[n(1), 3]]), override: 2, tracking: false, highestExpected: 0 }),
    /must be refused at validation/,
  );
});

test('tie-breaker resolution depends only on the configuration', () => {
  const voters = new Map([
    [n(4), 1],
    [n(2), 1],
    [n(7), 1],
  ]);
  assert.equal(resolveTieBreaker({ kind: 'off' }, voters), undefined);
  assert.equal(resolveTieBreaker({ kind: 'lowest' }, voters), n(2));
  assert.equal(resolveTieBreaker({ kind: 'highest' }, voters), n(7));
  assert.equal(resolveTieBreaker({ kind: 'list', nodes: [n(9), n(7), n(2)] }, voters), n(7));
  assert.equal(resolveTieBreaker({ kind: 'list', nodes: [n(9)] }, voters), undefined);
  assert.equal(resolveTieBreaker({ kind: 'lowest' }, new Map()), undefined);
});

test('wait_for_all: only a full membership, a quorate cluster or an operator releases it; release is sticky', () => {
  const config = {
    incoming: {
      voters: new Map([
        [n(1), 1],
        [n(2), 1],
        [n(3), 1],
      ]),
      expectedVotes: 3,
    },
  };
  let s: WaitForAllState = initialWaitForAll(true);
  s = stepWaitForAll(s, { type: 'membership', present: new Set([n(1), n(2), n(9)]), config });
  assert.equal(s.phase, 'waiting');
  s = stepWaitForAll(s, { type: 'membership', present: new Set([n(1), n(2), n(3)]), config });
  assert.deepEqual(s, { phase: 'released', how: 'all-seen' });
  s = stepWaitForAll(s, { type: 'membership', present: new Set([n(1)]), config });
  assert.deepEqual(s, { phase: 'released', how: 'all-seen' });
  assert.deepEqual(stepWaitForAll(initialWaitForAll(false), { type: 'cancel' }), { phase: 'off' });
  // Joint: both sides' voters must be seen.
  const joint = { incoming: config.incoming, outgoing: { voters: new Map([[n(4), 1]]), expectedVotes: 1 } };
  assert.equal(
    stepWaitForAll(initialWaitForAll(true), { type: 'membership', present: new Set([n(1), n(2), n(3)]), config: joint })
      .phase,
    'waiting',
  );
});

test('arbitration: quorate exactly when the arithmetic says so, unless waiting or a fenced two_node peer', () => {
  const arbConfig = fc.uniqueArray(fc.integer({ min: 1, max: 8 }), { minLength: 1, maxLength: 8 }).chain((ids) =>
    fc.record({
      ids: fc.constant(ids),
      present: fc.subarray(ids),
      mode: arbMode,
      phase: fc.constantFrom<WaitForAllState>(
        { phase: 'off' },
        { phase: 'waiting' },
        { phase: 'released', how: 'all-seen' },
      ),
    }),
  );
  fc.assert(
    fc.property(arbConfig, ({ ids, present, mode, phase }) => {
      const voters = new Map(ids.map((id) => [n(id), 1]));
      const tb = resolveTieBreaker(mode, voters);
      const side: QuorumConfig =
        tb === undefined
          ? { voters, expectedVotes: ids.length }
          : { voters, expectedVotes: ids.length, tieBreaker: tb };
      const set = new Set(present.map(n));
      const a = arbitrate({ config: { incoming: side }, present: set, waitForAll: phase });
      const want = phase.phase !== 'waiting' && hasQuorum({ incoming: side }, set);
      return (
        a.quorate === want &&
        (phase.phase !== 'waiting' || a.reason === 'wait-for-all') &&
        a.summary.startsWith(want ? 'quorate' : 'not quorate')
      );
    }),
    { numRuns: 2000 },
  );
});

test('buildVotequorum validates the whole setup and names what to fix', () => {
  const nodes = [
    { nodeId: n(1), votes: 1, role: 'data' as const },
    { nodeId: n(2), votes: 1, role: 'data' as const },
    { nodeId: n(3), votes: 0, role: 'data' as const },
  ];
  const ok = buildVotequorum(nodes, { ...DEFAULT_VOTEQUORUM_OPTIONS, autoTieBreaker: { kind: 'lowest' } });
  assert.ok(ok.ok);
  assert.deepEqual(
    [...ok.value.config.voters],
    [
      [n(1), 1],
      [n(2), 1],
    ],
    'votes 0 is a learner, not a voter',
  );
  assert.equal(ok.value.config.tieBreaker, n(1));
  const code = (r: ReturnType<typeof buildVotequorum>): string => (r.ok ? 'ok' : r.error.code);
  assert.equal(
    code(buildVotequorum([...nodes, { nodeId: n(1), votes: 1, role: 'data' }], DEFAULT_VOTEQUORUM_OPTIONS)),
    'QUORUM_BAD_OPTION',
  );
  assert.equal(
    code(buildVotequorum([{ nodeId: n(1), votes: 0, role: 'data' }], DEFAULT_VOTEQUORUM_OPTIONS)),
    'QUORUM_BAD_OPTION',
  );
  assert.equal(
    code(buildVotequorum(nodes, { ...DEFAULT_VOTEQUORUM_OPTIONS, lastManStandingWindowTicks: 0 })),
    'QUORUM_BAD_OPTION',
  );
  assert.equal(
    code(buildVotequorum(nodes, { ...DEFAULT_VOTEQUORUM_OPTIONS, expectedVotes: 1 })),
    'QUORUM_EXPECTED_BELOW_TOTAL',
  );
  assert.equal(
    code(
      buildVotequorum(nodes, { ...DEFAULT_VOTEQUORUM_OPTIONS, autoTieBreaker: { kind: 'list', nodes: [n(1), n(1)] } }),
    ),
    'QUORUM_BAD_TIE_BREAKER',
  );
  assert.equal(
    code(buildVotequorum([{ nodeId: n(1), votes: 1, role: 'witness' }], DEFAULT_VOTEQUORUM_OPTIONS)),
    'QUORUM_BAD_WITNESS',
  );
  assert.equal(
    code(buildVotequorum([{ nodeId: n(1), votes: 300, role: 'data' }], DEFAULT_VOTEQUORUM_OPTIONS)),
    'QUORUM_BAD_VOTES',
  );
});
