/**
 * DLM value blocks (research/dlm.md 1.8), judged from the clients' trace (`dlm-events.ts`): a
 * VALBLK grant that reads the value block returns the bytes of the last value a PW/EX holder
 * wrote, with SBF.VALNOTVALID exactly when the block is marked invalid (by an IVVALBLK unlock or
 * down-conversion from PW/EX, or by a PW/EX holder's session closing).
 *
 * Writes are ordered by mode safety: only a PW/EX holder writes, when it *sends* its unlock or
 * down-conversion, and no other PW/EX holder exists until the master processed it. So the trace
 * order of those calls is the order of the writes. Per resource the checker keeps the set of
 * states (bytes or none, valid or not) the block may be in; a set, because some events leave a
 * choice: a session closed while its request or up-conversion to PW/EX was in flight (the master
 * may or may not have granted it before the close's unlock), and a resource that may have
 * been without locks at its master for `resetGapMs` (the master may have dropped it after the
 * toss time, and a new master starts with no block). The master surely holds a lock from its
 * first `granted` completion until its unlock is sent (or its session closed); outside those
 * intervals it may hold nothing (a request that never got a grant may never have reached it).
 *
 * A reader granted CW or higher cannot overlap a writer, so it must see one of the states the
 * block is in at its completion. A reader granted NL or CR may overlap a PW writer: it may see
 * any state the block passed through between its call and its completion, and also the state
 * before the last write sent before its call (that write may reach the master after the read;
 * the one before it cannot: its writer's successor was granted only after it was applied), or
 * before all of the last writer's writes (its down-conversion and its unlock may both be in
 * flight).
 */
import { LKF, MODE, SBF, type LockMode } from '../../dlm/lock-types.js';
import { lvbAction } from '../../dlm/lock-modes.js';
import type { Checker } from '../workload.js';
import type { SimEvent } from '../trace.js';
import { lockKey, parseDlmEvent, sessionKey, type DlmCall } from './dlm-events.js';

interface Op {
  readonly from: LockMode | null;
  readonly to: LockMode;
  readonly flags: number;
  /** States the block passed through since the call. */
  readonly seen: Set<string>;
  readonly callUs: number;
}

interface Lk {
  readonly key: string;
  readonly res: string;
  readonly session: string;
  granted: LockMode | null;
  flags: number;
  op: Op | null;
  live: boolean;
  /** Granted at least once: its master surely holds it until it is released. */
  occupying: boolean;
}

interface Res {
  states: Set<string>;
  /** The states before the latest change (a write sent may not have reached the master yet). */
  prev: Set<string>;
  /**
   * Closes (node -> time) whose invalidation may still happen: the closed session's request or
   * up-conversion to PW/EX may be granted at the master later, and then invalidated by the
   * close's unlock (research/dlm.md 1.8). It stays possible until that node sees a completion on
   * the resource for an operation it called after the close: the node's messages to the master
   * are in order (and a new master means the old one dropped the resource with every lock).
   */
  readonly pendingInvalid: Map<number, number>;
  /** The lock that made the last certain write. */
  lastWriter: string | null;
  /** Locks surely held at the master now (see the module comment). */
  occupied: number;
  /** Since when no lock is surely held, µs (-1: never held one). */
  freeSinceUs: number;
}

const NONE_VALID = state(null, true);

function state(value: string | null, valid: boolean): string {
  return `${value ?? '-'}|${valid ? 'valid' : 'invalid'}`;
}

/** See the module comment. */
export class DlmLvbChecker implements Checker {
  readonly name = 'dlm-lvb';
  private readonly locks = new Map<string, Lk>();
  private readonly resources = new Map<string, Res>();
  private readonly open = new Map<number, DlmCall>();
  /** Reads judged (for the stats). */
  reads = 0;
  private nowUs = 0;

  constructor(
    private readonly options: { readonly resetGapMs: number },
    private readonly violation: (message: string) => void,
  ) {}

