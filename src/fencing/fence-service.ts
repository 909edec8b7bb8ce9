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
import { defined } from '../lib/assert.js';
import type { Incarnation, NodeId, Term } from '../lib/ids.js';
import type { RaftRole } from '../log/index.js';
import type { MembershipService } from '../membership/membership-service.js';
import type { NodeService, ServiceContext } from '../runtime/node-service.js';
import type { ProcessHandle } from '../runtime/process-runner.js';
import { PROCESS_KILL_GRACE_MS } from '../constants.js';
import { plugFor, type FenceDevice, type FenceTopology } from './fence-topology.js';
import { selfFenceVerdict } from './self-fence.js';

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
  readonly observer?: FenceObserver;
}

/** What is worth observing (logs, metrics, tests), called synchronously. */
export interface FenceObserver {
  onFenceAttempt?(node: NodeId, incarnation: Incarnation, device: string, result: string, durationMs: number): void;
  onSelfFence?(why: string): void;
}

/** One open fence this leader is working on. */
interface Execution {
  readonly node: NodeId;
  readonly incarnation: Incarnation;
  /** This executor's clock when it took the fence up. */
  readonly beganMs: number;
  /** Do nothing before this (the resume delay). */
  readonly notBeforeMs: number;
  running: ProcessHandle | null;
  /** A proposal (attempt or outcome) is in flight. */
  proposing: boolean;
}

/** See the file comment. */
export class FenceService implements NodeService {
  readonly name = 'fencing';
  private ctxRef: ServiceContext | null = null;
  private readonly executions = new Map<string, Execution>();
  /** This node's clock when its current leadership began (null: not leading). */
  leaderSinceMs: number | null = null;
  private leaderTerm: Term | null = null;
  /** This incarnation has been a member of a quorate view. */
  private wasQuorateMember = false;
  private selfFenced = false;

  constructor(
    private readonly membership: MembershipService,
    private readonly options: FenceServiceOptions,
  ) {}

  attach(ctx: ServiceContext): void {
    this.ctxRef = ctx;
  }

  private get ctx(): ServiceContext {
    return defined(this.ctxRef, 'the fencing service is attached');
  }

  /** Whether any device is a watchdog (the self-fence runs on every node then). */
  get watchdogArmed(): boolean {
    return [...this.options.topology.devices.values()].some((d) => d.agent === 'watchdog');
  }

  onRole(role: RaftRole, term: Term): void {
    if (role === 'leader') {
      if (this.leaderTerm !== term) {
        this.leaderTerm = term;
        this.leaderSinceMs = this.ctx.clock.nowMs();
      }
      return;
    }
    this.leaderTerm = null;
    this.leaderSinceMs = null;
    this.stopAll();
  }

  onStop(): void {
    this.stopAll();
  }

  onTick(nowMs: number): void {
    this.checkSelfFence(nowMs);
  }

  onLeaderTick(nowMs: number): void {
    this.drive(nowMs);
  }

  registerApi(_registry: ApiHandlerRegistry): void {
    // fence.now, fence.history: see fence-handlers.ts (wired with the ledger).
  }

  // -------------------------------------------------------------------------------------------
  // The executor

  private stopAll(): void {
    for (const ex of this.executions.values()) ex.running?.kill();
    this.executions.clear();
  }

  private drive(_nowMs: number): void {
    // Wired with the ledger and the scheduler (see the file comment).
  }

  /** The device's plug for `node`, or null when it cannot fence it. */
  plug(device: FenceDevice, node: NodeId): string | null {
    const name = this.options.nodeNames.get(node);
    return name === undefined ? null : plugFor(device, name);
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
    if (member && view.quorate) this.wasQuorateMember = true;
    const verdict = selfFenceVerdict({
      self: this.ctx.nodeId,
      wasQuorateMember: this.wasQuorateMember,
      removed: this.wasQuorateMember && !member,
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
