// Proves descriptor exhaustion is handled as pressure: `DescriptorPressure` logs the first failure
// of an episode as a warning naming the code and what failed, at most one more per window with
// the count, and the end of the episode once; retry delays double within their bounds. And, in a
// real process whose descriptors are all taken (EMFILE), a FileDisk write to a new file waits
// instead of failing and completes once descriptors are free, a listing succeeds on the reserve
// descriptor, and errors that are not exhaustion (a sync of an absent file) still fail at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  DESCRIPTOR_PRESSURE_LOG_WINDOW_MS,
  DESCRIPTOR_RETRY_MS_MAX,
  DESCRIPTOR_RETRY_MS_MIN,
  DescriptorPressure,
  descriptorExhaustion,
  descriptorRetryDelayMs,
} from './descriptor-pressure.js';

test('descriptorExhaustion: EMFILE and ENFILE only', () => {
  assert.equal(descriptorExhaustion(Object.assign(new Error('x'), { code: 'EMFILE' })), 'EMFILE');
  assert.equal(descriptorExhaustion(Object.assign(new Error('x'), { code: 'ENFILE' })), 'ENFILE');
  for (const code of ['EIO', 'ENOSPC', 'ENOENT', undefined])
    assert.equal(descriptorExhaustion(Object.assign(new Error('x'), { code })), null, String(code));
  assert.equal(descriptorExhaustion(null), null);
});

test('descriptorRetryDelayMs: doubles from the minimum, capped at the maximum', () => {
  assert.equal(descriptorRetryDelayMs(0), DESCRIPTOR_RETRY_MS_MIN);
  assert.equal(descriptorRetryDelayMs(1), 2 * DESCRIPTOR_RETRY_MS_MIN);
  let last = 0;
  for (let a = 0; a < 100; a++) {
    const d = descriptorRetryDelayMs(a);
    assert.ok(d >= last && d <= DESCRIPTOR_RETRY_MS_MAX, `attempt ${a}: ${d}`);
    last = d;
  }
  assert.equal(last, DESCRIPTOR_RETRY_MS_MAX);
});

test('DescriptorPressure: one warning per episode and window, with counts; the end is logged once', () => {
  let now = 1000;
  const lines: [string, string][] = [];
  const p = new DescriptorPressure(
    { warn: (_f, m) => lines.push(['warn', m]), info: (_f, m) => lines.push(['info', m]) },
    () => now,
  );
  p.relieved('opening a'); // no episode: nothing to say
  assert.equal(lines.length, 0);
  p.exhausted('opening a in /d', 'EMFILE');
  assert.equal(p.active, true);
  for (let i = 0; i < 50; i++) {
    now += 10;
    p.exhausted('opening a in /d', 'EMFILE');
  }
  assert.equal(lines.length, 1, 'repeats within the window are counted, not logged');
  assert.match(lines[0]?.[1] ?? '', /^out of file descriptors: opening a in \/d failed \(EMFILE: /);
  now += DESCRIPTOR_PRESSURE_LOG_WINDOW_MS - 500; // the window since the first line is over
  p.exhausted('opening b in /d', 'ENFILE');
  assert.equal(lines.length, 2);
  assert.match(
    lines[1]?.[1] ?? '',
    /^still out of file descriptors after 10 s: opening b in \/d failed \(ENFILE: .*; 51 failures since/,
  );
  now += 7;
  p.relieved('opening b in /d');
  p.relieved('opening b in /d');
  assert.equal(p.active, false);
  assert.equal(lines.length, 3, 'the end of the episode is one line');
  assert.deepEqual(lines[2], [
    'info',
    `file descriptors available again after ${DESCRIPTOR_PRESSURE_LOG_WINDOW_MS + 7} ms (52 failed attempts): opening b in /d succeeded`,
  ]);
});

/** Runs in a child under a small nofile limit; prints one JSON line of what it saw. */
const CHILD = `
import * as fs from 'node:fs';
const { FileDisk } = await import(process.env.FILE_DISK_URL);
const { DescriptorPressure } = await import(process.env.PRESSURE_URL);
const lines = [];
const pressure = new DescriptorPressure({ warn: (f, m) => lines.push('warn ' + m), info: (f, m) => lines.push('info ' + m) });
const disk = new FileDisk(process.env.DIR, { pressure });
const held = [];
for (;;) {
  try { held.push(fs.openSync('/dev/null', 'r')); } catch (e) { if (e.code !== 'EMFILE') throw e; break; }
}
let probe = 'no error';
try { fs.closeSync(fs.openSync('/dev/null', 'r')); } catch (e) { probe = e.code; }
const listed = disk.list();
const out = { probe, listed, lines };
const t0 = performance.now();
disk.write('f', 0, new Uint8Array([1, 2, 3]), (e) => {
  out.write = { error: e === null ? null : e.code, ms: Math.round(performance.now() - t0) };
  disk.sync('f', (s) => {
    out.sync = s === null ? null : s.code;
    out.read = Array.from(disk.read('f') ?? []);
    disk.sync('absent', (a) => {
      out.absent = a === null ? null : a.code;
      disk.close(() => { console.log(JSON.stringify(out)); });
    });
  });
});
setTimeout(() => {
  out.beforeRelease = out.write === undefined ? 'waiting' : out.write;
  for (const fd of held.splice(0, 16)) fs.closeSync(fd);
}, 300);
`;

test(
  'FileDisk with no descriptor free: a write waits and completes once one is, a listing uses the reserve, other errors still fail',
  { skip: process.platform === 'linux' && spawnSync('prlimit', ['--version']).status === 0 ? false : 'needs prlimit' },
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-fd-'));
    try {
      const r = spawnSync('prlimit', ['--nofile=64:64', process.execPath, '--input-type=module', '-e', CHILD], {
        encoding: 'utf8',
        timeout: 20_000,
        env: {
          ...process.env,
          DIR: dir,
          FILE_DISK_URL: new URL('./file-disk.js', import.meta.url).href,
          PRESSURE_URL: new URL('./descriptor-pressure.js', import.meta.url).href,
        },
      });
      assert.equal(r.status, 0, r.stderr);
      const out = JSON.parse(r.stdout.trim()) as Record<string, unknown>;
      assert.equal(out['probe'], 'EMFILE', 'the child really had no descriptor free');
      assert.deepEqual(out['listed'], [], 'the listing succeeded on the reserve descriptor');
      assert.equal(out['beforeRelease'], 'waiting', 'the write waited while no descriptor was free');
      const write = out['write'] as { error: string | null; ms: number };
      assert.equal(write.error, null, 'then it completed without error');
      assert.ok(write.ms >= 250, `it completed after the release (${write.ms} ms)`);
      assert.equal(out['sync'], null);
      assert.deepEqual(out['read'], [1, 2, 3]);
      assert.equal(out['absent'], 'ENOENT', 'a sync of an absent file fails at once, not retried');
      const lines = out['lines'] as string[];
      assert.ok(
        lines.some((l) => /^warn out of file descriptors: listing .* failed \(EMFILE/.test(l)),
        lines.join('\n'),
      );
      assert.ok(
        lines.some((l) => /^info file descriptors available again after \d+ ms/.test(l)),
        lines.join('\n'),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
