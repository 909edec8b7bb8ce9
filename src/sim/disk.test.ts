// Proves SimDisk's crash model: synced data and synced directory changes always survive, unsynced
// writes may vanish or survive whole, torn as a prefix or as a random subset of sectors, but no
// byte is fabricated; a lost truncate rolls back to the durable size; a write that re-creates a
// file behind a pending remove or rename is covered by a later syncDir; pending completions never
// fire after a crash, and bit flips land in synced data. Then proves the WAL end to end on it:
// random workloads crashed at random times recover a prefix holding every acknowledged record,
// and crash-torn appends never look like a damaged synced record (tailSuspect).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from '../lib/prng.js';
import { Wal } from '../storage/wal.js';
import { DiskReadError, SimDisk, type SimDiskOptions } from './disk.js';

/** Events ordered by (time, insertion), as the simulator's scheduler orders them. */
class VirtualTime {
  now = 0;
  private seq = 0;
  private events: { at: number; seq: number; fn: () => void }[] = [];
  schedule = (delayMs: number, fn: () => void): void => {
    this.events.push({ at: this.now + delayMs, seq: this.seq++, fn });
    this.events.sort((a, b) => a.at - b.at || a.seq - b.seq);
  };
  runUntil(timeMs: number): void {
    while (this.events.length > 0 && this.events[0]!.at <= timeMs) {
      const next = this.events.shift()!;
      this.now = next.at;
      next.fn();
    }
    this.now = Math.max(this.now, timeMs);
  }
  runAll(): void {
    this.runUntil(Infinity);
    this.now = 0;
  }
}

function setup(seed: number, extra: Partial<SimDiskOptions> = {}): { time: VirtualTime; disk: SimDisk } {
  const time = new VirtualTime();
  return { time, disk: new SimDisk({ schedule: time.schedule, prng: new Prng(seed), ...extra }) };
}

test('synced data survives every crash; unsynced data is dropped, kept or torn, never fabricated', () => {
  let lost = 0;
  let kept = 0;
  let torn = 0;
  for (let seed = 0; seed < 300; seed++) {
    const { time, disk } = setup(seed);
    disk.write('f', 0, new Uint8Array(8).fill(1), () => undefined);
    disk.sync('f', () => undefined);
    disk.syncDir(() => undefined);
    time.runAll();
    disk.write('f', 8, new Uint8Array(8).fill(2), () => undefined);
    time.runAll();
    assert.equal(disk.read('f')!.length, 16, 'the process sees its completed write');
    disk.crash();
    const after = disk.read('f')!;
    assert.deepEqual(after.subarray(0, 8), new Uint8Array(8).fill(1), 'synced bytes survive');
    // Past the durable end: the written bytes, or zeros where the file grew without them.
    assert.ok(
      after.subarray(8).every((b) => b === 2 || b === 0),
      'nothing but written bytes or zeros appears',
    );
    if (after.length === 8) lost++;
    else if (after.length === 16 && after.subarray(8).every((b) => b === 2)) kept++;
    else torn++;
  }
  assert.ok(lost > 50 && kept > 20 && torn > 20, `all outcomes occur (lost ${lost}, kept ${kept}, torn ${torn})`);
});

test('a file created without syncDir may vanish; after syncDir it never does; renames survive as a prefix', () => {
  let vanished = 0;
  for (let seed = 0; seed < 100; seed++) {
    const { time, disk } = setup(seed);
    disk.write('a', 0, new Uint8Array([1]), () => undefined);
    disk.sync('a', () => undefined);
    time.runAll();
    disk.crash();
    if (disk.read('a') === null) vanished++;
    const again = setup(seed);
    again.disk.write('a', 0, new Uint8Array([1]), () => undefined);
    again.disk.sync('a', () => undefined);
    again.disk.syncDir(() => undefined);
    again.disk.write('b', 0, new Uint8Array([2]), () => undefined);
    again.disk.sync('b', () => undefined);
    again.disk.rename('b', 'a', () => undefined);
    again.time.runAll();
    again.disk.crash();
    const a = again.disk.read('a');
    // Either the rename survived (a = 2, b gone) or not (a = 1); never both files lost.
    assert.ok((a?.[0] === 2 && again.disk.read('b') === null) || a?.[0] === 1, `seed ${seed}: a=${String(a?.[0])}`);
  }
  assert.ok(vanished > 10 && vanished < 100, `unsynced creations sometimes vanish (${vanished}/100)`);
});

