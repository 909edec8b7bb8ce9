// Proves the cluster workload (membership on ClusterNode) survives a batch of random seeds with
// zero violations: COHORT_SIM_SEEDS seeds (default 150, each a 30 s fault phase plus the liveness
// phase) from a printed base seed (COHORT_SIM_BASE_SEED to rerun), on worker threads (at most
// COHORT_SIM_WORKERS, default 2). Each failing seed is printed with the command that replays it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { deriveSeeds, runBatch } from '../seed-runner.js';

function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  assert.ok(Number.isSafeInteger(n) && n >= 0, `${name} must be a non-negative integer, got ${JSON.stringify(raw)}`);
  return n;
}

test('the cluster workload passes a seed batch with zero violations', { timeout: 10 * 60_000 }, async () => {
  const count = envInt('COHORT_SIM_SEEDS', 150);
  const baseSeed = envInt('COHORT_SIM_BASE_SEED', randomInt(0, 0xffff_ffff));
  const workers = Math.max(1, envInt('COHORT_SIM_WORKERS', 2));
  const seeds = deriveSeeds(baseSeed, count);
  const batch = await runBatch({ workload: 'cluster' }, seeds, workers);
  const failures = batch.summaries.filter((s) => s.violations.length > 0);
  const lines = failures.map((s) => `seed ${s.seed}: [${s.violations[0]?.checker ?? '?'}] ${(s.violations[0]?.message ?? '').split('\n')[0] ?? ''}\n  replay: node bin/cohort.js sim --seed ${s.seed} --workload cluster --trace trace.txt`);
  process.stdout.write(
    `cluster batch: ${batch.runs} runs from base seed ${baseSeed}, ${(batch.simulatedMs / 3.6e6).toFixed(2)} simulated hours in ` +
      `${(batch.wallMs / 1000).toFixed(1)} s wall on ${workers} workers, ${failures.length} failing seeds\n${lines.join('\n')}\n`,
  );
  assert.equal(batch.runs, seeds.length);
  assert.deepEqual(failures.map((s) => s.seed), [], `failing seeds:\n${lines.join('\n')}`);
});
