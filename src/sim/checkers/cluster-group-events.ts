/**
 * The service-group half of the cluster workload's trace vocabulary: what the node program
 * (`workloads/cluster-program.ts`) and the group driver (`workloads/cluster-group-driver.ts`)
 * emit, and what the group checkers (view agreement, virtual synchrony, barriers) read. Checkers
 * see only these events, never node state.
 *
 * Node events (source = node id; `self` is the membership incarnation of the tracing process):
 * - `group-view group=G viewId=V members=1@1,3@2/l2 change=joined:3@2 self=I`: the process
 *   applied group view V of G: its members (`node@incarnation`, `/lL` when the level is not 0,
 *   ascending by node; empty when the group is gone) and the change that made it
 *   (`joined|left|removed:node@incarnation`).
 * - `group-deliver group=G viewId=V seq=S from=N msg=TEXT self=I`: the process delivered message
 *   number S of view V, sent by node N; TEXT is the payload (the driver sends short unique texts).
 * - `barrier-end group=G name=B viewId=V outcome=reached|view-changed`: the process applied the
 *   end of barrier B of view V.
 * - `raft-snapshot-restored` (the Raft core's): the process replaced its state with a snapshot,
 *   so it skipped the entries in between (and their group events).
 *
 * Client events (source = `client`, the group driver; traced inside the call, so `viewId` is the
 * view the node had applied when it got the request, 0 when it had none of the group):
 * - `group-call op=join|leave|send|barrier node=N self=I group=G viewId=V [level=L] [msg=TEXT] [name=B]`.
 * - `group-result op=.. node=N self=I group=G viewId=V [msg=..] [name=..] result=ok|CODE [seq=S resultViewId=W]`:
 *   what the call's `done` got; `viewId` repeats the call's view; `seq` and `resultViewId` are
 *   the acknowledged message number and view of a send.
 */
import { nodeId, type NodeId } from '../../lib/ids.js';

/** Node event names (the program emits them). */
export const GROUP_EVENT = {
  view: 'group-view',
  deliver: 'group-deliver',
  barrierEnd: 'barrier-end',
  snapshotRestored: 'raft-snapshot-restored',
} as const;

/** Client event names (the group driver emits them). */
export const GROUP_CLIENT_EVENT = {
  call: 'group-call',
  result: 'group-result',
} as const;

/** Group operations the driver traces. */
export type GroupOp = 'join' | 'leave' | 'send' | 'barrier';
const GROUP_OPS: ReadonlySet<string> = new Set<GroupOp>(['join', 'leave', 'send', 'barrier']);

/** One member of a traced group view. */
export interface TracedGroupMember {
  readonly node: NodeId;
  readonly incarnation: number;
  readonly level: number;
}

/** `node@incarnation`: one process's identity in group views and deliveries. */
export function processKey(node: number, incarnation: number): string {
  return `${node}@${incarnation}`;
}

/** Encodes group members as `1@1,3@2/l2` (ascending by node; the level when not 0). */
export function formatGroupMembers(members: readonly TracedGroupMember[]): string {
  return members
    .map((m) =>
      m.level === 0 ? processKey(m.node, m.incarnation) : `${processKey(m.node, m.incarnation)}/l${m.level}`,
    )
    .join(',');
}

/** Parses `formatGroupMembers` output; null when malformed or not strictly ascending. */
export function parseGroupMembers(text: string): TracedGroupMember[] | null {
  if (text === '') return [];
  const out: TracedGroupMember[] = [];
  for (const part of text.split(',')) {
    const m = /^(\d+)@(\d+)(?:\/l(\d+))?$/.exec(part);
    if (m === null) return null;
    const node = Number(m[1]);
    const last = out.at(-1);
    if (node < 1 || (last !== undefined && last.node >= node)) return null;
    out.push({ node: nodeId(node), incarnation: Number(m[2]), level: m[3] === undefined ? 0 : Number(m[3]) });
  }
  return out;
}

/** Kinds of group view change. */
export type TracedChangeKind = 'joined' | 'left' | 'removed';

