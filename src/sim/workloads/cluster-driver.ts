/**
 * The cluster workload's driver: the operator around the cluster, and the completeness probe.
 *
 * - **Fence agent** (both phases, every `operatorPeriodMs`): reads the membership records from
 *   the node that leads (else any configured node) and settles every node that cannot come back
 *   on its own, as an operator with a power switch would:
 *   - a quarantined node is released (`ClusterSimNode.release`);
 *   - a pending fence whose incarnation is dead (the node is down, or runs a newer incarnation)
 *     is confirmed (`fenceConfirm`);
 *   - a live process whose incarnation was evicted (a pending fence for its own incarnation), or
 *     that is out of the view with an incarnation the cluster has settled, is power-cycled: a
 *     simulator crash, then a restart `powerOffMs` later; its fence is confirmed on a later round.
 *   Every action is traced as `fence node incarnation action`. Paused nodes are left alone.
 *   In automatic-fencing seeds (`cluster-fencing.ts`) the executor's agents fence evicted
 *   incarnations: the driver neither power-cycles a live evicted incarnation nor confirms, except
 *   with `lateConfirmMs`: then it also confirms a dead incarnation whose fence has been pending
 *   that long, racing the executor.
 * - **Fence effects**: a device that acted on a node crashes it (`powerOff`, scheduled by the
 *   agent's callback) and brings it back `powerOffMs` later, unless it is the node killed for good.
 * - **Clean leaves** (fault phase, every `leaveMeanMs` on average): a running member leaves
 *   (membership `leave`), then its process is stopped and restarted `powerOffMs` later, as an
 *   operator's clean restart; traced as `leave node incarnation result`.
 * - **KV writer** (fault phase): a put every few hundred ms through a random node, so the log
 *   keeps moving (snapshots, forwards) while membership changes. Not traced: this workload judges
 *   membership, the raft workload judges the KV history.
 * - **Completeness probe** (liveness phase): once every node runs and reports one quorate view
 *   holding all of them, crashes one non-leader member for good (`kill`), unless the survivors
 *   would hold no quorum of the configured votes (`no-kill`), so the checkers can time its
 *   removal.
 */
import type { NodeId } from '../../lib/ids.js';
import type { NodeInfo } from '../../membership/index.js';
import { hasQuorum, type QuorumConfig } from '../../quorum/index.js';
import type { ClusterStatus } from '../../services.js';
import type { Driver, DriverContext } from '../workload.js';
import { CLUSTER_CLIENT_EVENT } from '../checkers/cluster-events.js';
import type { ClusterSimNode } from './cluster-program.js';

/** Knobs of one run's driver. */
export interface ClusterDriverOptions {
  readonly operatorPeriodMs: number;
  /** A power-cycled node stays down this long. */
  readonly powerOffMs: number;
  /** No second action on one node within this long. */
  readonly actionCooldownMs: number;
  /** Mean gap between KV puts, ms. */
  readonly putMeanMs: number;
  /** How often the liveness probe looks for convergence. */
  readonly probePeriodMs: number;
  /** The configured votes (to tell whether survivors of a kill hold a quorum). */
  readonly quorum: QuorumConfig;
  /** Mean gap between clean leaves (fault phase), ms. */
  readonly leaveMeanMs: number;
  /** `auto`: the executor's agents fence; the driver only confirms late (`lateConfirmMs`). */
  readonly fencing: {
    readonly mode: 'manual' | 'auto';
    readonly lateConfirmMs: number | null;
    /** A node a fence device brought down starts again this long after (`ClusterFencing.bootMs`). */
    readonly bootMs: number;
  };
}

/** What the driver saw of one running node in one round. */
interface Seen {
  readonly inst: ClusterSimNode;
  readonly status: ClusterStatus;
}

/** Counters for the workload's stats. */
export interface ClusterDriverCounts {
  fenceConfirms: number;
  /** Confirmations given late in automatic seeds (also counted in `fenceConfirms`). */
  lateConfirms: number;
  /** Nodes crashed by a fence device (the agent's effect). */
  agentCrashes: number;
  leaves: number;
  powerCycles: number;
  releases: number;
  puts: number;
}

const encoder = new TextEncoder();
/** A clean leave asked for commits within this long, or never (its timeout is 2 s). */
const LEAVE_SETTLE_MS = 5_000;
/** The supervisor restarts a node down this long that nobody holds down. */
const SUPERVISOR_RESTART_MS = 3_000;

