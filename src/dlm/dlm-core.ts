/**
 * The DLM on one node (docs/dlm.md): pure and synchronous. It holds the node's lockspaces, the
 * client sessions that own locks, and the lock calls as libdlm offers them (research/dlm.md 1):
 * `lock` (a new request), `convert`, `unlock` and `cancel`, each validated as Linux validates it,
 * each accepted one answered by exactly one completion event later (none for a moot cancel).
 *
 * Sessions: every lock belongs to the session that asked for it (a client connection, or an
 * embedded caller). Closing a session force-unlocks its locks (with IVVALBLK: a PW/EX holder that
 * vanished may have been mid-update, so the value block is marked invalid, research/dlm.md 1.8),
 * except granted PERSISTENT locks, which stay as orphans that a later ORPHAN request for the same
 * name and mode adopts (research/dlm.md 1.5).
 *
 * Lock ids are unique per node forever: the incarnation times 2^32 plus a counter, so a master
 * never confuses a lock of an earlier incarnation with a new one.
 */
import { err, ok, type Result } from '../lib/errors.js';
import type { Incarnation, NodeId } from '../lib/ids.js';
import { assert } from '../lib/assert.js';
import {
  DLM_LOCKS_PER_NODE_MAX,
  DLM_LOCKSPACES_MAX,
  DLM_LVB_BYTES_DEFAULT,
  DLM_OPS_IN_FLIGHT_PER_PEER_MAX,
  DLM_RESOURCE_NAME_BYTES_MAX,
  DLM_TOSS_MS,
} from '../constants.js';
import type { DlmMessage } from './dlm-message.js';
import { validateLock, validateUnlock } from './lock-flags.js';
import { LKF, type LockMode } from './lock-types.js';
import { quecvtAllowed } from './lock-modes.js';
import { CLOSE_UNLOCK_FLAGS, LocalLock, Lockspace, type LocalCompletion, type LockspaceMember } from './lockspace.js';

/** Stable codes of a refused lock call (the call's error; an accepted call's outcome comes as a completion). */
export type DlmErrorCode =
  /** Bad arguments: a mode, flag combination, name or value block Linux would refuse (-EINVAL). */
  | 'INVALID'
  /** An operation is already in flight on this lock (-EBUSY), or a cancel is already pending. */
  | 'BUSY'
  /** No such lock (or it already ended), or no orphan to adopt (-ENOENT). */
  | 'NOT_FOUND'
  /** This node has not joined the lockspace. */
  | 'NO_LOCKSPACE'
  /** A bound: locks per node, resources, operations in flight to one node (backpressure: retry later). */
  | 'LIMIT';

/** A refused lock call. */
export class DlmError extends Error {
  constructor(
    readonly code: DlmErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'DlmError';
  }
}

/**
 * Planted bugs, for the simulator's `dlm` workload only (docs/simulator.md), each proving that a
 * checker bites: `grant-incompatible` (the resource engine ignores the granted modes of converting
 * locks, `ResourceCanary`), `drop-bast` (a master never sends a blocking notification to another
 * node), `forget-closed-session` (closing a session leaves its locks in place).
 */
export type DlmCanary = 'grant-incompatible' | 'drop-bast' | 'forget-closed-session';

/** Every `DlmCanary`. */
export const DLM_CANARIES: readonly DlmCanary[] = ['grant-incompatible', 'drop-bast', 'forget-closed-session'];

/** What a session is told. */
export type DlmEvent =
  | ({ readonly kind: 'completion'; readonly ls: string; readonly lkid: number } & LocalCompletion)
  | { readonly kind: 'bast'; readonly ls: string; readonly lkid: number; readonly mode: LockMode }
  | { readonly kind: 'paused'; readonly ls: string; readonly paused: boolean; readonly why: string };

