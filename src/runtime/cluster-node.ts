/**
 * `ClusterNode`: the node program of a cohort daemon. It runs the Raft shell (`RaftNode`) over
 * a `StateMachineMux` of the membership state machine and the KV store, and adds what makes a
 * set of Raft replicas a cluster (design note sections 1-3, docs/membership.md):
 *
 * - **Forwarding.** The Raft core refuses proposals on followers, so a follower sends each
 *   proposal to the leader (`Forward`); the leader proposes it and answers with the index it was
 *   applied at; the follower then takes the result from its own state machine when it applies
 *   that index (every node computes the same result), so a call returns only once the calling
 *   node reflects it. Definite refusals (`NOT_LEADER`, `BUSY`) are retried until the request's
 *   deadline; an unknown outcome is never retried for non-idempotent commands.
 * - **Bootstrap.** The first leader proposes the membership `configure` command (the configured
 *   nodes and quorum options) while none is applied; an identical repeat is a no-op.
 * - **Join and leave.** Once configured, the node proposes `join(self, incarnation)` and retries
 *   until its incarnation is in the view (or waits for a fence, or is quarantined). `leave`
 *   proposes `leave(self, incarnation)` and reports when it is applied or its deadline passed.
 * - **Failure detection.** The leader runs one `FailureDetector` per leadership, fed by every
 *   message it receives (Raft acknowledgements and pings) and by the reachability rows every
 *   node sends with its `Ping` once per heartbeat; its `fail`/`quarantine` decisions are
 *   proposed and retried (idempotent commands) until applied or leadership is lost. The tick
 *   timer's lateness is the detector's measure of its own health.
 * - **Status** with the local quorum verdict (`localQuorumStatus`), and linearizable KV reads.
 * - **Manual fencing** (`fenceConfirm`): an operator's confirmation that a node's incarnation
 *   was fenced becomes the membership `fenced` command, which admits a waiting incarnation.
 * - **Reads after a stall.** The Raft shell counts one tick per timer firing, so after the
 *   process was stopped (SIGSTOP, a long GC pause) its tick count lags real time and a leader's
 *   lease, measured in ticks, would outlive the real one: meanwhile the others may have elected
 *   a new leader and committed writes. When this node sees its event loop stalled (its tick late
 *   by a whole tick or more), it holds every read for `electionTicks + READ_HOLD_EXTRA_TICKS`
 *   ticks, long enough for any lease granted before the stall to expire in tick time too.
 *
 * Pure: only `NodeEnv` (clock, timers, transport, disk, prng), so the simulator runs the same
 * code. Every callback runs on the environment's single event loop; nothing is re-entrant.
 */
import { assert, assertNever, defined } from '../lib/assert.js';
import { CohortError, DecodeError, err, ok, type Result } from '../lib/errors.js';
import { incarnation as makeIncarnation, type Incarnation, type LogIndex, type NodeId, type Term } from '../lib/ids.js';
import {
  KvStateMachine,
  StateMachineMux,
  validateKvCommand,
  type ApplyResult,
  type ConfState,
  type Entry,
  type KvCommand,
  type KvCompare,
  type KvOutput,
  type MuxCommand,
  type MuxOutput,
  type RaftRole,
} from '../log/index.js';
import {
  FailureDetector,
  MembershipStateMachine,
  ReachabilityTracker,
  ArrivalLateness,
  detectorOptions,
  localQuorumStatus,
  type DetectorDecision,
  type DetectorTimes,
  type EventPage,
  type MemberNodeSpec,
  type MembershipCommand,
  type MembershipEventError,
  type MembershipOutput,
  type MembershipView,
  type NodeInfo,
  type LocalQuorumStatus,
  type MembershipCanary,
} from '../membership/index.js';
import type { Arbitration, VotequorumOptions } from '../quorum/index.js';
import {
  CLUSTER_APPLY_RESULTS_RETAINED,
  CLUSTER_NODES_MAX,
  CLUSTER_REQUESTS_PENDING_MAX,
  MEMBERSHIP_EVENTS_READ_MAX,
  GROUP_BARRIERS_PENDING_MAX,
  GROUPS_MAX,
} from '../constants.js';
import {
  validateGroupCommand,
  type BarrierOutcome,
  type GroupApply,
  type GroupCommand,
  type GroupOutcome,
  type GroupView,
  type GroupViewPayload,
} from '../groups/index.js';
import type { NodeEnv, TimerHandle } from './env.js';
import { RaftNode, RaftNodeError, type RaftNodeErrorCode } from './raft-node.js';
import {
  FORWARD_MESSAGE_CHARS_MAX,
  ROW_SILENCE_MS_MAX,
  isRaftMessage,
  type ForwardRefusalCode,
  type NodeMessage,
  type PeerMessage,
} from './peer-message.js';
import type { Transport, TransportHandlers } from '../transport/transport.js';
import type { RaftMessage } from '../log/index.js';

/** Mux tag of the membership state machine (never reuse a retired tag). */
export const MUX_TAG_MEMBERSHIP = 1;
/** Mux tag of the KV store. */
export const MUX_TAG_KV = 2;

/** Timing of one node, in ms unless named ticks (the daemon derives it from the timeout model). */
export interface ClusterTiming {
  /** Length of one Raft tick; the node program ticks at the same rate. */
  readonly tickMs: number;
  readonly heartbeatTicks: number;
  readonly electionTicks: number;
  readonly leaseMarginTicks: number;
  /** Interval of the reachability pings. */
  readonly heartbeatMs: number;
  /** How long a follower trusts the leader's last message (node lease minus drift margin). */
  readonly followerLeaseMs: number;
  /** The failure detector's times. */
  readonly detector: DetectorTimes;
  /** Deadline of a proposal or read, from the call. */
  readonly requestTimeoutMs: number;
}

/** Things worth observing from outside (logs, metrics, tests), called synchronously. */
export interface ClusterObserver {
  /** The Raft role or the known leader changed. */
  onRole?(role: RaftRole, term: Term, lead: NodeId | null): void;
  /** A membership command was applied here (`output` null when it was refused). */
  onMembershipApplied?(index: LogIndex, output: MembershipOutput | null, error: string | null): void;
  /** The leader's failure detector decided something (suspect, clear, fail, quarantine). */
  onDecision?(decision: DetectorDecision): void;
  /** A snapshot from the leader replaced this node's state up to `index` (no entries were applied one by one). */
  onRestored?(index: LogIndex): void;
  /** This node's incarnation entered the view. */
  onJoined?(incarnation: Incarnation): void;
  /** This incarnation cannot join: its settings differ from the cluster's, or it was removed from the view. */
  onJoinProblem?(problem: string): void;
  /** A background proposal (join, configure, a detector decision) failed; it is retried. */
  onBackgroundFailure?(what: string, error: RaftNodeError): void;
  /** A service group's view changed (applied here; every node sees every group's views). */
  onGroupView?(group: string, view: GroupViewPayload): void;
  /**
   * A group message was delivered here: this node's incarnation is a member of the group view
   * `groupViewId` the message was sent in. Messages of one view arrive in `seq` order.
   */
  onGroupDeliver?(group: string, groupViewId: number, seq: number, from: NodeId, payload: Uint8Array): void;
  /**
   * This member missed messages `fromSeq..toSeq` of group view `groupViewId`: it caught up through
   * a snapshot and they were no longer retained. Treat the group as rejoined (re-read its state).
   */
  onGroupGap?(group: string, groupViewId: number, fromSeq: number, toSeq: number): void;
  /** A barrier of a group ended (applied here; every node sees every barrier's end). */
  onBarrier?(group: string, name: string, groupViewId: number, outcome: BarrierOutcome): void;
}

/** Options of a `ClusterNode`. */
export interface ClusterNodeOptions {
  readonly timing: ClusterTiming;
  /** Every configured node, strictly ascending by id; this node among them. */
  readonly nodes: readonly MemberNodeSpec[];
  readonly quorum: VotequorumOptions;
  /** Take a Raft snapshot after this many applied entries (default 10 000). */
  readonly snapshotEntries?: number;
  /** Entries kept behind a snapshot for slightly lagging followers (default 1 000). */
  readonly snapshotCatchUpEntries?: number;
  readonly observer?: ClusterObserver;
  /** A planted bug, for the simulator only (see `ClusterCanary`). */
  readonly canary?: ClusterCanary;
  /**
   * The fingerprint of the cluster-wide settings (the daemon's `configFingerprint`). The first
   * leader commits it with the configuration; a join carrying another one is refused
   * (`SETTINGS_MISMATCH`), and the node reports why in `status().joinProblem`. Absent: not checked.
   */
  readonly settingsFingerprint?: string;
}

/**
 * Planted bugs the simulator's checkers must catch (never set in production):
 * - `evict-on-missed-heartbeat`: the failure detector fails a node after one missed heartbeat;
 * - `never-fail`: the leader never proposes a detector's failure decision;
 * - `diverge-views`: node 1's membership machine keeps the view id when a member leaves or fails;
 * - the membership machine's canaries (`quorate-without-quorum` and the group table's
 *   `deliver-to-newcomer`, `barrier-without-all`), on every node.
 */
