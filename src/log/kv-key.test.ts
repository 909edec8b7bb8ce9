// Proves the KV key rules (kv-key.ts): printable text of 1 to KV_KEY_BYTES_MAX UTF-8 bytes is a
// key (spaces, any script, emoji, a leading BOM); empty, too long, an unpaired surrogate, and any
// control character (NUL, tab, newline, escape, DEL, C1) or line separator are not, each with a
// message naming the rule and, for a control character, its code point and position; the stored
// rule (what `apply` checks) still holds a control-character key written before the rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KV_KEY_BYTES_MAX } from '../constants.js';
import { kvKeyProblem, kvStoredKeyProblem } from './kv-key.js';

test('printable keys pass both rules', () => {
  for (const key of [
    'a',
    'config/db url',
    'ключ',
    '鍵/値',
    'emoji 🚀',
    '\uFEFFbom',
    'é'.repeat(KV_KEY_BYTES_MAX / 2),
  ]) {
    assert.equal(kvKeyProblem(key), null, JSON.stringify(key));
    assert.equal(kvStoredKeyProblem(key), null, JSON.stringify(key));
  }
});

test('empty, too long and unpaired surrogates break both rules', () => {
  for (const [key, re] of [
    ['', /key is empty/],
    [
      'x'.repeat(KV_KEY_BYTES_MAX + 1),
      new RegExp(`is ${KV_KEY_BYTES_MAX + 1} UTF-8 bytes; the limit is ${KV_KEY_BYTES_MAX}`),
    ],
    ['é'.repeat(KV_KEY_BYTES_MAX / 2 + 1), /UTF-8 bytes; the limit/],
    ['a\uD800b', /unpaired UTF-16 surrogate/],
  ] as const) {
    assert.match(kvKeyProblem(key) ?? '', re, JSON.stringify(key));
    assert.match(kvStoredKeyProblem(key) ?? '', re, JSON.stringify(key));
  }
  assert.equal(kvStoredKeyProblem('', 'prefix'), null, 'an empty prefix is a range over every key');
});

test('a control character or line separator breaks the write rule only, named by code point and position', () => {
  for (const [key, code, at] of [
    ['a\0b', '0000', 2],
    ['line\nbreak', '000A', 5],
    ['\r', '000D', 1],
    ['tab\there', '0009', 4],
    ['esc\u001b[31m', '001B', 4],
    ['del\u007f', '007F', 4],
    ['c1\u0085', '0085', 3],
    ['c1\u009b', '009B', 3],
    ['ls\u2028', '2028', 3],
    ['ps\u2029', '2029', 3],
  ] as const) {
    assert.equal(
      kvKeyProblem(key),
      `key holds the control character U+${code} at character ${at}; keys are printable text: no C0 or C1 control characters, DEL, or line separators`,
    );
    assert.equal(kvStoredKeyProblem(key), null, 'a key written before the rule can still be read and deleted');
  }
});
