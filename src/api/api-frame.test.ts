// Proves the API frame codecs round-trip every frame kind, reject malformed frames with a
// DecodeError naming the field, refuse exotic or too-deep data, decide hellos (naming both
// versions on a mismatch), and survive 100,000+ fuzzed inputs with nothing but DecodeError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { DecodeError } from '../lib/errors.js';
import { API_DATA_DEPTH_MAX, API_FRAME_BYTES_MAX } from '../constants.js';
import { FrameDecoder } from '../transport/frame-decoder.js';
import {
  API_FRAME_LIMITS,
  API_PROTOCOL,
  API_PROTOCOL_VERSION,
  apiDataValue,
  checkHello,
  clientFrameCodec,
  describeFrame,
  encodeApiFrame,
  serverFrameCodec,
  type ApiData,
  type ClientFrame,
  type ServerFrame,
} from './index.js';

/** A comparable form: plain prototypes, bytes as arrays (the decoder yields Buffers). */
function normal(v: unknown): unknown {
  if (v instanceof Uint8Array) return { bytes: [...v] };
  if (Array.isArray(v)) return v.map(normal);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normal(x)]));
  return v;
}

const packr = new Packr({ useRecords: false, mapsAsObjects: true });

const dataArb: fc.Arbitrary<ApiData> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => (Object.is(x, -0) ? 0 : x)), // MessagePack has no -0
    fc.integer(),
    fc.string(),
    fc.uint8Array({ maxLength: 16 }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(
      fc.string({ maxLength: 8 }).filter((k) => k !== '__proto__'),
      tie('value'),
      { maxKeys: 4 },
    ),
  ),
})).value as fc.Arbitrary<ApiData>;

const idArb = fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER });
const methodArb = fc.constantFrom('status', 'nodes', 'groups.join', 'kv.get', 'events');

const clientFrameArb: fc.Arbitrary<ClientFrame> = fc.oneof(
  fc.record({
    type: fc.constant('hello' as const),
    protocol: fc.constant(API_PROTOCOL),
    version: fc.integer({ min: 0, max: 0xffff }),
    client: fc.string({ maxLength: 128 }),
  }),
  fc.record({ type: fc.constant('request' as const), id: idArb, method: methodArb, params: dataArb }),
  fc.record({ type: fc.constant('subscribe' as const), id: idArb, method: methodArb, params: dataArb }),
  fc.record({ type: fc.constant('cancel' as const), id: idArb }),
);

const serverFrameArb: fc.Arbitrary<ServerFrame> = fc.oneof(
  fc.record({
    type: fc.constant('welcome' as const),
    version: fc.integer({ min: 0, max: 0xffff }),
    server: fc.string({ maxLength: 128 }),
  }),
  fc.record({ type: fc.constant('response' as const), id: idArb, result: dataArb }),
  fc.record({ type: fc.constant('item' as const), id: idArb, value: dataArb }),
  fc.record({ type: fc.constant('end' as const), id: idArb }),
  fc.record({
    type: fc.constant('error' as const),
    id: fc.integer({ min: 0, max: 1000 }),
    code: fc.constantFrom('NOT_FOUND', 'SLOW_CONSUMER', 'FUTURE_CODE_42'),
    message: fc.string({ maxLength: 200 }),
  }),
);

function decodeFramed<F>(bytes: Uint8Array, decode: (b: Uint8Array) => F): F {
  const d = new FrameDecoder(API_FRAME_LIMITS);
  d.push(bytes);
  const frame = d.next();
  assert.ok(frame !== undefined);
  return decode(frame.subarray(4));
}