  observe(e: SimEvent): void {
    const d = parseDlmEvent(e);
    if (d === null) return;
    this.nowUs = e.timeUs;
    switch (d.kind) {
      case 'call':
        this.open.set(d.node, d);
        return;
      case 'result': {
        const c = this.open.get(d.node);
        this.open.delete(d.node);
        if (c !== undefined && d.result === 'ok') this.apply(c, d.lkid);
        return;
      }
      case 'done': {
        const l = this.locks.get(lockKey(d.node, d.lkid));
        if (l === undefined) return;
        const op = l.op;
        l.op = null;
        l.granted = d.mode;
        const pending = this.res(l.res).pendingInvalid;
        const since = pending.get(d.node);
        if (op !== null && since !== undefined && op.callUs > since) pending.delete(d.node);
        if (d.status === 'granted' && !l.occupying) this.occupy(l, op);
        if (d.mode === null) this.end(l, d.timeUs);
        if (op === null || d.status !== 'granted' || d.mode === null || (op.flags & LKF.VALBLK) === 0) return;
        const from = (d.sbflags & SBF.DEMOTED) !== 0 ? MODE.NL : op.from;
        if (lvbAction(from, d.mode) !== 'read') return;
        this.reads++;
        const r = this.res(l.res);
        const allowed = d.mode >= MODE.CW ? r.states : op.seen;
        const got = state(d.lvb, (d.sbflags & SBF.VALNOTVALID) === 0);
        if (!allowed.has(got))
          this.violation(
            `resource ${l.res}: lock ${lockKey(d.node, d.lkid)} read the value block ${got}; it may only be ${[...allowed].join(' or ')}`,
          );
        return;
      }
      case 'bast':
        return;
    }
  }

  private res(name: string): Res {
    let r = this.resources.get(name);
    if (r === undefined) {
      r = {
        states: new Set([NONE_VALID]),
        prev: new Set([NONE_VALID]),
        pendingInvalid: new Map(),
        lastWriter: null,
        occupied: 0,
        freeSinceUs: -1,
      };
      this.resources.set(name, r);
    }
    return r;
  }

  private apply(c: DlmCall, lkid: number): void {
    const sk = sessionKey(c.node, c.session);
    switch (c.op) {
      case 'open':
      case 'cancel':
        return;
      case 'lock': {
        const r = this.res(c.res);
        const key = lockKey(c.node, lkid);
        const l: Lk = {
          key,
          res: c.res,
          session: sk,
          granted: null,
          flags: c.flags,
          op: null,
          live: true,
          occupying: false,
        };
        l.op = {
          from: null,
          to: c.mode as LockMode,
          flags: c.flags,
          seen: new Set([...r.prev, ...r.states]),
          callUs: c.timeUs,
        };
        this.locks.set(key, l);
        return;
      }
      case 'convert': {
        const l = this.locks.get(lockKey(c.node, c.lkid));
        if (l?.granted == null) return;
        l.flags = c.flags | LKF.CONVERT;
        const r = this.res(l.res);
        l.op = {
          from: l.granted,
          to: c.mode as LockMode,
          flags: l.flags,
          seen: new Set([...r.prev, ...r.states]),
          callUs: c.timeUs,
        };
        if (lvbAction(l.granted, c.mode as LockMode) === 'write') this.write(l, c.flags, c.lvb, true);
        return;
      }
      case 'unlock': {
        const l = this.locks.get(lockKey(c.node, c.lkid));
        if (l === undefined || !l.live || (c.flags & LKF.CANCEL) !== 0) return;
        const modes = possibleModes(l);
        const high = modes.filter((m) => m !== null && m >= MODE.PW).length;
        if (high > 0) this.write(l, c.flags | (l.flags & LKF.VALBLK), c.lvb, high === modes.length);
        this.end(l, c.timeUs);
        return;
      }
      case 'close':
        for (const l of this.locks.values()) {
          if (l.session !== sk || !l.live) continue;
          const modes = possibleModes(l);
          const high = modes.filter((m) => m !== null && m >= MODE.PW).length;
          if (high > 0) this.write(l, LKF.IVVALBLK, null, high === modes.length);
          if (high > 0 && high < modes.length) this.res(l.res).pendingInvalid.set(c.node, c.timeUs);
          this.end(l, c.timeUs);
        }
        return;
    }
  }

