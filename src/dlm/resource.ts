/**
 * One resource's master copy: the pure lock engine of the DLM (research/dlm.md 1.4-1.9).
 *
 * A `Resource` holds three queues and the value block:
 * - the granted queue, ordered by granted mode, highest first (equal modes keep arrival order);
 * - the convert queue: granted locks asking for another mode, FIFO (HEADQUE puts at the head);
 *   a converting lock keeps its granted mode, which still counts against every request (rule 2);
 * - the wait queue: new requests, FIFO (HEADQUE puts at the head);
 * - the value block (LVB): `lvbLen` bytes allocated on first write, a sequence number bumped on
 *   every write, an invalid flag (research/dlm.md 1.8).
 *
 * Every operation is synchronous and appends its effects to the caller's `ResourceEffects`:
 * completions (exactly one per accepted operation, now or later; none for a moot cancel) and
 * blocking notifications (basts). An operation refused with a `ResourceError` changed nothing and
 * produced no effect (Linux: the call returns the error, no AST; research/dlm.md 1.4, 1.11).
 *
 * Pure and deterministic: no clocks, no I/O, iteration over arrays and an insertion-ordered map
 * only. The caller (the lockspace core) bounds how many locks it creates.
 */
import { LockIndex } from './lock-index.js';
import { assert, assertNever, defined } from '../lib/assert.js';
import { err, ok, type Result } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import { LKF, MODE, SBF, type LockMode, type LockRef, type LockStatus, type ResourceEffects } from './lock-types.js';
import { compatible, lvbAction, quecvtAllowed } from './lock-modes.js';
import { validateLock, validateUnlock } from './lock-flags.js';

/**
 * Why a call was refused: INVALID (-EINVAL: bad arguments), BUSY (-EBUSY: the lock is not in a
 * state that allows the call), NOT_FOUND (-ENOENT: no such lock), EXISTS (a new request for a
 * lock reference already in use).
 */
export type ResourceErrorCode = 'INVALID' | 'BUSY' | 'NOT_FOUND' | 'EXISTS';

