/**
 * `MembershipService`: the node service that makes a set of Raft replicas a cluster (design note
 * sections 1-4, docs/membership.md). It owns the membership state machine on the log (views,
 * incarnations, quorum, the event stream, and the group table the groups service reads).
 *
 * - **Bootstrap.** The first leader proposes the membership `configure` command (the configured
 *   nodes and quorum options) while none is applied; an identical repeat is a no-op.
 * - **Join and leave.** Once configured, the node proposes `join(self, incarnation)` and retries
 *   until its incarnation is in the view (or waits for a fence, or is quarantined). An
 *   incarnation below one the cluster saw (the stable state was lost) learns the right one
 *   instead: see `learnIncarnation`. `leave`
 *   proposes `leave(self, incarnation)` and reports when it is applied or its deadline passed.
 * - **Failure detection.** Every node pings every peer once per heartbeat with its reachability
 *   row; the leader runs one `FailureDetector` per leadership (`MembershipLiveness`); its
 *   `fail`/`quarantine` decisions are proposed and retried (idempotent commands) until applied or
 *   leadership is lost.
 * - **Status** with the local quorum verdict (`localQuorumStatus`).
 * - **Manual fencing** (`fenceConfirm`): an operator's confirmation that a node's incarnation was
 *   fenced becomes the membership `fenced` command, which admits a waiting incarnation.
 * - Every new view is announced to the other services through the host (`announceView`).
 */
import { assert, assertNever, defined } from '../lib/assert.js';
import { CLUSTER_NODES_MAX } from '../constants.js';
import { ok, type Result } from '../lib/errors.js';
import type { Incarnation, LogIndex, NodeId, Term } from '../lib/ids.js';
import type { AnyStateMachine, ConfState, RaftRole } from '../log/index.js';
import type { Arbitration, VotequorumOptions } from '../quorum/index.js';
import type { ApiHandlerRegistry } from '../api/index.js';
import type { HostTiming } from '../runtime/cluster-node.js';
import { registerMembershipApi } from './membership-handlers.js';
import type {
  AppliedEntry,
  ChannelSpec,
  MachineHandle,
  MachineSpec,
  NodeService,
  PeerChannel,
  ServiceContext,
} from '../runtime/node-service.js';
import { RaftNodeError } from '../runtime/raft-node.js';
import type { DetectorDecision, DetectorTimes } from './failure-detector.js';
import { localQuorumStatus, type LocalQuorumStatus } from './local-quorum.js';
import type { MemberNodeSpec, MembershipCommand } from './membership-command.js';
import type { EventPage, MembershipEventError } from './membership-event.js';
import { MembershipLiveness } from './membership-liveness.js';
import type { ReachabilityRow } from './reachability-tracker.js';
import {
  MembershipStateMachine,
  type MembershipCanary,
  type MembershipErrorCode,
  type MembershipOutput,
  type MembershipView,
  type NodeInfo,
} from './membership-state-machine.js';
import {
  fenceTarget,
  type ClusterStatus,
  type FenceConfirmation,
  type FenceConfirmError,
} from './membership-status.js';
import { pingCodec, type PingMessage } from './ping-message.js';

/** Mux tag of the membership state machine (never reuse a retired tag). */
export const MUX_TAG_MEMBERSHIP = 1;
/** Peer channel of the membership service (pings). */
export const CHANNEL_MEMBERSHIP = 2;

/** Timing of one node: the host's, plus the membership service's (the daemon derives both). */
export interface ClusterTiming extends HostTiming {
  /** How long a follower trusts the leader's last message (node lease minus drift margin). */
  readonly followerLeaseMs: number;
  /** The failure detector's times. */
  readonly detector: DetectorTimes;
}

/** Membership events worth observing from outside (logs, metrics, tests), called synchronously. */
export interface MembershipObserver {
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
  /**
   * This run's `incarnation` is below `seen`, the newest the cluster saw for this node (its stable
   * state was lost or rolled back): `seen` is recorded as used and the node stops, to run as
   * `next` when started again.
   */
  onIncarnationLearned?(incarnation: Incarnation, seen: number, next: Incarnation): void;
  /** A background proposal (join, configure, a detector decision) failed; it is retried. */
  onBackgroundFailure?(what: string, error: RaftNodeError): void;
}

