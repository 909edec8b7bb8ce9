/**
 * two_node failover on real daemons (2 `cohort start` processes on loopback, default timeouts,
 * `quorum.twoNode` with `waitForAll`, the `process` fence agent). Each run starts a fresh pair:
 *
 * (a) kill -9 of one node (the leader in odd runs, the follower in even ones), timed until the
 *     survivor is quorate alone and a write through it is acknowledged (the failure timeout, the
 *     fence race, an election, the fail and fence commits), and until the fence is recorded;
 * (b) a clean stop (SIGTERM) of the node just restarted, timed until the survivor is quorate
 *     alone and a write through it is acknowledged (its leave and demotion commit before it stops).
 *
 * Usage: node dist/bench/two-node-failover.js [--runs N] [--json]   (default 20 runs)
 * Not a timed test: take figures on an idle machine; anything else on the cores skews them.
 */
import { performance } from 'node:perf_hooks';
import type { ApiData } from '../src/client/index.js';
import { ProcessCluster, membersOf } from '../src/node/process-cluster.js';
import { runBench, benchArgs, summarizeMs, writeMsTable } from './bench-args.js';

const RUNS_DEFAULT = 20;
const RUNS_MAX = 1000;
const QUORATE_BOUND_MS = 20_000;
const STEP_BOUND_MS = 15_000;
const POLL_MS = 5;

interface RunFigures {
  readonly killToAloneMs: number;
  readonly killToFencedMs: number;
  readonly stopToAloneMs: number;
}

type Metric = keyof RunFigures;

const METRICS: readonly { readonly key: Metric; readonly label: string }[] = [
  { key: 'killToAloneMs', label: '(a) kill -9 of the peer -> survivor alone, write acknowledged' },
  { key: 'killToFencedMs', label: '(a) kill -9 of the peer -> fence recorded' },
  { key: 'stopToAloneMs', label: '(b) clean stop of the peer -> survivor alone, write acknowledged' },
];

type Obj = Readonly<Record<string, ApiData>>;

async function until(what: string, check: () => Promise<boolean>): Promise<number> {
  const t = performance.now();
  for (;;) {
    if (await check()) return performance.now();
    if (performance.now() - t > STEP_BOUND_MS) throw new Error(`${what}: not within ${STEP_BOUND_MS} ms`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** Node `id` is quorate alone and a write through it is acknowledged. */
async function aloneAndWriting(c: ProcessCluster, id: number, key: string): Promise<number> {
  return until(`node ${id} alone and writing`, async () => {
    const s = await c.status(id);
    if (s?.['quorate'] !== true || membersOf(s).length !== 1) return false;
    try {
      await c.request(id, 'kv.put', { key, value: 'alone' }, 2000);
      return true;
    } catch {
      return false;
    }
  });
}

async function oneRun(run: number): Promise<RunFigures> {
  const c = await ProcessCluster.create(2);
  try {
    await c.appendConfig(c.twoNodeConfig('{}'));
    c.startAll();
    await c.waitQuorate(c.ids, QUORATE_BOUND_MS);
    const { leader } = await c.waitLeader(c.ids, QUORATE_BOUND_MS);
    const victim = run % 2 === 1 ? leader : (c.ids.find((i) => i !== leader) ?? 2);
    const survivor = c.ids.find((i) => i !== victim) ?? 1;
    const inc = Number((await c.status(victim))?.['incarnation']);
    const t0 = performance.now();
    await c.kill(victim);
    const alone = aloneAndWriting(c, survivor, 'a');
    const fenced = until('fence recorded', async () => {
      const h = (await c.request(survivor, 'fence.history', { node: victim }).catch(() => null)) as {
        finished: Obj[];
      } | null;
      return h?.finished.some((r) => r['incarnation'] === inc) === true;
    });
    const [ta, tf] = await Promise.all([alone, fenced]);
    // (b) the killed node comes back, gets its vote back, then stops cleanly.
    c.start(victim);
    await c.waitQuorate(c.ids, QUORATE_BOUND_MS);
    await until('both voters again', async () => (await c.status(survivor))?.['raftConfig'] === 'voters=(1,2)');
    const t1 = performance.now();
    c.signal(victim, 'SIGTERM');
    const ts = await aloneAndWriting(c, survivor, 'b');
    return { killToAloneMs: ta - t0, killToFencedMs: tf - t0, stopToAloneMs: ts - t1 };
  } finally {
    await c.close();
  }
}

async function main(): Promise<void> {
  const values = benchArgs(
    {
      name: 'two-node-failover',
      summary: `two_node failover on 2 real \`cohort start\` processes on loopback (default timeouts, quorum.twoNode,
the process fence agent). Per run: kill -9 of one node (leader and follower alternately) until the survivor is quorate
alone and writes, and until the fence is recorded; then a clean stop of the restarted node until the survivor writes
alone. Not a timed test: take figures on an idle machine.`,
    },
    {
      runs: { kind: 'int', default: RUNS_DEFAULT, min: 1, max: RUNS_MAX, value: 'N', help: 'runs' },
      json: { kind: 'boolean', help: 'print one JSON object instead of the table' },
    },
  );
  const figures: RunFigures[] = [];
  for (let i = 1; i <= values.runs; i++) {
    figures.push(await oneRun(i));
    if (!values.json)
      process.stderr.write(
        `run ${i}/${values.runs}: ${JSON.stringify(figures.at(-1), (_k, v: unknown) => (typeof v === 'number' ? Math.round(v) : v))}\n`,
      );
  }
  const summary = summarizeMs(
    figures,
    METRICS.map((m) => m.key),
  );
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ runs: values.runs, summary, samples: figures })}\n`);
    return;
  }
  writeMsTable(
    `two_node failover, 2 processes on loopback, ${values.runs} runs (default timeouts)`,
    ['metric', 'median', 'p99', 'min', 'max'],
    METRICS.map((m) => ({ label: m.label, summary: summary[m.key] })),
  );
}

await runBench('two-node-failover', main);
