// Proves that MemoryDisk, SimDisk and FileDisk all honour the Disk contract (content, per-file
// order, asynchronous callbacks, errors for missing files, atomic rename, empty writes that never
// extend a file, a syncDir that waits for a write re-creating a file behind a pending remove or
// rename) and that the WAL, the stable-state file and snapshot files behave the same over each of
// them, across a reopen. Also proves FileDisk fsyncs the data directory and the parents it created.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Prng } from '../lib/prng.js';
import { logIndex, nodeId, term } from '../lib/ids.js';
import { FileDisk, makeDurableDirectory } from '../platform/file-disk.js';
import { SimDisk } from '../sim/disk.js';
import type { Disk, DiskCallback } from './disk.js';
import { MemoryDisk } from './memory-disk.js';
import { SnapshotStore } from './snapshot-store.js';
import { StableStore } from './stable-store.js';
import { CorruptFileError, type StorageError } from './storage-error.js';
import { Wal } from './wal.js';

/** One Disk implementation under test, with a way to advance it and to restart "the process". */
interface Fixture {
  disk: Disk;
  /** Lets pending completions run (one scheduler step, or one event-loop turn). */
  step(): Promise<void>;
  /** A new process's view of the same storage (only synced state is guaranteed). */
  reopen(): Promise<Disk>;
  dispose(): Promise<void>;
}

/** A minimal virtual-time scheduler for SimDisk: events ordered by (time, insertion). */
class VirtualTime {
  now = 0;
  private seq = 0;
  private readonly events: { at: number; seq: number; fn: () => void }[] = [];
  schedule = (delayMs: number, fn: () => void): void => {
    this.events.push({ at: this.now + delayMs, seq: this.seq++, fn });
    this.events.sort((a, b) => a.at - b.at || a.seq - b.seq);
  };
  runOne(): boolean {
    const next = this.events.shift();
    if (next === undefined) return false;
    this.now = next.at;
    next.fn();
    return true;
  }
}

