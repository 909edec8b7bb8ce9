// Proves each mechanism of the Raft core on a small deterministic in-memory network: elections
// with pre-vote and check-quorum, the Ready persistence contract, replication with flow control
// and conflict repair, commit rules, weighted votes, snapshots, joint configuration changes,
// leader removal (the removed leader hands over only once the removal is known), counting with
// every configuration in the log, read-index and lease reads, leadership transfer, restart, and
// the canaries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logIndex, nodeId, term, type NodeId } from '../lib/ids.js';
import { Prng } from '../lib/prng.js';
import { RaftHarness, type AddNodesOptions } from './raft-harness.js';
import { RaftCore } from './raft-core.js';
import { RAFT_CONFIG_DEFAULTS, type RaftConfig } from './raft-config.js';
import { MemoryRaftStorage } from './raft-storage.js';
import { RaftLog } from './raft-log.js';
import type { ConfChange, RaftMessage } from './raft-message.js';

const enc = new TextEncoder();
const id = nodeId;

function cluster(n: number, opts: Partial<AddNodesOptions> = {}, seed = 7): RaftHarness {
  const h = new RaftHarness(seed);
  h.addNodes(n, { voters: opts.voters ?? Array.from({ length: n }, (_, i) => i + 1), ...opts });
  return h;
}

function elect(h: RaftHarness, leader: number): void {
  h.node(leader).core.campaign();
  h.stabilize();
  assert.equal(h.node(leader).core.status().role, 'leader', `node ${leader} should lead`);
}

const REPLACE_2_3_BY_4_5: ConfChange = {
  changes: [
    { type: 'remove-node', node: id(2) },
    { type: 'remove-node', node: id(3) },
    { type: 'add-voter', node: id(4), votes: 1 },
    { type: 'add-voter', node: id(5), votes: 1 },
  ],
  autoLeave: true,
};

function tickUntilQuiet(h: RaftHarness, ids: number[], ticks: number): void {
  for (let i = 0; i < ticks; i++) {
    for (const n of ids) h.tick(id(n));
    h.stabilize();
  }
}

test('a single voter elects itself and commits only after persisting its own entry', () => {
  const h = cluster(1);
  const core = h.node(1).core;
  core.campaign();
  let rd = core.ready();
  const hs = rd.hardState;
  assert.ok(hs !== null);
  assert.deepEqual([hs.term, hs.vote], [1, 1]);
  assert.equal(core.status().role, 'candidate', 'its own vote counts only once durable');
  h.node(1).storage.setHardState(hs);
  core.advance(rd);
  assert.equal(core.status().role, 'leader');
  rd = core.ready();
  assert.equal(rd.entries.length, 1, 'the empty entry of the new term');
  assert.equal(rd.committedEntries.length, 0, 'not committed before the leader persisted it');
  h.node(1).storage.append(rd.entries);
  core.advance(rd);
  rd = core.ready();
  assert.equal(rd.committedEntries.length, 1);
  h.node(1).appliedIndex = logIndex(1);
  core.advance(rd);
  assert.equal(h.propose(id(1), 'x'), null);
  h.stabilize();
  assert.deepEqual(h.node(1).applied, ['x']);
});

test('three nodes elect a leader and replicate proposals to every state machine', () => {
  const h = cluster(3);
  elect(h, 1);
  for (const s of ['a', 'b', 'c']) assert.equal(h.propose(id(1), s), null);
  h.stabilize();
  for (const n of [1, 2, 3]) assert.deepEqual(h.node(n).applied, ['a', 'b', 'c']);
  assert.equal(h.propose(id(2), 'd'), 'NOT_LEADER');
});

