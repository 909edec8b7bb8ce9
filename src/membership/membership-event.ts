/**
 * The membership event stream: what changed in the cluster, numbered so every node agrees.
 *
 * Events are produced only by applying committed commands, and `seq` is a counter inside the
 * state machine, so every node derives the same events with the same numbers at the same log
 * positions (views skew in time across nodes, never in order). The newest events are retained,
 * bounded by count (`MEMBERSHIP_EVENTS_RETAINED_MAX`) and encoded bytes
 * (`MEMBERSHIP_EVENTS_RETAINED_BYTES_MAX`), and travel in the snapshot, so a node restored from a
 * snapshot serves the same window as the node that took it. A reader asking for a compacted
 * event gets a typed `GAP` error naming the oldest seq still available, and restarts from there
 * (after re-reading the current state).
 *
 * Kinds now: `view` (the member set changed), `quorum` (the quorate flag changed), `node` (a
 * node's status changed without changing the member set: a rejoin waiting for a fence, a fence
 * confirmed, a quarantine lifted), `group` (a service group's view changed: a join, a leave, or a
 * removal because the node left the cluster view), `barrier` (a barrier was reached by every
 * member of its group view, or failed because the view changed), `fence` (a fence record was
 * opened, took an attempt, was closed, or recorded an unfence; kind tag 5), `recovery` (a step of
 * a service group's recovery round, `src/recovery/recovery-event.ts`; kind tag 6). A new kind
 * takes a new tag, so old events keep decoding.
 */
import { assert, assertNever, defined } from '../lib/assert.js';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { CohortError, DecodeError, err, ok, type Result } from '../lib/errors.js';
import {
  logIndex,
  viewId as makeViewId,
  type Incarnation,
  type LogIndex,
  type NodeId,
  type ViewId,
} from '../lib/ids.js';
import type { ArbitrationReason } from '../quorum/index.js';
import { Fnv64, MultisetHash64, type Digest64 } from '../log/state-machine.js';
import {
  CLUSTER_NODES_MAX,
  MEMBERSHIP_EVENT_BYTES_MAX,
  MEMBERSHIP_EVENTS_READ_MAX,
  MEMBERSHIP_EVENTS_RETAINED_BYTES_MAX,
  MEMBERSHIP_EVENTS_RETAINED_MAX,
  BARRIER_NAME_BYTES_MAX,
  FENCE_REASON_BYTES_MAX,
  GROUP_NAME_BYTES_MAX,
} from '../constants.js';
import {
  readBool,
  readEnum,
  readIncarnation,
  readNodeId,
  readText,
  writeEnum,
  writeText,
} from './membership-command.js';
import {
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
} from '../fencing/index.js';
import {
  BARRIER_OUTCOMES,
  GROUP_CHANGE_KINDS,
  readName,
  writeName,
  type BarrierPayload,
  type GroupEventBody,
  type GroupMember,
  type GroupViewPayload,
} from '../groups/index.js';
import { readRecoveryEvent, writeRecoveryEvent, type RecoveryEventBody } from '../recovery/index.js';

// ------------------------------------------------------------------------------------------------
// Types

/**
 * A configured node's membership status.
 * - `out`: not in the view, nothing pending (never joined, left cleanly, or failed and fenced).
 * - `member`: in the view with its incarnation.
 * - `needs-fencing`: removed uncleanly; its incarnation must be fenced before its resources are
 *   recovered and before a newer incarnation is admitted.
 * - `quarantined`: kept out after a gray failure or a fail/rejoin loop until `release`.
 */
export type NodeStatus = 'out' | 'member' | 'needs-fencing' | 'quarantined';

/** All statuses, in encoding order. */
export const NODE_STATUSES: readonly NodeStatus[] = ['out', 'member', 'needs-fencing', 'quarantined'];

/** Why the quorate flag is what it is: the arbitration's rule, or no configuration yet. */
export type QuorumReason = ArbitrationReason | 'not-configured';

/** All quorum reasons, in encoding order. */
export const QUORUM_REASONS: readonly QuorumReason[] = [
  'not-configured',
  'majority',
  'tie-breaker',
  'no-majority',
  'tie-breaker-absent',
  'wait-for-all',
  'two-node-peer-fenced',
  'two-node-awaiting-fence',
];

