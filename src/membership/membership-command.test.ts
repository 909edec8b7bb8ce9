// Proves the membership command codec is exact and safe: every valid command round-trips through
// encode/decode, the encoding is canonical (re-encoding any decodable input gives the same bytes),
// structural validation refuses each kind of malformed command with MEMBERSHIP_INVALID_COMMAND,
// and the decoder raises only DecodeError on more than 100,000 random and mutated inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError } from '../lib/errors.js';
import { incarnation, nodeId, type NodeId } from '../lib/ids.js';
import { DEFAULT_VOTEQUORUM_OPTIONS, type TieBreakerMode, type VotequorumOptions } from '../quorum/index.js';
import {
  FENCE_EXCERPT_BYTES_MAX,
  FENCE_LEVELS_MAX,
  FENCE_OPERATOR_BYTES_MAX,
  MEMBERSHIP_NODE_NAME_BYTES_MAX,
  MEMBERSHIP_NOTE_BYTES_MAX,
} from '../constants.js';
import type { FenceAttempt, FenceProof } from '../fencing/index.js';
import {
  decodeMembershipCommand,
  encodeMembershipCommand,
  utf8Length,
  validateMembershipCommand,
  type FailReason,
  type MemberNodeSpec,
  type MembershipCommand,
  type QuarantineReason,
} from './membership-command.js';

const arbNodeId = fc.integer({ min: 1, max: 65_535 }).map((n) => nodeId(n));
const arbInc = fc
  .oneof(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }))
  .map((n) => incarnation(n));
const arbMs = fc.integer({ min: 0, max: 0xffff_ffff });
const arbText = (minBytes: number, maxBytes: number): fc.Arbitrary<string> =>
  fc.string({ unit: 'binary', minLength: minBytes, maxLength: maxBytes }).filter((s) => {
    const n = utf8Length(s);
    return n >= minBytes && n <= maxBytes;
  });
const arbIds = (max: number): fc.Arbitrary<NodeId[]> =>
  fc
    .uniqueArray(fc.integer({ min: 1, max: 65_535 }), { maxLength: max })
    .map((xs) => xs.sort((a, b) => a - b).map((n) => nodeId(n)));

const arbSpec = (id: NodeId): fc.Arbitrary<MemberNodeSpec> =>
  fc
    .record({
      name: arbText(1, MEMBERSHIP_NODE_NAME_BYTES_MAX),
      address: arbText(1, 40),
      role: fc.constantFrom<MemberNodeSpec['role']>('voter', 'learner', 'witness'),
      votes: fc.integer({ min: 1, max: 255 }),
    })
    .map((r) => ({
      nodeId: id,
      name: r.name,
      address: r.address,
      role: r.role,
      votes: r.role === 'learner' ? 0 : r.votes,
    }));

const arbTieBreaker: fc.Arbitrary<TieBreakerMode> = fc.oneof(
  fc.constant<TieBreakerMode>({ kind: 'off' }),
  fc.constant<TieBreakerMode>({ kind: 'lowest' }),
  fc.constant<TieBreakerMode>({ kind: 'highest' }),
  fc
    .uniqueArray(fc.integer({ min: 1, max: 65_535 }), { minLength: 1, maxLength: 5 })
    .map((xs): TieBreakerMode => ({ kind: 'list', nodes: xs.map((n) => nodeId(n)) })),
);

const arbOptions: fc.Arbitrary<VotequorumOptions> = fc.record({
  expectedVotes: fc.option(fc.integer({ min: 1, max: 64 * 255 }), { nil: undefined }),
  expectedVotesTracking: fc.boolean(),
  waitForAll: fc.boolean(),
  autoTieBreaker: arbTieBreaker,
  lastManStanding: fc.boolean(),
  lastManStandingWindowTicks: fc.integer({ min: 1, max: 1_000_000 }),
  twoNode: fc.boolean(),
});

const arbFailReason: fc.Arbitrary<FailReason> = fc.oneof(
  fc.record({
    kind: fc.constant('detector' as const),
    silentMs: arbMs,
    timeoutMs: arbMs,
    lagMs: arbMs,
    corroborators: arbIds(6),
  }),
  fc.record({ kind: fc.constant('operator' as const), note: arbText(0, 40) }),
);

const arbQuarantineReason: fc.Arbitrary<QuarantineReason> = fc.oneof(
  fc.record({ kind: fc.constant('partial-connectivity' as const), silentMs: arbMs, heardBy: arbIds(6) }),
  fc.record({ kind: fc.constant('flapping' as const), failures: arbMs, windowMs: arbMs }),
  fc.record({ kind: fc.constant('operator' as const), note: arbText(0, 40) }),
);