test('vote grants and append acknowledgements wait for the persist; leader appends do not', () => {
  const h = cluster(3);
  h.node(1).core.campaign();
  h.processReady(id(1));
  const vote = h.network.find((m) => m.type === 'MsgVote' || m.type === 'MsgPreVote');
  assert.ok(vote !== undefined);
  h.deliverAll();
  const rd = h.node(2).core.ready();
  assert.equal(rd.messages.length, 0);
  assert.ok(rd.messagesAfterPersist.some((m) => m.type === 'MsgPreVoteResp' && !m.reject));
  h.node(2).core.advance(rd);
  h.stabilize();
  assert.equal(h.node(1).core.status().role, 'leader');
  h.propose(id(1), 'x');
  const lrd = h.node(1).core.ready();
  assert.ok(
    lrd.messages.some((m) => m.type === 'MsgApp' && m.entries.length === 1),
    'a durable-term leader may send appends before persisting',
  );
  h.network.push(...lrd.messages);
  h.node(1).storage.append(lrd.entries);
  h.node(1).core.advance(lrd);
  h.deliverAll();
  const frd = h.node(2).core.ready();
  assert.ok(frd.messagesAfterPersist.some((m) => m.type === 'MsgAppResp'));
  assert.ok(!frd.messages.some((m) => m.type === 'MsgAppResp'));
  h.node(2).core.advance(frd);
});

test('a node grants at most one vote per term and only to an up-to-date log', () => {
  const h = cluster(3);
  const core = h.node(3).core;
  const vote = (from: number, t: number, logTerm: number, index: number): RaftMessage => ({
    type: 'MsgVote',
    from: id(from),
    to: id(3),
    term: term(t),
    logTerm: term(logTerm),
    index: logIndex(index),
    transfer: false,
  });
  core.step(vote(1, 5, 0, 0));
  core.step(vote(2, 5, 0, 0));
  const rd = core.ready();
  const resp = rd.messagesAfterPersist.filter((m) => m.type === 'MsgVoteResp');
  assert.deepEqual(
    resp.map((m) => [m.to, m.type === 'MsgVoteResp' && m.reject]),
    [
      [1, false],
      [2, true],
    ],
  );
  core.advance(rd);
});

test('pre-vote: a partitioned node does not raise its term nor disturb the leader when it rejoins', () => {
  const h = cluster(3);
  elect(h, 1);
  h.isolate(id(3));
  for (let i = 0; i < 50; i++) h.tick(id(3));
  h.stabilize();
  assert.equal(h.node(3).core.status().term, 1, 'pre-votes never succeed, so the term stays');
  h.recover();
  tickUntilQuiet(h, [1, 2, 3], 3);
  assert.equal(h.node(1).core.status().role, 'leader');
  assert.equal(h.node(1).core.status().term, 1);
});

test('check-quorum: an isolated leader steps down within two election timeouts', () => {
  const h = cluster(3);
  elect(h, 1);
  h.isolate(id(1));
  tickUntilQuiet(h, [1], RAFT_CONFIG_DEFAULTS.electionTicks);
  assert.equal(h.node(1).core.status().role, 'leader', 'followers were active during the first window');
  tickUntilQuiet(h, [1], RAFT_CONFIG_DEFAULTS.electionTicks);
  assert.equal(h.node(1).core.status().role, 'follower');
});

test('a follower with a divergent log is repaired, skipping whole terms per round trip', () => {
  const h = cluster(3);
  elect(h, 1);
  h.isolate(id(1));
  for (let i = 0; i < 20; i++) h.propose(id(1), `stale-${i}`); // never committed
  h.stabilize();
  h.recover();
  h.isolate(id(1));
  tickUntilQuiet(h, [2, 3], 30);
  const leader = [2, 3].find((n) => h.node(n).core.status().role === 'leader');
  assert.ok(leader !== undefined);
  h.propose(id(leader), 'fresh');
  h.stabilize();
  h.recover();
  let rejects = 0;
  for (let i = 0; i < 30; i++) {
    h.tickAll();
    for (const line of h.stabilize()) if (line.includes('Rejected (Hint')) rejects++;
  }
  assert.deepEqual(h.node(1).applied, ['fresh']);
  assert.ok(rejects <= 3, `conflict repair took ${rejects} rejections; expected a term per round trip`);
});

test('flow control: at most maxInflightMessages unacknowledged appends per follower', () => {
  const h = cluster(2, { config: { maxInflightMessages: 4 } });
  elect(h, 1);
  h.isolate(id(2)); // acks never come back
  for (let i = 0; i < 20; i++) {
    h.propose(id(1), `p${i}`);
    h.processReady(id(1));
  }
  const apps = h.network.filter((m) => m.type === 'MsgApp' && m.to === 2 && m.entries.length > 0);
  assert.equal(apps.length, 4);
});

