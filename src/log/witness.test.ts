// Proves the witness role and wait_for_all inside the Raft core: a witness receives entries
// without data (marked) but with their true index and term, persists and acknowledges them,
// counts toward commit, applies nothing, never campaigns, is never a transfer target nor the
// successor of a removed leader; a leader never sends a witness copy to a data node. And a fresh
// cluster with wait_for_all elects its first leader only once every voter granted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logIndex, nodeId, term, type NodeId } from '../lib/ids.js';
import { configFromConfState } from './cluster-config.js';
import { RaftHarness, type AddNodesOptions } from './raft-harness.js';
import { entriesForFollower, metadataOnlyEntry, snapshotForFollower } from './witness.js';
import type { Entry, RaftMessage, Snapshot } from './raft-message.js';

const id = nodeId;
const enc = new TextEncoder();

function cluster(n: number, opts: Partial<AddNodesOptions>): RaftHarness {
  const h = new RaftHarness(11);
  h.addNodes(n, { voters: Array.from({ length: n }, (_, i) => i + 1), ...opts });
  return h;
}

function elect(h: RaftHarness, leader: number): void {
  h.node(leader).core.campaign();
  h.stabilize();
  assert.equal(h.node(leader).core.status().role, 'leader', `node ${leader} should lead`);
}

/** Runs the network to quiescence and returns every message delivered on the way. */
function stabilizeCollect(h: RaftHarness): RaftMessage[] {
  const seen: RaftMessage[] = [];
  for (let round = 0; round < 1000; round++) {
    for (const n of h.nodes.keys()) while (h.processReady(n));
    if (h.network.length === 0) return seen;
    seen.push(...h.network);
    h.deliverAll();
  }
  assert.fail('the network did not settle');
}

const witnessConfig = configFromConfState({
  voters: [
    [id(1), 1],
    [id(2), 1],
    [id(3), 1],
  ],
  outgoing: [],
  learners: [],
  learnersNext: [],
  autoLeave: false,
  witnesses: [id(3)],
});

test('a witness gets normal entries without data and marked, configuration entries whole', () => {
  const normal: Entry = { type: 'normal', term: term(2), index: logIndex(5), data: enc.encode('secret') };
  const conf: Entry = { type: 'conf', term: term(2), index: logIndex(6), change: { changes: [], autoLeave: false } };
  const forWitness = entriesForFollower(witnessConfig, id(3), [normal, conf]);
  assert.deepEqual(forWitness[0], { type: 'normal', term: 2, index: 5, data: new Uint8Array(0), metadataOnly: true });
  assert.equal(forWitness[1], conf);
  assert.deepEqual(entriesForFollower(witnessConfig, id(2), [normal, conf]), [normal, conf]);
  assert.throws(
    () => entriesForFollower(witnessConfig, id(2), [metadataOnlyEntry(normal)]),
    /was a witness and rejoined as a data node without wiping its storage/,
  );
  const snap: Snapshot = {
    metadata: {
      index: logIndex(9),
      term: term(2),
      confState: { voters: [], outgoing: [], learners: [], learnersNext: [], autoLeave: false },
    },
    data: enc.encode('[]'),
  };
  assert.deepEqual(snapshotForFollower(witnessConfig, id(3), snap), {
    metadata: { ...snap.metadata, metadataOnly: true },
    data: new Uint8Array(0),
  });
  assert.equal(snapshotForFollower(witnessConfig, id(1), snap), snap);
});

