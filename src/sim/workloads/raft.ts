/**
 * The `raft` workload: the cluster log (the production `RaftNode` shell over a `KvStateMachine`)
 * under the full fault model, judged by the Raft safety checkers, the linearizability checker
 * and the liveness condition (`src/sim/checkers/raft-*.ts`). It is the default of `cohort sim`.
 *
 * Per seed (all drawn from the workload's stream): a cluster of 1, 3, 5 or 7 members, sometimes
 * plus one spare process that starts with an empty configuration (`nodeCount` returns an even
 * total exactly when there is a spare); voter weights of 1 or 1..3; sometimes a learner among the
 * members; sometimes a witness among the voters (it stores entry metadata only and never leads;
 * the operator of such runs may also add witnesses); configuration changes during the fault phase in every seed with a spare and in some
 * others; a snapshot interval small enough that snapshots and snapshot installs are common; and
 * the simulator's crashes, restarts, pauses, partitions, clogs, clock drift and disk bit flips
 * on a minority (`tolerates.diskCorruption`).
 *
 * Timing: one tick is `TICK_MS` of the node's (drifting) clock; the election timeout is drawn in
 * [electionTicks, 2 * electionTicks). The liveness bound on the first commit after the faults
 * stop is `COMMIT_BOUND_ELECTIONS` maximal election timeouts, stated in ticks.
 */
import { assert } from '../../lib/assert.js';
import type { NodeId } from '../../lib/ids.js';
import type { Prng } from '../../lib/prng.js';
import {
  RAFT_CANARIES,
  validateRaftMessage,
  type ConfState,
  type RaftCanary,
  type RaftMessage,
  type VoterWeight,
} from '../../log/index.js';
import { msgpackCodec } from '../../transport/message-codec.js';
import type { Checker, DriverContext, Workload, WorkloadRun, WorkloadSetup } from '../workload.js';
import type { SimEvent } from '../trace.js';
import { RaftSafetyChecker } from '../checkers/raft-checker.js';
import { RaftHistoryChecker } from '../checkers/raft-history.js';
import { RaftLiveness } from '../checkers/raft-liveness.js';
import { parseConfig } from '../checkers/raft-events.js';
import { RaftDriver } from './raft-driver.js';
import { LeaseChecker, LeaseSampler } from '../checkers/lease-checker.js';
import { RAFT_SHELL_CANARIES, type RaftShellCanary } from '../../runtime/raft-node.js';
import { RaftMetrics, startRaftNode, type RaftSimNode, type RaftTiming } from './raft-program.js';

/** Virtual length of the fault phase: two simulated minutes. */
export const RAFT_FAULT_PHASE_MS = 120_000;
/** One Raft tick, ms of the node's clock. */
export const TICK_MS = 50;
const ELECTION_TICKS = 10;
const HEARTBEAT_TICKS = 2;
/** A proposal or read not answered within this many ticks completes with TIMEOUT. */
const REQUEST_TIMEOUT_TICKS = 40;
/**
 * The first commit after the faults stop must come within this many maximal election timeouts.
 * Generous because the network keeps its loss (up to 30 %) after the faults stop, and a bare
 * quorum of restarted nodes (quiet period, pre-vote, vote) may need several rounds: the worst
 * measured over 500 seeds was 12.3 s, about 250 ticks.
 */
const COMMIT_BOUND_ELECTIONS = 20;
/** Bound on the first commit after the faults stop, in ticks (maximal election timeout = 2 × electionTicks). */
export const COMMIT_BOUND_TICKS = COMMIT_BOUND_ELECTIONS * 2 * ELECTION_TICKS;
/** Clocks drift by at most 5 %: a bound in ticks of the slowest clock, in true ms. */
const DRIFT_ALLOWANCE = 1.06;
/** Everything (marker acknowledged, every member converged) within this long, ms. */
const LIVENESS_BOUND_MS = 60_000;
/** Deterministic budget of the linearizability search per seed (model steps plus backtracks). */
const LINEARIZABILITY_STEPS_MAX = 3_000_000;

/** The run's cluster shape, drawn in `create`. */
interface Shape {
  readonly members: readonly NodeId[];
  readonly spares: readonly NodeId[];
  readonly bootstrap: ConfState;
  readonly weighted: boolean;
  readonly confChanges: boolean;
  /** The bootstrap witness, if this run has one (a voter that stores only entry metadata). */
  readonly witness: NodeId | undefined;
}

/**
 * A lapsed lease reported valid this long by the `lease-overstay` canary: two maximal election
 * timeouts, long enough for a successor to be elected and take its own lease meanwhile.
 */
const LEASE_OVERSTAY_MS = 4 * ELECTION_TICKS * TICK_MS;
/** How often the lease sampler asks every node for its lease, ms of true virtual time. */
export const LEASE_SAMPLE_MS = 10;