export type ClusterCanary =
  'evict-on-missed-heartbeat' | 'never-fail' | 'diverge-views' | Exclude<MembershipCanary, 'skip-view-bump'>;

/** Every cluster canary name. */
export const CLUSTER_CANARIES: readonly ClusterCanary[] = [
  'evict-on-missed-heartbeat',
  'never-fail',
  'diverge-views',
  'quorate-without-quorum',
  'deliver-to-newcomer',
  'barrier-without-all',
];

/** Stable codes of a group request refused by the group table (or before proposing). */
export type GroupErrorCode =
  /** The group's view changed since this node read it: re-read the view, then retry if still wanted. */
  | 'VIEW_CHANGED'
  /** This node's incarnation is not a member of the group. */
  | 'NOT_MEMBER'
  /** This node's incarnation is not in the cluster view yet (it is still joining). */
  | 'NOT_IN_VIEW'
  /** The group has no members. */
  | 'NO_SUCH_GROUP'
  /** A bound of the group table (`GROUPS_MAX`, `GROUP_BARRIERS_PENDING_MAX`). */
  | 'LIMIT'
  /** A malformed name, level or message. */
  | 'INVALID';

/** A refused group request; the message says what to do. */
export class GroupError extends CohortError {
  override readonly name = 'GroupError';
  constructor(
    override readonly code: GroupErrorCode,
    message: string,
    /** The group's view id when refused (0 when the group does not exist). */
    readonly groupViewId: number,
  ) {
    super(code, message);
  }
}

/** One member of the view, as `status()` shows it. */
export interface StatusMember {
  readonly nodeId: NodeId;
  readonly name: string;
  readonly incarnation: number;
  readonly state: NodeInfo['status'];
}

/**
 * What `cohort status` shows. `members` are the current view's members; `nodes()` lists every
 * configured node with its state. `totalVotes` are the votes present in the view (corosync's
 * "Total votes"), `quorum` the votes needed, `expectedVotes` the votes expected.
 */
export interface ClusterStatus {
  readonly nodeId: NodeId;
  readonly name: string;
  readonly incarnation: number;
  readonly role: RaftRole;
  readonly leaderId: NodeId | null;
  readonly term: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly viewId: number;
  readonly quorate: boolean;
  readonly quorumReason: LocalQuorumStatus['reason'];
  readonly quorumExplanation: string;
  readonly expectedVotes: number;
  readonly totalVotes: number;
  readonly quorum: number;
  readonly joined: boolean;
  readonly members: readonly StatusMember[];
  /**
   * Leader only: a read would be served from the leader lease now, without a round trip (false
   * while reads are held after a stall). Two nodes never both report true at once.
   */
  readonly leaseValid: boolean;
  /** Reads wait because this node's event loop stalled recently (see the file comment). */
  readonly readsHeld: boolean;
  /** Why this incarnation cannot join (settings differ, or it was removed from the view), or null. */
  readonly joinProblem: string | null;
}

/** Stable codes of a refused fence confirmation (checked against this node's applied state). */
export type FenceConfirmErrorCode =
  /** No membership configuration is applied here yet. */
  | 'NOT_CONFIGURED'
  /** The node id is not among the configured nodes. */
  | 'UNKNOWN_NODE'
  /** The node has no pending fence (a member, out, or quarantined with its fence confirmed). */
  | 'FENCE_NOT_PENDING'
  /** The incarnation given is older than the one that needs fencing. */
  | 'INCARNATION_STALE'
  /** The incarnation given was never seen for the node. */
  | 'INCARNATION_UNKNOWN';

/** A fence confirmation refused before anything was proposed; the message says what to do. */
export class FenceConfirmError extends CohortError {
  override readonly name = 'FenceConfirmError';
  constructor(
    override readonly code: FenceConfirmErrorCode,
    message: string,
  ) {
    super(code, message);
  }
}

/** What a confirmed fence did, read from this node's state right after it applied the command. */
export interface FenceConfirmation {
  readonly nodeId: NodeId;
  /** The incarnation confirmed fenced. */
  readonly incarnation: number;
  /** The membership machine's outcome (`applied`, or `stale`/`duplicate` after a race). */
  readonly outcome: MembershipOutput['outcome'];
  /** The node's status afterwards (`member` when a waiting incarnation was admitted). */
  readonly status: NodeInfo['status'];
  /** The incarnation admitted into the view by this confirmation, or null. */
  readonly admitted: number | null;
  readonly viewId: number;
}

/** A finished request: the mux output or a typed failure. */
type Done = (r: Result<MuxOutput, RaftNodeError>) => void;

type RequestState =
  /** Not at any leader: (re)tried on the next tick. */
  | { readonly kind: 'waiting' }
  /** Proposed on this node (it leads). */
  | { readonly kind: 'local' }
  /** Forwarded to `to` at `sentMs`. */
  | { readonly kind: 'sent'; readonly to: NodeId; readonly sentMs: number }
  /** The leader applied it at (`index`, `term`); waiting for this node to apply that index. */
  | { readonly kind: 'applied'; readonly index: LogIndex; readonly term: Term };

interface Request {
  readonly id: number;
  readonly command: MuxCommand;
  readonly bytes: Uint8Array;
  readonly deadlineMs: number;
  /** Idempotent commands (membership) may be forwarded again when no answer came. */
  readonly idempotent: boolean;
  readonly done: Done;
  state: RequestState;
}

/** A background proposal retried until it lands (keyed so at most one per key is in flight). */
interface Background {
  readonly what: string;
  readonly command: MembershipCommand;
  inFlight: boolean;
  /** Do not try again before this time (backoff after a failure). */
  notBeforeMs: number;
}

const DEFINITE: ReadonlySet<RaftNodeErrorCode> = new Set<RaftNodeErrorCode>(['NOT_LEADER', 'BUSY']);
/** An unanswered idempotent forward is sent again after this many heartbeats. */
const RESEND_HEARTBEATS = 5;
/** A failed background proposal is retried after this many heartbeats. */
const RETRY_HEARTBEATS = 2;
/**
 * Ticks beyond the election timeout that reads stay held after a stall: the Raft shell's tick
 * timer and this node's fire at the same rate but not in lockstep, so allow for one late tick.
 */
const READ_HOLD_EXTRA_TICKS = 2;
/** Key prefix of background proposals that belong to the leadership (dropped when it ends). */
const LEADER_KEY = 'leader:';

/** The Raft configuration of a fresh cluster built from the configured nodes and quorum options. */
export function bootstrapConfState(nodes: readonly MemberNodeSpec[], quorum: VotequorumOptions): ConfState {
  const voters = nodes.filter((n) => n.votes > 0).map((n) => [n.nodeId, n.votes] as const);
  const learners = nodes.filter((n) => n.votes === 0).map((n) => n.nodeId);
  const witnesses = nodes.filter((n) => n.role === 'witness').map((n) => n.nodeId);
  const settings =
    quorum.expectedVotes === undefined && quorum.autoTieBreaker.kind === 'off'
      ? {}
      : { quorum: { expectedVotes: quorum.expectedVotes ?? 0, tieBreaker: quorum.autoTieBreaker } };
  return {
    voters,
    outgoing: [],
    learners,
    learnersNext: [],
    autoLeave: false,
    ...settings,
    ...(witnesses.length === 0 ? {} : { witnesses }),
  };
}

/** See the file comment. */
export class ClusterNode {
  readonly nodeId: NodeId;
  private readonly raft: RaftNode<MuxCommand, MuxOutput>;
  private readonly mux: StateMachineMux;
  private readonly opts: ClusterNodeOptions;
  private readonly self: MemberNodeSpec;
  private readonly peers: readonly NodeId[];
  private readonly tracker: ReachabilityTracker;
  /** Forwards this node took as leader, by `from:id`, with where they were applied (bounded, oldest first). */
  private readonly forwardsTaken = new Map<
    string,
    { applied: { readonly index: LogIndex; readonly term: Term } | null }
  >();
  /** How late each peer's Pings arrive (dates liveness evidence back). */
  private readonly arrivals = new ArrivalLateness();
  private raftHandlers: TransportHandlers<RaftMessage> | null = null;
  private detector: FailureDetector | null = null;
  private role: RaftRole = 'follower';
  private lead: NodeId | null = null;
  /** When a Raft message from each node last arrived (for the follower lease). */
  private readonly raftHeardMs = new Map<NodeId, number>();
  private timer: TimerHandle | null = null;
  private tickDueMs = 0;
  private lastPingMs = Number.NEGATIVE_INFINITY;
  private state: 'new' | 'starting' | 'running' | 'stopped' = 'new';
  private joinedFlag = false;
  /** Request ids of this incarnation are `requestIdBase + 1 ..` (wrapping within its range). */
  private requestIdBase = 0;
  private requestCount = 0;
  private readonly requests = new Map<number, Request>();
  /** index -> ids of requests waiting for this node to apply it. */
  private readonly awaiting = new Map<number, number[]>();
  /** Results of the newest applied entries (insertion order = index order), bounded. */
  private readonly results = new Map<number, { readonly term: Term; readonly result: ApplyResult<MuxOutput> }>();
  /** The entry being applied when the Raft shell completes a local proposal. */
  private lastApplied: Entry | null = null;
  private readonly background = new Map<string, Background>();
  private lastViewId = -1;
  /** Why this incarnation cannot join (settings differ, or it was removed from the view), or null. */
  private joinProblem: string | null = null;
  private joinNotBeforeMs = 0;
  /** Ticks of this node left before reads are served again after a stall (0: not holding). */
  private readHoldTicks = 0;
  /** Per group, the last message this incarnation delivered (for catching up after a snapshot). */
  private readonly deliveredUpTo = new Map<string, { readonly groupViewId: number; readonly seq: number }>();
  /** Per group, the last view this incarnation saw applied and whether it is a member of it. */
  private readonly groupViews = new Map<string, { readonly viewId: number; readonly member: boolean }>();
  /** The newest membership event this node reported to its observer (groups, barriers). */
  private eventsSeen = 0;
  /** Local barrier waiters by group and barrier name. */
  private readonly barrierWaiters = new Map<string, BarrierWaiter[]>();

