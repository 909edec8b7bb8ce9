// Proves the membership machine drives the fence ledger in the same apply as the membership
// change (design note section 1): every transition that makes a fence pending (fail of a member,
// quarantine of a member, a join that replaces a member, a leave or fail naming a newer
// incarnation) opens a record at that log index with a `fence` event, and a clean leave never
// does; the `fenced` that clears a fence closes the record of the pending incarnation with its
// proof, a second one is a duplicate; attempts and unfence entries are deterministic no-ops on
// records not in the state that takes them; the ledger travels in the snapshot (format 3 and up), and a
// format-2 snapshot written before the ledger existed still restores, with the pending fences
// it held opened in the ledger.
import { test } from 'node:test';
import { readHexFixture } from '../testing/hex-fixture.js';
import assert from 'node:assert/strict';
import { incarnation, logIndex, nodeId, term, type NodeId } from '../lib/ids.js';
import { crc32c } from '../lib/checksum.js';
import { DEFAULT_VOTEQUORUM_OPTIONS } from '../quorum/index.js';
import type { ApplyResult } from '../log/state-machine.js';
import { MEMBERSHIP_EVENTS_READ_MAX } from '../constants.js';
import { FenceLedger, type FenceAttempt, type FenceProof } from '../fencing/index.js';
import { ByteWriter } from '../lib/bytes.js';
import { encodeMembershipCommand, type MemberNodeSpec, type MembershipCommand } from './membership-command.js';
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
const join = (node: number, i: number): MembershipCommand => ({ type: 'join', node: n(node), incarnation: inc(i) });
const leave = (node: number, i: number): MembershipCommand => ({ type: 'leave', node: n(node), incarnation: inc(i) });
const fail = (node: number, i: number): MembershipCommand => ({
  type: 'fail',
  node: n(node),
  incarnation: inc(i),
  reason: { kind: 'operator', note: 'pulled the plug' },
});
const byAgent: FenceProof = { by: 'agent', level: 1, device: 'ipmi', atMs: 1_700_000_005_000 };
const fenced = (node: number, i: number, proof: FenceProof = byAgent): MembershipCommand => ({
  type: 'fenced',
  node: n(node),
  incarnation: inc(i),
  proof,
});
const quarantine = (node: number, i: number): MembershipCommand => ({
  type: 'quarantine',
  node: n(node),
  incarnation: inc(i),
  reason: { kind: 'operator', note: 'gray' },
});
const release = (node: number): MembershipCommand => ({ type: 'release', node: n(node) });
const attempt = (over: Partial<FenceAttempt> = {}): FenceAttempt => ({
  executor: n(1),
  level: 1,
  device: 'ipmi',
  agent: 'exec',
  action: 'off',
  result: 'failed',
  exitCode: 1,
  durationMs: 900,
  excerpt: 'Failed: timed out waiting for power status',
  atMs: 1_700_000_001_000,
  round: 1,
  ...over,
});
const fenceAttempt = (node: number, i: number, a: FenceAttempt = attempt()): MembershipCommand => ({
  type: 'fence-attempt',
  node: n(node),
  incarnation: inc(i),
  attempt: a,
});
const unfence = (node: number, i: number): MembershipCommand => ({
  type: 'unfence',
  node: n(node),
  incarnation: inc(i),
  unfence: { device: 'scsi', result: 'ok', atMs: 1_700_000_009_000 },
});

function run(sm: MembershipStateMachine, commands: readonly MembershipCommand[]): ApplyResult<MembershipOutput>[] {
  // Every other command goes through the codec, so both apply paths are exercised.
  return commands.map((c, k) =>
    sm.apply(logIndex(sm.appliedIndex + 1), T1, k % 2 === 0 ? encodeMembershipCommand(c) : c),
  );
}

function outcomes(rs: ApplyResult<MembershipOutput>[]): string[] {
  return rs.map((r) => (r.ok ? r.value.outcome : r.error.code));
}

function events(sm: MembershipStateMachine, fromSeq = 1): MembershipEvent[] {
  const page = sm.eventsFrom(fromSeq, MEMBERSHIP_EVENTS_READ_MAX);
  assert.ok(page.ok);
  return [...page.value.events];
}

