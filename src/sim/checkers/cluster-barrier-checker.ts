/**
 * Barrier correctness, judged from trace events only (`cluster-group-events.ts`: the driver's
 * `group-call`/`group-result` for barriers, the nodes' `group-view` and `barrier-end`). A
 * barrier instance is (group, name, view): a name is reusable once it ended, and an arrival
 * counts only in the view it was made in.
 *
 * - **Reached only with everyone**: when the first node traces `reached` for an instance, every
 *   member of that view (`node@incarnation`) has called `barrier(group, name)` in that view
 *   (a `group-call` naming that view). Arrivals are recorded by the log, and only an applied call
 *   is an arrival, but a call always precedes its arrival: so this deterministic rule holds for a
 *   correct table and fails for one that ends a barrier before every member arrived.
 * - **One outcome**: every node reports the same outcome for the same instance.
 * - **Callers agree with the end** (`finish`): a caller gets ok only if its instance ended
 *   `reached` (some node traced it); `VIEW_CHANGED` only if it did not end `reached` (it ended
 *   `view-changed`, or the arrival was refused up front because the view had already changed).
 *
 * Memory grows with the barrier calls of the run.
 */
import type { NodeId } from '../../lib/ids.js';
import type { Checker } from '../workload.js';
import type { SimEvent } from '../trace.js';
import {
  barrierKey,
  GROUP_CLIENT_EVENT,
  GROUP_EVENT,
  GroupViewBook,
  parseBarrierEnd,
  parseGroupOp,
  parseGroupView,
  processKey,
  type TracedBarrierEnd,
} from './cluster-group-events.js';

/** The first end traced for an instance. */
interface End {
  readonly outcome: TracedBarrierEnd['outcome'];
  readonly node: NodeId;
}

/** Checks barrier correctness; see the module comment. */
export class ClusterBarrierChecker implements Checker {
  readonly name = 'cluster-barriers';
  private readonly book = new GroupViewBook();
  /** Per instance, the processes that called it. */
  private readonly calls = new Map<string, Set<string>>();
  private readonly ends = new Map<string, End>();
  /** Reached ends whose view no node had traced yet, with the callers by then; judged at the end. */
  private readonly unjudged: {
    readonly node: NodeId;
    readonly end: TracedBarrierEnd;
    readonly callers: ReadonlySet<string>;
  }[] = [];
  private readonly results: { readonly key: string; readonly node: NodeId; readonly result: string }[] = [];
  /** Instances that ended reached / view-changed. */
  reached = 0;
  failed = 0;
  /** Comparisons made. */
  checks = 0;

  constructor(private readonly violation: (message: string) => void) {}

  observe(e: SimEvent): void {
    if (e.source === 'client') {
      this.observeClient(e);
      return;
    }
    if (typeof e.source !== 'number') return;
    const node = e.source as NodeId;
    if (e.event === GROUP_EVENT.view) {
      const v = parseGroupView(e.fields);
      if (v !== null) this.book.record(v);
      return;
    }
    if (e.event !== GROUP_EVENT.barrierEnd) return;
    const end = parseBarrierEnd(e.fields);
    if (end === null) {
      this.violation(`barrier: node ${node} traced a malformed barrier end (${JSON.stringify(e.fields)})`);
      return;
    }
    this.onEnd(node, end);
  }

  private observeClient(e: SimEvent): void {
    if (e.event !== GROUP_CLIENT_EVENT.call && e.event !== GROUP_CLIENT_EVENT.result) return;
    const op = parseGroupOp(e.fields);
    if (op?.op !== 'barrier' || op.name === undefined || op.viewId === 0) return;
    const key = barrierKey(op.group, op.name, op.viewId);
    if (e.event === GROUP_CLIENT_EVENT.call) {
      const callers = this.calls.get(key) ?? new Set<string>();
      callers.add(processKey(op.node, op.self));
      this.calls.set(key, callers);
    } else if (op.result !== undefined) {
      this.results.push({ key, node: op.node, result: op.result });
    }
  }

  private onEnd(node: NodeId, end: TracedBarrierEnd): void {
    const key = barrierKey(end.group, end.name, end.viewId);
    const first = this.ends.get(key);
    if (first !== undefined) {
      this.checks++;
      if (first.outcome !== end.outcome)
        this.violation(
          `barrier: ${end.name} of group ${end.group} in view ${end.viewId} ended ${first.outcome} on node ${first.node} but ${end.outcome} on node ${node}`,
        );
      return;
    }
    this.ends.set(key, { outcome: end.outcome, node });
    if (end.outcome === 'view-changed') {
      this.failed++;
      return;
    }
    this.reached++;
    const callers = new Set(this.calls.get(key));
    if (this.book.get(end.viewId) === undefined) this.unjudged.push({ node, end, callers });
    else this.judgeReached(node, end, callers);
  }

  /** Every member of the view called the barrier before its first `reached` end. */
  private judgeReached(node: NodeId, end: TracedBarrierEnd, callers: ReadonlySet<string>): void {
    const view = this.book.get(end.viewId);
    if (view === undefined) return;
    this.checks++;
    const missing = view.members
      .filter((m) => !callers.has(processKey(m.node, m.incarnation)))
      .map((m) => processKey(m.node, m.incarnation));
    if (view.group !== end.group)
      this.violation(
        `barrier: node ${node} ended ${end.name} of group ${end.group} in view ${end.viewId}, which is a view of group ${view.group}`,
      );
    else if (missing.length > 0) {
      this.violation(
        `barrier: ${end.name} of group ${end.group} was reached in view ${end.viewId} {${view.membersText}} (first on node ${node}) before ${missing.join(', ')} called it`,
      );
    }
  }

  finish(): void {
    for (const u of this.unjudged) this.judgeReached(u.node, u.end, u.callers);
    for (const r of this.results) {
      const end = this.ends.get(r.key);
      if (r.result === 'ok') {
        this.checks++;
        if (end?.outcome !== 'reached')
          this.violation(
            `barrier: node ${r.node} got ok from barrier ${r.key} (group/name/view), but ${end === undefined ? 'no node traced its end' : `it ended ${end.outcome}`}`,
          );
      } else if (r.result === 'VIEW_CHANGED') {
        this.checks++;
        if (end?.outcome === 'reached')
          this.violation(
            `barrier: node ${r.node} got VIEW_CHANGED from barrier ${r.key} (group/name/view), but it was reached`,
          );
      }
    }
  }
}
