/**
 * The `cluster` workload: the production `CohortNode` (Raft log, membership state machine, KV
 * and the leader's failure detector) on every node, under crashes, restarts, pauses, partitions,
 * clogs, loss, duplication and clock drift (no disk bit flips), judged from trace events by the
 * membership checkers (`src/sim/checkers/cluster-*.ts`): view agreement, no quorate view without
 * a quorum of votes, failure-detector accuracy (no eviction of a node that only stalled below the
 * bound) and completeness (a node killed after the faults is removed within 3 s), and liveness
 * (the running nodes converge to one quorate view holding all of them). Service groups ride
 * along (`cluster-group-driver.ts`: joins, leaves, messages, barriers in 1-3 groups), judged by
 * group view agreement, virtual synchrony and barrier correctness. Fencing: half the seeds fence
 * automatically (the leader's executor runs scripted agents: `cluster-fencing.ts`), the others by
 * the driver's confirmations; the fence checker (`cluster-fence-checker.ts`) judges the ledger
 * (closed once, never for a clean leave, no admission while a fence is open, every fence closed
 * after the faults), and the liveness condition waits for every fence to close. Recovery: every
 * group has a level >= 1, so failures open recovery rounds; every process runs a recovery
 * participant per group (`cluster-recovery-participant.ts`: slow, failing and hanging answers in
 * the fault phase), and the recovery checker (`cluster-recovery-checker.ts`) judges the rounds'
 * starts against the fence ledger and lower levels; the liveness condition waits for every
 * round to end.
 *
 * Per seed (all from the workload's stream): 3, 4 or 5 configured nodes; votes of 1, or 1..3 in
 * some seeds; sometimes an explicit expected_votes above the total, and auto_tie_breaker (lowest
 * or highest) in some seeds with an even total; a snapshot interval that is sometimes small. In
 * about a quarter of the seeds `shapeFaults` keeps only pauses, short ones (mean 100-400 ms), so
 * that the accuracy checker bites: a stall below 1 s must never evict anyone.
 *
 * Timing (the daemon's defaults): tick 50 ms, heartbeat 100 ms, election 10 ticks; detector:
 * suspect after 1000 ms, suspicion window 500..1000 ms, local-health extension up to 3000 ms.
 */
import { HARNESS_TIMING } from '../cluster-harness.js';
import { assert } from '../../lib/assert.js';
import type { NodeId } from '../../lib/ids.js';
import type { Prng } from '../../lib/prng.js';
import type { MemberNodeSpec } from '../../membership/index.js';
import {
  buildVotequorum,
  DEFAULT_VOTEQUORUM_OPTIONS,
  type QuorumConfig,
  type VotequorumOptions,
} from '../../quorum/index.js';
import { CLUSTER_CANARIES, type ClusterTiming } from '../../services.js';
import { LeaseChecker, LeaseSampler } from '../checkers/lease-checker.js';
import type { NodeEnv } from '../../runtime/env.js';
import { nodePeerCodec, type ChannelMessage } from '../../services.js';
import { DISK_SYNC_MS_MAX, SLOW_DISK_SYNC_MS, type FaultProfile } from '../fault-profile.js';
import type { DriverContext, Workload, WorkloadRun, WorkloadSetup } from '../workload.js';
import { ClusterAccuracyChecker } from '../checkers/cluster-detector-checker.js';
import { ClusterGoneChecker } from '../checkers/cluster-gone-checker.js';
import { ClusterLiveness } from '../checkers/cluster-liveness.js';
import { ClusterQuorumChecker, ClusterViewChecker } from '../checkers/cluster-view-checker.js';
import { ClusterBarrierChecker } from '../checkers/cluster-barrier-checker.js';
import { ClusterGroupViewChecker } from '../checkers/cluster-group-view-checker.js';
import { ClusterSynchronyChecker } from '../checkers/cluster-synchrony-checker.js';
import { ClusterDriver } from './cluster-driver.js';
import { ClusterGroupDriver } from './cluster-group-driver.js';
import { startClusterNode, type ClusterSimNode } from './cluster-program.js';
import { ClusterFenceChecker } from '../checkers/cluster-fence-checker.js';
import { CLUSTER_CLIENT_EVENT } from '../checkers/cluster-events.js';
import { FENCE_ROUND_BACKOFF_MS_MAX } from '../../constants.js';
import { drawFencing, FenceRig } from './cluster-fencing.js';
import { ClusterRecoveryChecker } from '../checkers/cluster-recovery-checker.js';
import { drawParticipantProfile } from './cluster-recovery-participant.js';

