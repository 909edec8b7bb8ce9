// Proves the layering rules of DESIGN.md section 3 and STYLE.md rule 1 hold for every source
// file: cores import nothing from `node:` (or any builtin), nothing from layers above them, and
// nothing outside tests or the `sim` command imports the simulator.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, dirname, resolve } from 'node:path';
import { builtinModules } from 'node:module';

const root = resolve(dirname(new URL(import.meta.url).pathname), '../..');
const src = join(root, 'src');

/** Layers in order; a module may import only from its own layer and those before it. */
const ORDER = [
  'lib',
  'transport',
  'api',
  'storage',
  'quorum',
  'log',
  'runtime',
  'kv',
  'groups',
  // The membership machine holds the group table, the fence ledger and the recovery table.
  'fencing',
  'recovery',
  'membership',
  'dlm',
  'ddraid',
];
const CORES = new Set(['quorum', 'log', 'kv', 'membership', 'groups', 'fencing', 'recovery', 'dlm', 'ddraid']);
/**
 * A service's adapter (`*-service.ts` in its folder, on the node-services seam of
 * `src/runtime/node-service.ts`) may import any pure layer: the groups service proposes through
 * the membership machine, which holds the group table. Core files follow `ORDER` strictly.
 */
function isServiceAdapter(file: string): boolean {
  return file.endsWith('-service.ts') && CORES.has(layerOf(file));
}
/** Pure layers: no node builtins and no platform/sim/node/cli imports. */
const PURE = new Set([...ORDER]);
const FORBIDDEN_IN_CORES = [
  /\bDate\.now\b/,
  /\bnew Date\b/,
  /\bMath\.random\b/,
  /\bsetTimeout\b/,
  /\bsetInterval\b/,
  /\bprocess\./,
  /\bconsole\./,
];

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) sources(p, out);
    else if (name.endsWith('.ts') && !name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

function imports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const found: string[] = [];
  for (const m of text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/g))
    found.push(m[1] ?? '');
  for (const m of text.matchAll(/import\(\s*['"]([^'"]+)['"]\s*\)/g)) found.push(m[1] ?? '');
  return found;
}

function layerOf(file: string): string {
  const rel = relative(src, file);
  const first = rel.split('/')[0] ?? '';
  return /\.(ts|js)$/.test(first) ? '' : first;
}

const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

test('pure layers import no node builtins and no layer above them', () => {
  const problems: string[] = [];
  for (const file of sources(src)) {
    const layer = layerOf(file);
    if (!PURE.has(layer)) continue;
    for (const spec of imports(file)) {
      if (builtins.has(spec) || spec.startsWith('node:')) {
        problems.push(`${relative(root, file)} imports builtin ${spec}`);
        continue;
      }
      if (!spec.startsWith('.')) continue;
      const target = resolve(dirname(file), spec);
      const targetLayer = layerOf(target);
      if (targetLayer === '') continue; // src/constants.ts and other top-level leaves
      const from = ORDER.indexOf(layer);
      const to = ORDER.indexOf(targetLayer);
      if (to < 0 || (to > from && !isServiceAdapter(file)))
        problems.push(`${relative(root, file)} (${layer}) imports ${spec} (${targetLayer})`);
    }
  }
  assert.deepEqual(problems, []);
});

test('only shells and the simulator import the service registration list (src/services.ts)', () => {
  const problems: string[] = [];
  for (const file of sources(src)) {
    if (!PURE.has(layerOf(file))) continue;
    for (const spec of imports(file))
      if (spec.startsWith('.') && resolve(dirname(file), spec) === join(src, 'services.js'))
        problems.push(`${relative(root, file)} imports the registration list`);
  }
  assert.deepEqual(problems, []);
});

test('the host knows no service: src/runtime imports no service folder', () => {
  const problems: string[] = [];
  for (const file of sources(join(src, 'runtime')))
    for (const spec of imports(file)) {
      const layer = spec.startsWith('.') ? layerOf(resolve(dirname(file), spec)) : '';
      if (ORDER.indexOf(layer) > ORDER.indexOf('runtime')) problems.push(`${relative(root, file)} imports ${spec}`);
    }
  assert.deepEqual(problems, []);
});

test('cores touch no clock, randomness, timers, process or console', () => {
  const problems: string[] = [];
  for (const file of sources(src)) {
    if (!CORES.has(layerOf(file))) continue;
    const text = readFileSync(file, 'utf8');
    for (const re of FORBIDDEN_IN_CORES) if (re.test(text)) problems.push(`${relative(root, file)} matches ${re}`);
  }
  assert.deepEqual(problems, []);
});

test('only the simulator, tests, test support and the sim command import src/sim', () => {
  const problems: string[] = [];
  for (const file of sources(src)) {
    const layer = layerOf(file);
    if (layer === 'sim') continue;
    const rel = relative(src, file);
    // Test support (src/testing) is test code: it may drive cores on the simulator's scheduler.
    const allowed =
      (rel.startsWith('cli/') && (rel.includes('sim') || rel.includes('demo'))) || rel.startsWith('testing/');
    for (const spec of imports(file)) {
      if (!spec.startsWith('.')) continue;
      if (layerOf(resolve(dirname(file), spec)) === 'sim' && !allowed)
        problems.push(`${relative(root, file)} imports ${spec}`);
    }
  }
  assert.deepEqual(problems, []);
});

test('the layering check itself sees every source folder', () => {
  // A check that silently matched nothing could not fail; make sure it reads real files.
  const layers = new Set(sources(src).map(layerOf));
  for (const l of ['lib', 'transport', 'storage', 'runtime', 'kv', 'groups', 'membership'])
    assert.ok(layers.has(l), `expected sources in src/${l}`);
});
