/**
 * `cohort sim`: the deterministic simulator from the command line.
 *
 *     cohort sim --seed S [--json] [--trace FILE] [--canary NAME] [--workload NAME]
 *     cohort sim --seeds N [--base-seed B] [--workers W] [--json] [--canary NAME] [--workload NAME]
 *
 * `--seed` replays one seed exactly and prints its summary (`traceHash` in JSON). `--seeds` runs
 * N seeds derived from a base seed (random unless given, and always printed so the batch can be
 * rerun) plus every seed of the regression file, across worker threads, and prints the failing
 * seeds with the command that replays each.
 *
 * Exit codes: 0 no violation, 1 at least one violation, 2 usage error.
 * JSON contract (batch): `{"seeds": N, "violations": <count>, "failedSeeds": [...], ...}`.
 *
 * `runDemo` (used by `cohort demo`) lives here because only the sim command may import the
 * simulator (see src/layering.test.ts).
 */
import { randomInt } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Command } from '@commander-js/extra-typings';
import { SIM_BATCH_SEEDS_MAX, SIM_NODES_MAX, SIM_WORKERS_MAX } from '../constants.js';
import type { BatchResult, SeedJob, SeedSummary, SimResult } from '../sim/index.js';
import { WORKLOAD_NAMES } from '../sim/workloads/names.js';
import { intOption } from './options.js';

const EXIT_OK = 0;
const EXIT_VIOLATION = 1;
const EXIT_USAGE = 2;
/** The regression seed file, relative to the package root. */
const REGRESSION_FILE = fileURLToPath(new URL('../../../testdata/sim-regression-seeds.txt', import.meta.url));
/** Failures listed in detail in a batch report. */
const FAILURES_LISTED_MAX = 20;

/** Options after parsing. */
interface SimCliOptions {
  seed?: number;
  seeds?: number;
  baseSeed?: number;
  workers?: number;
  workload: string;
  canary?: string;
  json?: true;
  trace?: string;
  faultSeconds?: number;
  nodes?: number;
  regression: boolean;
}

/** Registers `cohort sim` on `program`. */
export function registerSim(program: Command, setCode: (code: number) => void): void {
  program
    .command('sim')
    .description('run the deterministic cluster simulator: replay one seed or run a batch of seeds')
    .option('--seed <n>', 'replay one seed exactly', intOption('--seed', 0, Number.MAX_SAFE_INTEGER))
    .option(
      '--seeds <n>',
      'run N seeds (plus the regression seeds) and print the failing ones',
      intOption('--seeds', 1, SIM_BATCH_SEEDS_MAX),
    )
    .option(
      '--base-seed <n>',
      'derive the --seeds batch from this seed (default: random, printed)',
      intOption('--base-seed', 0, 0xffff_ffff),
    )
    .option(
      '--workers <n>',
      'worker threads for --seeds (default: available CPUs)',
      intOption('--workers', 1, SIM_WORKERS_MAX),
    )
    .option('--workload <name>', `workload to run (${WORKLOAD_NAMES.join(', ')})`, WORKLOAD_NAMES[0] ?? 'raft')
    .option('--canary <name>', 'enable a planted bug of the workload (the run must then fail)')
    .option(
      '--fault-seconds <n>',
      "virtual length of the fault phase (default: the workload's)",
      intOption('--fault-seconds', 1, 86_400),
    )
    .option(
      '--nodes <n>',
      'cluster size (default: drawn from the seed by the workload)',
      intOption('--nodes', 1, SIM_NODES_MAX),
    )
    .option('--trace <file>', 'write the full trace of a --seed run to FILE')
    .option('--no-regression', 'do not add the regression seed file to a --seeds batch')
    .option('--json', 'print one JSON object')
    .action(async (opts: SimCliOptions) => {
      setCode(await simAction(opts));
    });
}

function usage(message: string): number {
  process.stderr.write(`cohort sim: ${message}\n`);
  return EXIT_USAGE;
}

/** Checks option combinations; returns an error message or undefined. */
function validate(sim: Sim, opts: SimCliOptions): string | undefined {
  if ((opts.seed === undefined) === (opts.seeds === undefined))
    return 'give exactly one of --seed S (replay one seed) or --seeds N (run a batch)';
  const workload = sim.findWorkload(opts.workload);
  if (workload === undefined)
    return `unknown workload ${JSON.stringify(opts.workload)}; choose one of: ${WORKLOAD_NAMES.join(', ')}`;
  if (opts.canary !== undefined && !workload.canaries.includes(opts.canary)) {
    return `workload ${workload.name} has no canary ${JSON.stringify(opts.canary)}; choose one of: ${workload.canaries.join(', ')}`;
  }
  if (opts.seed !== undefined && (opts.baseSeed !== undefined || opts.workers !== undefined))
    return '--base-seed and --workers apply to --seeds only';
  if (opts.seeds !== undefined && opts.trace !== undefined)
    return '--trace applies to a single --seed run; replay the failing seed with --seed S --trace FILE';
  return undefined;
}

let stdoutGuarded = false;

