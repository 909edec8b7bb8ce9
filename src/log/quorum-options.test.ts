// Proves each votequorum option at the Raft level: the stored form of the quorum settings and
// witnesses (round trip, defaults left out, validator bounds), the rules a configuration change
// must pass (expected votes never below the total nor out of reach, tie-breaker lists, witness
// majority, no role change), wait_for_all counting and its explanation, and the translation of
// last_man_standing decisions into configuration changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId, type NodeId } from '../lib/ids.js';
import { DecodeError } from '../lib/errors.js';
import { decideLastManStanding, type LastManStandingDecision } from '../quorum/index.js';
import {
  applyConfChange,
  configFromConfState,
  confStateFromConfig,
  formatConfig,
  isJoint,
  jointQuorumConfig,
  type ClusterConfig,
} from './cluster-config.js';
import {
  electionOutcome,
  explainElection,
  isFreshLog,
  lastManStandingConfChange,
  lastManStandingInput,
  lastManStandingStep,
} from './quorum-options.js';
import { validateConfState, validateRaftMessage, type ConfChange, type ConfState } from './raft-message.js';

const id = nodeId;

function conf(voters: readonly number[], extra: Partial<ConfState> = {}, votes: readonly number[] = []): ClusterConfig {
  return configFromConfState({
    voters: voters.map((v, i) => [id(v), votes[i] ?? 1] as const),
    outgoing: [],
    learners: [],
    learnersNext: [],
    autoLeave: false,
    ...extra,
  });
}

function apply(c: ClusterConfig, change: ConfChange): ClusterConfig {
  const r = applyConfChange(c, change);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  return r.value;
}

function refusal(c: ClusterConfig, change: ConfChange): string {
  const r = applyConfChange(c, change);
  assert.ok(!r.ok, `expected ${JSON.stringify(change)} to be refused`);
  assert.equal(r.error.code, 'CONF_CHANGE_INVALID');
  return r.error.message;
}

const votesOf = (entries: readonly (readonly [number, boolean])[]): Map<NodeId, boolean> =>
  new Map(entries.map(([n, v]) => [id(n), v] as const));

// ---------------------------------------------------------------------------------------------
// Stored form

test('a configuration without options keeps its old stored form; settings and witnesses round-trip', () => {
  const plain = conf([1, 2, 3]);
  assert.deepEqual(Object.keys(confStateFromConfig(plain)).sort(), [
    'autoLeave',
    'learners',
    'learnersNext',
    'outgoing',
    'voters',
  ]);
  const rich: ConfState = {
    voters: [
      [id(1), 1],
      [id(2), 2],
      [id(3), 1],
    ],
    outgoing: [],
    learners: [id(4)],
    learnersNext: [],
    autoLeave: false,
    quorum: { expectedVotes: 5, tieBreaker: { kind: 'list', nodes: [id(3), id(1)] } },
    witnesses: [id(3)],
  };
  const back = confStateFromConfig(configFromConfState(rich));
  assert.deepEqual(back, rich);
  assert.deepEqual(validateConfState(structuredClone(back)), rich);
  assert.equal(
    formatConfig(configFromConfState(rich)),
    'voters=(1,2x2,3) learners=(4) expected=5 tie-breaker=list(3,1) witnesses=(3)',
  );
  const q = jointQuorumConfig(configFromConfState(rich)).incoming;
  assert.equal(q.expectedVotes, 5);
  assert.equal(q.tieBreaker, 3, 'the list resolves to its first voter');
});

