/**
 * DLM legal replies, judged from the clients' trace (`dlm-events.ts`; research/dlm.md 1.4-1.7,
 * 1.11). The checker keeps its own model of every lock (its granted mode by its completions and
 * the operations accepted on it and not completed yet) and judges:
 *
 * - **Synchronous answers.** A call is refused only when it breaks a rule, with the code for that
 *   rule, and every call that breaks one is refused: bad modes and flag combinations (INVALID),
 *   QUECVT on a conversion that is not upward (INVALID, as Linux), an unknown or ended lock or a
 *   lock of another session (NOT_FOUND), a conversion or plain unlock of a lock that is not
 *   granted or has an operation in flight, a FORCEUNLOCK of a lock already being unlocked
 *   (BUSY), a second cancel while one is pending (INVALID). Two answers are both legal where the
 *   client cannot know the node's state: a cancel after an earlier cancel whose outcome the
 *   client never saw (it was moot, and the node may not have heard so yet) or of a TIMEOUT
 *   operation (its timeout may be cancelling it already) may be refused INVALID.
 * - **Completions.** Each belongs to an accepted operation on a live lock of an open session, and
 *   there is exactly one per accepted operation, in order (none for a moot cancel; a cancel that
 *   did cancel shows as the `cancelled` completion of the request or conversion). Statuses fit the
 *   operation: `granted` in the requested mode, or the ALTPR/ALTCW mode with SBF.ALTMODE (and
 *   ALTMODE only then); SBF.DEMOTED only for a CONVDEADLK conversion; `again` only with NOQUEUE;
 *   `deadlock` only for a conversion without CONVDEADLK; `timeout` only with TIMEOUT; `cancelled`
 *   only after a cancel; `unlocked` only for an unlock; a failed conversion keeps its mode (NL
 *   when demoted); a failed request ends the lock.
 * - **FORCEUNLOCK overlapping an operation in flight** (research/dlm.md 1.6): that operation may
 *   still complete first (and if that completion ends the lock, the unlock gets none), else the
 *   unlock's `unlocked` completion ends both.
 * - **Blocking notifications** only for live locks of open sessions.
 *
 * The model is shared with the wake-up checker (`dlm-wakeup-checker.ts`) through `locks()`.
 */
import { LKF, MODE_NAMES, SBF, type LockMode } from '../../dlm/lock-types.js';
import { quecvtAllowed } from '../../dlm/lock-modes.js';
import type { Checker } from '../workload.js';
import type { SimEvent } from '../trace.js';
import { lockKey, parseDlmEvent, sessionKey, type DlmCall, type DlmDone, type DlmResult } from './dlm-events.js';

/** An operation accepted on a lock and not completed yet. */
export interface PendingOp {
  readonly kind: 'request' | 'convert' | 'unlock';
  readonly mode: LockMode;
  readonly flags: number;
  /** The granted mode when a conversion was asked (null for a request). */
  readonly from: LockMode | null;
  readonly callUs: number;
  readonly force: boolean;
  /** A cancel of it was accepted. */
  cancel: boolean;
  /** Overlapped by a FORCEUNLOCK: it may complete or not. */
  optional: boolean;
}

/** The model of one lock. */
export interface ModelLock {
  readonly key: string;
  readonly session: string;
  readonly res: string;
  granted: LockMode | null;
  readonly ops: PendingOp[];
  ended: boolean;
  bast: boolean;
  /** Virtual time of its last `granted` completion, µs (-1: none). */
  grantUs: number;
  /** Virtual time of its last blocking notification, µs (-1: none). */
  bastUs: number;
  /**
   * Since when its master surely knows its `bast` choice, µs: the completion of the request or
   * conversion that last made it (a conversion carries a new choice, which stays even if the
   * conversion fails).
   */
  bastSinceUs: number;
  /** A cancel was accepted whose outcome no completion showed (it may have been moot). */
  cancelUnseen: boolean;
}

const REQUEST_ONLY = LKF.QUECVT | LKF.CONVDEADLK;
const UNLOCK_FLAGS = LKF.CANCEL | LKF.FORCEUNLOCK | LKF.VALBLK | LKF.IVVALBLK;
const LOCK_FLAGS =
  LKF.NOQUEUE |
  LKF.CONVERT |
  LKF.VALBLK |
  LKF.QUECVT |
  LKF.IVVALBLK |
  LKF.CONVDEADLK |
  LKF.PERSISTENT |
  LKF.NODLCKWT |
  LKF.EXPEDITE |
  LKF.NOQUEUEBAST |
  LKF.HEADQUE |
  LKF.NOORDER |
  LKF.ORPHAN |
  LKF.ALTPR |
  LKF.ALTCW |
  LKF.TIMEOUT;

