// Proves the membership machine drives the recovery table in the same apply as the membership and
// group changes (the recipe of src/recovery/recovery-table.ts): a member failing in a level-1
// group opens a round in the failing entry, which starts only in the entry that records the fence;
// a level-2 round waits for the level-1 round to finish; reports and evictions flow through the
// codec (tags 15 and 16) and an error or eviction removes the member from its group and restarts
// the round without it; a group-creating join is refused while the table is full; the table
// travels in snapshot format 4 on, and a format-3 snapshot (before the table) restores with an empty
// one and goes on.
import { test } from 'node:test';
import { readHexFixture } from '../testing/hex-fixture.js';
import assert from 'node:assert/strict';
import { incarnation, logIndex, nodeId, term, type NodeId } from '../lib/ids.js';
import { DEFAULT_VOTEQUORUM_OPTIONS } from '../quorum/index.js';
import type { ApplyResult } from '../log/state-machine.js';
import { GROUPS_MAX, MEMBERSHIP_EVENTS_READ_MAX, RECOVERY_ROUNDS_MAX } from '../constants.js';
import type { RecoveryReport } from '../recovery/index.js';
import {
  decodeMembershipCommand,
  encodeMembershipCommand,
  type MemberNodeSpec,
  type MembershipCommand,
} from './membership-command.js';
import type { MembershipEvent } from './membership-event.js';
import { MembershipStateMachine, type MembershipOutput } from './membership-state-machine.js';

const T1 = term(1);
const n = (i: number): NodeId => nodeId(i);
const inc = incarnation;

const spec = (id: number): MemberNodeSpec => ({
  nodeId: n(id),
  name: `node-${id}`,
  address: `10.0.0.${id}:7400`,
  votes: 1,
  role: 'voter',
});
const configure = (ids: number[]): MembershipCommand => ({
  type: 'configure',
  nodes: ids.map(spec),
  options: DEFAULT_VOTEQUORUM_OPTIONS,
  resetExpectedTracking: false,
});
const join = (node: number, i = 1): MembershipCommand => ({ type: 'join', node: n(node), incarnation: inc(i) });
const leave = (node: number, i = 1): MembershipCommand => ({ type: 'leave', node: n(node), incarnation: inc(i) });
const fail = (node: number, i = 1): MembershipCommand => ({
  type: 'fail',
  node: n(node),
  incarnation: inc(i),
  reason: { kind: 'operator', note: 'pulled the plug' },
});
const fenced = (node: number, i = 1): MembershipCommand => ({
  type: 'fenced',
  node: n(node),
  incarnation: inc(i),
  proof: { by: 'confirm' },
});
const gjoin = (group: string, node: number, level: number, i = 1): MembershipCommand => ({
  type: 'group-join',
  group,
  node: n(node),
  incarnation: inc(i),
  level,
});
const report = (group: string, generation: number, node: number, what: RecoveryReport, i = 1): MembershipCommand => ({
  type: 'recovery-report',
  group,
  generation,
  node: n(node),
  incarnation: inc(i),
  what,
});
const evict = (group: string, generation: number, node: number, i = 1): MembershipCommand => ({
  type: 'recovery-evict',
  group,
  generation,
  node: n(node),
  incarnation: inc(i),
  reason: 'no started report within 30000 ms',
});

/** Applies commands at consecutive indexes, as encoded bytes (the path the log takes). */
function run(sm: MembershipStateMachine, commands: readonly MembershipCommand[]): MembershipOutput[] {
  return commands.map((c) => {
    const r: ApplyResult<MembershipOutput> = sm.apply(logIndex(sm.appliedIndex + 1), T1, encodeMembershipCommand(c));
    assert.ok(r.ok, r.ok ? '' : `${c.type}: ${r.error.code} ${r.error.message}`);
    return r.value;
  });
}

function events(sm: MembershipStateMachine, fromSeq = 1): MembershipEvent[] {
  const page = sm.eventsFrom(fromSeq, MEMBERSHIP_EVENTS_READ_MAX);
  assert.ok(page.ok);
  return [...page.value.events];
}

/** `index kind[:step]` of the events from `fromSeq`, the recovery ones with their group. */
function steps(sm: MembershipStateMachine, fromSeq: number): string[] {
  return events(sm, fromSeq).map((e) =>
    e.kind === 'recovery' ? `${e.index} recovery:${e.payload.group}:${e.payload.step}` : `${e.index} ${e.kind}`,
  );
}

