// Proves the Raft cluster log survives the CI batch: COHORT_SIM_SEEDS random seeds (default
// 1,000, each a two-minute fault phase plus the liveness phase) and every seed of the regression
// file, run on worker threads through the seed runner, with zero violations. The base seed is
// random unless COHORT_SIM_BASE_SEED is set, and is printed, so a failing batch can be rerun; each
// failing seed is printed with the command that replays it. COHORT_SIM_SKIP_BATCHES=1 skips it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseSeedFile, runCiBatch, seedBatchSkip } from '../seed-runner.js';

const REGRESSION_FILE = fileURLToPath(new URL('../../../../testdata/sim-regression-seeds.txt', import.meta.url));

test(
  'the raft workload passes the CI seed batch with zero violations',
  { timeout: 30 * 60_000, skip: seedBatchSkip() },
  async () => {
    const regression = parseSeedFile(readFileSync(REGRESSION_FILE, 'utf8'));
    assert.deepEqual(regression.errors, []);
    const r = await runCiBatch('raft', 1000, Math.max(1, Math.min(availableParallelism(), 8)), regression.seeds);
    assert.equal(r.batch.runs, r.seeds.length);
    assert.ok(
      r.batch.simulatedMs >= r.count * 120_000,
      'every seed ran a fault phase of at least two simulated minutes',
    );
    assert.deepEqual(r.failing, [], `failing seeds:\n${r.lines.join('\n')}`);
  },
);
