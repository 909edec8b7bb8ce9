// Proves the group view agreement checker from hand-written trace events: a clean history (views
// skewed in time across nodes, a group deleted and created again, a restarted process and one
// that restored a snapshot, both starting from a later view) passes; one view id with two member
// sets, a node that skipped a view, two different successors of one view, ids going back within
// a process and a malformed event are each caught.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TraceFields } from '../../runtime/env.js';
import type { SimEvent, TraceSource } from '../trace.js';
import { ClusterGroupViewChecker } from './cluster-group-view-checker.js';

function feeder(checker: {
  observe(e: SimEvent): void;
}): (source: TraceSource, event: string, fields: TraceFields) => void {
  let t = 0;
  return (source, event, fields) => {
    checker.observe({ timeUs: t++, source, event, fields });
  };
}

const gv = (viewId: number, members: string, change: string, group = 'g1', self = 1): TraceFields => ({
  group,
  viewId,
  members,
  change,
  self,
});

function run(events: (feed: ReturnType<typeof feeder>) => void): { found: string[]; checker: ClusterGroupViewChecker } {
  const found: string[] = [];
  const checker = new ClusterGroupViewChecker((m) => found.push(m));
  events(feeder(checker));
  return { found, checker };
}

test('a clean history with skew, deletion and re-creation, a restart and a snapshot restore passes', () => {
  const { found, checker } = run((feed) => {
    feed(1, 'group-view', gv(1, '1@1', 'joined:1@1'));
    feed(1, 'group-view', gv(2, '1@1,2@1/l2', 'joined:2@1'));
    feed(2, 'group-view', gv(1, '1@1', 'joined:1@1'));
    feed(1, 'group-view', gv(3, '2@1/l2', 'left:1@1'));
    feed(1, 'group-view', gv(4, '3@1', 'joined:3@1', 'g2'));
    feed(2, 'group-view', gv(2, '1@1,2@1/l2', 'joined:2@1'));
    feed(2, 'group-view', gv(3, '2@1/l2', 'left:1@1'));
    feed(1, 'group-view', gv(5, '', 'removed:2@1'));
    feed(1, 'group-view', gv(6, '1@1', 'joined:1@1'));
    // Node 3 restored a snapshot taken after view 3: it continues from there.
    feed(3, 'raft-snapshot-restored', { index: 40 });
    feed(3, 'group-view', gv(5, '', 'removed:2@1'));
    feed(3, 'group-view', gv(6, '1@1', 'joined:1@1'));
    // Node 2 restarts and re-applies from its own snapshot (after view 2).
    feed('sim', 'crash', { node: 2 });
    feed('sim', 'start', { node: 2, incarnation: 2 });
    feed(2, 'group-view', gv(3, '2@1/l2', 'left:1@1', 'g1', 2));
    feed(2, 'group-view', gv(5, '', 'removed:2@1', 'g1', 2));
  });
  assert.deepEqual(found, []);
  assert.equal(checker.views, 6);
  assert.ok(checker.checks >= 10, `${checker.checks} checks`);
});

test('one view id with two member sets is caught', () => {
  const { found } = run((feed) => {
    feed(1, 'group-view', gv(1, '1@1', 'joined:1@1'));
    feed(2, 'group-view', gv(1, '1@2', 'joined:1@2'));
  });
  assert.equal(found.length, 1, found.join('\n'));
  assert.match(found[0] ?? '', /view 1 is g1 \{1@1\} \(joined:1@1\) on node 1 but g1 \{1@2\} \(joined:1@2\) on node 2/);
});

test('a node that skipped a view is caught', () => {
  const { found } = run((feed) => {
    for (const n of [1, 2]) feed(n, 'group-view', gv(1, '1@1', 'joined:1@1'));
    feed(1, 'group-view', gv(2, '1@1,2@1', 'joined:2@1'));
    feed(1, 'group-view', gv(3, '1@1,2@1,3@1', 'joined:3@1'));
    feed(2, 'group-view', gv(3, '1@1,2@1,3@1', 'joined:3@1')); // skipped view 2, no snapshot
  });
  assert.equal(found.length, 1, found.join('\n'));
  assert.match(found[0] ?? '', /node 2 went from view 1 .* to view 3 .* not one change away/);
});

test('two successors of one view are caught, even when each step is one change', () => {
  const { found } = run((feed) => {
    for (const n of [1, 2]) feed(n, 'group-view', gv(1, '1@1', 'joined:1@1'));
    feed(1, 'group-view', gv(2, '1@1,2@1', 'joined:2@1'));
    feed(2, 'group-view', gv(3, '1@1,3@1', 'joined:3@1'));
  });
  assert.equal(found.length, 1, found.join('\n'));
  assert.match(found[0] ?? '', /after view 1 of group g1 node 1 applied view 2 but node 2 applied view 3/);
});

test('a view id going back within a process and a malformed event are caught', () => {
  const { found } = run((feed) => {
    feed(1, 'group-view', gv(1, '1@1', 'joined:1@1'));
    feed(1, 'group-view', gv(2, '1@1,2@1', 'joined:2@1'));
    feed(1, 'group-view', gv(1, '1@1', 'joined:1@1'));
    feed(1, 'group-view', { group: 'g1', viewId: 3, members: '2@1,1@1', change: 'joined:2@1', self: 1 });
  });
  assert.equal(found.length, 2, found.join('\n'));
  assert.match(found[0] ?? '', /node 1 applied view 1 of group g1 after view 2 in one process/);
  assert.match(found[1] ?? '', /malformed group view/);
});
