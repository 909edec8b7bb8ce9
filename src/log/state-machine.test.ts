// Proves the state-machine hashing helpers are right: Fnv64 matches the published FNV-1a 64
// vectors and a BigInt reference on random input, its finaliser is a bijection that spreads a
// one-byte change, MultisetHash64 is an order-independent sum mod 2^64 whose remove undoes add,
// and assertApplyOrder refuses a repeated index or a falling term.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AssertionError } from '../lib/assert.js';
import { logIndex, term } from '../lib/ids.js';
import { assertApplyOrder, Fnv64, MultisetHash64, stateHashOf, type Digest64 } from './state-machine.js';

const MASK64 = (1n << 64n) - 1n;

function big(d: Digest64): bigint {
  return (BigInt(d.hi) << 32n) | BigInt(d.lo);
}

function referenceFnv1a64(bytes: Uint8Array): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = ((h ^ BigInt(b)) * 0x100000001b3n) & MASK64;
  return h;
}

function rawOf(bytes: Uint8Array): bigint {
  const h = new Fnv64();
  for (const b of bytes) h.u8(b);
  return big(h.raw());
}

test('Fnv64 matches the published FNV-1a 64 test vectors', () => {
  const enc = new TextEncoder();
  assert.equal(rawOf(enc.encode('')), 0xcbf29ce484222325n);
  assert.equal(rawOf(enc.encode('a')), 0xaf63dc4c8601ec8cn);
  assert.equal(rawOf(enc.encode('foobar')), 0x85944171f73967e8n);
});

test('Fnv64 agrees with a BigInt reference on random bytes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => rawOf(bytes) === referenceFnv1a64(bytes)),
    { numRuns: 500 },
  );
});

test('the finalised digest changes in many bits when one input byte changes', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 1, maxLength: 64 }), fc.nat(), fc.integer({ min: 1, max: 255 }), (bytes, at, delta) => {
      const other = bytes.slice();
      const i = at % bytes.length;
      other[i] = (other[i]! + delta) & 0xff;
      const a = big(new Fnv64().bytes(bytes).digest());
      const b = big(new Fnv64().bytes(other).digest());
      let diff = a ^ b;
      let bits = 0;
      while (diff > 0n) {
        bits += Number(diff & 1n);
        diff >>= 1n;
      }
      return bits >= 8; // a weak bound that an unfinalised FNV fails for last-byte changes
    }),
    { numRuns: 500 },
  );
});

test('length prefixes separate field boundaries', () => {
  const a = new Fnv64().string('ab').string('c').digest();
  const b = new Fnv64().string('a').string('bc').digest();
  assert.notDeepEqual(a, b);
  assert.match(stateHashOf(a), /^[0-9a-f]{16}$/);
});

test('MultisetHash64 is an order-independent sum mod 2^64 and remove undoes add', () => {
  const digest = fc.record({ hi: fc.integer({ min: 0, max: 0xffffffff }), lo: fc.integer({ min: 0, max: 0xffffffff }) });
  fc.assert(
    fc.property(fc.array(digest, { maxLength: 30 }), fc.array(digest, { maxLength: 30 }), (xs, ys) => {
      const m = new MultisetHash64();
      for (const d of xs) m.add(d);
      const expected = xs.reduce((acc, d) => (acc + big(d)) & MASK64, 0n);
      if (big(m.value()) !== expected) return false;
      for (const d of ys) m.add(d);
      for (const d of [...ys].reverse()) m.remove(d);
      const reversed = new MultisetHash64();
      for (const d of [...xs].reverse()) reversed.add(d);
      return big(m.value()) === expected && big(reversed.value()) === expected;
    }),
    { numRuns: 300 },
  );
});

test('assertApplyOrder accepts gaps and refuses repeats and falling terms', () => {
  assertApplyOrder(logIndex(3), term(2), logIndex(7), term(2));
  assert.throws(() => { assertApplyOrder(logIndex(3), term(2), logIndex(3), term(2)); }, AssertionError);
  assert.throws(() => { assertApplyOrder(logIndex(3), term(2), logIndex(4), term(1)); }, AssertionError);
});
