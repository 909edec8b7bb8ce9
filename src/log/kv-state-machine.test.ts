// Proves the KV state machine keeps its contract: etcd-like revisions and compare semantics, typed
// error results (never exceptions) for bad or over-limit commands, a command codec that round-trips
// and whose decoder raises only DecodeError on 100,000+ fuzzed inputs, snapshots that restore to
// an equal state hash and refuse corrupt bytes without changing anything, and determinism: the same
// command sequence on two instances gives equal results and equal hashes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AssertionError } from '../lib/assert.js';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { crc32c } from '../lib/checksum.js';
import { DecodeError } from '../lib/errors.js';
import { logIndex, term, type LogIndex } from '../lib/ids.js';
import {
  KV_KEY_BYTES_MAX,
  KV_KEYS_MAX,
  KV_RANGE_ENTRIES_MAX,
  KV_STATE_BYTES_MAX,
  KV_VALUE_BYTES_MAX,
} from '../constants.js';
import {
  decodeKvCommand,
  encodeKvCommand,
  KvStateMachine,
  validateKvCommand,
  type KvCommand,
  type KvCompare,
  type KvOutput,
} from './kv-state-machine.js';
import type { ApplyResult } from './state-machine.js';

const enc = new TextEncoder();
const T1 = term(1);

/** Applies commands at consecutive indexes, returning every result. */
function run(sm: KvStateMachine, commands: readonly (KvCommand | Uint8Array)[]): ApplyResult<KvOutput>[] {
  return commands.map((c) => sm.apply(logIndex(sm.appliedIndex + 1), T1, c));
}

function okValue(r: ApplyResult<KvOutput>): KvOutput {
  assert.ok(r.ok, `expected success, got ${r.ok ? '' : `${r.error.code}: ${r.error.message}`}`);
  return r.value;
}

function errCode(r: ApplyResult<KvOutput>): string {
  assert.ok(!r.ok, 'expected an error result');
  return r.error.code;
}

const put = (key: string, value: string): KvCommand => ({ type: 'put', key, value: enc.encode(value) });

test('puts, gets and deletes follow etcd revision rules', () => {
  const sm = new KvStateMachine();
  const [p1, p2, p3, g, d, dAgain, g2, p4] = run(sm, [
    put('a', '1'),
    put('b', '2'),
    put('a', '3'),
    { type: 'get', key: 'a' },
    { type: 'delete', key: 'a' },
    { type: 'delete', key: 'a' },
    { type: 'get', key: 'a' },
    put('a', '4'),
  ]).map(okValue);
  assert.deepEqual(p1, {
    type: 'put',
    revision: 1,
    entry: { key: 'a', value: enc.encode('1'), createRevision: 1, modRevision: 1, version: 1 },
  });
  assert.equal(p2?.revision, 2);
  assert.deepEqual(p3, {
    type: 'put',
    revision: 3,
    entry: { key: 'a', value: enc.encode('3'), createRevision: 1, modRevision: 3, version: 2 },
  });
  assert.deepEqual(g, {
    type: 'get',
    revision: 3,
    entry: { key: 'a', value: enc.encode('3'), createRevision: 1, modRevision: 3, version: 2 },
  });
  assert.deepEqual(d, { type: 'delete', revision: 4, deleted: true });
  assert.deepEqual(dAgain, { type: 'delete', revision: 4, deleted: false }, 'deleting an absent key is not a mutation');
  assert.deepEqual(g2, { type: 'get', revision: 4, entry: null });
  assert.deepEqual(p4, {
    type: 'put',
    revision: 5,
    entry: { key: 'a', value: enc.encode('4'), createRevision: 5, modRevision: 5, version: 1 },
  });
  assert.equal(sm.revision, 5);
  assert.equal(sm.appliedIndex, 8);
});

