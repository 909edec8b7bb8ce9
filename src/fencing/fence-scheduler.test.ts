// Proves the fence scheduler keeps its contract. Examples: the empty topology and a topology that
// cannot reach the target wait for a confirmation; levels run in order and the devices of one
// level one after another; hosts exclusion skips a device; the per-node delay, the retry delay
// and the watchdog wait are waited out; exhaustion backs off, doubling up to the cap, and then
// starts the next round; a manual device stops the walk. Properties, on random topologies with
// random agent results (an executor following the scheduler) and on random attempt histories:
// a device of level L+1 never runs before level L failed in the round, no device is tried more
// than 1 + retries times per round, a device runs only after the devices before it in its level
// are ok, and `succeeded` names a level all of whose devices are ok in the round. `endedThrough`
// counts only a level of program devices all ok in one round, and takes its lowest `covers`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { nodeId, type NodeId } from '../lib/ids.js';
import { FENCE_RETRY_DELAY_MS, FENCE_ROUND_BACKOFF_MS, FENCE_ROUND_BACKOFF_MS_MAX } from '../constants.js';
import type { FenceAttempt } from './fence-attempt.js';
import type { AttemptOutcome } from './fence-agent.js';
import {
  endedThrough,
  fenceActionOf,
  nextFenceStep,
  roundBackoffMs,
  type FenceSchedulerInput,
  type FenceStep,
} from './fence-scheduler.js';
import {
  MANUAL_ONLY_TOPOLOGY,
  plugFor,
  type FenceAgentKind,
  type FenceDevice,
  type FenceTopology,
} from './fence-topology.js';

const TARGET = { id: nodeId(3), name: 'node-3' };
const T0 = 1_700_000_000_000;
const LEASE_MS = 3000;

function device(name: string, agent: FenceAgentKind, retries = 0, hosts?: string[]): FenceDevice {
  const base = {
    name,
    timeoutMs: 10_000,
    retries,
    ...(hosts === undefined ? {} : { hosts: new Map(hosts.map((h) => [h, `plug-${h}`])) }),
  };
  switch (agent) {
    case 'exec':
      return { ...base, agent, program: '/usr/sbin/fence_dummy', action: 'reboot', options: new Map(), unfence: false };
    case 'process':
      // A process device fences only the nodes it has a pid file for: give it the hosts' (or every test node's).
      return {
        ...base,
        agent,
        pidFiles: new Map((hosts ?? ['node-1', 'node-2', 'node-3']).map((h) => [h, `/run/${h}.pid`])),
      };
    case 'watchdog':
      return { ...base, agent };
    case 'manual':
      return { ...base, agent };
  }
}

function topology(levels: FenceDevice[][], delays: [NodeId, number][] = []): FenceTopology {
  const devices = new Map<string, FenceDevice>();
  for (const l of levels) for (const d of l) devices.set(d.name, d);
  return { devices, levels: levels.map((l) => ({ devices: l.map((d) => d.name) })), fenceDelayMs: new Map(delays) };
}

function input(t: FenceTopology, attempts: FenceAttempt[] = [], nowMs = T0, over: Partial<FenceSchedulerInput> = {}) {
  const round = Math.max(1, ...attempts.map((a) => a.round));
  return { topology: t, target: TARGET, attempts, round, nowMs, beganAtMs: T0, watchdogWaitMs: LEASE_MS, ...over };
}

/** The attempt an executor records after running `step`. */
function recorded(step: FenceStep, result: AttemptOutcome, atMs: number, durationMs = 100): FenceAttempt {
  assert.ok(step.kind === 'run');
  return {
    executor: nodeId(1),
    level: step.level,
    device: step.device,
    agent: step.agent,
    action: step.action,
    result,
    durationMs,
    excerpt: '',
    atMs,
    round: step.round,
  };
}