/** One member of a view. */
export interface ViewMember {
  readonly node: NodeId;
  readonly incarnation: Incarnation;
}

/** How one node's membership changed in a view. */
export type ViewChangeKind =
  /** A new incarnation entered the view. */
  | 'joined'
  /** It left cleanly. */
  | 'left'
  /** The failure detector or an operator declared it failed (it needs fencing). */
  | 'failed'
  /** A newer incarnation of the node joined while this one was a member (it needs fencing). */
  | 'replaced'
  /** It was quarantined. */
  | 'quarantined'
  /** A newer incarnation that waited for the old one's fence was admitted. */
  | 'admitted';

/** All change kinds, in encoding order. */
export const VIEW_CHANGE_KINDS: readonly ViewChangeKind[] = [
  'joined',
  'left',
  'failed',
  'replaced',
  'quarantined',
  'admitted',
];

/** Payload of a `view` event: the new view, its quorum verdict and the one change that made it. */
export interface ViewPayload {
  /** Ascending by node id. */
  readonly members: readonly ViewMember[];
  readonly quorate: boolean;
  readonly reason: QuorumReason;
  /** The arbitration's one-line explanation. */
  readonly explanation: string;
  readonly change: {
    readonly node: NodeId;
    readonly incarnation: Incarnation;
    readonly kind: ViewChangeKind;
    readonly cause: string;
  };
}

/** Payload of a `quorum` event: the quorate flag changed. */
export interface QuorumPayload {
  readonly quorate: boolean;
  readonly reason: QuorumReason;
  readonly explanation: string;
}

/** Payload of a `node` event: a status change that left the member set alone. */
export interface NodePayload {
  readonly node: NodeId;
  /** The incarnation the status is about; 0 when none is known (a node quarantined before it ever joined). */
  readonly incarnation: number;
  readonly from: NodeStatus;
  readonly to: NodeStatus;
  readonly cause: string;
}

/** What a `fence` event says happened to a fence record. */
export type FenceEventWhat = 'requested' | 'attempt' | 'fenced' | 'unfenced';

/** Every fence event kind, in encoding order. */
export const FENCE_EVENT_WHATS: readonly FenceEventWhat[] = ['requested', 'attempt', 'fenced', 'unfenced'];

/**
 * Payload of a `fence` event: the fence record of `(node, incarnation)` was opened (`requested`,
 * with the reason stored in the record), took an attempt, was closed (`fenced`, with the proof),
 * or recorded an unfence entry. See `src/fencing/fence-ledger.ts`.
 */
export type FencePayload = { readonly node: NodeId; readonly incarnation: Incarnation } & (
  | { readonly what: 'requested'; readonly reason: string }
  | { readonly what: 'attempt'; readonly attempt: FenceAttempt }
  | { readonly what: 'fenced'; readonly proof: FenceProof }
  | { readonly what: 'unfenced'; readonly unfence: FenceUnfence }
);

interface EventHeader {
  /** 1, 2, 3, ... in apply order; identical on every node. */
  readonly seq: number;
  /** The view in force after the event. */
  readonly viewId: ViewId;
  /** Log index of the command that produced it. */
  readonly index: LogIndex;
}

/** One event of the stream. Outputs are plain data: callers may keep them. */
export type MembershipEvent =
  | (EventHeader & { readonly kind: 'view'; readonly payload: ViewPayload })
  | (EventHeader & { readonly kind: 'quorum'; readonly payload: QuorumPayload })
  | (EventHeader & { readonly kind: 'node'; readonly payload: NodePayload })
  | (EventHeader & { readonly kind: 'group'; readonly payload: GroupViewPayload })
  | (EventHeader & { readonly kind: 'barrier'; readonly payload: BarrierPayload })
  | (EventHeader & { readonly kind: 'fence'; readonly payload: FencePayload })
  | (EventHeader & RecoveryEventBody);

/** An event before it is numbered (what the state machine produces). */
export type EventBody =
  | { readonly kind: 'view'; readonly payload: ViewPayload }
  | { readonly kind: 'quorum'; readonly payload: QuorumPayload }
  | { readonly kind: 'node'; readonly payload: NodePayload }
  | { readonly kind: 'fence'; readonly payload: FencePayload }
  | GroupEventBody
  | RecoveryEventBody;

