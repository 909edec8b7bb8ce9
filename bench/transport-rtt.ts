/**
 * Transport benchmark: two processes on loopback (this file forks itself in a "peer" role),
 * `TcpTransport` in each, encrypted (AES-256-GCM) and insecure plaintext.
 *
 * - Ping-pong: one ping in flight; the round-trip time of each (p50, p99, max).
 * - Pipelined: pings with a window of outstanding messages; one-way messages/s and MB/s.
 *
 * Usage: node dist/bench/transport-rtt.js [--messages N] [--payload BYTES] [--window N] [--json]
 * Not a timed test: take figures on an idle machine.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { nodeId, type NodeId } from '../src/lib/ids.js';
import { Prng } from '../src/lib/prng.js';
import { exampleCodec, type ExampleMessage } from '../src/transport/example-message.js';
import { ClusterKey, generateClusterKey } from '../src/platform/cluster-key.js';
import { TcpTransport, type PeerAddress } from '../src/platform/tcp-transport.js';
import { benchArgs } from './bench-args.js';

const HOST = '127.0.0.1';
const BENCH_ID = nodeId(1);
const PEER_ID = nodeId(2);

/** What the parent tells the forked peer. */
interface PeerSetup {
  readonly keyHex: string;
  readonly plain: boolean;
  readonly parentPort: number;
}

const quietLogger = {
  warn: (_fields: object, message: string): void => {
    process.stderr.write(`transport warning: ${message}\n`);
  },
  info: (): void => undefined,
};

function makeTransport(self: NodeId, peer: NodeId, key: ClusterKey, plain: boolean): TcpTransport<ExampleMessage> {
  return new TcpTransport<ExampleMessage>({
    self,
    clusterName: 'bench',
    listen: { host: HOST, port: 0 },
    peers: new Map([[peer, null]]),
    key,
    codec: exampleCodec(),
    logger: quietLogger,
    prng: new Prng(self),
    insecurePlaintextForBenchmarks: plain,
  });
}

/** The forked side: echoes every ping as a pong with an empty payload. */
async function runPeer(): Promise<void> {
  const setup = await new Promise<PeerSetup>((resolve) =>
    process.once('message', (m) => {
      resolve(m as PeerSetup);
    }),
  );
  const t = makeTransport(PEER_ID, BENCH_ID, new ClusterKey(Buffer.from(setup.keyHex, 'hex')), setup.plain);
  const empty = new Uint8Array(0);
  t.setHandlers({
    onMessage: (from, m) => {
      if (m.type === 'ping') t.send(from, { type: 'pong', seq: m.seq, payload: empty });
    },
    onPeerUp: () => undefined,
    onPeerDown: () => undefined,
  });
  const address = await t.start();
  t.setPeerAddress(BENCH_ID, { host: HOST, port: setup.parentPort });
  process.send?.({ port: address.port });
  process.once('disconnect', () => {
    void t.close().then(() => process.exit(0));
  });
}

/** Resolves pong waiters by sequence number. */
class PongWaiter {
  received = 0;
  private waiting: { seq: number; resolve: () => void } | null = null;
  private onAny: (() => void) | null = null;

  deliver(seq: number): void {
    this.received++;
    if (this.waiting?.seq === seq) {
      const w = this.waiting;
      this.waiting = null;
      w.resolve();
    }
    const any = this.onAny;
    this.onAny = null;
    any?.();
  }

  forSeq(seq: number): Promise<void> {
    return new Promise((resolve) => {
      this.waiting = { seq, resolve };
    });
  }

  forAny(): Promise<void> {
    return new Promise((resolve) => {
      this.onAny = resolve;
    });
  }
}

interface ModeResult {
  readonly mode: string;
  readonly pingPongs: number;
  readonly rttP50Us: number;
  readonly rttP99Us: number;
  readonly rttMaxUs: number;
  readonly pipelinedMessages: number;
  readonly payloadBytes: number;
  readonly messagesPerSecond: number;
  readonly megabytesPerSecond: number;
}

function percentile(sorted: readonly number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100));
  return sorted[i] ?? Number.NaN;
}

