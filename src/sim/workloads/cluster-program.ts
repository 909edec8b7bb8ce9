/**
 * The cluster workload's node program: the production `CohortNode` (Raft log + membership state
 * machine + KV + the leader's failure detector, the code the daemon runs) over the simulator's
 * `NodeEnv`, with an observer that traces every change of the applied membership view in the
 * format of `checkers/cluster-events.ts` (`view index viewId members quorate cmd`), and every
 * group view, group message delivery and barrier end in the format of
 * `checkers/cluster-group-events.ts` (`group-view`, `group-deliver`, `barrier-end`). For every
 * applied entry it also traces its fence events (`fence-ledger`), its recovery events and its
 * group removals (`recovery`, `group-removed`: `checkers/cluster-recovery-checker.ts`), in the
 * entry's event order, before the entry's `view`; and it registers the run's recovery
 * participants (`cluster-recovery-participant.ts`).
 *
 * A node whose disk cannot give it a safe start (`RecoveryError`) stays up as a process that
 * refuses every request, as the daemon would exit; the trace says so with `start-refused`.
 *
 * Operator release: `CohortNode` has no API for the membership `release` command yet (the lift
 * of a quarantine). Until it does, `ClusterSimNode.release` hands the command to the leader the
 * way a follower forwards any proposal (a `Forward` peer message with a reserved id counting down
 * from `FORWARD_ID_MAX`, so it never meets the node's own ids); the leader's answer reaches
 * `CohortNode`, which ignores an id it does not know. Simulation only.
 */
import { err, type Result } from '../../lib/errors.js';
import type { NodeId } from '../../lib/ids.js';
import type { GroupView } from '../../groups/index.js';
import type { KvOutput } from '../../log/index.js';
import {
  encodeMembershipCommand,
  type FencePayload,
  type MemberNodeSpec,
  type MembershipEvent,
  type NodeInfo,
} from '../../membership/index.js';
import type { VotequorumOptions } from '../../quorum/index.js';
import type { FenceTopology } from '../../fencing/fence-topology.js';
import type { DlmServiceOptions } from '../../dlm/dlm-service.js';
import {
  type CohortNode,
  createClusterNode,
  MUX_TAG_MEMBERSHIP,
  type ClusterCanary,
  type CohortNodeOptions,
  type ClusterStatus,
  type ClusterTiming,
  type FenceConfirmation,
  type FenceConfirmError,
  type GroupError,
} from '../../services.js';
import type { NodeEnv, TraceFields } from '../../runtime/env.js';
import type { ChannelMessage } from '../../services.js';
import { CHANNEL_ROUTER } from '../../runtime/peer-channels.js';
import { FORWARD_ID_MAX } from '../../runtime/router-message.js';
import { RaftNodeError } from '../../runtime/raft-node.js';
import { RecoveryError } from '../../runtime/raft-persistence.js';
import { StorageError } from '../../storage/index.js';
import { CLUSTER_EVENT, formatMembers } from '../checkers/cluster-events.js';
import { formatGroupMembers, GROUP_EVENT } from '../checkers/cluster-group-events.js';
import {
  GROUP_REMOVED_TRACE_EVENT,
  RECOVERY_TRACE_EVENT,
  recoveryTraceFields,
} from '../checkers/cluster-recovery-checker.js';
import { participateInRecovery, type RecoveryParticipantProfile } from './cluster-recovery-participant.js';

const decoder = new TextDecoder();
/** How long a clean leave may take before it is given up. */
const LEAVE_TIMEOUT_MS = 2_000;

/** What a group call's `done` gets. */
type GroupDone<T> = (r: Result<T, RaftNodeError | GroupError>) => void;

