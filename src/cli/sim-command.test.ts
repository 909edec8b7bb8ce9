// Proves the `cohort sim` and `cohort demo` contracts on the compiled bin: a batch prints one
// JSON object with seeds/violations/failedSeeds and exits 0 when clean; a canary batch exits 1
// and names failing seeds that replay to the same failure; a single seed's JSON carries a
// traceHash that is the same on every replay; usage errors exit 2 with a message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '../../..');

function cohort(...args: string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['bin/cohort.js', ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface BatchJson {
  seeds: number;
  violations: number;
  failedSeeds: number[];
  runs: number;
  regressionSeeds: number;
  baseSeed: number;
  simSecondsPerWallSecond: number;
  workloadStats: Record<string, { mean: number; min: number; max: number }>;
}

test('sim --seeds 20 --json: one JSON object, zero violations, exit 0', () => {
  const r = cohort('sim', '--seeds', '20', '--json', '--base-seed', '7', '--workers', '2');
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as BatchJson;
  assert.equal(out.seeds, 20);
  assert.equal(out.violations, 0);
  assert.deepEqual(out.failedSeeds, []);
  assert.equal(out.baseSeed, 7);
  assert.equal(out.runs, 20 + out.regressionSeeds);
  assert.ok(out.regressionSeeds > 0, 'the regression seed file is always run');
  assert.ok(out.simSecondsPerWallSecond > 0);
});

test('a canary batch exits 1 and its failing seed replays to the same failure', () => {
  const r = cohort(
    'sim',
    '--seeds',
    '4',
    '--json',
    '--base-seed',
    '7',
    '--workers',
    '2',
    '--workload',
    'broadcast',
    '--canary',
    'no-dedup',
    '--no-regression',
  );
  assert.equal(r.code, 1, r.stderr);
  const out = JSON.parse(r.stdout) as BatchJson;
  assert.equal(out.seeds, 4);
  assert.ok(out.violations > 0);
  assert.ok(out.failedSeeds.length > 0);
  const broadcasts = out.workloadStats['broadcasts'];
  assert.ok(
    broadcasts !== undefined && broadcasts.min <= broadcasts.mean && broadcasts.mean <= broadcasts.max,
    'workload figures are summarised over the batch',
  );
  const seed = String(out.failedSeeds[0]);
  const a = cohort('sim', '--seed', seed, '--workload', 'broadcast', '--canary', 'no-dedup', '--json');
  const b = cohort('sim', '--seed', seed, '--workload', 'broadcast', '--canary', 'no-dedup', '--json');
  assert.equal(a.code, 1);
  const ja = JSON.parse(a.stdout) as { traceHash: string; violations: { checker: string }[] };
  assert.equal(ja.traceHash, (JSON.parse(b.stdout) as { traceHash: string }).traceHash);
  assert.equal(ja.violations[0]?.checker, 'broadcast');
});

test('sim --seed S --json: the same traceHash on every replay, exit 0', () => {
  const a = cohort('sim', '--seed', '424242', '--json');
  const b = cohort('sim', '--seed', '424242', '--json');
  assert.equal(a.code, 0, a.stderr);
  const ja = JSON.parse(a.stdout) as { traceHash: string; seed: number; violations: unknown[] };
  assert.match(ja.traceHash, /^[0-9a-f]{64}$/);
  assert.equal(ja.seed, 424242);
  assert.deepEqual(ja.violations, []);
  assert.equal(ja.traceHash, (JSON.parse(b.stdout) as { traceHash: string }).traceHash);
});

test('usage errors exit 2 and say what is wrong', () => {
  const cases: [string[], RegExp][] = [
    [['sim'], /exactly one of --seed/],
    [['sim', '--seed', '1', '--seeds', '2'], /exactly one of --seed/],
    [
      ['sim', '--seed', '1', '--workload', 'broadcast', '--canary', 'nope'],
      /no canary "nope"; choose one of: no-forward/,
    ],
    [['sim', '--seed', '1', '--canary', 'nope'], /no canary "nope"; choose one of: ack-before-quorum/],
    [['sim', '--seed', '1', '--workload', 'nope'], /unknown workload "nope"/],
    [['sim', '--seeds', 'abc'], /--seeds must be an integer/],
    [['sim', '--seeds', '2', '--trace', '/tmp/x'], /--trace applies to a single --seed run/],
  ];
  for (const [args, message] of cases) {
    const r = cohort(...args);
    assert.equal(r.code, 2, `${args.join(' ')} exited ${r.code}`);
    assert.match(r.stderr, message);
  }
});

test('demo runs the simulated 3-node cluster and says the real one comes with the daemon', () => {
  const r = cohort('demo', '--simulated');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /simulated 3-node cluster/);
  assert.match(r.stdout, /comes with the node daemon/);
  assert.match(r.stdout, /nodes 3/);
  assert.match(r.stdout, /violations: 0/);
  assert.match(r.stdout, /hash [0-9a-f]{64}/);
  assert.match(r.stdout, /deliver +\d+/);
});