  /**
   * Builds the node from the state on `env.disk` (throws `RecoveryError` when the disk cannot
   * give a safe start; see `RaftNode`). Nothing runs until `start`.
   */
  constructor(
    private readonly env: NodeEnv<PeerMessage>,
    options: ClusterNodeOptions,
  ) {
    assert(
      options.nodes.length >= 1 && options.nodes.length <= CLUSTER_NODES_MAX,
      `a cluster has 1..${CLUSTER_NODES_MAX} configured nodes`,
    );
    for (let i = 1; i < options.nodes.length; i++)
      assert(
        (options.nodes[i - 1]?.nodeId ?? 0) < (options.nodes[i]?.nodeId ?? 0),
        'configured nodes are strictly ascending by id',
      );
    const self = options.nodes.find((n) => n.nodeId === env.nodeId);
    assert(self !== undefined, `node ${env.nodeId} is not among the configured nodes`);
    const t = options.timing;
    assert(
      t.tickMs > 0 && t.heartbeatMs >= t.tickMs && t.requestTimeoutMs > t.tickMs && t.followerLeaseMs > 0,
      'cluster timing must be positive, heartbeat at least a tick, requests longer than a tick',
    );
    this.nodeId = env.nodeId;
    this.opts = options;
    this.self = self;
    this.peers = options.nodes.map((n) => n.nodeId).filter((id) => id !== env.nodeId);
    this.tracker = new ReachabilityTracker(env.nodeId);
    this.tracker.setPeers(this.peers);
    this.mux = new StateMachineMux([
      {
        tag: MUX_TAG_MEMBERSHIP,
        name: 'membership',
        create: () => new MembershipStateMachine(membershipCanary(options.canary, env.nodeId)),
      },
      { tag: MUX_TAG_KV, name: 'kv', create: () => new KvStateMachine() },
    ]);
    const raftTransport: Transport<RaftMessage> = {
      self: env.nodeId,
      setHandlers: (h) => {
        this.raftHandlers = h;
      },
      send: (to, m) => env.transport.send(to, m),
      close: () => env.transport.close(),
    };
    this.raft = new RaftNode<MuxCommand, MuxOutput>(
      { ...env, transport: raftTransport },
      {
        tickMs: t.tickMs,
        raft: {
          electionTicks: t.electionTicks,
          heartbeatTicks: t.heartbeatTicks,
          leaseMarginTicks: t.leaseMarginTicks,
          bootstrapEntry: true,
          waitForAll: options.quorum.waitForAll,
        },
        bootstrap: bootstrapConfState(options.nodes, options.quorum),
        stateMachine: this.mux,
        snapshotEntries: options.snapshotEntries ?? 10_000,
        snapshotCatchUpEntries: options.snapshotCatchUpEntries ?? 1_000,
        requestTimeoutTicks: Math.ceil(t.requestTimeoutMs / t.tickMs),
        observer: {
          onRole: (role, term, lead) => {
            this.onRole(role, term, lead);
          },
          onApply: (entry, result) => {
            this.onApply(entry, result);
          },
          onRestore: (index) => {
            this.onRestore(index);
          },
        },
      },
    );
    // Request ids never repeat across incarnations: a peer's late answer to the previous
    // incarnation's request must not match this incarnation's request with the same number.
    this.requestIdBase = (this.incarnation % REQUEST_ID_INCARNATIONS) * REQUEST_IDS_PER_INCARNATION;
    this.eventsSeen = this.membership.nextEventSeq - 1;
  }

  /** This run's incarnation (bumped durably on every start). */
  get incarnation(): Incarnation {
    return this.raft.incarnation;
  }

  /** Whether this incarnation is in the applied view. */
  get joined(): boolean {
    return this.joinedFlag;
  }

  /** The membership state machine (the mux recreates it on a snapshot restore: never keep it). */
  private get membership(): MembershipStateMachine {
    const m = this.mux.machine(MUX_TAG_MEMBERSHIP);
    assert(m instanceof MembershipStateMachine, 'mux tag 1 is the membership machine');
    return m;
  }

  private get kv(): KvStateMachine {
    const m = this.mux.machine(MUX_TAG_KV);
    assert(m instanceof KvStateMachine, 'mux tag 2 is the KV store');
    return m;
  }

  /**
   * Starts the Raft shell and the node program. `onStarted` runs once with null when running
   * (inputs are handled from then on) or with the storage error that prevented it.
   */
  start(onStarted?: (error: Error | null) => void): void {
    assert(this.state === 'new', 'a cluster node starts once');
    this.state = 'starting';
    this.env.transport.setHandlers({
      onMessage: (from, m) => {
        this.onMessage(from, m);
      },
      onPeerUp: (peer) => this.raftHandlers?.onPeerUp(peer),
      onPeerDown: (peer) => this.raftHandlers?.onPeerDown(peer),
    });
    this.raft.start((error) => {
      if (error !== null) {
        this.stop();
        onStarted?.(error);
        return;
      }
      if (this.state !== 'starting') return;
      this.state = 'running';
      this.env.trace('cluster-node-start', { incarnation: this.incarnation });
      this.scheduleTick(this.env.clock.nowMs());
      onStarted?.(null);
    });
  }

  /**
   * Proposes `leave(self, incarnation)` and calls `done` once it is applied (null) or failed
   * (the error; e.g. no quorum within `timeoutMs`). The node keeps running: call `stop` after.
   */
  leave(timeoutMs: number, done: (error: RaftNodeError | null) => void): void {
    if (this.state !== 'running') {
      done(new RaftNodeError('STOPPED', 'the node is not running'));
      return;
    }
    const command: MembershipCommand = { type: 'leave', node: this.nodeId, incarnation: this.incarnation };
    this.submit({ type: 'mux', tag: MUX_TAG_MEMBERSHIP, command }, timeoutMs, true, (r) => {
      done(r.ok ? null : r.error);
    });
  }

  /**
   * The manual fence agent (DESIGN.md section 6): the operator confirms that `node` was fenced
   * at `incarnation` (null: the incarnation that needs fencing now), and this proposes
   * `fenced(node, incarnation)`. A newer incarnation waiting for that fence is admitted into the
   * view when it applies. Refused up front, with a `FenceConfirmError` and nothing proposed,
   * when this node's applied state shows no pending fence for `node` or the incarnation does not
   * fit; the command itself is idempotent and incarnation-checked, so a race with another
   * confirmation or a newer failure is harmless (the outcome says `stale` or `duplicate`).
   * `done` runs once, after this node applied the command, with what it did.
   */
  fenceConfirm(
    node: NodeId,
    incarnation: number | null,
    done: (r: Result<FenceConfirmation, RaftNodeError | FenceConfirmError>) => void,
  ): void {
    const checked = this.fenceTarget(node, incarnation);
    if (!checked.ok) {
      done(checked);
      return;
    }
    const inc = checked.value;
    const command: MembershipCommand = { type: 'fenced', node, incarnation: inc };
    this.submit({ type: 'mux', tag: MUX_TAG_MEMBERSHIP, command }, this.opts.timing.requestTimeoutMs, true, (r) => {
      if (!r.ok) {
        done(r);
        return;
      }
      assert(r.value.tag === MUX_TAG_MEMBERSHIP, 'a membership command yields a membership output');
      const out = r.value.output as MembershipOutput;
      const rec = this.membership.nodes().find((n) => n.nodeId === node);
      assert(rec !== undefined, 'a configured node keeps its record');
      const admitted =
        out.outcome === 'applied' && rec.status === 'member' && rec.incarnation > inc ? rec.incarnation : null;
      done(
        ok({ nodeId: node, incarnation: inc, outcome: out.outcome, status: rec.status, admitted, viewId: out.viewId }),
      );
    });
  }

