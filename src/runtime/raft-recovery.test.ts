// Proves that recovery reports every repair of durable state as a value the daemon logs and
// counts (a corrupt WAL discarded, a torn tail cut, a damaged snapshot skipped, a lost stable
// state rebuilt from the WAL), that a *missing* stable-state file beside a log is never taken for
// a fresh node (repair mode, term and vote from the WAL, or a refusal when the WAL has no copy),
// and that `retireIncarnation` makes the next start run above the incarnation learned from the
// cluster and never lowers the count.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId, type NodeId } from '../lib/ids.js';
import { STABLE_STATE_FILE, Wal, describeRepair } from '../storage/index.js';
import { KvStateMachine, type ConfState, type KvCommand, type KvOutput } from '../log/index.js';
import { msToUs } from '../sim/scheduler.js';
import { RaftNode } from './raft-node.js';
import { RecoveryError, WAL_RECORD_ENTRY, encodeEntryRecord, recover } from './raft-persistence.js';
import { logIndex, term } from '../lib/ids.js';
import { newDisk, rig, rigEnv as env, type Rig } from '../testing/raft-node-rig.js';

const ONE: NodeId = nodeId(1);
const BOOTSTRAP: ConfState = { voters: [[ONE, 1]], outgoing: [], learners: [], learnersNext: [], autoLeave: false };

function start(r: Rig, snapshotEntries = 1000): RaftNode<KvCommand, KvOutput> {
  const node = new RaftNode(env(r, r.disk), {
    tickMs: 10,
    bootstrap: BOOTSTRAP,
    stateMachine: new KvStateMachine(),
    snapshotEntries,
    snapshotCatchUpEntries: 2,
    requestTimeoutTicks: 500,
  });
  node.start();
  return node;
}

function runFor(r: Rig, ms: number): void {
  r.scheduler.runUntil(r.scheduler.nowUs + msToUs(ms));
}

/** A leader with `n` writes, each in its own WAL batch, stopped; returns its files. */
function writtenFiles(r: Rig, n: number, snapshotEntries = 1000): Map<string, Uint8Array> {
  const node = start(r, snapshotEntries);
  runFor(r, 1000);
  assert.equal(node.status().role, 'leader');
  for (let i = 0; i < n; i++) {
    node.propose({ type: 'put', key: `k${i}`, value: new Uint8Array([i]) }, () => undefined);
    runFor(r, 50);
  }
  node.stop();
  return r.disk.snapshot();
}

function walName(files: ReadonlyMap<string, Uint8Array>): string {
  const names = [...files.keys()].filter((f) => f.startsWith('wal-')).sort();
  const last = names.at(-1);
  assert.ok(last !== undefined, 'the node wrote a WAL segment');
  return last;
}

test('a clean restart reports no repair and no lost stable state', () => {
  const r = rig();
  r.disk = newDisk(r.scheduler, writtenFiles(r, 3));
  const again = start(r);
  assert.deepEqual(again.recovery.repairs, []);
  assert.equal(again.recovery.stableStateLost, null);
});

test('a corrupt WAL is reported discarded with the segment, the offset and the bytes dropped', () => {
  const r = rig();
  const files = writtenFiles(r, 5);
  const wal = walName(files);
  const bytes = files.get(wal)!;
  bytes[40] = (bytes[40] ?? 0) ^ 0xff; // inside the first record
  r.disk = newDisk(r.scheduler, files);
  const again = start(r);
  const [repair, ...rest] = again.recovery.repairs;
  assert.deepEqual(rest, []);
  assert.equal(repair?.kind, 'wal-discarded');
  assert.equal(repair.file, wal);
  assert.ok(repair.offset >= 32 && repair.offset <= 40, `the damage is reported at its record (byte ${repair.offset})`);
  assert.equal(repair.bytesLost, bytes.length);
  assert.match(repair.cause, /^mid-log corruption: /);
  assert.match(
    repair.lost,
    /all 1 WAL segment\(s\), i\.e\. every log entry \(no snapshot is kept\); they are rebuilt from peers/,
  );
  assert.match(describeRepair(repair), new RegExp(`^storage repair \\(wal-discarded\\): ${wal} at byte \\d+: `));
});

