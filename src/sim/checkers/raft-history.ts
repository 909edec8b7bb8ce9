/**
 * Linearizability of the Raft workload's key-value history, built from client trace events only.
 *
 * Client events (source `client`), one operation id each:
 * - `call id=N client=C op=get|put|cas|delete key=K [value=V] [expected=V|nil] node=X`: sent now.
 * - `return id=N [value=V|nil] [ok=bool] [deleted=bool]`: the answer arrived now.
 * - `fail id=N code=..`: a definite refusal (NOT_LEADER, BUSY, PROPOSAL_DROPPED, ...): the
 *   operation did not take effect, so it leaves the history.
 * - `lost id=N reason=..`: the outcome is unknown (TIMEOUT, OUTCOME_UNKNOWN, the node crashed or
 *   the client gave up): the operation stays in the history with no return, so the checker may
 *   place it anywhere after its call, or nowhere.
 * Operations still open when the run ends are unknown too.
 *
 * The verdict comes from `checkLinearizability(kvModel, ...)` with a deterministic step budget.
 * 'illegal' is a violation; 'unknown' (budget spent) is never a pass: it is counted in the stats
 * as unchecked, and the seed is neither failed nor credited.
 */
import { checkLinearizability, type CheckResult, type Operation } from './linearizability.js';
import { kvModel, type KvInput, type KvModelOutput } from './models.js';
import type { TraceFields } from '../../runtime/env.js';
import type { Checker } from '../workload.js';
import type { SimEvent } from '../trace.js';
import { CLIENT_EVENT } from './raft-events.js';

/** The history checker's verdict, for the workload's stats. */
export type HistoryVerdict = 'ok' | 'illegal' | 'unknown' | 'not-run';

interface OpenOp {
  readonly clientId: number;
  readonly input: KvInput;
  readonly call: number;
  output?: KvModelOutput;
  ret?: number;
}

function str(fields: TraceFields, key: string): string | null {
  const v = fields[key];
  return typeof v === 'string' ? v : null;
}

function valueOrNil(fields: TraceFields, key: string): string | null {
  const v = str(fields, key);
  return v === null || v === 'nil' ? null : v;
}

/** Builds the KV input of a `call` event, or null when it is malformed. */
function inputOf(fields: TraceFields): KvInput | null {
  const key = str(fields, 'key');
  if (key === null) return null;
  const op = typeof fields.op === 'string' ? fields.op : '';
  switch (op) {
    case 'get':
      return { type: 'get', key };
    case 'delete':
      return { type: 'delete', key };
    case 'put': {
      const value = str(fields, 'value');
      return value === null ? null : { type: 'put', key, value };
    }
    case 'cas': {
      const value = str(fields, 'value');
      return value === null ? null : { type: 'cas', key, expected: valueOrNil(fields, 'expected'), value };
    }
    default:
      return null;
  }
}

function outputOf(input: KvInput, fields: TraceFields): KvModelOutput {
  switch (input.type) {
    case 'get':
      return { type: 'get', value: valueOrNil(fields, 'value') };
    case 'put':
      return { type: 'put' };
    case 'cas':
      return { type: 'cas', succeeded: fields.ok === true };
    case 'delete':
      return { type: 'delete', deleted: fields.deleted === true };
  }
}

/** See the module comment. */
export class RaftHistoryChecker implements Checker {
  readonly name = 'raft-linearizability';
  private readonly ops = new Map<number, OpenOp>();
  private lostOps = 0;
  private failedOps = 0;
  private result: CheckResult | null = null;

  constructor(
    private readonly violation: (message: string) => void,
    private readonly stepsMax: number,
  ) {}

  observe(e: SimEvent): void {
    if (e.source !== 'client') return;
    const id = e.fields.id;
    if (typeof id !== 'number') return;
    switch (e.event) {
      case CLIENT_EVENT.call: {
        const input = inputOf(e.fields);
        if (input === null) {
          this.violation(`history: malformed call event for operation ${id}`);
          return;
        }
        const clientId = typeof e.fields.client === 'number' ? e.fields.client : -1;
        this.ops.set(id, { clientId, input, call: e.timeUs });
        return;
      }
      case CLIENT_EVENT.return: {
        const op = this.ops.get(id);
        if (op === undefined || op.ret !== undefined) return;
        op.output = outputOf(op.input, e.fields);
        op.ret = e.timeUs;
        return;
      }
      case CLIENT_EVENT.fail:
        if (this.ops.get(id)?.ret === undefined && this.ops.delete(id)) this.failedOps++;
        return;
      case CLIENT_EVENT.lost:
        if (this.ops.has(id)) this.lostOps++;
        return;
      default:
        return;
    }
  }

  finish(): void {
    const history: Operation<KvInput, KvModelOutput>[] = [];
    for (const op of this.ops.values()) {
      history.push(
        op.ret === undefined || op.output === undefined
          ? { clientId: op.clientId, input: op.input, call: op.call }
          : { clientId: op.clientId, input: op.input, output: op.output, call: op.call, return: op.ret },
      );
    }
    const r = checkLinearizability(kvModel, history, { stepsMax: this.stepsMax });
    this.result = r;
    if (r.verdict === 'illegal') this.violation(`the key-value history is not linearizable:\n${r.report.text}`);
  }

  /** The verdict of `finish`, or 'not-run'. */
  get verdict(): HistoryVerdict {
    return this.result?.verdict ?? 'not-run';
  }

  /** Operations in the history (definite failures excluded). */
  get operations(): number {
    return this.ops.size;
  }

  /** Operations whose outcome is unknown (no return). */
  get unknownOutcomes(): number {
    let n = 0;
    for (const op of this.ops.values()) if (op.ret === undefined) n++;
    return n;
  }

  /** Operations that failed definitely (left out of the history). */
  get definiteFailures(): number {
    return this.failedOps;
  }

  /** Search steps the check used. */
  get steps(): number {
    return this.result?.stats.steps ?? 0;
  }

  /** Operations reported lost by the driver. */
  get lost(): number {
    return this.lostOps;
  }
}