  /** The incarnation a fence confirmation for `node` names, or why it is refused. */
  private fenceTarget(node: NodeId, incarnation: number | null): Result<Incarnation, FenceConfirmError> {
    if (this.membership.configuration() === null)
      return err(
        new FenceConfirmError(
          'NOT_CONFIGURED',
          'the cluster configuration is not applied on this node yet; retry once it is quorate',
        ),
      );
    const rec = this.membership.nodes().find((n) => n.nodeId === node);
    if (rec === undefined)
      return err(new FenceConfirmError('UNKNOWN_NODE', `node ${node} is not a configured node; see \`cohort nodes\``));
    if (!rec.fencePending) {
      const what =
        rec.status === 'member'
          ? `it is a member (incarnation ${rec.incarnation}); fencing a live member is not a confirmation`
          : `it is ${rec.status}${rec.incarnation > 0 ? ` (incarnation ${rec.incarnation})` : ''}`;
      return err(new FenceConfirmError('FENCE_NOT_PENDING', `node ${node} does not need fencing: ${what}`));
    }
    const inc = incarnation ?? rec.incarnation;
    if (inc < rec.incarnation)
      return err(
        new FenceConfirmError(
          'INCARNATION_STALE',
          `incarnation ${inc} of node ${node} is already settled; the pending fence is for incarnation ${rec.incarnation}`,
        ),
      );
    if (inc > rec.seen)
      return err(
        new FenceConfirmError(
          'INCARNATION_UNKNOWN',
          `node ${node} never ran incarnation ${inc} (newest seen: ${rec.seen}); the pending fence is for incarnation ${rec.incarnation}`,
        ),
      );
    return ok(makeIncarnation(inc));
  }

  /** Stops everything; every waiting request completes with `STOPPED`. Idempotent. */
  stop(): void {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.timer?.cancel();
    this.timer = null;
    this.detector = null;
    this.raft.stop();
    const stopped = new RaftNodeError('STOPPED', 'the node is stopping');
    for (const r of [...this.requests.values()]) this.finish(r, err(stopped));
    this.awaiting.clear();
    const waiters = [...this.barrierWaiters.values()].flat();
    this.barrierWaiters.clear();
    for (const w of waiters) w.done(err(stopped));
  }

  /** Stops waiting for barrier `name` of `group` here (the arrival stays recorded); for cancellation. */
  cancelBarrierWait(
    group: string,
    name: string,
    done: (r: Result<{ readonly groupViewId: number }, RaftNodeError | GroupError>) => void,
  ): void {
    const key = barrierKey(group, name);
    const rest = (this.barrierWaiters.get(key) ?? []).filter((w) => w.caller !== done);
    if (rest.length === 0) this.barrierWaiters.delete(key);
    else this.barrierWaiters.set(key, rest);
  }

  // -------------------------------------------------------------------------------------------
  // Reads

  /** The local view (possibly stale; see `status().quorate`). */
  view(): MembershipView {
    return this.membership.view();
  }

  /** Every configured node and its membership record (empty until configured). */
  nodes(): NodeInfo[] {
    return this.membership.nodes();
  }

  /** The arbitration behind the view's quorate flag (null until configured). */
  arbitration(): Arbitration | null {
    return this.membership.arbitration();
  }

  /** Reads the membership event stream (see `MembershipStateMachine.eventsFrom`). */
  eventsFrom(seq: number, limit: number): Result<EventPage, MembershipEventError> {
    return this.membership.eventsFrom(seq, limit);
  }

  /** The seq the next membership event will get. */
  get nextEventSeq(): number {
    return this.membership.nextEventSeq;
  }

  /** This node's local quorum verdict now. */
  localQuorum(): LocalQuorumStatus {
    const rs = this.raft.status();
    const heard = rs.lead === null ? undefined : this.raftHeardMs.get(rs.lead);
    const configured = this.membership.configuration() !== null;
    const v = this.membership.view();
    return localQuorumStatus({
      self: this.nodeId,
      role: rs.role,
      lead: rs.lead,
      leaseValid: rs.leaseValid,
      sinceLeaderMs: heard === undefined ? null : Math.max(0, this.env.clock.nowMs() - heard),
      followerLeaseMs: this.opts.timing.followerLeaseMs,
      view: configured ? { quorate: v.quorate, explanation: v.explanation } : null,
    });
  }

  /** The status `cohort status` shows (see `ClusterStatus`). */
  status(): ClusterStatus {
    const rs = this.raft.status();
    const view = this.membership.view();
    const q = this.localQuorum();
    const side = this.membership.arbitration()?.arithmetic.incoming;
    const held = this.readsHeld(this.env.clock.nowMs());
    const names = new Map(this.opts.nodes.map((n) => [n.nodeId, n.name]));
    return {
      nodeId: this.nodeId,
      name: this.self.name,
      incarnation: this.incarnation,
      role: rs.role,
      leaderId: rs.lead,
      term: rs.term,
      commitIndex: rs.commit,
      appliedIndex: rs.applied,
      viewId: view.viewId,
      quorate: q.quorate,
      quorumReason: q.reason,
      quorumExplanation: q.explanation,
      expectedVotes: side?.expectedVotes ?? 0,
      totalVotes: side?.presentVotes ?? 0,
      quorum: side?.quorumVotes ?? 0,
      joined: this.joinedFlag,
      members: view.members.map((m) => ({
        nodeId: m.node,
        name: names.get(m.node) ?? `node-${m.node}`,
        incarnation: m.incarnation,
        state: 'member' as const,
      })),
      leaseValid: rs.leaseValid && !held,
      readsHeld: held,
      joinProblem: this.joinProblem,
    };
  }

  // -------------------------------------------------------------------------------------------
  // KV

  /** A linearizable read of `key`: waits until the local store reflects every earlier write. */
  get(key: string, done: (r: Result<Extract<KvOutput, { type: 'get' }>, RaftNodeError>) => void): void {
    const invalid = validateKvCommand({ type: 'get', key });
    if (invalid !== null) {
      done(err(new RaftNodeError('REFUSED', `${invalid.code}: ${invalid.message}`)));
      return;
    }
    const deadlineMs = this.env.clock.nowMs() + this.opts.timing.requestTimeoutMs;
    this.linearizableRead(deadlineMs, (r) => {
      done(r.ok ? ok(this.kv.get(key)) : r);
    });
  }

  /** Puts `value` at `key`. */
  put(key: string, value: Uint8Array, done: (r: Result<KvOutput, RaftNodeError>) => void): void {
    this.kvCommand({ type: 'put', key, value }, done);
  }

  /** Puts `value` at `key` if `compare` holds (see `KvCompare`). */
  cas(key: string, compare: KvCompare, value: Uint8Array, done: (r: Result<KvOutput, RaftNodeError>) => void): void {
    this.kvCommand({ type: 'cas', key, compare, value }, done);
  }

  /** Deletes `key`. */
  delete(key: string, done: (r: Result<KvOutput, RaftNodeError>) => void): void {
    this.kvCommand({ type: 'delete', key }, done);
  }

  // -------------------------------------------------------------------------------------------
  // Service groups (src/groups, docs/groups.md)

  /** Every group's current view, as applied here. */
  groups(): GroupView[] {
    return this.membership.groups();
  }

  /** One group's view as applied here, or null when it has no members. */
  group(name: string): GroupView | null {
    return this.membership.group(name);
  }

  /**
   * Joins `group` with `level` (0..GROUP_LEVEL_MAX; lower levels recover first) as this node's
   * incarnation; `done` gets the group view the join created (or the current one when this
   * incarnation already was a member). Needs this incarnation in the cluster view.
   */
  groupJoin(group: string, level: number, done: (r: Result<GroupView, RaftNodeError | GroupError>) => void): void {
    this.groupCommand(
      { type: 'group-join', group, node: this.nodeId, incarnation: this.incarnation, level },
      true,
      (r) => {
        done(r.ok ? ok(this.membership.group(group) ?? { group, viewId: r.value.groupViewId, members: [] }) : r);
      },
    );
  }

  /** Leaves `group`; `done` runs once this node applied the leave (a no-op when not a member). */
  groupLeave(group: string, done: (r: Result<void, RaftNodeError | GroupError>) => void): void {
    this.groupCommand({ type: 'group-leave', group, node: this.nodeId, incarnation: this.incarnation }, true, (r) => {
      done(r.ok ? ok(undefined) : r);
    });
  }

  /**
   * Sends `payload` to `group` in the group view this node has applied. It is delivered, in one
   * total order, to exactly the members of that view (`onGroupDeliver`), this node included; or
   * refused `VIEW_CHANGED` when the view changed before it was ordered (nothing is delivered: read
   * the new view, then send again if still wanted). `OUTCOME_UNKNOWN`/`TIMEOUT` mean it may or
   * may not have been delivered (it is never delivered twice).
   */
  groupSend(
    group: string,
    payload: Uint8Array,
    done: (r: Result<{ readonly groupViewId: number; readonly seq: number }, RaftNodeError | GroupError>) => void,
  ): void {
    const member = this.memberView(group);
    if (!member.ok) {
      done(member);
      return;
    }
    const view = member.value;
    this.groupCommand(
      { type: 'group-send', group, node: this.nodeId, incarnation: this.incarnation, viewId: view.viewId, payload },
      false,
      (r) => {
        if (!r.ok) done(r);
        else
          done(
            ok({
              groupViewId: r.value.groupViewId,
              seq: defined(r.value.delivery, 'an applied send has a delivery').seq,
            }),
          );
      },
    );
  }