test('cas compares the value or the mod revision, and absence', () => {
  const sm = new KvStateMachine();
  const results = run(sm, [
    { type: 'cas', key: 'k', compare: { kind: 'value', value: null }, value: enc.encode('v1') }, // absent: holds
    { type: 'cas', key: 'k', compare: { kind: 'value', value: null }, value: enc.encode('v2') }, // present: fails
    { type: 'cas', key: 'k', compare: { kind: 'value', value: enc.encode('v1') }, value: enc.encode('v2') }, // holds
    { type: 'cas', key: 'k', compare: { kind: 'modRevision', modRevision: 1 }, value: enc.encode('v3') }, // stale: fails
    { type: 'cas', key: 'k', compare: { kind: 'modRevision', modRevision: 2 }, value: enc.encode('v3') }, // holds
    { type: 'cas', key: 'z', compare: { kind: 'modRevision', modRevision: 0 }, value: enc.encode('z') }, // absent: holds
  ]).map(okValue);
  assert.deepEqual(
    results.map((r) => (r.type === 'cas' ? [r.succeeded, r.revision, r.entry?.version ?? 0] : null)),
    [
      [true, 1, 1],
      [false, 1, 1],
      [true, 2, 2],
      [false, 2, 2],
      [true, 3, 3],
      [true, 4, 1],
    ],
  );
  const failed = results[3];
  assert.ok(failed?.type === 'cas');
  assert.deepEqual(failed.entry?.value, enc.encode('v2'), 'a failed cas returns the current entry');
});

test('range returns prefixed keys in order, honours the limit and reports more', () => {
  const sm = new KvStateMachine();
  run(sm, [put('app/b', 'B'), put('app/a', 'A'), put('apq', 'x'), put('ap', 'y'), put('app/c', 'C')]);
  const all = okValue(run(sm, [{ type: 'range', prefix: 'app/', limit: 10 }])[0]!);
  assert.ok(all.type === 'range');
  assert.deepEqual(
    all.entries.map((e) => e.key),
    ['app/a', 'app/b', 'app/c'],
  );
  assert.equal(all.more, false);
  const two = sm.range('app/', 2);
  assert.deepEqual(
    two.entries.map((e) => e.key),
    ['app/a', 'app/b'],
  );
  assert.equal(two.more, true);
  assert.deepEqual(
    sm.range('', 100).entries.map((e) => e.key),
    ['ap', 'app/a', 'app/b', 'app/c', 'apq'],
  );
  assert.deepEqual(sm.range('zzz', 5), { type: 'range', revision: 5, entries: [], more: false });
});

test('invalid commands give typed error results, consume the index and change nothing', () => {
  const sm = new KvStateMachine();
  run(sm, [put('a', '1')]);
  const before = sm.stateHash();
  const results = run(sm, [
    { type: 'put', key: '', value: new Uint8Array() },
    { type: 'put', key: 'x'.repeat(KV_KEY_BYTES_MAX + 1), value: new Uint8Array() },
    { type: 'put', key: 'bad\uD800', value: new Uint8Array() },
    { type: 'put', key: 'a', value: new Uint8Array(KV_VALUE_BYTES_MAX + 1) },
    { type: 'range', prefix: '', limit: 0 },
    { type: 'range', prefix: '', limit: KV_RANGE_ENTRIES_MAX + 1 },
    { type: 'cas', key: 'a', compare: { kind: 'modRevision', modRevision: -1 }, value: new Uint8Array() },
    new Uint8Array([99]),
    new Uint8Array(),
  ]);
  assert.deepEqual(results.map(errCode), [
    'KV_INVALID_KEY',
    'KV_INVALID_KEY',
    'KV_INVALID_KEY',
    'KV_VALUE_TOO_LARGE',
    'KV_INVALID_LIMIT',
    'KV_INVALID_LIMIT',
    'KV_INVALID_COMPARE',
    'BAD_COMMAND',
    'BAD_COMMAND',
  ]);
  assert.equal(sm.appliedIndex, 10, 'refused commands still consume their index');
  assert.equal(sm.revision, 1);
  const again = new KvStateMachine();
  run(again, [put('a', '1')]);
  assert.equal(before, again.stateHash());
  assert.notEqual(sm.stateHash(), before, 'the hash covers the applied index');
});

test('the key-count limit refuses a new key with KV_TOO_MANY_KEYS but allows overwrites and deletes', () => {
  const sm = new KvStateMachine();
  for (let i = 0; i < KV_KEYS_MAX; i++) okValue(sm.apply(logIndex(i + 1), T1, put(`k${i}`, '')));
  assert.equal(sm.size, KV_KEYS_MAX);
  const [full, overwrite, del, after] = run(sm, [
    put('new', ''),
    put('k0', 'v'),
    { type: 'delete', key: 'k1' },
    put('new', ''),
  ]);
  assert.equal(errCode(full!), 'KV_TOO_MANY_KEYS');
  assert.match(full!.ok ? '' : full!.error.message, /delete keys/);
  okValue(overwrite!);
  okValue(del!);
  okValue(after!);
});

