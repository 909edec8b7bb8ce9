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
import type { NodeId } from '../lib/ids.js';
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
  /**
   * Logs a warning unless the same `key` was logged within the throttle window; what was
   * suppressed is counted, and logged as one summary line when the window ends.
   */
  warnThrottled(key: string, fields: object, message: string): void;
  handlers(): TransportHandlers<M>;
  /** Flushes `link` at the end of the current task (one microtask for every dirty link). */
  markDirty(link: Flushable): void;
  /** `conn`'s hello named configured peer `peer`: false when the handshake budget refuses it. */
  inboundClaimed(conn: InboundConnection<M>, peer: NodeId): boolean;
  /** `conn` proved the cluster key: accepted, or refused because its node id already runs. */
  inboundAuthenticated(conn: InboundConnection<M>): InboundVerdict;
  inboundClosed(conn: InboundConnection<M>): void;
  /** A peer proved to us that another live process already runs our node id. */
  duplicateOfSelf(notice: DuplicateNotice): void;
  /** What happened to our control connection to `peer` (the evidence `GoneEvidence` weighs). */
  controlLinkEvent(peer: NodeId, event: ControlLinkEvent): void;
}

/**
 * Our control connection to a peer: `opened` (authenticated), `closed` (an open one; `byPeer`
 * when the peer's side closed it), `refused` (a connect started at `startedMs`, on
 * `performance.now()`, met ECONNREFUSED).
 */
export type ControlLinkEvent =
  | { readonly kind: 'opened' }
  | { readonly kind: 'closed'; readonly byPeer: boolean }
  | { readonly kind: 'refused'; readonly startedMs: number };

/** What the transport decides about an authenticated inbound connection. */
export type InboundVerdict =
  | { readonly kind: 'accepted' }
  | { readonly kind: 'duplicate'; readonly runningIncarnation: number; readonly runningHost: string };

/**
 * A peer's authenticated word that our node id is already running elsewhere: `by` told us; the
 * running process is `runningIncarnation`, connected to `by` from `runningHost`.
 */
export interface DuplicateNotice {
  readonly by: NodeId;
  readonly byAddress: string;
  readonly runningIncarnation: number;
  readonly runningHost: string;
  /** Our own incarnation, as our hello said. */
  readonly ourIncarnation: number;
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

/** Repeats of one throttled warning that were not logged, and the last of them. */
export interface SuppressedLines {
  readonly key: string;
  readonly count: number;
  readonly fields: object;
  readonly message: string;
}

interface ThrottleEntry {
  atMs: number;
  suppressed: number;
  fields: object;
  message: string;
}

/**
 * Suppresses repeats of the same warning (a misconfigured peer retries every couple of
 * seconds, forever; a flood of connections fails the same way thousands of times) while
 * keeping the first line and a count of what was suppressed: `expired` hands back, once a key's
 * window is over, how many lines it suppressed and the last of them, for one summary line.
 * Bounded: at most `LOG_THROTTLE_KEYS_MAX` keys are remembered; when full, the memory is cleared.
 */
export class LogThrottle {
  private readonly last = new Map<string, ThrottleEntry>();

  constructor(
    private readonly windowMs: number,
    private readonly now: () => number,
  ) {}

  /**
   * Returns how many repeats were suppressed before this line (not yet reported by `expired`),
   * or -1 to suppress this one (remembered as the key's last suppressed line).
   */
  admit(key: string, fields: object = {}, message = ''): number {
    const now = this.now();
    const seen = this.last.get(key);
    if (seen !== undefined && now - seen.atMs < this.windowMs) {
      seen.suppressed++;
      seen.fields = fields;
      seen.message = message;
      return -1;
    }
    if (seen === undefined && this.last.size >= LOG_THROTTLE_KEYS_MAX) this.last.clear();
    this.last.set(key, { atMs: now, suppressed: 0, fields, message });
    return seen?.suppressed ?? 0;
  }

  /** True while some key holds suppressed lines not yet reported. */
  get holdsSuppressed(): boolean {
    for (const e of this.last.values()) if (e.suppressed > 0) return true;
    return false;
  }

  /**
   * The keys whose window ended (all of them when `all`) with lines suppressed; their counts are
   * reset, so each suppressed line is reported once.
   */
  expired(all = false): SuppressedLines[] {
    const now = this.now();
    const out: SuppressedLines[] = [];
    for (const [key, e] of this.last) {
      if (e.suppressed === 0 || (!all && now - e.atMs < this.windowMs)) continue;
      out.push({ key, count: e.suppressed, fields: e.fields, message: e.message });
      e.suppressed = 0;
    }
    return out;
  }
}