/** See the module comment. */
export class ClusterDriver implements Driver<ClusterSimNode> {
  readonly counts: ClusterDriverCounts = {
    fenceConfirms: 0,
    lateConfirms: 0,
    agentCrashes: 0,
    leaves: 0,
    powerCycles: 0,
    releases: 0,
    puts: 0,
  };
  /** Nodes the driver holds down until it restarts them (fence effects, power cycles, leaves). */
  private readonly heldDown = new Set<NodeId>();
  /** When the supervisor first saw each node down (liveness phase). */
  private readonly downSince = new Map<NodeId, number>();
  /** When each node was last asked to leave (its leave may commit up to `LEAVE_SETTLE_MS` later). */
  private readonly leaveAskedAt = new Map<NodeId, number>();
  /** When the driver first saw each pending fence (`node/incarnation`), for late confirmations. */
  private readonly pendingSince = new Map<string, number>();
  private ctx: DriverContext<ClusterSimNode> | undefined;
  private readonly lastAction = new Map<NodeId, number>();
  /** The node killed for good in the liveness phase (never power-cycled back). */
  private killed: NodeId | null = null;
  private nextPut = 1;
  /** Counts looks, so a late answer from a paused node is told apart from a current one. */
  private round = 0;

  constructor(
    private readonly options: ClusterDriverOptions,
    private readonly onStart: (ctx: DriverContext<ClusterSimNode>) => void,
  ) {}

  start(ctx: DriverContext<ClusterSimNode>): void {
    this.ctx = ctx;
    this.onStart(ctx);
    const operator = (): void => {
      this.operatorRound(ctx);
      ctx.after(this.options.operatorPeriodMs, operator);
    };
    ctx.after(this.options.operatorPeriodMs, operator);
    this.schedulePut(ctx);
    this.scheduleLeave(ctx);
  }

  /**
   * A fence device acted on `node`: it goes down `afterMs` from now (a crash: no clean
   * shutdown), `powerBack` runs `fencing.bootMs` later, and the node restarts then unless it is
   * the node killed for good. A node already down gets `powerBack` at once and is left alone.
   * Called from an agent inside `spawn`: only schedules.
   */
  fenceEffect(node: NodeId, afterMs: number, powerBack: () => void): void {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    ctx.after(afterMs, () => {
      const crashed = ctx.crash(node);
      if (!crashed) {
        // Already down (a crash of its own): the plug goes back on at once, so a plug is off only
        // while the driver holds its node down (a node restarted by anyone else has power).
        powerBack();
        return;
      }
      this.counts.agentCrashes++;
      this.heldDown.add(node);
      ctx.after(this.options.fencing.bootMs, () => {
        this.heldDown.delete(node);
        powerBack();
        if (this.killed !== node) ctx.restart(node);
      });
    });
  }

  onLiveness(): void {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    const probe = (): void => {
      if (!this.probe(ctx)) ctx.after(this.options.probePeriodMs, probe);
    };
    ctx.after(this.options.probePeriodMs, probe);
  }

  /** Statuses of the nodes that run and are not paused now (calls into them run at once). */
  private look(ctx: DriverContext<ClusterSimNode>): { seen: Map<NodeId, Seen>; down: Set<NodeId> } {
    const seen = new Map<NodeId, Seen>();
    const down = new Set<NodeId>();
    const round = ++this.round;
    for (const id of ctx.nodes) {
      const accepted = ctx.call(id, (inst) => {
        if (round !== this.round) return; // a paused node answers after its resume: too late for this round
        const status = inst.status();
        if (status !== null) seen.set(id, { inst, status });
      });
      if (!accepted) down.add(id);
    }
    this.round++;
    return { seen, down };
  }

  // ---------------------------------------------------------------------------------------------
  // Fence agent

  private operatorRound(ctx: DriverContext<ClusterSimNode>): void {
    const { seen, down } = this.look(ctx);
    this.supervise(ctx, down);
    const source =
      [...seen.values()].find((s) => s.status.role === 'leader') ??
      [...seen.values()].find((s) => s.inst.nodes().length > 0);
    if (source === undefined) return;
    const now = ctx.nowMs();
    for (const r of source.inst.nodes()) {
      if (now - (this.lastAction.get(r.nodeId) ?? Number.NEGATIVE_INFINITY) < this.options.actionCooldownMs) continue;
      this.settle(ctx, r, source, seen, down, now);
    }
  }

