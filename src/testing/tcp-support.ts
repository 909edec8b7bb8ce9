/**
 * Test support for `TcpTransport`: nodes on 127.0.0.1 with recorded messages, peer events and
 * log lines, polling waits, and a man-in-the-middle proxy that can rewrite a dialer's frames or
 * stall one lane's connections. For tests only.
 */
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { nodeId, type NodeId } from '../lib/ids.js';
import { Prng } from '../lib/prng.js';
import { exampleCodec, type ExampleMessage } from '../transport/example-message.js';
import { FRAME_BODY_BYTES_MAX, FRAME_HEADER_BYTES, FrameDecoder } from '../transport/frame-decoder.js';
import { decodeHandshakeRecord, laneCode } from '../transport/handshake-record.js';
import type { Codec, Lane } from '../transport/transport.js';
import type { ClusterKey } from '../platform/cluster-key.js';
import type { DuplicateNotice } from '../platform/tcp-transport-core.js';
import { TcpTransport, type PeerAddress, type TcpTransportLimits } from '../platform/tcp-transport.js';

export const HOST = '127.0.0.1';
export const FAST: Partial<TcpTransportLimits> = {
  reconnectDelayMsMin: 10,
  reconnectDelayMsMax: 80,
  handshakeTimeoutMs: 3000,
};

export interface TestNode {
  readonly id: NodeId;
  readonly t: TcpTransport<ExampleMessage>;
  readonly address: PeerAddress;
  readonly inbox: { from: NodeId; m: ExampleMessage }[];
  readonly logs: string[];
  readonly ups: NodeId[];
  readonly downs: NodeId[];
  /** `onPeerGone` reports: the peer and the incarnation proven gone. */
  readonly gones: { peer: NodeId; incarnation: number; atMs: number }[];
  readonly decodes: { n: number };
  /** Authenticated notices that another process already runs this node's id. */
  readonly duplicates: DuplicateNotice[];
}

export interface NodeOptions {
  readonly key: ClusterKey;
  readonly peers: readonly number[];
  readonly clusterName?: string;
  readonly port?: number;
  readonly limits?: Partial<TcpTransportLimits>;
  /** The incarnation the node's hellos carry (default 0). */
  readonly incarnation?: number;
  /** `TcpTransportConfig.reportPeerGone` (default: the transport's, on). */
  readonly reportPeerGone?: boolean;
}

export function countingCodec(decodes: { n: number }): Codec<ExampleMessage> {
  const inner = exampleCodec();
  return {
    encode: (m) => inner.encode(m),
    decode: (b) => {
      decodes.n++;
      return inner.decode(b);
    },
  };
}

export async function startNode(id: number, o: NodeOptions): Promise<TestNode> {
  const decodes = { n: 0 };
  const logs: string[] = [];
  const inbox: TestNode['inbox'] = [];
  const ups: NodeId[] = [];
  const downs: NodeId[] = [];
  const gones: TestNode['gones'] = [];
  const duplicates: DuplicateNotice[] = [];
  const t = new TcpTransport<ExampleMessage>({
    self: nodeId(id),
    clusterName: o.clusterName ?? 'test-cluster',
    listen: { host: HOST, port: o.port ?? 0 },
    peers: new Map(o.peers.map((p) => [nodeId(p), null])),
    key: o.key,
    codec: countingCodec(decodes),
    logger: { warn: (_f, m) => logs.push(`WARN ${m}`), info: (_f, m) => logs.push(`INFO ${m}`) },
    prng: new Prng(id),
    limits: { ...FAST, ...o.limits },
    incarnation: () => o.incarnation ?? 0,
    onDuplicateOfSelf: (n) => duplicates.push(n),
    ...(o.reportPeerGone === undefined ? {} : { reportPeerGone: o.reportPeerGone }),
  });
  t.setHandlers({
    onMessage: (from, m) => inbox.push({ from, m }),
    onPeerUp: (p) => ups.push(p),
    onPeerDown: (p) => downs.push(p),
    onPeerGone: (peer, incarnation) => gones.push({ peer, incarnation, atMs: performance.now() }),
  });
  const address = await t.start();
  return { id: nodeId(id), t, address, inbox, logs, ups, downs, gones, decodes, duplicates };
}

