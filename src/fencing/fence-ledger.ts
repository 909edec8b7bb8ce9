/**
 * The fence ledger (docs/design/fencing-and-recovery.md section 2): one record per fenced
 * incarnation `(node, incarnation)`, held and driven by the membership state machine, so the
 * entry that removes an incarnation uncleanly opens its record and the entry that proves the
 * fence closes it, at the same log positions on every node.
 *
 * Rules (the machine guarantees the first two; the ledger asserts them):
 * - A record is opened only by an unclean removal, at most once per incarnation; a closed record
 *   is never reopened (`open` of a known key answers `exists` and changes nothing).
 * - At most one record per node is pending (a node has one incarnation awaiting its fence), so
 *   pending records are bounded by CLUSTER_NODES_MAX.
 * - A record is closed by exactly one proof: a second `close` of the same incarnation answers
 *   `duplicate` (one incarnation is fenced at most once), of an unknown one `no-change`.
 * - Attempts are recorded only on a pending record. An attempt reported for a closed record (an
 *   agent that finished after another level's success or a confirmation) is ignored and answers
 *   `stale`: a finished record is final; an attempt for an unknown record answers `no-change`.
 * - Unfence entries are recorded only on a closed record (a node is unfenced after its fence);
 *   on a pending or unknown record they answer `no-change`.
 *
 * Bounds: a pending record keeps its newest FENCE_ATTEMPTS_KEPT attempts, a finished one its
 * newest FENCE_HISTORY_ATTEMPTS_KEPT (the count of dropped ones is kept); FENCE_HISTORY_KEPT
 * finished records are kept, the earliest finished dropped first; FENCE_UNFENCE_KEPT unfence
 * entries per record. Request reasons are clipped to FENCE_REASON_BYTES_MAX, deterministically.
 *
 * Determinism: records are iterated in sorted order only (pending by node id, history in the
 * order the records finished, which is log order); the encoding is canonical and `decode`
 * accepts only what `encode` writes; `digest` is a hash of that encoding, cached until the next
 * change. Returned records are immutable values: callers may keep them.
 */
import { assert, assertNever } from '../lib/assert.js';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { DecodeError } from '../lib/errors.js';
import { incarnation as makeIncarnation, logIndex, type Incarnation, type LogIndex, type NodeId } from '../lib/ids.js';
import { Fnv64, type Digest64 } from '../log/state-machine.js';
import {
  CLUSTER_NODES_MAX,
  FENCE_ATTEMPTS_KEPT,
  FENCE_HISTORY_ATTEMPTS_KEPT,
  FENCE_HISTORY_KEPT,
  FENCE_LEDGER_BYTES_MAX,
  FENCE_REASON_BYTES_MAX,
  FENCE_UNFENCE_KEPT,
} from '../constants.js';
import { clipUtf8 } from './fence-agent.js';
import {
  fenceAttemptProblem,
  fenceProofProblem,
  fenceUnfenceProblem,
  readFenceAttempt,
  readFenceProof,
  readFenceUnfence,
  readShortText,
  writeFenceAttempt,
  writeFenceProof,
  writeFenceUnfence,
  writeShortText,
  type FenceAttempt,
  type FenceProof,
  type FenceUnfence,
} from './fence-attempt.js';

/** A record's outcome: still waiting for a fence, or fenced (how, and the log index that closed it). */
export type FenceOutcome =
  { readonly state: 'pending' } | { readonly state: 'fenced'; readonly proof: FenceProof; readonly index: LogIndex };

/** One fenced incarnation's record. */
export interface FenceRecord {
  readonly node: NodeId;
  readonly incarnation: Incarnation;
  /** Why it must be fenced (the removal's cause, clipped) and the log index that opened the record. */
  readonly request: { readonly reason: string; readonly index: LogIndex };
  /** The newest attempts, oldest first. */
  readonly attempts: readonly FenceAttempt[];
  /** Attempts recorded but no longer kept. */
  readonly attemptsDropped: number;
  /** The highest round of any attempt recorded (1 before the first attempt). */
  readonly round: number;
  readonly outcome: FenceOutcome;
  /** Devices told `on` after the fence (storage fencing), oldest first; empty while pending. */
  readonly unfence: readonly FenceUnfence[];
}