test('the state-size limit refuses growth with KV_STATE_TOO_LARGE', () => {
  const sm = new KvStateMachine();
  const big = new Uint8Array(KV_VALUE_BYTES_MAX);
  let i = 0;
  let last: ApplyResult<KvOutput>;
  do {
    last = sm.apply(logIndex(++i), T1, { type: 'put', key: `big${i}`, value: big });
  } while (last.ok && i < 10_000);
  assert.equal(errCode(last), 'KV_STATE_TOO_LARGE');
  assert.ok(sm.stateBytes <= KV_STATE_BYTES_MAX && sm.stateBytes + KV_VALUE_BYTES_MAX > KV_STATE_BYTES_MAX - 64);
  okValue(sm.apply(logIndex(++i), T1, { type: 'put', key: 'big1', value: new Uint8Array(1) }));
  okValue(sm.apply(logIndex(++i), T1, { type: 'put', key: `big${i - 2}`, value: big }));
});

test('apply asserts on a repeated index (double apply is a log-layer bug)', () => {
  const sm = new KvStateMachine();
  sm.apply(logIndex(5), T1, put('a', '1'));
  assert.throws(() => sm.apply(logIndex(5), T1, put('a', '1')), AssertionError);
  assert.throws(() => sm.apply(logIndex(6), term(0), put('a', '1')), AssertionError);
  sm.apply(logIndex(9), term(2), put('a', '2')); // gaps are fine
  assert.equal(sm.appliedIndex, 9);
});

test('outputs and stored values never alias caller or log buffers', () => {
  const sm = new KvStateMachine();
  const value = enc.encode('abc');
  const out = okValue(run(sm, [{ type: 'put', key: 'k', value }])[0]!);
  value[0] = 0;
  assert.ok(out.type === 'put');
  out.entry.value[1] = 0;
  const bytes = encodeKvCommand(put('j', 'xyz'));
  run(sm, [bytes]);
  bytes.fill(0);
  assert.deepEqual(sm.get('k').entry?.value, enc.encode('abc'));
  assert.deepEqual(sm.get('j').entry?.value, enc.encode('xyz'));
});

// ------------------------------------------------------------------------------------------------
// Codec

const keyArb = fc.oneof(
  fc.constantFrom('a', 'ab', 'b', 'app/x', '\uFEFFbom', 'ключ', '😀', 'a\u0000b'),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 12 }),
);
const valueArb = fc.uint8Array({ maxLength: 12 });
const compareArb = fc
  .oneof(
    fc.record({ kind: fc.constant('value' as const), value: fc.option(valueArb, { nil: null }) }),
    fc.record({ kind: fc.constant('modRevision' as const), modRevision: fc.nat({ max: 40 }) }),
  )
  .map((c): KvCompare => ({ ...c })); // fc.record builds null-prototype objects; decoded ones are plain
const commandArb: fc.Arbitrary<KvCommand> = fc
  .oneof(
    fc.record({ type: fc.constant('get' as const), key: keyArb }),
    fc.record({ type: fc.constant('put' as const), key: keyArb, value: valueArb }),
    fc.record({ type: fc.constant('cas' as const), key: keyArb, compare: compareArb, value: valueArb }),
    fc.record({ type: fc.constant('delete' as const), key: keyArb }),
    fc.record({
      type: fc.constant('range' as const),
      prefix: fc.oneof(fc.constant(''), keyArb),
      limit: fc.integer({ min: 1, max: KV_RANGE_ENTRIES_MAX }),
    }),
  )
  .map((c): KvCommand => ({ ...c }));

test('every valid command round-trips through the codec, and the encoding is canonical', () => {
  fc.assert(
    fc.property(commandArb, (c) => {
      assert.equal(validateKvCommand(c), null);
      const bytes = encodeKvCommand(c);
      const back = decodeKvCommand(bytes);
      assert.deepEqual(back, c);
      assert.deepEqual(encodeKvCommand(back), bytes);
    }),
    { numRuns: 5000 },
  );
});

