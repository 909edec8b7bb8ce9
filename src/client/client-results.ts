/**
 * The typed results of the client library and the decoders that produce them from the API's
 * plain data. Every decoder checks the shape it claims (types, integer ranges, enum members)
 * instead of casting, and fails with one `CohortClientError('PROTOCOL_ERROR')` naming the field,
 * so a mismatched daemon is a clear error, never a wrong value deep in the caller's code.
 * Unknown extra fields are ignored (docs/api.md: a newer daemon may add optional fields).
 *
 * The shapes mirror what `src/node/api-handlers.ts` answers today (`ClusterStatus`, `NodeInfo`,
 * the quorum verdict, the KV results, `FenceConfirmation`, `MembershipEvent`);
 * `cohort-client.test.ts` checks at compile time that no field of `ClusterStatus` is missing.
 */
import type { ApiData } from '../api/index.js';
import { NODE_ID_MAX, type Incarnation, type LogIndex, type NodeId, type ViewId } from '../lib/ids.js';
import type { RaftRole } from '../log/index.js';
import type {
  LocalQuorumReason,
  MemberRole,
  MembershipOutcome,
  NodeStatus,
  QuorumReason,
  ViewChangeKind,
} from '../membership/index.js';
import type { ArbitrationReason } from '../quorum/index.js';
import type { BarrierOutcome, GroupChangeKind } from '../groups/index.js';
import { CohortClientError } from './client-error.js';

// ------------------------------------------------------------------------------------------------
// Result types

/** One member of the view in `status()`. */
export interface StatusMember {
  readonly nodeId: NodeId;
  readonly name: string;
  readonly incarnation: number;
  readonly state: NodeStatus;
}

/** `status()`: one node's view of the cluster (`ClusterStatus` plus the daemon's facts). */
export interface CohortStatus {
  readonly nodeId: NodeId;
  readonly name: string;
  readonly incarnation: number;
  readonly role: RaftRole;
  readonly leaderId: NodeId | null;
  readonly term: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly viewId: number;
  /** The local verdict: this node may act for the cluster now. */
  readonly quorate: boolean;
  readonly quorumReason: LocalQuorumReason;
  readonly quorumExplanation: string;
  readonly expectedVotes: number;
  /** Votes of the view's members (corosync's "total votes"). */
  readonly totalVotes: number;
  /** Votes needed. */
  readonly quorum: number;
  /** Whether this node's incarnation is in the view. */
  readonly joined: boolean;
  readonly members: readonly StatusMember[];
  /** Leader only: reads are served from the lease now. */
  readonly leaseValid: boolean;
  /** Reads wait after this node's event loop stalled. */
  readonly readsHeld: boolean;
  /** Why this node's incarnation cannot join (settings differ, or it was removed from the view), or null. */
  readonly joinProblem: string | null;
  readonly cluster: string;
  readonly configFingerprint: string;
  readonly uptimeMs: number;
}

/** State of this node's link to a peer: `self`, the transport's link state, or `unknown`. */
export type LinkState = 'self' | 'unknown' | 'idle' | 'connecting' | 'handshaking' | 'open' | 'backoff' | 'closed';

/** One configured node in `nodes()` (`NodeInfo` plus this node's link to it). */
export interface CohortNode {
  readonly nodeId: NodeId;
  readonly name: string;
  readonly address: string;
  readonly votes: number;
  readonly role: MemberRole;
  readonly status: NodeStatus;
  /** The incarnation the status is about (0 if none known). */
  readonly incarnation: number;
  /** The newest incarnation any command named. */
  readonly seen: number;
  /** A newer incarnation waiting for `incarnation`'s fence (0 if none). */
  readonly rejoin: number;
  readonly fencePending: boolean;
  /** This is the node that answered. */
  readonly self: boolean;
  readonly link: LinkState;
}

/** `nodes()`. */
export interface NodesResult {
  readonly nodes: readonly CohortNode[];
}

