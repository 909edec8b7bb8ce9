/**
 * `RequestRouter`: the host's built-in service that gets a command proposed at the leader, from
 * any node, and answers the caller once *this* node applied it (docs/membership.md):
 *
 * - The Raft core refuses proposals on followers, so a follower sends each proposal to the node
 *   it believes leads (`Forward`); the leader proposes it and answers with the index it was
 *   applied at (`ForwardApplied`); the follower takes the result from its own state machine when
 *   it applies that index (every node computes the same result), so a call returns only once the
 *   calling node reflects it.
 * - Definite refusals (`NOT_LEADER`, `BUSY`) are retried until the request's deadline; an
 *   unknown outcome is never retried for non-idempotent commands.
 * - A forward the leader already took (the network duplicated it, or an idempotent one was
 *   re-sent) is proposed once: a copy gets the same answer, or none while the outcome is unknown.
 * - Request ids never repeat across incarnations: a late answer to the previous incarnation's
 *   request must not match this incarnation's request with the same number.
 *
 * Bounds: `CLUSTER_REQUESTS_PENDING_MAX` requests per node, `FORWARDS_REMEMBERED_MAX` forwards
 * taken, `CLUSTER_APPLY_RESULTS_RETAINED` results kept for forwarders.
 */
import { assert, assertNever } from '../lib/assert.js';
import { DecodeError, err, type Result } from '../lib/errors.js';
import type { Incarnation, LogIndex, NodeId, Term } from '../lib/ids.js';
import type { ApplyResult, CommandCodec, Entry, MuxCommand, MuxOutput, RaftRole } from '../log/index.js';
import { CLUSTER_APPLY_RESULTS_RETAINED, CLUSTER_REQUESTS_PENDING_MAX } from '../constants.js';
import type { Clock } from './env.js';
import type { PeerChannel } from './node-service.js';
import { RaftNodeError, type RaftNodeErrorCode } from './raft-node.js';
import { FORWARD_MESSAGE_CHARS_MAX, type ForwardRefusalCode, type RouterMessage } from './router-message.js';

/** What the router needs from its host. */
export interface RouterDeps {
  readonly nodeId: NodeId;
  readonly incarnation: Incarnation;
  readonly clock: Clock;
  readonly codec: CommandCodec<MuxCommand>;
  /** Proposes on the local Raft shell (leader only; followers get `NOT_LEADER`). */
  propose(command: MuxCommand, done: (r: Result<MuxOutput, RaftNodeError>) => void): void;
  /** The index this node has applied. */
  appliedIndex(): LogIndex;
  /** What to keep of an applied output for forwarders (e.g. without a group message's payload). */
  retained(result: ApplyResult<MuxOutput>): ApplyResult<MuxOutput>;
  /** Interval of the node's heartbeat, ms (resend and retry pacing). */
  readonly heartbeatMs: number;
}

/** A finished request: the mux output or a typed failure. */
type Done = (r: Result<MuxOutput, RaftNodeError>) => void;

type RequestState =
  /** Not at any leader: (re)tried on the next tick. */
  | { readonly kind: 'waiting' }
  /** Proposed on this node (it leads). */
  | { readonly kind: 'local' }
  /** Forwarded to `to` at `sentMs`. */
  | { readonly kind: 'sent'; readonly to: NodeId; readonly sentMs: number }
  /** The leader applied it at (`index`, `term`); waiting for this node to apply that index. */
  | { readonly kind: 'applied'; readonly index: LogIndex; readonly term: Term };

interface Request {
  readonly id: number;
  readonly command: MuxCommand;
  readonly bytes: Uint8Array;
  readonly deadlineMs: number;
  readonly idempotent: boolean;
  readonly done: Done;
  state: RequestState;
}

/** Where a forward this node took as leader was applied (null while unknown). */
interface Taken {
  applied: { readonly index: LogIndex; readonly term: Term } | null;
}