test('the validator refuses malformed settings, tie-breakers and witness copies that carry data', () => {
  const base = { voters: [[1, 1]], outgoing: [], learners: [], learnersNext: [], autoLeave: false };
  const bad = (value: unknown): string => {
    try {
      validateConfState(value);
    } catch (e) {
      assert.ok(e instanceof DecodeError);
      return e.code;
    }
    return 'accepted';
  };
  assert.equal(bad({ ...base, quorum: { expectedVotes: -1, tieBreaker: { kind: 'off' } } }), 'RAFT_MSG_FIELD');
  assert.equal(bad({ ...base, quorum: { expectedVotes: 1e9, tieBreaker: { kind: 'off' } } }), 'RAFT_MSG_RANGE');
  assert.equal(bad({ ...base, quorum: { expectedVotes: 0, tieBreaker: { kind: 'random' } } }), 'RAFT_MSG_FIELD');
  assert.equal(
    bad({ ...base, quorum: { expectedVotes: 0, tieBreaker: { kind: 'list', nodes: [] } } }),
    'RAFT_MSG_RANGE',
  );
  assert.equal(
    bad({ ...base, quorum: { expectedVotes: 0, tieBreaker: { kind: 'list', nodes: [2, 2] } } }),
    'RAFT_MSG_FIELD',
  );
  assert.equal(bad({ ...base, witnesses: [0] }), 'RAFT_MSG_FIELD');
  const app = (entry: unknown): unknown => ({
    type: 'MsgApp',
    from: 1,
    to: 2,
    term: 1,
    logTerm: 0,
    index: 0,
    commit: 0,
    entries: [entry],
  });
  const ok = validateRaftMessage(
    app({ type: 'normal', term: 1, index: 1, data: new Uint8Array(0), metadataOnly: true }),
  );
  assert.ok(ok.type === 'MsgApp' && ok.entries[0]?.type === 'normal' && ok.entries[0].metadataOnly === true);
  assert.throws(
    () =>
      validateRaftMessage(app({ type: 'normal', term: 1, index: 1, data: new Uint8Array([7]), metadataOnly: true })),
    /metadataOnly but carries 1 data bytes/,
  );
  assert.throws(
    () => validateRaftMessage(app({ type: 'normal', term: 1, index: 1, data: new Uint8Array(0), metadataOnly: false })),
    /must be true when present/,
  );
  const cc = validateRaftMessage(
    app({
      type: 'conf',
      term: 1,
      index: 1,
      change: {
        autoLeave: true,
        changes: [
          { type: 'add-voter', node: 3, votes: 1, role: 'witness' },
          { type: 'set-tie-breaker', tieBreaker: { kind: 'list', nodes: [3, 1] } },
          { type: 'set-expected-votes', expectedVotes: 4 },
        ],
      },
    }),
  );
  assert.ok(cc.type === 'MsgApp' && cc.entries[0]?.type === 'conf');
  assert.deepEqual(
    cc.entries[0].change.changes.map((c) => c.type),
    ['add-voter', 'set-tie-breaker', 'set-expected-votes'],
  );
  assert.throws(
    () =>
      validateRaftMessage(
        app({
          type: 'conf',
          term: 1,
          index: 1,
          change: { autoLeave: true, changes: [{ type: 'add-voter', node: 3, votes: 1, role: 'judge' }] },
        }),
      ),
    /role must be/,
  );
});

test('a stored configuration that breaks the quorum rules is an assertion, not a silent default', () => {
  assert.throws(
    () => conf([1, 2, 3], { quorum: { expectedVotes: 2, tieBreaker: { kind: 'off' } } }),
    /below the 3 votes/,
  );
  assert.throws(() => conf([1, 2], { witnesses: [id(9)] }), /witness 9 is not a member/);
  assert.throws(() => conf([1, 2, 3], { witnesses: [id(2), id(3)] }), /witnesses \(2,3\) would hold a incoming quorum/);
});

// ---------------------------------------------------------------------------------------------
// Configuration changes of the settings

test('a settings change goes through a joint configuration in which the old side keeps its settings', () => {
  const start = conf([1, 2, 3, 4], { quorum: { expectedVotes: 0, tieBreaker: { kind: 'lowest' } } });
  const joint = apply(start, {
    changes: [
      { type: 'set-tie-breaker', tieBreaker: { kind: 'highest' } },
      { type: 'set-expected-votes', expectedVotes: 5 },
    ],
    autoLeave: false,
  });
  assert.ok(isJoint(joint));
  const q = jointQuorumConfig(joint);
  assert.equal(q.incoming.tieBreaker, 4);
  assert.equal(q.incoming.expectedVotes, 5);
  assert.equal(q.outgoing?.tieBreaker, 1);
  assert.equal(q.outgoing.expectedVotes, 4);
  const left = apply(joint, { changes: [], autoLeave: false });
  assert.equal(formatConfig(left), 'voters=(1,2,3,4) expected=5 tie-breaker=highest');
  assert.deepEqual(confStateFromConfig(left).outgoingQuorum, undefined);
});

