/**
 * `TcpTransport`: the authenticated, encrypted peer transport over TCP (the daemon's
 * implementation of `Transport`; the simulator has its own).
 *
 * Topology: every node dials one outbound connection to each configured peer and sends only on
 * it; it receives only on connections peers dialed to it. So there is never a pair of
 * connections to de-duplicate, and a connection's data flows one way (client to server).
 *
 * Each connection first runs the handshake (`peer-handshake.ts`): identities, cluster name and
 * possession of the cluster key are checked before a single protocol byte is decoded, and
 * refusals are logged with the reason and what to check. Then data frames flow, each an
 * AES-256-GCM record (`frame-cipher.ts`) holding a batch of messages (`message-batch.ts`).
 *
 * Bounds: per-peer send queues (messages and bytes; `send` returns false when full), socket
 * backpressure (a flush stops when `write` returns false and resumes on 'drain', so at most one
 * batch beyond the socket's high-water mark is buffered in Node), pending handshakes, the
 * handshake time, frame sizes (tiny before authentication), reconnect backoff with jitter.
 *
 * Ordering: messages to one peer are delivered in send order while a connection lasts; across a
 * reconnect, messages written to the lost connection may be lost (never duplicated by the
 * transport). Queued messages not yet written survive a reconnect.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import { assert } from '../lib/assert.js';
import { CohortError, DecodeError } from '../lib/errors.js';
import { NODE_ID_MAX, type NodeId } from '../lib/ids.js';
import type { Prng } from '../lib/prng.js';
import { BoundedQueue } from '../lib/queue.js';
import {
  CLUSTER_NODES_MAX,
  HANDSHAKE_TIMEOUT_MS,
  PEER_BATCH_BYTES_TARGET,
  PEER_SEND_QUEUE_BYTES_MAX,
  PEER_SEND_QUEUE_MESSAGES_MAX,
  PENDING_HANDSHAKES_MAX,
  RECONNECT_DELAY_MS_MAX,
  RECONNECT_DELAY_MS_MIN,
  REFUSAL_LINGER_MS,
} from '../constants.js';
import {
  FRAME_BODY_BYTES_MAX,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  encodeFrame,
  type FrameLimits,
} from '../transport/frame-decoder.js';
import { BATCH_BYTES_MAX, batchEntryBytes, readBatch, writeBatch } from '../transport/message-batch.js';
import {
  HANDSHAKE_RECORD_BYTES_MAX,
  clusterNameProblem,
  decodeHandshakeRecord,
  explainRefusal,
  type FrameMode,
} from '../transport/handshake-record.js';
import type { Codec, Transport, TransportHandlers } from '../transport/transport.js';
import type { ClusterKey } from './cluster-key.js';
import {
  FrameAuthError,
  createFrameOpener,
  createFrameSealer,
  type FrameOpener,
  type FrameSealer,
} from './frame-cipher.js';
import {
  ClientHandshake,
  ServerHandshake,
  prepareHandshakeKeys,
  type HandshakeIdentity,
  type HandshakeStep,
} from './peer-handshake.js';

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
  readonly sendQueueMessagesMax: number;
  readonly sendQueueBytesMax: number;
  readonly handshakeTimeoutMs: number;
  readonly pendingHandshakesMax: number;
  readonly reconnectDelayMsMin: number;
  readonly reconnectDelayMsMax: number;
  readonly batchBytesTarget: number;
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
}

/** A snapshot of one peer link, for status displays and tests. */
export interface PeerLinkStatus {
  readonly peer: NodeId;
  readonly state: PeerLinkState;
  readonly queuedMessages: number;
  readonly queuedBytes: number;
  /** Messages refused by `send` because the queue was full. */
  readonly refusedMessages: number;
  readonly inboundConnected: boolean;
}

/** Where the outbound link to a peer is: `open` means authenticated and sending. */
export type PeerLinkState = 'idle' | 'connecting' | 'handshaking' | 'open' | 'backoff' | 'closed';

/** A repeated refusal warning is logged at most once per this window (per peer and reason). */
const LOG_THROTTLE_WINDOW_MS = 30_000;
/** Distinct throttled warnings remembered at once. */
const LOG_THROTTLE_KEYS_MAX = 256;

const HANDSHAKE_LIMITS: FrameLimits = { bodyBytesMin: 5, bodyBytesMax: HANDSHAKE_RECORD_BYTES_MAX };

