/**
 * `ClusterNode`: the host of a cohort node's services (design note section 3). It runs the Raft
 * shell (`RaftNode`) over one `StateMachineMux` of the services' machines, carries every
 * service's peer channel over the node's transport, routes proposals to the leader (the built-in
 * `RequestRouter`), ticks, and tells every service what happened in the order the contract in
 * `node-service.ts` fixes. It knows nothing of any particular service: the services, and the one
 * list they are registered in, are in `src/services.ts`.
 *
 * **Reads after a stall.** The Raft shell counts one tick per timer firing, so after the process
 * was stopped (SIGSTOP, a long GC pause) its tick count lags real time and a leader's lease,
 * measured in ticks, would outlive the real one: meanwhile the others may have elected a new
 * leader and committed writes. When this node sees its event loop stalled (its tick late by a
 * whole tick or more), it holds every read for `electionTicks + READ_HOLD_EXTRA_TICKS` ticks,
 * long enough for any lease granted before the stall to expire in tick time too.
 *
 * Pure: only `NodeEnv` (clock, timers, transport, disk, prng), so the simulator runs the same
 * code. Every callback runs on the environment's single event loop; nothing is re-entrant.
 */
import { assert, assertNever, defined } from '../lib/assert.js';
import { CohortError, err, ok, type Result } from '../lib/errors.js';
import type { Incarnation, LogIndex, NodeId, Term } from '../lib/ids.js';
import {
  StateMachineMux,
  type AnyStateMachine,
  type ApplyResult,
  type ConfChangeSingle,
  type ConfState,
  type Entry,
  type MuxCommand,
  type MuxOutput,
  type RaftMessage,
  type RaftRole,
  type StateMachine,
} from '../log/index.js';
import { msgpackCodec } from '../transport/message-codec.js';
import { validateRaftMessage } from '../log/index.js';
import type { Lane, Transport, TransportHandlers } from '../transport/transport.js';
import type { StorageRepair } from '../storage/index.js';
import { VIRTUAL_EPOCH_MS, type NodeEnv, type TimerHandle } from './env.js';
import type {
  AppliedEntry,
  ChannelSpec,
  ClusterView,
  MachineHandle,
  MachineSpec,
  NodeService,
  PeerChannel,
  RaftFacts,
  ServiceContext,
} from './node-service.js';
import { CHANNEL_RAFT, CHANNEL_ROUTER, type ChannelMessage } from './peer-channels.js';
import { RaftNode, RaftNodeError } from './raft-node.js';
import { DEFINITE_REFUSALS, RequestRouter } from './request-router.js';
import { routerCodec, type RouterMessage } from './router-message.js';

/** The host's timing, in ms unless named ticks (the daemon derives it from the timeout model). */
export interface HostTiming {
  /** Length of one Raft tick; the host ticks its services at the same rate. */
  readonly tickMs: number;
  readonly heartbeatTicks: number;
  readonly electionTicks: number;
  readonly leaseMarginTicks: number;
  /** Interval of the node's heartbeat (request resend pacing; services ping at it). */
  readonly heartbeatMs: number;
  /** Deadline of a proposal or read, from the call. */
  readonly requestTimeoutMs: number;
}

/** Host-level events worth observing from outside (logs, metrics, tests), called synchronously. */
export interface HostObserver {
  /** The Raft role or the known leader changed. */
  onRole?(role: RaftRole, term: Term, lead: NodeId | null): void;
  /** Repair mode ended: the log this node lost at start is rebuilt from the leader up to `applied`. */
  onRepaired?(applied: LogIndex): void;
}

/** Options of a `ClusterNode`. */
export interface ClusterNodeOptions<S> {
  readonly timing: HostTiming;
  /** The Raft configuration of a fresh cluster (used only when the disk holds none). */
  readonly bootstrap: ConfState;
  /** votequorum's wait_for_all for the Raft core's first election. */
  readonly waitForAll: boolean;
  /** Take a Raft snapshot after this many applied entries (default 10 000). */
  readonly snapshotEntries?: number;
  /** Entries kept behind a snapshot for slightly lagging followers (default 1 000). */
  readonly snapshotCatchUpEntries?: number;
  readonly observer?: HostObserver;
  /** The services by name (what callers use), and the same services in registration order. */
  readonly services: S;
  readonly serviceList: readonly NodeService[];
}

/**
 * Ticks beyond the election timeout that reads stay held after a stall: the Raft shell's tick
 * timer and this node's fire at the same rate but not in lockstep, so allow for one late tick.
 */
const READ_HOLD_EXTRA_TICKS = 2;

