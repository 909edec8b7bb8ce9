/**
 * DLM benchmark (issue 13). Not a test: it prints measured figures.
 *
 * Parts (`--part`, default all):
 * - `core`: one node's `DlmCore` in-process, a locally mastered resource: lock+unlock per second
 *   (the engine and node layer alone, no API).
 * - `socket`: 3 real `cohort start` daemons on loopback; typed clients over the Unix socket of
 *   node 1 lock and unlock, each its own resource: **local** (first asked by node 1, so mastered
 *   there: no peer message) and **remote** (first asked, and pinned with an NL lock, by node 2, so
 *   every call is a round trip to node 2), with 1, 8 and 64 concurrent clients: p50/p99 latency of
 *   one lock+unlock pair and pairs per second.
 * - `handoff`: one client per node contends for one resource (EX lock, unlock, again): grants per
 *   second across the 3 nodes.
 * - `kill`: a holder process (a separate `node` process with its own client) takes EX; a waiter on
 *   node 2 waits; the holder is killed with SIGKILL: time from the kill to the waiter's grant.
 * - `memory`: heap per held lock in one `DlmCore` holding 100,000 and 1,000,000 locks on
 *   locally mastered resources (process copy and master copy both counted).
 *
 * Usage: node dist/bench/dlm.js [--part all|core|socket|handoff|kill|memory] [--seconds S] [--kills N] [--json]
 * Take figures on an idle machine: anything else on the cores skews them.
 */
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type CohortClient } from '../src/client/index.js';
import { DlmCore } from '../src/dlm/dlm-core.js';
import { MODE } from '../src/dlm/lock-types.js';
import { incarnation, nodeId } from '../src/lib/ids.js';
import { ProcessCluster } from '../src/node/process-cluster.js';
import { benchArgs, percentile, runBench } from './bench-args.js';

const QUORATE_BOUND_MS = 20_000;

const args = benchArgs(
  {
    name: 'dlm',
    summary:
      'DLM lock+unlock latency and throughput (in-process, over the Unix socket to local and remote masters), hot-resource hand-offs, holder kill -> waiter granted, memory per lock.',
  },
  {
    part: {
      kind: 'choice',
      default: 'all',
      choices: ['all', 'core', 'socket', 'handoff', 'kill', 'memory'],
      help: 'which part to run',
    },
    seconds: { kind: 'number', default: 3, min: 0.2, max: 120, value: 'S', help: 'seconds per throughput figure' },
    kills: { kind: 'int', default: 10, min: 1, max: 100, value: 'N', help: 'holder kills to time' },
    json: { kind: 'boolean', help: 'print the figures as one JSON object instead of text' },
  },
);

const fmt = (x: number, d = 3): string => x.toFixed(d);

/** Every figure measured, by name (printed as JSON with --json). */
const figures: Record<string, number> = {};

/** Prints a line of the text report (not with --json). */
function say(line: string): void {
  if (!args.json) process.stdout.write(line);
}

// ------------------------------------------------------------------------------------------------
// In-process core

function coreNode(): { core: DlmCore; session: number } {
  const core = new DlmCore(nodeId(1), incarnation(1), {
    send: () => undefined,
    pending: () => 0,
    event: () => undefined,
    trace: () => undefined,
    departedSafe: () => true,
  });
  core.open('bench');
  core.onView('bench', 1, [{ node: nodeId(1), incarnation: 1 }]);
  return { core, session: core.openSession() };
}

function corePart(seconds: number): void {
  const { core, session } = coreNode();
  const names = Array.from({ length: 64 }, (_, i) => `r${i}`);
  let pairs = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    for (let i = 0; i < 1000; i++) {
      const r = core.lock(session, 'bench', names[i & 63] as string, MODE.EX, 0);
      if (!r.ok) throw r.error;
      const u = core.unlock(session, 'bench', r.value, 0);
      if (!u.ok) throw u.error;
    }
    pairs += 1000;
  }
  const s = (performance.now() - t0) / 1000;
  figures['corePairsPerSecond'] = Math.round(pairs / s);
  say(`core (in-process, local master): ${Math.round(pairs / s)} lock+unlock/s\n`);
}

function memoryPart(): void {
  for (const count of [100_000, 1_000_000]) {
    globalThis.gc?.();
    const before = process.memoryUsage().heapUsed;
    const { core, session } = coreNode();
    for (let i = 0; i < count; i++) {
      const r = core.lock(session, 'bench', `resource-${i}`, MODE.PR, 0);
      if (!r.ok) throw r.error;
    }
    globalThis.gc?.();
    const after = process.memoryUsage().heapUsed;
    figures[`memoryBytesPerLock${count}`] = Math.round((after - before) / count);
    say(
      `memory: ${count} held locks: ${fmt((after - before) / 2 ** 20, 1)} MiB heap, ${Math.round((after - before) / count)} B per lock${globalThis.gc === undefined ? ' (run with --expose-gc for exact figures)' : ''}\n`,
    );
    core.closeSession(session);
  }
}

// ------------------------------------------------------------------------------------------------
// Real daemons

async function withCluster(fn: (c: ProcessCluster, clients: CohortClient[]) => Promise<void>): Promise<void> {
  const c = await ProcessCluster.create(3);
  const clients: CohortClient[] = [];
  try {
    c.startAll();
    await c.waitQuorate(c.ids, QUORATE_BOUND_MS);
    for (const id of c.ids) clients.push(await connect({ socket: c.socket(id) }));
    await fn(c, clients);
  } finally {
    for (const cl of clients) await cl.close().catch(() => undefined);
    await c.close();
  }
}

