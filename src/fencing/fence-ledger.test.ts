// Proves the fence ledger keeps its rules: a record opens once per incarnation and is never
// reopened, closes exactly once (a second proof is a duplicate), takes attempts only while pending
// (late ones on a finished record are ignored as stale) and unfence entries only once finished;
// every bound drops the oldest and counts what it dropped; the encoding round-trips canonically
// on random operation sequences, refuses corrupted bytes with DecodeError only, and the digest
// is a deterministic function of the content.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { DecodeError } from '../lib/errors.js';
import { incarnation, logIndex, nodeId, type NodeId } from '../lib/ids.js';
import {
  FENCE_ATTEMPTS_KEPT,
  FENCE_HISTORY_ATTEMPTS_KEPT,
  FENCE_HISTORY_KEPT,
  FENCE_LEDGER_BYTES_MAX,
  FENCE_REASON_BYTES_MAX,
  FENCE_UNFENCE_KEPT,
} from '../constants.js';
import type { FenceAttempt, FenceProof } from './fence-attempt.js';
import { FenceLedger } from './fence-ledger.js';

const n = (i: number): NodeId => nodeId(i);
const inc = incarnation;
const at = logIndex;

function attempt(over: Partial<FenceAttempt> = {}): FenceAttempt {
  return {
    executor: n(1),
    level: 1,
    device: 'ipmi-a',
    agent: 'exec',
    action: 'off',
    result: 'failed',
    exitCode: 1,
    durationMs: 1200,
    excerpt: 'Failed: Unable to obtain correct plug status',
    atMs: 1_700_000_000_000,
    round: 1,
    ...over,
  };
}

const agentProof: FenceProof = { by: 'agent', level: 1, device: 'ipmi-a', atMs: 1_700_000_001_000 };
const confirm: FenceProof = { by: 'confirm', operator: 'alice', atMs: 1_700_000_002_000 };

function bytesOf(l: FenceLedger): Uint8Array {
  const w = new ByteWriter(256, FENCE_LEDGER_BYTES_MAX);
  l.encode(w);
  return w.finish().slice();
}

function decoded(b: Uint8Array): FenceLedger {
  const r = new ByteReader(b);
  const l = FenceLedger.decode(r);
  r.end('fence ledger');
  return l;
}

test('a record opens once, takes attempts while pending, closes once; late reports are deterministic no-ops', () => {
  const l = new FenceLedger();
  assert.equal(l.open(n(3), inc(1), 'failure detector: silent for 1600 ms; needs fencing', at(10)), 'opened');
  assert.equal(l.open(n(3), inc(1), 'again', at(11)), 'exists');
  assert.throws(() => l.open(n(3), inc(2), 'a second pending fence for node 3', at(12)), /already has a pending fence/);
  assert.equal(l.recordAttempt(n(3), 1, attempt()), 'applied');
  assert.equal(l.recordAttempt(n(3), 2, attempt()), 'no-change', 'another incarnation has no record');
  assert.equal(l.recordUnfence(n(3), 1, { device: 'scsi', result: 'ok', atMs: 5 }), 'no-change', 'not fenced yet');
  const pending = l.record(n(3), 1);
  assert.ok(pending !== null && pending.outcome.state === 'pending');
  assert.equal(pending.request.index, 10);
  assert.equal(pending.attempts.length, 1);
  assert.deepEqual(
    l.pending().map((r) => `${r.node}@${r.incarnation}`),
    ['3@1'],
  );

  assert.equal(l.close(n(3), 1, agentProof, at(14)), 'applied');
  assert.equal(l.close(n(3), 1, confirm, at(15)), 'duplicate', 'one incarnation is fenced at most once');
  assert.equal(l.close(n(4), 1, confirm, at(15)), 'no-change');
  const done = l.record(n(3), 1);
  assert.ok(done !== null && done.outcome.state === 'fenced');
  assert.deepEqual(done.outcome.proof, agentProof, 'the first proof stays');
  assert.equal(done.outcome.index, 14);
  assert.equal(l.recordAttempt(n(3), 1, attempt({ result: 'ok' })), 'stale', 'a finished record is final');
  assert.equal(l.record(n(3), 1)?.attempts.length, 1);
  assert.equal(l.open(n(3), inc(1), 'reopen', at(16)), 'exists', 'a closed record is never reopened');
  assert.equal(l.pendingCount, 0);
  assert.equal(l.recordUnfence(n(3), 1, { device: 'scsi', result: 'ok', atMs: 5 }), 'applied');
  assert.equal(l.record(n(3), 1)?.unfence.length, 1);
  // The node may be fenced again at a later incarnation.
  assert.equal(l.open(n(3), inc(2), 'replaced', at(20)), 'opened');
});

