// Proves lock-flags.ts refuses every invalid lock and unlock flag combination of research/dlm.md
// 1.4 "Argument validation", 1.5 and 1.6 with a message naming the rule, accepts the valid ones,
// and that flag names round-trip.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LKF, LKF_ALL } from './lock-types.js';
import { flagNames, parseFlags, validateLock, validateUnlock } from './lock-flags.js';

const { NOQUEUE, CANCEL, CONVERT, VALBLK, QUECVT, IVVALBLK, CONVDEADLK, PERSISTENT } = LKF;
const { NODLCKWT, NODLCKBLK, EXPEDITE, NOQUEUEBAST, HEADQUE, NOORDER, ORPHAN } = LKF;
const { ALTPR, ALTCW, FORCEUNLOCK, TIMEOUT } = LKF;

// [mode, flags, convert, expected message fragment]
const REFUSED: readonly [number, number, boolean, RegExp][] = [
  [-1, 0, false, /outside NL\.\.EX/], // 1.4: mode outside NL..EX
  [6, 0, false, /outside NL\.\.EX/],
  [2.5, 0, false, /outside NL\.\.EX/],
  [3, 0x80000, false, /unknown flag bits 0x80000/],
  [3, CONVERT, false, /CONVERT on a new request/],
  [3, CANCEL, false, /CANCEL is an unlock flag/], // 1.4: CANCEL passed to dlm_lock
  [3, FORCEUNLOCK, true, /FORCEUNLOCK is an unlock flag/],
  [3, QUECVT, false, /QUECVT is only for a conversion/], // 1.4: QUECVT without CONVERT
  [3, CONVDEADLK, false, /CONVDEADLK is only for a conversion/], // 1.4: CONVDEADLK without CONVERT
  [3, CONVDEADLK | NOQUEUE, true, /CONVDEADLK with NOQUEUE/], // 1.4
  [0, EXPEDITE, true, /EXPEDITE is only for a new NL request/], // 1.4: EXPEDITE with CONVERT
  [0, EXPEDITE | CONVERT, true, /EXPEDITE is only for a new NL request/],
  [0, EXPEDITE | NOQUEUE, false, /EXPEDITE with NOQUEUE/], // 1.4
  [3, EXPEDITE, false, /EXPEDITE is only for a new NL request, not another mode/], // 1.4
  [3, NOQUEUEBAST, false, /NOQUEUEBAST needs NOQUEUE/], // 1.5
  [3, ALTPR | ALTCW, false, /ALTPR and ALTCW together/], // 1.5
  [3, ORPHAN, true, /ORPHAN is only for a new request/], // 1.5
  [3, NODLCKBLK, false, /NODLCKBLK is not implemented/], // 1.5
];

test('research/dlm.md 1.4, 1.5: every invalid lock call is refused with its rule', () => {
  for (const [mode, flags, convert, message] of REFUSED) {
    const got = validateLock(mode, flags, convert);
    assert.ok(got !== null, `accepted ${String(mode)} ${flagNames(flags).join('|')}`);
    assert.match(got, message);
  }
});

test('research/dlm.md 1.4: EXPEDITE with QUECVT is refused (QUECVT alone also needs CONVERT)', () => {
  const got = validateLock(0, EXPEDITE | QUECVT, false);
  assert.ok(got !== null);
  assert.match(got, /QUECVT/);
});

// [mode, flags, convert]
const ACCEPTED: readonly [number, number, boolean][] = [
  [0, 0, false],
  [5, 0, false],
  [0, EXPEDITE, false],
  [3, NOQUEUE, false],
  [3, NOQUEUE | NOQUEUEBAST, false],
  [5, CONVERT, true],
  [5, QUECVT, true],
  [5, CONVERT | QUECVT | CONVDEADLK, true],
  [5, NODLCKWT, true],
  [3, VALBLK | IVVALBLK, true],
  [3, HEADQUE | NOORDER, false],
  [3, ALTPR, false],
  [2, ALTCW | NOQUEUE, true],
  [3, PERSISTENT, false],
  [3, ORPHAN, false],
  [3, TIMEOUT, false],
];

test('research/dlm.md 1.4, 1.5: valid lock calls are accepted', () => {
  for (const [mode, flags, convert] of ACCEPTED) {
    assert.equal(validateLock(mode, flags, convert), null, `${String(mode)} ${flagNames(flags).join('|')}`);
  }
});

test('research/dlm.md 1.6: unlock takes only CANCEL, FORCEUNLOCK, VALBLK, IVVALBLK, not CANCEL with FORCEUNLOCK', () => {
  for (const flags of [0, CANCEL, FORCEUNLOCK, VALBLK, IVVALBLK, VALBLK | IVVALBLK | FORCEUNLOCK]) {
    assert.equal(validateUnlock(flags), null, flagNames(flags).join('|'));
  }
  assert.match(validateUnlock(CANCEL | FORCEUNLOCK) ?? '', /CANCEL with FORCEUNLOCK/);
  for (const bit of [NOQUEUE, CONVERT, QUECVT, CONVDEADLK, EXPEDITE, HEADQUE, ALTPR, TIMEOUT]) {
    assert.match(validateUnlock(bit) ?? '', /not allowed on unlock/, flagNames(bit).join('|'));
  }
  assert.match(validateUnlock(0x80000) ?? '', /0x80000 not allowed on unlock/);
});

test('flagNames and parseFlags round-trip every defined bit', () => {
  assert.deepEqual(flagNames(NOQUEUE | VALBLK), ['NOQUEUE', 'VALBLK']);
  assert.equal(parseFlags(flagNames(LKF_ALL)), LKF_ALL);
  assert.equal(parseFlags(['noqueue', 'HeadQue']), NOQUEUE | HEADQUE);
  assert.equal(parseFlags([]), 0);
  assert.equal(parseFlags(['NOPE']), 'unknown flag NOPE');
  for (const name of Object.keys(LKF)) assert.deepEqual(flagNames(parseFlags([name]) as number), [name]);
});
