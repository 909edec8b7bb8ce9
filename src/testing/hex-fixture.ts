/**
 * Test support: reads a hex fixture under `testdata/` (lines starting with `#` are comments; the
 * rest is hex, in any line breaks) as bytes. Used for snapshots written by older builds.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '../../..');

/** The bytes of `testdata/<path>`. */
export function readHexFixture(path: string): Uint8Array {
  const hex = readFileSync(join(root, 'testdata', path), 'utf8')
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .join('')
    .trim();
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}
