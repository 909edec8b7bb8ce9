/**
 * Ordered, exactly-once delivery of DLM messages between two node incarnations over the lossy
 * peer transport (the role of Linux DLM's "midcomms": sequence numbers and acks per node pair).
 * Pure and tick-driven: no clocks (every input carries `nowMs`), no randomness, no I/O; frames
 * leave through the `transmit` callback and messages arrive through `deliver`.
 *
 * Rules:
 * - A link is one (sender incarnation, receiver incarnation) pair, its **epoch**. Frames name
 *   both (`from`, `to`); a frame whose `to` is not this process's incarnation, or whose `from` is
 *   not the peer incarnation the view connected (older or newer), is dropped as stale. Only the
 *   view moves a link to a new epoch (`connect` with another incarnation): everything queued or in
 *   flight for the old one is dropped and counted, and sequence numbers restart at 1 both ways.
 *   So no message of one epoch is ever delivered in another.
 * - Data frames carry consecutive sequence numbers from 1 and a batch of messages. The receiver
 *   delivers frame `delivered + 1` and then any held frames that follow it; a frame at or below
 *   `delivered` (or already held) is a duplicate and dropped; a frame further ahead is held in a
 *   hold-back buffer of at most `windowFrames` frames (a frame beyond that is dropped: it will be
 *   resent). Hence each message is delivered at most once, in send order, with no gap.
 * - Acks are cumulative (`ack` = the highest sequence delivered in order) and ride on every data
 *   frame; when none went within `ackDelayMs` of a data frame arriving, a bare ack frame goes.
 *   Every data frame, duplicates included, makes an ack owed, so a lost ack is answered again.
 * - Retransmission is selective by timer: each unacknowledged frame is resent, alone, once it has
 *   gone `retransmitMs` without an ack; there is no backoff (the window bounds the cost). A
 *   `transmit` that returns false (the transport's lane is full) counts as a loss.
 *
 * Bounds (checked against `LINK_*_MAX` in `src/constants.ts`): per peer, at most `windowFrames`
 * unacknowledged frames of at most `batchMessages` messages, `queueMessages` queued messages
 * (then `send` refuses: backpressure) and `windowFrames` held frames; at most `CLUSTER_NODES_MAX`
 * links. Nothing grows under loss: a dead peer costs one window of resends per `retransmitMs`
 * until the view disconnects it.
 *
 * Caveat: a peer that `disconnect` dropped must come back as a newer incarnation (the view
 * guarantees it: a node that leaves rejoins as a new incarnation). Reconnecting the same one
 * would restart our sequence numbers while the peer's side of the old link goes on.
 */
import { assert, assertInt, assertNever } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import { FieldReader, invalidField, unionValue } from '../transport/message-fields.js';
import {
  CLUSTER_NODES_MAX,
  LINK_BATCH_MESSAGES_MAX,
  LINK_QUEUE_MESSAGES_MAX,
  LINK_WINDOW_FRAMES_MAX,
} from '../constants.js';

/** Largest incarnation or sequence number a frame may carry. */
const FRAME_INT_MAX = Number.MAX_SAFE_INTEGER;

/** How a `ReliableLinks` behaves; `linkOptions` fills in the defaults. */
export interface LinkOptions {
  /** This node. */
  readonly self: NodeId;
  /** This process's incarnation (every frame names it as `from`; frames to another are stale). */
  readonly selfIncarnation: number;
  /** A frame unacknowledged this long is resent, ms. */
  readonly retransmitMs: number;
  /** A bare ack goes when no data frame carried one within this long of a data frame arriving, ms. */
  readonly ackDelayMs: number;
  /** Unacknowledged frames in flight per peer; also the receiver's hold-back bound. */
  readonly windowFrames: number;
  /** Most messages packed into one frame. */
  readonly batchMessages: number;
  /** Messages queued per peer beyond the window before `send` refuses (backpressure). */
  readonly queueMessages: number;
  /**
   * Test only: a deliberately broken variant that delivers duplicate frames again, so the tests'
   * exactly-once checker can prove it catches the bug. Never set outside a test.
   */
  readonly canary?: 'deliver-duplicates';
}

/** The suggested settings (bulk lane, DLM bursts of small messages, a LAN). */
export const LINK_DEFAULTS = {
  retransmitMs: 50,
  ackDelayMs: 5,
  windowFrames: 64,
  batchMessages: 64,
  queueMessages: 4096,
} as const satisfies Omit<LinkOptions, 'self' | 'selfIncarnation' | 'canary'>;

/** Options for `self` running as `selfIncarnation`: the defaults, with `overrides` applied. */
export function linkOptions(
  self: NodeId,
  selfIncarnation: number,
  overrides: Partial<Omit<LinkOptions, 'self' | 'selfIncarnation'>> = {},
): LinkOptions {
  return { ...LINK_DEFAULTS, ...overrides, self, selfIncarnation };
}