test('with no levels, or no device able to fence the target, only a confirmation closes the record', () => {
  assert.deepEqual(nextFenceStep(input(MANUAL_ONLY_TOPOLOGY)), { kind: 'manual', why: 'no-levels' });
  const elsewhere = topology([[device('ipmi-1', 'exec', 0, ['node-1'])]]);
  assert.deepEqual(nextFenceStep(input(elsewhere)), { kind: 'manual', why: 'no-device-for-target' });
  const manual = topology([[device('ops', 'manual')], [device('ipmi', 'exec')]]);
  assert.deepEqual(nextFenceStep(input(manual)), { kind: 'manual', why: 'manual-device', level: 1, device: 'ops' });
});

test('levels run in order, the devices of a level one after another, skipping those that cannot reach the target', () => {
  const t = topology([
    [device('ipmi', 'exec', 1)],
    [device('pdu-a', 'exec', 0), device('pdu-x', 'exec', 0, ['node-1']), device('pdu-b', 'process', 0)],
  ]);
  const attempts: FenceAttempt[] = [];
  let now = T0;
  const steps: string[] = [];
  const results: AttemptOutcome[] = ['failed', 'timed-out', 'ok', 'ok'];
  for (const result of results) {
    let step = nextFenceStep(input(t, attempts, now));
    if (step.kind === 'wait') {
      now = step.untilMs;
      step = nextFenceStep(input(t, attempts, now));
    }
    assert.ok(step.kind === 'run', JSON.stringify(step));
    steps.push(`${step.level}:${step.device}#${step.attemptNo} ${step.action} ${step.plug}`);
    attempts.push(recorded(step, result, now));
    now += 100;
  }
  assert.deepEqual(steps, [
    '1:ipmi#1 reboot node-3',
    '1:ipmi#2 reboot node-3',
    '2:pdu-a#1 reboot node-3',
    '2:pdu-b#1 off node-3',
  ]);
  assert.deepEqual(nextFenceStep(input(t, attempts, now)), {
    kind: 'succeeded',
    round: 1,
    level: 2,
    device: 'pdu-b',
    by: 'agent',
  });
});

test('the per-node delay, the retry delay and the watchdog wait are waited out', () => {
  const t = topology([[device('ipmi', 'exec', 1)], [device('wd', 'watchdog')]], [[TARGET.id, 5000]]);
  assert.deepEqual(nextFenceStep(input(t)), { kind: 'wait', untilMs: T0 + 5000, why: 'fence-delay' });
  const first = nextFenceStep(input(t, [], T0 + 5000));
  const a1 = recorded(first, 'failed', T0 + 5000, 700);
  assert.deepEqual(nextFenceStep(input(t, [a1], T0 + 5700)), {
    kind: 'wait',
    untilMs: T0 + 5700 + FENCE_RETRY_DELAY_MS,
    why: 'retry-delay',
  });
  const second = nextFenceStep(input(t, [a1], T0 + 5700 + FENCE_RETRY_DELAY_MS));
  assert.ok(second.kind === 'run' && second.attemptNo === 2);
  const a2 = recorded(second, 'error', T0 + 6800, 0);
  // The watchdog's own wait (lease + drift from when the executor began) has passed by now.
  const wd = nextFenceStep(input(t, [a1, a2], T0 + 6800));
  assert.ok(wd.kind === 'run' && wd.device === 'wd' && wd.level === 2);
  const a3 = recorded(wd, 'ok', T0 + 6800, 0);
  assert.deepEqual(nextFenceStep(input(t, [a1, a2, a3], T0 + 6800)), {
    kind: 'succeeded',
    round: 1,
    level: 2,
    device: 'wd',
    by: 'watchdog',
  });
  // Without the delay, the watchdog waits for the lease counted from when the executor began.
  const only = topology([[device('wd', 'watchdog')]]);
  assert.deepEqual(nextFenceStep(input(only, [], T0 + 10, { beganAtMs: T0 })), {
    kind: 'wait',
    untilMs: T0 + LEASE_MS,
    why: 'watchdog',
  });
});

