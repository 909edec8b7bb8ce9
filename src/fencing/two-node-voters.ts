/**
 * two_node: who votes in Raft (docs/fencing.md "two_node"). With two voters every commit needs
 * both, so a node that is gone for a while must stop being a voter, and get its vote back when it
 * returns. The leader's fencing service asks `twoNodeVoterStep` on every tick and carries out the
 * answer with `ServiceContext.changeVoter`, one change at a time:
 *
 * - **demote** the peer to a learner once the applied membership says it is `out` with no fence
 *   pending: it left cleanly (it waits for this before it stops: `MembershipService.leave`), or it
 *   was fenced (never one that has not joined yet: a cluster starting up). Until then a peer lost uncleanly is counted by the Raft core after the fence race
 *   (`RaftCore.peerFenced`), which is what lets these commits happen at all.
 * - **demote itself** when this node left cleanly and leads (it hands leadership over once the
 *   change is known: the Raft core's leader removal), so that its peer runs alone; only while
 *   the peer is heard (a peer that is silent, let alone fenced, must not be left the only voter:
 *   the Raft core also refuses any change but the peer's demotion while it counts a fenced peer).
 * - **promote** the peer back to a voter once a newer incarnation of it is a member of the view
 *   again (admitted after its fence, or after its clean leave), so it has caught up on the log
 *   and answers.
 *
 * Nothing while a configuration change is in progress, or when the configuration is not this node
 * and its peer. Pure.
 */
import type { NodeId } from '../lib/ids.js';

/** What the step is decided from. */
export interface TwoNodeVoterInput {
  readonly self: NodeId;
  /** This node's applied membership status (`out`: its clean leave applied). */
  readonly selfStatus: 'member' | 'out' | 'needs-fencing' | 'quarantined';
  /** The other configured node. */
  readonly peer: NodeId;
  /** The peer's applied membership record: its status, whether a fence of it is pending, and whether it ever joined. */
  readonly peerStatus: 'member' | 'out' | 'needs-fencing' | 'quarantined';
  readonly peerJoinedOnce: boolean;
  /** The peer was heard within the failure detector's suspicion threshold. */
  readonly peerHeard: boolean;
  readonly peerFencePending: boolean;
  /** The applied Raft configuration (`RaftFacts`). */
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
  readonly changing: boolean;
}

/** The change to propose, or null. */
export type TwoNodeVoterStep = { readonly kind: 'demote' | 'promote'; readonly node: NodeId } | null;

/** See the file comment. */
export function twoNodeVoterStep(i: TwoNodeVoterInput): TwoNodeVoterStep {
  if (i.changing || !i.voters.includes(i.self)) return null;
  const peerVotes = i.voters.includes(i.peer);
  if (
    peerVotes &&
    i.voters.length === 2 &&
    i.selfStatus === 'member' &&
    i.peerStatus === 'out' &&
    !i.peerFencePending &&
    i.peerJoinedOnce
  )
    return { kind: 'demote', node: i.peer };
  if (peerVotes && i.voters.length === 2 && i.selfStatus === 'out' && i.peerStatus === 'member' && i.peerHeard)
    return { kind: 'demote', node: i.self };
  if (!peerVotes && i.voters.length === 1 && i.learners.includes(i.peer) && i.peerStatus === 'member')
    return { kind: 'promote', node: i.peer };
  return null;
}
