/**
 * One lockspace on one node (docs/dlm.md, "Distribution"; research/dlm.md 2.1-2.2): pure and
 * synchronous, driven by its node's `DlmCore`.
 *
 * It plays three roles at once:
 * - **Process copies**: the locks this node's sessions hold (`LocalLock`), each with at most one
 *   operation in flight (plus an overlapping cancel or force-unlock, research/dlm.md 1.6).
 * - **Master**: the resources this node masters (`Resource`, the engine of the granting rules);
 *   operations from any node are applied there and their completions and blocking notifications
 *   routed back to the lock's node.
 * - **Directory node** for the names that hash to it over the lockspace's members: it records
 *   each name's master; the first node to look a name up becomes its master (as Linux).
 *
 * Membership is the lockspace's group view (`onView`); its id is the lockspace's generation. On a
 * change the directory is rebuilt: every member sends each resource it masters to the name's new
 * directory node (`claim`), then `rebuilt` to every member; a node answers lookups again once it
 * has every member's `rebuilt`. Lock traffic with a known master goes on meanwhile: a join does
 * not move masters. (A member that fails or leaves with resources is the next step, DLM recovery:
 * its resources are remastered and its locks purged once it is fenced.)
 *
 * Quorum: while the node's local quorum verdict is "not quorate", the master side applies
 * nothing (operations wait, in order) and local waiters are told (`paused`).
 */
import type { NodeId } from '../lib/ids.js';
import {
  DLM_CLAIM_NAMES_MAX,
  DLM_FUTURE_MESSAGES_MAX,
  DLM_MASTER_CACHE_MAX,
  DLM_RESOURCES_PER_NODE_MAX,
  DLM_TOSS_MS,
} from '../constants.js';
import type { DlmMessage, DlmOpKind } from './dlm-message.js';
import {
  LKF,
  newEffects,
  type Completion,
  type LockMode,
  type LockStatus,
  type ResourceEffects,
} from './lock-types.js';
import { Resource, type ResourceDump } from './resource.js';
import { directoryNode, type LocalLock, type LockspaceMember } from './local-lock.js';
import { incarnationOfLkid, opUnsent, type Recovery } from './recovery-state.js';
import type { DlmCanary } from './dlm-core.js';

export { directoryNode, LocalLock, type LockspaceMember } from './local-lock.js';

/** What a lockspace tells the world: peer messages, session events, traces. */
export interface LockspacePort {
  /** Sends `m` to `to` (in order, exactly once while both incarnations live). */
  send(to: NodeId, m: DlmMessage): void;
  /** A completion of a lock owned by `session`. */
  completion(session: number, lkid: number, c: LocalCompletion): void;
  /** A blocking notification for a lock owned by `session`. */
  bast(session: number, lkid: number, mode: LockMode): void;
  /** The lockspace paused (no quorum, or rebuilding) or resumed, for `session`'s waiters. */
  paused(session: number, paused: boolean, why: string): void;
  trace(event: string, fields: Record<string, string | number | boolean>): void;
  /**
   * Whether a departed member's locks may be dropped and its resources remastered: it left
   * cleanly, or its fence is recorded. Until then it may still run, holding what it held.
   */
  departedSafe(node: NodeId, incarnation: number): boolean;
}

/** A completion as a session sees it. */
export interface LocalCompletion {
  readonly status: LockStatus;
  /** The granted mode after the operation, or null when the lock ended. */
  readonly mode: LockMode | null;
  readonly sbflags: number;
  readonly lvb: Uint8Array | null;
}

/** See the file comment. */
export class Lockspace {
  /** The generation (the lockspace's group view id) and its members, ascending. */
  private gen = 0;
  private members: readonly LockspaceMember[] = [];
  /** The directory is being rebuilt: lookups wait (as asker and as directory node). */
  private rebuilding = false;
  private readonly rebuiltFrom = new Set<NodeId>();
  /** Directory messages of a newer generation, held until this node applies it. */
  private future: { readonly from: NodeId; readonly m: DlmMessage }[] = [];
  private quorate = true;