test('a witness stores the true index and term of every entry, acknowledges, and applies nothing', () => {
  const h = cluster(3, { quorum: { witnesses: [id(3)] } });
  elect(h, 1);
  h.isolate(id(2));
  for (const word of ['a', 'b', 'c']) assert.equal(h.propose(id(1), word), null);
  const seen = stabilizeCollect(h);
  // {1, 3} committed without node 2: the witness's acknowledgements count.
  assert.equal(h.node(1).core.status().commit, 4, "the leader's empty entry and a, b, c");
  assert.deepEqual(h.node(1).applied, ['a', 'b', 'c']);
  assert.deepEqual(h.node(3).applied, []);
  assert.equal(h.node(3).appliedIndex, 4, 'the witness advances its applied index past the copies');
  const leaderLog = h.node(1).core.logEntries(logIndex(1), logIndex(5));
  const witnessLog = h.node(3).core.logEntries(logIndex(1), logIndex(5));
  assert.ok(leaderLog.ok && leaderLog.value.length === 4);
  assert.ok(witnessLog.ok);
  assert.deepEqual(
    witnessLog.value.map((e) => [e.index, e.term, e.type]),
    leaderLog.value.map((e) => [e.index, e.term, e.type]),
  );
  assert.ok(witnessLog.value.every((e) => e.type === 'normal' && e.metadataOnly === true && e.data.length === 0));
  // Nothing with data ever went to the witness.
  const toWitness = seen.filter(
    (m): m is Extract<RaftMessage, { type: 'MsgApp' }> => m.type === 'MsgApp' && m.to === id(3),
  );
  assert.ok(toWitness.length > 0);
  assert.ok(toWitness.every((m) => m.entries.every((e) => e.type !== 'normal' || e.data.length === 0)));
});

test('a witness never campaigns, ignores TimeoutNow, and is refused as a transfer target', () => {
  const h = cluster(3, { quorum: { witnesses: [id(3)] } });
  h.tick(id(3), 100);
  h.processReady(id(3));
  assert.equal(h.network.length, 0, 'no vote request from the witness');
  h.node(3).core.step({ type: 'MsgTimeoutNow', from: id(1), to: id(3), term: term(0) });
  assert.equal(h.node(3).core.status().role, 'follower');
  elect(h, 1);
  const r = h.node(1).core.transferLeadership(id(3));
  assert.ok(!r.ok && r.error.code === 'TRANSFER_INVALID');
  assert.match(r.error.message, /witness/);
});

test('a removed leader hands over to a data voter, never to a more caught-up witness', () => {
  // Data nodes 1, 2, 4 and witness 3. Node 2 lags (cut off), so the witness and node 4 are the
  // most caught-up voters when leader 1 removes itself; only node 4 may take over.
  const h = cluster(4, { quorum: { witnesses: [id(3)] } });
  elect(h, 1);
  h.isolate(id(2));
  const change = h.node(1).core.proposeConfChange({ changes: [{ type: 'remove-node', node: id(1) }], autoLeave: true });
  assert.ok(change.ok);
  const seen = stabilizeCollect(h);
  // The removed leader hands over once a heartbeat carrying the removal's commit was acknowledged.
  h.tick(id(1));
  seen.push(...stabilizeCollect(h));
  const timeoutNow = seen.filter((m) => m.type === 'MsgTimeoutNow').map((m) => m.to);
  assert.deepEqual(timeoutNow, [id(4)]);
  assert.equal(h.node(4).core.status().role, 'leader');
});

test('wait_for_all: no first leader until every voter granted; afterwards a majority suffices', () => {
  const h = cluster(3, { config: { waitForAll: true } });
  h.isolate(id(3));
  h.node(1).core.campaign();
  for (let round = 0; round < 4; round++) {
    h.stabilize();
    const roles = [1, 2].map((n) => h.node(n).core.status().role);
    assert.ok(!roles.includes('leader'), `round ${round}: no leader with 2 of 3 voters, got ${roles.join(',')}`);
    h.tick(id(1), 10);
    h.tick(id(2), 10);
  }
  h.recover();
  // Both 1 and 2 may be campaigning now (split votes are settled by randomized timeouts).
  let leader: number | undefined;
  for (let i = 0; i < 200 && leader === undefined; i++) {
    for (const n of [1, 2, 3]) h.tick(id(n));
    h.stabilize();
    leader = [1, 2, 3].find((n) => h.node(n).core.status().role === 'leader');
  }
  assert.ok(leader !== undefined, 'with every voter present a leader is elected');
  // Afterwards a majority suffices: cut one follower off and commit with the other.
  const [cut, other] = [1, 2, 3].filter((n) => n !== leader) as [number, number];
  h.isolate(id(cut));
  assert.equal(h.propose(id(leader), 'x'), null);
  h.stabilize();
  assert.deepEqual(h.node(other).applied, ['x']);
});

