/**
 * The state of one lockspace's recovery after members departed (docs/dlm.md, "Recovery"), and the
 * small facts it rests on. Pure; used by `Lockspace`.
 */
import type { NodeId } from '../lib/ids.js';
import type { LocalLock, LockspaceMember } from './local-lock.js';

/** A recovery after members departed (see `Lockspace.onView`). */
export interface Recovery {
  /** Departed incarnations whose locks are dropped once safe (stage `fence`). */
  departed: LockspaceMember[];
  /** `fence`: waiting until the departed are safe; `directory`: rebuilding it; `remaster`: resending locks. */
  stage: 'fence' | 'directory' | 'remaster';
  /** Names of this node's locks whose master departed, with their lock ids, not resent yet. */
  readonly remaster: Map<string, number[]>;
  /** Members that resent all their locks. */
  readonly remasteredFrom: Set<NodeId>;
  /** Resources mastered here that received resent locks (granted at the end, rule 3). */
  readonly recovered: Set<string>;
}

/** Whether `lock`'s operation was issued during a recovery and not sent yet (a deferred cancel does not count). */
export function opUnsent(lock: LocalLock): boolean {
  return lock.deferred !== null && lock.deferred.kind !== 'cancel';
}

/** The incarnation a lock id was issued by (lock ids are the incarnation times 2^32 plus a counter). */
export function incarnationOfLkid(lkid: number): number {
  return Math.floor(lkid / 2 ** 32);
}