test('a tail cut mid-record is reported as a torn tail: where the cut starts and how many bytes went', () => {
  const r = rig();
  const files = writtenFiles(r, 3);
  const wal = walName(files);
  const whole = files.get(wal)!;
  files.set(wal, whole.slice(0, whole.length - 5));
  r.disk = newDisk(r.scheduler, files);
  const { recovery } = Wal.open(newDisk(r.scheduler, files));
  const [torn, ...rest] = recovery.repairs;
  assert.deepEqual(rest, []);
  assert.equal(torn?.kind, 'wal-torn-tail');
  assert.equal(torn.file, wal);
  assert.equal(torn.offset + torn.bytesLost, whole.length - 5, 'the cut runs from the offset to the end');
  assert.equal(torn.bytesLost, recovery.tornTailBytes);
  assert.match(torn.lost, new RegExp(`after sequence number ${recovery.nextSeq - 1}, taken for an interrupted write`));
  const again = start(r);
  assert.deepEqual(again.recovery.repairs, [torn], 'the node reports the WAL repair');
  assert.equal(again.status().repairing, false, 'an interrupted write is no reason to repair from peers');
});

test('a damaged snapshot is reported skipped with its file and size', () => {
  const r = rig();
  const files = writtenFiles(r, 12, 5);
  const snaps = [...files.keys()].filter((f) => f.startsWith('snap-')).sort();
  const newest = snaps.at(-1);
  assert.ok(newest !== undefined, 'the node took a snapshot');
  const bytes = files.get(newest)!;
  bytes[bytes.length - 10] = (bytes[bytes.length - 10] ?? 0) ^ 0xff;
  r.disk = newDisk(r.scheduler, files);
  const again = start(r, 5);
  const skipped = again.recovery.repairs.find((x) => x.kind === 'snapshot-skipped');
  assert.ok(skipped !== undefined, 'the skipped snapshot is reported');
  assert.equal(skipped.file, newest);
  assert.equal(skipped.bytesLost, bytes.length);
});

test('a missing stable state beside a WAL is no fresh node: repair mode, term and vote from the WAL', () => {
  const r = rig();
  let node = start(r);
  runFor(r, 1000);
  const t = node.status().term;
  assert.ok(t >= 1);
  for (let i = 0; i < 3; i++) {
    node.stop();
    node = start(r);
    runFor(r, 1000);
  }
  node.stop();
  const files = r.disk.snapshot();
  files.delete(STABLE_STATE_FILE);
  r.disk = newDisk(r.scheduler, files);
  const rec = recover(r.disk, BOOTSTRAP, () => undefined);
  assert.equal(rec.stableStateLost, 'missing');
  assert.ok(rec.repairReason !== null && /missing/.test(rec.repairReason), 'the node repairs');
  assert.ok(rec.stableState.term >= t, 'the term comes from the WAL, not 0');
  assert.equal(rec.stableState.vote, ONE, 'the vote comes from the WAL');
  assert.equal(rec.blob.incarnation, 1, 'the incarnation counter restarted (the cluster will say where it is)');
  const missing = rec.repairs.find((x) => x.kind === 'stable-state-missing');
  assert.ok(missing !== undefined);
  assert.equal(missing.file, STABLE_STATE_FILE);
  assert.match(missing.lost, /learns its incarnation from the cluster/);
});

test('a missing stable state beside a WAL with no copy of the term refuses to start', () => {
  const r = rig();
  const { wal } = Wal.open(r.disk);
  wal.append(
    WAL_RECORD_ENTRY,
    encodeEntryRecord({ index: logIndex(1), term: term(1), type: 'normal', data: new Uint8Array(0) }),
  );
  runFor(r, 10);
  assert.equal(wal.durableSeq, 1);
  assert.throws(
    () => recover(r.disk, BOOTSTRAP, () => undefined),
    (e: unknown) => e instanceof RecoveryError && e.code === 'RECOVERY_IMPOSSIBLE' && /missing/.test(e.message),
  );
});

test('an empty disk is a fresh node, not a lost stable state', () => {
  const r = rig();
  const rec = recover(r.disk, BOOTSTRAP, () => undefined);
  assert.equal(rec.stableStateLost, null);
  assert.equal(rec.repairReason, null);
  assert.deepEqual(rec.repairs, []);
});

test('retireIncarnation: the next start runs above the learned incarnation, never below this one', () => {
  const r = rig();
  const node = start(r);
  runFor(r, 1000);
  assert.equal(node.incarnation, 1);
  const done: (Error | null)[] = [];
  assert.equal(
    node.retireIncarnation(4, (e) => done.push(e)),
    5,
  );
  assert.deepEqual(done, [], 'the save completes from the disk, not inside the call');
  runFor(r, 10);
  assert.deepEqual(done, [null]);
  node.stop();
  const again = start(r);
  assert.equal(again.incarnation, 5);
  runFor(r, 1000);
  again.stop();
  assert.equal(start(r).incarnation, 6);
  // Learning a lower incarnation than this run's never lowers the count.
  const r2 = rig();
  const n2 = start(r2);
  runFor(r2, 1000);
  assert.equal(
    n2.retireIncarnation(0, () => undefined),
    2,
  );
});