test('weighted votes: a voter holding a majority of votes commits alone', () => {
  const h = cluster(3, { votes: new Map([[1, 3]]) });
  elect(h, 1);
  h.isolate(id(2));
  h.isolate(id(3));
  h.propose(id(1), 'solo');
  h.stabilize();
  assert.deepEqual(h.node(1).applied, ['solo']);
  const light = cluster(3, { votes: new Map([[1, 3]]) });
  light.isolate(id(1));
  light.node(2).core.campaign();
  light.stabilize();
  assert.notEqual(light.node(2).core.status().role, 'leader', '2 of 5 votes cannot elect');
});

test('a leader commits an earlier-term entry only by committing one of its own term (§5.4.2)', () => {
  const storage = new MemoryRaftStorage();
  const e = (i: number, t: number) => ({
    type: 'normal' as const,
    term: term(t),
    index: logIndex(i),
    data: new Uint8Array(0),
  });
  storage.append([e(1, 1), e(2, 1)]);
  const log = new RaftLog(storage, logIndex(0));
  assert.equal(
    log.maybeCommit(logIndex(2), term(2)),
    false,
    'a quorum holding a term-1 entry does not commit it in term 2',
  );
  log.append([e(3, 2)]);
  assert.equal(log.maybeCommit(logIndex(3), term(2)), true);
  assert.equal(log.committed, 3, 'committing the term-2 entry commits everything before it');
});

test('snapshot install: a new node joins after the leader compacted its log', () => {
  const h = cluster(3);
  elect(h, 1);
  for (let i = 0; i < 5; i++) h.propose(id(1), `e${i}`);
  h.stabilize();
  h.compact(id(1));
  h.addNodes(1, { voters: [] });
  const cc = h.node(1).core.proposeConfChange({ changes: [{ type: 'add-learner', node: id(4) }], autoLeave: true });
  assert.ok(cc.ok);
  const lines = [...h.stabilize()];
  tickUntilQuiet(h, [1, 2, 3, 4], 3);
  assert.ok(lines.length > 0);
  assert.deepEqual(h.node(4).applied, ['e0', 'e1', 'e2', 'e3', 'e4']);
  assert.equal(h.node(4).core.status().config, 'voters=(1,2,3) learners=(4)');
});

test('joint consensus: adding a voter enters and automatically leaves a joint configuration', () => {
  const h = cluster(3);
  h.addNodes(1, { voters: [1, 2, 3] });
  elect(h, 1);
  const r = h
    .node(1)
    .core.proposeConfChange({ changes: [{ type: 'add-voter', node: id(4), votes: 2 }], autoLeave: true });
  assert.ok(r.ok);
  const again = h.node(1).core.proposeConfChange({ changes: [{ type: 'remove-node', node: id(2) }], autoLeave: true });
  assert.equal(again.ok ? '' : again.error.code, 'CONF_CHANGE_PENDING');
  const lines = h.stabilize();
  assert.ok(
    lines.some((l) => l.includes('EntryConf leave-joint')),
    lines.join('\n'),
  );
  for (const n of [1, 2, 3, 4]) assert.equal(h.node(n).core.status().config, 'voters=(1,2,3,4x2)');
});

test('invalid configuration changes are refused with CONF_CHANGE_INVALID', () => {
  const h = cluster(1);
  elect(h, 1);
  const leave = h.node(1).core.proposeConfChange({ changes: [], autoLeave: false });
  assert.equal(leave.ok ? '' : leave.error.code, 'CONF_CHANGE_INVALID');
  const none = h.node(1).core.proposeConfChange({ changes: [{ type: 'remove-node', node: id(1) }], autoLeave: true });
  assert.equal(none.ok ? '' : none.error.code, 'CONF_CHANGE_INVALID');
});

test('leader removal: the removed leader hands over and steps down; a remaining voter leads', () => {
  const h = cluster(3);
  elect(h, 1);
  const r = h.node(1).core.proposeConfChange({ changes: [{ type: 'remove-node', node: id(1) }], autoLeave: true });
  assert.ok(r.ok);
  h.stabilize();
  tickUntilQuiet(h, [1, 2, 3], 25);
  assert.equal(h.node(1).core.status().role, 'follower');
  const leader = [2, 3].find((n) => h.node(n).core.status().role === 'leader');
  assert.ok(leader !== undefined, 'a remaining voter leads');
  assert.equal(h.propose(id(leader), 'after'), null);
  h.stabilize();
  assert.deepEqual(h.node(2).applied, ['after']);
  assert.equal(h.node(2).core.status().config, 'voters=(2,3)');
});

