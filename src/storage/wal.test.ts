// Proves the WAL engine's recovery promise by brute force: a crash at every byte offset of a
// multi-segment write sequence (with nothing, zeros or garbage after the cut) recovers a prefix
// of the appended records that holds every record acknowledged durable; that mid-log damage
// raises WalCorruptionError; that group commit batches; and that an I/O failure is final.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from '../lib/prng.js';
import type { Disk, DiskCallback } from './disk.js';
import { MemoryDisk } from './memory-disk.js';
import { StorageError, WalCorruptionError } from './storage-error.js';
import { Wal, type WalOptions } from './wal.js';
import { parseSegmentName } from './wal-segment.js';

interface Appended {
  readonly seq: number;
  readonly type: number;
  readonly payload: Uint8Array;
}

interface LoggedWrite {
  readonly name: string;
  readonly offset: number;
  readonly data: Uint8Array;
  /** Highest sequence number acknowledged durable when this write was issued. */
  readonly durableAtIssue: number;
}

/** A MemoryDisk that logs every write in issue order, with the durable point at that moment. */
class RecordingDisk extends MemoryDisk {
  readonly writes: LoggedWrite[] = [];
  durable = 0;

  override write(name: string, offset: number, data: Uint8Array, done: DiskCallback): void {
    this.writes.push({ name, offset, data: data.slice(), durableAtIssue: this.durable });
    super.write(name, offset, data, done);
  }
}

function payload(prng: Prng, maxBytes: number): Uint8Array {
  const p = new Uint8Array(prng.int(0, maxBytes + 1));
  for (let i = 0; i < p.length; i++) p[i] = prng.int(0, 256);
  return p;
}

/** Runs waves of appends (group committed) over a small segment size; returns what was appended. */
function runWorkload(disk: RecordingDisk, prng: Prng, waves: number, options: WalOptions = {}): Appended[] {
  const { wal } = Wal.open(disk, { segmentBytesTarget: 300, onDurable: (seq) => (disk.durable = seq), ...options });
  const appended: Appended[] = [];
  for (let w = 0; w < waves; w++) {
    for (let n = prng.int(1, 6); n > 0; n--) {
      const item = { type: prng.int(1, 255), payload: payload(prng, 60) };
      appended.push({ seq: wal.append(item.type, item.payload), ...item });
    }
    if (prng.chance(0.5)) disk.runPending();
  }
  disk.runPending();
  assert.equal(wal.durableSeq, appended.at(-1)?.seq);
  return appended;
}

function assertRecovered(disk: Disk, appended: readonly Appended[], mustHold: number, what: string): number {
  const { recovery } = Wal.open(disk);
  const got = recovery.records;
  assert.ok(got.length >= mustHold, `${what}: recovered ${got.length} records, but ${mustHold} were acknowledged`);
  assert.ok(got.length <= appended.length, `${what}: fabricated records`);
  got.forEach((r, i) => {
    const want = appended[i]!;
    assert.ok(
      r.seq === want.seq && r.type === want.type && Buffer.compare(r.payload, want.payload) === 0,
      `${what}: record ${i} differs`,
    );
  });
  assert.equal(recovery.nextSeq, (got.at(-1)?.seq ?? 0) + 1, `${what}: next sequence number follows the last record`);
  return got.length;
}

test('crash at every byte offset recovers a valid prefix holding every acknowledged record', () => {
  const prng = new Prng(11);
  const disk = new RecordingDisk();
  const appended = runWorkload(disk, prng, 40);
  const writes = disk.writes;
  const segments = new Set(writes.map((w) => w.name));
  assert.ok(segments.size >= 4, `the workload spans several segments (${segments.size})`);
  let cases = 0;
  const files = new Map<string, Uint8Array>();
  for (const write of writes) {
    for (let cut = 0; cut <= write.data.length; cut++) {
      for (const tail of ['none', 'zeros', 'garbage'] as const) {
        if (tail !== 'none' && cut === write.data.length) continue;
        const image = new Map(files);
        const before = image.get(write.name) ?? new Uint8Array(0);
        const end = write.offset + (tail === 'none' ? cut : write.data.length);
        const file = new Uint8Array(Math.max(before.length, end));
        file.set(before);
        file.set(write.data.subarray(0, cut), write.offset);
        if (tail === 'garbage') for (let i = write.offset + cut; i < end; i++) file[i] = prng.int(0, 256);
        image.set(write.name, file);
        // The acknowledged records are exactly those durable when the cut write was issued.
        assertRecovered(
          new MemoryDisk({ files: image }),
          appended,
          write.durableAtIssue,
          `write to ${write.name}@${write.offset}, cut ${cut}, ${tail}`,
        );
        cases++;
      }
    }
    const before = files.get(write.name) ?? new Uint8Array(0);
    const file = new Uint8Array(Math.max(before.length, write.offset + write.data.length));
    file.set(before);
    file.set(write.data, write.offset);
    files.set(write.name, file);
  }
  assert.ok(cases > 10_000, `covered ${cases} crash points`);
  assert.equal(assertRecovered(new MemoryDisk({ files }), appended, appended.length, 'no crash'), appended.length);
});