/** What the core needs from its node. */
export interface DlmCorePort {
  /** Sends `m` to `to` in order, exactly once (the service's reliable links). */
  send(to: NodeId, m: DlmMessage): void;
  /** Operations queued or in flight to `to` (for backpressure). */
  pending(to: NodeId): number;
  /** An event for `session`. */
  event(session: number, e: DlmEvent): void;
  trace(event: string, fields: Record<string, string | number | boolean>): void;
  /** Whether a departed lockspace member's locks may be dropped (it left, or its fence is recorded). */
  departedSafe(node: NodeId, incarnation: number): boolean;
}

/** Options of a lock call. */
export interface LockOptions {
  /** Blocking notifications wanted for this lock. */
  readonly bast?: boolean;
  /** TIMEOUT: give up (completion `timeout`) after this many ms of waiting. */
  readonly timeoutMs?: number;
  /** The caller's value block (convert and unlock with VALBLK, from PW/EX). */
  readonly lvb?: Uint8Array | null;
}

const LKID_COUNTER_SPAN = 2 ** 32;

/** See the file comment. */
export class DlmCore {
  private readonly spaces = new Map<string, Lockspace>();
  private readonly sessions = new Set<number>();
  private nextSession = 1;
  private nextLkid: number;
  private readonly lkidEnd: number;
  private lockCount = 0;
  private nowMs = 0;

  constructor(
    private readonly self: NodeId,
    incarnation: Incarnation,
    private readonly port: DlmCorePort,
    private readonly tossMs: number = DLM_TOSS_MS,
    private readonly canary: DlmCanary | null = null,
  ) {
    assert(incarnation < 2 ** 20, 'lock ids need incarnations below 2^20');
    this.nextLkid = incarnation * LKID_COUNTER_SPAN + 1;
    this.lkidEnd = (incarnation + 1) * LKID_COUNTER_SPAN;
  }

  // ----------------------------------------------------------------------------------------------
  // Lockspaces

  /** The lockspace `name`, created (not joined yet) with value blocks of `lvbLen` bytes. */
  open(name: string, lvbLen: number = DLM_LVB_BYTES_DEFAULT): Result<Lockspace, DlmError> {
    const have = this.spaces.get(name);
    if (have !== undefined) return ok(have);
    if (this.spaces.size >= DLM_LOCKSPACES_MAX)
      return err(new DlmError('LIMIT', `at most ${DLM_LOCKSPACES_MAX} lockspaces on one node`));
    const ls = new Lockspace(
      name,
      this.self,
      lvbLen,
      {
        send: (to, m) => {
          this.port.send(to, m);
        },
        completion: (session, lkid, c) => {
          if (c.mode === null) this.lockCount--;
          if (this.sessions.has(session)) this.port.event(session, { kind: 'completion', ls: name, lkid, ...c });
        },
        bast: (session, lkid, mode) => {
          if (this.sessions.has(session)) this.port.event(session, { kind: 'bast', ls: name, lkid, mode });
        },
        paused: (session, paused, why) => {
          if (this.sessions.has(session)) this.port.event(session, { kind: 'paused', ls: name, paused, why });
        },
        trace: (event, fields) => {
          this.port.trace(event, fields);
        },
        departedSafe: (node, incarnation) => this.port.departedSafe(node, incarnation),
      },
      this.tossMs,
      this.canary,
    );
    this.spaces.set(name, ls);
    return ok(ls);
  }

  lockspace(name: string): Lockspace | undefined {
    return this.spaces.get(name);
  }

  lockspaces(): Lockspace[] {
    return [...this.spaces.values()];
  }

  /** The lockspace's group view `gen` with its members (ascending). */
  onView(name: string, gen: number, members: readonly LockspaceMember[]): void {
    this.spaces.get(name)?.onView(gen, members);
  }

  /** The node's local quorum verdict. */
  setQuorate(quorate: boolean): void {
    for (const ls of this.spaces.values()) ls.setQuorate(quorate);
  }

  // ----------------------------------------------------------------------------------------------
  // Sessions

  openSession(): number {
    const s = this.nextSession++;
    this.sessions.add(s);
    return s;
  }