/** Codes that say a proposal was certainly not made: it may be tried again. */
export const DEFINITE_REFUSALS: ReadonlySet<RaftNodeErrorCode> = new Set<RaftNodeErrorCode>(['NOT_LEADER', 'BUSY']);
/** An unanswered idempotent forward is sent again after this many heartbeats. */
const RESEND_HEARTBEATS = 5;
/** Forwards a leader remembers to answer duplicates (more than the requests one node may have pending). */
const FORWARDS_REMEMBERED_MAX = 2 * CLUSTER_REQUESTS_PENDING_MAX;
/** Request ids per incarnation (2^32), and incarnations before the id space wraps (2^20): ids stay below 2^53. */
const REQUEST_IDS_PER_INCARNATION = 2 ** 32;
const REQUEST_ID_INCARNATIONS = 2 ** 20;

/** See the file comment. */
export class RequestRouter {
  private channel: PeerChannel<RouterMessage> | null = null;
  private role: RaftRole = 'follower';
  private lead: NodeId | null = null;
  private running = false;
  private readonly requestIdBase: number;
  private requestCount = 0;
  private readonly requests = new Map<number, Request>();
  /** index -> ids of requests waiting for this node to apply it. */
  private readonly awaiting = new Map<number, number[]>();
  /** Results of the newest applied entries (insertion order = index order), bounded. */
  private readonly results = new Map<number, { readonly term: Term; readonly result: ApplyResult<MuxOutput> }>();
  /** Forwards this node took as leader, by `from:id` (bounded, oldest first). */
  private readonly forwardsTaken = new Map<string, Taken>();
  /** The entry being applied when the Raft shell completes a local proposal. */
  private lastApplied: Entry | null = null;

  constructor(private readonly deps: RouterDeps) {
    this.requestIdBase = (deps.incarnation % REQUEST_ID_INCARNATIONS) * REQUEST_IDS_PER_INCARNATION;
  }

  /** Connects the router's channel (the host opens it). */
  attach(channel: PeerChannel<RouterMessage>): void {
    this.channel = channel;
  }

  /** Requests are accepted from now on. */
  start(): void {
    this.running = true;
  }

  /** Proposes `command` at the leader (here or forwarded); `done` runs exactly once. */
  submit(command: MuxCommand, timeoutMs: number, idempotent: boolean, done: Done): void {
    if (!this.running) {
      done(err(new RaftNodeError('STOPPED', 'the node is not running')));
      return;
    }
    if (this.requests.size >= CLUSTER_REQUESTS_PENDING_MAX) {
      const message = `${CLUSTER_REQUESTS_PENDING_MAX} requests are already waiting on node ${this.deps.nodeId}; retry after some complete`;
      done(err(new RaftNodeError('BUSY', message)));
      return;
    }
    const id = this.requestIdBase + (this.requestCount++ % REQUEST_IDS_PER_INCARNATION) + 1;
    const request: Request = {
      id,
      command,
      bytes: this.deps.codec.encode(command),
      deadlineMs: this.deps.clock.nowMs() + timeoutMs,
      idempotent,
      done,
      state: { kind: 'waiting' },
    };
    this.requests.set(id, request);
    this.attempt(request);
  }

  onRole(role: RaftRole, lead: NodeId | null): void {
    this.role = role;
    this.lead = lead;
  }

  /** Retries waiting requests, re-sends stale idempotent forwards, expires overdue ones. */
  onTick(now: number): void {
    const resendMs = RESEND_HEARTBEATS * this.deps.heartbeatMs;
    for (const r of [...this.requests.values()]) {
      if (now >= r.deadlineMs && r.state.kind !== 'local') {
        const unknown = r.state.kind !== 'waiting';
        const message = unknown
          ? `the request got no answer before its deadline; it may still take effect`
          : `no leader accepted the request before its deadline (no quorum?); nothing was proposed`;
        this.finish(r, err(new RaftNodeError(unknown ? 'TIMEOUT' : 'NOT_LEADER', message, this.lead)));
        continue;
      }
      const s = r.state;
      if (s.kind === 'waiting') this.attempt(r);
      else if (s.kind === 'sent' && r.idempotent && (now - s.sentMs >= resendMs || s.to !== this.lead)) this.attempt(r);
      else if (s.kind === 'sent' && this.lead !== null && s.to !== this.lead) this.abandon(r, s.to, this.lead);
    }
  }

  /** An entry was applied here: keep its result for forwarders (before the services hear of it). */
  record(entry: Entry, result: ApplyResult<MuxOutput> | null): void {
    this.lastApplied = entry;
    if (result === null) return;
    this.results.set(entry.index, { term: entry.term, result: this.deps.retained(result) });
    if (this.results.size > CLUSTER_APPLY_RESULTS_RETAINED) {
      const oldest = this.results.keys().next();
      if (oldest.done !== true) this.results.delete(oldest.value);
    }
  }

