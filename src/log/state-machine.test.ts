// Proves the state-machine hashing helpers are right: Fnv64 matches the published FNV-1a 64
// vectors and a BigInt reference on random input, its finaliser is a bijection that spreads a
// one-byte change, MultisetHash64 is an order-independent sum mod 2^64 whose remove undoes add,
// assertApplyOrder refuses a repeated index or a falling term, and StateMachineMux routes entries
// by tag, refuses unknown tags with a result, and snapshots and restores all members at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AssertionError } from '../lib/assert.js';
import { crc32c } from '../lib/checksum.js';
import { DecodeError } from '../lib/errors.js';
import { logIndex, term } from '../lib/ids.js';
import { KvStateMachine, type KvCommand } from './kv-state-machine.js';
import {
  assertApplyOrder,
  Fnv64,
  MultisetHash64,
  StateMachineMux,
  stateHashOf,
  type Digest64,
} from './state-machine.js';

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
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 64 }),
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      (bytes, at, delta) => {
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
      },
    ),
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
  const digest = fc.record({
    hi: fc.integer({ min: 0, max: 0xffffffff }),
    lo: fc.integer({ min: 0, max: 0xffffffff }),
  });
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
  assert.throws(() => {
    assertApplyOrder(logIndex(3), term(2), logIndex(3), term(2));
  }, AssertionError);
  assert.throws(() => {
    assertApplyOrder(logIndex(3), term(2), logIndex(4), term(1));
  }, AssertionError);
});

// ------------------------------------------------------------------------------------------------
// StateMachineMux

const kvMembers = [
  { tag: 2, name: 'kv-b', create: () => new KvStateMachine() },
  { tag: 1, name: 'kv-a', create: () => new KvStateMachine() },
];
const utf8 = new TextEncoder();
const putCmd = (key: string, value: string): KvCommand => ({ type: 'put', key, value: utf8.encode(value) });

function kvOf(mux: StateMachineMux, tag: number): KvStateMachine {
  const m = mux.machine(tag);
  assert.ok(m instanceof KvStateMachine);
  return m;
}

test('the mux routes each entry to the member its tag names, with the entry index', () => {
  const mux = new StateMachineMux(kvMembers);
  const a = mux.codec.encode({ type: 'mux', tag: 1, command: putCmd('x', '1') });
  assert.equal(a[0], 1);
  assert.deepEqual(mux.codec.decode(a), { type: 'mux', tag: 1, command: putCmd('x', '1') });
  const r1 = mux.apply(logIndex(1), term(1), a);
  const r2 = mux.apply(logIndex(3), term(1), { type: 'mux', tag: 2, command: putCmd('x', '2') });
  assert.ok(r1.ok && r2.ok);
  assert.equal(r1.value.tag, 1);
  assert.equal(r2.value.tag, 2);
  assert.deepEqual(kvOf(mux, 1).get('x').entry?.value, utf8.encode('1'));
  assert.deepEqual(kvOf(mux, 2).get('x').entry?.value, utf8.encode('2'));
  assert.equal(kvOf(mux, 1).appliedIndex, 1);
  assert.equal(kvOf(mux, 2).appliedIndex, 3);
  assert.equal(mux.appliedIndex, 3);
});

test('the mux turns unknown tags and bad member bytes into BAD_COMMAND results', () => {
  const mux = new StateMachineMux(kvMembers);
  const codes = [new Uint8Array(), new Uint8Array([9, 1]), new Uint8Array([1, 99])].map((b, i) => {
    const r = mux.apply(logIndex(i + 1), term(1), b);
    return r.ok ? 'ok' : r.error.code;
  });
  assert.deepEqual(codes, ['BAD_COMMAND', 'BAD_COMMAND', 'BAD_COMMAND']);
  assert.equal(mux.appliedIndex, 3);
  assert.throws(() => mux.codec.decode(new Uint8Array([9])), DecodeError);
  assert.throws(() => new StateMachineMux([kvMembers[0]!, kvMembers[0]!]), AssertionError);
});

test('mux snapshots restore all members to an equal hash, all or nothing', () => {
  const mux = new StateMachineMux(kvMembers);
  mux.apply(logIndex(1), term(1), { type: 'mux', tag: 1, command: putCmd('a', '1') });
  mux.apply(logIndex(2), term(2), { type: 'mux', tag: 2, command: putCmd('b', '2') });
  const snap = mux.snapshot();
  const other = new StateMachineMux(kvMembers);
  other.apply(logIndex(1), term(1), { type: 'mux', tag: 2, command: putCmd('junk', '') });
  const before = other.stateHash();
  // Corrupt the second member's snapshot behind a valid mux checksum: nothing may change.
  const body = snap.slice(0, snap.length - 4);
  body[body.length - 5]! ^= 0xff;
  const resealed = new Uint8Array([...body, 0, 0, 0, 0]);
  new DataView(resealed.buffer).setUint32(body.length, crc32c(body), true);
  const bad = other.restore(resealed);
  assert.ok(!bad.ok && bad.error.code === 'SNAPSHOT_CHECKSUM');
  assert.equal(other.stateHash(), before);
  assert.deepEqual(other.restore(snap), { ok: true, value: undefined });
  assert.equal(other.stateHash(), mux.stateHash());
  assert.equal(other.appliedIndex, 2);
  assert.deepEqual(other.snapshot(), snap);
  // A snapshot from a node running other machines is refused.
  const single = new StateMachineMux([kvMembers[1]!]);
  const foreign = single.restore(snap);
  assert.ok(!foreign.ok && foreign.error.code === 'SNAPSHOT_INVALID');
  const flipped = snap.slice();
  flipped[7]! ^= 1;
  const corrupt = other.restore(flipped);
  assert.ok(!corrupt.ok && corrupt.error.code === 'SNAPSHOT_CHECKSUM');
});

test('the mux hash covers every member', () => {
  const a = new StateMachineMux(kvMembers);
  const b = new StateMachineMux(kvMembers);
  a.apply(logIndex(1), term(1), { type: 'mux', tag: 1, command: putCmd('k', 'v') });
  b.apply(logIndex(1), term(1), { type: 'mux', tag: 2, command: putCmd('k', 'v') });
  assert.notEqual(a.stateHash(), b.stateHash());
});