  /** A write (or invalidation) of `res`'s block by a PW/EX holder; `certain` false when it may not have happened. */
  private write(l: Lk, flags: number, lvb: string | null, certain: boolean): void {
    let next: (s: Set<string>) => Set<string>;
    if ((flags & LKF.IVVALBLK) !== 0) next = invalidated;
    else if ((flags & LKF.VALBLK) !== 0 && lvb !== null) next = () => new Set([state(lvb, true)]);
    else return;
    this.change(l.res, next, certain ? l.key : null);
  }

  /**
   * Applies a write: a certain one (by holder `writer`) starts a new state, the old one kept as
   * `prev` (or added to it, when the same holder wrote last: a down-conversion and then the
   * unlock may both be in flight); one that may or may not happen (nor when, `writer` null)
   * widens both `prev` and the current states.
   */
  private change(res: string, f: (s: Set<string>) => Set<string>, writer: string | null): void {
    this.tossIfIdle(res);
    const r = this.res(res);
    const widen = (s: Set<string>): Set<string> => new Set([...s, ...f(s)]);
    if (writer !== null) {
      r.prev = writer === r.lastWriter ? new Set([...r.prev, ...r.states]) : r.states;
      r.lastWriter = writer;
      r.states = f(r.states);
    } else {
      r.prev = widen(r.prev);
      r.states = widen(r.states);
    }
    if (r.pendingInvalid.size > 0) {
      r.prev = new Set([...r.prev, ...invalidated(r.prev)]);
      r.states = new Set([...r.states, ...invalidated(r.states)]);
    }
    for (const l of this.locks.values()) if (l.res === res && l.op !== null) for (const s of r.states) l.op.seen.add(s);
  }

  /** `l`'s first grant: its master surely holds it from now on. */
  private occupy(l: Lk, op: Op | null): void {
    l.occupying = true;
    const r = this.res(l.res);
    this.tossIfIdle(l.res, op);
    r.occupied++;
  }

  /**
   * If `res`'s master may have been idle for the toss time by now, it may have dropped the block:
   * no block becomes possible (not a write: the state before the last write stays possible too),
   * for the pending operations as well (and `op`, a reader's own, already taken off its lock).
   */
  private tossIfIdle(res: string, op: Op | null = null): void {
    const r = this.res(res);
    if (r.occupied > 0 || r.freeSinceUs < 0 || this.nowUs - r.freeSinceUs < this.options.resetGapMs * 1000) return;
    for (const set of [r.prev, r.states]) set.add(NONE_VALID);
    for (const other of this.locks.values()) if (other.res === res && other.op !== null) other.op.seen.add(NONE_VALID);
    op?.seen.add(NONE_VALID);
  }

  private end(l: Lk, timeUs: number): void {
    if (!l.live) return;
    l.live = false;
    l.op = null;
    this.locks.delete(l.key); // later events of an ended lock change nothing here
    if (!l.occupying) return;
    const r = this.res(l.res);
    r.occupied--;
    if (r.occupied === 0) r.freeSinceUs = timeUs;
  }
}

/** `states` with the block marked invalid. */
function invalidated(states: Set<string>): Set<string> {
  return new Set([...states].map((x) => `${x.slice(0, x.lastIndexOf('|'))}|invalid`));
}

/** The modes the master may hold `l` in when its unlock arrives (its operation may or may not have been granted). */
function possibleModes(l: Lk): (LockMode | null)[] {
  const op = l.op;
  if (op === null) return [l.granted];
  const out: (LockMode | null)[] = [l.granted, op.to];
  if ((op.flags & LKF.ALTPR) !== 0) out.push(MODE.PR);
  if ((op.flags & LKF.ALTCW) !== 0) out.push(MODE.CW);
  if ((op.flags & LKF.CONVDEADLK) !== 0) out.push(MODE.NL);
  return out;
}