/** Asserts that `opts` is within the bounds (a bad config is a programmer error). */
export function validateLinkOptions(opts: LinkOptions): void {
  assertInt(opts.selfIncarnation, 1, FRAME_INT_MAX, 'link selfIncarnation');
  assertInt(opts.retransmitMs, 1, 3_600_000, 'link retransmitMs');
  assertInt(opts.ackDelayMs, 0, opts.retransmitMs, 'link ackDelayMs (at most retransmitMs)');
  assertInt(opts.windowFrames, 1, LINK_WINDOW_FRAMES_MAX, 'link windowFrames');
  assertInt(opts.batchMessages, 1, LINK_BATCH_MESSAGES_MAX, 'link batchMessages');
  assertInt(opts.queueMessages, 1, LINK_QUEUE_MESSAGES_MAX, 'link queueMessages');
}

/**
 * One frame on the wire. `from` is the sender's incarnation, `to` the receiver's (the epoch);
 * `ack` is the highest sequence the sender delivered in order from the receiver in this epoch.
 */
export type LinkFrame<M> =
  | {
      readonly kind: 'data';
      readonly from: number;
      readonly to: number;
      readonly seq: number;
      readonly ack: number;
      readonly messages: readonly M[];
    }
  | { readonly kind: 'ack'; readonly from: number; readonly to: number; readonly ack: number };

/** Counters since construction (every link together). */
export interface LinkStats {
  /** Data frames transmitted for the first time (refused ones included). */
  readonly framesSent: number;
  /** Data frames transmitted again after `retransmitMs` without an ack. */
  readonly framesResent: number;
  /** Bare ack frames transmitted. */
  readonly acksSent: number;
  /** Frames (data or ack) that `transmit` refused: treated as lost. */
  readonly transmitRefused: number;
  /** Data frames received that were already delivered or held. */
  readonly duplicatesDropped: number;
  /** Frames of another epoch, or from a peer with no link. */
  readonly staleDropped: number;
  /** Frames that broke the protocol (an ack of a sequence never sent) or arrived beyond the window. */
  readonly framesRejected: number;
  /** Out-of-order data frames put in the hold-back buffer. */
  readonly framesHeld: number;
  /** Messages handed to `deliver`. */
  readonly messagesDelivered: number;
  /** Messages queued or in flight that a reset (`connect` to a new incarnation) or `disconnect` dropped. */
  readonly messagesDroppedByReset: number;
}

type Counters = { -readonly [K in keyof LinkStats]: number };

/** An unacknowledged data frame. */
interface InFlight<M> {
  readonly seq: number;
  readonly messages: readonly M[];
  sentMs: number;
}

/** One epoch with one peer: the sending and the receiving half. */
interface Link<M> {
  readonly peer: NodeId;
  readonly incarnation: number;
  /** Sequence of the next new frame. */
  nextSeq: number;
  /** Highest sequence the peer acknowledged. */
  acked: number;
  /** Messages not yet framed, oldest first (at most `queueMessages`). */
  readonly queue: M[];
  /** Unacknowledged frames, ascending sequence (at most `windowFrames`). */
  readonly inflight: InFlight<M>[];
  inflightMessages: number;
  /** Highest sequence delivered in order. */
  delivered: number;
  /** Out-of-order frames by sequence, all in (delivered + 1, delivered + windowFrames]. */
  readonly held: Map<number, readonly M[]>;
  /** When a bare ack must go unless a data frame carries one first; null: none owed. */
  ackDueMs: number | null;
}

function newLink<M>(peer: NodeId, incarnation: number): Link<M> {
  return {
    peer,
    incarnation,
    nextSeq: 1,
    acked: 0,
    queue: [],
    inflight: [],
    inflightMessages: 0,
    delivered: 0,
    held: new Map(),
    ackDueMs: null,
  };
}

/**
 * One reliable link per connected peer. The owner (the DLM service) calls `connect`/`disconnect`
 * from the cluster view, `send` and then `flush` from its event-loop turn, `onFrame` for each
 * frame its channel receives and `onTick` on every tick. All calls are synchronous; `deliver`
 * may call `send` (replies are queued and go with the link's next flush).
 */
export class ReliableLinks<M> {
  private readonly links = new Map<NodeId, Link<M>>();
  private readonly counters: Counters = {
    framesSent: 0,
    framesResent: 0,
    acksSent: 0,
    transmitRefused: 0,
    duplicatesDropped: 0,
    staleDropped: 0,
    framesRejected: 0,
    framesHeld: 0,
    messagesDelivered: 0,
    messagesDroppedByReset: 0,
  };

