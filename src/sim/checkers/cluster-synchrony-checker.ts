/**
 * Virtual synchrony of group messages, judged from trace events only (`cluster-group-events.ts`:
 * the driver's `group-call`/`group-result` for sends, the nodes' `group-view` and
 * `group-deliver`). A process is `node@incarnation`; it delivers only in views that list it.
 *
 * As each delivery is traced:
 * - **Integrity**: the message was sent by a client (`group-call op=send`), from the node the
 *   delivery names, to that group.
 * - **Sent view only**: it is delivered in the view it was sent in (the view the sender had
 *   applied when it took the request), and only by a member of that view: never in a later view,
 *   never by a node that joined later.
 * - **One order**: a (group, view, seq) slot holds one message on every node.
 * - **No gap**: within a view a process delivers seq 1, 2, 3, ... in order.
 * - **No duplicate**: a node delivers a message at most once (across its processes too).
 *
 * When the run ends (`finish`):
 * - **Members that move together deliver the same messages**: for two consecutive views V, V' of
 *   a group (its view ids as traced by all nodes, ascending), every process that is a member of
 *   both and applied V' delivered every message of V (seq 1 up to the highest seq any node
 *   delivered in V or any client was acknowledged for). Only a process that crashed, or left or
 *   was removed during V, may hold a prefix. A send acknowledged ok is therefore delivered by
 *   every member of its view that went on into the next view; its acknowledged view and seq must
 *   match what was delivered.
 * - Deliveries whose view was unknown when traced are judged against the views seen by then.
 *
 * Memory grows with the messages and views of the run (bounded by its length).
 */
import type { NodeId } from '../../lib/ids.js';
import type { Checker } from '../workload.js';
import type { SimEvent } from '../trace.js';
import {
  GROUP_CLIENT_EVENT,
  GROUP_EVENT,
  GroupViewBook,
  parseDelivery,
  parseGroupOp,
  parseGroupView,
  processKey,
  type TracedDelivery,
} from './cluster-group-events.js';

/** A send as the client traced it. */
interface Sent {
  readonly node: NodeId;
  readonly group: string;
  readonly viewId: number;
}

/** What one process delivered in one view. */
interface InView {
  lastSeq: number;
}

/** Checks virtual synchrony; see the module comment. */
export class ClusterSynchronyChecker implements Checker {
  readonly name = 'cluster-virtual-synchrony';
  private readonly book = new GroupViewBook();
  private readonly sent = new Map<string, Sent>();
  private readonly acked: {
    readonly msg: string;
    readonly group: string;
    readonly viewId: number;
    readonly resultViewId: number;
    readonly seq: number;
    readonly node: NodeId;
  }[] = [];
  /** (group, view, seq) -> the message and the node that first delivered it. */
  private readonly slots = new Map<string, { readonly msg: string; readonly node: NodeId }>();
  /** Per view id, the highest seq delivered or acknowledged. */
  private readonly maxSeq = new Map<number, number>();
  /** Per process key, per view id: what it delivered. */
  private readonly delivered = new Map<string, Map<number, InView>>();
  /** Per node, the messages it delivered (in any process). */
  private readonly byNode = new Map<NodeId, Set<string>>();
  /** Per view id, the processes that applied it. */
  private readonly appliedBy = new Map<number, Set<string>>();
  /** Per node, the time of its current process's last snapshot restore (for messages). */
  private readonly restoredUs = new Map<NodeId, number>();
  /** Deliveries into a view no node had traced yet, judged at the end. */
  private readonly unjudged: { readonly node: NodeId; readonly d: TracedDelivery }[] = [];
  /** Messages delivered (every delivery on every node). */
  deliveries = 0;
  /** Comparisons made. */
  checks = 0;

  constructor(private readonly violation: (message: string) => void) {}

  observe(e: SimEvent): void {
    if (e.source === 'sim') {
      if (e.event === 'start') this.restoredUs.delete(e.fields.node as NodeId);
      return;
    }
    if (e.source === 'client') {
      this.observeClient(e);
      return;
    }
    const node = e.source as NodeId;
    switch (e.event) {
      case GROUP_EVENT.snapshotRestored:
        this.restoredUs.set(node, e.timeUs);
        return;
      case GROUP_EVENT.view: {
        const v = parseGroupView(e.fields);
        if (v === null) return; // reported by the view agreement checker
        this.book.record(v);
        const by = this.appliedBy.get(v.viewId) ?? new Set<string>();
        by.add(processKey(node, v.self));
        this.appliedBy.set(v.viewId, by);
        return;
      }
      case GROUP_EVENT.deliver: {
        const d = parseDelivery(e.fields);
        if (d === null)
          this.violation(`virtual synchrony: node ${node} traced a malformed delivery (${JSON.stringify(e.fields)})`);
        else this.onDeliver(node, d);
        return;
      }
      default:
        return;
    }
  }

  private observeClient(e: SimEvent): void {
    if (e.event !== GROUP_CLIENT_EVENT.call && e.event !== GROUP_CLIENT_EVENT.result) return;
    const op = parseGroupOp(e.fields);
    if (op?.op !== 'send' || op.msg === undefined) return;
    if (e.event === GROUP_CLIENT_EVENT.call) {
      this.sent.set(op.msg, { node: op.node, group: op.group, viewId: op.viewId });
    } else if (op.result === 'ok' && op.seq !== undefined && op.resultViewId !== undefined) {
      this.acked.push({
        msg: op.msg,
        group: op.group,
        viewId: op.viewId,
        resultViewId: op.resultViewId,
        seq: op.seq,
        node: op.node,
      });
    }
  }

