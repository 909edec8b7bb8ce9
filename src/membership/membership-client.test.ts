// Proves the membership client methods over any `ApiCaller`: `events` sends `follow` (default
// true) and `fromSeq` only when given, and decodes the groups service's `group` and `barrier`
// event payloads through the groups client; `fenceConfirm` sends `incarnation` only when given;
// `quorum` decodes a null `waitForAll` and `viewReason`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecordingCaller } from '../testing/recording-caller.js';
import { membershipClient, type ClusterEvent } from './membership-client.js';

const groupEvent = {
  seq: 4,
  viewId: 1,
  index: 9,
  kind: 'group',
  payload: {
    group: 'g',
    groupViewId: 1,
    members: [{ node: 2, incarnation: 1, level: 0 }],
    change: { node: 2, incarnation: 1, kind: 'joined' },
  },
};
const barrierEvent = {
  seq: 5,
  viewId: 1,
  index: 10,
  kind: 'barrier',
  payload: { group: 'g', name: 'b', groupViewId: 1, outcome: 'view-changed' },
};
const fence = { nodeId: 2, incarnation: 3, outcome: 'applied', status: 'out', admitted: null, viewId: 6, local: false };
const quorum = {
  quorate: false,
  reason: 'no-leader',
  explanation: 'e',
  viewId: 0,
  viewQuorate: false,
  viewReason: null,
  summary: 's',
  expectedVotes: 3,
  totalVotes: 0,
  quorum: 2,
  waitForAll: null,
};

test('events, fenceConfirm and quorum send their params and decode their answers', async () => {
  const caller = new RecordingCaller({ 'fence.confirm': fence, quorum }, { events: [groupEvent, barrierEvent] });
  const m = membershipClient(caller);
  const events: ClusterEvent[] = [];
  for await (const e of m.events()) events.push(e);
  for await (const e of m.events({ fromSeq: 5, follow: false })) events.push(e);
  const [g, b] = events;
  assert.ok(g?.kind === 'group' && b?.kind === 'barrier');
  assert.deepEqual(g.payload.change, { node: 2, incarnation: 1, kind: 'joined' });
  assert.equal(b.payload.outcome, 'view-changed');
  assert.equal(events.length, 4);
  assert.deepEqual(await m.fenceConfirm(2), fence);
  await m.fenceConfirm(2, { incarnation: 3 });
  const q = await m.quorum();
  assert.deepEqual([q.viewReason, q.waitForAll], [null, null]);
  assert.deepEqual(
    caller.calls.map((c) => [c.method, c.params]),
    [
      ['events', { follow: true }],
      ['events', { follow: false, fromSeq: 5 }],
      ['fence.confirm', { node: 2 }],
      ['fence.confirm', { node: 2, incarnation: 3 }],
      ['quorum', null],
    ],
  );
});