/**
 * The planted bugs this workload catches, with the checker that must catch each: every one of
 * `CLUSTER_CANARIES` (`CohortNodeOptions.canary`; the fencing ones are `FenceCanary`), and
 * `lease-overstay` (a node reports its lease valid for `LEASE_OVERSTAY_MS` after it lapsed;
 * planted in `ClusterSimNode.leaseValid`).
 */
export const CLUSTER_WORKLOAD_CANARIES: readonly (readonly [string, string])[] = [
  ['evict-on-missed-heartbeat', 'fd-accuracy'],
  ['quorate-without-quorum', 'view-quorum'],
  ['diverge-views', 'view-agreement'],
  ['never-fail', 'fd-completeness'],
  ['pause-is-gone', 'gone-proof'],
  ['deliver-to-newcomer', 'virtual-synchrony'],
  ['barrier-without-all', 'barrier'],
  ['lease-overstay', 'lease'],
  ['fence-twice', 'fence-once'],
  ['admit-before-fence', 'fence-admission'],
  ['fence-clean-leave', 'fence-clean-leave'],
  ['start-before-fence', 'recovery-fence'],
  ['start-before-lower', 'recovery-levels'],
  ['skip-abort', 'recovery-fence'],
];
const CANARY_NAMES: readonly string[] = CLUSTER_WORKLOAD_CANARIES.map(([c]) => c);
/** A lapsed lease reported valid this long by the `lease-overstay` canary (four maximal election timeouts). */
const LEASE_OVERSTAY_MS = 8 * HARNESS_TIMING.electionTicks * HARNESS_TIMING.tickMs;
/**
 * How often the lease sampler asks every node for its lease, ms of true virtual time: half a tick
 * (leases change on ticks and messages), since `ClusterNode.status()` builds a whole report.
 */
const LEASE_SAMPLE_MS = 25;

/** Virtual length of the fault phase. */
export const CLUSTER_FAULT_PHASE_MS = 30_000;
/** Everything converges within this long after the faults stop. */
const LIVENESS_BOUND_MS = 60_000;
/**
 * In automatic-fencing seeds, an open fence is closed within this long after the faults stop (or
 * after it opened, if later): the executor may be in a round backoff of up to
 * FENCE_ROUND_BACKOFF_MS_MAX after failures in the fault phase, then needs one round (every
 * device's tries, a retry delay each, a hang's timeout), a fence delay and, under a new leader,
 * the resume delay and an election.
 */
const FENCE_CLOSE_BOUND_MS = FENCE_ROUND_BACKOFF_MS_MAX + 20_000;
/** Mean gap between the operator's clean leaves in the fault phase. */
const LEAVE_MEAN_MS = 6_000;
/** A node killed after the faults must be removed by every survivor within this long (issue 6). */
export const DETECTION_BOUND_MS = 3_000;
/**
 * Added to the detection bound when the leader changed meanwhile: under message loss a leader
 * holding a bare quorum may lose its check-quorum lease, and the next one needs an election
 * (pre-vote and vote, 10-20 ticks each try) before its detector takes over.
 */
const ELECTION_ALLOWANCE_MS = 3_000;
/** The stall a node must survive without eviction (issue 6: "a node that stalls for 1 s"). */
export const STALL_BOUND_MS = 1_000;
/**
 * The recovery member timeout of the simulated nodes (the daemon's is `RECOVERY_MEMBER_TIMEOUT_MS`,
 * 30 s): short enough that a member whose participant hangs is evicted before the group's churn
 * (a join or leave every 2 s or so per group) restarts the round and asks it again.
 */
const SIM_RECOVERY_MEMBER_TIMEOUT_MS = 2_500;
/** Chance that a seed keeps only short pauses. */
const PAUSE_ONLY_PROBABILITY = 0.25;