/** The host's own channels (Raft, request router); services' channels come after them. */
export function hostChannels(): readonly ChannelSpec<unknown>[] {
  const raft: ChannelSpec<RaftMessage> = {
    id: CHANNEL_RAFT,
    name: 'raft',
    codec: msgpackCodec(validateRaftMessage),
    lane: 'control',
  };
  const router: ChannelSpec<RouterMessage> = {
    id: CHANNEL_ROUTER,
    name: 'router',
    codec: routerCodec(),
    lane: 'control',
  };
  return [raft, router] as readonly ChannelSpec<unknown>[];
}

/** See the file comment. */
export class ClusterNode<S = unknown> {
  readonly nodeId: NodeId;
  /** The services by name, as registered (`src/services.ts`). */
  readonly services: S;
  private readonly raft: RaftNode<MuxCommand, MuxOutput>;
  private readonly mux: StateMachineMux;
  private readonly router: RequestRouter;
  /** The services in registration order (the order the host calls them in). */
  readonly serviceList: readonly NodeService[];
  private readonly timing: HostTiming;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- a heterogeneous registry; each handle is typed
  private readonly specs = new Map<number, MachineSpec<any, any, any>>();
  private readonly receivers = new Map<number, (from: NodeId, message: unknown) => void>();
  private readonly lanes = new Map<number, Lane>();
  private raftHandlers: TransportHandlers<RaftMessage> | null = null;
  private role: RaftRole = 'follower';
  /** When a Raft message from each node last arrived (for the follower lease). */
  private readonly raftHeardMs = new Map<NodeId, number>();
  private timer: TimerHandle | null = null;
  private tickDueMs = 0;
  private state: 'new' | 'starting' | 'running' | 'stopped' = 'new';
  /** Ticks of this node left before reads are served again after a stall (0: not holding). */
  private readHoldTicks = 0;
  /** A view a service announced while an entry was applied; told to every service after it. */
  private pendingView: ClusterView | null = null;

  /**
   * Builds the node from the state on `env.disk` (throws `RecoveryError` when the disk cannot
   * give a safe start; see `RaftNode`) and attaches every service. Nothing runs until `start`.
   */
  constructor(
    private readonly env: NodeEnv<ChannelMessage>,
    options: ClusterNodeOptions<S>,
  ) {
    const t = options.timing;
    assert(
      t.tickMs > 0 && t.heartbeatMs >= t.tickMs && t.requestTimeoutMs > t.tickMs,
      'host timing must be positive, heartbeat at least a tick, requests longer than a tick',
    );
    this.nodeId = env.nodeId;
    this.services = options.services;
    this.serviceList = options.serviceList;
    this.timing = t;
    const members = this.serviceList.flatMap((s) => s.machines ?? []);
    for (const m of members) this.specs.set(m.tag, m);
    this.mux = new StateMachineMux(
      members.map((m) => ({ tag: m.tag, name: m.name, create: (): AnyStateMachine => m.create() as AnyStateMachine })),
    );
    this.raft = new RaftNode<MuxCommand, MuxOutput>(
      { ...env, transport: this.raftTransport() },
      {
        tickMs: t.tickMs,
        raft: {
          electionTicks: t.electionTicks,
          heartbeatTicks: t.heartbeatTicks,
          leaseMarginTicks: t.leaseMarginTicks,
          bootstrapEntry: true,
          waitForAll: options.waitForAll,
        },
        bootstrap: options.bootstrap,
        stateMachine: this.mux,
        snapshotEntries: options.snapshotEntries ?? 10_000,
        snapshotCatchUpEntries: options.snapshotCatchUpEntries ?? 1_000,
        requestTimeoutTicks: Math.ceil(t.requestTimeoutMs / t.tickMs),
        observer: {
          onRole: (role, term, lead) => {
            this.onRole(role, term, lead, options.observer);
          },
          onApply: (entry, result) => {
            this.onApply(entry, result);
          },
          onRestore: (index) => {
            this.onRestore(index);
          },
          onRepaired: (applied) => {
            options.observer?.onRepaired?.(applied);
          },
        },
      },
    );
    this.router = new RequestRouter({
      nodeId: env.nodeId,
      incarnation: this.raft.incarnation,
      clock: env.clock,
      codec: this.mux.codec,
      heartbeatMs: t.heartbeatMs,
      propose: (command, done) => {
        this.raft.propose(command, done);
      },
      appliedIndex: () => this.raft.appliedIndex,
      retained: (result) => this.retained(result),
    });
    for (const c of hostChannels()) this.lanes.set(c.id, c.lane);
    this.router.attach(
      this.openChannel<RouterMessage>(CHANNEL_ROUTER, (from, m) => {
        this.router.onMessage(from, m);
      }),
    );
    const ctx = this.context();
    for (const s of this.serviceList) {
      for (const c of s.channels ?? []) this.lanes.set(c.id, c.lane);
      s.attach(ctx);
    }
  }

