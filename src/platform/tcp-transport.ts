/**
 * `TcpTransport`: the authenticated, encrypted peer transport over TCP (the daemon's
 * implementation of `Transport`; the simulator has its own).
 *
 * Topology: every node dials one outbound connection per lane (`Lane`: control, bulk) to each
 * configured peer and sends only on those; it receives only on connections peers dialed to it.
 * So there is never a pair of connections to de-duplicate, and a connection's data flows one
 * way (client to server). The handshake names the connection's lane. Bulk links dial on their
 * first message.
 *
 * Each connection first runs the handshake (`peer-handshake.ts`): identities, cluster name, the
 * lane and possession of the cluster key are checked before a single protocol byte is decoded,
 * and refusals are logged with the reason and what to check. Then data frames flow, each an
 * AES-256-GCM record (`frame-cipher.ts`) holding a batch of messages (`message-batch.ts`).
 *
 * Lanes: each lane of each peer has its own socket, send queue, backpressure and reconnect
 * (`tcp-outbound-link.ts`), so bulk bytes queued in Node or in the kernel never delay a control
 * frame, and a bulk flush yields the event loop after a bounded number of bytes per turn.
 * `onPeerUp`/`onPeerDown` report the control lane only.
 *
 * Bounds: per-peer, per-lane send queues (messages and bytes; `send` returns false when full),
 * socket backpressure (a flush stops when `write` returns false and resumes on 'drain', so at
 * most one batch beyond the socket's high-water mark is buffered in Node), pending handshakes,
 * the handshake time, frame sizes (tiny before authentication), reconnect backoff with jitter.
 *
 * Ordering: messages to one peer on one lane are delivered in send order while its connection
 * lasts; across a reconnect, messages written to the lost connection may be lost (never
 * duplicated by the transport). Queued messages not yet written survive a reconnect. Nothing
 * orders one lane against the other.
 *
 * Files: `tcp-transport-config.ts` (config, limits, validation), `tcp-transport-core.ts` (what
 * links and connections share), `tcp-outbound-link.ts` (send side), `tcp-inbound-connection.ts`
 * (receive side), this file (the listener and the `Transport` itself).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { assert } from '../lib/assert.js';
import { CohortError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import type { FrameMode } from '../transport/handshake-record.js';
import { DEFAULT_LANE, LANES, type Lane, type Transport, type TransportHandlers } from '../transport/transport.js';
import { prepareHandshakeKeys, type HandshakeIdentity } from './peer-handshake.js';
import {
  checkAddress,
  configError,
  validateTcpTransportConfig,
  type PeerAddress,
  type TcpTransportConfig,
} from './tcp-transport-config.js';
import {
  LOG_THROTTLE_WINDOW_MS,
  LogThrottle,
  errorText,
  remoteOf,
  type Flushable,
  type TransportCore,
} from './tcp-transport-core.js';
import { InboundConnection } from './tcp-inbound-connection.js';
import { OutboundLink, type LaneLinkStatus } from './tcp-outbound-link.js';

export {
  validateTcpTransportConfig,
  type PeerAddress,
  type TcpTransportConfig,
  type TcpTransportLimits,
  type TransportLogger,
} from './tcp-transport-config.js';
export type { LaneLinkStatus, PeerLinkState } from './tcp-outbound-link.js';

/**
 * A snapshot of one peer's links, for status displays and tests. The top-level fields describe
 * the control lane (the one `onPeerUp`/`onPeerDown` report); `bulk` the bulk lane.
 */
export interface PeerLinkStatus extends LaneLinkStatus {
  readonly peer: NodeId;
  readonly bulk: LaneLinkStatus;
}

/** The outbound links to one peer, one per lane. */
type PeerLinks<M> = Readonly<Record<Lane, OutboundLink<M>>>;

function inboundKey(peer: NodeId, lane: Lane): string {
  return `${peer}/${lane}`;
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
  private readonly links = new Map<NodeId, PeerLinks<M>>();
  private readonly inbound = new Set<InboundConnection<M>>();
  /** The authenticated inbound connection of each (peer, lane), by `inboundKey`. */
  private readonly inboundByLane = new Map<string, InboundConnection<M>>();
  private readonly dirty = new Set<Flushable>();
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
      isStarted: () => this.server !== null,
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
    for (const [id, address] of peers) {
      this.links.set(id, {
        control: new OutboundLink(this.core, id, 'control', address),
        bulk: new OutboundLink(this.core, id, 'bulk', address),
      });
    }
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
    for (const peer of this.links.values()) for (const lane of LANES) peer[lane].dial();
    const bound = server.address();
    assert(bound !== null && typeof bound === 'object', 'a TCP server has an address');
    return { host: bound.address, port: bound.port };
  }

  /** Sets or changes a peer's address; the link (re)dials it. The id must be configured. */
  setPeerAddress(peer: NodeId, address: PeerAddress): void {
    const links = this.links.get(peer);
    if (links === undefined) throw configError(`node ${peer} is not a configured peer`);
    checkAddress(`peer ${peer}`, address, false);
    if (this.closed) return;
    for (const lane of LANES) {
      if (this.server === null) links[lane].address = address;
      else links[lane].readdress(address);
    }
  }

  /** See `Transport.send`: queues on `lane`'s own bounded queue to `to`. */
  send(to: NodeId, message: M, lane: Lane = DEFAULT_LANE): boolean {
    if (this.closed) return false;
    const links = this.links.get(to);
    if (links === undefined) return false;
    return links[lane].enqueue(this.config.codec.encode(message));
  }

  /** Status of every peer's links, sorted by id. */
  status(): PeerLinkStatus[] {
    return [...this.links.entries()]
      .sort(([a], [b]) => a - b)
      .map(([peer, links]) => ({
        peer,
        ...links.control.status(this.inboundByLane.has(inboundKey(peer, 'control'))),
        bulk: links.bulk.status(this.inboundByLane.has(inboundKey(peer, 'bulk'))),
      }));
  }

  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closed = true;
    for (const links of this.links.values()) for (const lane of LANES) links[lane].shutdown();
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

  private markDirty(link: Flushable): void {
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
    const { peer, lane } = conn;
    assert(peer !== null && lane !== null, 'authenticated connections have a peer and a lane');
    const key = inboundKey(peer, lane);
    const older = this.inboundByLane.get(key);
    this.inboundByLane.set(key, conn);
    // One inbound connection per peer and lane: a newer one means the peer restarted or
    // redialed, so the older one is stale. This also bounds authenticated connections by the
    // peer count times the lane count.
    if (older !== undefined) older.destroy();
  }

  private onInboundClosed(conn: InboundConnection<M>, wasPending: boolean): void {
    this.inbound.delete(conn);
    if (wasPending) this.pendingHandshakes--;
    if (conn.peer === null || conn.lane === null) return;
    const key = inboundKey(conn.peer, conn.lane);
    if (this.inboundByLane.get(key) === conn) this.inboundByLane.delete(key);
  }
}
