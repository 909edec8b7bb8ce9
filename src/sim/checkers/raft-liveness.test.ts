// Proves the liveness check models elections that count with every configuration in the log: a
// run is excused when the only configuration entry that could commit needs a voter whose disk was
// destroyed (no healthy node can win an election), and it is NOT excused (a late commit is a
// violation) when some healthy node could still win, e.g. when the blocking entry sits only on a
// node whose log is behind, or when no configuration entry is pending at all.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TraceFields } from '../../runtime/env.js';
import type { TraceSource } from '../trace.js';
import { RaftLiveness } from './raft-liveness.js';
import { parseConfig } from './raft-events.js';

const BOUND_MS = 60_000;
const COMMIT_BOUND_MS = 20_000;

function rig(): {
  feed: (source: TraceSource, event: string, fields: TraceFields) => void;
  found: string[];
  live: RaftLiveness;
  at: (ms: number) => void;
} {
  const initial = parseConfig('voters=(1,2) learners=(3)');
  assert.ok(initial !== null);
  const found: string[] = [];
  const live = new RaftLiveness(initial, BOUND_MS, COMMIT_BOUND_MS, 400, (m) => found.push(m));
  let nowMs = 0;
  live.attachClock(() => nowMs);
  const feed = (source: TraceSource, event: string, fields: TraceFields): void => {
    live.observe({ timeUs: nowMs * 1000, source, event, fields });
  };
  return {
    feed,
    found,
    live,
    at: (ms) => {
      nowMs = ms;
    },
  };
}

/** Nodes 1 and 2 hold entries up to 4 (term 2); node 3 (to be promoted) had its disk destroyed. */
function stuckCluster(pendingOn: readonly number[], longer: readonly number[]): ReturnType<typeof rig> {
  const r = rig();
  for (const n of [1, 2]) {
    r.feed(n, 'recovered', { snap: 0, snapTerm: 0, ents: '', applied: 0, hash: 'h0' });
    r.feed(n, 'persist', {
      from: 1,
      ents: `1:0000000a,2:0000000b,2:0000000c${longer.includes(n) ? ',2:0000000d' : ''}`,
    });
  }
  r.feed('sim', 'bitflip', { node: 3, bits: 4 });
  r.feed(3, 'start-refused', { code: 'RECOVERY_IMPOSSIBLE', reason: 'both copies destroyed' });
  // The joint entry promoting 3 to a 3-vote voter: its incoming side needs node 3.
  for (const n of pendingOn)
    r.feed(n, 'raft-conf-latest', { index: 4, config: 'voters=(1,2,3x3)&&(1,2) autoleave', counted: 2 });
  r.feed('sim', 'phase', { name: 'liveness' });
  return r;
}

test('excused: the configuration entry every up-to-date node holds needs a destroyed voter', () => {
  const r = stuckCluster([1, 2], [1, 2]);
  r.at(COMMIT_BOUND_MS + 1);
  assert.equal(r.live.satisfied(), false);
  assert.deepEqual(r.found, [], 'no late-commit violation: no healthy node can win');
  r.at(BOUND_MS);
  assert.equal(r.live.satisfied(), true);
  assert.equal(r.live.excused, true);
});

test('not excused: the blocking entry is only on a node whose log is behind, so the other can win', () => {
  // Node 2 holds the entry but its log is shorter than node 1's (which has no pending change):
  // node 1 can win with {1,2} under (1,2).
  const r = stuckCluster([2], [1]);
  r.at(COMMIT_BOUND_MS + 1);
  assert.equal(r.live.satisfied(), false);
  assert.match(r.found[0] ?? '', /no new entry committed within 400 ticks/);
  r.at(BOUND_MS);
  assert.equal(r.live.satisfied(), false);
  assert.equal(r.live.excused, false);
});

test('not excused: with no pending configuration the healthy quorum must make progress', () => {
  const r = stuckCluster([], [1, 2]);
  r.at(COMMIT_BOUND_MS + 1);
  assert.equal(r.live.satisfied(), false);
  assert.equal(r.found.length, 1);
  r.at(BOUND_MS);
  assert.equal(r.live.satisfied(), false);
  assert.equal(r.live.excused, false);
});
