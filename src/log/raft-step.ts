/**
 * Role transitions and the per-role tick and step functions (etcd's `becomeX`, `tickElection` /
 * `tickHeartbeat` and `stepLeader` / `stepCandidate` / `stepFollower`).
 *
 * Rules: every message is first checked against the term (`stepMessage`): a higher term makes
 * this node a follower (unless a vote request is ignored for leader stickiness, or it is a
 * pre-vote, which never moves a term), a lower term is answered only where that helps a stale
 * node learn the newer term, and vote requests are handled the same way in every role. Then the
 * role decides: a leader handles acknowledgements and read requests; a (pre-)candidate counts
 * votes and yields to a leader of its term; a follower accepts entries, heartbeats and snapshots
 * from its leader. A message a role does not expect is dropped, never half-handled; two leaders
 * in one term assert (only a planted canary may cause it). Role changes go through `reset`,
 * which clears every per-term field in one place.
 */
import { assert, assertNever } from '../lib/assert.js';
import { term as toTerm, type LogIndex, type NodeId, type Term } from '../lib/ids.js';
import { RAFT_READ_INDEX_PENDING_MAX } from '../constants.js';
import { hasQuorum } from '../quorum/index.js';
import { jointQuorumConfig } from './cluster-config.js';
import type { RaftMessage } from './raft-message.js';
import type { RaftState } from './raft-state.js';
import { handleVoteRequest, learnCommit, poll, startCampaign, stepHigherTerm, stepLowerTerm } from './election.js';
import { appendEntry, handleAppend, handleAppendResponse, handleHeartbeat } from './replication.js';
import { handleSnapshot, retryStaleSnapshots } from './snapshot-transfer.js';
import { bcastHeartbeat, handleHeartbeatResponse, handleReadIndexRequest, rejectReadIndex } from './read-index.js';
import { maybeAutoLeave, maybeHandOver } from './conf-change.js';
import { quorumConfigs, syncProgress } from './quorum-configs.js';

/** Feeds one message from a peer (already validated by `validateRaftMessage`). */
export function stepMessage(s: RaftState, m: RaftMessage): void {
  if (m.to !== s.id) {
    s.traceEvent('drop-misaddressed', { type: m.type, from: m.from, to: m.to });
    return;
  }
  if ((m.type === 'MsgVoteResp' || m.type === 'MsgPreVoteResp') && m.commitHint !== undefined)
    learnCommit(s, m.from, m.commitHint.index, m.commitHint.term);
  if (m.term > s.term) {
    if (!stepHigherTerm(s, m)) return;
  } else if (m.term < s.term) {
    stepLowerTerm(s, m);
    return;
  }
  // two_node: the fenced peer takes part again (a restarted incarnation): it counts as itself now.
  if (m.from === s.fencedPeer) peerBack(s, m.type);
  if (m.type === 'MsgVote' || m.type === 'MsgPreVote') {
    handleVoteRequest(s, m);
    return;
  }
  switch (s.role) {
    case 'leader':
      stepLeader(s, m);
      return;
    case 'candidate':
    case 'pre-candidate':
      stepCandidate(s, m);
      return;
    case 'follower':
      stepFollower(s, m);
      return;
    default:
      assertNever(s.role, 'role');
  }
}

function reset(s: RaftState, t: Term): void {
  if (t !== s.term) {
    assert(t > s.term, `term must not go back (${s.term} -> ${t})`);
    s.term = t;
    s.vote = null;
  }
  s.lead = null;
  s.deferredCampaign = null;
  s.electionElapsed = 0;
  s.heartbeatElapsed = 0;
  s.resetRandomizedElectionTimeout();
  s.leadTransferee = null;
  s.transferElapsed = 0;
  s.votes = new Map();
  s.progress = new Map();
  s.pendingReads = [];
  s.heartbeatRound = 0;
  s.roundSentTick = new Map();
  s.roundNeeded = false;
  s.leaseUntilTick = 0;
  s.leaseRevoked = false;
  s.appendPending = false;
  s.uncommittedBytes = 0;
  s.leaving = null;
}

