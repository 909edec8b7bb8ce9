/**
 * One timeout model (DESIGN.md section 11.3): the operator sets a few inputs and every other
 * timeout in cohort is derived from them here, in one pure function, so timeouts cannot
 * contradict each other. An unsafe combination is rejected with a message saying why and what
 * to change, before anything starts (corosync/sbd users hit interdependent timeouts only in
 * production: research/linux-ha-anchors.md section 6).
 *
 * Inputs:
 * - `heartbeatMs`: how often the leader heartbeats every member (Raft heartbeat and failure
 *   detector probe at once).
 * - `failureTimeoutMs`: silence after which a node is *suspected*; it is evicted only after a
 *   further suspicion window (Lifeguard style), so a slow node gets more time than a dead one
 *   needs.
 * - `stallToleranceMs`: the longest pause of a healthy node (GC pause, SIGSTOP, VM migration)
 *   that must never evict it. Checked against the shortest possible eviction.
 * - `watchdogMs` (optional): the hardware or softdog watchdog timeout. With one, a hung node
 *   resets itself before the rest of the cluster takes over its resources.
 *
 * Derived (see `explainTimeouts` for the table with the rule behind every figure):
 * - tick length: half a heartbeat (so timers resolve at least twice per heartbeat);
 * - Raft: heartbeat ticks, election ticks (randomised by the core in [E, 2E)), lease margin;
 * - failure detector: suspect-after, suspicion window minimum and maximum (several suspecting
 *   nodes shorten it towards the minimum), eviction bounds, and the most a node extends its
 *   suspicion when it sees its own event loop lagging (DESIGN.md section 11.1);
 * - node lease: a node that has not heard a quorum acknowledge it within this time stops
 *   granting anything that needs quorum;
 * - drift margin: what leases give up to clock rate differences and late timers;
 * - watchdog feed interval and the fence wait (how long after eviction peers may treat a
 *   watchdog-armed node as self-fenced).
 *
 * Contract for the daemon shell: it ticks by elapsed monotonic time, replaying missed ticks (up
 * to `tickCatchUpMax`) after a stall before it serves any read or grant, so a stalled leader's
 * lease has run out in tick time by the time it acts again.
 */
import { err, ok, type Result } from '../lib/errors.js';
import { RAFT_ELECTION_TICKS_MAX } from '../constants.js';

/** What the operator sets (all in milliseconds). */
export interface TimeoutInputs {
  readonly heartbeatMs: number;
  readonly failureTimeoutMs: number;
  readonly stallToleranceMs: number;
  /** Absent: no watchdog; fencing of a failed node then needs an external fence confirmation. */
  readonly watchdogMs?: number | undefined;
}

/** Defaults: detection of a killed node in about 2 s, no eviction from a 1 s stall. */
export const TIMEOUT_DEFAULTS = {
  heartbeatMs: 100,
  failureTimeoutMs: 1000,
  stallToleranceMs: 1000,
} as const satisfies TimeoutInputs;

/** Smallest heartbeat: below this, timer jitter on a loaded machine is a large part of it. */
export const HEARTBEAT_MS_MIN = 10;
/** Largest heartbeat. */
export const HEARTBEAT_MS_MAX = 10_000;
/** Largest failure timeout (10 minutes): beyond it a dead node blocks the cluster for too long. */
export const FAILURE_TIMEOUT_MS_MAX = 600_000;
/** Largest stall tolerance. */
export const STALL_TOLERANCE_MS_MAX = 600_000;
/** Largest watchdog timeout (Linux watchdog drivers accept at most a few minutes). */
export const WATCHDOG_MS_MAX = 600_000;
/** Ticks per heartbeat: timers resolve twice per heartbeat. */
export const TICKS_PER_HEARTBEAT = 2;
/** The failure timeout must cover this many heartbeats: one or two late ones must not evict. */
export const FAILURE_TIMEOUT_HEARTBEATS_MIN = 3;
/** The Raft election timeout covers at least this many heartbeats (etcd recommends about 10). */
export const ELECTION_HEARTBEATS_MIN = 3;
/**
 * Share of a lease given up to clock rate differences and late timers. Monotonic clocks drift
 * by parts per million; timers on a busy Node process are late by milliseconds, and the event
 * loop may lag by more. 10 % is generous on purpose: a lease that is too short costs a round
 * trip, one that is too long costs safety.
 */