test('exhaustion backs off, doubling up to the cap, then the next round starts from level 1', () => {
  assert.equal(roundBackoffMs(1), FENCE_ROUND_BACKOFF_MS);
  assert.equal(roundBackoffMs(2), 2 * FENCE_ROUND_BACKOFF_MS);
  assert.equal(roundBackoffMs(1000), FENCE_ROUND_BACKOFF_MS_MAX);
  const t = topology([[device('ipmi', 'exec')], [device('pdu', 'exec')]]);
  const attempts: FenceAttempt[] = [];
  let now = T0;
  for (let round = 1; round <= 6; round++) {
    for (const dev of ['ipmi', 'pdu']) {
      const step = nextFenceStep(input(t, attempts, now));
      assert.ok(step.kind === 'run' && step.device === dev && step.round === round, JSON.stringify(step));
      attempts.push(recorded(step, 'failed', now, 50));
      now += 50;
    }
    const ex = nextFenceStep(input(t, attempts, now));
    assert.deepEqual(ex, { kind: 'exhausted', round, nextRoundAtMs: now + roundBackoffMs(round) });
    assert.equal(nextFenceStep(input(t, attempts, ex.nextRoundAtMs - 1)).kind, 'exhausted');
    now = ex.nextRoundAtMs;
  }
});

test('a manual device after automatic ones in a level waits for a confirmation once they are ok', () => {
  const t = topology([[device('pdu', 'exec'), device('ops', 'manual')], [device('ipmi', 'exec')]]);
  const s1 = nextFenceStep(input(t));
  assert.ok(s1.kind === 'run' && s1.device === 'pdu');
  assert.deepEqual(nextFenceStep(input(t, [recorded(s1, 'ok', T0)], T0 + 100)), {
    kind: 'manual',
    why: 'manual-device',
    level: 1,
    device: 'ops',
  });
  // If the automatic part fails, the level failed: the next level runs.
  const s2 = nextFenceStep(input(t, [recorded(s1, 'failed', T0)], T0 + 100));
  assert.ok(s2.kind === 'run' && s2.device === 'ipmi' && s2.level === 2);
});

// ------------------------------------------------------------------------------------------------
// Properties

const NAMES = ['node-1', 'node-2', 'node-3'];
const arbDevice = (name: string): fc.Arbitrary<FenceDevice> =>
  fc
    .record({
      agent: fc.constantFrom<FenceAgentKind>('exec', 'exec', 'process', 'watchdog', 'manual'),
      retries: fc.integer({ min: 0, max: 2 }),
      hosts: fc.option(fc.subarray(NAMES), { nil: undefined }),
    })
    .map(({ agent, retries, hosts }) => device(name, agent, retries, hosts));
const arbTopology: fc.Arbitrary<FenceTopology> = fc
  .array(fc.integer({ min: 1, max: 3 }), { minLength: 0, maxLength: 4 })
  .chain((sizes) => {
    let k = 0;
    const levels = sizes.map((size) => Array.from({ length: size }, () => `d${k++}`));
    return fc.tuple(...levels.map((l) => fc.tuple(...l.map(arbDevice)))).map((ls) => ls.map((l) => [...l]));
  })
  .chain((levels) =>
    fc.integer({ min: 0, max: 3000 }).map((delay) => topology(levels, delay === 0 ? [] : [[TARGET.id, delay]])),
  );

interface Count {
  tries: number;
  ok: boolean;
}

function counts(attempts: readonly FenceAttempt[], round: number): Map<string, Count> {
  const out = new Map<string, Count>();
  for (const a of attempts) {
    if (a.round !== round) continue;
    const c = out.get(`${a.level}/${a.device}`) ?? { tries: 0, ok: false };
    out.set(`${a.level}/${a.device}`, { tries: c.tries + 1, ok: c.ok || a.result === 'ok' });
  }
  return out;
}

/** The devices of level `level` (from 1) able to fence the target. */
function able(t: FenceTopology, level: number): FenceDevice[] {
  return (t.levels[level - 1]?.devices ?? []).flatMap((n) => {
    const d = t.devices.get(n);
    return d !== undefined && plugFor(d, TARGET.name) !== null ? [d] : [];
  });
}

