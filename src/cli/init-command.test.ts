// Proves `cohort init` writes configs that `loadConfig` accepts and a key file with mode 0600,
// for one node and for a local cluster; refuses to overwrite (naming the files, writing nothing)
// without --force and replaces with it; reuses an existing key for a joining node; and returns
// exit code 2 for usage errors and 1 for failures.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runInit, type InitOptions } from './init-command.js';
import { main } from './main.js';
import { configFingerprint, loadConfig } from '../node/config.js';
import { readClusterKeyFile } from '../platform/cluster-key.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'cohort-init-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function run(opts: InitOptions): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runInit(opts, { out: (t) => (out += t), err: (t) => (err += t) });
  return { code, out, err };
}

test('a local cluster: N valid configs sharing one 0600 key, distinct ports, next commands printed', async () => {
  await withDir(async (dir) => {
    const r = await run({ nodes: 3, dir, basePort: 17_400, cluster: 'test' });
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /wrote cluster key .*cluster\.key \(mode 0600/);
    assert.match(r.out, /cohort start --config .*node-3\.yaml/);
    assert.equal((await stat(join(dir, 'cluster.key'))).mode & 0o777, 0o600);
    await readClusterKeyFile(join(dir, 'cluster.key'));
    const configs = await Promise.all([1, 2, 3].map((i) => loadConfig(join(dir, `node-${i}.yaml`))));
    const fingerprints = new Set<string>();
    for (const [i, c] of configs.entries()) {
      if (!c.ok) assert.fail(c.error.message);
      assert.equal(c.value.node.id, i + 1);
      assert.equal(c.value.listen.port, 17_400 + i + 1);
      assert.equal(c.value.metrics?.port, 17_500 + i + 1);
      assert.equal(c.value.keyFile, join(dir, 'cluster.key'));
      assert.equal(c.value.cluster.name, 'test');
      fingerprints.add(configFingerprint(c.value));
    }
    assert.equal(fingerprints.size, 1, 'every node of one cluster agrees on the cluster-wide settings');
  });
});

test('refuses to overwrite without --force, names every existing file and writes nothing', async () => {
  await withDir(async (dir) => {
    await writeFile(join(dir, 'node-2.yaml'), 'mine\n');
    const r = await run({ nodes: 3, dir });
    assert.equal(r.code, 1);
    assert.match(r.err, /node-2\.yaml already exists; refusing to overwrite\. Use --force/);
    assert.deepEqual((await readdir(dir)).sort(), ['node-2.yaml']);
    assert.equal(await readFile(join(dir, 'node-2.yaml'), 'utf8'), 'mine\n');
  });
});

test('--force replaces configs and the key', async () => {
  await withDir(async (dir) => {
    assert.equal((await run({ nodes: 2, dir })).code, 0);
    const before = await readFile(join(dir, 'cluster.key'), 'utf8');
    const again = await run({ nodes: 2, dir });
    assert.equal(again.code, 1);
    assert.match(again.err, /these files already exist: .*node-1\.yaml, .*node-2\.yaml, .*cluster\.key/);
    const forced = await run({ nodes: 2, dir, force: true, basePort: 18_000 });
    assert.equal(forced.code, 0, forced.err);
    assert.notEqual(await readFile(join(dir, 'cluster.key'), 'utf8'), before);
    assert.equal((await stat(join(dir, 'cluster.key'))).mode & 0o777, 0o600);
    const c = await loadConfig(join(dir, 'node-1.yaml'));
    assert.ok(c.ok);
    assert.equal(c.value.listen.port, 18_001);
    assert.deepEqual(
      (await readdir(dir)).filter((n) => n.startsWith('.')),
      [],
      'no temporary files left',
    );
  });
});

test('single node: writes config and key; a second node joining reuses the key', async () => {
  await withDir(async (dir) => {
    const first = await run({
      config: join(dir, 'n1.yaml'),
      address: '127.0.0.1:7401',
      peer: [{ id: 2, name: 'node-2', address: '127.0.0.1:7402' }],
    });
    assert.equal(first.code, 0, first.err);
    const key = await readFile(join(dir, 'cluster.key'), 'utf8');
    const second = await run({
      config: join(dir, 'n2.yaml'),
      nodeId: 2,
      address: '127.0.0.1:7402',
      peer: [{ id: 1, name: 'node-1', address: '127.0.0.1:7401' }],
      json: true,
    });
    assert.equal(second.code, 0, second.err);
    const out = JSON.parse(second.out) as { keyWritten: boolean; configs: string[] };
    assert.equal(out.keyWritten, false);
    assert.equal(await readFile(join(dir, 'cluster.key'), 'utf8'), key);
    const [a, b] = await Promise.all([loadConfig(join(dir, 'n1.yaml')), loadConfig(join(dir, 'n2.yaml'))]);
    assert.ok(a.ok && b.ok);
    assert.equal(configFingerprint(a.value), configFingerprint(b.value));
  });
});

test('a generated config that would be invalid is refused as a usage error before writing', async () => {
  await withDir(async (dir) => {
    const r = await run({
      config: join(dir, 'n1.yaml'),
      nodeId: 1,
      peer: [{ id: 1, name: 'other', address: '127.0.0.1:9' }],
    });
    assert.equal(r.code, 2);
    assert.match(r.err, /id 1 is also used by nodes\[0\]/);
    assert.deepEqual(await readdir(dir), []);
  });
});

test('usage errors exit 2 through the CLI; a damaged key file is a failure, not silently replaced', async () => {
  await withDir(async (dir) => {
    assert.equal(await main(['node', 'cohort', 'init', '--nodes', '3']), 2);
    assert.equal(await main(['node', 'cohort', 'init', '--nodes', '0', '--dir', dir]), 2);
    assert.equal(await main(['node', 'cohort', 'init', '--peer', 'nonsense']), 2);
    await writeFile(join(dir, 'cluster.key'), 'garbage', { mode: 0o600 });
    const r = await run({ config: join(dir, 'n1.yaml') });
    assert.equal(r.code, 1);
    assert.match(r.err, /not a cohort cluster key file.*pass --force to replace it/);
  });
});
