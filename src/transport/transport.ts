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
 */
import type { NodeId } from '../lib/ids.js';

/**
 * The lane a message travels on: `control` (Raft, pings, membership; small and urgent) is never
 * queued behind `bulk` (DLM bursts, volume data).
 */
export type Lane = 'control' | 'bulk';

/** Encodes and decodes one message type. `decode` throws only `DecodeError`. */
export interface Codec<M> {
  encode(message: M): Uint8Array;
  decode(bytes: Uint8Array): M;
}

/** Callbacks a transport delivers to. */
export interface TransportHandlers<M> {
  /** A message from an authenticated peer. */
  onMessage(from: NodeId, message: M): void;
  /** A connection to `peer` became usable (after authentication). */
  onPeerUp(peer: NodeId): void;
  /** The connection to `peer` was lost; queued messages to it may have been dropped. */
  onPeerDown(peer: NodeId): void;
}

/** A node's endpoint on the peer network. */
export interface Transport<M> {
  /** This node's id. */
  readonly self: NodeId;
  /** Installs the handlers; must be called once before any delivery. */
  setHandlers(handlers: TransportHandlers<M>): void;
  /**
   * Queues `message` for `to` on `lane` (default `control`); false when refused (queue full,
   * unknown peer, closed).
   */
  send(to: NodeId, message: M, lane?: Lane): boolean;
  /** Stops delivery and releases every resource. Idempotent. */
  close(): Promise<void>;
}
