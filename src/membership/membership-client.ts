/**
 * The membership service's client methods (flat on `CohortClient`: `quorum()`, `events()`,
 * `fenceConfirm()`): typed calls of the methods `membership-handlers.ts` registers over any
 * `ApiCaller`, and the decoders of their answers. The `group` and `barrier` events' payloads are
 * the groups service's and decoded by its client (`src/groups/group-client.ts`).
 *
 * Errors: every call rejects with `CohortClientError` only (the daemon's code, e.g. `GAP` for an
 * `events` start that was compacted away; the connection's; or `PROTOCOL_ERROR` naming a
 * malformed field).
 *
 * Client code runs in the caller's process, never inside a simulated run: it may use Promises.
 */
import {
  type ApiCaller,
  type ApiData,
  callDecoded,
  type CallOptions,
  enumMembers,
  FieldReader,
  streamDecoded,
} from '../api/index.js';
import { NODE_ID_MAX, type Incarnation, type LogIndex, type NodeId, type ViewId } from '../lib/ids.js';
import type { ArbitrationReason } from '../quorum/index.js';
import {
  decodeBarrierEventPayload,
  decodeGroupEventPayload,
  type BarrierEventPayload,
  type GroupEventPayload,
} from '../groups/group-client.js';
import type { LocalQuorumReason } from './local-quorum.js';
import type { NodeStatus, QuorumReason, ViewChangeKind } from './membership-event.js';
import type { MembershipOutcome } from './node-record.js';

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

