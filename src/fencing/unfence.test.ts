// Proves the unfence rule and its driver keep their contract. The rule: only `exec` devices with
// `unfence: true`, in a level, that can fence the node, in level order, each once; nothing
// without a finished record, while a fence is pending, before a newer incarnation is a member,
// for the executor's own node, or once every device has an `ok` (in the record or committed by
// this executor); up to 1 + retries tries per device, counted as the larger of the record's
// failed entries and this executor's tries, FENCE_RETRY_DELAY_MS apart; then the next device,
// and `gave-up` naming the exhausted ones. The driver (a scripted runner): runs `on` with the
// plug on stdin and proposes the result, one run per node at a time, nothing before
// `notBeforeMs`; retries after a failure and gives up once, with the observer told; holds a
// fence of the node while `on` runs; kills the run when the node is fenced again and on
// `stopAll`, dropping a killed run's result after `stopAll`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { incarnation, logIndex, nodeId, type Incarnation, type NodeId } from '../lib/ids.js';
import { FENCE_RETRY_DELAY_MS } from '../constants.js';
import { NO_OUTPUT, type ProcessResult, type ProcessSpec } from '../runtime/process-runner.js';
import type { FenceUnfence } from './fence-attempt.js';
import type { FenceRecord } from './fence-ledger.js';
import type { ExecDevice, FenceDevice, FenceTopology } from './fence-topology.js';
import {
  Unfencer,
  nextUnfenceStep,
  unfenceDevices,
  type UnfenceInput,
  type UnfenceRun,
  type UnfenceTries,
} from './unfence.js';

const T0 = 1_700_000_000_000;
const SELF = nodeId(1);
const TARGET = { id: nodeId(3), name: 'node-3' };

function exec(name: string, unfence: boolean, retries = 0, hosts?: Record<string, string>): ExecDevice {
  return {
    name,
    agent: 'exec',
    program: '/usr/sbin/fence_dummy',
    action: 'off',
    options: new Map([['status_file', '/run/x']]),
    unfence,
    timeoutMs: 5000,
    retries,
    ...(hosts === undefined ? {} : { hosts: new Map(Object.entries(hosts)) }),
  };
}

function topology(levels: FenceDevice[][], extra: FenceDevice[] = []): FenceTopology {
  const devices = new Map<string, FenceDevice>();
  for (const d of [...levels.flat(), ...extra]) devices.set(d.name, d);
  return { devices, levels: levels.map((l) => ({ devices: l.map((d) => d.name) })), fenceDelayMs: new Map() };
}

function record(node: NodeId, inc: number, unfence: FenceUnfence[] = [], fenced = true): FenceRecord {
  return {
    node,
    incarnation: incarnation(inc),
    request: { reason: 'timeout', index: logIndex(5) },
    attempts: [],
    attemptsDropped: 0,
    round: 1,
    outcome: fenced
      ? { state: 'fenced', proof: { by: 'agent', level: 1, device: 'scsi', atMs: T0 }, index: logIndex(6) }
      : { state: 'pending' },
    unfence,
  };
}

const failed = (device: string, atMs = T0): FenceUnfence => ({ device, result: 'failed', atMs });
const okEntry = (device: string, atMs = T0): FenceUnfence => ({ device, result: 'ok', atMs });

const SCSI = exec('scsi', true, 1);
const T1 = topology([[SCSI]]);

function input(over: Partial<UnfenceInput> = {}): UnfenceInput {
  return {
    topology: T1,
    self: SELF,
    target: TARGET,
    record: record(TARGET.id, 2),
    fencePending: false,
    memberIncarnation: 4,
    tries: new Map(),
    nowMs: T0,
    ...over,
  };
}