async function connectPair(
  plain: boolean,
  key: ClusterKey,
  pongs: PongWaiter,
): Promise<{ t: TcpTransport<ExampleMessage>; child: ChildProcess }> {
  const t = makeTransport(BENCH_ID, PEER_ID, key, plain);
  let up: () => void = () => undefined;
  const isUp = new Promise<void>((resolve) => (up = resolve));
  t.setHandlers({
    onMessage: (_from, m) => {
      if (m.type === 'pong') pongs.deliver(m.seq);
    },
    onPeerUp: () => {
      up();
    },
    onPeerDown: () => undefined,
  });
  const address = await t.start();
  const child = fork(fileURLToPath(import.meta.url), ['--role', 'peer'], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const childPort = new Promise<number>((resolve) =>
    child.once('message', (m) => {
      resolve((m as { port: number }).port);
    }),
  );
  child.send({ keyHex: Buffer.from(key.bytes()).toString('hex'), plain, parentPort: address.port } satisfies PeerSetup);
  const peerAddress: PeerAddress = { host: HOST, port: await childPort };
  t.setPeerAddress(PEER_ID, peerAddress);
  await isUp;
  return { t, child };
}

async function pingPong(
  t: TcpTransport<ExampleMessage>,
  pongs: PongWaiter,
  count: number,
  payloadBytes: number,
): Promise<number[]> {
  const payload = new Uint8Array(payloadBytes);
  const rtts: number[] = [];
  const warmup = Math.min(1000, Math.ceil(count / 10));
  for (let seq = 0; seq < warmup + count; seq++) {
    const started = performance.now();
    const done = pongs.forSeq(seq);
    if (!t.send(PEER_ID, { type: 'ping', seq, payload })) throw new Error('send refused during ping-pong');
    await done;
    if (seq >= warmup) rtts.push((performance.now() - started) * 1000);
  }
  return rtts.sort((a, b) => a - b);
}

async function pipelined(
  t: TcpTransport<ExampleMessage>,
  pongs: PongWaiter,
  count: number,
  payloadBytes: number,
  window: number,
): Promise<number> {
  const payload = new Uint8Array(payloadBytes);
  const base = pongs.received;
  const started = performance.now();
  let sent = 0;
  const seqBase = 1_000_000_000;
  while (pongs.received - base < count) {
    while (sent < count && sent - (pongs.received - base) < window) {
      if (!t.send(PEER_ID, { type: 'ping', seq: seqBase + sent, payload })) break;
      sent++;
    }
    await pongs.forAny();
  }
  return (performance.now() - started) / 1000;
}

async function runMode(plain: boolean, messages: number, payloadBytes: number, window: number): Promise<ModeResult> {
  const pongs = new PongWaiter();
  const { t, child } = await connectPair(plain, generateClusterKey(), pongs);
  try {
    const rtts = await pingPong(t, pongs, messages, payloadBytes);
    const pipelinedMessages = messages * 10;
    const seconds = await pipelined(t, pongs, pipelinedMessages, payloadBytes, window);
    const perSecond = pipelinedMessages / seconds;
    return {
      mode: plain ? 'insecure plaintext' : 'aes-256-gcm',
      pingPongs: rtts.length,
      rttP50Us: percentile(rtts, 50),
      rttP99Us: percentile(rtts, 99),
      rttMaxUs: rtts[rtts.length - 1] ?? Number.NaN,
      pipelinedMessages,
      payloadBytes,
      messagesPerSecond: perSecond,
      megabytesPerSecond: (perSecond * payloadBytes) / 1e6,
    };
  } finally {
    child.disconnect();
    await t.close();
  }
}

function printTable(results: readonly ModeResult[], window: number): void {
  const header = [
    'mode',
    'ping-pongs',
    'rtt p50 µs',
    'rtt p99 µs',
    'rtt max µs',
    `pipelined msgs/s (window ${window})`,
    'payload MB/s',
  ];
  const rows = results.map((r) => [
    r.mode,
    String(r.pingPongs),
    r.rttP50Us.toFixed(1),
    r.rttP99Us.toFixed(1),
    r.rttMaxUs.toFixed(1),
    Math.round(r.messagesPerSecond).toLocaleString('en-US'),
    r.megabytesPerSecond.toFixed(1),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ');
  process.stdout.write(
    `${line(header)}\n${widths.map((w) => '-'.repeat(w)).join('-|-')}\n${rows.map(line).join('\n')}\n`,
  );
}

async function main(): Promise<void> {
  const values = benchArgs(
    {
      name: 'transport-rtt',
      summary: `TcpTransport between this process and a forked peer on loopback, encrypted (AES-256-GCM) and insecure
plaintext: ping-pong round trips (one in flight; p50, p99, max) and pipelined one-way messages/s and MB/s.
Not a timed test: take figures on an idle machine.`,
    },
    {
      messages: { kind: 'int', default: 20_000, min: 1, max: 10_000_000, value: 'N', help: 'messages per mode' },
      payload: { kind: 'int', default: 64, min: 0, max: 1024 * 1024, value: 'BYTES', help: 'payload bytes' },
      window: { kind: 'int', default: 1024, min: 1, max: 1_000_000, value: 'N', help: 'pipelined messages in flight' },
      json: { kind: 'boolean', help: 'print one JSON object instead of the table' },
      role: { kind: 'hidden', default: 'bench' },
    },
  );
  if (values.role === 'peer') {
    await runPeer();
    return;
  }
  const { messages, payload, window } = values;
  const results = [await runMode(false, messages, payload, window), await runMode(true, messages, payload, window)];
  if (values.json)
    process.stdout.write(`${JSON.stringify({ benchmark: 'transport-rtt', node: process.version, results })}\n`);
  else printTable(results, window);
}

main().catch((error: unknown) => {
  process.stderr.write(`transport-rtt: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
