/**
 * Log replication: proposals on the leader, appends and their acknowledgements, and the commit
 * rule; the follower's side of appends and heartbeats.
 *
 * Rules: a leader appends entries of its own term only, bounded by the uncommitted bytes and the
 * entries awaiting persistence, and counts its own acknowledgement only once the entry is durable.
 * New entries are broadcast once per Ready (a burst of proposals costs one broadcast); each
 * follower gets what its flow-control state allows (`progress.ts`: probe, replicate, snapshot),
 * or a snapshot when the entries it needs were compacted (`snapshot-transfer.ts`). A rejection
 * moves the follower's next index back by a whole term per round trip. An index is committed once
 * a quorum of every counted configuration holds it and it is of the current term (Raft's rule:
 * older entries commit only under a newer one). A follower accepts entries only where its log
 * matches the leader's, never truncates below its commit index, and commits from a heartbeat only
 * what it holds.
 */
import type { ProposalRef } from './raft-core.js';
import { assert } from '../lib/assert.js';
import { ok } from '../lib/errors.js';
import { logIndex, term as toTerm, type LogIndex, type NodeId } from '../lib/ids.js';
import { RAFT_ENTRIES_PER_MESSAGE_MAX, RAFT_UNSTABLE_ENTRIES_MAX } from '../constants.js';
import { entriesForFollower } from './witness.js';
import { RaftError } from './raft-error.js';
import {
  entrySizeBytes,
  type ConfChange,
  type Entry,
  type MsgApp,
  type MsgAppResp,
  type MsgHeartbeat,
} from './raft-message.js';
import type { RaftState } from './raft-state.js';
import { sendSnapshot } from './snapshot-transfer.js';
import { bcastHeartbeat, onFirstCommitInTerm } from './read-index.js';
import { quorumIndex, roleConfig } from './quorum-configs.js';

/** Refusal reasons common to every proposal, or null when the leader accepts it. */
export function refuseProposal(s: RaftState, sizeBytes: number): RaftError | null {
  if (s.role !== 'leader')
    return new RaftError('NOT_LEADER', `node ${s.id} is not the leader; propose on the leader`, s.lead);
  if (s.leaving !== null)
    return new RaftError(
      'TRANSFER_IN_PROGRESS',
      `node ${s.id} was removed from the configuration and is handing leadership over; retry on the next leader shortly`,
      s.leadTransferee,
    );
  if (s.leadTransferee !== null)
    return new RaftError(
      'TRANSFER_IN_PROGRESS',
      `leadership is moving to ${s.leadTransferee}; retry shortly`,
      s.leadTransferee,
    );
  if (s.uncommittedBytes > 0 && s.uncommittedBytes + sizeBytes > s.cfg.maxUncommittedBytes) {
    return new RaftError(
      'PROPOSALS_BACKLOGGED',
      `${s.uncommittedBytes} bytes are uncommitted (limit ${s.cfg.maxUncommittedBytes}); wait for commits`,
    );
  }
  if (s.log.unstableEntries().length >= RAFT_UNSTABLE_ENTRIES_MAX) {
    return new RaftError(
      'PROPOSALS_BACKLOGGED',
      `${RAFT_UNSTABLE_ENTRIES_MAX} entries await persistence; process Ready batches`,
    );
  }
  return null;
}

/** Leader: appends one entry of the current term; broadcast happens at the next `ready()`. */
export function appendEntry(
  s: RaftState,
  body: { type: 'normal'; data: Uint8Array } | { type: 'conf'; change: ConfChange },
): ProposalRef {
  assert(s.role === 'leader', 'only a leader appends new entries');
  const index = logIndex(s.log.lastIndex() + 1);
  const entry: Entry =
    body.type === 'normal'
      ? { type: 'normal', term: s.term, index, data: body.data }
      : { type: 'conf', term: s.term, index, change: body.change };
  s.log.append([entry]);
  s.uncommittedBytes += entrySizeBytes(entry);
  // Our own acknowledgement counts only once the entry is durable (stepped in advance()).
  s.selfAfterPersist = s.selfAfterPersist.filter((m) => m.type !== 'MsgAppResp');
  s.selfAfterPersist.push({
    type: 'MsgAppResp',
    from: s.id,
    to: s.id,
    term: s.term,
    index,
    reject: false,
    rejectHint: logIndex(0),
    logTerm: toTerm(0),
  });
  s.appendPending = true;
  return { index, term: s.term };
}

