// Proves the Raft safety checker bites on each property it claims, from hand-written trace
// events: two leaders in a term, an election won without a quorum (weights, joint sides, expected
// votes, tie-breaker, and the latest configuration in the winner's log), two contents (or two
// predecessors) for one index and term, a new leader missing an applied entry, two entries or two
// state hashes applied at one index, an entry applied that the node does not hold; that a clean
// history (elections, replication with truncation, restart, snapshot install) passes; and that a
// witness's metadata-only copies match by term only (and still by predecessor term).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TraceFields } from '../../runtime/env.js';
import type { SimEvent, TraceSource } from '../trace.js';
import { RaftSafetyChecker } from './raft-checker.js';

function harness(): {
  feed: (source: TraceSource, event: string, fields: TraceFields) => void;
  found: string[];
  checker: RaftSafetyChecker;
} {
  const found: string[] = [];
  const checker = new RaftSafetyChecker((m) => found.push(m));
  let t = 0;
  const feed = (source: TraceSource, event: string, fields: TraceFields): void => {
    const e: SimEvent = { timeUs: t++, source, event, fields };
    checker.observe(e);
  };
  return { feed, found, checker };
}

const D1 = '0000000a';
const D2 = '0000000b';
const D3 = '0000000c';

test('a clean run (election, replication with truncation, restart, snapshot install) passes', () => {
  const { feed, found, checker } = harness();
  feed(1, 'raft-vote-granted', { type: 'MsgVote', to: 2, msgTerm: 2 });
  feed(2, 'raft-become-leader', { term: 2 });
  feed(2, 'elected', { term: 2, config: 'voters=(1,2,3)', latest: 'voters=(1,2,3)' });
  feed(2, 'persist', { from: 1, ents: `2:${D1}` });
  feed(1, 'persist', { from: 1, ents: `1:${D3}` }); // an old uncommitted entry, replaced next
  feed(1, 'persist', { from: 1, ents: `2:${D1},2:${D2}` });
  feed(2, 'persist', { from: 2, ents: `2:${D2}` });
  feed(2, 'apply', { index: 1, term: 2, d: D1, hash: 'h1' });
  feed(1, 'apply', { index: 1, term: 2, d: D1, hash: 'h1' });
  feed(2, 'apply', { index: 2, term: 2, d: D2, hash: 'h2' });
  feed(1, 'recovered', { snap: 0, ents: `2:${D1},2:${D2}`, applied: 0, hash: 'h0' });
  feed(1, 'apply', { index: 1, term: 2, d: D1, hash: 'h1' }); // re-applied after the restart
  feed(3, 'restore', { index: 2, term: 2, hash: 'h2' });
  feed(3, 'persist', { from: 3, ents: `3:${D3}` });
  feed(3, 'raft-vote-granted', { type: 'MsgVote', to: 1, msgTerm: 3 });
  feed(1, 'raft-become-leader', { term: 3 });
  feed(1, 'elected', { term: 3, config: 'voters=(1,2,3)', latest: 'voters=(1,2,3)' });
  feed(1, 'persist', { from: 3, ents: `3:${D3}` });
  assert.deepEqual(found, []);
  assert.ok(checker.checks > 10, 'the checker actually checked something');
});

test('two leaders in one term are caught', () => {
  const { feed, found } = harness();
  feed(1, 'raft-become-leader', { term: 4 });
  feed(2, 'raft-become-leader', { term: 4 });
  assert.equal(found.length, 1);
  assert.match(found[0] ?? '', /election safety: nodes 1 and 2 both became leader in term 4/);
});

