// Proves the DLM value-block checker from hand-written client events. Legal histories pass: no
// block before the first write; a PR reader sees what the last EX holder wrote on unlock; an
// IVVALBLK unlock and a PW/EX holder's session closing mark it invalid (the bytes stay); a CR
// reader overlapping a PW writer may see the value before the write; a close whose request to EX
// was still in flight may or may not have invalidated it (and does not hide the state before a
// write still in flight from a CR reader); an NL reader may read before both writes of one
// holder still in flight; a resource its master may have tossed (idle for the toss time, an
// ungranted request not counting) has no block. Caught: a PR reader seeing an older
// value, a reader not told the block is invalid, and a reader told so when it is valid.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LKF, MODE, SBF } from '../../dlm/lock-types.js';
import { DlmFeed } from './dlm-feed.js';
import { DlmLvbChecker } from './dlm-lvb-checker.js';

function rig(): { feed: DlmFeed; found: string[] } {
  const found: string[] = [];
  const feed = new DlmFeed([new DlmLvbChecker({ resetGapMs: 60_000 }, (m) => found.push(m))]);
  return { feed, found };
}

const N2 = { node: 2 };
const INVALID = SBF.VALNOTVALID;

/** Lock `lkid` on node 1 takes EX (reading nothing) and unlocks writing `value` (or with `flags`). */
function write(feed: DlmFeed, lkid: number, value: string, flags: number = LKF.VALBLK): void {
  feed.lock(lkid, 'r', MODE.EX);
  feed.done(lkid, 'granted', MODE.EX);
  feed.call('unlock', { res: 'r', lkid, flags, lvb: flags === LKF.VALBLK ? value : '-' });
  feed.done(lkid, 'unlocked', null);
}

test('reads of the last written value, invalidations, and overlapping readers pass', () => {
  const { feed, found } = rig();
  feed.lock(1, 'r', MODE.PR, LKF.VALBLK, N2);
  feed.done(1, 'granted', MODE.PR, { ...N2, lvb: '-' });
  feed.call('unlock', { res: 'r', lkid: 1 }, 'ok', N2);
  write(feed, 10, 'aa');
  feed.lock(2, 'r', MODE.PR, LKF.VALBLK, N2);
  feed.done(2, 'granted', MODE.PR, { ...N2, lvb: 'aa' });
  feed.call('unlock', { res: 'r', lkid: 2 }, 'ok', N2);
  write(feed, 11, '', LKF.IVVALBLK);
  feed.lock(3, 'r', MODE.PR, LKF.VALBLK, N2);
  feed.done(3, 'granted', MODE.PR, { ...N2, lvb: 'aa', sbflags: INVALID });
  feed.call('unlock', { res: 'r', lkid: 3 }, 'ok', N2);
  // A PW writer (node 1) unlocks with 'bb' while a CR reader (node 2) is asked: it may see 'aa'.
  feed.lock(12, 'r', MODE.PW, LKF.VALBLK);
  feed.done(12, 'granted', MODE.PW, { lvb: 'aa', sbflags: INVALID });
  feed.call('unlock', { res: 'r', lkid: 12, flags: LKF.VALBLK, lvb: 'bb' });
  feed.lock(4, 'r', MODE.CR, LKF.VALBLK, N2);
  feed.done(4, 'granted', MODE.CR, { ...N2, lvb: 'aa', sbflags: INVALID });
  feed.done(12, 'unlocked', null);
  // An EX holder's session closes: invalid.
  feed.open(1, 1);
  feed.lock(13, 'r', MODE.EX, LKF.VALBLK);
  feed.done(13, 'granted', MODE.EX, { lvb: 'bb' });
  feed.call('close', {});
  feed.lock(5, 'r', MODE.EX, LKF.VALBLK, N2);
  feed.call('unlock', { res: 'r', lkid: 4 }, 'ok', N2);
  feed.done(5, 'granted', MODE.EX, { ...N2, lvb: 'bb', sbflags: INVALID });
  feed.call('unlock', { res: 'r', lkid: 5, flags: LKF.VALBLK, lvb: 'cc' }, 'ok', N2);
  // A closed session's EX request may have been granted before the close's unlock: either way.
  feed.open(1, 2);
  feed.lock(14, 'r', MODE.EX, LKF.VALBLK, { session: 2 });
  feed.call('close', {}, 'ok', { session: 2 });
  feed.lock(6, 'r', MODE.PR, LKF.VALBLK, N2);
  feed.done(6, 'granted', MODE.PR, { ...N2, lvb: 'cc', sbflags: INVALID });
  assert.deepEqual(found, []);
});