test('expected votes are never below the voters total, never out of reach, and follow voter changes', () => {
  const three = conf([1, 2, 3]);
  assert.match(
    refusal(three, { changes: [{ type: 'set-expected-votes', expectedVotes: 2 }], autoLeave: true }),
    /below the 3 votes .* set expected votes to at least 3, or to 0/,
  );
  assert.match(
    refusal(three, { changes: [{ type: 'set-expected-votes', expectedVotes: 6 }], autoLeave: true }),
    /could never form a quorum/,
  );
  assert.equal(
    jointQuorumConfig(apply(three, { changes: [{ type: 'set-expected-votes', expectedVotes: 5 }], autoLeave: true }))
      .incoming.expectedVotes,
    5,
  );
  // An explicit E is not silently raised by adding voters; derived E (0) follows them.
  const explicit = conf([1, 2, 3], { quorum: { expectedVotes: 3, tieBreaker: { kind: 'off' } } });
  assert.match(
    refusal(explicit, { changes: [{ type: 'add-voter', node: id(4), votes: 1 }], autoLeave: true }),
    /below the 4 votes/,
  );
  const raised = apply(explicit, {
    changes: [
      { type: 'add-voter', node: id(4), votes: 1 },
      { type: 'set-expected-votes', expectedVotes: 0 },
    ],
    autoLeave: true,
  });
  assert.equal(jointQuorumConfig(raised).incoming.expectedVotes, 4);
  assert.match(
    refusal(conf([1, 2, 3], { quorum: { expectedVotes: 0, tieBreaker: { kind: 'off' } } }), {
      changes: [{ type: 'set-expected-votes', expectedVotes: 0 }],
      autoLeave: true,
    }),
    /does not change the configuration/,
  );
});

test('the tie-breaker is resolved against each side, and a list must name a voter when it is set', () => {
  const start = conf([1, 2, 3, 4], { quorum: { expectedVotes: 0, tieBreaker: { kind: 'lowest' } } });
  // Removing node 1: the new side resolves `lowest` to node 2, the old side still to node 1.
  const joint = apply(start, { changes: [{ type: 'remove-node', node: id(1) }], autoLeave: true });
  const q = jointQuorumConfig(joint);
  assert.equal(q.incoming.tieBreaker, 2);
  assert.equal(q.outgoing?.tieBreaker, 1);
  assert.match(
    refusal(start, {
      changes: [{ type: 'set-tie-breaker', tieBreaker: { kind: 'list', nodes: [id(9)] } }],
      autoLeave: true,
    }),
    /names no voting node/,
  );
  // The list is checked against the final voters, whatever the order of the items.
  const added = apply(start, {
    changes: [
      { type: 'set-tie-breaker', tieBreaker: { kind: 'list', nodes: [id(5)] } },
      { type: 'add-voter', node: id(5), votes: 1 },
    ],
    autoLeave: true,
  });
  assert.equal(jointQuorumConfig(added).incoming.tieBreaker, 5);
});

test('witness rules: witnesses alone are never a quorum, and a member never changes role', () => {
  const dw = conf([1, 2, 3], { witnesses: [id(3)] });
  assert.match(
    refusal(dw, { changes: [{ type: 'add-voter', node: id(3), votes: 3, role: 'witness' }], autoLeave: true }),
    /witnesses \(3\) would hold a incoming quorum/,
  );
  assert.match(
    refusal(dw, { changes: [{ type: 'add-voter', node: id(3), votes: 1 }], autoLeave: true }),
    /node 3 is a witness; .* remove it, wipe its storage/,
  );
  assert.match(
    refusal(dw, { changes: [{ type: 'add-voter', node: id(2), votes: 1, role: 'witness' }], autoLeave: true }),
    /node 2 is a data node/,
  );
  assert.match(
    refusal(conf([1, 2]), {
      changes: [
        { type: 'remove-node', node: id(2) },
        { type: 'remove-node', node: id(1) },
        { type: 'add-voter', node: id(5), votes: 1, role: 'witness' },
      ],
      autoLeave: true,
    }),
    /every incoming voter is a witness/,
  );
  // A witness may be demoted to a learner (last_man_standing) and keeps its mark.
  const demoted = apply(apply(dw, { changes: [{ type: 'add-learner', node: id(3) }], autoLeave: true }), {
    changes: [],
    autoLeave: false,
  });
  assert.equal(formatConfig(demoted), 'voters=(1,2) learners=(3) witnesses=(3)');
  // A removed witness keeps its mark while it is an outgoing voter, and loses it on leaving.
  const removing = apply(dw, { changes: [{ type: 'remove-node', node: id(3) }], autoLeave: true });
  assert.equal(formatConfig(removing), 'voters=(1,2)&&(1,2,3) autoleave witnesses=(3)');
  assert.equal(formatConfig(apply(removing, { changes: [], autoLeave: false })), 'voters=(1,2)');
});