/** Everything the program needs besides the environment. */
export interface ClusterProgramSetup {
  readonly timing: ClusterTiming;
  readonly nodes: readonly MemberNodeSpec[];
  readonly quorum: VotequorumOptions;
  readonly snapshotEntries: number;
  /** The planted bug (simulation only), passed to every node's options. */
  readonly canary: ClusterCanary | undefined;
  /** `lease-overstay` canary: a lapsed lease is still reported valid this long (ms), else 0. */
  readonly leaseOverstayMs?: number;
  /** The run's fence topology (`CohortNodeOptions.fencing`); absent: manual only. */
  readonly fencing?: FenceTopology;
  /** DLM service options (`CohortNodeOptions.dlm`: the `dlm` workload's toss time and canary). */
  readonly dlm?: DlmServiceOptions;
  /**
   * Recovery participants (`cluster-recovery-participant.ts`): every process registers one per
   * group in `groups`, answering as `profile` says; the leader evicts a member that owes a report
   * for `memberTimeoutMs` (`CohortNodeOptions.recoveryMemberTimeoutMs`); `calm` says whether the
   * faults have stopped (participants then answer at once). Absent: no participant (members
   * report at once) and the default timeout.
   */
  readonly recovery?: {
    readonly groups: readonly string[];
    readonly profile: RecoveryParticipantProfile;
    readonly calm: () => boolean;
    readonly memberTimeoutMs: number;
  };
}

/** One incarnation of a simulated cluster node, as the driver sees it. */
export class ClusterSimNode {
  private releaseId = FORWARD_ID_MAX;
  /** Node clock time this incarnation last reported a valid lease (for the `lease-overstay` canary). */
  private leaseSeenMs: number | null = null;

  constructor(
    readonly id: NodeId,
    /** null when the node refused to start from its disk. */
    readonly node: CohortNode | null,
    private readonly env: NodeEnv<ChannelMessage>,
    /** `lease-overstay` canary: a lapsed lease is still reported valid this long (ms), else 0. */
    private readonly leaseOverstayMs = 0,
  ) {}

  /**
   * Whether this node reports a valid leader lease now (`CohortNode.status().leaseValid`), or
   * null when it refused to start. For the lease checker.
   */
  leaseValid(): boolean | null {
    const s = this.status();
    if (s === null) return null;
    const now = this.env.clock.nowMs();
    if (s.leaseValid) {
      this.leaseSeenMs = now;
      return true;
    }
    return this.leaseSeenMs !== null && now - this.leaseSeenMs < this.leaseOverstayMs;
  }

  /** Whether the node runs (false when it refused to start). */
  get usable(): boolean {
    return this.node !== null;
  }

  /** The node's status, or null when it refused to start. */
  status(): ClusterStatus | null {
    return this.node?.services.membership.status() ?? null;
  }

  /** The configured nodes' membership records (empty until configured, or when refused). */
  nodes(): NodeInfo[] {
    return this.node?.services.membership.nodes() ?? [];
  }

  /** See `ClusterNode.fenceConfirm`. */
  fenceConfirm(
    node: NodeId,
    incarnation: number,
    done: (r: Result<FenceConfirmation, RaftNodeError | FenceConfirmError>) => void,
  ): void {
    if (this.node === null) {
      done(err(new RaftNodeError('STOPPED', `node ${this.id} refused to start`)));
      return;
    }
    this.node.services.membership.fenceConfirm(node, incarnation, done);
  }

  /** Leaves the cluster cleanly (`MembershipService.leave`); `done` once applied or failed. */
  leave(done: (error: RaftNodeError | null) => void): void {
    if (this.node === null) {
      done(new RaftNodeError('STOPPED', `node ${this.id} refused to start`));
      return;
    }
    this.node.services.membership.leave(LEAVE_TIMEOUT_MS, done);
  }

  /** See `ClusterNode.put`. */
  put(key: string, value: Uint8Array, done: (r: Result<KvOutput, RaftNodeError>) => void): void {
    if (this.node === null) {
      done(err(new RaftNodeError('STOPPED', `node ${this.id} refused to start`)));
      return;
    }
    this.node.services.kv.put(key, value, done);
  }

  /** See `ClusterNode.group`; null also when the node refused to start. */
  group(name: string): GroupView | null {
    return this.node?.services.groups.group(name) ?? null;
  }

  /** The membership incarnation of this process (0 when the node refused to start). */
  get incarnation(): number {
    return this.node?.incarnation ?? 0;
  }

  /** See `ClusterNode.groupJoin`. */
  groupJoin(group: string, level: number, done: GroupDone<GroupView>): void {
    if (this.node === null) done(this.refused());
    else this.node.services.groups.join(group, level, done);
  }

