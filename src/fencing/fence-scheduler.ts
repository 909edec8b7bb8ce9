/**
 * The fence scheduler (docs/design/fencing-and-recovery.md section 3): a pure function that tells
 * the leader's fence executor what to do next for one pending fence record, from the topology and
 * the attempts the ledger holds. The executor calls it whenever something changed (an attempt
 * was recorded, a wait ended, it became leader) and does what it says; the scheduler keeps no
 * state, so a new leader resumes from the ledger alone.
 *
 * Contract (`nextFenceStep`):
 * - **Rounds.** Only attempts of the current round count (`round`, the record's highest round;
 *   1 before any attempt; no attempt may carry a higher one), and of those only the fencing
 *   actions (`off`, `reboot`); levels are numbered from 1 as in `topologyProblems`.
 * - **Devices able to fence the target.** A device whose `hosts` does not name the target is
 *   skipped; a level left with no device fails at once. When no level has a device able to
 *   fence the target, or the topology has no level, the answer is `manual` (only a confirmation
 *   can close the record).
 * - **Success.** `succeeded {level}` as soon as some level (the lowest such) has every one of its
 *   devices able to fence the target `ok` in the current round; a level holding a manual device
 *   never succeeds by itself.
 * - **Order.** Levels are tried in order: no device of level L+1 runs in a round before level L
 *   failed in that round. Within a level the devices run one after another, in the level's order,
 *   each until it is `ok`: device k+1 runs only once device k is `ok`. A manual device is not
 *   run (attempts reported for one are ignored): when it is the next device of a level (the
 *   automatic ones before it being `ok`), the answer is `manual` and the levels after it are
 *   never reached.
 * - **Tries.** A device is tried at most `1 + retries` times per round; once its tries are used
 *   up without an `ok`, its level has failed. A retry waits `FENCE_RETRY_DELAY_MS` after the
 *   previous try of that device ended (`atMs + durationMs`).
 * - **Waits.** Nothing runs before `beganAtMs + fenceDelayMs` of the target (the topology's
 *   per-node delay, counted from when this executor began on the record), and a watchdog device
 *   not before `beganAtMs + watchdogWaitMs` (the removed node's lease plus the drift margin: by
 *   then it has fenced itself). `wait {untilMs, why}` says until when and why.
 * - **Exhaustion.** When every level failed in the round: `exhausted {nextRoundAtMs}`, the end of
 *   the round's last attempt plus `FENCE_ROUND_BACKOFF_MS * 2^(round - 1)`, at most
 *   `FENCE_ROUND_BACKOFF_MS_MAX`. From `nextRoundAtMs` on, the answer is the first step of round
 *   `round + 1` (its attempts carry that round).
 *
 * Pure and total: any attempt history (also one no executor would produce) gives an answer; the
 * answer depends only on the arguments.
 */
import { assert } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import { FENCE_RETRY_DELAY_MS, FENCE_ROUND_BACKOFF_MS, FENCE_ROUND_BACKOFF_MS_MAX } from '../constants.js';
import type { FenceAttempt } from './fence-attempt.js';
import {
  plugFor,
  type FenceAction,
  type FenceAgentKind,
  type FenceDevice,
  type FenceTopology,
} from './fence-topology.js';

/** What the executor needs to decide one record's next step. Times are wall-clock ms. */
export interface FenceSchedulerInput {
  readonly topology: FenceTopology;
  /** The node being fenced: its id (for its fence delay) and its name (for `hosts` and plugs). */
  readonly target: { readonly id: NodeId; readonly name: string };
  /** The record's attempts (`FenceRecord.attempts`). */
  readonly attempts: readonly FenceAttempt[];
  /** The record's round (`FenceRecord.round`). */
  readonly round: number;
  readonly nowMs: number;
  /** When this executor began on the record (saw it opened, or became leader with it pending). */
  readonly beganAtMs: number;
  /** A watchdog device's wait from `beganAtMs`: the node lease plus the clock drift margin. */
  readonly watchdogWaitMs: number;
}

/** Why the executor must wait. */
export type FenceWaitReason = 'fence-delay' | 'retry-delay' | 'watchdog';

/** Why only a confirmation can close the record. */
export type FenceManualReason = 'no-levels' | 'no-device-for-target' | 'manual-device';

