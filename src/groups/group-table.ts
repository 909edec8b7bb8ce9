/**
 * The service groups of the cluster: a pure, deterministic table inside the membership state
 * machine (docs/groups.md). Every node applies the same group commands, and the same removals
 * caused by membership changes, at the same log positions, so every node derives the same group
 * views, message sequence numbers and barrier outcomes.
 *
 * - A group exists while it has members. It has one level (0..`GROUP_LEVEL_MAX`), set by the join
 *   that creates it; a join naming another level is refused `level-mismatch` (the recovery
 *   coordinator orders a group's recovery by it: lower levels first). Every member carries the
 *   group's level (the per-member field of the encoding and of view events).
 * - Its view changes (a new `groupViewId`) on every join, leave
 *   and removal; view ids come from one cluster-wide counter, so they grow per group even when a
 *   group is deleted and created again.
 * - A message is delivered, in log order, to exactly the members of the view it was sent in
 *   (`group-send` names that view and is refused `view-changed` otherwise). Within a view,
 *   messages are numbered 1, 2, 3, ... This is virtual synchrony by construction: members that
 *   go from view v to the next one delivered the same messages in v in the same order, because
 *   the log holds one order and a view change is one entry in it.
 * - A barrier completes when every member of its view has reached it; a view change first fails
 *   every pending barrier of the group (`view-changed`), for everyone at the same point. A name
 *   completes at most once per view: a later arrival for it (a retry, a late copy) is a duplicate
 *   answered "reached" (the newest `GROUP_BARRIERS_REACHED_KEPT` names are remembered).
 *
 * - A group that loses its last member is deleted, but its retained messages are kept (the newest
 *   `GROUPS_EMPTIED_MAX` such groups, oldest emptied dropped first) and taken over when a join
 *   creates the group again: a member that a snapshot carries past the group's end still delivers
 *   the messages of the views it was in (docs/groups.md, "Catching up").
 *
 * Iteration is always in sorted order (group names, node ids, barrier names), never in map
 * insertion order, so a node restored from a snapshot behaves exactly like one that applied the
 * whole log. The one exception is the emptied groups, kept and encoded in emptying order (their
 * eviction order), which the snapshot preserves.
 */
import { assertNever, defined } from '../lib/assert.js';
import type { ByteReader, ByteWriter } from '../lib/bytes.js';
import { DecodeError } from '../lib/errors.js';
import { incarnation as makeIncarnation, type Incarnation, type NodeId } from '../lib/ids.js';
import {
  BARRIER_NAME_BYTES_MAX,
  CLUSTER_NODES_MAX,
  GROUP_BARRIERS_PENDING_MAX,
  GROUP_BARRIERS_REACHED_KEPT,
  GROUP_RETAINED_BYTES_MAX,
  GROUP_RETAINED_MESSAGES_MAX,
  GROUP_LEVEL_MAX,
  GROUP_NAME_BYTES_MAX,
  GROUPS_MAX,
  GROUPS_EMPTIED_BYTES_MAX,
  GROUPS_EMPTIED_MAX,
  GROUPS_EMPTIED_MESSAGES_MAX,
} from '../constants.js';
import { readName, writeName, type GroupCommand } from './group-command.js';

/** One member of a group view. `level` is always its group's level. */
export interface GroupMember {
  readonly node: NodeId;
  readonly incarnation: Incarnation;
  readonly level: number;
}

/** A group's current view. `members` ascend by node id. */
export interface GroupView {
  readonly group: string;
  readonly groupViewId: number;
  /** The group's level, set by the join that created it (lower levels recover first). */
  readonly level: number;
  readonly members: readonly GroupMember[];
}

/** How a group view changed: a join, a leave, or a removal because the node left the cluster view. */
export type GroupChangeKind = 'joined' | 'left' | 'removed';

/** All change kinds, in encoding order. */
export const GROUP_CHANGE_KINDS: readonly GroupChangeKind[] = ['joined', 'left', 'removed'];

/** How a barrier ended. */
export type BarrierOutcome = 'reached' | 'view-changed';

