/**
 * Runs many seeds: in this thread (`workers: 1`) or across `worker_threads`, each worker loading
 * the compiled `seed-worker.js` next to this file. Results come back in seed-list order whatever
 * the scheduling, so a batch's report is reproducible.
 *
 * This module measures wall time (to report simulated seconds per wall second); nothing it
 * measures flows into a simulated run.
 */
import { randomInt } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { assert } from '../lib/assert.js';
import { Prng } from '../lib/prng.js';
import { SIM_BATCH_SEEDS_MAX, SIM_WORKERS_MAX } from '../constants.js';
import { simDiskFactory } from './default-disk.js';
import type { SimResult, Violation } from './simulation.js';
import { findWorkload } from './workloads/index.js';

/** What is run for every seed of a batch. */
export interface SeedJob {
  readonly workload: string;
  readonly canary?: string | undefined;
  readonly faultPhaseMs?: number | undefined;
  readonly nodeCount?: number | undefined;
}

/** One seed's outcome, small enough to pass between threads. */
export interface SeedSummary {
  readonly seed: number;
  readonly nodes: number;
  readonly traceHash: string;
  readonly violations: readonly Violation[];
  readonly simulatedMs: number;
  readonly wallMs: number;
  readonly convergedAfterMs: number | null;
  readonly events: number;
  /** The workload's own figures (e.g. commit latency), in its stable order. */
  readonly workloadStats: readonly (readonly [string, number])[];
}

/** One workload figure summarised over the runs of a batch. */
export interface StatSummary {
  readonly mean: number;
  readonly min: number;
  readonly max: number;
}

/** A batch's outcome. */
export interface BatchResult {
  readonly runs: number;
  /** Violations over all runs. */
  readonly violations: number;
  /** Seeds with at least one violation, in run order. */
  readonly failedSeeds: readonly number[];
  readonly simulatedMs: number;
  readonly wallMs: number;
  readonly simSecondsPerWallSecond: number;
  /** Each workload figure over the runs (mean of the per-run values, min, max). */
  readonly workloadStats: readonly (readonly [string, StatSummary])[];
  readonly summaries: readonly SeedSummary[];
}

/** Runs one seed in this thread and keeps the summary. */
export function runSeed(job: SeedJob, seed: number, tracePath?: string): { summary: SeedSummary; result: SimResult } {
  const workload = findWorkload(job.workload);
  assert(workload !== undefined, `unknown workload ${job.workload}`);
  const t0 = performance.now();
  const result = workload.run({
    seed,
    canary: job.canary,
    faultPhaseMs: job.faultPhaseMs,
    nodeCount: job.nodeCount,
    tracePath,
    diskFactory: simDiskFactory,
  });
  const wallMs = performance.now() - t0;
  const summary: SeedSummary = {
    seed,
    nodes: result.nodes,
    traceHash: result.traceHash,
    violations: result.violations,
    simulatedMs: result.simulatedMs,
    wallMs,
    convergedAfterMs: result.convergedAfterMs,
    events: result.events,
    workloadStats: result.workloadStats,
  };
  return { summary, result };
}

/** `count` seeds derived from `baseSeed` (32-bit unsigned, so they are easy to type back). */
export function deriveSeeds(baseSeed: number, count: number): number[] {
  assert(
    Number.isInteger(count) && count >= 0 && count <= SIM_BATCH_SEEDS_MAX,
    `seed count must be in [0, ${SIM_BATCH_SEEDS_MAX}]`,
  );
  const prng = new Prng(baseSeed).fork('batch');
  return Array.from({ length: count }, () => prng.nextU32());
}

/** Options of `runBatch`. */
export interface BatchOptions {
  /** The worker thread entry; default the compiled `seed-worker.js` next to this module (tests substitute a misbehaving one). */
  readonly workerUrl?: URL;
}

/**
 * Runs `seeds` on `workers` threads; `onSummary` sees each result as it arrives. Rejects when a
 * worker thread fails or exits before the batch is done (the batch's results would be partial).
 */
