/**
 * The `dlm` workload's trace vocabulary: what its clients (`workloads/dlm-driver.ts`) record and
 * what the DLM checkers (`dlm-*-checker.ts`) read. The checkers see only these events and the
 * simulator's `phase`, never node state. All events have source `client`.
 *
 * - `dlm-call node=N session=S op=open|close|lock|convert|unlock|cancel res=R lkid=L mode=M
 *   flags=F bast=B timeoutMs=T lvb=V`: a call the client makes into node N's DLM, traced before
 *   the call runs (so a release is on record before the master can act on it). `lkid` is 0 for
 *   `lock` (the id comes with the result), `res` the resource name ('' for open and close),
 *   `flags` the `LKF` bits as a number, `timeoutMs` 0 when none, `lvb` the value block passed
 *   (`lvbText`), or `-`.
 * - `dlm-result node=N session=S op=.. lkid=L result=ok|CODE`: the call's synchronous answer,
 *   traced right after it; `lkid` is the new lock id of an accepted `lock`, `session` the new
 *   session of an `open`. Events a call causes synchronously (completions delivered inside it) are
 *   traced after its result.
 * - `dlm-done node=N session=S lkid=L status=.. mode=M sbflags=F lvb=V`: a completion the session
 *   got (`mode` -1 when the lock ended).
 * - `dlm-bast node=N session=S lkid=L mode=M`: a blocking notification the session got.
 */
import type { LockMode, LockStatus } from '../../dlm/lock-types.js';
import { isLockMode } from '../../dlm/lock-modes.js';
import type { SimEvent } from '../trace.js';

/** Event names. */
export const DLM_CLIENT_EVENT = {
  call: 'dlm-call',
  result: 'dlm-result',
  done: 'dlm-done',
  bast: 'dlm-bast',
} as const;

/** The calls a client makes. */
export type DlmOp = 'open' | 'close' | 'lock' | 'convert' | 'unlock' | 'cancel';
const OPS: ReadonlySet<string> = new Set<DlmOp>(['open', 'close', 'lock', 'convert', 'unlock', 'cancel']);
const STATUSES: ReadonlySet<string> = new Set<LockStatus>([
  'granted',
  'again',
  'deadlock',
  'unlocked',
  'cancelled',
  'timeout',
]);

/** A traced call. */
export interface DlmCall {
  readonly kind: 'call';
  readonly timeUs: number;
  readonly node: number;
  readonly session: number;
  readonly op: DlmOp;
  readonly res: string;
  readonly lkid: number;
  /** The requested mode (lock, convert); meaningless for the other calls. */
  readonly mode: number;
  readonly flags: number;
  readonly bast: boolean;
  readonly timeoutMs: number;
  readonly lvb: string | null;
}

/** A traced synchronous result. */
export interface DlmResult {
  readonly kind: 'result';
  readonly timeUs: number;
  readonly node: number;
  readonly session: number;
  readonly op: DlmOp;
  readonly lkid: number;
  readonly result: string;
}

/** A traced completion. */
export interface DlmDone {
  readonly kind: 'done';
  readonly timeUs: number;
  readonly node: number;
  readonly session: number;
  readonly lkid: number;
  readonly status: LockStatus;
  readonly mode: LockMode | null;
  readonly sbflags: number;
  readonly lvb: string | null;
}

/** A traced blocking notification. */
export interface DlmBast {
  readonly kind: 'bast';
  readonly timeUs: number;
  readonly node: number;
  readonly session: number;
  readonly lkid: number;
  readonly mode: LockMode;
}

/** Any DLM client event. */
export type DlmTraced = DlmCall | DlmResult | DlmDone | DlmBast;

/** A lock's identity across the cluster: lock ids are unique per node. */
export function lockKey(node: number, lkid: number): string {
  return `${node}/${lkid}`;
}

/** A session's identity across the cluster: session ids are unique per node. */
export function sessionKey(node: number, session: number): string {
  return `${node}:${session}`;
}

/** A value block as traced: `-` for none, else hex with trailing zero bytes cut (`0` if all zero). */
export function lvbText(lvb: Uint8Array | null | undefined): string {
  if (lvb == null) return '-';
  let end = lvb.length;
  while (end > 0 && lvb[end - 1] === 0) end--;
  if (end === 0) return '0';
  let s = '';
  for (let i = 0; i < end; i++) s += (lvb[i] ?? 0).toString(16).padStart(2, '0');
  return s;
}

/** True when `e` is the simulator's announcement that the liveness phase began. */
export function isLivenessPhase(e: SimEvent): boolean {
  return e.source === 'sim' && e.event === 'phase' && e.fields['name'] === 'liveness';
}

function num(e: SimEvent, k: string): number | null {
  const v = e.fields[k];
  return typeof v === 'number' ? v : null;
}

function str(e: SimEvent, k: string): string | null {
  const v = e.fields[k];
  return typeof v === 'string' ? v : null;
}

/** Parses a DLM client event; null for other events. Throws on a malformed DLM event. */
export function parseDlmEvent(e: SimEvent): DlmTraced | null {
  if (e.source !== 'client' || !e.event.startsWith('dlm-')) return null;
  const node = num(e, 'node');
  const session = num(e, 'session');
  const lkid = num(e, 'lkid');
  if (node === null || session === null || lkid === null) throw new Error(`malformed ${e.event}: node/session/lkid`);
  const base = { timeUs: e.timeUs, node, session, lkid };
  switch (e.event) {
    case DLM_CLIENT_EVENT.call: {
      const op = str(e, 'op');
      if (op === null || !OPS.has(op)) throw new Error(`malformed dlm-call: op ${String(op)}`);
      const lvb = str(e, 'lvb');
      return {
        kind: 'call',
        ...base,
        op: op as DlmOp,
        res: str(e, 'res') ?? '',
        mode: num(e, 'mode') ?? 0,
        flags: num(e, 'flags') ?? 0,
        bast: e.fields['bast'] === true,
        timeoutMs: num(e, 'timeoutMs') ?? 0,
        lvb: lvb === null || lvb === '-' ? null : lvb,
      };
    }
    case DLM_CLIENT_EVENT.result: {
      const op = str(e, 'op');
      const result = str(e, 'result');
      if (op === null || !OPS.has(op) || result === null) throw new Error('malformed dlm-result');
      return { kind: 'result', ...base, op: op as DlmOp, result };
    }
    case DLM_CLIENT_EVENT.done: {
      const status = str(e, 'status');
      const mode = num(e, 'mode');
      if (status === null || !STATUSES.has(status) || mode === null) throw new Error('malformed dlm-done');
      if (mode !== -1 && !isLockMode(mode)) throw new Error(`malformed dlm-done: mode ${mode}`);
      const lvb = str(e, 'lvb');
      return {
        kind: 'done',
        ...base,
        status: status as LockStatus,
        mode: mode === -1 ? null : mode,
        sbflags: num(e, 'sbflags') ?? 0,
        lvb: lvb === null || lvb === '-' ? null : lvb,
      };
    }
    case DLM_CLIENT_EVENT.bast: {
      const mode = num(e, 'mode');
      if (mode === null || !isLockMode(mode)) throw new Error('malformed dlm-bast');
      return { kind: 'bast', ...base, mode };
    }
    default:
      return null;
  }
}