test('unfence devices: exec devices with unfence in some level that can fence the node, in level order, once', () => {
  const power = exec('ipmi', false);
  const scsi = exec('scsi', true);
  const other = exec('mpath-a', true, 0, { 'node-2': 'key2' });
  const mapped = exec('mpath-b', true, 0, { 'node-3': 'key3' });
  const kill: FenceDevice = {
    name: 'kill',
    agent: 'process',
    pidFiles: new Map([['node-3', '/p']]),
    timeoutMs: 1,
    retries: 0,
  };
  const unused = exec('spare', true);
  const t = topology(
    [
      [power, scsi],
      [other, mapped],
      [kill, scsi],
    ],
    [unused],
  );
  assert.deepEqual(
    unfenceDevices(t, 'node-3').map((d) => d.name),
    ['scsi', 'mpath-b'],
  );
  assert.deepEqual(
    unfenceDevices(t, 'node-2').map((d) => d.name),
    ['scsi', 'mpath-a'],
  );
  assert.deepEqual(unfenceDevices(topology([[power, kill]]), 'node-3'), []);
  const step = nextUnfenceStep(input({ topology: t }));
  assert.deepEqual(step, { kind: 'run', device: 'scsi', plug: 'node-3', attemptNo: 1, tries: 1 });
  const next = nextUnfenceStep(input({ topology: t, record: record(TARGET.id, 2, [okEntry('scsi')]) }));
  assert.deepEqual(next, { kind: 'run', device: 'mpath-b', plug: 'key3', attemptNo: 1, tries: 1 }, 'the hosts plug');
});

test('unfence when: a finished record, no pending fence, a newer incarnation a member, not the own node', () => {
  assert.deepEqual(nextUnfenceStep(input({ record: null })), { kind: 'idle', why: 'no-record' });
  assert.deepEqual(nextUnfenceStep(input({ record: record(TARGET.id, 2, [], false) })), {
    kind: 'idle',
    why: 'no-record',
  });
  assert.deepEqual(nextUnfenceStep(input({ fencePending: true })), { kind: 'idle', why: 'fence-pending' });
  assert.deepEqual(nextUnfenceStep(input({ memberIncarnation: null })), { kind: 'idle', why: 'not-rejoined' });
  assert.deepEqual(nextUnfenceStep(input({ memberIncarnation: 2 })), { kind: 'idle', why: 'not-rejoined' });
  assert.deepEqual(nextUnfenceStep(input({ memberIncarnation: 1 })), { kind: 'idle', why: 'not-rejoined' });
  assert.deepEqual(nextUnfenceStep(input({ self: TARGET.id })), { kind: 'idle', why: 'own-node' });
  assert.deepEqual(nextUnfenceStep(input({ topology: topology([[exec('ipmi', false)]]) })), {
    kind: 'idle',
    why: 'no-unfence-device',
  });
  assert.deepEqual(nextUnfenceStep(input({ memberIncarnation: 3 })), {
    kind: 'run',
    device: 'scsi',
    plug: 'node-3',
    attemptNo: 1,
    tries: 2,
  });
});

test('already ok: in the record, or committed by this executor, means nothing to run', () => {
  assert.deepEqual(nextUnfenceStep(input({ record: record(TARGET.id, 2, [failed('scsi'), okEntry('scsi')]) })), {
    kind: 'idle',
    why: 'done',
  });
  const mine = new Map<string, UnfenceTries>([['scsi', { count: 1, lastEndMs: T0, ok: true }]]);
  assert.deepEqual(nextUnfenceStep(input({ tries: mine })), { kind: 'idle', why: 'done' });
  // An ok of another device does not count for this one.
  assert.equal(nextUnfenceStep(input({ record: record(TARGET.id, 2, [okEntry('mpath')]) })).kind, 'run');
});

test('retries: 1 + retries tries, FENCE_RETRY_DELAY_MS apart, then the next device, then gave-up', () => {
  const mpath = exec('mpath', true, 0);
  const t = topology([[SCSI], [mpath]]);
  const one = new Map<string, UnfenceTries>([['scsi', { count: 1, lastEndMs: T0 + 100, ok: false }]]);
  const afterOne = record(TARGET.id, 2, [failed('scsi')]);
  assert.deepEqual(nextUnfenceStep(input({ topology: t, record: afterOne, tries: one, nowMs: T0 + 200 })), {
    kind: 'wait',
    device: 'scsi',
    untilMs: T0 + 100 + FENCE_RETRY_DELAY_MS,
  });
  assert.deepEqual(
    nextUnfenceStep(input({ topology: t, record: afterOne, tries: one, nowMs: T0 + 100 + FENCE_RETRY_DELAY_MS })),
    { kind: 'run', device: 'scsi', plug: 'node-3', attemptNo: 2, tries: 2 },
  );
  // Failures recorded by an earlier leader count, with no delay on this executor's clock.
  assert.deepEqual(nextUnfenceStep(input({ topology: t, record: afterOne })), {
    kind: 'run',
    device: 'scsi',
    plug: 'node-3',
    attemptNo: 2,
    tries: 2,
  });
  const twice = record(TARGET.id, 2, [failed('scsi'), failed('scsi')]);
  assert.deepEqual(nextUnfenceStep(input({ topology: t, record: twice })), {
    kind: 'run',
    device: 'mpath',
    plug: 'node-3',
    attemptNo: 1,
    tries: 1,
  });
  assert.deepEqual(
    nextUnfenceStep(input({ topology: t, record: record(TARGET.id, 2, [...twice.unfence, failed('mpath')]) })),
    {
      kind: 'gave-up',
      devices: ['scsi', 'mpath'],
    },
  );
  // The record kept fewer entries than this executor made (dropped): its own count still stops it.
  const dropped = new Map<string, UnfenceTries>([['scsi', { count: 2, lastEndMs: T0, ok: false }]]);
  assert.deepEqual(nextUnfenceStep(input({ tries: dropped, nowMs: T0 + 10 * FENCE_RETRY_DELAY_MS })), {
    kind: 'gave-up',
    devices: ['scsi'],
  });
  // One device given up, another ok: gave-up names the one.
  const mixed = record(TARGET.id, 2, [failed('scsi'), failed('scsi'), okEntry('mpath')]);
  assert.deepEqual(nextUnfenceStep(input({ topology: t, record: mixed })), { kind: 'gave-up', devices: ['scsi'] });
});