test('completions pending at a crash never fire; callbacks are never synchronous', () => {
  const { time, disk } = setup(1);
  let fired = false;
  disk.write('x', 0, new Uint8Array(4), () => (fired = true));
  assert.equal(fired, false);
  disk.crash();
  time.runAll();
  assert.equal(fired, false);
  assert.equal(disk.read('x'), null);
});

test('flipBits corrupts only synced data and reports what it did', () => {
  const { time, disk } = setup(2);
  assert.equal(disk.flipBits(3), 0);
  const original = new Uint8Array(64).fill(0x55);
  disk.write('s', 0, original, () => undefined);
  disk.sync('s', () => undefined);
  disk.syncDir(() => undefined);
  time.runAll();
  assert.equal(disk.flipBits(3), 3);
  const now = disk.read('s')!;
  let diff = 0;
  for (let i = 0; i < 64; i++) for (let b = 0; b < 8; b++) if (((now[i]! ^ original[i]!) >> b) & 1) diff++;
  assert.ok(diff >= 1 && diff <= 3, `between 1 and 3 bits differ (${diff})`);
});

test('an injected I/O error reaches the callback', () => {
  const { time, disk } = setup(3, { ioErrorProbability: 1 });
  let error: Error | null = null;
  disk.write('e', 0, new Uint8Array(1), (e) => (error = e));
  time.runAll();
  assert.match(String(error), /EIO/);
});

test('a targeted fault fails exactly the next operation of its class, naming the file', () => {
  const { time, disk } = setup(4, {});
  const errors: string[] = [];
  const note = (e: Error | null): void => {
    errors.push(e === null ? 'ok' : e.message);
  };
  disk.failNext('sync');
  disk.write('a', 0, new Uint8Array(4), note);
  disk.sync('a', note);
  disk.sync('a', note);
  time.runAll();
  assert.deepEqual(errors, ['ok', 'EIO: i/o error on fsync of a (simulated)', 'ok']);
  disk.failNext('write');
  disk.write('a', 0, new Uint8Array(4), note);
  time.runAll();
  assert.match(errors.at(-1) ?? '', /EIO: i\/o error on write of a/);
  disk.failNext('read');
  assert.throws(
    () => disk.read('a'),
    (e: unknown) => e instanceof DiskReadError && e.file === 'a',
  );
  assert.equal(disk.read('a')?.length, 4, 'only the next read fails');
  disk.failNext('sync');
  disk.disarm();
  disk.sync('a', note);
  time.runAll();
  assert.equal(errors.at(-1), 'ok', 'disarm removes a fault not yet hit');
});

test('onNextSync reports the next fsync as it starts, once, with its latency', () => {
  const { time, disk } = setup(5, { syncStallProbability: 1, syncStallMs: [300, 300] });
  const seen: number[] = [];
  disk.onNextSync((ms) => seen.push(ms));
  disk.write('a', 0, new Uint8Array(1), () => undefined);
  assert.deepEqual(seen, [], 'a write is not a sync');
  disk.sync('a', () => undefined);
  disk.sync('a', () => undefined);
  time.runAll();
  assert.deepEqual(seen, [300], 'called once, with the stalled latency');
});

test('WAL on SimDisk: random crashes recover a prefix holding every acknowledged record', () => {
  let crashes = 0;
  let tornTails = 0;
  for (let seed = 0; seed < 150; seed++) {
    const prng = new Prng(1000 + seed);
    const { time, disk } = setup(seed, { tornWriteProbability: 0.3, keepUnsyncedProbability: 0.3 });
    const appended: Uint8Array[] = []; // index = seq - 1
    let acked = 0;
    for (let life = 0; life < 4; life++) {
      const opened = Wal.open(disk, { segmentBytesTarget: 400, onDurable: (s) => (acked = Math.max(acked, s)) });
      const recovered = opened.recovery.records;
      assert.ok(recovered.length >= acked, `seed ${seed}: lost acknowledged records (${recovered.length} < ${acked})`);
      recovered.forEach((r, i) => {
        assert.equal(r.seq, i + 1, `seed ${seed}: sequence`);
        assert.deepEqual(r.payload, appended[i], `seed ${seed}: record ${r.seq} content`);
      });
      appended.length = recovered.length; // unacknowledged records beyond the prefix are gone
      tornTails += opened.recovery.tornTailBytes > 0 ? 1 : 0;
      assert.equal(
        opened.recovery.tailSuspect,
        false,
        `seed ${seed}: a crash-torn append looked like a damaged synced record`,
      );
      const wal = opened.wal;
      const until = time.now + prng.int(1, 30);
      for (let i = 0; i < 40; i++) {
        const p = new Uint8Array(prng.int(0, 50)).map(() => prng.int(0, 256));
        const seq = wal.append(1, p);
        appended[seq - 1] = p;
        time.runUntil(time.now + prng.float() * 1.5);
        if (time.now > until) break;
      }
      time.runUntil(until);
      // A crash forgets what the dead process appended but the disk did not keep.
      disk.crash();
      crashes++;
      acked = Math.min(acked, appended.length);
    }
  }
  assert.ok(crashes === 600 && tornTails > 20, `crashes ${crashes}, torn tails repaired ${tornTails}`);
});