/**
 * The workload's planted bugs: the core's (`RAFT_CANARIES`), the shell's (`RAFT_SHELL_CANARIES`:
 * `ack-before-fsync`), and `lease-overstay` (a node reports its lease valid for
 * `LEASE_OVERSTAY_MS` after it lapsed: the lease checker must catch it).
 */
export const RAFT_WORKLOAD_CANARIES: readonly string[] = [...RAFT_CANARIES, ...RAFT_SHELL_CANARIES, 'lease-overstay'];

interface Canaries {
  readonly core: RaftCanary | undefined;
  readonly shell: RaftShellCanary | undefined;
  readonly leaseOverstay: boolean;
}

function asCanaries(name: string | undefined): Canaries {
  assert(name === undefined || RAFT_WORKLOAD_CANARIES.includes(name), `unknown raft canary ${name ?? ''}`);
  return {
    core: RAFT_CANARIES.find((c) => c === name),
    shell: RAFT_SHELL_CANARIES.find((c) => c === name),
    leaseOverstay: name === 'lease-overstay',
  };
}

/**
 * Members 1..n (n odd), plus a spare exactly when the total is even. In some runs with at least
 * two voters one voter other than the first is a witness with one vote: with every other voter
 * holding at least one vote the witness alone is never a quorum, and the first voter stores data.
 * The witness is drawn from its own stream (`witnessPrng`) so that runs without one keep the
 * shapes they had before witnesses were drawn.
 */
function drawShape(nodes: readonly NodeId[], prng: Prng, witnessPrng: Prng): Shape {
  const spareCount = nodes.length % 2 === 0 ? 1 : 0;
  const members = nodes.slice(0, nodes.length - spareCount);
  const spares = nodes.slice(nodes.length - spareCount);
  const weighted = prng.chance(0.4);
  const learner = members.length >= 3 && prng.chance(0.3) ? members[members.length - 1] : undefined;
  const drawn: VoterWeight[] = members
    .filter((id) => id !== learner)
    .map((id) => [id, weighted ? prng.int(1, 4) : 1] as const);
  const confChanges = spareCount > 0 || prng.chance(0.15);
  const witness = drawn.length >= 2 && witnessPrng.chance(0.3) ? witnessPrng.pick(drawn.slice(1))[0] : undefined;
  const voters: VoterWeight[] = drawn.map(([id, w]) => [id, id === witness ? 1 : w] as const);
  return {
    members,
    spares,
    bootstrap: {
      voters,
      outgoing: [],
      learners: learner === undefined ? [] : [learner],
      learnersNext: [],
      autoLeave: false,
      ...(witness === undefined ? {} : { witnesses: [witness] }),
    },
    weighted,
    confChanges,
    witness,
  };
}

function drawTiming(prng: Prng): RaftTiming {
  return {
    tickMs: TICK_MS,
    electionTicks: ELECTION_TICKS,
    heartbeatTicks: HEARTBEAT_TICKS,
    requestTimeoutTicks: REQUEST_TIMEOUT_TICKS,
    snapshotEntries: prng.pick([8, 16, 32, 64, 256]),
    snapshotCatchUpEntries: prng.pick([0, 2, 8]),
  };
}

const EMPTY_CONF: ConfState = { voters: [], outgoing: [], learners: [], learnersNext: [], autoLeave: false };

function configText(cs: ConfState): string {
  const side = (v: readonly VoterWeight[]): string =>
    `(${v.map(([id, w]) => (w === 1 ? `${id}` : `${id}x${w}`)).join(',')})`;
  const learners = cs.learners.length > 0 ? ` learners=(${cs.learners.join(',')})` : '';
  const witnesses = (cs.witnesses ?? []).length > 0 ? ` witnesses=(${(cs.witnesses ?? []).join(',')})` : '';
  return `voters=${side(cs.voters)}${learners}${witnesses}`;
}

/** Counts what the stats report about the run from events. */
class RaftEventCounter implements Checker {
  readonly name = 'raft-stats';
  elections = 0;
  confChanges = 0;
  restores = 0;
  repairsDone = 0;

  observe(e: SimEvent): void {
    if (typeof e.source !== 'number') return;
    if (e.event === 'raft-become-leader') this.elections++;
    else if (e.event === 'raft-conf-applied') this.confChanges++;
    else if (e.event === 'restore') this.restores++;
    else if (e.event === 'repair-done') this.repairsDone++;
  }
}

