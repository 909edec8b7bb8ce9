/**
 * Elections: pre-vote and vote campaigns, counting votes, and granting them.
 *
 * Rules: a node campaigns after a randomised election timeout in [electionTicks,
 * 2*electionTicks) without hearing from a leader, only if it may lead (a data voter, not in
 * repair mode, holding no witness's copy) and no committed configuration change is waiting to be
 * applied (the campaign is deferred until it is). With pre-vote, it first asks whether it could
 * win, without changing its term. Votes are counted with every configuration in the log
 * (`quorum-configs.ts`) under the votequorum election rules (`quorum-options.ts`); vote requests
 * are re-sent every heartbeat interval to voters that have not answered. A voter grants at most
 * one vote per term, only to a candidate whose log is at least as up to date as its own, and
 * refuses every candidate but its leader while it heard from that leader within the election
 * timeout (leader stickiness, which makes leases safe) unless the campaign is a leadership
 * transfer. A refusal carries the voter's commit index so a candidate can learn what is committed.
 */
import { assert, assertNever } from '../lib/assert.js';
import { logIndex, term as toTerm, type LogIndex, type NodeId, type Term } from '../lib/ids.js';
import { canLead, isWitness } from './cluster-config.js';
import { electionOutcomeAll, explainElectionAll, isFreshLog, type ElectionRules } from './quorum-options.js';
import type { MsgVote, RaftMessage } from './raft-message.js';
import type { RaftState, VoteKind } from './raft-state.js';
import { becomeCandidate, becomeFollower, becomeLeader, becomePreCandidate } from './raft-step.js';
import { firstUnappliedHeld, quorumConfigs } from './quorum-configs.js';

/**
 * Whether this node may stand: it can lead in the applied configuration, or in the latest one its
 * log holds (a learner being promoted whose leader died before the change committed: the election
 * still needs a quorum of every counted configuration, the applied one included, so letting it
 * stand changes who may win only where it could win anyway; without it, a voter of the applied
 * configuration that is missing entries the learner holds could never be elected either, and the
 * pair would wait forever).
 */
function mayCampaign(s: RaftState): boolean {
  return s.promotable() || canLead(quorumConfigs(s).at(-1) ?? s.config, s.id);
}

/**
 * Non-leader tick: campaigns once the randomised election timeout passes; re-asks silent voters
 * every heartbeat interval.
 */
export function tickElection(s: RaftState): void {
  s.electionElapsed++;
  if (mayCampaign(s) && s.electionElapsed >= s.randomizedElectionTimeout) {
    s.electionElapsed = 0;
    if (s.role !== 'follower')
      s.traceEvent('election-not-won', {
        why: explainElectionAll(quorumConfigs(s), s.votes, electionRules(s)),
      });
    startCampaign(s, s.cfg.preVote ? 'pre-vote' : 'election');
    return;
  }
  if (
    (s.role === 'pre-candidate' || s.role === 'candidate') &&
    s.electionElapsed % s.cfg.heartbeatTicks === 0 &&
    !voteRequestsUnsent(s)
  )
    sendVoteRequests(s);
}

/**
 * Starts a campaign of `kind` unless this node may not lead now (repair mode, not a data voter, a
 * witness's copy, or a committed change not applied yet: then deferred).
 */
export function startCampaign(s: RaftState, kind: VoteKind): void {
  if (s.repairing) {
    s.traceEvent('campaign-ignored-repairing');
    return;
  }
  if (!mayCampaign(s)) {
    s.traceEvent(isWitness(s.config, s.id) ? 'campaign-ignored-witness' : 'campaign-ignored-not-voter');
    return;
  }
  if (s.holdsMetadataOnly()) {
    s.traceEvent('campaign-ignored-witness-copy');
    return;
  }
  if (s.role === 'leader') return;
  if (unappliedConfChange(s)) {
    // etcd's (Campaign) invariant: a configuration takes effect when applied, so counting votes
    // while a committed change is unapplied could use a configuration two steps old and elect a
    // second leader in this term (docs/raft.md, "Why this is safe"). The campaign runs once the
    // change is applied (a leadership transfer arriving just before the commit is not lost).
    s.deferredCampaign = kind;
    s.traceEvent('campaign-deferred-unapplied-conf', { applied: s.log.applied, committed: s.log.committed });
    return;
  }
  if (kind === 'pre-vote') becomePreCandidate(s);
  else becomeCandidate(s);
  if (kind === 'pre-vote') {
    // A pre-vote binds nothing, so our own counts at once; a real vote only once durable.
    if (poll(s, s.id, true)) return;
  } else {
    s.selfAfterPersist.push({ type: 'MsgVoteResp', from: s.id, to: s.id, term: s.term, reject: false });
  }
  s.campaignTransfer = kind === 'transfer';
  sendVoteRequests(s);
}

