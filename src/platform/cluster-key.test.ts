// Proves cluster keys are random and 32 bytes, never print their bytes, and that key files are
// written with mode 0600, never overwritten without force, and refused on read with a clear,
// actionable error when missing, readable by others, damaged or of the wrong length.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import {
  CLUSTER_KEY_BYTES,
  ClusterKey,
  ClusterKeyError,
  formatClusterKey,
  generateClusterKey,
  readClusterKeyFile,
  writeClusterKeyFile,
} from './cluster-key.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'cohort-key-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function keyError(code: string, pattern: RegExp): (e: unknown) => boolean {
  return (e: unknown) => e instanceof ClusterKeyError && e.code === code && pattern.test(e.message);
}

test('generated keys are 32 random bytes and never print their material', () => {
  const a = generateClusterKey();
  const b = generateClusterKey();
  assert.equal(a.bytes().length, CLUSTER_KEY_BYTES);
  assert.notDeepEqual(a.bytes(), b.bytes());
  const hex = Buffer.from(a.bytes()).toString('hex');
  for (const shown of [String(a), JSON.stringify({ a }), inspect(a), inspect({ nested: a })])
    assert.ok(!shown.includes(hex) && shown.includes('redacted'), shown);
  assert.throws(() => new ClusterKey(new Uint8Array(31)), keyError('KEY_INVALID', /32 bytes, got 31/));
});

test('a written key file has mode 0600 and reads back to the same key', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'cluster.key');
    const key = generateClusterKey();
    await writeClusterKeyFile(path, key);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    assert.deepEqual((await readClusterKeyFile(path)).bytes(), key.bytes());
  });
});

test('an existing key file is never overwritten without force; with force it is replaced atomically', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'cluster.key');
    const first = generateClusterKey();
    await writeClusterKeyFile(path, first);
    await assert.rejects(
      writeClusterKeyFile(path, generateClusterKey()),
      keyError('KEY_FILE_EXISTS', /already exists; refusing to overwrite it\. Use --force/),
    );
    assert.deepEqual((await readClusterKeyFile(path)).bytes(), first.bytes(), 'the refused write left the old key');
    const second = generateClusterKey();
    await writeClusterKeyFile(path, second, { force: true });
    assert.deepEqual((await readClusterKeyFile(path)).bytes(), second.bytes());
    assert.equal((await stat(path)).mode & 0o777, 0o600);
  });
});

test('reading refuses missing, group/other-readable, damaged and wrong-length files with the fix in the message', async () => {
  await withDir(async (dir) => {
    const path = join(dir, 'k');
    await assert.rejects(
      readClusterKeyFile(path),
      keyError('KEY_FILE_MISSING', /does not exist; create it with `cohort init`/),
    );
    await writeClusterKeyFile(path, generateClusterKey());
    await chmod(path, 0o644);
    await assert.rejects(readClusterKeyFile(path), keyError('KEY_FILE_PERMISSIONS', /mode 0644.*run `chmod 600 /));
    await chmod(path, 0o640);
    await assert.rejects(readClusterKeyFile(path), keyError('KEY_FILE_PERMISSIONS', /chmod 600/));
    await chmod(path, 0o600);
    const text = await readFile(path, 'utf8');
    await writeFile(path, text.slice(0, 40));
    await assert.rejects(readClusterKeyFile(path), keyError('KEY_FILE_FORMAT', /exactly 64 hex digits/));
    await writeFile(path, 'hello world\n');
    await assert.rejects(readClusterKeyFile(path), keyError('KEY_FILE_FORMAT', /is not a cohort cluster key file/));
    await writeFile(path, formatClusterKey(generateClusterKey()).replace(/[0-9a-f]\n$/, 'z\n'));
    await assert.rejects(readClusterKeyFile(path), keyError('KEY_FILE_FORMAT', /hex digits/));
    await writeFile(path, 'x'.repeat(5000));
    await assert.rejects(readClusterKeyFile(path), keyError('KEY_FILE_FORMAT', /one short line/));
    await assert.rejects(readClusterKeyFile(dir), (e: unknown) => e instanceof ClusterKeyError);
  });
});