const FACTORIES: Record<string, () => Fixture> = {
  memory: () => {
    let disk = new MemoryDisk();
    return {
      get disk() {
        return disk;
      },
      step: () => {
        disk.runPending(1);
        return Promise.resolve();
      },
      reopen: () => {
        disk = new MemoryDisk({ files: disk.snapshot() });
        return Promise.resolve(disk);
      },
      dispose: () => Promise.resolve(),
    };
  },
  sim: () => {
    const time = new VirtualTime();
    const disk = new SimDisk({ schedule: time.schedule, prng: new Prng(77) });
    return {
      disk,
      step: () => {
        time.runOne();
        return Promise.resolve();
      },
      reopen: () => {
        disk.crash();
        return Promise.resolve(disk);
      },
      dispose: () => Promise.resolve(),
    };
  },
  file: () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-disk-'));
    let disk = new FileDisk(dir);
    const close = (): Promise<void> =>
      new Promise((resolve, reject) => {
        disk.close((e) => {
          if (e === null) resolve();
          else reject(e);
        });
      });
    return {
      get disk() {
        return disk;
      },
      step: () => new Promise((resolve) => setImmediate(resolve)),
      reopen: async () => {
        await close();
        disk = new FileDisk(dir);
        return disk;
      },
      dispose: async () => {
        await close();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
};

async function until(fx: Fixture, cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!cond()) {
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await fx.step();
  }
}

/** Runs one callback-style operation to completion and returns its error. */
async function call<E>(fx: Fixture, start: (done: (error: E) => void) => void, what = 'operation'): Promise<E> {
  let result: { error: E } | null = null;
  let synchronous = true;
  start((error) => {
    assert.equal(synchronous, false, `${what}: callback ran synchronously`);
    result = { error };
  });
  synchronous = false;
  await until(fx, () => result !== null, what);
  return (result as unknown as { error: E }).error;
}

/** Delegates to another disk and counts file syncs. */
class CountingDisk implements Disk {
  syncs = 0;
  constructor(private readonly inner: Disk) {}
  list(): string[] {
    return this.inner.list();
  }
  read(name: string): Uint8Array | null {
    return this.inner.read(name);
  }
  size(name: string): number | null {
    return this.inner.size(name);
  }
  readRange(name: string, offset: number, length: number): Uint8Array | null {
    return this.inner.readRange(name, offset, length);
  }
  write(name: string, offset: number, data: Uint8Array, done: DiskCallback): void {
    this.inner.write(name, offset, data, done);
  }
  sync(name: string, done: DiskCallback): void {
    this.syncs++;
    this.inner.sync(name, done);
  }
  truncate(name: string, size: number, done: DiskCallback): void {
    this.inner.truncate(name, size, done);
  }
  rename(from: string, to: string, done: DiskCallback): void {
    this.inner.rename(from, to, done);
  }
  remove(name: string, done: DiskCallback): void {
    this.inner.remove(name, done);
  }
  syncDir(done: DiskCallback): void {
    this.inner.syncDir(done);
  }
}

const bytes = (...xs: number[]): Uint8Array => new Uint8Array(xs);

for (const [kind, make] of Object.entries(FACTORIES)) {
  const suite = (name: string, body: (fx: Fixture) => Promise<void>): void => {
    test(`${kind}: ${name}`, async () => {
      const fx = make();
      try {
        await body(fx);
      } finally {
        await fx.dispose();
      }
    });
  };

  suite('write, read, size, readRange and list', async (fx) => {
    const d = fx.disk;
    assert.equal(d.read('a'), null);
    assert.equal(
      await call<Error | null>(fx, (cb) => {
        d.write('a', 0, bytes(1, 2, 3), cb);
      }),
      null,
    );
    assert.equal(
      await call<Error | null>(fx, (cb) => {
        d.write('a', 5, bytes(9), cb);
      }),
      null,
    );
    assert.deepEqual(d.read('a'), bytes(1, 2, 3, 0, 0, 9));
    assert.equal(d.size('a'), 6);
    assert.deepEqual(d.readRange('a', 1, 3), bytes(2, 3, 0));
    assert.deepEqual(d.readRange('a', 4, 100), bytes(0, 9));
    assert.equal(
      await call<Error | null>(fx, (cb) => {
        d.write('b', 0, bytes(), cb);
      }),
      null,
    );
    assert.deepEqual(d.list(), ['a', 'b']);
    assert.equal(d.size('b'), 0);
  });

  suite('an empty write creates the file but never extends it', async (fx) => {
    const d = fx.disk;
    assert.equal(
      await call<Error | null>(fx, (cb) => {
        d.write('e', 100, bytes(), cb);
      }),
      null,
    );
    assert.equal(d.size('e'), 0);
    assert.equal(
      await call<Error | null>(fx, (cb) => {
        d.write('e', 0, bytes(7, 8), cb);
      }),
      null,
    );
    assert.equal(
      await call<Error | null>(fx, (cb) => {
        d.write('e', 50, bytes(), cb);
      }),
      null,
    );
    assert.deepEqual(d.read('e'), bytes(7, 8));
  });

  suite('syncDir completes after a write that re-creates a file behind a pending remove or rename', async (fx) => {
    const d = fx.disk;
    for (let round = 0; round < 20; round++) {
      const dirOp = round % 2 === 0 ? 'remove' : 'rename';
      assert.equal(
        await call<Error | null>(fx, (cb) => {
          d.write('r', 0, bytes(1), cb);
        }),
        null,
      );
      const order: string[] = [];
      const note =
        (what: string): DiskCallback =>
        (e) => {
          assert.equal(e, null, what);
          order.push(what);
        };
      if (dirOp === 'remove') d.remove('r', note('dir-op'));
      else d.rename('r', 'moved', note('dir-op'));
      d.write('r', 0, bytes(round), note('create'));
      d.syncDir(note('syncDir'));
      await until(fx, () => order.length === 3, 'the three operations');
      assert.deepEqual(
        order,
        ['dir-op', 'create', 'syncDir'],
        `round ${round} (${dirOp}): syncDir must cover the creation issued before it`,
      );
      assert.deepEqual(d.read('r'), bytes(round));
    }
  });

  suite('operations on one file complete in issue order', async (fx) => {
    const d = fx.disk;
    const order: number[] = [];
    const record =
      (i: number): DiskCallback =>
      (e) => {
        assert.equal(e, null);
        order.push(i);
      };
    for (let i = 0; i < 20; i++) d.write('f', 0, bytes(i, i), record(i));
    d.truncate('f', 1, record(20));
    d.sync('f', record(21));
    await until(fx, () => order.length === 22, 'ordered completions');
    assert.deepEqual(
      order,
      Array.from({ length: 22 }, (_, i) => i),
    );
    assert.deepEqual(d.read('f'), bytes(19));
  });

  suite('missing files: sync, truncate and rename fail; remove succeeds', async (fx) => {
    const d = fx.disk;
    assert.notEqual(
      await call<Error | null>(fx, (cb) => {
        d.sync('nope', cb);
      }),
      null,
    );
    assert.notEqual(
      await call<Error | null>(fx, (cb) => {
        d.truncate('nope', 0, cb);
      }),
      null,
    );
    assert.notEqual(
      await call<Error | null>(fx, (cb) => {
        d.rename('nope', 'x', cb);
      }),
      null,
    );
    assert.equal(
      await call<Error | null>(fx, (cb) => {
        d.remove('nope', cb);
      }),
      null,
    );
  });

  suite('synced data, renames and removals survive a reopen', async (fx) => {
    const d = fx.disk;
    await call(fx, (cb) => {
      d.write('t', 0, bytes(5, 6), cb);
    });
    await call(fx, (cb) => {
      d.sync('t', cb);
    });
    await call(fx, (cb) => {
      d.write('old', 0, bytes(1), cb);
    });
    await call(fx, (cb) => {
      d.sync('old', cb);
    });
    await call(fx, (cb) => {
      d.syncDir(cb);
    });
    await call(fx, (cb) => {
      d.rename('t', 'old', cb);
    });
    await call(fx, (cb) => {
      d.write('gone', 0, bytes(1), cb);
    });
    await call(fx, (cb) => {
      d.remove('gone', cb);
    });
    await call(fx, (cb) => {
      d.syncDir(cb);
    });
    const again = await fx.reopen();
    assert.deepEqual(again.list(), ['old']);
    assert.deepEqual(again.read('old'), bytes(5, 6));
  });

  suite('WAL: appends survive a reopen in order, across segments and a torn-free shutdown', async (fx) => {
    const prng = new Prng(3);
    const { wal } = Wal.open(fx.disk, { segmentBytesTarget: 512 });
    const payloads: Uint8Array[] = [];
    for (let i = 0; i < 200; i++) {
      const p = new Uint8Array(prng.int(0, 100)).map(() => prng.int(0, 256));
      payloads.push(p);
      wal.append(1 + (i % 3), p);
      if (i % 37 === 0) await until(fx, () => wal.durableSeq === i + 1, 'durable');
    }
    const flushed = await call<StorageError | null>(fx, (cb) => {
      if (wal.flush(cb)) throw new Error('expected pending records');
    });
    assert.equal(flushed, null);
    wal.close();
    const disk = await fx.reopen();
    assert.ok(disk.list().length > 5, 'several segments');
    const reopened = Wal.open(disk);
    const { recovery } = reopened;
    // Recovered records count as durable only once open's own sync completed.
    await call<StorageError | null>(fx, (cb) => {
      if (reopened.wal.flush(cb)) throw new Error('recovery must sync before reporting durability');
    });
    assert.equal(recovery.tornTailBytes, 0);
    assert.equal(recovery.nextSeq, 201);
    assert.deepEqual(
      recovery.records.map((r) => r.payload),
      payloads,
    );
  });

  suite('WAL: group commit turns 2,000 appends into a handful of fsyncs', async (fx) => {
    const counting = new CountingDisk(fx.disk);
    const { wal } = Wal.open(counting);
    for (let i = 0; i < 2000; i++) wal.append(1, new Uint8Array(128));
    await until(fx, () => wal.durableSeq === 2000, 'all durable');
    assert.ok(counting.syncs <= 3, `2000 appends took ${counting.syncs} fsyncs`);
  });

  suite('stable state: atomic save, coalescing, load after reopen, corruption detected', async (fx) => {
    const store = new StableStore(fx.disk);
    assert.equal(store.load(), null);
    const results: (StorageError | null)[] = [];
    for (let t = 1; t <= 5; t++) store.save({ term: term(t), vote: nodeId(t), blob: bytes(t) }, (e) => results.push(e));
    await until(fx, () => results.length === 5, 'saves');
    assert.deepEqual(results, [null, null, null, null, null]);
    const disk = await fx.reopen();
    const loaded = new StableStore(disk).load();
    assert.deepEqual(loaded, { term: term(5), vote: nodeId(5), blob: bytes(5) });
    const raw = disk.read('stable-state')!;
    raw[12]! ^= 4;
    await call(fx, (cb) => {
      disk.write('stable-state', 0, raw, cb);
    });
    assert.throws(
      () => new StableStore(disk).load(),
      (e) => e instanceof CorruptFileError && e.code === 'STABLE_CORRUPT',
    );
  });

  suite('snapshots: chunked write, atomic commit, old ones pruned, corruption detected', async (fx) => {
    const store = new SnapshotStore(fx.disk);
    const write = async (index: number, chunks: number): Promise<Uint8Array> => {
      const writer = store.create(logIndex(index), term(2));
      const all: number[] = [];
      for (let c = 0; c < chunks; c++) {
        const chunk = new Uint8Array(1000).map((_, i) => (i * 7 + c + index) & 0xff);
        all.push(...chunk);
        assert.equal(
          await call<StorageError | null>(fx, (cb) => {
            writer.write(chunk, cb);
          }),
          null,
        );
      }
      assert.equal(
        await call<StorageError | null>(fx, (cb) => {
          writer.commit((e) => {
            cb(e);
          });
        }),
        null,
      );
      return new Uint8Array(all);
    };
    await write(10, 3);
    const data = await write(20, 5);
    const disk = await fx.reopen();
    const reopened = new SnapshotStore(disk);
    const list = reopened.list();
    assert.deepEqual(
      list.map((m) => m.index),
      [20],
    );
    assert.deepEqual(reopened.load(list[0]!), data);
    const raw = disk.read(list[0]!.file)!;
    raw[100]! ^= 1;
    await call(fx, (cb) => {
      disk.write(list[0]!.file, 0, raw, cb);
    });
    assert.throws(
      () => reopened.open(list[0]!),
      (e) => e instanceof CorruptFileError && e.code === 'SNAPSHOT_CORRUPT',
    );
  });
}

test('FileDisk makes its data directory durable: the directory and every parent it created are fsynced', () => {
  const base = mkdtempSync(join(tmpdir(), 'cohort-dir-'));
  try {
    const nested = join(base, 'a', 'b', 'data');
    assert.deepEqual(makeDurableDirectory(nested), [nested, join(base, 'a', 'b'), join(base, 'a'), base]);
    assert.equal(statSync(nested).mode & 0o777, 0o700);
    assert.equal(statSync(join(base, 'a')).mode & 0o777, 0o700);
    // An existing directory: itself and its parent (an earlier process may have crashed before).
    assert.deepEqual(makeDurableDirectory(nested), [nested, join(base, 'a', 'b')]);
    const other = join(base, 'other');
    const disk = new FileDisk(other);
    assert.ok(existsSync(other), 'the constructor creates the directory');
    disk.close(() => undefined);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});