  /** Directory entries this node holds: name -> master (another node: a name mastered here needs none). */
  private readonly directory = new Map<string, NodeId>();
  /** Lookups that arrived while the directory was being rebuilt (as directory node). */
  private heldLookups: { readonly from: NodeId; readonly name: string }[] = [];
  /** Known masters of names mastered elsewhere (a wrong one answers `not-master`). */
  private readonly masters = new Map<string, NodeId>();
  /** Names whose lookup is in flight (sent, or waiting for the rebuild), with the locks waiting. */
  private readonly lookups = new Map<string, { sent: boolean; readonly waiting: number[] }>();

  /** Resources this node masters. */
  private readonly resources = new Map<string, Resource>();
  /** Resources mastered here that have no lock, with the time they emptied. */
  private readonly idleSince = new Map<string, number>();
  /** Operations that arrived while not quorate, applied in order once quorate again. */
  private held: { readonly from: NodeId; readonly m: Extract<DlmMessage, { t: 'op' }> }[] = [];

  /** This node's locks by lock id. */
  readonly locks = new Map<number, LocalLock>();

  /** The recovery after members departed (see the file comment), or null while none runs. */
  private recovery: Recovery | null = null;
  /** This node's locks with an operation issued during a recovery (`LocalLock.deferred`), in issue order. */
  private deferred: LocalLock[] = [];

  constructor(
    readonly name: string,
    private readonly self: NodeId,
    private readonly lvbLen: number,
    private readonly port: LockspacePort,
    private readonly tossMs: number = DLM_TOSS_MS,
    /** A planted bug (simulator only; see `DlmCanary`). */
    private readonly canary: DlmCanary | null = null,
  ) {}

  /** Whether this node is a member (it applied a view that lists it). */
  get joined(): boolean {
    return this.members.some((m) => m.node === this.self);
  }

  /** Value block bytes of this lockspace. */
  get lvbBytes(): number {
    return this.lvbLen;
  }

  get generation(): number {
    return this.gen;
  }

  get memberList(): readonly LockspaceMember[] {
    return this.members;
  }

  /** Whether new lookups wait (rebuilding the directory, not quorate, or a recovery before its remaster stage). */
  get paused(): boolean {
    return this.rebuilding || !this.quorate || (this.recovery !== null && this.recovery.stage !== 'remaster');
  }

  /** Whether a recovery runs (operations wait for it). */
  get recovering(): boolean {
    return this.recovery !== null;
  }

  // ----------------------------------------------------------------------------------------------
  // Membership and quorum

  /**
   * The lockspace's group view `gen` (members ascending by node). Joins only: rebuilds the
   * directory. A member departed: starts (or restarts) a recovery.
   */
  onView(gen: number, members: readonly LockspaceMember[]): void {
    if (gen <= this.gen) return;
    const departed = this.members.filter(
      (p) => !members.some((m) => m.node === p.node && m.incarnation === p.incarnation),
    );
    this.gen = gen;
    this.members = members;
    this.directory.clear();
    this.heldLookups = [];
    const isMember = new Set(members.map((m) => m.node));
    for (const [name, node] of [...this.masters]) if (!isMember.has(node)) this.masters.delete(name);
    for (const l of this.lookups.values()) l.sent = false;
    if (!isMember.has(this.self)) {
      this.rebuilding = false;
      this.recovery = null;
      return;
    }
    if (departed.length > 0 || this.recovery !== null) {
      const before = this.recovery;
      this.recovery = {
        departed: [...(before?.departed ?? []), ...departed],
        stage: 'fence',
        remaster: new Map(),
        remasteredFrom: new Set(),
        recovered: before?.recovered ?? new Set(),
      };
      this.rebuilding = false;
      this.port.trace('dlm-recovery', {
        ls: this.name,
        gen,
        departed: this.recovery.departed.map((d) => `${d.node}@${d.incarnation}`).join(','),
      });
      this.tellWaiters(true, 'a lockspace member departed: recovering (its fence comes first)');
      this.checkRecovery();
      return;
    }
    this.rebuildDirectory();
  }

