/**
 * The `dlm` workload's clients, in the manner of Linux's `dlmtest`/`dlmtest2` random stress: on
 * every node, once it joined lockspace `ls`, `clientsPerNode` sessions each run a little program
 * drawing random operations on `resources` resources (`r0`..; half of the new requests on the
 * first four, so conversions meet and deadlock) in all six modes:
 *
 * - new requests: plain, NOQUEUE (some with NOQUEUEBAST), TIMEOUT (50-2000 ms), ALTPR/ALTCW,
 *   EXPEDITE (NL), VALBLK; most ask for blocking notifications;
 * - conversions of granted locks, up, down and middle (QUECVT where it is allowed, CONVDEADLK,
 *   NOQUEUE, TIMEOUT, ALT modes); a PW/EX holder with VALBLK writes a fresh value block when it
 *   converts down or unlocks (sometimes IVVALBLK instead);
 * - unlocks, cancels of waiting requests and conversions, FORCEUNLOCK of any lock (busy or not);
 * - sessions closed mid-operation, with locks held and waiting (a new session replaces it);
 * - now and then a deliberately invalid call (a QUECVT new request or downward QUECVT
 *   conversion, EXPEDITE above NL, TIMEOUT without a timeout, converting a busy lock, unlocking a
 *   lock that does not exist), whose synchronous refusal the reply checker expects.
 *
 * A client keeps at most one operation per lock in flight (plus a cancel or a FORCEUNLOCK) and
 * otherwise follows the API's rules. A holder told it blocks someone (a bast) mostly releases
 * soon: it unlocks, or converts down to a mode compatible with the blocked one (a third of the
 * time it leaves that to its random program, which may convert up meanwhile: deadlocks). Some grants are "sticky":
 * the random program leaves them alone, and only a bast (or `stickyHoldMs`) releases them, so a
 * lost bast shows as a waiter stuck behind a holder (the wake-up checker's notification rule).
 *
 * Liveness phase (`drain`): no new requests, no cancels, no closes; every client unlocks every
 * lock it holds, as soon as it is granted and idle, until none is left.
 *
 * Every call is traced (`dlm-call` before it runs, `dlm-result` after) inside the node's gate,
 * and every event a session gets (`dlm-done`, `dlm-bast`); events that arrive while a call runs
 * (a local master completes at once) are traced after the call's result. See
 * `checkers/dlm-events.ts`. Draws come from the driver stream's `dlm` fork, one fork per client.
 */
import type { Result } from '../../lib/errors.js';
import type { NodeId } from '../../lib/ids.js';
import type { Prng } from '../../lib/prng.js';
import type { DlmError, DlmEvent } from '../../dlm/dlm-core.js';
import type { DlmService } from '../../dlm/dlm-service.js';
import { compatible, conversionKind, lvbAction, quecvtAllowed } from '../../dlm/lock-modes.js';
import { LKF, MODE, type LockMode } from '../../dlm/lock-types.js';
import type { DriverContext } from '../workload.js';
import { DLM_CLIENT_EVENT, lvbText, type DlmOp } from '../checkers/dlm-events.js';
import type { ClusterSimNode } from './cluster-program.js';

/** Resources `r0`.. that half of the new requests go to (see `DlmDriver.resource`). */
const HOT_RESOURCES = 4;

/** The lockspace every client uses. */
export const DLM_SIM_LOCKSPACE = 'ls';

/** Knobs of the clients. */
export interface DlmDriverOptions {
  readonly resources: number;
  readonly clientsPerNode: number;
  /** Mean gap between a client's steps, ms. */
  readonly stepMeanMs: number;
  /** Most locks one client has at once. */
  readonly locksPerClientMax: number;
  /** A sticky grant is released after this long if no bast came, ms. */
  readonly stickyHoldMs: number;
  /** Value block size of the lockspace, bytes. */
  readonly lvbBytes: number;
}

/** Figures for the workload's stats. */
export interface DlmDriverCounts {
  calls: number;
  refused: number;
  invalidCalls: number;
  closes: number;
  cancels: number;
  forceUnlocks: number;
  conversions: number;
  lvbWrites: number;
  basts: number;
}

/** A lock the client just asked for (its request in flight). */
function requestedLock(lkid: number, res: string, valblk: boolean): ClientLock {
  return { lkid, res, granted: null, busy: true, unlocking: false, cancelSent: false, valblk, sticky: false };
}

interface ClientLock {
  readonly lkid: number;
  readonly res: string;
  granted: LockMode | null;
  /** The request or conversion in flight. */
  busy: boolean;
  unlocking: boolean;
  cancelSent: boolean;
  valblk: boolean;
  sticky: boolean;
}