/** Work deferred to `ready()` so that a burst of proposals or reads costs one broadcast. */
export function flushLeader(s: RaftState): void {
  if (s.role !== 'leader') return;
  if (s.appendPending) {
    s.appendPending = false;
    bcastAppend(s);
  }
  if (s.roundNeeded) bcastHeartbeat(s);
}

/** Leader: sends new entries (or an empty append) to every follower that flow control allows. */
export function bcastAppend(s: RaftState): void {
  for (const id of s.progress.keys()) if (id !== s.id) sendAppend(s, id, true);
}

/** Sends entries (or a snapshot) to `to` if flow control allows; returns true if something was sent. */
export function sendAppend(s: RaftState, to: NodeId, sendIfEmpty: boolean): boolean {
  const pr = s.progress.get(to);
  if (pr === undefined || to === s.id || pr.isPaused()) return false;
  const prevIndex = logIndex(pr.next - 1);
  const prevTerm = s.log.termOrNull(prevIndex);
  const last = s.log.lastIndex();
  const ents = pr.next <= last ? s.log.entries(pr.next, logIndex(last + 1), s.cfg.maxMessageBytes) : ok<Entry[]>([]);
  if (prevTerm === null || !ents.ok) return sendSnapshot(s, to, pr);
  const entries = entriesForFollower(roleConfig(s, to), to, ents.value.slice(0, RAFT_ENTRIES_PER_MESSAGE_MAX));
  if (entries.length === 0 && !sendIfEmpty) return false;
  s.send({
    type: 'MsgApp',
    from: s.id,
    to,
    term: s.term,
    logTerm: prevTerm,
    index: prevIndex,
    entries,
    commit: s.log.committed,
  });
  const lastSent = entries[entries.length - 1];
  pr.sentEntries(lastSent === undefined ? prevIndex : lastSent.index, entries.length);
  return true;
}

/**
 * Leader: updates the sender's progress from an acknowledgement or a rejection (probing back a term at a
 * time), commits what a quorum holds, fills the window, finishes a transfer.
 */
export function handleAppendResponse(s: RaftState, m: MsgAppResp): void {
  const pr = s.progress.get(m.from);
  if (pr === undefined) return;
  pr.recentActive = true;
  if (m.reject) {
    let probe = m.rejectHint;
    if (m.logTerm > 0) probe = s.log.findConflictByTerm(m.rejectHint, m.logTerm)[0];
    if (pr.match > 0 && m.index === pr.match && m.rejectHint < pr.match) {
      // The follower no longer holds the entry it acknowledged at `match`: it lost part of its
      // log (a corrupt WAL discarded in repair mode). A stale rejection can look the same; both
      // are handled by forgetting the match and probing again (it only costs a resend).
      s.traceEvent('follower-lost-entries', { from: m.from, match: pr.match, hint: m.rejectHint });
      pr.forgetMatch(logIndex(probe + 1));
      sendAppend(s, m.from, true);
      return;
    }
    if (pr.maybeDecrTo(m.index, probe)) {
      if (pr.state === 'replicate') pr.becomeProbe();
      sendAppend(s, m.from, true);
    }
    return;
  }
  const wasPaused = pr.isPaused();
  if (!pr.maybeUpdate(m.index) && !(pr.match === m.index && pr.state === 'probe')) return;
  if (pr.state === 'probe') pr.becomeReplicate();
  else if (pr.state === 'snapshot' && pr.match + 1 >= s.log.firstIndex()) {
    pr.becomeProbe();
    pr.becomeReplicate();
  } else if (pr.state === 'replicate') pr.inflights.freeLE(m.index);
  if (maybeCommit(s)) bcastAppend(s);
  else if (wasPaused) sendAppend(s, m.from, true);
  // Fill the flow-control window; the loop is bounded by the inflights capacity.
  for (let i = 0; i < s.cfg.maxInflightMessages && sendAppend(s, m.from, false); i++);
  if (m.from === s.leadTransferee && pr.match === s.log.lastIndex()) sendTimeoutNow(s, m.from);
}