/** Follows `lead` (null: unknown) in term `t` (never lower than the current one); clears per-term state. */
export function becomeFollower(s: RaftState, t: Term, lead: NodeId | null): void {
  reset(s, t);
  s.role = 'follower';
  s.lead = lead;
  s.traceEvent('become-follower');
}

/** two_node: a message (`type`) came from the fenced peer: it counts as itself again. */
function peerBack(s: RaftState, type: string): void {
  s.traceEvent('fenced-peer-back', { peer: s.fencedPeer, type });
  s.fencedPeer = null;
}

/** Starts a pre-vote: changes neither term nor vote, so a node that cannot win disturbs nobody. */
export function becomePreCandidate(s: RaftState): void {
  assert(s.role !== 'leader', 'a leader cannot become a pre-candidate');
  // Pre-vote changes neither term nor vote: a node that cannot win disturbs nobody.
  s.votes = new Map();
  s.lead = null;
  s.role = 'pre-candidate';
  s.traceEvent('become-pre-candidate');
}

/** Starts an election: next term, a vote for itself (counted once durable, see `startCampaign`). */
export function becomeCandidate(s: RaftState): void {
  assert(s.role !== 'leader', 'a leader cannot become a candidate');
  reset(s, toTerm(s.term + 1));
  s.vote = s.id;
  s.role = 'candidate';
  s.traceEvent('become-candidate');
}

/** A candidate that won: tracks progress of every counted member and appends an empty entry of its term. */
export function becomeLeader(s: RaftState): void {
  assert(s.role === 'candidate', `only a candidate becomes leader (was ${s.role})`);
  reset(s, s.term);
  s.role = 'leader';
  s.lead = s.id;
  syncProgress(s);
  // A configuration entry may sit uncommitted in our log; never stack a second one on it.
  s.pendingConfIndex = s.log.lastIndex();
  appendEntry(s, { type: 'normal', data: new Uint8Array(0) });
  s.traceEvent('become-leader');
}

/**
 * Leader tick: transfer timeout, check-quorum (steps down without a quorum), snapshot retries,
 * auto-leave, heartbeats, hand-over.
 */
export function tickLeader(s: RaftState): void {
  s.heartbeatElapsed++;
  s.electionElapsed++;
  for (const pr of s.progress.values()) pr.stateTicks++;
  if (s.leaving !== null) s.leaving.timeoutNowElapsed++;
  if (s.leadTransferee !== null && ++s.transferElapsed >= s.cfg.electionTicks) {
    s.traceEvent('transfer-timeout', { to: s.leadTransferee });
    s.leadTransferee = null;
  }
  if (s.electionElapsed >= s.cfg.electionTicks) {
    s.electionElapsed = 0;
    if (s.cfg.checkQuorum && !checkQuorumActive(s)) {
      s.traceEvent('step-down-check-quorum');
      becomeFollower(s, s.term, null);
      return;
    }
    retryStaleSnapshots(s);
  }
  maybeAutoLeave(s);
  if (s.heartbeatElapsed >= s.cfg.heartbeatTicks) {
    s.heartbeatElapsed = 0;
    bcastHeartbeat(s);
  }
  maybeHandOver(s);
}

/** True when a quorum was heard from since the last check; clears the marks for the next round. */
function checkQuorumActive(s: RaftState): boolean {
  const active = new Set<NodeId>();
  for (const [id, pr] of s.progress) {
    if (id === s.id || pr.recentActive) active.add(id);
    if (id !== s.id) pr.recentActive = false;
  }
  if (s.fencedPeer !== null) active.add(s.fencedPeer);
  return quorumConfigs(s).every((c) => hasQuorum(jointQuorumConfig(c), active));
}