  /**
   * Reaches barrier `name` of `group` in the group view this node has applied. `done` runs when
   * every member of that view has reached it, or with `VIEW_CHANGED` when the view changes first
   * (every member gets the same verdict at the same log position).
   */
  barrier(
    group: string,
    name: string,
    done: (r: Result<{ readonly groupViewId: number }, RaftNodeError | GroupError>) => void,
  ): void {
    const member = this.memberView(group);
    if (!member.ok) {
      done(member);
      return;
    }
    const view = member.value;
    // The waiter is registered before proposing: the barrier's end is an event that may be
    // applied here before the answer to a forwarded arrival arrives, and it settles the waiter.
    const key = barrierKey(group, name);
    let settled = false;
    const waiter: BarrierWaiter = {
      groupViewId: view.viewId,
      caller: done,
      done: (r) => {
        if (settled) return;
        settled = true;
        this.removeBarrierWaiter(key, waiter);
        done(r);
      },
    };
    const list = this.barrierWaiters.get(key) ?? [];
    list.push(waiter);
    this.barrierWaiters.set(key, list);
    this.groupCommand(
      { type: 'barrier', group, name, node: this.nodeId, incarnation: this.incarnation, viewId: view.viewId },
      true,
      (r) => {
        if (!r.ok) waiter.done(r);
        else if (r.value.barrierReached === true) waiter.done(ok({ groupViewId: view.viewId }));
        // Otherwise the end event settles it (it may have already).
      },
    );
  }

  private removeBarrierWaiter(key: string, waiter: BarrierWaiter): void {
    const rest = (this.barrierWaiters.get(key) ?? []).filter((w) => w !== waiter);
    if (rest.length === 0) this.barrierWaiters.delete(key);
    else this.barrierWaiters.set(key, rest);
  }

  /** The group's view if this incarnation is a member of it, else the refusal to give the caller. */
  private memberView(group: string): Result<GroupView, GroupError> {
    const view = this.membership.group(group);
    if (view !== null && this.isMe(view.members)) return ok(view);
    return err(
      new GroupError(
        view === null ? 'NO_SUCH_GROUP' : 'NOT_MEMBER',
        `node ${this.nodeId} (incarnation ${this.incarnation}) is not a member of group ${group}; join it first`,
        view?.viewId ?? 0,
      ),
    );
  }

  /** Whether this incarnation is among `members`. */
  private isMe(members: readonly { readonly node: NodeId; readonly incarnation: number }[]): boolean {
    return members.some((m) => m.node === this.nodeId && m.incarnation === this.incarnation);
  }

  private groupCommand(
    command: GroupCommand,
    idempotent: boolean,
    done: (r: Result<GroupApply, RaftNodeError | GroupError>) => void,
  ): void {
    const invalid = validateGroupCommand(command);
    if (invalid !== null) {
      done(err(new GroupError('INVALID', invalid.message, 0)));
      return;
    }
    this.submit(
      { type: 'mux', tag: MUX_TAG_MEMBERSHIP, command },
      this.opts.timing.requestTimeoutMs,
      idempotent,
      (r) => {
        if (!r.ok) {
          done(r);
          return;
        }
        assert(r.value.tag === MUX_TAG_MEMBERSHIP, 'a group command yields a membership output');
        const g = defined((r.value.output as MembershipOutput).group, 'a group command yields a group result');
        const code = groupErrorCode(g.outcome, command.type);
        if (code === null) done(ok(g));
        else done(err(new GroupError(code, groupRefusal(code, command), g.groupViewId)));
      },
    );
  }

  private kvCommand(command: KvCommand, done: (r: Result<KvOutput, RaftNodeError>) => void): void {
    // Checked here, before encoding: the codec asserts on invalid commands (a caller bug), and
    // the API passes user input.
    const invalid = validateKvCommand(command);
    if (invalid !== null) {
      done(err(new RaftNodeError('REFUSED', `${invalid.code}: ${invalid.message}`)));
      return;
    }
    this.submit({ type: 'mux', tag: MUX_TAG_KV, command }, this.opts.timing.requestTimeoutMs, false, (r) => {
      if (!r.ok) {
        done(r);
        return;
      }
      assert(r.value.tag === MUX_TAG_KV, 'a KV command yields a KV output');
      done(ok(r.value.output as KvOutput));
    });
  }

  /**
   * Whether reads are held after a stall. Also notices a stall before the late tick has run: on
   * resume Node handles ready I/O (a client's read) before timers, so an overdue tick is itself
   * the evidence.
   */
  private readsHeld(now: number): boolean {
    if (this.state === 'running' && now - this.tickDueMs >= this.opts.timing.tickMs) this.holdReads();
    return this.readHoldTicks > 0;
  }

  private holdReads(): void {
    const ticks = this.opts.timing.electionTicks + READ_HOLD_EXTRA_TICKS;
    if (this.readHoldTicks < ticks) this.env.trace('read-hold', { ticks });
    this.readHoldTicks = ticks;
  }

  /**
   * `RaftNode.read`, retried on definite refusals (no leader yet) until `deadlineMs`, and held
   * (not refused) while `readsHeld` after a stall.
   */
  private linearizableRead(deadlineMs: number, done: (r: Result<void, RaftNodeError>) => void): void {
    const now = this.env.clock.nowMs();
    if (this.readsHeld(now)) {
      if (now + this.opts.timing.tickMs >= deadlineMs) {
        done(
          err(
            new RaftNodeError(
              'TIMEOUT',
              "reads are held after this node's event loop stalled (its leader lease may have lapsed meanwhile); retry",
            ),
          ),
        );
        return;
      }
      this.env.timers.after(this.opts.timing.tickMs, () => {
        if (this.state === 'running') this.linearizableRead(deadlineMs, done);
        else done(err(new RaftNodeError('STOPPED', 'the node stopped while a read waited')));
      });
      return;
    }
    this.raft.read((r) => {
      if (
        !r.ok &&
        DEFINITE.has(r.error.code) &&
        this.state === 'running' &&
        this.env.clock.nowMs() + this.opts.timing.tickMs < deadlineMs
      ) {
        this.env.timers.after(this.opts.timing.tickMs, () => {
          this.linearizableRead(deadlineMs, done);
        });
        return;
      }
      done(r);
    });
  }

  // -------------------------------------------------------------------------------------------
  // Requests: local proposals and forwards

  /** Proposes `command` at the leader (here or forwarded); `done` runs exactly once. */
  private submit(command: MuxCommand, timeoutMs: number, idempotent: boolean, done: Done): void {
    if (this.state !== 'running') {
      done(err(new RaftNodeError('STOPPED', 'the node is not running')));
      return;
    }
    if (this.requests.size >= CLUSTER_REQUESTS_PENDING_MAX) {
      done(
        err(
          new RaftNodeError(
            'BUSY',
            `${CLUSTER_REQUESTS_PENDING_MAX} requests are already waiting on node ${this.nodeId}; retry after some complete`,
          ),
        ),
      );
      return;
    }
    const id = this.requestIdBase + (this.requestCount++ % REQUEST_IDS_PER_INCARNATION) + 1;
    const request: Request = {
      id,
      command,
      bytes: this.mux.codec.encode(command),
      deadlineMs: this.env.clock.nowMs() + timeoutMs,
      idempotent,
      done,
      state: { kind: 'waiting' },
    };
    this.requests.set(id, request);
    this.attempt(request);
  }

  private attempt(r: Request): void {
    if (this.role === 'leader') {
      r.state = { kind: 'local' };
      this.raft.propose(r.command, (res) => {
        if (!res.ok && DEFINITE.has(res.error.code) && this.env.clock.nowMs() < r.deadlineMs) {
          r.state = { kind: 'waiting' };
          return;
        }
        this.finish(r, res);
      });
      return;
    }
    if (this.lead === null || this.lead === this.nodeId) {
      r.state = { kind: 'waiting' };
      return;
    }
    const sent = this.env.transport.send(this.lead, { type: 'Forward', id: r.id, command: r.bytes });
    r.state = sent ? { kind: 'sent', to: this.lead, sentMs: this.env.clock.nowMs() } : { kind: 'waiting' };
  }

  private finish(r: Request, result: Result<MuxOutput, RaftNodeError>): void {
    if (!this.requests.delete(r.id)) return;
    r.done(result);
  }

  /** Retries waiting requests, re-sends stale idempotent forwards, expires overdue ones. */
  private serviceRequests(now: number): void {
    const resendMs = RESEND_HEARTBEATS * this.opts.timing.heartbeatMs;
    for (const r of [...this.requests.values()]) {
      if (now >= r.deadlineMs && r.state.kind !== 'local') {
        const unknown = r.state.kind !== 'waiting';
        const message = unknown
          ? `the request got no answer before its deadline; it may still take effect`
          : `no leader accepted the request before its deadline (no quorum?); nothing was proposed`;
        this.finish(r, err(new RaftNodeError(unknown ? 'TIMEOUT' : 'NOT_LEADER', message, this.lead)));
        continue;
      }
      if (r.state.kind === 'waiting') this.attempt(r);
      else if (
        r.state.kind === 'sent' &&
        r.idempotent &&
        (now - r.state.sentMs >= resendMs || r.state.to !== this.lead)
      )
        this.attempt(r);
      else if (r.state.kind === 'sent' && this.lead !== null && r.state.to !== this.lead)
        this.abandon(r, r.state.to, this.lead);
    }
  }