  /** Sends each mastered name to its directory node, then `rebuilt` to every member; waits for theirs. */
  private rebuildDirectory(): void {
    const gen = this.gen;
    const members = this.members;
    this.rebuilding = true;
    this.rebuiltFrom.clear();
    this.port.trace('dlm-rebuild', { ls: this.name, gen, members: members.map((m) => m.node).join(',') });
    const claims = new Map<NodeId, string[]>();
    for (const name of this.resources.keys()) {
      const dir = directoryNode(name, members);
      if (dir !== this.self) {
        const list = claims.get(dir) ?? [];
        list.push(name);
        claims.set(dir, list);
      }
    }
    for (const [dir, names] of claims)
      for (let i = 0; i < names.length; i += DLM_CLAIM_NAMES_MAX)
        this.port.send(dir, { t: 'claim', ls: this.name, gen, names: names.slice(i, i + DLM_CLAIM_NAMES_MAX) });
    const recovering = this.recovery !== null;
    for (const m of members)
      if (m.node !== this.self) this.port.send(m.node, { t: 'rebuilt', ls: this.name, gen, recovering });
    this.rebuiltFrom.add(this.self);
    const waiting = this.future.filter((f) => 'gen' in f.m && f.m.gen === gen);
    this.future = this.future.filter((f) => 'gen' in f.m && f.m.gen > gen);
    for (const f of waiting) this.onMessage(f.from, f.m);
    this.maybeResume();
  }

  /**
   * Recovery, stage `fence`: once every departed member is safe (it left, or its fence is
   * recorded), drops its locks from the resources mastered here, marks this node's locks whose
   * master departed for remastering, and rebuilds the directory. Call on every applied entry and
   * tick (the fence commits through the cluster log).
   */
  checkRecovery(): void {
    const rec = this.recovery;
    if (rec?.stage !== 'fence') return;
    if (!rec.departed.every((d) => this.port.departedSafe(d.node, d.incarnation))) return;
    const out = newEffects();
    for (const d of rec.departed)
      for (const r of this.resources.values()) {
        const n = r.purgeWhere((ref) => ref.node === d.node && incarnationOfLkid(ref.lkid) === d.incarnation, out);
        if (n > 0 && r.isEmpty()) this.idleSince.set(r.name, -1);
      }
    const gone = new Set(rec.departed.map((d) => d.node));
    rec.departed = [];
    for (const lock of [...this.locks.values()]) {
      // Its master departed, or it waits to be resent since an earlier, aborted recovery. A new
      // request issued during the recovery (deferred, never sent) is at no master.
      const lost =
        lock.master === null ? !lock.unsent && !(opUnsent(lock) && lock.granted === null) : gone.has(lock.master);
      if (!lost) continue;
      lock.master = null;
      const sent = opUnsent(lock) ? null : lock.op;
      if (sent !== null) {
        // An operation in flight to the master that departed: as far as its owner knows it did
        // not happen. An unlock: the lock is gone with the master. A cancelled one: cancelled
        // here. Otherwise it is sent again once the recovery ended (Linux resends in-flight
        // requests), after the lock's granted mode was resent.
        if (sent.kind === 'unlock') {
          this.onCompletion(lock.lkid, { status: 'unlocked', mode: null, sbflags: 0, lvb: null });
          continue;
        }
        if (lock.cancelling) {
          this.onCompletion(lock.lkid, { status: 'cancelled', mode: lock.granted, sbflags: 0, lvb: null });
        } else if (lock.deferred === null) {
          lock.deferred = { kind: sent.kind, status: 'cancelled' };
          this.deferred.push(lock);
        }
        if (lock.granted === null) continue; // nothing of it to resend
      }
      const list = rec.remaster.get(lock.name) ?? [];
      list.push(lock.lkid);
      rec.remaster.set(lock.name, list);
    }
    rec.stage = 'directory';
    this.route(out);
    this.rebuildDirectory();
  }

