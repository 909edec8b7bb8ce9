// Proves the two_node workload (the cluster workload on two nodes, splits settled by the fence
// race) survives a batch of random seeds with zero violations: COHORT_SIM_SEEDS seeds (default 40,
// each a 60 s fault phase plus the liveness phase) from a printed base seed (COHORT_SIM_BASE_SEED
// to rerun), on worker threads (at most COHORT_SIM_WORKERS, default 2). Each failing seed is
// printed with the command that replays it. COHORT_SIM_SKIP_BATCHES=1 skips it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { envInt, runCiBatch, seedBatchSkip } from '../seed-runner.js';

test(
  'the two_node workload passes a seed batch with zero violations',
  { timeout: 10 * 60_000, skip: seedBatchSkip() },
  async () => {
    const r = await runCiBatch('two-node', 40, Math.max(1, envInt('COHORT_SIM_WORKERS', 2)));
    assert.equal(r.batch.runs, r.seeds.length);
    assert.deepEqual(r.failing, [], `failing seeds:\n${r.lines.join('\n')}`);
  },
);
