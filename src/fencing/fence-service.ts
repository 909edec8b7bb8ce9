/**
 * `FenceService`: fencing as a node service (docs/fencing.md, docs/design/fencing-and-recovery.md
 * sections 3 and 4). Two duties:
 *
 * 1. **The executor, on the leader only.** For every fence the ledger holds open (the membership
 *    machine opens one in the entry that removes an incarnation uncleanly), it asks the pure
 *    scheduler (`fence-scheduler.ts`) what to do next and does it: waits (a per-node delay, a
 *    retry backoff, the watchdog wait), runs one device's agent through the environment's
 *    process runner (never blocking the event loop), records each attempt in the log
 *    (`fence-attempt`), and proposes `fenced` once a whole level succeeded. It needs nothing from
 *    the cluster being recovered: no lock, no volume, no group, no quorum read; only the process
 *    runner, its configuration and the ledger it reads from its own applied state. So it cannot
 *    wait behind the recovery it gates, whatever else is stuck (the "memory inversion" of the
 *    2005 thread: a fence that needs cluster memory or I/O that is itself waiting for recovery).
 *
 *    Exactly one executor at a time: a node that stops leading kills its running agents at once
 *    (`onRole`); a new leader resumes an open fence from the ledger, but first waits
 *    `resumeDelayMs` (the kill grace plus the leader lease) when the fence was opened before its
 *    term began, so an agent of the deposed leader (which steps down within its lease, then
 *    kills) has ended. The clocks assumption is the leases' (bounded drift).
 *
 * 2. **The self-fence, on every node** (when the topology holds a `watchdog` device): a node that
 *    was removed from the view, or is cut off from a quorum of votes for its lease, ends itself
 *    (`ServiceContext.selfFence`); see `self-fence.ts`.
 *
 * Pure: runs unchanged in the simulator (scripted agents on virtual time).
 */
import type { ApiHandlerRegistry } from '../api/index.js';
import { assertNever, defined } from '../lib/assert.js';
import { incarnation as makeIncarnation, type Incarnation, type LogIndex, type NodeId, type Term } from '../lib/ids.js';
import type { RaftRole } from '../log/index.js';
import type { FenceRecord } from './fence-ledger.js';
import type { MembershipService } from '../membership/membership-service.js';
import type { NodeService, ServiceContext } from '../runtime/node-service.js';
import type { RaftNodeError } from '../runtime/raft-node.js';
import type { Result } from '../lib/errors.js';
import type { ProcessHandle } from '../runtime/process-runner.js';
import { PROCESS_KILL_GRACE_MS } from '../constants.js';
import { agentAttemptResult, agentProcessSpec, clipUtf8, targetFor, type AttemptResult } from './fence-agent.js';
import type { FenceAttempt, FenceProof } from './fence-attempt.js';
import { endedThrough, nextFenceStep, type FenceStep } from './fence-scheduler.js';
import type { FenceTopology } from './fence-topology.js';
import { selfFenceVerdict } from './self-fence.js';
import { TwoNodeRace, type TwoNodeWin } from './two-node-race.js';
import { twoNodeVoterStep } from './two-node-voters.js';
import { registerFenceApi } from './fence-handlers.js';
import { Unfencer, type UnfenceObserver } from './unfence.js';

/** Options of the fencing service. */
export interface FenceServiceOptions {
  readonly topology: FenceTopology;
  /** Node id to configured name (the plug default, pid-file keys, messages). */
  readonly nodeNames: ReadonlyMap<NodeId, string>;
  /**
   * How long after the removal the survivors treat a node as self-fenced (`watchdog` devices):
   * node lease + drift margin + one tick.
   */
  readonly watchdogWaitMs: number;
  /** How long a peer's last ping counts as contact for the self-fence: the follower lease. */
  readonly selfFenceLeaseMs: number;
  /** The leader lease, ms (the resume delay's part). */
  readonly leaseMs: number;
  /** Whether a quorum heard within the lease is required to stay up (false under two_node). */
  readonly selfFenceQuorumRule: boolean;
  /**
   * two_node: run the fence race (`two-node-race.ts`) once the peer is silent this long (the
   * failure detector's suspicion threshold). Absent: not a two_node cluster.
   */
  readonly twoNodeSuspectAfterMs?: number;
  /** SIMULATOR ONLY (the `two-node-unfenced` canary): win the two_node race without a fence. */
  readonly twoNodeSkipFence?: boolean;
  readonly observer?: FenceObserver;
  /** SIMULATOR ONLY (the `fence-twice` canary): propose every `fenced` twice. */
  readonly proposeFencedTwice?: boolean;
}