  /** This run's incarnation (bumped durably on every start). */
  /** Whether the node runs (started, not stopped, not fail-stopped by its environment). */
  get running(): boolean {
    return this.state === 'running';
  }

  get incarnation(): Incarnation {
    return this.raft.incarnation;
  }

  /** Every repair recovery made to this node's durable state (the daemon logs and counts them). */
  get storageRepairs(): readonly StorageRepair[] {
    return this.raft.recovery.repairs;
  }

  /** Whether this start found the stable state (and so the incarnation counter) lost. */
  get stableStateLost(): 'missing' | 'damaged' | null {
    return this.raft.recovery.stableStateLost;
  }

  /**
   * Starts the Raft shell, then the services. `onStarted` runs once with null when running
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
      onPeerGone: (peer, incarnation) => {
        this.onPeerGone(peer, incarnation);
      },
    });
    this.raft.start((error) => {
      if (error !== null) {
        this.stop();
        onStarted?.(error);
        return;
      }
      if (this.state !== 'starting') return;
      this.state = 'running';
      this.router.start();
      for (const s of this.serviceList) s.onStart?.();
      this.flushView();
      this.env.trace('cluster-node-start', { incarnation: this.incarnation });
      this.env.transport.identify?.(this.incarnation);
      this.scheduleTick(this.env.clock.nowMs());
      onStarted?.(null);
    });
  }

  /** Stops everything; every waiting request completes with `STOPPED`. Idempotent. */
  stop(): void {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.timer?.cancel();
    this.timer = null;
    this.raft.stop();
    this.router.stop();
    for (const s of this.serviceList) s.onStop?.();
  }

  /** Role, term, leader, lease and read-hold facts now (`ServiceContext.raft`). */
  raftFacts(): RaftFacts {
    const rs = this.raft.status();
    const now = this.env.clock.nowMs();
    const held = this.readsHeld(now);
    const heard = rs.lead === null ? undefined : this.raftHeardMs.get(rs.lead);
    return {
      role: rs.role,
      term: rs.term,
      lead: rs.lead,
      commit: rs.commit,
      applied: rs.applied,
      lastIndex: rs.lastIndex,
      leaseValid: rs.leaseValid && !held,
      readsHeld: held,
      sinceLeaderMs: heard === undefined ? null : Math.max(0, now - heard),
      config: rs.config,
      voters: sortedIds([...rs.confState.voters, ...rs.confState.outgoing].map(([id]) => id)),
      learners: sortedIds([...rs.confState.learners, ...rs.confState.learnersNext]),
      changing: rs.confState.outgoing.length > 0 || rs.latestConfig !== rs.config,
    };
  }

  // -------------------------------------------------------------------------------------------
  // What services get

  private context(): ServiceContext {
    return {
      nodeId: this.nodeId,
      incarnation: this.raft.incarnation,
      clock: this.env.clock,
      timers: this.env.timers,
      wallMs: () => this.env.clock.wallMs?.() ?? VIRTUAL_EPOCH_MS + Math.floor(this.env.clock.nowMs()),
      processes: this.env.processes,
      requestTimeoutMs: this.timing.requestTimeoutMs,
      trace: (event, fields) => {
        this.env.trace(event, fields);
      },
      machine: (spec) => this.handle(spec),
      channel: (spec, onMessage) => {
        assert(this.lanes.has(spec.id), `channel ${spec.name} is opened by a service that did not declare it`);
        return this.openChannel(spec.id, onMessage);
      },
      raft: () => this.raftFacts(),
      read: (deadlineMs, done) => {
        this.linearizableRead(deadlineMs, done);
      },
      running: () => this.state === 'running',
      announceView: (view) => {
        this.pendingView = view;
      },
      retire: (highestSeen, why) => this.retire(highestSeen, why),
      selfFence: (why) => {
        if (this.state !== 'running') return;
        this.env.trace('self-fence', { why });
        this.env.failStop(`self-fenced: ${why}`, new CohortError('SELF_FENCED', why));
      },
      peerFenced: (peer) => {
        if (this.state !== 'running') return 'the node is not running';
        const r = this.raft.peerFenced(peer);
        return r.ok ? null : r.error.message;
      },
      changeVoter: (node, voter, done) => {
        const changes: ConfChangeSingle[] = voter
          ? [{ type: 'add-voter', node, votes: 1 }]
          : [
              { type: 'add-learner', node },
              { type: 'set-expected-votes', expectedVotes: 0 },
            ];
        this.raft.proposeConfChange({ changes, autoLeave: true }, (r) => {
          done(r.ok ? null : r.error.message);
        });
      },
      handOver: (why) => {
        if (this.state !== 'running') return null;
        const r = this.raft.handOver();
        this.env.trace('hand-over', r.ok ? { why, to: r.value } : { why, error: r.error.message });
        return r.ok ? r.value : null;
      },
    };
  }