function has(flags: number, bit: number): boolean {
  return (flags & bit) !== 0;
}

/** Why a lock call with these arguments is INVALID (research/dlm.md 1.4 "Argument validation"), or null. */
export function invalidLockCall(mode: number, flags: number, convert: boolean, timeoutMs: number): string | null {
  if (!Number.isInteger(mode) || mode < 0 || mode > 5) return 'mode outside NL..EX';
  if ((flags & ~LOCK_FLAGS) !== 0) return 'a flag that is not a lock flag';
  if (!convert && has(flags, LKF.CONVERT)) return 'CONVERT on a new request';
  if (!convert && has(flags, REQUEST_ONLY)) return 'QUECVT or CONVDEADLK without CONVERT';
  if (has(flags, LKF.CONVDEADLK) && has(flags, LKF.NOQUEUE)) return 'CONVDEADLK with NOQUEUE';
  if (has(flags, LKF.EXPEDITE) && (convert || has(flags, LKF.QUECVT | LKF.NOQUEUE) || mode !== 0))
    return 'EXPEDITE other than on a new NL request';
  if (has(flags, LKF.NOQUEUEBAST) && !has(flags, LKF.NOQUEUE)) return 'NOQUEUEBAST without NOQUEUE';
  if (has(flags, LKF.ALTPR) && has(flags, LKF.ALTCW)) return 'ALTPR with ALTCW';
  if (convert && has(flags, LKF.ORPHAN)) return 'ORPHAN on a conversion';
  if (has(flags, LKF.NODLCKBLK)) return 'NODLCKBLK';
  if (has(flags, LKF.TIMEOUT) && timeoutMs <= 0) return 'TIMEOUT without a timeout';
  return null;
}

/** See the module comment. */
export class DlmReplyChecker implements Checker {
  readonly name = 'dlm-replies';
  private readonly model = new Map<string, ModelLock>();
  private readonly sessions = new Map<string, 'open' | 'closed'>();
  private readonly open = new Map<number, DlmCall>();
  /** Figures for the stats. */
  readonly counts = { calls: 0, refused: 0, completions: 0, basts: 0, deadlocks: 0, demoted: 0, altmode: 0 };

  constructor(private readonly violation: (message: string) => void) {}

  /** The live locks (not ended, session open), for the wake-up checker. */
  *locks(): IterableIterator<ModelLock> {
    for (const l of this.model.values()) if (!l.ended) yield l;
  }

  observe(e: SimEvent): void {
    const d = parseDlmEvent(e);
    if (d === null) return;
    switch (d.kind) {
      case 'call':
        this.open.set(d.node, d);
        return;
      case 'result': {
        const c = this.open.get(d.node);
        this.open.delete(d.node);
        if (c?.op !== d.op) {
          this.violation(`node ${d.node}: a ${d.op} result without its call`);
          return;
        }
        this.onResult(c, d);
        return;
      }
      case 'done':
        this.onDone(d);
        return;
      case 'bast': {
        this.counts.basts++;
        const l = this.model.get(lockKey(d.node, d.lkid));
        if (l === undefined || l.ended) {
          this.violation(`blocking notification for lock ${lockKey(d.node, d.lkid)}, which is not a live lock`);
          return;
        }
        l.bastUs = d.timeUs;
        return;
      }
    }
  }