/** What a ledger operation did (the names of the membership outcomes it becomes). */
export type FenceLedgerOutcome = 'applied' | 'duplicate' | 'stale' | 'no-change';

const PENDING: FenceOutcome = { state: 'pending' };
/** The dropped-attempt count saturates at the u32 it is encoded in. */
const DROPPED_MAX = 0xffff_ffff;

function sameKey(r: FenceRecord, node: NodeId, inc: number): boolean {
  return r.node === node && r.incarnation === inc;
}

/** `list` with `item` appended, keeping the newest `max`; also how many were dropped. */
function appendBounded<T>(list: readonly T[], item: T, max: number): { list: readonly T[]; dropped: number } {
  const next = [...list, item];
  const dropped = Math.max(0, next.length - max);
  return { list: dropped === 0 ? next : next.slice(dropped), dropped };
}

/** The fence ledger. Owned by the membership state machine, its only writer. */
export class FenceLedger {
  /** Pending records by node (at most one per node). */
  private readonly open_ = new Map<NodeId, FenceRecord>();
  /** Finished records, in the order they finished (oldest first). */
  private finished: FenceRecord[] = [];
  private digestCache: Digest64 | null = null;

  /** Records still waiting for their fence. */
  get pendingCount(): number {
    return this.open_.size;
  }

  /** Finished records kept. */
  get historyCount(): number {
    return this.finished.length;
  }

  /**
   * Opens the record of `(node, inc)`, removed uncleanly at log `index` because of `reason`
   * (clipped to FENCE_REASON_BYTES_MAX). `exists` when the ledger already knows the key (pending
   * or finished: a closed record is never reopened). Asserts that `node` has no other pending
   * record: the membership rules fence one incarnation of a node at a time.
   */
  open(node: NodeId, inc: Incarnation, reason: string, index: LogIndex): 'opened' | 'exists' {
    if (this.record(node, inc) !== null) return 'exists';
    const other = this.open_.get(node);
    assert(other === undefined, `node ${node} already has a pending fence (incarnation ${other?.incarnation ?? 0})`);
    assert(this.open_.size < CLUSTER_NODES_MAX, 'pending fences are bounded by the node count');
    this.open_.set(node, {
      node,
      incarnation: inc,
      request: { reason: clipUtf8(reason, FENCE_REASON_BYTES_MAX), index },
      attempts: [],
      attemptsDropped: 0,
      round: 1,
      outcome: PENDING,
      unfence: [],
    });
    this.digestCache = null;
    return 'opened';
  }

  /**
   * Records an attempt on the pending record of `(node, inc)`: `applied`. On a finished record it
   * is ignored (`stale`), on an unknown one too (`no-change`). Asserts the attempt is well formed
   * (the command codec validated it).
   */
  recordAttempt(node: NodeId, inc: number, attempt: FenceAttempt): FenceLedgerOutcome {
    assert(fenceAttemptProblem(attempt) === null, 'a recorded attempt is well formed');
    const rec = this.open_.get(node);
    if (rec === undefined || rec.incarnation !== inc)
      return this.finishedRecord(node, inc) === null ? 'no-change' : 'stale';
    const { list, dropped } = appendBounded(rec.attempts, attempt, FENCE_ATTEMPTS_KEPT);
    this.open_.set(node, {
      ...rec,
      attempts: list,
      attemptsDropped: Math.min(DROPPED_MAX, rec.attemptsDropped + dropped),
      round: Math.max(rec.round, attempt.round),
    });
    this.digestCache = null;
    return 'applied';
  }

  /**
   * Closes the pending record of `(node, inc)` with `proof` at log `index`: `applied` (the record
   * moves to the history, keeping its newest FENCE_HISTORY_ATTEMPTS_KEPT attempts, and the
   * earliest finished record beyond FENCE_HISTORY_KEPT is dropped). A finished record answers
   * `duplicate`, an unknown one `no-change`; neither changes anything.
   */
  close(node: NodeId, inc: number, proof: FenceProof, index: LogIndex): FenceLedgerOutcome {
    assert(fenceProofProblem(proof) === null, 'a fence proof is well formed');
    const rec = this.open_.get(node);
    if (rec === undefined || rec.incarnation !== inc)
      return this.finishedRecord(node, inc) === null ? 'no-change' : 'duplicate';
    assert(index >= rec.request.index, 'a record closes at or after the entry that opened it');
    const cut = Math.max(0, rec.attempts.length - FENCE_HISTORY_ATTEMPTS_KEPT);
    this.open_.delete(node);
    this.finished.push({
      ...rec,
      attempts: rec.attempts.slice(cut),
      attemptsDropped: Math.min(DROPPED_MAX, rec.attemptsDropped + cut),
      outcome: { state: 'fenced', proof, index },
    });
    if (this.finished.length > FENCE_HISTORY_KEPT) this.finished = this.finished.slice(1);
    this.digestCache = null;
    return 'applied';
  }

