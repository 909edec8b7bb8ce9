// The watchdog helper against plain temporary files standing in for the device (CI may have no
// watchdog driver, and opening a real /dev/watchdog arms a reboot: no test here opens it). The
// bytes written are observed: feeds write NUL, a clean close ends with the magic `V`, an abandon
// writes no `V`; feeds during a write share the next one; a missing device is not created; a
// failing write (/dev/full) and a feed after close are typed errors; callbacks are asynchronous.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  readWatchdogTimeout,
  WATCHDOG_DEVICE_PATH,
  WatchdogDevice,
  WatchdogError,
  type WatchdogErrorCode,
} from './watchdog-device.js';

const dir = mkdtempSync(join(tmpdir(), 'cohort-watchdog-'));
test.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function openDevice(path: string): Promise<WatchdogDevice> {
  assert.notEqual(path, WATCHDOG_DEVICE_PATH, 'tests never open the real watchdog');
  return new Promise((resolve, reject) => {
    let sync = true;
    WatchdogDevice.open(path, (error, device) => {
      assert.ok(!sync, 'open completes asynchronously');
      if (error !== null || device === null) reject(error ?? new Error('no device'));
      else resolve(device);
    });
    sync = false;
  });
}

function openFailure(path: string): Promise<WatchdogError> {
  return new Promise((resolve) => {
    WatchdogDevice.open(path, (error, device) => {
      assert.equal(device, null);
      assert.ok(error instanceof WatchdogError);
      resolve(error);
    });
  });
}

/** Runs `op` and resolves with its callback's error; asserts the callback is asynchronous and single. */
function call(op: (done: (error: WatchdogError | null) => void) => void): Promise<WatchdogError | null> {
  return new Promise((resolve) => {
    let sync = true;
    let calls = 0;
    op((error) => {
      calls++;
      assert.equal(calls, 1, 'one callback per call');
      assert.ok(!sync, 'callbacks are asynchronous');
      resolve(error);
    });
    sync = false;
  });
}

function fakeDevice(name: string): string {
  const path = join(dir, name);
  writeFileSync(path, '');
  return path;
}

test('feeds write NUL bytes and a clean close ends with the magic V', async () => {
  const path = fakeDevice('clean');
  const device = await openDevice(path);
  assert.equal(device.state, 'open');
  assert.equal(
    await call((d) => {
      device.feed(d);
    }),
    null,
  );
  assert.equal(
    await call((d) => {
      device.feed(d);
    }),
    null,
  );
  assert.deepEqual([...readFileSync(path)], [0, 0]);
  assert.equal(device.feeds, 2);
  assert.equal(
    await call((d) => {
      device.close(d);
    }),
    null,
  );
  assert.equal(device.state, 'closed');
  assert.deepEqual([...readFileSync(path)], [0, 0, 0x56]);
  const late = await call((d) => {
    device.feed(d);
  });
  assert.equal((late as WatchdogError).code, 'WATCHDOG_CLOSED');
  const twice = await call((d) => {
    device.close(d);
  });
  assert.equal((twice as WatchdogError).code, 'WATCHDOG_CLOSED');
  assert.deepEqual([...readFileSync(path)], [0, 0, 0x56], 'nothing written after the close');
});

test('feeds during a write share the next write; a close waits for the writes asked before it', async () => {
  const path = fakeDevice('coalesce');
  const device = await openDevice(path);
  const results = Promise.all(
    [1, 2, 3, 4].map(() =>
      call((d) => {
        device.feed(d);
      }),
    ),
  );
  const closed = call((d) => {
    device.close(d);
  });
  assert.equal(device.state, 'closing');
  const late = await call((d) => {
    device.feed(d);
  });
  assert.equal((late as WatchdogError).code, 'WATCHDOG_CLOSED', 'no feed once closing');
  assert.deepEqual(await results, [null, null, null, null]);
  assert.equal(await closed, null);
  // The first feed wrote at once; the three asked during it shared one write; then the V.
  assert.deepEqual([...readFileSync(path)], [0, 0, 0x56]);
  assert.equal(device.feeds, 2);
});

test('abandon closes without the magic V (the driver stays armed)', async () => {
  const path = fakeDevice('abandon');
  const device = await openDevice(path);
  assert.equal(
    await call((d) => {
      device.feed(d);
    }),
    null,
  );
  assert.equal(
    await call((d) => {
      device.abandon(d);
    }),
    null,
  );
  assert.equal(device.state, 'closed');
  assert.deepEqual([...readFileSync(path)], [0]);
});

test('open failures are typed and never create the device; a failing write is WATCHDOG_WRITE_FAILED', async () => {
  const missing = join(dir, 'no-such-watchdog');
  assert.equal((await openFailure(missing)).code satisfies WatchdogErrorCode, 'WATCHDOG_NOT_FOUND');
  assert.ok(!existsSync(missing), 'a missing device is not created');
  const sub = join(dir, 'a-directory');
  mkdirSync(sub);
  assert.equal((await openFailure(sub)).code, 'WATCHDOG_OPEN_FAILED');

  // /dev/full accepts the open and fails every write with ENOSPC.
  const full = await openDevice('/dev/full');
  const error = await call((d) => {
    full.feed(d);
  });
  assert.ok(error !== null);
  assert.equal(error.code, 'WATCHDOG_WRITE_FAILED');
  assert.match(error.message, /ENOSPC/);
  assert.equal(full.state, 'open', 'a failed feed leaves the helper open');
  const closeError = await call((d) => {
    full.close(d);
  });
  assert.equal(closeError?.code, 'WATCHDOG_WRITE_FAILED', 'the magic V could not be written');
  assert.equal(full.state, 'closed', 'the descriptor is closed anyway');
});

test('readWatchdogTimeout reads the sysfs timeout without opening the device', async () => {
  const read = (sysfs: string): Promise<[WatchdogError | null, number | null]> =>
    new Promise((resolve) => {
      readWatchdogTimeout(sysfs, (error, seconds) => {
        resolve([error, seconds]);
      });
    });
  const good = join(dir, 'watchdog0');
  mkdirSync(good);
  writeFileSync(join(good, 'timeout'), '10\n');
  assert.deepEqual(await read(good), [null, 10]);
  const bad = join(dir, 'watchdog1');
  mkdirSync(bad);
  writeFileSync(join(bad, 'timeout'), 'soon\n');
  const [error, seconds] = await read(bad);
  assert.equal(error?.code, 'WATCHDOG_TIMEOUT_UNKNOWN');
  assert.equal(seconds, null);
  assert.equal((await read(join(dir, 'none')))[0]?.code, 'WATCHDOG_TIMEOUT_UNKNOWN');
});
