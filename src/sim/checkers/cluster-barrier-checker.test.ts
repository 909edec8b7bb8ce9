// Proves the barrier checker from hand-written trace events: a clean history (a barrier reached
// after every member called it, one failed by a view change, a call refused up front because the
// view had changed) passes; a barrier reached before every member called it (the
// barrier-without-all bug), two outcomes for one barrier, a caller told ok when the barrier did
// not end reached, and a caller told VIEW_CHANGED when it was reached are each caught.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TraceFields } from '../../runtime/env.js';
import type { TraceSource } from '../trace.js';
import { ClusterBarrierChecker } from './cluster-barrier-checker.js';

interface Feed {
  (source: TraceSource, event: string, fields: TraceFields): void;
  call(node: number, name: string, viewId: number): void;
  result(node: number, name: string, viewId: number, result: string): void;
  end(nodes: readonly number[], name: string, viewId: number, outcome: string): void;
}

function harness(): { feed: Feed; found: string[]; checker: ClusterBarrierChecker } {
  const found: string[] = [];
  const checker = new ClusterBarrierChecker((m) => found.push(m));
  let t = 0;
  const feed = ((source: TraceSource, event: string, fields: TraceFields) => {
    checker.observe({ timeUs: t++, source, event, fields });
  }) as Feed;
  feed.call = (node, name, viewId) => {
    feed('client', 'group-call', { op: 'barrier', node, self: 1, group: 'g', viewId, name });
  };
  feed.result = (node, name, viewId, result) => {
    feed('client', 'group-result', { op: 'barrier', node, self: 1, group: 'g', viewId, name, result });
  };
  feed.end = (nodes, name, viewId, outcome) => {
    for (const n of nodes) feed(n, 'barrier-end', { group: 'g', name, viewId, outcome });
  };
  for (const n of [1, 2, 3]) {
    feed(n, 'group-view', { group: 'g', viewId: 1, members: '1@1,2@1', change: 'joined:2@1', self: 1 });
    feed(n, 'group-view', { group: 'g', viewId: 2, members: '1@1,2@1,3@1', change: 'joined:3@1', self: 1 });
  }
  return { feed, found, checker };
}

test('reached after every call, failed by a view change, and refused up front pass', () => {
  const { feed, found, checker } = harness();
  for (const n of [1, 2, 3]) feed.call(n, 'b1', 2);
  feed.end([1, 2, 3], 'b1', 2, 'reached');
  for (const n of [1, 2, 3]) feed.result(n, 'b1', 2, 'ok');
  feed.call(1, 'b2', 2);
  feed.call(2, 'b2', 2);
  feed.end([1, 2, 3], 'b2', 2, 'view-changed');
  feed.result(1, 'b2', 2, 'VIEW_CHANGED');
  feed.result(2, 'b2', 2, 'VIEW_CHANGED');
  feed.call(3, 'b2', 2); // called in a view that had just ended: refused up front
  feed.result(3, 'b2', 2, 'VIEW_CHANGED');
  feed.call(3, 'b3', 2);
  feed.result(3, 'b3', 2, 'TIMEOUT');
  checker.finish();
  assert.deepEqual(found, []);
  assert.equal(checker.reached, 1);
  assert.equal(checker.failed, 1);
  assert.ok(checker.checks >= 7);
});

test('a barrier reached before every member called it is caught', () => {
  const { feed, found } = harness();
  feed.call(1, 'b1', 2);
  feed.call(2, 'b1', 2);
  feed.call(3, 'b1', 1); // a call made in another view does not count in view 2
  feed.end([2], 'b1', 2, 'reached');
  feed.call(3, 'b1', 2);
  feed.end([1, 3], 'b1', 2, 'reached');
  assert.equal(found.length, 1, found.join('\n'));
  assert.match(
    found[0] ?? '',
    /b1 of group g was reached in view 2 \{1@1,2@1,3@1\} \(first on node 2\) before 3@1 called it/,
  );
});

test('two outcomes for one barrier, ok without reached and VIEW_CHANGED despite reached are caught', () => {
  const { feed, found, checker } = harness();
  for (const n of [1, 2, 3]) feed.call(n, 'b1', 2);
  feed.end([1], 'b1', 2, 'reached');
  feed.end([2], 'b1', 2, 'view-changed');
  assert.match(found[0] ?? '', /b1 of group g in view 2 ended reached on node 1 but view-changed on node 2/);
  feed.result(3, 'b1', 2, 'VIEW_CHANGED');
  feed.call(1, 'b2', 2);
  feed.end([1], 'b2', 2, 'view-changed');
  feed.result(1, 'b2', 2, 'ok');
  feed.call(2, 'b3', 2);
  feed.result(2, 'b3', 2, 'ok');
  checker.finish();
  assert.equal(found.length, 4, found.join('\n'));
  assert.match(found[1] ?? '', /node 3 got VIEW_CHANGED from barrier g\/b1\/2 .* but it was reached/);
  assert.match(found[2] ?? '', /node 1 got ok from barrier g\/b2\/2 .* but it ended view-changed/);
  assert.match(found[3] ?? '', /node 2 got ok from barrier g\/b3\/2 .* but no node traced its end/);
});
