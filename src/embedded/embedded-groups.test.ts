// Proves the groups API end to end through the typed client (the daemon's handlers, in-process):
// three nodes join a group; messages sent from two members arrive at every member in one order,
// each stream starting with the view; a barrier resolves once all three reached it; a member that
// stops fails the pending barrier with VIEW_CHANGED for the others, who then see the new view and
// complete the barrier again; a node that is not a member gets NOT_MEMBER; the group and barrier
// events are in the cluster event stream; and leaving empties the group.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { GroupItem } from '../client/index.js';
import { clientFailure } from '../testing/api-support.js';
import { startCluster } from './index.js';

const decoder = new TextDecoder();

async function take(it: AsyncIterator<GroupItem>, n: number): Promise<GroupItem[]> {
  const out: GroupItem[] = [];
  while (out.length < n) {
    const r = await it.next();
    assert.ok(r.done !== true, 'the stream ended early');
    out.push(r.value);
  }
  return out;
}

function text(items: readonly GroupItem[]): string[] {
  return items.map((i) =>
    i.kind === 'message'
      ? `${i.groupViewId}#${i.seq} ${i.from}: ${decoder.decode(i.payload)}`
      : `view ${i.groupViewId} [${i.members.map((m) => m.node).join(',')}]`,
  );
}

async function code(p: Promise<unknown>): Promise<string> {
  return (await clientFailure(p)).code;
}

test('groups through the client: ordered delivery to every member, barriers, VIEW_CHANGED on a member stop, events, leave', async () => {
  await using cluster = await startCluster({ nodes: 3 });
  const clients = [1, 2, 3].map((i) => cluster.client(i));
  assert.equal(await code(clients[2]!.groups.join('bad name')), 'INVALID_ARGUMENT');
  const h1 = await clients[0]!.groups.join('workers', { level: 1 });
  assert.equal(await code(clients[1]!.groups.join('workers')), 'GROUP_LEVEL_MISMATCH', 'the group has level 1');
  const h2 = await clients[1]!.groups.join('workers', { level: 1 });
  const h3 = await clients[2]!.groups.join('workers', { level: 1 });
  const views = await clients[0]!.groups.list();
  const workers = views.find((v) => v.group === 'workers');
  assert.ok(workers !== undefined);
  assert.deepEqual(
    workers.members.map((m) => [m.node, m.level]),
    [
      [1, 1],
      [2, 1],
      [3, 1],
    ],
  );
  const streams = [h1, h2, h3].map((h) => h.messages());
  const starts = await Promise.all(streams.map((s) => take(s, 1)));
  for (const s of starts)
    assert.deepEqual(text(s), [`view ${workers.groupViewId} [1,2,3]`], 'each stream starts with the current view');
  const sent = [];
  for (let i = 0; i < 5; i++) sent.push((i % 2 === 0 ? h1 : h2).send(`m${i}`));
  const results = await Promise.all(sent);
  assert.ok(results.every((r) => r.groupViewId === workers.groupViewId));
  const got = await Promise.all(streams.map((s) => take(s, 5)));
  assert.deepEqual(text(got[0]!), text(got[1]!), 'members 1 and 2 delivered the same messages in the same order');
  assert.deepEqual(text(got[1]!), text(got[2]!), 'and so did member 3');
  assert.deepEqual(
    got[0]!.map((i) => (i.kind === 'message' ? i.seq : 0)),
    [1, 2, 3, 4, 5],
  );
  // A barrier of all three.
  const reached = await Promise.all([h1.barrier('ready'), h2.barrier('ready'), h3.barrier('ready')]);
  assert.ok(reached.every((r) => r.groupViewId === workers.groupViewId));
  // Two arrive at the next barrier; the third node stops: the survivors get VIEW_CHANGED.
  const b1 = code(h1.barrier('phase2'));
  const b2 = code(h2.barrier('phase2'));
  await new Promise((resolve) => setTimeout(resolve, 200));
  await cluster.stopNode(3);
  assert.deepEqual(await Promise.all([b1, b2]), ['VIEW_CHANGED', 'VIEW_CHANGED']);
  const after = await take(streams[0]!, 1);
  assert.deepEqual(
    text(after).map((l) => l.replace(/^view \d+ /, 'view ')),
    ['view [1,2]'],
    'the new view comes through the stream',
  );
  const again = await Promise.all([h1.barrier('phase2'), h2.barrier('phase2')]);
  assert.equal(again[0].groupViewId, again[1].groupViewId);
  // The cluster event stream carries the group views and barrier ends.
  const events = clients[0]!.events({ follow: false });
  const kinds: string[] = [];
  for await (const e of events)
    if (e.kind === 'group' || e.kind === 'barrier')
      kinds.push(
        e.kind === 'barrier'
          ? `barrier ${e.payload.name} ${e.payload.outcome}`
          : `group ${e.payload.group} ${e.payload.change.kind} ${e.payload.change.node}`,
      );
  assert.ok(kinds.includes('barrier ready reached'));
  assert.ok(kinds.includes('barrier phase2 view-changed'));
  assert.ok(kinds.includes('group workers removed 3'));
  // Leaving: the group disappears with its last member.
  await h1.leave();
  assert.equal(await code(h1.send('after leave')), 'NOT_MEMBER');
  await h2.leave();
  assert.equal(
    (await clients[0]!.groups.list()).find((v) => v.group === 'workers'),
    undefined,
  );
  assert.equal(await code(h1.send('after leave')), 'NOT_FOUND');
  for (const s of streams) s.cancel();
});
