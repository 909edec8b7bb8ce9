// Proves the WAL record reader round-trips valid segments, classifies a torn tail (truncation,
// zeros, garbage after the last synced byte) as repairable and damage before later batches as
// WalCorruptionError, and survives 100,000+ fuzzed inputs raising nothing but that typed error.
// Also proves tailSuspect fires for a bit flip in a complete last record but never for an
// appended batch torn as any subset of 512-byte sectors (missing sectors read zero past the old end).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Prng } from '../lib/prng.js';
import { WalCorruptionError } from './storage-error.js';
import {
  encodeRecord,
  encodeSegmentHeader,
  parseSegmentName,
  recordBytes,
  scanSegment,
  segmentName,
  SEGMENT_HEADER_BYTES,
  type SegmentScan,
} from './wal-segment.js';

interface Spec {
  readonly seq: number;
  readonly type: number;
  readonly payload: Uint8Array;
}

/** Encodes a segment starting at `firstSeq` whose records are cut into batches of the given sizes. */
function buildSegment(
  firstSeq: number,
  batches: readonly (readonly Uint8Array[])[],
): { bytes: Uint8Array; specs: Spec[]; batchStarts: number[] } {
  const specs: Spec[] = [];
  const batchStarts: number[] = [];
  let size = SEGMENT_HEADER_BYTES;
  for (const batch of batches) for (const p of batch) size += recordBytes(p.length);
  const bytes = new Uint8Array(size);
  bytes.set(encodeSegmentHeader(firstSeq));
  let offset = SEGMENT_HEADER_BYTES;
  let seq = firstSeq;
  for (const batch of batches) {
    batchStarts.push(offset);
    batch.forEach((payload, index) => {
      const type = 1 + (seq % 200);
      offset = encodeRecord(bytes, offset, seq, index, type, payload);
      specs.push({ seq, type, payload });
      seq++;
    });
  }
  return { bytes, specs, batchStarts };
}

function randomBatches(prng: Prng, batchCount: number, maxRecords: number, maxPayload: number): Uint8Array[][] {
  return Array.from({ length: batchCount }, () =>
    Array.from({ length: prng.int(1, maxRecords + 1) }, () => {
      const p = new Uint8Array(prng.int(0, maxPayload + 1));
      for (let i = 0; i < p.length; i++) p[i] = prng.int(0, 256);
      return p;
    }),
  );
}

function assertPrefix(scan: SegmentScan, specs: readonly Spec[]): void {
  assert.ok(scan.records.length <= specs.length, 'no fabricated records');
  scan.records.forEach((r, i) => {
    const s = specs[i]!;
    assert.equal(r.seq, s.seq);
    assert.equal(r.type, s.type);
    assert.deepEqual(r.payload, s.payload);
  });
}

test('segment names round-trip and reject anything else', () => {
  assert.equal(segmentName(1), 'wal-0000000000000001.log');
  assert.equal(parseSegmentName(segmentName(0xabcdef12345)), 0xabcdef12345);
  for (const bad of [
    'wal-1.log',
    'wal-000000000000000G.log',
    'wal-0000000000000000.log',
    'x.log',
    'wal-0000000000000001.log.tmp',
  ])
    assert.equal(parseSegmentName(bad), null, bad);
});

test('a valid segment round-trips exactly', () => {
  const prng = new Prng(1);
  const { bytes, specs } = buildSegment(42, randomBatches(prng, 5, 4, 50));
  for (const last of [true, false]) {
    const scan = scanSegment('s', bytes, 42, last);
    assert.equal(scan.records.length, specs.length);
    assertPrefix(scan, specs);
    assert.equal(scan.validBytes, bytes.length);
    assert.equal(scan.tornBytes, 0);
  }
});

test('every truncation point of the last segment is a torn tail holding a prefix', () => {
  const prng = new Prng(2);
  const { bytes, specs } = buildSegment(7, randomBatches(prng, 4, 3, 30));
  for (let cut = 0; cut <= bytes.length; cut++) {
    const scan = scanSegment('s', bytes.subarray(0, cut), 7, true);
    assertPrefix(scan, specs);
    assert.equal(scan.validBytes + scan.tornBytes, cut);
  }
});

