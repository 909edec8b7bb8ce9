/**
 * The cluster workload's service-group clients: members join and leave groups, send messages and
 * run barriers, in both phases, so the group checkers (view agreement, virtual synchrony, barrier
 * correctness) have views, deliveries and barrier ends to judge while the nemesis crashes, pauses
 * and partitions nodes and the detector removes them.
 *
 * - **Churn** (every `churnMeanMs` on average): a random node and group; a process that is not a
 *   member (by its own applied view) joins with the group's level (a group has one level: the
 *   `i`-th group of the run has level `1 + i % levelMax`); a member leaves with
 *   `leaveProbability`. A restarted node is a new incarnation outside every group, so churn also
 *   brings it back. Every node also tries to join each group once early in the run.
 * - **Sends** (every `sendMeanMs`): a random node sends `n<node>-<counter>` (unique in the run)
 *   to one of the groups its process is a member of.
 * - **Barriers** (every `barrierMeanMs`): a random node's view of a random group names the
 *   members; each of them calls `barrier(group, b<counter>)` after its own random delay below
 *   `barrierSpreadMs` (so a barrier that completes early, before every member called, shows).
 *
 * Every call is traced inside the node's gate (`group-call`, with the view the node had applied
 * when it took the request) and so is what its `done` got (`group-result`); see
 * `checkers/cluster-group-events.ts`. Calls into a down node are refused by the simulator and not
 * traced; a paused node takes the call when it resumes. Draws come from the driver stream's
 * `groups` fork, so adding group traffic does not shift the operator's draws.
 */
import type { NodeId } from '../../lib/ids.js';
import type { Prng } from '../../lib/prng.js';
import type { TraceFields } from '../../runtime/env.js';
import type { DriverContext } from '../workload.js';
import { GROUP_CLIENT_EVENT, type GroupOp } from '../checkers/cluster-group-events.js';
import type { ClusterSimNode } from './cluster-program.js';

/** Knobs of the group clients. */
export interface GroupDriverOptions {
  /** Group names (1-3 per run). */
  readonly groups: readonly string[];
  /** Mean gap between membership actions, ms. */
  readonly churnMeanMs: number;
  /** Chance that a membership action on a member is a leave (otherwise nothing happens). */
  readonly leaveProbability: number;
  /** Each node's first join of each group is tried at a random time below this, ms. */
  readonly firstJoinWithinMs: number;
  /** Mean gap between sends, ms. */
  readonly sendMeanMs: number;
  /** Mean gap between barrier rounds, ms. */
  readonly barrierMeanMs: number;
  /** Members of a round call the barrier within this long of each other, ms. */
  readonly barrierSpreadMs: number;
  /** Group levels are 1..levelMax (by the group's position in `groups`). */
  readonly levelMax: number;
}

/** Counters for the workload's stats. */
export interface GroupDriverCounts {
  joins: number;
  leaves: number;
  sends: number;
  sendsAcked: number;
  barrierRounds: number;
  barrierCalls: number;
}

const encoder = new TextEncoder();

/** See the module comment. */
export class ClusterGroupDriver {
  readonly counts: GroupDriverCounts = {
    joins: 0,
    leaves: 0,
    sends: 0,
    sendsAcked: 0,
    barrierRounds: 0,
    barrierCalls: 0,
  };
  private nextMsg = 1;
  private nextBarrier = 1;

  constructor(private readonly options: GroupDriverOptions) {}

  /** Schedules the first joins and the three activity loops. */
  start(ctx: DriverContext<ClusterSimNode>): void {
    const prng = ctx.prng.fork('groups');
    for (const node of ctx.nodes) {
      for (const group of this.options.groups) {
        ctx.after(prng.int(1, this.options.firstJoinWithinMs), () => {
          this.membership(ctx, node, group, 1);
        });
      }
    }
    this.loop(ctx, prng, this.options.churnMeanMs, () => {
      this.membership(ctx, prng.pick(ctx.nodes), prng.pick(this.options.groups), prng.float());
    });
    this.loop(ctx, prng, this.options.sendMeanMs, () => {
      this.send(ctx, prng.pick(ctx.nodes), prng.float());
    });
    this.loop(ctx, prng, this.options.barrierMeanMs, () => {
      this.barrierRound(ctx, prng);
    });
  }