test('a removed leader hands over only once a quorum of the new configuration knows the removal committed', () => {
  const h = cluster(3);
  elect(h, 1);
  assert.ok(h.node(1).core.proposeConfChange({ changes: [{ type: 'remove-node', node: id(1) }], autoLeave: true }).ok);
  h.stabilize();
  const core = h.node(1).core;
  assert.equal(core.status().config, 'voters=(2,3)');
  // Removed, but nobody has acknowledged knowing it: it keeps leading and refuses proposals.
  assert.equal(core.status().role, 'leader');
  const refused = core.propose(enc.encode('x'));
  assert.ok(!refused.ok && refused.error.code === 'TRANSFER_IN_PROGRESS');
  // Heartbeats that never arrive prove nothing: no TimeoutNow, still leading.
  h.isolate(id(2));
  h.isolate(id(3));
  for (let i = 0; i < 3; i++) {
    h.tick(id(1));
    h.stabilize();
  }
  assert.equal(core.status().role, 'leader');
  h.recover();
  h.tick(id(1));
  for (let round = 0; round < 5 && h.network.length + (core.hasReady() ? 1 : 0) > 0; round++) {
    while (h.processReady(id(1)));
    const timeoutNow = h.network.filter((m) => m.type === 'MsgTimeoutNow');
    if (timeoutNow.length > 0) {
      assert.deepEqual(
        timeoutNow.map((m) => m.from),
        [id(1)],
      );
      break;
    }
    h.deliverAll();
  }
  h.stabilize();
  const leader = [2, 3].find((n) => h.node(n).core.status().role === 'leader');
  assert.ok(leader !== undefined, 'a remaining voter took over');
  // The old leader steps down when its next heartbeat meets the new term.
  h.tick(id(1));
  h.stabilize();
  assert.equal(core.status().role, 'follower');
  assert.equal(h.leaders.get(core.status().term)?.size ?? 0, 1);
});

test('counting with every configuration in the log: a joint entry commits only with the incoming quorum too', () => {
  // Voters (1,2,3); node 1 replaces 2 and 3 by 4 and 5 while 4 and 5 are unreachable. Under the
  // applied configuration alone {1,2,3} would commit the joint entry; it also needs 2 of (1,4,5).
  const h = cluster(5, { voters: [1, 2, 3] });
  elect(h, 1);
  h.isolate(id(4));
  h.isolate(id(5));
  const r = h.node(1).core.proposeConfChange(REPLACE_2_3_BY_4_5);
  assert.ok(r.ok);
  h.stabilize();
  assert.ok(h.node(1).core.status().commit < r.value.index, 'the joint entry waits for the incoming side');
  assert.equal(h.node(1).core.status().latestConfig, 'voters=(1,4,5)&&(1,2,3) autoleave');
  h.recover();
  tickUntilQuiet(h, [1], 3);
  assert.equal(h.node(1).core.status().config, 'voters=(1,4,5)');
});

test('a candidate with an unapplied configuration entry needs a quorum of it as well', () => {
  // Node 1 alone holds a joint entry replacing 2 and 3 by 4 and 5 (uncommitted). Its applied
  // configuration (1,2,3) would let {1,2} elect it; the entry's (1,4,5) side needs 4 or 5 too.
  const h = cluster(5, { voters: [1, 2, 3] });
  elect(h, 1);
  h.isolate(id(2));
  h.isolate(id(3));
  h.isolate(id(4));
  h.isolate(id(5));
  assert.ok(h.node(1).core.proposeConfChange(REPLACE_2_3_BY_4_5).ok);
  h.stabilize();
  h.restart(id(1));
  h.recover();
  h.isolate(id(4));
  h.isolate(id(5));
  tickUntilQuiet(h, [1, 2, 3], 60);
  assert.notEqual(h.node(1).core.status().role, 'leader', 'node 1 must not win with {1,2} alone');
  h.recover();
  tickUntilQuiet(h, [1, 2, 3, 4, 5], 60);
  const leaders = [1, 2, 3, 4, 5].filter((n) => h.node(n).core.status().role === 'leader');
  assert.equal(leaders.length, 1, 'with 4 and 5 back, the cluster elects a leader again');
  for (const [t, set] of h.leaders) assert.equal(set.size, 1, `one leader in term ${t}`);
});

