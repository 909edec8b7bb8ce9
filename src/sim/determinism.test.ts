// Proves a simulated run is a pure function of its seed. First, by a source scan: no file that
// runs inside a simulated run (the simulator, its disk and checkers, and the storage, runtime,
// log and quorum layers) uses a wall clock, Math.random, real timers, microtask or Promise
// scheduling, or object-key iteration; only the seed runner and its thread entry (which time
// whole runs from outside) are exempt. A scan that matched no file could not fail, so it also
// checks that it read the modules it is meant to guard. Second, by golden hashes: the trace
// hashes of a few `broadcast` seeds are pinned in testdata/sim-golden-hashes.txt, so "same hash
// on any machine" is checked against a file, not only by replaying in the same process.
// COHORT_REWRITE=1 regenerates that file; commit it only with a reason the behaviour changed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { runBatch, runSeed } from './seed-runner.js';

const root = resolve(dirname(new URL(import.meta.url).pathname), '../../..');

/** Directories whose code runs inside a simulated run, scanned recursively. */
const SCANNED_DIRS = [
  'src/sim',
  'src/storage',
  'src/runtime',
  'src/log',
  'src/quorum',
  'src/kv',
  'src/groups',
  'src/fencing',
  'src/membership',
];
/** Files outside the run path: they time whole runs from outside the simulation. */
const EXEMPT = new Set(['src/sim/seed-runner.ts', 'src/sim/seed-worker.ts']);
/**
 * A service's local-API handlers (`*-handlers.ts`) run in the daemon and embedded mode only,
 * never inside a simulated run (the simulator registers no API): they may use Promises.
 * Its client namespace (`*-client.ts`) runs in the caller's process, on the far side of the API
 * from any node, so never inside a simulated run either.
 */
function outsideRuns(rel: string): boolean {
  return EXEMPT.has(rel) || rel.endsWith('-handlers.ts') || rel.endsWith('-client.ts');
}
/** Modules the scan must have read, one or more per layer it guards. */
const MUST_COVER = [
  'src/sim/scheduler.ts',
  'src/sim/network.ts',
  'src/sim/node-host.ts',
  'src/sim/simulation.ts',
  'src/sim/nemesis.ts',
  'src/sim/disk.ts',
  'src/sim/block-store.ts',
  'src/sim/process-runner.ts',
  'src/sim/fence-agents.ts',
  'src/sim/workloads/broadcast-node.ts',
  'src/sim/checkers/linearizability.ts',
  'src/storage/wal.ts',
  'src/storage/op-sequencer.ts',
  'src/storage/block-store.ts',
  'src/storage/memory-block-store.ts',
  'src/runtime/process-runner.ts',
  'src/runtime/raft-node.ts',
  'src/log/raft-core.ts',
  'src/quorum/weighted-quorum.ts',
  'src/membership/membership-service.ts',
  'src/groups/group-service.ts',
  'src/fencing/fence-ledger.ts',
  'src/fencing/fence-scheduler.ts',
  'src/kv/kv-service.ts',
  'src/fencing/fence-agent.ts',
  'src/fencing/exec-agent.ts',
  'src/fencing/process-agent.ts',
];
const FORBIDDEN: readonly [RegExp, string][] = [
  [/\bDate\b/, 'Date'],
  [/\bMath\.random\b/, 'Math.random'],
  [/\b(setTimeout|setInterval|setImmediate|queueMicrotask)\b/, 'real timers'],
  [/\bprocess\.hrtime\b|\bperformance\.now\b/, 'wall clock'],
  [/\bnew Promise\b|\bawait\b|\basync\b/, 'Promise scheduling'],
  [/\bfor\s*\(\s*(const|let)\s+\w+\s+in\b/, 'for..in over object keys'],
  [/\bObject\.(entries|values)\b/, 'object-key iteration'],
];

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !outsideRuns(relative(root, p))) out.push(p);
  }
  return out;
}

/** Characters after which a `/` starts a regular expression literal rather than a division. */
const BEFORE_REGEX = new Set([
  '',
  '(',
  ',',
  '=',
  ':',
  '[',
  '!',
  '&',
  '|',
  '?',
  '{',
  '}',
  ';',
  '+',
  '-',
  '*',
  '%',
  '<',
  '>',
  '~',
  '^',
]);

