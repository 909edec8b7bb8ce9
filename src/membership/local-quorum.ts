/**
 * Local quorum knowledge: is *this node* quorate right now, for `cohort status` and for every
 * layer that must stop granting (locks, volume I/O) the moment it may have been cut off.
 *
 * A committed view says whether the cluster was quorate when it was applied, but a node cut off
 * from the leader keeps applying nothing and would keep reporting its last view. So the local
 * answer also needs fresh proof of contact (design note section 1):
 * - a leader is quorate while its check-quorum lease is valid (a quorum acknowledged it within
 *   the lease);
 * - a follower is quorate while it heard from the current leader within the follower lease
 *   (the timeout model's node lease minus its drift margin, so the follower gives up before the
 *   leader's side can have removed it);
 * - candidates are never quorate (there is no leader to vouch for them);
 * - and in every case the applied view must itself be quorate (wait_for_all, votes present).
 *
 * Pure: the caller passes the Raft status and the elapsed time since the leader was heard.
 */
import { assert, assertNever } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import type { RaftRole } from '../log/index.js';

/** What the local answer is computed from. */
export interface LocalQuorumInput {
  readonly self: NodeId;
  readonly role: RaftRole;
  /** The leader this node knows in the current term, if any. */
  readonly lead: NodeId | null;
  /** Leader only: whether the check-quorum lease is valid now (`RaftStatus.leaseValid`). */
  readonly leaseValid: boolean;
  /** Follower only: ms since the current leader was last heard; null when not in this term. */
  readonly sinceLeaderMs: number | null;
  /** How long a follower trusts the leader's last message: `nodeLeaseMs - driftMarginMs`. */
  readonly followerLeaseMs: number;
  /** The applied view's verdict (`MembershipStateMachine.view()`), or null before one is applied. */
  readonly view: { readonly quorate: boolean; readonly explanation: string } | null;
}

/** The rule that decided. */
export type LocalQuorumReason =
  | 'leader-lease'
  | 'leader-heard'
  | 'electing'
  | 'leader-lease-expired'
  | 'no-leader'
  | 'leader-silent'
  | 'view-not-quorate';

/** The local verdict with a one-line explanation for humans. */
export interface LocalQuorumStatus {
  readonly quorate: boolean;
  readonly reason: LocalQuorumReason;
  readonly explanation: string;
}

function contact(i: LocalQuorumInput): LocalQuorumStatus | null {
  switch (i.role) {
    case 'pre-candidate':
    case 'candidate':
      return {
        quorate: false,
        reason: 'electing',
        explanation: `not quorate: node ${i.self} is campaigning (${i.role}) and no leader vouches for it; wait for an election to finish`,
      };
    case 'leader':
      if (i.leaseValid) return null;
      return {
        quorate: false,
        reason: 'leader-lease-expired',
        explanation: `not quorate: node ${i.self} leads but no quorum acknowledged it within its lease; it may be cut off from the majority`,
      };
    case 'follower':
      if (i.lead === null)
        return {
          quorate: false,
          reason: 'no-leader',
          explanation: `not quorate: node ${i.self} knows no leader in the current term`,
        };
      if (i.sinceLeaderMs === null || i.sinceLeaderMs > i.followerLeaseMs) {
        const heard =
          i.sinceLeaderMs === null ? 'has not heard' : `last heard ${Math.round(i.sinceLeaderMs)} ms ago from`;
        return {
          quorate: false,
          reason: 'leader-silent',
          explanation: `not quorate: node ${i.self} ${heard} leader ${i.lead} (lease ${i.followerLeaseMs} ms); it may have been removed`,
        };
      }
      return null;
    default:
      return assertNever(i.role, 'raft role');
  }
}

/** Computes the local verdict; see the file comment for the rules. */
export function localQuorumStatus(i: LocalQuorumInput): LocalQuorumStatus {
  assert(
    Number.isFinite(i.followerLeaseMs) && i.followerLeaseMs > 0,
    'the follower lease must be a positive number of ms',
  );
  assert(
    i.sinceLeaderMs === null || (Number.isFinite(i.sinceLeaderMs) && i.sinceLeaderMs >= 0),
    'time since the leader was heard must be a non-negative number',
  );
  const lost = contact(i);
  if (lost !== null) return lost;
  if (i.view === null)
    return {
      quorate: false,
      reason: 'view-not-quorate',
      explanation: 'not quorate: no membership view has been applied on this node yet',
    };
  if (!i.view.quorate)
    return {
      quorate: false,
      reason: 'view-not-quorate',
      explanation: `not quorate: the applied view is not (${i.view.explanation})`,
    };
  const how: LocalQuorumReason = i.role === 'leader' ? 'leader-lease' : 'leader-heard';
  const why =
    i.role === 'leader'
      ? 'its leader lease is valid'
      : `it heard leader ${i.lead ?? '?'} ${Math.round(i.sinceLeaderMs ?? 0)} ms ago`;
  return {
    quorate: true,
    reason: how,
    explanation: `quorate: ${why} and the applied view is quorate (${i.view.explanation})`,
  };
}