test('wait_for_all also gates the first election after a bootstrap entry (a log no leader wrote)', () => {
  const h = cluster(3, { config: { waitForAll: true, bootstrapEntry: true } });
  h.stabilize();
  // Bootstrapped nodes start at term 1 and so sit out the lease-mode quiet period first.
  for (const n of [2, 3]) h.tick(id(n), 10);
  h.isolate(id(3));
  h.node(1).core.campaign();
  h.stabilize();
  assert.notEqual(h.node(1).core.status().role, 'leader');
  h.recover();
  elect(h, 1);
});

test('without wait_for_all the same cold start elects with a majority (the option is what blocks)', () => {
  const h = cluster(3, {});
  h.isolate(id(3));
  elect(h, 1);
});

test('a one-voter cluster with wait_for_all elects itself: all of its voters are present', () => {
  const h = cluster(1, { config: { waitForAll: true } });
  elect(h, 1);
  const voters: NodeId[] = [...configFromConfState(h.node(1).core.confState()).voters.keys()];
  assert.deepEqual(voters, [id(1)]);
});

test('a witness refuses reads with NOT_LEADER and the leader as hint; a data follower forwards them', () => {
  const h = cluster(3, { quorum: { witnesses: [id(3)] } });
  elect(h, 1);
  assert.equal(h.propose(id(1), 'a'), null);
  h.stabilize();
  const refused = h.node(3).core.readIndex(enc.encode('r1'));
  assert.ok(!refused.ok);
  assert.equal(refused.error.code, 'NOT_LEADER');
  assert.equal(refused.error.leaderHint, id(1));
  assert.match(refused.error.message, /witness/);
  assert.ok(h.node(2).core.readIndex(enc.encode('r2')).ok, 'a data follower forwards its read to the leader');
});

test('a former witness made a data voter without wiping its log neither campaigns nor serves reads', () => {
  // Witness 3 holds metadata-only copies. It is removed and added back as a data voter: its log
  // still lacks the data of those entries, so it must never lead or answer a read from them.
  const h = cluster(3, { quorum: { witnesses: [id(3)] } });
  elect(h, 1);
  for (const word of ['a', 'b']) assert.equal(h.propose(id(1), word), null);
  h.stabilize();
  assert.ok(h.node(1).core.proposeConfChange({ changes: [{ type: 'remove-node', node: id(3) }], autoLeave: true }).ok);
  h.stabilize();
  for (let i = 0; i < 3; i++) h.tick(id(1));
  h.stabilize();
  assert.ok(
    h.node(1).core.proposeConfChange({ changes: [{ type: 'add-voter', node: id(3), votes: 1 }], autoLeave: true }).ok,
  );
  h.stabilize();
  for (let i = 0; i < 3; i++) h.tick(id(1));
  h.stabilize();
  assert.match(h.node(3).core.status().config, /voters=\(1,2,3\)/, 'node 3 is a data voter again');
  assert.ok(h.node(3).core.holdsMetadataOnly(), 'its log still holds the metadata-only copies');
  h.node(3).core.campaign();
  const seen = stabilizeCollect(h);
  assert.notEqual(h.node(3).core.status().role, 'leader');
  assert.deepEqual(
    seen.filter((m) => m.from === id(3) && (m.type === 'MsgPreVote' || m.type === 'MsgVote')),
    [],
    'it asked nobody for a vote',
  );
  const read = h.node(3).core.readIndex(enc.encode('r'));
  assert.ok(!read.ok && read.error.code === 'NOT_LEADER');
  // A data node that never was a witness holds no such copy.
  assert.equal(h.node(2).core.holdsMetadataOnly(), false);
});