function decodesOrRaisesDecodeError(bytes: Uint8Array): boolean {
  try {
    const c = decodeKvCommand(bytes);
    // Whatever decodes must be valid and re-encode to the same bytes (no second spelling).
    return validateKvCommand(c) === null && Buffer.compare(encodeKvCommand(c), bytes) === 0;
  } catch (e) {
    if (e instanceof DecodeError) return true;
    throw e;
  }
}

test('the decoder raises only DecodeError on 100,000 random and mutated inputs', () => {
  let runs = 0;
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 48 }), (bytes) => {
      runs++;
      return decodesOrRaisesDecodeError(bytes);
    }),
    { numRuns: 50_000 },
  );
  // Random bytes rarely get past the tag; mutate real encodings to reach the inner fields.
  const mutated = fc
    .tuple(
      commandArb,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
      fc.nat({ max: 6 }),
    )
    .map(([c, edits, cut]) => {
      const b = encodeKvCommand(c).slice();
      for (const [at, v] of edits) b[at % b.length] = v;
      return cut === 0 ? b.subarray(0, Math.max(0, b.length - 1 - ((edits[0]?.[0] ?? 0) % b.length))) : b;
    });
  fc.assert(
    fc.property(mutated, (bytes) => {
      runs++;
      return decodesOrRaisesDecodeError(bytes);
    }),
    { numRuns: 50_000 },
  );
  assert.ok(runs >= 100_000, `fuzzed only ${runs} inputs`);
});

test('the decoder refuses trailing bytes, unknown tags, empty keys and out-of-range limits', () => {
  const good = encodeKvCommand(put('a', 'b'));
  const codes = [
    new Uint8Array([...good, 0]),
    new Uint8Array([42]),
    new Uint8Array([1, 0, 0, 0, 0]), // get with an empty key
    encodeKvCommand({ type: 'range', prefix: '', limit: 1 }).map((b, i) => (i === 5 ? 0 : b)), // limit 0
    new Uint8Array([1, 2, 0, 0, 0, 0xc3, 0x28]), // invalid UTF-8
  ].map((b) => {
    try {
      decodeKvCommand(b);
      return 'decoded';
    } catch (e) {
      assert.ok(e instanceof DecodeError);
      return e.code;
    }
  });
  assert.deepEqual(codes, ['DECODE_TRAILING', 'DECODE_INVALID', 'DECODE_INVALID', 'DECODE_RANGE', 'DECODE_UTF8']);
});

// ------------------------------------------------------------------------------------------------
// Determinism, hashing and snapshots

const workloadArb = fc.array(
  fc.oneof({ weight: 4, arbitrary: commandArb }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 10 }) }),
  { maxLength: 80 },
);

test('the same command sequence on two instances gives equal results, hashes and snapshots', () => {
  fc.assert(
    fc.property(workloadArb, fc.boolean(), (commands, asBytes) => {
      const a = new KvStateMachine();
      const b = new KvStateMachine();
      const ra = run(a, commands);
      // The second replica gets the same entries as log bytes where possible (the real path).
      const rb = run(
        b,
        commands.map((c) => (asBytes && !(c instanceof Uint8Array) ? encodeKvCommand(c) : c)),
      );
      assert.deepEqual(rb, ra);
      assert.equal(a.stateHash(), b.stateHash());
      assert.deepEqual(a.snapshot(), b.snapshot());
    }),
    { numRuns: 300 },
  );
});

test('snapshot and restore round-trip to an equal hash, and the incremental hash equals a fresh one', () => {
  fc.assert(
    fc.property(workloadArb, workloadArb, (first, second) => {
      const a = new KvStateMachine();
      run(a, first);
      const snap = a.snapshot();
      const b = new KvStateMachine();
      run(b, [put('junk', 'to be replaced')]);
      assert.deepEqual(b.restore(snap), { ok: true, value: undefined });
      assert.equal(b.stateHash(), a.stateHash());
      assert.equal(b.revision, a.revision);
      assert.equal(b.appliedIndex, a.appliedIndex);
      assert.deepEqual(b.snapshot(), snap);
      // Both continue identically after the restore.
      assert.deepEqual(run(b, second), run(a, second));
      assert.equal(b.stateHash(), a.stateHash());
    }),
    { numRuns: 200 },
  );
});