test('attempts, finished attempts, unfence entries and the history are bounded, oldest dropped and counted', () => {
  const l = new FenceLedger();
  l.open(n(1), inc(1), 'x', at(1));
  for (let k = 0; k < FENCE_ATTEMPTS_KEPT + 5; k++) l.recordAttempt(n(1), 1, attempt({ atMs: k, round: 1 + (k % 3) }));
  const rec = l.record(n(1), 1);
  assert.ok(rec !== null);
  assert.equal(rec.attempts.length, FENCE_ATTEMPTS_KEPT);
  assert.equal(rec.attemptsDropped, 5);
  assert.equal(rec.attempts[0]?.atMs, 5, 'the oldest went first');
  assert.equal(rec.round, 3, 'the round is the highest seen');
  l.close(n(1), 1, agentProof, at(2));
  const done = l.record(n(1), 1);
  assert.equal(done?.attempts.length, FENCE_HISTORY_ATTEMPTS_KEPT);
  assert.equal(done.attemptsDropped, FENCE_ATTEMPTS_KEPT + 5 - FENCE_HISTORY_ATTEMPTS_KEPT);
  assert.equal(done.attempts.at(-1)?.atMs, FENCE_ATTEMPTS_KEPT + 4, 'the newest attempts stay');
  for (let k = 0; k < FENCE_UNFENCE_KEPT + 2; k++) l.recordUnfence(n(1), 1, { device: 'scsi', result: 'ok', atMs: k });
  assert.equal(l.record(n(1), 1)?.unfence.length, FENCE_UNFENCE_KEPT);
  assert.equal(l.record(n(1), 1)?.unfence[0]?.atMs, 2);

  for (let i = 2; i <= FENCE_HISTORY_KEPT + 3; i++) {
    l.open(n(1), inc(i), `r${i}`, at(10 * i));
    l.close(n(1), i, confirm, at(10 * i + 1));
  }
  assert.equal(l.historyCount, FENCE_HISTORY_KEPT);
  assert.equal(l.record(n(1), 1), null, 'the earliest finished records were dropped');
  assert.equal(l.record(n(1), 3), null);
  assert.ok(l.record(n(1), 4) !== null);
  assert.deepEqual(
    l.history(3).map((r) => r.incarnation),
    [FENCE_HISTORY_KEPT + 3, FENCE_HISTORY_KEPT + 2, FENCE_HISTORY_KEPT + 1],
    'the latest finished first',
  );
  assert.equal(l.history(0).length, 0);
  assert.equal(l.history(10_000).length, FENCE_HISTORY_KEPT);
  assert.equal(
    l.open(n(1), inc(1), 'dropped from the history', at(9999)),
    'opened',
    'only the membership rules prevent this',
  );
});

test('request reasons are clipped to FENCE_REASON_BYTES_MAX on a code point boundary', () => {
  const l = new FenceLedger();
  l.open(n(2), inc(1), 'é'.repeat(FENCE_REASON_BYTES_MAX), at(1));
  const reason = l.record(n(2), 1)?.request.reason ?? '';
  assert.ok(new TextEncoder().encode(reason).length <= FENCE_REASON_BYTES_MAX);
  assert.ok(reason.endsWith('…') && reason.startsWith('éé'));
});

// ------------------------------------------------------------------------------------------------
// Random operation sequences

type Op =
  | { op: 'open'; node: number; inc: number }
  | { op: 'attempt'; node: number; inc: number; a: FenceAttempt }
  | { op: 'close'; node: number; inc: number; proof: FenceProof }
  | { op: 'unfence'; node: number; inc: number; result: 'ok' | 'failed' };

const arbText = fc.string({ unit: 'grapheme', maxLength: 40 });
const arbAttempt: fc.Arbitrary<FenceAttempt> = fc
  .record({
    executor: fc.integer({ min: 1, max: 5 }),
    level: fc.integer({ min: 1, max: 4 }),
    device: fc.constantFrom('ipmi-a', 'pdu.1', 'pdu_2', 'wd', 'manual-ops'),
    agent: fc.constantFrom('exec' as const, 'process' as const, 'watchdog' as const),
    action: fc.constantFrom('off' as const, 'reboot' as const),
    result: fc.constantFrom('ok' as const, 'failed' as const, 'timed-out' as const, 'error' as const),
    exitCode: fc.option(fc.integer({ min: 0, max: 255 }), { nil: undefined }),
    durationMs: fc.nat(100_000),
    excerpt: arbText,
    atMs: fc.nat(),
    round: fc.integer({ min: 1, max: 4 }),
  })
  .map(({ exitCode, executor, ...rest }) => ({
    ...rest,
    executor: n(executor),
    ...(exitCode === undefined ? {} : { exitCode }),
  }));
const arbProof: fc.Arbitrary<FenceProof> = fc
  .oneof(
    fc.record({
      by: fc.constantFrom('agent' as const, 'watchdog' as const),
      level: fc.integer({ min: 1, max: 4 }),
      device: fc.constantFrom('ipmi-a', 'wd'),
      atMs: fc.nat(),
    }),
    fc.constant({ by: 'confirm' as const }),
    fc.record({ by: fc.constant('confirm' as const), operator: fc.constantFrom('alice', 'bob'), atMs: fc.nat() }),
  )
  .map((p) => ({ ...p })); // plain objects, like the decoder's