/** What is worth observing (logs, metrics, tests), called synchronously. Unfencing: `unfence.ts`. */
export interface FenceObserver extends UnfenceObserver {
  /** The executor ran one device against a fenced incarnation (its result is being recorded). */
  onFenceAttempt?(node: NodeId, incarnation: Incarnation, attempt: FenceAttempt): void;
  /** The executor's next step for a fence changed (what it runs or waits for). */
  onFenceStep?(node: NodeId, incarnation: Incarnation, step: FenceStep): void;
  onSelfFence?(why: string): void;
}

/** One open fence this leader is working on. */
interface Execution {
  readonly node: NodeId;
  readonly incarnation: Incarnation;
  /** Wall-clock ms when this executor took the fence up (the scheduler's `beganAtMs`). */
  readonly beganAtMs: number;
  /** Wall-clock ms before which nothing runs (the resume delay of an inherited fence). */
  readonly notBeforeMs: number;
  running: ProcessHandle | null;
  /** A proposal (attempt or outcome) is in flight. */
  proposing: boolean;
  /** The last step reported to the observer (its kind and device), to report changes only. */
  lastStep: string;
  /** The device running now ('' when none). */
  runningDevice: string;
  /** Wall-clock ms of this leader's last hand-over for its own fence (null: none yet). */
  handOverAtMs: number | null;
}

/** A `fenced` proof the executor proposes: the incarnation it names and the level that proved it. */
interface ProofToPropose {
  readonly incarnation: Incarnation;
  readonly by: 'agent' | 'watchdog';
  readonly level: number;
  readonly device: string;
}

/** What the executor does for a fence now, for `cohort fence status` and logs. */
export interface FenceActivity {
  readonly node: NodeId;
  readonly incarnation: Incarnation;
  readonly step:
    | FenceStep
    | { readonly kind: 'resuming'; readonly untilMs: number }
    | { readonly kind: 'running'; readonly device: string };
}

/** See the file comment. */
export class FenceService implements NodeService {
  readonly name = 'fencing';
  private ctxRef: ServiceContext | null = null;
  private readonly executions = new Map<string, Execution>();
  /** Wall-clock ms when this node's current leadership began (null: not leading). */
  private leaderSinceMs: number | null = null;
  private leaderTerm: Term | null = null;
  /** Fences opened at or below this index may have been run by an earlier leader (the resume delay). */
  private inheritedThrough: LogIndex | null = null;
  /** This incarnation has been a member of a quorate view. */
  private wasQuorateMember = false;
  private selfFenced = false;
  /** two_node only: the fence race run outside the log. */
  private readonly race: TwoNodeRace | null;
  /** two_node: a voter change (`two-node-voters.ts`) is in flight. */
  private voterChanging = false;
  /** Runs `on` for storage devices (`unfence: true`) when a fenced node joins again (`unfence.ts`). */
  private readonly unfencer: Unfencer;