/** Issues `start` and runs virtual time until its callback fired; returns its error. */
function settle(time: VirtualTime, start: (done: (e: Error | null) => void) => void): Error | null {
  const results: (Error | null)[] = [];
  start((error) => results.push(error));
  time.runAll();
  assert.equal(results.length, 1, 'the operation completed once');
  return results[0] ?? null;
}

test('a lost zero-extending truncate rolls back to the durable size; a lost cut restores the bytes', () => {
  for (let seed = 0; seed < 20; seed++) {
    const { time, disk } = setup(seed, { keepUnsyncedProbability: 0, tornWriteProbability: 0 });
    const durable = new Uint8Array(10).map((_, i) => i + 1);
    assert.equal(
      settle(time, (cb) => {
        disk.write('f', 0, durable, cb);
      }),
      null,
    );
    assert.equal(
      settle(time, (cb) => {
        disk.sync('f', cb);
      }),
      null,
    );
    assert.equal(
      settle(time, (cb) => {
        disk.syncDir(cb);
      }),
      null,
    );
    assert.equal(
      settle(time, (cb) => {
        disk.truncate('f', 4096, cb);
      }),
      null,
    );
    assert.equal(disk.size('f'), 4096, 'the process sees its truncate');
    disk.crash();
    assert.equal(disk.size('f'), 10, `seed ${seed}: the lost extension must not survive the crash`);
    assert.deepEqual(disk.read('f'), durable);
    assert.equal(
      settle(time, (cb) => {
        disk.truncate('f', 3, cb);
      }),
      null,
    );
    assert.equal(
      settle(time, (cb) => {
        disk.truncate('f', 100, cb);
      }),
      null,
    );
    disk.crash();
    assert.deepEqual(disk.read('f'), durable, `seed ${seed}: a lost cut and re-extension restore the durable bytes`);
  }
});

test('a write that re-creates a file behind a pending remove or rename is covered by a later syncDir', () => {
  // Directory syncs faster than writes, so a syncDir not ordered after the creation finishes first.
  const fast = {
    writeLatencyMs: [0.5, 0.5] as [number, number],
    syncLatencyMs: [0.01, 0.01] as [number, number],
    keepUnsyncedProbability: 0,
    tornWriteProbability: 0,
  };
  for (const dirOp of ['remove', 'rename'] as const) {
    for (let seed = 0; seed < 10; seed++) {
      const { time, disk } = setup(seed, fast);
      assert.equal(
        settle(time, (cb) => {
          disk.write('a', 0, new Uint8Array([1]), cb);
        }),
        null,
      );
      assert.equal(
        settle(time, (cb) => {
          disk.syncDir(cb);
        }),
        null,
      );
      const order: string[] = [];
      const note =
        (what: string) =>
        (e: Error | null): void => {
          assert.equal(e, null, what);
          order.push(what);
        };
      if (dirOp === 'remove') disk.remove('a', note('dir-op'));
      else disk.rename('a', 'b', note('dir-op'));
      disk.write('a', 0, new Uint8Array([2]), note('create'));
      disk.sync('a', note('sync'));
      disk.syncDir(note('syncDir'));
      time.runAll();
      assert.deepEqual(
        order,
        ['dir-op', 'create', 'sync', 'syncDir'],
        `${dirOp}, seed ${seed}: syncDir completed before the creation it must cover`,
      );
      disk.crash();
      assert.deepEqual(
        disk.read('a'),
        new Uint8Array([2]),
        `${dirOp}, seed ${seed}: the re-created file survives a crash after syncDir`,
      );
    }
  }
});