  private settle(
    ctx: DriverContext<ClusterSimNode>,
    r: NodeInfo,
    source: Seen,
    seen: ReadonlyMap<NodeId, Seen>,
    down: ReadonlySet<NodeId>,
    now: number,
  ): void {
    const x = r.nodeId;
    const live = seen.get(x);
    const isDown = down.has(x);
    if (!isDown && live === undefined) return; // paused (or refused to start): nothing to do now
    if (r.status === 'quarantined') {
      const via = [...seen.values()].find((s) => s.status.leaderId !== null && s.status.leaderId !== s.status.nodeId);
      if (via !== undefined && this.callNow(ctx, via, (inst) => inst.release(x)) === true) {
        this.act(ctx, x, r.incarnation, 'release', now);
        this.counts.releases++;
      }
      return;
    }
    const auto = this.options.fencing.mode === 'auto';
    // In automatic seeds the executor's agents bring an evicted live incarnation down.
    const ownIncarnationEvicted =
      !auto && live !== undefined && live.status.incarnation === r.incarnation && r.fencePending;
    const settledOut =
      live !== undefined && r.status === 'out' && !live.status.joined && live.status.incarnation <= r.seen;
    if ((ownIncarnationEvicted || settledOut) && x !== this.killed) {
      this.powerCycle(ctx, x, live.status.incarnation, now);
      return;
    }
    const key = `${x}/${r.incarnation}`;
    if (!r.fencePending) return;
    const since = this.pendingSince.get(key) ?? now;
    this.pendingSince.set(key, since);
    const late = this.options.fencing.lateConfirmMs;
    const mayConfirm = !auto || (late !== null && now - since >= late);
    if (mayConfirm && (isDown || (live !== undefined && live.status.incarnation > r.incarnation))) {
      this.callNow(ctx, source, (inst) => {
        this.act(ctx, x, r.incarnation, 'confirm', now);
        this.counts.fenceConfirms++;
        if (auto) this.counts.lateConfirms++;
        inst.fenceConfirm(x, r.incarnation, () => undefined);
      });
    }
  }

  /**
   * The supervisor (liveness phase): a node down for `SUPERVISOR_RESTART_MS` that nobody holds
   * down (not the node killed for good, not a node a fence device or the driver powered off) is
   * started again, as systemd restarts a daemon that exited. In the fault phase the nemesis
   * restarts fail-stopped nodes; once it stops, a node that fences itself (a watchdog topology)
   * would otherwise stay down.
   */
  private supervise(ctx: DriverContext<ClusterSimNode>, down: ReadonlySet<NodeId>): void {
    const now = ctx.nowMs();
    for (const id of ctx.nodes) {
      if (!down.has(id) || id === this.killed || this.heldDown.has(id) || ctx.phase() !== 'liveness') {
        this.downSince.delete(id);
        continue;
      }
      const since = this.downSince.get(id) ?? now;
      this.downSince.set(id, since);
      if (now - since >= SUPERVISOR_RESTART_MS && ctx.restart(id)) this.downSince.delete(id);
    }
  }

  /**
   * Calls a node seen this round through its gate, now. A node power-cycled earlier in the same
   * round is down: the call is refused (undefined), never made on the dead instance, whose
   * effects (disk writes, messages) would outlive its process.
   */
  private callNow<T>(ctx: DriverContext<ClusterSimNode>, s: Seen, fn: (inst: ClusterSimNode) => T): T | undefined {
    const out: { value?: T } = {};
    ctx.call(s.status.nodeId, (inst) => {
      out.value = fn(inst);
    });
    return out.value;
  }

  private powerCycle(ctx: DriverContext<ClusterSimNode>, x: NodeId, incarnation: number, now: number): void {
    this.act(ctx, x, incarnation, 'power-cycle', now);
    this.counts.powerCycles++;
    if (!ctx.crash(x, 'down')) return; // a power switch: no kernel left to reset connections
    ctx.after(this.options.powerOffMs, () => {
      if (this.killed !== x) ctx.restart(x);
    });
  }

  private act(
    ctx: DriverContext<ClusterSimNode>,
    node: NodeId,
    incarnation: number,
    action: string,
    now: number,
  ): void {
    this.lastAction.set(node, now);
    ctx.trace(CLUSTER_CLIENT_EVENT.fence, { node, incarnation, action });
  }

