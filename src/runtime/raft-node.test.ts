// Proves the Raft shell keeps its durability promises on one node: applied writes survive a
// restart (from the WAL, and from a snapshot plus the WAL after compaction), a corrupt WAL puts
// the node in repair mode (it never campaigns) and its segments are discarded, a suspect WAL
// tail does the same, and a damaged stable state without a WAL copy refuses to start; a restart
// knows the commit index of every configuration change it applied (HARD records carry it, in
// both record formats).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId, type NodeId } from '../lib/ids.js';
import { KvStateMachine, type KvCommand, type KvOutput } from '../log/index.js';
import { msToUs } from '../sim/scheduler.js';
import { RaftNode, type RaftNodeError } from './raft-node.js';
import { RecoveryError, decodeHardRecord, encodeHardRecord } from './raft-persistence.js';
import { ByteWriter } from '../lib/bytes.js';
import { logIndex, term as toTerm } from '../lib/ids.js';
import type { Result } from '../lib/errors.js';
import { newDisk, rig, rigEnv as env, type Rig } from '../testing/raft-node-rig.js';

const ONE: NodeId = nodeId(1);
const encoder = new TextEncoder();
const decoder = new TextDecoder();

const machines = new WeakMap<RaftNode<KvCommand, KvOutput>, KvStateMachine>();

function start(r: Rig, snapshotEntries = 1000): RaftNode<KvCommand, KvOutput> {
  const stateMachine = new KvStateMachine();
  const node = new RaftNode(env(r, r.disk), {
    tickMs: 10,
    bootstrap: { voters: [[ONE, 1]], outgoing: [], learners: [], learnersNext: [], autoLeave: false },
    stateMachine,
    snapshotEntries,
    snapshotCatchUpEntries: 2,
    requestTimeoutTicks: 500,
  });
  machines.set(node, stateMachine);
  node.start();
  return node;
}

function runFor(r: Rig, ms: number): void {
  r.scheduler.runUntil(r.scheduler.nowUs + msToUs(ms));
}

function put(node: RaftNode<KvCommand, KvOutput>, key: string, value: string): Result<KvOutput, RaftNodeError>[] {
  const out: Result<KvOutput, RaftNodeError>[] = [];
  node.propose({ type: 'put', key, value: encoder.encode(value) }, (res) => out.push(res));
  return out;
}

function value(node: RaftNode<KvCommand, KvOutput>, key: string): string | null {
  const sm = machines.get(node);
  assert.ok(sm !== undefined);
  const entry = sm.get(key).entry;
  return entry === null ? null : decoder.decode(entry.value);
}

test('a single node elects itself, applies writes, and recovers them from the WAL after a restart', () => {
  const r = rig();
  const node = start(r);
  runFor(r, 1000);
  assert.equal(node.status().role, 'leader');
  const results = [put(node, 'a', '1'), put(node, 'b', '2')];
  runFor(r, 200);
  for (const res of results) assert.equal(res[0]?.ok, true);
  node.stop();
  const again = start(r);
  runFor(r, 1000);
  assert.equal(again.status().role, 'leader');
  assert.equal(value(again, 'a'), '1');
  assert.equal(value(again, 'b'), '2');
  assert.equal(again.incarnation, node.incarnation + 1, 'each start is a new incarnation');
});

test('snapshots compact the WAL and a restart recovers from snapshot plus WAL', () => {
  const r = rig();
  const node = start(r, 5);
  runFor(r, 1000);
  for (let i = 0; i < 30; i++) put(node, `k${i % 7}`, `v${i}`);
  runFor(r, 500);
  const status = node.status();
  assert.ok(status.snapshotIndex >= 25, `snapshot index ${status.snapshotIndex} follows the applied index`);
  assert.ok(
    r.disk.list().some((f) => f.startsWith('snap-')),
    'a snapshot file exists',
  );
  node.stop();
  const again = start(r, 5);
  runFor(r, 1000);
  for (let i = 23; i < 30; i++) assert.equal(value(again, `k${i % 7}`), `v${i}`);
});