  /**
   * Records that a device was told `on` for `node` after incarnation `inc` was fenced: `applied`
   * on a finished record (the newest FENCE_UNFENCE_KEPT entries are kept); `no-change` on a
   * pending or unknown one.
   */
  recordUnfence(node: NodeId, inc: number, entry: FenceUnfence): FenceLedgerOutcome {
    assert(fenceUnfenceProblem(entry) === null, 'an unfence entry is well formed');
    const at = this.finished.findIndex((r) => sameKey(r, node, inc));
    const rec = this.finished[at];
    if (rec === undefined) return 'no-change';
    this.finished[at] = { ...rec, unfence: appendBounded(rec.unfence, entry, FENCE_UNFENCE_KEPT).list };
    this.digestCache = null;
    return 'applied';
  }

  /** Pending records, ascending by node id. */
  pending(): FenceRecord[] {
    return [...this.open_.keys()].sort((a, b) => a - b).map((n) => this.open_.get(n) as FenceRecord);
  }

  /** The pending record of `node`, or null. */
  pendingOf(node: NodeId): FenceRecord | null {
    return this.open_.get(node) ?? null;
  }

  /** The record of `(node, inc)`, pending or finished, or null when unknown (never opened, or dropped). */
  record(node: NodeId, inc: number): FenceRecord | null {
    const rec = this.open_.get(node);
    if (rec !== undefined && rec.incarnation === inc) return rec;
    return this.finishedRecord(node, inc);
  }

  /** Up to `limit` finished records (clamped to 0..FENCE_HISTORY_KEPT), the latest finished first. */
  history(limit: number = FENCE_HISTORY_KEPT): FenceRecord[] {
    const n = Math.max(0, Math.min(Math.floor(limit) || 0, FENCE_HISTORY_KEPT));
    return this.finished.slice(Math.max(0, this.finished.length - n)).reverse();
  }

  private finishedRecord(node: NodeId, inc: number): FenceRecord | null {
    return this.finished.find((r) => sameKey(r, node, inc)) ?? null;
  }

  /** A hash of the canonical encoding (the ledger's contribution to the membership state hash). */
  digest(): Digest64 {
    if (this.digestCache === null) {
      const w = new ByteWriter(256, FENCE_LEDGER_BYTES_MAX);
      this.encode(w);
      this.digestCache = new Fnv64().bytes(w.finish()).digest();
    }
    return this.digestCache;
  }

  // ----------------------------------------------------------------------------------------------
  // Canonical encoding: u8 pending count, pending records ascending by node; u16 history count,
  // finished records in the order they finished (their closing indexes strictly ascend).

  /** Writes the ledger in canonical order. */
  encode(w: ByteWriter): void {
    const pending = this.pending();
    w.u8(pending.length);
    for (const r of pending) writeRecord(w, r);
    w.u16(this.finished.length);
    for (const r of this.finished) writeRecord(w, r);
  }

  /** Reads what `encode` wrote, checking every bound and rule above; raises only `DecodeError`. */
  static decode(r: ByteReader): FenceLedger {
    const ledger = new FenceLedger();
    const pendingCount = r.u8('pending fence count');
    if (pendingCount > CLUSTER_NODES_MAX)
      throw invalid(`${pendingCount} pending fences; at most ${CLUSTER_NODES_MAX} (one per node)`);
    let prevNode = 0;
    for (let i = 0; i < pendingCount; i++) {
      const rec = readRecord(r);
      if (rec.outcome.state !== 'pending') throw invalid('a finished record is listed among the pending ones');
      if (rec.node <= prevNode) throw invalid('pending fences are not strictly ascending by node');
      prevNode = rec.node;
      ledger.open_.set(rec.node, rec);
    }
    const historyCount = r.u16('fence history count');
    if (historyCount > FENCE_HISTORY_KEPT)
      throw invalid(`${historyCount} finished fences; at most ${FENCE_HISTORY_KEPT}`);
    let prevIndex = -1;
    for (let i = 0; i < historyCount; i++) {
      const rec = readRecord(r);
      if (rec.outcome.state !== 'fenced') throw invalid('a pending record is listed among the finished ones');
      if (rec.outcome.index <= prevIndex) throw invalid('finished fences are not in the order they finished');
      prevIndex = rec.outcome.index;
      if (ledger.record(rec.node, rec.incarnation) !== null)
        throw invalid(`node ${rec.node} incarnation ${rec.incarnation} has two records`);
      ledger.finished.push(rec);
    }
    return ledger;
  }
}