  /**
   * Ends `session`: its granted PERSISTENT locks become orphans; every other lock is
   * force-unlocked with IVVALBLK. No event reaches the session any more.
   */
  closeSession(session: number): void {
    if (!this.sessions.delete(session)) return;
    // CANARY (simulator only): the closed session's locks stay held, waiters wait forever.
    if (this.canary === 'forget-closed-session') return;
    for (const ls of this.spaces.values())
      for (const lock of [...ls.locks.values()]) {
        if (lock.session !== session) continue;
        if (lock.persistent && lock.granted !== null && lock.op === null) {
          lock.session = null;
          this.port.trace('dlm-orphaned', { ls: ls.name, lkid: lock.lkid, name: lock.name });
          continue;
        }
        this.forceUnlock(ls, lock, CLOSE_UNLOCK_FLAGS, null);
      }
  }

  // ----------------------------------------------------------------------------------------------
  // Lock calls

  /** A new lock on `name` in `lsName`; returns its lock id (the completion comes as an event). */
  lock(
    session: number,
    lsName: string,
    name: string,
    mode: LockMode,
    flags: number,
    opts: LockOptions = {},
  ): Result<number, DlmError> {
    const ls = this.joined(lsName);
    if (!ls.ok) return ls;
    const bad =
      (flags & LKF.CONVERT) !== 0
        ? 'CONVERT is not a new request: call convert on the lock'
        : (validateLock(mode, flags, false) ?? this.checkName(name) ?? checkTimeout(flags, opts));
    if (bad !== null) return err(new DlmError('INVALID', bad));
    if (!this.sessions.has(session)) return err(new DlmError('NOT_FOUND', `session ${session} is closed`));
    if ((flags & LKF.ORPHAN) !== 0) return this.adopt(session, ls.value, name, mode);
    if (this.lockCount >= DLM_LOCKS_PER_NODE_MAX)
      return err(new DlmError('LIMIT', `this node holds ${DLM_LOCKS_PER_NODE_MAX} locks, the most it may`));
    const backpressure = this.backpressure(ls.value, name);
    if (backpressure !== null) return err(backpressure);
    const lkid = this.nextLkid++;
    assert(lkid < this.lkidEnd, 'lock ids of this incarnation used up');
    const lock = new LocalLock(
      lkid,
      name,
      session,
      { kind: 'request', mode, flags },
      opts.bast === true,
      (flags & LKF.PERSISTENT) !== 0,
      opts.timeoutMs === undefined ? null : this.nowMs + opts.timeoutMs,
    );
    ls.value.locks.set(lkid, lock);
    this.lockCount++;
    ls.value.dispatch(lock, 'request');
    return ok(lkid);
  }

  /** Converts granted lock `lkid` to `mode` (CONVERT is implied). */
  convert(
    session: number,
    lsName: string,
    lkid: number,
    mode: LockMode,
    flags: number,
    opts: LockOptions = {},
  ): Result<void, DlmError> {
    const found = this.owned(session, lsName, lkid);
    if (!found.ok) return found;
    const { ls, lock } = found.value;
    const all = flags | LKF.CONVERT;
    const bad = validateLock(mode, all, true) ?? checkTimeout(all, opts) ?? this.checkLvb(ls, opts.lvb);
    if (bad !== null) return err(new DlmError('INVALID', bad));
    if (lock.op !== null || lock.granted === null)
      return err(new DlmError('BUSY', `lock ${lkid} has an operation in flight; wait for its completion`));
    // Linux refuses this from the call (-EINVAL, research/dlm.md 1.4); the node knows the granted
    // mode, so the caller learns it here and not as an `again` completion from the master.
    if ((all & LKF.QUECVT) !== 0 && !quecvtAllowed(lock.granted, mode))
      return err(new DlmError('INVALID', `QUECVT is only for an upward conversion, not ${lock.granted} to ${mode}`));
    const backpressure = this.backpressure(ls, lock.name);
    if (backpressure !== null) return err(backpressure);
    lock.op = { kind: 'convert', mode, flags: all };
    if (opts.bast !== undefined) lock.bast = opts.bast;
    lock.lvb = opts.lvb ?? null;
    lock.timeoutAt = opts.timeoutMs === undefined ? null : this.nowMs + opts.timeoutMs;
    ls.dispatch(lock, 'convert');
    return ok(undefined);
  }