  /**
   * A non-idempotent request forwarded to a node that no longer leads: its outcome is unknown
   * (the old leader may have replicated it before it was deposed), so it must not be resent;
   * answering now instead of at the deadline lets the caller read and retry as soon as a new
   * leader is known (after a leader crash: within an election, not the whole request timeout).
   */
  private abandon(r: Request, to: NodeId, lead: NodeId): void {
    this.finish(
      r,
      err(
        new RaftNodeError(
          'OUTCOME_UNKNOWN',
          `request ${r.id} was forwarded to node ${to}, which stopped leading before it answered (node ${lead} leads now); it may or may not take effect`,
          lead,
        ),
      ),
    );
  }

  private onForward(from: NodeId, id: number, bytes: Uint8Array): void {
    let command: MuxCommand;
    try {
      command = this.mux.codec.decode(bytes);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      this.refuse(from, id, 'REFUSED', `the forwarded command does not decode (${e.code}): ${e.message}`);
      return;
    }
    // A forward this node already took as leader (the network duplicated it, or the forwarder
    // re-sent an idempotent one) is proposed once: a copy gets the same answer, or none while the
    // outcome is unknown; never a NOT_LEADER refusal, which would make the forwarder propose it
    // again elsewhere although this node may have replicated it before it stopped leading.
    const key = `${from}:${id}`;
    const seen = this.forwardsTaken.get(key);
    if (seen !== undefined) {
      if (seen.applied !== null)
        this.env.transport.send(from, {
          type: 'ForwardApplied',
          id,
          index: seen.applied.index,
          term: seen.applied.term,
        });
      return;
    }
    if (this.role !== 'leader') {
      this.refuse(
        from,
        id,
        'NOT_LEADER',
        this.lead === null ? 'no leader is known right now' : `node ${this.lead} leads`,
      );
      return;
    }
    const taken: { applied: { readonly index: LogIndex; readonly term: Term } | null } = { applied: null };
    this.forwardsTaken.set(key, taken);
    if (this.forwardsTaken.size > FORWARDS_REMEMBERED_MAX) {
      const oldest = this.forwardsTaken.keys().next();
      if (oldest.done !== true) this.forwardsTaken.delete(oldest.value);
    }
    let synchronous = true;
    this.raft.propose(command, (res) => {
      // A proposal that was applied completes from the disk callback that applied it, right
      // after the observer saw its entry (`lastApplied`); a refusal before proposing completes
      // synchronously, inside `propose`. `REFUSED` from apply means the state machine refused
      // the command deterministically: the forwarder reads that result from its own machine.
      const e = this.lastApplied;
      if (!synchronous && e !== null && (res.ok || res.error.code === 'REFUSED')) {
        taken.applied = { index: e.index, term: e.term };
        this.env.transport.send(from, { type: 'ForwardApplied', id, index: e.index, term: e.term });
        return;
      }
      // Certainly not proposed: a retry may be proposed. An unknown outcome (it may still commit)
      // keeps the entry, so a late copy of this forward is not proposed a second time.
      if (!res.ok && DEFINITE.has(res.error.code)) this.forwardsTaken.delete(key);
      if (!res.ok) this.refuse(from, id, res.error.code, res.error.message);
    });
    synchronous = false;
  }

  private refuse(to: NodeId, id: number, code: RaftNodeErrorCode, message: string): void {
    // Every Raft shell code travels as is (`FORWARD_REFUSAL_CODES` lists them all).
    const c: ForwardRefusalCode = code;
    this.env.transport.send(to, {
      type: 'ForwardRefused',
      id,
      code: c,
      message: message.slice(0, FORWARD_MESSAGE_CHARS_MAX),
      leader: this.lead,
    });
  }

  private onForwardApplied(id: number, index: LogIndex, term: Term): void {
    const r = this.requests.get(id);
    if (r?.state.kind !== 'sent') return;
    r.state = { kind: 'applied', index, term };
    if (this.raft.appliedIndex >= index) {
      const held = this.results.get(index);
      this.finish(r, held === undefined ? err(this.unknown(index)) : this.resultOf(held.result, index));
      return;
    }
    const list = this.awaiting.get(index) ?? [];
    list.push(id);
    this.awaiting.set(index, list);
  }

  private onForwardRefused(id: number, code: ForwardRefusalCode, message: string, leader: NodeId | null): void {
    const r = this.requests.get(id);
    if (r?.state.kind !== 'sent') return;
    if (DEFINITE.has(code) || code === 'STOPPED') {
      r.state = { kind: 'waiting' }; // retried on the next tick, at the leader Raft knows by then
      return;
    }
    this.finish(r, err(new RaftNodeError(code, `leader: ${message}`, leader)));
  }

  private unknown(index: number): RaftNodeError {
    return new RaftNodeError(
      'OUTCOME_UNKNOWN',
      `the command was applied at index ${index}, but this node no longer holds its result (a snapshot replaced it); read the state to see its effect`,
    );
  }

  private resultOf(result: ApplyResult<MuxOutput>, index: number): Result<MuxOutput, RaftNodeError> {
    return result.ok
      ? result
      : err(new RaftNodeError('REFUSED', `${result.error.code}: ${result.error.message} (index ${index})`));
  }

  // -------------------------------------------------------------------------------------------
  // Inputs

  private onMessage(from: NodeId, m: PeerMessage): void {
    if (this.state !== 'running' && this.state !== 'starting') return;
    const now = this.env.clock.nowMs();
    // Liveness evidence comes from Pings only: they carry their send time, so one held back in
    // the network is dated back (`ArrivalLateness`) instead of making a node that died meanwhile
    // look alive. Other messages carry no send time.
    if (!isRaftMessage(m) && m.type === 'Ping') {
      const lateMs = m.sentMs === undefined ? 0 : this.arrivals.lateness(from, now, m.sentMs, m.inc ?? 0);
      if (lateMs === null) return; // a late copy from an older incarnation of the sender
      this.tracker.observe(from, now, now - lateMs);
      this.detector?.reachabilityRow(from, m.row, now, lateMs, m.inc);
      return;
    }
    if (isRaftMessage(m)) {
      this.raftHeardMs.set(from, now);
      this.raftHandlers?.onMessage(from, m);
      return;
    }
    if (this.state !== 'running') return;
    this.onNodeMessage(from, m);
  }

  private onNodeMessage(from: NodeId, m: NodeMessage): void {
    switch (m.type) {
      case 'Forward':
        this.onForward(from, m.id, m.command);
        return;
      case 'ForwardApplied':
        this.onForwardApplied(m.id, m.index as LogIndex, m.term as Term);
        return;
      case 'ForwardRefused':
        this.onForwardRefused(m.id, m.code, m.message, m.leader);
        return;
      case 'Ping':
        return; // handled in onMessage
      default:
        assertNever(m, 'node message');
    }
  }

  private onRole(role: RaftRole, term: Term, lead: NodeId | null): void {
    const wasLeader = this.role === 'leader';
    this.role = role;
    this.lead = lead;
    if (role === 'leader' && !wasLeader) this.startDetector();
    if (role !== 'leader' && wasLeader) {
      this.detector = null;
      // Leader duties end with the leadership: a new leader's detector decides afresh.
      for (const key of [...this.background.keys()]) if (key.startsWith(LEADER_KEY)) this.background.delete(key);
    }
    this.env.trace('cluster-role', { role, term, lead });
    this.opts.observer?.onRole?.(role, term, lead);
  }

  private startDetector(): void {
    const now = this.env.clock.nowMs();
    const times = this.opts.timing.detector;
    // The canary's detector accuses after about one missed heartbeat, with no suspicion window.
    const planted =
      this.opts.canary === 'evict-on-missed-heartbeat'
        ? {
            suspectAfterMs: Math.ceil(1.5 * times.heartbeatMs),
            suspicionMinMs: 1,
            suspicionMaxMs: 1,
            localHealthExtensionMaxMs: 0,
          }
        : {};
    const d = new FailureDetector(
      detectorOptions(
        this.nodeId,
        { ...times, ...planted },
        this.opts.canary === 'evict-on-missed-heartbeat' ? { grayQuarantineMs: 10 * times.suspectAfterMs } : {},
      ),
      now,
    );
    d.setMembers(this.membership.view().members, now);
    d.reachabilityRow(this.nodeId, this.tracker.row(now), now);
    this.detector = d;
    this.lastViewId = this.membership.view().viewId;
  }

