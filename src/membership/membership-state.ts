/**
 * The membership state machine's state and what is derived from it (the view's members, the
 * quorum arbitration), shared by the machine (`membership-state-machine.ts`) and its canonical
 * bytes (`membership-snapshot.ts`). Pure: no clock, no I/O.
 */
import {
  arbitrate,
  initialWaitForAll,
  type Arbitration,
  type NodeVoteSpec,
  type QuorumConfig,
  type VotequorumOptions,
  type WaitForAllState,
} from '../quorum/index.js';
import {
  incarnation as makeIncarnation,
  logIndex,
  term as makeTerm,
  type LogIndex,
  type NodeId,
  type Term,
} from '../lib/ids.js';
import { GROUP_CANARIES, GroupTable, type GroupCanary } from '../groups/index.js';
import { FenceLedger } from '../fencing/index.js';
import { RECOVERY_CANARIES, RecoveryTable, type RecoveryCanary } from '../recovery/index.js';
import type { MemberNodeSpec } from './membership-command.js';
import {
  clipText,
  EVENT_EXPLANATION_BYTES_MAX,
  EventLog,
  type QuorumReason,
  type ViewMember,
} from './membership-event.js';
import type { NodeRecord } from './node-record.js';

/** The committed configuration. */
export interface Configuration {
  /** Strictly ascending by id. */
  readonly nodes: readonly MemberNodeSpec[];
  readonly options: VotequorumOptions;
  readonly quorum: QuorumConfig;
  /** The tracked highest expected votes (expected_votes_tracking). */
  readonly highestExpected: number;
  /** The cluster-wide settings fingerprint joins must match ('' when none was given). */
  readonly fingerprint: string;
}

/** The whole mutable state; replaced as one object by `restore`, so a restore is all or nothing. */
export interface MembershipState {
  config: Configuration | null;
  /** One record per configured node. */
  records: Map<NodeId, NodeRecord>;
  viewId: number;
  waitForAll: WaitForAllState;
  events: EventLog;
  appliedIndex: LogIndex;
  appliedTerm: Term;
  /** The service groups (their views change with the cluster view; see `src/groups`). */
  groups: GroupTable;
  /**
   * The fence ledger: one record per incarnation removed uncleanly (see `src/fencing`). A node
   * record with `fencePending` has exactly one pending ledger record, for its `incarnation`, and
   * every pending ledger record belongs to such a node record (checked on restore).
   */
  fences: FenceLedger;
  /**
   * The recovery table: one round per service group of level 1 and up (see `src/recovery`),
   * driven in the same apply as the membership and group changes that open and restart its
   * rounds. Its records agree with the group views (`RecoveryTable.checkAgainst`, on restore).
   */
  recovery: RecoveryTable;
  /** Derived from the above by `recompute`; null until configured. */
  arbitration: Arbitration | null;
  /** A planted bug (simulator only); not part of the state's bytes. */
  readonly canary: MembershipCanary | null;
}

/** The state of a machine that has applied nothing. */
export function emptyState(canary: MembershipCanary | null): MembershipState {
  const groupCanary = GROUP_CANARIES.find((c) => c === canary) ?? null;
  return {
    config: null,
    records: new Map(),
    viewId: 0,
    waitForAll: { phase: 'off' },
    events: new EventLog(),
    appliedIndex: logIndex(0),
    appliedTerm: makeTerm(0),
    groups: new GroupTable(groupCanary),
    fences: new FenceLedger(),
    recovery: new RecoveryTable(recoveryCanaryOf(canary)),
    arbitration: null,
    canary,
  };
}

/**
 * Planted bugs the simulator's checkers must catch (never set in production):
 * `quorate-without-quorum` flags every view quorate; `skip-view-bump` keeps the view id when a
 * member leaves or fails (a node with it disagrees with the others about view ids); the group
 * table's canaries (`GroupCanary`), the recovery table's (`RecoveryCanary`) and the fence ledger's
 * (`FenceCanary`).
 */
export type MembershipCanary = 'quorate-without-quorum' | 'skip-view-bump' | GroupCanary | RecoveryCanary | FenceCanary;

