/**
 * The `dlm` workload: a dlmtest-style random stress of the distributed lock manager on the
 * production `CohortNode` (`cluster-program.ts`), 3-5 nodes, every node in lockspace `ls`, 2-4
 * client sessions per node drawing random operations on 16 resources (`dlm-driver.ts`). Judged
 * from the clients' trace only (`checkers/dlm-*.ts`): mode safety (no two incompatible modes held
 * on a resource at any instant, by every node's grants), legal replies (synchronous refusals and
 * completions fit the calls, exactly one completion per accepted operation), value blocks (a read
 * returns the last value a PW/EX holder wrote, VALNOTVALID when invalidated), and no lost
 * wake-ups (blocking notifications reach holders in the way; after the faults every accepted
 * operation completes and every lock is released).
 *
 * Faults: the network's loss (up to 30 %), duplication, reordering and latency as drawn, and
 * brief clogs (mean 20-100 ms), with clock drift. **No crashes, pauses, partitions or disk
 * faults**, nothing that could change the lockspace's membership. DLM recovery after a member
 * departs (remastering, purging its locks once fenced) is built and tested on the node layer
 * (`src/dlm/dlm-core.test.ts`) and with real daemons (`src/node/dlm-process.test.ts`); extending
 * this workload with crashes, fences and partitions is the next issue's (it needs the driver to
 * confirm fences and reopen lockspaces on restarted nodes). A `dlm-membership` violation flags a
 * run in which a lockspace member was removed anyway (the fault model broke its promise).
 *
 * Per seed: the node count, the clients per node, and the toss time of idle resources (1, 3 or
 * 10 s: short ones make masters drop resources and clients look them up again, mid-traffic).
 */
import { assert } from '../../lib/assert.js';
import type { NodeId } from '../../lib/ids.js';
import type { Prng } from '../../lib/prng.js';
import type { MemberNodeSpec } from '../../membership/index.js';
import { DEFAULT_VOTEQUORUM_OPTIONS } from '../../quorum/index.js';
import { nodePeerCodec, type ChannelMessage } from '../../services.js';
import type { NodeEnv } from '../../runtime/env.js';
import { DLM_CANARIES, type DlmCanary } from '../../dlm/dlm-core.js';
import { DLM_LVB_BYTES_DEFAULT } from '../../constants.js';
import type { FaultProfile } from '../fault-profile.js';
import { DISK_SYNC_MS_MAX } from '../fault-profile.js';
import type { Checker, Workload, WorkloadRun, WorkloadSetup } from '../workload.js';
import type { SimEvent } from '../trace.js';
import { DlmModeChecker } from '../checkers/dlm-mode-checker.js';
import { DlmReplyChecker } from '../checkers/dlm-reply-checker.js';
import { DlmLvbChecker } from '../checkers/dlm-lvb-checker.js';
import { DlmWakeupChecker } from '../checkers/dlm-wakeup-checker.js';
import { GROUP_EVENT } from '../checkers/cluster-group-events.js';
import { CLUSTER_TIMING } from './cluster.js';
import { startClusterNode, type ClusterSimNode } from './cluster-program.js';
import { DLM_SIM_LOCKSPACE, DlmDriver } from './dlm-driver.js';

/**
 * The planted bugs (`DlmCanary`, threaded through `CohortNodeOptions.dlm`), with the checker that
 * must catch each.
 */
export const DLM_WORKLOAD_CANARIES: readonly (readonly [DlmCanary, string])[] = [
  ['grant-incompatible', 'dlm-mode-safety'],
  ['drop-bast', 'dlm-wakeup'],
  ['forget-closed-session', 'dlm-wakeup'],
];
assert(DLM_WORKLOAD_CANARIES.map(([c]) => c).join() === DLM_CANARIES.join(), 'every DLM canary has its checker');

/** Virtual length of the fault phase. */
export const DLM_FAULT_PHASE_MS = 20_000;
/** Every operation completes and every lock is released within this long after the faults. */
const LIVENESS_BOUND_MS = 30_000;
/**
 * A holder in the way of a waiter gets a blocking notification within this long: a message and
 * its retransmissions under 30 % loss, a lookup, and a clog of a few hundred ms, with margin.
 */
const BAST_BOUND_MS = 4_000;
/** A sticky grant is released after this long without a bast (longer than `BAST_BOUND_MS`). */
const STICKY_HOLD_MS = 8_000;
/**
 * The value-block checker allows for a tossed resource (no block) after its master may have been
 * idle for the toss time less this: clock drift (at most 5 %) and one 50 ms tick.
 */
const tossGapMs = (tossMs: number): number => Math.max(0, Math.floor(tossMs * 0.94) - 100);

function drawNodes(ids: readonly NodeId[]): MemberNodeSpec[] {
  return ids.map((id) => ({ nodeId: id, name: `n${id}`, address: `10.0.0.${id}:7400`, votes: 1, role: 'voter' }));
}