  /**
   * Another member recovers in this generation (it saw a member depart; this node, a joiner or one
   * that skipped that view, did not): take part from the directory stage on, so every member ends
   * with the `remastered` barrier.
   */
  private joinRecovery(): void {
    this.recovery = {
      departed: [],
      stage: 'directory',
      remaster: new Map(),
      remasteredFrom: new Set(),
      recovered: new Set(),
    };
    this.port.trace('dlm-recovery', { ls: this.name, gen: this.gen, departed: '', joined: true });
    this.tellWaiters(true, 'a lockspace member departed: recovering');
  }

  /** Tells every local waiter the lockspace paused or resumed. */
  private tellWaiters(paused: boolean, why: string): void {
    for (const l of this.locks.values())
      if (l.session !== null && l.op !== null && l.op.kind !== 'unlock') this.port.paused(l.session, paused, why);
  }

  /** The node's local quorum verdict changed. */
  setQuorate(quorate: boolean): void {
    if (quorate === this.quorate) return;
    this.quorate = quorate;
    this.port.trace('dlm-quorum', { ls: this.name, quorate });
    const why = quorate ? 'quorum regained' : 'this node lost the cluster quorum: nothing is granted until it is back';
    this.tellWaiters(!quorate, why);
    if (!quorate) return;
    this.replayHeld();
    this.maybeResume();
  }

  private maybeResume(): void {
    if (!this.rebuilding || !this.quorate) {
      if (!this.rebuilding) this.resumeLookups();
      return;
    }
    if (!this.members.every((m) => this.rebuiltFrom.has(m.node))) return;
    this.rebuilding = false;
    this.port.trace('dlm-rebuilt', { ls: this.name, gen: this.gen, entries: this.directory.size });
    const rec = this.recovery;
    if (rec?.stage === 'directory') {
      // Stage `remaster`: look up each name whose master departed and resend its locks there.
      rec.stage = 'remaster';
      for (const name of rec.remaster.keys()) {
        const l = this.lookups.get(name);
        if (l === undefined) this.lookups.set(name, { sent: false, waiting: [] });
      }
      this.maybeRemastered();
    }
    this.resumeLookups();
  }

  /** Once this node resent every lock whose master departed: `remastered` to every member. */
  private maybeRemastered(): void {
    const rec = this.recovery;
    if (rec?.stage !== 'remaster' || rec.remaster.size > 0 || rec.remasteredFrom.has(this.self)) return;
    rec.remasteredFrom.add(this.self);
    for (const m of this.members)
      if (m.node !== this.self) this.port.send(m.node, { t: 'remastered', ls: this.name, gen: this.gen });
    this.maybeFinishRecovery();
  }

  /** Every member resent its locks: grant what became grantable (rule 3), then run again. */
  private maybeFinishRecovery(): void {
    const rec = this.recovery;
    if (rec?.stage !== 'remaster' || !this.members.every((m) => rec.remasteredFrom.has(m.node))) return;
    this.recovery = null;
    const out = newEffects();
    for (const name of rec.recovered) this.resources.get(name)?.regrant(true, out);
    this.port.trace('dlm-recovered', { ls: this.name, gen: this.gen, remastered: rec.recovered.size });
    this.route(out);
    this.tellWaiters(false, 'recovered');
    this.replayHeld();
    const deferred = this.deferred;
    this.deferred = [];
    for (const lock of deferred) {
      const d = lock.deferred;
      if (d === null || this.locks.get(lock.lkid) !== lock) continue; // withdrawn meanwhile
      lock.deferred = null;
      this.dispatch(lock, d.kind, d.status);
    }
  }

  /** Applies the operations held while not quorate or recovering, in arrival order. */
  private replayHeld(): void {
    if (!this.quorate || this.recovery !== null) return;
    const held = this.held;
    this.held = [];
    for (const h of held) this.masterOp(h.from, h.m);
  }

  private resumeLookups(): void {
    if (this.paused) return;
    const held = this.heldLookups;
    this.heldLookups = [];
    for (const h of held) this.answerLookup(h.from, h.name);
    for (const [name, l] of [...this.lookups]) if (!l.sent) this.startLookup(name);
  }

  // ----------------------------------------------------------------------------------------------
  // Operations of this node's locks (called by DlmCore after validation)