function fenceLines(sm: MembershipStateMachine, fromSeq = 1): string[] {
  return events(sm, fromSeq).flatMap((e) =>
    e.kind === 'fence' ? [`${e.index}:${e.payload.node}@${e.payload.incarnation} ${e.payload.what}`] : [],
  );
}

function pending(sm: MembershipStateMachine): string[] {
  return sm.pendingFences().map((r) => `${r.node}@${r.incarnation}#${r.request.index}`);
}

function started(ids: number[] = [1, 2, 3]): MembershipStateMachine {
  const sm = new MembershipStateMachine();
  run(sm, [configure(ids), ...ids.map((id) => join(id, 1))]);
  return sm;
}

test('a fail opens the fence record in the same apply, with a fence event after the view event', () => {
  const sm = started();
  const seq = sm.nextEventSeq;
  const [r] = run(sm, [fail(3, 1)]);
  assert.ok(r?.ok === true && r.value.outcome === 'applied');
  const index = sm.appliedIndex;
  assert.deepEqual(pending(sm), [`3@1#${index}`]);
  const rec = sm.fenceRecord(n(3), 1);
  assert.ok(rec !== null && rec.outcome.state === 'pending');
  assert.match(rec.request.reason, /pulled the plug; needs fencing/);
  const kinds = events(sm, seq).map((e) => `${e.index}:${e.kind}`);
  assert.deepEqual(kinds.slice(0, 2), [`${index}:view`, `${index}:fence`], 'same entry, view first');
  const fence = events(sm, seq)[1];
  assert.ok(
    fence?.kind === 'fence' && fence.payload.what === 'requested' && fence.payload.reason === rec.request.reason,
  );
  assert.equal(r.value.events, kinds.length, 'the output counts the fence event');
});

test('fenced closes the pending record with its proof; a second fenced is a duplicate', () => {
  const sm = started();
  run(sm, [fail(3, 1), fenceAttempt(3, 1), fenceAttempt(3, 1, attempt({ result: 'ok', exitCode: 0 }))]);
  assert.equal(sm.fenceRecord(n(3), 1)?.attempts.length, 2);
  assert.deepEqual(outcomes(run(sm, [fenced(3, 1)])), ['applied']);
  const closedAt = sm.appliedIndex;
  const rec = sm.fenceRecord(n(3), 1);
  assert.ok(rec?.outcome.state === 'fenced');
  assert.deepEqual(rec.outcome.proof, byAgent);
  assert.equal(rec.outcome.index, closedAt);
  assert.deepEqual(pending(sm), []);
  assert.deepEqual(
    sm.fenceHistory().map((x) => `${x.node}@${x.incarnation}`),
    ['3@1'],
  );
  const confirm: FenceProof = { by: 'confirm', operator: 'alice', atMs: 5 };
  assert.deepEqual(outcomes(run(sm, [fenced(3, 1, confirm), fenced(3, 1)])), ['duplicate', 'duplicate']);
  assert.deepEqual(sm.fenceRecord(n(3), 1)?.outcome, rec.outcome, 'one incarnation is fenced at most once');
  assert.deepEqual(fenceLines(sm).slice(-4), [
    `${closedAt - 3}:3@1 requested`,
    `${closedAt - 2}:3@1 attempt`,
    `${closedAt - 1}:3@1 attempt`,
    `${closedAt}:3@1 fenced`,
  ]);
});

test('a join that replaces a member opens a record; the fence admits the waiting incarnation in the entry that closes it', () => {
  const sm = started();
  assert.deepEqual(outcomes(run(sm, [join(2, 2)])), ['waiting-for-fence']);
  assert.deepEqual(pending(sm), [`2@1#${sm.appliedIndex}`]);
  assert.match(sm.fenceRecord(n(2), 1)?.request.reason ?? '', /incarnation 2 joined while incarnation 1 was a member/);
  run(sm, [fenced(2, 1)]);
  assert.deepEqual(
    sm.view().members.map((m) => `${m.node}@${m.incarnation}`),
    ['1@1', '2@2', '3@1'],
  );
  const last = events(sm).filter((e) => e.index === sm.appliedIndex);
  assert.deepEqual(
    last.map((e) =>
      e.kind === 'view' ? `view ${e.payload.change.kind}` : e.kind === 'fence' ? `fence ${e.payload.what}` : e.kind,
    ),
    ['view admitted', 'fence fenced'],
  );
  // The old incarnation's fence arriving again, now stale for membership, is a duplicate.
  assert.deepEqual(outcomes(run(sm, [fenced(2, 1)])), ['duplicate']);
});

