// Proves the self-fence rule (src/fencing/self-fence.ts): a removed incarnation ends at once; a
// member that hears less than a quorum of votes within its lease ends; a majority in the middle of
// an election (nobody hears a leader, everybody hears each other) never does; a node that never was
// a quorate member (still starting) never does; stale pings and non-voters do not count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId, type NodeId } from '../lib/ids.js';
import { selfFenceVerdict, type SelfFenceInput } from './self-fence.js';

const n = (x: number): NodeId => nodeId(x);
const VOTES = new Map<NodeId, number>([
  [n(1), 1],
  [n(2), 1],
  [n(3), 1],
  [n(4), 0],
]);

function input(over: Partial<SelfFenceInput>): SelfFenceInput {
  return {
    self: n(1),
    wasQuorateMember: true,
    removed: false,
    votes: VOTES,
    quorum: 2,
    silences: [
      { node: n(2), silentMs: 50 },
      { node: n(3), silentMs: 80 },
      { node: n(4), silentMs: 10 },
    ],
    nodeLeaseMs: 1000,
    ...over,
  };
}

test('a member that hears the others within the lease stays (an election in progress changes nothing)', () => {
  const v = selfFenceVerdict(input({}));
  assert.equal(v.fence, false);
  assert.equal(v.heardVotes, 3);
});

test('hearing one other voter of three is still a quorum', () => {
  const v = selfFenceVerdict(input({ silences: [{ node: n(2), silentMs: 999 }, { node: n(3), silentMs: null }] }));
  assert.equal(v.fence, false);
  assert.equal(v.heardVotes, 2);
});

test('a member cut off past its lease ends itself, and says whom it heard', () => {
  const v = selfFenceVerdict(
    input({
      silences: [
        { node: n(2), silentMs: 1001 },
        { node: n(3), silentMs: null },
        { node: n(4), silentMs: 5 },
      ],
    }),
  );
  assert.equal(v.fence, true);
  assert.ok(v.fence && v.rule === 'cut-off');
  assert.equal(v.heardVotes, 1, 'a non-voter heard does not count');
  assert.match(v.fence ? v.why : '', /heard 1 of the 2 votes needed within the 1000 ms lease \(voters heard: none\)/);
});

test('a node that never was a quorate member (starting up) does not end itself when alone', () => {
  const v = selfFenceVerdict(input({ wasQuorateMember: false, silences: [] }));
  assert.equal(v.fence, false);
});

test('an incarnation that applied its own removal ends at once, even hearing everyone', () => {
  const v = selfFenceVerdict(input({ removed: true }));
  assert.ok(v.fence && v.rule === 'removed');
});