export const LEASE_DRIFT_RATIO = 0.1;
/** Suspicion window minimum as a share of its maximum (reached when several nodes suspect). */
export const SUSPICION_MIN_RATIO = 0.5;
/** A node seeing its own event loop lag extends suspicion of others by at most this factor. */
export const LOCAL_HEALTH_MULTIPLIER_MAX = 4;
/** The watchdog is fed this many times per watchdog timeout. */
export const WATCHDOG_FEEDS_PER_TIMEOUT = 4;

/** Every derived figure. Times in milliseconds unless the name says ticks. */
export interface TimeoutModel {
  readonly inputs: Required<Omit<TimeoutInputs, 'watchdogMs'>> & { readonly watchdogMs: number | undefined };
  /** Length of one core tick. */
  readonly tickMs: number;
  /** Most missed ticks replayed after a stall (enough to expire every lease and election timer). */
  readonly tickCatchUpMax: number;
  readonly raft: {
    readonly heartbeatTicks: number;
    /** Minimum election timeout; the core draws the actual one in [E, 2E). */
    readonly electionTicks: number;
    readonly leaseMarginTicks: number;
    /** Leader lease length after a quorum-acknowledged heartbeat round. */
    readonly leaseMs: number;
  };
  readonly detector: {
    readonly suspectAfterMs: number;
    readonly suspicionMinMs: number;
    readonly suspicionMaxMs: number;
    /** Shortest silence that can evict (several suspecting nodes). */
    readonly evictAfterMinMs: number;
    /** Longest silence before eviction with one suspecting node and a healthy leader. */
    readonly evictAfterMaxMs: number;
    /** Most extra suspicion time a lagging leader grants (local health awareness). */
    readonly localHealthExtensionMaxMs: number;
  };
  /** A node not acknowledged by a quorum for this long stops granting quorum-dependent things. */
  readonly nodeLeaseMs: number;
  /** What leases give up to drift and late timers. */
  readonly driftMarginMs: number;
  /** Present only with a watchdog. */
  readonly watchdog: { readonly timeoutMs: number; readonly feedIntervalMs: number } | undefined;
  /**
   * Time after eviction before peers may treat the evicted node as self-fenced: 0 with a
   * watchdog (it has reset itself already); undefined without one (an external fence agent or
   * a manual confirmation is required).
   */
  readonly fenceWaitMs: number | undefined;
}

/** Which input a problem is about (the config layer prefixes `timeouts.`). */
export type TimeoutKey = keyof TimeoutInputs;

/** One reason the inputs are unsafe. */
export interface TimeoutProblem {
  readonly key: TimeoutKey;
  readonly message: string;
}

/** Every problem found, not just the first. */
export class TimeoutModelError extends Error {
  override readonly name = 'TimeoutModelError';
  readonly code = 'TIMEOUTS_UNSAFE';
  constructor(readonly problems: readonly TimeoutProblem[]) {
    super(`unsafe timeouts: ${problems.map((p) => `${p.key}: ${p.message}`).join('; ')}`);
  }
}

function intIn(n: number, min: number, max: number): boolean {
  return Number.isSafeInteger(n) && n >= min && n <= max;
}

function rangeProblems(i: TimeoutInputs): TimeoutProblem[] {
  const out: TimeoutProblem[] = [];
  if (!intIn(i.heartbeatMs, HEARTBEAT_MS_MIN, HEARTBEAT_MS_MAX)) {
    out.push({
      key: 'heartbeatMs',
      message: `heartbeatMs ${i.heartbeatMs} must be an integer from ${HEARTBEAT_MS_MIN} to ${HEARTBEAT_MS_MAX}`,
    });
  }
  if (!intIn(i.failureTimeoutMs, 1, FAILURE_TIMEOUT_MS_MAX)) {
    out.push({
      key: 'failureTimeoutMs',
      message: `failureTimeoutMs ${i.failureTimeoutMs} must be an integer from 1 to ${FAILURE_TIMEOUT_MS_MAX}`,
    });
  }
  if (!intIn(i.stallToleranceMs, 0, STALL_TOLERANCE_MS_MAX)) {
    out.push({
      key: 'stallToleranceMs',
      message: `stallToleranceMs ${i.stallToleranceMs} must be an integer from 0 to ${STALL_TOLERANCE_MS_MAX}`,
    });
  }
  if (i.watchdogMs !== undefined && !intIn(i.watchdogMs, 1, WATCHDOG_MS_MAX)) {
    out.push({
      key: 'watchdogMs',
      message: `watchdogMs ${i.watchdogMs} must be an integer from 1 to ${WATCHDOG_MS_MAX}`,
    });
  }
  return out;
}

