// Proves the DLM wake-up checker from hand-written client events: a holder in a waiter's way that
// is told in time, one that did not ask for notifications, one already told since its grant (for
// an earlier waiter), and a run that ends with every lock released pass; a holder in the way left
// untold past the bound is caught (also one that asked for notifications with a failed
// conversion, but only for waiters that came after it), and so is a run whose liveness phase ends with a request
// still waiting (not satisfied, and a violation at the end).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LKF, MODE } from '../../dlm/lock-types.js';
import { DlmFeed } from './dlm-feed.js';
import { DlmReplyChecker } from './dlm-reply-checker.js';
import { DlmWakeupChecker } from './dlm-wakeup-checker.js';

function rig(): { feed: DlmFeed; found: string[]; wakeup: DlmWakeupChecker } {
  const found: string[] = [];
  const replies = new DlmReplyChecker((m) => found.push(`replies: ${m}`));
  const wakeup = new DlmWakeupChecker(replies, { boundMs: 10_000, bastBoundMs: 1_000 }, (m) => found.push(m));
  const feed = new DlmFeed([replies, wakeup]);
  feed.open(1, 1);
  feed.open(2, 1);
  return { feed, found, wakeup };
}

const N2 = { node: 2 };

test('holders told in time, holders without notifications, and a drained run pass', () => {
  const { feed, found, wakeup } = rig();
  feed.lock(1, 'r', MODE.EX, 0, {}, { bast: true });
  feed.done(1, 'granted', MODE.EX);
  feed.lock(1, 'r', MODE.PR, 0, N2);
  feed.wait(500);
  feed.bast(1, MODE.PR);
  feed.wait(2_000);
  feed.lock(2, 'r', MODE.EX, 0, N2); // a second waiter: the one notification speaks for it too
  feed.wait(2_000);
  feed.lock(3, 's', MODE.EX, 0, {}, { bast: false });
  feed.done(3, 'granted', MODE.EX);
  feed.lock(3, 's', MODE.EX, 0, N2);
  feed.wait(5_000);
  feed.liveness();
  assert.equal(wakeup.satisfied(), false);
  feed.call('unlock', { lkid: 1 });
  feed.done(1, 'unlocked', null);
  feed.done(1, 'granted', MODE.PR, N2);
  feed.call('unlock', { lkid: 1 }, 'ok', N2);
  feed.done(1, 'unlocked', null, N2);
  feed.done(2, 'granted', MODE.EX, N2);
  feed.call('unlock', { lkid: 2 }, 'ok', N2);
  feed.done(2, 'unlocked', null, N2);
  feed.call('unlock', { lkid: 3 });
  feed.done(3, 'unlocked', null);
  feed.done(3, 'granted', MODE.EX, N2);
  feed.call('unlock', { lkid: 3 }, 'ok', N2);
  feed.done(3, 'unlocked', null, N2);
  assert.equal(wakeup.satisfied(), true);
  wakeup.finish();
  assert.deepEqual(found, []);
});

test('a holder in the way left untold past the bound is caught', () => {
  const { feed, found } = rig();
  feed.lock(1, 'r', MODE.PW, 0, {}, { bast: true });
  feed.done(1, 'granted', MODE.PW);
  feed.lock(1, 'r', MODE.CW, 0, N2);
  feed.wait(900);
  feed.bast(1, MODE.EX, N2); // another lock's notification does not count
  assert.deepEqual(found, []);
  feed.wait(500);
  feed.raw('tick', {}, 'sim');
  assert.equal(found.length, 1);
  assert.match(found.join('\n'), /lock 1\/1 holds PW and wants blocking notifications, lock 2\/1 has waited for CW/);
});

test('notifications asked by a failed conversion are owed only to later waiters', () => {
  const { feed, found } = rig();
  feed.lock(1, 'r', MODE.CR, 0, {}, { bast: false });
  feed.done(1, 'granted', MODE.CR);
  feed.lock(1, 'r', MODE.EX, 0, N2);
  feed.call('convert', { lkid: 1, mode: MODE.EX, flags: LKF.NOQUEUE, bast: true });
  feed.done(1, 'again', MODE.CR);
  feed.wait(2_000);
  feed.raw('tick', {}, 'sim');
  assert.deepEqual(found, [], 'the earlier waiter (seed 2265149510)');
  feed.lock(2, 'r', MODE.EX, 0, N2);
  feed.wait(2_000);
  feed.raw('tick', {}, 'sim');
  assert.equal(found.length, 1, 'a later waiter is owed one');
});

test('a request still waiting when the run ends is caught', () => {
  const { feed, found, wakeup } = rig();
  feed.lock(1, 'r', MODE.EX);
  feed.done(1, 'granted', MODE.EX);
  feed.lock(1, 'r', MODE.EX, 0, N2);
  feed.liveness();
  feed.call('unlock', { lkid: 1 });
  feed.done(1, 'unlocked', null);
  assert.equal(wakeup.satisfied(), false);
  wakeup.finish();
  assert.equal(found.length, 1);
  assert.match(found[0] ?? '', /2\/1 on r \(not granted, request EX in flight\)/);
});
