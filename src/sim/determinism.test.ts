// Proves the simulator's sources contain no source of nondeterminism: no wall clock, no
// Math.random, no real timers, no microtask or Promise scheduling, no iteration over object
// keys in the run path. Only the seed runner (which times whole runs from outside) and the
// thread entry may read a clock. A scan that matched no file could not fail, so it also checks
// that it read the modules it is meant to guard.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '../../..');
const simDir = join(root, 'src/sim');
/** Files owned by other engineers or outside the run path. */
const EXEMPT = new Set(['seed-runner.ts', 'seed-worker.ts', 'disk.ts']);
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
    if (statSync(p).isDirectory()) {
      if (name !== 'checkers') sources(p, out);
    } else if (name.endsWith('.ts') && !name.endsWith('.test.ts') && !EXEMPT.has(name)) out.push(p);
  }
  return out;
}

/** Strips comments so prose may mention the forbidden names. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
}

test('simulator sources use no nondeterministic API', () => {
  const files = sources(simDir);
  const problems: string[] = [];
  for (const file of files) {
    const text = code(readFileSync(file, 'utf8'));
    for (const [re, what] of FORBIDDEN) if (re.test(text)) problems.push(`${relative(root, file)} uses ${what}`);
  }
  assert.deepEqual(problems, []);
  const names = files.map((f) => relative(simDir, f));
  for (const expected of ['scheduler.ts', 'network.ts', 'node-host.ts', 'simulation.ts', 'nemesis.ts', 'workloads/broadcast-node.ts']) {
    assert.ok(names.includes(expected), `the scan must cover ${expected}`);
  }
});

test('the scan itself detects a forbidden call', () => {
  const sample = code('const t = Date.now(); // Math.random in a comment is fine');
  assert.ok(FORBIDDEN.some(([re]) => re.test(sample)));
  assert.ok(!FORBIDDEN.some(([re]) => re.test(code('/* setTimeout */ const x = 1;'))));
});
