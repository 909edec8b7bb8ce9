/**
 * The cluster workload's recovery participants: every process registers one participant for each
 * of the run's groups with its node's `RecoveryService` (`participate`, what
 * `client.recovery.participate()` does for an application), so recovery rounds wait for real
 * answers instead of the service's "no local participant: report at once".
 *
 * Each `stop` and `start` call draws what this participant does (from the process's own random
 * stream, `NodeEnv.prng.fork('recovery-participant')`, so a seed replays exactly):
 * - answer at once (inside the call);
 * - answer `slow`ly, after a delay drawn in [1, `slowMsMax`] ms;
 * - on `start` only, fail (`error`) after such a delay: the node reports `error` and is removed
 *   from the group, and the round restarts without it;
 * - `hang`: never answer, so the leader evicts the member after the member timeout
 *   (`CohortNodeOptions.recoveryMemberTimeoutMs`).
 * The probabilities are the run's (`RecoveryParticipantProfile`, drawn by the workload per seed).
 * Once the faults stop (`calm()`), answers come at once, or as errors at the same rate (each error
 * removes a member: progress), but never slowly nor never: a round restarts on every join and
 * leave while it is open (docs/recovery.md rule 2), and the group driver's churn (every 800 ms on
 * average) would keep restarting a round whose members take seconds to answer, so it might never
 * finish within the liveness bound.
 *
 * Every decision is traced as `recovery-participant group=G generation=N op=stop|start
 * plan=now|slow|error|hang ms=D` (diagnostics; no checker reads it). Timers die with the process.
 */
import type { Prng } from '../../lib/prng.js';
import type { RecoveryParticipant, RecoveryService } from '../../recovery/recovery-service.js';
import type { NodeEnv } from '../../runtime/env.js';

/** The trace event of a participant's decision (see the module comment). */
export const RECOVERY_PARTICIPANT_EVENT = 'recovery-participant';

/** How the run's participants answer; probabilities per call, their sum at most 1. */
export interface RecoveryParticipantProfile {
  /** Chance that an answer comes after a delay. */
  readonly slow: number;
  /** Chance that a `start` fails (after a delay). */
  readonly error: number;
  /** Chance that an answer never comes. */
  readonly hang: number;
  /** Longest delay of a slow answer or an error, ms. */
  readonly slowMsMax: number;
}

type Plan = 'now' | 'slow' | 'error' | 'hang';

const START_ERROR = 'the simulated participant failed to start';

/** Draws a run's profile: a third of the seeds answer at once always, the others mix delays, errors and hangs. */
export function drawParticipantProfile(prng: Prng): RecoveryParticipantProfile {
  if (prng.chance(1 / 3)) return { slow: 0, error: 0, hang: 0, slowMsMax: 1 };
  return {
    slow: prng.pick([0.1, 0.3, 0.5]),
    error: prng.pick([0.05, 0.15, 0.3]),
    hang: prng.pick([0.05, 0.1, 0.2]),
    slowMsMax: prng.pick([300, 1_500, 4_000]),
  };
}

/**
 * Registers one participant per group in `groups` on `recovery` (see the module comment); `calm`
 * says whether the faults have stopped.
 */
export function participateInRecovery<M>(
  env: NodeEnv<M>,
  recovery: RecoveryService,
  groups: readonly string[],
  profile: RecoveryParticipantProfile,
  calm: () => boolean,
): void {
  const prng = env.prng.fork('recovery-participant');
  const draw = (op: 'stop' | 'start'): { plan: Plan; ms: number } => {
    const x = prng.float();
    const ms = prng.int(1, profile.slowMsMax + 1);
    if (calm()) return op === 'start' && x < profile.error ? { plan: 'error', ms: 0 } : { plan: 'now', ms: 0 };
    if (x < profile.hang) return { plan: 'hang', ms: 0 };
    if (op === 'start' && x < profile.hang + profile.error) return { plan: 'error', ms };
    if (x < profile.hang + profile.error + profile.slow) return { plan: 'slow', ms };
    return { plan: 'now', ms: 0 };
  };
  for (const group of groups) {
    const p: RecoveryParticipant = {
      stop: (g, generation, done) => {
        const { plan, ms } = draw('stop');
        env.trace(RECOVERY_PARTICIPANT_EVENT, { group: g, generation, op: 'stop', plan, ms });
        if (plan === 'now') done();
        else if (plan !== 'hang') env.timers.after(ms, done);
      },
      start: (start, done) => {
        const { plan, ms } = draw('start');
        env.trace(RECOVERY_PARTICIPANT_EVENT, {
          group: start.group,
          generation: start.generation,
          op: 'start',
          plan,
          ms,
        });
        if (plan === 'now') done(null);
        else if (plan === 'slow')
          env.timers.after(ms, () => {
            done(null);
          });
        else if (plan === 'error' && ms === 0) done(START_ERROR);
        else if (plan === 'error')
          env.timers.after(ms, () => {
            done(START_ERROR);
          });
      },
    };
    recovery.participate(group, p);
  }
}
