// Proves the weighted quorum arithmetic right: worked examples by hand, a differential test of
// voteOutcome, committedIndex and hasQuorum against naive brute-force versions over thousands of
// random weighted, joint and tie-broken configurations, and the safety property that two
// disjoint sets of nodes are never both quorums, tie-breaker and joint configurations included.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { nodeId, type NodeId } from '../lib/ids.js';
import {
  committedIndex,
  explainQuorum,
  hasQuorum,
  majorityConfig,
  quorumVotes,
  validateQuorumConfig,
  voteOutcome,
  type JointQuorumConfig,
  type QuorumConfig,
  type VoteOutcome,
} from './weighted-quorum.js';

const n = (i: number): NodeId => nodeId(i);
const ids = (...xs: number[]): Set<NodeId> => new Set(xs.map(n));

function side(votes: Record<number, number>, expectedVotes?: number, tieBreaker?: number): QuorumConfig {
  const voters = new Map<NodeId, number>(Object.entries(votes).map(([k, v]) => [n(Number(k)), v]));
  const total = [...voters.values()].reduce((a, b) => a + b, 0);
  const base = { voters, expectedVotes: expectedVotes ?? total };
  return tieBreaker === undefined ? base : { ...base, tieBreaker: n(tieBreaker) };
}

// ---------------------------------------------------------------------------------------------
// Naive reference: written from the rule as stated in words, not from the unit arithmetic.

/** A set is a quorum when it holds floor(E/2)+1 votes, or exactly E/2 votes and the tie-breaker. */
function naiveSideQuorum(c: QuorumConfig, set: ReadonlySet<NodeId>): boolean {
  let votes = 0;
  for (const [id, v] of c.voters) if (set.has(id)) votes += v;
  if (votes >= Math.floor(c.expectedVotes / 2) + 1) return true;
  return c.tieBreaker !== undefined && set.has(c.tieBreaker) && votes * 2 === c.expectedVotes;
}

function naiveQuorum(c: JointQuorumConfig, set: ReadonlySet<NodeId>): boolean {
  return naiveSideQuorum(c.incoming, set) && (c.outgoing === undefined || naiveSideQuorum(c.outgoing, set));
}

function allVoters(c: JointQuorumConfig): NodeId[] {
  const s = new Set<NodeId>(c.incoming.voters.keys());
  if (c.outgoing) for (const id of c.outgoing.voters.keys()) s.add(id);
  return [...s].sort((a, b) => a - b);
}

/** Enumerates every way the unanswered voters could still answer. */
function naiveVoteOutcome(c: JointQuorumConfig, votes: ReadonlyMap<NodeId, boolean>): VoteOutcome {
  const voters = allVoters(c);
  const granted = voters.filter((id) => votes.get(id) === true);
  const unknown = voters.filter((id) => !votes.has(id));
  let wins = 0;
  const combos = 1 << unknown.length;
  for (let mask = 0; mask < combos; mask++) {
    const set = new Set(granted);
    unknown.forEach((id, i) => {
      if (mask & (1 << i)) set.add(id);
    });
    if (naiveQuorum(c, set)) wins++;
  }
  if (wins === combos) return 'won';
  if (wins === 0) return 'lost';
  return 'pending';
}

/** Tries every index from the highest match down. */
function naiveCommittedIndex(c: JointQuorumConfig, match: ReadonlyMap<NodeId, number>): number {
  const max = Math.max(0, ...match.values());
  for (let i = max; i >= 1; i--) {
    const set = new Set(allVoters(c).filter((id) => (match.get(id) ?? 0) >= i));
    if (naiveQuorum(c, set)) return i;
  }
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Generators: ids 1..12, 1-9 voters per side with 1-5 votes, E = total + 0..5, any tie-breaker.

const ID_MAX = 12;

const arbSide: fc.Arbitrary<QuorumConfig> = fc
  .uniqueArray(fc.integer({ min: 1, max: ID_MAX }), { minLength: 1, maxLength: 9 })
  .chain((voterIds) =>
    fc
      .record({
        weights: fc.array(fc.integer({ min: 1, max: 5 }), { minLength: voterIds.length, maxLength: voterIds.length }),
        slack: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 5 })),
        tb: fc.option(fc.constantFrom(...voterIds), { nil: undefined }),
      })
      .map(({ weights, slack, tb }) => {
        const voters = new Map<NodeId, number>(voterIds.map((id, i) => [n(id), weights[i]!]));
        const total = weights.reduce((a, b) => a + b, 0);
        const base = { voters, expectedVotes: total + slack };
        return tb === undefined ? base : { ...base, tieBreaker: n(tb) };
      }),
  );