const DEFAULT_LIMITS: TcpTransportLimits = {
  sendQueueMessagesMax: PEER_SEND_QUEUE_MESSAGES_MAX,
  sendQueueBytesMax: PEER_SEND_QUEUE_BYTES_MAX,
  handshakeTimeoutMs: HANDSHAKE_TIMEOUT_MS,
  pendingHandshakesMax: PENDING_HANDSHAKES_MAX,
  reconnectDelayMsMin: RECONNECT_DELAY_MS_MIN,
  reconnectDelayMsMax: RECONNECT_DELAY_MS_MAX,
  batchBytesTarget: PEER_BATCH_BYTES_TARGET,
};

function configError(message: string): CohortError {
  return new CohortError('CONFIG_INVALID', `transport configuration: ${message}`);
}

function checkAddress(what: string, a: PeerAddress, allowZeroPort: boolean): void {
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
  const limits = { ...DEFAULT_LIMITS, ...config.limits };
  checkLimits(limits);
  return limits;
}

/** What the links and connections share with their transport. */
interface TransportCore<M> {
  readonly identity: HandshakeIdentity;
  readonly limits: TcpTransportLimits;
  readonly logger: TransportLogger;
  readonly codec: Codec<M>;
  readonly prng: Prng;
  isClosed(): boolean;
  /** Logs a warning unless the same `key` was logged within the throttle window. */
  warnThrottled(key: string, fields: object, message: string): void;
  handlers(): TransportHandlers<M>;
  markDirty(link: OutboundLink<M>): void;
  inboundAuthenticated(conn: InboundConnection<M>): void;
  inboundClosed(conn: InboundConnection<M>, wasPending: boolean): void;
}

function remoteOf(socket: Socket): string {
  const host = socket.remoteAddress ?? '?';
  return `${host.includes(':') ? `[${host}]` : host}:${socket.remotePort ?? '?'}`;
}

/**
 * Half-closes `socket` after its queued writes (a refusal record) and destroys it if the peer
 * has not closed within `REFUSAL_LINGER_MS`, so a refusal reaches the peer's log but a silent
 * peer cannot hold the socket open.
 */
function endGracefully(socket: Socket): void {
  socket.end();
  const timer = setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS);
  timer.unref();
  socket.once('close', () => {
    clearTimeout(timer);
  });
}

function errorText(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' && !e.message.includes(code) ? `${code}: ${e.message}` : e.message;
  }
  return String(e);
}

/**
 * Suppresses repeats of the same warning (a misconfigured peer retries every couple of
 * seconds, forever) while keeping the first line and a count of what was suppressed. Bounded:
 * at most `LOG_THROTTLE_KEYS_MAX` keys are remembered; when full, the memory is cleared.
 */
class LogThrottle {
  private readonly last = new Map<string, { atMs: number; suppressed: number }>();

  constructor(
    private readonly windowMs: number,
    private readonly now: () => number,
  ) {}

  /** Returns how many repeats were suppressed before this line, or -1 to suppress this one. */
  admit(key: string): number {
    const now = this.now();
    const seen = this.last.get(key);
    if (seen !== undefined && now - seen.atMs < this.windowMs) {
      seen.suppressed++;
      return -1;
    }
    if (seen === undefined && this.last.size >= LOG_THROTTLE_KEYS_MAX) this.last.clear();
    this.last.set(key, { atMs: now, suppressed: 0 });
    return seen?.suppressed ?? 0;
  }
}

/** Our side of the connection we dial to one peer: the send queue and its socket. */
class OutboundLink<M> {
  state: PeerLinkState = 'idle';
  private socket: Socket | null = null;
  private sealer: FrameSealer | null = null;
  private handshake: ClientHandshake | null = null;
  private decoder: FrameDecoder | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly queue: BoundedQueue<Uint8Array>;
  private queuedBytes = 0;
  private refused = 0;
  private attempt = 0;
  private waitingDrain = false;
  private lastFailure = '';
  /** True between onPeerUp and onPeerDown. */
  private up = false;
  /** Reused scratch for one flush's batch boundaries. */
  private readonly pending: Uint8Array[] = [];

  constructor(
    private readonly core: TransportCore<M>,
    readonly peer: NodeId,
    public address: PeerAddress | null,
  ) {
    this.queue = new BoundedQueue<Uint8Array>(core.limits.sendQueueMessagesMax);
  }