/** The daemon's timing at its defaults (the cluster harness's). */
export const CLUSTER_TIMING: ClusterTiming = HARNESS_TIMING;

/** The run's configuration, drawn in `create`. */
interface Shape {
  readonly nodes: readonly MemberNodeSpec[];
  readonly options: VotequorumOptions;
  readonly quorum: QuorumConfig;
  readonly weighted: boolean;
}

function drawShape(ids: readonly NodeId[], prng: Prng, twoNode: boolean): Shape {
  if (twoNode) return twoNodeShape(ids);
  const weighted = prng.chance(0.3);
  const nodes: MemberNodeSpec[] = ids.map((id) => ({
    nodeId: id,
    name: `n${id}`,
    address: `10.0.0.${id}:7400`,
    votes: weighted ? prng.int(1, 4) : 1,
    role: 'voter',
  }));
  const total = nodes.reduce((a, n) => a + n.votes, 0);
  const tieBreaker =
    total % 2 === 0 && prng.chance(0.5)
      ? prng.pick([{ kind: 'lowest' as const }, { kind: 'highest' as const }])
      : { kind: 'off' as const };
  const expectedVotes = prng.chance(0.15) ? total + 1 : undefined;
  const options: VotequorumOptions = { ...DEFAULT_VOTEQUORUM_OPTIONS, autoTieBreaker: tieBreaker, expectedVotes };
  const built = buildVotequorum(
    nodes.map((n) => ({ nodeId: n.nodeId, votes: n.votes, role: 'data' as const })),
    options,
  );
  assert(built.ok, `the drawn quorum options are valid: ${built.ok ? '' : built.error.message}`);
  return { nodes, options, quorum: built.value.config, weighted };
}

/**
 * The detection bound (issue 6) is promised for disks whose fsync takes at most DISK_SYNC_MS_MAX:
 * under 30 % loss, a bare quorum electing over a slow disk (every vote waits for an fsync of up
 * to 200 ms) needs longer. Slow-disk runs are the raft workload's.
 */
function fastDisk(drawn: FaultProfile): FaultProfile {
  const slow = drawn.disk.syncLatencyMs[0] >= SLOW_DISK_SYNC_MS[0];
  return slow
    ? { ...drawn, disk: { ...drawn.disk, syncLatencyMs: [0.1, DISK_SYNC_MS_MAX] as [number, number] } }
    : drawn;
}

/**
 * A two_node run always splits and crashes (what the fence race is for), at a pace that lets the
 * pair form a quorate view between faults (a race needs one), and without disk faults (the raft
 * workload's business; a two-node pair fail-stopping on every other write never settles).
 */
function twoNodeFaults(drawn: FaultProfile, prng: Prng): FaultProfile {
  return {
    ...fastDisk(drawn),
    partition: { meanIntervalUs: prng.int(5_000_000, 12_000_001), meanDurationUs: prng.int(1_500_000, 4_000_001) },
    crash: { meanIntervalUs: prng.int(10_000_000, 20_000_001), meanDurationUs: prng.int(500_000, 3_000_001) },
    ioError: undefined,
    powerCut: undefined,
    bitFlip: undefined,
  };
}

/** A two_node cluster: two voters of one vote each, two_node and wait_for_all on. */
function twoNodeShape(ids: readonly NodeId[]): Shape {
  assert(ids.length === 2, 'a two_node run has two nodes');
  const nodes: MemberNodeSpec[] = ids.map((id) => ({
    nodeId: id,
    name: `n${id}`,
    address: `10.0.0.${id}:7400`,
    votes: 1,
    role: 'voter',
  }));
  const options: VotequorumOptions = { ...DEFAULT_VOTEQUORUM_OPTIONS, twoNode: true, waitForAll: true };
  const built = buildVotequorum(
    nodes.map((n) => ({ nodeId: n.nodeId, votes: n.votes, role: 'data' as const })),
    options,
  );
  assert(built.ok, `two_node options are valid: ${built.ok ? '' : built.error.message}`);
  return { nodes, options, quorum: built.value.config, weighted: false };
}

