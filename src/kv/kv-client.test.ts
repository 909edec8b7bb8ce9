// Proves the KV client namespace runs over any `ApiCaller` (here one with no connection behind
// it): each method sends its method name and params (both `kv.cas` conditions), only the signal
// crosses as options, answers are decoded (a newer daemon's extra fields dropped), and a malformed
// answer is one PROTOCOL_ERROR naming the method and the field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clientFailure } from '../testing/api-support.js';
import { RecordingCaller } from '../testing/recording-caller.js';
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