test('a close that may invalidate does not hide the state before a write in flight (seed 1793526655)', () => {
  const { feed, found } = rig();
  write(feed, 10, 'aa');
  // A PW holder sends its write of 'bb'; then a session with an EX request in flight closes.
  feed.lock(11, 'r', MODE.PW);
  feed.done(11, 'granted', MODE.PW);
  feed.call('unlock', { res: 'r', lkid: 11, flags: LKF.VALBLK, lvb: 'bb' });
  feed.open(3, 1);
  feed.lock(1, 'r', MODE.EX, LKF.VALBLK, { node: 3 });
  feed.call('close', {}, 'ok', { node: 3 });
  // A CR reader at the master, which has not seen the write yet, reads 'aa'.
  feed.lock(2, 'r', MODE.CR, LKF.VALBLK, N2);
  feed.done(2, 'granted', MODE.CR, { ...N2, lvb: 'aa' });
  assert.deepEqual(found, []);
});

test('an NL reader may read before both writes of one holder still in flight (seed 3492098338)', () => {
  const { feed, found } = rig();
  write(feed, 10, 'aa');
  feed.lock(11, 'r', MODE.EX);
  feed.done(11, 'granted', MODE.EX);
  feed.call('convert', { res: 'r', lkid: 11, mode: MODE.PW, flags: LKF.VALBLK, lvb: 'bb' });
  feed.call('unlock', { res: 'r', lkid: 11, flags: LKF.VALBLK, lvb: 'cc' });
  feed.lock(2, 'r', MODE.NL, LKF.VALBLK, N2);
  feed.done(2, 'granted', MODE.NL, { ...N2, lvb: 'aa' });
  assert.deepEqual(found, []);
});

test('a resource idle at its master for the toss time may have lost its block (seed 2855303760)', () => {
  for (const [gapMs, ok] of [
    [1_200, true],
    [800, false],
  ] as const) {
    const found: string[] = [];
    const feed = new DlmFeed([new DlmLvbChecker({ resetGapMs: 1_000 }, (m) => found.push(m))]);
    write(feed, 10, 'aa');
    // A request that never got a grant (cancelled) may never have reached the master.
    feed.wait(gapMs / 2);
    feed.lock(1, 'r', MODE.EX, LKF.VALBLK, N2);
    feed.call('cancel', { res: 'r', lkid: 1 }, 'ok', N2);
    feed.done(1, 'cancelled', null, N2);
    feed.wait(gapMs / 2);
    feed.lock(2, 'r', MODE.PR, LKF.VALBLK, N2);
    feed.done(2, 'granted', MODE.PR, { ...N2, lvb: '-' });
    assert.equal(found.length, ok ? 0 : 1, `gap ${gapMs} ms: ${found.join('; ')}`);
  }
});

test('a PR reader seeing an older value is caught', () => {
  const { feed, found } = rig();
  write(feed, 10, 'aa');
  write(feed, 11, 'bb');
  feed.lock(1, 'r', MODE.PR, LKF.VALBLK, N2);
  feed.done(1, 'granted', MODE.PR, { ...N2, lvb: 'aa' });
  assert.equal(found.length, 1);
  assert.match(found[0] ?? '', /read the value block aa\|valid; it may only be bb\|valid/);
});

test('a reader not told the block is invalid is caught', () => {
  const { feed, found } = rig();
  write(feed, 10, 'aa');
  write(feed, 11, '', LKF.IVVALBLK);
  feed.lock(1, 'r', MODE.PR, LKF.VALBLK, N2);
  feed.done(1, 'granted', MODE.PR, { ...N2, lvb: 'aa' });
  assert.equal(found.length, 1);
});

test('a reader told the block is invalid when it is valid is caught', () => {
  const { feed, found } = rig();
  write(feed, 10, 'aa');
  feed.lock(1, 'r', MODE.EX, LKF.VALBLK, N2);
  feed.done(1, 'granted', MODE.EX, { ...N2, lvb: 'aa', sbflags: INVALID });
  assert.equal(found.length, 1);
});
