/**
 * Heartbeat rounds, linearizable reads (read index) and the leader lease.
 *
 * Rules: every heartbeat broadcast is a numbered round; a round acknowledged by a quorum of every
 * counted configuration confirms that this node was still the leader when it was sent. A read
 * gets the commit index as its read index, once the leader has committed an entry of its term, and
 * is answered when a round sent after it is confirmed (concurrent reads share one round). With
 * lease reads, a confirmed round sent at tick T lets the leader answer at once until
 * T + electionTicks - leaseMarginTicks: voters refuse other candidates for an election timeout
 * after hearing from it. The lease is off while a transfer, a hand-over, a joint configuration or
 * more than one counted configuration is in play, and restarts when the configuration changes.
 */
import { err, ok, type Result } from '../lib/errors.js';
import { logIndex, type LogIndex, type NodeId } from '../lib/ids.js';
import { RAFT_HEARTBEAT_ROUNDS_TRACKED_MAX, RAFT_READ_INDEX_PENDING_MAX } from '../constants.js';
import { isJoint } from './cluster-config.js';
import { RaftError } from './raft-error.js';
import type { MsgHeartbeatResp, MsgReadIndex, MsgReadIndexResp } from './raft-message.js';
import type { RaftState } from './raft-state.js';
import { committedInTerm, sendAppend } from './replication.js';
import { maybeHandOver } from './conf-change.js';
import { quorumConfigs, quorumIndex } from './quorum-configs.js';

/** Leader: sends heartbeat round N+1 to every follower, with the commit each may learn, and confirms what it can. */
export function bcastHeartbeat(s: RaftState): void {
  s.roundNeeded = false;
  s.heartbeatRound++;
  s.roundSentTick.set(s.heartbeatRound, s.ticks);
  if (s.roundSentTick.size > RAFT_HEARTBEAT_ROUNDS_TRACKED_MAX) {
    const oldest = s.roundSentTick.keys().next();
    if (oldest.done !== true) s.roundSentTick.delete(oldest.value);
  }
  for (const [id, pr] of s.progress) {
    if (id === s.id) {
      pr.ackedRound = s.heartbeatRound;
      continue;
    }
    const commit = logIndex(Math.min(pr.match, s.log.committed));
    pr.noteCommitSent(s.heartbeatRound, commit);
    s.send({ type: 'MsgHeartbeat', from: s.id, to: id, term: s.term, commit, round: s.heartbeatRound });
  }
  confirmRounds(s);
}

/** Leader: records a heartbeat acknowledgement; catches a lagging follower up; confirms rounds; may hand over. */
export function handleHeartbeatResponse(s: RaftState, m: MsgHeartbeatResp): void {
  const pr = s.progress.get(m.from);
  if (pr === undefined) return;
  pr.recentActive = true;
  pr.probeSent = false;
  if (pr.state === 'replicate' && pr.inflights.full) pr.inflights.freeFirst(); // an ack was probably lost
  if (pr.match < s.log.lastIndex()) sendAppend(s, m.from, true);
  if (m.round <= s.heartbeatRound) pr.noteHeartbeatAck(m.round);
  if (m.round > pr.ackedRound && m.round <= s.heartbeatRound) {
    pr.ackedRound = m.round;
    confirmRounds(s);
  }
  maybeHandOver(s);
}

/** Releases reads and extends the lease up to the newest round a quorum acknowledged. */
function confirmRounds(s: RaftState): void {
  const acked = new Map<NodeId, number>();
  for (const [id, pr] of s.progress) acked.set(id, pr.ackedRound);
  const confirmed = quorumIndex(s, acked);
  const sent = s.roundSentTick.get(confirmed);
  if (sent !== undefined && !s.leaseRevoked) {
    s.leaseUntilTick = Math.max(s.leaseUntilTick, sent + s.cfg.electionTicks - s.cfg.leaseMarginTicks);
  }
  for (const r of s.roundSentTick.keys()) if (r < confirmed) s.roundSentTick.delete(r);
  let released = 0;
  for (const read of s.pendingReads) {
    if (read.index === null || read.round === 0 || read.round > confirmed) break;
    answerRead(s, read.from, read.context, read.index);
    released++;
  }
  if (released > 0) s.pendingReads = s.pendingReads.slice(released);
}

/** True when a read may be served from the lease without a round trip. */
export function leaseValid(s: RaftState): boolean {
  return (
    s.role === 'leader' &&
    s.cfg.readMode === 'lease' &&
    !s.leaseRevoked &&
    s.leadTransferee === null &&
    s.leaving === null &&
    !isJoint(s.config) &&
    quorumConfigs(s).length === 1 &&
    committedInTerm(s) &&
    s.ticks < s.leaseUntilTick
  );
}

/**
 * Leader: answers a read at once from a valid lease, or queues it for the next confirmed round;
 * `READ_QUEUE_FULL` when bounded out.
 */
export function leaderRead(s: RaftState, from: NodeId, context: Uint8Array): Result<void, RaftError> {
  if (leaseValid(s)) {
    answerRead(s, from, context, s.log.committed);
    return ok(undefined);
  }
  if (s.pendingReads.length >= RAFT_READ_INDEX_PENDING_MAX)
    return err(
      new RaftError('READ_QUEUE_FULL', `${RAFT_READ_INDEX_PENDING_MAX} reads are waiting for confirmation; back off`),
    );
  const known = committedInTerm(s);
  s.pendingReads.push({
    from,
    context,
    index: known ? s.log.committed : null,
    round: known ? s.heartbeatRound + 1 : 0,
  });
  // The confirming heartbeat round goes out at the next ready(), batching concurrent reads.
  if (known) s.roundNeeded = true;
  return ok(undefined);
}

/** Leader: serves a follower's read request, or rejects it so the follower's reader retries. */
export function handleReadIndexRequest(s: RaftState, m: MsgReadIndex): void {
  const r = leaderRead(s, m.from, m.context);
  if (!r.ok) rejectReadIndex(s, m);
}

/** Refuses a follower's read request (not leading, or no read possible now): its reader retries. */
export function rejectReadIndex(s: RaftState, m: MsgReadIndex): void {
  s.send({
    type: 'MsgReadIndexResp',
    from: s.id,
    to: m.from,
    term: s.term,
    context: m.context,
    index: logIndex(0),
    reject: true,
  });
}

function answerRead(s: RaftState, from: NodeId, context: Uint8Array, index: LogIndex): void {
  if (from === s.id) {
    s.readStates.push({ index, context });
    return;
  }
  const resp: MsgReadIndexResp = {
    type: 'MsgReadIndexResp',
    from: s.id,
    to: from,
    term: s.term,
    context,
    index,
    reject: false,
  };
  s.send(resp);
}

/** The first commit of a term fixes the read index of reads that arrived before it. */
export function onFirstCommitInTerm(s: RaftState, before: LogIndex): void {
  if (s.log.termOrNull(before) === s.term) return;
  for (const read of s.pendingReads) {
    if (read.index !== null) continue;
    read.index = s.log.committed;
    read.round = s.heartbeatRound + 1;
    s.roundNeeded = true;
  }
}
