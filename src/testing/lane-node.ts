/**
 * One cohort node in its own process for the node-level lane test (`src/node/bulk-lane.test.ts`):
 * the production services (`registerServices`) over a real `TcpTransport` on loopback, plus a
 * test-only `BulkService` with one bulk-lane channel that streams bytes to a peer as fast as the
 * lane's backpressure allows. The parent drives it over IPC and reads back what it measured:
 * the arrival intervals of the membership pings (the heartbeats the failure detector judges by)
 * from each peer, every detector decision and every view this node applied.
 *
 * Run as `node lane-node.js '<json setup>'` with an IPC channel (child_process.fork).
 */
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { assert, assertNever, defined } from '../lib/assert.js';
import { nodeId, type NodeId } from '../lib/ids.js';
import { Prng } from '../lib/prng.js';
import { CHANNEL_MEMBERSHIP, type MemberNodeSpec } from '../membership/index.js';
import { clusterTiming } from '../node/daemon.js';
import { deriveTimeouts, timeoutInputsWithDefaults } from '../node/timeouts.js';
import { parseClusterKey } from '../platform/cluster-key.js';
import { createRealEnv } from '../platform/real-env.js';
import { TcpTransport } from '../platform/tcp-transport.js';
import { DEFAULT_VOTEQUORUM_OPTIONS } from '../quorum/index.js';
import type { ChannelSpec, NodeService, PeerChannel, ServiceContext } from '../runtime/node-service.js';
import { peerCodecOf, type ChannelMessage } from '../runtime/peer-channels.js';
import { hostNode, registerServices, type CohortNodeOptions } from '../services.js';
import { MemoryDisk } from '../storage/memory-disk.js';
import type { Transport } from '../transport/transport.js';
import { summarize, type SampleSummary } from './interval-meter.js';

/** What the parent passes on the command line. */
export interface LaneNodeSetup {
  readonly id: number;
  /** Peer ports by node id (index 0 is node 1). */
  readonly ports: readonly number[];
  /** The cluster key, as `formatClusterKey` writes it. */
  readonly key: string;
}

/** Parent -> child. */
export type LaneNodeCommand =
  | { readonly type: 'measure' }
  | {
      readonly type: 'stream';
      readonly to: number;
      readonly durationMs: number;
      readonly chunkBytes: number;
      /** Pacing of the stream (Infinity: as fast as the lane takes it). */
      readonly rateBytesPerSec: number;
    }
  | { readonly type: 'report' }
  | { readonly type: 'exit' };

/** Child -> parent. */
export type LaneNodeEvent =
  | { readonly type: 'status'; readonly joined: boolean; readonly quorate: boolean; readonly viewId: number }
  | { readonly type: 'streamed'; readonly bytes: number; readonly ms: number }
  | {
      readonly type: 'report';
      readonly received: number;
      /** Ping arrival intervals per peer since `measure`. */
      readonly pings: Readonly<Record<string, SampleSummary>>;
      /** Detector decisions since `measure` (this node led when it made them). */
      readonly decisions: readonly string[];
      /** Views applied since `measure`. */
      readonly views: readonly number[];
    };

/** The test-only bulk channel (an id no production service uses). */
const BULK_CHANNEL: ChannelSpec<Uint8Array> = {
  id: 200,
  name: 'bulk-test',
  codec: { encode: (m) => m, decode: (b) => b.slice() },
  // `COHORT_LANE_NODE_BULK_ON_CONTROL=1` sends it on the control lane instead (to show the difference).
  lane: process.env['COHORT_LANE_NODE_BULK_ON_CONTROL'] === '1' ? 'control' : 'bulk',
};

/** Streams bytes on the bulk lane, and counts what arrives. */
class BulkService implements NodeService {
  readonly name = 'bulk-test';
  readonly channels = [BULK_CHANNEL];
  received = 0;
  private channel: PeerChannel<Uint8Array> | null = null;

  attach(ctx: ServiceContext): void {
    this.channel = ctx.channel(BULK_CHANNEL, (_from, m) => {
      this.received += m.length;
    });
  }

  /** Sends `chunkBytes` chunks to `to` for `durationMs`, yielding whenever the lane is full. */
  stream(
    to: NodeId,
    durationMs: number,
    chunkBytes: number,
    rateBytesPerSec: number,
    done: (bytes: number, ms: number) => void,
  ): void {
    const channel = defined(this.channel, 'attached');
    const chunk = new Uint8Array(chunkBytes).fill(7);
    const start = performance.now();
    let bytes = 0;
    const pump = (): void => {
      const now = performance.now();
      if (now - start >= durationMs) {
        done(bytes, now - start);
        return;
      }
      // One chunk per event-loop turn (a producer that reads a disk or serves a client does no
      // more per turn), paced to `rateBytesPerSec`; a full lane refuses it, the next turn retries.
      const due = ((now - start) / 1000) * rateBytesPerSec;
      if (bytes < due && channel.send(to, chunk)) bytes += chunk.length;
      if (bytes < due) setImmediate(pump);
      else setTimeout(pump, 1);
    };
    pump();
  }
}

