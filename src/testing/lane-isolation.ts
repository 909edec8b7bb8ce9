/**
 * The lane-isolation measurement shared by the TCP lane test and `bench/peer-lanes.ts`: two
 * `TcpTransport` endpoints on loopback in this process; A streams bulk data to B as fast as
 * backpressure allows while each sends the other a small heartbeat every period; B measures the
 * stream, each receiver the heartbeats (intervals between arrivals, and one-way delay: both
 * ends share this process's clock).
 *
 * Modes: `lanes` streams on the bulk lane and heartbeats on the control lane (what services
 * do); `one-lane` sends both on the bulk lane, which is what a single connection with one deep
 * queue per peer did before lanes, so the pair of runs shows what lanes buy.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { nodeId, type NodeId } from '../lib/ids.js';
import { Prng } from '../lib/prng.js';
import { generateClusterKey, type ClusterKey } from '../platform/cluster-key.js';
import { TcpTransport, type PeerAddress, type TcpTransportLimits } from '../platform/tcp-transport.js';
import { exampleCodec, type ExampleMessage } from '../transport/example-message.js';
import type { Lane } from '../transport/transport.js';
import { IntervalMeter, type SampleSummary } from './interval-meter.js';

/** Which lanes the stream and the heartbeats use (see the module comment). */
export type LaneIsolationMode = 'lanes' | 'one-lane';

/** What to measure. */
export interface LaneIsolationOptions {
  readonly mode: LaneIsolationMode;
  /** The stream runs until at least this many bytes were delivered... */
  readonly bulkBytesMin: number;
  /** ...and for at least this long. */
  readonly durationMsMin: number;
  /** Payload bytes of each bulk message. */
  readonly bulkMessageBytes: number;
  readonly heartbeatPeriodMs: number;
  /** The whole measurement fails (rejects) past this. */
  readonly timeoutMs: number;
  /** Insecure plaintext frames (benchmarks only). */
  readonly plain?: boolean;
  readonly limits?: Partial<TcpTransportLimits>;
}

/** Heartbeats in one direction, as their receiver saw them during the stream. */
export interface HeartbeatFigures {
  readonly intervals: SampleSummary;
  readonly delays: SampleSummary;
  /** Heartbeats `send` refused (their queue was full). */
  readonly refused: number;
}

/** The measurement. */
export interface LaneIsolationResult {
  readonly mode: LaneIsolationMode;
  readonly bulkBytes: number;
  readonly streamMs: number;
  readonly throughputMiBps: number;
  /** Heartbeats from A (the bulk sender) to B, and from B to A. */
  readonly aToB: HeartbeatFigures;
  readonly bToA: HeartbeatFigures;
  /**
   * How late this process's event loop ran its timers during the stream (ms): a heartbeat late
   * in both directions alike is the loop (or the machine's load), not head-of-line blocking.
   */
  readonly loopDelay: SampleSummary;
}

/** Bulk bytes the producer hands to `send` in one event-loop turn before yielding. */
const PRODUCER_BYTES_PER_TURN = 8 * 1024 * 1024;

const HOST = '127.0.0.1';
const A = nodeId(1);
const B = nodeId(2);
const MIB = 1024 * 1024;

interface Side {
  readonly t: TcpTransport<ExampleMessage>;
  ups: number;
  /** Heartbeats this side received. */
  readonly meter: IntervalMeter;
  /** Send times of this side's heartbeats, by sequence number. */
  readonly sentAt: Map<number, number>;
  refused: number;
}

/** Heartbeats travel as pongs (bulk data as pings), so one codec serves both. */
function heartbeat(seq: number): ExampleMessage {
  return { type: 'pong', seq, payload: new Uint8Array(8) };
}

function endpoint(self: NodeId, peer: NodeId, key: ClusterKey, o: LaneIsolationOptions): TcpTransport<ExampleMessage> {
  return new TcpTransport<ExampleMessage>({
    self,
    clusterName: 'lanes',
    listen: { host: HOST, port: 0 },
    peers: new Map([[peer, null]]),
    key,
    codec: exampleCodec(),
    logger: { warn: () => undefined, info: () => undefined },
    prng: new Prng(self),
    ...(o.plain === true ? { insecurePlaintextForBenchmarks: true } : {}),
    ...(o.limits === undefined ? {} : { limits: o.limits }),
  });
}