function create(setup: WorkloadSetup): WorkloadRun<RaftMessage, RaftSimNode> {
  const canaries = asCanaries(setup.canary);
  const prng = setup.prng;
  const shape = drawShape(setup.nodes, prng.fork('shape'), prng.fork('witness'));
  const timing = drawTiming(prng.fork('timing'));
  const metrics = new RaftMetrics();
  const initial = parseConfig(configText(shape.bootstrap));
  assert(initial !== null, 'the bootstrap configuration parses');
  const commitBoundMs = COMMIT_BOUND_TICKS * TICK_MS * DRIFT_ALLOWANCE;
  const safety = new RaftSafetyChecker((m) => {
    setup.violation('raft-safety', m);
  });
  const history = new RaftHistoryChecker((m) => {
    setup.violation('linearizability', m);
  }, LINEARIZABILITY_STEPS_MAX);
  const liveness = new RaftLiveness(initial, LIVENESS_BOUND_MS, commitBoundMs, COMMIT_BOUND_TICKS, (m) => {
    setup.violation('liveness', m);
  });
  const counter = new RaftEventCounter();
  const leases = new LeaseChecker((m) => {
    setup.violation('lease', m);
  });
  const sampler = new LeaseSampler<RaftSimNode>(LEASE_SAMPLE_MS, (n) => n.leaseValid());
  const d = prng.fork('driver-knobs');
  const votersInitial = shape.bootstrap.voters.length;
  const driver = new RaftDriver(
    {
      clients: d.int(2, 6),
      keys: Array.from({ length: d.int(3, 9) }, (_, i) => `k${i}`),
      thinkMeanMs: d.int(20, 300),
      clientTimeoutMs: 3_000,
      retryDelayMs: 60,
      confChangeMeanMs: shape.confChanges ? d.int(2_000, 10_000) : null,
      votesMax: shape.weighted ? 3 : 1,
      votersMin: Math.min(3, votersInitial),
      votersMax: 7,
      witnessChanges: shape.witness !== undefined,
    },
    (ctx: DriverContext<RaftSimNode>) => {
      liveness.attachClock(() => ctx.nowMs());
      sampler.start(ctx);
    },
  );
  const program = {
    codec: msgpackCodec(validateRaftMessage),
    start: (env: Parameters<typeof startRaftNode>[0]) =>
      startRaftNode(env, {
        timing,
        canary: canaries.core,
        shellCanary: canaries.shell,
        leaseOverstayMs: canaries.leaseOverstay ? LEASE_OVERSTAY_MS : 0,
        metrics,
        bootstrap: (id) => (shape.members.includes(id) ? shape.bootstrap : EMPTY_CONF),
      }),
  };
  return {
    program,
    driver,
    checkers: [safety, history, liveness, counter, leases],
    liveness,
    stats: () => {
      const commits = Math.max(1, metrics.committedIndex);
      const verdict = history.verdict;
      return [
        ['members', shape.members.length],
        ['spares', shape.spares.length],
        ['weighted', shape.weighted ? 1 : 0],
        ['witness', shape.witness === undefined ? 0 : 1],
        ['conf-changes-applied', counter.confChanges],
        ['snapshot-entries', timing.snapshotEntries],
        ['elections', counter.elections],
        ['committed-entries', metrics.committedIndex],
        ['messages-sent', metrics.messagesSent],
        ['messages-per-commit', Math.round((metrics.messagesSent / commits) * 10) / 10],
        ['commit-latency-samples', metrics.latencySamples],
        ['commit-latency-mean-ticks', Math.round(metrics.latencyMean() * 100) / 100],
        ['commit-latency-p50-ticks', metrics.latencyQuantile(0.5)],
        ['commit-latency-p99-ticks', metrics.latencyQuantile(0.99)],
        ['snapshots-taken', metrics.snapshotsTaken],
        ['snapshots-installed', metrics.snapshotsInstalled],
        ['repairs', metrics.repairs],
        ['refused-starts', metrics.refusedStarts],
        ['client-ops', driver.counts.calls],
        ['client-returns', driver.counts.returns],
        ['client-fails', driver.counts.fails],
        ['client-lost', driver.counts.lost],
        ['history-ops', history.operations],
        ['history-unknown-outcomes', history.unknownOutcomes],
        ['linearizability-ok', verdict === 'ok' ? 1 : 0],
        ['linearizability-unknown', verdict === 'unknown' ? 1 : 0],
        ['linearizability-steps', history.steps],
        ['liveness-commit-after-ms', liveness.commitAfterMs ?? -1],
        ['liveness-excused', liveness.excused ? 1 : 0],
        ['safety-checks', safety.checks],
        ['lease-checks', leases.checks],
        ['lease-held-samples', leases.held],
      ];
    },
  };
}

/** The registered Raft workload (the default of `cohort sim`). */
export const raftWorkload: Workload<RaftMessage, RaftSimNode> = {
  name: 'raft',
  description: 'the Raft cluster log with a KV state machine: safety, linearizability and liveness under every fault',
  canaries: RAFT_WORKLOAD_CANARIES,
  tolerates: { diskCorruption: true, ioErrors: true },
  nodeCount: (prng) => prng.pick([1, 3, 3, 5, 5, 7]) + (prng.chance(0.35) ? 1 : 0),
  faultPhaseMs: RAFT_FAULT_PHASE_MS,
  create,
};