function invalid(message: string): DecodeError {
  return new DecodeError('DECODE_INVALID', `fence ledger: ${message}`);
}

function writeRecord(w: ByteWriter, rec: FenceRecord): void {
  w.u16(rec.node).u64(rec.incarnation);
  writeShortText(w, rec.request.reason);
  w.u64(rec.request.index).u32(rec.round).u32(rec.attemptsDropped).u8(rec.attempts.length);
  for (const a of rec.attempts) writeFenceAttempt(w, a);
  const o = rec.outcome;
  switch (o.state) {
    case 'pending':
      w.u8(0);
      break;
    case 'fenced':
      w.u8(1);
      writeFenceProof(w, o.proof);
      w.u64(o.index);
      break;
    default:
      assertNever(o, 'fence outcome');
  }
  w.u8(rec.unfence.length);
  for (const u of rec.unfence) writeFenceUnfence(w, u);
}

function readOutcome(r: ByteReader): FenceOutcome {
  const tag = r.u8('fence outcome');
  if (tag === 0) return PENDING;
  if (tag !== 1) throw invalid(`fence outcome ${tag} is neither pending (0) nor fenced (1)`);
  const proof = readFenceProof(r);
  return { state: 'fenced', proof, index: logIndex(r.u64('fence index')) };
}

function readRecord(r: ByteReader): FenceRecord {
  const node = r.u16('fenced node');
  if (node === 0) throw invalid('node 0 is not a node id');
  const inc = r.u64('fenced incarnation');
  if (inc === 0) throw invalid('incarnation 0; incarnations start at 1');
  const reason = readShortText(r, FENCE_REASON_BYTES_MAX, 'fence reason');
  if (clipUtf8(reason, FENCE_REASON_BYTES_MAX) !== reason) throw invalid('the fence reason is not well formed');
  const requestIndex = logIndex(r.u64('fence request index'));
  const round = r.u32('fence round');
  const attemptsDropped = r.u32('dropped attempt count');
  const attemptCount = r.u8('attempt count');
  if (attemptCount > FENCE_ATTEMPTS_KEPT) throw invalid(`${attemptCount} attempts; at most ${FENCE_ATTEMPTS_KEPT}`);
  const attempts: FenceAttempt[] = [];
  for (let i = 0; i < attemptCount; i++) attempts.push(readFenceAttempt(r));
  if (round < 1 || attempts.some((a) => a.round > round))
    throw invalid(`round ${round} is below 1 or below an attempt's round`);
  const outcome = readOutcome(r);
  const unfenceCount = r.u8('unfence count');
  if (outcome.state === 'pending' ? unfenceCount > 0 : unfenceCount > FENCE_UNFENCE_KEPT)
    throw invalid(`${unfenceCount} unfence entries (none while pending, at most ${FENCE_UNFENCE_KEPT})`);
  const unfence: FenceUnfence[] = [];
  for (let i = 0; i < unfenceCount; i++) unfence.push(readFenceUnfence(r));
  if (outcome.state === 'fenced') {
    if (attemptCount > FENCE_HISTORY_ATTEMPTS_KEPT)
      throw invalid(`a finished record keeps ${attemptCount} attempts; at most ${FENCE_HISTORY_ATTEMPTS_KEPT}`);
    if (outcome.index < requestIndex) throw invalid('a record closed before the entry that opened it');
  }
  return {
    node: node as NodeId,
    incarnation: makeIncarnation(inc),
    request: { reason, index: requestIndex },
    attempts,
    attemptsDropped,
    round,
    outcome,
    unfence,
  };
}