  /** `ServiceContext.retire`: the used incarnation made durable, then a fail-stop. */
  private retire(highestSeen: number, why: string): Incarnation {
    assert(this.state === 'running', 'only a running node retires its incarnation');
    const next = this.raft.retireIncarnation(highestSeen, (error) => {
      // A failed save already fail-stopped the node (storage failure), with its own reason.
      if (error === null)
        this.env.failStop(why, new CohortError('INCARNATION_RETIRED', `${why} (next incarnation ${next})`));
    });
    this.env.trace('incarnation-retired', { incarnation: this.incarnation, highestSeen, next });
    return next;
  }

  private handle<C extends { readonly type: string }, O, SM extends StateMachine<C, O>>(
    spec: MachineSpec<C, O, SM>,
  ): MachineHandle<C, O, SM> {
    assert(this.specs.get(spec.tag) === spec, `machine ${spec.name} (tag ${spec.tag}) is not registered`);
    return {
      tag: spec.tag,
      machine: () => {
        const m = this.mux.machine(spec.tag);
        assert(spec.is(m), `mux tag ${spec.tag} holds the ${spec.name} machine`);
        return m;
      },
      propose: (command, options, done) => {
        const timeoutMs = options.timeoutMs ?? this.timing.requestTimeoutMs;
        this.router.submit({ type: 'mux', tag: spec.tag, command }, timeoutMs, options.idempotent, (r) => {
          if (!r.ok) {
            done(r);
            return;
          }
          assert(r.value.tag === spec.tag, `a ${spec.name} command yields a ${spec.name} output`);
          // The one place a mux output is typed: the tag names the machine that produced it.
          done(ok(r.value.output as O));
        });
      },
      outputOf: (applied) => {
        if (applied.tag !== spec.tag || applied.result === null) return undefined;
        return applied.result as ApplyResult<O>;
      },
    };
  }

  private openChannel<M>(id: number, onMessage: (from: NodeId, message: M) => void): PeerChannel<M> {
    assert(!this.receivers.has(id), `channel ${id} is opened twice`);
    this.receivers.set(id, onMessage as (from: NodeId, message: unknown) => void);
    const lane = defined(this.lanes.get(id), `lane of channel ${id}`);
    return {
      send: (to, message) => this.env.transport.send(to, { channel: id, message }, lane),
    };
  }

  private raftTransport(): Transport<RaftMessage> {
    return {
      self: this.env.nodeId,
      setHandlers: (h) => {
        this.raftHandlers = h;
      },
      send: (to, m) => this.env.transport.send(to, { channel: CHANNEL_RAFT, message: m }, 'control'),
      close: () => this.env.transport.close(),
    };
  }

  private retained(result: ApplyResult<MuxOutput>): ApplyResult<MuxOutput> {
    if (!result.ok) return result;
    const spec = this.specs.get(result.value.tag);
    if (spec?.retained === undefined) return result;
    const output: unknown = spec.retained(result.value.output);
    return ok({ tag: result.value.tag, output });
  }

  // -------------------------------------------------------------------------------------------
  // Reads

  /**
   * Whether reads are held after a stall. Also notices a stall before the late tick has run: on
   * resume Node handles ready I/O (a client's read) before timers, so an overdue tick is itself
   * the evidence.
   */
  private readsHeld(now: number): boolean {
    if (this.state === 'running' && now - this.tickDueMs >= this.timing.tickMs) this.holdReads();
    return this.readHoldTicks > 0;
  }

  private holdReads(): void {
    const ticks = this.timing.electionTicks + READ_HOLD_EXTRA_TICKS;
    if (this.readHoldTicks < ticks) this.env.trace('read-hold', { ticks });
    this.readHoldTicks = ticks;
  }

