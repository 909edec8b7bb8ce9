// Proves the dlm workload (random dlmtest-style clients of the DLM) survives a batch of random
// seeds with zero violations: COHORT_SIM_SEEDS seeds (default 200, each a 20 s fault phase plus
// the liveness phase; measured 40-60 s on one shared core) from a printed base seed
// (COHORT_SIM_BASE_SEED to rerun), plus the seeds that revealed DLM bugs, on worker threads (at
// most COHORT_SIM_WORKERS, default 1). Each failing seed is printed with the command that
// replays it. COHORT_SIM_SKIP_BATCHES=1 skips it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { envInt, runCiBatch, seedBatchSkip } from '../seed-runner.js';

test(
  'the dlm workload passes a seed batch with zero violations',
  { timeout: 10 * 60_000, skip: seedBatchSkip() },
  async () => {
    const r = await runCiBatch('dlm', 200, Math.max(1, envInt('COHORT_SIM_WORKERS', 1)), [172, 374150725, 3449636879]);
    assert.equal(r.batch.runs, r.seeds.length);
    assert.deepEqual(r.failing, [], `failing seeds:\n${r.lines.join('\n')}`);
  },
);
