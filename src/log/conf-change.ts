/**
 * Configuration changes: bootstrapping through the log, proposing and applying changes, and the
 * hand-over of a leader that removed itself.
 *
 * Rules: one change at a time (a proposal is refused while the last one is unapplied); a change
 * takes effect on every node when its entry is applied, in log order, and a change that would be
 * invalid there is skipped the same way on every node. Joint configurations with auto-leave are
 * left by a change the leader proposes as soon as the joint one is applied. A leader removed (or
 * demoted) by a change keeps leading without counting itself until a quorum of every counted
 * configuration knows the removal committed, then hands over with `MsgTimeoutNow` to the most
 * up-to-date data voter (docs/raft.md, "Leader removal").
 */
import type { ProposalRef } from './raft-core.js';
import { assert } from '../lib/assert.js';
import { err, ok, type Result } from '../lib/errors.js';
import { logIndex, term as toTerm, type LogIndex, type NodeId } from '../lib/ids.js';
import { hasQuorum } from '../quorum/index.js';
import {
  applyConfChange,
  canLead,
  configNodes,
  EMPTY_CONFIG,
  formatConfig,
  isJoint,
  isVoter,
  isWitness,
  jointQuorumConfig,
  type ClusterConfig,
} from './cluster-config.js';
import { RaftError } from './raft-error.js';
import { entrySizeBytes, type ConfChange, type ConfChangeSingle, type ConfEntry, type Entry } from './raft-message.js';
import type { RaftState } from './raft-state.js';
import { appendEntry, bcastAppend, maybeCommit, refuseProposal, sendTimeoutNow } from './replication.js';
import { quorumConfigs, syncProgress } from './quorum-configs.js';

/**
 * See `RaftConfig.bootstrapEntry`: on a fresh node with a configured storage, replace the
 * implicit initial configuration by committed entry 1 (term 1) that creates it from nothing.
 * The entry goes out in the first Ready (persisted, then applied like any committed entry).
 */
export function bootstrapThroughLog(s: RaftState): void {
  // Term 1 without a vote and without entries: a crash lost entry 1 but kept the term.
  if (s.log.lastIndex() !== 0 || s.term > 1 || s.vote !== null || configNodes(s.config).length === 0) return;
  assert(!isJoint(s.config), 'a fresh cluster does not start in a joint configuration');
  const initial = s.config;
  const changes: ConfChangeSingle[] = [];
  for (const [node, votes] of initial.voters)
    changes.push(
      isWitness(initial, node)
        ? { type: 'add-voter', node, votes, role: 'witness' }
        : { type: 'add-voter', node, votes },
    );
  for (const node of initial.learners) changes.push({ type: 'add-learner', node });
  if (initial.quorum.expectedVotes !== 0)
    changes.push({ type: 'set-expected-votes', expectedVotes: initial.quorum.expectedVotes });
  if (initial.quorum.tieBreaker.kind !== 'off')
    changes.push({ type: 'set-tie-breaker', tieBreaker: initial.quorum.tieBreaker });
  const change: ConfChange = { changes, autoLeave: false };
  const built = applyConfChange(EMPTY_CONFIG, change);
  if (!built.ok || formatConfig(built.value) !== formatConfig(initial)) {
    // e.g. expected votes set out of reach on purpose, or a witness learner: a change could not
    // recreate it, so this node keeps the implicit initial configuration (a joiner must then be
    // given the same bootstrap configuration).
    s.traceEvent('bootstrap-entry-skipped', {
      why: built.ok ? `the entry would build ${formatConfig(built.value)}` : built.error.message,
    });
    return;
  }
  s.config = EMPTY_CONFIG;
  s.term = toTerm(1);
  s.log.append([{ type: 'conf', term: s.term, index: logIndex(1), change }]);
  s.log.commitTo(logIndex(1));
  s.traceEvent('bootstrap-entry', { changes: changes.length });
}

/** Re-applies the configuration changes of entries the application already applied before a restart. */
export function replayConfig(s: RaftState, applied: LogIndex): void {
  assert(applied <= s.log.committed, `applied ${applied} beyond the durable commit index ${s.log.committed}`);
  while (s.log.applied < applied) {
    const batch = s.log.nextCommittedEntries(applied, s.cfg.maxCommittedBytesPerReady);
    assert(batch.length > 0, 'replaying applied entries must make progress');
    for (const e of batch) if (e.type === 'conf') applyConfEntry(s, e);
    s.log.appliedTo((batch[batch.length - 1] as Entry).index);
  }
}

/**
 * Proposes a configuration change (leader only); it takes effect when applied. Errors as for
 * `propose`, plus `CONF_CHANGE_PENDING` (one change at a time) and `CONF_CHANGE_INVALID`.
 */