test('different states have different hashes', () => {
  const variants: (readonly KvCommand[])[] = [
    [],
    [put('a', '1')],
    [put('a', '2')],
    [put('b', '1')],
    [put('a', '1'), put('a', '1')], // same value, later revision and version
    [put('a', '1'), { type: 'delete', key: 'a' }],
    [put('a', '1'), put('b', '2')],
    [put('a', '2'), put('b', '1')],
  ];
  const hashes = variants.map((cs) => {
    const sm = new KvStateMachine();
    cs.forEach((c, i) => sm.apply(logIndex(i + 1), T1, c));
    // Equalise the applied index so only the data differs.
    sm.apply(logIndex(10), T1, { type: 'get', key: 'a' });
    return sm.stateHash();
  });
  assert.equal(new Set(hashes).size, hashes.length);
});

function restoreError(sm: KvStateMachine, bytes: Uint8Array): string {
  const r = sm.restore(bytes);
  assert.ok(!r.ok, 'restore must refuse');
  assert.ok(r.error instanceof DecodeError);
  return r.error.code;
}

function sample(): KvStateMachine {
  const sm = new KvStateMachine();
  run(sm, [put('a', '1'), put('b', '22'), put('a', '3'), { type: 'delete', key: 'b' }, put('c', '')]);
  return sm;
}

test('restore refuses corrupt snapshots and leaves the state untouched', () => {
  const snap = sample().snapshot();
  const target = new KvStateMachine();
  run(target, [put('keep', 'me')]);
  const hash = target.stateHash();
  for (let bit = 0; bit < snap.length * 8; bit++) {
    const bad = snap.slice();
    bad[bit >> 3]! ^= 1 << (bit & 7);
    assert.equal(restoreError(target, bad), 'SNAPSHOT_CHECKSUM');
  }
  for (let n = 0; n < snap.length; n++) {
    const code = restoreError(target, snap.subarray(0, n));
    assert.ok(code === 'SNAPSHOT_INVALID' || code === 'SNAPSHOT_CHECKSUM', code);
  }
  assert.equal(target.stateHash(), hash);
});

/** Re-seals `body` with a valid checksum, to test the checks behind the checksum. */
function seal(body: Uint8Array): Uint8Array {
  return new ByteWriter(body.length + 4).bytes(body).u32(crc32c(body)).finish().slice();
}

test('restore checks magic, format and invariants behind a valid checksum', () => {
  const snap = sample().snapshot();
  const body = snap.subarray(0, snap.length - 4);
  const patched = (offset: number, bytes: readonly number[]): Uint8Array => {
    const b = body.slice();
    b.set(bytes, offset);
    return seal(b);
  };
  const sm = new KvStateMachine();
  assert.equal(restoreError(sm, patched(0, [0])), 'SNAPSHOT_MAGIC');
  assert.equal(restoreError(sm, patched(4, [9])), 'SNAPSHOT_VERSION');
  assert.equal(restoreError(sm, patched(21, [1, 0, 0, 0, 0, 0, 0, 0])), 'SNAPSHOT_INVALID'); // revision 1 < modRevisions
  assert.equal(restoreError(sm, patched(29, [3])), 'DECODE_TRUNCATED'); // claims 3 entries, holds 2
  assert.equal(restoreError(sm, seal(new Uint8Array([...body, 7]))), 'DECODE_TRAILING');
  const header = new ByteReader(body);
  header.bytes(29);
  assert.equal(header.u32(), 2, 'the sample holds keys a and c');
  // Swap the order of the two keys' first letters: 'c' then 'a' is out of order.
  const swapped = body.slice();
  const firstKeyAt = 33 + 4;
  const secondKeyAt = firstKeyAt + 1 + 4 + 1 + 24 + 4;
  assert.equal(swapped[firstKeyAt], 'a'.charCodeAt(0));
  assert.equal(swapped[secondKeyAt], 'c'.charCodeAt(0));
  swapped[firstKeyAt] = 'c'.charCodeAt(0);
  swapped[secondKeyAt] = 'a'.charCodeAt(0);
  assert.equal(restoreError(sm, seal(swapped)), 'SNAPSHOT_INVALID');
  assert.equal(sm.appliedIndex, 0 as LogIndex);
});