test('a clean leave never opens a record; every unclean removal does, once', () => {
  const sm = started([1, 2, 3, 4, 5]);
  run(sm, [leave(1, 1)]);
  assert.deepEqual(pending(sm), [], 'a clean leave needs no fence');
  assert.equal(sm.fenceRecord(n(1), 1), null);
  // A leave naming a newer incarnation proves incarnation 1 crashed: unclean.
  run(sm, [leave(2, 2), quarantine(3, 1), fail(4, 1), fail(4, 1)]);
  const at = sm.appliedIndex;
  assert.deepEqual(pending(sm), [`2@1#${at - 3}`, `3@1#${at - 2}`, `4@1#${at - 1}`]);
  assert.equal(fenceLines(sm).length, 3, 'one request each; the repeated fail opens nothing');
  // A quarantine and release of a pending node keep its one record; the fence clears it.
  run(sm, [quarantine(4, 1), release(4), release(3)]);
  assert.equal(pending(sm).length, 3);
  assert.deepEqual(outcomes(run(sm, [fenced(3, 1), fenced(4, 1), fenced(2, 1)])), ['applied', 'applied', 'applied']);
  assert.deepEqual(pending(sm), []);
  assert.deepEqual(
    sm.fenceHistory().map((x) => `${x.node}@${x.incarnation}`),
    ['2@1', '4@1', '3@1'],
    'the latest finished first',
  );
  // A node quarantined while out needs no fence.
  run(sm, [quarantine(1, 2)]);
  assert.deepEqual(pending(sm), []);
});

test('a fence of a pending incarnation named by a newer one closes the pending record', () => {
  const sm = started();
  run(sm, [fail(3, 1), join(3, 2), fenced(3, 2)]);
  assert.equal(sm.fenceRecord(n(3), 1)?.outcome.state, 'fenced', 'a fence at incarnation 2 covers incarnation 1');
  assert.equal(sm.fenceRecord(n(3), 2), null);
  assert.equal(sm.nodes().find((x) => x.nodeId === 3)?.status, 'out');
});

test('fenced while a member opens and closes a record at once', () => {
  const sm = started();
  const [r] = run(sm, [fenced(2, 1)]);
  assert.ok(r?.ok === true && r.value.outcome === 'applied');
  const rec = sm.fenceRecord(n(2), 1);
  assert.ok(rec?.outcome.state === 'fenced' && rec.request.index === rec.outcome.index);
  assert.deepEqual(fenceLines(sm), [`${sm.appliedIndex}:2@1 requested`, `${sm.appliedIndex}:2@1 fenced`]);
});

test('attempts and unfence entries on records not in the state that takes them are deterministic no-ops', () => {
  const sm = started();
  const seq = sm.nextEventSeq;
  assert.deepEqual(outcomes(run(sm, [fenceAttempt(3, 1), unfence(3, 1)])), ['no-change', 'no-change']);
  assert.deepEqual(outcomes(run(sm, [fenceAttempt(9, 1)])), ['no-change'], 'even for an unconfigured node');
  run(sm, [fail(3, 1)]);
  assert.deepEqual(outcomes(run(sm, [unfence(3, 1), fenceAttempt(3, 2), fenceAttempt(3, 1)])), [
    'no-change',
    'no-change',
    'applied',
  ]);
  run(sm, [fenced(3, 1)]);
  assert.deepEqual(outcomes(run(sm, [fenceAttempt(3, 1), unfence(3, 1)])), ['stale', 'applied']);
  assert.equal(sm.fenceRecord(n(3), 1)?.attempts.length, 1, 'the late attempt was not recorded');
  assert.equal(sm.fenceRecord(n(3), 1)?.unfence.length, 1);
  assert.deepEqual(
    fenceLines(sm, seq).map((l) => l.split(' ')[1]),
    ['requested', 'attempt', 'fenced', 'unfenced'],
  );
  const fresh = new MembershipStateMachine();
  assert.deepEqual(outcomes(run(fresh, [fenceAttempt(1, 1)])), ['no-change'], 'no configuration: still no error');
});

