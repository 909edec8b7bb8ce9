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
}

/** What the driver saw of one running node in one round. */
interface Seen {
  readonly inst: ClusterSimNode;
  readonly status: ClusterStatus;
}

/** Counters for the workload's stats. */
export interface ClusterDriverCounts {
  fenceConfirms: number;
  powerCycles: number;
  releases: number;
  puts: number;
}

const encoder = new TextEncoder();

/** See the module comment. */
export class ClusterDriver implements Driver<ClusterSimNode> {
  readonly counts: ClusterDriverCounts = { fenceConfirms: 0, powerCycles: 0, releases: 0, puts: 0 };
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
    const ownIncarnationEvicted = live !== undefined && live.status.incarnation === r.incarnation && r.fencePending;
    const settledOut =
      live !== undefined && r.status === 'out' && !live.status.joined && live.status.incarnation <= r.seen;
    if ((ownIncarnationEvicted || settledOut) && x !== this.killed) {
      this.powerCycle(ctx, x, live.status.incarnation, now);
      return;
    }
    if (r.fencePending && (isDown || (live !== undefined && live.status.incarnation > r.incarnation))) {
      this.callNow(ctx, source, (inst) => {
        this.act(ctx, x, r.incarnation, 'confirm', now);
        this.counts.fenceConfirms++;
        inst.fenceConfirm(x, r.incarnation, () => undefined);
      });
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