  status(inboundConnected: boolean): PeerLinkStatus {
    return {
      peer: this.peer,
      state: this.state,
      queuedMessages: this.queue.length,
      queuedBytes: this.queuedBytes,
      refusedMessages: this.refused,
      inboundConnected,
    };
  }

  /** Queues one encoded message; false when a bound would be exceeded. */
  enqueue(bytes: Uint8Array): boolean {
    if (
      this.state === 'closed' ||
      this.queuedBytes + bytes.length > this.core.limits.sendQueueBytesMax ||
      !this.queue.push(bytes)
    ) {
      this.refused++;
      return false;
    }
    this.queuedBytes += bytes.length;
    if (this.state === 'open' && !this.waitingDrain) this.core.markDirty(this);
    return true;
  }

  /** Starts dialing if idle and the address is known. */
  dial(): void {
    if (this.state !== 'idle' || this.address === null || this.core.isClosed()) return;
    this.state = 'connecting';
    const socket = connect({ host: this.address.host, port: this.address.port, noDelay: true });
    this.socket = socket;
    // One deadline for connecting and authenticating: a black-holed address must not hang in
    // 'connecting' for the kernel's SYN timeout (minutes).
    const timeoutMs = this.core.limits.handshakeTimeoutMs;
    this.startTimer(timeoutMs, () => {
      this.fail(`could not connect to and authenticate node ${this.peer} at ${this.where()} within ${timeoutMs} ms`);
    });
    socket.on('connect', () => {
      this.onConnect(socket);
    });
    socket.on('data', (chunk: Buffer) => {
      this.onData(socket, chunk);
    });
    socket.on('drain', () => {
      this.onDrain(socket);
    });
    socket.on('error', (error) => {
      this.lastFailure = errorText(error);
    });
    socket.on('close', () => {
      this.onClose(socket);
    });
  }

  private where(): string {
    return this.address === null ? 'an unknown address' : `${this.address.host}:${this.address.port}`;
  }

  private onConnect(socket: Socket): void {
    if (socket !== this.socket) return;
    this.state = 'handshaking';
    this.handshake = new ClientHandshake(this.core.identity, this.peer);
    this.decoder = new FrameDecoder(HANDSHAKE_LIMITS);
    socket.write(encodeFrame(this.handshake.start()));
  }

  private onData(socket: Socket, chunk: Buffer): void {
    const decoder = this.decoder;
    if (socket !== this.socket || decoder === null) return;
    try {
      decoder.push(chunk);
      // A record may end the handshake or the connection: re-check before each frame.
      while (socket === this.socket && this.decoder === decoder) {
        const frame = decoder.next();
        if (frame === undefined) break;
        this.onRecordFrame(frame);
      }
    } catch (error) {
      if (!(error instanceof DecodeError)) throw error;
      this.fail(`closing connection to node ${this.peer} at ${this.where()}: ${error.message} (${error.code})`);
    }
  }

  private onRecordFrame(frame: Uint8Array): void {
    const record = decodeHandshakeRecord(frame.subarray(FRAME_HEADER_BYTES));
    const handshake = this.handshake;
    if (this.state !== 'handshaking' || handshake === null) {
      // The server never sends after the challenge except a refusal; anything else is a bug.
      const why =
        record.kind === 'refusal'
          ? explainRefusal(record.reason)
          : `unexpected ${record.kind} record after the handshake`;
      this.fail(`node ${this.peer} at ${this.where()} closed our connection: ${why}`);
      return;
    }
    this.onStep(handshake.step(record));
  }

  private onStep(step: HandshakeStep): void {
    const socket = this.socket;
    assert(socket !== null, 'a handshake step needs its socket');
    if (step.send !== undefined) socket.write(encodeFrame(step.send));
    switch (step.kind) {
      case 'continue':
        return;
      case 'refused': {
        const other =
          step.claimed !== undefined && step.claimed !== this.peer ? ` (it claims to be node ${step.claimed})` : '';
        const msg = step.byPeer
          ? `node ${this.peer} at ${this.where()} refused our connection: ${explainRefusal(step.reason)}`
          : `refused node ${this.peer} at ${this.where()}${other}: ${explainRefusal(step.reason)} (${step.detail})`;
        this.core.warnThrottled(
          `out:${this.peer}:${step.reason}:${step.byPeer}`,
          { peer: this.peer, address: this.where(), reason: step.reason, byPeer: step.byPeer },
          msg,
        );
        // Stop reading: nothing the peer sends now matters. The handshake timer stays armed
        // as a backstop; 'close' then schedules the reconnect.
        this.decoder = null;
        this.handshake = null;
        endGracefully(socket);
        return;
      }
      case 'established':
        this.onEstablished(step.peer, step.keys);
        return;
    }
  }

