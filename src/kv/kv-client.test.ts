// Proves the KV client namespace runs over any `ApiCaller` (here one with no connection behind
// it): each method sends its method name and params (both `kv.cas` conditions), only the signal
// crosses as options, answers are decoded (a newer daemon's extra fields dropped), and a malformed
// answer is one PROTOCOL_ERROR naming the method and the field; a key that breaks the key rules
// (a put or cas of a control character) and a value over KV_VALUE_BYTES_MAX are INVALID_ARGUMENT
// before anything is sent, while get and delete still reach a key stored before the rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clientFailure } from '../testing/api-support.js';
import { RecordingCaller } from '../testing/recording-caller.js';
import { KV_VALUE_BYTES_MAX } from '../constants.js';
import { kvClient } from './kv-client.js';

const value = new TextEncoder().encode('v1');

test('each call sends its method and params and decodes the answer', async () => {
  const caller = new RecordingCaller({
    'kv.get': { key: 'k', found: true, value, text: 'v1', revision: 3, modRevision: 2, createRevision: 1, version: 2 },
    'kv.put': { revision: 4, modRevision: 4, version: 3, addedByANewerDaemon: true },
    'kv.cas': { succeeded: false, revision: 4, text: null },
    'kv.delete': { deleted: true, revision: 5 },
  });
  const kv = kvClient(caller);
  const signal = new AbortController().signal;
  const got = await kv.get('k', { signal });
  assert.ok(got.found);
  assert.deepEqual([got.text, got.modRevision, got.version], ['v1', 2, 2]);
  assert.deepEqual(await kv.put('k', 'v2'), { revision: 4, modRevision: 4, version: 3 });
  assert.deepEqual(await kv.cas('k', 'v3', { expected: null }), { succeeded: false, revision: 4, text: null });
  await kv.cas('k', value, { expectedModRevision: 4 });
  assert.deepEqual(await kv.delete('k'), { deleted: true, revision: 5 });
  assert.deepEqual(caller.calls, [
    { method: 'kv.get', params: { key: 'k' }, options: { signal } },
    { method: 'kv.put', params: { key: 'k', value: 'v2' }, options: {} },
    { method: 'kv.cas', params: { key: 'k', value: 'v3', expected: null }, options: {} },
    { method: 'kv.cas', params: { key: 'k', value, expectedModRevision: 4 }, options: {} },
    { method: 'kv.delete', params: { key: 'k' }, options: {} },
  ]);
});

test('a malformed answer is one PROTOCOL_ERROR naming the method and the field', async () => {
  const kv = kvClient(new RecordingCaller({ 'kv.get': { key: 'k', found: true, value: 'not bytes', revision: 1 } }));
  const e = await clientFailure(kv.get('k'));
  assert.equal(e.code, 'PROTOCOL_ERROR');
  assert.match(e.message, /^kv\.get: the daemon's answer has result\.value = "not bytes", expected bytes/);
});

test('a bad key or an oversized value is refused before sending; get and delete reach any stored key', async () => {
  const caller = new RecordingCaller({ 'kv.get': { key: 'a\nb', found: false, revision: 1 } });
  const kv = kvClient(caller);
  for (const [call, re] of [
    [() => kv.put('a\nb', 'v'), /U\+000A at character 2/],
    [() => kv.put('nul\0', 'v'), /U\+0000/],
    [() => kv.cas('esc\u001b', 'v', { expected: null }), /U\+001B/],
    [() => kv.put('', 'v'), /key is empty/],
    [() => kv.get(''), /key is empty/],
    [
      () => kv.put('k', new Uint8Array(KV_VALUE_BYTES_MAX + 1)),
      new RegExp(`value is ${KV_VALUE_BYTES_MAX + 1} bytes; the limit is ${KV_VALUE_BYTES_MAX} bytes`),
    ],
    [() => kv.put('k', 'é'.repeat(KV_VALUE_BYTES_MAX / 2 + 1)), /value is \d+ bytes; the limit/],
    [() => kv.cas('k', 'v', { expected: new Uint8Array(KV_VALUE_BYTES_MAX + 1) }), /expected value is/],
  ] as const) {
    const e = await clientFailure(call());
    assert.equal(e.code, 'INVALID_ARGUMENT');
    assert.match(e.message, re);
  }
  assert.equal(caller.calls.length, 0, 'nothing was sent');
  await kv.get('a\nb');
  assert.deepEqual(
    caller.calls.map((c) => c.method),
    ['kv.get'],
  );
  const fits = new RecordingCaller({ 'kv.put': { revision: 1, modRevision: 1, version: 1 } });
  await kvClient(fits).put('k', new Uint8Array(KV_VALUE_BYTES_MAX));
  assert.equal(fits.calls.length, 1, 'a value of exactly the limit is sent');
});