  /** Starts the operation already recorded on `lock` (`lock.op`, or a cancel). */
  dispatch(lock: LocalLock, kind: DlmOpKind, status: 'cancelled' | 'timeout' = 'cancelled'): void {
    if (this.recovery !== null) {
      lock.deferred = { kind, status };
      this.deferred.push(lock);
      return;
    }
    // Every operation but a new request follows the lock to the node its request went to: the
    // name's cached master may have been dropped meanwhile (another lock met a stale master), and
    // a cancel must chase its request, not start a lookup that sends the request again (found by
    // the simulator's dlm workload, seed 3449636879).
    const master = kind === 'request' ? this.masterOf(lock.name) : (lock.master ?? this.masterOf(lock.name));
    if (master === null) {
      // The master is not known yet: the operation waits for the lookup (only a new request can).
      lock.unsent = true;
      const l = this.lookups.get(lock.name) ?? { sent: false, waiting: [] };
      l.waiting.push(lock.lkid);
      if (!this.lookups.has(lock.name)) {
        this.lookups.set(lock.name, l);
        this.startLookup(lock.name);
      }
      return;
    }
    lock.unsent = false;
    lock.master = master;
    if (kind === 'cancel') lock.cancelStatus = status;
    const op = lock.op;
    const m: Extract<DlmMessage, { t: 'op' }> = {
      t: 'op',
      ls: this.name,
      op: kind,
      name: lock.name,
      lkid: lock.lkid,
      mode: kind === 'cancel' || op === null ? 0 : op.mode,
      flags: kind === 'cancel' ? 0 : (op?.flags ?? 0),
      bast: lock.bast,
      lvb: kind === 'convert' || kind === 'unlock' ? lock.lvb : null,
      status,
    };
    if (master === this.self) this.masterOp(this.self, m);
    else this.port.send(master, m);
  }

  /** A new request still waiting for its master's name is withdrawn (cancel or force-unlock before it was sent). */
  withdraw(lock: LocalLock): void {
    const l = this.lookups.get(lock.name);
    if (l !== undefined) {
      const i = l.waiting.indexOf(lock.lkid);
      if (i >= 0) l.waiting.splice(i, 1);
    }
  }

  /** The master of `name` when known now: this node, a cached one, or null (a lookup is needed). */
  private masterOf(name: string): NodeId | null {
    if (this.resources.has(name)) return this.self;
    const cached = this.masters.get(name);
    if (cached !== undefined) return cached;
    return null;
  }

  private startLookup(name: string): void {
    const l = this.lookups.get(name);
    if (l === undefined || l.sent || this.paused || !this.joined) return;
    l.sent = true;
    const dir = directoryNode(name, this.members);
    this.port.trace('dlm-lookup', { ls: this.name, name, dir, gen: this.gen });
    if (dir === this.self) this.onMaster(name, this.lookupHere(this.self, name));
    else this.port.send(dir, { t: 'lookup', ls: this.name, gen: this.gen, name });
  }

  /**
   * As directory node: the master of `name`, recording `asker` when there is none. A name this
   * node masters needs no entry (its resource says so: one map entry less per local lock).
   */
  private lookupHere(asker: NodeId, name: string): NodeId {
    if (this.resources.has(name)) return this.self;
    const known = this.directory.get(name);
    if (known !== undefined) return known;
    if (asker !== this.self) this.directory.set(name, asker);
    return asker;
  }

  private answerLookup(from: NodeId, name: string): void {
    const master = this.lookupHere(from, name);
    this.port.send(from, { t: 'lookup-reply', ls: this.name, gen: this.gen, name, master });
  }