  private onEstablished(peer: NodeId, keys: { key: Uint8Array; salt: Uint8Array }): void {
    assert(peer === this.peer, 'the handshake checks the dialed id');
    this.clearTimer();
    this.state = 'open';
    this.handshake = null;
    this.sealer = createFrameSealer(this.core.identity.mode, keys);
    this.attempt = 0;
    this.lastFailure = '';
    this.core.logger.info({ peer, address: this.where() }, `connected to node ${peer} at ${this.where()}`);
    if (!this.up) {
      this.up = true;
      this.core.handlers().onPeerUp(peer);
    }
    if (this.queue.length > 0) this.core.markDirty(this);
  }

  private onDrain(socket: Socket): void {
    if (socket !== this.socket) return;
    this.waitingDrain = false;
    if (this.queue.length > 0) this.core.markDirty(this);
  }

  /**
   * Seals queued messages into batches and writes them until the queue is empty or the socket
   * asks us to wait. Called from the transport's flush microtask, never re-entrantly.
   */
  flush(): void {
    const socket = this.socket;
    const sealer = this.sealer;
    if (this.state !== 'open' || socket === null || sealer === null || this.waitingDrain) return;
    socket.cork();
    try {
      let writable = true;
      while (writable && this.queue.length > 0) writable = socket.write(this.sealBatch(sealer));
      this.waitingDrain = !writable;
    } catch (error) {
      if (!(error instanceof CohortError)) throw error;
      this.fail(`closing connection to node ${this.peer}: ${error.message}`);
    } finally {
      socket.uncork();
    }
  }

  /** Takes messages up to the batch target (at least one) off the queue and seals them. */
  private sealBatch(sealer: FrameSealer): Uint8Array {
    const target = this.core.limits.batchBytesTarget;
    const batch = this.pending;
    let bytes = 0;
    for (let next = this.queue.peek(); next !== undefined; next = this.queue.peek()) {
      const entry = batchEntryBytes(next.length);
      if (batch.length > 0 && bytes + entry > target) break;
      batch.push(next);
      bytes += entry;
      this.queue.shift();
      this.queuedBytes -= next.length;
    }
    assert(batch.length > 0 && bytes <= BATCH_BYTES_MAX, 'a batch holds one to many messages within the limit');
    const plaintext = Buffer.allocUnsafe(bytes);
    writeBatch(plaintext, 0, batch, 0, batch.length);
    batch.length = 0;
    return sealer.seal(plaintext);
  }

  private startTimer(ms: number, fn: () => void): void {
    this.clearTimer();
    this.timer = setTimeout(fn, ms);
  }

  private clearTimer(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Logs `message` and closes the connection (which schedules a reconnect). */
  private fail(message: string): void {
    this.core.logger.warn({ peer: this.peer, address: this.where() }, message);
    if (this.socket !== null) this.close(this.socket);
  }

  private close(socket: Socket): void {
    socket.destroy();
  }

  private onClose(socket: Socket): void {
    if (socket !== this.socket) return;
    const wasOpen = this.state === 'open';
    this.socket = null;
    this.sealer = null;
    this.handshake = null;
    this.decoder = null;
    this.waitingDrain = false;
    this.clearTimer();
    if (this.state === 'closed') return;
    if (wasOpen)
      this.core.logger.info(
        { peer: this.peer },
        `connection to node ${this.peer} at ${this.where()} lost${this.lastFailure === '' ? '' : `: ${this.lastFailure}`}`,
      );
    if (this.up) {
      this.up = false;
      this.core.handlers().onPeerDown(this.peer);
    }
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.core.isClosed()) return;
    const { reconnectDelayMsMin: min, reconnectDelayMsMax: max } = this.core.limits;
    const ceiling = Math.min(max, min * 2 ** Math.min(this.attempt, 30));
    // "Equal jitter": half fixed, half random, so peers that failed together spread out.
    const delay = Math.floor(ceiling / 2) + this.core.prng.int(0, Math.ceil(ceiling / 2) + 1);
    if (this.attempt === 0 && this.lastFailure !== '') {
      this.core.logger.info(
        { peer: this.peer, address: this.where() },
        `cannot reach node ${this.peer} at ${this.where()}: ${this.lastFailure}; retrying with backoff up to ${max} ms`,
      );
    }
    this.attempt++;
    this.state = 'backoff';
    this.startTimer(delay, () => {
      this.timer = null;
      this.state = 'idle';
      this.dial();
    });
  }