async function pairsLoop(
  clients: readonly CohortClient[],
  nameOf: (i: number) => string,
  seconds: number,
): Promise<{ perSecond: number; p50: number; p99: number }> {
  const lat: number[] = [];
  const spaces = await Promise.all(clients.map((c) => c.dlm.lockspace('bench')));
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    spaces.map(async (ls, i) => {
      const name = nameOf(i);
      while (performance.now() < end) {
        const a = performance.now();
        const h = await ls.lock(name, 'EX');
        await h.unlock();
        lat.push(performance.now() - a);
      }
    }),
  );
  const s = (performance.now() - t0) / 1000;
  lat.sort((x, y) => x - y);
  return { perSecond: lat.length / s, p50: percentile(lat, 50), p99: percentile(lat, 99) };
}

async function socketPart(seconds: number): Promise<void> {
  await withCluster(async (c) => {
    const pinner = await connect({ socket: c.socket(2) });
    try {
      const pinLs = await pinner.dlm.lockspace('bench');
      say('socket (3 daemons; clients on node 1; one lock+unlock pair per sample):\n');
      say('  master  clients  pairs/s   p50 ms  p99 ms\n');
      for (const where of ['local', 'remote'] as const) {
        for (const n of [1, 8, 64]) {
          const clients: CohortClient[] = [];
          for (let i = 0; i < n; i++) clients.push(await connect({ socket: c.socket(1) }));
          const tag = `${where}-${n}`;
          if (where === 'remote') for (let i = 0; i < n; i++) await pinLs.lock(`${tag}-${i}`, 'NL'); // node 2 masters it
          // Warm up (the first lock looks the name up), then measure.
          await pairsLoop(clients, (i) => `${tag}-${i}`, 0.3);
          const f = await pairsLoop(clients, (i) => `${tag}-${i}`, seconds);
          figures[`${where}${n}PairsPerSecond`] = Math.round(f.perSecond);
          figures[`${where}${n}P50Ms`] = f.p50;
          figures[`${where}${n}P99Ms`] = f.p99;
          say(
            `  ${where.padEnd(6)}  ${String(n).padStart(7)}  ${String(Math.round(f.perSecond)).padStart(7)}  ${fmt(f.p50).padStart(7)}  ${fmt(f.p99).padStart(6)}\n`,
          );
          for (const cl of clients) await cl.close();
        }
      }
    } finally {
      await pinner.close();
    }
  });
}

async function handoffPart(clients: readonly CohortClient[], seconds: number): Promise<void> {
  const spaces = await Promise.all(clients.map((c) => c.dlm.lockspace('bench')));
  let grants = 0;
  const end = performance.now() + seconds * 1000;
  const t0 = performance.now();
  await Promise.all(
    spaces.map(async (ls) => {
      while (performance.now() < end) {
        const h = await ls.lock('hot', 'EX');
        grants++;
        await h.unlock();
      }
    }),
  );
  const s = (performance.now() - t0) / 1000;
  figures['handoffsPerSecond'] = Math.round(grants / s);
  say(`handoff (one client per node, one resource, EX): ${Math.round(grants / s)} grants/s\n`);
}

const HOLDER = `
import { connect } from ${JSON.stringify(new URL('../src/client/index.js', import.meta.url).href)};
const client = await connect({ socket: process.argv[1] });
const ls = await client.dlm.lockspace('bench');
await ls.lock(process.argv[2], 'EX');
process.stdout.write('held\\n');
setInterval(() => {}, 1000);
`;

async function killPart(c: ProcessCluster, clients: readonly CohortClient[], kills: number): Promise<void> {
  const waiterLs = await (clients[1] as CohortClient).dlm.lockspace('bench');
  const times: number[] = [];
  for (let k = 0; k < kills; k++) {
    const name = `kill-${k}`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', HOLDER, c.socket(1), name], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => {
        if (d.toString().includes('held')) resolve();
      });
      child.once('exit', () => {
        reject(new Error('the holder exited before holding'));
      });
    });
    const granted = waiterLs.lock(name, 'EX');
    await sleep(50); // the waiter is queued
    const t0 = performance.now();
    child.kill('SIGKILL');
    const h = await granted;
    times.push(performance.now() - t0);
    await h.unlock();
  }
  times.sort((a, b) => a - b);
  figures['killToGrantP50Ms'] = percentile(times, 50);
  figures['killToGrantMaxMs'] = times.at(-1) ?? Number.NaN;
  say(
    `kill (holder process on node 1 killed -9, waiter on node 2): p50 ${fmt(times.length > 0 ? percentile(times, 50) : NaN, 1)} ms, max ${fmt(times.at(-1) ?? NaN, 1)} ms over ${times.length}\n`,
  );
}

await runBench('dlm', async () => {
  const part = args.part;
  if (part === 'all' || part === 'core') corePart(args.seconds);
  if (part === 'all' || part === 'memory') memoryPart();
  if (part === 'all' || part === 'socket') await socketPart(args.seconds);
  if (part === 'all' || part === 'handoff' || part === 'kill')
    await withCluster(async (c, clients) => {
      if (part !== 'kill') await handoffPart(clients, args.seconds);
      if (part !== 'handoff') await killPart(c, clients, args.kills);
    });
  if (args.json) process.stdout.write(`${JSON.stringify(figures)}\n`);
});
