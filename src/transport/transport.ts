/**
 * The peer transport contract, shared by the TCP implementation (`src/platform`) and the
 * simulated network (`src/sim`). Pure interface: no I/O here.
 *
 * Delivery contract (what protocols may rely on, and what they may not):
 * - At most once per `send`, and only to the addressed node, with the sender's authenticated id.
 * - No ordering promise across reconnects; the simulator also reorders and duplicates, so every
 *   protocol on top must tolerate loss, duplication and reordering (Raft does).
 * - `send` never blocks and never buffers without bound: when the peer's queue is full it
 *   returns false and drops the message (backpressure is visible to the caller).
 * - Handlers are called one at a time, never re-entrantly from inside `send`.
 *
 * Lanes (see `Lane`): every message travels on one lane, `control` unless the caller names
 * another. Each lane to each peer has its own bounded queue (bounds per lane in
 * `src/constants.ts`: `PEER_CONTROL_QUEUE_*`, `PEER_BULK_QUEUE_*`), so a full bulk lane never
 * refuses a control message and the reverse. Whatever ordering an implementation gives holds
 * within one lane only: a control message may overtake bulk messages sent before it, and the
 * receiver cannot tell which lane a message came on. A control message is never delayed by bulk
 * messages, queued or in flight (no head-of-line blocking): TCP uses one connection per lane,
 * the memory transport delivers control first, the simulator schedules lanes independently.
 * Peer events (`onPeerUp`/`onPeerDown`) are about the control lane; `onPeerGone` (proof that a
 * peer's process ended, see `TransportHandlers`) is the one event a node may act on at once,
 * without waiting out a failure timeout.
 */
import type { NodeId } from '../lib/ids.js';

/**
 * Which of a peer's independent paths a message takes. `control`: small, latency-critical
 * messages (Raft, pings, membership, lock traffic that must not queue behind data); its queue is
 * small but never starved. `bulk`: large or bursty transfers (volume data, DLM bursts) that may
 * fill their own, larger queue without delaying control traffic.
 */
export type Lane = 'control' | 'bulk';

/** Every lane, control first (the order in which lane-aware code iterates and prioritises). */
export const LANES: readonly Lane[] = ['control', 'bulk'];

/** The lane `send` uses when the caller names none. */
export const DEFAULT_LANE: Lane = 'control';

/** Encodes and decodes one message type. `decode` throws only `DecodeError`. */
export interface Codec<M> {
  encode(message: M): Uint8Array;
  decode(bytes: Uint8Array): M;
}

/** Callbacks a transport delivers to. */
export interface TransportHandlers<M> {
  /** A message from an authenticated peer. */
  onMessage(from: NodeId, message: M): void;
  /** The control lane to `peer` became usable (after authentication). */
  onPeerUp(peer: NodeId): void;
  /** The control lane to `peer` was lost; queued messages to it may have been dropped. */
  onPeerDown(peer: NodeId): void;
  /**
   * Proof that the process `incarnation` of `peer` is gone (it exited or was killed; its host is
   * up): the connection it held to us was closed by its kernel (not by us, not by a timeout)
   * and a fresh connect to its address, started after that, was refused: nothing listens there
   * any more. `incarnation` is the one the peer announced on that connection (the `CoH2` hello),
   * so the proof never names a newer process of the node. Never reported for silence, a pause
   * (a SIGSTOPped process keeps its sockets and listener: connects are accepted or time out),
   * a partition (packets are dropped: timeouts), or a connection we closed ourselves. At most
   * once per (peer, incarnation). Optional: a receiver that ignores it waits out its timeouts.
   */
  onPeerGone?(peer: NodeId, incarnation: number): void;
}

/** A node's endpoint on the peer network. */
export interface Transport<M> {
  /** This node's id. */
  readonly self: NodeId;
  /** Installs the handlers; must be called once before any delivery. */
  setHandlers(handlers: TransportHandlers<M>): void;
  /**
   * Queues `message` for `to` on `lane` (default `control`); false when refused (that lane's
   * queue to `to` is full, unknown peer, closed). Never blocks; a refusal on one lane says
   * nothing about the other.
   */
  send(to: NodeId, message: M, lane?: Lane): boolean;
  /** Stops delivery and releases every resource. Idempotent. */
  close(): Promise<void>;
  /**
   * Tells the transport which incarnation this process runs, once it is known (the node reads it
   * from its disk after the transport was built). Peers name it in `onPeerGone`. The TCP
   * transport takes it from its config's `incarnation` instead (it goes into every hello) and
   * does not implement this; the simulated network does.
   */
  identify?(incarnation: number): void;
}
