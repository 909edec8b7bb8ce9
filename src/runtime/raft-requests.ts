/**
 * The requests waiting in a Raft shell (`RaftNode`): proposals until their entry applies here,
 * linearizable reads until the applied index reaches their confirmed read index. Each completes
 * exactly once: with its result, with a definite refusal, or with `TIMEOUT` (outcome unknown to
 * the caller). The shell owns the loop and tells this table what happened; the table decides
 * which request completes and how, and never touches the core or the disk.
 */
import { CohortError, err, ok, type Result } from '../lib/errors.js';
import type { LogIndex, NodeId, Term } from '../lib/ids.js';
import type { ApplyResult, Entry } from '../log/index.js';

/** Stable codes of request failures. */
export type RaftNodeErrorCode =
  'NOT_LEADER' | 'TIMEOUT' | 'PROPOSAL_DROPPED' | 'OUTCOME_UNKNOWN' | 'BUSY' | 'STOPPED' | 'REFUSED';

/** A request failure. `leader` names the known leader, if any, for `NOT_LEADER`. */
export class RaftNodeError extends CohortError {
  override readonly name = 'RaftNodeError';
  constructor(
    override readonly code: RaftNodeErrorCode,
    message: string,
    readonly leader: NodeId | null = null,
    /**
     * With `REFUSED` from applying: the state machine's refusal code (its `ApplyError.code`,
     * e.g. `SETTINGS_MISMATCH`), kept end to end so callers never parse the message; else null.
     */
    readonly refusal: string | null = null,
  ) {
    super(code, message);
  }
}

interface PendingProposal<O> {
  readonly term: Term;
  readonly deadlineTick: number;
  readonly done: (r: Result<O, RaftNodeError>) => void;
}

interface PendingRead {
  readonly context: number;
  readonly deadlineTick: number;
  index: LogIndex | null;
  readonly done: (r: Result<void, RaftNodeError>) => void;
}

/** See the module comment. Bounded by the shell (`RAFT_NODE_PENDING_REQUESTS_MAX` via `size`). */
export class RaftRequests<O> {
  private proposals = new Map<number, PendingProposal<O>>();
  private reads: PendingRead[] = [];
  private readContext = 0;

  constructor(private readonly timeoutTicks: number) {}

  /** Requests waiting now. */
  get size(): number {
    return this.proposals.size + this.reads.length;
  }

  /** Waits for the entry proposed at `index` in `term` (proposed at tick `now`). */
  addProposal(index: LogIndex, term: Term, now: number, done: (r: Result<O, RaftNodeError>) => void): void {
    this.proposals.set(index, { term, deadlineTick: now + this.timeoutTicks, done });
  }

  /** A new read context to hand to the core's `readIndex` (then `addRead` if it was accepted). */
  newReadContext(): Uint8Array {
    const ctx = new Uint8Array(8);
    new DataView(ctx.buffer).setFloat64(0, ++this.readContext, true);
    return ctx;
  }

  /** Waits for the read with context `ctx`, asked at tick `now`. */
  addRead(ctx: Uint8Array, now: number, done: (r: Result<void, RaftNodeError>) => void): void {
    this.reads.push({ context: contextId(ctx), deadlineTick: now + this.timeoutTicks, index: null, done });
  }

  /** Entry `e` applied here with `result` (null for configuration and empty entries). */
  applied(e: Entry, result: ApplyResult<O> | null): void {
    const p = this.proposals.get(e.index);
    if (p === undefined) return;
    this.proposals.delete(e.index);
    if (p.term !== e.term) {
      const why = `the proposal at index ${e.index} was replaced by a newer leader's entry; it did not take effect`;
      p.done(err(new RaftNodeError('PROPOSAL_DROPPED', why)));
      return;
    }
    if (result === null) {
      // A configuration change: success means it was applied.
      p.done(ok(undefined as O));
      return;
    }
    p.done(
      result.ok
        ? ok(result.value)
        : err(new RaftNodeError('REFUSED', `${result.error.code}: ${result.error.message}`, null, result.error.code)),
    );
  }

  /** Proposals at or below `index` that a snapshot jumped over: we cannot tell if they applied. */
  skipped(index: LogIndex): void {
    for (const [i, p] of this.proposals) {
      if (i > index) continue;
      this.proposals.delete(i);
      const why = `a snapshot replaced the log through index ${index}; the proposal at ${i} may or may not have taken effect`;
      p.done(err(new RaftNodeError('OUTCOME_UNKNOWN', why)));
    }
  }

  /** The core confirmed the read with `context` at read index `index`. */
  readState(context: Uint8Array, index: LogIndex): void {
    const id = contextId(context);
    const r = this.reads.find((x) => x.context === id);
    if (r !== undefined) r.index = index;
  }

  /**
   * Answers the reads whose index `applied` reached; `refusal()` (a witness has no data to read)
   * is asked only when some read is due, and when non-null answers them with it instead.
   */
  answerReads(applied: LogIndex, refusal: () => RaftNodeError | null): void {
    if (this.reads.length === 0) return;
    const due = (r: PendingRead): boolean => r.index !== null && applied >= r.index;
    const refused = this.reads.some(due) ? refusal() : null;
    const waiting: PendingRead[] = [];
    for (const r of this.reads) {
      if (!due(r)) waiting.push(r);
      else r.done(refused === null ? ok(undefined) : err(refused));
    }
    this.reads = waiting;
  }

  /** Completes with `TIMEOUT` every request whose deadline tick is at or before `now`. */
  expire(now: number): void {
    for (const [i, p] of this.proposals) {
      if (p.deadlineTick > now) continue;
      this.proposals.delete(i);
      const why = `the proposal at index ${i} was not applied within ${this.timeoutTicks} ticks; it may still take effect`;
      p.done(err(new RaftNodeError('TIMEOUT', why)));
    }
    const live: PendingRead[] = [];
    for (const r of this.reads) {
      if (r.deadlineTick > now) live.push(r);
      else {
        const why = `the read was not confirmed within ${this.timeoutTicks} ticks (leader change or lost quorum); retry`;
        r.done(err(new RaftNodeError('TIMEOUT', why)));
      }
    }
    this.reads = live;
  }

  /** Completes every waiting request with `error` (the node stops). */
  dropAll(error: RaftNodeError): void {
    const proposals = [...this.proposals.values()];
    const reads = this.reads;
    this.proposals.clear();
    this.reads = [];
    for (const p of proposals) p.done(err(error));
    for (const r of reads) r.done(err(error));
  }
}

function contextId(ctx: Uint8Array): number {
  return new DataView(ctx.buffer, ctx.byteOffset, ctx.byteLength).getFloat64(0, true);
}