/**
 * The code of a TypeScript source with comments removed and the text of string, template and
 * regular-expression literals blanked, so prose and messages may mention the forbidden names
 * (template `${...}` expressions stay: they are code).
 */
function code(text: string): string {
  let out = '';
  let i = 0;
  const braces: number[] = []; // open-brace depth at each template `${` being read as code
  let depth = 0;
  let last = '';
  const skipString = (quote: string): void => {
    i++;
    while (i < text.length && text[i] !== quote && text[i] !== '\n') i += text[i] === '\\' ? 2 : 1;
    i++;
    out += `${quote}${quote}`;
  };
  /** Reads template text up to its end (returns to code) or to a `${` (code until the matching `}`). */
  const templateText = (): void => {
    while (i < text.length) {
      const c = text[i];
      if (c === '\\') i += 2;
      else if (c === '`') {
        i++;
        out += '`';
        return;
      } else if (c === '$' && text[i + 1] === '{') {
        i += 2;
        out += '${';
        braces.push(depth);
        depth++;
        return;
      } else i++;
    }
  };
  while (i < text.length) {
    const c = text[i] ?? '';
    const next = text[i + 1] ?? '';
    if (c === '/' && next === '/') {
      while (i < text.length && text[i] !== '\n') i++;
    } else if (c === '/' && next === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end < 0 ? text.length : end + 2;
      out += ' ';
    } else if (c === "'" || c === '"') {
      skipString(c);
      last = c;
    } else if (c === '`') {
      out += '`';
      i++;
      templateText();
      last = '`';
    } else if (c === '/' && BEFORE_REGEX.has(last)) {
      let inClass = false;
      i++;
      while (i < text.length && text[i] !== '\n' && (inClass || text[i] !== '/')) {
        if (text[i] === '[') inClass = true;
        else if (text[i] === ']') inClass = false;
        i += text[i] === '\\' ? 2 : 1;
      }
      i++;
      out += '/re/';
      last = '/';
    } else if (c === '}' && braces.length > 0 && braces.at(-1) === depth - 1) {
      braces.pop();
      depth--;
      i++;
      out += '}';
      templateText();
      last = '`';
    } else {
      if (c === '{') depth++;
      else if (c === '}') depth--;
      out += c;
      i++;
      if (!/\s/.test(c)) last = /[\w$)\]]/.test(c) ? 'x' : c;
    }
  }
  return out;
}

test('code that runs inside a simulated run uses no nondeterministic API', () => {
  const files = SCANNED_DIRS.flatMap((dir) => sources(join(root, dir)));
  const problems: string[] = [];
  for (const file of files) {
    const source = readFileSync(file, 'utf8');
    const text = code(source);
    for (const [re, what] of FORBIDDEN) if (re.test(text)) problems.push(`${relative(root, file)} uses ${what}`);
    // The literal-blanking reader must end in code, not inside a literal it misread.
    if (!/\bsetTimeout\b/.test(code(`${source}\nsetTimeout(f, 1);\n`)))
      problems.push(`${relative(root, file)}: the scan lost track of its literals`);
  }
  assert.deepEqual(problems, []);
  const names = new Set(files.map((f) => relative(root, f)));
  for (const expected of MUST_COVER) assert.ok(names.has(expected), `the scan must cover ${expected}`);
  for (const exempt of EXEMPT) assert.ok(!names.has(exempt), `${exempt} runs outside the simulation and is exempt`);
});

test('the scan detects forbidden calls in code and ignores comments, strings, templates and regexes', () => {
  const hits = (src: string): boolean => FORBIDDEN.some(([re]) => re.test(code(src)));
  assert.ok(hits('const t = Date.now(); // Math.random in a comment is fine'));
  assert.ok(hits('const s = `value ${await f()} here`;'), 'an await inside a template expression is code');
  assert.ok(hits("const s = 'it' + String(Math.random());"));
  assert.ok(hits('const r = /x/.test(a); setTimeout(f, 1);'));
  assert.ok(hits('const a = b / c; const d = e / f; new Promise(g);'), 'divisions are not regexes');
  assert.ok(!hits('/* setTimeout */ const x = 1;'));
  assert.ok(!hits("const m = 'entries await persistence';"));
  assert.ok(!hits('const m = `${n} entries await persistence, see ${"Date"}`;'));
  assert.ok(!hits('const r = /async|await/; const q = /["\'`]/;'));
});

// ---- golden trace hashes ---------------------------------------------------------------------

