/**
 * The simulated peer network: one `Transport<M>` per node incarnation over a shared model of
 * latency, loss, duplication, partitions and clogged links, all drawn from the run's seed.
 *
 * Every message is encoded with the node program's codec on send and decoded on delivery, so no
 * object is shared between nodes and codec bugs surface in simulation. Reordering falls out of
 * random latency. A message is dropped when its link is cut at send time or at delivery time,
 * when the receiver crashed or restarted since the send (the connection was reset), or by the
 * random loss draw. Each lane of each directed link holds at most its own number of messages
 * in flight (`SIM_LINK_IN_FLIGHT_MAX` control, `SIM_BULK_LINK_IN_FLIGHT_MAX` bulk); beyond that
 * `send` refuses (returns false), as a full socket queue would, and a full bulk lane never
 * refuses a control message.
 *
 * Lanes: the lane travels with each message and lanes are independent: every message draws its
 * own latency, so nothing queues behind anything (the model has no bandwidth), and a control
 * message is never delayed by bulk traffic. A clog or a cut is a property of the link and holds
 * up every lane. Control-lane runs draw exactly what they drew before lanes existed, so seeds
 * replay unchanged.
 *
 * Peer events: node `a` sees peer `b` up when both processes are running (a paused process
 * keeps its sockets, so it counts as running) and neither direction between them is cut. When
 * that changes, `a` gets `onPeerUp(b)` / `onPeerDown(b)` through its gate. Under a one-way cut
 * both ends see the peer down, yet messages in the open direction still arrive: the transport
 * contract promises no link to a peer reported up, only that messages come from their sender.
 *
 * Proof that a process is gone (`onPeerGone`): when a node's process crashes while its host stays
 * up (`detach(node, true)`: a kill, a fail-stop; not a power cut), its kernel resets its
 * connections and refuses reconnects, so every observer that saw it up (connected, no cut either
 * way) gets `onPeerGone(node, incarnation)` with the incarnation the node declared
 * (`Transport.identify`, as TCP's hello carries it; none declared, no proof). It arrives after
 * every message the node sent to that observer (TCP delivers data before the reset) and three
 * minimal latencies after the crash (the reset, then a connect and its refusal), and only if the
 * node is still down then and when the observer's gate runs it (a paused observer redials after
 * it resumes, and a restarted node would answer). A paused node (it keeps its sockets), a
 * partitioned one or a power cut never gives it. Scheduled only for observers whose handlers
 * take the event, and drawing nothing from the PRNG, so workloads that ignore it replay as
 * before.
 */