/**
 * Planted bugs the simulator's checkers must catch (never set in production):
 * - `evict-on-missed-heartbeat`: the failure detector fails a node after one missed heartbeat;
 * - `never-fail`: the leader never proposes a detector's failure decision;
 * - `pause-is-gone`: the leader takes silence (a `suspect` decision: a pause, a stall or a
 *   crash alike) for proof that the process is gone and fails the node at once, `process-gone`;
 * - `diverge-views`: node 1's membership machine keeps the view id when a member leaves or fails;
 * - the membership machine's canaries (`quorate-without-quorum`, the group table's
 *   `deliver-to-newcomer`, `barrier-without-all`, and the fence ledger's `fence-twice`,
 *   `admit-before-fence`, `fence-clean-leave`: see `FenceCanary`), on every node;
 * - the recovery table's `start-before-fence`, `start-before-lower` and `skip-abort`, on every
 *   node (they flow to the recovery table like the group canaries to the group table);
 * - `two-node-unfenced`: the fencing service wins the two_node race without running a device
 *   (both halves of a split then count the other as fenced and commit alone).
 */
export type ClusterCanary =
  | 'evict-on-missed-heartbeat'
  | 'never-fail'
  | 'pause-is-gone'
  | 'diverge-views'
  | 'two-node-unfenced'
  | Exclude<MembershipCanary, 'skip-view-bump'>;

/** Every cluster canary name. */
export const CLUSTER_CANARIES: readonly ClusterCanary[] = [
  'evict-on-missed-heartbeat',
  'never-fail',
  'pause-is-gone',
  'diverge-views',
  'quorate-without-quorum',
  'deliver-to-newcomer',
  'barrier-without-all',
  'start-before-fence',
  'start-before-lower',
  'skip-abort',
  'fence-twice',
  'admit-before-fence',
  'fence-clean-leave',
  'two-node-unfenced',
];

/** Options of the membership service. */
export interface MembershipServiceOptions {
  readonly timing: ClusterTiming;
  /** Every configured node, strictly ascending by id; this node among them. */
  readonly nodes: readonly MemberNodeSpec[];
  readonly quorum: VotequorumOptions;
  readonly observer?: MembershipObserver;
  readonly canary?: ClusterCanary;
  /**
   * The fingerprint of the cluster-wide settings (the daemon's `configFingerprint`). The first
   * leader commits it with the configuration; a join carrying another one is refused
   * (`SETTINGS_MISMATCH`), and the node reports why in `status().joinProblem`. Absent: not checked.
   */
  readonly settingsFingerprint?: string;
}

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

/** A background proposal retried until it lands (keyed so at most one per key is in flight). */
interface Background {
  readonly what: string;
  readonly command: MembershipCommand;
  inFlight: boolean;
  /** Do not try again before this time (backoff after a failure). */
  notBeforeMs: number;
}

/** A failed background proposal is retried after this many heartbeats. */
const RETRY_HEARTBEATS = 2;
/** Key prefix of background proposals that belong to the leadership (dropped when it ends). */
const LEADER_KEY = 'leader:';

/** The membership machine's spec for node `self` (its canary planted per node). */
function membershipMachine(
  canary: ClusterCanary | undefined,
  self: NodeId,
): MachineSpec<MembershipCommand, MembershipOutput, MembershipStateMachine> {
  return {
    tag: MUX_TAG_MEMBERSHIP,
    name: 'membership',
    create: () => new MembershipStateMachine(membershipCanary(canary, self)),
    is: (m: AnyStateMachine): m is MembershipStateMachine => m instanceof MembershipStateMachine,
    retained: withoutPayload,
  };
}

/** The membership channel's spec. */
export const MEMBERSHIP_CHANNEL: ChannelSpec<PingMessage> = {
  id: CHANNEL_MEMBERSHIP,
  name: 'membership',
  codec: pingCodec(),
  lane: 'control',
};