const GOLDEN_FILE = join(root, 'testdata/sim-golden-hashes.txt');
const GOLDEN_HEADER = `# Golden trace hashes: the traceHash a seed must give on any machine, any Node.js version
# and any thread count. One run per line: <workload> <faultPhaseMs> <seed> <traceHash>.
# Checked by src/sim/determinism.test.ts. A mismatch means simulated behaviour changed: if the
# change is intended (a new fault model, a protocol change), regenerate with
#   COHORT_REWRITE=1 node scripts/run-tests.mjs src/sim/determinism
# and commit this file together with the change that explains it.
`;
/** The runs pinned when the file is (re)written: a short fault phase keeps the test fast. */
const GOLDEN_RUNS: readonly { workload: string; faultPhaseMs: number; seed: number }[] = [
  { workload: 'broadcast', faultPhaseMs: 3000, seed: 2 },
  { workload: 'broadcast', faultPhaseMs: 3000, seed: 3 },
  { workload: 'broadcast', faultPhaseMs: 3000, seed: 4099 },
];

interface GoldenRun {
  readonly workload: string;
  readonly faultPhaseMs: number;
  readonly seed: number;
  readonly traceHash: string;
  readonly line: number;
}

function parseGolden(text: string): GoldenRun[] {
  const runs: GoldenRun[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = (raw.split('#')[0] ?? '').trim();
    if (line === '') return;
    const match = /^(\S+) (\d+) (\d+) ([0-9a-f]{64})$/.exec(line);
    assert.ok(
      match !== null,
      `${GOLDEN_FILE}:${i + 1}: expected "<workload> <faultPhaseMs> <seed> <traceHash>", got ${JSON.stringify(line)}`,
    );
    runs.push({
      workload: match[1] ?? '',
      faultPhaseMs: Number(match[2]),
      seed: Number(match[3]),
      traceHash: match[4] ?? '',
      line: i + 1,
    });
  });
  return runs;
}

function hashOf(run: { workload: string; faultPhaseMs: number; seed: number }): string {
  const { summary } = runSeed({ workload: run.workload, faultPhaseMs: run.faultPhaseMs }, run.seed);
  assert.deepEqual(summary.violations, [], `${run.workload} seed ${run.seed}: a golden run must be a passing run`);
  return summary.traceHash;
}

test('golden trace hashes: pinned seeds give the recorded hash (COHORT_REWRITE=1 regenerates)', () => {
  if (process.env.COHORT_REWRITE === '1') {
    const lines = GOLDEN_RUNS.map((run) => `${run.workload} ${run.faultPhaseMs} ${run.seed} ${hashOf(run)}`);
    writeFileSync(GOLDEN_FILE, `${GOLDEN_HEADER}${lines.join('\n')}\n`);
  }
  const golden = parseGolden(readFileSync(GOLDEN_FILE, 'utf8'));
  assert.ok(golden.length >= 3, `${GOLDEN_FILE} must pin at least three runs`);
  const mismatches: string[] = [];
  for (const run of golden) {
    const actual = hashOf(run);
    if (actual !== run.traceHash)
      mismatches.push(
        `line ${run.line}: ${run.workload} seed ${run.seed} (fault phase ${run.faultPhaseMs} ms) gave ${actual}, recorded ${run.traceHash}`,
      );
  }
  assert.deepEqual(
    mismatches,
    [],
    'simulated behaviour changed; if intended, regenerate with COHORT_REWRITE=1 and commit the file with the reason',
  );
});

test('golden trace hashes: the same hashes on worker threads', { timeout: 60_000 }, async () => {
  const golden = parseGolden(readFileSync(GOLDEN_FILE, 'utf8'));
  const jobs = [...new Set(golden.map((run) => `${run.workload} ${run.faultPhaseMs}`))].sort();
  for (const key of jobs) {
    const runs = golden.filter((run) => `${run.workload} ${run.faultPhaseMs}` === key);
    const first = runs[0];
    assert.ok(first !== undefined, 'a job has runs');
    const batch = await runBatch(
      { workload: first.workload, faultPhaseMs: first.faultPhaseMs },
      runs.map((run) => run.seed),
      2,
    );
    assert.deepEqual(
      batch.summaries.map((summary) => summary.traceHash),
      runs.map((run) => run.traceHash),
      `${key}: worker threads gave other hashes than the recorded ones`,
    );
  }
});
