// Proves the msgpack codec round-trips valid messages, turns every malformed or hostile input
// (lengths declaring 2^32 elements, huge strings in tiny buffers, deep nesting, exotic types,
// oversize) into a DecodeError quickly and without large allocations, names the bad field, and
// survives 100,000 fuzzed inputs raising nothing but DecodeError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { DecodeError } from '../lib/errors.js';
import { Prng } from '../lib/prng.js';
import { nodeId } from '../lib/ids.js';
import { EXAMPLE_MOODS, exampleCodec, validateExampleMessage, type ExampleMessage } from './example-message.js';
import { MessageTooLargeError, msgpackCodec } from './message-codec.js';

const messageArb: fc.Arbitrary<ExampleMessage> = fc.oneof(
  fc.record({
    type: fc.constantFrom('ping' as const, 'pong' as const),
    seq: fc.maxSafeNat(),
    payload: fc.uint8Array({ maxLength: 64 }),
  }),
  fc
    .record({
      type: fc.constant('gossip' as const),
      from: fc.integer({ min: 1, max: 65535 }),
      mood: fc.constantFrom(...EXAMPLE_MOODS),
      note: fc.string({ maxLength: 40 }),
      alive: fc.array(fc.integer({ min: 1, max: 65535 }), { maxLength: 8 }),
      urgent: fc.boolean(),
    })
    .map((g): ExampleMessage => ({ ...g, from: nodeId(g.from) })),
);

/** Buffers and Uint8Arrays compare equal by content. */
function normal(m: ExampleMessage): unknown {
  return m.type === 'gossip' ? { ...m, alive: [...m.alive] } : { ...m, payload: [...m.payload] };
}

function isDecodeError(code: string): (e: unknown) => boolean {
  return (e: unknown) => e instanceof DecodeError && e.code === code;
}

test('valid messages round-trip', () => {
  const codec = exampleCodec();
  fc.assert(
    fc.property(messageArb, (m) => {
      assert.deepEqual(normal(codec.decode(codec.encode(m))), normal(m));
    }),
    { numRuns: 2000 },
  );
});

test('hostile length headers fail fast without allocating', () => {
  const codec = exampleCodec();
  const hostile: [string, number[]][] = [
    ['array32 of 2^32-1 items', [0xdd, 0xff, 0xff, 0xff, 0xff, 0x00]],
    ['map32 of 2^32-1 entries', [0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61, 0x00]],
    ['str32 of 4 GiB', [0xdb, 0xff, 0xff, 0xff, 0xff, 0x61, 0x62]],
    ['bin32 of 4 GiB', [0xc6, 0xff, 0xff, 0xff, 0xff, 0x00]],
    ['ext32 of 4 GiB', [0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00]],
    ['array16 of 65535 nils in 3 bytes', [0xdc, 0xff, 0xff]],
    ['map with a str32 key of 4 GiB', [0x81, 0xdb, 0xff, 0xff, 0xff, 0xf0, 0x00]],
  ];
  for (const [what, bytes] of hostile) {
    const before = process.memoryUsage();
    const started = performance.now();
    assert.throws(() => codec.decode(Uint8Array.from(bytes)), isDecodeError('MESSAGE_MALFORMED'), what);
    const elapsedMs = performance.now() - started;
    const after = process.memoryUsage();
    assert.ok(elapsedMs < 200, `${what} took ${elapsedMs} ms`);
    const grewBytes = after.heapUsed + after.arrayBuffers - (before.heapUsed + before.arrayBuffers);
    assert.ok(grewBytes < 64 * 1024 * 1024, `${what} grew memory by ${grewBytes} bytes`);
  }
});

test('deep nesting is MESSAGE_MALFORMED, and the codec still works afterwards', () => {
  const codec = exampleCodec();
  const deep = new Uint8Array(200_001).fill(0x91);
  deep[deep.length - 1] = 0x00;
  assert.throws(() => codec.decode(deep), isDecodeError('MESSAGE_MALFORMED'));
  const m: ExampleMessage = { type: 'ping', seq: 5, payload: new Uint8Array([9]) };
  assert.deepEqual(normal(codec.decode(codec.encode(m))), normal(m));
});