/**
 * The shell has proof that `peer`'s process is gone (`Transport.onPeerGone`: its connections were
 * closed by its host and a reconnect was refused; a pause, a stall or a partition never gives
 * it). When `peer` is the leader this follower follows, it stops following it now:
 * - `lead` is cleared, so this voter no longer refuses other candidates for that leader's lease
 *   (`inLease`). Only its own proof does this, never another node's word: a leader holding a
 *   lease is alive, so it cannot be proven gone, and the lease it holds needs the promise of
 *   voters that have not seen it die.
 * - the first of the other voters by id campaigns at once (pre-vote first, when configured); it
 *   re-asks silent voters every heartbeat interval, so a voter whose own proof comes a moment
 *   later grants the next request. The others only stop following: were they to stand early
 *   too, followers that got the proof in the same instant would grant each other's pre-votes
 *   and split the real vote (measured on real daemons: a split cost 0.5-1 s, a whole randomised
 *   election timeout). If the first cannot win (no proof of its own, an older log), the others
 *   stand after their usual election timeout, as without the proof.
 * Anything else (not a follower, another node) changes nothing.
 */
export function leaderGone(s: RaftState, peer: NodeId): void {
  if (s.role !== 'follower' || s.lead !== peer) return;
  s.lead = null;
  const others = [...s.config.voters.keys()].filter((id) => id !== peer).sort((a, b) => a - b);
  const first = others[0] === s.id;
  s.traceEvent('leader-gone', { lead: peer, first });
  if (!first) return;
  s.electionElapsed = 0;
  startCampaign(s, s.cfg.preVote ? 'pre-vote' : 'election');
}

/** Runs a campaign deferred by `startCampaign` now that its configuration change may be applied. */
export function maybeDeferredCampaign(s: RaftState): void {
  const kind = s.deferredCampaign;
  if (kind === null) return;
  s.deferredCampaign = null;
  if (s.role !== 'leader') startCampaign(s, kind); // defers again while a change is still unapplied
}

/** True while earlier vote requests still wait in the outbox (not handed out in a Ready yet). */
function voteRequestsUnsent(s: RaftState): boolean {
  return s.outbox.some((m) => m.type === 'MsgVote' || m.type === 'MsgPreVote');
}

/**
 * (Pre-)candidate: asks every voter of every counted configuration that has not answered yet.
 * Called when the campaign starts and again every heartbeat interval while it lasts, so one lost
 * request or answer does not cost a whole election timeout (with a bare quorum under loss,
 * needing every grant in a single exchange could stall elections indefinitely). A repeat is
 * harmless: a pre-vote binds nothing, and a voter grants a real vote again only to the
 * candidate it already voted for in that term.
 */
function sendVoteRequests(s: RaftState): void {
  assert(s.role === 'pre-candidate' || s.role === 'candidate', 'only a campaign asks for votes');
  const pre = s.role === 'pre-candidate';
  const lastIndex = s.log.lastIndex();
  const lastTerm = s.log.lastTerm();
  for (const id of voteTargets(s)) {
    if (id === s.id || s.votes.has(id)) continue;
    s.send({
      type: pre ? 'MsgPreVote' : 'MsgVote',
      from: s.id,
      to: id,
      term: toTerm(pre ? s.term + 1 : s.term),
      logTerm: lastTerm,
      index: lastIndex,
      transfer: s.campaignTransfer,
    });
  }
}

/** True when a configuration change is committed but not applied yet (it takes effect at `advance`). */
function unappliedConfChange(s: RaftState): boolean {
  if (s.log.committed <= s.log.applied) return false;
  // Campaigns are rare and entries after the applied index are never compacted.
  const r = s.log.entries(firstUnappliedHeld(s), logIndex(s.log.committed + 1), Number.MAX_SAFE_INTEGER);
  assert(r.ok, 'committed entries after the applied index are still in the log');
  return r.value.some((e) => e.type === 'conf');
}

/** The voters of every configuration counted (see `quorumConfigs`), ascending. */
function voteTargets(s: RaftState): NodeId[] {
  const ids = new Set<NodeId>();
  for (const c of quorumConfigs(s)) {
    for (const id of c.voters.keys()) ids.add(id);
    for (const id of c.outgoing.keys()) ids.add(id);
    if (s.cfg.canary === 'count-learner-vote') for (const id of c.learners) ids.add(id);
  }
  return [...ids].sort((a, b) => a - b);
}

/** How this node counts its elections now (wait_for_all applies only while its log is fresh). */
function electionRules(s: RaftState): ElectionRules {
  const fresh = isFreshLog(s.log.lastIndex(), s.log.lastTerm(), s.cfg.bootstrapEntry === true);
  return {
    waitForAll: s.cfg.waitForAll === true && fresh,
    learnerVotes: s.cfg.canary === 'count-learner-vote',
  };
}