  /** See `ClusterNode.groupLeave`. */
  groupLeave(group: string, done: GroupDone<void>): void {
    if (this.node === null) done(this.refused());
    else this.node.services.groups.leave(group, done);
  }

  /** See `ClusterNode.groupSend`. */
  groupSend(
    group: string,
    payload: Uint8Array,
    done: GroupDone<{ readonly groupViewId: number; readonly seq: number }>,
  ): void {
    if (this.node === null) done(this.refused());
    else this.node.services.groups.send(group, payload, done);
  }

  /** See `ClusterNode.barrier`. */
  barrier(group: string, name: string, done: GroupDone<{ readonly groupViewId: number }>): void {
    if (this.node === null) done(this.refused());
    else this.node.services.groups.barrier(group, name, done);
  }

  private refused(): Result<never, RaftNodeError> {
    return err(new RaftNodeError('STOPPED', `node ${this.id} refused to start`));
  }

  /**
   * Forwards the membership `release` of `node` to the leader this node knows (see the module
   * comment). Fire and forget: returns false when there is no leader to send it to (or this node
   * leads: a forward goes to another node), and the caller retries later.
   */
  release(node: NodeId): boolean {
    const s = this.status();
    if (s?.leaderId == null || s.leaderId === this.id) return false;
    const body = encodeMembershipCommand({ type: 'release', node });
    const command = new Uint8Array(body.length + 1);
    command[0] = MUX_TAG_MEMBERSHIP;
    command.set(body, 1);
    return this.env.transport.send(s.leaderId, {
      channel: CHANNEL_ROUTER,
      message: { type: 'Forward', id: this.releaseId--, command },
    });
  }
}

/** The last `count` events of the membership stream: those of the entry just applied. */
function appliedEvents(n: CohortNode, count: number): MembershipEvent[] {
  const m = n.services.membership.machine;
  const out: MembershipEvent[] = [];
  let seq = m.nextEventSeq - count;
  while (seq < m.nextEventSeq) {
    const page = m.eventsFrom(seq, count);
    if (!page.ok || page.value.events.length === 0) break; // retention keeps far more than one entry's events
    out.push(...page.value.events);
    seq = page.value.next;
  }
  return out;
}

/** The `fence-ledger` trace fields of one fence event (see `checkers/cluster-events.ts`). */
function fenceFields(index: number, p: FencePayload): TraceFields {
  const base = { index, node: p.node, incarnation: p.incarnation, what: p.what };
  switch (p.what) {
    case 'requested':
      return { ...base, reason: p.reason };
    case 'attempt':
      return {
        ...base,
        device: p.attempt.device,
        level: p.attempt.level,
        result: p.attempt.result,
        round: p.attempt.round,
      };
    case 'fenced':
      return p.proof.by === 'confirm'
        ? { ...base, by: 'confirm' }
        : { ...base, by: p.proof.by, device: p.proof.device, level: p.proof.level };
    case 'unfenced':
      return { ...base, device: p.unfence.device, result: p.unfence.result };
  }
}