/** Longest explanation kept in an event, in UTF-8 bytes (longer ones are clipped). */
export const EVENT_EXPLANATION_BYTES_MAX = 1024;
/** Longest cause kept in an event, in UTF-8 bytes (longer ones are clipped). */
export const EVENT_CAUSE_BYTES_MAX = 512;

const textEncoder = new TextEncoder();

/**
 * `s` cut to at most `maxBytes` UTF-8 bytes on a code point boundary, ending in "..." when cut.
 * Deterministic, so every node stores the same text.
 */
export function clipText(s: string, maxBytes: number): string {
  assert(maxBytes >= 3, 'clip limit leaves room for the ellipsis');
  if (textEncoder.encode(s).length <= maxBytes) return s;
  let bytes = 3;
  let out = '';
  for (const ch of s) {
    const n = textEncoder.encode(ch).length;
    if (bytes + n > maxBytes) break;
    out += ch;
    bytes += n;
  }
  return `${out}...`;
}

// ------------------------------------------------------------------------------------------------
// Reading errors

/** Stable codes of `MembershipEventError`. */
export type MembershipEventErrorCode = 'GAP' | 'BAD_SEQ';

/**
 * A read of the event stream that cannot be served. `GAP`: the events asked for were compacted
 * away; `oldestSeq` is the oldest still available (re-read the current state, then follow from
 * there). `BAD_SEQ`: the seq asked for is not a positive safe integer.
 */
export class MembershipEventError extends CohortError {
  override readonly name = 'MembershipEventError';
  declare readonly code: MembershipEventErrorCode;

  constructor(
    code: MembershipEventErrorCode,
    message: string,
    readonly oldestSeq: number,
  ) {
    super(code, message);
  }
}

/** A page of events: `events` in seq order, and `next`, the seq to ask for next. */
export interface EventPage {
  readonly events: readonly MembershipEvent[];
  readonly next: number;
}

// ------------------------------------------------------------------------------------------------
// Encoding (snapshots carry the retained events; sizes bound the ring)

const KINDS: readonly MembershipEvent['kind'][] = ['view', 'quorum', 'node', 'group', 'barrier', 'fence', 'recovery'];

function writePayload(w: ByteWriter, e: EventBody): void {
  switch (e.kind) {
    case 'view': {
      const p = e.payload;
      w.u8(p.members.length);
      for (const m of p.members) w.u16(m.node).u64(m.incarnation);
      w.u8(p.quorate ? 1 : 0);
      writeEnum(w, QUORUM_REASONS, p.reason);
      writeText(w, p.explanation);
      w.u16(p.change.node).u64(p.change.incarnation);
      writeEnum(w, VIEW_CHANGE_KINDS, p.change.kind);
      writeText(w, p.change.cause);
      return;
    }
    case 'quorum':
      w.u8(e.payload.quorate ? 1 : 0);
      writeEnum(w, QUORUM_REASONS, e.payload.reason);
      writeText(w, e.payload.explanation);
      return;
    case 'node': {
      const p = e.payload;
      w.u16(p.node).u64(p.incarnation);
      writeEnum(w, NODE_STATUSES, p.from);
      writeEnum(w, NODE_STATUSES, p.to);
      writeText(w, p.cause);
      return;
    }
    case 'group': {
      const p = e.payload;
      writeName(w, p.group);
      w.u64(p.groupViewId).u8(p.members.length);
      for (const m of p.members) w.u16(m.node).u64(m.incarnation).u8(m.level);
      w.u16(p.change.node).u64(p.change.incarnation);
      writeEnum(w, GROUP_CHANGE_KINDS, p.change.kind);
      w.u32(p.prevSeq);
      return;
    }
    case 'barrier':
      writeName(w, e.payload.group);
      writeName(w, e.payload.name);
      w.u64(e.payload.groupViewId);
      writeEnum(w, BARRIER_OUTCOMES, e.payload.outcome);
      return;
    case 'fence':
      writeFencePayload(w, e.payload);
      return;
    case 'recovery':
      writeRecoveryEvent(w, e.payload);
      return;
    default:
      assertNever(e, 'event kind');
  }
}