  constructor(
    private readonly membership: MembershipService,
    private readonly options: FenceServiceOptions,
  ) {
    this.race =
      options.twoNodeSuspectAfterMs === undefined
        ? null
        : new TwoNodeRace(() => this.ctx, membership, {
            topology: options.topology,
            nodeNames: options.nodeNames,
            suspectAfterMs: options.twoNodeSuspectAfterMs,
            ...(options.twoNodeSkipFence === true ? { skipFence: true } : {}),
          });
    if (this.race !== null) {
      const race = this.race;
      membership.setLocalConfirm((node, incarnation) => {
        const won = race.confirmLocally(node, incarnation, this.ctx.clock.nowMs(), this.wasQuorateMember);
        return won === null
          ? null
          : {
              nodeId: won.node,
              incarnation: won.incarnation,
              outcome: 'applied',
              status: 'member',
              admitted: null,
              viewId: membership.view().viewId,
              local: true,
            };
      });
    }
    this.unfencer = new Unfencer({
      topology: options.topology,
      processes: () => this.ctx.processes,
      ...(options.observer === undefined ? {} : { observer: options.observer }),
      self: () => this.ctx.nodeId,
      nameOf: (node) => this.nameOf(node),
      wallMs: () => this.ctx.wallMs(),
      history: () => membership.machine.fenceHistory(),
      fencePending: (node) => membership.machine.pendingFences().some((r) => r.node === node),
      memberIncarnation: (node) => this.memberIncarnation(node),
      propose: (node, incarnation, unfence, done) => {
        // Not idempotent: a re-sent entry would count as another try. A lost one is re-run.
        membership.handle.propose({ type: 'unfence', node, incarnation, unfence }, { idempotent: false }, (r) => {
          done(r.ok && r.value.outcome === 'applied');
          this.drive();
        });
      },
      trace: (event, fields) => {
        this.ctx.trace(event, fields);
      },
    });
  }

  attach(ctx: ServiceContext): void {
    this.ctxRef = ctx;
  }

  private get ctx(): ServiceContext {
    return defined(this.ctxRef, 'the fencing service is attached');
  }

  /**
   * Whether this node may keep feeding its watchdog device: false once the self-fence rule says
   * it may be cut off (or it ended itself). True where no watchdog fence device is configured
   * (the device then only resets a machine whose daemon hangs or dies).
   */
  healthy(): boolean {
    return !this.selfFenced;
  }

  /** Whether any device is a watchdog (the self-fence runs on every node then). */
  get watchdogArmed(): boolean {
    return [...this.options.topology.devices.values()].some((d) => d.agent === 'watchdog');
  }

  onRole(role: RaftRole, term: Term): void {
    if (role === 'leader') {
      if (this.leaderTerm !== term) {
        this.leaderTerm = term;
        this.leaderSinceMs = this.ctx.wallMs();
        this.inheritedThrough = this.ctx.raft().lastIndex;
      }
      return;
    }
    this.leaderTerm = null;
    this.leaderSinceMs = null;
    this.inheritedThrough = null;
    this.stopAll();
  }

  onStop(): void {
    this.stopAll();
    this.race?.stop();
  }

  onTick(nowMs: number): void {
    if (!this.wasQuorateMember && this.ctx.running()) {
      const view = this.membership.view();
      if (view.quorate && this.membership.isMe(view.members)) this.wasQuorateMember = true;
    }
    this.checkSelfFence(nowMs);
    this.race?.tick(nowMs, this.wasQuorateMember);
  }

  /** two_node: proof that the peer's process is gone starts the fence race at once. */
  onPeerGone(peer: NodeId, incarnation: number): void {
    this.race?.peerGone(peer, incarnation);
  }

  onLeaderTick(nowMs: number): void {
    this.drive();
    if (this.race !== null) this.twoNodeVoters(nowMs);
  }

  /** Registers `fence.history` and `fence.now` (`fence-handlers.ts`). */
  registerApi(registry: ApiHandlerRegistry): void {
    registerFenceApi(registry, this);
  }

  /** The open fences of the applied ledger. */
  pendingFences(): FenceRecord[] {
    return this.membership.machine.pendingFences();
  }

  /** The newest records of the applied ledger, newest first. */
  fenceHistory(limit: number): FenceRecord[] {
    return this.membership.machine.fenceHistory(limit);
  }

  /** A configured node's name (`node<id>` for an unknown id). */
  nodeName(node: NodeId): string {
    return this.nameOf(node);
  }

  /** The incarnation of `node` in the applied view, or null when it is not a member. */
  memberIncarnation(node: NodeId): Incarnation | null {
    const m = this.membership.view().members.find((x) => x.node === node);
    return m === undefined ? null : m.incarnation;
  }

  /**
   * Fences member `node` now (`cohort fence NODE`): proposes its failure at `incarnation` with an
   * operator's reason, which opens its fence record; the executor does the rest.
   */
  fenceNow(
    node: NodeId,
    incarnation: Incarnation,
    note: string,
    done: (r: Result<{ readonly outcome: string }, RaftNodeError>) => void,
  ): void {
    this.membership.handle.propose(
      { type: 'fail', node, incarnation, reason: { kind: 'operator', note } },
      { idempotent: true },
      done,
    );
  }