/** Some seeds keep only short pauses (see the module comment); others keep the drawn mix. */
function shapeFaults(drawn: FaultProfile, prng: Prng): FaultProfile {
  const profile = fastDisk(drawn);
  if (!prng.chance(PAUSE_ONLY_PROBABILITY)) return profile;
  return {
    ...profile,
    partition: undefined,
    crash: undefined,
    ioError: undefined,
    powerCut: undefined,
    clog: undefined,
    bitFlip: undefined,
    pause: { meanIntervalUs: prng.int(300_000, 2_000_001), meanDurationUs: prng.int(100_000, 400_001) },
  };
}

function create(setup: WorkloadSetup, twoNode = false): WorkloadRun<ChannelMessage, ClusterSimNode> {
  assert(
    setup.canary === undefined || (twoNode ? TWO_NODE_CANARY_NAMES : CANARY_NAMES).includes(setup.canary),
    `unknown ${twoNode ? 'two-node' : 'cluster'} canary ${setup.canary ?? ''}`,
  );
  const canary = CLUSTER_CANARIES.find((c) => c === setup.canary);
  const leases = new LeaseChecker((m) => {
    setup.violation('lease', m);
  });
  const sampler = new LeaseSampler<ClusterSimNode>(LEASE_SAMPLE_MS, (n) => n.leaseValid());
  const prng = setup.prng;
  const shape = drawShape(setup.nodes, prng.fork('shape'), twoNode);
  const snapshotEntries = prng.fork('snapshots').pick([64, 256, 10_000]);
  const fencing = drawFencing(shape.nodes, prng.fork('fencing'), twoNode);
  const rig = new FenceRig(fencing, shape.nodes);
  const fences = new ClusterFenceChecker({ closeBoundMs: FENCE_CLOSE_BOUND_MS }, (checker, m) => {
    setup.violation(checker, m);
  });
  const views = new ClusterViewChecker((m) => {
    setup.violation('view-agreement', m);
  });
  const quorum = new ClusterQuorumChecker(
    shape.quorum,
    (m) => {
      setup.violation('view-quorum', m);
    },
    twoNode
      ? {
          nodes: [setup.nodes[0] as NodeId, setup.nodes[1] as NodeId],
          fenceOpenAt: (node, index) => fences.fenceOpenAt(node, index),
        }
      : null,
  );
  const accuracy = new ClusterAccuracyChecker(
    { stallBoundMs: STALL_BOUND_MS, lookbackMs: 6_000, mergeGapMs: 300 },
    (m) => {
      setup.violation('fd-accuracy', m);
    },
  );
  const gone = new ClusterGoneChecker((m) => {
    setup.violation('gone-proof', m);
  });
  const groupViews = new ClusterGroupViewChecker((m) => {
    setup.violation('group-view-agreement', m);
  });
  const synchrony = new ClusterSynchronyChecker((m) => {
    setup.violation('virtual-synchrony', m);
  });
  const barriers = new ClusterBarrierChecker((m) => {
    setup.violation('barrier', m);
  });
  const recovery = new ClusterRecoveryChecker(fences, (checker, m) => {
    setup.violation(checker, m);
  });
  const groupCount = prng.fork('groups').int(1, 4);
  const groupNames = Array.from({ length: groupCount }, (_, i) => `g${i + 1}`);
  const participants = drawParticipantProfile(prng.fork('recovery'));
  /** The driver's phase, once it started (the participants answer at once after the faults). */
  let phase: (() => string) | null = null;
  const groups = new ClusterGroupDriver({
    groups: groupNames,
    churnMeanMs: 800,
    leaveProbability: 0.35,
    firstJoinWithinMs: 3_000,
    sendMeanMs: 150,
    barrierMeanMs: 1_500,
    barrierSpreadMs: 300,
    levelMax: 3,
  });
  const liveness = new ClusterLiveness(
    setup.nodes.length,
    // Convergence waits for the fences of restarted nodes, which automatic seeds may take this long to close.
    fencing.mode === 'auto' ? Math.max(LIVENESS_BOUND_MS, FENCE_CLOSE_BOUND_MS + 10_000) : LIVENESS_BOUND_MS,
    DETECTION_BOUND_MS,
    ELECTION_ALLOWANCE_MS,
    (checker, m) => {
      setup.violation(checker, m);
    },
  );
  const driver = new ClusterDriver(
    {
      operatorPeriodMs: 250,
      powerOffMs: 300,
      actionCooldownMs: 1_000,
      putMeanMs: 300,
      probePeriodMs: 100,
      quorum: shape.quorum,
      leaveMeanMs: LEAVE_MEAN_MS,
      fencing: { mode: fencing.mode, lateConfirmMs: fencing.lateConfirmMs, bootMs: fencing.bootMs },
    },
    (ctx: DriverContext<ClusterSimNode>) => {
      ctx.trace(CLUSTER_CLIENT_EVENT.fenceTopology, {
        mode: fencing.mode,
        devices: fencing.describe,
        levels: fencing.topology.levels.length,
        lateConfirm: fencing.lateConfirmMs !== null,
      });
      rig.install(ctx, {
        powerOff: (node, afterMs, powerBack) => {
          driver.fenceEffect(node, afterMs, powerBack);
        },
        alive: (node) => ctx.call(node, () => undefined),
      });
      liveness.attachClock(() => ctx.nowMs());
      phase = () => ctx.phase();
      groups.start(ctx);
      sampler.start(ctx);
    },
  );
  const program = {
    codec: nodePeerCodec(),
    start: (env: NodeEnv<ChannelMessage>) =>
      startClusterNode(env, {
        timing: CLUSTER_TIMING,
        nodes: shape.nodes,
        quorum: shape.options,
        snapshotEntries,
        canary,
        leaseOverstayMs: setup.canary === 'lease-overstay' ? LEASE_OVERSTAY_MS : 0,
        fencing: fencing.topology,
        recovery: {
          groups: groupNames,
          profile: participants,
          memberTimeoutMs: SIM_RECOVERY_MEMBER_TIMEOUT_MS,
          calm: () => phase !== null && phase() !== 'fault',
        },
      }),
  };
  const settled = {
    boundMs: liveness.boundMs,
    satisfied: () => liveness.satisfied() && fences.settled() && recovery.settled(),
    describe: () =>
      [
        ...(liveness.satisfied() ? [] : [liveness.describe()]),
        ...(fences.settled() ? [] : [`fences still open: ${fences.describeOpen()}`]),
        ...(recovery.settled() ? [] : [`recovery rounds still open: ${recovery.describeOpen()}`]),
      ].join('; '),
  };
  return {
    program,
    driver,
    checkers: [views, quorum, accuracy, gone, groupViews, synchrony, barriers, liveness, leases, fences, recovery],
    liveness: settled,
    stats: () => [
      ['nodes', shape.nodes.length],
      ['weighted', shape.weighted ? 1 : 0],
      ['tie-breaker', shape.quorum.tieBreaker === undefined ? 0 : 1],
      ['expected-votes', shape.quorum.expectedVotes],
      ['views', views.views],
      ['view-checks', views.checks],
      ['quorum-checks', quorum.checks],
      ['evictions', accuracy.evictions],
      ['false-evictions', accuracy.falseEvictions],
      ['process-gone-failures', gone.goneFailures],
      ['evictions-unjudged', accuracy.unjudged],
      ['fence-auto', fencing.mode === 'auto' ? 1 : 0],
      ['fences-opened', fences.counts.opened],
      ['fences-closed', fences.counts.closed],
      ['fences-by-agent', fences.counts.byAgent],
      ['fences-by-confirm', fences.counts.byConfirm],
      ['fence-attempts', fences.counts.attempts],
      ['fence-agent-crashes', driver.counts.agentCrashes],
      ['fence-late-confirms', driver.counts.lateConfirms],
      ['self-fences', fences.counts.selfFences],
      ['two-node-races', fences.counts.races],
      ['two-node-race-wins', fences.counts.raceWins],
      ['two-node-promotions', fences.counts.promotions],
      ['clean-leaves', driver.counts.leaves],
      ['fence-confirms', driver.counts.fenceConfirms],
      ['power-cycles', driver.counts.powerCycles],
      ['releases', driver.counts.releases],
      ['puts', driver.counts.puts],
      ['converged-after-ms', liveness.convergedAfterMs ?? -1],
      ['detection-probed', liveness.probed ? 1 : 0],
      ['detection-ms', liveness.detectionMs ?? -1],
      ['detection-host-up', liveness.killHostUp ? 1 : 0],
      ['detection-across-election', liveness.detectionAcrossElection ? 1 : 0],
      ['groups', groupCount],
      ['group-views', groupViews.views],
      ['group-view-checks', groupViews.checks],
      ['group-joins', groups.counts.joins],
      ['group-leaves', groups.counts.leaves],
      ['group-sends', groups.counts.sends],
      ['group-sends-acked', groups.counts.sendsAcked],
      ['group-delivered', synchrony.deliveries],
      ['synchrony-checks', synchrony.checks],
      ['barrier-rounds', groups.counts.barrierRounds],
      ['barrier-calls', groups.counts.barrierCalls],
      ['barriers-reached', barriers.reached],
      ['barriers-failed', barriers.failed],
      ['barrier-checks', barriers.checks],
      ['recovery-participants-slow', Math.round(participants.slow * 100)],
      ['recovery-opened', recovery.counts.opened],
      ['recovery-aborted', recovery.counts.aborted],
      ['recovery-stopped', recovery.counts.stopped],
      ['recovery-fence-satisfied', recovery.counts.fenceSatisfied],
      ['recovery-start-due', recovery.counts.startDue],
      ['recovery-member-started', recovery.counts.memberStarted],
      ['recovery-member-error', recovery.counts.memberError],
      ['recovery-member-evicted', recovery.counts.memberEvicted],
      ['recovery-finished', recovery.counts.finished],
      ['lease-checks', leases.checks],
      ['lease-held-samples', leases.held],
    ],
  };
}