const arbJoint: fc.Arbitrary<JointQuorumConfig> = fc
  .record({ incoming: arbSide, outgoing: fc.option(arbSide, { nil: undefined }) })
  .map(({ incoming, outgoing }) => (outgoing === undefined ? { incoming } : { incoming, outgoing }));

const arbVotes = fc
  .array(fc.constantFrom<'yes' | 'no' | 'none'>('yes', 'no', 'none'), { minLength: ID_MAX, maxLength: ID_MAX })
  .map((answers) => {
    const m = new Map<NodeId, boolean>();
    answers.forEach((a, i) => {
      if (a !== 'none') m.set(n(i + 1), a === 'yes');
    });
    return m;
  });

const arbMatch = fc
  .array(fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined }), { minLength: ID_MAX, maxLength: ID_MAX })
  .map((xs) => {
    const m = new Map<NodeId, number>();
    xs.forEach((x, i) => {
      if (x !== undefined) m.set(n(i + 1), x);
    });
    return m;
  });

const arbSubset = fc.array(fc.boolean(), { minLength: ID_MAX, maxLength: ID_MAX }).map((bits) => {
  const s = new Set<NodeId>();
  bits.forEach((b, i) => {
    if (b) s.add(n(i + 1));
  });
  return s;
});

const RUNS = 3000;

// ---------------------------------------------------------------------------------------------
// Worked examples.

test('three equal voters: two of three is a quorum, one is not', () => {
  const c = majorityConfig([n(1), n(2), n(3)]);
  assert.equal(quorumVotes(c.incoming), 2);
  assert.equal(hasQuorum(c, ids(1, 2)), true);
  assert.equal(hasQuorum(c, ids(3)), false);
  assert.equal(voteOutcome(c, new Map([[n(1), true]])), 'pending');
  assert.equal(
    voteOutcome(
      c,
      new Map([
        [n(1), true],
        [n(2), true],
      ]),
    ),
    'won',
  );
  assert.equal(
    voteOutcome(
      c,
      new Map([
        [n(1), false],
        [n(2), false],
      ]),
    ),
    'lost',
  );
  assert.equal(
    committedIndex(
      c,
      new Map([
        [n(1), 9],
        [n(2), 5],
        [n(3), 2],
      ]),
    ),
    5,
  );
});

test('a 2-2 split: only the half holding the tie-breaker is quorate', () => {
  const c = { incoming: side({ 1: 1, 2: 1, 3: 1, 4: 1 }, 4, 1) };
  assert.equal(hasQuorum(c, ids(1, 2)), true);
  assert.equal(hasQuorum(c, ids(3, 4)), false);
  const without = { incoming: side({ 1: 1, 2: 1, 3: 1, 4: 1 }, 4) };
  assert.equal(hasQuorum(without, ids(1, 2)), false);
  assert.equal(hasQuorum(without, ids(3, 4)), false);
  // The tie-breaker's half vote also decides elections and commits.
  assert.equal(
    voteOutcome(
      c,
      new Map([
        [n(1), true],
        [n(2), true],
        [n(3), false],
        [n(4), false],
      ]),
    ),
    'won',
  );
  assert.equal(
    voteOutcome(
      c,
      new Map([
        [n(3), true],
        [n(4), true],
        [n(1), false],
        [n(2), false],
      ]),
    ),
    'lost',
  );
  assert.equal(
    committedIndex(
      c,
      new Map([
        [n(1), 7],
        [n(2), 7],
        [n(3), 9],
        [n(4), 9],
      ]),
    ),
    7,
  );
});

test('with an odd expected total the tie-breaker changes nothing', () => {
  const c = { incoming: side({ 1: 1, 2: 1, 3: 1 }, 3, 1) };
  assert.equal(hasQuorum(c, ids(1)), false);
  assert.equal(hasQuorum(c, ids(2, 3)), true);
});

test('weighted votes: a 3-vote node plus either 1-vote node is a quorum, the two 1-vote nodes are not', () => {
  const c = { incoming: side({ 1: 3, 2: 1, 3: 1 }) };
  assert.equal(quorumVotes(c.incoming), 3);
  assert.equal(hasQuorum(c, ids(1)), true);
  assert.equal(hasQuorum(c, ids(2, 3)), false);
  assert.equal(
    committedIndex(
      c,
      new Map([
        [n(1), 4],
        [n(2), 8],
        [n(3), 8],
      ]),
    ),
    4,
  );
});