test("a refused vote carries the refuser's commit index; a candidate holding that entry learns it", () => {
  const h = cluster(3);
  elect(h, 1);
  assert.equal(h.propose(id(1), 'a'), null);
  h.stabilize();
  const follower = h.node(2).core;
  const { commit, lastIndex } = follower.status();
  assert.equal(commit, lastIndex);
  // Pretend node 2 forgot its commit (a restart without the durable commit) and hear a refusal.
  h.restart(id(2), 0);
  const restarted = h.node(2).core;
  assert.equal(restarted.status().commit, 0);
  const hint = (index: number, t: number): RaftMessage => ({
    type: 'MsgPreVoteResp',
    from: id(3),
    to: id(2),
    term: term(1),
    reject: true,
    commitHint: { index: logIndex(index), term: term(t) },
  });
  restarted.step(hint(lastIndex, 9)); // another term at that index: not the same entry, ignored
  assert.equal(restarted.status().commit, 0);
  restarted.step(hint(lastIndex + 5, 1)); // beyond our log: ignored
  assert.equal(restarted.status().commit, 0);
  restarted.step(hint(lastIndex, 1));
  assert.equal(restarted.status().commit, lastIndex);
  // And the refusals the core sends carry it (node 3 first stops hearing from its leader).
  h.tick(id(3), 10);
  while (h.processReady(id(3)));
  h.network = [];
  h.node(3).core.step({
    type: 'MsgPreVote',
    from: id(2),
    to: id(3),
    term: term(5),
    logTerm: term(0),
    index: logIndex(0),
    transfer: false,
  });
  while (h.processReady(id(3)));
  const refusal = h.network.find((m) => m.type === 'MsgPreVoteResp' && m.from === id(3));
  assert.ok(refusal?.type === 'MsgPreVoteResp' && refusal.reject);
  assert.deepEqual(refusal.commitHint, { index: lastIndex, term: 1 });
});

test('a configuration entry appended right after a snapshot that is not persisted yet is counted (seed 3779485712)', () => {
  const storage = new MemoryRaftStorage({
    voters: [
      [id(1), 1],
      [id(2), 1],
      [id(3), 1],
    ],
    outgoing: [],
    learners: [],
    learnersNext: [],
    autoLeave: false,
  });
  const core = new RaftCore({ ...RAFT_CONFIG_DEFAULTS, id: id(2), storage, prng: new Prng(3) });
  const confState = {
    voters: [
      [id(1), 1],
      [id(2), 1],
      [id(3), 1],
    ] as const,
    outgoing: [],
    learners: [],
    learnersNext: [],
    autoLeave: false,
  };
  core.step({
    type: 'MsgSnap',
    from: id(1),
    to: id(2),
    term: term(2),
    snapshot: { metadata: { index: logIndex(10), term: term(2), confState }, data: new Uint8Array(0) },
  });
  const change = { changes: [{ type: 'add-voter' as const, node: id(4), votes: 1 }], autoLeave: true };
  core.step({
    type: 'MsgApp',
    from: id(1),
    to: id(2),
    term: term(2),
    logTerm: term(2),
    index: logIndex(10),
    commit: logIndex(10),
    entries: [{ type: 'conf', term: term(2), index: logIndex(11), change }],
  });
  // The snapshot's entries are gone and its Ready is still to come: counting must not read them.
  assert.equal(core.status().latestConfig, 'voters=(1,2,3,4)&&(1,2,3) autoleave');
  for (let i = 0; i < 40; i++) core.tick(); // campaigns (deferred or not) must not trip either
  assert.ok(core.hasReady());
});

