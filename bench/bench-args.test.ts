// Proves every benchmark (each bench/*.ts but the shared parser) is a well-behaved tool, as real
// processes: `--help` prints its usage to stdout and exits 0 without running; an unknown flag, a
// bad value or a stray argument is one line on stderr and exit 2; and group-messaging refuses a
// window above the client's in-flight limit (its old default) up front instead of failing with
// OVERLOADED mid-run. Running each with its defaults takes minutes: that is checked by hand
// (docs/cli.md, "Benchmarks").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { API_CLIENT_REQUESTS_MAX } from '../src/constants.js';

const here = dirname(fileURLToPath(import.meta.url)); // dist/bench
const BENCHES = readdirSync(join(here, '../../bench'))
  .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts') && f !== 'bench-args.ts')
  .map((f) => f.slice(0, -3))
  .sort();

function bench(name: string, args: readonly string[]): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [join(here, `${name}.js`), ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('the benchmark list was read from bench/', () => {
  assert.ok(BENCHES.length >= 6, BENCHES.join(' '));
  for (const b of ['cluster-failover', 'group-messaging', 'peer-lanes', 'sim', 'transport-rtt', 'wal'])
    assert.ok(BENCHES.includes(b), b);
});

test('every benchmark answers --help with its usage and exit 0', () => {
  for (const name of BENCHES) {
    const r = bench(name, ['--help']);
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
    assert.match(r.stdout, new RegExp(`^Usage: node dist/bench/${name}\\.js \\[options\\]\\n`), name);
    assert.match(r.stdout, /--json/, `${name} lists its flags`);
    assert.equal(r.stderr, '', name);
  }
});

test('every benchmark refuses an unknown flag, a bad value and a stray argument: one line, exit 2', () => {
  for (const name of BENCHES) {
    for (const args of [['--no-such-flag'], ['--json=yes'], ['stray']]) {
      const r = bench(name, args);
      assert.equal(r.code, 2, `${name} ${args.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, '', name);
      assert.match(r.stderr, new RegExp(`^${name}: [^\\n]+; see --help\\n$`), `${name} ${args.join(' ')}`);
    }
  }
  const range = bench('wal', ['--seconds', '0']);
  assert.deepEqual(
    [range.code, range.stderr],
    [2, 'wal: --seconds must be a number from 0.1 to 600, got "0"; see --help\n'],
  );
});

test("group-messaging: its default window is the client's in-flight limit, and a larger one is refused up front", () => {
  const help = bench('group-messaging', ['--help']);
  assert.match(help.stdout, new RegExp(`sends in flight \\(default ${API_CLIENT_REQUESTS_MAX};`));
  const r = bench('group-messaging', ['--window', String(API_CLIENT_REQUESTS_MAX + 1)]);
  assert.equal(r.code, 2);
  assert.match(
    r.stderr,
    new RegExp(`^group-messaging: --window ${API_CLIENT_REQUESTS_MAX + 1} is above the client.s in-flight limit`),
  );
});