/** See the file comment. */
export class MembershipService implements NodeService {
  readonly name = 'membership';
  readonly machines: readonly MachineSpec<MembershipCommand, MembershipOutput, MembershipStateMachine>[];
  readonly channels = [MEMBERSHIP_CHANNEL];
  private ctxRef: ServiceContext | null = null;
  private handleRef: MachineHandle<MembershipCommand, MembershipOutput, MembershipStateMachine> | null = null;
  private pings: PeerChannel<PingMessage> | null = null;
  private readonly self: MemberNodeSpec;
  private readonly peers: readonly NodeId[];
  private readonly liveness: MembershipLiveness;
  private readonly background = new Map<string, Background>();
  private lastViewId = -1;
  private joinedFlag = false;
  /** Why this incarnation cannot join (settings differ, or it was removed from the view), or null. */
  private joinProblem: string | null = null;
  private joinNotBeforeMs = 0;
  /** A linearizable read before retiring this incarnation is in flight, or the retire is done. */
  private learning: 'idle' | 'reading' | 'retired' = 'idle';
  /** Open `events` streams, told after every applied membership command or restored snapshot. */
  private localConfirm: ((node: NodeId, incarnation: number | null) => FenceConfirmation | null) | null = null;
  private readonly listeners = new Set<() => void>();

  constructor(
    /** This node. */
    readonly nodeId: NodeId,
    private readonly opts: MembershipServiceOptions,
  ) {
    const nodes = opts.nodes;
    assert(
      nodes.length >= 1 && nodes.length <= CLUSTER_NODES_MAX,
      `a cluster has 1..${CLUSTER_NODES_MAX} configured nodes`,
    );
    for (let i = 1; i < nodes.length; i++)
      assert((nodes[i - 1]?.nodeId ?? 0) < (nodes[i]?.nodeId ?? 0), 'configured nodes are strictly ascending by id');
    this.self = defined(
      nodes.find((n) => n.nodeId === nodeId),
      `node ${nodeId} is not among the configured nodes`,
    );
    assert(opts.timing.followerLeaseMs > 0, 'the follower lease must be positive');
    this.peers = nodes.map((n) => n.nodeId).filter((id) => id !== nodeId);
    this.machines = [membershipMachine(opts.canary, nodeId)];
    this.liveness = new MembershipLiveness(
      nodeId,
      this.peers,
      opts.timing.detector,
      opts.canary === 'evict-on-missed-heartbeat',
    );
  }

  attach(ctx: ServiceContext): void {
    this.ctxRef = ctx;
    this.handleRef = ctx.machine(defined(this.machines[0]));
    this.pings = ctx.channel(MEMBERSHIP_CHANNEL, (from, m) => {
      this.liveness.onPing(from, m, ctx.clock.nowMs());
    });
    this.lastViewId = -1;
  }

  private get ctx(): ServiceContext {
    return defined(this.ctxRef, 'the membership service is attached');
  }

  /** The membership state machine (the mux recreates it on a snapshot restore: never keep it). */
  get machine(): MembershipStateMachine {
    return defined(this.handleRef, 'the membership service is attached').machine();
  }

  /** The typed handle on the membership machine (the groups service proposes through it). */
  get handle(): MachineHandle<MembershipCommand, MembershipOutput, MembershipStateMachine> {
    return defined(this.handleRef, 'the membership service is attached');
  }

  /** Whether this incarnation is in the applied view. */
  get joined(): boolean {
    return this.joinedFlag;
  }

  /** Whether this incarnation is among `members`. */
  isMe(members: readonly { readonly node: NodeId; readonly incarnation: number }[]): boolean {
    const inc = this.ctx.incarnation;
    return members.some((m) => m.node === this.nodeId && m.incarnation === inc);
  }

  // -------------------------------------------------------------------------------------------
  // Requests

  /**
   * Proposes `leave(self, incarnation)` and calls `done` once it is applied (null) or failed
   * (the error; e.g. no quorum within `timeoutMs`). The node keeps running: stop it after. With
   * two_node, `done` waits (within `timeoutMs`) until this node is no longer a Raft voter too
   * (the leader demotes it: `two-node-voters.ts`), so that its peer can commit alone once it
   * stops; `TIMEOUT` if that did not happen in time.
   */
  leave(timeoutMs: number, done: (error: RaftNodeError | null) => void): void {
    const command: MembershipCommand = { type: 'leave', node: this.nodeId, incarnation: this.ctx.incarnation };
    const deadline = this.ctx.clock.nowMs() + timeoutMs;
    this.handle.propose(command, { timeoutMs, idempotent: true }, (r) => {
      if (!r.ok || !this.opts.quorum.twoNode) done(r.ok ? null : r.error);
      else this.awaitDemotion(deadline, done);
    });
  }