test('a corrupt WAL puts the node in repair mode: it discards the log and never campaigns', () => {
  const r = rig();
  const node = start(r);
  runFor(r, 1000);
  for (let i = 0; i < 5; i++) {
    put(node, 'x', `${i}`);
    runFor(r, 50); // separate batches, so damage in an early one is not a torn tail
  }
  node.stop();
  const files = r.disk.snapshot();
  const walName = [...files.keys()].find((f) => f.startsWith('wal-'));
  assert.ok(walName !== undefined);
  const bytes = files.get(walName)!;
  bytes[40] = (bytes[40] ?? 0) ^ 0xff; // inside the first record
  r.disk = newDisk(r.scheduler, files);
  const repaired = start(r);
  runFor(r, 3000);
  const st = repaired.status();
  assert.equal(st.repairing, true);
  assert.notEqual(st.role, 'leader', 'a repairing node must not lead (it may lack acknowledged entries)');
  assert.ok(
    r.traces.some((t) => t.startsWith('repair-start')),
    'the repair is traced',
  );
  assert.ok(!r.disk.list().includes(walName), 'the corrupt segment was removed');
  // The repair flag is durable: a restart still repairs.
  repaired.stop();
  const again = start(r);
  runFor(r, 100);
  assert.equal(again.status().repairing, true);
});

test('a failed discard of a corrupt WAL fail-stops the node, so its environment restarts it', () => {
  // Simulator seed 1099257315: the directory fsync after removing the corrupt segment failed; the
  // shell only stopped itself, the process neither ran nor counted as crashed, and nothing ever
  // restarted it. The failure must end the incarnation like any other storage failure.
  const r = rig();
  const node = start(r);
  runFor(r, 1000);
  for (let i = 0; i < 5; i++) {
    put(node, 'x', `${i}`);
    runFor(r, 50);
  }
  node.stop();
  const files = r.disk.snapshot();
  const walName = [...files.keys()].find((f) => f.startsWith('wal-'));
  assert.ok(walName !== undefined);
  const bytes = files.get(walName)!;
  bytes[40] = (bytes[40] ?? 0) ^ 0xff; // mid-log corruption: the WAL is discarded at start
  let removed = false;
  const disk = newDisk(r.scheduler, files);
  const remove = disk.remove.bind(disk);
  const syncDir = disk.syncDir.bind(disk);
  disk.remove = (name, done) => {
    removed = true;
    remove(name, done);
  };
  disk.syncDir = (done) => {
    if (!removed) syncDir(done);
    else
      r.scheduler.after(msToUs(0.1), () => {
        done(new Error('EIO: i/o error on fsync of the directory'));
      });
  };
  r.disk = disk;
  r.traces.length = 0;
  let startError: Error | null = null;
  const stateMachine = new KvStateMachine();
  const repairing = new RaftNode(env(r, r.disk), {
    tickMs: 10,
    bootstrap: { voters: [[ONE, 1]], outgoing: [], learners: [], learnersNext: [], autoLeave: false },
    stateMachine,
    snapshotEntries: 1000,
    snapshotCatchUpEntries: 2,
    requestTimeoutTicks: 500,
  });
  repairing.start((e) => {
    startError = e;
  });
  runFor(r, 100);
  assert.ok(removed, 'the corrupt segment was removed before the directory sync');
  assert.match(String((startError as Error | null)?.message), /discarding the corrupt WAL failed/);
  assert.ok(
    r.traces.some((t) => t.startsWith('fail-stop storage failure: fsync of the directory failed')),
    `the node fail-stops: ${r.traces.join('\n')}`,
  );
  assert.ok(!r.traces.some((t) => t.startsWith('node-start')), 'the node never runs');
});

test('a complete record failing its checksum at the WAL tail is treated as possible loss', () => {
  const r = rig();
  const node = start(r);
  runFor(r, 1000);
  put(node, 'x', 'a-value-long-enough');
  runFor(r, 100);
  node.stop();
  const files = r.disk.snapshot();
  const walName = [...files.keys()].find((f) => f.startsWith('wal-'))!;
  const bytes = files.get(walName)!;
  bytes[bytes.length - 3] = (bytes[bytes.length - 3] ?? 0) ^ 0x01; // a flip in the last, synced record
  r.disk = newDisk(r.scheduler, files);
  const again = start(r);
  runFor(r, 100);
  assert.equal(again.status().repairing, true);
});

