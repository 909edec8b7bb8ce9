/**
 * Fencing and recovery benchmark on real daemons (3 `cohort start` processes on loopback, default
 * timeouts, the `process` fence agent), the figures issue 12 asks for. Each run starts a fresh
 * cluster in which every node takes part, through the client library, in the recovery of one
 * level-1 group (`bench`: callbacks that answer at once), then:
 *
 * (a) kill -9 of a follower, timed until: both survivors applied a view without it; the fence of
 *     its incarnation is recorded (the ledger's proof, read from the leader); the group's
 *     recovery finished on both survivors (their participants got `finish` for a new generation);
 * (b) once the killed node is back (it joins by itself: its fence is recorded), a SIGSTOP of the
 *     other follower (no reset, no proof: only the failure detector's timeouts can remove it),
 *     timed until the two others applied a view without it.
 *
 * Usage: node dist/bench/fencing-recovery.js [--runs N] [--json]   (default 20 runs)
 * Not a timed test: take figures on an idle machine; anything else on the cores skews them.
 */
import { performance } from 'node:perf_hooks';
import { connect, type ApiData, type CohortClient, type Participation } from '../src/client/index.js';
import { ProcessCluster, membersOf, waitFor } from '../src/node/process-cluster.js';
import { runBench, benchArgs, summarizeMs, writeMsTable } from './bench-args.js';

const RUNS_DEFAULT = 20;
const RUNS_MAX = 1000;
const QUORATE_BOUND_MS = 20_000;
const STEP_BOUND_MS = 15_000;
const POLL_MS = 5;

interface RunFigures {
  readonly killToViewMs: number;
  readonly killToFencedMs: number;
  readonly killToRecoveredMs: number;
  readonly stopToViewMs: number;
}

type Metric = keyof RunFigures;

const METRICS: readonly { readonly key: Metric; readonly label: string; readonly aim: string }[] = [
  { key: 'killToViewMs', label: '(a) kill -9 follower -> view change on both survivors', aim: 'p99 <= 200 ms' },
  { key: 'killToFencedMs', label: '(a) kill -9 follower -> fence recorded (process agent)', aim: '' },
  {
    key: 'killToRecoveredMs',
    label: '(a) kill -9 follower -> recovery finished (level-1 group)',
    aim: 'p99 <= 1000 ms',
  },
  { key: 'stopToViewMs', label: '(b) SIGSTOP follower (no reset) -> view change', aim: 'about 1.5 s (timeouts)' },
];

type Obj = Readonly<Record<string, ApiData>>;

/** A participant that answers at once and remembers the generations that finished. */
async function participant(
  c: ProcessCluster,
  id: number,
): Promise<{
  client: CohortClient;
  part: Participation;
  finished: Set<number>;
}> {
  const client = await connect({ socket: c.socket(id), clientName: 'bench fencing-recovery' });
  const finished = new Set<number>();
  const part = await client.recovery.participate(
    'bench',
    {
      stop: () => undefined,
      start: () => undefined,
      finish: (generation) => {
        finished.add(generation);
      },
    },
    { level: 1 },
  );
  return { client, part, finished };
}