  /** The codes the call may be answered with ('ok' = accepted). */
  private expected(c: DlmCall): { codes: readonly string[]; why: string } {
    const accept = { codes: ['ok'], why: 'it breaks no rule' };
    const sk = sessionKey(c.node, c.session);
    if (c.op === 'open' || c.op === 'close') return accept;
    if (c.op === 'lock') {
      const bad = invalidLockCall(c.mode, c.flags, false, c.timeoutMs);
      if (bad !== null) return { codes: ['INVALID'], why: bad };
      if (this.sessions.get(sk) !== 'open') return { codes: ['NOT_FOUND'], why: 'its session is closed' };
      return accept;
    }
    const l = this.model.get(lockKey(c.node, c.lkid));
    const live = l !== undefined && !l.ended && l.session === sk;
    if (c.op === 'convert') {
      if (!live) return { codes: ['NOT_FOUND'], why: 'no such live lock of this session' };
      const bad = invalidLockCall(c.mode, c.flags | LKF.CONVERT, true, c.timeoutMs);
      if (bad !== null) return { codes: ['INVALID'], why: bad };
      if (l.ops.length > 0 || l.granted === null) return { codes: ['BUSY'], why: 'not granted, or busy' };
      if (has(c.flags, LKF.QUECVT) && !quecvtAllowed(l.granted, c.mode as LockMode))
        return { codes: ['INVALID'], why: 'QUECVT on a conversion that is not upward' };
      return accept;
    }
    if (c.op === 'cancel' || has(c.flags, LKF.CANCEL)) {
      if (!live) return { codes: ['NOT_FOUND'], why: 'no such live lock of this session' };
      const op = l.ops.find((o) => o.kind !== 'unlock' && !o.optional);
      if (op?.cancel === true) return { codes: ['INVALID'], why: 'a cancel is already pending' };
      if (l.cancelUnseen || (op !== undefined && has(op.flags, LKF.TIMEOUT)))
        return { codes: ['ok', 'INVALID'], why: 'an unseen cancel (moot or by timeout) may be pending' };
      return accept;
    }
    // unlock
    if (!live) return { codes: ['NOT_FOUND'], why: 'no such live lock of this session' };
    if ((c.flags & ~UNLOCK_FLAGS) !== 0 || (has(c.flags, LKF.CANCEL) && has(c.flags, LKF.FORCEUNLOCK)))
      return { codes: ['INVALID'], why: 'flags an unlock does not take' };
    if (has(c.flags, LKF.FORCEUNLOCK)) {
      if (l.ops.some((o) => o.kind === 'unlock')) return { codes: ['BUSY'], why: 'already being unlocked' };
      return accept;
    }
    if (l.ops.length > 0 || l.granted === null) return { codes: ['BUSY'], why: 'not granted, or busy' };
    return accept;
  }

  private onResult(c: DlmCall, r: DlmResult): void {
    this.counts.calls++;
    const want = this.expected(c);
    if (!want.codes.includes(r.result)) {
      this.violation(
        `node ${c.node} session ${c.session}: ${c.op} of ${c.res === '' ? `lock ${c.lkid}` : c.res} (mode ${c.mode}, flags 0x${c.flags.toString(16)}) answered ${r.result}; expected ${want.codes.join(' or ')} (${want.why})`,
      );
      return;
    }
    if (r.result !== 'ok') {
      this.counts.refused++;
      return;
    }
    const sk = sessionKey(c.node, c.session);
    const base = { callUs: c.timeUs, cancel: false, optional: false, force: false };
    switch (c.op) {
      case 'open':
        this.sessions.set(sessionKey(c.node, r.session), 'open');
        return;
      case 'close':
        this.sessions.set(sk, 'closed');
        for (const l of this.model.values())
          if (l.session === sk && !l.ended) {
            l.ended = true;
            l.ops.length = 0;
          }
        return;
      case 'lock': {
        const key = lockKey(c.node, r.lkid);
        if (this.model.has(key)) {
          this.violation(`lock id ${key} given out twice`);
          return;
        }
        this.model.set(key, {
          key,
          session: sk,
          res: c.res,
          granted: null,
          ops: [{ kind: 'request', mode: c.mode as LockMode, flags: c.flags, from: null, ...base }],
          ended: false,
          bast: c.bast,
          grantUs: -1,
          bastUs: -1,
          bastSinceUs: -1,
          cancelUnseen: false,
        });
        return;
      }
      case 'convert': {
        const l = this.model.get(lockKey(c.node, c.lkid));
        if (l === undefined) return;
        l.ops.push({
          kind: 'convert',
          mode: c.mode as LockMode,
          flags: c.flags | LKF.CONVERT,
          from: l.granted,
          ...base,
        });
        l.bast = c.bast;
        return;
      }
      case 'cancel':
      case 'unlock': {
        const l = this.model.get(lockKey(c.node, c.lkid));
        if (l === undefined) return;
        if (c.op === 'cancel' || has(c.flags, LKF.CANCEL)) {
          const op = l.ops.find((o) => o.kind !== 'unlock' && !o.optional);
          if (op !== undefined) {
            op.cancel = true;
            l.cancelUnseen = true;
          }
          return;
        }
        const force = has(c.flags, LKF.FORCEUNLOCK);
        if (force) for (const o of l.ops) o.optional = true;
        l.ops.push({ kind: 'unlock', mode: 0, flags: c.flags, from: l.granted, ...base, force });
        return;
      }
    }
  }