test('a campaign re-asks voters that have not answered every heartbeat interval (seed 2926576350)', () => {
  const h = cluster(5);
  h.node(1).core.campaign();
  while (h.processReady(id(1)));
  assert.equal(h.network.filter((m) => m.type === 'MsgPreVote').length, 4);
  h.network = []; // every pre-vote request is lost
  h.tick(id(1)); // one heartbeat interval later (heartbeatTicks 1), not an election timeout
  while (h.processReady(id(1)));
  assert.deepEqual(
    h.network.filter((m) => m.type === 'MsgPreVote').map((m) => m.to),
    [id(2), id(3), id(4), id(5)],
  );
  // Only node 2's grant arrives: 2 of 5, still a pre-candidate; only the others are asked again.
  h.network = h.network.filter((m) => m.to === id(2));
  h.deliverAll();
  while (h.processReady(id(2)));
  h.deliverAll();
  while (h.processReady(id(1)));
  assert.equal(h.node(1).core.status().role, 'pre-candidate');
  h.tick(id(1));
  while (h.processReady(id(1)));
  assert.deepEqual(
    h.network.map((m) => `${m.type}->${m.to}`),
    ['MsgPreVote->3', 'MsgPreVote->4', 'MsgPreVote->5'],
  );
  h.stabilize();
  assert.equal(h.node(1).core.status().role, 'leader');
});

test('learners replicate but never vote or count toward commit', () => {
  const h = cluster(3, { voters: [1], learners: [2, 3] });
  elect(h, 1);
  h.propose(id(1), 'x');
  h.stabilize();
  assert.deepEqual(h.node(3).applied, ['x']);
  h.isolate(id(1));
  tickUntilQuiet(h, [2, 3], 40);
  assert.equal(h.node(2).core.status().role, 'follower');
  assert.equal(h.node(3).core.status().term, 1);
});

test('read-index: a follower read returns the leader commit index after a quorum confirms', () => {
  const h = cluster(3, { config: { readMode: 'read-index' } });
  elect(h, 1);
  h.propose(id(1), 'x');
  h.stabilize();
  assert.ok(h.node(2).core.readIndex(enc.encode('r1')).ok);
  const lines = h.stabilize();
  assert.ok(
    lines.some((l) => l.includes('MsgHeartbeat ')),
    'the leader confirms with a heartbeat round',
  );
  assert.deepEqual(
    h.node(2).readStates.map((r) => r.index),
    [h.node(1).core.status().commit],
  );
  h.isolate(id(1));
  assert.ok(h.node(1).core.readIndex(enc.encode('r2')).ok);
  h.stabilize();
  assert.equal(h.node(1).readStates.length, 0, 'an isolated leader cannot confirm a read');
});

test('lease reads: served without a round trip while the lease holds, never in a joint configuration', () => {
  const h = cluster(3, { config: { readMode: 'lease' } });
  elect(h, 1);
  tickUntilQuiet(h, [1, 2, 3], 2);
  assert.equal(h.node(1).core.status().leaseValid, true);
  assert.ok(h.node(1).core.readIndex(enc.encode('lease')).ok);
  assert.equal(h.node(1).core.ready().readStates.length, 1, 'answered at once from the lease');
  h.isolate(id(1));
  for (let i = 0; i < RAFT_CONFIG_DEFAULTS.electionTicks; i++) h.tick(id(1));
  assert.equal(h.node(1).core.status().leaseValid, false, 'the lease lapses without acknowledgements');
  const j = cluster(4, { voters: [1, 2, 3] });
  elect(j, 1);
  j.isolate(id(4));
  assert.ok(
    j.node(1).core.proposeConfChange({ changes: [{ type: 'add-voter', node: id(4), votes: 1 }], autoLeave: false }).ok,
  );
  tickUntilQuiet(j, [1, 2, 3], 2);
  assert.ok(j.node(1).core.status().config.includes('&&'));
  assert.equal(j.node(1).core.status().leaseValid, false);
});

test('followers in a lease ignore vote requests; a restarted node stays quiet for an election timeout', () => {
  const h = cluster(3);
  elect(h, 1);
  const core = h.node(2).core;
  core.step({
    type: 'MsgVote',
    from: id(3),
    to: id(2),
    term: term(9),
    logTerm: term(9),
    index: logIndex(99),
    transfer: false,
  });
  assert.equal(core.status().term, 1);
  h.restart(id(3));
  h.node(3).core.step({
    type: 'MsgVote',
    from: id(2),
    to: id(3),
    term: term(9),
    logTerm: term(9),
    index: logIndex(99),
    transfer: false,
  });
  assert.equal(h.node(3).core.status().term, 1, 'quiet after restart');
});

