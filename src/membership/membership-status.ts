/**
 * What the membership service shows and refuses: the node status `cohort status` prints, and the
 * manual fence confirmation's checks against this node's applied state (design note section 6).
 */
import { CohortError, err, ok, type Result } from '../lib/errors.js';
import { incarnation as makeIncarnation, type Incarnation, type NodeId } from '../lib/ids.js';
import type { RaftRole } from '../log/index.js';
import type { LocalQuorumStatus } from './local-quorum.js';
import type { MembershipOutput, MembershipStateMachine } from './membership-state-machine.js';
import type { NodeInfo } from './membership-state-machine.js';

/** One member of the view, as `status()` shows it. */
export interface StatusMember {
  readonly nodeId: NodeId;
  readonly name: string;
  readonly incarnation: number;
  readonly state: NodeInfo['status'];
}

/**
 * What `cohort status` shows. `members` are the current view's members; `nodes()` lists every
 * configured node with its state. `totalVotes` are the votes present in the view (corosync's
 * "Total votes"), `quorum` the votes needed, `expectedVotes` the votes expected.
 */
export interface ClusterStatus {
  readonly nodeId: NodeId;
  readonly name: string;
  readonly incarnation: number;
  readonly role: RaftRole;
  readonly leaderId: NodeId | null;
  readonly term: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly viewId: number;
  readonly quorate: boolean;
  readonly quorumReason: LocalQuorumStatus['reason'];
  readonly quorumExplanation: string;
  readonly expectedVotes: number;
  readonly totalVotes: number;
  readonly quorum: number;
  readonly joined: boolean;
  readonly members: readonly StatusMember[];
  /**
   * Leader only: a read would be served from the leader lease now, without a round trip (false
   * while reads are held after a stall). Two nodes never both report true at once.
   */
  readonly leaseValid: boolean;
  /** Reads wait because this node's event loop stalled recently (see the file comment). */
  readonly readsHeld: boolean;
  /** Why this incarnation cannot join (settings differ, or it was removed from the view), or null. */
  readonly joinProblem: string | null;
  /**
   * The Raft configuration this node applied (`voters=(1,2)`; two_node: a fenced peer is a
   * learner, `voters=(1) learners=(2)`, until it has caught up after its return).
   */
  readonly raftConfig: string;
}

/** Stable codes of a refused fence confirmation (checked against this node's applied state). */
export type FenceConfirmErrorCode =
  /** No membership configuration is applied here yet. */
  | 'NOT_CONFIGURED'
  /** The node id is not among the configured nodes. */
  | 'UNKNOWN_NODE'
  /** The node has no pending fence (a member, out, or quarantined with its fence confirmed). */
  | 'FENCE_NOT_PENDING'
  /** The incarnation given is older than the one that needs fencing. */
  | 'INCARNATION_STALE'
  /** The incarnation given was never seen for the node. */
  | 'INCARNATION_UNKNOWN';

/** A fence confirmation refused before anything was proposed; the message says what to do. */
export class FenceConfirmError extends CohortError {
  override readonly name = 'FenceConfirmError';
  constructor(
    override readonly code: FenceConfirmErrorCode,
    message: string,
  ) {
    super(code, message);
  }
}

/** What a confirmed fence did, read from this node's state right after it applied the command. */
export interface FenceConfirmation {
  readonly nodeId: NodeId;
  /** The incarnation confirmed fenced. */
  readonly incarnation: number;
  /** The membership machine's outcome (`applied`, or `stale`/`duplicate` after a race). */
  readonly outcome: MembershipOutput['outcome'];
  /** The node's status afterwards (`member` when a waiting incarnation was admitted). */
  readonly status: NodeInfo['status'];
  /** The incarnation admitted into the view by this confirmation, or null. */
  readonly admitted: number | null;
  /**
   * two_node split: accepted by this node alone, since no commit is possible (the fence race's
   * local path, `src/fencing/two-node-race.ts`): it counts the peer as fenced, runs alone, and
   * records the confirmation in the ledger once it leads. `outcome` is then `applied`.
   */
  readonly local: boolean;
  readonly viewId: number;
}

/** The incarnation a fence confirmation for `node` names, or why it is refused. */
/** The incarnation a fence confirmation for `node` names, or why it is refused. */
export function fenceTarget(
  membership: MembershipStateMachine,
  node: NodeId,
  incarnation: number | null,
): Result<Incarnation, FenceConfirmError> {
  if (membership.configuration() === null)
    return err(
      new FenceConfirmError(
        'NOT_CONFIGURED',
        'the cluster configuration is not applied on this node yet; retry once it is quorate',
      ),
    );
  const rec = membership.nodes().find((n) => n.nodeId === node);
  if (rec === undefined)
    return err(new FenceConfirmError('UNKNOWN_NODE', `node ${node} is not a configured node; see \`cohort nodes\``));
  if (!rec.fencePending) {
    const what =
      rec.status === 'member'
        ? `it is a member (incarnation ${rec.incarnation}); fencing a live member is not a confirmation`
        : `it is ${rec.status}${rec.incarnation > 0 ? ` (incarnation ${rec.incarnation})` : ''}`;
    return err(new FenceConfirmError('FENCE_NOT_PENDING', `node ${node} does not need fencing: ${what}`));
  }
  const inc = incarnation ?? rec.incarnation;
  if (inc < rec.incarnation)
    return err(
      new FenceConfirmError(
        'INCARNATION_STALE',
        `incarnation ${inc} of node ${node} is already settled; the pending fence is for incarnation ${rec.incarnation}`,
      ),
    );
  if (inc > rec.seen)
    return err(
      new FenceConfirmError(
        'INCARNATION_UNKNOWN',
        `node ${node} never ran incarnation ${inc} (newest seen: ${rec.seen}); the pending fence is for incarnation ${rec.incarnation}`,
      ),
    );
  return ok(makeIncarnation(inc));
}