function phase(sm: MembershipStateMachine, group: string): string {
  const r = sm.recoveryRounds().find((x) => x.group === group);
  return r === undefined ? 'none' : `${r.phase}#${r.generation}`;
}

/** Nodes 1-4 members; g1 (level 1) = 1,2,3; g2 (level 2) = 1,2,3. */
function cluster(): MembershipStateMachine {
  const sm = new MembershipStateMachine();
  run(sm, [
    configure([1, 2, 3, 4]),
    ...[1, 2, 3, 4].map((id) => join(id)),
    ...[1, 2, 3].map((id) => gjoin('g1', id, 1)),
    ...[1, 2, 3].map((id) => gjoin('g2', id, 2)),
  ]);
  return sm;
}

test('a member failing in a level-1 group opens its round in the same entry; it starts only once the fence commits', () => {
  const sm = cluster();
  assert.deepEqual(phase(sm, 'g1'), 'idle#0', 'joins alone open nothing');
  const from = sm.nextEventSeq;
  run(sm, [fail(3)]);
  const at = sm.appliedIndex;
  assert.deepEqual(steps(sm, from), [
    `${at} view`,
    `${at} group`,
    `${at} group`,
    `${at} fence`,
    `${at} recovery:g1:opened`,
    `${at} recovery:g2:opened`,
  ]);
  const g1 = sm.recoveryRounds().find((r) => r.group === 'g1');
  assert.ok(g1 !== undefined);
  assert.deepEqual(
    g1.members.map((m) => m.node),
    [1, 2],
  );
  assert.deepEqual(
    g1.awaitingFences.map((f) => `${f.node}@${f.incarnation}`),
    ['3@1'],
  );
  const gen1 = g1.generation;
  // Every member stopped: the round still waits for the fence (and g2 for it and for g1).
  run(sm, [report('g1', gen1, 1, 'stopped'), report('g1', gen1, 2, 'stopped')]);
  assert.equal(phase(sm, 'g1'), `waiting-fence#${gen1}`);
  const w = sm.recoveryWaitingFor('g1');
  assert.deepEqual(
    w?.fences.map((f) => `${f.node}@${f.incarnation} since ${f.sinceIndex}`),
    [`3@1 since ${at}`],
  );
  // A start before it is due is refused (not-due), and changes nothing.
  const early = run(sm, [report('g1', gen1, 1, 'started')])[0];
  assert.ok(early !== undefined);
  assert.equal(early.recovery, 'not-due');
  assert.equal(early.outcome, 'no-change');
  // The fence commits: the round is due in that very entry.
  const before = sm.nextEventSeq;
  run(sm, [fenced(3)]);
  assert.equal(phase(sm, 'g1'), `starting#${gen1}`);
  assert.deepEqual(
    steps(sm, before).filter((s) => s.includes('recovery:g1')),
    [`${sm.appliedIndex} recovery:g1:fence-satisfied`, `${sm.appliedIndex} recovery:g1:start-due`],
  );
  run(sm, [report('g1', gen1, 1, 'started'), report('g1', gen1, 2, 'started')]);
  assert.equal(phase(sm, 'g1'), `finished#${gen1}`);
  // A repeat is a duplicate; another generation is stale.
  assert.equal(run(sm, [report('g1', gen1, 1, 'started')])[0]?.recovery, 'stale', 'the round is closed');
  assert.equal(run(sm, [report('g1', gen1 + 100, 1, 'stopped')])[0]?.recovery, 'stale');
});

test('a level-2 round starts only after the level-1 round finished', () => {
  const sm = cluster();
  run(sm, [fail(3)]);
  const gen = (g: string): number => sm.recoveryRounds().find((r) => r.group === g)?.generation ?? 0;
  const [g1, g2] = [gen('g1'), gen('g2')];
  run(sm, [
    report('g2', g2, 1, 'stopped'),
    report('g2', g2, 2, 'stopped'),
    report('g1', g1, 1, 'stopped'),
    report('g1', g1, 2, 'stopped'),
    fenced(3),
  ]);
  assert.equal(phase(sm, 'g1'), `starting#${g1}`);
  assert.equal(phase(sm, 'g2'), `waiting-lower#${g2}`);
  assert.deepEqual(
    sm.recoveryWaitingFor('g2')?.lower.map((l) => `${l.group}:${l.phase}`),
    ['g1:starting'],
  );
  assert.equal(run(sm, [report('g2', g2, 1, 'started')])[0]?.recovery, 'not-due');
  const from = sm.nextEventSeq;
  run(sm, [report('g1', g1, 1, 'started'), report('g1', g1, 2, 'started')]);
  assert.equal(phase(sm, 'g1'), `finished#${g1}`);
  assert.equal(phase(sm, 'g2'), `starting#${g2}`, 'due in the entry that finished level 1');
  assert.deepEqual(steps(sm, from).slice(-3), [
    `${sm.appliedIndex} recovery:g1:member-started`,
    `${sm.appliedIndex} recovery:g1:finished`,
    `${sm.appliedIndex} recovery:g2:start-due`,
  ]);
});