  /** The lookup of `name` answered `master`: send what waited for it. */
  private onMaster(name: string, master: NodeId): void {
    const l = this.lookups.get(name);
    this.port.trace('dlm-master', { ls: this.name, name, master, waiting: l?.waiting.length ?? -1 });
    this.lookups.delete(name);
    if (master === this.self) {
      if (!this.resources.has(name)) this.createResource(name);
    } else this.rememberMaster(name, master);
    const rec = this.recovery;
    const resend = rec?.stage === 'remaster' ? rec.remaster.get(name) : undefined;
    if (rec !== null && resend !== undefined) {
      rec.remaster.delete(name);
      for (const lkid of resend) {
        const lock = this.locks.get(lkid);
        if (lock === undefined) continue;
        lock.master = master;
        if (lock.granted === null) continue; // ended meanwhile
        const granted = lock.granted;
        // Only the granted mode: an operation in flight is sent again once the recovery ended.
        const requested = -1;
        const flags = 0;
        if (master === this.self) this.recoverHere(this.self, name, lkid, granted, requested, flags, lock.bast);
        else
          this.port.send(master, {
            t: 'remaster',
            ls: this.name,
            gen: this.gen,
            name,
            lkid,
            granted,
            requested,
            flags,
            bast: lock.bast,
          });
      }
      this.maybeRemastered();
    }
    for (const lkid of l?.waiting ?? []) {
      const lock = this.locks.get(lkid);
      if (lock?.unsent === true && lock.op !== null) this.dispatch(lock, lock.op.kind);
    }
  }

  private rememberMaster(name: string, master: NodeId): void {
    this.masters.delete(name);
    this.masters.set(name, master);
    if (this.masters.size > DLM_MASTER_CACHE_MAX) {
      const oldest = this.masters.keys().next();
      if (oldest.done !== true) this.masters.delete(oldest.value);
    }
  }

  private createResource(name: string): Resource {
    const r = new Resource(name, this.lvbLen, this.canary === 'grant-incompatible' ? { canary: this.canary } : {});
    this.resources.set(name, r);
    this.idleSince.set(name, -1);
    return r;
  }

  /** Whether this node may master one more resource (after dropping idle ones). */
  canMasterMore(): boolean {
    return this.resources.size < DLM_RESOURCES_PER_NODE_MAX;
  }

  // ----------------------------------------------------------------------------------------------
  // Peer messages