  /** two_node: calls `done` once this node is no longer a Raft voter, or with `TIMEOUT` at `deadline`. */
  private awaitDemotion(deadline: number, done: (error: RaftNodeError | null) => void): void {
    if (!this.ctx.raft().voters.includes(this.nodeId)) {
      done(null);
      return;
    }
    if (this.ctx.clock.nowMs() >= deadline || !this.ctx.running()) {
      done(
        new RaftNodeError(
          'TIMEOUT',
          'two_node: left the view, but is still a Raft voter (its demotion did not commit in time): the peer cannot commit alone until this node returns',
        ),
      );
      return;
    }
    this.ctx.timers.after(this.opts.timing.tickMs, () => {
      this.awaitDemotion(deadline, done);
    });
  }

  /**
   * The manual fence agent (design note section 6): the operator confirms that `node` was fenced
   * at `incarnation` (null: the incarnation that needs fencing now), and this proposes
   * `fenced(node, incarnation)` by `confirm`, with this node's wall-clock time for the fence
   * ledger. A newer incarnation waiting for that fence is admitted into the
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
    const local = this.localConfirm?.(node, incarnation) ?? null;
    if (local !== null) {
      done(ok(local));
      return;
    }
    const checked = fenceTarget(this.machine, node, incarnation);
    if (!checked.ok) {
      done(checked);
      return;
    }
    const inc = checked.value;
    const proof = { by: 'confirm', atMs: this.ctx.wallMs() } as const;
    const command: MembershipCommand = { type: 'fenced', node, incarnation: inc, proof };
    // The `fence-twice` canary (simulator only) proposes every confirmation twice.
    if (this.opts.canary === 'fence-twice') this.handle.propose(command, { idempotent: true }, () => undefined);
    this.handle.propose(command, { idempotent: true }, (r) => {
      if (!r.ok) {
        done(r);
        return;
      }
      const out = r.value;
      const rec = defined(
        this.machine.nodes().find((n) => n.nodeId === node),
        'a configured node keeps its record',
      );
      const admitted =
        out.outcome === 'applied' && rec.status === 'member' && rec.incarnation > inc ? rec.incarnation : null;
      done(
        ok({
          nodeId: node,
          incarnation: inc,
          outcome: out.outcome,
          status: rec.status,
          admitted,
          viewId: out.viewId,
          local: false,
        }),
      );
    });
  }

  /**
   * two_node: the fencing service's local path for `fenceConfirm` in a split, where nothing can
   * be committed: it answers a confirmation it took (null: not its case, the normal path runs).
   */
  setLocalConfirm(fn: (node: NodeId, incarnation: number | null) => FenceConfirmation | null): void {
    this.localConfirm = fn;
  }

