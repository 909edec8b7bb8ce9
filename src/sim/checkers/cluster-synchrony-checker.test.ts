// Proves the virtual synchrony checker from hand-written trace events: a clean history (members
// moving together with the same messages, a member that crashed or left during a view holding a
// prefix, acknowledged sends) passes; a message delivered in a later view than it was sent in
// (the deliver-to-newcomer bug), by a node outside the view, twice, with a gap, with two messages
// in one slot, without a send, and a member that moved on without every message of its view or
// without an acknowledged message are each caught.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TraceFields } from '../../runtime/env.js';
import type { TraceSource } from '../trace.js';
import { ClusterSynchronyChecker } from './cluster-synchrony-checker.js';

interface Feed {
  (source: TraceSource, event: string, fields: TraceFields): void;
  view(nodes: readonly number[], viewId: number, members: string, change: string): void;
  send(node: number, viewId: number, msg: string): void;
  ack(node: number, viewId: number, msg: string, seq: number, resultViewId?: number): void;
  deliver(node: number, viewId: number, seq: number, from: number, msg: string, self?: number): void;
}

function harness(): { feed: Feed; found: string[]; checker: ClusterSynchronyChecker } {
  const found: string[] = [];
  const checker = new ClusterSynchronyChecker((m) => found.push(m));
  let t = 0;
  const feed = ((source: TraceSource, event: string, fields: TraceFields) => {
    checker.observe({ timeUs: t++, source, event, fields });
  }) as Feed;
  feed.view = (nodes, viewId, members, change) => {
    for (const n of nodes) feed(n, 'group-view', { group: 'g', viewId, members, change, self: 1 });
  };
  feed.send = (node, viewId, msg) => {
    feed('client', 'group-call', { op: 'send', node, self: 1, group: 'g', viewId, msg });
  };
  feed.ack = (node, viewId, msg, seq, resultViewId = viewId) => {
    feed('client', 'group-result', {
      op: 'send',
      node,
      self: 1,
      group: 'g',
      viewId,
      msg,
      result: 'ok',
      seq,
      resultViewId,
    });
  };
  feed.deliver = (node, viewId, seq, from, msg, self = 1) => {
    feed(node, 'group-deliver', { group: 'g', viewId, seq, from, msg, self });
  };
  return { feed, found, checker };
}

/** Nodes 1, 2, 3 in view 3 of group g (built by three joins, traced by all three). */
function threeMembers(feed: Feed): void {
  feed.view([1, 2, 3], 1, '1@1', 'joined:1@1');
  feed.view([1, 2, 3], 2, '1@1,2@1', 'joined:2@1');
  feed.view([1, 2, 3], 3, '1@1,2@1,3@1', 'joined:3@1');
}

test('members moving together with the same messages, a crashed and a leaving member with a prefix pass', () => {
  const { feed, found, checker } = harness();
  threeMembers(feed);
  feed.send(1, 3, 'a');
  feed.send(2, 3, 'b');
  for (const n of [1, 2, 3]) feed.deliver(n, 3, 1, 1, 'a');
  feed.ack(1, 3, 'a', 1);
  for (const n of [1, 2]) feed.deliver(n, 3, 2, 2, 'b');
  feed.ack(2, 3, 'b', 2);
  feed('sim', 'crash', { node: 3 }); // node 3 crashed holding only 'a'
  feed.view([1, 2], 4, '1@1,2@1', 'removed:3@1');
  feed.send(2, 4, 'c');
  feed.deliver(2, 4, 1, 2, 'c'); // node 1 leaves before delivering 'c'
  feed.view([2], 5, '2@1', 'left:1@1');
  checker.finish();
  assert.deepEqual(found, []);
  assert.equal(checker.deliveries, 6);
});

test('a message delivered in a later view than it was sent in, to a newcomer, is caught', () => {
  const { feed, found } = harness();
  feed.view([1, 2, 3], 1, '1@1', 'joined:1@1');
  feed.view([1, 2, 3], 2, '1@1,2@1', 'joined:2@1');
  feed.send(1, 2, 'a');
  feed.view([1, 2, 3], 3, '1@1,2@1,3@1', 'joined:3@1');
  for (const n of [1, 2, 3]) feed.deliver(n, 3, 1, 1, 'a');
  assert.equal(found.length, 3, found.join('\n'));
  assert.match(
    found[2] ?? '',
    /node 3 \(incarnation 1\) delivered a of group g in view 3, but node 1 sent it in view 2/,
  );
});

test('a delivery by a node outside the view, a duplicate, a gap and two messages in one slot are caught', () => {
  const { feed, found } = harness();
  feed.view([1, 2, 3], 1, '1@1', 'joined:1@1');
  feed.view([1, 2, 3], 2, '1@1,2@1', 'joined:2@1');
  for (const m of ['a', 'b', 'c']) feed.send(1, 2, m);
  feed.deliver(3, 2, 1, 1, 'a');
  assert.match(
    found.at(-1) ?? '',
    /node 3 \(incarnation 1\) delivered a in view 2 of group g \{1@1,2@1\}, of which it is not a member/,
  );
  feed.deliver(1, 2, 1, 1, 'a');
  feed.deliver(1, 2, 2, 1, 'a');
  assert.ok(
    found.some((m) => /node 1 \(incarnation 1\) delivered a of group g twice/.test(m)),
    found.join('\n'),
  );
  feed.deliver(2, 2, 2, 1, 'b');
  assert.match(
    found.at(-1) ?? '',
    /node 2 \(incarnation 1\) delivered seq 2 of view 2 of group g after seq 0 \(b\): a gap/,
  );
  assert.ok(
    found.some((m) => /seq 2 of view 2 of group g is a on node 1, but node 2 .* delivered b there/.test(m)),
    found.join('\n'),
  );
  const before = found.length;
  feed.deliver(2, 2, 3, 1, 'zz');
  assert.match(found[before] ?? '', /delivered zz in view 2 of group g, which no client sent/);
});

test('a member that moves on without every message of its view, or without an acknowledged one, is caught', () => {
  const { feed, found, checker } = harness();
  threeMembers(feed);
  feed.send(1, 3, 'a');
  feed.send(1, 3, 'b');
  for (const n of [1, 2, 3]) feed.deliver(n, 3, 1, 1, 'a');
  feed.deliver(1, 3, 2, 1, 'b'); // node 2 misses 'b' (a snapshot skipped it) and moves on
  feed.send(2, 3, 'c');
  feed.ack(2, 3, 'c', 3); // acknowledged, but nobody traced its delivery
  feed.view([1, 2, 3], 4, '1@1,2@1', 'removed:3@1');
  assert.equal(found.length, 0, 'judged when the run ends');
  checker.finish();
  assert.equal(found.length, 2, found.join('\n'));
  assert.match(
    found[0] ?? '',
    /node 1 \(incarnation 1\) went from view 3 to view 4 of group g having delivered 2 of the 3 messages of view 3/,
  );
  assert.match(
    found[1] ?? '',
    /node 2 \(incarnation 1\) went from view 3 to view 4 of group g having delivered 1 of the 3 messages/,
  );
});

test('an acknowledgement naming another view than the send is caught', () => {
  const { feed, found, checker } = harness();
  threeMembers(feed);
  feed.send(1, 2, 'a');
  feed.ack(1, 2, 'a', 1, 3);
  checker.finish();
  assert.equal(found.length, 1, found.join('\n'));
  assert.match(found[0] ?? '', /node 1 sent a to group g in view 2, but it was acknowledged as seq 1 of view 3/);
});
