/**
 * The groups service's client namespace (`client.groups`, docs/groups.md): typed calls of the
 * methods `group-handlers.ts` registers (`groups`, `group.join`, `group.leave`, `group.send`,
 * `group.barrier`, the `group.messages` stream) over any `ApiCaller`, the group handle, and the
 * decoders of their answers, including the payloads of the `group` and `barrier` events the
 * membership service's event stream carries (`decodeGroupEventPayload`,
 * `decodeBarrierEventPayload`).
 *
 * Errors: every call rejects with `CohortClientError` only (the daemon's code, e.g.
 * `VIEW_CHANGED`, `NOT_MEMBER`; the connection's; or `PROTOCOL_ERROR` naming a malformed field).
 *
 * Client code runs in the caller's process, never inside a simulated run: it may use Promises.
 */
import {
  type ApiCaller,
  type ApiData,
  badAnswer,
  callDecoded,
  type CallOptions,
  enumMembers,
  FieldReader,
  streamDecoded,
} from '../api/index.js';
import type { NodeId } from '../lib/ids.js';
import type { BarrierOutcome, GroupChangeKind } from './group-table.js';

/** One member of a group view. */
export interface GroupMemberInfo {
  readonly node: NodeId;
  readonly incarnation: number;
  readonly level: number;
}

/** A group's view (`groupViewId` 0 with no members: the group does not exist). */
export interface GroupViewInfo {
  readonly group: string;
  readonly groupViewId: number;
  readonly members: readonly GroupMemberInfo[];
}

/** How a group view changed. */
export interface GroupChange {
  readonly node: NodeId;
  readonly incarnation: number;
  readonly kind: GroupChangeKind;
}

/** One item of a group's message stream: a delivered message or a view change, in apply order. */
export type GroupItem =
  | {
      readonly kind: 'message';
      readonly groupViewId: number;
      readonly seq: number;
      readonly from: NodeId;
      readonly payload: Uint8Array;
    }
  | {
      readonly kind: 'view';
      readonly groupViewId: number;
      readonly members: readonly GroupMemberInfo[];
      readonly change: GroupChange | null;
    };

/** A group's current view with the group's level (`groups`, `group.join`). */
export interface GroupInfo extends GroupViewInfo {
  /** Set by the join that created the group; a join naming another level is refused `GROUP_LEVEL_MISMATCH`. */
  readonly level: number;
}

/** `group.send`: the view the message was delivered in and its number there. */
export interface GroupSendResult {
  readonly groupViewId: number;
  readonly seq: number;
}

/** The payload of a `group` event: the group's new view and how it changed. */
export type GroupEventPayload = GroupViewInfo & { readonly change: GroupChange };

/** The payload of a `barrier` event: a barrier of a group view completed or was cut short. */
export interface BarrierEventPayload {
  readonly group: string;
  readonly name: string;
  readonly groupViewId: number;
  readonly outcome: BarrierOutcome;
}

/** Options of `groups.join`. */
export interface GroupJoinOptions extends CallOptions {
  /** 0..255; lower levels recover first (default 0). Must be the group's level when it exists (else `GROUP_LEVEL_MISMATCH`). */
  readonly level?: number;
}

/** Service groups of the cluster (docs/groups.md). */
export interface GroupsClient {
  /** Every group's current view, as this node applied it. */
  list(options?: CallOptions): Promise<GroupInfo[]>;
  /**
   * Joins `name` as this node's incarnation (every client of the node shares the membership) and
   * returns a handle. Open `messages()` right after joining to see every message of the new view.
   */
  join(name: string, options?: GroupJoinOptions): Promise<GroupHandle>;
}

/**
 * A joined group. `send` delivers to exactly the members of the view this node has applied, or
 * rejects `VIEW_CHANGED` (nothing delivered); `barrier` resolves once every member of the view
 * reached it, or rejects `VIEW_CHANGED`. `await using` leaves the group.
 */
export interface GroupHandle extends AsyncDisposable {
  readonly name: string;
  /** The group view right after the join. */
  readonly view: GroupInfo;
  send(payload: Uint8Array | string, options?: CallOptions): Promise<GroupSendResult>;
  /** This node's deliveries and the group's view changes, in order, starting with the current view. */
  messages(options?: CallOptions): AsyncIterableIterator<GroupItem> & { cancel(): void };
  barrier(name: string, options?: CallOptions): Promise<{ readonly groupViewId: number }>;
  /** Leaves the group (for every client of this node). Idempotent. */
  leave(options?: CallOptions): Promise<void>;
}

