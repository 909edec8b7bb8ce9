/**
 * Argument validation of lock and unlock calls as Linux does it (research/dlm.md 1.4 "Argument
 * validation", 1.5, 1.6), plus flag names for traces and scripts. A refused call gets -EINVAL
 * from the call itself and no completion; these functions only say why.
 *
 * One check needs the lock's granted mode (QUECVT on a transition that is not "upward"), so it
 * lives in `Resource.convert` (status INVALID), not here.
 */
import { LKF, LKF_ALL, type LockFlagName } from './lock-types.js';
import { isLockMode } from './lock-modes.js';

/** The flags an unlock call may carry (research/dlm.md 1.6). */
export const UNLOCK_FLAGS: number = LKF.CANCEL | LKF.FORCEUNLOCK | LKF.VALBLK | LKF.IVVALBLK;

const FLAG_NAMES = Object.keys(LKF) as LockFlagName[];

function has(flags: number, bit: number): boolean {
  return (flags & bit) !== 0;
}

/**
 * Validates a lock call: `mode` the requested mode, `flags` its `LKF` bits, `convert` true when it
 * converts an existing lock (the CONVERT bit says the same; a CONVERT bit on a new request is
 * refused). Returns null when valid, else a one-line message naming the rule that refused it.
 */
export function validateLock(mode: number, flags: number, convert: boolean): string | null {
  if (!isLockMode(mode)) return `mode ${String(mode)} is outside NL..EX`;
  if (!Number.isInteger(flags) || flags < 0 || (flags & ~LKF_ALL) !== 0) {
    return `unknown flag bits 0x${(flags & ~LKF_ALL).toString(16)}`;
  }
  if (has(flags, LKF.CONVERT) && !convert) return 'CONVERT on a new request: convert the lock';
  const isConvert = convert || has(flags, LKF.CONVERT);
  if (has(flags, LKF.CANCEL)) return 'CANCEL is an unlock flag, not a lock flag';
  if (has(flags, LKF.FORCEUNLOCK)) return 'FORCEUNLOCK is an unlock flag, not a lock flag';
  if (has(flags, LKF.QUECVT) && !isConvert) return 'QUECVT is only for a conversion';
  if (has(flags, LKF.CONVDEADLK) && !isConvert) return 'CONVDEADLK is only for a conversion';
  if (has(flags, LKF.CONVDEADLK) && has(flags, LKF.NOQUEUE)) {
    return 'CONVDEADLK with NOQUEUE: a conversion that never queues cannot deadlock';
  }
  if (has(flags, LKF.EXPEDITE)) {
    if (isConvert) return 'EXPEDITE is only for a new NL request, not a conversion';
    if (has(flags, LKF.QUECVT)) return 'EXPEDITE with QUECVT: EXPEDITE is only for a new NL request';
    if (has(flags, LKF.NOQUEUE)) return 'EXPEDITE with NOQUEUE: EXPEDITE is only for a new NL request';
    if (mode !== 0) return 'EXPEDITE is only for a new NL request, not another mode';
  }
  if (has(flags, LKF.NOQUEUEBAST) && !has(flags, LKF.NOQUEUE)) return 'NOQUEUEBAST needs NOQUEUE';
  if (has(flags, LKF.ALTPR) && has(flags, LKF.ALTCW)) return 'ALTPR and ALTCW together: choose one';
  if (has(flags, LKF.ORPHAN) && isConvert) return 'ORPHAN is only for a new request';
  if (has(flags, LKF.NODLCKBLK)) return 'NODLCKBLK is not implemented (as in Linux)';
  return null;
}

/**
 * Validates an unlock call's flags (research/dlm.md 1.6): only CANCEL, FORCEUNLOCK, VALBLK and
 * IVVALBLK, and not CANCEL with FORCEUNLOCK. Returns null when valid, else why not.
 */
export function validateUnlock(flags: number): string | null {
  if (!Number.isInteger(flags) || flags < 0) return `flags ${String(flags)} are not a bit set`;
  const extra = flags & ~UNLOCK_FLAGS;
  if (extra !== 0) {
    const names = flagNames(extra);
    const what = names.length > 0 ? names.join('|') : `0x${extra.toString(16)}`;
    return `${what} not allowed on unlock (only CANCEL, FORCEUNLOCK, VALBLK, IVVALBLK)`;
  }
  if (has(flags, LKF.CANCEL) && has(flags, LKF.FORCEUNLOCK)) {
    return 'CANCEL with FORCEUNLOCK: choose one';
  }
  return null;
}

/** The names of the defined bits set in `flags`, in bit order (unknown bits are left out). */
export function flagNames(flags: number): string[] {
  return FLAG_NAMES.filter((name) => has(flags, LKF[name]));
}

/** The bits named by `names` (any case), or a message naming the first unknown name. */
export function parseFlags(names: readonly string[]): number | string {
  let flags = 0;
  for (const raw of names) {
    const name = raw.toUpperCase();
    const found = FLAG_NAMES.find((f) => f === name);
    if (found === undefined) return `unknown flag ${raw}`;
    flags |= LKF[found];
  }
  return flags;
}