// ---------------------------------------------------------------------------------------------
// wait_for_all

test('wait_for_all: every voter of every side must grant in one election', () => {
  const c = conf([1, 2, 3]);
  const waiting = { waitForAll: true, learnerVotes: false };
  const normal = { waitForAll: false, learnerVotes: false };
  const two = votesOf([
    [1, true],
    [2, true],
  ]);
  assert.equal(electionOutcome(c, two, normal), 'won');
  assert.equal(electionOutcome(c, two, waiting), 'pending');
  assert.equal(explainElection(c, two, waiting), 'wait_for_all: 2 of 3 voters seen (waiting for node 3)');
  assert.equal(
    electionOutcome(
      c,
      votesOf([
        [1, true],
        [2, true],
        [3, false],
      ]),
      waiting,
    ),
    'lost',
  );
  assert.match(
    explainElection(
      c,
      votesOf([
        [1, true],
        [2, true],
        [3, false],
      ]),
      waiting,
    ),
    /2 of 3 voters seen \(refused by node 3\)/,
  );
  assert.equal(
    electionOutcome(
      c,
      votesOf([
        [1, true],
        [2, true],
        [3, true],
      ]),
      waiting,
    ),
    'won',
  );
  // A joint configuration: the voters of both sides.
  const joint = apply(c, {
    changes: [
      { type: 'add-voter', node: id(4), votes: 1 },
      { type: 'remove-node', node: id(3) },
    ],
    autoLeave: false,
  });
  assert.equal(
    electionOutcome(
      joint,
      votesOf([
        [1, true],
        [2, true],
        [4, true],
      ]),
      waiting,
    ),
    'pending',
  );
  assert.equal(
    electionOutcome(
      joint,
      votesOf([
        [1, true],
        [2, true],
        [3, true],
        [4, true],
      ]),
      waiting,
    ),
    'won',
  );
  // All voters granting is still not enough when E is out of their reach.
  assert.equal(
    electionOutcome(
      conf([1, 2], { quorum: { expectedVotes: 4, tieBreaker: { kind: 'off' } } }),
      votesOf([
        [1, true],
        [2, true],
      ]),
      waiting,
    ),
    'lost',
  );
});

test('a log is fresh only while no leader wrote to it', () => {
  assert.equal(isFreshLog(0, 0, false), true);
  assert.equal(isFreshLog(1, 1, false), false, 'without a bootstrap entry, entry 1 is a leader’s');
  assert.equal(isFreshLog(1, 1, true), true, 'the bootstrap entry (1, 1) is written by no leader');
  assert.equal(isFreshLog(2, 2, true), false);
  assert.equal(isFreshLog(1, 2, true), false);
});

test('explanations name the tie-breaker and the expected votes', () => {
  const c = conf([1, 2, 3, 4], { quorum: { expectedVotes: 0, tieBreaker: { kind: 'lowest' } } });
  const rules = { waitForAll: false, learnerVotes: false };
  assert.equal(
    electionOutcome(
      c,
      votesOf([
        [3, true],
        [4, true],
      ]),
      rules,
    ),
    'pending',
  );
  assert.equal(
    explainElection(
      c,
      votesOf([
        [3, true],
        [4, true],
      ]),
      rules,
    ),
    'not quorate (exact half split: the other half holds the tie-breaker): 2/4 votes (quorum 3 of expected 4, tie-breaker node 1 absent)',
  );
  assert.equal(
    electionOutcome(
      c,
      votesOf([
        [1, true],
        [2, true],
      ]),
      rules,
    ),
    'won',
  );
  assert.equal(
    electionOutcome(
      c,
      votesOf([
        [1, true],
        [2, true],
        [3, false],
        [4, false],
      ]),
      rules,
    ),
    'won',
  );
  assert.equal(
    electionOutcome(
      c,
      votesOf([
        [3, true],
        [4, true],
        [1, false],
        [2, false],
      ]),
      rules,
    ),
    'lost',
  );
});

