// Proves that MemoryBlockStore, SimBlockStore and FileBlockStore all honour the BlockStore
// contract: fragments are created whole and zeroed, reads return what completed writes put there,
// operations on one fragment complete in issue order and never synchronously, misaligned,
// out-of-range, oversized and missing-fragment requests fail with their typed codes, and flushed
// writes, creations and removals survive a reopen (a crash for the simulated store). A trim makes
// its range read zero and is checked like a write.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Prng } from '../lib/prng.js';
import { BLOCK_IO_BYTES_MAX, BLOCK_SECTOR_BYTES } from '../constants.js';
import { FileBlockStore } from '../platform/file-block-store.js';
import { SimBlockStore } from '../sim/block-store.js';
import { BlockStoreError, type BlockStore, type BlockStoreErrorCode } from './block-store.js';
import { MemoryBlockStore } from './memory-block-store.js';

const S = BLOCK_SECTOR_BYTES;

/** One BlockStore implementation under test, with a way to advance it and to restart "the process". */
interface Fixture {
  readonly store: BlockStore;
  /** Lets pending completions run (one scheduler step, or one event-loop turn). */
  step(): Promise<void>;
  /** A new process's view of the same storage (only flushed state is guaranteed). */
  reopen(): Promise<BlockStore>;
  dispose(): Promise<void>;
}

