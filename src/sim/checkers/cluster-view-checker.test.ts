// Proves the membership view checkers bite on each property they claim, from hand-written trace
// events: a clean history (views skewed in time, a restarted node re-applying its log) passes;
// one view id with two member sets, one index with two quorate flags, a view id going back or an
// index applied twice in one process are caught; and a quorate flag that disagrees with the votes
// of the view's members (weights, expected votes, the tie-breaker's half split) is caught.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId } from '../../lib/ids.js';
import type { QuorumConfig } from '../../quorum/index.js';
import type { TraceFields } from '../../runtime/env.js';
import type { SimEvent, TraceSource } from '../trace.js';
import { ClusterQuorumChecker, ClusterViewChecker } from './cluster-view-checker.js';

function feeder(checker: {
  observe(e: SimEvent): void;
}): (source: TraceSource, event: string, fields: TraceFields) => void {
  let t = 0;
  return (source, event, fields) => {
    checker.observe({ timeUs: t++, source, event, fields });
  };
}

const view = (index: number, viewId: number, members: string, quorate: boolean, cmd = 'join'): TraceFields => ({
  index,
  viewId,
  members,
  quorate,
  cmd,
});

test('a clean history with skew and a restart that re-applies the log passes', () => {
  const found: string[] = [];
  const c = new ClusterViewChecker((m) => found.push(m));
  const feed = feeder(c);
  feed(1, 'view', view(5, 1, '1@1', false));
  feed(1, 'view', view(6, 2, '1@1,2@1', true));
  feed(2, 'view', view(5, 1, '1@1', false));
  feed(1, 'view', view(9, 3, '1@1,2@1,3@1', true));
  feed(2, 'view', view(6, 2, '1@1,2@1', true));
  feed('sim', 'crash', { node: 2 });
  feed('sim', 'start', { node: 2, incarnation: 2 });
  feed(2, 'view', view(5, 1, '1@1', false)); // re-applied after the restart
  feed(2, 'view', view(9, 3, '1@1,2@1,3@1', true));
  assert.deepEqual(found, []);
  assert.equal(c.views, 3);
  assert.ok(c.checks >= 5);
});

test('one view id with two member sets is caught (a node that skipped a view bump)', () => {
  const found: string[] = [];
  const feed = feeder(new ClusterViewChecker((m) => found.push(m)));
  feed(2, 'view', view(9, 3, '1@1,2@1,3@1', true));
  feed(1, 'view', view(9, 3, '1@1,2@1,3@1', true));
  feed(2, 'view', view(12, 4, '1@1,2@1', true, 'fail'));
  feed(1, 'view', view(12, 3, '1@1,2@1', true, 'fail'));
  assert.equal(found.length, 2, found.join('\n'));
  assert.match(found[0] ?? '', /view 3 is \{1@1,2@1,3@1\} on node 2 but \{1@1,2@1\} on node 1/);
  assert.match(found[1] ?? '', /after index 12 node 2 had view\/quorate 4\/true but node 1 had 3\/true/);
});

test('two quorate flags after one index, a view id going back and an index applied twice are caught', () => {
  const found: string[] = [];
  const feed = feeder(new ClusterViewChecker((m) => found.push(m)));
  feed(1, 'view', view(6, 2, '1@1,2@1', true));
  feed(2, 'view', view(6, 2, '1@1,2@1', false));
  feed(3, 'view', view(7, 3, '1@1,2@1,3@1', true));
  feed(3, 'view', view(8, 2, '1@1,2@1', true));
  feed(1, 'view', view(6, 2, '1@1,2@1', true));
  feed(1, 'view', { index: 'x', viewId: 1, members: '1@1', quorate: true });
  assert.equal(found.length, 4, found.join('\n'));
  assert.match(found[0] ?? '', /after index 6 node 1 had view\/quorate 2\/true but node 2 had 2\/false/);
  assert.match(found[1] ?? '', /node 3 went back from view 3 to view 2/);
  assert.ok(found.some((m) => /node 1 applied membership index 6 after index 6/.test(m)));
  assert.ok(found.some((m) => /malformed view/.test(m)));
});

test('a quorate flag that disagrees with the votes of the members is caught', () => {
  // Weighted 1x3, 2x1, 3x1, 4x1 with expected votes 6 (quorum 4) and no tie-breaker.
  const config: QuorumConfig = {
    voters: new Map([
      [nodeId(1), 3],
      [nodeId(2), 1],
      [nodeId(3), 1],
      [nodeId(4), 1],
    ]),
    expectedVotes: 6,
  };
  const found: string[] = [];
  const c = new ClusterQuorumChecker(config, (m) => found.push(m));
  const feed = feeder(c);
  feed(1, 'view', view(5, 1, '1@1', false));
  feed(1, 'view', view(6, 2, '1@1,2@1', true)); // 4 of 6
  feed(2, 'view', view(6, 2, '1@1,2@1', true)); // same view: checked once
  feed(1, 'view', view(7, 3, '2@1,3@1,4@1', true)); // 3 of 6: not quorate
  feed(1, 'view', view(8, 4, '1@1', true)); // 3 of 6
  assert.equal(c.checks, 4);
  assert.equal(found.length, 2, found.join('\n'));
  assert.match(
    found[0] ?? '',
    /view 3 \{2@1,3@1,4@1\} flagged quorate=true, but its members hold 3 of 6 expected votes \(quorate=false\)/,
  );
});

test('the tie-breaker decides an exact half split, and the checker follows it', () => {
  const config: QuorumConfig = {
    voters: new Map([
      [nodeId(1), 1],
      [nodeId(2), 1],
      [nodeId(3), 1],
      [nodeId(4), 1],
    ]),
    expectedVotes: 4,
    tieBreaker: nodeId(1),
  };
  const found: string[] = [];
  const feed = feeder(new ClusterQuorumChecker(config, (m) => found.push(m)));
  feed(1, 'view', view(5, 5, '1@1,2@1', true));
  feed(3, 'view', view(6, 6, '3@1,4@1', false));
  assert.deepEqual(found, []);
  feed(3, 'view', view(7, 7, '3@1,4@2', true));
  assert.equal(found.length, 1);
});