test('an error report or an eviction removes the member from its group and restarts the round without it', () => {
  const sm = cluster();
  run(sm, [fail(3)]);
  const g1 = sm.recoveryRounds().find((r) => r.group === 'g1')?.generation ?? 0;
  // Node 2 cannot stop: it reports an error, leaves g1, and a new generation opens with node 1.
  let from = sm.nextEventSeq;
  const out = run(sm, [report('g1', g1, 2, 'error')])[0];
  assert.equal(out?.recovery, 'applied');
  assert.deepEqual(steps(sm, from), [
    `${sm.appliedIndex} recovery:g1:member-error`,
    `${sm.appliedIndex} group`,
    `${sm.appliedIndex} recovery:g1:aborted`,
    `${sm.appliedIndex} recovery:g1:opened`,
  ]);
  assert.deepEqual(
    sm.group('g1')?.members.map((m) => m.node),
    [1],
  );
  const next = sm.recoveryRounds().find((r) => r.group === 'g1');
  assert.ok(next !== undefined && next.generation > g1);
  assert.deepEqual(
    next.awaitingFences.map((f) => f.node),
    [3],
    'the aborted round’s fence stays required',
  );
  // The leader evicts node 1 from g2 for not stopping; a stop that lost the race is then stale.
  const g2 = sm.recoveryRounds().find((r) => r.group === 'g2')?.generation ?? 0;
  from = sm.nextEventSeq;
  assert.equal(run(sm, [evict('g2', g2, 1)])[0]?.recovery, 'applied');
  assert.ok(steps(sm, from).includes(`${sm.appliedIndex} recovery:g2:member-evicted`));
  assert.deepEqual(
    sm.group('g2')?.members.map((m) => m.node),
    [2],
  );
  assert.equal(run(sm, [report('g2', g2, 1, 'stopped')])[0]?.recovery, 'stale');
  // An eviction of a member that already reported what the round waits for is stale.
  const g2b = sm.recoveryRounds().find((r) => r.group === 'g2')?.generation ?? 0;
  run(sm, [report('g2', g2b, 2, 'stopped')]);
  assert.equal(run(sm, [evict('g2', g2b, 2)])[0]?.recovery, 'stale');
  assert.deepEqual(
    sm.group('g2')?.members.map((m) => m.node),
    [2],
  );
});

test('a clean leave opens nothing; a join during an open round restarts it with the newcomer', () => {
  const sm = cluster();
  run(sm, [leave(2)]);
  assert.equal(phase(sm, 'g1'), 'idle#0');
  run(sm, [fail(3)]);
  const g1 = sm.recoveryRounds().find((r) => r.group === 'g1')?.generation ?? 0;
  run(sm, [gjoin('g1', 4, 1)]);
  const r = sm.recoveryRounds().find((x) => x.group === 'g1');
  assert.ok(r !== undefined && r.generation > g1 && r.phase === 'stopping');
  assert.deepEqual(
    r.members.map((m) => m.node),
    [1, 4],
  );
});

test('recovery commands take tags 15 and 16 and round-trip through the codec', () => {
  const rep = report('g1', 7, 2, 'started', 3);
  const ev = evict('g1', 7, 2, 3);
  const repBytes = encodeMembershipCommand(rep);
  const evBytes = encodeMembershipCommand(ev);
  assert.equal(repBytes[0], 15);
  assert.equal(evBytes[0], 16);
  assert.deepEqual(decodeMembershipCommand(repBytes), rep);
  assert.deepEqual(decodeMembershipCommand(evBytes), ev);
  const bad = evBytes.slice();
  bad[0] = 17;
  assert.throws(() => decodeMembershipCommand(bad), /unknown membership command tag 17/);
  const zero: MembershipCommand = {
    type: 'recovery-report',
    group: 'g1',
    generation: 0,
    node: n(2),
    incarnation: inc(3),
    what: 'stopped',
  };
  const r = new MembershipStateMachine().apply(logIndex(1), T1, zero);
  assert.ok(!r.ok && r.error.code === 'MEMBERSHIP_INVALID_COMMAND');
});