test('a bit flip anywhere before the last batch is reported as corruption, never dropped', () => {
  const prng = new Prng(12);
  const disk = new RecordingDisk();
  const appended = runWorkload(disk, prng, 20);
  const image = disk.snapshot();
  const names = [...image.keys()].filter((n) => parseSegmentName(n) !== null);
  const lastName = names.at(-1)!;
  const lastBatchStart = Math.max(...disk.writes.filter((w) => w.name === lastName).map((w) => w.offset));
  let detected = 0;
  for (const name of names) {
    const bytes = image.get(name)!;
    for (let at = 0; at < bytes.length; at++) {
      if (name === lastName && at >= lastBatchStart) continue;
      const damaged = bytes.slice();
      damaged[at]! ^= 1 << prng.int(0, 8);
      const files = new Map(image).set(name, damaged);
      assert.throws(
        () => Wal.open(new MemoryDisk({ files })),
        (e) => e instanceof WalCorruptionError && e.segment === name,
        `flip in ${name} at ${at}`,
      );
      detected++;
    }
  }
  assert.ok(detected > 1000);
  // Damage inside the last batch is a torn tail: still a prefix, never wrong data.
  const bytes = image.get(lastName)!;
  for (let at = lastBatchStart; at < bytes.length; at++) {
    const damaged = bytes.slice();
    damaged[at]! ^= 1;
    assertRecovered(
      new MemoryDisk({ files: new Map(image).set(lastName, damaged) }),
      appended,
      0,
      `flip in last batch at ${at}`,
    );
  }
});

test('a missing middle segment is corruption', () => {
  const disk = new RecordingDisk();
  runWorkload(disk, new Prng(13), 20);
  const image = disk.snapshot();
  const names = [...image.keys()];
  assert.ok(names.length >= 3);
  image.delete(names[1]!);
  assert.throws(() => Wal.open(new MemoryDisk({ files: image })), /segment is missing or extra/);
});

test('group commit: many appends while an fsync is in flight share one write and one fsync', () => {
  const disk = new MemoryDisk();
  const { wal } = Wal.open(disk);
  for (let i = 0; i < 1000; i++) wal.append(1, new Uint8Array(128));
  disk.runPending();
  assert.equal(wal.durableSeq, 1000);
  assert.ok(disk.stats.syncs <= 2, `1000 appends took ${disk.stats.syncs} fsyncs`);
  const small = new MemoryDisk();
  const limited = Wal.open(small, { batchRecordsMax: 100 }).wal;
  for (let i = 0; i < 1000; i++) limited.append(1, new Uint8Array(16));
  small.runPending();
  assert.ok(
    small.stats.syncs >= 10 && small.stats.syncs <= 12,
    `batches are cut at batchRecordsMax (${small.stats.syncs} fsyncs)`,
  );
});

test('onDurable and flush fire only after the covering fsync, never synchronously', () => {
  const disk = new MemoryDisk();
  const durable: number[] = [];
  const { wal } = Wal.open(disk, { onDurable: (seq) => durable.push(seq) });
  assert.equal(
    wal.flush(() => assert.fail('nothing to wait for')),
    true,
  );
  wal.append(1, new Uint8Array([1]));
  let flushed = false;
  assert.equal(
    wal.flush((e) => {
      assert.equal(e, null);
      flushed = true;
    }),
    false,
  );
  assert.deepEqual(durable, []);
  assert.equal(flushed, false);
  disk.runPending();
  assert.deepEqual(durable, [1]);
  assert.equal(flushed, true);
});

test('backpressure refuses appends beyond the pending limit and changes nothing', () => {
  const disk = new MemoryDisk();
  const { wal } = Wal.open(disk, { pendingRecordsMax: 10 });
  for (let i = 0; i < 10; i++) wal.append(1, new Uint8Array(1));
  assert.throws(
    () => wal.append(1, new Uint8Array(1)),
    (e) => e instanceof StorageError && e.code === 'WAL_BACKPRESSURE',
  );
  assert.equal(wal.nextSeq, 11);
  disk.runPending();
  assert.equal(wal.append(1, new Uint8Array(1)), 11);
  assert.throws(
    () => wal.append(1, new Uint8Array(8 * 1024 * 1024 + 1)),
    (e) => e instanceof StorageError && e.code === 'WAL_RECORD_TOO_LARGE',
  );
});