/** The wait_for_all phase of the view's arbitration. */
export type WaitForAllPhase = 'off' | 'waiting' | 'released';

/** `quorum()`: the local verdict and the view's arbitration. */
export interface QuorumResult {
  readonly quorate: boolean;
  readonly reason: LocalQuorumReason;
  readonly explanation: string;
  readonly viewId: number;
  readonly viewQuorate: boolean;
  /** Null until the cluster configuration is applied. */
  readonly viewReason: ArbitrationReason | null;
  readonly summary: string;
  readonly expectedVotes: number;
  readonly totalVotes: number;
  readonly quorum: number;
  /** Null until configured. */
  readonly waitForAll: { readonly phase: WaitForAllPhase; readonly missing: readonly NodeId[] } | null;
}

/** `kv.get`: the entry with its revisions, or `found: false` (the store's revision either way). */
export type KvGetResult =
  | {
      readonly key: string;
      readonly found: true;
      readonly value: Uint8Array;
      /** The value as UTF-8 text, or null when it is not valid UTF-8. */
      readonly text: string | null;
      /** The store's revision when read. */
      readonly revision: number;
      readonly modRevision: number;
      readonly createRevision: number;
      /** Writes since the key was created (1 after the first put). */
      readonly version: number;
    }
  | { readonly key: string; readonly found: false; readonly revision: number };

/** `kv.put`. */
export interface KvPutResult {
  readonly revision: number;
  readonly modRevision: number;
  readonly version: number;
}

/** `kv.cas`: `succeeded` false means the compare failed; `text` is the value now (null: absent or not UTF-8). */
export interface KvCasResult {
  readonly succeeded: boolean;
  readonly revision: number;
  readonly text: string | null;
}

/** `kv.delete`: `deleted` false when the key was absent. */
export interface KvDeleteResult {
  readonly deleted: boolean;
  readonly revision: number;
}

/** `fenceConfirm()` (see docs/daemon.md, `fence.confirm`). */
export interface FenceConfirmResult {
  readonly nodeId: NodeId;
  readonly incarnation: number;
  readonly outcome: MembershipOutcome;
  readonly status: NodeStatus;
  /** The waiting incarnation admitted into the view, or null. */
  readonly admitted: number | null;
  readonly viewId: number;
}

/** One member of a view in an event. */
export interface EventViewMember {
  readonly node: NodeId;
  readonly incarnation: Incarnation;
}

interface EventHeader {
  /** 1, 2, 3, ... identical on every node. */
  readonly seq: number;
  /** The view in force after the event. */
  readonly viewId: ViewId;
  /** Log index of the command that produced it. */
  readonly index: LogIndex;
}

/**
 * One event of the cluster event stream (`MembershipEvent`). A kind this release does not know
 * (a newer daemon) arrives as `kind: 'unknown'` with the daemon's kind in `rawKind`.
 */
export type ClusterEvent =
  | (EventHeader & {
      readonly kind: 'view';
      readonly payload: {
        readonly members: readonly EventViewMember[];
        readonly quorate: boolean;
        readonly reason: QuorumReason;
        readonly explanation: string;
        readonly change: {
          readonly node: NodeId;
          readonly incarnation: Incarnation;
          readonly kind: ViewChangeKind;
          readonly cause: string;
        };
      };
    })
  | (EventHeader & {
      readonly kind: 'quorum';
      readonly payload: { readonly quorate: boolean; readonly reason: QuorumReason; readonly explanation: string };
    })
  | (EventHeader & {
      readonly kind: 'node';
      readonly payload: {
        readonly node: NodeId;
        readonly incarnation: number;
        readonly from: NodeStatus;
        readonly to: NodeStatus;
        readonly cause: string;
      };
    })
  | (EventHeader & { readonly kind: 'group'; readonly payload: GroupViewInfo & { readonly change: GroupChange } })
  | (EventHeader & {
      readonly kind: 'barrier';
      readonly payload: {
        readonly group: string;
        readonly name: string;
        readonly groupViewId: number;
        readonly outcome: BarrierOutcome;
      };
    })
  | (EventHeader & { readonly kind: 'unknown'; readonly rawKind: string; readonly payload: ApiData });

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