/**
 * Planted fencing bugs (simulator only), in the membership machine:
 * - `fence-twice`: a `fenced` of an incarnation whose record is already closed closes it again (a
 *   second `fence` event `fenced`, at the duplicate's log index); the proposers (the executor and
 *   `fenceConfirm`) also propose every `fenced` twice, so the duplicate reaches the log;
 * - `admit-before-fence`: a join of a newer incarnation is admitted at once while the previous
 *   incarnation's fence is (or becomes) pending: the ledger keeps the old record open;
 * - `fence-clean-leave`: a clean leave of a member opens a fence record for its incarnation.
 */
export type FenceCanary = 'fence-twice' | 'admit-before-fence' | 'fence-clean-leave';

/** Every fencing canary name. */
export const FENCE_CANARIES: readonly FenceCanary[] = ['fence-twice', 'admit-before-fence', 'fence-clean-leave'];

/** Every membership canary name. */
export const MEMBERSHIP_CANARIES: readonly MembershipCanary[] = [
  'quorate-without-quorum',
  'skip-view-bump',
  ...GROUP_CANARIES,
  ...RECOVERY_CANARIES,
  ...FENCE_CANARIES,
];

/** The recovery table's part of a membership canary (null: none). */
export function recoveryCanaryOf(canary: MembershipCanary | null): RecoveryCanary | null {
  return RECOVERY_CANARIES.find((c) => c === canary) ?? null;
}

/** The view's members: the `member` records, ascending by node id. */
export function membersOf(records: ReadonlyMap<NodeId, NodeRecord>): ViewMember[] {
  const out: ViewMember[] = [];
  for (const [node, rec] of records)
    if (rec.status === 'member') out.push({ node, incarnation: makeIncarnation(rec.incarnation) });
  return out.sort((a, b) => a.node - b.node);
}

/** The vote specs `src/quorum` builds the configuration from. */
export function voteSpecs(nodes: readonly MemberNodeSpec[]): NodeVoteSpec[] {
  return nodes.map((n) => ({ nodeId: n.nodeId, votes: n.votes, role: n.role === 'witness' ? 'witness' : 'data' }));
}

/** Nodes that two_node may treat as safely gone: out, or quarantined with no fence pending. */
export function noFencePending(records: ReadonlyMap<NodeId, NodeRecord>): Set<NodeId> {
  const out = new Set<NodeId>();
  for (const [node, rec] of records)
    if (rec.status === 'out' || (rec.status === 'quarantined' && !rec.fencePending)) out.add(node);
  return out;
}

/** The quorum arbitration of the current members (null until configured). */
export function arbitrationOf(s: MembershipState): Arbitration | null {
  if (s.config === null) return null;
  const present = new Set(membersOf(s.records).map((m) => m.node));
  const a = arbitrate({
    config: { incoming: s.config.quorum },
    present,
    waitForAll: s.waitForAll,
    twoNode: { enabled: s.config.options.twoNode, fencedPeers: noFencePending(s.records) },
  });
  return s.canary === 'quorate-without-quorum' ? { ...a, quorate: true } : a;
}

/** The quorate flag, its reason and its clipped explanation (for views and events). */
export function quorumSummary(a: Arbitration | null): { quorate: boolean; reason: QuorumReason; explanation: string } {
  if (a === null)
    return {
      quorate: false,
      reason: 'not-configured',
      explanation: 'not quorate: no configuration has been committed yet',
    };
  return { quorate: a.quorate, reason: a.reason, explanation: clipText(a.summary, EVENT_EXPLANATION_BYTES_MAX) };
}

/** wait_for_all after a configuration change (see docs/membership.md). */
export function waitForAllAfterConfigure(
  previous: WaitForAllState,
  wasConfigured: boolean,
  wasQuorate: boolean,
  enabled: boolean,
): WaitForAllState {
  if (!enabled) return { phase: 'off' };
  if (!wasConfigured) return initialWaitForAll(true);
  if (previous.phase !== 'off') return previous;
  // Turning the option on in a running cluster must not take quorum away from a quorate view.
  return wasQuorate ? { phase: 'released', how: 'joined-quorate-cluster' } : { phase: 'waiting' };
}
