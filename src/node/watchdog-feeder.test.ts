// Proves the daemon's watchdog feeder with a plain file standing in for /dev/watchdog (opening a
// real one arms a reboot): a running, healthy node feeds it; a clean stop ends with the magic
// close 'V' (the driver disarms); a configured device that cannot be opened stops the start with
// one line and exit 1; `watchdog.device` without `timeouts.watchdogMs` is a config error.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ProcessCluster, membersOf, runCohort, waitFor } from './process-cluster.js';

const TIMEOUTS = 'timeouts: {failureTimeoutMs: 2000, watchdogMs: 1500}';

test('a healthy node feeds its watchdog device and disarms it on a clean stop', async () => {
  const c = await ProcessCluster.create(3);
  try {
    await c.appendConfig(TIMEOUTS);
    const device = join(c.dir, 'watchdog-1');
    await writeFile(device, '');
    await appendFile(join(c.dir, 'node-1.yaml'), `watchdog: {device: ${JSON.stringify(device)}}\n`);
    c.startAll();
    await waitFor('every node quorate', 15_000, async () => {
      const ss = await Promise.all(c.ids.map((i) => c.status(i)));
      return ss.every((s) => s?.['quorate'] === true && membersOf(s).length === 3) ? true : null;
    });
    const fed = await waitFor('three feeds', 5_000, async () => {
      const bytes = await readFile(device);
      return bytes.length >= 3 ? bytes : null;
    });
    assert.ok(
      fed.value.every((b) => b === 0),
      'feeds write 0x00',
    );
    c.signal(1, 'SIGTERM');
    assert.equal(await c.exited(1, 10_000), 0);
    const after = await readFile(device);
    assert.equal(after.at(-1), 0x56, "a clean stop ends with the magic close 'V'");
  } finally {
    await c.close();
  }
});

test('a watchdog device that cannot be opened stops the start with one line', async () => {
  const c = await ProcessCluster.create(1);
  try {
    await c.appendConfig(`${TIMEOUTS}\nwatchdog: {device: ${JSON.stringify(join(c.dir, 'no-such-device'))}}`);
    const out = await runCohort(['start', '--config', join(c.dir, 'node-1.yaml')], 15_000);
    assert.equal(out.code, 1, out.stderr);
    assert.match(out.stderr, /cannot start: cannot open the watchdog device .*no-such-device/);
  } finally {
    await c.close();
  }
});

test('watchdog.device without timeouts.watchdogMs is a config error naming both', async () => {
  const c = await ProcessCluster.create(1);
  try {
    await c.appendConfig('watchdog: {device: /dev/watchdog}');
    const out = await runCohort(['start', '--config', join(c.dir, 'node-1.yaml')], 15_000);
    assert.equal(out.code, 2, out.stderr);
    assert.match(out.stderr, /watchdog\.device: needs timeouts\.watchdogMs/);
  } finally {
    await c.close();
  }
});
