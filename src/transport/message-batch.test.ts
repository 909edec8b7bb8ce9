// Proves a batch of messages round-trips in order, that every malformed batch (bad lengths,
// truncation, empty, oversized) is rejected whole with BATCH_MALFORMED before any message is
// delivered, and that 100,000 fuzzed batches raise nothing but DecodeError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError } from '../lib/errors.js';
import { Prng } from '../lib/prng.js';
import { BATCH_BYTES_MAX, checkBatch, encodeBatch, readBatch } from './message-batch.js';

function readAll(batch: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  readBatch(batch, (m) => out.push(m.slice()));
  return out;
}

test('batches round-trip in order', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { minLength: 1, maxLength: 20 }), (messages) => {
      assert.deepEqual(readAll(encodeBatch(messages)), messages);
    }),
    { numRuns: 1000 },
  );
});

test('a malformed batch delivers nothing', () => {
  const good = encodeBatch([new Uint8Array([1, 2]), new Uint8Array([3])]);
  const cases: [string, Uint8Array][] = [
    ['empty', new Uint8Array(0)],
    ['cut inside the second prefix', good.subarray(0, 8)],
    ['cut inside the second body', good.subarray(0, good.length - 1)],
    ['length beyond the end', Uint8Array.from([...good.subarray(0, 6), 9, 0, 0, 0, 3])],
    ['4 GiB length', Uint8Array.from([0xff, 0xff, 0xff, 0xff, 1])],
  ];
  for (const [what, batch] of cases) {
    let delivered = 0;
    assert.throws(
      () => {
        readBatch(batch, () => delivered++);
      },
      (e: unknown) => e instanceof DecodeError && e.code === 'BATCH_MALFORMED',
      what,
    );
    assert.equal(delivered, 0, what);
  }
  assert.throws(() => checkBatch(new Uint8Array(BATCH_BYTES_MAX + 1)), DecodeError);
});

test('fuzz: 100,000 random and mutated batches raise only DecodeError', () => {
  const prng = new Prng(7);
  let ok = 0;
  let bad = 0;
  for (let run = 0; run < 100_000; run++) {
    const messages = Array.from({ length: prng.int(1, 5) }, () =>
      Uint8Array.from({ length: prng.int(0, 20) }, () => prng.int(0, 256)),
    );
    const batch = encodeBatch(messages);
    const mutate = prng.int(0, 3);
    if (mutate === 1) batch[prng.int(0, batch.length)] = prng.int(0, 256);
    const input = mutate === 2 ? batch.subarray(0, prng.int(0, batch.length)) : batch;
    try {
      const got = readAll(input);
      if (mutate === 0) assert.deepEqual(got, messages);
      ok++;
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      assert.notEqual(mutate, 0);
      bad++;
    }
  }
  assert.ok(ok > 30_000 && bad > 10_000, `ok ${ok}, bad ${bad}`);
});