test('an election won without a quorum of voters is caught (weights and joint configurations)', () => {
  const { feed, found } = harness();
  // 1 and 2 (2 of 5 votes) cannot elect 1 when node 3 holds 3 votes.
  feed(2, 'raft-vote-granted', { type: 'MsgVote', to: 1, msgTerm: 5 });
  feed(1, 'elected', { term: 5, config: 'voters=(1,2,3x3)', latest: 'voters=(1,2,3x3)' });
  assert.match(found[0] ?? '', /election quorum: node 1 became leader of term 5 with votes from \{1,2\}/);
  // Joint: a quorum of the incoming side alone is not enough.
  feed(2, 'raft-vote-granted', { type: 'MsgVote', to: 1, msgTerm: 6 });
  feed(1, 'elected', { term: 6, config: 'voters=(1,2,3)&&(3,4,5)', latest: 'voters=(1,2,3)&&(3,4,5)' });
  assert.equal(found.length, 2);
  // Two of three plain voters are a quorum: no finding.
  feed(3, 'raft-vote-granted', { type: 'MsgVote', to: 1, msgTerm: 7 });
  feed(1, 'elected', { term: 7, config: 'voters=(1,2,3)', latest: 'voters=(1,2,3)' });
  assert.equal(found.length, 2);
  // Expected votes above the total: 2 of 3 votes are not a quorum of expected 5.
  feed(2, 'raft-vote-granted', { type: 'MsgVote', to: 1, msgTerm: 8 });
  feed(1, 'elected', { term: 8, config: 'voters=(1,2,3) expected=5', latest: 'voters=(1,2,3) expected=5' });
  assert.match(found[2] ?? '', /term 8 .* applied configuration voters=\(1,2,3\) expected=5/);
  // An exact half split wins only with the tie-breaker (lowest: node 1): {3,4} must not, {1,2} may.
  feed(4, 'raft-vote-granted', { type: 'MsgVote', to: 3, msgTerm: 9 });
  feed(3, 'elected', {
    term: 9,
    config: 'voters=(1,2,3,4) tie-breaker=lowest',
    latest: 'voters=(1,2,3,4) tie-breaker=lowest',
  });
  assert.equal(found.length, 4);
  feed(2, 'raft-vote-granted', { type: 'MsgVote', to: 1, msgTerm: 10 });
  feed(1, 'elected', {
    term: 10,
    config: 'voters=(1,2,3,4) tie-breaker=lowest',
    latest: 'voters=(1,2,3,4) tie-breaker=lowest',
  });
  assert.equal(found.length, 4);
  // A quorum of the applied configuration but not of the latest one in the winner's log.
  feed(1, 'elected', { term: 11, config: 'voters=(1)', latest: 'voters=(2)' });
  assert.match(found[4] ?? '', /term 11 with votes from \{1\}, not a quorum of its latest configuration voters=\(2\)/);
  assert.equal(found.length, 5);
});

test('witness copies match by term and predecessor; their applies skip content and state hash', () => {
  const { feed, found } = harness();
  feed(3, 'persist', { from: 1, ents: '1:meta,1:meta' }); // the witness's copies arrive first
  feed(1, 'persist', { from: 1, ents: `1:${D1},1:${D2}` });
  feed(3, 'apply', { index: 1, term: 1, d: 'meta', hash: '-' });
  feed(1, 'apply', { index: 1, term: 1, d: D1, hash: 'h1' });
  feed(2, 'persist', { from: 1, ents: `1:${D1},1:${D2}` });
  feed(2, 'apply', { index: 1, term: 1, d: D1, hash: 'h1' });
  assert.equal(found.length, 0, found.join('\n'));
  // The content is still compared between data nodes once it was seen...
  feed(4, 'persist', { from: 1, ents: `1:${D3}` });
  assert.match(found[0] ?? '', /log matching: entry 1 of term 1 is 0000000c on node 4 but 0000000a/);
  // ...and a copy with another predecessor term is still caught.
  feed(5, 'persist', { from: 1, ents: '2:meta,1:meta' });
  assert.match(found[1] ?? '', /entry 2 of term 1 follows an entry of term 2 on node 5/);
});

test('log matching: one index and term with two contents, or two predecessors, is caught', () => {
  const a = harness();
  a.feed(1, 'persist', { from: 1, ents: `1:${D1}` });
  a.feed(2, 'persist', { from: 1, ents: `1:${D2}` });
  assert.match(a.found[0] ?? '', /log matching: entry 1 of term 1 is 0000000b on node 2 but 0000000a on node 1/);
  const b = harness();
  b.feed(1, 'persist', { from: 1, ents: `1:${D1},2:${D2}` });
  b.feed(2, 'persist', { from: 1, ents: `3:${D3},2:${D2}` });
  assert.match(b.found[0] ?? '', /entry 2 of term 2 follows an entry of term 3 on node 2 but of term 1 on node 1/);
});