/** Starts one incarnation of a cluster node; see the module comment. */
export function startClusterNode(env: NodeEnv<ChannelMessage>, setup: ClusterProgramSetup): ClusterSimNode {
  const holder: { node: CohortNode | null; last: string | null } = { node: null, last: null };
  const traceView = (index: number, cmd: string, change: string | null): void => {
    const n = holder.node;
    if (n === null) return;
    const v = n.services.membership.view();
    const members = formatMembers(v.members);
    const key = `${v.viewId}/${v.quorate}/${members}`;
    if (key === holder.last) return;
    holder.last = key;
    env.trace(CLUSTER_EVENT.view, {
      index,
      viewId: v.viewId,
      members,
      quorate: v.quorate,
      cmd,
      ...(change === null ? {} : { change }),
    });
  };
  /**
   * Traces the fence and recovery events of the entry just applied, and its group removals (for
   * the recovery checker: `cluster-recovery-checker.ts`); returns its view change
   * (`kind:node@inc`), if any.
   */
  const traceEntryEvents = (count: number): string | null => {
    const n = holder.node;
    if (n === null || count === 0) return null;
    let change: string | null = null;
    for (const e of appliedEvents(n, count)) {
      if (e.kind === 'view')
        change = `${e.payload.change.kind}:${e.payload.change.node}@${e.payload.change.incarnation}`;
      if (e.kind === 'fence') env.trace(CLUSTER_EVENT.fence, fenceFields(e.index, e.payload));
      if (e.kind === 'recovery') env.trace(RECOVERY_TRACE_EVENT, recoveryTraceFields(e.index, e.payload));
      if (e.kind === 'group' && e.payload.change.kind === 'removed') {
        const c = e.payload.change;
        env.trace(GROUP_REMOVED_TRACE_EVENT, {
          index: e.index,
          group: e.payload.group,
          node: c.node,
          incarnation: c.incarnation,
        });
      }
    }
    return change;
  };
  const options: CohortNodeOptions = {
    timing: setup.timing,
    nodes: setup.nodes,
    quorum: setup.quorum,
    snapshotEntries: setup.snapshotEntries,
    snapshotCatchUpEntries: Math.max(2, Math.floor(setup.snapshotEntries / 4)),
    ...(setup.canary === undefined ? {} : { canary: setup.canary }),
    ...(setup.fencing === undefined ? {} : { fencing: { topology: setup.fencing } }),
    ...(setup.recovery === undefined ? {} : { recoveryMemberTimeoutMs: setup.recovery.memberTimeoutMs }),
    ...(setup.dlm === undefined ? {} : { dlm: setup.dlm }),
    observer: {
      onMembershipApplied: (index, output) => {
        const change = traceEntryEvents(output?.events ?? 0);
        traceView(index, output?.type ?? 'refused', change);
      },
      // A snapshot install changes the view without applying entries one by one.
      onRestored: (index) => {
        traceView(index, 'restore', null);
      },
      onGroupView: (group, view) => {
        const c = view.change;
        env.trace(GROUP_EVENT.view, {
          group,
          viewId: view.groupViewId,
          members: formatGroupMembers(view.members),
          change: `${c.kind}:${c.node}@${c.incarnation}`,
          self: holder.node?.incarnation ?? 0,
        });
      },
      onGroupDeliver: (group, groupViewId, seq, from, payload) => {
        env.trace(GROUP_EVENT.deliver, {
          group,
          viewId: groupViewId,
          seq,
          from,
          msg: decoder.decode(payload),
          self: holder.node?.incarnation ?? 0,
        });
      },
      // The leader's executor: what it does next for an open fence (diagnostics; no checker reads it).
      onFenceStep: (node, incarnation, step) => {
        const what =
          step.kind === 'run'
            ? `${step.device}#${step.attemptNo}`
            : step.kind === 'wait'
              ? `${step.why}@${Math.round(step.untilMs)}`
              : step.kind === 'exhausted'
                ? `round ${step.round}`
                : '';
        env.trace(CLUSTER_EVENT.fenceStep, { node, incarnation, step: step.kind, what });
      },
      onBarrier: (group, name, groupViewId, outcome) => {
        env.trace(GROUP_EVENT.barrierEnd, { group, name, viewId: groupViewId, outcome });
      },
    },
  };
  let node: CohortNode;
  try {
    node = createClusterNode(env, options);
  } catch (e) {
    // A read error at start fail-stopped the incarnation: the simulator already crashed it.
    if (e instanceof StorageError && e.code === 'READ_FAILED') return new ClusterSimNode(env.nodeId, null, env);
    if (!(e instanceof RecoveryError)) throw e;
    env.trace(CLUSTER_EVENT.startRefused, { code: e.code, reason: e.message });
    return new ClusterSimNode(env.nodeId, null, env);
  }
  holder.node = node;
  if (setup.recovery !== undefined)
    participateInRecovery(
      env,
      node.services.recovery,
      setup.recovery.groups,
      setup.recovery.profile,
      setup.recovery.calm,
    );
  node.start((error) => {
    if (error !== null) env.trace(CLUSTER_EVENT.startRefused, { code: error.name, reason: error.message });
  });
  return new ClusterSimNode(env.nodeId, node, env, setup.leaseOverstayMs ?? 0);
}
