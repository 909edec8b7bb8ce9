// Proves the Raft cluster log survives the CI batch: COHORT_SIM_SEEDS random seeds (default
// 1,000, each a two-minute fault phase plus the liveness phase) and every seed of the regression
// file, run on worker threads through the seed runner, with zero violations. The base seed is
// random unless COHORT_SIM_BASE_SEED is set, and is printed, so a failing batch can be rerun; each
// failing seed is printed with the command that replays it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { deriveSeeds, parseSeedFile, runBatch } from '../seed-runner.js';

const REGRESSION_FILE = fileURLToPath(new URL('../../../../testdata/sim-regression-seeds.txt', import.meta.url));

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  assert.ok(Number.isSafeInteger(n) && n >= 0, `${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return n;
}

test('the raft workload passes the CI seed batch with zero violations', { timeout: 30 * 60_000 }, async () => {
  const count = envInt('COHORT_SIM_SEEDS', 1000);
  const baseSeed = envInt('COHORT_SIM_BASE_SEED', randomInt(0, 0xffff_ffff));
  const regression = parseSeedFile(readFileSync(REGRESSION_FILE, 'utf8'));
  assert.deepEqual(regression.errors, []);
  const seeds = [...deriveSeeds(baseSeed, count), ...regression.seeds];
  const workers = Math.max(1, Math.min(availableParallelism(), 8));
  const batch = await runBatch({ workload: 'raft' }, seeds, workers);
  const failures = batch.summaries.filter((s) => s.violations.length > 0);
  const lines = failures.map((s) => `seed ${s.seed}: [${s.violations[0]?.checker ?? '?'}] ${(s.violations[0]?.message ?? '').split('\n')[0] ?? ''}\n  replay: node bin/cohort.js sim --seed ${s.seed} --workload raft --trace trace.txt`);
  process.stdout.write(
    `raft batch: ${batch.runs} runs (${count} from base seed ${baseSeed} + ${regression.seeds.length} regression), ` +
      `${(batch.simulatedMs / 3.6e6).toFixed(2)} simulated hours in ${(batch.wallMs / 1000).toFixed(1)} s wall on ${workers} workers, ` +
      `${failures.length} failing seeds\n${lines.join('\n')}\n`,
  );
  assert.equal(batch.runs, seeds.length);
  assert.ok(batch.simulatedMs >= count * 120_000, 'every seed ran a fault phase of at least two simulated minutes');
  assert.deepEqual(failures.map((s) => s.seed), [], `failing seeds:\n${lines.join('\n')}`);
});