  /** Answers the requests waiting for this node to apply `entry` (after the services heard of it). */
  answer(entry: Entry, result: ApplyResult<MuxOutput> | null): void {
    const waiting = this.awaiting.get(entry.index);
    if (waiting === undefined) return;
    this.awaiting.delete(entry.index);
    for (const id of waiting) {
      const r = this.requests.get(id);
      if (r?.state.kind !== 'applied') continue;
      assert(
        r.state.term === entry.term,
        `the leader applied index ${entry.index} in term ${r.state.term} but this node applied term ${entry.term}: committed entries never change`,
      );
      this.finish(r, result === null ? err(unknown(entry.index)) : resultOf(result, entry.index));
    }
  }

  /** A snapshot replaced the state up to `index`: the results of the skipped entries are unknown here. */
  onRestored(index: LogIndex): void {
    for (const [i, ids] of [...this.awaiting]) {
      if (i > index) continue;
      this.awaiting.delete(i);
      for (const id of ids) {
        const r = this.requests.get(id);
        if (r !== undefined) this.finish(r, err(unknown(i)));
      }
    }
    this.results.clear();
  }

  /** Every waiting request completes with `STOPPED`. */
  stop(): void {
    this.running = false;
    const stopped = new RaftNodeError('STOPPED', 'the node is stopping');
    for (const r of [...this.requests.values()]) this.finish(r, err(stopped));
    this.awaiting.clear();
  }

  /** A message on the router channel. */
  onMessage(from: NodeId, m: RouterMessage): void {
    if (!this.running) return;
    switch (m.type) {
      case 'Forward':
        this.onForward(from, m.id, m.command);
        return;
      case 'ForwardApplied':
        this.onForwardApplied(m.id, m.index as LogIndex, m.term as Term);
        return;
      case 'ForwardRefused':
        this.onForwardRefused(m.id, m.code, m.message, m.leader, m.refusal ?? null);
        return;
      default:
        assertNever(m, 'router message');
    }
  }

  private send(to: NodeId, m: RouterMessage): boolean {
    return this.channel?.send(to, m) ?? false;
  }

  private attempt(r: Request): void {
    if (this.role === 'leader') {
      r.state = { kind: 'local' };
      this.deps.propose(r.command, (res) => {
        if (!res.ok && DEFINITE_REFUSALS.has(res.error.code) && this.deps.clock.nowMs() < r.deadlineMs) {
          r.state = { kind: 'waiting' };
          return;
        }
        this.finish(r, res);
      });
      return;
    }
    if (this.lead === null || this.lead === this.deps.nodeId) {
      r.state = { kind: 'waiting' };
      return;
    }
    const sent = this.send(this.lead, { type: 'Forward', id: r.id, command: r.bytes });
    r.state = sent ? { kind: 'sent', to: this.lead, sentMs: this.deps.clock.nowMs() } : { kind: 'waiting' };
  }

  private finish(r: Request, result: Result<MuxOutput, RaftNodeError>): void {
    if (!this.requests.delete(r.id)) return;
    r.done(result);
  }

  /**
   * A non-idempotent request forwarded to a node that no longer leads: its outcome is unknown
   * (the old leader may have replicated it before it was deposed), so it must not be resent;
   * answering now instead of at the deadline lets the caller read and retry as soon as a new
   * leader is known (after a leader crash: within an election, not the whole request timeout).
   */
  private abandon(r: Request, to: NodeId, lead: NodeId): void {
    // The request id is internal (a client never sees it): the message names what a user can act on.
    const message = `the request was forwarded to node ${to}, which stopped leading before it answered (node ${lead} leads now); it may or may not have taken effect`;
    this.finish(r, err(new RaftNodeError('OUTCOME_UNKNOWN', message, lead)));
  }

