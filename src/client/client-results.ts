/**
 * The daemon's own methods' typed results (`status`, `nodes`: `src/node/api-handlers.ts`) and
 * their decoders. Each service's results and decoders sit with its client namespace
 * (`src/kv/kv-client.ts`, `src/groups/group-client.ts`, `src/membership/membership-client.ts`);
 * every decoder reads through `FieldReader` (`src/api/field-reader.ts`), which checks the shape it
 * claims instead of casting and fails with one `PROTOCOL_ERROR` naming the field.
 *
 * The shapes mirror what the daemon answers today (`ClusterStatus`, `NodeInfo`);
 * `cohort-client.test.ts` checks at compile time that no field of `ClusterStatus` is missing.
 */
import { type ApiData, enumMembers, FieldReader } from '../api/index.js';
import type { NodeId } from '../lib/ids.js';
import type { RaftRole } from '../log/index.js';
import type { LocalQuorumReason, MemberRole, NodeStatus } from '../membership/index.js';
import { LOCAL_QUORUM_REASON_VALUES, NODE_STATUS_VALUES } from '../membership/membership-client.js';

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
  /** The Raft configuration this node applied, e.g. `voters=(1,2)` (two_node: a returning peer is a learner first). */
  readonly raftConfig: string;
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

// ------------------------------------------------------------------------------------------------
// Enum members (each list is checked complete against its type)

const RAFT_ROLES = enumMembers<RaftRole>()(['follower', 'pre-candidate', 'candidate', 'leader']);
const MEMBER_ROLES = enumMembers<MemberRole>()(['voter', 'learner', 'witness']);
const LINK_STATES = enumMembers<LinkState>()([
  'self',
  'unknown',
  'idle',
  'connecting',
  'handshaking',
  'open',
  'backoff',
  'closed',
]);

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
    quorumReason: r.oneOf('quorumReason', LOCAL_QUORUM_REASON_VALUES),
    quorumExplanation: r.str('quorumExplanation'),
    expectedVotes: r.int('expectedVotes'),
    totalVotes: r.int('totalVotes'),
    quorum: r.int('quorum'),
    joined: r.bool('joined'),
    members: r.list('members', (m) => ({
      nodeId: m.nodeId('nodeId'),
      name: m.str('name'),
      incarnation: m.int('incarnation'),
      state: m.oneOf('state', NODE_STATUS_VALUES),
    })),
    leaseValid: r.bool('leaseValid'),
    readsHeld: r.bool('readsHeld'),
    joinProblem: r.nullableStr('joinProblem'),
    raftConfig: r.str('raftConfig'),
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
      status: n.oneOf('status', NODE_STATUS_VALUES),
      incarnation: n.int('incarnation'),
      seen: n.int('seen'),
      rejoin: n.int('rejoin'),
      fencePending: n.bool('fencePending'),
      self: n.bool('self'),
      link: n.oneOf('link', LINK_STATES),
    })),
  };
}
