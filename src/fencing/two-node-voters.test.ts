// Proves the two_node voter policy: a peer that is out with no fence pending (left cleanly, or
// fenced) is demoted; a peer that is a member again while a learner gets its vote back; nothing
// happens during a configuration change, while a fence is pending, or in any other configuration.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId } from '../lib/ids.js';
import { twoNodeVoterStep, type TwoNodeVoterInput } from './two-node-voters.js';

const BOTH: TwoNodeVoterInput = {
  self: nodeId(1),
  selfStatus: 'member',
  peer: nodeId(2),
  peerStatus: 'member',
  peerFencePending: false,
  peerJoinedOnce: true,
  peerHeard: true,
  voters: [nodeId(1), nodeId(2)],
  learners: [],
  changing: false,
};
const ALONE: TwoNodeVoterInput = { ...BOTH, voters: [nodeId(1)], learners: [nodeId(2)] };

test('a peer out with no fence pending is demoted; a pending fence or a change in flight waits', () => {
  assert.deepEqual(twoNodeVoterStep({ ...BOTH, peerStatus: 'out' }), { kind: 'demote', node: 2 });
  assert.equal(twoNodeVoterStep(BOTH), null, 'a member keeps its vote');
  assert.equal(twoNodeVoterStep({ ...BOTH, peerStatus: 'out', peerJoinedOnce: false }), null, 'not joined yet');
  assert.equal(twoNodeVoterStep({ ...BOTH, peerStatus: 'needs-fencing', peerFencePending: true }), null);
  assert.equal(twoNodeVoterStep({ ...BOTH, peerStatus: 'quarantined', peerFencePending: false }), null);
  assert.equal(twoNodeVoterStep({ ...BOTH, peerStatus: 'out', changing: true }), null);
});

test('a leader that left cleanly demotes itself (it hands over), so its peer runs alone', () => {
  assert.deepEqual(twoNodeVoterStep({ ...BOTH, selfStatus: 'out' }), { kind: 'demote', node: 1 });
  assert.equal(
    twoNodeVoterStep({ ...BOTH, selfStatus: 'out', peerHeard: false }),
    null,
    'a silent peer is not left alone',
  );
  assert.equal(
    twoNodeVoterStep({ ...BOTH, selfStatus: 'out', peerStatus: 'out' }),
    null,
    'both gone: nobody to run alone',
  );
});

test('a learner that is a member again gets its vote back; one that is still out does not', () => {
  assert.deepEqual(twoNodeVoterStep(ALONE), { kind: 'promote', node: 2 });
  assert.equal(twoNodeVoterStep({ ...ALONE, peerStatus: 'out' }), null);
  assert.equal(twoNodeVoterStep({ ...ALONE, changing: true }), null);
});

test('other configurations are left alone', () => {
  // This node is the learner (the peer runs alone): it changes nothing.
  assert.equal(twoNodeVoterStep({ ...ALONE, self: nodeId(2), peer: nodeId(1), peerStatus: 'member' }), null);
  // Three voters (not a two_node configuration).
  assert.equal(twoNodeVoterStep({ ...BOTH, peerStatus: 'out', voters: [nodeId(1), nodeId(2), nodeId(3)] }), null);
});