  private onApply(entry: Entry, result: ApplyResult<MuxOutput> | null): void {
    this.lastApplied = entry;
    if (result !== null) {
      // A group message's payload is delivered now; the retained result does not keep it.
      this.results.set(entry.index, { term: entry.term, result: withoutPayload(result) });
      if (this.results.size > CLUSTER_APPLY_RESULTS_RETAINED) {
        const oldest = this.results.keys().next();
        if (oldest.done !== true) this.results.delete(oldest.value);
      }
      this.noteMembership(entry, result);
    }
    const waiting = this.awaiting.get(entry.index);
    if (waiting === undefined) return;
    this.awaiting.delete(entry.index);
    for (const id of waiting) {
      const r = this.requests.get(id);
      if (r?.state.kind !== 'applied') continue;
      assert(
        r.state.term === entry.term,
        `the leader applied index ${entry.index} in term ${r.state.term} but this node applied term ${entry.term}: committed entries never change`,
      );
      this.finish(r, result === null ? err(this.unknown(entry.index)) : this.resultOf(result, entry.index));
    }
  }

  private noteMembership(entry: Entry, result: ApplyResult<MuxOutput>): void {
    const isMembership = result.ok
      ? result.value.tag === MUX_TAG_MEMBERSHIP
      : entry.type === 'normal' && entry.data[0] === MUX_TAG_MEMBERSHIP;
    if (!isMembership) return;
    const output = result.ok ? (result.value.output as MembershipOutput) : null;
    this.opts.observer?.onMembershipApplied?.(
      entry.index,
      output,
      result.ok ? null : `${result.error.code}: ${result.error.message}`,
    );
    if (output !== null) this.noteGroups(output);
    const view = this.membership.view();
    if (view.viewId !== this.lastViewId) {
      this.lastViewId = view.viewId;
      this.detector?.setMembers(view.members, this.env.clock.nowMs());
    }
    const mine = view.members.find((m) => m.node === this.nodeId);
    const joined = mine !== undefined && mine.incarnation === this.incarnation;
    if (joined && !this.joinedFlag) {
      this.joinedFlag = true;
      this.background.delete('join');
      this.opts.observer?.onJoined?.(this.incarnation);
    }
    if (!joined) this.joinedFlag = false;
  }

  /** Group events and deliveries of one applied membership entry. */
  private noteGroups(output: MembershipOutput): void {
    const g = output.group;
    if (g?.delivery !== undefined && this.isMe(g.delivery.members)) {
      this.deliver(g.delivery.group, g.groupViewId, g.delivery.seq, g.delivery.from, g.delivery.payload);
    }
    if (output.events > 0) this.reportGroupEvents(false);
  }

  /**
   * Reports the group and barrier events applied since the last report (`eventsSeen`), in order:
   * the events of the entry just applied, or (`catchUp`) those a snapshot skipped, from the
   * retained event window.
   */
  private reportGroupEvents(catchUp: boolean): void {
    for (
      let page = this.membership.eventsFrom(this.eventsSeen + 1, MEMBERSHIP_EVENTS_READ_MAX);
      page.ok;
      page = this.membership.eventsFrom(page.value.next, MEMBERSHIP_EVENTS_READ_MAX)
    ) {
      for (const e of page.value.events) {
        if (e.kind === 'group') this.noteGroupView(e.payload, catchUp);
        else if (e.kind === 'barrier') {
          const p = e.payload;
          this.opts.observer?.onBarrier?.(p.group, p.name, p.groupViewId, p.outcome);
          this.endBarrier(p.group, p.name, p.groupViewId, p.outcome);
        }
      }
      if (page.value.events.length < MEMBERSHIP_EVENTS_READ_MAX) break;
    }
    this.eventsSeen = this.membership.nextEventSeq - 1;
  }

  private deliver(group: string, groupViewId: number, seq: number, from: NodeId, payload: Uint8Array): void {
    this.deliveredUpTo.set(group, { groupViewId, seq });
    this.opts.observer?.onGroupDeliver?.(group, groupViewId, seq, from, payload);
  }

  /**
   * After a snapshot replaced the state: report the group and barrier events the snapshot
   * skipped (from the retained event window) in order and, before each group view change, deliver
   * the messages of the view that ended which this member missed; then those of each current
   * view. The messages come from what the group retains (docs/groups.md, "Catching up"); any
   * that are no longer retained are reported as a gap (`onGroupGap`): the application must treat
   * the group as rejoined.
   */
  private catchUpGroups(): void {
    this.reportGroupEvents(true);
    for (const view of this.membership.groups()) {
      if (!this.isMe(view.members)) continue;
      this.groupViews.set(view.group, { viewId: view.viewId, member: true });
      this.fillGroup(view.group, view.viewId, this.membership.groupSeq(view.group));
    }
  }

  /**
   * A group view change applied (or replayed after a snapshot, `catchUp`): first the messages
   * this member missed in the view that ended, then the observer's `onGroupView`.
   */
  private noteGroupView(v: GroupViewPayload, catchUp: boolean): void {
    const prev = this.groupViews.get(v.group);
    if (catchUp && prev?.member === true) this.fillGroup(v.group, prev.viewId, v.prevSeq);
    this.groupViews.set(v.group, { viewId: v.groupViewId, member: this.isMe(v.members) });
    this.opts.observer?.onGroupView?.(v.group, v);
  }

  /** Delivers the retained messages of `viewId` after the last one delivered here, up to `upTo`; reports what is missing. */
  private fillGroup(group: string, viewId: number, upTo: number): void {
    const last = this.deliveredUpTo.get(group);
    const after = last?.groupViewId === viewId ? last.seq : 0;
    if (upTo <= after) return;
    let next = after + 1;
    for (const m of this.membership.retainedMessages(group)) {
      if (m.viewId !== viewId || m.seq < next || m.seq > upTo) continue;
      if (m.seq > next) this.groupGap(group, viewId, next, m.seq - 1);
      this.deliver(group, viewId, m.seq, m.from, m.payload);
      next = m.seq + 1;
    }
    if (next <= upTo) this.groupGap(group, viewId, next, upTo);
  }

  private groupGap(group: string, viewId: number, from: number, to: number): void {
    this.env.trace('group-gap', { group, view: viewId, from, to });
    this.opts.observer?.onGroupGap?.(group, viewId, from, to);
  }

  /** Completes the local waiters of a barrier that ended. */
  private endBarrier(group: string, name: string, groupViewId: number, outcome: BarrierOutcome): void {
    const key = barrierKey(group, name);
    const list = this.barrierWaiters.get(key);
    if (list === undefined) return;
    const rest = list.filter((w) => w.groupViewId !== groupViewId);
    for (const w of list)
      if (w.groupViewId === groupViewId)
        w.done(outcome === 'reached' ? ok({ groupViewId }) : err(viewChanged(group, groupViewId)));
    if (rest.length === 0) this.barrierWaiters.delete(key);
    else this.barrierWaiters.set(key, rest);
  }

  private onRestore(index: LogIndex): void {
    for (const [i, ids] of [...this.awaiting]) {
      if (i > index) continue;
      this.awaiting.delete(i);
      for (const id of ids) {
        const r = this.requests.get(id);
        if (r !== undefined) this.finish(r, err(this.unknown(i)));
      }
    }
    this.results.clear();
    this.lastViewId = -1;
    this.noteMembershipAfterRestore();
    this.opts.observer?.onRestored?.(index);
    this.catchUpGroups();
    // A snapshot may skip a barrier's end beyond the retained events: settle the waiters whose
    // barrier the restored state shows reached in their view (ok) or whose view ended
    // (VIEW_CHANGED); the others still wait (their arrival may not even be applied yet).
    for (const [key, list] of [...this.barrierWaiters]) {
      const [group = '', name = ''] = key.split('\u0000');
      const view = this.membership.group(group);
      for (const w of [...list]) {
        if (view?.viewId !== w.groupViewId) w.done(err(viewChanged(group, w.groupViewId)));
        else if (this.membership.barrierReached(group, name)) w.done(ok({ groupViewId: w.groupViewId }));
      }
    }
  }

  private noteMembershipAfterRestore(): void {
    const view = this.membership.view();
    this.lastViewId = view.viewId;
    this.detector?.setMembers(view.members, this.env.clock.nowMs());
    this.joinedFlag = this.isMe(view.members);
  }

  // -------------------------------------------------------------------------------------------
  // The tick

  private scheduleTick(dueMs: number): void {
    this.tickDueMs = dueMs + this.opts.timing.tickMs;
    this.timer = this.env.timers.after(this.opts.timing.tickMs, () => {
      this.onTick();
    });
  }

  private onTick(): void {
    if (this.state !== 'running') return;
    const now = this.env.clock.nowMs();
    const lagMs = Math.max(0, now - this.tickDueMs);
    if (this.readHoldTicks > 0) this.readHoldTicks--;
    if (lagMs >= this.opts.timing.tickMs) this.holdReads();
    this.scheduleTick(now);
    if (now - this.lastPingMs >= this.opts.timing.heartbeatMs) this.ping(now);
    this.serviceRequests(now);
    if (this.role === 'leader') this.leaderDuties(now, lagMs);
    this.maybeJoin(now);
    this.runBackground(now);
  }