/** All barrier outcomes, in encoding order. */
export const BARRIER_OUTCOMES: readonly BarrierOutcome[] = ['reached', 'view-changed'];

/** Payload of a `group` event: the new view (empty members: the group is gone) and its change. */
export interface GroupViewPayload {
  readonly group: string;
  readonly groupViewId: number;
  readonly members: readonly GroupMember[];
  readonly change: { readonly node: NodeId; readonly incarnation: Incarnation; readonly kind: GroupChangeKind };
  /** How many messages the view that ended held (its last seq; 0 for a new group). */
  readonly prevSeq: number;
}

/** Payload of a `barrier` event. */
export interface BarrierPayload {
  readonly group: string;
  readonly name: string;
  readonly groupViewId: number;
  readonly outcome: BarrierOutcome;
}

/** The events the table produces (the membership event log numbers them). */
export type GroupEventBody =
  | { readonly kind: 'group'; readonly payload: GroupViewPayload }
  | { readonly kind: 'barrier'; readonly payload: BarrierPayload };

/**
 * What a group command did. `applied`: it took effect; `duplicate`: nothing to do (already a
 * member, not a member any more, barrier already reached by this member); the others are
 * refusals that change nothing:
 * - `not-in-view`: the incarnation is not a member of the cluster view (it must join the cluster first);
 * - `not-member`: the sender is not a member of the group;
 * - `no-such-group`: the group does not exist (it has no members);
 * - `view-changed`: the group's view is not the one the command was sent in;
 * - `level-mismatch`: a join named a level other than the group's (`GroupApply.level` says it);
 * - `too-many-groups`, `too-many-barriers`: a bound of the table.
 */
export type GroupOutcome =
  | 'applied'
  | 'duplicate'
  | 'not-in-view'
  | 'not-member'
  | 'no-such-group'
  | 'view-changed'
  | 'level-mismatch'
  | 'too-many-groups'
  | 'too-many-barriers';

/** The result of applying one group command. */
export interface GroupApply {
  readonly outcome: GroupOutcome;
  /** The group's view id after the command (0 when the group does not exist). */
  readonly groupViewId: number;
  /** The group's level (absent when the group does not exist). */
  readonly level?: number;
  /** Events to append, in order. */
  readonly events: readonly GroupEventBody[];
  /** For an applied `barrier` arrival: whether it was the last one (the barrier is reached). */
  readonly barrierReached?: boolean;
  /** For an applied `group-send`: the message, its number in the view, and who must deliver it. */
  readonly delivery?: {
    readonly group: string;
    readonly seq: number;
    readonly from: NodeId;
    readonly payload: Uint8Array;
    readonly members: readonly GroupMember[];
  };
}

/** Planted bugs for the simulator's checkers (never set in production). */
export type GroupCanary = 'deliver-to-newcomer' | 'barrier-without-all';

/** Planted-bug names, for validation. */
export const GROUP_CANARIES: readonly GroupCanary[] = ['deliver-to-newcomer', 'barrier-without-all'];

interface GroupState {
  groupViewId: number;
  /** The group's level, fixed while it exists. */
  readonly level: number;
  /** Messages numbered so far in this view. */
  seq: number;
  readonly members: Map<NodeId, Incarnation>;
  /** Barrier name -> members that reached it (in the current view). */
  readonly barriers: Map<string, Set<NodeId>>;
  /**
   * Names of barriers reached in the current view, oldest first (at most
   * `GROUP_BARRIERS_REACHED_KEPT`): a late or retried arrival for one of them is a duplicate
   * that reports "reached", instead of opening the barrier again.
   */
  readonly reached: string[];
  /** The newest messages of the group (any view; bounded), for members that catch up by snapshot. */
  readonly retained: RetainedMessage[];
  retainedBytes: number;
  /** `members` as a sorted list, cached until the next view change (every send hands it out). */
  memberList: readonly GroupMember[] | null;
}

/** The retained messages of a group that lost its last member. */
interface EmptiedGroup {
  readonly retained: RetainedMessage[];
  retainedBytes: number;
}