function stepLeader(s: RaftState, m: RaftMessage): void {
  switch (m.type) {
    case 'MsgAppResp':
      handleAppendResponse(s, m);
      return;
    case 'MsgHeartbeatResp':
      handleHeartbeatResponse(s, m);
      return;
    case 'MsgReadIndex':
      handleReadIndexRequest(s, m);
      return;
    case 'MsgApp':
    case 'MsgHeartbeat':
    case 'MsgSnap':
      // Two leaders in one term: only a planted canary may cause it; let the checkers see it.
      assert(s.cfg.canary !== undefined, `two leaders in term ${s.term}: ${m.from} and ${s.id}`);
      return;
    case 'MsgVote':
    case 'MsgPreVote':
    case 'MsgVoteResp':
    case 'MsgPreVoteResp':
    case 'MsgTimeoutNow':
    case 'MsgReadIndexResp':
      return; // stale or irrelevant to a leader
    default:
      assertNever(m, 'message');
  }
}

function stepCandidate(s: RaftState, m: RaftMessage): void {
  switch (m.type) {
    case 'MsgApp':
    case 'MsgHeartbeat':
    case 'MsgSnap':
      // A leader exists in our term: it won, we lost.
      becomeFollower(s, s.term, m.from);
      stepFollower(s, m);
      return;
    case 'MsgVoteResp':
    case 'MsgPreVoteResp':
      if ((m.type === 'MsgVoteResp') === (s.role === 'candidate')) poll(s, m.from, !m.reject);
      return;
    case 'MsgReadIndex':
      rejectReadIndex(s, m);
      return;
    case 'MsgAppResp':
    case 'MsgHeartbeatResp':
    case 'MsgTimeoutNow':
    case 'MsgReadIndexResp':
    case 'MsgVote':
    case 'MsgPreVote':
      return;
    default:
      assertNever(m, 'message');
  }
}

function stepFollower(s: RaftState, m: RaftMessage): void {
  switch (m.type) {
    case 'MsgApp':
      heardFromLeader(s, m.from);
      handleAppend(s, m);
      maybeEndRepair(s, m.commit);
      return;
    case 'MsgHeartbeat':
      heardFromLeader(s, m.from);
      handleHeartbeat(s, m);
      return;
    case 'MsgSnap':
      heardFromLeader(s, m.from);
      handleSnapshot(s, m);
      return;
    case 'MsgTimeoutNow':
      s.traceEvent('timeout-now', { from: m.from });
      startCampaign(s, 'transfer');
      return;
    case 'MsgReadIndexResp':
      if (!m.reject && s.readStates.length < RAFT_READ_INDEX_PENDING_MAX)
        s.readStates.push({ index: m.index, context: m.context });
      return;
    case 'MsgReadIndex':
      rejectReadIndex(s, m);
      return;
    case 'MsgAppResp':
    case 'MsgHeartbeatResp':
    case 'MsgVoteResp':
    case 'MsgPreVoteResp':
    case 'MsgVote':
    case 'MsgPreVote':
      return;
    default:
      assertNever(m, 'message');
  }
}

/**
 * Leaves repair mode once this node follows a leader of the current term and holds that
 * leader's log up to a commit index whose entry is from the current term: the leader had every
 * committed entry when it was elected, and everything up to that commit is now held here.
 * `leaderCommit` must be the leader's own commit index, which only `MsgApp` carries (a
 * heartbeat's commit is capped at what the leader believes this node holds, and this node's
 * commit is capped at what it holds: neither proves the lost entries were recovered).
 */
function maybeEndRepair(s: RaftState, leaderCommit: LogIndex): void {
  if (!s.repairing || s.lead === null) return;
  const committed = s.log.committed;
  if (committed === 0 || committed < leaderCommit || s.log.termOrNull(committed) !== s.term) return;
  s.repairing = false;
  s.traceEvent('repair-complete', { committed });
}

function heardFromLeader(s: RaftState, from: NodeId): void {
  s.electionElapsed = 0;
  s.lead = from;
  s.deferredCampaign = null; // a leader exists: a campaign deferred for a pending change is moot
}