/** Checks one answer against the properties; returns nothing, asserts. */
function checkStep(t: FenceTopology, inp: FenceSchedulerInput, step: FenceStep): void {
  const c = (round: number, level: number, d: FenceDevice): Count =>
    counts(inp.attempts, round).get(`${level}/${d.name}`) ?? { tries: 0, ok: false };
  switch (step.kind) {
    case 'run': {
      assert.ok(step.round === inp.round || step.round === inp.round + 1);
      const devices = able(t, step.level);
      const d = devices.find((x) => x.name === step.device);
      assert.ok(d !== undefined && d.agent !== 'manual', 'only an able automatic device runs');
      assert.ok(c(step.round, step.level, d).tries < 1 + d.retries, 'never more than 1 + retries tries');
      assert.equal(step.attemptNo, c(step.round, step.level, d).tries + 1);
      for (const before of devices.slice(0, devices.indexOf(d)))
        assert.ok(c(step.round, step.level, before).ok, 'the devices before it in its level are ok');
      for (let j = 1; j < step.level; j++) {
        const prior = able(t, j);
        const failed =
          prior.length === 0 ||
          prior.some(
            (x) => x.agent !== 'manual' && !c(step.round, j, x).ok && c(step.round, j, x).tries >= 1 + x.retries,
          );
        assert.ok(failed, `level ${j} failed in round ${step.round} before level ${step.level} runs`);
      }
      const delay = t.fenceDelayMs.get(TARGET.id) ?? 0;
      assert.ok(inp.nowMs >= inp.beganAtMs + delay, 'not before the per-node delay');
      if (d.agent === 'watchdog') assert.ok(inp.nowMs >= inp.beganAtMs + inp.watchdogWaitMs, 'not before the lease');
      return;
    }
    case 'succeeded': {
      const devices = able(t, step.level);
      assert.ok(devices.length > 0, 'an empty level never succeeds');
      for (const d of devices)
        assert.ok(d.agent !== 'manual' && c(step.round, step.level, d).ok, 'all ok in the round');
      return;
    }
    case 'wait':
      assert.ok(step.untilMs > inp.nowMs);
      return;
    case 'exhausted':
      assert.ok(step.nextRoundAtMs > inp.nowMs);
      return;
    case 'manual':
      return;
  }
}

test('property: an executor following the scheduler keeps level order and retry bounds, on random topologies', () => {
  fc.assert(
    fc.property(
      arbTopology,
      fc.array(fc.constantFrom<AttemptOutcome>('ok', 'failed', 'failed', 'timed-out', 'error'), { maxLength: 60 }),
      fc.array(fc.integer({ min: 0, max: 2000 }), { minLength: 1, maxLength: 10 }),
      (t, results, durations) => {
        const attempts: FenceAttempt[] = [];
        let now = T0;
        for (let steps = 0; steps < 200; steps++) {
          const inp = input(t, attempts, now);
          const step = nextFenceStep(inp);
          checkStep(t, inp, step);
          if (step.kind === 'succeeded' || step.kind === 'manual') return;
          if (step.kind === 'wait') now = step.untilMs;
          else if (step.kind === 'exhausted') {
            if (step.round >= 3) return;
            now = step.nextRoundAtMs;
          } else {
            const result = results[attempts.length];
            if (result === undefined) return;
            const duration = durations[attempts.length % durations.length] ?? 0;
            attempts.push(recorded(step, result, now, duration));
            now += duration;
          }
        }
        assert.fail('the scheduler made no progress in 200 steps');
      },
    ),
    { numRuns: 500 },
  );
});