/** The `GroupsClient` over `caller`; holds no state of its own (each handle holds whether it left). */
export function groupsClient(caller: ApiCaller): GroupsClient {
  return {
    list: (options) => callDecoded(caller, 'groups', null, decodeGroups, options),
    join: async (name, options = {}) => {
      const params = { group: name, level: options.level ?? 0 };
      const view = await callDecoded(caller, 'group.join', params, decodeGroupJoin, options);
      return groupHandle(caller, name, view);
    },
  };
}

/** The handle of `name` joined in `view`; `await using` leaves unless the caller is closed by then. */
function groupHandle(caller: ApiCaller, name: string, view: GroupInfo): GroupHandle {
  let left = false;
  const leave = async (options?: CallOptions): Promise<void> => {
    if (left) return;
    await callDecoded(caller, 'group.leave', { group: name }, () => null, options);
    left = true;
  };
  return {
    name,
    view,
    send: (payload, options) => callDecoded(caller, 'group.send', { group: name, payload }, decodeGroupSend, options),
    messages: (options) => streamDecoded(caller, 'group.messages', { group: name }, decodeGroupItem, options),
    barrier: (barrier, options) =>
      callDecoded(caller, 'group.barrier', { group: name, name: barrier }, decodeGroupBarrier, options),
    leave,
    [Symbol.asyncDispose]: async () => {
      if (caller.open) await leave();
    },
  };
}

const GROUP_CHANGE_KINDS = enumMembers<GroupChangeKind>()(['joined', 'left', 'removed']);
const BARRIER_OUTCOMES = enumMembers<BarrierOutcome>()(['reached', 'view-changed']);

function groupMember(m: FieldReader): GroupMemberInfo {
  return { node: m.nodeId('node'), incarnation: m.int('incarnation', 1), level: m.int('level', 0, 255) };
}

function groupChange(c: FieldReader): GroupChange {
  return { node: c.nodeId('node'), incarnation: c.int('incarnation', 1), kind: c.oneOf('kind', GROUP_CHANGE_KINDS) };
}

/** Decodes the payload `p` of a `group` event of the `events` stream. */
export function decodeGroupEventPayload(p: FieldReader): GroupEventPayload {
  return {
    group: p.str('group'),
    groupViewId: p.int('groupViewId'),
    members: p.list('members', groupMember),
    change: groupChange(p.obj('change')),
  };
}

/** Decodes the payload `p` of a `barrier` event of the `events` stream. */
export function decodeBarrierEventPayload(p: FieldReader): BarrierEventPayload {
  return {
    group: p.str('group'),
    name: p.str('name'),
    groupViewId: p.int('groupViewId'),
    outcome: p.oneOf('outcome', BARRIER_OUTCOMES),
  };
}

/** A daemon from before groups had one level sends none: its members carry it. */
function groupInfo(r: FieldReader): GroupInfo {
  const members = r.list('members', groupMember);
  const level = r.raw('level') === undefined ? (members[0]?.level ?? 0) : r.int('level', 0, 255);
  return { group: r.str('group'), groupViewId: r.int('groupViewId', 1), level, members };
}

function decodeGroups(v: ApiData): GroupInfo[] {
  if (!Array.isArray(v)) throw badAnswer('groups', 'answer', 'a list', v);
  return (v as readonly ApiData[]).map((x, i) => groupInfo(FieldReader.of(x, `answer[${i}]`, 'groups')));
}

function decodeGroupJoin(v: ApiData): GroupInfo {
  return groupInfo(FieldReader.of(v, 'answer', 'group.join'));
}

function decodeGroupSend(v: ApiData): GroupSendResult {
  const r = FieldReader.of(v, 'answer', 'group.send');
  return { groupViewId: r.int('groupViewId', 1), seq: r.int('seq', 1) };
}

function decodeGroupBarrier(v: ApiData): { readonly groupViewId: number } {
  return { groupViewId: FieldReader.of(v, 'answer', 'group.barrier').int('groupViewId', 1) };
}

function decodeGroupItem(v: ApiData): GroupItem {
  const r = FieldReader.of(v, 'item', 'group.messages');
  const kind = r.oneOf('kind', ['message', 'view'] as const);
  if (kind === 'message')
    return {
      kind,
      groupViewId: r.int('groupViewId', 1),
      seq: r.int('seq', 1),
      from: r.nodeId('from'),
      payload: r.bytes('payload'),
    };
  const change = r.raw('change');
  return {
    kind,
    groupViewId: r.int('groupViewId'),
    members: r.list('members', groupMember),
    change: change === undefined || change === null ? null : groupChange(r.obj('change')),
  };
}
