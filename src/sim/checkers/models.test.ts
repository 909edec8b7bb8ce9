// Proves each sequential model steps as its specification says (register, CAS register, mutex,
// key-value), treats an unknown output as "apply the input, accept any result", keeps `hash`
// consistent with `equal`, partitions KV histories by key without losing or copying operations,
// asserts on a history recorder that pairs an input with the wrong kind of output, and maps KV
// state-machine commands and outputs to model operations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AssertionError } from '../../lib/assert.js';
import type { Operation } from './linearizability.js';
import {
  casRegisterModel,
  kvModel,
  kvModelInput,
  kvModelOutput,
  mutexModel,
  registerModel,
  type KvInput,
  type KvModelOutput,
  type KvModelState,
} from './models.js';

test('register: reads must match, writes replace, unknown reads accept anything', () => {
  const m = registerModel;
  assert.deepEqual(m.step(null, { type: 'read' }, { type: 'read', value: null }), { ok: true, state: null });
  assert.equal(m.step(null, { type: 'read' }, { type: 'read', value: 1 }).ok, false);
  assert.equal(m.step(1, { type: 'read' }, { type: 'read', value: '1' }).ok, false, 'values compare by type and value');
  assert.deepEqual(m.step(null, { type: 'write', value: 'x' }, { type: 'write' }), { ok: true, state: 'x' });
  assert.deepEqual(m.step(7, { type: 'read' }, undefined), { ok: true, state: 7 });
  assert.throws(() => m.step(null, { type: 'cas', expected: null, value: 1 }, undefined), AssertionError);
  assert.throws(() => m.step(null, { type: 'read' }, { type: 'write' }), AssertionError);
  assert.equal(m.describeOperation({ type: 'read' }, undefined), 'read() -> ?');
  assert.equal(m.describeOperation({ type: 'read' }, { type: 'read', value: 'a' }), 'read() -> "a"');
});

test('cas register: a cas succeeds exactly when the compare holds, and an unknown cas follows the state', () => {
  const m = casRegisterModel;
  const cas = { type: 'cas', expected: 1, value: 2 } as const;
  assert.deepEqual(m.step(1, cas, { type: 'cas', succeeded: true }), { ok: true, state: 2 });
  assert.deepEqual(m.step(1, cas, { type: 'cas', succeeded: false }), { ok: false, state: 2 });
  assert.deepEqual(m.step(3, cas, { type: 'cas', succeeded: false }), { ok: true, state: 3 });
  assert.equal(m.step(3, cas, { type: 'cas', succeeded: true }).ok, false);
  assert.deepEqual(m.step(1, cas, undefined), { ok: true, state: 2 });
  assert.deepEqual(m.step(3, cas, undefined), { ok: true, state: 3 });
  assert.equal(m.describeOperation(cas, { type: 'cas', succeeded: false }), 'cas(1 -> 2) -> failed');
});

test('mutex: the Knossos rules, plus owners and refused try-locks', () => {
  const m = mutexModel;
  const granted = { type: 'acquire', granted: true } as const;
  const refused = { type: 'acquire', granted: false } as const;
  assert.deepEqual(m.step(null, { type: 'acquire', owner: 1 }, granted), { ok: true, state: 1 });
  assert.equal(m.step(2, { type: 'acquire', owner: 1 }, granted).ok, false);
  assert.equal(m.step(1, { type: 'acquire', owner: 1 }, granted).ok, false, 'not reentrant');
  assert.deepEqual(m.step(2, { type: 'acquire', owner: 1 }, refused), { ok: true, state: 2 });
  assert.equal(m.step(null, { type: 'acquire', owner: 1 }, refused).ok, false);
  assert.deepEqual(m.step(1, { type: 'release', owner: 1 }, { type: 'release' }), { ok: true, state: null });
  assert.equal(m.step(1, { type: 'release', owner: 2 }, { type: 'release' }).ok, false);
  assert.equal(m.step(null, { type: 'release', owner: 1 }, { type: 'release' }).ok, false);
  assert.deepEqual(m.step(null, { type: 'acquire', owner: 4 }, undefined), { ok: true, state: 4 });
  assert.equal(
    m.step(3, { type: 'acquire', owner: 4 }, undefined).ok,
    false,
    'an unknown acquire can only have been a grant or nothing',
  );
  assert.equal(m.describeState(3), 'held by 3');
});