const arbConfigure: fc.Arbitrary<MembershipCommand> = fc
  .uniqueArray(fc.integer({ min: 1, max: 65_535 }), { minLength: 1, maxLength: 8 })
  .chain((ids) =>
    fc.tuple(fc.tuple(...ids.sort((a, b) => a - b).map((id) => arbSpec(nodeId(id)))), arbOptions, fc.boolean()),
  )
  .map(([nodes, options, resetExpectedTracking]) => ({
    type: 'configure' as const,
    nodes,
    options,
    resetExpectedTracking,
  }));

const arbDevice = fc.stringMatching(/^[a-z0-9][a-z0-9_.-]{0,12}$/);
const arbProof: fc.Arbitrary<FenceProof> = fc.oneof(
  fc.record({
    by: fc.constantFrom('agent' as const, 'watchdog' as const),
    level: fc.integer({ min: 1, max: FENCE_LEVELS_MAX }),
    device: arbDevice,
    atMs: fc.maxSafeNat(),
  }),
  fc.record(
    { by: fc.constant('confirm' as const), operator: arbText(1, FENCE_OPERATOR_BYTES_MAX), atMs: fc.maxSafeNat() },
    { requiredKeys: ['by'] },
  ),
);
const arbAttempt: fc.Arbitrary<FenceAttempt> = fc
  .record({
    executor: arbNodeId,
    level: fc.integer({ min: 1, max: FENCE_LEVELS_MAX }),
    device: arbDevice,
    agent: fc.constantFrom('exec' as const, 'process' as const, 'watchdog' as const, 'manual' as const),
    action: fc.constantFrom('off' as const, 'reboot' as const, 'on' as const),
    result: fc.constantFrom('ok' as const, 'failed' as const, 'timed-out' as const, 'error' as const),
    exitCode: fc.option(fc.integer({ min: 0, max: 255 }), { nil: undefined }),
    durationMs: arbMs,
    excerpt: arbText(0, FENCE_EXCERPT_BYTES_MAX),
    atMs: fc.maxSafeNat(),
    round: fc.integer({ min: 1, max: 0xffff_ffff }),
  })
  .map(({ exitCode, ...rest }) => (exitCode === undefined ? rest : { ...rest, exitCode }));

/** Every command type, structurally valid. */
const arbCommand: fc.Arbitrary<MembershipCommand> = fc.oneof(
  arbConfigure,
  fc.record({
    type: fc.constantFrom('join' as const, 'leave' as const),
    node: arbNodeId,
    incarnation: arbInc,
  }),
  fc.record({ type: fc.constant('fenced' as const), node: arbNodeId, incarnation: arbInc, proof: arbProof }),
  fc.record({ type: fc.constant('fence-attempt' as const), node: arbNodeId, incarnation: arbInc, attempt: arbAttempt }),
  fc.record({
    type: fc.constant('unfence' as const),
    node: arbNodeId,
    incarnation: arbInc,
    unfence: fc.record({
      device: arbDevice,
      result: fc.constantFrom('ok' as const, 'failed' as const, 'timed-out' as const, 'error' as const),
      atMs: fc.maxSafeNat(),
    }),
  }),
  fc.record({ type: fc.constant('fail' as const), node: arbNodeId, incarnation: arbInc, reason: arbFailReason }),
  fc.record({
    type: fc.constant('quarantine' as const),
    node: arbNodeId,
    incarnation: fc.option(arbInc, { nil: null }),
    reason: arbQuarantineReason,
  }),
  fc.record({ type: fc.constant('release' as const), node: arbNodeId }),
);

test('every valid command round-trips and validates', () => {
  fc.assert(
    fc.property(arbCommand, (c) => {
      assert.equal(validateMembershipCommand(c), null);
      const bytes = encodeMembershipCommand(c);
      // structuredClone: fast-check builds records without a prototype; decoded ones have one.
      assert.deepEqual(decodeMembershipCommand(bytes), structuredClone(c));
    }),
    { numRuns: 3000 },
  );
});

const node1 = nodeId(1);
const spec = (id: number, role: MemberNodeSpec['role'] = 'voter', votes = 1): MemberNodeSpec => ({
  nodeId: nodeId(id),
  name: `n${id}`,
  address: `10.0.0.${id}:7400`,
  votes,
  role,
});
const configure = (nodes: MemberNodeSpec[], options: Partial<VotequorumOptions> = {}): MembershipCommand => ({
  type: 'configure',
  nodes,
  options: { ...DEFAULT_VOTEQUORUM_OPTIONS, ...options },
  resetExpectedTracking: false,
});