  private ping(now: number): void {
    this.lastPingMs = now;
    const row = this.tracker.row(now).map((e) => ({
      node: e.node,
      silentMs: e.silentMs === null ? null : Math.min(Math.round(e.silentMs), ROW_SILENCE_MS_MAX),
    }));
    const sentMs = Math.max(0, Math.round(now));
    for (const peer of this.peers) this.env.transport.send(peer, { type: 'Ping', row, sentMs, inc: this.incarnation });
  }

  private leaderDuties(now: number, lagMs: number): void {
    if (this.membership.configuration() === null && !this.background.has(`${LEADER_KEY}configure`)) {
      this.background.set(`${LEADER_KEY}configure`, {
        what: 'configure',
        command: {
          type: 'configure',
          nodes: this.opts.nodes,
          options: this.opts.quorum,
          resetExpectedTracking: false,
          ...(this.opts.settingsFingerprint === undefined ? {} : { fingerprint: this.opts.settingsFingerprint }),
        },
        inFlight: false,
        notBeforeMs: now,
      });
    }
    const d = this.detector;
    if (d === null) return;
    d.localLag(lagMs);
    for (const decision of d.tick(now)) {
      this.opts.observer?.onDecision?.(decision);
      this.env.trace('detector', { type: decision.type, node: decision.node, incarnation: decision.incarnation });
      switch (decision.type) {
        case 'suspect':
        case 'clear':
          break;
        case 'fail':
          if (this.opts.canary === 'never-fail') break;
          this.background.set(`${LEADER_KEY}decide-${decision.node}`, {
            what: `fail node ${decision.node}`,
            command: { type: 'fail', node: decision.node, incarnation: decision.incarnation, reason: decision.reason },
            inFlight: false,
            notBeforeMs: now,
          });
          break;
        case 'quarantine':
          this.background.set(`${LEADER_KEY}decide-${decision.node}`, {
            what: `quarantine node ${decision.node}`,
            command: {
              type: 'quarantine',
              node: decision.node,
              incarnation: decision.incarnation,
              reason: decision.reason,
            },
            inFlight: false,
            notBeforeMs: now,
          });
          break;
        default:
          assertNever(decision, 'detector decision');
      }
    }
  }

  private maybeJoin(now: number): void {
    if (
      this.joinedFlag ||
      this.background.has('join') ||
      now < this.joinNotBeforeMs ||
      this.membership.configuration() === null
    )
      return;
    const record = this.membership.nodes().find((n) => n.nodeId === this.nodeId);
    // Waiting for a fence of the previous incarnation, or quarantined: joining again changes nothing.
    if (
      record !== undefined &&
      (record.status === 'quarantined' || (record.status === 'needs-fencing' && record.rejoin === this.incarnation))
    )
      return;
    if (this.joinProblem !== null) return;
    // This incarnation was in the view and was removed (failed, or replaced): it cannot come back;
    // only a restart (a new incarnation) can. Joining again would only commit stale joins forever.
    if (
      record !== undefined &&
      record.seen >= this.incarnation &&
      !(record.status === 'member' && record.incarnation === this.incarnation)
    ) {
      this.setJoinProblem(
        `incarnation ${this.incarnation} was removed from the view (node status ${record.status}); restart this node to rejoin as a new incarnation`,
      );
      return;
    }
    this.joinNotBeforeMs = now + RETRY_HEARTBEATS * this.opts.timing.heartbeatMs;
    const fingerprint = this.opts.settingsFingerprint;
    this.background.set('join', {
      what: 'join',
      command: {
        type: 'join',
        node: this.nodeId,
        incarnation: this.incarnation,
        ...(fingerprint === undefined ? {} : { fingerprint }),
      },
      inFlight: false,
      notBeforeMs: now,
    });
  }

  private setJoinProblem(problem: string): void {
    if (this.joinProblem === problem) return;
    this.joinProblem = problem;
    this.env.trace('join-problem', { problem });
    this.opts.observer?.onJoinProblem?.(problem);
  }

  private runBackground(now: number): void {
    for (const [key, b] of this.background) {
      if (b.inFlight || now < b.notBeforeMs) continue;
      b.inFlight = true;
      this.submit(
        { type: 'mux', tag: MUX_TAG_MEMBERSHIP, command: b.command },
        this.opts.timing.requestTimeoutMs,
        true,
        (r) => {
          b.inFlight = false;
          if (this.background.get(key) !== b) return;
          if (r.ok) {
            // Applied, whatever the outcome: a stale or duplicate command is settled too.
            this.background.delete(key);
            return;
          }
          if (key === 'join' && r.error.code === 'REFUSED' && r.error.message.startsWith('SETTINGS_MISMATCH')) {
            // A configuration problem, not a transient one: stop asking until the node restarts.
            this.background.delete(key);
            this.setJoinProblem(r.error.message.replace(/^SETTINGS_MISMATCH: /, '').replace(/ \(index \d+\)$/, ''));
            return;
          }
          b.notBeforeMs = this.env.clock.nowMs() + RETRY_HEARTBEATS * this.opts.timing.heartbeatMs;
          this.opts.observer?.onBackgroundFailure?.(b.what, r.error);
        },
      );
    }
  }
}

/** A local caller waiting for a barrier's end; `done` settles once (then the entry is removed). */
interface BarrierWaiter {
  readonly groupViewId: number;
  /** The caller's callback (to find the waiter when the caller cancels). */
  readonly caller: (r: Result<{ readonly groupViewId: number }, RaftNodeError | GroupError>) => void;
  readonly done: (r: Result<{ readonly groupViewId: number }, RaftNodeError | GroupError>) => void;
}

/** Forwards a leader remembers to answer duplicates (more than the requests one node may have pending). */
const FORWARDS_REMEMBERED_MAX = 2 * CLUSTER_REQUESTS_PENDING_MAX;

/** Request ids per incarnation (2^32), and incarnations before the id space wraps (2^20): ids stay below 2^53. */
const REQUEST_IDS_PER_INCARNATION = 2 ** 32;
const REQUEST_ID_INCARNATIONS = 2 ** 20;

function barrierKey(group: string, name: string): string {
  return `${group}\u0000${name}`;
}

function viewChanged(group: string, groupViewId: number): GroupError {
  return new GroupError(
    'VIEW_CHANGED',
    `the view of group ${group} changed (view ${groupViewId} ended) before every member reached the barrier; read the new view and run the barrier again`,
    groupViewId,
  );
}

/** The membership canary for node `self` (`diverge-views` plants a bug on node 1 only). */
function membershipCanary(canary: ClusterCanary | undefined, self: NodeId): MembershipCanary | null {
  switch (canary) {
    case undefined:
    case 'evict-on-missed-heartbeat':
    case 'never-fail':
      return null;
    case 'diverge-views':
      return self === 1 ? 'skip-view-bump' : null;
    case 'quorate-without-quorum':
    case 'deliver-to-newcomer':
    case 'barrier-without-all':
      return canary;
    default:
      return assertNever(canary, 'cluster canary');
  }
}

function groupErrorCode(outcome: GroupOutcome, type: GroupCommand['type']): GroupErrorCode | null {
  switch (outcome) {
    case 'applied':
      return null;
    case 'duplicate':
      return null;
    case 'not-in-view':
      return 'NOT_IN_VIEW';
    case 'not-member':
      return 'NOT_MEMBER';
    case 'no-such-group':
      return type === 'group-leave' ? null : 'NO_SUCH_GROUP';
    case 'view-changed':
      return 'VIEW_CHANGED';
    case 'too-many-groups':
    case 'too-many-barriers':
      return 'LIMIT';
    default:
      return assertNever(outcome, 'group outcome');
  }
}

function groupRefusal(code: GroupErrorCode, c: GroupCommand): string {
  switch (code) {
    case 'VIEW_CHANGED':
      return `the view of group ${c.group} changed before the ${c.type === 'barrier' ? 'barrier arrival' : 'message'} was ordered; nothing was delivered: read the new view, then retry if still wanted`;
    case 'NOT_MEMBER':
      return `node ${c.node} (incarnation ${c.incarnation}) is not a member of group ${c.group}; join it first`;
    case 'NOT_IN_VIEW':
      return `node ${c.node} (incarnation ${c.incarnation}) is not in the cluster view yet; wait until it has joined the cluster`;
    case 'NO_SUCH_GROUP':
      return `group ${c.group} has no members`;
    case 'LIMIT':
      return `group ${c.group}: a group table bound was reached (at most ${GROUPS_MAX} groups, ${GROUP_BARRIERS_PENDING_MAX} pending barriers per group)`;
    case 'INVALID':
      return `group ${c.group}: malformed request`;
    default:
      return assertNever(code, 'group error code');
  }
}

/** `result` without a group message's payload (the retained results stay small). */
function withoutPayload(result: ApplyResult<MuxOutput>): ApplyResult<MuxOutput> {
  if (!result.ok || result.value.tag !== MUX_TAG_MEMBERSHIP) return result;
  const out = result.value.output as MembershipOutput;
  const d = out.group?.delivery;
  if (out.group === undefined || d === undefined || d.payload.length === 0) return result;
  return ok({
    ...result.value,
    output: { ...out, group: { ...out.group, delivery: { ...d, payload: new Uint8Array(0) } } },
  });
}