/** The scheduler's answer. */
export type FenceStep =
  /** Run `device` (try number `attemptNo` of this round) and record the attempt with `round` and `level`. */
  | {
      readonly kind: 'run';
      readonly round: number;
      readonly level: number;
      readonly device: string;
      readonly agent: FenceAgentKind;
      readonly plug: string;
      readonly action: FenceAction;
      readonly attemptNo: number;
    }
  /** Nothing to run before `untilMs`. */
  | { readonly kind: 'wait'; readonly untilMs: number; readonly why: FenceWaitReason }
  /**
   * Every device of `level` succeeded in `round`: propose `fenced` (by `watchdog` when the level's
   * devices are all watchdog devices, else by `agent`, naming `device`, the level's last one).
   */
  | {
      readonly kind: 'succeeded';
      readonly round: number;
      readonly level: number;
      readonly device: string;
      readonly by: 'agent' | 'watchdog';
    }
  /** Every level failed in `round`; round `round + 1` starts at `nextRoundAtMs`. */
  | { readonly kind: 'exhausted'; readonly round: number; readonly nextRoundAtMs: number }
  /** Wait for `cohort fence confirm`; `level`/`device` name the manual device reached, if any. */
  | { readonly kind: 'manual'; readonly why: FenceManualReason; readonly level?: number; readonly device?: string };

/** The pause after round `round` failed: `FENCE_ROUND_BACKOFF_MS` doubling per round, capped. */
export function roundBackoffMs(round: number): number {
  assert(Number.isInteger(round) && round >= 1, 'rounds count from 1');
  const doublings = Math.min(round - 1, 30);
  return Math.min(FENCE_ROUND_BACKOFF_MS * 2 ** doublings, FENCE_ROUND_BACKOFF_MS_MAX);
}

/** The action that fences with `device`. */
export function fenceActionOf(device: FenceDevice): 'off' | 'reboot' {
  return device.agent === 'exec' ? device.action : 'off';
}

/** One device's tries in a round. */
interface Tries {
  count: number;
  ok: boolean;
  lastEndMs: number;
}

/** The devices of each level able to fence the target, in order (levels numbered from 1). */
function ableLevels(
  input: Pick<FenceSchedulerInput, 'topology' | 'target'>,
): { level: number; devices: FenceDevice[] }[] {
  return input.topology.levels.map((l, i) => ({
    level: i + 1,
    devices: l.devices.flatMap((name) => {
      const d = input.topology.devices.get(name);
      return d !== undefined && plugFor(d, input.target.name) !== null ? [d] : [];
    }),
  }));
}

function triesIn(attempts: readonly FenceAttempt[], round: number): Map<string, Tries> {
  const out = new Map<string, Tries>();
  for (const a of attempts) {
    if (a.round !== round || !isFencing(a)) continue;
    const key = `${a.level}/${a.device}`;
    const t = out.get(key) ?? { count: 0, ok: false, lastEndMs: 0 };
    t.count++;
    t.ok ||= a.result === 'ok';
    t.lastEndMs = Math.max(t.lastEndMs, a.atMs + a.durationMs);
    out.set(key, t);
  }
  return out;
}

const NONE: Tries = { count: 0, ok: false, lastEndMs: 0 };

/** The step of one round (no exhaustion handling). `null`: every level failed in the round. */
function stepInRound(
  input: FenceSchedulerInput,
  levels: { level: number; devices: FenceDevice[] }[],
  round: number,
): FenceStep | null {
  const tries = triesIn(input.attempts, round);
  const triesOf = (level: number, d: FenceDevice): Tries => tries.get(`${level}/${d.name}`) ?? NONE;
  for (const { level, devices } of levels) {
    if (devices.length > 0 && devices.every((d) => d.agent !== 'manual' && triesOf(level, d).ok)) {
      const last = devices[devices.length - 1] as FenceDevice;
      const by = devices.every((d) => d.agent === 'watchdog') ? 'watchdog' : 'agent';
      return { kind: 'succeeded', round, level, device: last.name, by };
    }
  }
  for (const { level, devices } of levels) {
    for (const d of devices) {
      if (d.agent === 'manual') return { kind: 'manual', why: 'manual-device', level, device: d.name };
      const t = triesOf(level, d);
      if (t.ok) continue;
      if (t.count >= 1 + d.retries) break; // this level failed in this round
      return runOrWait(input, round, level, d, t);
    }
  }
  return null;
}