test('a new leader that lacks an applied entry of an earlier term is caught', () => {
  const { feed, found } = harness();
  feed(1, 'persist', { from: 1, ents: `1:${D1},1:${D2}` });
  feed(1, 'apply', { index: 1, term: 1, d: D1, hash: 'h1' });
  feed(1, 'apply', { index: 2, term: 1, d: D2, hash: 'h2' });
  feed(2, 'persist', { from: 1, ents: `1:${D1}` });
  feed(2, 'raft-become-leader', { term: 2 });
  feed(2, 'persist', { from: 2, ents: `2:${D3}` }); // overwrites the applied entry 2
  assert.equal(found.length, 1);
  assert.match(
    found[0] ?? '',
    /leader completeness: node 2, leader of term 2, appends its first entry at 2, but node 1 applied entry 2 of the earlier term 1/,
  );
});

test("leader completeness covers entries committed before the leader's term, not entries of older terms committed later", () => {
  // Seed 1841748775: node 3 wins term 12 while entry 2 (term 1) does not exist yet; leader 2 of
  // term 1 appends it afterwards and it commits in term 3. Node 3 (paused) then appends at 2.
  const late = harness();
  late.feed(2, 'persist', { from: 1, ents: `1:${D1},1:${D2}` });
  late.feed(2, 'apply', { index: 2, term: 1, d: D2, hash: 'h2', nodeTerm: 3 });
  late.feed(3, 'persist', { from: 1, ents: `1:${D1}` });
  late.feed(3, 'raft-become-leader', { term: 2 });
  late.feed(3, 'persist', { from: 2, ents: `2:${D3}` });
  assert.deepEqual(late.found, []);
  // The same history, but the entry was applied by a node of term 1: committed before term 2.
  const early = harness();
  early.feed(2, 'persist', { from: 1, ents: `1:${D1},1:${D2}` });
  early.feed(2, 'apply', { index: 2, term: 1, d: D2, hash: 'h2', nodeTerm: 3 });
  early.feed(1, 'persist', { from: 1, ents: `1:${D1},1:${D2}` });
  early.feed(1, 'apply', { index: 2, term: 1, d: D2, hash: 'h2', nodeTerm: 1 });
  early.feed(3, 'persist', { from: 1, ents: `1:${D1}` });
  early.feed(3, 'raft-become-leader', { term: 2 });
  early.feed(3, 'persist', { from: 2, ents: `2:${D3}` });
  assert.match(
    early.found[0] ?? '',
    /leader completeness: node 3, leader of term 2, .* entry 2 of the earlier term 1, committed by term 1/,
  );
});

test('state machine safety: different entries, different hashes, or an entry not held are caught', () => {
  const a = harness();
  a.feed(1, 'persist', { from: 1, ents: `1:${D1}` });
  a.feed(2, 'persist', { from: 1, ents: `2:${D2}` });
  a.feed(1, 'apply', { index: 1, term: 1, d: D1, hash: 'h1' });
  a.feed(2, 'apply', { index: 1, term: 2, d: D2, hash: 'h1' });
  assert.match(a.found[0] ?? '', /state machine safety: node 2 applied entry 1 of term 2/);
  const b = harness();
  b.feed(1, 'persist', { from: 1, ents: `1:${D1}` });
  b.feed(2, 'persist', { from: 1, ents: `1:${D1}` });
  b.feed(1, 'apply', { index: 1, term: 1, d: D1, hash: 'h1' });
  b.feed(2, 'apply', { index: 1, term: 1, d: D1, hash: 'other' });
  assert.match(b.found[0] ?? '', /state hash other at applied index 1/);
  const c = harness();
  c.feed(1, 'apply', { index: 1, term: 1, d: D1, hash: 'h1' });
  assert.match(c.found[0] ?? '', /applied entry 1 \(term 1, 0000000a\) that its durable log does not hold/);
});
