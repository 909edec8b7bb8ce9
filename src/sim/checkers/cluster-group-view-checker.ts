/**
 * Group view agreement, judged from `group-view` trace events only (`cluster-group-events.ts`):
 * every node applies the same sequence of views per group.
 *
 * - **One id, one view**: a group view id (cluster-wide) always names the same group, the same
 *   members (incarnations and levels) and the same change, on every node and in every process.
 * - **Ids grow**: within one process, a group's view ids strictly increase.
 * - **Same sequence**: within one process, two views of a group applied one after the other (no
 *   snapshot restored in between: a snapshot skips entries, and their views) are consecutive in
 *   the group's history: the second one's members are the first one's with its change applied,
 *   and every process that applied the first one then applied the same second one (a node that
 *   skipped a view, or saw two different successors, is caught).
 *
 * Memory grows with the number of group views of the run, never per message.
 */
import type { NodeId } from '../../lib/ids.js';
import type { Checker } from '../workload.js';
import type { SimEvent } from '../trace.js';
import {
  applyChange,
  formatGroupMembers,
  GROUP_EVENT,
  GroupViewBook,
  parseGroupView,
  type TracedGroupView,
} from './cluster-group-events.js';

/** Checks group view agreement; see the module comment. */
export class ClusterGroupViewChecker implements Checker {
  readonly name = 'cluster-group-views';
  private readonly book = new GroupViewBook();
  /** The node that first traced each view id. */
  private readonly firstBy = new Map<number, NodeId>();
  /** Per node, the last view its current process applied of each group (since its start or its last snapshot restore). */
  private readonly last = new Map<NodeId, Map<string, TracedGroupView>>();
  /** Per view id, its successor as first applied by a process, and by which node. */
  private readonly successor = new Map<number, { viewId: number; node: NodeId }>();
  /** Comparisons made (a test can tell a checker that saw nothing from one that passed). */
  checks = 0;

  constructor(private readonly violation: (message: string) => void) {}

  /** Distinct group views seen. */
  get views(): number {
    return this.book.size;
  }

  observe(e: SimEvent): void {
    if (e.source === 'sim' && e.event === 'start') {
      this.last.delete(e.fields.node as NodeId);
      return;
    }
    if (typeof e.source !== 'number') return;
    const node = e.source as NodeId;
    if (e.event === GROUP_EVENT.snapshotRestored) {
      this.last.delete(node);
      return;
    }
    if (e.event !== GROUP_EVENT.view) return;
    const v = parseGroupView(e.fields);
    if (v === null) {
      this.violation(`group view agreement: node ${node} traced a malformed group view (${JSON.stringify(e.fields)})`);
      return;
    }
    this.checkSame(node, v);
    this.checkFollows(node, v);
  }

  private checkSame(node: NodeId, v: TracedGroupView): void {
    const first = this.book.record(v);
    if (first === v) {
      this.firstBy.set(v.viewId, node);
      return;
    }
    this.checks++;
    if (first.group !== v.group || first.membersText !== v.membersText || first.changeText !== v.changeText) {
      this.violation(
        `group view agreement: view ${v.viewId} is ${describe(first)} on node ${this.firstBy.get(v.viewId) ?? '?'} but ${describe(v)} on node ${node}`,
      );
    }
  }

  private checkFollows(node: NodeId, v: TracedGroupView): void {
    const mine = this.last.get(node) ?? new Map<string, TracedGroupView>();
    this.last.set(node, mine);
    const prev = mine.get(v.group);
    mine.set(v.group, v);
    if (prev === undefined) return;
    this.checks++;
    if (v.viewId <= prev.viewId) {
      this.violation(
        `group view agreement: node ${node} applied view ${v.viewId} of group ${v.group} after view ${prev.viewId} in one process (ids must grow)`,
      );
      return;
    }
    const level = v.members.find((m) => m.node === v.change.node)?.level ?? 0;
    const expected = applyChange(prev.members, v.change, level);
    if (expected === null || formatGroupMembers(expected) !== v.membersText) {
      this.violation(
        `group view agreement: node ${node} went from view ${prev.viewId} ${describe(prev)} to view ${v.viewId} ${describe(v)} of group ${v.group}, which is not one change away (a view was skipped or changed)`,
      );
      return;
    }
    const claimed = this.successor.get(prev.viewId);
    if (claimed === undefined) this.successor.set(prev.viewId, { viewId: v.viewId, node });
    else if (claimed.viewId !== v.viewId) {
      this.violation(
        `group view agreement: after view ${prev.viewId} of group ${v.group} node ${claimed.node} applied view ${claimed.viewId} but node ${node} applied view ${v.viewId}`,
      );
    }
  }
}

function describe(v: TracedGroupView): string {
  return `${v.group} {${v.membersText}} (${v.changeText})`;
}
