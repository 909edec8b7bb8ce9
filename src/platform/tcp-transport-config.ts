/**
 * `TcpTransport`'s configuration: addresses, limits (per lane where they differ), the logger it
 * needs, and whole-config validation. Every limit defaults to its constant in
 * `src/constants.ts`; tests shrink them.
 */
import { CohortError } from '../lib/errors.js';
import { NODE_ID_MAX, type NodeId } from '../lib/ids.js';
import { assertNever } from '../lib/assert.js';
import type { Prng } from '../lib/prng.js';
import {
  CLUSTER_NODES_MAX,
  HANDSHAKE_TIMEOUT_MS,
  PEER_BATCH_BYTES_TARGET,
  PEER_BULK_FLUSH_BYTES_PER_TURN,
  PEER_BULK_QUEUE_BYTES_MAX,
  PEER_BULK_QUEUE_MESSAGES_MAX,
  PEER_CONTROL_QUEUE_BYTES_MAX,
  PEER_CONTROL_QUEUE_MESSAGES_MAX,
  PENDING_HANDSHAKES_MAX,
  PENDING_HANDSHAKES_PER_PEER_MAX,
  PENDING_HANDSHAKES_PER_SOURCE_MAX,
  RECONNECT_DELAY_MS_MAX,
  RECONNECT_DELAY_MS_MIN,
} from '../constants.js';
import { BATCH_BYTES_MAX } from '../transport/message-batch.js';
import { clusterNameProblem } from '../transport/handshake-record.js';
import { LANES, type Codec, type Lane } from '../transport/transport.js';
import type { ClusterKey } from './cluster-key.js';
import type { DuplicateNotice } from './tcp-transport-core.js';

/** A TCP endpoint. */
export interface PeerAddress {
  readonly host: string;
  readonly port: number;
}

/** The logging the transport needs; a pino logger satisfies it. */
export interface TransportLogger {
  warn(fields: object, message: string): void;
  info(fields: object, message: string): void;
}

/** Tunable bounds; each defaults to its constant in `src/constants.ts` (tests shrink them). */
export interface TcpTransportLimits {
  /** Messages and bytes queued on one peer's control lane before `send` refuses. */
  readonly controlQueueMessagesMax: number;
  readonly controlQueueBytesMax: number;
  /** Messages and bytes queued on one peer's bulk lane before `send` refuses. */
  readonly bulkQueueMessagesMax: number;
  readonly bulkQueueBytesMax: number;
  /** Plaintext bytes a bulk-lane flush writes in one event-loop turn before yielding. */
  readonly bulkFlushBytesPerTurn: number;
  readonly handshakeTimeoutMs: number;
  /** Unidentified inbound connections held at once (see `handshake-budget.ts`). */
  readonly pendingHandshakesMax: number;
  /** Handshakes claiming one configured peer held at once. */
  readonly pendingHandshakesPerPeerMax: number;
  /** Unidentified inbound connections held from one host that is no configured peer's. */
  readonly pendingHandshakesPerSourceMax: number;
  /**
   * Connections the peer listener holds at once, in any state (`server.maxConnections`: past it a
   * connection is accepted and closed at once). A backstop under the handshake budget; default
   * `peerConnectionsMax(peers, …)`.
   */
  readonly connectionsMax: number;
  readonly reconnectDelayMsMin: number;
  readonly reconnectDelayMsMax: number;
  readonly batchBytesTarget: number;
}

/** One lane's queue bounds. */
export interface LaneQueueLimits {
  readonly messagesMax: number;
  readonly bytesMax: number;
  /** Plaintext bytes one flush writes before it yields the event loop (unbounded for control). */
  readonly flushBytesPerTurn: number;
}

/** The queue bounds of `lane` under `limits`. */
export function laneQueueLimits(limits: TcpTransportLimits, lane: Lane): LaneQueueLimits {
  switch (lane) {
    case 'control':
      // Control messages are small and latency-critical: a flush writes until the socket pushes back.
      return {
        messagesMax: limits.controlQueueMessagesMax,
        bytesMax: limits.controlQueueBytesMax,
        flushBytesPerTurn: Number.POSITIVE_INFINITY,
      };
    case 'bulk':
      return {
        messagesMax: limits.bulkQueueMessagesMax,
        bytesMax: limits.bulkQueueBytesMax,
        flushBytesPerTurn: limits.bulkFlushBytesPerTurn,
      };
    default:
      return assertNever(lane, 'lane');
  }
}

/** Everything a `TcpTransport` needs. */
export interface TcpTransportConfig<M> {
  readonly self: NodeId;
  /** Bound into every handshake: nodes of differently named clusters refuse each other. */
  readonly clusterName: string;
  /** Where to listen; port 0 picks a free port (see `start()`'s result). */
  readonly listen: PeerAddress;
  /** Every other node; `null` = address not known yet (see `setPeerAddress`). */
  readonly peers: ReadonlyMap<NodeId, PeerAddress | null>;
  readonly key: ClusterKey;
  readonly codec: Codec<M>;
  readonly logger: TransportLogger;
  /** Drives reconnect jitter (a seeded stream keeps tests reproducible). */
  readonly prng: Prng;
  /** Disables frame encryption (handshake still authenticates). Benchmarks only; never in production. */
  readonly insecurePlaintextForBenchmarks?: boolean;
  readonly limits?: Partial<TcpTransportLimits>;
  /**
   * This node's incarnation, read each time a hello is built (the daemon's node bumps it durably
   * at start, before the transport dials). Absent: 0, for a transport without a node.
   */
  readonly incarnation?: () => number;
  /**
   * Called when a peer proves (with the cluster key) that another live process already runs our
   * node id and refused us: this process is the duplicate and should stop (the daemon exits with
   * one line). Absent: the transport logs it and keeps retrying with backoff.
   */
  readonly onDuplicateOfSelf?: (notice: DuplicateNotice) => void;
  /**
   * Whether proof that a peer's process is gone is reported to `onPeerGone` (default true). Off:
   * the proof is only logged, and the node waits out its timeouts (for networks where someone
   * could forge TCP resets: the proof is not authenticated; docs/transport.md, threat model).
   */
  readonly reportPeerGone?: boolean;
}