function writeFencePayload(w: ByteWriter, p: FencePayload): void {
  w.u16(p.node).u64(p.incarnation);
  writeEnum(w, FENCE_EVENT_WHATS, p.what);
  switch (p.what) {
    case 'requested':
      writeShortText(w, p.reason);
      return;
    case 'attempt':
      writeFenceAttempt(w, p.attempt);
      return;
    case 'fenced':
      writeFenceProof(w, p.proof);
      return;
    case 'unfenced':
      writeFenceUnfence(w, p.unfence);
      return;
    default:
      assertNever(p, 'fence event');
  }
}

function readFencePayload(r: ByteReader): FencePayload {
  const key = { node: readNodeId(r, 'fenced node'), incarnation: readIncarnation(r, 'fenced incarnation') };
  const what = readEnum(r, FENCE_EVENT_WHATS, 'fence event kind');
  switch (what) {
    case 'requested':
      return { ...key, what, reason: readShortText(r, FENCE_REASON_BYTES_MAX, 'fence reason') };
    case 'attempt':
      return { ...key, what, attempt: readFenceAttempt(r) };
    case 'fenced':
      return { ...key, what, proof: readFenceProof(r) };
    case 'unfenced':
      return { ...key, what, unfence: readFenceUnfence(r) };
    default:
      return assertNever(what, 'fence event kind');
  }
}

/** Encodes one event (header and payload). */
export function encodeEvent(w: ByteWriter, e: MembershipEvent): void {
  w.u64(e.seq).u64(e.viewId).u64(e.index);
  writeEnum(w, KINDS, e.kind);
  writePayload(w, e);
}

function readMembers(r: ByteReader): ViewMember[] {
  const count = r.u8('member count');
  if (count > CLUSTER_NODES_MAX)
    throw new DecodeError('DECODE_TOO_LARGE', `a view of ${count} members; at most ${CLUSTER_NODES_MAX}`);
  const members: ViewMember[] = [];
  for (let i = 0; i < count; i++) {
    const node = readNodeId(r, 'member');
    const prev = members[i - 1];
    if (prev !== undefined && node <= prev.node)
      throw new DecodeError('DECODE_INVALID', 'view members are not strictly ascending');
    members.push({ node, incarnation: readIncarnation(r, 'member incarnation') });
  }
  return members;
}

function readViewPayload(r: ByteReader): ViewPayload {
  const members = readMembers(r);
  const quorate = readBool(r, 'quorate');
  const reason = readEnum(r, QUORUM_REASONS, 'quorum reason');
  const explanation = readText(r, EVENT_EXPLANATION_BYTES_MAX, 'explanation');
  const node = readNodeId(r, 'changed node');
  const incarnation = readIncarnation(r, 'changed incarnation');
  const kind = readEnum(r, VIEW_CHANGE_KINDS, 'change kind');
  const cause = readText(r, EVENT_CAUSE_BYTES_MAX, 'cause');
  return { members, quorate, reason, explanation, change: { node, incarnation, kind, cause } };
}

function readNodePayload(r: ByteReader): NodePayload {
  const node = readNodeId(r, 'node');
  const incarnation = r.u64('incarnation');
  const from = readEnum(r, NODE_STATUSES, 'from status');
  const to = readEnum(r, NODE_STATUSES, 'to status');
  return { node, incarnation, from, to, cause: readText(r, EVENT_CAUSE_BYTES_MAX, 'cause') };
}

function readGroupPayload(r: ByteReader): GroupViewPayload {
  const group = readName(r, GROUP_NAME_BYTES_MAX, 'group name');
  const groupViewId = r.u64('group view id');
  const count = r.u8('group member count');
  if (count > CLUSTER_NODES_MAX)
    throw new DecodeError('DECODE_TOO_LARGE', `a group view of ${count} members; at most ${CLUSTER_NODES_MAX}`);
  const members: GroupMember[] = [];
  for (let i = 0; i < count; i++) {
    const node = readNodeId(r, 'group member');
    const prev = members[i - 1];
    if (prev !== undefined && node <= prev.node)
      throw new DecodeError('DECODE_INVALID', 'group view members are not strictly ascending');
    members.push({
      node,
      incarnation: readIncarnation(r, 'group member incarnation'),
      level: r.u8('group member level'),
    });
  }
  const node = readNodeId(r, 'changed node');
  const incarnation = readIncarnation(r, 'changed incarnation');
  const kind = readEnum(r, GROUP_CHANGE_KINDS, 'group change kind');
  return { group, groupViewId, members, change: { node, incarnation, kind }, prevSeq: r.u32('previous view seq') };
}