  /** Moves to a new address: a live connection is dropped and redialed. */
  readdress(address: PeerAddress): void {
    this.address = address;
    this.attempt = 0;
    if (this.socket !== null) this.close(this.socket);
    else if (this.state === 'backoff') {
      this.clearTimer();
      this.state = 'idle';
    }
    this.dial();
  }

  /** Final shutdown: no reconnect, no events. */
  shutdown(): void {
    this.state = 'closed';
    this.clearTimer();
    this.socket?.destroy();
    this.queue.clear();
    this.queuedBytes = 0;
  }
}

/** A connection a peer dialed to us: handshake, then authenticated receive. */
class InboundConnection<M> {
  /** `refusing`: a refusal was sent and the socket is closing; nothing more is read. */
  state: 'handshaking' | 'open' | 'refusing' | 'closed' = 'handshaking';
  peer: NodeId | null = null;
  private readonly decoder = new FrameDecoder(HANDSHAKE_LIMITS);
  private readonly handshake: ServerHandshake;
  private opener: FrameOpener | null = null;
  private readonly timer: ReturnType<typeof setTimeout>;
  readonly remote: string;

  constructor(
    private readonly core: TransportCore<M>,
    readonly socket: Socket,
  ) {
    this.remote = remoteOf(socket);
    this.handshake = new ServerHandshake(core.identity);
    socket.setNoDelay(true);
    this.timer = setTimeout(() => {
      this.fail(`handshake timed out after ${core.limits.handshakeTimeoutMs} ms`);
    }, core.limits.handshakeTimeoutMs);
    socket.on('data', (chunk: Buffer) => {
      this.onData(chunk);
    });
    socket.on('error', () => {
      // 'close' follows; a reset from a peer that went away is not worth a log line on its own.
    });
    socket.on('close', () => {
      this.onClose();
    });
  }

  private who(): string {
    return this.peer === null ? `connection from ${this.remote}` : `connection from node ${this.peer} (${this.remote})`;
  }

  private onData(chunk: Buffer): void {
    if (this.state !== 'handshaking' && this.state !== 'open') return;
    try {
      this.decoder.push(chunk);
      // Each frame may change the state (authenticated, refused, closed by a handler).
      for (let frame = this.decoder.next(); frame !== undefined; frame = this.decoder.next()) {
        const state = this.currentState();
        if (state === 'handshaking') this.onHandshakeFrame(frame);
        else if (state === 'open') this.onDataFrame(frame);
        else break;
      }
    } catch (error) {
      if (!(error instanceof DecodeError) && !(error instanceof FrameAuthError)) throw error;
      this.fail(`${error.message} (${error.code})`);
    }
  }

  /** The state, read through a call so the compiler does not narrow it across handlers. */
  private currentState(): InboundConnection<M>['state'] {
    return this.state;
  }

  private onHandshakeFrame(frame: Uint8Array): void {
    const step = this.handshake.step(decodeHandshakeRecord(frame.subarray(FRAME_HEADER_BYTES)));
    if (step.send !== undefined) this.socket.write(encodeFrame(step.send));
    switch (step.kind) {
      case 'continue':
        return;
      case 'refused': {
        const claim = step.claimed === undefined ? '' : ` claiming node ${step.claimed}`;
        const text = step.byPeer
          ? `the peer refused the handshake: ${explainRefusal(step.reason)}`
          : `${explainRefusal(step.reason)} (${step.detail})`;
        this.core.warnThrottled(
          `in:${step.claimed ?? 0}:${step.reason}`,
          { remote: this.remote, claimed: step.claimed, reason: step.reason },
          `refused connection from ${this.remote}${claim}: ${text}`,
        );
        // Still counted as pending until the socket closes, so refused floods stay bounded.
        this.state = 'refusing';
        endGracefully(this.socket);
        return;
      }
      case 'established': {
        clearTimeout(this.timer);
        this.peer = step.peer;
        this.opener = createFrameOpener(this.core.identity.mode, step.keys);
        this.decoder.setLimits({ bodyBytesMin: this.opener.bodyBytesMin, bodyBytesMax: FRAME_BODY_BYTES_MAX });
        this.state = 'open';
        this.core.inboundAuthenticated(this);
        return;
      }
    }
  }