test('sector tears keep any subset of 512-byte sectors; missing ones keep the old bytes or read zero past the old end', () => {
  const SECTOR = 512;
  let laterWithoutEarlier = 0;
  let partial = 0;
  for (let seed = 0; seed < 200; seed++) {
    const { time, disk } = setup(seed, {
      tornWriteProbability: 1,
      keepUnsyncedProbability: 0,
      tornWriteModes: ['sectors'],
    });
    const old = new Uint8Array(1000).fill(0x11); // durable; ends inside sector 1
    assert.equal(
      settle(time, (cb) => {
        disk.write('f', 0, old, cb);
      }),
      null,
    );
    assert.equal(
      settle(time, (cb) => {
        disk.sync('f', cb);
      }),
      null,
    );
    assert.equal(
      settle(time, (cb) => {
        disk.syncDir(cb);
      }),
      null,
    );
    const offset = 700; // overwrites the end of the old data, then appends; not sector-aligned
    const data = new Uint8Array(6 * SECTOR).fill(0x22);
    const end = offset + data.length;
    assert.equal(
      settle(time, (cb) => {
        disk.write('f', offset, data, cb);
      }),
      null,
    );
    disk.crash();
    const after = disk.read('f')!;
    assert.ok(after.length >= old.length && after.length <= end, `seed ${seed}: size ${after.length}`);
    assert.deepEqual(after.subarray(0, offset), old.subarray(0, offset), 'bytes before the write are untouched');
    const kept: boolean[] = [];
    for (let sector = offset - (offset % SECTOR); sector < end; sector += SECTOR) {
      const from = Math.max(sector, offset);
      const to = Math.min(sector + SECTOR, end);
      const piece = after.subarray(from, Math.min(to, after.length));
      const isNew = piece.length === to - from && piece.every((b) => b === 0x22);
      const isOld = piece.every((b, i) => b === (from + i < old.length ? 0x11 : 0));
      assert.ok(
        isNew || isOld,
        `seed ${seed}: sector at ${sector} is neither the written bytes nor what was there before`,
      );
      kept.push(isNew && !isOld);
    }
    if (kept.some((k) => k) && kept.some((k) => !k)) partial++;
    if (kept.some((k, i) => k && kept.slice(0, i).some((earlier) => !earlier))) laterWithoutEarlier++;
  }
  assert.ok(
    partial > 50 && laterWithoutEarlier > 30,
    `partial tears ${partial}, later sectors kept without earlier ones ${laterWithoutEarlier}`,
  );
});

test('WAL on SimDisk: random sector tears of appended batches never look like a damaged synced record', () => {
  let tornTails = 0;
  for (let seed = 0; seed < 150; seed++) {
    const prng = new Prng(5000 + seed);
    const { time, disk } = setup(seed, {
      tornWriteProbability: 1,
      keepUnsyncedProbability: 0,
      tornWriteModes: ['sectors'],
    });
    let acked = 0;
    for (let life = 0; life < 4; life++) {
      const { wal, recovery } = Wal.open(disk, {
        segmentBytesTarget: 8192,
        onDurable: (s) => (acked = Math.max(acked, s)),
      });
      assert.equal(
        recovery.tailSuspect,
        false,
        `seed ${seed}, life ${life}: a crash-torn append was reported as a suspect tail`,
      );
      assert.ok(recovery.records.length >= acked, `seed ${seed}: lost acknowledged records`);
      tornTails += recovery.tornTailBytes > 0 ? 1 : 0;
      const until = time.now + prng.int(1, 20);
      while (time.now < until) {
        // Multi-sector batches: several records of up to 1.5 KiB each.
        const items = Array.from({ length: prng.int(1, 5) }, () => ({
          type: 1,
          payload: new Uint8Array(prng.int(0, 1500)).map(() => prng.int(1, 256)),
        }));
        wal.appendAll(items);
        time.runUntil(time.now + prng.float() * 1.5);
      }
      disk.crash();
    }
  }
  assert.ok(tornTails > 100, `only ${tornTails} recoveries found a torn tail: the tears did not reach the WAL`);
});