/** Advances the commit index to what a quorum holds, if it is of the current term. */
export function maybeCommit(s: RaftState): boolean {
  const match = new Map<NodeId, number>();
  for (const [id, pr] of s.progress) match.set(id, pr.match);
  let index: number;
  if (s.cfg.canary === 'ack-before-quorum') {
    index = Math.max(...match.values()); // planted bug: one acknowledgement is enough
  } else {
    index = quorumIndex(s, match);
  }
  const before = s.log.committed;
  const moved = s.log.maybeCommit(logIndex(Math.min(index, s.log.lastIndex())), s.term);
  if (moved && before < s.log.committed) onFirstCommitInTerm(s, before);
  return moved;
}

/** True once the commit index is an entry of the current term (reads and the lease need it). */
export function committedInTerm(s: RaftState): boolean {
  return s.log.termOrNull(s.log.committed) === s.term;
}

/** Tells `to` to campaign at once (a transfer or a hand-over); revokes the lease for the rest of the term. */
export function sendTimeoutNow(s: RaftState, to: NodeId): void {
  s.leaseRevoked = true; // the target may win without waiting for our lease to lapse
  s.leaseUntilTick = 0;
  s.send({ type: 'MsgTimeoutNow', from: s.id, to, term: s.term });
  s.traceEvent('timeout-now-sent', { to });
}

/** Follower: appends the leader's entries where the logs match, or rejects with a hint that skips a whole term. */
export function handleAppend(s: RaftState, m: MsgApp): void {
  if (m.index < s.log.committed) {
    sendAppendResponse(s, m.from, s.log.committed, false);
    return;
  }
  if (m.entries.some((e) => e.type === 'normal' && e.metadataOnly === true)) s.mayHoldWitnessCopy = true;
  const lastNew = s.log.maybeAppend(m.index, m.logTerm, m.commit, m.entries, s.cfg.canary === 'skip-log-matching');
  if (lastNew !== null) {
    sendAppendResponse(s, m.from, lastNew, false);
    return;
  }
  // Find the last index that may still match, skipping a whole term per round trip.
  const [hint, hintTerm] = s.log.findConflictByTerm(logIndex(Math.min(m.index, s.log.lastIndex())), m.logTerm);
  s.send({
    type: 'MsgAppResp',
    from: s.id,
    to: m.from,
    term: s.term,
    index: m.index,
    reject: true,
    rejectHint: hint,
    logTerm: hintTerm,
  });
}

/** Follower: acknowledges (or rejects) the leader's log up to `index`. */
export function sendAppendResponse(s: RaftState, to: NodeId, index: LogIndex, reject: boolean): void {
  s.send({
    type: 'MsgAppResp',
    from: s.id,
    to,
    term: s.term,
    index,
    reject,
    rejectHint: logIndex(0),
    logTerm: toTerm(0),
  });
}

/** Follower: commits up to the leader's commit, capped at what it holds, and acknowledges the round. */
export function handleHeartbeat(s: RaftState, m: MsgHeartbeat): void {
  // The leader sends min(match, commit); a follower that lost acknowledged entries (a corrupt
  // WAL discarded in repair mode) holds less than that. Never commit what is not held: the
  // entries held up to there are the leader's (see handleAppendResponse for the re-probe).
  s.log.commitTo(logIndex(Math.min(m.commit, s.log.lastIndex())));
  s.send({ type: 'MsgHeartbeatResp', from: s.id, to: m.from, term: s.term, round: m.round });
}