export async function runBatch(
  job: SeedJob,
  seeds: readonly number[],
  workers: number,
  onSummary?: (s: SeedSummary) => void,
  options: BatchOptions = {},
): Promise<BatchResult> {
  assert(
    Number.isInteger(workers) && workers >= 1 && workers <= SIM_WORKERS_MAX,
    `workers must be in [1, ${SIM_WORKERS_MAX}]`,
  );
  const t0 = performance.now();
  const workerUrl = options.workerUrl ?? new URL('./seed-worker.js', import.meta.url);
  const summaries =
    workers === 1 || seeds.length <= 1
      ? runInline(job, seeds, onSummary)
      : await runOnWorkers(job, seeds, Math.min(workers, seeds.length), workerUrl, onSummary);
  const wallMs = performance.now() - t0;
  const simulatedMs = summaries.reduce((a, s) => a + s.simulatedMs, 0);
  return {
    runs: summaries.length,
    violations: summaries.reduce((a, s) => a + s.violations.length, 0),
    failedSeeds: summaries.filter((s) => s.violations.length > 0).map((s) => s.seed),
    simulatedMs,
    wallMs,
    simSecondsPerWallSecond: wallMs > 0 ? simulatedMs / wallMs : 0,
    workloadStats: summariseStats(summaries),
    summaries,
  };
}

/** Mean, min and max of each workload figure over `summaries`, keys in first-seen order. */
export function summariseStats(summaries: readonly SeedSummary[]): (readonly [string, StatSummary])[] {
  const acc = new Map<string, { sum: number; n: number; min: number; max: number }>();
  for (const s of summaries) {
    for (const [key, value] of s.workloadStats) {
      if (!Number.isFinite(value)) continue;
      const a = acc.get(key) ?? { sum: 0, n: 0, min: value, max: value };
      a.sum += value;
      a.n++;
      a.min = Math.min(a.min, value);
      a.max = Math.max(a.max, value);
      acc.set(key, a);
    }
  }
  return [...acc].map(
    ([key, a]) => [key, { mean: Math.round((a.sum / a.n) * 100) / 100, min: a.min, max: a.max }] as const,
  );
}

function runInline(job: SeedJob, seeds: readonly number[], onSummary?: (s: SeedSummary) => void): SeedSummary[] {
  return seeds.map((seed) => {
    const { summary } = runSeed(job, seed);
    onSummary?.(summary);
    return summary;
  });
}

/** Messages from a seed worker. */
export type WorkerReply =
  | { readonly type: 'summary'; readonly index: number; readonly summary: SeedSummary }
  | { readonly type: 'error'; readonly index: number; readonly message: string };

function runOnWorkers(
  job: SeedJob,
  seeds: readonly number[],
  workers: number,
  workerUrl: URL,
  onSummary?: (s: SeedSummary) => void,
): Promise<SeedSummary[]> {
  const results = new Array<SeedSummary | undefined>(seeds.length);
  let next = 0;
  let done = 0;
  return new Promise((resolve, reject) => {
    const pool: Worker[] = [];
    /** The seed index each worker is running, if any. */
    const running = new Map<Worker, number>();
    let settled = false;
    // Idempotent: terminating the pool makes every worker emit 'exit', and an 'error' is
    // followed by an 'exit'; only the first outcome counts.
    const finish = (error?: Error): void => {
      if (settled) return;
      settled = true;
      for (const w of pool) void w.terminate();
      if (error !== undefined) reject(error);
      else resolve(results.map((r, i) => r ?? failedSummary(seeds[i] ?? 0, 'no result from worker')));
    };
    const feed = (w: Worker): void => {
      running.delete(w);
      if (next >= seeds.length) return;
      const index = next++;
      running.set(w, index);
      w.postMessage({ index, seed: seeds[index] });
    };
    const lost = (w: Worker, what: string): Error => {
      const index = running.get(w);
      const seed = index === undefined ? undefined : seeds[index];
      const during =
        seed === undefined
          ? 'between seeds'
          : `while running seed ${seed} (replay it in one thread with \`cohort sim --seed ${seed}\`)`;
      return new Error(
        `seed worker ${what} ${during}; ${done} of ${seeds.length} seeds were done, so the batch is incomplete`,
      );
    };
    for (let i = 0; i < workers; i++) {
      const w = new Worker(workerUrl, { workerData: job });
      pool.push(w);
      w.on('message', (reply: WorkerReply) => {
        if (settled) return;
        const summary =
          reply.type === 'summary' ? reply.summary : failedSummary(seeds[reply.index] ?? 0, reply.message);
        results[reply.index] = summary;
        onSummary?.(summary);
        done++;
        if (done === seeds.length) finish();
        else feed(w);
      });
      w.on('error', (e) => {
        const error = lost(w, `failed (${e.message})`);
        error.cause = e;
        finish(error);
      });
      // A worker that exits on its own (process.exit, a closed port, an unhandled rejection
      // turned into an exit code) emits no 'error'; without this the batch would never settle.
      w.on('exit', (code) => {
        finish(lost(w, `exited with code ${code}`));
      });
      feed(w);
    }
  });
}