  /** The configured topology. */
  get topology(): FenceTopology {
    return this.options.topology;
  }

  /** What this node's executor does for each open fence (empty unless this node leads). */
  activity(): FenceActivity[] {
    if (this.leaderSinceMs === null) return [];
    const wall = this.ctx.wallMs();
    const out: FenceActivity[] = [];
    for (const rec of this.membership.machine.pendingFences()) {
      const ex = this.executions.get(keyOf(rec.node, rec.incarnation));
      if (ex === undefined) continue;
      if (ex.running !== null)
        out.push({ node: rec.node, incarnation: rec.incarnation, step: { kind: 'running', device: ex.runningDevice } });
      else if (wall < ex.notBeforeMs)
        out.push({ node: rec.node, incarnation: rec.incarnation, step: { kind: 'resuming', untilMs: ex.notBeforeMs } });
      else out.push({ node: rec.node, incarnation: rec.incarnation, step: this.stepOf(rec, ex, wall) });
    }
    return out;
  }

  // -------------------------------------------------------------------------------------------
  // The executor

  private stopAll(): void {
    for (const ex of this.executions.values()) ex.running?.kill();
    this.executions.clear();
    this.unfencer.stopAll();
  }

  /** One pass of the executor over every open fence (leader only). */
  private drive(): void {
    const since = this.leaderSinceMs;
    if (since === null || !this.ctx.running()) return;
    const wall = this.ctx.wallMs();
    const live = new Set<string>();
    for (const rec of this.membership.machine.pendingFences()) {
      const key = keyOf(rec.node, rec.incarnation);
      live.add(key);
      let ex = this.executions.get(key);
      if (ex === undefined) {
        const inherited = this.inheritedThrough !== null && rec.request.index <= this.inheritedThrough;
        ex = {
          node: rec.node,
          incarnation: rec.incarnation,
          beganAtMs: wall,
          notBeforeMs: inherited ? since + this.resumeDelayMs : wall,
          running: null,
          proposing: false,
          lastStep: '',
          runningDevice: '',
          handOverAtMs: null,
        };
        this.executions.set(key, ex);
      }
      if (ex.running !== null || ex.proposing) continue;
      if (rec.node === this.ctx.nodeId) {
        // Never run a device against this node itself (a power or process fence would end the
        // executor with its own incarnation, again and again: simulator finding 8). Its own
        // running incarnation awaits the fence: another node must lead and run it (simulator
        // finding 9). An older incarnation has ended: this node runs as a newer one and holds its
        // data directory, which a running older incarnation would hold.
        if (rec.incarnation >= this.ctx.incarnation) this.handOver(rec, ex, wall);
        else if (wall >= ex.notBeforeMs) this.proveOwnPredecessor(rec, ex);
        continue;
      }
      // two_node: this node won the race against it; record that instead of running anything.
      const win = this.race?.winFor(rec.node, rec.incarnation) ?? null;
      if (win !== null) {
        this.recordWin(rec, ex, win);
        continue;
      }
      // A device of an earlier fence of this node may already have ended this incarnation
      // (simulator finding 9: its proof was not committed before that leader fell).
      const earlier = this.endedEarlier(rec);
      if (earlier !== null) {
        this.ctx.trace('fence-covered', { node: rec.node, incarnation: rec.incarnation, through: earlier.incarnation });
        this.proposeFenced(rec, ex, earlier);
        continue;
      }
      if (wall < ex.notBeforeMs || this.unfencer.holdsFence(rec.node, since + this.resumeDelayMs)) continue;
      this.act(rec, ex, this.stepOf(rec, ex, wall));
    }
    // Closed fences (recorded, or confirmed by an operator): stop whatever still runs for them.
    for (const [key, ex] of this.executions) {
      if (live.has(key)) continue;
      ex.running?.kill();
      this.executions.delete(key);
    }
    this.unfencer.drive(since + this.resumeDelayMs);
  }