  private onDone(d: DlmDone): void {
    this.counts.completions++;
    const key = lockKey(d.node, d.lkid);
    const l = this.model.get(key);
    const what = `completion ${d.status} (mode ${d.mode ?? '-'}, sbflags ${d.sbflags}) of lock ${key}`;
    if (l === undefined) {
      this.violation(`${what}: no accepted call created that lock`);
      return;
    }
    if (this.sessions.get(l.session) !== 'open') {
      this.violation(`${what}: its session ${l.session} is closed`);
      return;
    }
    if (l.ended) {
      this.violation(`${what}: the lock already ended`);
      return;
    }
    const first = l.ops[0];
    if (first === undefined) {
      this.violation(`${what}: no operation of it is in flight`);
      return;
    }
    // A FORCEUNLOCK's completion settles the operation it overlapped too.
    const op = first.optional && d.status === 'unlocked' ? l.ops[1] : first;
    if (op === undefined) {
      this.violation(`${what}: no operation of it is in flight`);
      return;
    }
    const bad = illegal(op, d);
    if (bad !== null) {
      this.violation(
        `${what} for its ${op.kind} of ${MODE_NAMES[op.mode] ?? '?'} (flags 0x${op.flags.toString(16)}): ${bad}`,
      );
      return;
    }
    l.ops.splice(0, op === first ? 1 : 2);
    if (d.status === 'deadlock') this.counts.deadlocks++;
    if (has(d.sbflags, SBF.DEMOTED)) this.counts.demoted++;
    if (has(d.sbflags, SBF.ALTMODE)) this.counts.altmode++;
    if (d.status === 'cancelled' || d.status === 'timeout') l.cancelUnseen = false;
    l.granted = d.mode;
    if (d.status === 'granted') l.grantUs = d.timeUs;
    if (op.kind !== 'unlock') l.bastSinceUs = d.timeUs;
    if (d.mode === null) {
      l.ended = true;
      // An overlapping FORCEUNLOCK of a lock its operation ended gets no completion.
      if (l.ops.every((o) => o.force)) l.ops.length = 0;
      else this.violation(`${what}: it ended the lock with operations still in flight`);
    }
  }
}

/** Why completion `d` is not a legal outcome of `op`, or null. */
function illegal(op: PendingOp, d: DlmDone): string | null {
  const f = op.flags;
  const demoted = has(d.sbflags, SBF.DEMOTED);
  if (demoted && !(op.kind === 'convert' && has(f, LKF.CONVDEADLK))) return 'DEMOTED without a CONVDEADLK conversion';
  const kept = (): string | null =>
    d.mode === op.from || (demoted && d.mode === 0) ? null : `a failed conversion must keep mode ${op.from ?? '-'}`;
  switch (d.status) {
    case 'granted': {
      if (op.kind === 'unlock') return 'an unlock is not granted';
      const alt = has(f, LKF.ALTPR) ? 3 : has(f, LKF.ALTCW) ? 2 : null;
      const altmode = has(d.sbflags, SBF.ALTMODE);
      if (d.mode === op.mode && !altmode) return null;
      if (d.mode === alt && alt !== op.mode && altmode) return null;
      return `granted ${d.mode ?? '-'}${altmode ? ' with ALTMODE' : ''}, asked ${op.mode}`;
    }
    case 'again':
      if (op.kind === 'unlock' || !has(f, LKF.NOQUEUE)) return '`again` without NOQUEUE';
      return op.kind === 'request' ? (d.mode === null ? null : 'a failed request must end') : kept();
    case 'deadlock':
      if (op.kind !== 'convert' || has(f, LKF.CONVDEADLK)) return '`deadlock` only for a conversion without CONVDEADLK';
      return kept();
    case 'timeout':
    case 'cancelled':
      if (op.kind === 'unlock') return `an unlock cannot be ${d.status}`;
      if (d.status === 'timeout' && !has(f, LKF.TIMEOUT)) return '`timeout` without TIMEOUT';
      if (d.status === 'cancelled' && !op.cancel) return '`cancelled` without a cancel';
      return op.kind === 'request' ? (d.mode === null ? null : 'a cancelled request must end') : kept();
    case 'unlocked':
      if (op.kind !== 'unlock') return '`unlocked` for an operation that is not an unlock';
      return d.mode === null ? null : 'an unlock must end the lock';
  }
}
