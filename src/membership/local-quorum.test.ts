// Proves the local quorum verdict follows the design note: a leader is quorate only with a valid
// lease, a follower only while it heard the current leader within the follower lease, candidates
// never, and never while the applied view itself is not quorate; every verdict explains itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId } from '../lib/ids.js';
import { localQuorumStatus, type LocalQuorumInput } from './local-quorum.js';

const base: LocalQuorumInput = {
  self: nodeId(2),
  role: 'follower',
  lead: nodeId(1),
  leaseValid: false,
  sinceLeaderMs: 40,
  followerLeaseMs: 900,
  view: { quorate: true, explanation: 'quorate: 3/3 votes (quorum 2 of expected 3)' },
};

test('each rule decides as documented', () => {
  const cases: [Partial<LocalQuorumInput>, boolean, string][] = [
    [{}, true, 'leader-heard'],
    [{ sinceLeaderMs: 900 }, true, 'leader-heard'],
    [{ sinceLeaderMs: 901 }, false, 'leader-silent'],
    [{ sinceLeaderMs: null }, false, 'leader-silent'],
    [{ lead: null }, false, 'no-leader'],
    [{ role: 'candidate' }, false, 'electing'],
    [{ role: 'pre-candidate' }, false, 'electing'],
    [{ role: 'leader', lead: nodeId(2), leaseValid: true, sinceLeaderMs: null }, true, 'leader-lease'],
    [{ role: 'leader', lead: nodeId(2), leaseValid: false }, false, 'leader-lease-expired'],
    [{ view: null }, false, 'view-not-quorate'],
    [
      { view: { quorate: false, explanation: 'not quorate: wait_for_all is waiting for node(s) 3' } },
      false,
      'view-not-quorate',
    ],
    [{ role: 'leader', leaseValid: true, view: { quorate: false, explanation: 'x' } }, false, 'view-not-quorate'],
  ];
  for (const [change, quorate, reason] of cases) {
    const r = localQuorumStatus({ ...base, ...change });
    assert.equal(r.quorate, quorate, JSON.stringify(change));
    assert.equal(r.reason, reason, JSON.stringify(change));
    assert.match(r.explanation, quorate ? /^quorate: / : /^not quorate: /);
  }
  assert.match(
    localQuorumStatus({ ...base, view: { quorate: false, explanation: 'waiting for node(s) 3' } }).explanation,
    /waiting for node\(s\) 3/,
    'the view explanation is carried',
  );
  assert.match(localQuorumStatus({ ...base, sinceLeaderMs: 1500 }).explanation, /1500 ms ago from leader 1/);
});

test('nonsense timing inputs are programmer errors', () => {
  assert.throws(() => localQuorumStatus({ ...base, followerLeaseMs: 0 }), /lease/);
  assert.throws(() => localQuorumStatus({ ...base, sinceLeaderMs: -1 }), /non-negative/);
});
