/**
 * What `TcpTransport`'s outbound links and inbound connections share with it (`TransportCore`),
 * and the small socket helpers they both use: log throttling, graceful refusal close, error
 * text. Nothing here owns a socket.
 */
import type { Socket } from 'node:net';
import { REFUSAL_LINGER_MS } from '../constants.js';
import type { FrameLimits } from '../transport/frame-decoder.js';
import { HANDSHAKE_RECORD_BYTES_MAX } from '../transport/handshake-record.js';
import type { Codec, TransportHandlers } from '../transport/transport.js';
import type { Prng } from '../lib/prng.js';
import type { HandshakeIdentity } from './peer-handshake.js';
import type { TcpTransportLimits, TransportLogger } from './tcp-transport-config.js';
import type { InboundConnection } from './tcp-inbound-connection.js';

/** A repeated refusal warning is logged at most once per this window (per peer and reason). */
export const LOG_THROTTLE_WINDOW_MS = 30_000;
/** Distinct throttled warnings remembered at once. */
const LOG_THROTTLE_KEYS_MAX = 256;

/** Frame limits before authentication: handshake records only. */
export const HANDSHAKE_LIMITS: FrameLimits = { bodyBytesMin: 5, bodyBytesMax: HANDSHAKE_RECORD_BYTES_MAX };

/** Something with queued output that the transport flushes in its end-of-task microtask. */
export interface Flushable {
  flush(): void;
}

/** What the links and connections share with their transport. */
export interface TransportCore<M> {
  readonly identity: HandshakeIdentity;
  readonly limits: TcpTransportLimits;
  readonly logger: TransportLogger;
  readonly codec: Codec<M>;
  readonly prng: Prng;
  isClosed(): boolean;
  /** True once `start()` listened: links dial only then. */
  isStarted(): boolean;
  /** Logs a warning unless the same `key` was logged within the throttle window. */
  warnThrottled(key: string, fields: object, message: string): void;
  handlers(): TransportHandlers<M>;
  /** Flushes `link` at the end of the current task (one microtask for every dirty link). */
  markDirty(link: Flushable): void;
  inboundAuthenticated(conn: InboundConnection<M>): void;
  inboundClosed(conn: InboundConnection<M>, wasPending: boolean): void;
}

/** `host:port` of the far end of `socket`, IPv6 hosts in brackets. */
export function remoteOf(socket: Socket): string {
  const host = socket.remoteAddress ?? '?';
  return `${host.includes(':') ? `[${host}]` : host}:${socket.remotePort ?? '?'}`;
}

/**
 * Half-closes `socket` after its queued writes (a refusal record) and destroys it if the peer
 * has not closed within `REFUSAL_LINGER_MS`, so a refusal reaches the peer's log but a silent
 * peer cannot hold the socket open.
 */
export function endGracefully(socket: Socket): void {
  socket.end();
  const timer = setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS);
  timer.unref();
  socket.once('close', () => {
    clearTimeout(timer);
  });
}

/** A one-line description of a thrown value, with its system code when it has one. */
export function errorText(e: unknown): string {
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
export class LogThrottle {
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
