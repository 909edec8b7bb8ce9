/**
 * The mode tables of the DLM (research/dlm.md 1.3, 1.4, 1.8): which granted mode lets which
 * requested mode be granted, which way a conversion goes, which conversions may carry QUECVT,
 * and what a grant or conversion does to the resource's value block. Pure tables, no state.
 *
 * Every table is indexed by mode number (NL 0 .. EX 5) and written out literally, so a reader
 * checks it against the research tables cell by cell.
 */
import { MODE_NAMES, type LockMode } from './lock-types.js';

const Y = true;
const n = false;

/** research/dlm.md 1.3, row = granted mode, column = requested mode. Symmetric. */
const COMPAT: readonly (readonly boolean[])[] = [
  /*        NL CR CW PR PW EX */
  /* NL */ [Y, Y, Y, Y, Y, Y],
  /* CR */ [Y, Y, Y, Y, Y, n],
  /* CW */ [Y, Y, Y, n, n, n],
  /* PR */ [Y, Y, n, Y, n, n],
  /* PW */ [Y, Y, n, n, n, n],
  /* EX */ [Y, n, n, n, n, n],
];

/** research/dlm.md 1.4 (QUECVT): the "upward" conversions that may carry QUECVT. */
const QUECVT: readonly (readonly boolean[])[] = [
  /*        NL CR CW PR PW EX */
  /* NL */ [n, Y, Y, Y, Y, Y],
  /* CR */ [n, n, Y, Y, Y, Y],
  /* CW */ [n, n, n, Y, Y, Y],
  /* PR */ [n, n, Y, n, Y, Y],
  /* PW */ [n, n, n, n, n, Y],
  /* EX */ [n, n, n, n, n, n],
];

/** What a grant does to the value block (research/dlm.md 1.8). */
export type LvbAction = 'read' | 'write' | 'none';

const R: LvbAction = 'read';
const W: LvbAction = 'write';
const x: LvbAction = 'none';

/** research/dlm.md 1.8, row = granted mode (first row: a new request), column = requested mode. */
const LVB_NEW: readonly LvbAction[] = [R, R, R, R, R, R];
const LVB: readonly (readonly LvbAction[])[] = [
  /*        NL CR CW PR PW EX */
  /* NL */ [R, R, R, R, R, R],
  /* CR */ [x, R, R, R, R, R],
  /* CW */ [x, x, R, R, R, R],
  /* PR */ [x, x, x, R, R, R],
  /* PW */ [W, W, W, W, W, R],
  /* EX */ [W, W, W, W, W, W],
];

function cell<T>(table: readonly (readonly T[])[], row: number, col: number): T {
  const r = table[row];
  const v = r?.[col];
  if (v === undefined) throw new RangeError(`mode out of range: ${String(row)}, ${String(col)}`);
  return v;
}

/**
 * True when a request for `requested` can coexist with a lock granted in `granted`
 * (research/dlm.md 1.3). Symmetric.
 */
export function compatible(granted: LockMode, requested: LockMode): boolean {
  return cell(COMPAT, granted, requested);
}

/** The direction of a conversion (research/dlm.md 1.3): PR<->CW are "middle", neither up nor down. */
export type ConversionKind = 'up' | 'down' | 'middle' | 'same';

/** Which way converting from `from` to `to` goes (research/dlm.md 1.3). */
export function conversionKind(from: LockMode, to: LockMode): ConversionKind {
  if (from === to) return 'same';
  if ((from === 2 && to === 3) || (from === 3 && to === 2)) return 'middle';
  return to > from ? 'up' : 'down';
}

/** True when a conversion from `from` to `to` may carry QUECVT (research/dlm.md 1.4). */
export function quecvtAllowed(from: LockMode, to: LockMode): boolean {
  return cell(QUECVT, from, to);
}

/**
 * What granting `to` does to the resource's value block (research/dlm.md 1.8): `from` is the
 * lock's granted mode, or null for a new request. 'read' copies the resource's block out to the
 * caller, 'write' copies the caller's block in (or invalidates it with IVVALBLK), 'none' leaves
 * both alone. Only locks with VALBLK take part; the table says what they would do.
 */
export function lvbAction(from: LockMode | null, to: LockMode): LvbAction {
  if (from === null) {
    const v = LVB_NEW[to];
    if (v === undefined) throw new RangeError(`mode out of range: ${String(to)}`);
    return v;
  }
  return cell(LVB, from, to);
}

/** The mode named `name` ('NL'..'EX', any case), or null when it names none. */
export function parseMode(name: string): LockMode | null {
  const i = MODE_NAMES.indexOf(name.toUpperCase() as (typeof MODE_NAMES)[number]);
  return i < 0 ? null : (i as LockMode);
}

/** True when `n` is a mode number (an integer NL..EX). */
export function isLockMode(n: number): n is LockMode {
  return Number.isInteger(n) && n >= 0 && n <= 5;
}