interface Client {
  readonly node: NodeId;
  readonly index: number;
  readonly prng: Prng;
  session: number | null;
  readonly locks: Map<number, ClientLock>;
}

interface CallSpec {
  readonly op: DlmOp;
  readonly res?: string;
  readonly lkid?: number;
  readonly mode?: number;
  readonly flags?: number;
  readonly bast?: boolean;
  readonly timeoutMs?: number;
  readonly lvb?: Uint8Array | null;
}

/** See the module comment. */
export class DlmDriver {
  readonly counts: DlmDriverCounts = {
    calls: 0,
    refused: 0,
    invalidCalls: 0,
    closes: 0,
    cancels: 0,
    forceUnlocks: 0,
    conversions: 0,
    lvbWrites: 0,
    basts: 0,
  };
  private ctxRef: DriverContext<ClusterSimNode> | null = null;
  private readonly clients: Client[] = [];
  private draining = false;
  /** Events that arrived while a call ran, traced after its result. */
  private deferred: (() => void)[] | null = null;
  private nextValue = 1;

  constructor(private readonly options: DlmDriverOptions) {}

  private get ctx(): DriverContext<ClusterSimNode> {
    if (this.ctxRef === null) throw new Error('the DLM driver has not started');
    return this.ctxRef;
  }

  /** Opens the lockspace on every node (retrying until the cluster is up), then starts its clients. */
  start(ctx: DriverContext<ClusterSimNode>): void {
    this.ctxRef = ctx;
    const prng = ctx.prng.fork('dlm');
    for (const node of ctx.nodes)
      for (let i = 0; i < this.options.clientsPerNode; i++)
        this.clients.push({ node, index: i, prng: prng.fork(`${node}-${i}`), session: null, locks: new Map() });
    for (const node of ctx.nodes) this.openLockspace(node);
  }

  /** The liveness phase: every client unlocks what it holds. */
  onLiveness(): void {
    this.draining = true;
    for (const c of this.clients) this.drain(c);
  }

  private openLockspace(node: NodeId): void {
    const tried = this.ctx.call(node, (inst) => {
      const dlm = inst.node?.services.dlm;
      if (dlm === undefined) return;
      dlm.openLockspace(DLM_SIM_LOCKSPACE, (r) => {
        if (!r.ok) {
          this.ctx.after(300, () => {
            this.openLockspace(node);
          });
          return;
        }
        this.ctx.trace('lockspace-ready', { node, ls: DLM_SIM_LOCKSPACE });
        for (const c of this.clients) if (c.node === node) this.startClient(c);
      });
    });
    if (!tried)
      this.ctx.after(300, () => {
        this.openLockspace(node);
      });
  }

  private startClient(c: Client): void {
    this.openSession(c);
    const next = (): void => {
      this.ctx.after(Math.max(1, Math.round(c.prng.exponential(this.options.stepMeanMs))), () => {
        if (this.draining) this.drain(c);
        else this.step(c);
        next();
      });
    };
    next();
  }

  // ----------------------------------------------------------------------------------------------
  // Calls

  /**
   * Runs `fn` on `c`'s node inside its gate, traced as `spec`; returns the call's result through
   * `done` (also traced). Events the call causes are traced after the result.
   */
  private invoke<T>(
    c: Client,
    spec: CallSpec,
    fn: (dlm: DlmService) => Result<T, DlmError>,
    done: (r: Result<T, DlmError>) => void,
  ): void {
    this.ctx.call(c.node, (inst) => {
      const dlm = inst.node?.services.dlm;
      if (dlm === undefined) return;
      const fields = {
        node: c.node,
        session: c.session ?? 0,
        op: spec.op,
        res: spec.res ?? '',
        lkid: spec.lkid ?? 0,
        mode: spec.mode ?? 0,
        flags: spec.flags ?? 0,
        bast: spec.bast ?? false,
        timeoutMs: spec.timeoutMs ?? 0,
        lvb: lvbText(spec.lvb),
      };
      this.counts.calls++;
      this.ctx.trace(DLM_CLIENT_EVENT.call, fields);
      const deferred: (() => void)[] = [];
      this.deferred = deferred;
      let r: Result<T, DlmError>;
      try {
        r = fn(dlm);
      } finally {
        this.deferred = null;
      }
      const lkid = spec.op === 'lock' && r.ok ? (r.value as number) : fields.lkid;
      const session = spec.op === 'open' && r.ok ? (r.value as number) : fields.session;
      if (!r.ok) this.counts.refused++;
      this.ctx.trace(DLM_CLIENT_EVENT.result, {
        node: c.node,
        session,
        op: spec.op,
        lkid,
        result: r.ok ? 'ok' : r.error.code,
      });
      done(r);
      for (const d of deferred) d();
      dlm.flush();
    });
  }