test('leadership transfer: the target catches up, campaigns at once and wins', () => {
  const h = cluster(3);
  elect(h, 1);
  assert.ok(h.node(1).core.transferLeadership(id(3)).ok);
  assert.equal(h.propose(id(1), 'x'), 'TRANSFER_IN_PROGRESS');
  const lines = h.stabilize();
  assert.ok(lines.some((l) => l.includes('MsgTimeoutNow')));
  assert.equal(h.node(3).core.status().role, 'leader');
  assert.equal(h.node(1).core.status().role, 'follower');
  const bad = h.node(3).core.transferLeadership(id(9));
  assert.equal(bad.ok ? '' : bad.error.code, 'TRANSFER_INVALID');
});

test('a restarted node rebuilds from its storage and catches up', () => {
  const h = cluster(3);
  elect(h, 1);
  h.propose(id(1), 'a');
  h.stabilize();
  h.compact(id(2));
  h.propose(id(1), 'b');
  h.stabilize();
  h.restart(id(2));
  h.stabilize();
  tickUntilQuiet(h, [1, 2, 3], 2);
  assert.deepEqual(h.node(2).applied, ['a', 'b']);
  assert.equal(h.node(2).core.status().term, 1);
});

test('configuration validation rejects unsafe combinations with a clear message', () => {
  const base: RaftConfig = { ...RAFT_CONFIG_DEFAULTS, id: id(1), storage: new MemoryRaftStorage(), prng: new Prng(1) };
  assert.throws(() => new RaftCore({ ...base, electionTicks: 1, heartbeatTicks: 1 }), /electionTicks/);
  assert.throws(() => new RaftCore({ ...base, checkQuorum: false, readMode: 'lease' }), /requires checkQuorum/);
  assert.throws(() => new RaftCore({ ...base, leaseMarginTicks: 10 }), /leaseMarginTicks/);
  assert.doesNotThrow(() => new RaftCore(base));
});

test('the election timeout is drawn from the injected PRNG in [electionTicks, 2*electionTicks)', () => {
  const firstCampaign = (seed: number): number => {
    const h = new RaftHarness(seed);
    h.addNodes(3, { voters: [1, 2, 3] });
    for (let t = 1; t <= 40; t++) {
      h.tick(id(1));
      if (h.node(1).core.status().role !== 'follower') return t;
    }
    return -1;
  };
  const seen = new Set<number>();
  for (let seed = 1; seed <= 40; seed++) {
    const t = firstCampaign(seed);
    assert.ok(t >= 10 && t < 20, `campaign at tick ${t}`);
    assert.equal(firstCampaign(seed), t, 'same seed, same timeout');
    seen.add(t);
  }
  assert.ok(seen.size > 3, 'timeouts are randomised');
});

test('canaries: ack-before-quorum commits with a minority; count-learner-vote elects with a learner', () => {
  const h = cluster(5, { config: { canary: 'ack-before-quorum' } });
  elect(h, 1);
  for (const n of [3, 4, 5]) h.isolate(id(n));
  h.propose(id(1), 'unsafe');
  h.stabilize();
  assert.deepEqual(h.node(1).applied, ['unsafe'], 'the planted bug commits on one ack');
  const safe = cluster(5);
  elect(safe, 1);
  for (const n of [3, 4, 5]) safe.isolate(id(n));
  safe.propose(id(1), 'safe');
  safe.stabilize();
  assert.deepEqual(safe.node(1).applied, [], 'without the canary a minority commits nothing');
  const l = cluster(3, { voters: [1, 2], learners: [3], config: { canary: 'count-learner-vote' } });
  l.isolate(id(2));
  l.node(1).core.campaign();
  l.stabilize();
  assert.equal(l.node(1).core.status().role, 'leader', 'the learner vote completed a quorum');
});

