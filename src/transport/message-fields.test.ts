// Proves each field validator accepts exactly its documented values, rejects the rest with
// MESSAGE_INVALID naming the path, reads only own properties, and keeps error messages bounded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DecodeError } from '../lib/errors.js';
import {
  FieldReader,
  arrayValue,
  boolValue,
  bytesValue,
  describeValue,
  enumValue,
  intValue,
  isPlainObject,
  nodeIdValue,
  numberValue,
  stringValue,
  unionValue,
} from './message-fields.js';

function rejects(fn: () => unknown, pattern: RegExp): void {
  assert.throws(
    fn,
    (e: unknown) => e instanceof DecodeError && e.code === 'MESSAGE_INVALID' && pattern.test(e.message),
    String(pattern),
  );
}

test('scalar validators accept their range and reject the rest', () => {
  assert.equal(intValue(5, 'x', 0, 5), 5);
  rejects(() => intValue(6, 'x', 0, 5), /^x: expected an integer in \[0, 5\], got number 6$/);
  rejects(() => intValue('5', 'x', 0, 5), /got string "5"/);
  rejects(() => intValue(Number.MAX_SAFE_INTEGER + 1, 'x', 0, Number.MAX_SAFE_INTEGER), /expected an integer/);
  rejects(() => intValue(1n, 'x', 0, 5), /got bigint 1/);
  assert.equal(numberValue(0.5, 'x', 0, 1), 0.5);
  rejects(() => numberValue(Number.NaN, 'x', 0, 1), /finite number/);
  assert.equal(nodeIdValue(7, 'id'), 7);
  rejects(() => nodeIdValue(0, 'id'), /id: expected an integer in \[1, 65535\]/);
  assert.equal(boolValue(false, 'b'), false);
  rejects(() => boolValue(0, 'b'), /a boolean/);
  assert.equal(stringValue('ab', 's', 2), 'ab');
  rejects(() => stringValue('abc', 's', 2), /at most 2 chars/);
  assert.deepEqual(bytesValue(new Uint8Array(2), 'b', 2), new Uint8Array(2));
  rejects(() => bytesValue(new Uint8Array(3), 'b', 2), /got 3 bytes/);
  rejects(() => bytesValue([1, 2], 'b', 2), /got an array of 2 items/);
  assert.equal(enumValue('b', 'e', ['a', 'b'] as const), 'b');
  rejects(() => enumValue('c', 'e', ['a', 'b'] as const), /one of "a", "b", got string "c"/);
  rejects(() => enumValue('toString', 'e', ['a'] as const), /one of "a"/);
});

test('arrays check their bound before validating items, and name the bad index', () => {
  assert.deepEqual(
    arrayValue([1, 2], 'a', 2, (v, p) => intValue(v, p, 0, 9)),
    [1, 2],
  );
  let calls = 0;
  rejects(
    () =>
      arrayValue([1, 2, 3], 'a', 2, () => {
        calls++;
        return 0;
      }),
    /a: expected an array of at most 2 items/,
  );
  assert.equal(calls, 0);
  rejects(() => arrayValue([1, 'x'], 'list', 5, (v, p) => intValue(v, p, 0, 9)), /^list\[1\]: expected an integer/);
});

test('readers accept only plain objects and read only own fields', () => {
  assert.ok(isPlainObject({}) && isPlainObject(Object.create(null)));
  for (const v of [null, [], new Map(), new Date(0), 'x', 1]) assert.equal(isPlainObject(v), false);
  rejects(() => FieldReader.of(new Date(0), 'M'), /M: expected an object, got a Date/);
  const inherited = Object.create({ n: 1 }) as object;
  rejects(() => FieldReader.of(inherited, 'M'), /expected an object/);
  const r = FieldReader.of({ n: 3, s: 'x', nested: { k: true }, maybe: null }, 'M');
  assert.equal(r.int('n', 0, 3), 3);
  assert.equal(
    r.object('nested', (n) => n.bool('k')),
    true,
  );
  assert.equal(
    r.optional('maybe', (o, name) => o.int(name, 0, 1)),
    undefined,
  );
  assert.equal(
    r.optional('n', (o, name) => o.int(name, 0, 3)),
    3,
  );
  rejects(() => r.int('missing', 0, 1), /M\.missing: expected an integer in \[0, 1\], got nothing/);
  rejects(() => r.object('nested', (n) => n.string('k', 3)), /M\.nested\.k: expected a string/);
  rejects(() => r.literal('s', 'y'), /M\.s: expected "y"/);
  assert.equal(r.raw('toString'), undefined, 'inherited properties are invisible');
});

test('unions dispatch on the tag and reject unknown or inherited tags', () => {
  const cases = { a: (r: FieldReader) => r.int('v', 0, 1) };
  assert.equal(unionValue({ t: 'a', v: 1 }, 'U', 't', cases), 1);
  rejects(() => unionValue({ t: 'a', v: 2 }, 'U', 't', cases), /U\(a\)\.v/);
  rejects(() => unionValue({ t: 'constructor' }, 'U', 't', cases), /U\.t: expected one of "a"/);
  rejects(() => unionValue({}, 'U', 't', cases), /got nothing/);
});

test('error messages quote bounded excerpts of the bad value', () => {
  assert.ok(describeValue('y'.repeat(10_000)).length < 80);
  assert.ok(describeValue(10n ** 100n).length < 80);
  assert.equal(describeValue(new Uint8Array(9)), '9 bytes');
});