test('expected votes above the voters total: may need everyone, or never win', () => {
  const c = { incoming: side({ 1: 1, 2: 1, 3: 1 }, 5) };
  assert.equal(hasQuorum(c, ids(1, 2)), false);
  assert.equal(hasQuorum(c, ids(1, 2, 3)), true);
  assert.equal(
    committedIndex(
      c,
      new Map([
        [n(1), 3],
        [n(2), 3],
        [n(3), 1],
      ]),
    ),
    1,
  );
  const never = { incoming: side({ 1: 1, 2: 1 }, 5) };
  assert.equal(hasQuorum(never, ids(1, 2)), false);
  assert.equal(voteOutcome(never, new Map()), 'lost');
  assert.equal(
    committedIndex(
      never,
      new Map([
        [n(1), 3],
        [n(2), 3],
      ]),
    ),
    0,
  );
});

test('a side with no voters never wins and commits nothing', () => {
  const c = { incoming: side({}, 0) };
  assert.equal(hasQuorum(c, ids(1)), false);
  assert.equal(voteOutcome(c, new Map([[n(1), true]])), 'lost');
  assert.equal(committedIndex(c, new Map([[n(1), 5]])), 0);
});

test('joint configurations need both sides; either side losing loses', () => {
  const c: JointQuorumConfig = { incoming: side({ 1: 1, 2: 1, 3: 1 }), outgoing: side({ 3: 1, 4: 1, 5: 1 }) };
  assert.equal(hasQuorum(c, ids(1, 2, 3)), false);
  assert.equal(hasQuorum(c, ids(1, 3, 4)), true);
  assert.equal(
    voteOutcome(
      c,
      new Map([
        [n(1), true],
        [n(2), true],
        [n(4), false],
        [n(5), false],
      ]),
    ),
    'lost',
  );
  assert.equal(
    voteOutcome(
      c,
      new Map([
        [n(1), true],
        [n(2), true],
      ]),
    ),
    'pending',
  );
  assert.equal(
    committedIndex(
      c,
      new Map([
        [n(1), 9],
        [n(2), 9],
        [n(3), 4],
        [n(4), 6],
        [n(5), 1],
      ]),
    ),
    4,
  );
});

test('non-voters in the answers and match maps are ignored', () => {
  const c = majorityConfig([n(1), n(2), n(3)]);
  assert.equal(
    voteOutcome(
      c,
      new Map([
        [n(1), true],
        [n(9), true],
        [n(10), true],
      ]),
    ),
    'pending',
  );
  assert.equal(
    committedIndex(
      c,
      new Map([
        [n(1), 5],
        [n(9), 50],
        [n(10), 50],
      ]),
    ),
    0,
  );
  assert.equal(hasQuorum(c, ids(1, 9, 10)), false);
});

test('validation refuses unsafe or malformed configurations with a clear code', () => {
  const codeOf = (c: QuorumConfig): string => {
    const r = validateQuorumConfig(c);
    return r.ok ? 'ok' : r.error.code;
  };
  assert.equal(codeOf(side({ 1: 1, 2: 1 })), 'ok');
  assert.equal(codeOf(side({ 1: 1, 2: 1 }, 1)), 'QUORUM_EXPECTED_BELOW_TOTAL');
  assert.equal(codeOf(side({ 1: 0, 2: 1 })), 'QUORUM_BAD_VOTES');
  assert.equal(codeOf(side({ 1: 1.5 })), 'QUORUM_BAD_VOTES');
  assert.equal(codeOf(side({ 1: 1 }, -1)), 'QUORUM_BAD_EXPECTED_VOTES');
  assert.equal(codeOf(side({ 1: 1, 2: 1 }, 2, 3)), 'QUORUM_TIE_BREAKER_NOT_VOTER');
  const big = new Map<NodeId, number>();
  for (let i = 1; i <= 65; i++) big.set(n(i), 1);
  assert.equal(codeOf({ voters: big, expectedVotes: 65 }), 'QUORUM_TOO_MANY_VOTERS');
  const r = validateQuorumConfig(side({ 1: 1, 2: 1 }, 1));
  assert.ok(!r.ok && /at least 2/.test(r.error.message), 'the message says what to set');
});