/** `group.send`: the view the message was delivered in and its number there. */
export interface GroupSendResult {
  readonly groupViewId: number;
  readonly seq: number;
}

// ------------------------------------------------------------------------------------------------
// Enum members (each list is checked complete against its type below)

/** A list of `T`'s members that fails to compile when one is missing. */
type Complete<T, L extends readonly T[]> = [Exclude<T, L[number]>] extends [never] ? L : never;
function members<T>() {
  return <const L extends readonly T[]>(list: Complete<T, L>): readonly T[] => list;
}

const RAFT_ROLES = members<RaftRole>()(['follower', 'pre-candidate', 'candidate', 'leader']);
const LOCAL_REASONS = members<LocalQuorumReason>()([
  'leader-lease',
  'leader-heard',
  'electing',
  'leader-lease-expired',
  'no-leader',
  'leader-silent',
  'view-not-quorate',
]);
const NODE_STATUSES = members<NodeStatus>()(['out', 'member', 'needs-fencing', 'quarantined']);
const MEMBER_ROLES = members<MemberRole>()(['voter', 'learner', 'witness']);
const LINK_STATES = members<LinkState>()([
  'self',
  'unknown',
  'idle',
  'connecting',
  'handshaking',
  'open',
  'backoff',
  'closed',
]);
const ARBITRATION_REASONS = members<ArbitrationReason>()([
  'majority',
  'tie-breaker',
  'no-majority',
  'tie-breaker-absent',
  'wait-for-all',
  'two-node-peer-fenced',
  'two-node-awaiting-fence',
]);
const QUORUM_REASONS = members<QuorumReason>()([
  'not-configured',
  'majority',
  'tie-breaker',
  'no-majority',
  'tie-breaker-absent',
  'wait-for-all',
  'two-node-peer-fenced',
  'two-node-awaiting-fence',
]);
const WAIT_PHASES = members<WaitForAllPhase>()(['off', 'waiting', 'released']);
const OUTCOMES = members<MembershipOutcome>()(['applied', 'duplicate', 'stale', 'waiting-for-fence', 'no-change']);
const CHANGE_KINDS = members<ViewChangeKind>()(['joined', 'left', 'failed', 'replaced', 'quarantined', 'admitted']);
const GROUP_CHANGE_KINDS = members<GroupChangeKind>()(['joined', 'left', 'removed']);
const BARRIER_OUTCOMES = members<BarrierOutcome>()(['reached', 'view-changed']);

// ------------------------------------------------------------------------------------------------
// Reading plain data

type Obj = Readonly<Record<string, ApiData>>;