function runOrWait(input: FenceSchedulerInput, round: number, level: number, d: FenceDevice, t: Tries): FenceStep {
  const delayMs = input.topology.fenceDelayMs.get(input.target.id) ?? 0;
  const waits: [number, FenceWaitReason][] = [[input.beganAtMs + delayMs, 'fence-delay']];
  if (t.count > 0) waits.push([t.lastEndMs + FENCE_RETRY_DELAY_MS, 'retry-delay']);
  if (d.agent === 'watchdog') waits.push([input.beganAtMs + input.watchdogWaitMs, 'watchdog']);
  let until: [number, FenceWaitReason] | null = null;
  for (const w of waits) if (w[0] > input.nowMs && (until === null || w[0] > until[0])) until = w;
  if (until !== null) return { kind: 'wait', untilMs: until[0], why: until[1] };
  const plug = plugFor(d, input.target.name);
  assert(plug !== null, 'only devices able to fence the target run');
  return {
    kind: 'run',
    round,
    level,
    device: d.name,
    agent: d.agent,
    plug,
    action: fenceActionOf(d),
    attemptNo: t.count + 1,
  };
}

/** What a fence's successful program devices ended: see `endedThrough`. */
export interface EndedThrough {
  /** Every incarnation of the target up to this one has ended. */
  readonly incarnation: number;
  readonly round: number;
  readonly level: number;
  /** The level's last device (the one a proof names). */
  readonly device: string;
}

/**
 * The highest incarnation that the recorded attempts of one fence of `target` provably ended, or
 * null. A round and level count when every device of the level able to fence the target is a
 * program device (`exec`, `process`: it ends whatever runs for the node, not only the removed
 * incarnation) with an `ok` fencing attempt (`off`, `reboot`) in that round. Such a level ended
 * every incarnation up to the lowest, over its devices, of each device's highest `covers` among
 * its `ok` attempts of the round (an attempt without `covers` covers `incarnation`, the record's
 * own). The answer is the level that ended the most (ties: the earlier round, then the lower
 * level). Judged against `topology` as configured now: a level whose devices changed since then
 * does not count. Pure.
 */
export function endedThrough(
  topology: FenceTopology,
  target: { readonly id: NodeId; readonly name: string },
  incarnation: number,
  attempts: readonly FenceAttempt[],
): EndedThrough | null {
  const levels = ableLevels({ topology, target });
  const rounds = [...new Set(attempts.map((a) => a.round))].sort((a, b) => a - b);
  let best: EndedThrough | null = null;
  for (const round of rounds) {
    for (const { level, devices } of levels) {
      if (devices.length === 0 || devices.some((d) => d.agent !== 'exec' && d.agent !== 'process')) continue;
      let ended = Number.POSITIVE_INFINITY;
      for (const d of devices) {
        let covers = 0;
        for (const a of attempts)
          if (a.round === round && a.level === level && a.device === d.name && a.result === 'ok' && isFencing(a))
            covers = Math.max(covers, a.covers ?? incarnation);
        ended = Math.min(ended, covers);
      }
      if (ended < 1 || (best !== null && ended <= best.incarnation)) continue;
      best = { incarnation: ended, round, level, device: (devices[devices.length - 1] as FenceDevice).name };
    }
  }
  return best;
}

function isFencing(a: FenceAttempt): boolean {
  return a.action === 'off' || a.action === 'reboot';
}

/** The next step for one pending fence record. See the module comment for the contract. */
export function nextFenceStep(input: FenceSchedulerInput): FenceStep {
  assert(Number.isInteger(input.round) && input.round >= 1, 'a record round counts from 1');
  assert(
    input.attempts.every((a) => a.round <= input.round),
    'the record round is at least every attempt round (the ledger keeps the highest)',
  );
  const levels = ableLevels(input);
  if (levels.length === 0) return { kind: 'manual', why: 'no-levels' };
  if (levels.every((l) => l.devices.length === 0)) return { kind: 'manual', why: 'no-device-for-target' };
  const step = stepInRound(input, levels, input.round);
  if (step !== null) return step;
  let endMs = input.beganAtMs;
  for (const a of input.attempts) if (a.round === input.round) endMs = Math.max(endMs, a.atMs + a.durationMs);
  const nextRoundAtMs = endMs + roundBackoffMs(input.round);
  if (input.nowMs < nextRoundAtMs) return { kind: 'exhausted', round: input.round, nextRoundAtMs };
  const next = stepInRound(input, levels, input.round + 1);
  assert(next !== null, 'a round with no attempts has a first step');
  return next;
}