test('zeros or garbage after a cut inside the last batch are a torn tail', () => {
  const prng = new Prng(3);
  const { bytes, specs, batchStarts } = buildSegment(1, randomBatches(prng, 4, 4, 40));
  const lastBatch = batchStarts.at(-1)!;
  for (let cut = lastBatch; cut < bytes.length; cut++) {
    for (const fill of ['zero', 'garbage'] as const) {
      const damaged = bytes.slice();
      for (let i = cut; i < damaged.length; i++) damaged[i] = fill === 'zero' ? 0 : prng.int(0, 256);
      const scan = scanSegment('s', damaged, 1, true);
      assertPrefix(scan, specs);
      assert.ok(scan.validBytes >= lastBatch, 'synced batches are kept');
    }
  }
});

test('a hole inside the torn last batch followed by more of that batch is still a torn tail', () => {
  const prng = new Prng(4);
  const { bytes, specs, batchStarts } = buildSegment(1, [
    ...randomBatches(prng, 2, 3, 20),
    randomBatches(prng, 1, 1, 20)[0]!.concat(randomBatches(prng, 1, 1, 20)[0]!, randomBatches(prng, 1, 1, 20)[0]!),
  ]);
  const lastBatch = batchStarts.at(-1)!;
  const damaged = bytes.slice();
  damaged.fill(0, lastBatch + 4, lastBatch + 30); // the first record of the last batch is lost, later ones survive
  const scan = scanSegment('s', damaged, 1, true);
  assertPrefix(scan, specs);
  assert.equal(scan.validBytes, lastBatch);
});

test('a bit flip in any batch but the last of the last segment, or anywhere in a non-last segment, is corruption', () => {
  const prng = new Prng(5);
  const { bytes, batchStarts } = buildSegment(9, randomBatches(prng, 4, 3, 24));
  const lastBatch = batchStarts.at(-1)!;
  for (let at = 0; at < bytes.length; at++) {
    const damaged = bytes.slice();
    damaged[at]! ^= 1 << prng.int(0, 8);
    assert.throws(
      () => scanSegment('wal-x.log', damaged, 9, false),
      (e) => e instanceof WalCorruptionError && e.code === 'WAL_CORRUPT' && e.segment === 'wal-x.log',
    );
    if (at >= SEGMENT_HEADER_BYTES && at < lastBatch) {
      assert.throws(
        () => scanSegment('wal-x.log', damaged, 9, true),
        WalCorruptionError,
        `flip at byte ${at} must be detected`,
      );
    }
  }
});

test('a header naming another first sequence number, or another format, is corruption even in the last segment', () => {
  const { bytes } = buildSegment(5, [[new Uint8Array(3)]]);
  assert.throws(() => scanSegment('s', bytes, 6, true), WalCorruptionError);
  const torn = bytes.slice(0, 10);
  assert.equal(scanSegment('s', torn, 5, true).headerValid, false);
  assert.throws(() => scanSegment('s', torn, 5, false), WalCorruptionError);
});

test('fuzz: 100,000 random and mutated inputs raise only WalCorruptionError and never fabricate records', () => {
  const prng = new Prng(6);
  const templates = Array.from({ length: 32 }, (_, i) =>
    buildSegment(1 + i * 1000, randomBatches(prng, prng.int(1, 5), 4, 48)),
  );
  const started = Date.now();
  let corrupt = 0;
  let parsed = 0;
  for (let i = 0; i < 100_000; i++) {
    const template = templates[i % templates.length]!;
    const firstSeq = template.specs[0]!.seq;
    const input = mutate(prng, template.bytes, i % 10);
    const last = prng.chance(0.7);
    try {
      const scan = scanSegment('fuzz', input, firstSeq, last);
      parsed++;
      assert.equal(scan.validBytes + scan.tornBytes, input.length);
      if (!last) assert.equal(scan.tornBytes, 0);
      // Whatever parses is exactly what was written, in order: round-trip equality.
      if (i % 10 !== 9) assertPrefix(scan, template.specs);
    } catch (error) {
      if (!(error instanceof WalCorruptionError)) throw error;
      corrupt++;
    }
  }
  assert.ok(parsed > 10_000 && corrupt > 10_000, `both outcomes exercised (parsed ${parsed}, corrupt ${corrupt})`);
  assert.ok(Date.now() - started < 20_000, 'fuzzing stays fast');
});