  // ---------------------------------------------------------------------------------------------
  // KV writer

  private schedulePut(ctx: DriverContext<ClusterSimNode>): void {
    ctx.after(Math.max(1, Math.round(ctx.prng.exponential(this.options.putMeanMs))), () => {
      if (ctx.phase() !== 'fault') return;
      const n = this.nextPut++;
      ctx.call(ctx.prng.pick(ctx.nodes), (inst) => {
        this.counts.puts++;
        inst.put(`k${n % 16}`, encoder.encode(`v${n}`), () => undefined);
      });
      this.schedulePut(ctx);
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Clean leaves

  private scheduleLeave(ctx: DriverContext<ClusterSimNode>): void {
    ctx.after(Math.max(1, Math.round(ctx.prng.exponential(this.options.leaveMeanMs))), () => {
      if (ctx.phase() !== 'fault') return;
      this.leaveOne(ctx, ctx.prng.pick(ctx.nodes));
      this.scheduleLeave(ctx);
    });
  }

  /** Asks `x` to leave cleanly if it runs as a member; stops and restarts it once the leave is applied. */
  private leaveOne(ctx: DriverContext<ClusterSimNode>, x: NodeId): void {
    const now = ctx.nowMs();
    if (now - (this.lastAction.get(x) ?? Number.NEGATIVE_INFINITY) < this.options.actionCooldownMs) return;
    ctx.call(x, (inst) => {
      const s = inst.status();
      if (s === null || !s.joined || !s.members.some((m) => m.nodeId === x && m.incarnation === s.incarnation)) return;
      const incarnation = s.incarnation;
      this.lastAction.set(x, now);
      this.leaveAskedAt.set(x, now);
      inst.leave((error) => {
        ctx.trace(CLUSTER_CLIENT_EVENT.leave, { node: x, incarnation, result: error === null ? 'ok' : error.code });
        if (error !== null) return;
        this.counts.leaves++;
        // Stopped after the leave (not inside the node's own callback), then started again.
        ctx.after(1, () => {
          if (!ctx.crash(x)) return;
          ctx.after(this.options.powerOffMs, () => {
            if (this.killed !== x) ctx.restart(x);
          });
        });
      });
    });
  }

  // ---------------------------------------------------------------------------------------------
  // Completeness probe

  /** One look for convergence; true once the probe is done (a node killed, or why not traced). */
  private probe(ctx: DriverContext<ClusterSimNode>): boolean {
    const { seen, down } = this.look(ctx);
    if (down.size > 0) return false; // a power cycle is under way: every node must be back first
    const running = ctx.nodes;
    const statuses = running.map((id) => seen.get(id)?.status);
    const first = statuses[0];
    if (first === undefined) return false;
    const agreed = statuses.every(
      (s) =>
        s !== undefined && s.joined && s.viewId === first.viewId && s.quorate && s.members.length === running.length,
    );
    if (!agreed) return false;
    const leader = first.leaderId;
    // A node whose clean leave may still commit is no victim: its removal would be a `leave`.
    const now = ctx.nowMs();
    const leaving = (id: NodeId): boolean =>
      now - (this.leaveAskedAt.get(id) ?? Number.NEGATIVE_INFINITY) < LEAVE_SETTLE_MS;
    if (running.some(leaving)) return false;
    const candidates = running.filter((id) => id !== leader && leader !== null);
    const victim = candidates.length === 0 ? undefined : ctx.prng.pick(candidates);
    const survivors = new Set(running.filter((id) => id !== victim));
    if (victim === undefined || !hasQuorum({ incoming: this.options.quorum }, survivors)) {
      ctx.trace(CLUSTER_CLIENT_EVENT.noKill, {
        reason: victim === undefined ? 'no-non-leader-member' : 'survivors-hold-no-quorum',
      });
      return true;
    }
    this.killed = victim;
    // Half the probes kill the process on a running machine (its peers get proof it is gone:
    // the fast path), half cut the power (silence: the detector's timeouts).
    const host = ctx.prng.chance(0.5) ? 'up' : 'down';
    ctx.trace(CLUSTER_CLIENT_EVENT.kill, {
      node: victim,
      incarnation: seen.get(victim)?.status.incarnation ?? 0,
      host,
    });
    ctx.crash(victim, host);
    return true;
  }
}
