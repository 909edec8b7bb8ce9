/**
 * An in-memory peer network for several nodes in one process (embedded mode, tests): one
 * `MemoryNetwork`, one `MemoryTransport` endpoint per node. Pure: the caller injects `schedule`
 * (embedded mode passes `setImmediate`), so nothing here touches a timer.
 *
 * Behaviour matches the TCP transport where protocols can tell:
 * - Every message goes through the real codec: encoded at `send` (so later mutation of the
 *   message by the sender cannot leak) and decoded at delivery; a message the codec refuses to
 *   decode is dropped and counted, as a TCP link drops a bad frame.
 * - Delivery is asynchronous (one `schedule`d drain), never inside `send`, and handlers run one
 *   at a time.
 * - Lanes: each lane has its own delivery queue, FIFO within the lane; a drain always takes the
 *   next control delivery (messages and peer events) before any bulk one, so control traffic
 *   never waits behind bulk traffic queued before it. Nothing orders one lane against another.
 * - Bounded per directed link and lane (messages and bytes in flight, the TCP queue bounds by
 *   default); beyond them `send` returns false and drops (backpressure visible to the caller, as
 *   a full TCP queue), and a full bulk lane never refuses a control message.
 * - A message to a peer that is not attached (stopped, or its link cut) is lost, like a TCP
 *   link's queue on a connection that breaks; `onPeerUp`/`onPeerDown` tell attached endpoints
 *   when a peer attaches, detaches, or a link is cut or restored.
 */