test('property: on random attempt histories the answer still keeps every rule', () => {
  const arbHistory = (t: FenceTopology): fc.Arbitrary<FenceAttempt[]> =>
    fc
      .array(
        fc.record({
          level: fc.integer({ min: 1, max: Math.max(1, t.levels.length) }),
          device: fc.constantFrom('d0', 'd1', 'd2', 'd3', 'd4', 'd5'),
          result: fc.constantFrom<AttemptOutcome>('ok', 'failed', 'timed-out', 'error'),
          action: fc.constantFrom('off' as const, 'reboot' as const, 'status' as const),
          atMs: fc.integer({ min: T0, max: T0 + 60_000 }),
          durationMs: fc.integer({ min: 0, max: 5000 }),
          round: fc.integer({ min: 1, max: 3 }),
        }),
        { maxLength: 20 },
      )
      .map((xs) => xs.map((x) => ({ ...x, executor: nodeId(2), agent: 'exec' as const, excerpt: '' })));
  fc.assert(
    fc.property(
      arbTopology.chain((t) => fc.tuple(fc.constant(t), arbHistory(t), fc.integer({ min: 0, max: 200_000 }))),
      ([t, attempts, offset]) => {
        const inp = input(t, attempts, T0 + offset);
        const step = nextFenceStep(inp);
        // Attempts with another action do not count: compare with the fencing ones only.
        checkStep(t, { ...inp, attempts: attempts.filter((a) => a.action !== 'status') }, step);
        assert.deepEqual(nextFenceStep(inp), step, 'deterministic');
      },
    ),
    { numRuns: 2000 },
  );
});

// ------------------------------------------------------------------------------------------------
// endedThrough: what a fence's program devices ended (simulator finding 9)

function okAttempt(level: number, d: FenceDevice, round: number, covers?: number, result: AttemptOutcome = 'ok') {
  return {
    executor: nodeId(1),
    level,
    device: d.name,
    agent: d.agent,
    action: fenceActionOf(d),
    result,
    durationMs: 10,
    excerpt: '',
    atMs: T0,
    round,
    ...(covers === undefined ? {} : { covers }),
  };
}

test('endedThrough: a level of program devices all ok ends every incarnation up to its lowest covers', () => {
  const a = device('psu-a', 'exec');
  const b = device('psu-b', 'exec');
  const t = topology([[a, b]]);
  // Nothing succeeded yet, or only one of the two supplies: nothing is proved.
  assert.equal(endedThrough(t, TARGET, 4, []), null);
  assert.equal(endedThrough(t, TARGET, 4, [okAttempt(1, a, 1, 6)]), null);
  assert.equal(endedThrough(t, TARGET, 4, [okAttempt(1, a, 1, 6), okAttempt(1, b, 1, 6, 'failed')]), null);
  // Both ok in one round: the lower covers of the two counts.
  assert.deepEqual(endedThrough(t, TARGET, 4, [okAttempt(1, a, 1, 6), okAttempt(1, b, 1, 5)]), {
    incarnation: 5,
    round: 1,
    level: 1,
    device: 'psu-b',
  });
  // An attempt without covers (an older executor's) covers the record's own incarnation.
  assert.equal(endedThrough(t, TARGET, 4, [okAttempt(1, a, 1), okAttempt(1, b, 1, 9)])?.incarnation, 4);
  // Ok in different rounds does not make a level.
  assert.equal(endedThrough(t, TARGET, 4, [okAttempt(1, a, 1, 6), okAttempt(1, b, 2, 6)]), null);
});

test('endedThrough: watchdog and manual levels, status actions and devices no longer configured prove nothing', () => {
  const wd = device('wd', 'watchdog');
  const pdu = device('pdu', 'exec');
  assert.equal(endedThrough(topology([[wd]]), TARGET, 2, [okAttempt(1, wd, 1, 7)]), null);
  const status = { ...okAttempt(1, pdu, 1, 7), action: 'status' as const };
  assert.equal(endedThrough(topology([[pdu]]), TARGET, 2, [status]), null);
  // The attempt names a device the topology no longer has in that level.
  assert.equal(endedThrough(topology([[device('other', 'exec')]]), TARGET, 2, [okAttempt(1, pdu, 1, 7)]), null);
  // A second level of program devices counts when the first (watchdog) one did not.
  const t = topology([[wd], [pdu]]);
  assert.equal(endedThrough(t, TARGET, 2, [okAttempt(2, pdu, 1, 7)])?.level, 2);
  // The best level over all rounds wins.
  assert.equal(endedThrough(t, TARGET, 2, [okAttempt(2, pdu, 1, 3), okAttempt(2, pdu, 2, 8)])?.incarnation, 8);
});