/** Runs one measurement; see the module comment. Rejects on timeout. */
export async function measureLaneIsolation(o: LaneIsolationOptions): Promise<LaneIsolationResult> {
  const key = generateClusterKey();
  const make = (self: NodeId, peer: NodeId): Side => ({
    t: endpoint(self, peer, key, o),
    ups: 0,
    meter: new IntervalMeter(),
    sentAt: new Map(),
    refused: 0,
  });
  const a = make(A, B);
  const b = make(B, A);
  const heartbeatLane: Lane = o.mode === 'lanes' ? 'control' : 'bulk';
  let measuring = false;
  let received = 0;
  const onHeartbeat = (to: Side, from: Side, seq: number): void => {
    const sent = from.sentAt.get(seq);
    from.sentAt.delete(seq);
    if (measuring) to.meter.record(performance.now(), sent);
  };
  a.t.setHandlers({
    onMessage: (_from, m) => {
      if (m.type === 'pong') onHeartbeat(a, b, m.seq);
    },
    onPeerUp: () => {
      a.ups++;
    },
    onPeerDown: () => undefined,
  });
  b.t.setHandlers({
    onMessage: (_from, m) => {
      if (m.type === 'pong') onHeartbeat(b, a, m.seq);
      else if (m.type === 'ping') received += m.payload.length;
    },
    onPeerUp: () => {
      b.ups++;
    },
    onPeerDown: () => undefined,
  });
  const timers: ReturnType<typeof setInterval>[] = [];
  try {
    const addresses: [PeerAddress, PeerAddress] = [await a.t.start(), await b.t.start()];
    a.t.setPeerAddress(B, addresses[1]);
    b.t.setPeerAddress(A, addresses[0]);
    const deadline = performance.now() + o.timeoutMs;
    const check = (what: string): void => {
      if (performance.now() > deadline) throw new Error(`lane isolation: timed out ${what}`);
    };
    while (a.ups === 0 || b.ups === 0) {
      check('connecting');
      await sleep(5);
    }
    let seq = 0;
    for (const [from, to] of [
      [a, B],
      [b, A],
    ] as const) {
      timers.push(
        setInterval(() => {
          seq++;
          from.sentAt.set(seq, performance.now());
          if (!from.t.send(to, heartbeat(seq), heartbeatLane)) from.refused++;
        }, o.heartbeatPeriodMs),
      );
    }
    const payload = new Uint8Array(o.bulkMessageBytes).fill(0x5a);
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const start = performance.now();
    measuring = true;
    let sent = 0;
    let n = 0;
    while (sent < o.bulkBytesMin || performance.now() - start < o.durationMsMin) {
      check('streaming');
      // A well-behaved producer: a bounded amount per turn, then yield; when `send` refuses
      // (the lane's queue is full), wait a little for the flush and the receiver.
      let turn = 0;
      while (turn < PRODUCER_BYTES_PER_TURN && a.t.send(B, { type: 'ping', seq: n, payload }, 'bulk')) {
        n++;
        sent += payload.length;
        turn += payload.length;
      }
      if (turn >= PRODUCER_BYTES_PER_TURN) await nextTurn();
      else await sleep(1);
    }
    while (received < sent) {
      check('draining the stream');
      await sleep(1);
    }
    const streamMs = performance.now() - start;
    measuring = false;
    loop.disable();
    const ns = (v: number): number => v / 1e6;
    const loopDelay: SampleSummary = {
      count: loop.count,
      p50: ns(loop.percentile(50)),
      p99: ns(loop.percentile(99)),
      max: ns(loop.max),
    };
    const figures = (s: Side, sender: Side): HeartbeatFigures => ({
      intervals: s.meter.intervalSummary(),
      delays: s.meter.delaySummary(),
      refused: sender.refused,
    });
    return {
      mode: o.mode,
      bulkBytes: received,
      streamMs,
      throughputMiBps: received / MIB / (streamMs / 1000),
      aToB: figures(b, a),
      bToA: figures(a, b),
      loopDelay,
    };
  } finally {
    for (const t of timers) clearInterval(t);
    await Promise.all([a.t.close(), b.t.close()]);
  }
}