function failedSummary(seed: number, message: string): SeedSummary {
  return {
    seed,
    nodes: 0,
    traceHash: '',
    violations: [{ checker: 'runner', message, timeUs: 0 }],
    simulatedMs: 0,
    wallMs: 0,
    convergedAfterMs: null,
    events: 0,
    workloadStats: [],
  };
}

/** Parses a regression seed file: one seed per line, `#` starts a comment, blank lines skipped. */
export function parseSeedFile(text: string): { seeds: number[]; errors: string[] } {
  const seeds: number[] = [];
  const errors: string[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = (raw.split('#')[0] ?? '').trim();
    if (line === '') return;
    const n = Number(line);
    if (/^\d+$/.test(line) && Number.isSafeInteger(n)) seeds.push(n);
    else errors.push(`line ${i + 1}: ${JSON.stringify(line)} is not a non-negative integer seed`);
  });
  return { seeds, errors };
}

// ------------------------------------------------------------------------------------------------
// The CI batch that `*-seeds.test.ts` files run: random seeds derived from a printed base seed
// (override with `COHORT_SIM_BASE_SEED`), their count from `COHORT_SIM_SEEDS`, plus fixed seeds (a
// regression list); the caller asserts on what it returns.

/** A non-negative integer from environment variable `name`, or `fallback` when unset or empty. */
export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  assert(Number.isSafeInteger(n) && n >= 0, `${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return n;
}

/**
 * Why the CI seed batches (the `*-seeds.test.ts` files) are skipped in this run, or `false` to run
 * them: `COHORT_SIM_SKIP_BATCHES=1` skips them, unset, empty or `0` runs them (any other value is a
 * mistake and asserts). For a run of the unit tests alone, such as CI's extra run on another Node
 * version (`scripts/test-node22.sh`); the batches still run in `npm test`. Pass the result as the
 * `skip` option of the batch's `test`, so the report names the knob.
 */
export function seedBatchSkip(): string | false {
  const raw = process.env['COHORT_SIM_SKIP_BATCHES'];
  if (raw === undefined || raw === '' || raw === '0') return false;
  assert(raw === '1', `COHORT_SIM_SKIP_BATCHES must be 1 (skip the seed batches) or 0, got ${JSON.stringify(raw)}`);
  return 'COHORT_SIM_SKIP_BATCHES=1: seed batches skipped';
}

/** What a CI batch ran and found. */
export interface CiBatch {
  readonly batch: BatchResult;
  readonly seeds: readonly number[];
  readonly count: number;
  readonly baseSeed: number;
  readonly workers: number;
  /** Seeds with a violation, ascending in run order. */
  readonly failing: readonly number[];
  /** One line per failing seed: its first violation and the replay command. */
  readonly lines: readonly string[];
}

/**
 * Runs `COHORT_SIM_SEEDS` (default `defaultCount`) seeds of `workload` plus `fixedSeeds` on
 * `workers` threads and prints one summary line (and the failing seeds) to stdout.
 */
export async function runCiBatch(
  workload: string,
  defaultCount: number,
  workers: number,
  fixedSeeds: readonly number[] = [],
): Promise<CiBatch> {
  const count = envInt('COHORT_SIM_SEEDS', defaultCount);
  const baseSeed = envInt('COHORT_SIM_BASE_SEED', randomInt(0, 0xffff_ffff));
  const seeds = [...deriveSeeds(baseSeed, count), ...fixedSeeds];
  const batch = await runBatch({ workload }, seeds, workers);
  const failures = batch.summaries.filter((s) => s.violations.length > 0);
  const lines = failures.map(
    (s) =>
      `seed ${s.seed}: [${s.violations[0]?.checker ?? '?'}] ${(s.violations[0]?.message ?? '').split('\n')[0] ?? ''}\n  replay: node bin/cohort.js sim --seed ${s.seed} --workload ${workload} --trace trace.txt`,
  );
  const fixed = fixedSeeds.length > 0 ? ` + ${fixedSeeds.length} regression` : '';
  process.stdout.write(
    `${workload} batch: ${batch.runs} runs (${count} from base seed ${baseSeed}${fixed}), ${(batch.simulatedMs / 3.6e6).toFixed(2)} simulated hours in ` +
      `${(batch.wallMs / 1000).toFixed(1)} s wall on ${workers} workers, ${failures.length} failing seeds\n${lines.join('\n')}\n`,
  );
  return { batch, seeds, count, baseSeed, workers, failing: failures.map((s) => s.seed), lines };
}
