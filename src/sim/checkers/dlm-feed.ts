/**
 * Test support for the DLM checkers: writes synthetic client events (`dlm-events.ts`) into
 * checkers, with a clock that advances 1 ms per event unless told otherwise. Each helper writes
 * what the driver would: a call, its result, and then what the session gets.
 */
import type { Checker } from '../workload.js';
import type { TraceFields } from '../../runtime/env.js';
import { DLM_CLIENT_EVENT, type DlmOp } from './dlm-events.js';

/** Optional parts of a call. */
export interface FeedCall {
  readonly res?: string;
  readonly lkid?: number;
  readonly mode?: number;
  readonly flags?: number;
  readonly bast?: boolean;
  readonly timeoutMs?: number;
  readonly lvb?: string;
}

/** See the module comment. Node and session default to 1 and 1. */
export class DlmFeed {
  nowUs = 0;

  constructor(private readonly checkers: readonly Checker[]) {}

  /** Advances the clock by `ms`. */
  wait(ms: number): void {
    this.nowUs += ms * 1000;
  }

  raw(event: string, fields: TraceFields, source: 'client' | 'sim' = 'client'): void {
    this.nowUs += 1000;
    for (const c of this.checkers) c.observe({ timeUs: this.nowUs, source, event, fields });
  }

  /** A call and its result (`result` 'ok' or a code; `resultLkid` the new lock id of a lock). */
  call(op: DlmOp, c: FeedCall, result = 'ok', at: { node?: number; session?: number; resultLkid?: number } = {}): void {
    const node = at.node ?? 1;
    const session = at.session ?? 1;
    this.raw(DLM_CLIENT_EVENT.call, {
      node,
      session,
      op,
      res: c.res ?? '',
      lkid: c.lkid ?? 0,
      mode: c.mode ?? 0,
      flags: c.flags ?? 0,
      bast: c.bast ?? false,
      timeoutMs: c.timeoutMs ?? 0,
      lvb: c.lvb ?? '-',
    });
    this.raw(DLM_CLIENT_EVENT.result, {
      node,
      session,
      op,
      lkid: op === 'lock' ? (at.resultLkid ?? 0) : (c.lkid ?? 0),
      result,
    });
  }

  /** Opens session `session` on `node`. */
  open(node = 1, session = 1): void {
    this.raw(DLM_CLIENT_EVENT.call, { node, session: 0, op: 'open', res: '', lkid: 0, mode: 0, flags: 0 });
    this.raw(DLM_CLIENT_EVENT.result, { node, session, op: 'open', lkid: 0, result: 'ok' });
  }

  /** A new request accepted as lock `lkid`. */
  lock(
    lkid: number,
    res: string,
    mode: number,
    flags = 0,
    at: { node?: number; session?: number } = {},
    more: FeedCall = {},
  ): void {
    this.call('lock', { res, mode, flags, ...more }, 'ok', { ...at, resultLkid: lkid });
  }

  /** A completion. */
  done(
    lkid: number,
    status: string,
    mode: number | null,
    at: { node?: number; session?: number; sbflags?: number; lvb?: string } = {},
  ): void {
    this.raw(DLM_CLIENT_EVENT.done, {
      node: at.node ?? 1,
      session: at.session ?? 1,
      lkid,
      status,
      mode: mode ?? -1,
      sbflags: at.sbflags ?? 0,
      lvb: at.lvb ?? '-',
    });
  }

  /** A blocking notification. */
  bast(lkid: number, mode: number, at: { node?: number; session?: number } = {}): void {
    this.raw(DLM_CLIENT_EVENT.bast, { node: at.node ?? 1, session: at.session ?? 1, lkid, mode });
  }

  /** The simulator's start of the liveness phase. */
  liveness(): void {
    this.raw('phase', { name: 'liveness', boundMs: 1000 }, 'sim');
  }
}