  /**
   * Calls `fn` after every membership command applied here and after a snapshot restored (the
   * API's `events` stream then reads what is new); returns the function that unsubscribes.
   */
  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
    };
  }

  /** Registers the membership methods of the local API (`membership-handlers.ts`). */
  registerApi(registry: ApiHandlerRegistry): void {
    registerMembershipApi(registry, this);
  }

  private notify(): void {
    for (const fn of [...this.listeners]) fn();
  }

  // -------------------------------------------------------------------------------------------
  // Reads

  /** The local view (possibly stale; see `status().quorate`). */
  view(): MembershipView {
    return this.machine.view();
  }

  /** Every configured node and its membership record (empty until configured). */
  nodes(): NodeInfo[] {
    return this.machine.nodes();
  }

  /** The arbitration behind the view's quorate flag (null until configured). */
  arbitration(): Arbitration | null {
    return this.machine.arbitration();
  }

  /** Reads the membership event stream (see `MembershipStateMachine.eventsFrom`). */
  eventsFrom(seq: number, limit: number): Result<EventPage, MembershipEventError> {
    return this.machine.eventsFrom(seq, limit);
  }

  /** The seq the next membership event will get. */
  get nextEventSeq(): number {
    return this.machine.nextEventSeq;
  }

  /** How long this node has not heard each peer (pings, dated back by lateness), ascending by id. */
  reachability(now: number): ReachabilityRow {
    return this.liveness.silences(now);
  }

  /** Whether `present` would hold a quorum under the committed configuration (`quorateWith`). */
  wouldBeQuorate(present: ReadonlySet<NodeId>): boolean {
    return this.machine.quorateWith(present);
  }

  /** This node's local quorum verdict now. */
  localQuorum(): LocalQuorumStatus {
    const rs = this.ctx.raft();
    const configured = this.machine.configuration() !== null;
    const v = this.machine.view();
    return localQuorumStatus({
      self: this.nodeId,
      role: rs.role,
      lead: rs.lead,
      leaseValid: rs.leaseValid,
      sinceLeaderMs: rs.sinceLeaderMs,
      followerLeaseMs: this.opts.timing.followerLeaseMs,
      view: configured ? { quorate: v.quorate, explanation: v.explanation } : null,
    });
  }

  /** The status `cohort status` shows (see `ClusterStatus`). */
  status(): ClusterStatus {
    const rs = this.ctx.raft();
    const view = this.machine.view();
    const q = this.localQuorum();
    const side = this.machine.arbitration()?.arithmetic.incoming;
    const names = new Map(this.opts.nodes.map((n) => [n.nodeId, n.name]));
    return {
      nodeId: this.nodeId,
      name: this.self.name,
      incarnation: this.ctx.incarnation,
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
      leaseValid: rs.leaseValid,
      readsHeld: rs.readsHeld,
      raftConfig: rs.config,
      joinProblem: this.joinProblem,
    };
  }

  // -------------------------------------------------------------------------------------------
  // Host notifications

  onStart(): void {
    this.noteView();
  }

  onApplied(applied: AppliedEntry): void {
    const result = this.handle.outputOf(applied);
    if (result === undefined) return;
    const output = result.ok ? result.value : null;
    const error = result.ok ? null : `${result.error.code}: ${result.error.message}`;
    this.opts.observer?.onMembershipApplied?.(applied.entry.index, output, error);
    this.noteView();
    const view = this.machine.view();
    const joined = this.isMe(view.members);
    if (joined && !this.joinedFlag) {
      this.joinedFlag = true;
      this.background.delete('join');
      this.opts.observer?.onJoined?.(this.ctx.incarnation);
    }
    if (!joined) this.joinedFlag = false;
    this.notify();
  }

  onRestored(index: LogIndex): void {
    this.lastViewId = -1;
    this.noteView();
    this.joinedFlag = this.isMe(this.machine.view().members);
    this.opts.observer?.onRestored?.(index);
    this.notify();
  }

  onRole(role: RaftRole, _term: Term, _lead: NodeId | null): void {
    if (role === 'leader') {
      this.liveness.startDetector(this.machine.view().members, this.ctx.clock.nowMs());
      return;
    }
    this.liveness.stopDetector();
    // Leader duties end with the leadership: a new leader's detector decides afresh.
    for (const key of [...this.background.keys()]) if (key.startsWith(LEADER_KEY)) this.background.delete(key);
  }

  onLeaderTick(now: number, lagMs: number): void {
    if (this.machine.configuration() === null && !this.background.has(`${LEADER_KEY}configure`)) {
      const fingerprint = this.opts.settingsFingerprint;
      const command: MembershipCommand = {
        type: 'configure',
        nodes: this.opts.nodes,
        options: this.opts.quorum,
        resetExpectedTracking: false,
        ...(fingerprint === undefined ? {} : { fingerprint }),
      };
      this.background.set(`${LEADER_KEY}configure`, { what: 'configure', command, inFlight: false, notBeforeMs: now });
    }
    for (const decision of this.liveness.decide(now, lagMs)) this.decided(decision, now);
  }

  onTick(now: number): void {
    const ping = this.liveness.ping(now, this.ctx.incarnation);
    if (ping !== null) for (const peer of this.peers) this.pings?.send(peer, ping);
    this.maybeJoin(now);
    this.runBackground(now);
  }

  /**
   * Proof that process `incarnation` of `peer` is gone (`NodeService.onPeerGone`): remembered,
   * and on the leader the detector fails it now (reason `process-gone`), proposed at once
   * instead of at the next tick.
   */
  onPeerGone(peer: NodeId, incarnation: number): void {
    const now = this.ctx.clock.nowMs();
    const decision = this.liveness.processGone(peer, incarnation, now);
    if (decision === null) return;
    this.decided(decision, now);
    this.runBackground(now);
  }

  onStop(): void {
    this.liveness.stopDetector();
  }

  // -------------------------------------------------------------------------------------------
  // Internals

  /** A new view was applied: the detector watches it, and every service hears of it. */
  private noteView(): void {
    const view = this.machine.view();
    if (view.viewId === this.lastViewId) return;
    this.lastViewId = view.viewId;
    this.liveness.setMembers(view.members, this.ctx.clock.nowMs());
    this.ctx.announceView(view);
  }

  private decided(decision: DetectorDecision, now: number): void {
    this.opts.observer?.onDecision?.(decision);
    const reason = decision.type === 'fail' || decision.type === 'quarantine' ? decision.reason.kind : undefined;
    this.ctx.trace('detector', {
      type: decision.type,
      node: decision.node,
      incarnation: decision.incarnation,
      ...(reason === undefined ? {} : { reason }),
    });
    const key = `${LEADER_KEY}decide-${decision.node}`;
    const { node, incarnation } = decision;
    switch (decision.type) {
      case 'suspect':
        // The planted bug: silence taken for proof that the process is gone.
        if (this.opts.canary === 'pause-is-gone') this.onPeerGone(node, incarnation);
        return;
      case 'clear':
        return;
      case 'fail':
        if (this.opts.canary === 'never-fail') return;
        this.background.set(key, {
          what: `fail node ${node}`,
          command: { type: 'fail', node, incarnation, reason: decision.reason },
          inFlight: false,
          notBeforeMs: now,
        });
        return;
      case 'quarantine':
        this.background.set(key, {
          what: `quarantine node ${node}`,
          command: { type: 'quarantine', node, incarnation, reason: decision.reason },
          inFlight: false,
          notBeforeMs: now,
        });
        return;
      default:
        assertNever(decision, 'detector decision');
    }
  }

  private maybeJoin(now: number): void {
    if (this.joinedFlag || this.background.has('join') || now < this.joinNotBeforeMs) return;
    if (this.machine.configuration() === null || this.joinProblem !== null) return;
    const inc = this.ctx.incarnation;
    const record = this.machine.nodes().find((n) => n.nodeId === this.nodeId);
    // Waiting for a fence of the previous incarnation, or quarantined: joining again changes nothing.
    if (record?.status === 'quarantined' || (record?.status === 'needs-fencing' && record.rejoin === inc)) return;
    // The cluster saw a newer incarnation of this node than this run's: the counter went back.
    if (record !== undefined && record.seen > inc) {
      this.learnIncarnation();
      return;
    }
    // This incarnation was in the view and was removed (failed, or replaced): it cannot come back;
    // only a restart (a new incarnation) can. Joining again would only commit stale joins forever.
    if (record !== undefined && record.seen >= inc && !(record.status === 'member' && record.incarnation === inc)) {
      this.setJoinProblem(
        `incarnation ${inc} was removed from the view (node status ${record.status}); restart this node to rejoin as a new incarnation`,
      );
      return;
    }
    this.joinNotBeforeMs = now + RETRY_HEARTBEATS * this.opts.timing.heartbeatMs;
    const fingerprint = this.opts.settingsFingerprint;
    const command: MembershipCommand = {
      type: 'join',
      node: this.nodeId,
      incarnation: inc,
      ...(fingerprint === undefined ? {} : { fingerprint }),
    };
    this.background.set('join', { what: 'join', command, inFlight: false, notBeforeMs: now });
  }

  /**
   * This run's incarnation is below `seen`, the newest incarnation of this node the cluster has
   * recorded: the stable state that counts incarnations was lost (deleted, damaged, restored from
   * an old backup). Restarting until the counter passes `seen` would take `seen` restarts, so the
   * node learns it instead: after a linearizable read (the applied state then holds every command
   * committed before it, so `seen` is the cluster's newest), it records durably that incarnations
   * up to `seen` are used and stops (`ServiceContext.retire`); the next start runs as
   * `max(seen, incarnation) + 1`.
   *
   * Why no incarnation serves two lives of the node (what fencing relies on): safety comes from
   * the machine, which never admits an incarnation at or below `seen` (and `seen` only grows), so
   * a reused number is refused, never a member twice; lives are sequential (the data directory's
   * lock file). This rule gives liveness: the next incarnation exceeds every incarnation a
   * committed command named for the node (membership, groups, locks and fencing learn of one only
   * that way) and this run's own, and it is durable before the next run starts (a crash before
   * that leaves a refused number, learned again). This run does not switch incarnations in place:
   * its incarnation is captured by every service (`ServiceContext.incarnation`), the request
   * router's id space and the pings already sent, so one process would be two lives. It never
   * joined, so stopping it costs nothing (a supervisor restarts it; exit code 3).
   */
  private learnIncarnation(): void {
    if (this.learning !== 'idle') return;
    this.learning = 'reading';
    this.ctx.read(this.ctx.clock.nowMs() + this.ctx.requestTimeoutMs, (r) => {
      if (this.learning !== 'reading' || !this.ctx.running()) return;
      const inc = this.ctx.incarnation;
      const seen = this.machine.nodes().find((n) => n.nodeId === this.nodeId)?.seen ?? 0;
      if (!r.ok || seen <= inc) {
        this.learning = 'idle'; // no leader yet: maybeJoin asks again next tick
        return;
      }
      this.learning = 'retired';
      const next = Math.max(seen, inc) + 1;
      const why = `incarnation ${inc} is not new: the cluster already saw incarnation ${seen} of this node (its stable state was lost or restored from an old copy); incarnations up to ${seen} are now recorded as used, so the next start joins as incarnation ${next}: start this node again`;
      this.ctx.trace('incarnation-learned', { incarnation: inc, seen, next });
      this.opts.observer?.onIncarnationLearned?.(inc, seen, this.ctx.retire(seen, why));
    });
  }

  private setJoinProblem(problem: string): void {
    if (this.joinProblem === problem) return;
    this.joinProblem = problem;
    this.ctx.trace('join-problem', { problem });
    this.opts.observer?.onJoinProblem?.(problem);
  }

  private runBackground(now: number): void {
    for (const [key, b] of this.background) {
      if (b.inFlight || now < b.notBeforeMs) continue;
      b.inFlight = true;
      this.handle.propose(b.command, { idempotent: true }, (r) => {
        b.inFlight = false;
        if (this.background.get(key) !== b) return;
        if (r.ok) {
          // Applied, whatever the outcome: a stale or duplicate command is settled too.
          this.background.delete(key);
          return;
        }
        if (key === 'join' && r.error.code === 'REFUSED' && r.error.refusal === SETTINGS_MISMATCH) {
          // A configuration problem, not a transient one: stop asking until the node restarts.
          this.background.delete(key);
          this.setJoinProblem(settingsProblem(r.error.message));
          return;
        }
        b.notBeforeMs = this.ctx.clock.nowMs() + RETRY_HEARTBEATS * this.opts.timing.heartbeatMs;
        this.opts.observer?.onBackgroundFailure?.(b.what, r.error);
      });
    }
  }
}