  /**
   * Unlocks `lkid` (flags: VALBLK, IVVALBLK, FORCEUNLOCK; CANCEL means `cancel`). Without
   * FORCEUNLOCK only a granted lock with nothing in flight may be unlocked.
   */
  unlock(
    session: number,
    lsName: string,
    lkid: number,
    flags: number,
    lvb: Uint8Array | null = null,
  ): Result<void, DlmError> {
    if ((flags & LKF.CANCEL) !== 0) return this.cancel(session, lsName, lkid);
    const found = this.owned(session, lsName, lkid);
    if (!found.ok) return found;
    const { ls, lock } = found.value;
    const bad = validateUnlock(flags) ?? this.checkLvb(ls, lvb);
    if (bad !== null) return err(new DlmError('INVALID', bad));
    if ((flags & LKF.FORCEUNLOCK) !== 0) {
      if (lock.op?.kind === 'unlock') return err(new DlmError('BUSY', `lock ${lkid} is already being unlocked`));
      this.forceUnlock(ls, lock, flags, lvb);
      return ok(undefined);
    }
    if (lock.op !== null || lock.granted === null)
      return err(new DlmError('BUSY', `lock ${lkid} has an operation in flight; cancel it or use FORCEUNLOCK`));
    lock.op = { kind: 'unlock', mode: lock.granted, flags };
    lock.lvb = lvb;
    ls.dispatch(lock, 'unlock');
    return ok(undefined);
  }

  /**
   * Cancels the waiting request or queued conversion of `lkid`: its completion then says
   * `cancelled`; if it was granted meanwhile (a moot cancel) the original completion stands and
   * nothing more comes (research/dlm.md 1.6).
   */
  cancel(session: number, lsName: string, lkid: number): Result<void, DlmError> {
    const found = this.owned(session, lsName, lkid);
    if (!found.ok) return found;
    const { ls, lock } = found.value;
    if (lock.cancelling) return err(new DlmError('INVALID', `a cancel of lock ${lkid} is already pending`));
    if (lock.op === null || lock.op.kind === 'unlock') return ok(undefined); // nothing to cancel
    if (lock.unsent || (lock.deferred !== null && lock.deferred.kind !== 'cancel')) {
      // Not sent yet (waiting for its master's name, or for a recovery to end): cancelled here.
      ls.withdraw(lock);
      lock.deferred = null;
      lock.op = null;
      const mode = lock.granted;
      if (mode === null) ls.locks.delete(lkid);
      if (mode === null) this.lockCount--;
      this.port.event(session, {
        kind: 'completion',
        ls: lsName,
        lkid,
        status: 'cancelled',
        mode,
        sbflags: 0,
        lvb: null,
      });
      return ok(undefined);
    }
    lock.cancelling = true;
    ls.dispatch(lock, 'cancel', 'cancelled');
    return ok(undefined);
  }

  // ----------------------------------------------------------------------------------------------
  // Peer messages and time

  /** A DLM message from `from` (already in order and deduplicated by the links). */
  onMessage(from: NodeId, m: DlmMessage): void {
    const ls = this.spaces.get(m.ls);
    if (ls === undefined) {
      this.port.trace('dlm-unknown-lockspace', { from, ls: m.ls, t: m.t });
      return;
    }
    ls.onMessage(from, m);
  }

  onTick(nowMs: number): void {
    this.nowMs = nowMs;
    for (const ls of this.spaces.values()) {
      ls.checkRecovery();
      ls.onTick(nowMs);
    }
  }

  /** Re-examines recoveries waiting for a departed member's fence (call after applied entries). */
  checkRecoveries(): void {
    for (const ls of this.spaces.values()) ls.checkRecovery();
  }

  /** Locks this node holds (process copies), across lockspaces. */
  get heldLocks(): number {
    return this.lockCount;
  }

  // ----------------------------------------------------------------------------------------------