/** A minimal virtual-time scheduler: events ordered by (time, insertion). */
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
    const store = new MemoryBlockStore();
    return {
      store,
      step: () => {
        store.runPending(1);
        return Promise.resolve();
      },
      // Perfectly durable: the same store is the next process's view.
      reopen: () => Promise.resolve(store),
      dispose: () => Promise.resolve(),
    };
  },
  sim: () => {
    const time = new VirtualTime();
    const store = new SimBlockStore({ schedule: time.schedule, prng: new Prng(41) });
    return {
      store,
      step: () => {
        time.runOne();
        return Promise.resolve();
      },
      reopen: () => {
        store.crash();
        return Promise.resolve(store);
      },
      dispose: () => Promise.resolve(),
    };
  },
  file: () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-blocks-'));
    let store = new FileBlockStore(dir);
    const close = (): Promise<void> =>
      new Promise((resolve) => {
        store.close(resolve);
      });
    return {
      get store() {
        return store;
      },
      step: () => new Promise((resolve) => setImmediate(resolve)),
      reopen: async () => {
        await close();
        store = new FileBlockStore(dir);
        return store;
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

/** Runs one mutation to completion, checking it did not complete synchronously; returns its error. */
async function call(
  fx: Fixture,
  start: (done: (error: BlockStoreError | null) => void) => void,
  what = 'operation',
): Promise<BlockStoreError | null> {
  let result: { error: BlockStoreError | null } | null = null;
  let synchronous = true;
  start((error) => {
    assert.equal(synchronous, false, `${what}: callback ran synchronously`);
    assert.equal(result, null, `${what}: callback ran twice`);
    result = { error };
  });
  synchronous = false;
  await until(fx, () => result !== null, what);
  return (result as unknown as { error: BlockStoreError | null }).error;
}

async function ok(fx: Fixture, start: (done: (error: BlockStoreError | null) => void) => void): Promise<void> {
  assert.equal(await call(fx, start), null);
}

/** Reads a range; fails the test on an error. */
async function read(fx: Fixture, store: BlockStore, name: string, offset: number, length: number): Promise<Uint8Array> {
  const got: { data: Uint8Array | null } = { data: null };
  const error = await call(fx, (done) => {
    store.read(name, offset, length, (e, d) => {
      got.data = d;
      done(e);
    });
  });
  assert.equal(error, null);
  assert.ok(got.data !== null, 'a successful read returns data');
  return got.data;
}

function codeOf(error: BlockStoreError | null): BlockStoreErrorCode | null {
  if (error === null) return null;
  assert.ok(error instanceof BlockStoreError, 'block store errors are BlockStoreError');
  return error.code;
}

/** `sectors` sectors, each filled with its own byte derived from `seed`. */
function pattern(sectors: number, seed: number): Uint8Array {
  const out = new Uint8Array(sectors * S);
  for (let i = 0; i < sectors; i++) out.fill((seed * 31 + i * 7 + 1) & 0xff, i * S, (i + 1) * S);
  return out;
}

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

  suite('create, list, size; a new fragment reads zero; reads return written data', async (fx) => {
    const b = fx.store;
    assert.deepEqual(b.list(), []);
    await ok(fx, (cb) => {
      b.create('vol-a', 64 * S, cb);
    });
    await ok(fx, (cb) => {
      b.create('vol-b', 8 * S, cb);
    });
    assert.deepEqual(b.list(), ['vol-a', 'vol-b']);
    assert.equal(b.size('vol-a'), 64 * S);
    assert.equal(b.size('nope'), null);
    assert.deepEqual(await read(fx, b, 'vol-a', 10 * S, 2 * S), new Uint8Array(2 * S));
    const data = pattern(3, 5);
    await ok(fx, (cb) => {
      b.write('vol-a', 61 * S, data, cb);
    });
    assert.deepEqual(await read(fx, b, 'vol-a', 61 * S, 3 * S), data);
    assert.deepEqual(await read(fx, b, 'vol-a', 60 * S, S), new Uint8Array(S));
    assert.deepEqual(await read(fx, b, 'vol-b', 0, 8 * S), new Uint8Array(8 * S), 'fragments are separate');
    assert.deepEqual(await read(fx, b, 'vol-a', 0, 0), new Uint8Array(0));
  });

  suite('typed errors: misaligned, out of range, too large, not found, exists', async (fx) => {
    const b = fx.store;
    await ok(fx, (cb) => {
      b.create('f', 16 * S, cb);
    });
    const readError = (name: string, offset: number, length: number) =>
      call(fx, (cb) => {
        b.read(name, offset, length, (e, d) => {
          assert.equal(d === null, e !== null, 'exactly one of error and data');
          cb(e);
        });
      });
    assert.equal(codeOf(await readError('f', 1, S)), 'BLOCK_MISALIGNED');
    assert.equal(codeOf(await readError('f', 0, S + 1)), 'BLOCK_MISALIGNED');
    assert.equal(codeOf(await readError('f', 15 * S, 2 * S)), 'BLOCK_OUT_OF_RANGE');
    assert.equal(codeOf(await readError('f', 0, BLOCK_IO_BYTES_MAX + S)), 'BLOCK_TOO_LARGE');
    assert.equal(codeOf(await readError('g', 0, S)), 'BLOCK_NOT_FOUND');
    assert.equal(
      codeOf(
        await call(fx, (cb) => {
          b.write('f', 16 * S, pattern(1, 1), cb);
        }),
      ),
      'BLOCK_OUT_OF_RANGE',
    );
    assert.equal(
      codeOf(
        await call(fx, (cb) => {
          b.write('f', 8, pattern(1, 1), cb);
        }),
      ),
      'BLOCK_MISALIGNED',
    );
    assert.equal(
      codeOf(
        await call(fx, (cb) => {
          b.write('g', 0, pattern(1, 1), cb);
        }),
      ),
      'BLOCK_NOT_FOUND',
    );
    assert.equal(
      codeOf(
        await call(fx, (cb) => {
          b.flush('g', cb);
        }),
      ),
      'BLOCK_NOT_FOUND',
    );
    assert.equal(
      codeOf(
        await call(fx, (cb) => {
          b.create('f', 16 * S, cb);
        }),
      ),
      'BLOCK_EXISTS',
    );
    assert.equal(
      codeOf(
        await call(fx, (cb) => {
          b.create('h', S + 3, cb);
        }),
      ),
      'BLOCK_MISALIGNED',
    );
    assert.equal(
      codeOf(
        await call(fx, (cb) => {
          b.remove('absent', cb);
        }),
      ),
      null,
    );
    assert.deepEqual(b.list(), ['f'], 'failed creates leave nothing behind');
  });

  suite('operations on one fragment complete in issue order; overlapping writes land in order', async (fx) => {
    const b = fx.store;
    await ok(fx, (cb) => {
      b.create('o', 32 * S, cb);
    });
    const order: number[] = [];
    const note = (i: number) => (e: BlockStoreError | null) => {
      assert.equal(e, null);
      order.push(i);
    };
    for (let i = 0; i < 20; i++) b.write('o', (i % 4) * S, pattern(4, i), note(i));
    b.flush('o', note(20));
    b.read('o', 0, 8 * S, (e, d) => {
      assert.equal(e, null);
      assert.deepEqual(d?.subarray(3 * S, 7 * S), pattern(4, 19), 'the read sees every write issued before it');
      order.push(21);
    });
    await until(fx, () => order.length === 22, 'ordered completions');
    assert.deepEqual(
      order,
      Array.from({ length: 22 }, (_, i) => i),
    );
  });

  suite('trim makes its range read zero, leaves the rest, and survives a reopen once flushed', async (fx) => {
    const b = fx.store;
    await ok(fx, (cb) => {
      b.create('t', 8 * S, cb);
    });
    const data = pattern(8, 3);
    await ok(fx, (cb) => {
      b.write('t', 0, data, cb);
    });
    await ok(fx, (cb) => {
      b.trim('t', 2 * S, 3 * S, cb);
    });
    const expected = data.slice();
    expected.fill(0, 2 * S, 5 * S);
    assert.deepEqual(await read(fx, b, 't', 0, 8 * S), expected);
    assert.equal(
      codeOf(
        await call(fx, (cb) => {
          b.trim('t', 6 * S, 4 * S, cb);
        }),
      ),
      'BLOCK_OUT_OF_RANGE',
    );
    assert.equal(
      codeOf(
        await call(fx, (cb) => {
          b.trim('t', 1, S, cb);
        }),
      ),
      'BLOCK_MISALIGNED',
    );
    assert.equal(
      codeOf(
        await call(fx, (cb) => {
          b.trim('u', 0, S, cb);
        }),
      ),
      'BLOCK_NOT_FOUND',
    );
    await ok(fx, (cb) => {
      b.flush('t', cb);
    });
    const again = await fx.reopen();
    assert.deepEqual(await read(fx, again, 't', 0, 8 * S), expected);
  });

  suite('flushed writes, creations and removals survive a reopen', async (fx) => {
    const b = fx.store;
    await ok(fx, (cb) => {
      b.create('keep', 16 * S, cb);
    });
    await ok(fx, (cb) => {
      b.create('empty', 4 * S, cb);
    });
    await ok(fx, (cb) => {
      b.create('gone', 4 * S, cb);
    });
    const data = pattern(16, 9);
    await ok(fx, (cb) => {
      b.write('keep', 0, data, cb);
    });
    await ok(fx, (cb) => {
      b.flush('keep', cb);
    });
    await ok(fx, (cb) => {
      b.remove('gone', cb);
    });
    const again = await fx.reopen();
    assert.deepEqual(again.list(), ['empty', 'keep']);
    assert.equal(again.size('keep'), 16 * S);
    assert.deepEqual(await read(fx, again, 'keep', 0, 16 * S), data);
    assert.deepEqual(await read(fx, again, 'empty', 0, 4 * S), new Uint8Array(4 * S));
  });
}

test('FileBlockStore removes a stale half-created fragment at open and keeps the real ones', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-blocks-'));
  try {
    writeFileSync(join(dir, '.frag.creating'), new Uint8Array(S));
    writeFileSync(join(dir, 'frag2'), new Uint8Array(2 * S));
    const store = new FileBlockStore(dir);
    assert.deepEqual(store.list(), ['frag2']);
    assert.equal(store.size('frag2'), 2 * S);
    assert.deepEqual(readdirSync(dir).sort(), ['frag2']);
    await new Promise<void>((resolve) => {
      store.close(resolve);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