  private openSession(c: Client): void {
    this.invoke(
      c,
      { op: 'open' },
      (dlm) => {
        const box: { session: number } = { session: 0 };
        box.session = dlm.openSession((e) => {
          this.onEvent(c, box.session, e);
        });
        return { ok: true, value: box.session };
      },
      (r) => {
        if (r.ok) c.session = r.value;
      },
    );
  }

  private onEvent(c: Client, session: number, e: DlmEvent): void {
    const handle = (): void => {
      if (e.kind === 'paused') return;
      if (e.kind === 'bast') {
        this.counts.basts++;
        this.ctx.trace(DLM_CLIENT_EVENT.bast, { node: c.node, session, lkid: e.lkid, mode: e.mode });
        if (c.session === session) this.onBast(c, e.lkid, e.mode);
        return;
      }
      this.ctx.trace(DLM_CLIENT_EVENT.done, {
        node: c.node,
        session,
        lkid: e.lkid,
        status: e.status,
        mode: e.mode ?? -1,
        sbflags: e.sbflags,
        lvb: lvbText(e.lvb),
      });
      if (c.session === session) this.onCompletion(c, e.lkid, e.mode);
    };
    if (this.deferred !== null) this.deferred.push(handle);
    else handle();
  }

  private onCompletion(c: Client, lkid: number, mode: LockMode | null): void {
    const l = c.locks.get(lkid);
    if (l === undefined) return;
    if (mode === null) {
      c.locks.delete(lkid);
      return;
    }
    const wasGranted = l.granted;
    l.granted = mode;
    l.busy = false;
    l.cancelSent = false;
    if (this.draining) {
      this.ctx.after(1, () => {
        this.drain(c);
      });
      return;
    }
    l.sticky = mode !== wasGranted && c.prng.chance(0.25);
    if (l.sticky)
      this.ctx.after(this.options.stickyHoldMs, () => {
        if (l.sticky && c.locks.get(lkid) === l) l.sticky = false;
      });
  }

  /** A holder told it blocks `mode`: release soon (unlock, or convert down to a compatible mode). */
  private onBast(c: Client, lkid: number, mode: LockMode): void {
    const l = c.locks.get(lkid);
    if (l === undefined) return;
    // A third of the notifications are left to the random program (a holder busy elsewhere), so
    // holders also convert up while others wait: conversion deadlocks.
    if (!l.sticky && c.prng.chance(0.35)) return;
    this.ctx.after(c.prng.int(1, 40), () => {
      if (c.locks.get(lkid) !== l || l.busy || l.unlocking || l.granted === null) return;
      l.sticky = false;
      const down = ([MODE.NL, MODE.CR, MODE.CW, MODE.PR] as LockMode[]).filter(
        (m) => m < (l.granted ?? 0) && compatible(m, mode) && conversionKind(l.granted ?? 0, m) === 'down',
      );
      const to = down.length > 0 && c.prng.chance(0.3) ? c.prng.pick(down) : null;
      if (to === null) this.unlock(c, l);
      else this.convert(c, l, to, 0);
    });
  }

  // ----------------------------------------------------------------------------------------------
  // The random program

  private step(c: Client): void {
    if (c.session === null) return;
    const p = c.prng;
    const locks = [...c.locks.values()];
    const idle = locks.filter((l) => l.granted !== null && !l.busy && !l.unlocking && !l.sticky);
    const waiting = locks.filter((l) => l.busy && !l.unlocking && !l.cancelSent);
    const roll = p.float();
    if (roll < 0.02) this.closeSession(c);
    else if (roll < 0.05) this.invalidCall(c, idle, locks);
    else if (roll < 0.08 && locks.some((l) => !l.unlocking))
      this.forceUnlock(c, p.pick(locks.filter((l) => !l.unlocking)));
    else if (roll < 0.2 && waiting.length > 0) this.cancel(c, p.pick(waiting));
    else if (roll < 0.6 && idle.length > 0) {
      const l = p.pick(idle);
      if (p.chance(0.4)) this.unlock(c, l);
      else this.convert(c, l, this.conversionTarget(p), this.conversionFlags(p));
    } else if (c.locks.size < this.options.locksPerClientMax) this.request(c);
  }