/** The figures before the relationship checks (inputs already range-checked). */
function compute(i: TimeoutInputs): TimeoutModel {
  const h = i.heartbeatMs;
  const f = i.failureTimeoutMs;
  const tickMs = h / TICKS_PER_HEARTBEAT;
  const electionMs = Math.max(ELECTION_HEARTBEATS_MIN * h, f / 2);
  const electionTicks = Math.ceil(electionMs / tickMs);
  const leaseMarginTicks = Math.max(1, Math.ceil(electionTicks * LEASE_DRIFT_RATIO));
  const suspicionMaxMs = f;
  const suspicionMinMs = Math.ceil(f * SUSPICION_MIN_RATIO);
  const nodeLeaseMs = f;
  const driftMarginMs = Math.max(2 * tickMs, Math.ceil(nodeLeaseMs * LEASE_DRIFT_RATIO));
  const evictAfterMaxMs = f + suspicionMaxMs;
  const watchdog =
    i.watchdogMs === undefined
      ? undefined
      : { timeoutMs: i.watchdogMs, feedIntervalMs: Math.max(1, Math.floor(i.watchdogMs / WATCHDOG_FEEDS_PER_TIMEOUT)) };
  return {
    inputs: { heartbeatMs: h, failureTimeoutMs: f, stallToleranceMs: i.stallToleranceMs, watchdogMs: i.watchdogMs },
    tickMs,
    tickCatchUpMax: 2 * electionTicks + Math.ceil(evictAfterMaxMs / tickMs) + 1,
    raft: {
      heartbeatTicks: TICKS_PER_HEARTBEAT,
      electionTicks,
      leaseMarginTicks,
      leaseMs: (electionTicks - leaseMarginTicks) * tickMs,
    },
    detector: {
      suspectAfterMs: f,
      suspicionMinMs,
      suspicionMaxMs,
      evictAfterMinMs: f + suspicionMinMs,
      evictAfterMaxMs,
      localHealthExtensionMaxMs: (LOCAL_HEALTH_MULTIPLIER_MAX - 1) * suspicionMaxMs,
    },
    nodeLeaseMs,
    driftMarginMs,
    watchdog,
    fenceWaitMs: watchdog === undefined ? undefined : 0,
  };
}

function relationProblems(m: TimeoutModel): TimeoutProblem[] {
  const out: TimeoutProblem[] = [];
  const { heartbeatMs: h, failureTimeoutMs: f, stallToleranceMs: s, watchdogMs: w } = m.inputs;
  if (f < FAILURE_TIMEOUT_HEARTBEATS_MIN * h) {
    out.push({
      key: 'failureTimeoutMs',
      message: `failureTimeoutMs ${f} is below ${FAILURE_TIMEOUT_HEARTBEATS_MIN} x heartbeatMs ${h}: a single delayed heartbeat would evict a node; raise it to at least ${FAILURE_TIMEOUT_HEARTBEATS_MIN * h} or lower heartbeatMs`,
    });
  }
  const { evictAfterMinMs } = m.detector;
  if (evictAfterMinMs <= s + 2 * h) {
    // evictAfterMin = f * (1 + SUSPICION_MIN_RATIO) must exceed s + 2h.
    const need = Math.floor((s + 2 * h) / (1 + SUSPICION_MIN_RATIO)) + 1;
    out.push({
      key: 'failureTimeoutMs',
      message: `failureTimeoutMs ${f} lets a node be evicted after ${evictAfterMinMs} ms of silence, which does not exceed stallToleranceMs ${s} plus two heartbeats (${s + 2 * h} ms): a ${s} ms stall would evict a healthy node; raise failureTimeoutMs to at least ${need} or lower stallToleranceMs`,
    });
  }
  if (m.raft.electionTicks > RAFT_ELECTION_TICKS_MAX) {
    out.push({
      key: 'failureTimeoutMs',
      message: `failureTimeoutMs ${f} with heartbeatMs ${h} gives ${m.raft.electionTicks} election ticks; at most ${RAFT_ELECTION_TICKS_MAX} are supported: raise heartbeatMs`,
    });
  }
  if (evictAfterMinMs < m.nodeLeaseMs + m.driftMarginMs + h) {
    // Unreachable with the ratios above; kept so a change to them cannot silently break safety.
    out.push({
      key: 'failureTimeoutMs',
      message: `eviction after ${evictAfterMinMs} ms could precede the node's own lease expiry (${m.nodeLeaseMs} ms + ${m.driftMarginMs} ms drift + one heartbeat): an evicted node could still grant`,
    });
  }
  if (w !== undefined) out.push(...watchdogProblems(m, w));
  return out;
}