// ---------------------------------------------------------------------------------------------
// last_man_standing

const lmsView = (present: readonly number[], configured: readonly number[] = [1, 1, 1, 1, 1]) => ({
  enabled: true,
  windowTicks: 10,
  stableTicks: 10,
  present: new Set(present.map(id)),
  configuredVotes: new Map(configured.map((v, i) => [id(i + 1), v] as const)),
});

test('last_man_standing: a lower step demotes the absent voter and E follows the total', () => {
  const five = conf([1, 2, 3, 4, 5]);
  const { decision, change } = lastManStandingStep(five, lmsView([1, 2, 3, 4]));
  assert.equal(decision.kind, 'lower');
  assert.deepEqual(change, { changes: [{ type: 'add-learner', node: id(5) }], autoLeave: true });
  const after = apply(apply(five, change), { changes: [], autoLeave: false });
  assert.equal(formatConfig(after), 'voters=(1,2,3,4) learners=(5)');
});

test('last_man_standing: an explicit E is trimmed first, then written back to follow the total', () => {
  const high = conf([1, 2, 3], { quorum: { expectedVotes: 4, tieBreaker: { kind: 'off' } } });
  const trim = lastManStandingStep(high, lmsView([1, 2, 3]));
  assert.deepEqual(trim.change, { changes: [{ type: 'set-expected-votes', expectedVotes: 0 }], autoLeave: true });
  const higher = conf([1, 2, 3], { quorum: { expectedVotes: 5, tieBreaker: { kind: 'off' } } });
  assert.deepEqual(lastManStandingStep(higher, lmsView([1, 2, 3])).change, {
    changes: [{ type: 'set-expected-votes', expectedVotes: 4 }],
    autoLeave: true,
  });
  // Explicit E equal to the total, a voter removed: E must be written down with it.
  const exact = conf([1, 2, 3, 4], { quorum: { expectedVotes: 4, tieBreaker: { kind: 'off' } } });
  assert.deepEqual(lastManStandingStep(exact, lmsView([1, 2, 3])).change, {
    changes: [
      { type: 'add-learner', node: id(4) },
      { type: 'set-expected-votes', expectedVotes: 0 },
    ],
    autoLeave: true,
  });
});

test('last_man_standing: a returning witness gets its vote back as a witness; holds give no change', () => {
  const shrunk = conf([1, 2], { learners: [id(3)], witnesses: [id(3)] });
  const { decision, change } = lastManStandingStep(shrunk, lmsView([1, 2, 3], [1, 1, 1]));
  assert.equal(decision.kind, 'raise');
  assert.deepEqual(change, {
    changes: [{ type: 'add-voter', node: id(3), votes: 1, role: 'witness' }],
    autoLeave: true,
  });
  const hold = lastManStandingStep(conf([1, 2, 3]), { ...lmsView([1, 2]), stableTicks: 3 });
  assert.equal(hold.decision.kind, 'hold');
  assert.equal(hold.change, null);
  const joint = apply(conf([1, 2, 3]), { changes: [{ type: 'remove-node', node: id(3) }], autoLeave: false });
  const held = decideLastManStanding(lastManStandingInput(joint, lmsView([1, 2])));
  assert.ok(held.kind === 'hold' && held.reason === 'joint-in-flight');
});

test('last_man_standing: a decision that disagrees with the configuration is a programming error', () => {
  const five = conf([1, 2, 3, 4, 5]);
  const decision = decideLastManStanding(lastManStandingInput(five, lmsView([1, 2, 3, 4])));
  assert.equal(decision.kind, 'lower');
  const forged: LastManStandingDecision = {
    ...decision,
    kind: 'lower',
    node: id(4),
    expectedVotesBefore: 5,
    expectedVotesAfter: 4,
    proposed: jointQuorumConfig(five).incoming,
  };
  assert.throws(() => lastManStandingConfChange(five, forged), /must produce the decided configuration/);
});
