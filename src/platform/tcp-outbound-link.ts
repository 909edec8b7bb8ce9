/**
 * One outbound lane to one peer (`TcpTransport`'s send side): the connection we dial for that
 * lane, its bounded send queue, its reconnect backoff, and the flush that seals queued messages
 * into batches and writes them with socket backpressure.
 *
 * Each lane of each peer is its own `OutboundLink` with its own socket, so bulk bytes sitting in
 * the kernel's buffers (or in Node's) never delay a control frame. The control link reports
 * `onPeerUp`/`onPeerDown`; the bulk link reports nothing, is dialed on its first message (a node
 * that moves no bulk data holds no bulk connections), and its flush yields the event loop after
 * `bulkFlushBytesPerTurn` bytes, so control I/O and timers run between bulk batches.
 */
import { connect, type Socket } from 'node:net';
import { assert } from '../lib/assert.js';
import { CohortError, DecodeError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import { BoundedQueue } from '../lib/queue.js';
import { FRAME_HEADER_BYTES, FrameDecoder, encodeFrame } from '../transport/frame-decoder.js';
import { BATCH_BYTES_MAX, batchEntryBytes, writeBatch } from '../transport/message-batch.js';
import { decodeHandshakeRecord, explainRefusal, type DuplicateRecord } from '../transport/handshake-record.js';
import type { Lane } from '../transport/transport.js';
import { descriptorExhaustion } from './descriptor-pressure.js';
import { createFrameSealer, type FrameSealer } from './frame-cipher.js';
import { ClientHandshake, type HandshakeStep } from './peer-handshake.js';
import { laneQueueLimits, type LaneQueueLimits, type PeerAddress } from './tcp-transport-config.js';
import { HANDSHAKE_LIMITS, endGracefully, errorText, type TransportCore } from './tcp-transport-core.js';

/** Where an outbound lane is: `open` means authenticated and sending. */
export type PeerLinkState = 'idle' | 'connecting' | 'handshaking' | 'open' | 'backoff' | 'closed';

/** A snapshot of one lane to one peer, for status displays and tests. */
export interface LaneLinkStatus {
  readonly state: PeerLinkState;
  readonly queuedMessages: number;
  readonly queuedBytes: number;
  /** Messages refused by `send` on this lane because its queue was full. */
  readonly refusedMessages: number;
  /** Whether the peer's connection to us on this lane is authenticated. */
  readonly inboundConnected: boolean;
}

/** Our side of the connection we dial to one peer for one lane: the send queue and its socket. */
export class OutboundLink<M> {
  state: PeerLinkState = 'idle';
  private socket: Socket | null = null;
  private sealer: FrameSealer | null = null;
  private handshake: ClientHandshake | null = null;
  /** The completed handshake of the open connection: it verifies a later `duplicate` answer. */
  private completed: ClientHandshake | null = null;
  private decoder: FrameDecoder | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private readonly queue: BoundedQueue<Uint8Array>;
  private queuedBytes = 0;
  private refused = 0;
  private attempt = 0;
  private waitingDrain = false;
  /** A bulk flush used its turn's budget and continues on `setImmediate`. */
  private yielding = false;
  /** Set by the first message: only then does a bulk link dial (control links always dial). */
  private wanted: boolean;
  private lastFailure = '';
  /** True between onPeerUp and onPeerDown (control lane only). */
  private up = false;
  /** Set when we close the socket ourselves: its 'close' is then not the peer's doing. */
  private closingByUs = false;
  /** The system error code of the current socket's last error, if any. */
  private lastErrorCode: string | null = null;
  /** When the current connect started (`performance.now()`): a refusal is dated from it. */
  private connectStartedMs = 0;
  /** When the last immediate redial (after a loss the peer's side caused) was made. */
  private immediateRedialMs = Number.NEGATIVE_INFINITY;
  private readonly bounds: LaneQueueLimits;
  /** Reused scratch for one flush's batch boundaries. */
  private readonly pending: Uint8Array[] = [];

  constructor(
    private readonly core: TransportCore<M>,
    readonly peer: NodeId,
    readonly lane: Lane,
    public address: PeerAddress | null,
  ) {
    this.bounds = laneQueueLimits(core.limits, lane);
    this.queue = new BoundedQueue<Uint8Array>(this.bounds.messagesMax);
    this.wanted = lane === 'control';
  }

  status(inboundConnected: boolean): LaneLinkStatus {
    return {
      state: this.state,
      queuedMessages: this.queue.length,
      queuedBytes: this.queuedBytes,
      refusedMessages: this.refused,
      inboundConnected,
    };
  }

  /** Queues one encoded message; false when a bound of this lane would be exceeded. */
  enqueue(bytes: Uint8Array): boolean {
    if (this.state === 'closed' || this.queuedBytes + bytes.length > this.bounds.bytesMax || !this.queue.push(bytes)) {
      this.refused++;
      return false;
    }
    this.queuedBytes += bytes.length;
    if (!this.wanted) {
      this.wanted = true;
      this.dial();
    }
    if (this.state === 'open' && !this.waitingDrain && !this.yielding) this.core.markDirty(this);
    return true;
  }

  /** Starts dialing if idle, wanted, started and the address is known. */
  dial(): void {
    if (
      this.state !== 'idle' ||
      !this.wanted ||
      this.address === null ||
      !this.core.isStarted() ||
      this.core.isClosed()
    )
      return;
    this.state = 'connecting';
    this.closingByUs = false;
    this.lastErrorCode = null;
    this.connectStartedMs = performance.now();
    const socket = connect({ host: this.address.host, port: this.address.port, noDelay: true });
    this.socket = socket;
    // One deadline for connecting and authenticating: a black-holed address must not hang in
    // 'connecting' for the kernel's SYN timeout (minutes).
    const timeoutMs = this.core.limits.handshakeTimeoutMs;
    this.startTimer(timeoutMs, () => {
      this.fail(
        `could not connect to and authenticate node ${this.peer} at ${this.where()}${this.laneNote()} within ${timeoutMs} ms`,
      );
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
      if (socket !== this.socket) return;
      this.lastFailure = errorText(error);
      const code = (error as { code?: unknown }).code;
      this.lastErrorCode = typeof code === 'string' ? code : null;
      const exhausted = descriptorExhaustion(error);
      // Not the peer's fault and not ours to fix here: say so (throttled), then redial as usual.
      if (exhausted !== null)
        this.core.warnThrottled(
          `descriptors:${exhausted}`,
          { peer: this.peer, address: this.where(), code: exhausted },
          `out of file descriptors: connecting to node ${this.peer} at ${this.where()}${this.laneNote()} failed (${this.lastFailure}); retrying with backoff until descriptors are free again`,
        );
    });
    socket.on('close', () => {
      this.onClose(socket);
    });
  }

  private where(): string {
    return this.address === null ? 'an unknown address' : `${this.address.host}:${this.address.port}`;
  }

  /** Log lines about the control lane read as before lanes; others name their lane. */
  private laneNote(): string {
    return this.lane === 'control' ? '' : ` (${this.lane} lane)`;
  }

  private onConnect(socket: Socket): void {
    if (socket !== this.socket) return;
    this.state = 'handshaking';
    this.handshake = new ClientHandshake(this.core.identity, this.peer, this.lane);
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
    if (record.kind === 'duplicate' && this.state === 'open') {
      this.onDuplicate(record);
      return;
    }
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

  /**
   * The peer says, after our proof, that another live process already runs our node id. Only a
   * notice proven with the cluster key for this connection counts (an unauthenticated one could
   * stop any node that dials a port someone else took); then this process is the duplicate.
   */
  private onDuplicate(record: DuplicateRecord): void {
    const completed = this.completed;
    if (completed === null || !completed.verifiesDuplicate(record)) {
      this.fail(`node ${this.peer} at ${this.where()} sent a duplicate-id notice that failed authentication; ignored`);
      return;
    }
    const ourIncarnation = this.core.identity.incarnation();
    this.core.warnThrottled(
      `out:${this.peer}:duplicate`,
      { peer: this.peer, address: this.where(), running: record.runningIncarnation, host: record.runningHost },
      `node ${this.peer} at ${this.where()} refused us: another process already runs our node id ${this.core.identity.self} (incarnation ${record.runningIncarnation}, connected from ${record.runningHost}; we are incarnation ${ourIncarnation}); two processes must never share a node id`,
    );
    this.decoder = null;
    if (this.socket !== null) this.close(this.socket);
    this.core.duplicateOfSelf({
      by: this.peer,
      byAddress: this.where(),
      runningIncarnation: record.runningIncarnation,
      runningHost: record.runningHost,
      ourIncarnation,
    });
  }

  private onEstablished(peer: NodeId, keys: { key: Uint8Array; salt: Uint8Array }): void {
    assert(peer === this.peer, 'the handshake checks the dialed id');
    this.clearTimer();
    this.state = 'open';
    this.completed = this.handshake;
    this.handshake = null;
    this.sealer = createFrameSealer(this.core.identity.mode, keys);
    this.attempt = 0;
    this.lastFailure = '';
    this.core.logger.info(
      { peer, address: this.where(), lane: this.lane },
      `connected to node ${peer} at ${this.where()}${this.laneNote()}`,
    );
    if (this.lane === 'control') this.core.controlLinkEvent(peer, { kind: 'opened' });
    if (this.lane === 'control' && !this.up) {
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
   * Seals queued messages into batches and writes them until the queue is empty, the socket
   * asks us to wait, or (bulk lane) this turn's byte budget is spent: then the flush continues
   * on `setImmediate`, after the I/O and timers that are due. Called from the transport's flush
   * microtask or that continuation, never re-entrantly.
   */
  flush(): void {
    const socket = this.socket;
    const sealer = this.sealer;
    if (this.state !== 'open' || socket === null || sealer === null || this.waitingDrain || this.yielding) return;
    socket.cork();
    try {
      let writable = true;
      let budget = this.bounds.flushBytesPerTurn;
      while (writable && budget > 0 && this.queue.length > 0) {
        const before = this.queuedBytes;
        writable = socket.write(this.sealBatch(sealer));
        budget -= before - this.queuedBytes;
      }
      this.waitingDrain = !writable;
      if (writable && this.queue.length > 0) this.yieldTurn();
    } catch (error) {
      if (!(error instanceof CohortError)) throw error;
      this.fail(`closing connection to node ${this.peer}: ${error.message}`);
    } finally {
      socket.uncork();
    }
  }

  /** Continues this flush on the next turn of the event loop (after due I/O and timers). */
  private yieldTurn(): void {
    this.yielding = true;
    setImmediate(() => {
      this.yielding = false;
      this.flush(); // checks the state: the connection may have changed meanwhile
    });
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
    if (socket === this.socket) this.closingByUs = true;
    socket.destroy();
  }

  /**
   * Whether the connection that just closed was closed by the peer's side: a FIN or a reset we
   * did not cause (not a timeout, an unreachable host, or a close of ours).
   */
  private closedByPeer(): boolean {
    if (this.closingByUs) return false;
    const code = this.lastErrorCode;
    return code === null || code === 'ECONNRESET' || code === 'EPIPE';
  }

  private onClose(socket: Socket): void {
    if (socket !== this.socket) return;
    const wasOpen = this.state === 'open';
    this.socket = null;
    this.sealer = null;
    this.handshake = null;
    this.completed = null;
    this.decoder = null;
    this.waitingDrain = false;
    this.clearTimer();
    if (this.state === 'closed') return;
    const byPeer = this.closedByPeer();
    if (this.lane === 'control') {
      if (wasOpen) this.core.controlLinkEvent(this.peer, { kind: 'closed', byPeer });
      else if (this.state === 'connecting' && this.lastErrorCode === 'ECONNREFUSED')
        this.core.controlLinkEvent(this.peer, { kind: 'refused', startedMs: this.connectStartedMs });
    }
    if (wasOpen)
      this.core.logger.info(
        { peer: this.peer, lane: this.lane },
        `connection to node ${this.peer} at ${this.where()}${this.laneNote()} lost${this.lastFailure === '' ? '' : `: ${this.lastFailure}`}`,
      );
    if (this.up) {
      this.up = false;
      this.core.handlers().onPeerDown(this.peer);
    }
    // A connection the peer's side closed is redialed at once: if the peer's process is gone,
    // the refusal completes the proof (`GoneEvidence`) one round trip later; if it is alive
    // (it closed one connection), it answers. Backoff applies from the next failure on, and to
    // a peer that keeps closing authenticated connections (at most one immediate redial per
    // backoff ceiling, so that cannot become a busy loop of handshakes).
    const now = performance.now();
    const immediate =
      wasOpen &&
      byPeer &&
      this.lane === 'control' &&
      now - this.immediateRedialMs >= this.core.limits.reconnectDelayMsMax;
    if (immediate) this.immediateRedialMs = now;
    this.scheduleReconnect(immediate);
  }

  private scheduleReconnect(now = false): void {
    if (this.core.isClosed()) return;
    if (now) {
      this.attempt = 0;
      this.state = 'idle';
      this.dial();
      return;
    }
    const { reconnectDelayMsMin: min, reconnectDelayMsMax: max } = this.core.limits;
    const ceiling = Math.min(max, min * 2 ** Math.min(this.attempt, 30));
    // "Equal jitter": half fixed, half random, so peers that failed together spread out.
    const delay = Math.floor(ceiling / 2) + this.core.prng.int(0, Math.ceil(ceiling / 2) + 1);
    if (this.attempt === 0 && this.lastFailure !== '') {
      this.core.logger.info(
        { peer: this.peer, address: this.where() },
        `cannot reach node ${this.peer} at ${this.where()}${this.laneNote()}: ${this.lastFailure}; retrying with backoff up to ${max} ms`,
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

  /**
   * The peer just authenticated a connection to us, so it runs and listens again (a daemon
   * binds before it dials): a link waiting out its backoff dials now instead of up to
   * `reconnectDelayMsMax` later. Without this, a restarted peer's answers to us (votes, acks)
   * waited for our backoff, which cost a failover after a restart up to a second (measured).
   */
  redialNow(): void {
    if (this.state !== 'backoff') return;
    this.clearTimer();
    this.attempt = 0;
    this.state = 'idle';
    this.dial();
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