  constructor(
    private readonly opts: LinkOptions,
    private readonly transmit: (to: NodeId, frame: LinkFrame<M>) => boolean,
  ) {
    validateLinkOptions(opts);
  }

  /**
   * The peer's current incarnation is `incarnation` (from the cluster view): opens the link, or
   * resets it when the incarnation changed (everything queued or in flight for the older
   * incarnation is dropped and counted; held frames are discarded). The same incarnation again
   * changes nothing.
   */
  connect(peer: NodeId, incarnation: number): void {
    assert(peer !== this.opts.self, 'a node has no link to itself');
    assertInt(incarnation, 1, FRAME_INT_MAX, 'peer incarnation');
    const existing = this.links.get(peer);
    if (existing?.incarnation === incarnation) return;
    if (existing === undefined) assert(this.links.size < CLUSTER_NODES_MAX, 'links are bounded by the cluster size');
    else this.counters.messagesDroppedByReset += pendingOf(existing);
    this.links.set(peer, newLink(peer, incarnation));
  }

  /** The peer left: drop the link and everything queued for it (counted as dropped by reset). */
  disconnect(peer: NodeId): void {
    const existing = this.links.get(peer);
    if (existing === undefined) return;
    this.counters.messagesDroppedByReset += pendingOf(existing);
    this.links.delete(peer);
  }

  /** The incarnation of `peer` the link is connected to, or null when none. */
  incarnationOf(peer: NodeId): number | null {
    return this.links.get(peer)?.incarnation ?? null;
  }

  /**
   * Queues `m` for in-order exactly-once delivery to the connected incarnation of `to`; false
   * (nothing queued) when `to` is not connected or its queue holds `queueMessages`. Nothing is
   * transmitted until `flush`, `onTick` or `onFrame` (so a burst of sends packs into frames).
   */
  send(to: NodeId, m: M): boolean {
    const link = this.links.get(to);
    if (link === undefined || link.queue.length >= this.opts.queueMessages) return false;
    link.queue.push(m);
    return true;
  }

  /** Transmits what can go now: new frames while the window is open, then acks that are due. */
  flush(nowMs: number): void {
    for (const link of this.links.values()) this.flushLink(link, nowMs);
  }

  /**
   * A frame from `from`: takes its ack, then delivers new in-order messages to `deliver` exactly
   * once, in order. Frames of another epoch, duplicates and old frames are dropped; frames ahead
   * of the next expected are held (bounded by `windowFrames`) or dropped (they will be resent).
   * Then flushes the link (the ack may have opened the window; an ack may be due).
   */
  onFrame(from: NodeId, frame: LinkFrame<M>, nowMs: number, deliver: (m: M) => void): void {
    const link = this.links.get(from);
    if (link === undefined || frame.to !== this.opts.selfIncarnation || frame.from !== link.incarnation) {
      this.counters.staleDropped++;
      return;
    }
    if (frame.ack >= link.nextSeq) {
      // An ack of a frame this epoch never sent: a broken peer. Take nothing from the frame.
      this.counters.framesRejected++;
      return;
    }
    this.applyAck(link, frame.ack);
    switch (frame.kind) {
      case 'ack':
        break;
      case 'data':
        this.receiveData(link, frame.seq, frame.messages, nowMs, deliver);
        break;
      default:
        assertNever(frame, 'link frame');
    }
    // `deliver` may have reset or dropped the link: flush only the one the frame belonged to.
    if (this.links.get(from) === link) this.flushLink(link, nowMs);
  }

  /** Retransmits frames unacknowledged for `retransmitMs`, then flushes (new frames, due acks). */
  onTick(nowMs: number): void {
    for (const link of this.links.values()) {
      for (const f of link.inflight) {
        if (nowMs - f.sentMs < this.opts.retransmitMs) continue;
        this.counters.framesResent++;
        this.transmitData(link, f, nowMs);
      }
      this.flushLink(link, nowMs);
    }
  }

  /** Messages queued or in flight to `to` (0 when not connected). */
  pending(to: NodeId): number {
    const link = this.links.get(to);
    return link === undefined ? 0 : pendingOf(link);
  }

  /** A copy of the counters. */
  stats(): LinkStats {
    return { ...this.counters };
  }