test('validation refuses each kind of malformed command', () => {
  const cases: [string, MembershipCommand][] = [
    ['empty configuration', configure([])],
    ['unsorted nodes', configure([spec(2), spec(1)])],
    ['repeated node', configure([spec(1), spec(1)])],
    ['learner with votes', configure([spec(1), spec(2, 'learner', 1)])],
    ['voter without votes', configure([spec(1, 'voter', 0)])],
    ['witness without votes', configure([spec(1), spec(2, 'witness', 0)])],
    ['votes above the limit', configure([spec(1, 'voter', 256)])],
    ['empty name', configure([{ ...spec(1), name: '' }])],
    ['long name', configure([{ ...spec(1), name: 'x'.repeat(MEMBERSHIP_NODE_NAME_BYTES_MAX + 1) }])],
    ['lone surrogate in address', configure([{ ...spec(1), address: '\uD800:1' }])],
    ['zero lms window', configure([spec(1)], { lastManStandingWindowTicks: 0 })],
    ['empty tie-breaker list', configure([spec(1)], { autoTieBreaker: { kind: 'list', nodes: [] } })],
    ['repeated tie-breaker', configure([spec(1)], { autoTieBreaker: { kind: 'list', nodes: [node1, node1] } })],
    ['zero expected votes', configure([spec(1)], { expectedVotes: 0 })],
    ['incarnation 0', { type: 'join', node: node1, incarnation: 0 as never }],
    ['node 0', { type: 'leave', node: 0 as never, incarnation: incarnation(1) }],
    ['fractional incarnation', { type: 'fenced', node: node1, incarnation: 1.5 as never, proof: { by: 'confirm' } }],
    [
      'empty operator',
      { type: 'fenced', node: node1, incarnation: incarnation(1), proof: { by: 'confirm', operator: '' } },
    ],
    [
      'fence level 0',
      {
        type: 'fenced',
        node: node1,
        incarnation: incarnation(1),
        proof: { by: 'agent', level: 0, device: 'd', atMs: 1 },
      },
    ],
    [
      'attempt with a bad device name',
      {
        type: 'fence-attempt',
        node: node1,
        incarnation: incarnation(1),
        attempt: {
          executor: node1,
          level: 1,
          device: 'Not A Name',
          agent: 'exec',
          action: 'off',
          result: 'ok',
          durationMs: 1,
          excerpt: '',
          atMs: 1,
          round: 1,
        },
      },
    ],
    [
      'unfence with a fractional time',
      {
        type: 'unfence',
        node: node1,
        incarnation: incarnation(1),
        unfence: { device: 'scsi', result: 'ok', atMs: 0.5 },
      },
    ],
    [
      'negative evidence',
      {
        type: 'fail',
        node: node1,
        incarnation: incarnation(1),
        reason: { kind: 'detector', silentMs: -1, timeoutMs: 0, lagMs: 0, corroborators: [] },
      },
    ],
    [
      'unsorted corroborators',
      {
        type: 'fail',
        node: node1,
        incarnation: incarnation(1),
        reason: { kind: 'detector', silentMs: 1, timeoutMs: 0, lagMs: 0, corroborators: [nodeId(3), nodeId(2)] },
      },
    ],
    [
      'long note',
      {
        type: 'fail',
        node: node1,
        incarnation: incarnation(1),
        reason: { kind: 'operator', note: 'x'.repeat(MEMBERSHIP_NOTE_BYTES_MAX + 1) },
      },
    ],
    [
      'repeated heardBy',
      {
        type: 'quarantine',
        node: node1,
        incarnation: null,
        reason: { kind: 'partial-connectivity', silentMs: 1, heardBy: [nodeId(2), nodeId(2)] },
      },
    ],
    ['node above the id range', { type: 'release', node: 70_000 as never }],
  ];
  for (const [what, c] of cases) {
    const e = validateMembershipCommand(c);
    assert.ok(e !== null, `${what} must be refused`);
    assert.equal(e.code, 'MEMBERSHIP_INVALID_COMMAND', what);
    assert.throws(() => encodeMembershipCommand(c), /malformed/, `${what}: the encoder asserts`);
  }
});