test('a damaged stable state with no WAL copy of the term refuses to start with a clear error', () => {
  const r = rig();
  const node = start(r);
  runFor(r, 100);
  node.stop();
  const files = new Map([...r.disk.snapshot()].filter(([name]) => !name.startsWith('wal-')));
  const stable = files.get('stable-state')!;
  stable[10] = (stable[10] ?? 0) ^ 0xff;
  r.disk = newDisk(r.scheduler, files);
  assert.throws(
    () => start(r),
    (e: unknown) =>
      e instanceof RecoveryError && e.code === 'RECOVERY_IMPOSSIBLE' && /Wipe its data directory/.test(e.message),
  );
});

test('a damaged stable state recovered from the WAL starts in repair mode (its repair flag may be lost with it)', () => {
  const r = rig();
  const node = start(r);
  runFor(r, 1000);
  put(node, 'x', 'v');
  runFor(r, 100);
  node.stop();
  const files = r.disk.snapshot();
  const stable = files.get('stable-state')!;
  stable[10] = (stable[10] ?? 0) ^ 0xff;
  r.disk = newDisk(r.scheduler, files);
  const again = start(r);
  assert.equal(
    again.status().repairing,
    true,
    'the term and vote come from the WAL, but the node does not know whether it was repairing',
  );
});

test('a restarted node knows the commit of every configuration change it applied (HARD records carry it)', () => {
  const r = rig();
  const node = start(r);
  runFor(r, 1000);
  assert.equal(node.status().role, 'leader');
  const done: boolean[] = [];
  node.proposeConfChange({ changes: [{ type: 'add-learner', node: nodeId(2) }], autoLeave: false }, (res) =>
    done.push(res.ok),
  );
  runFor(r, 200);
  assert.deepEqual(done, [true]);
  const confIndex = node.status().applied;
  node.stop();
  const again = start(r);
  // Before any message or tick: the commit index comes from the WAL, not from the snapshot (none).
  assert.ok(
    again.status().commit >= confIndex,
    `restart commit ${again.status().commit} covers the applied change at ${confIndex}`,
  );
  runFor(r, 5); // long enough to re-apply the committed entries, far shorter than an election timeout
  assert.equal(again.status().role, 'follower');
  assert.equal(again.status().config, 'voters=(1) learners=(2)');
});

test('HARD records round-trip with the commit index; the older 12-byte form reads as commit 0', () => {
  const hard = decodeHardRecord(encodeHardRecord(toTerm(7), ONE, logIndex(42)));
  assert.deepEqual(hard, { term: 7, vote: ONE, commit: 42 });
  const old = new ByteWriter(16).u64(5).u32(0).finish().slice();
  assert.deepEqual(decodeHardRecord(old), { term: 5, vote: null, commit: 0 });
  assert.throws(() => decodeHardRecord(new Uint8Array(13)), /HARD record has 20 bytes/);
});

test('a late tick timer catches up the missed ticks (capped), so leases and timeouts follow real time', () => {
  const r = rig();
  const held: (() => void)[] = [];
  let paused = false;
  const base = env(r, r.disk);
  const node = new RaftNode(
    {
      ...base,
      timers: {
        after: (ms, fn) =>
          r.scheduler.after(msToUs(ms), () => {
            if (paused) held.push(fn);
            else fn();
          }),
      },
    },
    {
      tickMs: 10,
      bootstrap: { voters: [[ONE, 1]], outgoing: [], learners: [], learnersNext: [], autoLeave: false },
      stateMachine: new KvStateMachine(),
      snapshotEntries: 1000,
      snapshotCatchUpEntries: 2,
      requestTimeoutTicks: 500,
    },
  );
  node.start();
  runFor(r, 500);
  assert.ok(!r.traces.some((t) => t.startsWith('tick-catch-up')), 'no catch-up while timers are on time');
  paused = true;
  runFor(r, 2000); // a 2 s stall: 200 ticks missed
  paused = false;
  for (const fn of held.splice(0)) fn();
  const catchUp = r.traces.filter((t) => t.startsWith('tick-catch-up'));
  assert.equal(catchUp.length, 1);
  assert.match(catchUp[0] ?? '', /"ticks":40\b/, 'capped at four election timeouts (10 ticks each)');
});
