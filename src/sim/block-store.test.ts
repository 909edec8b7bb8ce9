// Proves the simulated block store's crash model keeps the contract's promises and does damage
// the contract allows: after a crash at any moment (writes, trims and flushes in flight), every sector holds its flushed content or the
// content of one unflushed write to it (never a mix inside a sector, never fabricated bytes), a
// flushed write always survives, and unflushed writes are seen kept whole, dropped and torn. Also
// that a failed flush leaves its writes losable, that injected I/O errors are typed, that bit rot
// lands in flushed data only, and that the same seed gives the same crash. The crash checker has a
// canary: it reports a fabricated sector and a sector mixing two writes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Prng } from '../lib/prng.js';
import { BLOCK_SECTOR_BYTES } from '../constants.js';
import type { BlockStoreError } from '../storage/block-store.js';
import { SimBlockStore, type SimBlockStoreOptions } from './block-store.js';
import { msToUs, Scheduler } from './scheduler.js';

const S = BLOCK_SECTOR_BYTES;
const SECTORS = 16;

/** The content write `id` puts in sector `sector`: distinct per (write, sector, byte). */
function sectorContent(id: number, sector: number): Uint8Array {
  const out = new Uint8Array(S);
  if (id === 0) return out;
  for (let j = 0; j < S; j++) out[j] = (id * 131 + sector * 17 + j * 7 + 1) & 0xff;
  return out;
}

interface IssuedWrite {
  /** 0 for a trim (a write of zeros). */
  readonly id: number;
  readonly first: number;
  readonly count: number;
}

/** What the test knows about a fragment: writes in issue order and how many a completed flush covers. */
interface Model {
  readonly writes: IssuedWrite[];
  /** Writes (a prefix of `writes`) issued before the newest successful flush. */
  durablePrefix: number;
}

function covers(w: IssuedWrite, sector: number): boolean {
  return sector >= w.first && sector < w.first + w.count;
}

/** Problems with `image` as a post-crash content of the modelled fragment; empty when allowed. */
function crashViolations(model: Model, image: Uint8Array): string[] {
  const problems: string[] = [];
  for (let sector = 0; sector < SECTORS; sector++) {
    const actual = image.subarray(sector * S, (sector + 1) * S);
    const durable = model.writes.slice(0, model.durablePrefix).filter((w) => covers(w, sector));
    const last = durable[durable.length - 1];
    const candidates = [last === undefined ? new Uint8Array(S) : sectorContent(last.id, sector)];
    for (const w of model.writes.slice(model.durablePrefix))
      if (covers(w, sector)) candidates.push(sectorContent(w.id, sector));
    if (!candidates.some((c) => Buffer.from(c).equals(Buffer.from(actual)))) {
      problems.push(`sector ${sector} holds neither its flushed content nor one unflushed write's`);
    }
  }
  return problems;
}

interface Rig {
  readonly scheduler: Scheduler;
  readonly store: SimBlockStore;
}

function rig(seed: number, options: Partial<SimBlockStoreOptions> = {}): Rig {
  const scheduler = new Scheduler();
  const store = new SimBlockStore({
    schedule: (ms, fn) => scheduler.after(msToUs(ms), fn),
    prng: new Prng(seed),
    ...options,
  });
  return { scheduler, store };
}

function drain(r: Rig): void {
  r.scheduler.runUntil(r.scheduler.nowUs + msToUs(10_000));
}

function image(r: Rig): Uint8Array {
  const got: { out: Uint8Array | null } = { out: null };
  r.store.read('f', 0, SECTORS * S, (e, d) => {
    assert.equal(e, null);
    got.out = d;
  });
  drain(r);
  assert.ok(got.out !== null, 'the image read completed');
  return got.out;
}

function created(seed: number, options: Partial<SimBlockStoreOptions> = {}): Rig {
  const r = rig(seed, options);
  r.store.create('f', SECTORS * S, (e) => {
    assert.equal(e, null);
  });
  drain(r);
  return r;
}

type Op =
  | { kind: 'write'; first: number; count: number }
  | { kind: 'trim'; first: number; count: number }
  | { kind: 'flush' }
  | { kind: 'run'; ms: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('write' as const),
      first: fc.integer({ min: 0, max: SECTORS - 1 }),
      count: fc.integer({ min: 1, max: 6 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('trim' as const),
      first: fc.integer({ min: 0, max: SECTORS - 1 }),
      count: fc.integer({ min: 1, max: 6 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('flush' as const) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('run' as const), ms: fc.integer({ min: 0, max: 3 }) }) },
);

/** Issues `ops`, crashes at the end (with some still in flight), and returns the model and image. */
function runAndCrash(seed: number, ops: readonly Op[]): { model: Model; image: Uint8Array } {
  const r = created(seed);
  const model: Model = { writes: [], durablePrefix: 0 };
  let nextId = 1;
  for (const op of ops) {
    switch (op.kind) {
      case 'write': {
        const count = Math.min(op.count, SECTORS - op.first);
        const w: IssuedWrite = { id: nextId++, first: op.first, count };
        const data = new Uint8Array(count * S);
        for (let i = 0; i < count; i++) data.set(sectorContent(w.id, op.first + i), i * S);
        model.writes.push(w);
        r.store.write('f', op.first * S, data, (e) => {
          assert.equal(e, null);
        });
        break;
      }
      case 'trim': {
        const count = Math.min(op.count, SECTORS - op.first);
        model.writes.push({ id: 0, first: op.first, count });
        r.store.trim('f', op.first * S, count * S, (e) => {
          assert.equal(e, null);
        });
        break;
      }
      case 'flush': {
        const covered = model.writes.length;
        r.store.flush('f', (e) => {
          assert.equal(e, null);
          model.durablePrefix = Math.max(model.durablePrefix, covered);
        });
        break;
      }
      case 'run':
        r.scheduler.runUntil(r.scheduler.nowUs + msToUs(op.ms));
        break;
    }
  }
  r.store.crash();
  return { model, image: image(r) };
}

test('after a crash at any moment every sector is flushed content or one unflushed write, whole', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 2 ** 31 }), fc.array(opArb, { maxLength: 40 }), (seed, ops) => {
      const { model, image: img } = runAndCrash(seed, ops);
      assert.deepEqual(crashViolations(model, img), []);
    }),
    { numRuns: 300 },
  );
});