/**
 * The most connections the peer listener holds at once with `peers` configured peers under the
 * handshake budget's bounds: the unidentified ones (`pendingHandshakesMax`), the claimed ones
 * (`pendingHandshakesPerPeerMax` per peer) and the authenticated ones (one per lane per peer,
 * twice over for a restarted peer whose new lanes arrive before its old ones are closed).
 */
export function peerConnectionsMax(
  peers: number,
  l: Pick<TcpTransportLimits, 'pendingHandshakesMax' | 'pendingHandshakesPerPeerMax'>,
): number {
  return l.pendingHandshakesMax + peers * (l.pendingHandshakesPerPeerMax + 2 * LANES.length);
}

const DEFAULT_LIMITS: Omit<TcpTransportLimits, 'connectionsMax'> = {
  controlQueueMessagesMax: PEER_CONTROL_QUEUE_MESSAGES_MAX,
  controlQueueBytesMax: PEER_CONTROL_QUEUE_BYTES_MAX,
  bulkQueueMessagesMax: PEER_BULK_QUEUE_MESSAGES_MAX,
  bulkQueueBytesMax: PEER_BULK_QUEUE_BYTES_MAX,
  bulkFlushBytesPerTurn: PEER_BULK_FLUSH_BYTES_PER_TURN,
  handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
  pendingHandshakesMax: PENDING_HANDSHAKES_MAX,
  pendingHandshakesPerPeerMax: PENDING_HANDSHAKES_PER_PEER_MAX,
  pendingHandshakesPerSourceMax: PENDING_HANDSHAKES_PER_SOURCE_MAX,
  reconnectDelayMsMin: RECONNECT_DELAY_MS_MIN,
  reconnectDelayMsMax: RECONNECT_DELAY_MS_MAX,
  batchBytesTarget: PEER_BATCH_BYTES_TARGET,
};

/** A `CONFIG_INVALID` error about the transport configuration. */
export function configError(message: string): CohortError {
  return new CohortError('CONFIG_INVALID', `transport configuration: ${message}`);
}

/** Throws `CONFIG_INVALID` unless `a` is a usable address (port 0 only where allowed). */
export function checkAddress(what: string, a: PeerAddress, allowZeroPort: boolean): void {
  if (typeof a.host !== 'string' || a.host.length === 0) throw configError(`${what} host must be a non-empty string`);
  const min = allowZeroPort ? 0 : 1;
  if (!Number.isInteger(a.port) || a.port < min || a.port > 65535)
    throw configError(`${what} port must be an integer in [${min}, 65535], got ${a.port}`);
}

function checkLimits(l: TcpTransportLimits): void {
  for (const [name, v] of Object.entries(l)) {
    if (!Number.isInteger(v) || v < 1) throw configError(`limit ${name} must be a positive integer, got ${String(v)}`);
  }
  if (l.reconnectDelayMsMin > l.reconnectDelayMsMax)
    throw configError('reconnectDelayMsMin must not exceed reconnectDelayMsMax');
  if (l.batchBytesTarget > BATCH_BYTES_MAX) throw configError(`batchBytesTarget must be at most ${BATCH_BYTES_MAX}`);
}

/** Validates a whole config; throws `CohortError` `CONFIG_INVALID` naming the first problem. */
export function validateTcpTransportConfig<M>(config: TcpTransportConfig<M>): TcpTransportLimits {
  if (!Number.isInteger(config.self) || config.self < 1 || config.self > NODE_ID_MAX)
    throw configError(`self must be a node id in [1, ${NODE_ID_MAX}]`);
  const nameProblem = clusterNameProblem(config.clusterName);
  if (nameProblem !== undefined) throw configError(nameProblem);
  checkAddress('listen', config.listen, true);
  if (config.peers.size + 1 > CLUSTER_NODES_MAX)
    throw configError(`at most ${CLUSTER_NODES_MAX} nodes per cluster, got ${config.peers.size + 1}`);
  for (const [id, address] of config.peers) {
    if (id === config.self) throw configError(`the peer list contains our own id ${id}`);
    if (!Number.isInteger(id) || id < 1 || id > NODE_ID_MAX)
      throw configError(`peer id ${id} is not in [1, ${NODE_ID_MAX}]`);
    if (address !== null) checkAddress(`peer ${id}`, address, false);
  }
  const partial = { ...DEFAULT_LIMITS, ...config.limits };
  const limits = {
    ...partial,
    connectionsMax: partial.connectionsMax ?? peerConnectionsMax(config.peers.size, partial),
  };
  checkLimits(limits);
  if (limits.connectionsMax < peerConnectionsMax(config.peers.size, { ...limits, pendingHandshakesMax: 1 }))
    throw configError(
      `connectionsMax ${limits.connectionsMax} cannot hold every peer's lanes and handshakes (${config.peers.size} peers)`,
    );
  return limits;
}