export async function waitFor(cond: () => boolean, what: string, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

export function ping(seq: number, bytes = 8): ExampleMessage {
  return { type: 'ping', seq, payload: new Uint8Array(bytes).fill(seq & 0xff) };
}

export function seqs(n: TestNode): number[] {
  return n.inbox.map(({ m }) => (m.type === 'gossip' ? -1 : m.seq));
}

export function hasLog(n: TestNode, pattern: RegExp): boolean {
  return n.logs.some((l) => pattern.test(l));
}

export async function closeAll(...closables: { close(): Promise<void> }[]): Promise<void> {
  await Promise.all(closables.map((c) => c.close()));
}

/** What the proxy does with one client-to-server frame: the frames to forward, and whether to cut the connection after. */
export interface ProxyAction {
  readonly forward: readonly Uint8Array[];
  readonly thenCut?: boolean;
}

/**
 * A man-in-the-middle between a dialer and a listener. It parses the dialer's frames (frame 0 is
 * the hello, 1 the response, 2 and on are data) and lets the test rewrite them on the first
 * connection; later connections pass through, which shows the transport recovers.
 */
export class MitmProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  connections = 0;
  port = 0;
  paused = false;
  private readonly clients: Socket[] = [];
  /** Connections of this lane stop being read once authenticated (see `stallLane`). */
  private stalled: Lane | null = null;

  constructor(
    private readonly target: PeerAddress,
    private readonly tamper: (frameIndex: number, frame: Uint8Array) => ProxyAction,
  ) {}

  async start(): Promise<PeerAddress> {
    const server = createServer((client) => {
      this.onClient(client);
    });
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    const a = server.address();
    assert.ok(a !== null && typeof a === 'object');
    this.port = a.port;
    return { host: HOST, port: a.port };
  }

  private onClient(client: Socket): void {
    const index = this.connections++;
    const upstream = connect({ host: this.target.host, port: this.target.port });
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => {
        this.sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    this.clients.push(client);
    if (this.paused) client.pause();
    upstream.on('data', (d: Buffer) => client.write(d));
    const decoder = new FrameDecoder({ bodyBytesMin: 0, bodyBytesMax: FRAME_BODY_BYTES_MAX });
    let frames = 0;
    let stall = false;
    client.on('data', (d: Buffer) => {
      decoder.push(d);
      for (let f = decoder.next(); f !== undefined; f = decoder.next()) {
        if (frames === 0) stall = this.stalled !== null && this.helloLane(f) === laneCode(this.stalled);
        const action = index === 0 ? this.tamper(frames, Uint8Array.from(f)) : { forward: [f] };
        frames++;
        for (const out of action.forward) upstream.write(out);
        if (action.thenCut === true) {
          upstream.end();
          return;
        }
        if (stall && frames === 2) {
          // Hello and response forwarded: the connection is authenticated; read nothing more.
          client.pause();
          return;
        }
      }
    });
  }

  private helloLane(frame: Uint8Array): number | undefined {
    const record = decodeHandshakeRecord(frame.subarray(FRAME_HEADER_BYTES));
    return record.kind === 'hello' ? record.laneCode : undefined;
  }

  /**
   * From now on, connections that name `lane` in their hello are authenticated and then never
   * read again: their sender's socket and queue fill up while other lanes flow.
   */
  stallLane(lane: Lane): void {
    this.stalled = lane;
  }

  /** Stops reading from dialers, so their sockets fill up (backpressure). */
  pause(): void {
    this.paused = true;
    for (const c of this.clients) c.pause();
  }

  resume(): void {
    this.paused = false;
    for (const c of this.clients) c.resume();
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    if (server !== null) {
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
    }
  }
}