  private drain(c: Client): void {
    for (const l of [...c.locks.values()]) if (l.granted !== null && !l.busy && !l.unlocking) this.unlock(c, l);
  }

  private request(c: Client): void {
    const p = c.prng;
    const mode = p.int(0, 6) as LockMode;
    let flags = p.chance(0.5) ? LKF.VALBLK : 0;
    let timeoutMs: number | undefined;
    const noqueue = p.chance(0.15);
    if (noqueue) flags |= LKF.NOQUEUE | (p.chance(0.3) ? LKF.NOQUEUEBAST : 0);
    else if (p.chance(0.15)) {
      flags |= LKF.TIMEOUT;
      timeoutMs = p.int(50, 2001);
    } else if (mode === MODE.NL && p.chance(0.2)) flags |= LKF.EXPEDITE;
    if (mode !== MODE.PR && mode !== MODE.CW && p.chance(0.1)) flags |= p.chance(0.5) ? LKF.ALTPR : LKF.ALTCW;
    const res = this.resource(p);
    const bast = p.chance(0.8);
    this.invoke(
      c,
      { op: 'lock', res, mode, flags, bast, ...(timeoutMs === undefined ? {} : { timeoutMs }) },
      (dlm) =>
        dlm.core.lock(c.session ?? 0, DLM_SIM_LOCKSPACE, res, mode, flags, {
          bast,
          ...(timeoutMs === undefined ? {} : { timeoutMs }),
        }),
      (r) => {
        if (r.ok) c.locks.set(r.value, requestedLock(r.value, res, (flags & LKF.VALBLK) !== 0));
      },
    );
  }

  /**
   * A resource for a new request: half of them go to the first `HOT_RESOURCES`, so holders meet
   * on a resource often enough for conversion deadlocks (and CONVDEADLK demotions) to happen.
   */
  private resource(p: Prng): string {
    return `r${p.chance(0.5) ? p.int(0, HOT_RESOURCES) : p.int(0, this.options.resources)}`;
  }

  /** A conversion's target: often PW or EX (two shared holders converting up deadlock), else any mode. */
  private conversionTarget(p: Prng): LockMode {
    return p.chance(0.4) ? p.pick([MODE.PW, MODE.EX] as LockMode[]) : (p.int(0, 6) as LockMode);
  }

  private conversionFlags(p: Prng): number {
    let flags = 0;
    if (p.chance(0.2)) flags |= LKF.QUECVT;
    if (p.chance(0.2)) flags |= LKF.CONVDEADLK;
    else if (p.chance(0.15)) flags |= LKF.NOQUEUE;
    if (p.chance(0.1)) flags |= LKF.TIMEOUT;
    if (p.chance(0.1)) flags |= p.chance(0.5) ? LKF.ALTPR : LKF.ALTCW;
    return flags;
  }

  /** Converts `l` to `to`; `extra` flags are kept only where the rules allow them. */
  private convert(c: Client, l: ClientLock, to: LockMode, extra: number): void {
    const from = l.granted ?? 0;
    const p = c.prng;
    let flags = l.valblk ? LKF.VALBLK : 0;
    const up = conversionKind(from, to) !== 'down';
    if ((extra & LKF.QUECVT) !== 0 && quecvtAllowed(from, to)) flags |= LKF.QUECVT;
    if (up) flags |= extra & (LKF.CONVDEADLK | LKF.NOQUEUE | LKF.ALTPR | LKF.ALTCW | LKF.TIMEOUT);
    if (to === MODE.PR || to === MODE.CW) flags &= ~(LKF.ALTPR | LKF.ALTCW);
    const timeoutMs = (flags & LKF.TIMEOUT) !== 0 ? p.int(50, 2001) : undefined;
    let lvb: Uint8Array | null = null;
    if (l.valblk && lvbAction(from, to) === 'write') {
      if (p.chance(0.1)) flags |= LKF.IVVALBLK;
      else lvb = this.value(c);
    }
    this.call(c, l, 'convert', to, flags, lvb, timeoutMs);
  }

  private unlock(c: Client, l: ClientLock): void {
    const p = c.prng;
    let flags = 0;
    let lvb: Uint8Array | null = null;
    if (l.valblk && (l.granted ?? 0) >= MODE.PW) {
      const roll = p.float();
      if (roll < 0.8) {
        flags = LKF.VALBLK;
        lvb = this.value(c);
      } else if (roll < 0.9) flags = LKF.IVVALBLK;
    }
    this.call(c, l, 'unlock', 0, flags, lvb, undefined);
  }