function isObj(v: ApiData | undefined): v is Obj {
  return v !== null && v !== undefined && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function show(v: ApiData | undefined): string {
  if (v === undefined) return 'nothing';
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  const text = JSON.stringify(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Reads the fields of one map; every failure names the method and the field path. */
class FieldReader {
  constructor(
    private readonly o: Obj,
    readonly path: string,
    private readonly method: string,
  ) {}

  static of(v: ApiData | undefined, path: string, method: string): FieldReader {
    if (!isObj(v)) throw badAnswer(method, path, 'a map', v);
    return new FieldReader(v, path, method);
  }

  private fail(name: string, expected: string): never {
    throw badAnswer(this.method, `${this.path}.${name}`, expected, this.o[name]);
  }

  raw(name: string): ApiData | undefined {
    return this.o[name];
  }

  int(name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.o[name];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
      this.fail(name, `an integer in [${min}, ${max}]`);
    return v;
  }

  nodeId(name: string): NodeId {
    return this.int(name, 1, NODE_ID_MAX) as NodeId;
  }

  nullableNodeId(name: string): NodeId | null {
    return this.o[name] === null || this.o[name] === undefined ? null : this.nodeId(name);
  }

  nullableInt(name: string): number | null {
    return this.o[name] === null || this.o[name] === undefined ? null : this.int(name);
  }

  str(name: string): string {
    const v = this.o[name];
    if (typeof v !== 'string') this.fail(name, 'a string');
    return v;
  }

  nullableStr(name: string): string | null {
    return this.o[name] === null || this.o[name] === undefined ? null : this.str(name);
  }

  bool(name: string): boolean {
    const v = this.o[name];
    if (typeof v !== 'boolean') this.fail(name, 'true or false');
    return v;
  }

  bytes(name: string): Uint8Array {
    const v = this.o[name];
    if (!(v instanceof Uint8Array)) this.fail(name, 'bytes');
    return v;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[]): T {
    const v = this.o[name];
    const hit = allowed.find((a) => a === v);
    if (hit === undefined) this.fail(name, `one of ${allowed.join(', ')}`);
    return hit;
  }

  obj(name: string): FieldReader {
    return FieldReader.of(this.o[name], `${this.path}.${name}`, this.method);
  }

  list<T>(name: string, item: (r: FieldReader) => T): T[] {
    const v = this.o[name];
    if (!Array.isArray(v)) this.fail(name, 'a list');
    return (v as readonly ApiData[]).map((x, i) => item(FieldReader.of(x, `${this.path}.${name}[${i}]`, this.method)));
  }

  intList(name: string, min: number, max: number): number[] {
    const v = this.o[name];
    if (
      !Array.isArray(v) ||
      !(v as readonly ApiData[]).every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= min && x <= max)
    )
      this.fail(name, `a list of integers in [${min}, ${max}]`);
    return [...(v as readonly number[])];
  }
}

function badAnswer(method: string, path: string, expected: string, got: ApiData | undefined): CohortClientError {
  return new CohortClientError(
    'PROTOCOL_ERROR',
    `${method}: the daemon's answer has ${path} = ${show(got)}, expected ${expected}; is the client of the same release as the daemon?`,
  );
}

// ------------------------------------------------------------------------------------------------
// Decoders

/** Decodes a `status` answer. */
export function decodeStatus(v: ApiData): CohortStatus {
  const r = FieldReader.of(v, 'result', 'status');
  return {
    nodeId: r.nodeId('nodeId'),
    name: r.str('name'),
    incarnation: r.int('incarnation'),
    role: r.oneOf('role', RAFT_ROLES),
    leaderId: r.nullableNodeId('leaderId'),
    term: r.int('term'),
    commitIndex: r.int('commitIndex'),
    appliedIndex: r.int('appliedIndex'),
    viewId: r.int('viewId'),
    quorate: r.bool('quorate'),
    quorumReason: r.oneOf('quorumReason', LOCAL_REASONS),
    quorumExplanation: r.str('quorumExplanation'),
    expectedVotes: r.int('expectedVotes'),
    totalVotes: r.int('totalVotes'),
    quorum: r.int('quorum'),
    joined: r.bool('joined'),
    members: r.list('members', (m) => ({
      nodeId: m.nodeId('nodeId'),
      name: m.str('name'),
      incarnation: m.int('incarnation'),
      state: m.oneOf('state', NODE_STATUSES),
    })),
    leaseValid: r.bool('leaseValid'),
    readsHeld: r.bool('readsHeld'),
    joinProblem: r.nullableStr('joinProblem'),
    cluster: r.str('cluster'),
    configFingerprint: r.str('configFingerprint'),
    uptimeMs: r.int('uptimeMs'),
  };
}

/** Decodes a `nodes` answer. */
export function decodeNodes(v: ApiData): NodesResult {
  const r = FieldReader.of(v, 'result', 'nodes');
  return {
    nodes: r.list('nodes', (n) => ({
      nodeId: n.nodeId('nodeId'),
      name: n.str('name'),
      address: n.str('address'),
      votes: n.int('votes'),
      role: n.oneOf('role', MEMBER_ROLES),
      status: n.oneOf('status', NODE_STATUSES),
      incarnation: n.int('incarnation'),
      seen: n.int('seen'),
      rejoin: n.int('rejoin'),
      fencePending: n.bool('fencePending'),
      self: n.bool('self'),
      link: n.oneOf('link', LINK_STATES),
    })),
  };
}

/** Decodes a `quorum` answer. */
export function decodeQuorum(v: ApiData): QuorumResult {
  const r = FieldReader.of(v, 'result', 'quorum');
  const w = r.raw('waitForAll');
  const wait = w === null || w === undefined ? null : r.obj('waitForAll');
  return {
    quorate: r.bool('quorate'),
    reason: r.oneOf('reason', LOCAL_REASONS),
    explanation: r.str('explanation'),
    viewId: r.int('viewId'),
    viewQuorate: r.bool('viewQuorate'),
    viewReason:
      r.raw('viewReason') === null || r.raw('viewReason') === undefined
        ? null
        : r.oneOf('viewReason', ARBITRATION_REASONS),
    summary: r.str('summary'),
    expectedVotes: r.int('expectedVotes'),
    totalVotes: r.int('totalVotes'),
    quorum: r.int('quorum'),
    waitForAll:
      wait === null
        ? null
        : { phase: wait.oneOf('phase', WAIT_PHASES), missing: wait.intList('missing', 1, NODE_ID_MAX) as NodeId[] },
  };
}

/** Decodes a `kv.get` answer. */
export function decodeKvGet(v: ApiData): KvGetResult {
  const r = FieldReader.of(v, 'result', 'kv.get');
  if (!r.bool('found')) return { key: r.str('key'), found: false, revision: r.int('revision') };
  return {
    key: r.str('key'),
    found: true,
    value: r.bytes('value'),
    text: r.nullableStr('text'),
    revision: r.int('revision'),
    modRevision: r.int('modRevision'),
    createRevision: r.int('createRevision'),
    version: r.int('version'),
  };
}

/** Decodes a `kv.put` answer. */
export function decodeKvPut(v: ApiData): KvPutResult {
  const r = FieldReader.of(v, 'result', 'kv.put');
  return { revision: r.int('revision'), modRevision: r.int('modRevision'), version: r.int('version') };
}

/** Decodes a `kv.cas` answer. */
export function decodeKvCas(v: ApiData): KvCasResult {
  const r = FieldReader.of(v, 'result', 'kv.cas');
  return { succeeded: r.bool('succeeded'), revision: r.int('revision'), text: r.nullableStr('text') };
}

/** Decodes a `kv.delete` answer. */
export function decodeKvDelete(v: ApiData): KvDeleteResult {
  const r = FieldReader.of(v, 'result', 'kv.delete');
  return { deleted: r.bool('deleted'), revision: r.int('revision') };
}

/** Decodes a `fence.confirm` answer. */
export function decodeFenceConfirm(v: ApiData): FenceConfirmResult {
  const r = FieldReader.of(v, 'result', 'fence.confirm');
  return {
    nodeId: r.nodeId('nodeId'),
    incarnation: r.int('incarnation'),
    outcome: r.oneOf('outcome', OUTCOMES),
    status: r.oneOf('status', NODE_STATUSES),
    admitted: r.nullableInt('admitted'),
    viewId: r.int('viewId'),
  };
}

/** Decodes one item of the `events` stream. */
export function decodeEvent(v: ApiData): ClusterEvent {
  const r = FieldReader.of(v, 'item', 'events');
  const head = { seq: r.int('seq', 1), viewId: r.int('viewId') as ViewId, index: r.int('index') as LogIndex };
  const kind = r.str('kind');
  switch (kind) {
    case 'view': {
      const p = r.obj('payload');
      const c = p.obj('change');
      return {
        ...head,
        kind,
        payload: {
          members: p.list('members', (m) => ({
            node: m.nodeId('node'),
            incarnation: m.int('incarnation') as Incarnation,
          })),
          quorate: p.bool('quorate'),
          reason: p.oneOf('reason', QUORUM_REASONS),
          explanation: p.str('explanation'),
          change: {
            node: c.nodeId('node'),
            incarnation: c.int('incarnation') as Incarnation,
            kind: c.oneOf('kind', CHANGE_KINDS),
            cause: c.str('cause'),
          },
        },
      };
    }
    case 'quorum': {
      const p = r.obj('payload');
      return {
        ...head,
        kind,
        payload: {
          quorate: p.bool('quorate'),
          reason: p.oneOf('reason', QUORUM_REASONS),
          explanation: p.str('explanation'),
        },
      };
    }
    case 'node': {
      const p = r.obj('payload');
      return {
        ...head,
        kind,
        payload: {
          node: p.nodeId('node'),
          incarnation: p.int('incarnation'),
          from: p.oneOf('from', NODE_STATUSES),
          to: p.oneOf('to', NODE_STATUSES),
          cause: p.str('cause'),
        },
      };
    }
    case 'group': {
      const p = r.obj('payload');
      return {
        ...head,
        kind,
        payload: {
          group: p.str('group'),
          groupViewId: p.int('groupViewId'),
          members: p.list('members', groupMember),
          change: groupChange(p.obj('change')),
        },
      };
    }
    case 'barrier': {
      const p = r.obj('payload');
      return {
        ...head,
        kind,
        payload: {
          group: p.str('group'),
          name: p.str('name'),
          groupViewId: p.int('groupViewId'),
          outcome: p.oneOf('outcome', BARRIER_OUTCOMES),
        },
      };
    }
    default:
      return { ...head, kind: 'unknown', rawKind: kind, payload: r.raw('payload') ?? null };
  }
}

function groupMember(m: FieldReader): GroupMemberInfo {
  return { node: m.nodeId('node'), incarnation: m.int('incarnation', 1), level: m.int('level', 0, 255) };
}

function groupChange(c: FieldReader): GroupChange {
  return { node: c.nodeId('node'), incarnation: c.int('incarnation', 1), kind: c.oneOf('kind', GROUP_CHANGE_KINDS) };
}

/** Decodes a `groups` answer. */
export function decodeGroups(v: ApiData): GroupViewInfo[] {
  if (!Array.isArray(v)) throw badAnswer('groups', 'answer', 'a list', v);
  return (v as readonly ApiData[]).map((x, i) => {
    const r = FieldReader.of(x, `answer[${i}]`, 'groups');
    return { group: r.str('group'), groupViewId: r.int('viewId', 1), members: r.list('members', groupMember) };
  });
}

/** Decodes a `group.join` answer (the group's view). */
export function decodeGroupJoin(v: ApiData): GroupViewInfo {
  const r = FieldReader.of(v, 'answer', 'group.join');
  return { group: r.str('group'), groupViewId: r.int('viewId', 1), members: r.list('members', groupMember) };
}

/** Decodes a `group.send` answer. */
export function decodeGroupSend(v: ApiData): GroupSendResult {
  const r = FieldReader.of(v, 'answer', 'group.send');
  return { groupViewId: r.int('groupViewId', 1), seq: r.int('seq', 1) };
}

/** Decodes a `group.barrier` answer. */
export function decodeGroupBarrier(v: ApiData): { readonly groupViewId: number } {
  return { groupViewId: FieldReader.of(v, 'answer', 'group.barrier').int('groupViewId', 1) };
}

/** Decodes one item of the `group.messages` stream. */
export function decodeGroupItem(v: ApiData): GroupItem {
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