  private onDataFrame(frame: Uint8Array): void {
    const opener = this.opener;
    const peer = this.peer;
    assert(opener !== null && peer !== null, 'data frames follow authentication');
    const plaintext = opener.open(frame);
    const { codec } = this.core;
    const handlers = this.core.handlers();
    readBatch(plaintext, (bytes) => {
      if (this.state !== 'open') return;
      handlers.onMessage(peer, codec.decode(bytes));
    });
  }

  /** Logs why and closes. */
  fail(reason: string): void {
    if (this.state === 'closed' || this.state === 'refusing') return;
    this.core.logger.warn({ remote: this.remote, peer: this.peer }, `closing ${this.who()}: ${reason}`);
    this.destroy();
  }

  destroy(): void {
    this.socket.destroy();
    this.markClosed();
  }

  private onClose(): void {
    if (this.state === 'open') {
      // The peer's stream ended: a frame cut short is a truncation worth a log line (the
      // partial frame was never authenticated, so nothing from it was delivered).
      try {
        this.decoder.finish();
      } catch (error) {
        if (!(error instanceof DecodeError)) throw error;
        this.fail(`${error.message} (${error.code})`);
      }
    }
    this.markClosed();
  }

  private markClosed(): void {
    if (this.state === 'closed') return;
    const wasPending = this.state !== 'open';
    this.state = 'closed';
    clearTimeout(this.timer);
    this.core.inboundClosed(this, wasPending);
  }
}

/**
 * The TCP implementation of `Transport<M>`. Lifecycle: construct, `setHandlers`, `start()`
 * (listen and dial), use, `close()`. See the module comment for topology and bounds.
 *
 * `send` throws `MessageTooLargeError` (from the codec) for a message over the payload limit: a
 * protocol bug, not backpressure. Handlers run on socket events; an exception thrown by a
 * handler is a programmer error and is not caught (it reaches the process's crash boundary).
 */
export class TcpTransport<M> implements Transport<M> {
  readonly self: NodeId;
  private readonly config: TcpTransportConfig<M>;
  private readonly core: TransportCore<M>;
  private readonly links = new Map<NodeId, OutboundLink<M>>();
  private readonly inbound = new Set<InboundConnection<M>>();
  private readonly inboundByPeer = new Map<NodeId, InboundConnection<M>>();
  private readonly dirty = new Set<OutboundLink<M>>();
  private flushScheduled = false;
  private pendingHandshakes = 0;
  private server: Server | null = null;
  private handlerSet: TransportHandlers<M> | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;
  private readonly throttle = new LogThrottle(LOG_THROTTLE_WINDOW_MS, () => performance.now());

  constructor(config: TcpTransportConfig<M>) {
    const limits = validateTcpTransportConfig(config);
    this.config = config;
    this.self = config.self;
    const mode: FrameMode = config.insecurePlaintextForBenchmarks === true ? 'insecure-plaintext' : 'aes-256-gcm';
    const peers = new Map(config.peers); // a private copy: the caller's map cannot change who we accept
    const identity: HandshakeIdentity = {
      self: config.self,
      clusterName: config.clusterName,
      mode,
      keys: prepareHandshakeKeys(config.key),
      isPeer: (id) => peers.has(id),
    };
    this.core = {
      identity,
      limits,
      logger: config.logger,
      codec: config.codec,
      prng: config.prng,
      isClosed: () => this.closed,
      warnThrottled: (key, fields, message) => {
        const suppressed = this.throttle.admit(key);
        if (suppressed < 0) return;
        const note =
          suppressed > 0
            ? ` (${suppressed} similar lines suppressed in the last ${LOG_THROTTLE_WINDOW_MS / 1000} s)`
            : '';
        config.logger.warn(fields, `${message}${note}`);
      },
      handlers: () => {
        assert(this.handlerSet !== null, 'setHandlers must be called before start');
        return this.handlerSet;
      },
      markDirty: (link) => {
        this.markDirty(link);
      },
      inboundAuthenticated: (conn) => {
        this.onInboundAuthenticated(conn);
      },
      inboundClosed: (conn, wasPending) => {
        this.onInboundClosed(conn, wasPending);
      },
    };
    for (const [id, address] of peers) this.links.set(id, new OutboundLink(this.core, id, address));
  }