/** Records a vote; returns true when the election was decided (and acted upon). */
export function poll(s: RaftState, from: NodeId, granted: boolean): boolean {
  if (!s.votes.has(from)) s.votes.set(from, granted);
  // two_node: the fenced peer grants (see `RaftState.fencedPeer`).
  const votes = s.fencedPeer === null ? s.votes : new Map(s.votes).set(s.fencedPeer, true);
  const outcome = electionOutcomeAll(quorumConfigs(s), votes, electionRules(s));
  switch (outcome) {
    case 'won':
      if (s.role === 'pre-candidate') startCampaign(s, 'election');
      else becomeLeader(s);
      return true;
    case 'lost':
      s.traceEvent('election-lost', {
        why: explainElectionAll(quorumConfigs(s), s.votes, electionRules(s)),
      });
      becomeFollower(s, s.term, null);
      return true;
    case 'pending':
      return false;
    default:
      return assertNever(outcome, 'vote outcome');
  }
}

/**
 * True while this node must refuse to help elect anyone but its leader: it heard from a leader
 * within the minimum election timeout (check-quorum stickiness), or it started less than an
 * election timeout ago in lease mode after a restart (it may have forgotten a lease it
 * acknowledged before the restart). This is what makes leader leases safe.
 */
function inLease(s: RaftState): boolean {
  if (s.quietTicks > 0) return true;
  return s.cfg.checkQuorum && s.lead !== null && s.electionElapsed < s.cfg.electionTicks;
}

/** Handles a message of a higher term; returns false when it was consumed or ignored. */
export function stepHigherTerm(s: RaftState, m: RaftMessage): boolean {
  if (m.type === 'MsgVote' || m.type === 'MsgPreVote') {
    if (!m.transfer && inLease(s)) {
      s.traceEvent('vote-ignored-in-lease', { type: m.type, from: m.from, msgTerm: m.term });
      return false;
    }
    if (m.type === 'MsgPreVote') return true; // never bump our term for a pre-vote
  }
  if (m.type === 'MsgPreVoteResp' && !m.reject) return true; // a grant carries the future term
  const leaderMsg = m.type === 'MsgApp' || m.type === 'MsgHeartbeat' || m.type === 'MsgSnap';
  becomeFollower(s, m.term, leaderMsg ? m.from : null);
  return true;
}

/**
 * A refusing voter's commit index (`MsgVoteResp.commitHint`): a commit index is only ever a
 * committed index, and holding the same (index, term) means holding the same entries up to it
 * (log matching), so ours are committed up to there too. Term-independent, like any fact about
 * commitment; a wrong or stale hint that does not match our log is ignored.
 */
export function learnCommit(s: RaftState, from: NodeId, index: LogIndex, t: Term): void {
  if (index <= s.log.committed || !s.log.matchTerm(index, t)) return;
  s.log.commitTo(index);
  s.traceEvent('commit-learned', { from, index });
}

/** The hint a refusal carries (see `learnCommit`), or nothing before the first commit. */
function commitHint(s: RaftState): { commitHint: { index: LogIndex; term: Term } } | Record<string, never> {
  const t = s.log.termOrNull(s.log.committed);
  return s.log.committed === 0 || t === null ? {} : { commitHint: { index: s.log.committed, term: t } };
}

/** Answers a message of an older term only where that tells a stale leader or pre-candidate the newer term. */
export function stepLowerTerm(s: RaftState, m: RaftMessage): void {
  if ((s.cfg.checkQuorum || s.cfg.preVote) && (m.type === 'MsgApp' || m.type === 'MsgHeartbeat')) {
    // A stale leader (e.g. healed from a partition) learns our term and steps down; without
    // this, pre-vote could leave it stuck never hearing about the newer term.
    s.send({
      type: 'MsgAppResp',
      from: s.id,
      to: m.from,
      term: s.term,
      index: logIndex(0),
      reject: false,
      rejectHint: logIndex(0),
      logTerm: toTerm(0),
    });
  } else if (m.type === 'MsgPreVote') {
    s.send({
      type: 'MsgPreVoteResp',
      from: s.id,
      to: m.from,
      term: s.term,
      reject: true,
      ...commitHint(s),
    });
  }
}

/**
 * Grants a (pre-)vote at most once per term to a candidate whose log is at least as up to date; a
 * refusal carries the commit hint.
 */
export function handleVoteRequest(s: RaftState, m: MsgVote): void {
  const respType = m.type === 'MsgVote' ? 'MsgVoteResp' : 'MsgPreVoteResp';
  const canVote =
    s.vote === m.from ||
    (s.vote === null && s.lead === null) ||
    (m.type === 'MsgPreVote' && m.term > s.term) ||
    (s.cfg.canary === 'double-vote' && m.type === 'MsgVote');
  if (canVote && !s.repairing && s.log.isUpToDate(m.index, m.logTerm)) {
    s.send({ type: respType, from: s.id, to: m.from, term: m.term, reject: false });
    if (m.type === 'MsgVote') {
      s.electionElapsed = 0;
      s.vote = m.from;
    }
    s.traceEvent('vote-granted', { type: m.type, to: m.from, msgTerm: m.term });
  } else {
    s.send({ type: respType, from: s.id, to: m.from, term: s.term, reject: true, ...commitHint(s) });
  }
}