/** A refused call; nothing changed. */
export class ResourceError extends Error {
  override readonly name = 'ResourceError';
  constructor(
    readonly code: ResourceErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** The queue a lock is on. */
export type QueueName = 'granted' | 'converting' | 'waiting';

/** A read-only view of one lock. */
export interface LockView {
  ref: LockRef;
  /** The granted mode; null for a new request still waiting. */
  granted: LockMode | null;
  /** The mode asked for while converting or waiting; null on the granted queue. */
  requested: LockMode | null;
  queue: QueueName;
  /** The `LKF` flags of the lock's last request or conversion. */
  flags: number;
  /** Registered for blocking notifications. */
  bast: boolean;
}

/** A snapshot of the whole resource, queues in order. */
export interface ResourceDump {
  name: string;
  /** A copy of the value block, or null before its first write. */
  lvb: Uint8Array | null;
  lvbSeq: number;
  lvbValid: boolean;
  granted: LockView[];
  converting: LockView[];
  waiting: LockView[];
}

/** The outcome of a request or conversion that was accepted. */
export type LockOutcome = 'granted' | 'queued' | 'failed';

/**
 * Test-only deliberate faults, to prove that checkers bite. 'grant-incompatible': rule 2 ignores
 * the granted modes of locks on the convert queue.
 */
export type ResourceCanary = 'grant-incompatible';

/** Options of a `Resource`. */
export interface ResourceOptions {
  readonly canary?: ResourceCanary;
}

/** The engine's record of one lock. The resource mutates it; nobody else sees it. */
interface Lock {
  readonly ref: LockRef;
  gr: LockMode | null;
  rq: LockMode | null;
  queue: QueueName | 'none';
  flags: number;
  bast: boolean;
  /** The highest bast mode sent since the last grant, -1 for none (Linux `highbast`). */
  highbast: number;
  /** Bit per mode: basts sent since the last grant (the PR/CW exception sends CW once). */
  bastSent: number;
  /** SBF bits for the next completion (ALTMODE, DEMOTED). */
  sbflags: number;
  /** The caller's value block for the pending conversion (written by a 'write' grant). */
  lvb: Uint8Array | null;
}

/** How evaluating a lock against the rules of research/dlm.md 1.4 came out. */
type Verdict = 'grant' | 'deadlock' | 'demoted' | 'blocked';

/** The empty queue every resource starts with (never written: `enqueue` replaces it first). */
const NO_LOCKS: Lock[] = [];

function keyOf(ref: LockRef): string {
  return `${String(ref.node)}:${String(ref.lkid)}`;
}

function has(flags: number, bit: number): boolean {
  return (flags & bit) !== 0;
}

function view(l: Lock): LockView {
  assert(l.queue !== 'none', 'a lock on no queue has no view');
  return { ref: l.ref, granted: l.gr, requested: l.rq, queue: l.queue, flags: l.flags, bast: l.bast };
}

/** The master copy of one resource. See the file comment for the contract. */
export class Resource extends LockIndex<Lock> {
  readonly name: string;
  readonly lvbLen: number;
  private readonly canary: ResourceCanary | null;
  private grantedQ: Lock[] = NO_LOCKS;
  /** The queues start as the shared empty `NO_LOCKS` (most resources never queue; see `enqueue`). */
  private convertQ: Lock[] = NO_LOCKS;
  private waitQ: Lock[] = NO_LOCKS;
  private lvbBytes: Uint8Array | null = null;
  private lvbSeq = 0;
  private lvbInvalid = false;

  /** `lvbLen`: the lockspace's value-block size in bytes (a multiple of 8, research 1.1). */
  constructor(name: string, lvbLen: number, options: ResourceOptions = {}) {
    super();
    assert(Number.isInteger(lvbLen) && lvbLen >= 0 && lvbLen % 8 === 0, 'lvbLen: multiple of 8');
    this.name = name;
    this.lvbLen = lvbLen;
    this.canary = options.canary ?? null;
  }

  /** How many locks the resource holds, on any queue. */
  get lockCount(): number {
    return this.indexSize;
  }

  /** True when no lock is left (the resource may be dropped; its value block goes with it). */
  isEmpty(): boolean {
    return this.indexSize === 0;
  }

  /** The lock `ref`, or null. */
  get(ref: LockRef): LockView | null {
    const l = this.indexGet(ref);
    return l === undefined ? null : view(l);
  }

  /** A snapshot of the queues (in order) and the value block. */
  dump(): ResourceDump {
    return {
      name: this.name,
      lvb: this.lvbBytes === null ? null : this.lvbBytes.slice(),
      lvbSeq: this.lvbSeq,
      lvbValid: !this.lvbInvalid,
      granted: this.grantedQ.map(view),
      converting: this.convertQ.map(view),
      waiting: this.waitQ.map(view),
    };
  }

  /**
   * A new lock `ref` asks for `mode` (research/dlm.md 1.4 rules 1, 2, 8, 10, 11). Returns
   * 'granted' (a 'granted' completion was appended), 'failed' (NOQUEUE: an 'again' completion
   * was appended and the lock is gone; with NOQUEUEBAST the granted and converting locks in the
   * way got basts) or 'queued' (on the wait queue; granted holders in the way got basts; the
   * completion comes from a later operation's re-grant pass, or from a cancel). Refused: INVALID
   * (validateLock), EXISTS (`ref` is in use).
   */
  request(
    ref: LockRef,
    mode: LockMode,
    flags: number,
    bast: boolean,
    out: ResourceEffects,
  ): Result<LockOutcome, ResourceError> {
    const invalid = validateLock(mode, flags, false);
    if (invalid !== null) return err(new ResourceError('INVALID', invalid));
    if (this.indexGet(ref) !== undefined) return err(new ResourceError('EXISTS', `lock ${keyOf(ref)} exists`));
    const l: Lock = {
      ref,
      gr: null,
      rq: mode,
      queue: 'none',
      flags,
      bast,
      highbast: -1,
      bastSent: 0,
      sbflags: 0,
      lvb: null,
    };
    const verdict = this.evaluate(l, true, false);
    if (verdict === 'grant') {
      this.indexAdd(l);
      this.grant(l, out);
      return ok('granted');
    }
    assert(verdict === 'blocked', 'a new request neither deadlocks nor demotes');
    if (has(flags, LKF.NOQUEUE)) {
      // research/dlm.md 1.5 NOQUEUE / NOQUEUEBAST.
      if (has(flags, LKF.NOQUEUEBAST)) this.sendBlockingAsts(l, true, out);
      this.complete(l, 'again', null, null, out);
      return ok('failed');
    }
    this.indexAdd(l);
    this.enqueue(l, 'waiting');
    this.sendBlockingAsts(l, false, out);
    return ok('queued');
  }

  /**
   * The granted lock `ref` asks for `mode` (research/dlm.md 1.4 rules 2, 4, 5, 10, 11; 1.8;
   * 1.9). Down-conversions are granted at once; a compatible conversion is granted in place
   * unless QUECVT (then only when the convert queue is empty). If not grantable: conversion
   * deadlock → 'failed' with a 'deadlock' completion (the lock keeps its granted mode), or with
   * CONVDEADLK the granted mode is demoted to NL (SBF.DEMOTED) and the conversion goes on, or with
   * NODLCKWT it queues and the lock itself gets a bast for `mode`; NOQUEUE → 'failed' with an
   * 'again' completion; else 'queued' on the convert queue. `lvb` is the caller's value block,
   * written by a conversion down from PW/EX with VALBLK. Refused: INVALID (validateLock, QUECVT
   * on a transition that is not upward, an `lvb` of the wrong size), NOT_FOUND, BUSY (not
   * granted, or already converting).
   */
  convert(
    ref: LockRef,
    mode: LockMode,
    flags: number,
    bast: boolean,
    lvb: Uint8Array | null,
    out: ResourceEffects,
  ): Result<LockOutcome, ResourceError> {
    const invalid = validateLock(mode, flags, true) ?? this.checkLvb(lvb);
    if (invalid !== null) return err(new ResourceError('INVALID', invalid));
    const l = this.indexGet(ref);
    if (l === undefined) return err(new ResourceError('NOT_FOUND', `no lock ${keyOf(ref)}`));
    if (l.queue !== 'granted') {
      return err(new ResourceError('BUSY', `lock ${keyOf(l.ref)} is ${l.queue}, not granted`));
    }
    const gr = defined(l.gr, 'granted mode');
    if (has(flags, LKF.QUECVT) && !quecvtAllowed(gr, mode)) {
      return err(new ResourceError('INVALID', 'QUECVT is only for an upward conversion'));
    }
    l.flags = flags;
    l.bast = bast;
    l.sbflags = 0;
    l.rq = mode;
    l.lvb = lvb;
    const verdict = this.evaluate(l, true, false);
    switch (verdict) {
      case 'grant':
        this.grant(l, out);
        this.grantPending(false, out);
        return ok('granted');
      case 'deadlock':
        if (!has(flags, LKF.NODLCKWT)) {
          // research/dlm.md 1.9: cancel the new conversion; it stays granted in its old mode.
          l.rq = null;
          l.lvb = null;
          this.complete(l, 'deadlock', l.gr, null, out);
          return ok('failed');
        }
        // research/dlm.md 1.5 NODLCKWT: wait, and tell the lock's own holder to back off.
        this.move(l, 'converting');
        this.sendBlockingAsts(l, false, out);
        this.bastSelf(l, out);
        return ok('queued');
      case 'demoted':
        // research/dlm.md 1.5 CONVDEADLK: now at NL, other conversions may go first, then it
        // may be granted in place (as Linux's do_convert).
        this.grantPendingConverts(false, out);
        if (this.grantable(l, true, false)) {
          this.grant(l, out);
          this.grantPending(false, out);
          return ok('granted');
        }
        this.move(l, 'converting');
        this.sendBlockingAsts(l, false, out);
        return ok('queued');
      case 'blocked':
        if (has(flags, LKF.NOQUEUE)) {
          if (has(flags, LKF.NOQUEUEBAST)) this.sendBlockingAsts(l, true, out);
          l.rq = null;
          l.lvb = null;
          this.complete(l, 'again', l.gr, null, out);
          return ok('failed');
        }
        this.move(l, 'converting');
        this.sendBlockingAsts(l, false, out);
        return ok('queued');
      default:
        return assertNever(verdict);
    }
  }

  /**
   * Unlocks `ref` (research/dlm.md 1.6): only a granted lock with no conversion pending (else
   * BUSY), unless FORCEUNLOCK, which removes it from whatever queue it is on (its pending
   * request or conversion then ends with this unlock's completion). From PW/EX with VALBLK (the
   * unlock's or the lock's own) the caller's `lvb` is written to the resource, or with IVVALBLK
   * the value block is marked invalid (1.8). Appends an 'unlocked' completion (mode null), then
   * runs a re-grant pass. Refused: INVALID (validateUnlock, CANCEL: use `cancel`, `lvb` size),
   * NOT_FOUND, BUSY.
   */
  unlock(ref: LockRef, flags: number, lvb: Uint8Array | null, out: ResourceEffects): Result<void, ResourceError> {
    let invalid = validateUnlock(flags) ?? this.checkLvb(lvb);
    if (invalid === null && has(flags, LKF.CANCEL)) invalid = 'CANCEL: use cancel()';
    if (invalid !== null) return err(new ResourceError('INVALID', invalid));
    const l = this.indexGet(ref);
    if (l === undefined) return err(new ResourceError('NOT_FOUND', `no lock ${keyOf(ref)}`));
    if (l.queue !== 'granted' && !has(flags, LKF.FORCEUNLOCK)) {
      return err(new ResourceError('BUSY', `lock ${keyOf(l.ref)} is ${l.queue}: cancel it first`));
    }
    // research/dlm.md 1.6, 1.8: only an unlock from PW/EX touches the value block.
    const valblk = has(flags | l.flags, LKF.VALBLK);
    if (l.gr !== null && l.gr >= MODE.PW) {
      if (has(flags, LKF.IVVALBLK)) this.lvbInvalid = true;
      else if (valblk && lvb !== null) this.writeLvb(lvb);
    }
    this.remove(l);
    l.sbflags = 0;
    this.complete(l, 'unlocked', null, null, out, valblk);
    this.grantPending(false, out);
    return ok(undefined);
  }

  /**
   * Cancels the pending operation of `ref` (research/dlm.md 1.6) with completion `status`
   * ('cancelled', or 'timeout' for a TIMEOUT request): a waiting request is removed (mode null);
   * a queued conversion returns to its granted mode on the granted queue (mode = that mode).
   * Then a re-grant pass. Returns ok(false) and appends nothing when there is nothing to cancel
   * (the lock is granted and not converting: a "moot" cancel). Refused: NOT_FOUND.
   */
  cancel(ref: LockRef, status: 'cancelled' | 'timeout', out: ResourceEffects): Result<boolean, ResourceError> {
    const l = this.indexGet(ref);
    if (l === undefined) return err(new ResourceError('NOT_FOUND', `no lock ${keyOf(ref)}`));
    switch (l.queue) {
      case 'granted':
        return ok(false);
      case 'waiting':
        this.remove(l);
        this.complete(l, status, null, null, out);
        break;
      case 'converting':
        this.detach(l);
        l.rq = null;
        l.lvb = null;
        this.enqueue(l, 'granted');
        this.complete(l, status, l.gr, null, out);
        break;
      case 'none':
        throw new Error(`lock ${keyOf(l.ref)} is registered but on no queue`);
      default:
        return assertNever(l.queue);
    }
    this.grantPending(false, out);
    return ok(true);
  }

  /**
   * Removes every lock of `node` (a failed node; research/dlm.md 2.3) without completions (its
   * holder is gone). A removed lock that held PW/EX with VALBLK marks the value block invalid
   * (1.8 "Invalidation by failure"). Then a re-grant pass if anything was removed. Returns how
   * many locks were removed.
   */
  purgeNode(node: NodeId, out: ResourceEffects): number {
    return this.purgeWhere((ref) => ref.node === node, out);
  }

  /** `purgeNode` for the locks whose reference `which` picks (one incarnation of a node: its lock ids say which). */
  purgeWhere(which: (ref: LockRef) => boolean, out: ResourceEffects): number {
    const victims = [...this.indexValues()].filter((l) => which(l.ref));
    for (const l of victims) {
      if (has(l.flags, LKF.VALBLK) && l.gr !== null && l.gr >= MODE.PW) this.lvbInvalid = true;
      this.remove(l);
    }
    if (victims.length > 0) this.grantPending(false, out);
    return victims.length;
  }

  /**
   * Runs a re-grant pass (research/dlm.md 1.4). With `recovery`, rule 3 applies: a queued
   * conversion compatible with every granted mode is granted whatever its position (order was
   * not preserved across recovery). Operations run their own passes; recovery calls this.
   */
  regrant(recovery: boolean, out: ResourceEffects): void {
    this.grantPending(recovery, out);
  }

  /**
   * DLM recovery (research/dlm.md 2.3): installs the lock `ref` as its node resends it to this new
   * master, without the granting rules and without effects: `granted` only (on the granted
   * queue), `granted` and `requested` (a queued conversion), or `requested` only (a waiting
   * request). A lock already here under `ref` is replaced (a resend after an aborted recovery).
   * The caller runs `regrant(true, …)` once every survivor has resent its locks.
   */
  recover(ref: LockRef, granted: LockMode | null, requested: LockMode | null, flags: number, bast: boolean): void {
    assert(granted !== null || requested !== null, 'a recovered lock holds or asks for a mode');
    const old = this.indexGet(ref);
    if (old !== undefined) this.remove(old);
    const l: Lock = {
      ref,
      gr: granted,
      rq: requested,
      queue: 'none',
      flags,
      bast,
      highbast: -1,
      bastSent: 0,
      sbflags: 0,
      lvb: null,
    };
    this.indexAdd(l);
    this.enqueue(l, requested === null ? 'granted' : granted === null ? 'waiting' : 'converting');
  }

  /** Marks the value block invalid (a remastered resource whose value no surviving holder above CR could vouch for). */
  invalidateLvb(): void {
    this.lvbInvalid = true;
  }

  // ---- the rules of research/dlm.md 1.4 ----

  /**
   * Rules 1-9 of research/dlm.md 1.4 for `l` asking for `l.rq`: `now` = evaluated when the call
   * arrives (not in a re-grant pass), `recovery` = a post-recovery pass.
   */
  private grantable(l: Lock, now: boolean, recovery: boolean): boolean {
    const rq = defined(l.rq, 'requested mode');
    const conv = l.gr !== null;
    if (has(l.flags, LKF.EXPEDITE)) return true; // rule 1
    // Rule 2: every other granted lock, and every converting lock's granted mode.
    for (const g of this.grantedQ) {
      if (g !== l && !compatible(defined(g.gr), rq)) return false;
    }
    if (this.canary !== 'grant-incompatible') {
      for (const c of this.convertQ) {
        if (c !== l && !compatible(defined(c.gr), rq)) return false;
      }
    }
    if (conv && recovery) return true; // rule 3
    if (conv && now) {
      if (!has(l.flags, LKF.QUECVT)) return true; // rule 4
      return this.convertQ.length === 0; // rule 5
    }
    if (has(l.flags, LKF.NOORDER)) return true; // rule 6
    if (conv) return this.convertQ[0] === l; // rule 7
    if (now) return this.convertQ.length === 0 && this.waitQ.length === 0; // rule 8
    return this.convertQ.length === 0 && this.waitQ[0] === l; // rule 9
  }

  /**
   * Rule 10 of research/dlm.md 1.4: rules 1-9, then conversion-deadlock detection for a
   * queueable conversion (1.9; CONVDEADLK demotes here), then the alternate mode.
   */
  private evaluate(l: Lock, now: boolean, recovery: boolean): Verdict {
    if (this.grantable(l, now, recovery)) return 'grant';
    if (l.gr !== null && !has(l.flags, LKF.NOQUEUE) && this.deadlocked(l)) {
      if (!has(l.flags, LKF.CONVDEADLK)) return 'deadlock';
      this.demote(l);
      return 'demoted';
    }
    const rq = defined(l.rq);
    let alt: LockMode | null = null;
    if (rq !== MODE.PR && has(l.flags, LKF.ALTPR)) alt = MODE.PR;
    else if (rq !== MODE.CW && has(l.flags, LKF.ALTCW)) alt = MODE.CW;
    if (alt !== null) {
      l.rq = alt;
      if (this.grantable(l, now, false)) {
        l.sbflags |= SBF.ALTMODE;
        return 'grant';
      }
      l.rq = rq;
    }
    return 'blocked';
  }

  /**
   * research/dlm.md 1.9: `l`'s granted mode blocks a conversion queued ahead of it, or `l` and a
   * conversion behind it block each other.
   */
  private deadlocked(l: Lock): boolean {
    const gr = defined(l.gr);
    const rq = defined(l.rq);
    let ahead = true; // the converting lock is ahead of l
    for (const c of this.convertQ) {
      if (c === l) {
        ahead = false;
        continue;
      }
      const blocksOther = !compatible(gr, defined(c.rq));
      if (ahead ? blocksOther : blocksOther && !compatible(defined(c.gr), rq)) return true;
    }
    return false;
  }

  /** CONVDEADLK (research/dlm.md 1.5): the granted mode becomes NL; the request stays. */
  private demote(l: Lock): void {
    l.sbflags |= SBF.DEMOTED;
    if (l.queue === 'granted') {
      this.detach(l);
      l.gr = MODE.NL;
      this.enqueue(l, 'granted');
    } else {
      l.gr = MODE.NL;
    }
  }

  /**
   * The re-grant pass (research/dlm.md 1.4): the convert queue (restarting after each grant),
   * the wait queue, then basts to granted holders for the highest request still blocked.
   */
  private grantPending(recovery: boolean, out: ResourceEffects): void {
    let { high, cw } = this.grantPendingConverts(recovery, out);
    for (const l of [...this.waitQ]) {
      if (l.queue !== 'waiting') continue;
      if (this.evaluate(l, false, false) === 'grant') {
        this.grant(l, out);
      } else {
        const rq = defined(l.rq);
        high = Math.max(high, rq);
        if (rq === MODE.CW) cw = true;
      }
    }
    if (high < 0) return;
    // research/dlm.md 1.7: a PR holder with a CW request still blocked gets a CW bast.
    for (const g of this.grantedQ) {
      const mode = (g.gr === MODE.PR && cw && high === MODE.PR ? MODE.CW : high) as LockMode;
      this.bastIfNeeded(g, mode, out);
    }
  }

  /**
   * The convert-queue half of the re-grant pass. Returns the highest requested mode still
   * blocked (-1 for none) and whether a CW request is among them.
   */
  private grantPendingConverts(recovery: boolean, out: ResourceEffects): { high: number; cw: boolean } {
    let demoteRestarted = false;
    for (;;) {
      let granted = false;
      let demoted = false;
      let high = -1;
      let cw = false;
      for (const l of [...this.convertQ]) {
        if (l.queue !== 'converting') continue;
        const verdict = this.evaluate(l, false, recovery);
        switch (verdict) {
          case 'grant':
            this.grant(l, out);
            granted = true;
            break;
          case 'demoted':
            demoted = true;
            break;
          case 'deadlock':
            // A NODLCKWT conversion in a deadlock: tell its own holder (research/dlm.md 1.5).
            // Any other stays queued until a cancel or unlock breaks the cycle, as in Linux.
            if (has(l.flags, LKF.NODLCKWT)) this.bastSelf(l, out);
            break;
          case 'blocked': {
            const rq = defined(l.rq);
            high = Math.max(high, rq);
            if (rq === MODE.CW) cw = true;
            break;
          }
          default:
            assertNever(verdict);
        }
      }
      if (granted) continue;
      if (demoted && !demoteRestarted) {
        demoteRestarted = true;
        continue;
      }
      return { high, cw };
    }
  }

  // ---- effects ----

  /** Grants `l.rq` to `l`: value block per research/dlm.md 1.8, granted queue, completion. */
  private grant(l: Lock, out: ResourceEffects): void {
    const to = defined(l.rq);
    const action = lvbAction(l.gr, to);
    let read: Uint8Array | null = null;
    switch (action) {
      case 'read':
        if (has(l.flags, LKF.VALBLK) && this.lvbBytes !== null) read = this.lvbBytes.slice();
        break;
      case 'write':
        if (has(l.flags, LKF.IVVALBLK)) this.lvbInvalid = true;
        else if (has(l.flags, LKF.VALBLK) && l.lvb !== null) this.writeLvb(l.lvb);
        break;
      case 'none':
        break;
      default:
        assertNever(action);
    }
    this.detach(l);
    l.gr = to;
    l.rq = null;
    l.lvb = null;
    l.highbast = -1;
    l.bastSent = 0;
    this.enqueue(l, 'granted');
    this.complete(l, 'granted', to, read, out);
  }

  /** Appends `l`'s completion; SBF.VALNOTVALID when VALBLK is involved and the LVB is invalid. */
  private complete(
    l: Lock,
    status: LockStatus,
    mode: LockMode | null,
    lvb: Uint8Array | null,
    out: ResourceEffects,
    valblk = has(l.flags, LKF.VALBLK),
  ): void {
    let sbflags = l.sbflags;
    if (valblk && this.lvbInvalid) sbflags |= SBF.VALNOTVALID;
    l.sbflags = 0;
    out.completions.push({ ref: l.ref, status, mode, sbflags, lvb });
  }

  /**
   * research/dlm.md 1.7: basts for `l`'s requested mode to the granted holders whose granted
   * mode blocks it (and the converting ones too with `converting`, for NOQUEUEBAST).
   */
  private sendBlockingAsts(l: Lock, converting: boolean, out: ResourceEffects): void {
    const mode = defined(l.rq);
    for (const g of this.grantedQ) if (g !== l) this.bastIfNeeded(g, mode, out);
    if (!converting) return;
    for (const c of this.convertQ) if (c !== l) this.bastIfNeeded(c, mode, out);
  }

  /**
   * One bast to `g` for `mode` if `g` wants basts, its granted mode blocks `mode`, and it has
   * not had one for this mode or a higher one since its last grant, except that a PR holder
   * blocking CW gets a CW bast once even after a higher one (research/dlm.md 1.7).
   */
  private bastIfNeeded(g: Lock, mode: LockMode, out: ResourceEffects): void {
    const gr = defined(g.gr);
    if (!g.bast || compatible(gr, mode) || has(g.bastSent, 1 << mode)) return;
    const prForCw = gr === MODE.PR && mode === MODE.CW;
    if (mode <= g.highbast && !prForCw) return;
    this.recordBast(g, mode, out);
  }

  /** NODLCKWT: a bast to the lock itself for its requested mode (research/dlm.md 1.5, 1.9). */
  private bastSelf(l: Lock, out: ResourceEffects): void {
    const mode = defined(l.rq);
    if (l.bast && mode > l.highbast) this.recordBast(l, mode, out);
  }

  private recordBast(g: Lock, mode: LockMode, out: ResourceEffects): void {
    g.bastSent |= 1 << mode;
    g.highbast = Math.max(g.highbast, mode);
    out.basts.push({ ref: g.ref, mode });
  }

  // ---- value block and queues ----

  private checkLvb(lvb: Uint8Array | null): string | null {
    if (lvb === null || lvb.length === this.lvbLen) return null;
    return `value block of ${String(lvb.length)} bytes, the lockspace's is ${String(this.lvbLen)}`;
  }

  /** research/dlm.md 1.8 "write": allocate on first write, copy, bump the sequence, valid. */
  private writeLvb(lvb: Uint8Array): void {
    assert(lvb.length === this.lvbLen, 'value block size');
    this.lvbBytes ??= new Uint8Array(this.lvbLen);
    this.lvbBytes.set(lvb);
    this.lvbSeq += 1;
    this.lvbInvalid = false;
  }

  /** Puts `l` on `queue`: granted by mode (highest first, FIFO within a mode), else FIFO/HEADQUE. */
  private enqueue(l: Lock, queue: QueueName): void {
    assert(l.queue === 'none', 'a lock is on one queue at a time');
    l.queue = queue;
    if (queue === 'granted') {
      if (this.grantedQ === NO_LOCKS) {
        this.grantedQ = [l]; // exactly sized: most resources hold one lock
        return;
      }
      const gr = defined(l.gr);
      const at = this.grantedQ.findIndex((g) => defined(g.gr) < gr);
      if (at < 0) this.grantedQ.push(l);
      else this.grantedQ.splice(at, 0, l);
      return;
    }
    let q: Lock[];
    if (queue === 'converting') {
      if (this.convertQ === NO_LOCKS) this.convertQ = [l];
      q = this.convertQ;
    } else {
      if (this.waitQ === NO_LOCKS) this.waitQ = [l];
      q = this.waitQ;
    }
    if (q.length === 1 && q[0] === l) return;
    if (has(l.flags, LKF.HEADQUE)) q.unshift(l);
    else q.push(l);
  }

  /** Takes `l` off its queue (a lock not yet queued stays as it is). */
  private detach(l: Lock): void {
    if (l.queue === 'none') return;
    const q = l.queue === 'granted' ? this.grantedQ : l.queue === 'converting' ? this.convertQ : this.waitQ;
    const at = q.indexOf(l);
    assert(at >= 0, 'a lock is on the queue it names');
    q.splice(at, 1);
    l.queue = 'none';
  }

  /** Moves `l` from its queue to `queue`. */
  private move(l: Lock, queue: QueueName): void {
    this.detach(l);
    this.enqueue(l, queue);
  }

  /** Removes `l` from the resource. */
  private remove(l: Lock): void {
    this.detach(l);
    assert(this.indexDelete(l), 'a removed lock was registered');
  }
}
