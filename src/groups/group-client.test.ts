// Proves the groups client namespace over any `ApiCaller`: `join` sends the level (default 0)
// and returns a handle whose calls name the group; `leave` is sent once however often it is
// called, and `await using` does not send it once the caller is closed; the message stream is
// decoded in order, and a malformed item fails the stream with PROTOCOL_ERROR and cancels it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clientFailure } from '../testing/api-support.js';
import { RecordingCaller } from '../testing/recording-caller.js';
import { groupsClient, type GroupItem } from './group-client.js';

const view = { group: 'g', groupViewId: 2, members: [{ node: 1, incarnation: 1, level: 3 }] };
const answers = {
  groups: [view],
  'group.join': view,
  'group.send': { groupViewId: 2, seq: 7 },
  'group.barrier': { groupViewId: 2 },
  'group.leave': null,
};
const payload = new TextEncoder().encode('hi');
const messageItem = { kind: 'message', groupViewId: 2, seq: 1, from: 1, payload };
const viewItem = { kind: 'view', groupViewId: 2, members: view.members, change: null };

test('join returns a handle; its calls name the group; leave is sent once, and not after close', async () => {
  const caller = new RecordingCaller(answers);
  const groups = groupsClient(caller);
  assert.deepEqual(await groups.list(), [{ group: 'g', groupViewId: 2, level: 3, members: view.members }]);
  assert.deepEqual(
    (await groupsClient(new RecordingCaller({ ...answers, groups: [{ ...view, level: 2 }] })).list()).map(
      (g) => g.level,
    ),
    [2],
    'the group level, when the daemon sends it',
  );
  {
    await using h = await groups.join('g', { level: 3 });
    assert.deepEqual([h.name, h.view.groupViewId], ['g', 2]);
    assert.deepEqual(await h.send('hi'), { groupViewId: 2, seq: 7 });
    assert.deepEqual(await h.barrier('b1'), { groupViewId: 2 });
    await h.leave();
    await h.leave();
  }
  {
    await using _h = await groups.join('g');
    caller.open = false;
  }
  assert.deepEqual(
    caller.calls.map((c) => [c.method, c.params]),
    [
      ['groups', null],
      ['group.join', { group: 'g', level: 3 }],
      ['group.send', { group: 'g', payload: 'hi' }],
      ['group.barrier', { group: 'g', name: 'b1' }],
      ['group.leave', { group: 'g' }],
      ['group.join', { group: 'g', level: 0 }],
    ],
  );
  assert.deepEqual(caller.calls[1]?.options, {}, 'level stays behind: only the signal crosses');
});

test('messages are decoded in order; a malformed item fails the stream and cancels it', async () => {
  const bad = { ...messageItem, seq: 0 };
  const caller = new RecordingCaller(answers, { 'group.messages': [viewItem, messageItem, bad, messageItem] });
  const h = await groupsClient(caller).join('g');
  const seen: GroupItem['kind'][] = [];
  const e = await clientFailure(
    (async () => {
      for await (const item of h.messages()) seen.push(item.kind);
    })(),
  );
  assert.deepEqual(seen, ['view', 'message']);
  assert.match(e.message, /^group\.messages: the daemon's answer has item\.seq = 0, expected an integer in \[1, /);
  assert.equal(caller.opened[0]?.cancelled, true);
});
