#!/usr/bin/env node
// Runs every compiled test file (dist/**/*.test.js) with node:test, in sorted order (but LAST below).
// Node 20's `node --test` does not expand globs and silently finds no .ts tests, so the list is
// built here. Extra arguments are substrings that select test files (e.g. `transport`).
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const dist = join(root, 'dist');
if (!existsSync(dist)) {
  console.error('run-tests: dist/ is missing; run `npm run build` first');
  process.exit(2);
}

function walk(dir, out) {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
// Files that load the whole machine (the hostile-user flood: a dozen processes and 180,000
// connections) run last, when little else is left to run beside them: next to a test that
// measures real time (a cold start within a bound), they would starve it of CPU.
const LAST = ['hostile-user.test.js'];
const isLast = (f) => LAST.some((name) => f.endsWith(`/${name}`));
const found = walk(dist, []).filter((f) => filters.length === 0 || filters.some((s) => relative(root, f).includes(s)));
const files = [...found.filter((f) => !isLast(f)), ...found.filter(isLast)];
if (files.length === 0) {
  console.error('run-tests: no test files matched');
  process.exit(2);
}
const concurrency = process.env.COHORT_TEST_CONCURRENCY ?? '2';
const result = spawnSync(
  process.execPath,
  ['--enable-source-maps', '--test', `--test-concurrency=${concurrency}`, ...files],
  {
    stdio: 'inherit',
    cwd: root,
  },
);
process.exit(result.status ?? 1);