test('canaries: double-vote grants twice; apply-uncommitted applies before commit', () => {
  const h = cluster(3, { config: { canary: 'double-vote' } });
  const core = h.node(3).core;
  const vote = (from: NodeId): RaftMessage => ({
    type: 'MsgVote',
    from,
    to: id(3),
    term: term(5),
    logTerm: term(0),
    index: logIndex(0),
    transfer: false,
  });
  core.step(vote(id(1)));
  core.step(vote(id(2)));
  const rd = core.ready();
  assert.equal(rd.messagesAfterPersist.filter((m) => m.type === 'MsgVoteResp' && !m.reject).length, 2);
  core.advance(rd);
  const a = cluster(3, { config: { canary: 'apply-uncommitted' } });
  elect(a, 1);
  a.isolate(id(2));
  a.isolate(id(3));
  a.propose(id(1), 'early');
  a.stabilize();
  assert.deepEqual(a.node(1).applied, ['early']);
});

test('repair mode ends only once the follower holds the leader commit of the current term (not on a capped heartbeat commit)', () => {
  // Node 2 lost entries 3..5 (a corrupt WAL); its log ends at 2, all in term 1, the current term.
  const storage = new MemoryRaftStorage({
    voters: [
      [id(1), 1],
      [id(2), 1],
      [id(3), 1],
    ],
    outgoing: [],
    learners: [],
    learnersNext: [],
    autoLeave: false,
  });
  storage.append(
    [1, 2].map((i) => ({ type: 'normal' as const, term: term(1), index: logIndex(i), data: new Uint8Array(0) })),
  );
  storage.setHardState({ term: term(1), vote: null, commit: logIndex(0) });
  const core = new RaftCore({ ...RAFT_CONFIG_DEFAULTS, id: id(2), storage, prng: new Prng(1), repairing: true });
  const hb: RaftMessage = {
    type: 'MsgHeartbeat',
    from: id(1),
    to: id(2),
    term: term(1),
    commit: logIndex(2),
    round: 1,
  };
  core.step(hb);
  assert.equal(core.repairing, true, 'a heartbeat commit is capped at what the leader thinks we hold: no proof');
  const entries = [3, 4, 5].map((i) => ({
    type: 'normal' as const,
    term: term(1),
    index: logIndex(i),
    data: enc.encode(`e${i}`),
  }));
  core.step({
    type: 'MsgApp',
    from: id(1),
    to: id(2),
    term: term(1),
    logTerm: term(1),
    index: logIndex(2),
    entries: [],
    commit: logIndex(5),
  });
  assert.equal(core.repairing, true, 'the leader commit (5) is beyond what this node holds (2)');
  core.step({
    type: 'MsgApp',
    from: id(1),
    to: id(2),
    term: term(1),
    logTerm: term(1),
    index: logIndex(2),
    entries,
    commit: logIndex(5),
  });
  assert.equal(core.repairing, false, 'holding the leader commit of the current term ends the repair');
});

test('a node that bootstrapped through the log and lost its durable commit still commits entry 1 and leads (seed 3094564101)', () => {
  // A single voter bootstraps: entry 1 (the configuration) is made and committed at once. A crash
  // (a power cut) keeps the entry in the WAL but loses the hard state that recorded the commit.
  const confState = { voters: [[id(1), 1]] as const, outgoing: [], learners: [], learnersNext: [], autoLeave: false };
  const storage = new MemoryRaftStorage(confState);
  const config: RaftConfig = { ...RAFT_CONFIG_DEFAULTS, id: id(1), storage, prng: new Prng(5), bootstrapEntry: true };
  const first = new RaftCore(config);
  const rd = first.ready();
  assert.deepEqual(
    rd.entries.map((e) => [e.index, e.term, e.type]),
    [[1, 1, 'conf']],
  );
  storage.append(rd.entries);
  storage.setHardState({ term: term(1), vote: null, commit: logIndex(0) }); // the commit was lost
  // Restarted, it must still apply entry 1 (its configuration) and then campaign and lead.
  const core = new RaftCore(config);
  assert.equal(core.status().commit, 1, 'the bootstrap entry counts as committed');
  for (let t = 0; t < 100 && core.status().role !== 'leader'; t++) {
    core.tick();
    while (core.hasReady()) {
      const r = core.ready();
      storage.append(r.entries);
      if (r.hardState !== null) storage.setHardState(r.hardState);
      core.advance(r);
    }
  }
  assert.equal(core.status().role, 'leader', 'a lone voter leads again');
});