  private onDeliver(node: NodeId, d: TracedDelivery): void {
    this.deliveries++;
    this.checks++;
    const who = `node ${node} (incarnation ${d.self})`;
    const s = this.sent.get(d.msg);
    if (s === undefined)
      this.violation(
        `virtual synchrony: ${who} delivered ${d.msg} in view ${d.viewId} of group ${d.group}, which no client sent`,
      );
    else if (s.group !== d.group || s.node !== d.from)
      this.violation(
        `virtual synchrony: ${who} delivered ${d.msg} as sent by node ${d.from} to group ${d.group}, but node ${s.node} sent it to group ${s.group}`,
      );
    else if (s.viewId !== d.viewId)
      this.violation(
        `virtual synchrony: ${who} delivered ${d.msg} of group ${d.group} in view ${d.viewId}, but node ${s.node} sent it in view ${s.viewId} (a message is delivered only in the view it was sent in)`,
      );
    this.judgeMembership(node, d);
    const mine = this.byNode.get(node) ?? new Set<string>();
    this.byNode.set(node, mine);
    if (mine.has(d.msg)) this.violation(`virtual synchrony: ${who} delivered ${d.msg} of group ${d.group} twice`);
    mine.add(d.msg);
    this.fillSlot(node, d.group, d.viewId, d.seq, d.msg, `${who} delivered`);
    const views = this.delivered.get(processKey(node, d.self)) ?? new Map<number, InView>();
    this.delivered.set(processKey(node, d.self), views);
    const inView = views.get(d.viewId) ?? { lastSeq: 0 };
    views.set(d.viewId, inView);
    if (d.seq !== inView.lastSeq + 1) {
      const restored = this.restoredUs.get(node);
      const note =
        restored === undefined
          ? ''
          : ` (the process restored a snapshot from the leader at ${(restored / 1e6).toFixed(3)} s)`;
      this.violation(
        `virtual synchrony: ${who} delivered seq ${d.seq} of view ${d.viewId} of group ${d.group} after seq ${inView.lastSeq} (${d.msg}): a gap or reorder within a view${note}`,
      );
    }
    inView.lastSeq = Math.max(inView.lastSeq, d.seq);
  }

  private judgeMembership(node: NodeId, d: TracedDelivery): void {
    const member = this.book.isMember(d.viewId, node, d.self);
    if (member === undefined) this.unjudged.push({ node, d });
    else if (!member)
      this.violation(
        `virtual synchrony: node ${node} (incarnation ${d.self}) delivered ${d.msg} in view ${d.viewId} of group ${d.group} {${this.book.get(d.viewId)?.membersText ?? ''}}, of which it is not a member`,
      );
  }

  private fillSlot(node: NodeId, group: string, viewId: number, seq: number, msg: string, what: string): void {
    this.maxSeq.set(viewId, Math.max(this.maxSeq.get(viewId) ?? 0, seq));
    const key = `${group}/${viewId}/${seq}`;
    const first = this.slots.get(key);
    if (first === undefined) this.slots.set(key, { msg, node });
    else if (first.msg !== msg)
      this.violation(
        `virtual synchrony: seq ${seq} of view ${viewId} of group ${group} is ${first.msg} on node ${first.node}, but ${what} ${msg} there`,
      );
  }

  finish(): void {
    for (const { node, d } of this.unjudged) {
      if (this.book.isMember(d.viewId, node, d.self) === false) this.judgeMembership(node, d);
    }
    for (const a of this.acked) {
      this.checks++;
      if (a.resultViewId !== a.viewId)
        this.violation(
          `virtual synchrony: node ${a.node} sent ${a.msg} to group ${a.group} in view ${a.viewId}, but it was acknowledged as seq ${a.seq} of view ${a.resultViewId}`,
        );
      else this.fillSlot(a.node, a.group, a.viewId, a.seq, a.msg, `node ${a.node}'s client was acknowledged`);
    }
    for (const group of this.book.groups()) this.judgeMoves(group);
  }

  /** Members moving from each view of `group` to the next one delivered all of its messages. */
  private judgeMoves(group: string): void {
    const ids = this.book.sequence(group);
    for (let i = 0; i + 1 < ids.length; i++) {
      const from = this.book.get(ids[i] ?? 0);
      const to = this.book.get(ids[i + 1] ?? 0);
      if (from === undefined || to === undefined) continue;
      const all = this.maxSeq.get(from.viewId) ?? 0;
      for (const m of from.members) {
        const p = processKey(m.node, m.incarnation);
        if (!to.members.some((n) => n.node === m.node && n.incarnation === m.incarnation)) continue;
        if (this.appliedBy.get(to.viewId)?.has(p) !== true) continue;
        this.checks++;
        const got = this.delivered.get(p)?.get(from.viewId)?.lastSeq ?? 0;
        if (got < all) {
          this.violation(
            `virtual synchrony: node ${m.node} (incarnation ${m.incarnation}) went from view ${from.viewId} to view ${to.viewId} of group ${group} having delivered ${got} of the ${all} messages of view ${from.viewId} (members that move together deliver the same messages)`,
          );
        }
      }
    }
  }
}