// ------------------------------------------------------------------------------------------------
// The driver, with a scripted runner

interface Spawned {
  readonly spec: ProcessSpec;
  readonly done: (r: ProcessResult) => void;
  killed: boolean;
}

class Rig {
  now = T0;
  history: FenceRecord[] = [record(TARGET.id, 2)];
  pending = false;
  member: number | null = 4;
  readonly spawned: Spawned[] = [];
  readonly proposed: { node: NodeId; incarnation: Incarnation; entry: FenceUnfence; done: (a: boolean) => void }[] = [];
  readonly runs: UnfenceRun[] = [];
  readonly gaveUp: string[][] = [];
  readonly unfencer: Unfencer;

  constructor(t: FenceTopology = T1) {
    this.unfencer = new Unfencer({
      topology: t,
      processes: () => ({
        running: 0,
        spawn: (spec, done) => {
          const s: Spawned = { spec, done, killed: false };
          this.spawned.push(s);
          return {
            kill: () => {
              s.killed = true;
            },
          };
        },
      }),
      observer: {
        onUnfence: (_n, _i, run) => this.runs.push(run),
        onUnfenceGaveUp: (_n, _i, devices) => this.gaveUp.push([...devices]),
      },
      self: () => SELF,
      nameOf: (n) => `node-${n}`,
      wallMs: () => this.now,
      history: () => this.history,
      fencePending: () => this.pending,
      memberIncarnation: () => this.member,
      propose: (node, inc, entry, done) => this.proposed.push({ node, incarnation: inc, entry, done }),
      trace: () => undefined,
    });
  }

  /** Ends the newest run with `exitCode` and commits its proposal (appending the entry to the record). */
  finish(exitCode: number): void {
    const s = this.spawned.at(-1);
    assert.ok(s !== undefined);
    s.done({ kind: 'exited', exitCode, output: NO_OUTPUT, durationMs: 30 });
    const p = this.proposed.at(-1);
    assert.ok(p !== undefined);
    const rec = this.history[0];
    assert.ok(rec !== undefined);
    this.history = [{ ...rec, unfence: [...rec.unfence, p.entry] }];
    p.done(true);
  }
}

const stdinOf = (s: Spawned | undefined): string => new TextDecoder().decode(s?.spec.stdin);

test('driver: runs on with the plug, one at a time, not before notBeforeMs; proposes the result; then nothing', () => {
  const rig = new Rig();
  rig.unfencer.drive(T0 + 1);
  assert.equal(rig.spawned.length, 0, 'nothing before notBeforeMs');
  rig.unfencer.drive(T0);
  rig.unfencer.drive(T0);
  assert.equal(rig.spawned.length, 1, 'one run at a time');
  assert.match(stdinOf(rig.spawned[0]), /^action=on\nplug=node-3\nnodename=node-3\nstatus_file=\/run\/x\n$/);
  assert.equal(rig.unfencer.holdsFence(TARGET.id, T0), true, 'a fence waits while on runs');
  rig.now += 50;
  rig.finish(0);
  assert.deepEqual(rig.proposed.at(0)?.entry, { device: 'scsi', result: 'ok', atMs: T0 });
  assert.equal(rig.proposed.at(0)?.incarnation, 2, 'the entry goes to the fenced incarnation record');
  assert.equal(rig.runs.at(0)?.attemptNo, 1);
  assert.equal(rig.unfencer.holdsFence(TARGET.id, T0), false);
  rig.now += 10 * FENCE_RETRY_DELAY_MS;
  rig.unfencer.drive(T0);
  assert.equal(rig.spawned.length, 1, 'ok: nothing more');
  // The node is fenced again and joins again: the newer record is unfenced afresh.
  rig.history = [record(TARGET.id, 4), ...rig.history];
  rig.member = 5;
  rig.unfencer.drive(T0);
  assert.equal(rig.spawned.length, 2);
});