  setHandlers(handlers: TransportHandlers<M>): void {
    assert(this.handlerSet === null, 'setHandlers is called once');
    this.handlerSet = handlers;
  }

  /**
   * Listens and starts dialing every peer with a known address. Resolves with the bound
   * address (useful with port 0). Rejects with `CohortError` `LISTEN_FAILED` (e.g. the port is
   * in use), with the system's reason.
   */
  async start(): Promise<PeerAddress> {
    assert(this.handlerSet !== null, 'setHandlers must be called before start');
    assert(this.server === null && !this.closed, 'start is called once, before close');
    const server = createServer({ noDelay: true }, (socket) => {
      this.onConnection(socket);
    });
    this.server = server;
    const { host, port } = this.config.listen;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: Error): void => {
        reject(
          new CohortError('LISTEN_FAILED', `cannot listen on ${host}:${port}: ${errorText(error)}`, { cause: error }),
        );
      };
      server.once('error', onError);
      server.listen({ host, port }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (error) => {
      this.config.logger.warn({ error: errorText(error) }, `listener error: ${errorText(error)}`);
    });
    for (const link of this.links.values()) link.dial();
    const bound = server.address();
    assert(bound !== null && typeof bound === 'object', 'a TCP server has an address');
    return { host: bound.address, port: bound.port };
  }

  /** Sets or changes a peer's address; the link (re)dials it. The id must be configured. */
  setPeerAddress(peer: NodeId, address: PeerAddress): void {
    const link = this.links.get(peer);
    if (link === undefined) throw configError(`node ${peer} is not a configured peer`);
    checkAddress(`peer ${peer}`, address, false);
    if (this.closed) return;
    if (this.server === null) {
      link.address = address;
      return;
    }
    link.readdress(address);
  }

  send(to: NodeId, message: M): boolean {
    if (this.closed) return false;
    const link = this.links.get(to);
    if (link === undefined) return false;
    return link.enqueue(this.config.codec.encode(message));
  }

  /** Status of every peer link, sorted by id. */
  status(): PeerLinkStatus[] {
    return [...this.links.values()]
      .sort((a, b) => a.peer - b.peer)
      .map((l) => l.status(this.inboundByPeer.has(l.peer)));
  }

  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closed = true;
    for (const link of this.links.values()) link.shutdown();
    for (const conn of [...this.inbound]) conn.destroy();
    this.dirty.clear();
    const server = this.server;
    this.closing =
      server === null
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            server.close(() => {
              resolve();
            });
          });
    return this.closing;
  }

  private markDirty(link: OutboundLink<M>): void {
    this.dirty.add(link);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // A microtask runs after the current task (say, one protocol step that sent to many peers)
    // and before any I/O: everything sent in one task leaves in one write per peer, with no
    // added event-loop turn of latency.
    queueMicrotask(() => {
      this.flushScheduled = false;
      for (const l of this.dirty) l.flush();
      this.dirty.clear();
    });
  }

  private onConnection(socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    if (this.pendingHandshakes >= this.core.limits.pendingHandshakesMax) {
      this.config.logger.warn(
        { remote: remoteOf(socket) },
        `refused connection from ${remoteOf(socket)}: ${this.pendingHandshakes} handshakes already pending (limit ${this.core.limits.pendingHandshakesMax}); is something flooding the cluster port?`,
      );
      socket.destroy();
      return;
    }
    this.pendingHandshakes++;
    this.inbound.add(new InboundConnection(this.core, socket));
  }

  private onInboundAuthenticated(conn: InboundConnection<M>): void {
    this.pendingHandshakes--;
    const peer = conn.peer;
    assert(peer !== null, 'authenticated connections have a peer');
    const older = this.inboundByPeer.get(peer);
    this.inboundByPeer.set(peer, conn);
    // One inbound connection per peer: a newer one means the peer restarted or redialed, so
    // the older one is stale. This also bounds authenticated connections by the peer count.
    if (older !== undefined) older.destroy();
  }

  private onInboundClosed(conn: InboundConnection<M>, wasPending: boolean): void {
    this.inbound.delete(conn);
    if (wasPending) this.pendingHandshakes--;
    if (conn.peer !== null && this.inboundByPeer.get(conn.peer) === conn) this.inboundByPeer.delete(conn.peer);
  }
}
