// Proves the frame decoder reassembles frames from any chunking, checks declared lengths before
// waiting for or allocating a body, reports truncation, stays poisoned after an error, and
// survives 100,000 fuzzed streams (random and mutated valid ones) raising nothing but DecodeError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError } from '../lib/errors.js';
import { Prng } from '../lib/prng.js';
import {
  FRAME_BODY_BYTES_MAX,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  encodeFrame,
  readFrameHeader,
  writeFrameHeader,
} from './frame-decoder.js';

const WIDE = { bodyBytesMin: 0, bodyBytesMax: 4096 };

/** Splits `bytes` at the given cut points (sorted, deduplicated, within range). */
function split(bytes: Uint8Array, cuts: readonly number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(bytes.subarray(prev, p));
    prev = p;
  }
  out.push(bytes.subarray(prev));
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Feeds chunks and collects every frame body; rethrows decoder errors. */
function decodeAll(decoder: FrameDecoder, chunks: readonly Uint8Array[]): Uint8Array[] {
  const bodies: Uint8Array[] = [];
  for (const chunk of chunks) {
    decoder.push(chunk);
    for (let f = decoder.next(); f !== undefined; f = decoder.next()) {
      assert.equal(
        readFrameHeader(f, 0),
        f.length - FRAME_HEADER_BYTES,
        'a frame is its header plus the declared body',
      );
      bodies.push(f.slice(FRAME_HEADER_BYTES));
    }
  }
  return bodies;
}

test('frames round-trip through any chunking', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 12 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      (bodies, cuts) => {
        const stream = concat(bodies.map(encodeFrame));
        const decoder = new FrameDecoder(WIDE);
        const got = decodeAll(decoder, split(stream, cuts));
        decoder.finish();
        assert.deepEqual(got, bodies);
        assert.equal(decoder.bufferedBytes, 0);
      },
    ),
    { numRuns: 2000 },
  );
});

test('a frame inside one chunk is returned as a view, not a copy', () => {
  const stream = concat([encodeFrame(new Uint8Array([1, 2, 3])), encodeFrame(new Uint8Array([4]))]);
  const decoder = new FrameDecoder(WIDE);
  decoder.push(stream);
  const first = decoder.next();
  assert.ok(first !== undefined);
  assert.equal(first.buffer, stream.buffer, 'shares the pushed chunk');
  assert.deepEqual([...first], [3, 0, 0, 0, 1, 2, 3]);
});

test('an oversized length is refused from the header alone, before any body byte arrives', () => {
  const decoder = new FrameDecoder({ bodyBytesMin: 0, bodyBytesMax: 100 });
  const header = new Uint8Array(4);
  writeFrameHeader(header, 0, 101);
  decoder.push(header);
  assert.throws(
    () => decoder.next(),
    (e: unknown) =>
      e instanceof DecodeError && e.code === 'FRAME_TOO_LARGE' && /101 bytes; the limit is 100/.test(e.message),
  );
  assert.equal(decoder.bufferedBytes, 0, 'nothing is kept after the error');
  // Poisoned: later input cannot resynchronise the stream.
  assert.throws(() => {
    decoder.push(encodeFrame(new Uint8Array(1)));
  }, DecodeError);
  assert.throws(() => decoder.next(), DecodeError);
});

test('a hostile 4 GiB declaration allocates nothing and fails at once', () => {
  const decoder = new FrameDecoder({ bodyBytesMin: 0, bodyBytesMax: FRAME_BODY_BYTES_MAX });
  decoder.push(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x00]));
  assert.throws(
    () => decoder.next(),
    (e: unknown) => e instanceof DecodeError && e.code === 'FRAME_TOO_LARGE',
  );
});

test('a length below the minimum is FRAME_TOO_SMALL', () => {
  const decoder = new FrameDecoder({ bodyBytesMin: 16, bodyBytesMax: 100 });
  decoder.push(encodeFrame(new Uint8Array(15)));
  assert.throws(
    () => decoder.next(),
    (e: unknown) => e instanceof DecodeError && e.code === 'FRAME_TOO_SMALL',
  );
});

test('a stream ending inside a header or a body is FRAME_TRUNCATED', () => {
  const frame = encodeFrame(new Uint8Array(10));
  for (let cut = 1; cut < frame.length; cut++) {
    const decoder = new FrameDecoder(WIDE);
    decoder.push(frame.subarray(0, cut));
    assert.equal(decoder.next(), undefined, `no frame from ${cut} bytes`);
    assert.throws(
      () => {
        decoder.finish();
      },
      (e: unknown) => e instanceof DecodeError && e.code === 'FRAME_TRUNCATED',
    );
  }
});

test('limits can be raised between frames (handshake, then data)', () => {
  const decoder = new FrameDecoder({ bodyBytesMin: 0, bodyBytesMax: 8 });
  decoder.push(concat([encodeFrame(new Uint8Array(8)), encodeFrame(new Uint8Array(20))]));
  assert.equal(decoder.next()?.length, 12);
  decoder.setLimits({ bodyBytesMin: 0, bodyBytesMax: 32 });
  assert.equal(decoder.next()?.length, 24);
});

test('fuzz: 100,000 random and mutated streams raise only DecodeError and never over-buffer', () => {
  const prng = new Prng(20261125);
  const limits = { bodyBytesMin: 2, bodyBytesMax: 512 };
  let decodedFrames = 0;
  let errors = 0;
  for (let run = 0; run < 100_000; run++) {
    const valid: Uint8Array[] = [];
    for (let i = prng.int(0, 4); i > 0; i--) {
      const body = new Uint8Array(prng.int(2, 64));
      for (let j = 0; j < body.length; j++) body[j] = prng.int(0, 256);
      valid.push(body);
    }
    let stream = concat(valid.map(encodeFrame));
    const mutate = prng.int(0, 4);
    if (mutate === 1 && stream.length > 0) stream[prng.int(0, stream.length)] = prng.int(0, 256);
    if (mutate === 2) stream = stream.subarray(0, prng.int(0, stream.length + 1));
    if (mutate === 3) {
      stream = new Uint8Array(prng.int(0, 40));
      for (let j = 0; j < stream.length; j++) stream[j] = prng.int(0, 256);
    }
    const cuts = Array.from({ length: prng.int(0, 5) }, () => prng.int(0, stream.length + 1));
    const decoder = new FrameDecoder(limits);
    try {
      const got = decodeAll(decoder, split(stream, cuts));
      for (const body of got) assert.ok(body.length >= limits.bodyBytesMin && body.length <= limits.bodyBytesMax);
      assert.ok(decoder.bufferedBytes <= FRAME_HEADER_BYTES + limits.bodyBytesMax, 'buffers at most one frame');
      decoder.finish();
      if (mutate === 0) assert.deepEqual(got, valid, 'valid streams round-trip');
      decodedFrames += got.length;
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      assert.notEqual(mutate, 0, `a valid stream was rejected: ${e.message}`);
      errors++;
    }
  }
  // The fuzzer must exercise both outcomes, or it proves nothing.
  assert.ok(decodedFrames > 50_000 && errors > 5_000, `frames ${decodedFrames}, errors ${errors}`);
});