  private forceUnlock(c: Client, l: ClientLock): void {
    this.counts.forceUnlocks++;
    this.call(c, l, 'unlock', 0, LKF.FORCEUNLOCK, null, undefined);
  }

  private cancel(c: Client, l: ClientLock): void {
    this.counts.cancels++;
    this.call(c, l, 'cancel', 0, 0, null, undefined);
  }

  /** A convert, unlock or cancel of `l`, with the client's bookkeeping on acceptance. */
  private call(
    c: Client,
    l: ClientLock,
    op: 'convert' | 'unlock' | 'cancel',
    mode: LockMode,
    flags: number,
    lvb: Uint8Array | null,
    timeoutMs: number | undefined,
  ): void {
    const session = c.session ?? 0;
    const bast = op === 'convert' ? c.prng.chance(0.8) : false;
    const t = timeoutMs === undefined ? {} : { timeoutMs };
    if (lvb !== null) this.counts.lvbWrites++;
    if (op === 'convert') this.counts.conversions++;
    this.invoke(
      c,
      { op, res: l.res, lkid: l.lkid, mode, flags, bast, lvb, ...t },
      (dlm) => {
        if (op === 'convert')
          return dlm.core.convert(session, DLM_SIM_LOCKSPACE, l.lkid, mode, flags, { bast, lvb, ...t });
        if (op === 'cancel') return dlm.core.cancel(session, DLM_SIM_LOCKSPACE, l.lkid);
        return dlm.core.unlock(session, DLM_SIM_LOCKSPACE, l.lkid, flags, lvb);
      },
      (r) => {
        if (!r.ok) return;
        if (op === 'convert') l.busy = true;
        else if (op === 'cancel') l.cancelSent = true;
        else l.unlocking = true;
      },
    );
  }

  private closeSession(c: Client): void {
    const s = c.session;
    if (s === null) return;
    this.counts.closes++;
    this.invoke(
      c,
      { op: 'close' },
      (dlm) => {
        dlm.closeSession(s);
        return { ok: true, value: undefined };
      },
      () => {
        c.session = null;
        c.locks.clear();
      },
    );
    this.openSession(c);
  }

  /** One deliberately invalid call (see the module comment); the reply checker expects the refusal. */
  private invalidCall(c: Client, idle: readonly ClientLock[], locks: readonly ClientLock[]): void {
    this.counts.invalidCalls++;
    const p = c.prng;
    const session = c.session ?? 0;
    const busy = locks.filter((l) => l.busy && !l.unlocking);
    const high = idle.filter((l) => (l.granted ?? 0) > MODE.NL);
    const kind = p.int(0, 6);
    if (kind === 0 && busy.length > 0) {
      this.call(c, p.pick(busy), 'convert', MODE.EX, 0, null, undefined);
      return;
    }
    if (kind === 1 && high.length > 0) {
      const l = p.pick(high);
      this.call(c, l, 'convert', 0, LKF.QUECVT, null, undefined);
      return;
    }
    if (kind === 2) {
      this.call(c, { ...placeholder(), lkid: 7 }, 'unlock', 0, 0, null, undefined);
      return;
    }
    const res = `r${p.int(0, this.options.resources)}`;
    const [mode, flags] =
      kind === 3 ? [MODE.PR, LKF.QUECVT] : kind === 4 ? [MODE.EX, LKF.EXPEDITE] : [MODE.CR, LKF.TIMEOUT];
    this.invoke(
      c,
      { op: 'lock', res, mode, flags, bast: false },
      (dlm) => dlm.core.lock(session, DLM_SIM_LOCKSPACE, res, mode, flags),
      (r) => {
        if (r.ok) c.locks.set(r.value, requestedLock(r.value, res, false));
      },
    );
  }

  /** A fresh value block: a counter, the node and the client, and a non-zero last byte. */
  private value(c: Client): Uint8Array {
    const v = new Uint8Array(this.options.lvbBytes);
    const n = this.nextValue++;
    v[0] = (n >>> 24) & 0xff;
    v[1] = (n >>> 16) & 0xff;
    v[2] = (n >>> 8) & 0xff;
    v[3] = n & 0xff;
    v[4] = c.node;
    v[5] = c.index;
    v[v.length - 1] = (n % 255) + 1;
    return v;
  }
}

/** A lock no client has (for a call that must be refused NOT_FOUND). */
function placeholder(): ClientLock {
  return {
    lkid: 0,
    res: '',
    granted: null,
    busy: false,
    unlocking: false,
    cancelSent: false,
    valblk: false,
    sticky: false,
  };
}