/** A message kept in the state for members that catch up through a snapshot. */
export interface RetainedMessage {
  readonly groupViewId: number;
  readonly seq: number;
  readonly from: NodeId;
  readonly payload: Uint8Array;
}

const sortedKeys = <K extends string | number>(m: ReadonlyMap<K, unknown>): K[] =>
  [...m.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

/** The group table. See the module comment. */
export class GroupTable {
  private readonly groups = new Map<string, GroupState>();
  /** Retained messages of groups that lost their last member, in emptying order (oldest first). */
  private readonly emptied = new Map<string, EmptiedGroup>();
  /** The last group view id handed out, cluster-wide. */
  private lastViewId = 0;

  constructor(private readonly canary: GroupCanary | null = null) {}

  /** Every group's view, by name. */
  views(): GroupView[] {
    return sortedKeys(this.groups).map((name) => this.viewOf(name, defined(this.groups.get(name), 'group')));
  }

  /** One group's view, or null when it has no members. */
  view(group: string): GroupView | null {
    const g = this.groups.get(group);
    return g === undefined ? null : this.viewOf(group, g);
  }

  /** Whether barrier `name` of `group` was reached in the group's current view (among the newest remembered). */
  barrierReached(group: string, name: string): boolean {
    return this.groups.get(group)?.reached.includes(name) === true;
  }

  /** The last message number of `group`'s current view (0 when none, or no such group). */
  seqOf(group: string): number {
    return this.groups.get(group)?.seq ?? 0;
  }

  /**
   * The retained messages of `group`, by (view, seq): the newest, across views, bounded; those of
   * a group that lost its last member while it is among the newest emptied; empty when none.
   */
  retainedMessages(group: string): readonly RetainedMessage[] {
    return this.groups.get(group)?.retained ?? this.emptied.get(group)?.retained ?? [];
  }

  /** Members that reached pending barrier `name` of `group`, ascending; null when none is pending. */
  pendingBarrier(group: string, name: string): NodeId[] | null {
    const arrived = this.groups.get(group)?.barriers.get(name);
    return arrived === undefined ? null : [...arrived].sort((a, b) => a - b);
  }

  /** Groups `node` (at `incarnation`) belongs to, by name. */
  groupsOf(node: NodeId, incarnation: Incarnation): string[] {
    return sortedKeys(this.groups).filter((name) => this.groups.get(name)?.members.get(node) === incarnation);
  }

  private viewOf(group: string, g: GroupState): GroupView {
    return { group, groupViewId: g.groupViewId, level: g.level, members: membersOf(g) };
  }

  /**
   * Applies one command. `inView(node, incarnation)` says whether that incarnation is a member of
   * the cluster view (only such a member may join a group).
   */
  apply(c: GroupCommand, inView: (node: NodeId, incarnation: Incarnation) => boolean): GroupApply {
    const g = this.groups.get(c.group);
    const refuse = (outcome: GroupOutcome): GroupApply =>
      g === undefined
        ? { outcome, groupViewId: 0, events: [] }
        : { outcome, groupViewId: g.groupViewId, level: g.level, events: [] };
    switch (c.type) {
      case 'group-join': {
        if (!inView(c.node, c.incarnation)) return refuse('not-in-view');
        const cur = g?.members.get(c.node);
        if (cur === c.incarnation) return refuse('duplicate');
        if (g !== undefined && g.level !== c.level) return refuse('level-mismatch');
        if (g === undefined && this.groups.size >= GROUPS_MAX) return refuse('too-many-groups');
        const before = g === undefined ? this.emptied.get(c.group) : undefined;
        const state: GroupState = g ?? {
          groupViewId: 0,
          level: c.level,
          seq: 0,
          members: new Map(),
          barriers: new Map(),
          reached: [],
          retained: before?.retained ?? [],
          retainedBytes: before?.retainedBytes ?? 0,
          memberList: null,
        };
        if (g === undefined) {
          this.groups.set(c.group, state);
          this.emptied.delete(c.group);
        }
        const events: GroupEventBody[] = [];
        // An older incarnation still listed (its removal has not been applied yet) goes first.
        if (cur !== undefined)
          this.changeView(c.group, state, events, { node: c.node, incarnation: cur, kind: 'removed' }, () =>
            state.members.delete(c.node),
          );
        this.changeView(c.group, state, events, { node: c.node, incarnation: c.incarnation, kind: 'joined' }, () =>
          state.members.set(c.node, c.incarnation),
        );
        return { outcome: 'applied', groupViewId: state.groupViewId, level: state.level, events };
      }
      case 'group-leave': {
        if (g === undefined) return refuse('no-such-group');
        if (g.members.get(c.node) !== c.incarnation) return refuse('duplicate');
        const events: GroupEventBody[] = [];
        this.remove(c.group, g, c.node, c.incarnation, 'left', events);
        return { outcome: 'applied', groupViewId: g.groupViewId, level: g.level, events };
      }
      case 'group-send': {
        if (g === undefined) return refuse('no-such-group');
        if (g.members.get(c.node) !== c.incarnation) return refuse('not-member');
        if (c.groupViewId !== g.groupViewId && this.canary !== 'deliver-to-newcomer') return refuse('view-changed');
        g.seq++;
        retain(g, { groupViewId: g.groupViewId, seq: g.seq, from: c.node, payload: c.payload });
        return {
          outcome: 'applied',
          groupViewId: g.groupViewId,
          events: [],
          delivery: { group: c.group, seq: g.seq, from: c.node, payload: c.payload, members: membersOf(g) },
        };
      }
      case 'barrier': {
        if (g === undefined) return refuse('no-such-group');
        if (g.members.get(c.node) !== c.incarnation) return refuse('not-member');
        if (c.groupViewId !== g.groupViewId) return refuse('view-changed');
        if (g.reached.includes(c.name))
          return { outcome: 'duplicate', groupViewId: g.groupViewId, events: [], barrierReached: true };
        let arrived = g.barriers.get(c.name);
        if (arrived?.has(c.node) === true) return refuse('duplicate');
        if (arrived === undefined) {
          if (g.barriers.size >= GROUP_BARRIERS_PENDING_MAX) return refuse('too-many-barriers');
          arrived = new Set();
          g.barriers.set(c.name, arrived);
        }
        arrived.add(c.node);
        const needed = this.canary === 'barrier-without-all' ? Math.floor(g.members.size / 2) + 1 : g.members.size;
        if (arrived.size < needed)
          return { outcome: 'applied', groupViewId: g.groupViewId, events: [], barrierReached: false };
        g.barriers.delete(c.name);
        g.reached.push(c.name);
        if (g.reached.length > GROUP_BARRIERS_REACHED_KEPT) g.reached.shift();
        return {
          outcome: 'applied',
          groupViewId: g.groupViewId,
          barrierReached: true,
          events: [
            {
              kind: 'barrier',
              payload: { group: c.group, name: c.name, groupViewId: g.groupViewId, outcome: 'reached' },
            },
          ],
        };
      }
      default:
        return assertNever(c, 'group command');
    }
  }

  /**
   * Removes `node` at `incarnation` (or any incarnation older than it when `orOlder`) from every
   * group, because it left the cluster view. Returns the events, groups in name order.
   */
  removeNode(node: NodeId, incarnation: Incarnation, orOlder: boolean): GroupEventBody[] {
    const events: GroupEventBody[] = [];
    for (const name of sortedKeys(this.groups)) {
      const g = defined(this.groups.get(name), 'group');
      const m = g.members.get(node);
      if (m === undefined || (m !== incarnation && !(orOlder && m < incarnation))) continue;
      this.remove(name, g, node, m, 'removed', events);
    }
    return events;
  }

  /**
   * Removes `node` at exactly `incarnation` from `group` (a recovery eviction: the member reported
   * an error or did not answer; docs/recovery.md). Returns the events (none when it is not a member).
   */
  removeMember(group: string, node: NodeId, incarnation: Incarnation): GroupEventBody[] {
    const g = this.groups.get(group);
    const events: GroupEventBody[] = [];
    if (g?.members.get(node) === incarnation) this.remove(group, g, node, incarnation, 'removed', events);
    return events;
  }

  private remove(
    name: string,
    g: GroupState,
    node: NodeId,
    inc: Incarnation,
    kind: GroupChangeKind,
    events: GroupEventBody[],
  ): void {
    this.changeView(name, g, events, { node, incarnation: inc, kind }, () => g.members.delete(node));
    if (g.members.size > 0) return;
    this.groups.delete(name);
    if (g.retained.length === 0) return;
    this.emptied.set(name, { retained: g.retained, retainedBytes: g.retainedBytes });
    for (const oldest of this.emptied.keys()) {
      if (emptiedFits(this.emptied)) break;
      this.emptied.delete(oldest);
    }
  }

  /** Fails the pending barriers, applies `mutate`, and makes the next view with its event. */
  private changeView(
    name: string,
    g: GroupState,
    events: GroupEventBody[],
    change: GroupViewPayload['change'],
    mutate: () => void,
  ): void {
    for (const barrier of sortedKeys(g.barriers))
      events.push({
        kind: 'barrier',
        payload: { group: name, name: barrier, groupViewId: g.groupViewId, outcome: 'view-changed' },
      });
    g.barriers.clear();
    g.reached.length = 0;
    mutate();
    g.memberList = null;
    const prevSeq = g.seq;
    g.groupViewId = ++this.lastViewId;
    g.seq = 0;
    events.push({
      kind: 'group',
      payload: { group: name, groupViewId: g.groupViewId, members: membersOf(g), change, prevSeq },
    });
  }

  // ----------------------------------------------------------------------------------------------
  // Canonical encoding (snapshot and state hash)

  /** Writes the table in canonical order. */
  encode(w: ByteWriter): void {
    w.u64(this.lastViewId).u8(this.groups.size);
    for (const name of sortedKeys(this.groups)) {
      const g = defined(this.groups.get(name), 'group');
      writeName(w, name);
      w.u64(g.groupViewId).u32(g.seq).u8(g.members.size);
      for (const m of membersOf(g)) w.u16(m.node).u64(m.incarnation).u8(m.level);
      w.u8(g.barriers.size);
      for (const barrier of sortedKeys(g.barriers)) {
        writeName(w, barrier);
        const arrived = [...defined(g.barriers.get(barrier), 'barrier')].sort((a, b) => a - b);
        w.u8(arrived.length);
        for (const node of arrived) w.u16(node);
      }
      w.u8(g.reached.length);
      for (const name of g.reached) writeName(w, name);
      writeRetained(w, g.retained);
    }
    this.encodeEmptied(w);
  }

  /** Writes the emptied groups' retained messages, in emptying order (since snapshot format 5). */
  private encodeEmptied(w: ByteWriter): void {
    w.u8(this.emptied.size);
    for (const [name, r] of this.emptied) {
      writeName(w, name);
      writeRetained(w, r.retained);
    }
  }

  /** Reads what `encodeEmptied` wrote into this table, whose groups are read; raises only `DecodeError`. */
  private decodeEmptied(r: ByteReader): void {
    const count = r.u8('emptied group count');
    for (let i = 0; i < count; i++) {
      const name = readName(r, GROUP_NAME_BYTES_MAX, 'emptied group name');
      if (this.groups.has(name) || this.emptied.has(name))
        throw new DecodeError('DECODE_INVALID', `emptied group ${name} is also a group, or listed twice`);
      const { retained, retainedBytes } = readRetained(r, name, this.lastViewId, Number.MAX_SAFE_INTEGER);
      if (retained.length === 0)
        throw new DecodeError('DECODE_INVALID', `emptied group ${name} retains no message (it would not be kept)`);
      this.emptied.set(name, { retained, retainedBytes });
    }
    if (!emptiedFits(this.emptied))
      throw new DecodeError('DECODE_TOO_LARGE', 'the emptied groups keep more messages or bytes than the bounds allow');
  }

  /**
   * Reads what `encode` wrote; raises only `DecodeError`. The group's level is derived from its
   * members' levels: one level in what this build writes; a snapshot written before groups had
   * one level may list several, and the group takes the lowest (so it recovers no later than any
   * of its members asked), which every member then carries.
   */
  static decode(
    r: ByteReader,
    canary: GroupCanary | null = null,
    /** Whether the bytes hold the emptied groups (snapshot format 5 on); before, none were kept. */
    withEmptied = true,
  ): GroupTable {
    const t = new GroupTable(canary);
    t.lastViewId = r.u64('last group view id');
    const count = r.u8('group count');
    if (count > GROUPS_MAX) throw new DecodeError('DECODE_TOO_LARGE', `${count} groups; at most ${GROUPS_MAX}`);
    let prevName: string | null = null;
    for (let i = 0; i < count; i++) {
      const name = readName(r, GROUP_NAME_BYTES_MAX, 'group name');
      if (prevName !== null && name <= prevName)
        throw new DecodeError('DECODE_INVALID', 'groups are not in ascending name order');
      prevName = name;
      const groupViewId = r.u64('group view id');
      if (groupViewId < 1 || groupViewId > t.lastViewId)
        throw new DecodeError('DECODE_RANGE', `group ${name} has view ${groupViewId}, outside 1..${t.lastViewId}`);
      const seq = r.u32('group message seq');
      const memberCount = r.u8('group member count');
      if (memberCount === 0 || memberCount > CLUSTER_NODES_MAX)
        throw new DecodeError('DECODE_RANGE', `group ${name} has ${memberCount} members; 1 to ${CLUSTER_NODES_MAX}`);
      const members = new Map<NodeId, Incarnation>();
      let level = GROUP_LEVEL_MAX;
      let prevNode = 0;
      for (let j = 0; j < memberCount; j++) {
        const node = r.u16('group member') as NodeId;
        if (node <= prevNode)
          throw new DecodeError('DECODE_INVALID', `members of group ${name} are not strictly ascending`);
        prevNode = node;
        const inc = r.u64('member incarnation');
        if (inc < 1) throw new DecodeError('DECODE_RANGE', 'a member incarnation is 0');
        const memberLevel = r.u8('member level');
        if (memberLevel > GROUP_LEVEL_MAX)
          throw new DecodeError('DECODE_RANGE', `level ${memberLevel} above ${GROUP_LEVEL_MAX}`);
        level = Math.min(level, memberLevel);
        members.set(node, makeIncarnation(inc));
      }
      const barrierCount = r.u8('barrier count');
      if (barrierCount > GROUP_BARRIERS_PENDING_MAX)
        throw new DecodeError(
          'DECODE_TOO_LARGE',
          `${barrierCount} pending barriers; at most ${GROUP_BARRIERS_PENDING_MAX}`,
        );
      const barriers = new Map<string, Set<NodeId>>();
      let prevBarrier: string | null = null;
      for (let j = 0; j < barrierCount; j++) {
        const barrier = readName(r, BARRIER_NAME_BYTES_MAX, 'barrier name');
        if (prevBarrier !== null && barrier <= prevBarrier)
          throw new DecodeError('DECODE_INVALID', 'barriers are not in ascending name order');
        prevBarrier = barrier;
        const n = r.u8('barrier arrivals');
        const arrived = new Set<NodeId>();
        for (let k = 0; k < n; k++) {
          const node = r.u16('barrier arrival') as NodeId;
          if (!members.has(node) || arrived.has(node))
            throw new DecodeError(
              'DECODE_INVALID',
              `barrier ${barrier} of group ${name} lists node ${node}, not a member or twice`,
            );
          arrived.add(node);
        }
        if (n === 0 || n >= members.size)
          throw new DecodeError(
            'DECODE_INVALID',
            `barrier ${barrier} of group ${name} has ${n} of ${members.size} arrivals; a pending barrier has some, not all`,
          );
        barriers.set(barrier, arrived);
      }
      const reachedCount = r.u8('reached barrier count');
      if (reachedCount > GROUP_BARRIERS_REACHED_KEPT)
        throw new DecodeError(
          'DECODE_TOO_LARGE',
          `${reachedCount} reached barriers kept; at most ${GROUP_BARRIERS_REACHED_KEPT}`,
        );
      const reached: string[] = [];
      for (let j = 0; j < reachedCount; j++) {
        const barrier = readName(r, BARRIER_NAME_BYTES_MAX, 'reached barrier name');
        if (reached.includes(barrier) || barriers.has(barrier))
          throw new DecodeError(
            'DECODE_INVALID',
            `barrier ${barrier} of group ${name} is listed twice (reached and pending, or reached twice)`,
          );
        reached.push(barrier);
      }
      const { retained, retainedBytes } = readRetained(r, name, groupViewId, seq);
      t.groups.set(name, {
        groupViewId,
        level,
        seq,
        members,
        barriers,
        reached,
        retained,
        retainedBytes,
        memberList: null,
      });
    }
    if (withEmptied) t.decodeEmptied(r);
    return t;
  }
}

function writeRetained(w: ByteWriter, retained: readonly RetainedMessage[]): void {
  w.u16(retained.length);
  for (const m of retained) w.u64(m.groupViewId).u32(m.seq).u16(m.from).lenBytes(m.payload);
}

/** Reads retained messages of group `name`, ordered and no later than `groupViewId`#`seq`. */
function readRetained(
  r: ByteReader,
  name: string,
  groupViewId: number,
  seq: number,
): { retained: RetainedMessage[]; retainedBytes: number } {
  const retainedCount = r.u16('retained message count');
  if (retainedCount > GROUP_RETAINED_MESSAGES_MAX)
    throw new DecodeError(
      'DECODE_TOO_LARGE',
      `${retainedCount} retained messages; at most ${GROUP_RETAINED_MESSAGES_MAX}`,
    );
  const retained: RetainedMessage[] = [];
  let retainedBytes = 0;
  for (let j = 0; j < retainedCount; j++) {
    const mview = r.u64('retained view');
    const mseq = r.u32('retained seq');
    const from = r.u16('retained sender') as NodeId;
    const payload = r.lenBytes(GROUP_RETAINED_BYTES_MAX, 'retained payload').slice();
    const prev = retained.at(-1);
    const ordered = prev === undefined || mview > prev.groupViewId || (mview === prev.groupViewId && mseq > prev.seq);
    if (!ordered || mview > groupViewId || (mview === groupViewId && mseq > seq) || mseq === 0 || from === 0)
      throw new DecodeError(
        'DECODE_INVALID',
        `retained message ${mview}#${mseq} of group ${name} is out of order or beyond ${groupViewId}#${seq}`,
      );
    retainedBytes += payload.length;
    retained.push({ groupViewId: mview, seq: mseq, from, payload });
  }
  if (retainedBytes > GROUP_RETAINED_BYTES_MAX)
    throw new DecodeError(
      'DECODE_TOO_LARGE',
      `group ${name} retains ${retainedBytes} bytes; at most ${GROUP_RETAINED_BYTES_MAX}`,
    );
  return { retained, retainedBytes };
}

/** Whether the emptied groups are within their bounds (count, messages and bytes together). */
function emptiedFits(emptied: ReadonlyMap<string, EmptiedGroup>): boolean {
  let messages = 0;
  let bytes = 0;
  for (const r of emptied.values()) {
    messages += r.retained.length;
    bytes += r.retainedBytes;
  }
  return (
    emptied.size <= GROUPS_EMPTIED_MAX && messages <= GROUPS_EMPTIED_MESSAGES_MAX && bytes <= GROUPS_EMPTIED_BYTES_MAX
  );
}

/** Keeps `m` among the retained messages, dropping the oldest beyond the bounds. */
function retain(g: GroupState, m: RetainedMessage): void {
  g.retained.push(m);
  g.retainedBytes += m.payload.length;
  while (g.retained.length > GROUP_RETAINED_MESSAGES_MAX || g.retainedBytes > GROUP_RETAINED_BYTES_MAX) {
    const oldest = g.retained.shift();
    if (oldest === undefined) break;
    g.retainedBytes -= oldest.payload.length;
  }
}

function membersOf(g: GroupState): readonly GroupMember[] {
  g.memberList ??= sortedKeys(g.members).map((node) => ({
    node,
    incarnation: defined(g.members.get(node), 'member'),
    level: g.level,
  }));
  return g.memberList;
}
