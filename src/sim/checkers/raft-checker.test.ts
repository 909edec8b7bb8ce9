// Proves the Raft safety checker bites on each property it claims, from hand-written trace
// events: two leaders in a term, an election won without a quorum, two contents (or two
// predecessors) for one index and term, a new leader missing an applied entry, two entries or two
// state hashes applied at one index, an entry applied that the node does not hold; and that a
// clean history (elections, replication with truncation, restart, snapshot install) passes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TraceFields } from '../../runtime/env.js';
import type { SimEvent, TraceSource } from '../trace.js';
import { RaftSafetyChecker } from './raft-checker.js';

function harness(): { feed: (source: TraceSource, event: string, fields: TraceFields) => void; found: string[]; checker: RaftSafetyChecker } {
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
  feed(2, 'elected', { term: 2, voters: '1x1,2x1,3x1', outgoing: '' });
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
  feed(1, 'elected', { term: 3, voters: '1x1,2x1,3x1', outgoing: '' });
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
  feed(1, 'elected', { term: 5, voters: '1x1,2x1,3x3', outgoing: '' });
  assert.match(found[0] ?? '', /election quorum: node 1 became leader of term 5 with votes from \{1,2\}/);
  // Joint: a quorum of the incoming side alone is not enough.
  feed(2, 'raft-vote-granted', { type: 'MsgVote', to: 1, msgTerm: 6 });
  feed(1, 'elected', { term: 6, voters: '1x1,2x1,3x1', outgoing: '3x1,4x1,5x1' });
  assert.equal(found.length, 2);
  // Two of three plain voters are a quorum: no finding.
  feed(3, 'raft-vote-granted', { type: 'MsgVote', to: 1, msgTerm: 7 });
  feed(1, 'elected', { term: 7, voters: '1x1,2x1,3x1', outgoing: '' });
  assert.equal(found.length, 2);
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
  assert.match(found[0] ?? '', /leader completeness: node 2, leader of term 2, appends its first entry at 2, but node 1 applied entry 2 of the earlier term 1/);
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