  private stepOf(rec: FenceRecord, ex: Execution, wall: number): FenceStep {
    return nextFenceStep({
      topology: this.options.topology,
      target: this.targetOf(rec.node),
      attempts: onOwnClock(rec.attempts, this.ctx.nodeId, ex.beganAtMs),
      round: rec.round,
      nowMs: wall,
      beganAtMs: ex.beganAtMs,
      watchdogWaitMs: this.options.watchdogWaitMs,
    });
  }

  private nameOf(node: NodeId): string {
    return this.options.nodeNames.get(node) ?? `node${node}`;
  }

  private act(rec: FenceRecord, ex: Execution, step: FenceStep): void {
    const shown = `${step.kind}/${step.kind === 'run' ? `${step.device}#${step.attemptNo}` : step.kind === 'wait' ? step.why : ''}`;
    if (shown !== ex.lastStep) {
      ex.lastStep = shown;
      this.options.observer?.onFenceStep?.(rec.node, rec.incarnation, step);
    }
    switch (step.kind) {
      case 'wait':
      case 'exhausted':
      case 'manual':
        return;
      case 'succeeded':
        this.proposeFenced(rec, ex, this.proofOf(rec, step));
        return;
      case 'run':
        this.run(rec, ex, step);
        return;
      default:
        assertNever(step, 'fence step');
    }
  }

  private run(rec: FenceRecord, ex: Execution, step: Extract<FenceStep, { kind: 'run' }>): void {
    const device = this.options.topology.devices.get(step.device);
    const atMs = this.ctx.wallMs();
    const record = (r: AttemptResult, covers?: number): void => {
      this.recordAttempt(rec, ex, {
        executor: this.ctx.nodeId,
        level: step.level,
        device: step.device,
        agent: step.agent,
        action: step.action,
        result: r.result,
        ...(r.exitCode === undefined ? {} : { exitCode: r.exitCode }),
        durationMs: Math.max(0, Math.round(r.durationMs)),
        excerpt: clipUtf8(r.excerpt),
        atMs,
        round: step.round,
        ...(covers === undefined ? {} : { covers }),
      });
    };
    const target = device === undefined ? null : targetFor(device, rec.node, this.nameOf(rec.node));
    if (device === undefined || target === null) {
      record({
        result: 'error',
        durationMs: 0,
        excerpt: `device ${step.device} cannot fence ${this.nameOf(rec.node)}`,
      });
      return;
    }
    const request = { device, action: step.action, target };
    const spec = agentProcessSpec(request);
    // A program device ends whatever runs for the node now, newer incarnations too (finding 6).
    const covers = Math.max(rec.incarnation, this.newestIncarnation(rec.node));
    if (spec === null) {
      // A watchdog device: its wait is over (the scheduler waited it out), so the node has fenced itself.
      record({
        result: 'ok',
        durationMs: 0,
        excerpt: `the node's lease and the drift margin have passed (${this.options.watchdogWaitMs} ms)`,
      });
      return;
    }
    ex.runningDevice = step.device;
    ex.running = this.ctx.processes.spawn(spec, (result) => {
      ex.running = null;
      ex.runningDevice = '';
      if (this.executions.get(keyOf(rec.node, rec.incarnation)) !== ex) return; // no longer ours
      record(agentAttemptResult(request, result), covers);
    });
  }

  private recordAttempt(rec: FenceRecord, ex: Execution, attempt: FenceAttempt): void {
    this.options.observer?.onFenceAttempt?.(rec.node, rec.incarnation, attempt);
    ex.proposing = true;
    // Not idempotent: a re-sent attempt would count as another try. A lost outcome is re-run.
    this.membership.handle.propose(
      { type: 'fence-attempt', node: rec.node, incarnation: rec.incarnation, attempt },
      { idempotent: false },
      () => {
        ex.proposing = false;
        this.drive();
      },
    );
  }

  /**
   * The proof a succeeded level gives and the incarnation it names: a watchdog level ends only the
   * removed incarnation; program devices ended whatever ran when they started (`endedThrough`).
   */
  private proofOf(rec: FenceRecord, step: Extract<FenceStep, { kind: 'succeeded' }>): ProofToPropose {
    const ended =
      step.by === 'watchdog'
        ? null
        : endedThrough(this.options.topology, this.targetOf(rec.node), rec.incarnation, rec.attempts);
    return {
      incarnation: makeIncarnation(Math.max(rec.incarnation, ended?.incarnation ?? 0)),
      by: step.by,
      level: step.level,
      device: step.device,
    };
  }

