/**
 * The DLM's vocabulary (docs/dlm.md; research/dlm.md section 1): lock modes, request and unlock
 * flags, completion statuses, status-block flags, and the master-side effects a resource produces.
 * Pure data: shared by the resource engine (`resource.ts`), the per-node lockspace core, the peer
 * messages, the client API and the checkers.
 *
 * Values follow Linux where Linux has one (mode numbers, `DLM_LKF_*` bits, `DLM_SBF_*` bits), so
 * a reader who knows libdlm reads ours without a table.
 */
import type { NodeId } from '../lib/ids.js';

/** A lock mode, numeric as in Linux: NL 0, CR 1, CW 2, PR 3, PW 4, EX 5 (research/dlm.md 1.3). */
export type LockMode = 0 | 1 | 2 | 3 | 4 | 5;

/** The modes by name. */
export const MODE = { NL: 0, CR: 1, CW: 2, PR: 3, PW: 4, EX: 5 } as const satisfies Record<string, LockMode>;

/** A mode's name. */
export type LockModeName = keyof typeof MODE;

/** Names by mode number. */
export const MODE_NAMES: readonly LockModeName[] = ['NL', 'CR', 'CW', 'PR', 'PW', 'EX'];

/**
 * Request and unlock flags (`DLM_LKF_*`, the same bits as Linux; research/dlm.md 1.5). `CANCEL`
 * and `FORCEUNLOCK`, `IVVALBLK` and `VALBLK` are the unlock call's; the rest are the lock call's.
 */
export const LKF = {
  NOQUEUE: 0x1,
  CANCEL: 0x2,
  CONVERT: 0x4,
  VALBLK: 0x8,
  QUECVT: 0x10,
  IVVALBLK: 0x20,
  CONVDEADLK: 0x40,
  PERSISTENT: 0x80,
  NODLCKWT: 0x100,
  NODLCKBLK: 0x200,
  EXPEDITE: 0x400,
  NOQUEUEBAST: 0x800,
  HEADQUE: 0x1000,
  NOORDER: 0x2000,
  ORPHAN: 0x4000,
  ALTPR: 0x8000,
  ALTCW: 0x10000,
  FORCEUNLOCK: 0x20000,
  TIMEOUT: 0x40000,
} as const;

/** A flag's name. */
export type LockFlagName = keyof typeof LKF;

/** Every defined flag bit. */
export const LKF_ALL: number = Object.values(LKF).reduce((a, b) => a | b, 0);

/** Status-block flags of a completion (`DLM_SBF_*`). */
export const SBF = {
  /** The granted mode was forced to NL (CONVDEADLK): the holder lost its protection. */
  DEMOTED: 0x1,
  /** The resource's value block is marked invalid (its bytes are still copied out). */
  VALNOTVALID: 0x2,
  /** Granted in the alternate mode (ALTPR / ALTCW). */
  ALTMODE: 0x4,
} as const;

/**
 * The final status of an accepted operation, carried by its one completion (research/dlm.md 1.7,
 * 1.11): `granted` (0: granted or converted), `again` (-EAGAIN: NOQUEUE and not grantable),
 * `deadlock` (-EDEADLK: conversion deadlock, the conversion was cancelled), `unlocked`
 * (-DLM_EUNLOCK), `cancelled` (-DLM_ECANCEL), `timeout` (-ETIMEDOUT: a TIMEOUT request waited
 * longer than it allowed).
 */
export type LockStatus = 'granted' | 'again' | 'deadlock' | 'unlocked' | 'cancelled' | 'timeout';

/** Every completion status. */
export const LOCK_STATUSES: readonly LockStatus[] = [
  'granted',
  'again',
  'deadlock',
  'unlocked',
  'cancelled',
  'timeout',
];

/**
 * A lock as the master knows it: the node that holds the process copy and that node's lock id
 * (unique among the locks of one node incarnation in one lockspace, never reused by it).
 */
export interface LockRef {
  readonly node: NodeId;
  readonly lkid: number;
}

/** The completion of one operation on a lock, as the master reports it. */
export interface Completion {
  readonly ref: LockRef;
  readonly status: LockStatus;
  /**
   * The lock's granted mode after the operation, or null when the lock ended (unlocked, a
   * cancelled or failed new request).
   */
  readonly mode: LockMode | null;
  /** `SBF` bits. */
  readonly sbflags: number;
  /**
   * The value block read by this operation (VALBLK, and the rules of research/dlm.md 1.8 say
   * "read"), else null.
   */
  readonly lvb: Uint8Array | null;
}

/** A blocking notification: the holder of `ref` blocks a request for `mode`. */
export interface BlockingNote {
  readonly ref: LockRef;
  readonly mode: LockMode;
}

/** What operations on a resource produced, in order; the caller drains both lists. */
export interface ResourceEffects {
  readonly completions: Completion[];
  readonly basts: BlockingNote[];
}

/** A fresh, empty effects collector. */
export function newEffects(): ResourceEffects {
  return { completions: [], basts: [] };
}