/** A reader that closes early (`cohort sim --seeds 500 | head`) is not an error: drop output. */
function tolerateClosedStdout(): void {
  if (stdoutGuarded) return;
  stdoutGuarded = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code !== 'EPIPE') throw e;
  });
}

/** The simulator, loaded on first use (the rest of `cohort`, the daemon included, never loads it). */
type Sim = typeof import('../sim/index.js');

function loadSim(): Promise<Sim> {
  return import('../sim/index.js');
}

async function simAction(opts: SimCliOptions): Promise<number> {
  tolerateClosedStdout();
  const sim = await loadSim();
  const problem = validate(sim, opts);
  if (problem !== undefined) return usage(problem);
  const job: SeedJob = {
    workload: opts.workload,
    canary: opts.canary,
    faultPhaseMs: opts.faultSeconds === undefined ? undefined : opts.faultSeconds * 1000,
    nodeCount: opts.nodes,
  };
  if (opts.seed !== undefined) return replayOne(sim, job, opts.seed, opts);
  const regression = regressionSeeds(sim, opts.regression);
  if (typeof regression === 'string') return usage(regression);
  return runMany(sim, job, opts.seeds ?? 0, opts, regression);
}

function replayCommand(job: SeedJob, seed: number): string {
  const parts = ['cohort sim', `--seed ${seed}`, `--workload ${job.workload}`];
  if (job.canary !== undefined) parts.push(`--canary ${job.canary}`);
  if (job.faultPhaseMs !== undefined) parts.push(`--fault-seconds ${job.faultPhaseMs / 1000}`);
  if (job.nodeCount !== undefined) parts.push(`--nodes ${job.nodeCount}`);
  return parts.join(' ');
}

function replayOne(sim: Sim, job: SeedJob, seed: number, opts: SimCliOptions): number {
  const { summary, result } = sim.runSeed(job, seed, opts.trace);
  if (opts.json === true) {
    process.stdout.write(
      `${JSON.stringify({ ...result, wallMs: round(summary.wallMs), simSecondsPerWallSecond: rate(summary.simulatedMs, summary.wallMs) })}\n`,
    );
  } else {
    process.stdout.write(formatRun(result, summary.wallMs));
    if (opts.trace !== undefined) process.stdout.write(`full trace written to ${opts.trace}\n`);
  }
  return result.violations.length > 0 ? EXIT_VIOLATION : EXIT_OK;
}

function round(x: number): number {
  return Math.round(x * 10) / 10;
}

function rate(simulatedMs: number, wallMs: number): number {
  return wallMs > 0 ? round(simulatedMs / wallMs) : 0;
}

/** A readable summary of one run. */
export function formatRun(r: SimResult, wallMs: number): string {
  const lines = [
    `seed ${r.seed}  workload ${r.workload}${r.canary === null ? '' : `  canary ${r.canary}`}  nodes ${r.nodes}`,
    `faults: ${r.profile}`,
    `injected: ${r.faults.partitions} partitions, ${r.faults.crashes} crashes, ${r.faults.pauses} pauses, ${r.faults.clogs} clogs, ${r.faults.bitFlips} bit-flip events, ${r.faults.ioErrors} I/O errors (${r.faults.failStops} fail-stops), ${r.faults.powerCuts} power cuts`,
    `network: ${r.network.sent} sent, ${r.network.delivered} delivered, ${r.network.lost} lost, ${r.network.cut} cut by partitions, ${r.network.duplicated} duplicated`,
    `workload: ${r.workloadStats.map(([k, v]) => `${k} ${v}`).join(', ')}`,
    `simulated ${(r.simulatedMs / 1000).toFixed(1)} s (fault phase ${(r.faultPhaseMs / 1000).toFixed(1)} s) in ${(wallMs / 1000).toFixed(2)} s wall: ${rate(r.simulatedMs, wallMs)} simulated s per wall s`,
    r.convergedAfterMs === null
      ? 'liveness: not converged'
      : `liveness: converged ${r.convergedAfterMs} ms after faults stopped`,
    `trace: ${r.traceLines} lines, hash ${r.traceHash}`,
    `violations: ${r.violations.length}`,
  ];
  for (const v of r.violations) lines.push(`  [${v.checker}] at ${(v.timeUs / 1e6).toFixed(6)} s: ${v.message}`);
  if (r.traceTail.length > 0) lines.push('last trace lines:', ...r.traceTail.slice(-40).map((l) => `  ${l}`));
  return lines.join('\n') + '\n';
}

/** The regression seeds, or an error message when the file is malformed. */
function regressionSeeds(sim: Sim, enabled: boolean): { seeds: number[]; file: string | null } | string {
  if (!enabled) return { seeds: [], file: null };
  if (!existsSync(REGRESSION_FILE)) {
    process.stderr.write(`cohort sim: no regression seed file at ${REGRESSION_FILE}; running the random seeds only\n`);
    return { seeds: [], file: null };
  }
  const parsed = sim.parseSeedFile(readFileSync(REGRESSION_FILE, 'utf8'));
  if (parsed.errors.length > 0)
    return `regression seed file ${REGRESSION_FILE} is malformed: ${parsed.errors.join('; ')}`;
  return { seeds: parsed.seeds, file: REGRESSION_FILE };
}