  /**
   * The proof that a device of an earlier, finished fence of the same node already ended `rec`'s
   * incarnation (it was known when that device started), or null.
   */
  private endedEarlier(rec: FenceRecord): ProofToPropose | null {
    let best: ProofToPropose | null = null;
    for (const old of this.membership.machine.fenceHistory()) {
      if (old.node !== rec.node || old.incarnation >= rec.incarnation) continue;
      const ended = endedThrough(this.options.topology, this.targetOf(rec.node), old.incarnation, old.attempts);
      if (ended === null || ended.incarnation < rec.incarnation) continue;
      if (best !== null && ended.incarnation <= best.incarnation) continue;
      best = { incarnation: makeIncarnation(ended.incarnation), by: 'agent', level: ended.level, device: ended.device };
    }
    return best;
  }

  private proposeFenced(rec: FenceRecord, ex: Execution, proof: ProofToPropose, confirm?: FenceProof): void {
    ex.proposing = true;
    const command = {
      type: 'fenced',
      node: rec.node,
      incarnation: proof.incarnation,
      proof: confirm ?? { by: proof.by, level: proof.level, device: proof.device, atMs: this.ctx.wallMs() },
    } as const;
    if (this.options.proposeFencedTwice === true)
      this.membership.handle.propose(command, { idempotent: true }, () => undefined);
    this.membership.handle.propose(command, { idempotent: true }, () => {
      ex.proposing = false;
    });
  }

  /** two_node, leader: demotes a peer gone for good, promotes it back once it is a member again. */
  private twoNodeVoters(nowMs: number): void {
    if (this.voterChanging) return;
    const self = this.ctx.nodeId;
    const peer = this.membership.nodes().find((n) => n.nodeId !== self);
    if (peer === undefined) return;
    const raft = this.ctx.raft();
    const own = this.membership.nodes().find((n) => n.nodeId === self);
    const step = twoNodeVoterStep({
      self,
      selfStatus: own?.status ?? 'out',
      peer: peer.nodeId,
      peerStatus: peer.status,
      peerFencePending: peer.fencePending,
      peerJoinedOnce: peer.seen > 0,
      peerHeard:
        (this.membership.reachability(nowMs).find((r) => r.node === peer.nodeId)?.silentMs ?? Infinity) <
        (this.options.twoNodeSuspectAfterMs ?? 0),
      voters: raft.voters,
      learners: raft.learners,
      changing: raft.changing,
    });
    if (step === null) return;
    this.voterChanging = true;
    this.ctx.trace('two-node-voter', { step: step.kind, node: step.node });
    this.ctx.changeVoter(step.node, step.kind === 'promote', (error) => {
      this.voterChanging = false;
      if (error !== null) this.ctx.trace('two-node-voter-failed', { step: step.kind, node: step.node, error });
    });
  }

  /**
   * Records a won two_node race in the ledger: its attempts, then the proof, naming the newest
   * incarnation its devices ended.
   */
  private recordWin(rec: FenceRecord, ex: Execution, win: TwoNodeWin): void {
    ex.proposing = true;
    for (const attempt of win.attempts)
      this.membership.handle.propose(
        { type: 'fence-attempt', node: rec.node, incarnation: rec.incarnation, attempt },
        { idempotent: false },
        () => undefined,
      );
    this.proposeFenced(
      rec,
      ex,
      {
        incarnation: makeIncarnation(Math.max(rec.incarnation, win.endedThrough)),
        by: 'agent',
        level: win.level,
        device: win.device,
      },
      win.confirm ?? undefined,
    );
  }

  /**
   * This node leads while its own running incarnation awaits a fence (it was removed, say, while
   * paused, and won an election since): it hands leadership over, again every two leases while
   * the fence stays open, so that a leader able to run the devices against it takes over.
   */
  private handOver(rec: FenceRecord, ex: Execution, wall: number): void {
    if (ex.handOverAtMs !== null && wall < ex.handOverAtMs + 2 * this.options.leaseMs) return;
    ex.handOverAtMs = wall;
    this.ctx.handOver(`incarnation ${rec.incarnation} of this node awaits its fence; a leader never fences itself`);
  }

