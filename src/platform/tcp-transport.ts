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
 * most one batch beyond the socket's high-water mark is buffered in Node), unauthenticated
 * connections (`HandshakeBudget`: a tier for connections that said nothing valid yet, with
 * eviction of the oldest, per-source limits and known-address priority, and a tier per claimed
 * peer, so a flood of the peer port neither exhausts file descriptors nor keeps peers out), the
 * handshake time, frame sizes (tiny before authentication), reconnect backoff with jitter, and
 * log lines about unauthenticated connections (one per kind per 30 s, then a count).
 *
 * One process per node id (the duplicate rule): every hello carries the dialer's incarnation and
 * a random per-process instance id, both bound into the proof. When a peer authenticates while
 * another process instance of the same node id holds an authenticated connection to us:
 * - a higher incarnation is a restart (a node bumps its incarnation durably at every start, so
 *   a new process of the same node always has a higher one): the new process is accepted and
 *   the old process's connections are closed (they would otherwise linger until TCP notices);
 * - an equal or lower incarnation is a second live process with the same id (a copied config
 *   with a fresh or copied data directory): it is refused with an authenticated `duplicate`
 *   answer naming the running process's incarnation and host, the running process's
 *   connections are untouched, and we log one warning per window. The refused process hears it
 *   through `onDuplicateOfSelf` (the daemon exits with one line).
 * First come, first served: the process whose connection is up keeps the id.
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
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { assert, assertNever } from '../lib/assert.js';
import { CohortError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import type { FrameMode } from '../transport/handshake-record.js';
import { DEFAULT_LANE, LANES, type Lane, type Transport, type TransportHandlers } from '../transport/transport.js';
import { HANDSHAKE_INSTANCE_BYTES } from '../transport/handshake-record.js';
import { GoneEvidence } from '../transport/gone-evidence.js';
import { PEER_GONE_EVIDENCE_WINDOW_MS } from '../constants.js';
import { HandshakeBudget, sourceOf } from './handshake-budget.js';
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
  type ControlLinkEvent,
  type Flushable,
  type InboundVerdict,
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
 * The TCP implementation of `Transport<M>`. Lifecycle: construct, optionally `bind()` (listen
 * only), `setHandlers`, `start()` (listen if not bound, accept and dial), use, `close()`. See
 * the module comment for topology and bounds.
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
  /** Per peer, the evidence that its process is gone (`onPeerGone`). */
  private readonly gone = new Map<NodeId, GoneEvidence>();
  private flushScheduled = false;
  private readonly budget: HandshakeBudget<InboundConnection<M>>;
  private server: Server | null = null;
  /** Set by `start`: connections are handled and links dial (a bound transport only listens). */
  private accepting = false;
  private handlerSet: TransportHandlers<M> | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;
  private readonly throttle = new LogThrottle(LOG_THROTTLE_WINDOW_MS, () => performance.now());
  /** Reports suppressed log lines once their window ended (armed only while some are held). */
  private throttleTimer: ReturnType<typeof setTimeout> | null = null;
  private refused = 0;

  constructor(config: TcpTransportConfig<M>) {
    const limits = validateTcpTransportConfig(config);
    this.config = config;
    this.self = config.self;
    const mode: FrameMode = config.insecurePlaintextForBenchmarks === true ? 'insecure-plaintext' : 'aes-256-gcm';
    const peers = new Map(config.peers); // a private copy: the caller's map cannot change who we accept
    const incarnation = config.incarnation ?? (() => 0);
    const identity: HandshakeIdentity = {
      self: config.self,
      clusterName: config.clusterName,
      mode,
      keys: prepareHandshakeKeys(config.key),
      instance: new Uint8Array(randomBytes(HANDSHAKE_INSTANCE_BYTES)),
      incarnation,
      isPeer: (id) => peers.has(id),
    };
    this.budget = new HandshakeBudget(
      limits,
      (source) => {
        for (const l of this.links.values())
          if (l.control.address !== null && sourceOf(l.control.address.host) === source) return true;
        return false;
      },
      (id) => {
        const a = this.links.get(id)?.control.address;
        return a === null || a === undefined ? undefined : sourceOf(a.host);
      },
    );
    this.core = {
      identity,
      limits,
      logger: config.logger,
      codec: config.codec,
      prng: config.prng,
      isClosed: () => this.closed,
      isStarted: () => this.accepting,
      warnThrottled: (key, fields, message) => {
        this.warnThrottled(key, fields, message);
      },
      handlers: () => {
        assert(this.handlerSet !== null, 'setHandlers must be called before start');
        return this.handlerSet;
      },
      markDirty: (link) => {
        this.markDirty(link);
      },
      inboundClaimed: (conn, peer) => this.onInboundClaimed(conn, peer),
      inboundAuthenticated: (conn) => this.onInboundAuthenticated(conn),
      inboundClosed: (conn) => {
        this.onInboundClosed(conn);
      },
      duplicateOfSelf: (notice) => {
        if (config.onDuplicateOfSelf !== undefined) config.onDuplicateOfSelf(notice);
      },
      controlLinkEvent: (peer, event) => {
        this.onControlLinkEvent(peer, event);
      },
    };
    for (const [id, address] of peers) {
      this.gone.set(id, new GoneEvidence(PEER_GONE_EVIDENCE_WINDOW_MS));
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
   * Binds the listening port without accepting traffic: a connection that arrives before
   * `start` is closed at once (the peer redials with backoff, as when nothing listened). Lets a
   * daemon learn that its port is taken before it writes any state. Once, before `start` and
   * `close`. Resolves with the bound address (useful with port 0); rejects with `CohortError`
   * `LISTEN_FAILED` (e.g. the port is in use) whose `cause` is the system error.
   */
  async bind(): Promise<PeerAddress> {
    assert(this.server === null && !this.closed, 'bind is called once, before start and close');
    const server = createServer({ noDelay: true }, (socket) => {
      this.onConnection(socket);
    });
    // The backstop under the handshake budget: past it the kernel-accepted connection is closed
    // at once, before it costs more than a moment's descriptor.
    server.maxConnections = this.core.limits.connectionsMax;
    server.on('drop', (d) => {
      this.refused++;
      const from = d?.remoteAddress === undefined ? 'a client' : `${d.remoteAddress}:${d.remotePort ?? '?'}`;
      this.warnThrottled(
        'in:dropped',
        { remote: from },
        `dropped connection from ${from}: the peer port holds at most ${this.core.limits.connectionsMax} connections; is something flooding the peer port?`,
      );
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
    return this.boundAddress();
  }

  /**
   * Binds (unless `bind` already did), accepts connections and starts dialing every peer with a
   * known address. Resolves with the bound address. Rejects as `bind` does; after a successful
   * `bind` it does not fail.
   */
  async start(): Promise<PeerAddress> {
    assert(this.handlerSet !== null, 'setHandlers must be called before start');
    assert(!this.accepting && !this.closed, 'start is called once, before close');
    const bound = this.server === null ? await this.bind() : this.boundAddress();
    this.accepting = true;
    for (const peer of this.links.values()) for (const lane of LANES) peer[lane].dial();
    return bound;
  }

  private boundAddress(): PeerAddress {
    const bound = this.server?.address();
    assert(bound !== null && typeof bound === 'object', 'a bound TCP server has an address');
    return { host: bound.address, port: bound.port };
  }

  /** Sets or changes a peer's address; the link (re)dials it. The id must be configured. */
  setPeerAddress(peer: NodeId, address: PeerAddress): void {
    const links = this.links.get(peer);
    if (links === undefined) throw configError(`node ${peer} is not a configured peer`);
    checkAddress(`peer ${peer}`, address, false);
    if (this.closed) return;
    for (const lane of LANES) {
      if (!this.accepting) links[lane].address = address;
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
  /** Inbound connections refused since start: past the handshake budget or the listener's cap. */
  get refusedConnections(): number {
    return this.refused;
  }

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
    if (this.throttleTimer !== null) clearTimeout(this.throttleTimer);
    this.reportSuppressed(true);
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

  /** Logs a warning at most once per key per window; see `TransportCore.warnThrottled`. */
  private warnThrottled(key: string, fields: object, message: string): void {
    const suppressed = this.throttle.admit(key, fields, message);
    if (suppressed < 0) {
      this.throttleTimer ??= setTimeout(() => {
        this.throttleTimer = null;
        this.reportSuppressed(false);
      }, LOG_THROTTLE_WINDOW_MS).unref();
      return;
    }
    const note = suppressed > 0 ? ` (${suppressed} similar lines suppressed before this one)` : '';
    this.config.logger.warn(fields, `${message}${note}`);
  }

  /** One summary line per throttled warning whose window ended with lines suppressed (all when `all`). */
  private reportSuppressed(all: boolean): void {
    for (const s of this.throttle.expired(all)) {
      this.config.logger.warn(
        { ...s.fields, suppressed: s.count },
        `${s.count} similar lines suppressed in the last ${LOG_THROTTLE_WINDOW_MS / 1000} s; the last: ${s.message}`,
      );
    }
    if (!all && this.throttle.holdsSuppressed && this.throttleTimer === null)
      this.throttleTimer = setTimeout(() => {
        this.throttleTimer = null;
        this.reportSuppressed(false);
      }, LOG_THROTTLE_WINDOW_MS).unref();
  }

  private onConnection(socket: Socket): void {
    // Bound but not started: the node cannot take messages yet; the peer redials with backoff.
    if (this.closed || !this.accepting) {
      socket.destroy();
      return;
    }
    const conn = new InboundConnection(this.core, socket);
    const verdict = this.budget.admit(conn, conn.source);
    if (verdict.kind === 'refused') {
      this.refused++;
      this.warnThrottled(
        'in:refused',
        { remote: conn.remote },
        `refused connection from ${conn.remote}: ${verdict.why}; is something flooding the peer port?`,
      );
      conn.destroy();
      return;
    }
    this.inbound.add(conn);
    verdict.evicted?.evict(
      `it sent no valid hello and its slot went to a newer connection (limit ${this.core.limits.pendingHandshakesMax} unidentified); is something flooding the peer port?`,
    );
  }

  private onInboundClaimed(conn: InboundConnection<M>, peer: NodeId): boolean {
    const verdict = this.budget.claim(conn, peer);
    if (verdict.kind === 'refused') return false;
    verdict.evicted?.evict(
      `a newer handshake claims node ${peer} (limit ${this.core.limits.pendingHandshakesPerPeerMax} pending per peer)`,
    );
    return true;
  }

  /** Applies the duplicate rule (module comment), then keeps one connection per peer and lane. */
  private onInboundAuthenticated(conn: InboundConnection<M>): InboundVerdict {
    const { peer, lane, client } = conn;
    assert(
      peer !== null && lane !== null && client !== null,
      'authenticated connections have a peer, lane and process',
    );
    const others = LANES.map((l) => this.inboundByLane.get(inboundKey(peer, l))).filter(
      (c): c is InboundConnection<M> => c !== undefined && c.client !== null && c.client.instance !== client.instance,
    );
    const running = others[0]?.client;
    if (others[0] !== undefined && running !== undefined && running !== null) {
      if (client.incarnation <= running.incarnation) {
        this.warnThrottled(
          `dup:${peer}`,
          { remote: conn.remote, peer, incarnation: client.incarnation, running: running.incarnation },
          `refused connection from ${conn.remote} claiming node ${peer} (incarnation ${client.incarnation}): node ${peer} is already running (incarnation ${running.incarnation}, connected from ${others[0].source}); two processes share node id ${peer} (a copied configuration?); told the newcomer to stop`,
        );
        return { kind: 'duplicate', runningIncarnation: running.incarnation, runningHost: others[0].source };
      }
      this.config.logger.info(
        { peer, incarnation: client.incarnation, previous: running.incarnation },
        `node ${peer} restarted as incarnation ${client.incarnation} (was ${running.incarnation}); closing the old process's connections`,
      );
      for (const old of others) old.destroy();
    }
    this.budget.release(conn);
    if (lane === 'control') {
      this.gone.get(peer)?.inboundOpened(client.incarnation);
      const links = this.links.get(peer);
      if (links !== undefined) for (const l of LANES) links[l].redialNow();
    }
    const key = inboundKey(peer, lane);
    const older = this.inboundByLane.get(key);
    this.inboundByLane.set(key, conn);
    // One inbound connection per peer and lane: a newer one from the same process means the
    // peer redialed, so the older one is stale. This also bounds authenticated connections by
    // the peer count times the lane count.
    if (older !== undefined) older.destroy();
    return { kind: 'accepted' };
  }

  private onInboundClosed(conn: InboundConnection<M>): void {
    this.inbound.delete(conn);
    this.budget.release(conn);
    if (conn.peer === null || conn.lane === null) return;
    const key = inboundKey(conn.peer, conn.lane);
    // Only the accepted connection of the peer's lane is evidence (never a refused duplicate's,
    // nor an older one a newer connection of the same process replaced).
    const current = this.inboundByLane.get(key) === conn;
    if (current) this.inboundByLane.delete(key);
    if (current && conn.lane === 'control' && conn.client !== null && !this.closed) {
      const evidence = this.gone.get(conn.peer);
      const inc = evidence?.inboundClosed(conn.client.incarnation, conn.closedByPeer, performance.now());
      if (inc !== undefined && inc !== null) this.reportGone(conn.peer, inc);
    }
  }

  private onControlLinkEvent(peer: NodeId, event: ControlLinkEvent): void {
    const evidence = this.gone.get(peer);
    if (evidence === undefined || this.closed) return;
    switch (event.kind) {
      case 'opened':
        evidence.outboundOpened();
        return;
      case 'closed':
        evidence.outboundClosed(event.byPeer, performance.now());
        return;
      case 'refused': {
        const inc = evidence.connectRefused(event.startedMs, performance.now());
        if (inc !== null) this.reportGone(peer, inc);
        return;
      }
      default:
        assertNever(event, 'control link event');
    }
  }

  /** Reports the proof (see `GoneEvidence`) that incarnation `incarnation` of `peer` is gone. */
  private reportGone(peer: NodeId, incarnation: number): void {
    const address = this.links.get(peer)?.control.address;
    const where = address === null || address === undefined ? '' : ` at ${address.host}:${address.port}`;
    const acted = this.config.reportPeerGone !== false;
    this.config.logger.info(
      { peer, incarnation },
      `node ${peer} (incarnation ${incarnation}) is gone: its connections were closed by its host and a reconnect${where} was refused${acted ? '' : ' (not acted on: timeouts.processGoneProof is off; waiting out the timeouts)'}`,
    );
    if (acted) this.core.handlers().onPeerGone?.(peer, incarnation);
  }
}