async function runMany(
  sim: Sim,
  job: SeedJob,
  count: number,
  opts: SimCliOptions,
  regression: { seeds: number[]; file: string | null },
): Promise<number> {
  const baseSeed = opts.baseSeed ?? randomInt(0, 0xffff_ffff);
  const seeds = [...sim.deriveSeeds(baseSeed, count), ...regression.seeds];
  const workers = opts.workers ?? Math.min(availableParallelism(), SIM_WORKERS_MAX);
  const human = opts.json !== true;
  if (human)
    process.stdout.write(
      `running ${count} seeds from base seed ${baseSeed} + ${regression.seeds.length} regression seeds, workload ${job.workload}${job.canary === undefined ? '' : `, canary ${job.canary}`}, ${workers} workers\n`,
    );
  const onSummary = human
    ? (s: SeedSummary): void => {
        if (s.violations.length > 0) process.stdout.write(failureLine(job, s));
      }
    : undefined;
  const batch = await sim.runBatch(job, seeds, workers, onSummary);
  if (human) process.stdout.write(formatBatch(batch, count, baseSeed));
  else process.stdout.write(`${JSON.stringify(batchJson(job, batch, count, baseSeed, regression, workers))}\n`);
  return batch.violations > 0 ? EXIT_VIOLATION : EXIT_OK;
}

function failureLine(job: SeedJob, s: SeedSummary): string {
  const first = s.violations[0];
  return `FAIL seed ${s.seed}: [${first?.checker ?? '?'}] ${first?.message ?? ''}\n  replay: ${replayCommand(job, s.seed)}\n`;
}

function formatBatch(b: BatchResult, count: number, baseSeed: number): string {
  return (
    [
      `${b.runs} runs (${count} seeds from base seed ${baseSeed} + ${b.runs - count} regression), ${b.violations} violations in ${b.failedSeeds.length} seeds`,
      `simulated ${(b.simulatedMs / 3.6e6).toFixed(2)} h in ${(b.wallMs / 1000).toFixed(1)} s wall: ${round(b.simSecondsPerWallSecond)} simulated s per wall s`,
      b.failedSeeds.length > 0 ? `failed seeds: ${b.failedSeeds.join(' ')}` : 'no failing seed',
      ...b.workloadStats.map(([key, st]) => `  ${key.padEnd(28)} mean ${st.mean}  min ${st.min}  max ${st.max}`),
    ].join('\n') + '\n'
  );
}

function batchJson(
  job: SeedJob,
  b: BatchResult,
  count: number,
  baseSeed: number,
  regression: { seeds: number[]; file: string | null },
  workers: number,
): object {
  return {
    seeds: count,
    violations: b.violations,
    failedSeeds: b.failedSeeds,
    runs: b.runs,
    regressionSeeds: regression.seeds.length,
    regressionFile: regression.file,
    baseSeed,
    workload: job.workload,
    canary: job.canary ?? null,
    workers,
    simulatedSeconds: round(b.simulatedMs / 1000),
    wallSeconds: round(b.wallMs / 1000),
    simSecondsPerWallSecond: round(b.simSecondsPerWallSecond),
    workloadStats: Object.fromEntries(b.workloadStats),
    failures: b.summaries
      .filter((s) => s.violations.length > 0)
      .slice(0, FAILURES_LISTED_MAX)
      .map((s) => ({ seed: s.seed, violations: s.violations.slice(0, 3), replay: replayCommand(job, s.seed) })),
  };
}

/** Options of `cohort demo` (simulated until the daemon exists). */
export interface DemoOptions {
  readonly seed: number;
  readonly json: boolean;
}

/**
 * Runs the proving workload on a simulated 3-node cluster for one fixed seed and prints a
 * readable summary. Returns the exit code.
 */
export async function runDemo(opts: DemoOptions): Promise<number> {
  const job: SeedJob = { workload: 'broadcast', nodeCount: 3 };
  const { summary, result } = (await loadSim()).runSeed(job, opts.seed);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ ...result, simulated: true })}\n`);
    return result.violations.length > 0 ? EXIT_VIOLATION : EXIT_OK;
  }
  const kinds = result.eventCounts.map(([k, n]) => `  ${k.padEnd(12)} ${String(n).padStart(7)}`);
  process.stdout.write(
    [
      'cohort demo: a simulated 3-node cluster (reliable broadcast with persistence) on virtual time.',
      'The real-process demo (3 daemons on loopback) comes with the node daemon; this run uses the',
      'same node code path against a simulated network and disks, under injected faults.',
      '',
      formatRun(result, summary.wallMs).trimEnd(),
      '',
      'events per kind:',
      ...kinds,
      '',
      `replay this run exactly: ${replayCommand(job, opts.seed)} --trace demo-trace.txt`,
      'run a batch:             cohort sim --seeds 100',
      '',
    ].join('\n'),
  );
  return result.violations.length > 0 ? EXIT_VIOLATION : EXIT_OK;
}