  /** The scheduler's target for `node`: its id and configured name. */
  private targetOf(node: NodeId): { id: NodeId; name: string } {
    return { id: node, name: this.nameOf(node) };
  }

  /** The newest incarnation of `node` the applied membership knows (its record's `seen`). */
  private newestIncarnation(node: NodeId): number {
    return this.membership.nodes().find((n) => n.nodeId === node)?.seen ?? 0;
  }

  /**
   * This node's older incarnation awaits its fence: closes it with a confirmation this node
   * gives about itself (operator `self`), once, since running as a newer incarnation with the
   * data directory's lock proves the older process ended. Only where fencing is automatic (some
   * level is configured): with no devices an operator confirms every fence, this one included.
   */
  private proveOwnPredecessor(rec: FenceRecord, ex: Execution): void {
    if (this.options.topology.levels.length === 0 || rec.incarnation >= this.ctx.incarnation) return;
    ex.proposing = true;
    this.membership.handle.propose(
      {
        type: 'fenced',
        node: rec.node,
        incarnation: rec.incarnation,
        proof: {
          by: 'confirm',
          operator: `self (incarnation ${this.ctx.incarnation} runs)`,
          atMs: this.ctx.wallMs(),
        },
      },
      { idempotent: true },
      () => {
        ex.proposing = false;
      },
    );
  }

  /** The delay before anything runs for a fence opened before this leadership. */
  get resumeDelayMs(): number {
    return PROCESS_KILL_GRACE_MS + this.options.leaseMs;
  }

  // -------------------------------------------------------------------------------------------
  // The self-fence

  private checkSelfFence(nowMs: number): void {
    if (!this.watchdogArmed || this.selfFenced || !this.ctx.running()) return;
    const view = this.membership.view();
    const member = this.membership.isMe(view.members);
    // Removed uncleanly: its record awaits a fence for this very incarnation. A clean leave (the
    // daemon stopping) leaves no fence pending and is not a reason to end.
    const own = this.membership.nodes().find((n) => n.nodeId === this.ctx.nodeId);
    const removed =
      this.wasQuorateMember && !member && own?.fencePending === true && own.incarnation === this.ctx.incarnation;
    const verdict = selfFenceVerdict({
      self: this.ctx.nodeId,
      wasQuorateMember: this.wasQuorateMember,
      removed,
      locallyQuorate: this.membership.localQuorum().quorate,
      quorate: this.options.selfFenceQuorumRule ? (heard) => this.membership.wouldBeQuorate(heard) : null,
      silences: this.membership.reachability(nowMs),
      nodeLeaseMs: this.options.selfFenceLeaseMs,
    });
    if (!verdict.fence) return;
    this.selfFenced = true;
    this.options.observer?.onSelfFence?.(verdict.why);
    this.ctx.selfFence(verdict.why);
  }
}

/**
 * The attempts with times this executor can compare with its own clock. `atMs` is the proposer's
 * wall clock, and the wall clocks of two nodes may be far apart (only their rates are bounded,
 * as for leases): an attempt another node ran is taken to have ended no later than `beganAtMs`,
 * when this executor took the fence up (the deposed leader killed its agents when it lost
 * leadership). Retry delays and round backoffs then count at most from that moment, never from
 * a time on another node's clock that may lie days ahead (a wait that never ends). Two executors
 * never run one fence at once because of the resume delay, not because of these times.
 */
function onOwnClock(attempts: readonly FenceAttempt[], self: NodeId, beganAtMs: number): readonly FenceAttempt[] {
  if (attempts.every((a) => a.executor === self || a.atMs + a.durationMs <= beganAtMs)) return attempts;
  return attempts.map((a) =>
    a.executor === self || a.atMs + a.durationMs <= beganAtMs ? a : { ...a, atMs: beganAtMs - a.durationMs },
  );
}

function keyOf(node: NodeId, incarnation: number): string {
  return `${node}/${incarnation}`;
}