test('the crash checker bites: a fabricated sector and a sector mixing two writes are reported', () => {
  const model: Model = {
    writes: [
      { id: 1, first: 0, count: 2 },
      { id: 2, first: 1, count: 2 },
    ],
    durablePrefix: 1,
  };
  const good = new Uint8Array(SECTORS * S);
  good.set(sectorContent(1, 0), 0);
  good.set(sectorContent(2, 1), S);
  assert.deepEqual(crashViolations(model, good), []);
  const fabricated = good.slice();
  fabricated[5 * S] = 0x5a;
  assert.equal(crashViolations(model, fabricated).length, 1);
  const mixed = good.slice();
  mixed.set(sectorContent(1, 1).subarray(0, S / 2), S);
  assert.equal(crashViolations(model, mixed).length, 1);
  const lostFlushed = good.slice();
  lostFlushed.fill(0, 0, S);
  assert.equal(crashViolations(model, lostFlushed).length, 1, 'a flushed write that vanished is reported');
});

test('unflushed writes are seen kept whole, dropped and torn across crashes; flushed ones always survive', () => {
  const seen = { whole: 0, dropped: 0, torn: 0 };
  for (let seed = 0; seed < 200; seed++) {
    const r = created(seed);
    const flushed = new Uint8Array(2 * S).fill(7);
    r.store.write('f', 0, flushed, () => undefined);
    r.store.flush('f', () => undefined);
    const data = new Uint8Array(8 * S);
    for (let i = 0; i < 8; i++) data.set(sectorContent(9, 4 + i), i * S);
    r.store.write('f', 4 * S, data, () => undefined);
    drain(r);
    r.store.crash();
    const img = image(r);
    assert.deepEqual(img.subarray(0, 2 * S), flushed, `seed ${seed}: the flushed write survives`);
    let kept = 0;
    for (let i = 0; i < 8; i++) if (img[(4 + i) * S] === sectorContent(9, 4 + i)[0]) kept++;
    if (kept === 8) seen.whole++;
    else if (kept === 0) seen.dropped++;
    else seen.torn++;
  }
  assert.ok(seen.whole > 10 && seen.dropped > 10 && seen.torn > 10, `outcomes ${JSON.stringify(seen)}`);
});

test('the same seed gives the same crash; another seed may not', () => {
  const ops: Op[] = Array.from({ length: 30 }, (_, i): Op =>
    i % 3 === 2 ? { kind: 'run', ms: 1 } : { kind: 'write', first: i % SECTORS, count: 3 },
  );
  const a = runAndCrash(12, ops).image;
  assert.deepEqual(runAndCrash(12, ops).image, a);
  const others = [13, 14, 15, 16].map((seed) => runAndCrash(seed, ops).image);
  assert.ok(
    others.some((o) => !Buffer.from(o).equals(Buffer.from(a))),
    'different seeds draw different crashes',
  );
});

test('a failed flush leaves its writes losable; injected I/O errors are BLOCK_IO', () => {
  const r = created(3, { ioErrorProbability: 1, keepUnflushedProbability: 0, tornWriteProbability: 0 });
  const codes: (string | null)[] = [];
  const note = (e: BlockStoreError | null): void => {
    codes.push(e?.code ?? null);
  };
  r.store.write('f', 0, new Uint8Array(S).fill(1), note);
  r.store.flush('f', note);
  r.store.read('f', 0, S, (e, d) => {
    assert.equal(d, null);
    note(e);
  });
  drain(r);
  assert.deepEqual(codes, ['BLOCK_IO', 'BLOCK_IO', 'BLOCK_IO']);

  const ok = created(4, { keepUnflushedProbability: 0, tornWriteProbability: 0 });
  ok.store.write('f', 0, new Uint8Array(S).fill(1), () => undefined);
  drain(ok);
  ok.store.crash();
  assert.deepEqual(image(ok).subarray(0, S), new Uint8Array(S), 'an unflushed write is lost when the crash drops it');
});

test('flipBits changes exactly one bit of flushed data and skips fragments with unflushed writes', () => {
  const r = created(5);
  const data = new Uint8Array(SECTORS * S).fill(0xaa);
  r.store.write('f', 0, data, () => undefined);
  drain(r);
  assert.equal(r.store.flipBits(1), 0, 'an unflushed fragment is not a candidate');
  r.store.flush('f', () => undefined);
  drain(r);
  assert.equal(r.store.flipBits(1), 1);
  const img = image(r);
  let differing = 0;
  for (let i = 0; i < img.length; i++) {
    let x = (img[i] ?? 0) ^ 0xaa;
    while (x !== 0) {
      differing += x & 1;
      x >>= 1;
    }
  }
  assert.equal(differing, 1);
});

test('completions pending at a crash never fire, and the store serves the next incarnation', () => {
  const r = created(6);
  let fired = false;
  r.store.write('f', 0, new Uint8Array(S).fill(3), () => {
    fired = true;
  });
  r.store.crash();
  drain(r);
  assert.equal(fired, false);
  assert.deepEqual(image(r).subarray(0, S), new Uint8Array(S), 'a write that never completed is not there');
});
