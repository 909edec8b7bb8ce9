/**
 * A lock as its own node holds it (the process copy, `LocalLock`), lockspace members, and the
 * directory hash (docs/dlm.md, "Distribution"). Pure.
 */
import { defined } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import type { LockMode } from './lock-types.js';

const BIT_CANCELLING = 1;
const BIT_UNSENT = 2;
const BIT_BAST = 4;
const BIT_PERSISTENT = 8;

/**
 * A lock of this node (the process copy). A class whose flags share one number: a node may hold
 * a million of these.
 */
export class LocalLock {
  /** The owning session, or null for an orphan (a PERSISTENT lock whose session closed). */
  session: number | null;
  granted: LockMode | null = null;
  /** The operation in flight, or null. */
  op: { readonly kind: 'request' | 'convert' | 'unlock'; readonly mode: LockMode; readonly flags: number } | null;
  /** When a TIMEOUT request or conversion gives up (node clock, ms), or null. */
  timeoutAt: number | null;
  /** The node the operation was sent to (the master), or null. */
  master: NodeId | null = null;
  /** The caller's value block for the operation (convert, unlock), or null. */
  lvb: Uint8Array | null = null;
  /** The status the pending cancel ends the operation with (`timeout` for a TIMEOUT cancel). */
  cancelStatus: 'cancelled' | 'timeout' = 'cancelled';
  /** An operation issued during a lockspace recovery, not sent yet (dispatched when it ends), or null. */
  deferred: {
    readonly kind: 'request' | 'convert' | 'unlock' | 'cancel';
    readonly status: 'cancelled' | 'timeout';
  } | null = null;
  private bits: number;

  constructor(
    readonly lkid: number,
    readonly name: string,
    session: number,
    op: NonNullable<LocalLock['op']>,
    bast: boolean,
    persistent: boolean,
    timeoutAt: number | null,
  ) {
    this.session = session;
    this.op = op;
    this.timeoutAt = timeoutAt;
    this.bits = (bast ? BIT_BAST : 0) | (persistent ? BIT_PERSISTENT : 0);
  }

  private flag(bit: number, on: boolean): void {
    this.bits = on ? this.bits | bit : this.bits & ~bit;
  }

  /** A cancel (or a TIMEOUT cancel) was sent and not answered yet. */
  get cancelling(): boolean {
    return (this.bits & BIT_CANCELLING) !== 0;
  }
  set cancelling(on: boolean) {
    this.flag(BIT_CANCELLING, on);
  }
  /** The operation waits for the master's name to be known (not sent yet). */
  get unsent(): boolean {
    return (this.bits & BIT_UNSENT) !== 0;
  }
  set unsent(on: boolean) {
    this.flag(BIT_UNSENT, on);
  }
  /** The owner wants blocking notifications. */
  get bast(): boolean {
    return (this.bits & BIT_BAST) !== 0;
  }
  set bast(on: boolean) {
    this.flag(BIT_BAST, on);
  }
  /** Requested with PERSISTENT: it becomes an orphan when its session closes. */
  get persistent(): boolean {
    return (this.bits & BIT_PERSISTENT) !== 0;
  }
}

/** A lockspace member: a node and its incarnation in the lockspace's group view. */
export interface LockspaceMember {
  readonly node: NodeId;
  readonly incarnation: number;
}

/** The directory node of `name` among `members` (ascending by node): FNV-1a of the name, modulo. */
export function directoryNode(name: string, members: readonly LockspaceMember[]): NodeId {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return defined(members[h % members.length], 'a lockspace with members').node;
}
