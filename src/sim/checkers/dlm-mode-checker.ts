/**
 * DLM mode safety, judged from the clients' trace (`dlm-events.ts`), never from a master's word:
 * at every instant, the modes held on one resource are pairwise compatible (research/dlm.md 1.3,
 * `compatible`).
 *
 * What a client holds (its promise to the application):
 * - from the moment its `granted` completion is traced on its node, the completion's mode (an
 *   up-conversion takes effect at its completion; every completion sets the held mode to the
 *   lock's mode after it, or nothing when the lock ended);
 * - until it *sends* the unlock (any unlock, FORCEUNLOCK too) or closes its session: nothing
 *   after that, whatever completion still arrives for the lock;
 * - while a conversion is in flight: the part of its old mode it keeps. A down-conversion gives
 *   up everything above its target at once (so the target); a middle conversion (PR<->CW) keeps
 *   only what PR and CW share (CR); a CONVDEADLK conversion may be demoted to NL by the master at
 *   any time (research/dlm.md 1.5: "the caller must assume it lost its protection"), so NL; an
 *   up-conversion keeps its old mode; one with ALTPR/ALTCW keeps only what it would keep in
 *   both outcomes (CW to EX with ALTPR may end in PR: CR). A refused call changes nothing.
 *
 * A violation names the resource, both locks and both modes.
 */
import { LKF, MODE_NAMES, type LockMode } from '../../dlm/lock-types.js';
import { compatible, conversionKind } from '../../dlm/lock-modes.js';
import type { Checker } from '../workload.js';
import type { SimEvent } from '../trace.js';
import { lockKey, parseDlmEvent, sessionKey, type DlmCall } from './dlm-events.js';

interface Held {
  readonly res: string;
  readonly session: string;
  /** The mode held now, or null. */
  mode: LockMode | null;
  /** The lock's mode by its completions (what a refused call falls back to). */
  granted: LockMode | null;
  /** The client sent an unlock or closed its session: it holds nothing for good. */
  released: boolean;
}

/** See the module comment. */
export class DlmModeChecker implements Checker {
  readonly name = 'dlm-mode-safety';
  private readonly locks = new Map<string, Held>();
  /** Holders by resource. */
  private readonly byRes = new Map<string, Set<string>>();
  /** The call awaiting its result, per node. */
  private readonly open = new Map<number, { call: DlmCall; before: Map<string, Held> }>();
  /** Grants judged (for the stats). */
  checks = 0;

  constructor(private readonly violation: (message: string) => void) {}

  observe(e: SimEvent): void {
    const d = parseDlmEvent(e);
    if (d === null) return;
    switch (d.kind) {
      case 'call':
        this.onCall(d);
        return;
      case 'result': {
        const o = this.open.get(d.node);
        this.open.delete(d.node);
        if (o === undefined) return;
        if (d.result !== 'ok') {
          // Nothing happened: restore what the call released.
          for (const [k, h] of o.before) {
            this.locks.set(k, h);
            this.setHeld(k, h.mode);
          }
          return;
        }
        if (d.op === 'lock') {
          const c = o.call;
          const k = lockKey(d.node, d.lkid);
          this.locks.set(k, {
            res: c.res,
            session: sessionKey(c.node, c.session),
            mode: null,
            granted: null,
            released: false,
          });
        }
        return;
      }
      case 'done': {
        const k = lockKey(d.node, d.lkid);
        const h = this.locks.get(k);
        if (h === undefined) return;
        h.granted = d.mode;
        if (h.released) return;
        this.setHeld(k, d.mode);
        if (d.status === 'granted') this.judge(k, h);
        return;
      }
      case 'bast':
        return;
    }
  }

  private onCall(c: DlmCall): void {
    const before = new Map<string, Held>();
    this.open.set(c.node, { call: c, before });
    const save = (k: string, h: Held): void => {
      before.set(k, { ...h });
    };
    switch (c.op) {
      case 'open':
      case 'lock':
      case 'cancel':
        return;
      case 'close': {
        const s = sessionKey(c.node, c.session);
        for (const [k, h] of this.locks)
          if (h.session === s && !h.released) {
            save(k, h);
            h.released = true;
            this.setHeld(k, null);
          }
        return;
      }
      case 'unlock': {
        const k = lockKey(c.node, c.lkid);
        const h = this.locks.get(k);
        if (h === undefined || h.released || (c.flags & LKF.CANCEL) !== 0) return;
        save(k, h);
        h.released = true;
        this.setHeld(k, null);
        return;
      }
      case 'convert': {
        const k = lockKey(c.node, c.lkid);
        const h = this.locks.get(k);
        if (h === undefined || h.released || h.mode === null) return;
        save(k, h);
        this.setHeld(k, keptWhileConverting(h.mode, c.mode as LockMode, c.flags));
        return;
      }
    }
  }

  private setHeld(k: string, mode: LockMode | null): void {
    const h = this.locks.get(k);
    if (h === undefined) return;
    h.mode = mode;
    let set = this.byRes.get(h.res);
    if (mode === null) {
      set?.delete(k);
      return;
    }
    if (set === undefined) {
      set = new Set();
      this.byRes.set(h.res, set);
    }
    set.add(k);
  }

  private judge(k: string, h: Held): void {
    if (h.mode === null) return;
    this.checks++;
    for (const other of this.byRes.get(h.res) ?? []) {
      if (other === k) continue;
      const o = this.locks.get(other);
      if (o?.mode == null || compatible(o.mode, h.mode)) continue;
      this.violation(
        `resource ${h.res}: lock ${k} was granted ${MODE_NAMES[h.mode] ?? '?'} while lock ${other} holds ${MODE_NAMES[o.mode] ?? '?'}`,
      );
      return;
    }
  }
}

/**
 * What a holder of `from` keeps while its conversion to `to` (with `flags`) is in flight. With
 * ALTPR/ALTCW the master may grant the alternate mode instead, so the holder keeps only what both
 * outcomes keep.
 */
export function keptWhileConverting(from: LockMode, to: LockMode, flags: number): LockMode {
  if ((flags & LKF.CONVDEADLK) !== 0) return 0;
  const kept = keptFor(from, to);
  if ((flags & LKF.ALTPR) !== 0) return meet(kept, keptFor(from, 3));
  if ((flags & LKF.ALTCW) !== 0) return meet(kept, keptFor(from, 2));
  return kept;
}

function keptFor(from: LockMode, to: LockMode): LockMode {
  switch (conversionKind(from, to)) {
    case 'down':
      return to;
    case 'middle':
      return 1;
    case 'up':
    case 'same':
      return from;
  }
}

/** The strongest mode whose protection both `a` and `b` give (NL < CR < CW|PR < PW < EX; CW, PR meet at CR). */
function meet(a: LockMode, b: LockMode): LockMode {
  if ((a === 2 && b === 3) || (a === 3 && b === 2)) return 1;
  return a < b ? a : b;
}