test('wrong shapes are MESSAGE_INVALID and name the field', () => {
  const packr = new Packr({ useRecords: false });
  const codec = exampleCodec();
  const cases: [unknown, RegExp][] = [
    [{ type: 'ping', seq: -1, payload: new Uint8Array(0) }, /ExampleMessage\(ping\)\.seq: expected an integer/],
    [{ type: 'ping', seq: 1.5, payload: new Uint8Array(0) }, /\.seq/],
    [{ type: 'ping', seq: 2 ** 60, payload: new Uint8Array(0) }, /\.seq/],
    [{ type: 'ping', seq: 1 }, /\.payload: expected at most \d+ bytes, got nothing/],
    [{ type: 'warp', seq: 1 }, /ExampleMessage\.type: expected one of "ping", "pong", "gossip", got string "warp"/],
    [[1, 2, 3], /ExampleMessage: expected an object, got an array of 3 items/],
    [
      { type: 'gossip', from: 0, mood: 'calm', note: '', alive: [], urgent: true },
      /\.from: expected an integer in \[1, 65535\]/,
    ],
    [
      { type: 'gossip', from: 1, mood: 'angry', note: '', alive: [], urgent: true },
      /\.mood: expected one of "calm", "busy", "leaving"/,
    ],
    [
      { type: 'gossip', from: 1, mood: 'calm', note: 'x'.repeat(300), alive: [], urgent: true },
      /\.note: expected a string of at most 256 chars, got string "x+…" \(300 chars\)/,
    ],
    [
      { type: 'gossip', from: 1, mood: 'calm', note: '', alive: [1, 'two'], urgent: true },
      /\.alive\[1\]: expected an integer/,
    ],
    [
      { type: 'gossip', from: 1, mood: 'calm', note: '', alive: new Array(65).fill(1), urgent: true },
      /\.alive: expected an array of at most 64 items/,
    ],
  ];
  for (const [value, pattern] of cases) {
    assert.throws(
      () => codec.decode(packr.pack(value)),
      (e: unknown) => e instanceof DecodeError && e.code === 'MESSAGE_INVALID' && pattern.test(e.message),
      String(pattern),
    );
  }
});

test('exotic decoded types (Set, Date, RegExp, Error, Map, BigInt) are rejected by the validator', () => {
  const exotic = new Packr({ moreTypes: true, structuredClone: true, useRecords: false });
  const codec = exampleCodec();
  for (const payload of [new Set([1]), new Date(0), /x+/, new Error('boom'), new Map([[1, 2]]), 1n << 70n]) {
    const bytes = exotic.pack({ type: 'ping', seq: 1, payload });
    assert.throws(
      () => codec.decode(bytes),
      (e: unknown) => e instanceof DecodeError && (e.code === 'MESSAGE_INVALID' || e.code === 'MESSAGE_MALFORMED'),
    );
  }
  // A __proto__ key cannot pollute prototypes or pass as the discriminant.
  assert.throws(
    () => codec.decode(new Packr({ useRecords: false }).pack(JSON.parse('{"__proto__": {"type": "ping"}}'))),
    isDecodeError('MESSAGE_INVALID'),
  );
  assert.equal(({} as Record<string, unknown>).type, undefined);
});

test('size limits apply to both directions', () => {
  const codec = msgpackCodec(validateExampleMessage, { payloadBytesMax: 100 });
  assert.throws(
    () => codec.encode({ type: 'ping', seq: 1, payload: new Uint8Array(200) }),
    (e: unknown) => e instanceof MessageTooLargeError && e.code === 'MESSAGE_TOO_LARGE',
  );
  assert.throws(() => codec.decode(new Uint8Array(101)), isDecodeError('MESSAGE_TOO_LARGE'));
  assert.throws(() => codec.decode(new Uint8Array(0)), isDecodeError('MESSAGE_MALFORMED'));
  assert.throws(() => msgpackCodec(validateExampleMessage, { payloadBytesMax: 0 }), /payloadBytesMax/);
});

test('a validator that throws something else is still a DecodeError', () => {
  const codec = msgpackCodec<number>(() => {
    throw new TypeError('validator bug');
  });
  assert.throws(
    () => codec.decode(Uint8Array.of(0x01)),
    (e: unknown) => e instanceof DecodeError && e.code === 'MESSAGE_INVALID' && /validator bug/.test(e.message),
  );
});

test('fuzz: 100,000 random and mutated encodings raise only DecodeError', () => {
  const codec = exampleCodec();
  const prng = new Prng(99);
  const seeds = fc
    .sample(messageArb, { numRuns: 500, seed: 1 })
    .map((m) => ({ m, bytes: Uint8Array.from(codec.encode(m)) }));
  // Uint8Array.from copies: Buffer#slice would alias the encoder's buffer and let mutations leak.
  let valid = 0;
  let rejected = 0;
  for (let run = 0; run < 100_000; run++) {
    const seed = prng.pick(seeds);
    let input = Uint8Array.from(seed.bytes);
    const mutate = prng.int(0, 5);
    if (mutate === 1) for (let k = prng.int(1, 4); k > 0; k--) input[prng.int(0, input.length)] = prng.int(0, 256);
    if (mutate === 2) input = input.subarray(0, prng.int(0, input.length));
    if (mutate === 3) {
      const at = prng.int(0, input.length + 1);
      const extra = Uint8Array.from({ length: prng.int(1, 6) }, () =>
        prng.pick([0xdd, 0xdf, 0xdb, 0xc6, 0xc9, 0xff, 0x00, prng.int(0, 256)]),
      );
      input = Uint8Array.from([...input.subarray(0, at), ...extra, ...input.subarray(at)]);
    }
    if (mutate === 4) input = Uint8Array.from({ length: prng.int(0, 32) }, () => prng.int(0, 256));
    try {
      const m = codec.decode(input);
      if (mutate === 0) assert.deepEqual(normal(m), normal(seed.m), 'valid inputs round-trip');
      validateExampleMessage(m); // whatever decodes is a valid message
      valid++;
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      assert.notEqual(mutate, 0, `valid input rejected: ${e.message}`);
      rejected++;
    }
  }
  assert.ok(valid > 20_000 && rejected > 30_000, `valid ${valid}, rejected ${rejected}`);
});
