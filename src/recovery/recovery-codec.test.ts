// Proves the recovery commands and event payloads round-trip through their canonical encodings,
// that structural validation refuses malformed commands (names, ids, generation, report, reason
// size), that damaged bytes raise only DecodeError, and that the largest event fits a membership
// event.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { DecodeError } from '../lib/errors.js';
import { incarnation, nodeId } from '../lib/ids.js';
import {
  CLUSTER_NODES_MAX,
  GROUP_NAME_BYTES_MAX,
  MEMBERSHIP_EVENT_BYTES_MAX,
  RECOVERY_REASON_BYTES_MAX,
} from '../constants.js';
import {
  RECOVERY_COMMAND_TYPES,
  readRecoveryCommand,
  validateRecoveryCommand,
  writeRecoveryCommand,
  type RecoveryCommand,
} from './recovery-command.js';
import {
  describeRecoveryEvent,
  readRecoveryEvent,
  RECOVERY_STEPS,
  writeRecoveryEvent,
  type RecoveryEventPayload,
} from './recovery-event.js';

const nodeArb = fc.integer({ min: 1, max: 65535 }).map(nodeId);
const incArb = fc.integer({ min: 1, max: 2 ** 40 }).map(incarnation);
const nameArb = fc.stringMatching(/^[a-z0-9][a-z0-9._:/-]{0,20}$/);
const genArb = fc.integer({ min: 1, max: 2 ** 40 });

const commandArb: fc.Arbitrary<RecoveryCommand> = fc.oneof(
  fc.record(
    {
      type: fc.constant('recovery-report' as const),
      group: nameArb,
      generation: genArb,
      node: nodeArb,
      incarnation: incArb,
      what: fc.constantFrom('stopped' as const, 'started' as const, 'error' as const),
    },
    { noNullPrototype: true },
  ),
  fc.record(
    {
      type: fc.constant('recovery-evict' as const),
      group: nameArb,
      generation: genArb,
      node: nodeArb,
      incarnation: incArb,
      reason: fc.string({ maxLength: 40 }),
    },
    { noNullPrototype: true },
  ),
);

function encodeCommand(c: RecoveryCommand): Uint8Array {
  const w = new ByteWriter(64);
  writeRecoveryCommand(w, c);
  return w.finish().slice();
}

function decodeCommand(bytes: Uint8Array, type: RecoveryCommand['type']): RecoveryCommand {
  const r = new ByteReader(bytes);
  const c = readRecoveryCommand(r, type);
  r.end('recovery command');
  return c;
}

test('recovery commands round-trip and are valid', () => {
  fc.assert(
    fc.property(commandArb, (c) => {
      assert.equal(validateRecoveryCommand(c), null);
      const bytes = encodeCommand(c);
      assert.deepEqual(decodeCommand(bytes, c.type), c);
    }),
    { numRuns: 500 },
  );
  assert.deepEqual(RECOVERY_COMMAND_TYPES, ['recovery-report', 'recovery-evict'], 'tag order');
});

test('malformed recovery commands are refused', () => {
  const base = {
    type: 'recovery-report' as const,
    group: 'g',
    generation: 1,
    node: nodeId(1),
    incarnation: incarnation(1),
    what: 'stopped' as const,
  };
  const problem = (c: RecoveryCommand): string => validateRecoveryCommand(c)?.message ?? '';
  assert.match(problem({ ...base, group: 'bad name' }), /group name/);
  assert.match(problem({ ...base, generation: 0 }), /generation 0/);
  assert.match(problem({ ...base, node: 0 as never }), /not a node id/);
  assert.match(problem({ ...base, incarnation: 0 as never }), /incarnation 0/);
  assert.match(problem({ ...base, what: 'done' as never }), /recovery report done/);
  const evict = { ...base, type: 'recovery-evict' as const, reason: 'x'.repeat(RECOVERY_REASON_BYTES_MAX + 1) };
  assert.match(problem(evict), /exceeds/);
  assert.equal(validateRecoveryCommand({ ...evict, reason: 'x'.repeat(RECOVERY_REASON_BYTES_MAX) }), null);
});

test('damaged command bytes raise only DecodeError', () => {
  fc.assert(
    fc.property(commandArb, fc.nat(), fc.integer({ min: 1, max: 255 }), fc.boolean(), (c, at, x, cut) => {
      const good = encodeCommand(c);
      const bad = cut ? good.subarray(0, at % good.length) : good.slice();
      if (!cut) bad[at % bad.length] = (bad[at % bad.length] ?? 0) ^ x;
      try {
        decodeCommand(bad, c.type);
      } catch (e) {
        assert.ok(e instanceof DecodeError, String(e));
      }
    }),
    { numRuns: 1000 },
  );
});