/** Only what the DLM promises to survive today (see the module comment). */
function shapeFaults(drawn: FaultProfile, prng: Prng): FaultProfile {
  const slow = drawn.disk.syncLatencyMs[0] > DISK_SYNC_MS_MAX;
  return {
    ...drawn,
    partition: undefined,
    crash: undefined,
    pause: undefined,
    ioError: undefined,
    powerCut: undefined,
    bitFlip: undefined,
    clog:
      drawn.clog === undefined
        ? undefined
        : { meanIntervalUs: drawn.clog.meanIntervalUs, meanDurationUs: prng.int(20_000, 100_001) },
    disk: slow ? { ...drawn.disk, syncLatencyMs: [0.1, DISK_SYNC_MS_MAX] } : drawn.disk,
  };
}

/** Flags any removal from the lockspace's group: the workload promised none (see the module comment). */
class MembershipGuard implements Checker {
  readonly name = 'dlm-membership';
  constructor(private readonly violation: (m: string) => void) {}
  observe(e: SimEvent): void {
    if (e.event !== GROUP_EVENT.view || e.fields['group'] !== `dlm:${DLM_SIM_LOCKSPACE}`) return;
    const change = e.fields['change'];
    if (typeof change === 'string' && !change.startsWith('joined:'))
      this.violation(`lockspace member change ${change}: this workload injects no fault that should cause one`);
  }
}

function create(setup: WorkloadSetup): WorkloadRun<ChannelMessage, ClusterSimNode> {
  const canary = DLM_CANARIES.find((c) => c === setup.canary);
  assert(setup.canary === undefined || canary !== undefined, `unknown dlm canary ${setup.canary ?? ''}`);
  const prng = setup.prng;
  const clientsPerNode = prng.fork('clients').int(2, 5);
  const tossMs = prng.fork('toss').pick([1_000, 3_000, 10_000]);
  const nodes = drawNodes(setup.nodes);
  const mode = new DlmModeChecker((m) => {
    setup.violation('dlm-mode-safety', m);
  });
  const replies = new DlmReplyChecker((m) => {
    setup.violation('dlm-replies', m);
  });
  const lvb = new DlmLvbChecker({ resetGapMs: tossGapMs(tossMs) }, (m) => {
    setup.violation('dlm-lvb', m);
  });
  const wakeup = new DlmWakeupChecker(replies, { boundMs: LIVENESS_BOUND_MS, bastBoundMs: BAST_BOUND_MS }, (m) => {
    setup.violation('dlm-wakeup', m);
  });
  const guard = new MembershipGuard((m) => {
    setup.violation('dlm-membership', m);
  });
  const driver = new DlmDriver({
    resources: 16,
    clientsPerNode,
    stepMeanMs: 120,
    locksPerClientMax: 4,
    stickyHoldMs: STICKY_HOLD_MS,
    lvbBytes: DLM_LVB_BYTES_DEFAULT,
  });
  const program = {
    codec: nodePeerCodec(),
    start: (env: NodeEnv<ChannelMessage>) =>
      startClusterNode(env, {
        timing: CLUSTER_TIMING,
        nodes,
        quorum: DEFAULT_VOTEQUORUM_OPTIONS,
        snapshotEntries: 10_000,
        canary: undefined,
        dlm: { tossMs, ...(canary === undefined ? {} : { canary }) },
      }),
  };
  return {
    program,
    driver,
    checkers: [guard, replies, mode, lvb, wakeup],
    liveness: wakeup,
    stats: () => [
      ['nodes', nodes.length],
      ['clients-per-node', clientsPerNode],
      ['toss-ms', tossMs],
      ['calls', driver.counts.calls],
      ['refused', driver.counts.refused],
      ['invalid-calls', driver.counts.invalidCalls],
      ['conversions', driver.counts.conversions],
      ['cancels', driver.counts.cancels],
      ['force-unlocks', driver.counts.forceUnlocks],
      ['session-closes', driver.counts.closes],
      ['lvb-writes', driver.counts.lvbWrites],
      ['basts', driver.counts.basts],
      ['completions', replies.counts.completions],
      ['deadlocks', replies.counts.deadlocks],
      ['demoted', replies.counts.demoted],
      ['alt-grants', replies.counts.altmode],
      ['grant-checks', mode.checks],
      ['lvb-reads', lvb.reads],
      ['bast-checks', wakeup.checks],
    ],
  };
}

/** The registered DLM workload. */
export const dlmWorkload: Workload<ChannelMessage, ClusterSimNode> = {
  name: 'dlm',
  description:
    'the DLM under random dlmtest-style clients (all modes, conversions, NOQUEUE, TIMEOUT, ALT modes, CONVDEADLK, QUECVT, value blocks, cancels, FORCEUNLOCK, sessions closed mid-operation) with loss, duplication, reordering and brief clogs: mode safety, legal replies, value blocks, no lost wake-ups',
  canaries: DLM_CANARIES,
  tolerates: { diskCorruption: false, ioErrors: false },
  nodeCount: (prng) => prng.pick([3, 4, 5]),
  faultPhaseMs: DLM_FAULT_PHASE_MS,
  shapeFaults,
  create,
};