/** A disk whose sync fails once `failSyncs` is set. */
class FailingDisk extends MemoryDisk {
  failSyncs = false;
  override sync(name: string, done: DiskCallback): void {
    super.sync(name, (e) => {
      done(this.failSyncs ? new Error('EIO: injected') : e);
    });
  }
}

test('a failed fsync fails the WAL for good: waiters get WAL_FAILED, nothing more is acknowledged', () => {
  const disk = new FailingDisk();
  const durable: number[] = [];
  let failed: StorageError | null = null;
  const { wal } = Wal.open(disk, { onDurable: (s) => durable.push(s), onFailed: (e) => (failed = e) });
  wal.append(1, new Uint8Array(4));
  disk.runPending();
  disk.failSyncs = true;
  wal.append(1, new Uint8Array(4));
  let flushError: StorageError | null = null;
  wal.flush((e) => (flushError = e));
  disk.runPending();
  disk.failSyncs = false;
  assert.deepEqual(durable, [1]);
  assert.equal((failed as StorageError | null)?.code, 'WAL_FAILED');
  assert.equal((flushError as StorageError | null)?.code, 'WAL_FAILED');
  assert.throws(
    () => wal.append(1, new Uint8Array(1)),
    (e) => e instanceof StorageError && e.code === 'WAL_FAILED',
  );
  assert.throws(() => wal.flush(() => undefined), /WAL_FAILED|failed/);
});

test('reset supersedes every earlier record, atomically at every crash point', () => {
  const prng = new Prng(14);
  const disk = new RecordingDisk();
  const before = runWorkload(disk, prng, 10);
  const { wal } = Wal.open(disk, { segmentBytesTarget: 300, onDurable: (s) => (disk.durable = s) });
  disk.runPending();
  const base = disk.snapshot();
  const writesBefore = disk.writes.length;
  let resetDone = false;
  wal.reset((e) => {
    assert.equal(e, null);
    resetDone = true;
  });
  const after: Appended[] = [];
  for (let i = 0; i < 5; i++) {
    const p = payload(prng, 30);
    after.push({ seq: wal.append(7, p), type: 7, payload: p });
    if (i === 2) disk.runPending();
  }
  disk.runPending();
  assert.ok(resetDone);
  const { recovery } = Wal.open(new MemoryDisk({ files: disk.snapshot() }));
  assert.deepEqual(
    recovery.records.map((r) => r.seq),
    after.map((a) => a.seq),
  );
  // Every cut of every write since the reset, old segments all still present (removals lost):
  // recovery returns either the whole old log or a prefix of the new one, never a mix.
  const files = new Map(base);
  for (const write of disk.writes.slice(writesBefore)) {
    for (let cut = 0; cut <= write.data.length; cut++) {
      const image = new Map(files);
      const old = image.get(write.name) ?? new Uint8Array(0);
      const file = new Uint8Array(Math.max(old.length, write.offset + cut));
      file.set(old);
      file.set(write.data.subarray(0, cut), write.offset);
      image.set(write.name, file);
      const seqs = Wal.open(new MemoryDisk({ files: image })).recovery.records.map((r) => r.seq);
      const isOld = seqs.length === before.length && seqs.every((s, i) => s === before[i]!.seq);
      const isNew = seqs.every((s, i) => s === after[i]!.seq);
      assert.ok(isOld || isNew, `cut ${cut} of write to ${write.name}: recovered ${seqs.join(',')}`);
    }
    const old = files.get(write.name) ?? new Uint8Array(0);
    const file = new Uint8Array(Math.max(old.length, write.offset + write.data.length));
    file.set(old);
    file.set(write.data, write.offset);
    files.set(write.name, file);
  }
});

test('truncateBefore drops only whole old segments and keeps the log contiguous', () => {
  const disk = new RecordingDisk();
  const appended = runWorkload(disk, new Prng(15), 30);
  const { wal } = Wal.open(disk, { segmentBytesTarget: 300 });
  disk.runPending();
  const cut = appended[Math.floor(appended.length / 2)]!.seq;
  let done = false;
  wal.truncateBefore(cut, (e) => {
    assert.equal(e, null);
    done = true;
  });
  disk.runPending();
  assert.ok(done);
  const { recovery } = Wal.open(new MemoryDisk({ files: disk.snapshot() }));
  const first = recovery.records[0]!.seq;
  assert.ok(first <= cut && first > 1, `log starts at ${first}, at or before ${cut}`);
  assert.equal(recovery.records.at(-1)!.seq, appended.at(-1)!.seq);
});