test('every client and server frame round-trips through framing and the codec', () => {
  const cc = clientFrameCodec();
  const sc = serverFrameCodec();
  fc.assert(
    fc.property(clientFrameArb, (f) => {
      assert.deepEqual(normal(decodeFramed(encodeApiFrame(cc, f), (b) => cc.decode(b))), normal(f));
      assert.ok(describeFrame(f).startsWith(f.type));
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(serverFrameArb, (f) => {
      assert.deepEqual(normal(decodeFramed(encodeApiFrame(sc, f), (b) => sc.decode(b))), normal(f));
    }),
    { numRuns: 2000 },
  );
});

function decodeError(value: unknown, server = false): DecodeError {
  const bytes = packr.pack(value);
  try {
    if (server) serverFrameCodec().decode(bytes);
    else clientFrameCodec().decode(bytes);
  } catch (e) {
    assert.ok(e instanceof DecodeError, `expected DecodeError, got ${String(e)}`);
    return e;
  }
  assert.fail(`expected ${JSON.stringify(value)} to be rejected`);
}

test('malformed frames are rejected with the field named', () => {
  assert.match(
    decodeError({ type: 'shout' }).message,
    /ClientFrame\.type: expected one of "hello", "request", "subscribe", "cancel"/,
  );
  assert.match(
    decodeError({ type: 'request', id: 0, method: 'status' }).message,
    /ClientFrame\(request\)\.id: expected an integer in \[1,/,
  );
  assert.match(decodeError({ type: 'request', id: 1, method: 'rm -rf' }).message, /\.method: expected a method name/);
  assert.match(
    decodeError({ type: 'request', id: 1, method: 'status', params: new Date(0) }).message,
    /\.params: expected plain data/,
  );
  assert.match(
    decodeError({ type: 'request', id: 1, method: 'status', params: { x: [Number.POSITIVE_INFINITY] } }).message,
    /params\.x\[0\]: expected a finite number/,
  );
  assert.match(
    decodeError({ type: 'error', id: 1, code: 'lower', message: 'm' }, true).message,
    /\.code: expected an UPPER_SNAKE_CASE error code/,
  );
  assert.equal(decodeError({ type: 'cancel' }).code, 'MESSAGE_INVALID');
});

test('data nested deeper than the limit is refused without recursion', () => {
  let deep: unknown = 1;
  for (let i = 0; i < API_DATA_DEPTH_MAX + 1; i++) deep = [deep];
  assert.throws(
    () => apiDataValue(deep, 'params'),
    (e: unknown) => e instanceof DecodeError && /nested at most/.test(e.message),
  );
  let ok: unknown = 1;
  for (let i = 0; i < API_DATA_DEPTH_MAX; i++) ok = { a: ok };
  assert.equal(apiDataValue(ok, 'params'), ok);
});

test('a frame larger than the limit is refused by the decoder before it is read', () => {
  const d = new FrameDecoder(API_FRAME_LIMITS);
  const header = new Uint8Array(4);
  new DataView(header.buffer).setUint32(0, API_FRAME_BYTES_MAX + 1, true);
  d.push(header);
  assert.throws(
    () => d.next(),
    (e: unknown) => e instanceof DecodeError && e.code === 'FRAME_TOO_LARGE',
  );
});

test('hello: same version accepted; another version or protocol refused, naming both versions', () => {
  assert.deepEqual(checkHello({ type: 'hello', protocol: API_PROTOCOL, version: API_PROTOCOL_VERSION, client: 'x' }), {
    ok: true,
  });
  const v = checkHello({ type: 'hello', protocol: API_PROTOCOL, version: 9, client: 'x' }, 1);
  assert.ok(!v.ok);
  assert.equal(v.error.code, 'VERSION_MISMATCH');
  assert.equal(v.error.id, 0);
  assert.match(v.error.message, /client speaks cohort API version 9 but this daemon speaks version 1/);
  const p = checkHello({ type: 'hello', protocol: 'http', version: 1, client: 'x' });
  assert.ok(!p.ok);
  assert.equal(p.error.code, 'PROTOCOL_ERROR');
});

test('fuzz: 100,000+ arbitrary and mutated inputs give a frame or a DecodeError, nothing else', () => {
  const cc = clientFrameCodec();
  const sc = serverFrameCodec();
  const check = (bytes: Uint8Array): void => {
    for (const codec of [cc, sc] as const) {
      try {
        codec.decode(bytes);
      } catch (e) {
        if (!(e instanceof DecodeError)) throw e;
      }
    }
  };
  // Random bytes.
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), (b) => {
      check(b);
    }),
    { numRuns: 40_000 },
  );
  // Valid frames with bytes flipped, truncated or extended.
  const mutated = fc.tuple(
    fc.oneof(clientFrameArb, serverFrameArb),
    fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
    fc.nat(),
    fc.boolean(),
  );
  fc.assert(
    fc.property(mutated, ([frame, flips, cut, truncate]) => {
      const b = Uint8Array.from(packr.pack(frame));
      for (const [at, v] of flips) if (b.length > 0) b[at % b.length] = v;
      check(truncate && b.length > 0 ? b.subarray(0, cut % b.length) : b);
    }),
    { numRuns: 40_000 },
  );
  // Structured garbage: arbitrary msgpack values shaped like frames.
  const shaped = fc.record(
    {
      type: fc.constantFrom(
        'hello',
        'request',
        'subscribe',
        'cancel',
        'welcome',
        'response',
        'item',
        'end',
        'error',
        'x',
      ),
      id: fc.anything(),
      method: fc.anything(),
      params: fc.anything(),
      code: fc.anything(),
      message: fc.anything(),
      version: fc.anything(),
      protocol: fc.anything(),
    },
    { requiredKeys: ['type'] },
  );
  fc.assert(
    fc.property(shaped, (v) => {
      check(packr.pack(v));
    }),
    { numRuns: 25_000 },
  );
});