export function proposeConfChange(s: RaftState, change: ConfChange): Result<ProposalRef, RaftError> {
  const refused = refuseProposal(s, entrySizeBytes({ type: 'conf', term: s.term, index: logIndex(1), change }));
  if (refused !== null) return err(refused);
  if (s.pendingConfIndex > s.log.applied) {
    return err(
      new RaftError(
        'CONF_CHANGE_PENDING',
        `configuration change at ${s.pendingConfIndex} is not applied yet (applied ${s.log.applied}); retry after it is`,
      ),
    );
  }
  const next = applyConfChange(s.config, change);
  if (!next.ok) return next;
  // two_node: while the fenced peer is counted (it holds none of the entries committed since),
  // the only change allowed is one that takes its vote away; any other could leave it a voter
  // that decides without this node, with a log that lacks what this node committed alone.
  if (s.fencedPeer !== null && next.value.voters.has(s.fencedPeer))
    return err(
      new RaftError(
        'CONF_CHANGE_INVALID',
        `two_node: node ${s.fencedPeer} is counted as fenced; the only configuration change allowed now is its demotion (proposed ${formatConfig(next.value)})`,
      ),
    );
  const ref = appendEntry(s, { type: 'conf', change });
  s.pendingConfIndex = ref.index;
  // Counting starts now with the new configuration too: its members need progress at once.
  syncProgress(s);
  return ok(ref);
}

/**
 * Applies a committed configuration entry (skipped, on every node alike, if invalid); a leader it
 * removes starts handing over.
 */
export function applyConfEntry(s: RaftState, e: ConfEntry): void {
  const next = applyConfChange(s.config, e.change);
  if (!next.ok) {
    // Deterministic on every node (same entries, same order, same starting configuration).
    s.traceEvent('conf-change-ignored', { index: e.index, reason: next.error.message });
    return;
  }
  setConfig(s, next.value);
  s.traceEvent('conf-applied', { index: e.index, config: formatConfig(s.config) });
  if (s.role !== 'leader') return;
  if (!canLead(s.config, s.id) && s.leaving === null) {
    s.leaving = { confIndex: e.index, timeoutNowElapsed: s.cfg.electionTicks };
    s.traceEvent('leader-removed', { index: e.index, config: formatConfig(s.config) });
  }
  if (maybeCommit(s)) bcastAppend(s);
  maybeHandOver(s);
}

/** Installs `next` as the applied configuration; a leader resyncs progress and restarts its lease. */
export function setConfig(s: RaftState, next: ClusterConfig): void {
  s.config = next;
  if (s.fencedPeer !== null && !isVoter(next, s.fencedPeer)) {
    s.traceEvent('fenced-peer-demoted', { peer: s.fencedPeer, config: formatConfig(next) });
    s.fencedPeer = null;
  }
  if (s.role !== 'leader') return;
  syncProgress(s);
  // Acknowledgements were counted under the old configuration: the lease starts over.
  s.leaseUntilTick = 0;
  for (const pr of s.progress.values()) pr.ackedRound = 0;
  if (s.leadTransferee !== null && !isVoter(next, s.leadTransferee)) s.leadTransferee = null;
}

/**
 * A removed leader hands over (etcd-io/raft keeps a removed leader leading, too). Stepping down
 * at once can leave the cluster without any node able to campaign: the remaining voters may not
 * know yet that the removal committed (they still count with a configuration in which the old
 * leader's vote is needed). So the leader keeps replicating, without counting itself, until a
 * quorum of every counted configuration has acknowledged a heartbeat carrying a commit index
 * at or past the removal; then it sends `MsgTimeoutNow` to the most up-to-date data voter,
 * again every election timeout until a newer term appears (that is when it steps down, as any
 * leader does on seeing a higher term). Check-quorum still deposes it if it loses the quorum.
 */
export function maybeHandOver(s: RaftState): void {
  const leaving = s.leaving;
  if (leaving === null || s.role !== 'leader' || !removalKnown(s, leaving.confIndex)) return;
  const target = successor(s);
  if (target === null) return;
  if (s.leadTransferee !== target) {
    s.leadTransferee = target;
    s.transferElapsed = 0;
    s.traceEvent('hand-over', { to: target, index: leaving.confIndex });
  }
  const pr = s.progress.get(target);
  if (pr === undefined || pr.match < s.log.lastIndex()) return; // replication catches it up first
  if (leaving.timeoutNowElapsed < s.cfg.electionTicks) return;
  leaving.timeoutNowElapsed = 0;
  sendTimeoutNow(s, target);
}

/** True when a quorum of every counted configuration knows that entry `index` is committed. */
function removalKnown(s: RaftState, index: LogIndex): boolean {
  if (s.log.committed < index) return false;
  const knowers = new Set<NodeId>();
  for (const [id, pr] of s.progress) if (id !== s.id && pr.commitKnown >= index) knowers.add(id);
  if (s.fencedPeer !== null) knowers.add(s.fencedPeer);
  return quorumConfigs(s).every((c) => hasQuorum(jointQuorumConfig(c), knowers));
}

/** The data voter other than the leader with the highest match (recently active ones first), or null. */
export function successor(s: RaftState): NodeId | null {
  let best: NodeId | null = null;
  let bestKey = -1;
  for (const [id, pr] of s.progress) {
    if (id === s.id || !canLead(s.config, id)) continue;
    const key = pr.match * 2 + (pr.recentActive ? 1 : 0);
    if (key > bestKey) {
      best = id;
      bestKey = key;
    }
  }
  return best;
}

/** Leader: once a joint configuration with auto-leave is applied, propose leaving it. */
export function maybeAutoLeave(s: RaftState): void {
  if (s.role !== 'leader' || !isJoint(s.config) || !s.config.autoLeave) return;
  if (s.pendingConfIndex > s.log.applied || s.leadTransferee !== null) return;
  const r = proposeConfChange(s, { changes: [], autoLeave: false });
  if (r.ok) s.traceEvent('auto-leave-proposed', { index: r.value.index });
}