test('driver: a failure is retried after the delay, then given up once; the observer hears each', () => {
  const rig = new Rig();
  rig.unfencer.drive(T0);
  rig.finish(1);
  rig.unfencer.drive(T0);
  assert.equal(rig.spawned.length, 1, 'the retry delay');
  rig.now += FENCE_RETRY_DELAY_MS;
  rig.unfencer.drive(T0);
  assert.equal(rig.spawned.length, 2);
  rig.finish(1);
  rig.now += 10 * FENCE_RETRY_DELAY_MS;
  rig.unfencer.drive(T0);
  rig.unfencer.drive(T0);
  assert.equal(rig.spawned.length, 2, '1 + retries tries');
  assert.deepEqual(
    rig.runs.map((r) => `${r.device}#${r.attemptNo}/${r.tries}:${r.result}:${r.exitCode}`),
    ['scsi#1/2:failed:1', 'scsi#2/2:failed:1'],
  );
  assert.deepEqual(rig.gaveUp, [['scsi']], 'given up once');
});

test('driver: the own node, an equal incarnation, a pending fence run nothing; a new fence kills the run', () => {
  const own = new Rig();
  own.history = [record(SELF, 2)];
  own.unfencer.drive(T0);
  assert.equal(own.spawned.length, 0, 'never against the own node');
  const same = new Rig();
  same.member = 2;
  same.unfencer.drive(T0);
  assert.equal(same.spawned.length, 0, 'the fenced incarnation is no new join');
  const rig = new Rig();
  rig.unfencer.drive(T0);
  rig.pending = true;
  rig.member = null;
  rig.unfencer.drive(T0);
  assert.equal(rig.spawned.at(0)?.killed, true, 'fenced again while on runs: killed');
  assert.equal(rig.unfencer.holdsFence(TARGET.id, T0), true, 'the fence waits until the run ended');
  rig.spawned.at(0)?.done({ kind: 'signalled', signal: 'SIGTERM', output: NO_OUTPUT, durationMs: 5 });
  assert.equal(rig.unfencer.holdsFence(TARGET.id, T0), false);
  assert.equal(rig.proposed.at(0)?.entry.result, 'error', 'the killed run is recorded as an error');
  rig.proposed.at(0)?.done(true);
  rig.now += 10 * FENCE_RETRY_DELAY_MS;
  rig.unfencer.drive(T0);
  assert.equal(rig.spawned.length, 1, 'nothing while the fence is pending');
});

test('driver: stopAll kills the run and drops its result; before notBeforeMs a due unfence holds the fence', () => {
  const rig = new Rig();
  rig.unfencer.drive(T0);
  rig.unfencer.stopAll();
  assert.equal(rig.spawned.at(0)?.killed, true);
  // Leading again before the killed run ended: nothing new runs, a fence of the node waits.
  rig.unfencer.drive(T0);
  assert.equal(rig.spawned.length, 1, 'the killed run has not ended yet');
  assert.equal(rig.unfencer.holdsFence(TARGET.id, T0), true);
  rig.unfencer.stopAll();
  rig.spawned.at(0)?.done({ kind: 'signalled', signal: 'SIGTERM', output: NO_OUTPUT, durationMs: 5 });
  assert.equal(rig.proposed.length, 0, 'a deposed executor proposes nothing');
  // A new leadership: until notBeforeMs an earlier leader's `on` may still run.
  assert.equal(rig.unfencer.holdsFence(TARGET.id, T0 + 1), true);
  assert.equal(rig.unfencer.holdsFence(TARGET.id, T0), false);
  rig.member = null;
  assert.equal(rig.unfencer.holdsFence(TARGET.id, T0 + 1), false, 'nothing was due');
});