/** Decodes one event; raises only `DecodeError`. */
export function decodeEvent(r: ByteReader): MembershipEvent {
  const seq = r.u64('event seq');
  if (seq === 0) throw new DecodeError('DECODE_RANGE', 'event seq 0; seqs start at 1');
  const header = { seq, viewId: makeViewId(r.u64('event view id')), index: logIndex(r.u64('event index')) };
  const kind = readEnum(r, KINDS, 'event kind');
  switch (kind) {
    case 'view':
      return { ...header, kind, payload: readViewPayload(r) };
    case 'quorum': {
      const quorate = readBool(r, 'quorate');
      const reason = readEnum(r, QUORUM_REASONS, 'quorum reason');
      return {
        ...header,
        kind,
        payload: { quorate, reason, explanation: readText(r, EVENT_EXPLANATION_BYTES_MAX, 'explanation') },
      };
    }
    case 'node':
      return { ...header, kind, payload: readNodePayload(r) };
    case 'group':
      return { ...header, kind, payload: readGroupPayload(r) };
    case 'barrier': {
      const group = readName(r, GROUP_NAME_BYTES_MAX, 'group name');
      const name = readName(r, BARRIER_NAME_BYTES_MAX, 'barrier name');
      const groupViewId = r.u64('group view id');
      return {
        ...header,
        kind,
        payload: { group, name, groupViewId, outcome: readEnum(r, BARRIER_OUTCOMES, 'barrier outcome') },
      };
    }
    case 'fence':
      return { ...header, kind, payload: readFencePayload(r) };
    case 'recovery':
      return { ...header, kind, payload: readRecoveryEvent(r) };
    default:
      return assertNever(kind, 'event kind');
  }
}

// ------------------------------------------------------------------------------------------------
// The retained window

interface Retained {
  readonly event: MembershipEvent;
  readonly bytes: number;
  readonly digest: Digest64;
}

function retain(event: MembershipEvent): Retained {
  const w = new ByteWriter(256, MEMBERSHIP_EVENT_BYTES_MAX);
  encodeEvent(w, event);
  const encoded = w.finish();
  return { event, bytes: encoded.length, digest: new Fnv64().bytes(encoded).digest() };
}

/**
 * The bounded window of the newest events, numbered from a counter. Appending evicts the oldest
 * events once the count or the encoded bytes would pass their limits; `nextSeq` keeps counting,
 * so numbering never restarts. Owned by the state machine, which is its only writer.
 */
export class EventLog {
  /** Oldest first; `items[i].event.seq === this.oldest + i`. */
  private items: (Retained | undefined)[] = [];
  private head = 0;
  private totalBytes = 0;
  private nextSeqValue = 1;
  private readonly digest = new MultisetHash64();

  /** The seq the next event will get. */
  get nextSeq(): number {
    return this.nextSeqValue;
  }

  /** Oldest retained seq (equals `nextSeq` when nothing is retained). */
  get oldestSeq(): number {
    return this.nextSeqValue - this.length;
  }

  /** Events retained. */
  get length(): number {
    return this.items.length - this.head;
  }

  /** Encoded bytes of the retained events. */
  get bytes(): number {
    return this.totalBytes;
  }

  /** Order-independent digest of the retained events (each digest covers its seq). */
  digestValue(): Digest64 {
    return this.digest.value();
  }

  /** Numbers `body` and retains it, evicting the oldest as the limits require. Returns the event. */
  append(body: EventBody, viewId: ViewId, index: LogIndex): MembershipEvent {
    const event = { ...body, seq: this.nextSeqValue, viewId, index } as MembershipEvent;
    this.push(retain(event));
    this.nextSeqValue++;
    return event;
  }

