// Proves the self-fence rule (src/fencing/self-fence.ts): a removed incarnation ends at once; a
// member whose local verdict is negative and that hears no quorum within its lease ends; one that
// still hears the leader stays; a majority in the middle of
// an election (nobody hears a leader, everybody hears each other) never does; a node that never was
// a quorate member (still starting) never does; stale pings and non-voters do not count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId, type NodeId } from '../lib/ids.js';
import { selfFenceVerdict, type SelfFenceInput } from './self-fence.js';

const n = (x: number): NodeId => nodeId(x);
/** Voters 1-3 with one vote each, node 4 a non-voter: quorum 2. */
const majority = (heard: ReadonlySet<NodeId>): boolean => [...heard].filter((x) => x <= 3).length >= 2;

function input(over: Partial<SelfFenceInput>): SelfFenceInput {
  return {
    self: n(1),
    wasQuorateMember: true,
    removed: false,
    locallyQuorate: false,
    quorate: majority,
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
  assert.deepEqual(v.heard, [1, 2, 3, 4]);
});

test('hearing one other voter of three is still a quorum', () => {
  const v = selfFenceVerdict(
    input({
      silences: [
        { node: n(2), silentMs: 999 },
        { node: n(3), silentMs: null },
      ],
    }),
  );
  assert.equal(v.fence, false);
  assert.deepEqual(v.heard, [1, 2]);
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
  if (!v.fence) assert.fail('a cut-off member ends itself');
  assert.equal(v.rule, 'cut-off');
  assert.deepEqual(v.heard, [1, 4], 'a non-voter heard does not make a quorum');
  assert.match(v.why, /the nodes heard within the 1000 ms lease \(1, 4\) hold no quorum/);
});

test('a node that never was a quorate member (starting up) does not end itself when alone', () => {
  const v = selfFenceVerdict(input({ wasQuorateMember: false, silences: [] }));
  assert.equal(v.fence, false);
});

test('two_node (no quorum rule): a lone member does not end itself by rule 2', () => {
  const v = selfFenceVerdict(input({ quorate: null, silences: [] }));
  assert.equal(v.fence, false);
});

test('a node that hears the leader (verdict positive) stays even when its pings are stale', () => {
  const v = selfFenceVerdict(input({ locallyQuorate: true, silences: [] }));
  assert.equal(v.fence, false);
});

test('an incarnation that applied its own removal ends at once, even hearing everyone', () => {
  const v = selfFenceVerdict(input({ removed: true }));
  assert.ok(v.fence && v.rule === 'removed');
});