  private forceUnlock(ls: Lockspace, lock: LocalLock, flags: number, lvb: Uint8Array | null): void {
    if ((lock.unsent || (lock.deferred !== null && lock.deferred.kind !== 'cancel')) && lock.granted === null) {
      // A new request no master has seen: it ends here.
      ls.withdraw(lock);
      lock.deferred = null;
      ls.locks.delete(lock.lkid);
      this.lockCount--;
      if (lock.session !== null && this.sessions.has(lock.session))
        this.port.event(lock.session, {
          kind: 'completion',
          ls: ls.name,
          lkid: lock.lkid,
          status: 'unlocked',
          mode: null,
          sbflags: 0,
          lvb: null,
        });
      return;
    }
    const granted = lock.granted ?? 0;
    lock.op = { kind: 'unlock', mode: granted, flags: flags | LKF.FORCEUNLOCK };
    lock.lvb = lvb;
    ls.dispatch(lock, 'unlock');
  }

  private adopt(session: number, ls: Lockspace, name: string, mode: LockMode): Result<number, DlmError> {
    let other: LocalLock | undefined;
    for (const lock of ls.locks.values()) {
      if (lock.session !== null || lock.name !== name) continue;
      if (lock.granted === mode) {
        lock.session = session;
        this.port.event(session, {
          kind: 'completion',
          ls: ls.name,
          lkid: lock.lkid,
          status: 'granted',
          mode,
          sbflags: 0,
          lvb: null,
        });
        return ok(lock.lkid);
      }
      other = lock;
    }
    if (other !== undefined)
      return err(new DlmError('BUSY', `the orphan lock on ${name} is held in another mode; ask for that mode`));
    return err(new DlmError('NOT_FOUND', `no orphan lock on ${name} on this node`));
  }

  private joined(name: string): Result<Lockspace, DlmError> {
    const ls = this.spaces.get(name);
    if (ls?.joined !== true)
      return err(new DlmError('NO_LOCKSPACE', `this node has not joined lockspace ${name}; open it first`));
    return ok(ls);
  }

  private owned(session: number, lsName: string, lkid: number): Result<{ ls: Lockspace; lock: LocalLock }, DlmError> {
    const ls = this.joined(lsName);
    if (!ls.ok) return ls;
    const lock = ls.value.locks.get(lkid);
    if (lock?.session !== session)
      return err(
        new DlmError('NOT_FOUND', `no lock ${lkid} of this session in lockspace ${lsName} (it ended, or is another's)`),
      );
    return ok({ ls: ls.value, lock });
  }

  private backpressure(ls: Lockspace, name: string): DlmError | null {
    for (const m of ls.memberList)
      if (m.node !== this.self && this.port.pending(m.node) >= DLM_OPS_IN_FLIGHT_PER_PEER_MAX)
        return new DlmError(
          'LIMIT',
          `${DLM_OPS_IN_FLIGHT_PER_PEER_MAX} operations are in flight to node ${m.node}; retry when some complete (${name})`,
        );
    return null;
  }

  private checkName(name: string): string | null {
    const bytes = utf8Length(name);
    if (bytes === 0 || bytes > DLM_RESOURCE_NAME_BYTES_MAX)
      return `a resource name has 1 to ${DLM_RESOURCE_NAME_BYTES_MAX} bytes; got ${bytes}`;
    return null;
  }

  private checkLvb(ls: Lockspace, lvb: Uint8Array | null | undefined): string | null {
    if (lvb == null) return null;
    if (lvb.length > ls.lvbBytes)
      return `the value block has ${lvb.length} bytes; lockspace ${ls.name} uses ${ls.lvbBytes}`;
    return null;
  }
}

/** The UTF-8 length of `s` (as TextEncoder encodes it: a lone surrogate is 3 bytes), without encoding it. */
export function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}

function checkTimeout(flags: number, opts: LockOptions): string | null {
  const t = opts.timeoutMs;
  if (t !== undefined && (!Number.isInteger(t) || t < 1))
    return `timeoutMs must be a whole number of ms above 0; got ${t}`;
  if ((flags & LKF.TIMEOUT) !== 0 && t === undefined) return 'TIMEOUT needs timeoutMs';
  return null;
}
