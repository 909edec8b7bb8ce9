// Proves the fence record pieces (attempt, proof, unfence entry) have one canonical encoding each:
// random well-formed values round-trip byte for byte, malformed ones are refused by validation
// and by the decoder (DecodeError only).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { DecodeError } from '../lib/errors.js';
import { nodeId } from '../lib/ids.js';
import { FENCE_EXCERPT_BYTES_MAX, FENCE_LEVELS_MAX, FENCE_OPERATOR_BYTES_MAX } from '../constants.js';
import { clipUtf8 } from './fence-agent.js';
import {
  fenceAttemptProblem,
  fenceProofProblem,
  readFenceAttempt,
  readFenceProof,
  writeFenceAttempt,
  writeFenceProof,
  type FenceAttempt,
  type FenceProof,
} from './fence-attempt.js';

const arbAttempt: fc.Arbitrary<FenceAttempt> = fc
  .record({
    executor: fc.integer({ min: 1, max: 65_535 }),
    level: fc.integer({ min: 1, max: FENCE_LEVELS_MAX }),
    device: fc.stringMatching(/^[a-z0-9][a-z0-9_.-]{0,20}$/),
    agent: fc.constantFrom('exec' as const, 'process' as const, 'watchdog' as const, 'manual' as const),
    action: fc.constantFrom('off' as const, 'on' as const, 'reboot' as const, 'status' as const),
    result: fc.constantFrom('ok' as const, 'failed' as const, 'timed-out' as const, 'error' as const),
    exitCode: fc.option(fc.integer({ min: 0, max: 255 }), { nil: undefined }),
    durationMs: fc.nat(),
    excerpt: fc.string({ unit: 'grapheme', maxLength: 200 }).map((s) => clipUtf8(s, FENCE_EXCERPT_BYTES_MAX)),
    atMs: fc.maxSafeNat(),
    round: fc.integer({ min: 1, max: 0xffff_ffff }),
    covers: fc.option(fc.integer({ min: 1, max: 0xffff_ffff }), { nil: undefined }),
  })
  .map(({ exitCode, covers, executor, ...rest }) => ({
    ...rest,
    executor: nodeId(executor),
    ...(exitCode === undefined ? {} : { exitCode }),
    ...(covers === undefined ? {} : { covers }),
  }));

const arbProof: fc.Arbitrary<FenceProof> = fc
  .oneof(
    fc.record({
      by: fc.constantFrom('agent' as const, 'watchdog' as const),
      level: fc.integer({ min: 1, max: FENCE_LEVELS_MAX }),
      device: fc.stringMatching(/^[a-z0-9][a-z0-9_.-]{0,20}$/),
      atMs: fc.maxSafeNat(),
    }),
    fc.record(
      {
        by: fc.constant('confirm' as const),
        // Ten graphemes can pass the operator's byte bound (a grapheme may take many code points).
        operator: fc
          .string({ unit: 'grapheme', minLength: 1, maxLength: 10 })
          .filter((s) => new TextEncoder().encode(s).length <= FENCE_OPERATOR_BYTES_MAX),
        atMs: fc.maxSafeNat(),
      },
      { requiredKeys: ['by'] },
    ),
  )
  .map((p) => ({ ...p }));

function roundTrip<T>(value: T, write: (w: ByteWriter, v: T) => void, read: (r: ByteReader) => T): Uint8Array {
  const w = new ByteWriter(64);
  write(w, value);
  const b = w.finish().slice();
  const r = new ByteReader(b);
  assert.deepEqual(read(r), value);
  r.end('value');
  return b;
}

test('attempts and proofs round-trip; flipped bytes decode to the same canonical bytes or DecodeError', () => {
  fc.assert(
    fc.property(arbAttempt, arbProof, fc.nat(), fc.integer({ min: 1, max: 255 }), (a, p, pos, flip) => {
      assert.equal(fenceAttemptProblem(a), null);
      assert.equal(fenceProofProblem(p), null);
      const cases: [Uint8Array, (r: ByteReader) => unknown, (w: ByteWriter, v: never) => void][] = [
        [roundTrip(a, writeFenceAttempt, readFenceAttempt), readFenceAttempt, writeFenceAttempt],
        [roundTrip(p, writeFenceProof, readFenceProof), readFenceProof, writeFenceProof],
      ];
      for (const [good, read, write] of cases) {
        const bad = good.slice();
        const k = pos % bad.length;
        bad[k] = (bad[k] ?? 0) ^ flip;
        try {
          const r = new ByteReader(bad);
          const v = read(r);
          r.end('value');
          const w = new ByteWriter(64);
          write(w, v as never);
          assert.deepEqual(w.finish(), bad, 'an accepted encoding is canonical');
        } catch (e) {
          assert.ok(e instanceof DecodeError, `only DecodeError, got ${String(e)}`);
        }
      }
    }),
    { numRuns: 500 },
  );
});

test('validation refuses malformed attempts and proofs with a sentence', () => {
  const a: FenceAttempt = {
    executor: nodeId(1),
    level: 1,
    device: 'ipmi',
    agent: 'exec',
    action: 'off',
    result: 'ok',
    durationMs: 5,
    excerpt: '',
    atMs: 1,
    round: 1,
  };
  assert.equal(fenceAttemptProblem(a), null);
  for (const bad of [
    { ...a, level: 0 },
    { ...a, level: FENCE_LEVELS_MAX + 1 },
    { ...a, device: 'Bad Name' },
    { ...a, device: '' },
    { ...a, exitCode: 256 },
    { ...a, durationMs: -1 },
    { ...a, round: 0 },
    { ...a, covers: 0 },
    { ...a, covers: 0x1_0000_0000 },
    { ...a, covers: 1.5 },
    { ...a, excerpt: 'x'.repeat(FENCE_EXCERPT_BYTES_MAX + 1) },
    { ...a, excerpt: '\uD800' },
    { ...a, agent: 'magic' as never },
  ])
    assert.match(fenceAttemptProblem(bad) ?? '', /./, JSON.stringify(bad));
  assert.match(fenceProofProblem({ by: 'confirm', operator: '' }) ?? '', /operator/);
  assert.match(fenceProofProblem({ by: 'agent', level: 1, device: 'x', atMs: 1.5 }) ?? '', /time/);
});