function mutate(prng: Prng, bytes: Uint8Array, kind: number): Uint8Array {
  const out = bytes.slice();
  switch (kind) {
    case 0:
      return out; // intact
    case 1:
    case 2: // bit flips
      for (let n = prng.int(1, 4); n > 0; n--) out[prng.int(0, out.length)]! ^= 1 << prng.int(0, 8);
      return out;
    case 3: // truncation
      return out.subarray(0, prng.int(0, out.length + 1));
    case 4: // zeros after a point
      return out.fill(0, prng.int(0, out.length));
    case 5: // garbage after a point
      for (let i = prng.int(0, out.length); i < out.length; i++) out[i] = prng.int(0, 256);
      return out;
    case 6: {
      // garbage appended
      const grown = new Uint8Array(out.length + prng.int(1, 64));
      grown.set(out);
      for (let i = out.length; i < grown.length; i++) grown[i] = prng.int(0, 256);
      return grown;
    }
    case 7: {
      // a byte range overwritten with random bytes
      const at = prng.int(0, out.length);
      for (let i = at; i < Math.min(out.length, at + prng.int(1, 16)); i++) out[i] = prng.int(0, 256);
      return out;
    }
    case 8: {
      // a chunk duplicated over a later position (misdirected write)
      const from = prng.int(0, out.length);
      const to = prng.int(0, out.length);
      out.copyWithin(to, from, from + prng.int(1, 64));
      return out;
    }
    default: {
      // pure random bytes, sometimes with a valid header
      const r = new Uint8Array(prng.int(0, 300));
      for (let i = 0; i < r.length; i++) r[i] = prng.int(0, 256);
      if (r.length >= SEGMENT_HEADER_BYTES && prng.chance(0.5)) r.set(bytes.subarray(0, SEGMENT_HEADER_BYTES));
      return r;
    }
  }
}

test('property: any byte string is either parsed into a consistent scan or rejected as corruption', () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 400 }),
      fc.boolean(),
      fc.integer({ min: 1, max: 1000 }),
      (bytes, last, firstSeq) => {
        try {
          const scan = scanSegment('p', bytes, firstSeq, last);
          return (
            scan.validBytes + scan.tornBytes === bytes.length && scan.records.every((r, i) => r.seq === firstSeq + i)
          );
        } catch (error) {
          return error instanceof WalCorruptionError;
        }
      },
    ),
    { numRuns: 2000 },
  );
});

/** The appended last batch of `bytes` (from `start`) torn to a random subset of absolute 512-byte sectors. */
function tearAppend(prng: Prng, bytes: Uint8Array, start: number): Uint8Array {
  const out = bytes.slice();
  const keep = prng.float();
  let lastKept = start;
  for (let sector = start - (start % 512); sector < bytes.length; sector += 512) {
    const from = Math.max(sector, start);
    const to = Math.min(sector + 512, bytes.length);
    if (prng.float() < keep) lastKept = to;
    else out.fill(0, from, to); // never written: beyond the old end of file, so zeros
  }
  return prng.int(0, 2) === 0 ? out.subarray(0, lastKept) : out;
}

test('sector tears of an appended batch never set tailSuspect; a flip in a complete last record does', () => {
  const prng = new Prng(9);
  let damaged = 0;
  let suspects = 0;
  for (let round = 0; round < 3000; round++) {
    // Non-zero payloads, so no all-zero sector can come from the data itself.
    const batches = randomBatches(prng, 3, 4, 1200).map((batch) => batch.map((p) => p.map((b) => b | 1)));
    const { bytes, specs, batchStarts } = buildSegment(1, batches);
    const lastBatch = batchStarts.at(-1)!;
    const torn = tearAppend(prng, bytes, lastBatch);
    const scan = scanSegment('s', torn, 1, true);
    assertPrefix(scan, specs);
    assert.ok(scan.validBytes >= lastBatch, 'synced batches are kept');
    assert.equal(scan.tailSuspect, false, `round ${round}: a crash-torn append looked like a damaged synced record`);
    if (scan.tornBytes > 0) damaged++;
    // Positive control: the same batch whole, with one bit of its first record flipped.
    const flipped = bytes.slice();
    const at = lastBatch + 4 + prng.int(0, recordBytes(batches.at(-1)![0]!.length) - 4);
    flipped[at]! ^= 1 << prng.int(0, 8);
    const control = scanSegment('s', flipped, 1, true);
    if (control.tornBytes > 0 && control.tailSuspect) suspects++;
  }
  assert.ok(damaged > 1500, `only ${damaged} tears damaged the batch`);
  assert.ok(
    suspects > 2500,
    `a flipped complete record was suspect only ${suspects} times: the heuristic does not bite`,
  );
});