test('the ledger travels in the snapshot (format 4 on) and restores byte for byte', () => {
  const sm = started([1, 2, 3, 4]);
  run(sm, [fail(3, 1), fenceAttempt(3, 1), join(2, 2), fenced(2, 1), unfence(2, 1), quarantine(4, 1)]);
  const bytes = sm.snapshot();
  assert.equal(bytes[4], 5, 'format 5');
  const copy = new MembershipStateMachine();
  assert.ok(copy.restore(bytes).ok);
  assert.deepEqual(copy.snapshot(), bytes);
  assert.equal(copy.stateHash(), sm.stateHash());
  assert.deepEqual(copy.pendingFences(), sm.pendingFences());
  assert.deepEqual(copy.fenceHistory(), sm.fenceHistory());
  // The same commands after the restore give the same results on both.
  const more = [fenced(3, 1), fenced(4, 1), fenceAttempt(4, 1)];
  assert.deepEqual(run(copy, more), run(sm, more));
  assert.equal(copy.stateHash(), sm.stateHash());
  // A ledger that contradicts the node records is refused: cut node 3's pending record out.
  const a = started();
  run(a, [fail(3, 1)]);
  const rec = a.fenceRecord(n(3), 1);
  assert.ok(rec !== null);
  const ledger = new FenceLedger();
  ledger.open(rec.node, rec.incarnation, rec.request.reason, rec.request.index);
  const w = new ByteWriter(256);
  ledger.encode(w);
  const section = Buffer.from(w.finish());
  const full = Buffer.from(a.snapshot());
  const at = full.indexOf(section);
  assert.ok(at > 0 && full.indexOf(section, at + 1) < 0, 'the ledger section is found once');
  const cut = Buffer.concat([full.subarray(0, at), Buffer.from([0, 0, 0]), full.subarray(at + section.length)]);
  cut.writeUInt32LE(crc32c(cut.subarray(0, cut.length - 4)), cut.length - 4);
  const refused = new MembershipStateMachine().restore(new Uint8Array(cut));
  assert.ok(!refused.ok && /disagree/.test(refused.error.message), refused.ok ? '' : refused.error.message);
});

test('a format-2 snapshot (written before the ledger) restores, with its pending fences opened in the ledger', () => {
  const old = readHexFixture('membership/snapshot-format-2.hex');
  assert.equal(old[4], 2, 'the fixture is format 2');
  const sm = new MembershipStateMachine();
  const r = sm.restore(old);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  assert.equal(sm.appliedIndex, 11);
  assert.deepEqual(
    sm.nodes().map((x) => `${x.nodeId}:${x.status}@${x.incarnation}`),
    ['1:member@1', '2:member@2', '3:needs-fencing@1', '4:quarantined@1'],
  );
  assert.deepEqual(pending(sm), ['3@1#11', '4@1#11'], 'every pending fence has its record');
  assert.deepEqual(sm.fenceHistory(), [], 'fences finished before the upgrade are not invented');
  assert.equal(sm.groups()[0]?.group, 'lockspace');
  // It writes the current format (5) from now on, which restores to the same state.
  const now = sm.snapshot();
  assert.equal(now[4], 5);
  const again = new MembershipStateMachine();
  assert.ok(again.restore(now).ok);
  assert.equal(again.stateHash(), sm.stateHash());
  // And the machine goes on: the fence admits node 3's waiting incarnation.
  run(sm, [fenced(3, 1)]);
  assert.equal(sm.fenceRecord(n(3), 1)?.outcome.state, 'fenced');
  assert.ok(sm.view().members.some((m) => m.node === 3 && m.incarnation === 2));
  // Format 1 (before the group table) is still refused, with a message that says what to do.
  const one = old.slice();
  one[4] = 1;
  new DataView(one.buffer).setUint32(one.length - 4, crc32c(one.subarray(0, one.length - 4)), true);
  const refused = new MembershipStateMachine().restore(one);
  assert.ok(!refused.ok && refused.error.code === 'SNAPSHOT_VERSION');
});