  private loop(ctx: DriverContext<ClusterSimNode>, prng: Prng, meanMs: number, action: () => void): void {
    const next = (): void => {
      ctx.after(Math.max(1, Math.round(prng.exponential(meanMs))), () => {
        action();
        next();
      });
    };
    next();
  }

  /** Joins `group` on `node` if its process is not a member; leaves it if `roll` says so. */
  private membership(ctx: DriverContext<ClusterSimNode>, node: NodeId, group: string, roll: number): void {
    const level = 1 + (this.options.groups.indexOf(group) % this.options.levelMax);
    ctx.call(node, (inst) => {
      const view = inst.group(group);
      const member = isMember(inst, view?.members);
      const base = { node, self: inst.incarnation, group, viewId: view?.groupViewId ?? 0 };
      if (!member) {
        this.counts.joins++;
        this.traceCall(ctx, 'join', { ...base, level });
        inst.groupJoin(group, level, (r) => {
          this.traceResult(ctx, 'join', base, r.ok ? 'ok' : r.error.code);
        });
      } else if (roll < this.options.leaveProbability) {
        this.counts.leaves++;
        this.traceCall(ctx, 'leave', base);
        inst.groupLeave(group, (r) => {
          this.traceResult(ctx, 'leave', base, r.ok ? 'ok' : r.error.code);
        });
      }
    });
  }

  /** Sends a fresh message from `node` to one of the groups its process belongs to. */
  private send(ctx: DriverContext<ClusterSimNode>, node: NodeId, roll: number): void {
    ctx.call(node, (inst) => {
      const mine = this.options.groups.filter((g) => isMember(inst, inst.group(g)?.members));
      const group = mine[Math.floor(roll * mine.length)];
      if (group === undefined) return;
      const msg = `n${node}-${this.nextMsg++}`;
      const base = { node, self: inst.incarnation, group, viewId: inst.group(group)?.groupViewId ?? 0, msg };
      this.counts.sends++;
      this.traceCall(ctx, 'send', base);
      inst.groupSend(group, encoder.encode(msg), (r) => {
        if (r.ok) this.counts.sendsAcked++;
        this.traceResult(
          ctx,
          'send',
          base,
          r.ok ? 'ok' : r.error.code,
          r.ok ? { seq: r.value.seq, resultViewId: r.value.groupViewId } : {},
        );
      });
    });
  }

  /** One barrier round: the members of a random node's view of a random group each call it. */
  private barrierRound(ctx: DriverContext<ClusterSimNode>, prng: Prng): void {
    const group = prng.pick(this.options.groups);
    const reader = prng.pick(ctx.nodes);
    const delays = ctx.nodes.map(() => prng.int(0, this.options.barrierSpreadMs));
    ctx.call(reader, (inst) => {
      const view = inst.group(group);
      if (view === null) return;
      const name = `b${this.nextBarrier++}`;
      this.counts.barrierRounds++;
      for (const m of view.members) {
        ctx.after(delays[m.node - 1] ?? 0, () => {
          ctx.call(m.node, (member) => {
            const base = {
              node: m.node,
              self: member.incarnation,
              group,
              viewId: member.group(group)?.groupViewId ?? 0,
              name,
            };
            this.counts.barrierCalls++;
            this.traceCall(ctx, 'barrier', base);
            member.barrier(group, name, (r) => {
              this.traceResult(ctx, 'barrier', base, r.ok ? 'ok' : r.error.code);
            });
          });
        });
      }
    });
  }

  private traceCall(ctx: DriverContext<ClusterSimNode>, op: GroupOp, fields: TraceFields): void {
    ctx.trace(GROUP_CLIENT_EVENT.call, { op, ...fields });
  }

  private traceResult(
    ctx: DriverContext<ClusterSimNode>,
    op: GroupOp,
    fields: TraceFields,
    result: string,
    extra: TraceFields = {},
  ): void {
    ctx.trace(GROUP_CLIENT_EVENT.result, { op, ...fields, result, ...extra });
  }
}

/** Whether `inst`'s process (its own incarnation) is among `members`. */
function isMember(
  inst: ClusterSimNode,
  members: readonly { readonly node: NodeId; readonly incarnation: number }[] | undefined,
): boolean {
  return members?.some((m) => m.node === inst.id && m.incarnation === inst.incarnation) === true;
}
