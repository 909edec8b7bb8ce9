// Proves the branded-id constructors accept exactly their documented ranges and that CRC32C
// matches the standard check value (so checksums are comparable with other tools).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId, term, logIndex, fencingToken, NODE_ID_MAX } from './ids.js';
import { crc32c } from './checksum.js';

test('nodeId accepts 1..NODE_ID_MAX only', () => {
  assert.equal(nodeId(1), 1);
  assert.equal(nodeId(NODE_ID_MAX), NODE_ID_MAX);
  for (const bad of [0, -1, NODE_ID_MAX + 1, 1.5, Number.NaN]) assert.throws(() => nodeId(bad));
});

test('counters accept non-negative safe integers only', () => {
  assert.equal(term(0), 0);
  assert.equal(logIndex(2 ** 40), 2 ** 40);
  for (const bad of [-1, 0.5, 2 ** 53]) assert.throws(() => term(bad));
  assert.equal(fencingToken(5n), 5n);
  assert.throws(() => fencingToken(-1n));
  assert.throws(() => fencingToken(1n << 64n));
});

test('crc32c matches the standard check value and chains', () => {
  const data = new TextEncoder().encode('123456789');
  assert.equal(crc32c(data), 0xe3069283);
  assert.equal(crc32c(data.subarray(3), crc32c(data.subarray(0, 3))), 0xe3069283);
  assert.notEqual(crc32c(new Uint8Array([1])), crc32c(new Uint8Array([2])));
});