import { assert, assertNever } from '../lib/assert.js';
import { DecodeError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import type { Prng } from '../lib/prng.js';
import { DEFAULT_LANE, type Codec, type Lane, type Transport, type TransportHandlers } from '../transport/transport.js';
import { FRAME_PAYLOAD_BYTES_MAX, SIM_BULK_LINK_IN_FLIGHT_MAX, SIM_LINK_IN_FLIGHT_MAX } from '../constants.js';
import type { Scheduler } from './scheduler.js';
import type { Partition } from './partition.js';

/** Per-run network fault parameters (drawn by `drawFaultProfile`). */
export interface NetworkParams {
  /** Minimum one-way latency, µs. */
  readonly latencyMinUs: number;
  /** Mean of the exponential extra latency added to the minimum, µs. */
  readonly latencyMeanUs: number;
  /** Probability that a message is lost. */
  readonly lossProbability: number;
  /** Probability that a message is delivered twice (each copy with its own latency). */
  readonly duplicateProbability: number;
}

/** What the network needs from the cluster: process state and the per-node gate. */
export interface NetworkHost {
  /** True when the node's process exists (running or paused). */
  isUp(node: NodeId): boolean;
  /** The node's current incarnation (bumped on every start). */
  incarnationOf(node: NodeId): number;
  /** Runs `fn` inside `node`'s gate if `incarnation` is still current (held while paused). */
  deliver(node: NodeId, incarnation: number, fn: () => void): void;
  /** A message failed to decode: a codec bug, reported as a violation. */
  codecError(from: NodeId, to: NodeId, error: DecodeError): void;
}

/** Message counters for the run summary. */
export interface NetworkStats {
  sent: number;
  delivered: number;
  lost: number;
  cut: number;
  reset: number;
  duplicated: number;
  refused: number;
}

function linkKey(from: NodeId, to: NodeId): number {
  return from * 65_536 + to;
}

/** The in-flight key of one lane of a directed link, and that lane's bound. */
function laneSlot(link: number, lane: Lane): { readonly key: number; readonly max: number } {
  switch (lane) {
    case 'control':
      return { key: link * 2, max: SIM_LINK_IN_FLIGHT_MAX };
    case 'bulk':
      return { key: link * 2 + 1, max: SIM_BULK_LINK_IN_FLIGHT_MAX };
    default:
      return assertNever(lane, 'lane');
  }
}

/** The shared network model; see the module comment. */
export class SimNetwork<M> {
  readonly stats: NetworkStats = { sent: 0, delivered: 0, lost: 0, cut: 0, reset: 0, duplicated: 0, refused: 0 };
  private partition: Partition | undefined;
  private readonly clogUntilUs = new Map<number, number>();
  /** Messages in flight per lane of each directed link, by `laneSlot(...).key`. */
  private readonly inFlight = new Map<number, number>();
  private readonly handlers = new Map<NodeId, TransportHandlers<M>>();
  /** Per observer, the peers it currently sees up. */
  private readonly peersUp = new Map<NodeId, Set<NodeId>>();
  private readonly nodeSet: ReadonlySet<NodeId>;
  /** The incarnation each node's current process declared (`Transport.identify`). */
  private readonly identified = new Map<NodeId, number>();
  /** Latest scheduled arrival on each directed link (`linkKey`), µs: the proof of death comes after. */
  private readonly lastArrivalUs = new Map<number, number>();

  constructor(
    private readonly scheduler: Scheduler,
    private readonly prng: Prng,
    private readonly params: NetworkParams,
    readonly nodes: readonly NodeId[],
    private readonly codec: Codec<M>,
    private readonly host: NetworkHost,
  ) {
    assert(params.lossProbability >= 0 && params.lossProbability <= 1, 'loss probability in [0, 1]');
    assert(params.duplicateProbability >= 0 && params.duplicateProbability <= 1, 'duplicate probability in [0, 1]');
    assert(Number.isInteger(params.latencyMinUs) && params.latencyMinUs >= 0, 'latency minimum is whole µs');
    this.nodeSet = new Set(nodes);
    for (const n of nodes) this.peersUp.set(n, new Set());
  }

  /** A transport for `node`'s current incarnation. Handlers are dropped on `detach(node)`. */
  transportFor(node: NodeId): Transport<M> {
    assert(this.nodeSet.has(node), `node ${node} is not in the simulated cluster`);
    const incarnation = this.host.incarnationOf(node);
    let closed = false;
    return {
      self: node,
      setHandlers: (h) => {
        assert(!this.handlers.has(node), 'transport handlers may be set once per incarnation');
        this.handlers.set(node, h);
        this.refreshPeers();
      },
      send: (to, message, lane = DEFAULT_LANE) =>
        !closed && this.host.incarnationOf(node) === incarnation && this.send(node, to, message, lane),
      close: () => {
        closed = true;
        return Promise.resolve();
      },
      identify: (inc) => {
        if (!closed && this.host.incarnationOf(node) === incarnation) this.identified.set(node, inc);
      },
    };
  }

  /**
   * Forgets `node`'s handlers (its process crashed); peers see it go down. With `hostUp` (the
   * process died, its machine runs on) the observers that were connected to it get the proof
   * that it is gone (see the module comment).
   */
  detach(node: NodeId, hostUp = false): void {
    const declared = this.identified.get(node);
    this.identified.delete(node);
    if (hostUp && declared !== undefined) this.proveGone(node, declared);
    this.handlers.delete(node);
    this.peersUp.get(node)?.clear();
    this.refreshPeers();
  }

  /** Schedules `onPeerGone(node, declared)` for every observer connected to `node` now. */
  private proveGone(node: NodeId, declared: number): void {
    const simIncarnation = this.host.incarnationOf(node);
    const probeUs = 3 * Math.max(1, this.params.latencyMinUs);
    for (const a of this.nodes) {
      const h = this.handlers.get(a);
      if (a === node || h?.onPeerGone === undefined || this.peersUp.get(a)?.has(node) !== true) continue;
      const at = Math.max(this.scheduler.nowUs + probeUs, (this.lastArrivalUs.get(linkKey(node, a)) ?? 0) + 1);
      const observer = this.host.incarnationOf(a);
      const stillGone = (): boolean =>
        !this.host.isUp(node) &&
        this.host.incarnationOf(node) === simIncarnation &&
        !this.isCut(a, node) &&
        !this.isCut(node, a);
      this.scheduler.at(at, () => {
        if (!stillGone()) return;
        this.host.deliver(a, observer, () => {
          if (stillGone() && this.handlers.get(a) === h) h.onPeerGone?.(node, declared);
        });
      });
    }
  }

  /** Installs (or clears) the active partition and updates peer state. */
  setPartition(partition: Partition | undefined): void {
    this.partition = partition;
    this.refreshPeers();
  }

  /** Delays every message sent on `from → to` until `untilUs` (a "clog"). */
  clog(from: NodeId, to: NodeId, untilUs: number): void {
    const key = linkKey(from, to);
    this.clogUntilUs.set(key, Math.max(untilUs, this.clogUntilUs.get(key) ?? 0));
  }

  /** Removes every clog. */
  unclogAll(): void {
    this.clogUntilUs.clear();
  }

  /** True when `from → to` is cut by the partition. */
  isCut(from: NodeId, to: NodeId): boolean {
    return this.partition !== undefined && this.partition.cut(from, to);
  }

  /** Recomputes every node's view of its peers and emits up/down events through the gates. */
  refreshPeers(): void {
    for (const a of this.nodes) {
      const h = this.handlers.get(a);
      const seen = this.peersUp.get(a);
      if (h === undefined || seen === undefined) continue;
      for (const b of this.nodes) {
        if (a === b) continue;
        const up = this.host.isUp(b) && this.handlers.has(b) && !this.isCut(a, b) && !this.isCut(b, a);
        if (up === seen.has(b)) continue;
        if (up) seen.add(b);
        else seen.delete(b);
        const inc = this.host.incarnationOf(a);
        this.scheduler.after(0, () => {
          this.host.deliver(a, inc, () => {
            if (up) h.onPeerUp(b);
            else h.onPeerDown(b);
          });
        });
      }
    }
  }

  private send(from: NodeId, to: NodeId, message: M, lane: Lane): boolean {
    if (!this.nodeSet.has(to) || to === from) {
      this.stats.refused++;
      return false;
    }
    const key = linkKey(from, to);
    const slot = laneSlot(key, lane);
    const inFlight = this.inFlight.get(slot.key) ?? 0;
    const bytes = this.codec.encode(message);
    if (bytes.length > FRAME_PAYLOAD_BYTES_MAX || inFlight >= slot.max) {
      this.stats.refused++;
      return false;
    }
    this.stats.sent++;
    if (this.isCut(from, to)) {
      this.stats.cut++;
      return true;
    }
    if (this.prng.chance(this.params.lossProbability)) {
      this.stats.lost++;
      return true;
    }
    const copies = this.prng.chance(this.params.duplicateProbability) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    const incarnation = this.host.incarnationOf(to);
    for (let i = 0; i < copies; i++) this.schedule(from, to, key, slot.key, bytes, incarnation);
    return true;
  }

  private schedule(from: NodeId, to: NodeId, link: number, slot: number, bytes: Uint8Array, incarnation: number): void {
    const now = this.scheduler.nowUs;
    const latency = this.params.latencyMinUs + Math.round(this.prng.exponential(this.params.latencyMeanUs));
    const at = Math.max(now + latency, this.clogUntilUs.get(link) ?? 0);
    this.lastArrivalUs.set(link, Math.max(at, this.lastArrivalUs.get(link) ?? 0));
    this.inFlight.set(slot, (this.inFlight.get(slot) ?? 0) + 1);
    this.scheduler.at(at, () => {
      this.inFlight.set(slot, (this.inFlight.get(slot) ?? 1) - 1);
      this.arrive(from, to, bytes, incarnation);
    });
  }

  private arrive(from: NodeId, to: NodeId, bytes: Uint8Array, incarnation: number): void {
    if (this.isCut(from, to)) {
      this.stats.cut++;
      return;
    }
    if (this.host.incarnationOf(to) !== incarnation || !this.host.isUp(to)) {
      this.stats.reset++;
      return;
    }
    this.host.deliver(to, incarnation, () => {
      const h = this.handlers.get(to);
      if (h === undefined) {
        this.stats.reset++;
        return;
      }
      let message: M;
      try {
        message = this.codec.decode(bytes.slice());
      } catch (e) {
        if (e instanceof DecodeError) {
          this.host.codecError(from, to, e);
          return;
        }
        throw e;
      }
      this.stats.delivered++;
      h.onMessage(from, message);
    });
  }
}