const arbKey = { node: fc.integer({ min: 1, max: 4 }), inc: fc.integer({ min: 1, max: 3 }) };
const arbOp: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('open' as const), ...arbKey }),
  fc.record({ op: fc.constant('attempt' as const), ...arbKey, a: arbAttempt }),
  fc.record({ op: fc.constant('close' as const), ...arbKey, proof: arbProof }),
  fc.record({
    op: fc.constant('unfence' as const),
    ...arbKey,
    result: fc.constantFrom('ok' as const, 'failed' as const),
  }),
);

/** Applies `ops` at increasing indexes, skipping opens the membership rules would never make. */
function build(ops: readonly Op[]): FenceLedger {
  const l = new FenceLedger();
  ops.forEach((o, k) => {
    const index = at(k + 1);
    switch (o.op) {
      case 'open':
        if (l.pendingOf(n(o.node)) === null) l.open(n(o.node), inc(o.inc), `reason ${k}`, index);
        return;
      case 'attempt':
        l.recordAttempt(n(o.node), o.inc, o.a);
        return;
      case 'close':
        l.close(n(o.node), o.inc, o.proof, index);
        return;
      case 'unfence':
        l.recordUnfence(n(o.node), o.inc, { device: 'scsi', result: o.result, atMs: k });
        return;
    }
  });
  return l;
}

test('encode/decode round-trips canonically and digests agree, on random operation sequences', () => {
  fc.assert(
    fc.property(fc.array(arbOp, { maxLength: 120 }), (ops) => {
      const l = build(ops);
      const b = bytesOf(l);
      const back = decoded(b);
      assert.deepEqual(bytesOf(back), b);
      assert.deepEqual(back.digest(), l.digest());
      assert.deepEqual(back.pending(), l.pending());
      assert.deepEqual(back.history(), l.history());
      assert.deepEqual(build(ops).digest(), l.digest(), 'the same operations give the same digest');
      for (const r of l.pending()) assert.equal(l.pendingOf(r.node), r);
    }),
    { numRuns: 300 },
  );
});

test('the digest follows the content: it changes with every applied operation and only then', () => {
  const l = new FenceLedger();
  const seen = new Set<string>();
  const mark = (): string => {
    const d = l.digest();
    return `${d.hi}:${d.lo}`;
  };
  seen.add(mark());
  l.open(n(1), inc(1), 'a', at(1));
  seen.add(mark());
  l.recordAttempt(n(1), 1, attempt());
  seen.add(mark());
  const before = mark();
  assert.equal(l.recordAttempt(n(2), 1, attempt()), 'no-change');
  assert.equal(mark(), before, 'a no-op leaves the digest alone');
  l.close(n(1), 1, confirm, at(3));
  seen.add(mark());
  l.recordUnfence(n(1), 1, { device: 'scsi', result: 'ok', atMs: 1 });
  seen.add(mark());
  assert.equal(seen.size, 5);
});

test('corrupted and truncated encodings are refused with DecodeError, or accepted only if canonical', () => {
  fc.assert(
    fc.property(
      fc.array(arbOp, { minLength: 5, maxLength: 60 }),
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      (ops, pos, flip) => {
        const good = bytesOf(build(ops));
        const bad = good.slice();
        const k = pos % bad.length;
        bad[k] = (bad[k] ?? 0) ^ flip;
        try {
          const back = decoded(bad);
          assert.deepEqual(bytesOf(back), bad, 'an accepted encoding re-encodes to the same bytes');
        } catch (e) {
          assert.ok(e instanceof DecodeError, `only DecodeError, got ${String(e)}`);
        }
        for (const len of [0, 1, Math.floor(good.length / 2), good.length - 1]) {
          if (len >= good.length) continue;
          assert.throws(() => decoded(good.subarray(0, len)), DecodeError);
        }
      },
    ),
    { numRuns: 400 },
  );
});

test('decode refuses broken rules: two pending records out of order, a reopened key, a pending one in the history', () => {
  const one = new FenceLedger();
  one.open(n(2), inc(1), 'a', at(1));
  const rec = bytesOf(one).subarray(1, bytesOf(one).length - 2); // one pending record's bytes
  const twice = new Uint8Array([2, ...rec, ...rec, 0, 0]);
  assert.throws(() => decoded(twice), /strictly ascending/);
  assert.throws(() => decoded(new Uint8Array([0, 1, 0, ...rec])), /pending record is listed among the finished/);
  const closed = new FenceLedger();
  closed.open(n(2), inc(1), 'a', at(1));
  closed.close(n(2), 1, confirm, at(2));
  const finished = bytesOf(closed).subarray(3);
  assert.throws(() => decoded(new Uint8Array([1, ...finished, 0, 0])), /finished record is listed among the pending/);
  assert.throws(() => decoded(new Uint8Array([1, ...rec, 1, 0, ...finished])), /two records/);
});