/**
 * The two_node workload: the cluster workload on two nodes with votequorum's `two_node` and
 * `wait_for_all`, fencing automatically with program devices (`drawFencing`): a split is settled
 * by the fence race (`src/fencing/two-node-race.ts`) and the Raft core's `peerFenced`. Its
 * checkers are the cluster workload's, the quorum checker judging a lone member's quorate view by
 * its peer's fence; its canary `two-node-unfenced` (the race won without a fence: both halves
 * commit alone) is caught by view agreement.
 */
export const TWO_NODE_WORKLOAD_CANARIES: readonly (readonly [string, string])[] = [
  ['two-node-unfenced', 'view-agreement'],
];
const TWO_NODE_CANARY_NAMES: readonly string[] = TWO_NODE_WORKLOAD_CANARIES.map(([c]) => c);

/** The registered cluster workload. */
export const clusterWorkload: Workload<ChannelMessage, ClusterSimNode> = {
  name: 'cluster',
  description:
    'CohortNode membership, service groups and fencing: view agreement, quorate views, failure-detector accuracy and completeness, convergence, group view agreement, virtual synchrony, barriers, the fence ledger (closed once, no fence for a clean leave, no admission before the fence, fences closed after the faults), recovery rounds (no start before the fences of members lost uncleanly, nor beside an open lower level; every round ends after the faults)',
  canaries: CANARY_NAMES,
  tolerates: { diskCorruption: false, ioErrors: true },
  nodeCount: (prng) => prng.pick([3, 3, 4, 5, 5]),
  faultPhaseMs: CLUSTER_FAULT_PHASE_MS,
  shapeFaults,
  create,
};

/** The registered two_node workload (see `TWO_NODE_WORKLOAD_CANARIES`). */
export const twoNodeWorkload: Workload<ChannelMessage, ClusterSimNode> = {
  ...clusterWorkload,
  name: 'two-node',
  description:
    'the cluster workload on a two_node cluster: the fence race settles every split, the survivor commits alone only once its peer is fenced, the peer returns as a learner and gets its vote back',
  canaries: TWO_NODE_CANARY_NAMES,
  nodeCount: () => 2,
  // Long enough for several splits between quorate spells.
  faultPhaseMs: 2 * CLUSTER_FAULT_PHASE_MS,
  shapeFaults: twoNodeFaults,
  create: (setup) => create(setup, true),
};