  private onForward(from: NodeId, id: number, bytes: Uint8Array): void {
    let command: MuxCommand;
    try {
      command = this.deps.codec.decode(bytes);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      this.refuse(from, id, 'REFUSED', `the forwarded command does not decode (${e.code}): ${e.message}`, null);
      return;
    }
    // A forward this node already took as leader is proposed once: a copy gets the same answer,
    // or none while the outcome is unknown; never a NOT_LEADER refusal, which would make the
    // forwarder propose it again elsewhere although this node may have replicated it.
    const key = `${from}:${id}`;
    const seen = this.forwardsTaken.get(key);
    if (seen !== undefined) {
      if (seen.applied !== null)
        this.send(from, { type: 'ForwardApplied', id, index: seen.applied.index, term: seen.applied.term });
      return;
    }
    if (this.role !== 'leader') {
      const why = this.lead === null ? 'no leader is known right now' : `node ${this.lead} leads`;
      this.refuse(from, id, 'NOT_LEADER', why, null);
      return;
    }
    this.take(from, id, key, command);
  }

  private take(from: NodeId, id: number, key: string, command: MuxCommand): void {
    const taken: Taken = { applied: null };
    this.forwardsTaken.set(key, taken);
    if (this.forwardsTaken.size > FORWARDS_REMEMBERED_MAX) {
      const oldest = this.forwardsTaken.keys().next();
      if (oldest.done !== true) this.forwardsTaken.delete(oldest.value);
    }
    let synchronous = true;
    this.deps.propose(command, (res) => {
      // A proposal that was applied completes from the disk callback that applied it, right
      // after the host saw its entry (`lastApplied`); a refusal before proposing completes
      // synchronously, inside `propose`. `REFUSED` from apply means the state machine refused
      // the command deterministically: the forwarder reads that result from its own machine.
      const e = this.lastApplied;
      if (!synchronous && e !== null && (res.ok || res.error.code === 'REFUSED')) {
        taken.applied = { index: e.index, term: e.term };
        this.send(from, { type: 'ForwardApplied', id, index: e.index, term: e.term });
        return;
      }
      // Certainly not proposed: a retry may be proposed. An unknown outcome (it may still commit)
      // keeps the entry, so a late copy of this forward is not proposed a second time.
      if (!res.ok && DEFINITE_REFUSALS.has(res.error.code)) this.forwardsTaken.delete(key);
      if (!res.ok) this.refuse(from, id, res.error.code, res.error.message, res.error.refusal);
    });
    synchronous = false;
  }

  private refuse(to: NodeId, id: number, code: ForwardRefusalCode, message: string, refusal: string | null): void {
    this.send(to, {
      type: 'ForwardRefused',
      id,
      code,
      message: message.slice(0, FORWARD_MESSAGE_CHARS_MAX),
      leader: this.lead,
      ...(refusal === null ? {} : { refusal }),
    });
  }

  private onForwardApplied(id: number, index: LogIndex, term: Term): void {
    const r = this.requests.get(id);
    if (r?.state.kind !== 'sent') return;
    r.state = { kind: 'applied', index, term };
    if (this.deps.appliedIndex() >= index) {
      const held = this.results.get(index);
      this.finish(r, held === undefined ? err(unknown(index)) : resultOf(held.result, index));
      return;
    }
    const list = this.awaiting.get(index) ?? [];
    list.push(id);
    this.awaiting.set(index, list);
  }

  private onForwardRefused(
    id: number,
    code: ForwardRefusalCode,
    message: string,
    leader: NodeId | null,
    refusal: string | null,
  ): void {
    const r = this.requests.get(id);
    if (r?.state.kind !== 'sent') return;
    if (DEFINITE_REFUSALS.has(code) || code === 'STOPPED') {
      r.state = { kind: 'waiting' }; // retried on the next tick, at the leader Raft knows by then
      return;
    }
    this.finish(r, err(new RaftNodeError(code, `leader: ${message}`, leader, refusal)));
  }
}

function unknown(index: number): RaftNodeError {
  return new RaftNodeError(
    'OUTCOME_UNKNOWN',
    `the command was applied at index ${index}, but this node no longer holds its result (a snapshot replaced it); read the state to see its effect`,
  );
}

function resultOf(result: ApplyResult<MuxOutput>, index: number): Result<MuxOutput, RaftNodeError> {
  if (result.ok) return result;
  const message = `${result.error.code}: ${result.error.message} (index ${index})`;
  return err(new RaftNodeError('REFUSED', message, null, result.error.code));
}