  /** A message of this lockspace from `from`. */
  onMessage(from: NodeId, m: DlmMessage): void {
    if ('gen' in m && m.gen !== this.gen) {
      if (m.gen > this.gen && this.future.length < DLM_FUTURE_MESSAGES_MAX) this.future.push({ from, m });
      else if (m.gen > this.gen) this.port.trace('dlm-future-dropped', { ls: this.name, from, gen: m.gen });
      return; // an older generation's directory traffic: redone in the new one
    }
    switch (m.t) {
      case 'lookup':
        if (this.paused) this.heldLookups.push({ from, name: m.name });
        else this.answerLookup(from, m.name);
        return;
      case 'lookup-reply':
        this.onMaster(m.name, m.master);
        return;
      case 'remove':
        if (this.directory.get(m.name) === from) this.directory.delete(m.name);
        return;
      case 'claim':
        for (const name of m.names) this.directory.set(name, from);
        return;
      case 'rebuilt':
        if (m.recovering && this.recovery === null) this.joinRecovery();
        this.rebuiltFrom.add(from);
        this.maybeResume();
        return;
      case 'remaster':
        this.recoverHere(from, m.name, m.lkid, m.granted, m.requested, m.flags, m.bast);
        return;
      case 'remastered':
        this.recovery?.remasteredFrom.add(from);
        this.maybeFinishRecovery();
        return;
      case 'op':
        this.masterOp(from, m);
        return;
      case 'done':
        this.onCompletion(m.lkid, {
          status: m.status,
          mode: m.mode === -1 ? null : m.mode,
          sbflags: m.sbflags,
          lvb: m.lvb,
        });
        return;
      case 'bast': {
        const lock = this.locks.get(m.lkid);
        if (lock?.session != null) this.port.bast(lock.session, lock.lkid, m.mode);
        return;
      }
      case 'moot': {
        const lock = this.locks.get(m.lkid);
        if (lock !== undefined) lock.cancelling = false;
        return;
      }
      case 'refused':
        this.onRefused(m.lkid, m.op, m.code, m.message);
        return;
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Master side

  /** Applies an operation from `from` (this node or a peer) to the resource it names. */
  private masterOp(from: NodeId, m: Extract<DlmMessage, { t: 'op' }>): void {
    if (!this.quorate || this.recovery !== null) {
      this.held.push({ from, m });
      return;
    }
    const r = this.resources.get(m.name);
    const ref = { node: from, lkid: m.lkid };
    if (r === undefined) {
      this.refuse(from, m.lkid, m.op, 'not-master', `node ${this.self} does not master ${m.name}`);
      return;
    }
    const out = newEffects();
    const res =
      m.op === 'request'
        ? r.request(ref, m.mode, m.flags, m.bast, out)
        : m.op === 'convert'
          ? r.convert(ref, m.mode, m.flags, m.bast, m.lvb, out)
          : m.op === 'unlock'
            ? r.unlock(ref, m.flags, m.lvb, out)
            : r.cancel(ref, m.status, out);
    if (!res.ok) this.refuse(from, m.lkid, m.op, res.error.code, res.error.message);
    else if (m.op === 'cancel' && res.value === false) {
      if (from === this.self) this.onMoot(m.lkid);
      else this.port.send(from, { t: 'moot', ls: this.name, lkid: m.lkid });
    }
    this.route(out);
    // An empty resource is stamped idle on the next tick (which knows the time) and dropped after tossMs.
    if (r.isEmpty()) this.idleSince.set(m.name, -1);
    else this.idleSince.delete(m.name);
  }

  /** As the new master: installs a lock resent by `from` in recovery (the value block is marked invalid). */
  private recoverHere(
    from: NodeId,
    name: string,
    lkid: number,
    granted: LockMode | -1,
    requested: LockMode | -1,
    flags: number,
    bast: boolean,
  ): void {
    const r = this.resources.get(name) ?? this.createResource(name);
    r.recover({ node: from, lkid }, granted === -1 ? null : granted, requested === -1 ? null : requested, flags, bast);
    r.invalidateLvb();
    this.idleSince.delete(name);
    this.recovery?.recovered.add(name);
  }

  private refuse(
    to: NodeId,
    lkid: number,
    op: DlmOpKind,
    code: Extract<DlmMessage, { t: 'refused' }>['code'],
    message: string,
  ): void {
    if (to === this.self) this.onRefused(lkid, op, code, message);
    else this.port.send(to, { t: 'refused', ls: this.name, lkid, op, code, message });
  }

  /** Sends the completions and blocking notifications of `out` to their locks' nodes. */
  private route(out: ResourceEffects): void {
    for (const c of out.completions) {
      if (c.ref.node === this.self) this.onCompletion(c.ref.lkid, local(c));
      else
        this.port.send(c.ref.node, {
          t: 'done',
          ls: this.name,
          lkid: c.ref.lkid,
          status: c.status,
          mode: c.mode ?? -1,
          sbflags: c.sbflags,
          lvb: c.lvb,
        });
    }
    for (const b of out.basts) {
      if (b.ref.node === this.self) {
        const lock = this.locks.get(b.ref.lkid);
        if (lock?.session != null) this.port.bast(lock.session, lock.lkid, b.mode);
      } else if (this.canary !== 'drop-bast')
        // (CANARY `drop-bast`, simulator only: the notification to another node is never sent.)
        this.port.send(b.ref.node, { t: 'bast', ls: this.name, lkid: b.ref.lkid, mode: b.mode });
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Process-copy side: answers

  private onCompletion(lkid: number, c: LocalCompletion): void {
    const lock = this.locks.get(lkid);
    if (lock === undefined) return;
    lock.op = null;
    lock.cancelling = false;
    lock.timeoutAt = null;
    lock.lvb = null;
    lock.granted = c.mode;
    if (c.mode === null) this.locks.delete(lkid);
    if (lock.session !== null) this.port.completion(lock.session, lkid, c);
  }

  private onMoot(lkid: number): void {
    const lock = this.locks.get(lkid);
    if (lock !== undefined) lock.cancelling = false;
  }

  private onRefused(lkid: number, op: DlmOpKind, code: string, message: string): void {
    const lock = this.locks.get(lkid);
    if (lock === undefined) return;
    if (op === 'cancel') {
      // The cancel found no such lock at the node it went to: the operation it chased was refused
      // there too (a stale master: handled below, with its own refusal) or already completed (its
      // completion answers the caller). Either way the operation's own answer stands; the caller
      // is told nothing more. (Found by the simulator's dlm workload, seed 172: a cancel refused
      // by a stale master was reported as an `again` completion of the granted request.)
      this.port.trace('dlm-cancel-refused', { ls: this.name, lkid, code, message });
      return;
    }
    if (code === 'not-master' && op === 'request' && lock.op !== null) {
      // A stale master (it dropped the resource): look the name up again.
      if (this.masters.get(lock.name) === lock.master) this.masters.delete(lock.name);
      if (lock.op.kind === 'unlock') {
        // A FORCEUNLOCK overlapped the request and chases it to the stale master in vain: the
        // request reached no master, so the unlock is done here (seed 374150725).
        this.withdraw(lock);
        this.onCompletion(lkid, { status: 'unlocked', mode: null, sbflags: 0, lvb: null });
        return;
      }
      if (lock.cancelling) {
        // The request reached no master, and its cancel chases it to the stale one in vain:
        // cancel it here, as a request still waiting for its lookup is (DlmCore.cancel).
        this.withdraw(lock);
        this.onCompletion(lkid, { status: lock.cancelStatus, mode: null, sbflags: 0, lvb: null });
        return;
      }
      this.dispatch(lock, 'request');
      return;
    }
    this.port.trace('dlm-refused', { ls: this.name, lkid, code, message });
    const ended = lock.granted === null;
    lock.op = null;
    lock.cancelling = false;
    if (ended) this.locks.delete(lkid);
    // A refusal the node should have prevented: the caller learns it as a failed operation.
    if (lock.session !== null)
      this.port.completion(lock.session, lkid, { status: 'again', mode: lock.granted, sbflags: 0, lvb: null });
  }

  // ----------------------------------------------------------------------------------------------
  // Time

  /** Timeouts of TIMEOUT operations; dropping resources idle for `tossMs`. */
  onTick(nowMs: number): void {
    for (const lock of this.locks.values())
      if (lock.timeoutAt !== null && nowMs >= lock.timeoutAt && !lock.cancelling && lock.op !== null) {
        lock.timeoutAt = null;
        if (lock.op.kind === 'unlock') continue;
        if (lock.unsent) {
          this.withdraw(lock);
          this.onCompletion(lock.lkid, { status: 'timeout', mode: lock.granted, sbflags: 0, lvb: null });
          continue;
        }
        lock.cancelling = true;
        this.dispatch(lock, 'cancel', 'timeout');
      }
    if (this.paused || this.recovery !== null) return;
    for (const [name, since] of [...this.idleSince]) {
      if (since < 0) {
        this.idleSince.set(name, nowMs);
        continue;
      }
      if (nowMs - since < this.tossMs) continue;
      const r = this.resources.get(name);
      this.idleSince.delete(name);
      if (r === undefined || !r.isEmpty()) continue;
      this.resources.delete(name);
      const dir = directoryNode(name, this.members);
      if (dir === this.self) {
        if (this.directory.get(name) === this.self) this.directory.delete(name);
      } else this.port.send(dir, { t: 'remove', ls: this.name, gen: this.gen, name });
    }
  }

  // ----------------------------------------------------------------------------------------------
  // Inspection

  /** The resources this node masters, by name (for `cohort locks dump`). */
  dumpMastered(): ResourceDump[] {
    return [...this.resources.values()].map((r) => r.dump());
  }

  /** How many resources this node masters and directory entries it holds. */
  counts(): { readonly mastered: number; readonly directory: number; readonly locks: number } {
    return { mastered: this.resources.size, directory: this.directory.size, locks: this.locks.size };
  }
}

function local(c: Completion): LocalCompletion {
  return { status: c.status, mode: c.mode, sbflags: c.sbflags, lvb: c.lvb };
}

/** Flags a session's close force-unlocks with (the holder may have been mid-update: research/dlm.md 1.8). */
export const CLOSE_UNLOCK_FLAGS: number = LKF.FORCEUNLOCK | LKF.IVVALBLK;