/** The membership canary for node `self` (`diverge-views` plants a bug on node 1 only). */
function membershipCanary(canary: ClusterCanary | undefined, self: NodeId): MembershipCanary | null {
  switch (canary) {
    case undefined:
    case 'evict-on-missed-heartbeat':
    case 'never-fail':
    case 'pause-is-gone':
    case 'two-node-unfenced':
      return null;
    case 'diverge-views':
      return self === 1 ? 'skip-view-bump' : null;
    case 'quorate-without-quorum':
    case 'deliver-to-newcomer':
    case 'barrier-without-all':
    case 'start-before-fence':
    case 'start-before-lower':
    case 'skip-abort':
    case 'fence-twice':
    case 'admit-before-fence':
    case 'fence-clean-leave':
      return canary;
    default:
      return assertNever(canary, 'cluster canary');
  }
}

/** An output without a group message's payload (the results kept for forwarders stay small). */
function withoutPayload(out: MembershipOutput): MembershipOutput {
  const d = out.group?.delivery;
  if (out.group === undefined || d === undefined || d.payload.length === 0) return out;
  return { ...out, group: { ...out.group, delivery: { ...d, payload: new Uint8Array(0) } } };
}

/** The membership machine's refusal code for a join with other cluster-wide settings. */
const SETTINGS_MISMATCH: MembershipErrorCode = 'SETTINGS_MISMATCH';

/** The operator-facing problem of a settings refusal: the machine's message without code and index. */
function settingsProblem(message: string): string {
  return message.replace(/^(leader: )?SETTINGS_MISMATCH: /, '').replace(/ \(index \d+\)$/, '');
}