test('decoding refuses non-canonical and truncated encodings with DecodeError', () => {
  const join = encodeMembershipCommand({ type: 'join', node: node1, incarnation: incarnation(5) });
  assert.throws(
    () => decodeMembershipCommand(join.subarray(0, join.length - 1)),
    (e: unknown) => e instanceof DecodeError && e.code === 'DECODE_TRUNCATED',
  );
  assert.throws(
    () => decodeMembershipCommand(new Uint8Array([...join, 0])),
    (e: unknown) => e instanceof DecodeError && e.code === 'DECODE_TRAILING',
  );
  assert.throws(
    () => decodeMembershipCommand(new Uint8Array([99])),
    (e: unknown) => e instanceof DecodeError && /unknown membership command tag/.test(e.message),
  );
  const release = encodeMembershipCommand({ type: 'release', node: node1 });
  const zero = release.slice();
  zero[1] = 0;
  zero[2] = 0;
  assert.throws(
    () => decodeMembershipCommand(zero),
    (e: unknown) => e instanceof DecodeError && e.code === 'DECODE_RANGE',
  );
  const cfg = encodeMembershipCommand(configure([spec(1)]));
  const badBool = cfg.slice();
  badBool[badBool.length - 5] = 2; // resetExpectedTracking (before the u32 length of an absent fingerprint) must be 0 or 1
  assert.throws(
    () => decodeMembershipCommand(badBool),
    (e: unknown) => e instanceof DecodeError && /boolean/.test(e.message),
  );
  // A fingerprint is absent or 1..80 bytes: an encoded empty one is the absent one (canonical).
  const withPrint = encodeMembershipCommand({
    type: 'join',
    node: node1,
    incarnation: incarnation(5),
    fingerprint: 'sha256:ab',
  });
  assert.deepEqual(decodeMembershipCommand(withPrint), {
    type: 'join',
    node: node1,
    incarnation: 5,
    fingerprint: 'sha256:ab',
  });
  assert.deepEqual(decodeMembershipCommand(join), { type: 'join', node: node1, incarnation: 5 });
  assert.match(
    validateMembershipCommand({ type: 'join', node: node1, incarnation: incarnation(5), fingerprint: '' })?.message ??
      '',
    /settings fingerprint/,
  );
});

test('fenced keeps its old encoding for a bare confirmation: tag 5 decodes as by confirm, tag 13 never carries it', () => {
  const bare = encodeMembershipCommand({
    type: 'fenced',
    node: node1,
    incarnation: incarnation(3),
    proof: { by: 'confirm' },
  });
  assert.deepEqual([...bare], [5, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0], 'the pre-ledger bytes');
  assert.deepEqual(decodeMembershipCommand(bare), {
    type: 'fenced',
    node: node1,
    incarnation: 3,
    proof: { by: 'confirm' },
  });
  const withOperator = encodeMembershipCommand({
    type: 'fenced',
    node: node1,
    incarnation: incarnation(3),
    proof: { by: 'confirm', operator: 'alice' },
  });
  assert.equal(withOperator[0], 13);
  const disguised = new Uint8Array([13, ...bare.subarray(1), 2, 0]); // proof kind confirm, no flags
  assert.throws(
    () => decodeMembershipCommand(disguised),
    (e: unknown) => e instanceof DecodeError && /tag 5/.test(e.message),
  );
});

test('decoding raises only DecodeError on 100,000+ random and mutated inputs, and what decodes re-encodes to the same bytes', () => {
  let decoded = 0;
  let inputs = 0;
  const check = (bytes: Uint8Array): void => {
    inputs++;
    let c: MembershipCommand;
    try {
      c = decodeMembershipCommand(bytes);
    } catch (e) {
      if (e instanceof DecodeError) return;
      throw e;
    }
    decoded++;
    assert.deepEqual(
      encodeMembershipCommand(c),
      bytes,
      'a decodable input is the canonical encoding of what it decodes to',
    );
  };
  const arbMutated = fc
    .tuple(
      arbCommand,
      fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }),
      fc.nat({ max: 8 }),
    )
    .map(([c, flips, cut]) => {
      const b = encodeMembershipCommand(c).slice();
      for (const [at, v] of flips) b[at % b.length] = v;
      return cut === 0 ? b.subarray(0, Math.max(0, b.length - 1 - ((flips[0]?.[0] ?? 0) % b.length))) : b;
    });
  const arbRandom = fc
    .uint8Array({ maxLength: 64 })
    .map((b) => (b.length > 0 ? b.map((x, i) => (i === 0 ? x % 15 : x)) : b));
  fc.assert(
    fc.property(arbMutated, (b) => {
      check(b);
    }),
    { numRuns: 60_000 },
  );
  fc.assert(
    fc.property(arbRandom, (b) => {
      check(b);
    }),
    { numRuns: 45_000 },
  );
  assert.ok(inputs >= 100_000, `${inputs} inputs`);
  assert.ok(decoded > 1000, `mutations must also reach the decoder's success path (${decoded} decoded)`);
});