function watchdogProblems(m: TimeoutModel, w: number): TimeoutProblem[] {
  const out: TimeoutProblem[] = [];
  const { heartbeatMs: h, stallToleranceMs: s } = m.inputs;
  const ceiling = m.nodeLeaseMs - m.driftMarginMs;
  if (w > ceiling) {
    out.push({
      key: 'watchdogMs',
      message: `watchdogMs ${w} must be below the node lease minus the drift margin (${m.nodeLeaseMs} - ${m.driftMarginMs} = ${ceiling} ms): otherwise a hung node could still be running when its peers take over; lower watchdogMs or raise failureTimeoutMs`,
    });
  }
  if (w <= s) {
    out.push({
      key: 'watchdogMs',
      message: `watchdogMs ${w} does not exceed stallToleranceMs ${s}: a ${s} ms stall would reset a healthy machine; raise watchdogMs (and failureTimeoutMs with it)`,
    });
  }
  if (w < 2 * h) {
    out.push({
      key: 'watchdogMs',
      message: `watchdogMs ${w} is below 2 x heartbeatMs ${h}: one late heartbeat would reset a healthy machine`,
    });
  }
  return out;
}

/**
 * Derives the whole timeout model from `inputs`, or returns every reason it is unsafe.
 * Pure and total: any numbers in, a model or a `TimeoutModelError` out.
 */
export function deriveTimeouts(inputs: TimeoutInputs): Result<TimeoutModel, TimeoutModelError> {
  const ranges = rangeProblems(inputs);
  if (ranges.length > 0) return err(new TimeoutModelError(ranges));
  const model = compute(inputs);
  const relations = relationProblems(model);
  if (relations.length > 0) return err(new TimeoutModelError(relations));
  return ok(model);
}

/** One row of `cohort config explain`. */
export interface TimeoutExplanation {
  readonly name: string;
  /** The value, in milliseconds, or `undefined` for "not applicable". */
  readonly ms: number | undefined;
  /** Ticks, where the core counts in ticks. */
  readonly ticks?: number;
  readonly source: 'input' | 'derived';
  /** The rule in one line. */
  readonly rule: string;
}