async function until(what: string, check: () => Promise<boolean> | boolean): Promise<number> {
  const t = performance.now();
  for (;;) {
    if (await check()) return performance.now();
    if (performance.now() - t > STEP_BOUND_MS) throw new Error(`${what}: not within ${STEP_BOUND_MS} ms`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function viewWithout(c: ProcessCluster, ids: readonly number[], gone: number): Promise<boolean> {
  const ss = await Promise.all(ids.map((i) => c.status(i)));
  return ss.every((s) => s !== null && !membersOf(s).some(([n]) => n === gone));
}

async function oneRun(): Promise<RunFigures> {
  const c = await ProcessCluster.create(3);
  const parts: Awaited<ReturnType<typeof participant>>[] = [];
  try {
    await c.appendConfig(['fencing:', '  devices:', c.processDevice('kill'), '  levels: [[kill]]'].join('\n'));
    c.startAll();
    await c.waitQuorate(c.ids, QUORATE_BOUND_MS);
    const { leader } = await c.waitLeader(c.ids, QUORATE_BOUND_MS);
    for (const id of c.ids) parts.push(await participant(c, id));
    const [victim, frozen] = c.ids.filter((i) => i !== leader) as [number, number];
    const survivors = c.ids.filter((i) => i !== victim);
    const inc = Number((await c.status(victim))?.['incarnation']);
    await waitFor('the group has its three members', QUORATE_BOUND_MS, async () => {
      const g = (await c.request(leader, 'groups')) as Obj[];
      return (g.find((x) => x['group'] === 'bench')?.['members'] as unknown[] | undefined)?.length === 3 ? true : null;
    });
    const survivorParts = parts.filter((_, i) => survivors.includes(c.ids[i] ?? 0));
    const t0 = performance.now();
    await c.kill(victim);
    const view = until('view without the killed node', () => viewWithout(c, survivors, victim));
    const fenced = until('fence recorded', async () => {
      const h = (await c.request(leader, 'fence.history', { node: victim }).catch(() => null)) as {
        finished: Obj[];
      } | null;
      return h?.finished.some((r) => r['incarnation'] === inc) === true;
    });
    const recovered = until('recovery finished on both survivors', () =>
      survivorParts.every((p) => p.finished.size > 0),
    );
    const [tv, tf, tr] = await Promise.all([view, fenced, recovered]);
    // (b) a frozen follower: no reset, so only the timeouts remove it. The killed node comes back
    // first (its fence is recorded, so it joins with no operator): the frozen one's removal then
    // needs only the two others.
    c.start(victim);
    await c.waitQuorate(c.ids, QUORATE_BOUND_MS);
    await until('the restarted node in every view', async () => {
      const ss = await Promise.all(c.ids.map((i) => c.status(i)));
      return ss.every((s) => s !== null && membersOf(s).length === 3);
    });
    const t1 = performance.now();
    c.signal(frozen, 'SIGSTOP');
    const ts = await until('view without the frozen node', () => viewWithout(c, [leader, victim], frozen));
    c.signal(frozen, 'SIGCONT');
    return { killToViewMs: tv - t0, killToFencedMs: tf - t0, killToRecoveredMs: tr - t0, stopToViewMs: ts - t1 };
  } finally {
    for (const p of parts) {
      p.part.ended.catch(() => undefined);
      await p.client.close().catch(() => undefined);
    }
    await c.close();
  }
}

async function main(): Promise<void> {
  const values = benchArgs(
    {
      name: 'fencing-recovery',
      summary: `Fencing and recovery on 3 real \`cohort start\` processes on loopback (default timeouts, the process
fence agent, a level-1 group every node recovers through the client library). Per run: kill -9 of a follower until
the view change, the fence recorded and the recovery finished; a SIGSTOP of the other follower until the view
change. Not a timed test: take figures on an idle machine.`,
    },
    {
      runs: { kind: 'int', default: RUNS_DEFAULT, min: 1, max: RUNS_MAX, value: 'N', help: 'runs' },
      json: { kind: 'boolean', help: 'print one JSON object instead of the table' },
    },
  );
  const figures: RunFigures[] = [];
  for (let i = 0; i < values.runs; i++) {
    figures.push(await oneRun());
    if (!values.json)
      process.stderr.write(
        `run ${i + 1}/${values.runs}: ${JSON.stringify(figures.at(-1), (_k, v: unknown) => (typeof v === 'number' ? Math.round(v) : v))}\n`,
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
    `fencing and recovery, 3 processes on loopback, ${values.runs} runs (default timeouts)`,
    ['metric', 'median', 'p99', 'min', 'max', 'aim'],
    METRICS.map((m) => ({ label: m.label, summary: summary[m.key], extra: [m.aim] })),
  );
}

await runBench('fencing-recovery', main);