test('the arithmetic asserts on a configuration validation would refuse', () => {
  const unsafe = { incoming: side({ 1: 1, 2: 1, 3: 1 }, 2) };
  assert.throws(() => hasQuorum(unsafe, ids(1)), /below the voters' total/);
  assert.throws(() => committedIndex(unsafe, new Map()), /below the voters' total/);
  assert.throws(() => voteOutcome({ incoming: side({ 1: 0 }) }, new Map()), /votes must be an integer/);
});

test('explanations name the votes, the quorum and a decisive tie-breaker', () => {
  const c = { incoming: side({ 1: 1, 2: 1, 3: 1, 4: 1 }, 4, 1) };
  const e = explainQuorum(c, ids(1, 2));
  assert.equal(e.quorate, true);
  assert.deepEqual(e.incoming.tieBreaker, { nodeId: n(1), present: true, decisive: true });
  assert.equal(e.incoming.presentVotes, 2);
  assert.equal(e.incoming.quorumVotes, 3);
  assert.deepEqual(e.incoming.missing, [n(3), n(4)]);
  const f = explainQuorum(c, ids(1, 2, 3));
  assert.equal(f.incoming.tieBreaker?.decisive, false);
  assert.equal(explainQuorum(c, ids(3, 4)).quorate, false);
});

// ---------------------------------------------------------------------------------------------
// Differential and safety properties.

test('voteOutcome agrees with brute-force enumeration of the unanswered voters', () => {
  fc.assert(
    fc.property(arbJoint, arbVotes, (c, votes) => voteOutcome(c, votes) === naiveVoteOutcome(c, votes)),
    { numRuns: RUNS },
  );
});

test('committedIndex agrees with trying every index', () => {
  fc.assert(
    fc.property(arbJoint, arbMatch, (c, match) => committedIndex(c, match) === naiveCommittedIndex(c, match)),
    { numRuns: RUNS },
  );
});

test('hasQuorum agrees with the rule stated in votes', () => {
  fc.assert(
    fc.property(arbJoint, arbSubset, (c, set) => hasQuorum(c, set) === naiveQuorum(c, set)),
    { numRuns: RUNS },
  );
});

test('explainQuorum agrees with hasQuorum', () => {
  fc.assert(
    fc.property(arbJoint, arbSubset, (c, set) => explainQuorum(c, set).quorate === hasQuorum(c, set)),
    { numRuns: RUNS },
  );
});

test('safety: a set and its complement are never both quorums (so no two disjoint sets are)', () => {
  fc.assert(
    fc.property(arbJoint, arbSubset, (c, set) => {
      const rest = new Set<NodeId>();
      for (let i = 1; i <= ID_MAX; i++) if (!set.has(n(i))) rest.add(n(i));
      return !(hasQuorum(c, set) && hasQuorum(c, rest));
    }),
    { numRuns: RUNS },
  );
});

test('safety, exhaustively: every split of small weighted, tie-broken, joint configurations', () => {
  // All 2^k splits of the voters for a few hundred random configurations: no split is quorate
  // on both sides. Reaching exact half splits here is what exercises the tie-breaker.
  fc.assert(
    fc.property(arbJoint, (c) => {
      const voters = allVoters(c);
      for (let mask = 0; mask < 1 << voters.length; mask++) {
        const a = new Set<NodeId>();
        const b = new Set<NodeId>();
        voters.forEach((id, i) => (mask & (1 << i) ? a : b).add(id));
        if (hasQuorum(c, a) && hasQuorum(c, b)) return false;
      }
      return true;
    }),
    { numRuns: 300 },
  );
});

test('monotonic: adding a node to a quorum keeps it a quorum', () => {
  fc.assert(
    fc.property(arbJoint, arbSubset, fc.integer({ min: 1, max: ID_MAX }), (c, set, extra) => {
      if (!hasQuorum(c, set)) return true;
      return hasQuorum(c, new Set([...set, n(extra)]));
    }),
    { numRuns: RUNS },
  );
});

test('the differential test can fail: a planted off-by-one in the reference is caught', () => {
  // Guards against a vacuous property: the naive rule with `>=` E/2 (no tie-breaker needed)
  // must disagree with the real arithmetic on some generated case.
  const broken = (c: JointQuorumConfig, set: ReadonlySet<NodeId>): boolean => {
    const s = (q: QuorumConfig): boolean => {
      let v = 0;
      for (const [id, w] of q.voters) if (set.has(id)) v += w;
      return 2 * v >= q.expectedVotes;
    };
    return s(c.incoming) && (c.outgoing === undefined || s(c.outgoing));
  };
  assert.throws(() => {
    fc.assert(
      fc.property(arbJoint, arbSubset, (c, set) => hasQuorum(c, set) === broken(c, set)),
      { numRuns: RUNS },
    );
  });
});
