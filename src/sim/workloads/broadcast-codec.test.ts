// Proves the broadcast workload's formats: messages round-trip and the decoder raises only
// DecodeError on arbitrary bytes; a record slot reads back exactly, any bit flip in a written
// slot is reported as corruption (never as a different record or as "unwritten"), and a slot a
// crash left as a prefix followed by zeros reads as unwritten.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError } from '../../lib/errors.js';
import {
  decodeBroadcastMessage,
  encodeBroadcastMessage,
  encodeRecord,
  PAYLOAD_BYTES_MAX,
  readRecord,
  RECORD_BYTES,
  type BroadcastMessage,
} from './broadcast-codec.js';
import { recoverLog } from './broadcast-node.js';

const id = fc.integer({ min: 1, max: 0xffff_ffff });
const payload = fc.string({ maxLength: 12 }).filter((s) => new TextEncoder().encode(s).length <= PAYLOAD_BYTES_MAX);
const message: fc.Arbitrary<BroadcastMessage> = fc.oneof(
  fc.record({ type: fc.constant('data' as const), id, payload }),
  fc.record({ type: fc.constant('ack' as const), id }),
  fc.constant({ type: 'hello' as const }),
  fc.constant({ type: 'welcome' as const }),
);

test('messages round-trip', () => {
  fc.assert(
    fc.property(message, (m) => {
      assert.deepEqual(decodeBroadcastMessage(encodeBroadcastMessage(m)), { ...m }); // fc.record objects have no prototype
    }),
  );
});

test('the decoder raises only DecodeError on arbitrary and mutated bytes', () => {
  const mutated = fc.tuple(message, fc.nat(), fc.integer({ min: 0, max: 255 })).map(([m, i, b]) => {
    const bytes = encodeBroadcastMessage(m);
    bytes[i % bytes.length] = b;
    return bytes;
  });
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), mutated), (bytes) => {
      try {
        decodeBroadcastMessage(bytes);
      } catch (e) {
        assert.ok(e instanceof DecodeError, `unexpected ${String(e)}`);
      }
    }),
    { numRuns: 20_000 },
  );
});

test('a record slot reads back exactly', () => {
  fc.assert(
    fc.property(id, payload, (i, p) => {
      assert.deepEqual(readRecord(encodeRecord(i, p)), { kind: 'record', id: i, payload: p });
    }),
  );
});

test('any one to four bit flips in a written slot read as corruption', () => {
  fc.assert(
    fc.property(
      id,
      payload,
      fc.uniqueArray(fc.integer({ min: 0, max: RECORD_BYTES * 8 - 1 }), { minLength: 1, maxLength: 4 }),
      (i, p, bits) => {
        const slot = encodeRecord(i, p);
        for (const b of bits) slot[b >> 3]! ^= 1 << (b & 7);
        assert.equal(readRecord(slot).kind, 'corrupt');
      },
    ),
    { numRuns: 5000 },
  );
});

test('a torn slot (a prefix, then zeros) reads as unwritten; a torn file tail is cut', () => {
  fc.assert(
    fc.property(id, payload, fc.integer({ min: 0, max: RECORD_BYTES - 1 }), (i, p, cut) => {
      const slot = encodeRecord(i, p);
      slot.fill(0, cut);
      assert.equal(readRecord(slot).kind, 'unwritten');
    }),
  );
  const file = new Uint8Array(RECORD_BYTES * 2 + 10);
  file.set(encodeRecord(1, 'a'), 0);
  file.set(encodeRecord(2, 'b'), RECORD_BYTES);
  const r = recoverLog(file);
  assert.deepEqual(
    [...r.records],
    [
      [1, 'a'],
      [2, 'b'],
    ],
  );
  assert.equal(r.keepBytes, RECORD_BYTES * 2);
  assert.equal(r.corrupt, undefined);
  file[5]! ^= 0x10;
  assert.match(recoverLog(file).corrupt ?? '', /slot 0/);
});
