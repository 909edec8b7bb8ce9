// Proves the seed runner never hangs on a lost worker: a worker thread that exits on its own
// (no 'error' event), with code 0 or not, makes the batch reject with a message naming the seed
// it was running, and a worker that throws does the same; the pool is torn down exactly once.
// Also proves the COHORT_SIM_SKIP_BATCHES knob skips the CI seed batches only when set to 1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { runBatch, seedBatchSkip } from './seed-runner.js';

/** Writes a worker entry with `body` (run on each seed message) and returns its URL. */
function fakeWorker(dir: string, name: string, body: string): URL {
  const path = join(dir, name);
  writeFileSync(
    path,
    `import { parentPort } from 'node:worker_threads';\nparentPort.on('message', (msg) => { ${body} });\n`,
  );
  return pathToFileURL(path);
}

const cases: [string, string, RegExp][] = [
  ['exits with code 0', 'process.exit(0);', /exited with code 0 while running seed (11|22)/],
  ['exits with code 3', 'process.exit(3);', /exited with code 3 while running seed (11|22)/],
  ['closes its port', 'parentPort.close();', /exited with code 0 while running seed (11|22)/],
  ['throws', 'throw new Error("boom " + msg.seed);', /failed \(boom (11|22)\) while running seed (11|22)/],
];

for (const [what, body, message] of cases) {
  test(`a worker that ${what} makes the batch reject instead of hanging`, { timeout: 20_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-seed-runner-'));
    try {
      const workerUrl = fakeWorker(dir, 'worker.mjs', body);
      const seen: number[] = [];
      await assert.rejects(
        runBatch({ workload: 'broadcast' }, [11, 22, 33], 2, (s) => seen.push(s.seed), { workerUrl }),
        (e: unknown) => e instanceof Error && message.test(e.message) && /batch is incomplete/.test(e.message),
      );
      assert.deepEqual(seen, [], 'no summary came back from a lost worker');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('a worker that answers every seed finishes the batch in seed order', { timeout: 20_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-seed-runner-'));
  try {
    const reply = `parentPort.postMessage({ type: 'summary', index: msg.index, summary: { seed: msg.seed, nodes: 3, traceHash: 'h' + msg.seed, violations: [], simulatedMs: 1, wallMs: 0, convergedAfterMs: 0, events: 1, workloadStats: [['x', msg.seed]] } });`;
    const workerUrl = fakeWorker(dir, 'worker.mjs', reply);
    const batch = await runBatch({ workload: 'broadcast' }, [5, 6, 7, 8, 9], 2, undefined, { workerUrl });
    assert.deepEqual(
      batch.summaries.map((s) => s.traceHash),
      ['h5', 'h6', 'h7', 'h8', 'h9'],
    );
    assert.equal(batch.violations, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('COHORT_SIM_SKIP_BATCHES=1 skips the seed batches; unset, empty or 0 runs them; anything else asserts', () => {
  const saved = process.env['COHORT_SIM_SKIP_BATCHES'];
  try {
    Reflect.deleteProperty(process.env, 'COHORT_SIM_SKIP_BATCHES');
    assert.equal(seedBatchSkip(), false);
    for (const runs of ['', '0']) {
      process.env['COHORT_SIM_SKIP_BATCHES'] = runs;
      assert.equal(seedBatchSkip(), false, JSON.stringify(runs));
    }
    process.env['COHORT_SIM_SKIP_BATCHES'] = '1';
    const why = seedBatchSkip();
    assert.ok(typeof why === 'string' && why.includes('COHORT_SIM_SKIP_BATCHES'), 'the skip reason names the knob');
    process.env['COHORT_SIM_SKIP_BATCHES'] = 'yes';
    assert.throws(() => seedBatchSkip(), /COHORT_SIM_SKIP_BATCHES must be 1/);
  } finally {
    if (saved === undefined) Reflect.deleteProperty(process.env, 'COHORT_SIM_SKIP_BATCHES');
    else process.env['COHORT_SIM_SKIP_BATCHES'] = saved;
  }
});