test('kv: get/put/cas/delete follow the KV state machine semantics', () => {
  const m = kvModel;
  const s0 = m.init();
  const s1 = m.step(s0, { type: 'put', key: 'a', value: 'x' }, { type: 'put' }).state;
  assert.equal(m.step(s1, { type: 'get', key: 'a' }, { type: 'get', value: 'x' }).ok, true);
  assert.equal(m.step(s1, { type: 'get', key: 'b' }, { type: 'get', value: null }).ok, true);
  assert.equal(m.step(s1, { type: 'get', key: 'a' }, { type: 'get', value: null }).ok, false);
  const absentCas = m.step(s0, { type: 'cas', key: 'a', expected: null, value: 'y' }, { type: 'cas', succeeded: true });
  assert.ok(absentCas.ok);
  assert.equal(absentCas.state.get('a'), 'y');
  assert.equal(
    m.step(s1, { type: 'cas', key: 'a', expected: null, value: 'y' }, { type: 'cas', succeeded: true }).ok,
    false,
  );
  assert.deepEqual(m.step(s1, { type: 'delete', key: 'a' }, { type: 'delete', deleted: true }), {
    ok: true,
    state: s0,
  });
  assert.equal(m.step(s0, { type: 'delete', key: 'a' }, { type: 'delete', deleted: true }).ok, false);
  assert.equal(m.step(s0, { type: 'delete', key: 'a' }, { type: 'delete', deleted: false }).ok, true);
  assert.equal(s1.get('a'), 'x', 'states are never mutated in place');
  assert.equal(s0.size, 0);
  assert.throws(() => m.step(s0, { type: 'get', key: 'a' }, { type: 'put' }), AssertionError);
});

test('kv: hash agrees with equal regardless of insertion order', () => {
  const entries = fc.uniqueArray(fc.tuple(fc.constantFrom('a', 'b', 'c', 'd'), fc.constantFrom('1', '2', '3')), {
    selector: ([k]) => k,
    maxLength: 4,
  });
  fc.assert(
    fc.property(entries, entries, (xs, ys) => {
      const a: KvModelState = new Map(xs);
      const b: KvModelState = new Map([...xs].reverse());
      const c: KvModelState = new Map(ys);
      assert.ok(kvModel.equal(a, b));
      assert.equal(kvModel.hash?.(a), kvModel.hash?.(b));
      if (kvModel.equal(a, c)) assert.equal(kvModel.hash?.(a), kvModel.hash?.(c));
    }),
  );
});

test('kv: partition splits by key, keeps order and returns the same objects once each', () => {
  const h: Operation<KvInput, KvModelOutput>[] = ['a', 'b', 'a', 'c', 'b'].map((key, i) => ({
    clientId: i,
    call: i,
    return: i + 1,
    input: { type: 'get', key },
    output: { type: 'get', value: null },
  }));
  const parts = kvModel.partition?.(h) ?? [];
  assert.deepEqual(
    parts.map((p) => p.map((op) => h.indexOf(op))),
    [[0, 2], [1, 4], [3]],
  );
  assert.equal(
    kvModel.describeOperation({ type: 'cas', key: 'k', expected: null, value: 'v' }, undefined),
    'cas("k", nil -> "v") -> ?',
  );
  assert.equal(kvModel.describeState(new Map([['k', 'v']])), '"k"="v"');
});

test('kv recorder helpers map state-machine commands and outputs, and refuse what the model cannot check', () => {
  const v = new Uint8Array([0, 255]);
  assert.deepEqual(kvModelInput({ type: 'put', key: 'k', value: v }), { type: 'put', key: 'k', value: '00ff' });
  assert.deepEqual(kvModelInput({ type: 'cas', key: 'k', compare: { kind: 'value', value: null }, value: v }), {
    type: 'cas',
    key: 'k',
    expected: null,
    value: '00ff',
  });
  assert.equal(
    kvModelInput({ type: 'cas', key: 'k', compare: { kind: 'modRevision', modRevision: 3 }, value: v }),
    null,
  );
  assert.equal(kvModelInput({ type: 'range', prefix: '', limit: 5 }), null);
  const entry = { key: 'k', value: v, createRevision: 1, modRevision: 1, version: 1 };
  assert.deepEqual(kvModelOutput({ type: 'get', revision: 1, entry }), { type: 'get', value: '00ff' });
  assert.deepEqual(kvModelOutput({ type: 'get', revision: 1, entry: null }), { type: 'get', value: null });
  assert.deepEqual(kvModelOutput({ type: 'cas', revision: 1, succeeded: false, entry }), {
    type: 'cas',
    succeeded: false,
  });
  assert.equal(kvModelOutput({ type: 'range', revision: 1, entries: [entry], more: false }), null);
});