/** The explanation table: every figure of `m`, where it comes from and why. */
export function explainTimeouts(m: TimeoutModel): TimeoutExplanation[] {
  const t = m.tickMs;
  const d = m.detector;
  const rows: TimeoutExplanation[] = [
    {
      name: 'heartbeatMs',
      ms: m.inputs.heartbeatMs,
      source: 'input',
      rule: 'leader heartbeat to every member (Raft and failure detector)',
    },
    {
      name: 'failureTimeoutMs',
      ms: m.inputs.failureTimeoutMs,
      source: 'input',
      rule: `silence before a node is suspected; at least ${FAILURE_TIMEOUT_HEARTBEATS_MIN} heartbeats`,
    },
    {
      name: 'stallToleranceMs',
      ms: m.inputs.stallToleranceMs,
      source: 'input',
      rule: 'longest pause of a healthy node that must never evict it',
    },
    {
      name: 'watchdogMs',
      ms: m.inputs.watchdogMs,
      source: 'input',
      rule: 'watchdog timeout; below node lease minus drift margin, above the stall tolerance',
    },
    { name: 'tick', ms: t, source: 'derived', rule: `heartbeat / ${TICKS_PER_HEARTBEAT}` },
    {
      name: 'raft.heartbeat',
      ms: m.raft.heartbeatTicks * t,
      ticks: m.raft.heartbeatTicks,
      source: 'derived',
      rule: 'one heartbeat',
    },
    {
      name: 'raft.election',
      ms: m.raft.electionTicks * t,
      ticks: m.raft.electionTicks,
      source: 'derived',
      rule: `max(${ELECTION_HEARTBEATS_MIN} heartbeats, failureTimeout / 2), drawn in [E, 2E)`,
    },
    {
      name: 'raft.leaseMargin',
      ms: m.raft.leaseMarginTicks * t,
      ticks: m.raft.leaseMarginTicks,
      source: 'derived',
      rule: `${LEASE_DRIFT_RATIO * 100} % of the election timeout, at least one tick`,
    },
    {
      name: 'raft.lease',
      ms: m.raft.leaseMs,
      source: 'derived',
      rule: 'election timeout minus lease margin, from a quorum-acknowledged heartbeat',
    },
    { name: 'detector.suspectAfter', ms: d.suspectAfterMs, source: 'derived', rule: 'failureTimeout' },
    {
      name: 'detector.suspicionMax',
      ms: d.suspicionMaxMs,
      source: 'derived',
      rule: 'failureTimeout (one suspecting node)',
    },
    {
      name: 'detector.suspicionMin',
      ms: d.suspicionMinMs,
      source: 'derived',
      rule: `${SUSPICION_MIN_RATIO} x failureTimeout (several suspecting nodes)`,
    },
    {
      name: 'detector.evictAfterMin',
      ms: d.evictAfterMinMs,
      source: 'derived',
      rule: 'suspectAfter + suspicionMin; must exceed stallTolerance + 2 heartbeats',
    },
    { name: 'detector.evictAfterMax', ms: d.evictAfterMaxMs, source: 'derived', rule: 'suspectAfter + suspicionMax' },
    {
      name: 'detector.localHealthExtensionMax',
      ms: d.localHealthExtensionMaxMs,
      source: 'derived',
      rule: `a leader whose own loop lags extends suspicion up to ${LOCAL_HEALTH_MULTIPLIER_MAX}x`,
    },
    {
      name: 'nodeLease',
      ms: m.nodeLeaseMs,
      source: 'derived',
      rule: 'failureTimeout: without a quorum ack for this long a node stops granting',
    },
    {
      name: 'driftMargin',
      ms: m.driftMarginMs,
      source: 'derived',
      rule: `max(2 ticks, ${LEASE_DRIFT_RATIO * 100} % of the node lease)`,
    },
    {
      name: 'watchdog.feedInterval',
      ms: m.watchdog?.feedIntervalMs,
      source: 'derived',
      rule: `watchdog / ${WATCHDOG_FEEDS_PER_TIMEOUT}, fed only while the node lease is valid`,
    },
    {
      name: 'fenceWait',
      ms: m.fenceWaitMs,
      source: 'derived',
      rule:
        m.watchdog === undefined
          ? 'no watchdog: an evicted node needs an external fence confirmation'
          : '0 after eviction: the watchdog reset the node first',
    },
    {
      name: 'tickCatchUpMax',
      ms: m.tickCatchUpMax * t,
      ticks: m.tickCatchUpMax,
      source: 'derived',
      rule: 'missed ticks replayed after a stall, enough to expire every lease and timer',
    },
  ];
  return rows;
}

/** Fills the defaults into partial inputs. */
export function timeoutInputsWithDefaults(partial: Partial<TimeoutInputs>): TimeoutInputs {
  return {
    heartbeatMs: partial.heartbeatMs ?? TIMEOUT_DEFAULTS.heartbeatMs,
    failureTimeoutMs: partial.failureTimeoutMs ?? TIMEOUT_DEFAULTS.failureTimeoutMs,
    stallToleranceMs: partial.stallToleranceMs ?? TIMEOUT_DEFAULTS.stallToleranceMs,
    watchdogMs: partial.watchdogMs,
  };
}

/**
 * How much longer a leader should wait before evicting a silent node, given the worst delay
 * its own event loop saw recently (`LoopHealth.maxDelayMs` from the platform's loop monitor).
 * A loop that lagged by L ms may have processed heartbeats up to L ms late, so suspicion is
 * extended by twice the lag, rounded up to whole heartbeats, up to the model's ceiling. Pure.
 */
export function suspicionExtensionMs(model: TimeoutModel, ownLoopDelayMs: number): number {
  if (!Number.isFinite(ownLoopDelayMs) || ownLoopDelayMs <= 0) return 0;
  const h = model.inputs.heartbeatMs;
  return Math.min(model.detector.localHealthExtensionMaxMs, Math.ceil((2 * ownLoopDelayMs) / h) * h);
}