  private flushLink(link: Link<M>, nowMs: number): void {
    while (link.inflight.length < this.opts.windowFrames && link.queue.length > 0) {
      const messages = link.queue.splice(0, this.opts.batchMessages);
      const f: InFlight<M> = { seq: link.nextSeq, messages, sentMs: nowMs };
      link.nextSeq++;
      link.inflight.push(f);
      link.inflightMessages += messages.length;
      this.counters.framesSent++;
      this.transmitData(link, f, nowMs);
    }
    if (link.ackDueMs !== null && nowMs >= link.ackDueMs) {
      const frame: LinkFrame<M> = {
        kind: 'ack',
        from: this.opts.selfIncarnation,
        to: link.incarnation,
        ack: link.delivered,
      };
      this.counters.acksSent++;
      if (this.transmit(link.peer, frame)) link.ackDueMs = null;
      else this.counters.transmitRefused++;
    }
  }

  private transmitData(link: Link<M>, f: InFlight<M>, nowMs: number): void {
    const frame: LinkFrame<M> = {
      kind: 'data',
      from: this.opts.selfIncarnation,
      to: link.incarnation,
      seq: f.seq,
      ack: link.delivered,
      messages: f.messages,
    };
    f.sentMs = nowMs;
    if (this.transmit(link.peer, frame)) link.ackDueMs = null;
    else this.counters.transmitRefused++;
  }

  private applyAck(link: Link<M>, ack: number): void {
    if (ack <= link.acked) return;
    link.acked = ack;
    let done = 0;
    for (const f of link.inflight) {
      if (f.seq > ack) break;
      link.inflightMessages -= f.messages.length;
      done++;
    }
    link.inflight.splice(0, done);
    assert(link.inflight.length === 0 || (link.inflight[0]?.seq ?? 0) === ack + 1, 'in-flight frames follow the ack');
  }

  private receiveData(
    link: Link<M>,
    seq: number,
    messages: readonly M[],
    nowMs: number,
    deliver: (m: M) => void,
  ): void {
    link.ackDueMs ??= nowMs + this.opts.ackDelayMs;
    if (seq <= link.delivered || link.held.has(seq)) {
      this.counters.duplicatesDropped++;
      if (this.opts.canary === 'deliver-duplicates') this.deliverAll(link, messages, deliver);
      return;
    }
    if (seq > link.delivered + this.opts.windowFrames) {
      this.counters.framesRejected++;
      return;
    }
    if (seq > link.delivered + 1) {
      link.held.set(seq, messages);
      this.counters.framesHeld++;
      assert(link.held.size < this.opts.windowFrames, 'the hold-back buffer is bounded by the window');
      return;
    }
    let next: readonly M[] | undefined = messages;
    while (next !== undefined) {
      link.delivered++;
      if (!this.deliverAll(link, next, deliver)) return;
      next = link.held.get(link.delivered + 1);
      link.held.delete(link.delivered + 1);
    }
  }

  /** Hands `messages` to `deliver`; false when `deliver` reset or dropped the link on the way. */
  private deliverAll(link: Link<M>, messages: readonly M[], deliver: (m: M) => void): boolean {
    for (const m of messages) {
      this.counters.messagesDelivered++;
      deliver(m);
      if (this.links.get(link.peer) !== link) return false;
    }
    return true;
  }
}

function pendingOf<M>(link: Link<M>): number {
  return link.queue.length + link.inflightMessages;
}

/**
 * A strict validator of decoded `LinkFrame`s (for `msgpackCodec`): incarnations and sequences
 * are safe integers (incarnations and `seq` from 1, `ack` from 0), a data frame carries 1 to
 * `batchMessagesMax` messages, each checked by `validateMessage`. Throws `DecodeError` only
 * (provided `validateMessage` does).
 */
export function linkFrameValidator<M>(
  validateMessage: (value: unknown, path: string) => M,
  batchMessagesMax: number = LINK_BATCH_MESSAGES_MAX,
): (value: unknown) => LinkFrame<M> {
  assertInt(batchMessagesMax, 1, LINK_BATCH_MESSAGES_MAX, 'link frame batchMessagesMax');
  const readData = (r: FieldReader): LinkFrame<M> => {
    const from = r.int('from', 1, FRAME_INT_MAX);
    const to = r.int('to', 1, FRAME_INT_MAX);
    const seq = r.int('seq', 1, FRAME_INT_MAX);
    const ack = r.int('ack', 0, FRAME_INT_MAX);
    const messages = r.array('messages', batchMessagesMax, validateMessage);
    if (messages.length === 0) throw invalidField(`${r.path}.messages`, 'at least one message', r.raw('messages'));
    return { kind: 'data', from, to, seq, ack, messages };
  };
  const readAck = (r: FieldReader): LinkFrame<M> => ({
    kind: 'ack',
    from: r.int('from', 1, FRAME_INT_MAX),
    to: r.int('to', 1, FRAME_INT_MAX),
    ack: r.int('ack', 0, FRAME_INT_MAX),
  });
  return (value) => unionValue<LinkFrame<M>>(value, 'LinkFrame', 'kind', { data: readData, ack: readAck });
}
