/**
 * Membership view checkers, judged from `view` trace events only (`cluster-events.ts`):
 *
 * - **View agreement**: views skew in time across nodes, never in order or content. Globally,
 *   one view id always names the same members with the same incarnations, and one log index
 *   always leaves the same (view id, quorate flag) behind, on every node and in every process
 *   lifetime (a restarted node re-applies its log and must re-trace the same views). Within one
 *   process, applied indexes strictly increase and view ids never decrease.
 * - **No quorate view without a quorum of votes**: the first time a (view id, quorate) state is
 *   seen, its flag is recomputed from its members and the run's configured votes with the quorum
 *   module's `arbitrate` (same expected votes and tie-breaker), and must match.
 *
 * Memory grows with the number of distinct views and membership entries of the run (bounded by
 * the run's length), never per message.
 */
import type { NodeId } from '../../lib/ids.js';
import type { QuorumConfig } from '../../quorum/index.js';
import type { Checker } from '../workload.js';
import type { SimEvent } from '../trace.js';
import { CLUSTER_EVENT, parseView, quorateFor } from './cluster-events.js';

/** What was first seen for one view id or one index. */
interface Seen {
  readonly node: NodeId;
  readonly text: string;
}

/** Checks view agreement; see the module comment. */
export class ClusterViewChecker implements Checker {
  readonly name = 'cluster-views';
  private readonly contents = new Map<number, Seen>();
  private readonly atIndex = new Map<number, Seen>();
  /** Per node, the last (index, viewId) traced by its current process. */
  private readonly last = new Map<NodeId, { index: number; viewId: number }>();
  /** Distinct view ids seen. */
  get views(): number {
    return this.contents.size;
  }
  /** Comparisons made (a test can tell a checker that saw nothing from one that passed). */
  checks = 0;

  constructor(private readonly violation: (message: string) => void) {}

  observe(e: SimEvent): void {
    if (e.source === 'sim' && e.event === 'start') {
      this.last.delete(e.fields.node as NodeId);
      return;
    }
    if (typeof e.source !== 'number' || e.event !== CLUSTER_EVENT.view) return;
    const node = e.source as NodeId;
    const v = parseView(e.fields);
    if (v === null) {
      this.violation(`view agreement: node ${node} traced a malformed view (${JSON.stringify(e.fields)})`);
      return;
    }
    this.checkOrder(node, v.index, v.viewId);
    this.same(
      this.contents,
      v.viewId,
      node,
      v.membersText,
      (a, b) => `view agreement: view ${v.viewId} is {${a.text}} on node ${a.node} but {${b}} on node ${node}`,
    );
    this.same(
      this.atIndex,
      v.index,
      node,
      `${v.viewId}/${v.quorate}`,
      (a, b) =>
        `view agreement: after index ${v.index} node ${a.node} had view/quorate ${a.text} but node ${node} had ${b}`,
    );
  }

  private checkOrder(node: NodeId, index: number, viewId: number): void {
    const prev = this.last.get(node);
    this.last.set(node, { index, viewId });
    if (prev === undefined) return;
    this.checks++;
    if (index <= prev.index)
      this.violation(
        `view agreement: node ${node} applied membership index ${index} after index ${prev.index} in one process`,
      );
    else if (viewId < prev.viewId)
      this.violation(
        `view agreement: node ${node} went back from view ${prev.viewId} to view ${viewId} (index ${index})`,
      );
  }

  private same(
    map: Map<number, Seen>,
    key: number,
    node: NodeId,
    text: string,
    message: (first: Seen, now: string) => string,
  ): void {
    const first = map.get(key);
    if (first === undefined) {
      map.set(key, { node, text });
      return;
    }
    this.checks++;
    if (first.text !== text) this.violation(message(first, text));
  }
}

/**
 * two_node (the `two-node` workload): a lone member's view may be quorate only while no fence of
 * its peer is open at the view's index; judged at the end of the run, when every traced fence
 * opening and close is known. A lone member's view flagged not quorate is accepted (the peer's
 * fence may be pending).
 */
export interface TwoNodeQuorum {
  readonly nodes: readonly [NodeId, NodeId];
  fenceOpenAt(node: NodeId, index: number): boolean;
}

/** Checks every new view's quorate flag against the votes of its members; see the module comment. */
export class ClusterQuorumChecker implements Checker {
  readonly name = 'cluster-quorum';
  private readonly checked = new Set<string>();
  /** two_node: lone quorate views to judge at the end (`node`'s view `viewId` at log `index`). */
  private readonly lone: { node: NodeId; member: NodeId; viewId: number; index: number }[] = [];
  checks = 0;

  constructor(
    private readonly config: QuorumConfig,
    private readonly violation: (message: string) => void,
    private readonly twoNode: TwoNodeQuorum | null = null,
  ) {}

  finish(): void {
    for (const l of this.lone) {
      const peer = this.twoNode?.nodes.find((n) => n !== l.member);
      if (peer === undefined || this.twoNode?.fenceOpenAt(peer, l.index) !== true) continue;
      this.violation(
        `quorum: two_node: node ${l.node} applied view ${l.viewId} {${l.member}} (index ${l.index}) flagged quorate while a fence of its peer ${peer} was open`,
      );
    }
  }

  observe(e: SimEvent): void {
    if (typeof e.source !== 'number' || e.event !== CLUSTER_EVENT.view) return;
    const v = parseView(e.fields);
    if (v === null) return; // reported by the agreement checker
    const key = `${v.viewId}/${v.quorate}/${v.membersText}`;
    if (this.checked.has(key)) return;
    this.checked.add(key);
    this.checks++;
    const present = new Set(v.members.map((m) => m.node));
    if (this.twoNode !== null && present.size === 1) {
      const member = v.members[0]?.node as NodeId;
      if (v.quorate) this.lone.push({ node: e.source as NodeId, member, viewId: v.viewId, index: v.index });
      return;
    }
    const expected = quorateFor(this.config, present);
    if (expected !== v.quorate) {
      const votes = [...present].map((id) => this.config.voters.get(id) ?? 0).reduce((a, b) => a + b, 0);
      this.violation(
        `quorum: node ${e.source} applied view ${v.viewId} {${v.membersText}} flagged quorate=${v.quorate}, but its members hold ${votes} of ${this.config.expectedVotes} expected votes (quorate=${expected})`,
      );
    }
  }
}