import { assert } from '../lib/assert.js';
import { DecodeError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import {
  PEER_BULK_QUEUE_BYTES_MAX,
  PEER_BULK_QUEUE_MESSAGES_MAX,
  PEER_CONTROL_QUEUE_BYTES_MAX,
  PEER_CONTROL_QUEUE_MESSAGES_MAX,
} from '../constants.js';
import { DEFAULT_LANE, LANES, type Codec, type Lane, type Transport, type TransportHandlers } from './transport.js';

/** In-flight bounds of one lane of one directed link. */
export interface MemoryLaneLimits {
  readonly messagesMax: number;
  readonly bytesMax: number;
}

const DEFAULT_LANE_LIMITS: Readonly<Record<Lane, MemoryLaneLimits>> = {
  control: { messagesMax: PEER_CONTROL_QUEUE_MESSAGES_MAX, bytesMax: PEER_CONTROL_QUEUE_BYTES_MAX },
  bulk: { messagesMax: PEER_BULK_QUEUE_MESSAGES_MAX, bytesMax: PEER_BULK_QUEUE_BYTES_MAX },
};

/** Options of `MemoryNetwork`. */
export interface MemoryNetworkOptions<M> {
  readonly codec: Codec<M>;
  /** Runs `fn` later, after the current task, in FIFO order (e.g. `setImmediate`). */
  readonly schedule: (fn: () => void) => void;
  /** Bounds per lane of each directed link (default: the TCP queue bounds, `PEER_*_QUEUE_*`). */
  readonly laneLimits?: Partial<Record<Lane, Partial<MemoryLaneLimits>>>;
  /** Deliveries per drain before yielding to the caller's event loop (default 1024). */
  readonly drainBatchMax?: number;
}

/** Counters for tests. */
export interface MemoryNetworkStats {
  sent: number;
  delivered: number;
  /** Refused by `send` (link full, closed endpoint, unknown peer). */
  refused: number;
  /** Lost: the destination was not attached or the link was cut at delivery. */
  lost: number;
  /** Dropped at delivery because the codec refused the bytes. */
  undecodable: number;
}

/** One lane of one directed link, as the embedded `nodes` method shows it. */
export interface MemoryLaneStatus {
  readonly state: 'open' | 'closed';
  readonly queuedMessages: number;
  readonly queuedBytes: number;
  readonly refusedMessages: number;
  readonly inboundConnected: boolean;
}

/** The state of one directed link (top level: the control lane; `bulk`: the bulk lane), as TCP reports it. */
export interface MemoryLinkStatus extends MemoryLaneStatus {
  readonly peer: NodeId;
  readonly bulk: MemoryLaneStatus;
}

type Delivery =
  | {
      readonly kind: 'message';
      readonly from: NodeId;
      readonly to: NodeId;
      readonly bytes: Uint8Array;
      readonly lane: Lane;
      readonly epoch: number;
    }
  | { readonly kind: 'up' | 'down'; readonly to: NodeId; readonly peer: NodeId; readonly epoch: number };

function linkKey(from: NodeId, to: NodeId): string {
  return `${from}>${to}`;
}

function laneKey(from: NodeId, to: NodeId, lane: Lane): string {
  return `${from}>${to}/${lane}`;
}

/** A FIFO of deliveries that reuses its array (head index, compacted when empty). */
class DeliveryQueue {
  private items: (Delivery | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(d: Delivery): void {
    this.items.push(d);
  }

  shift(): Delivery | undefined {
    if (this.head >= this.items.length) return undefined;
    const d = this.items[this.head];
    this.items[this.head] = undefined;
    this.head++;
    if (this.head === this.items.length) {
      this.items = [];
      this.head = 0;
    }
    return d;
  }
}

/** The shared medium. Endpoints attach with `endpoint(id, peers)` and detach with `close()`. */
export class MemoryNetwork<M> {
  private readonly endpoints = new Map<NodeId, MemoryTransport<M>>();
  /** Control deliveries (messages and peer events), then bulk: a drain empties control first. */
  private readonly queues: Readonly<Record<Lane, DeliveryQueue>> = {
    control: new DeliveryQueue(),
    bulk: new DeliveryQueue(),
  };
  private drainScheduled = false;
  private epochs = 0;
  /** In flight per directed link and lane, by `laneKey`. */
  private readonly inFlight = new Map<string, { messages: number; bytes: number; refused: number }>();
  private readonly cut = new Set<string>();
  private readonly laneLimits: Readonly<Record<Lane, MemoryLaneLimits>>;
  private readonly drainBatchMax: number;
  readonly stats: MemoryNetworkStats = { sent: 0, delivered: 0, refused: 0, lost: 0, undecodable: 0 };

  constructor(private readonly options: MemoryNetworkOptions<M>) {
    this.laneLimits = {
      control: { ...DEFAULT_LANE_LIMITS.control, ...options.laneLimits?.control },
      bulk: { ...DEFAULT_LANE_LIMITS.bulk, ...options.laneLimits?.bulk },
    };
    this.drainBatchMax = options.drainBatchMax ?? 1024;
    for (const lane of LANES) {
      const { messagesMax, bytesMax } = this.laneLimits[lane];
      assert(Number.isSafeInteger(messagesMax) && messagesMax >= 1, `a ${lane} lane holds at least one message`);
      assert(Number.isSafeInteger(bytesMax) && bytesMax >= 1, `a ${lane} lane holds at least one byte`);
    }
    assert(
      Number.isSafeInteger(this.drainBatchMax) && this.drainBatchMax >= 1,
      'a drain delivers at least one message',
    );
  }

  /**
   * Attaches node `id`, which talks to `peers`. One endpoint per id at a time: a restarted node
   * attaches again after its previous endpoint was closed.
   */
  endpoint(id: NodeId, peers: readonly NodeId[]): MemoryTransport<M> {
    assert(!this.endpoints.has(id), `node ${id} is already attached to the memory network`);
    assert(!peers.includes(id), 'a node is not its own peer');
    const t = new MemoryTransport<M>(this, id, peers, ++this.epochs);
    this.endpoints.set(id, t);
    for (const p of peers) this.tellBoth(id, p, 'up');
    return t;
  }

  /** Cuts (`connected` false) or restores the link between `a` and `b`, both directions. */
  setLink(a: NodeId, b: NodeId, connected: boolean): void {
    assert(a !== b, 'a link joins two different nodes');
    const key = a < b ? linkKey(a, b) : linkKey(b, a);
    if (connected === !this.cut.has(key)) return;
    if (connected) this.cut.delete(key);
    else this.cut.add(key);
    this.tellBoth(a, b, connected ? 'up' : 'down');
  }

  /** Whether `a` and `b` can talk now (both attached, link not cut). */
  linked(a: NodeId, b: NodeId): boolean {
    return this.endpoints.has(a) && this.endpoints.has(b) && !this.cut.has(a < b ? linkKey(a, b) : linkKey(b, a));
  }

  /** Link states of `self` towards each of `peers`, sorted by id. */
  linkStatus(self: NodeId, peers: readonly NodeId[]): MemoryLinkStatus[] {
    return [...peers]
      .sort((x, y) => x - y)
      .map((peer) => ({ peer, ...this.laneStatus(self, peer, 'control'), bulk: this.laneStatus(self, peer, 'bulk') }));
  }

  private laneStatus(self: NodeId, peer: NodeId, lane: Lane): MemoryLaneStatus {
    const f = this.inFlight.get(laneKey(self, peer, lane));
    const up = this.linked(self, peer);
    return {
      state: up ? 'open' : 'closed',
      queuedMessages: f?.messages ?? 0,
      queuedBytes: f?.bytes ?? 0,
      refusedMessages: f?.refused ?? 0,
      inboundConnected: up,
    };
  }

  /** Deliveries queued and not yet run, all lanes. */
  get pending(): number {
    return this.queues.control.length + this.queues.bulk.length;
  }

  /** @internal */
  send(from: MemoryTransport<M>, to: NodeId, message: M, lane: Lane): boolean {
    const key = laneKey(from.self, to, lane);
    let f = this.inFlight.get(key);
    if (f === undefined) {
      f = { messages: 0, bytes: 0, refused: 0 };
      this.inFlight.set(key, f);
    }
    const bytes = this.options.codec.encode(message);
    const limits = this.laneLimits[lane];
    if (f.messages >= limits.messagesMax || f.bytes + bytes.length > limits.bytesMax) {
      f.refused++;
      this.stats.refused++;
      return false;
    }
    f.messages++;
    f.bytes += bytes.length;
    this.stats.sent++;
    this.enqueue({ kind: 'message', from: from.self, to, bytes, lane, epoch: from.epoch });
    return true;
  }

  /** @internal An endpoint closed: its peers see it go down. */
  detach(t: MemoryTransport<M>): void {
    if (this.endpoints.get(t.self) !== t) return;
    this.endpoints.delete(t.self);
    for (const p of t.peers) {
      const other = this.endpoints.get(p);
      if (other !== undefined && !this.cut.has(t.self < p ? linkKey(t.self, p) : linkKey(p, t.self)))
        this.enqueue({ kind: 'down', to: p, peer: t.self, epoch: other.epoch });
    }
  }

  private tellBoth(a: NodeId, b: NodeId, kind: 'up' | 'down'): void {
    const ea = this.endpoints.get(a);
    const eb = this.endpoints.get(b);
    if (ea === undefined || eb === undefined) return;
    this.enqueue({ kind, to: a, peer: b, epoch: ea.epoch });
    this.enqueue({ kind, to: b, peer: a, epoch: eb.epoch });
  }

  private enqueue(d: Delivery): void {
    this.queues[d.kind === 'message' ? d.lane : 'control'].push(d);
    if (this.drainScheduled) return;
    this.drainScheduled = true;
    this.options.schedule(() => {
      this.drain();
    });
  }

  /**
   * Runs one batch of deliveries, each the next control delivery if there is one, else the next
   * bulk one (so a control message sent by a bulk handler overtakes the bulk backlog).
   * `drainScheduled` stays true throughout, so sends during it only queue.
   */
  private drain(): void {
    for (let n = 0; n < this.drainBatchMax; n++) {
      const d = this.queues.control.shift() ?? this.queues.bulk.shift();
      if (d === undefined) break;
      this.deliver(d);
    }
    if (this.pending === 0) {
      this.drainScheduled = false;
      return;
    }
    // Yield so timers and I/O of the embedding process run between batches.
    this.options.schedule(() => {
      this.drain();
    });
  }

  private deliver(d: Delivery): void {
    const target = this.endpoints.get(d.to);
    if (d.kind !== 'message') {
      if (target?.epoch === d.epoch) target.handle(d.kind, d.peer);
      return;
    }
    const f = this.inFlight.get(laneKey(d.from, d.to, d.lane));
    assert(f !== undefined && f.messages > 0, 'a delivered message was counted in flight');
    f.messages--;
    f.bytes -= d.bytes.length;
    const sender = this.endpoints.get(d.from);
    // Lost when either end is gone, the sender restarted since (its old connection is gone), or the link is cut.
    if (target === undefined || sender?.epoch !== d.epoch || !this.linked(d.from, d.to)) {
      this.stats.lost++;
      return;
    }
    let message: M;
    try {
      message = this.options.codec.decode(d.bytes);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      this.stats.undecodable++;
      return;
    }
    this.stats.delivered++;
    target.handleMessage(d.from, message);
  }
}

/** One node's endpoint on a `MemoryNetwork`. Create it with `MemoryNetwork.endpoint`. */
export class MemoryTransport<M> implements Transport<M> {
  private handlers: TransportHandlers<M> | undefined;
  private closed = false;
  /** @internal use `MemoryNetwork.endpoint`. */
  constructor(
    private readonly network: MemoryNetwork<M>,
    readonly self: NodeId,
    readonly peers: readonly NodeId[],
    /** Distinguishes this attachment from an earlier or later one of the same node id. */
    readonly epoch: number,
  ) {}

  setHandlers(handlers: TransportHandlers<M>): void {
    assert(this.handlers === undefined, 'transport handlers are installed once');
    this.handlers = handlers;
  }

  /** See `Transport.send`: each lane to `to` has its own bound and delivery queue. */
  send(to: NodeId, message: M, lane: Lane = DEFAULT_LANE): boolean {
    if (this.closed || !this.peers.includes(to)) return false;
    return this.network.send(this, to, message, lane);
  }

  /** Link states towards every peer (what `TcpTransport.status()` gives). */
  status(): MemoryLinkStatus[] {
    return this.network.linkStatus(this.self, this.peers);
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.network.detach(this);
    }
    return Promise.resolve();
  }

  /** @internal */
  handle(kind: 'up' | 'down', peer: NodeId): void {
    if (this.closed || this.handlers === undefined) return;
    if (kind === 'up') this.handlers.onPeerUp(peer);
    else this.handlers.onPeerDown(peer);
  }

  /** @internal */
  handleMessage(from: NodeId, message: M): void {
    if (this.closed || this.handlers === undefined) return;
    this.handlers.onMessage(from, message);
  }
}
