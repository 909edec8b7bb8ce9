// Proves ByteWriter/ByteReader round-trip every field type, and that the reader turns every
// out-of-bounds, oversized or malformed read into a DecodeError (never a RangeError or a huge
// allocation), including the edge lengths 0, 1, 2^31 and 2^32-1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ByteReader, ByteWriter } from './bytes.js';
import { DecodeError } from './errors.js';

test('fields round-trip', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 255 }),
      fc.integer({ min: 0, max: 65535 }),
      fc.nat({ max: 0xffffffff }),
      fc.maxSafeNat(),
      fc.uint8Array({ maxLength: 64 }),
      fc.string({ unit: 'grapheme', maxLength: 40 }),
      (a, b, c, d, bytes, s) => {
        const w = new ByteWriter(1);
        w.u8(a).u16(b).u32(c).u64(d).lenBytes(bytes).string(s);
        const r = new ByteReader(w.finish());
        assert.equal(r.u8(), a);
        assert.equal(r.u16(), b);
        assert.equal(r.u32(), c);
        assert.equal(r.u64(), d);
        assert.deepEqual(r.lenBytes(64), bytes);
        assert.equal(r.string(1000), s);
        r.end();
      },
    ),
  );
});

function decodeError(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => e instanceof DecodeError && e.code === code);
}

test('edge lengths give typed errors', () => {
  for (const len of [1, 2 ** 31, 2 ** 32 - 1]) {
    const w = new ByteWriter().u32(len);
    decodeError(() => new ByteReader(w.finish()).lenBytes(2 ** 32), 'DECODE_TRUNCATED');
    decodeError(() => new ByteReader(w.finish()).lenBytes(0), 'DECODE_TOO_LARGE');
  }
  assert.deepEqual(new ByteReader(new ByteWriter().u32(0).finish()).lenBytes(0), new Uint8Array(0));
  decodeError(() => new ByteReader(new Uint8Array(3)).u32(), 'DECODE_TRUNCATED');
  decodeError(() => {
    new ByteReader(new Uint8Array(9)).end();
  }, 'DECODE_TRAILING');
  const big = new ByteWriter().bytes(new Uint8Array(8).fill(0xff)).finish();
  decodeError(() => new ByteReader(big).u64(), 'DECODE_RANGE');
  const badUtf8 = new ByteWriter().lenBytes(new Uint8Array([0xc3, 0x28])).finish();
  decodeError(() => new ByteReader(badUtf8).string(10), 'DECODE_UTF8');
});

test('random input never throws anything but DecodeError', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 32 }), (buf) => {
      const r = new ByteReader(buf);
      try {
        r.u8();
        r.string(16);
        r.u64();
        r.lenBytes(8);
        r.end();
      } catch (e) {
        if (!(e instanceof DecodeError)) throw e;
      }
    }),
    { numRuns: 5000 },
  );
});

test('the writer refuses to grow past its maximum', () => {
  const w = new ByteWriter(4, 8);
  w.u32(1).u32(2);
  assert.throws(() => w.u8(3));
});
