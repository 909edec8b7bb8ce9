// Proves the DLM reply checker from hand-written client events. Legal histories pass: grants,
// NOQUEUE `again` (a failed conversion keeps its mode), `deadlock`, a cancelled waiting request,
// a moot cancel (no completion), a TIMEOUT `timeout`, an ALTPR grant with ALTMODE, a CONVDEADLK
// grant with DEMOTED, FORCEUNLOCK overlapping a request (granted then unlocked, or ended by the
// request's own failure with nothing after), and refusals that name the broken rule. Each of
// these is caught: a completion no call asked for, a second completion for one operation,
// `again` without NOQUEUE, a refusal of a legal call, an accepted call that breaks a rule
// (downward QUECVT), ALTMODE without ALTPR/ALTCW, a completion after the session closed,
// `cancelled` without a cancel, and a blocking notification for an ended lock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LKF, MODE, SBF } from '../../dlm/lock-types.js';
import { DlmFeed } from './dlm-feed.js';
import { DlmReplyChecker } from './dlm-reply-checker.js';

function rig(): { feed: DlmFeed; found: string[] } {
  const found: string[] = [];
  const feed = new DlmFeed([new DlmReplyChecker((m) => found.push(m))]);
  feed.open();
  return { feed, found };
}

test('legal completions and refusals pass', () => {
  const { feed, found } = rig();
  feed.lock(1, 'r', MODE.PR);
  feed.done(1, 'granted', MODE.PR);
  feed.call('convert', { lkid: 1, mode: MODE.EX, flags: LKF.NOQUEUE });
  feed.done(1, 'again', MODE.PR);
  feed.call('convert', { lkid: 1, mode: MODE.EX });
  feed.call('convert', { lkid: 1, mode: MODE.EX }, 'BUSY');
  feed.done(1, 'deadlock', MODE.PR);
  feed.lock(2, 'r', MODE.EX);
  feed.call('cancel', { lkid: 2 });
  feed.call('cancel', { lkid: 2 }, 'INVALID');
  feed.done(2, 'cancelled', null);
  feed.lock(3, 'r', MODE.CR);
  feed.done(3, 'granted', MODE.CR);
  feed.call('cancel', { lkid: 3 }); // moot: nothing comes
  feed.lock(4, 'r', MODE.EX, LKF.TIMEOUT, {}, { timeoutMs: 100 });
  feed.done(4, 'timeout', null);
  feed.lock(5, 'r', MODE.EX, LKF.ALTPR);
  feed.done(5, 'granted', MODE.PR, { sbflags: SBF.ALTMODE });
  feed.call('convert', { lkid: 5, mode: MODE.EX, flags: LKF.CONVDEADLK });
  feed.done(5, 'granted', MODE.EX, { sbflags: SBF.DEMOTED });
  feed.lock(6, 'r', MODE.EX);
  feed.call('unlock', { lkid: 6, flags: LKF.FORCEUNLOCK });
  feed.call('unlock', { lkid: 6, flags: LKF.FORCEUNLOCK }, 'BUSY');
  feed.done(6, 'granted', MODE.EX);
  feed.done(6, 'unlocked', null);
  feed.lock(7, 'r', MODE.EX, LKF.NOQUEUE);
  feed.call('unlock', { lkid: 7, flags: LKF.FORCEUNLOCK });
  feed.done(7, 'again', null);
  feed.call('lock', { res: 'r', mode: MODE.PR, flags: LKF.QUECVT }, 'INVALID');
  feed.call('convert', { lkid: 1, mode: MODE.NL, flags: LKF.QUECVT }, 'INVALID');
  feed.call('unlock', { lkid: 99 }, 'NOT_FOUND');
  feed.call('unlock', { lkid: 1 });
  feed.done(1, 'unlocked', null);
  assert.deepEqual(found, []);
});

const RED: readonly (readonly [string, (feed: DlmFeed) => void])[] = [
  [
    'a completion no call asked for',
    (f) => {
      f.done(9, 'granted', MODE.EX);
    },
  ],
  [
    'a second completion',
    (f) => {
      f.lock(1, 'r', MODE.PR);
      f.done(1, 'granted', MODE.PR);
      f.done(1, 'granted', MODE.PR);
    },
  ],
  [
    '`again` without NOQUEUE',
    (f) => {
      f.lock(1, 'r', MODE.PR);
      f.done(1, 'again', null);
    },
  ],
  [
    'a refused legal call',
    (f) => {
      f.call('lock', { res: 'r', mode: MODE.PR }, 'BUSY');
    },
  ],
  [
    'an accepted downward QUECVT',
    (f) => {
      f.lock(1, 'r', MODE.PR);
      f.done(1, 'granted', MODE.PR);
      f.call('convert', { lkid: 1, mode: MODE.NL, flags: LKF.QUECVT });
    },
  ],
  [
    'ALTMODE without ALTPR/ALTCW',
    (f) => {
      f.lock(1, 'r', MODE.EX);
      f.done(1, 'granted', MODE.PR, { sbflags: SBF.ALTMODE });
    },
  ],
  [
    'a completion after the session closed',
    (f) => {
      f.lock(1, 'r', MODE.EX);
      f.call('close', {});
      f.done(1, 'granted', MODE.EX);
    },
  ],
  [
    '`cancelled` without a cancel',
    (f) => {
      f.lock(1, 'r', MODE.EX);
      f.done(1, 'cancelled', null);
    },
  ],
  [
    'a blocking notification for an ended lock',
    (f) => {
      f.lock(1, 'r', MODE.EX, LKF.NOQUEUE);
      f.done(1, 'again', null);
      f.bast(1, MODE.EX);
    },
  ],
];

for (const [name, history] of RED)
  test(`caught: ${name}`, () => {
    const { feed, found } = rig();
    history(feed);
    assert.equal(found.length, 1, found.join('\n'));
  });