test('a join creating a group is refused while the recovery table is full', () => {
  const sm = new MembershipStateMachine();
  run(sm, [configure([1, 2, 3]), join(1), join(2), join(3)]);
  // GROUPS_MAX groups on node 2 and GROUPS_MAX on node 3; both fail: every group is gone, but
  // each round waits for its fence, so the table holds RECOVERY_ROUNDS_MAX records.
  assert.equal(RECOVERY_ROUNDS_MAX, 2 * GROUPS_MAX);
  for (let k = 0; k < GROUPS_MAX; k++) run(sm, [gjoin(`a${k}`, 2, 1)]);
  run(sm, [fail(2)]);
  for (let k = 0; k < GROUPS_MAX; k++) run(sm, [gjoin(`b${k}`, 3, 1)]);
  run(sm, [fail(3)]);
  assert.equal(sm.groups().length, 0);
  assert.equal(sm.recoveryRounds().length, RECOVERY_ROUNDS_MAX);
  const refused = run(sm, [gjoin('new', 1, 1)])[0];
  assert.equal(refused?.group?.outcome, 'too-many-groups');
  assert.equal(sm.group('new'), null);
  // A group whose old round still waits may come back (it has a record); its round waits.
  assert.equal(run(sm, [gjoin('a0', 1, 1)])[0]?.group?.outcome, 'applied');
  assert.equal(sm.recoveryRounds().find((r) => r.group === 'a0')?.phase, 'stopping');
  // Fences free the records: node 2's groups finish and are forgotten, so a new group fits.
  run(sm, [fenced(2)]);
  assert.equal(sm.recoveryRounds().length, GROUPS_MAX + 1);
  assert.equal(run(sm, [gjoin('new', 1, 1)])[0]?.group?.outcome, 'applied');
});

test('the recovery table travels in snapshot format 4 on; a restored machine goes on identically', () => {
  const sm = cluster();
  run(sm, [fail(3)]);
  const g1 = sm.recoveryRounds().find((r) => r.group === 'g1')?.generation ?? 0;
  run(sm, [report('g1', g1, 1, 'stopped')]);
  const bytes = sm.snapshot();
  assert.equal(bytes[4], 5, 'format 5');
  const copy = new MembershipStateMachine();
  const r = copy.restore(bytes);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  assert.deepEqual(copy.snapshot(), bytes);
  assert.equal(copy.stateHash(), sm.stateHash());
  assert.deepEqual(copy.recoveryRounds(), sm.recoveryRounds());
  assert.deepEqual(events(copy), events(sm), 'recovery events travel in the event window');
  const more = [report('g1', g1, 2, 'stopped'), fenced(3), report('g1', g1, 1, 'started')];
  assert.deepEqual(run(copy, more), run(sm, more));
  assert.equal(copy.stateHash(), sm.stateHash());
  // The state hash covers the table: a different report gives a different hash.
  const x = new MembershipStateMachine();
  const y = new MembershipStateMachine();
  assert.ok(x.restore(bytes).ok && y.restore(bytes).ok);
  run(x, [report('g1', g1, 2, 'stopped')]);
  run(y, [report('g1', g1 + 50, 2, 'stopped')]);
  assert.notEqual(x.stateHash(), y.stateHash());
});

test('a format-3 snapshot (before the recovery table) restores with an empty table and goes on', () => {
  const old = readHexFixture('membership/snapshot-format-3.hex');
  assert.equal(old[4], 3, 'the fixture is format 3');
  const sm = new MembershipStateMachine();
  const r = sm.restore(old);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  assert.equal(sm.appliedIndex, 12);
  assert.deepEqual(sm.recoveryRounds(), [], 'no round was open or had run');
  assert.deepEqual(
    sm.groups().map((g) => `${g.group}@${g.level}`),
    ['lockspace@1', 'volume@2'],
  );
  assert.deepEqual(
    sm.pendingFences().map((f) => f.node),
    [4],
  );
  // It writes the current format (5) from now on, which restores to the same state.
  const now = sm.snapshot();
  assert.equal(now[4], 5);
  const again = new MembershipStateMachine();
  assert.ok(again.restore(now).ok);
  assert.equal(again.stateHash(), sm.stateHash());
  // And recovery runs: node 3 fails; lockspace's round opens and waits for its fence.
  run(sm, [fenced(4), fail(3)]);
  assert.equal(sm.recoveryRounds().find((x) => x.group === 'lockspace')?.phase, 'stopping');
  assert.deepEqual(
    sm.recoveryWaitingFor('lockspace')?.fences.map((f) => f.node),
    [3],
  );
});
