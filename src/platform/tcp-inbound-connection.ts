/**
 * One connection a peer dialed to us (`TcpTransport`'s receive side): the server half of the
 * handshake, then authenticated receive of data frames on the lane the dialer named. Data
 * flows one way (the peer sends on connections it dialed), so nothing but handshake records is
 * ever written here.
 */
import type { Socket } from 'node:net';
import { assert } from '../lib/assert.js';
import { DecodeError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import { FRAME_BODY_BYTES_MAX, FRAME_HEADER_BYTES, FrameDecoder, encodeFrame } from '../transport/frame-decoder.js';
import { readBatch } from '../transport/message-batch.js';
import { decodeHandshakeRecord, encodeHandshakeRecord, explainRefusal } from '../transport/handshake-record.js';
import type { Lane } from '../transport/transport.js';
import { FrameAuthError, createFrameOpener, type FrameOpener } from './frame-cipher.js';
import { ServerHandshake, type ClientProcess } from './peer-handshake.js';
import { sourceOf } from './handshake-budget.js';
import { HANDSHAKE_LIMITS, endGracefully, remoteOf, type TransportCore } from './tcp-transport-core.js';

/** A connection a peer dialed to us: handshake, then authenticated receive on one lane. */
export class InboundConnection<M> {
  /** `refusing`: a refusal was sent and the socket is closing; nothing more is read. */
  state: 'handshaking' | 'open' | 'refusing' | 'closed' = 'handshaking';
  peer: NodeId | null = null;
  /** The lane the peer named in its hello; known once authenticated. */
  lane: Lane | null = null;
  private readonly decoder = new FrameDecoder(HANDSHAKE_LIMITS);
  private readonly handshake: ServerHandshake;
  private opener: FrameOpener | null = null;
  private readonly timer: ReturnType<typeof setTimeout>;
  readonly remote: string;
  /** The remote host alone (`sourceOf`): what per-source limits and known-address priority use. */
  readonly source: string;
  /** The peer's process, once authenticated. */
  client: ClientProcess | null = null;
  /** Who ended the connection, once it ended: the peer's side (true) or we (false). */
  private endedByPeer: boolean | null = null;
  /** The system error code of the socket's last error, if any. */
  private errorCode: string | null = null;

  constructor(
    private readonly core: TransportCore<M>,
    readonly socket: Socket,
  ) {
    this.remote = remoteOf(socket);
    this.source = sourceOf(socket.remoteAddress);
    this.handshake = new ServerHandshake(core.identity);
    socket.setNoDelay(true);
    this.timer = setTimeout(() => {
      // Checked again after this turn's poll phase: a handshake record that sat in the kernel
      // while the event loop was stalled is read first, not cut off by a timer that ran first.
      setImmediate(() => {
        if (this.state === 'handshaking')
          this.fail(`handshake timed out after ${core.limits.handshakeTimeoutMs} ms`, 'timeout');
      });
    }, core.limits.handshakeTimeoutMs);
    socket.on('data', (chunk: Buffer) => {
      this.onData(chunk);
    });
    socket.on('error', (error) => {
      // 'close' follows; a reset from a peer that went away is not worth a log line on its own.
      const code = (error as { code?: unknown }).code;
      this.errorCode = typeof code === 'string' ? code : null;
    });
    socket.on('close', () => {
      this.onClose();
    });
  }

  private who(): string {
    if (this.peer === null) return `connection from ${this.remote}`;
    const lane = this.lane === null || this.lane === 'control' ? '' : `, ${this.lane} lane`;
    return `connection from node ${this.peer} (${this.remote}${lane})`;
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
      this.fail(`${error.message} (${error.code})`, error.code);
    }
  }

  /** The state, read through a call so the compiler does not narrow it across handlers. */
  private currentState(): InboundConnection<M>['state'] {
    return this.state;
  }

  private onHandshakeFrame(frame: Uint8Array): void {
    const step = this.handshake.step(decodeHandshakeRecord(frame.subarray(FRAME_HEADER_BYTES)));
    if (step.kind === 'continue') {
      // A valid hello: it names a configured peer, which now holds one of its claim slots.
      const claimed = this.handshake.claimed;
      assert(claimed !== undefined, 'a hello that continues names its node');
      if (!this.core.inboundClaimed(this, claimed)) {
        this.refuse(`${claimed}:too-many-pending`, 'too-many-pending');
        return;
      }
    }
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
        assert(step.client !== undefined, 'the server side learns the client process');
        this.client = step.client;
        this.peer = step.peer;
        this.lane = step.lane;
        const verdict = this.core.inboundAuthenticated(this);
        if (verdict.kind === 'duplicate') {
          this.socket.write(
            encodeFrame(this.handshake.duplicateNotice(verdict.runningIncarnation, verdict.runningHost)),
          );
          this.state = 'refusing';
          endGracefully(this.socket);
          return;
        }
        clearTimeout(this.timer);
        this.opener = createFrameOpener(this.core.identity.mode, step.keys);
        this.decoder.setLimits({ bodyBytesMin: this.opener.bodyBytesMin, bodyBytesMax: FRAME_BODY_BYTES_MAX });
        this.state = 'open';
        return;
      }
    }
  }

  /** Sends a refusal for `reason`, logs it (throttled by `key`) and closes gracefully. */
  private refuse(key: string, reason: 'too-many-pending'): void {
    const claimed = this.handshake.claimed;
    this.core.warnThrottled(
      `in:${key}`,
      { remote: this.remote, claimed, reason },
      `refused connection from ${this.remote}${claimed === undefined ? '' : ` claiming node ${claimed}`}: ${explainRefusal(reason)}`,
    );
    this.socket.write(encodeFrame(encodeHandshakeRecord({ kind: 'refusal', reason })));
    this.state = 'refusing'; // still held by the budget until the socket closes
    endGracefully(this.socket);
  }

  /** Closes a connection the handshake budget evicted to make room; `why` says for what. */
  evict(why: string): void {
    if (this.state === 'closed') return;
    this.core.warnThrottled('in:evicted', { remote: this.remote }, `closed connection from ${this.remote}: ${why}`);
    this.destroy();
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

  /**
   * Logs why and closes. Before authentication the line is throttled (one per kind of failure
   * per window, with a count of those suppressed): a flood of broken connections must not flood
   * the log. After it, every line is logged (a configured peer's connection failing is rare).
   */
  fail(reason: string, kind = 'error'): void {
    if (this.state === 'closed' || this.state === 'refusing') return;
    const fields = { remote: this.remote, peer: this.peer };
    if (this.state === 'handshaking')
      this.core.warnThrottled(`in:fail:${kind}`, fields, `closing ${this.who()}: ${reason}`);
    else this.core.logger.warn(fields, `closing ${this.who()}: ${reason}`);
    this.destroy();
  }

  destroy(): void {
    this.endedByPeer ??= false;
    this.socket.destroy();
    this.markClosed();
  }

  /**
   * Whether the peer's side closed the connection (a FIN or a reset we did not cause; not a
   * timeout or an unreachable host). Meaningful once closed.
   */
  get closedByPeer(): boolean {
    return this.endedByPeer === true;
  }

  private onClose(): void {
    // Decided before a truncated last frame is reported (a killed peer may die mid-frame).
    this.endedByPeer ??= this.errorCode === null || this.errorCode === 'ECONNRESET' || this.errorCode === 'EPIPE';
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
    this.state = 'closed';
    clearTimeout(this.timer);
    this.core.inboundClosed(this);
  }
}