  /**
   * `RaftNode.read`, retried on definite refusals (no leader yet) until `deadlineMs`, and held
   * (not refused) while `readsHeld` after a stall.
   */
  private linearizableRead(deadlineMs: number, done: (r: Result<void, RaftNodeError>) => void): void {
    const now = this.env.clock.nowMs();
    const retry = (): void => {
      this.env.timers.after(this.timing.tickMs, () => {
        if (this.state === 'running') this.linearizableRead(deadlineMs, done);
        else done(err(new RaftNodeError('STOPPED', 'the node stopped while a read waited')));
      });
    };
    if (this.readsHeld(now)) {
      if (now + this.timing.tickMs >= deadlineMs) {
        const message =
          "reads are held after this node's event loop stalled (its leader lease may have lapsed meanwhile); retry";
        done(err(new RaftNodeError('TIMEOUT', message)));
        return;
      }
      retry();
      return;
    }
    this.raft.read((r) => {
      const later = this.env.clock.nowMs() + this.timing.tickMs < deadlineMs;
      if (!r.ok && DEFINITE_REFUSALS.has(r.error.code) && this.state === 'running' && later) retry();
      else done(r);
    });
  }

  // -------------------------------------------------------------------------------------------
  // Inputs

  private onMessage(from: NodeId, m: ChannelMessage): void {
    if (this.state !== 'running' && this.state !== 'starting') return;
    if (m.channel === CHANNEL_RAFT) {
      this.raftHeardMs.set(from, this.env.clock.nowMs());
      this.raftHandlers?.onMessage(from, m.message as RaftMessage);
      return;
    }
    // The codec refused unknown channels; every known one has a receiver once attached.
    defined(this.receivers.get(m.channel), `receiver of channel ${m.channel}`)(from, m.message);
  }

  /**
   * Proof that `peer`'s process `incarnation` is gone (`TransportHandlers.onPeerGone`): Raft may
   * stop following it, and each service hears it (the membership leader fails it at once).
   */
  private onPeerGone(peer: NodeId, incarnation: number): void {
    if (this.state !== 'running') return;
    this.env.trace('peer-gone', { peer, incarnation });
    this.raftHandlers?.onPeerGone?.(peer, incarnation);
    for (const s of this.serviceList) s.onPeerGone?.(peer, incarnation);
  }

  private onRole(role: RaftRole, term: Term, lead: NodeId | null, observer: HostObserver | undefined): void {
    this.role = role;
    this.router.onRole(role, lead);
    for (const s of this.serviceList) s.onRole?.(role, term, lead);
    this.env.trace('cluster-role', { role, term, lead });
    observer?.onRole?.(role, term, lead);
  }

  private onApply(entry: Entry, result: ApplyResult<MuxOutput> | null): void {
    const tag = result === null ? null : result.ok ? result.value.tag : entryTag(entry);
    this.router.record(entry, result);
    const applied: AppliedEntry = {
      entry,
      tag,
      result: result === null ? null : result.ok ? ok(result.value.output) : result,
    };
    for (const s of this.serviceList) s.onApplied?.(applied);
    this.flushView();
    this.router.answer(entry, result);
  }

  private onRestore(index: LogIndex): void {
    this.router.onRestored(index);
    for (const s of this.serviceList) s.onRestored?.(index);
    this.flushView();
  }

  private flushView(): void {
    const view = this.pendingView;
    if (view === null) return;
    this.pendingView = null;
    for (const s of this.serviceList) s.onView?.(view);
  }

  // -------------------------------------------------------------------------------------------
  // The tick

  private scheduleTick(dueMs: number): void {
    this.tickDueMs = dueMs + this.timing.tickMs;
    this.timer = this.env.timers.after(this.timing.tickMs, () => {
      this.onTick();
    });
  }

  /** Order: the router, then per service its leader duties (on the leader) and its tick. */
  private onTick(): void {
    if (this.state !== 'running') return;
    const now = this.env.clock.nowMs();
    const lagMs = Math.max(0, now - this.tickDueMs);
    if (this.readHoldTicks > 0) this.readHoldTicks--;
    if (lagMs >= this.timing.tickMs) this.holdReads();
    this.scheduleTick(now);
    this.router.onTick(now);
    const leading = this.role === 'leader';
    for (const s of this.serviceList) {
      if (leading) s.onLeaderTick?.(now, lagMs);
      s.onTick?.(now, lagMs);
    }
  }
}

/** The mux tag a normal entry's command names (its first byte), or null. */
function entryTag(entry: Entry): number | null {
  switch (entry.type) {
    case 'normal':
      return entry.data[0] ?? null;
    case 'conf':
      return null;
    default:
      return assertNever(entry, 'entry type');
  }
}

function sortedIds(ids: readonly NodeId[]): NodeId[] {
  return [...new Set(ids)].sort((a, b) => a - b);
}