function main(): void {
  const setup = JSON.parse(defined(process.argv[2], 'setup argument')) as LaneNodeSetup;
  const send = (e: LaneNodeEvent): void => {
    process.send?.(e);
  };
  const self = nodeId(setup.id);
  const specs: MemberNodeSpec[] = setup.ports.map((port, i) => ({
    nodeId: nodeId(i + 1),
    name: `n${i + 1}`,
    address: `127.0.0.1:${port}`,
    votes: 1,
    role: 'voter',
  }));
  const model = deriveTimeouts(timeoutInputsWithDefaults({}));
  assert(model.ok, 'default timeouts are valid');
  const decisions: string[] = [];
  const views: number[] = [];
  let measuring = false;
  const options: CohortNodeOptions = {
    timing: clusterTiming(model.value),
    nodes: specs,
    quorum: DEFAULT_VOTEQUORUM_OPTIONS,
    observer: {
      onDecision: (d) => {
        if (measuring) decisions.push(`${d.type} node ${d.node}`);
      },
      onMembershipApplied: (_i, out) => {
        if (measuring && out !== null && out.events > 0) views.push(out.viewId);
      },
    },
  };
  const registered = registerServices(self, options);
  const bulk = new BulkService();
  const logger = pino({ level: process.env['LANE_NODE_LOG'] ?? 'silent' });
  const tcp = new TcpTransport<ChannelMessage>({
    self,
    clusterName: 'lanes',
    listen: { host: '127.0.0.1', port: defined(setup.ports[setup.id - 1]) },
    peers: new Map(
      setup.ports.flatMap((port, i) => (i + 1 === setup.id ? [] : [[nodeId(i + 1), { host: '127.0.0.1', port }]])),
    ),
    key: parseClusterKey(setup.key, 'setup'),
    codec: peerCodecOf([...registered.channels, BULK_CHANNEL]),
    logger,
    prng: new Prng(setup.id),
    ...(process.env['COHORT_LANE_NODE_BULK_QUEUE_BYTES'] === undefined
      ? {}
      : { limits: { bulkQueueBytesMax: Number(process.env['COHORT_LANE_NODE_BULK_QUEUE_BYTES']) } }),
  });
  // Pings are timed as the node receives them, per sender.
  const pingsAt = new Map<number, number[]>();
  const transport: Transport<ChannelMessage> = {
    self,
    setHandlers: (h) => {
      tcp.setHandlers({
        ...h,
        onMessage: (from, m) => {
          if (measuring && m.channel === CHANNEL_MEMBERSHIP) {
            const list = pingsAt.get(from) ?? [];
            list.push(performance.now());
            pingsAt.set(from, list);
          }
          h.onMessage(from, m);
        },
      });
    },
    send: (to, m, lane) => tcp.send(to, m, lane),
    close: () => tcp.close(),
  };
  const env = createRealEnv<ChannelMessage>({
    nodeId: self,
    transport,
    disk: new MemoryDisk({ schedule: (fn) => setImmediate(fn) }),
    logger,
  });
  const node = hostNode(env, options, {
    services: registered.services,
    serviceList: [...registered.serviceList, bulk],
  });
  node.start((error) => {
    assert(error === null, `node ${setup.id} starts`);
    void tcp.start();
  });
  const status = setInterval(() => {
    const s = node.services.membership.status();
    send({ type: 'status', joined: s.joined, quorate: s.quorate, viewId: s.viewId });
  }, 100);
  process.on('message', (c: LaneNodeCommand) => {
    switch (c.type) {
      case 'measure':
        measuring = true;
        pingsAt.clear();
        return;
      case 'stream':
        bulk.stream(nodeId(c.to), c.durationMs, c.chunkBytes, c.rateBytesPerSec, (bytes, ms) => {
          send({ type: 'streamed', bytes, ms });
        });
        return;
      case 'report': {
        const pings: Record<string, SampleSummary> = {};
        for (const [from, at] of pingsAt) pings[String(from)] = summarize(at.slice(1).map((t, i) => t - (at[i] ?? t)));
        send({ type: 'report', received: bulk.received, pings, decisions, views });
        return;
      }
      case 'exit':
        clearInterval(status);
        node.stop();
        void tcp.close().then(() => process.exit(0));
        return;
      default:
        assertNever(c, 'lane node command');
    }
  });
}

main();
