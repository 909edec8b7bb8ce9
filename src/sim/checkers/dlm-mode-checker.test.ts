// Proves the DLM mode-safety checker from hand-written client events: shared modes, a grant
// after the holder sent its unlock, a grant after a down-conversion was sent (before its
// completion), a middle conversion (PR->CW) letting a CW in, a CONVDEADLK conversion whose holder
// may have been demoted, an ALTPR conversion that may land in PR, and a closed session pass; an EX granted beside a PR, an up-conversion
// completing beside a PR, and a grant beside a holder whose unlock was refused (it still holds)
// are each caught.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LKF, MODE } from '../../dlm/lock-types.js';
import { DlmFeed } from './dlm-feed.js';
import { DlmModeChecker } from './dlm-mode-checker.js';

function rig(): { feed: DlmFeed; found: string[] } {
  const found: string[] = [];
  const feed = new DlmFeed([new DlmModeChecker((m) => found.push(m))]);
  feed.open(1, 1);
  feed.open(2, 1);
  return { feed, found };
}

const N2 = { node: 2 };

test('shared modes, releases at send, down and middle conversions, CONVDEADLK and closes pass', () => {
  const { feed, found } = rig();
  feed.lock(1, 'r', MODE.PR);
  feed.done(1, 'granted', MODE.PR);
  feed.lock(1, 'r', MODE.PR, 0, N2);
  feed.done(1, 'granted', MODE.PR, N2);
  // Node 1 unlocks; node 2 converts up to EX and is granted only after the unlock was sent.
  feed.call('unlock', { res: 'r', lkid: 1 });
  feed.call('convert', { res: 'r', lkid: 1, mode: MODE.EX }, 'ok', N2);
  feed.done(1, 'granted', MODE.EX, N2);
  feed.done(1, 'unlocked', null);
  // EX -> CR sent: a PR may be granted before the down-conversion's completion.
  feed.call('convert', { res: 'r', lkid: 1, mode: MODE.CR }, 'ok', N2);
  feed.lock(2, 'r', MODE.PR);
  feed.done(2, 'granted', MODE.PR);
  feed.done(1, 'granted', MODE.CR, N2);
  // PR -> CW (middle) sent by node 1: a CW may come in for node 2 (its CR -> CW).
  feed.call('convert', { res: 'r', lkid: 2, mode: MODE.CW });
  feed.call('convert', { res: 'r', lkid: 1, mode: MODE.CW }, 'ok', N2);
  feed.done(1, 'granted', MODE.CW, N2);
  feed.done(2, 'granted', MODE.CW);
  // CONVDEADLK CW -> EX by node 1: it may be demoted to NL at any time, so node 2 may get PW.
  feed.call('convert', { res: 'r', lkid: 2, mode: MODE.EX, flags: LKF.CONVDEADLK });
  feed.call('convert', { res: 'r', lkid: 1, mode: MODE.PW }, 'ok', N2);
  feed.done(1, 'granted', MODE.PW, N2);
  // Node 2 closes its session: its PW is gone; node 1's conversion is granted.
  feed.call('close', {}, 'ok', N2);
  feed.done(2, 'granted', MODE.EX, { sbflags: 1 });
  assert.deepEqual(found, []);
});

test('a conversion with ALTPR keeps only what both outcomes keep', () => {
  const { feed, found } = rig();
  feed.lock(1, 'r', MODE.CW);
  feed.done(1, 'granted', MODE.CW);
  // CW -> EX with ALTPR may end in PR (seed 850961083): a PR may be granted before its completion.
  feed.call('convert', { res: 'r', lkid: 1, mode: MODE.EX, flags: LKF.ALTPR });
  feed.lock(1, 'r', MODE.PR, 0, N2);
  feed.done(1, 'granted', MODE.PR, N2);
  feed.done(1, 'granted', MODE.PR, { sbflags: 4 });
  assert.deepEqual(found, []);
});

test('an EX granted beside a PR is caught', () => {
  const { feed, found } = rig();
  feed.lock(1, 'r', MODE.PR);
  feed.done(1, 'granted', MODE.PR);
  feed.lock(1, 'r', MODE.EX, 0, N2);
  feed.done(1, 'granted', MODE.EX, N2);
  assert.equal(found.length, 1);
  assert.match(found[0] ?? '', /resource r: lock 2\/1 was granted EX while lock 1\/1 holds PR/);
});

test('an up-conversion completing beside a PR is caught', () => {
  const { feed, found } = rig();
  feed.lock(1, 'r', MODE.PR);
  feed.done(1, 'granted', MODE.PR);
  feed.lock(1, 'r', MODE.PR, 0, N2);
  feed.done(1, 'granted', MODE.PR, N2);
  feed.call('convert', { res: 'r', lkid: 1, mode: MODE.PW }, 'ok', N2);
  feed.done(1, 'granted', MODE.PW, N2);
  assert.equal(found.length, 1);
});

test('a holder whose unlock was refused still holds', () => {
  const { feed, found } = rig();
  feed.lock(1, 'r', MODE.EX);
  feed.done(1, 'granted', MODE.EX);
  feed.call('unlock', { res: 'r', lkid: 1 }, 'BUSY');
  feed.lock(1, 'r', MODE.CR, 0, N2);
  feed.done(1, 'granted', MODE.CR, N2);
  assert.equal(found.length, 1);
});