const refsArb = fc
  .uniqueArray(fc.record({ node: nodeArb, incarnation: incArb }, { noNullPrototype: true }), {
    maxLength: 5,
    selector: (m) => `${m.node}:${m.incarnation}`,
  })
  .map((l) => l.sort((a, b) => a.node - b.node || a.incarnation - b.incarnation));
const roundArb = fc.record(
  { group: nameArb, level: fc.integer({ min: 1, max: 255 }), generation: genArb },
  { noNullPrototype: true },
);
const eventArb: fc.Arbitrary<RecoveryEventPayload> = fc.oneof(
  fc
    .tuple(roundArb, fc.constantFrom('unclean-removal' as const, 'member-change' as const), fc.nat(), refsArb, refsArb)
    .map(([r, reason, previous, members, fences]) => ({
      ...r,
      step: 'opened' as const,
      reason,
      previous,
      members,
      fences,
    })),
  fc.tuple(roundArb, fc.nat()).map(([r, next]) => ({ ...r, step: 'aborted' as const, next })),
  fc
    .tuple(
      roundArb,
      fc.constantFrom(
        'stopped' as const,
        'fence-satisfied' as const,
        'member-started' as const,
        'member-error' as const,
      ),
      nodeArb,
      incArb,
    )
    .map(([r, step, node, inc]) => ({ ...r, step, node, incarnation: inc })),
  fc
    .tuple(roundArb, nodeArb, incArb, fc.string({ maxLength: 30 }))
    .map(([r, node, inc, reason]) => ({ ...r, step: 'member-evicted' as const, node, incarnation: inc, reason })),
  fc
    .tuple(roundArb, fc.constantFrom('start-due' as const, 'finished' as const), refsArb)
    .map(([r, step, members]) => ({ ...r, step, members })),
);

test('recovery event payloads round-trip; every step has a description; damage raises only DecodeError', () => {
  const steps = new Set<string>();
  fc.assert(
    fc.property(eventArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (e, at, x) => {
      steps.add(e.step);
      const w = new ByteWriter(64);
      writeRecoveryEvent(w, e);
      const bytes = w.finish().slice();
      const r = new ByteReader(bytes);
      assert.deepEqual(readRecoveryEvent(r), e);
      r.end('recovery event');
      assert.match(describeRecoveryEvent(e), new RegExp(`^recovery ${e.group.replace(/[.]/g, '\\.')} \\(level`));
      const bad = bytes.slice();
      bad[at % bad.length] = (bad[at % bad.length] ?? 0) ^ x;
      try {
        readRecoveryEvent(new ByteReader(bad));
      } catch (err) {
        assert.ok(err instanceof DecodeError, String(err));
      }
    }),
    { numRuns: 1000 },
  );
  assert.deepEqual([...steps].sort(), [...RECOVERY_STEPS].sort(), 'every step was generated');
});

test('the largest recovery event fits a membership event', () => {
  const refs = Array.from({ length: CLUSTER_NODES_MAX }, (_, i) => ({
    node: nodeId(i + 1),
    incarnation: incarnation(2 ** 40),
  }));
  const w = new ByteWriter(64);
  writeRecoveryEvent(w, {
    step: 'opened',
    group: 'g'.repeat(GROUP_NAME_BYTES_MAX),
    level: 255,
    generation: 2 ** 40,
    reason: 'unclean-removal',
    previous: 2 ** 40,
    members: refs,
    fences: refs,
  });
  const evicted = new ByteWriter(64);
  writeRecoveryEvent(evicted, {
    step: 'member-evicted',
    group: 'g'.repeat(GROUP_NAME_BYTES_MAX),
    level: 255,
    generation: 2 ** 40,
    node: nodeId(1),
    incarnation: incarnation(1),
    reason: 'é'.repeat(RECOVERY_REASON_BYTES_MAX / 2),
  });
  // The event log adds a kind, seq, view id and index (well under 64 bytes) around the payload.
  assert.ok(w.finish().length + 64 <= MEMBERSHIP_EVENT_BYTES_MAX, `${w.finish().length} bytes`);
  assert.ok(evicted.finish().length + 64 <= MEMBERSHIP_EVENT_BYTES_MAX);
});