/** `fenceConfirm()` (see docs/daemon.md, `fence.confirm`). */
export interface FenceConfirmResult {
  readonly nodeId: NodeId;
  readonly incarnation: number;
  readonly outcome: MembershipOutcome;
  readonly status: NodeStatus;
  /** The waiting incarnation admitted into the view, or null. */
  readonly admitted: number | null;
  /** two_node split: accepted by this node alone, recorded in the ledger once it leads. */
  readonly local: boolean;
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
  | (EventHeader & { readonly kind: 'group'; readonly payload: GroupEventPayload })
  | (EventHeader & { readonly kind: 'barrier'; readonly payload: BarrierEventPayload })
  | (EventHeader & {
      readonly kind: 'fence';
      /**
       * A fence record of `(node, incarnation)` was opened (`requested`), took an attempt, was
       * closed (`fenced`) or recorded an unfence entry; `details` is the rest as the daemon sent it
       * (`reason`, `attempt`, `proof` or `unfence`: docs/fencing.md).
       */
      readonly payload: {
        readonly node: NodeId;
        readonly incarnation: number;
        readonly what: 'requested' | 'attempt' | 'fenced' | 'unfenced';
        readonly details: ApiData;
      };
    })
  | (EventHeader & {
      readonly kind: 'recovery';
      /** A step of `group`'s recovery round (`opened`, `stopped`, `start-due`, `finished`, ...: docs/recovery.md); `details` is the rest. */
      readonly payload: {
        readonly group: string;
        readonly level: number;
        readonly generation: number;
        readonly step: string;
        readonly details: ApiData;
      };
    })
  | (EventHeader & { readonly kind: 'unknown'; readonly rawKind: string; readonly payload: ApiData });

/** Options of `events()`. */
export interface EventsOptions extends CallOptions {
  /** The first sequence number wanted (default: the oldest retained). */
  readonly fromSeq?: number;
  /** Keep waiting for new events (default true); false ends after the retained ones. */
  readonly follow?: boolean;
}

/** A typed event stream: `for await`, `break` or `cancel()` stops it on the daemon. */
export interface EventStream extends AsyncIterableIterator<ClusterEvent> {
  cancel(): void;
}

/** Options of `fenceConfirm`. */
export interface FenceConfirmOptions extends CallOptions {
  /** The incarnation fenced (default: the one that needs fencing). */
  readonly incarnation?: number;
}

/** The membership service's methods of a client (`CohortClient` extends it). */
export interface MembershipClient {
  /** The local quorum verdict and the view's arbitration. */
  quorum(options?: CallOptions): Promise<QuorumResult>;
  /**
   * The cluster event stream from `fromSeq` (default: the oldest retained), following new events
   * unless `follow: false`. Throws `GAP` when `fromSeq` was compacted away.
   */
  events(options?: EventsOptions): EventStream;
  /** The manual fence agent: confirms `node`'s crashed incarnation was fenced (docs/daemon.md). */
  fenceConfirm(node: number, options?: FenceConfirmOptions): Promise<FenceConfirmResult>;
}

/** The `MembershipClient` over `caller`; holds no state of its own. */
export function membershipClient(caller: ApiCaller): MembershipClient {
  return {
    quorum: (options) => callDecoded(caller, 'quorum', null, decodeQuorum, options),
    events: (options = {}) => {
      const params: ApiData = {
        follow: options.follow ?? true,
        ...(options.fromSeq === undefined ? {} : { fromSeq: options.fromSeq }),
      };
      return streamDecoded(caller, 'events', params, decodeClusterEvent, options);
    },
    fenceConfirm: (node, options = {}) => {
      const params: ApiData = {
        node,
        ...(options.incarnation === undefined ? {} : { incarnation: options.incarnation }),
      };
      return callDecoded(caller, 'fence.confirm', params, decodeFenceConfirm, options);
    },
  };
}

// Enum members, each list checked complete against its type. The first two are exported for the
// daemon's own `status` and `nodes` answers (src/client/client-results.ts), which carry them too.

/** Every `NodeStatus`, for `FieldReader.oneOf`. */
export const NODE_STATUS_VALUES = enumMembers<NodeStatus>()(['out', 'member', 'needs-fencing', 'quarantined']);
/** Every `LocalQuorumReason`, for `FieldReader.oneOf`. */
export const LOCAL_QUORUM_REASON_VALUES = enumMembers<LocalQuorumReason>()([
  'leader-lease',
  'leader-heard',
  'electing',
  'leader-lease-expired',
  'no-leader',
  'leader-silent',
  'view-not-quorate',
]);
const ARBITRATION_REASONS = enumMembers<ArbitrationReason>()([
  'majority',
  'tie-breaker',
  'no-majority',
  'tie-breaker-absent',
  'wait-for-all',
  'two-node-peer-fenced',
  'two-node-awaiting-fence',
]);
const QUORUM_REASONS = enumMembers<QuorumReason>()([
  'not-configured',
  'majority',
  'tie-breaker',
  'no-majority',
  'tie-breaker-absent',
  'wait-for-all',
  'two-node-peer-fenced',
  'two-node-awaiting-fence',
]);
const WAIT_PHASES = enumMembers<WaitForAllPhase>()(['off', 'waiting', 'released']);
const OUTCOMES = enumMembers<MembershipOutcome>()(['applied', 'duplicate', 'stale', 'waiting-for-fence', 'no-change']);
const CHANGE_KINDS = enumMembers<ViewChangeKind>()(['joined', 'left', 'failed', 'replaced', 'quarantined', 'admitted']);

function decodeQuorum(v: ApiData): QuorumResult {
  const r = FieldReader.of(v, 'result', 'quorum');
  const w = r.raw('waitForAll');
  const wait = w === null || w === undefined ? null : r.obj('waitForAll');
  return {
    quorate: r.bool('quorate'),
    reason: r.oneOf('reason', LOCAL_QUORUM_REASON_VALUES),
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

function decodeFenceConfirm(v: ApiData): FenceConfirmResult {
  const r = FieldReader.of(v, 'result', 'fence.confirm');
  return {
    nodeId: r.nodeId('nodeId'),
    incarnation: r.int('incarnation'),
    outcome: r.oneOf('outcome', OUTCOMES),
    status: r.oneOf('status', NODE_STATUS_VALUES),
    admitted: r.nullableInt('admitted'),
    local: r.bool('local'),
    viewId: r.int('viewId'),
  };
}

const FENCE_WHATS = enumMembers<'requested' | 'attempt' | 'fenced' | 'unfenced'>()([
  'requested',
  'attempt',
  'fenced',
  'unfenced',
]);

/** Decodes one item of the `events` stream (not `decodeEvent` of membership-event.ts: that reads the log's bytes). */
function decodeClusterEvent(v: ApiData): ClusterEvent {
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
          from: p.oneOf('from', NODE_STATUS_VALUES),
          to: p.oneOf('to', NODE_STATUS_VALUES),
          cause: p.str('cause'),
        },
      };
    }
    case 'group':
      return { ...head, kind, payload: decodeGroupEventPayload(r.obj('payload')) };
    case 'barrier':
      return { ...head, kind, payload: decodeBarrierEventPayload(r.obj('payload')) };
    case 'fence': {
      const p = r.obj('payload');
      return {
        ...head,
        kind,
        payload: {
          node: p.nodeId('node'),
          incarnation: p.int('incarnation', 1),
          what: p.oneOf('what', FENCE_WHATS),
          details: r.raw('payload') ?? null,
        },
      };
    }
    case 'recovery': {
      const p = r.obj('payload');
      return {
        ...head,
        kind,
        payload: {
          group: p.str('group'),
          level: p.int('level', 0, 255),
          generation: p.int('generation'),
          step: p.str('step'),
          details: r.raw('payload') ?? null,
        },
      };
    }
    default:
      // A kind from a newer daemon: passed through, not an error (the union's `unknown` member).
      return { ...head, kind: 'unknown', rawKind: kind, payload: r.raw('payload') ?? null };
  }
}