  private push(item: Retained): void {
    this.items.push(item);
    this.totalBytes += item.bytes;
    this.digest.add(item.digest);
    while (this.length > MEMBERSHIP_EVENTS_RETAINED_MAX || this.totalBytes > MEMBERSHIP_EVENTS_RETAINED_BYTES_MAX)
      this.evictOldest();
    // Compact the backing array now and then so evicted slots do not pile up.
    if (this.head > MEMBERSHIP_EVENTS_RETAINED_MAX) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  private evictOldest(): void {
    const old = this.items[this.head];
    assert(old !== undefined && this.length > 1, 'the newest event always fits the retention limits');
    this.items[this.head] = undefined;
    this.head++;
    this.totalBytes -= old.bytes;
    this.digest.remove(old.digest);
  }

  /**
   * Up to `limit` events from `seq` on (clamped to 1..MEMBERSHIP_EVENTS_READ_MAX). A `seq` at or
   * beyond `nextSeq` returns no events with `next = seq` (the reader is up to date, or ahead of
   * this node's applied state: it waits). Below the oldest retained seq: `GAP`.
   */
  eventsFrom(seq: number, limit: number): Result<EventPage, MembershipEventError> {
    if (!Number.isSafeInteger(seq) || seq < 1) {
      return err(
        new MembershipEventError(
          'BAD_SEQ',
          `event seq ${seq} is not a positive integer; event seqs start at 1`,
          this.oldestSeq,
        ),
      );
    }
    if (seq < this.oldestSeq) {
      return err(
        new MembershipEventError(
          'GAP',
          `events ${seq} to ${this.oldestSeq - 1} were compacted away; the oldest available is ${this.oldestSeq}: read the current membership, then follow from ${this.oldestSeq}`,
          this.oldestSeq,
        ),
      );
    }
    const max = Math.max(1, Math.min(Math.floor(limit) || 1, MEMBERSHIP_EVENTS_READ_MAX));
    const events: MembershipEvent[] = [];
    for (let s = seq; s < this.nextSeqValue && events.length < max; s++) {
      const item = this.items[this.head + (s - this.oldestSeq)];
      assert(item !== undefined && item.event.seq === s, 'retained events are contiguous');
      events.push(item.event);
    }
    return ok({ events, next: seq + events.length });
  }

  /** Writes the window (next seq, count, events) for a snapshot. */
  encode(w: ByteWriter): void {
    w.u64(this.nextSeqValue).u32(this.length);
    for (let i = this.head; i < this.items.length; i++) encodeEvent(w, defined(this.items[i], 'retained event').event);
  }

  /** Reads a window written by `encode`, checking numbering and limits; raises only `DecodeError`. */
  static decode(r: ByteReader): EventLog {
    const log = new EventLog();
    const nextSeq = r.u64('next event seq');
    const count = r.u32('event count');
    if (nextSeq < 1 || count > MEMBERSHIP_EVENTS_RETAINED_MAX || count > nextSeq - 1) {
      throw new DecodeError(
        'SNAPSHOT_INVALID',
        `membership snapshot holds ${count} events before seq ${nextSeq}, which is impossible or past MEMBERSHIP_EVENTS_RETAINED_MAX`,
      );
    }
    log.nextSeqValue = nextSeq - count;
    for (let i = 0; i < count; i++) {
      const event = decodeEvent(r);
      if (event.seq !== log.nextSeqValue)
        throw new DecodeError(
          'SNAPSHOT_INVALID',
          `membership snapshot events are not contiguous (seq ${event.seq} where ${log.nextSeqValue} was expected)`,
        );
      const item = retain(event);
      log.items.push(item);
      log.totalBytes += item.bytes;
      log.digest.add(item.digest);
      log.nextSeqValue++;
    }
    if (log.totalBytes > MEMBERSHIP_EVENTS_RETAINED_BYTES_MAX)
      throw new DecodeError(
        'SNAPSHOT_INVALID',
        'membership snapshot events exceed MEMBERSHIP_EVENTS_RETAINED_BYTES_MAX',
      );
    return log;
  }
}
