/**
 * The recovery table's part of the membership machine's apply (the wiring recipe of
 * `src/recovery/recovery-table.ts`): which hooks run for which entries, in what order, and the
 * evictions they ask for. Pure: no clock, no I/O; the machine passes its state and its `emit`.
 *
 * Order inside one entry: the membership and group events first (view, group, fence), then the
 * `recovery` events, in the order the hooks return them: the entry's `onGroupChange` calls (group
 * name order), then its `onFenced`; for a report or eviction, the hook's events, then per evicted
 * member its group's `removed` event and the events of the `onGroupChange` that follows.
 */
import { assert } from '../lib/assert.js';
import type { Incarnation, LogIndex, NodeId } from '../lib/ids.js';
import type { GroupCommand, GroupView } from '../groups/index.js';
import type { RecoveryApply, RecoveryCommand, RecoveryMemberRef, RecoveryOutcome } from '../recovery/index.js';
import type { EventBody, ViewChangeKind } from './membership-event.js';
import type { MembershipState } from './membership-state.js';

/** Appends one event body to the machine's event stream. */
export type Emit = (body: EventBody) => void;

/** View change kinds that remove an incarnation uncleanly (its fence record opens in the entry). */
const UNCLEAN_KINDS: ReadonlySet<ViewChangeKind> = new Set<ViewChangeKind>(['failed', 'replaced', 'quarantined']);

/** Whether a view change of `kind` removes its incarnation uncleanly. */
export function isUnclean(kind: ViewChangeKind): boolean {
  return UNCLEAN_KINDS.has(kind);
}

/**
 * The groups an entry's cluster-view removals change, read before `GroupTable.removeNode` (a group
 * whose last member goes has no view after it, and its round must still open): per group its
 * level and the members the removals take out.
 */
export type AffectedGroups = ReadonlyMap<string, { readonly level: number; readonly removed: RecoveryMemberRef[] }>;

/** `AffectedGroups` of removing `gone` from the groups whose views are `before`. */
export function affectedGroups(before: readonly GroupView[], gone: readonly RecoveryMemberRef[]): AffectedGroups {
  const out = new Map<string, { level: number; removed: RecoveryMemberRef[] }>();
  for (const v of before) {
    const removed = v.members
      .filter((m) => gone.some((g) => g.node === m.node && g.incarnation === m.incarnation))
      .map(({ node, incarnation }) => ({ node, incarnation }));
    if (removed.length > 0) out.set(v.group, { level: v.level, removed });
  }
  return out;
}

/** Emits a hook's `recovery` events; returns their count. */
function emitAll(r: RecoveryApply, emit: Emit): number {
  for (const payload of r.events) emit({ kind: 'recovery', payload });
  return r.events.length;
}

/** `group`'s members now (empty when it has none), as the table takes them. */
function membersNow(s: MembershipState, group: string): RecoveryMemberRef[] {
  return (s.groups.view(group)?.members ?? []).map(({ node, incarnation }) => ({ node, incarnation }));
}

/**
 * After an entry that changed the cluster view and removed the members of `affected` from their
 * groups (after its fence events): `onGroupChange` per affected group (name order), the removed
 * members passed as unclean when `unclean`; then, when the entry closed the fence record of
 * `fenced`, `onFenced` with that record's incarnation. Returns the events emitted.
 */
export function recoveryAfterViewChange(
  s: MembershipState,
  index: LogIndex,
  affected: AffectedGroups,
  unclean: boolean,
  fenced: { readonly node: NodeId; readonly incarnation: Incarnation } | null,
  emit: Emit,
): number {
  let events = 0;
  for (const group of [...affected.keys()].sort()) {
    const a = affected.get(group);
    if (a === undefined) continue;
    const r = s.recovery.onGroupChange(group, a.level, membersNow(s, group), unclean ? a.removed : [], index);
    assert(r.evict.length === 0, 'onGroupChange never evicts');
    events += emitAll(r, emit);
  }
  if (fenced !== null) {
    const r = s.recovery.onFenced(fenced.node, fenced.incarnation, index);
    assert(r.evict.length === 0, 'onFenced never evicts');
    events += emitAll(r, emit);
  }
  return events;
}

/**
 * Whether `c` must be refused `too-many-groups` before the group table sees it: a join that would
 * create a group (one with no members and no recovery record) while the recovery table is full.
 */
export function refusesNewGroup(s: MembershipState, c: GroupCommand): boolean {
  return (
    c.type === 'group-join' &&
    s.groups.view(c.group) === null &&
    s.recovery.round(c.group) === null &&
    !s.recovery.admitsNewGroup()
  );
}

/** After an applied `group-join` or `group-leave` of `group` at `level`: `onGroupChange`. */
export function recoveryAfterGroupChange(
  s: MembershipState,
  index: LogIndex,
  group: string,
  level: number,
  emit: Emit,
): number {
  const r = s.recovery.onGroupChange(group, level, membersNow(s, group), [], index);
  assert(r.evict.length === 0, 'onGroupChange never evicts');
  return emitAll(r, emit);
}

/**
 * Applies `recovery-report` or `recovery-evict`: the table's hook, then each eviction it returns
 * (the member leaves its group, a `removed` group view change, then `onGroupChange` restarts the
 * round without it). Returns the table's outcome and the events emitted.
 */
export function applyRecoveryCommand(
  s: MembershipState,
  index: LogIndex,
  c: RecoveryCommand,
  emit: Emit,
): { outcome: RecoveryOutcome; events: number } {
  const r =
    c.type === 'recovery-report'
      ? s.recovery.report(c.group, c.generation, c.node, c.incarnation, c.what, index)
      : s.recovery.evict(c.group, c.generation, c.node, c.incarnation, index, c.reason);
  let events = emitAll(r, emit);
  for (const e of r.evict) {
    const level = s.groups.view(e.group)?.level ?? s.recovery.round(e.group)?.level ?? 0;
    const removed = s.groups.removeMember(e.group, e.node, e.incarnation);
    for (const g of removed) emit(g);
    events += removed.length;
    const after = s.recovery.onGroupChange(e.group, level, membersNow(s, e.group), [], index);
    assert(after.evict.length === 0, 'onGroupChange never evicts');
    events += emitAll(after, emit);
  }
  return { outcome: r.outcome, events };
}