/** A `group-view` event, parsed. */
export interface TracedGroupView {
  readonly group: string;
  readonly viewId: number;
  readonly members: readonly TracedGroupMember[];
  /** The canonical members text (what agreement compares). */
  readonly membersText: string;
  readonly change: { readonly kind: TracedChangeKind; readonly node: NodeId; readonly incarnation: number };
  readonly changeText: string;
  readonly self: number;
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** Parses a `group-view` event's fields; null when malformed. */
export function parseGroupView(f: Readonly<Record<string, unknown>>): TracedGroupView | null {
  const { group, viewId, members, change, self } = f;
  if (
    typeof group !== 'string' ||
    !isCount(viewId) ||
    viewId < 1 ||
    typeof members !== 'string' ||
    typeof change !== 'string' ||
    !isCount(self)
  )
    return null;
  const parsed = parseGroupMembers(members);
  const c = /^(joined|left|removed):(\d+)@(\d+)$/.exec(change);
  if (parsed === null || c === null) return null;
  return {
    group,
    viewId,
    members: parsed,
    membersText: members,
    change: { kind: c[1] as TracedChangeKind, node: nodeId(Number(c[2])), incarnation: Number(c[3]) },
    changeText: change,
    self,
  };
}

/**
 * The members `prev` turns into by `change` (null when the change does not apply: joining a node
 * already listed with that incarnation, or removing one that is not listed). A join of a node
 * listed with an older incarnation is not a single change: the table emits a `removed` view first.
 */
export function applyChange(
  prev: readonly TracedGroupMember[],
  change: TracedGroupView['change'],
  level: number,
): TracedGroupMember[] | null {
  const i = prev.findIndex((m) => m.node === change.node);
  if (change.kind === 'joined') {
    if (i >= 0) return null;
    return [...prev, { node: change.node, incarnation: change.incarnation, level }].sort((a, b) => a.node - b.node);
  }
  if (i < 0 || prev[i]?.incarnation !== change.incarnation) return null;
  return prev.filter((_, j) => j !== i);
}

/** A `group-deliver` event, parsed. */
export interface TracedDelivery {
  readonly group: string;
  readonly viewId: number;
  readonly seq: number;
  readonly from: NodeId;
  readonly msg: string;
  readonly self: number;
}

/** Parses a `group-deliver` event's fields; null when malformed. */
export function parseDelivery(f: Readonly<Record<string, unknown>>): TracedDelivery | null {
  const { group, viewId, seq, from, msg, self } = f;
  if (
    typeof group !== 'string' ||
    !isCount(viewId) ||
    !isCount(seq) ||
    seq < 1 ||
    !isCount(from) ||
    from < 1 ||
    typeof msg !== 'string' ||
    !isCount(self)
  )
    return null;
  return { group, viewId, seq, from: nodeId(from), msg, self };
}

/** A `barrier-end` event, parsed. */
export interface TracedBarrierEnd {
  readonly group: string;
  readonly name: string;
  readonly viewId: number;
  readonly outcome: 'reached' | 'view-changed';
}

/** Parses a `barrier-end` event's fields; null when malformed. */
export function parseBarrierEnd(f: Readonly<Record<string, unknown>>): TracedBarrierEnd | null {
  const { group, name, viewId, outcome } = f;
  if (
    typeof group !== 'string' ||
    typeof name !== 'string' ||
    !isCount(viewId) ||
    (outcome !== 'reached' && outcome !== 'view-changed')
  )
    return null;
  return { group, name, viewId, outcome };
}

/** A `group-call` or `group-result` client event, parsed (result fields absent on a call). */
export interface TracedGroupOp {
  readonly op: GroupOp;
  readonly node: NodeId;
  readonly self: number;
  readonly group: string;
  readonly viewId: number;
  readonly msg: string | undefined;
  readonly name: string | undefined;
  readonly result: string | undefined;
  readonly seq: number | undefined;
  readonly resultViewId: number | undefined;
}

/** Parses a `group-call` / `group-result` event's fields; null when malformed. */
export function parseGroupOp(f: Readonly<Record<string, unknown>>): TracedGroupOp | null {
  const { op, node, self, group, viewId, msg, name, result, seq, resultViewId } = f;
  if (
    typeof op !== 'string' ||
    !GROUP_OPS.has(op) ||
    !isCount(node) ||
    node < 1 ||
    !isCount(self) ||
    typeof group !== 'string' ||
    !isCount(viewId)
  )
    return null;
  if (
    (msg !== undefined && typeof msg !== 'string') ||
    (name !== undefined && typeof name !== 'string') ||
    (result !== undefined && typeof result !== 'string')
  )
    return null;
  if ((seq !== undefined && !isCount(seq)) || (resultViewId !== undefined && !isCount(resultViewId))) return null;
  return { op: op as GroupOp, node: nodeId(node), self, group, viewId, msg, name, result, seq, resultViewId };
}

/** Key of one barrier instance: a name is reusable once its barrier ended, and views differ. */
export function barrierKey(group: string, name: string, viewId: number): string {
  return `${group}/${name}/${viewId}`;
}

/**
 * Every group view seen in the run, by id (view ids are cluster-wide: one id names one view of
 * one group), kept from the first node that traced it. Each group checker keeps its own book.
 */
export class GroupViewBook {
  private readonly byId = new Map<number, TracedGroupView>();
  /** Per group, its view ids seen, unordered (sorted on demand). */
  private readonly idsOf = new Map<string, number[]>();

  /** Records `v`; returns the view first recorded under its id (`v` itself when new). */
  record(v: TracedGroupView): TracedGroupView {
    const first = this.byId.get(v.viewId);
    if (first !== undefined) return first;
    this.byId.set(v.viewId, v);
    const ids = this.idsOf.get(v.group) ?? [];
    ids.push(v.viewId);
    this.idsOf.set(v.group, ids);
    return v;
  }

  /** The view with this id, if any node traced it. */
  get(viewId: number): TracedGroupView | undefined {
    return this.byId.get(viewId);
  }

  /** Whether process `node@incarnation` is a member of view `viewId` (undefined: view unknown). */
  isMember(viewId: number, node: number, incarnation: number): boolean | undefined {
    const v = this.byId.get(viewId);
    return v?.members.some((m) => m.node === node && m.incarnation === incarnation);
  }

  /** Groups seen, sorted. */
  groups(): string[] {
    return [...this.idsOf.keys()].sort();
  }

  /** The view ids of `group` seen, ascending (the group's view sequence as far as it was traced). */
  sequence(group: string): number[] {
    return [...(this.idsOf.get(group) ?? [])].sort((a, b) => a - b);
  }

  /** Distinct view ids seen. */
  get size(): number {
    return this.byId.size;
  }
}
