/**
 * The pure Raft core: a synchronous, deterministic state machine in the etcd-io/raft style.
 *
 * Inputs: `step(message)`, `tick()`, `propose`, `proposeConfChange`, `readIndex`,
 * `transferLeadership`, `handOver`, `reportUnreachable`/`reportSnapshot`, `peerGone`. Output: `ready()` returns a `Ready`
 * batch whose ordering contract is in `ready.ts`; `advance(ready)` acknowledges it. No clock,
 * socket, file or global randomness: time is `tick()`, randomness is the injected `Prng`.
 *
 * Mechanisms: pre-vote and check-quorum elections with a randomised timeout in
 * [electionTicks, 2*electionTicks); log replication with probe/replicate/snapshot flow control;
 * fast conflict backtracking by term; commit of current-term entries by weighted quorum
 * (`src/quorum`); read-index and leader-lease reads; snapshots and compaction; joint-consensus
 * configuration changes applied when committed entries are applied; leadership transfer.
 *
 * votequorum options: expected votes and the tie-breaker come with the replicated configuration
 * (`cluster-config.ts`); wait_for_all and the election explanations are in `quorum-options.ts`;
 * witnesses (vote, acknowledge, never lead, receive entries without data) in `witness.ts`.
 * last_man_standing is a configuration change proposed from outside (`lastManStandingStep`);
 * two_node: `peerFenced` (the fencing layer won the fence race) counts the peer until its demotion (docs/raft.md).
 *
 * Layout (etcd keeps `tracker/`, `log.go`, `confchange/` and the per-role step functions apart
 * the same way): this file holds only `RaftCore`, the public face: its inputs, `Ready` and
 * `advance`, and its queries. The node's state is a `RaftState` (`raft-state.ts`, which lists
 * the concern files), and the protocol is plain functions over it, one file per concern:
 * `raft-step.ts` (roles, per-role tick and step), `election.ts`, `replication.ts`,
 * `snapshot-transfer.ts`, `read-index.ts` (reads and the lease), `conf-change.ts` and
 * `quorum-configs.ts` (counting with every configuration in the log).
 */
import { assert } from '../lib/assert.js';
import { err, ok, type Result } from '../lib/errors.js';
import { logIndex, type LogIndex, type NodeId, type Term } from '../lib/ids.js';
import { RAFT_ENTRY_BYTES_MAX, RAFT_READ_CONTEXT_BYTES_MAX, RAFT_READ_INDEX_PENDING_MAX } from '../constants.js';
import { confStateFromConfig, formatConfig, isJoint, isVoter, isWitness } from './cluster-config.js';
import { RaftError } from './raft-error.js';
import { validateRaftConfig, type RaftConfig } from './raft-config.js';
import { entrySizeBytes, type ConfChange, type ConfState, type Entry, type RaftMessage } from './raft-message.js';
import type { RaftRole, Ready } from './ready.js';
import { needsPersist, RaftState } from './raft-state.js';
import { stepMessage, tickLeader } from './raft-step.js';
import { leaderGone, maybeDeferredCampaign, startCampaign, tickElection } from './election.js';
import {
  appendEntry,
  bcastAppend,
  flushLeader,
  maybeCommit,
  refuseProposal,
  sendAppend,
  sendTimeoutNow,
} from './replication.js';
import { leaderRead, leaseValid } from './read-index.js';
import {
  applyConfEntry,
  bootstrapThroughLog,
  maybeAutoLeave,
  proposeConfChange,
  replayConfig,
  successor,
} from './conf-change.js';
import { quorumConfigs, roleConfig, traceLatestConfig } from './quorum-configs.js';

/** Where a proposal landed; it is applied iff an entry with this index *and term* is applied. */
export interface ProposalRef {
  readonly index: LogIndex;
  readonly term: Term;
}

/** A snapshot of the core's state for status displays and tests (a copy; safe to keep). */
export interface RaftStatus {
  readonly id: NodeId;
  readonly role: RaftRole;
  readonly term: Term;
  readonly vote: NodeId | null;
  readonly lead: NodeId | null;
  readonly commit: LogIndex;
  readonly applied: LogIndex;
  readonly firstIndex: LogIndex;
  readonly lastIndex: LogIndex;
  readonly config: string;
  /**
   * The latest configuration every quorum decision also counts with (`formatConfig` form): the
   * one the last configuration entry in the log produces, or `config` when none follows the
   * applied index.
   */
  readonly latestConfig: string;
  readonly confState: ConfState;
  /** Leader only: `state match=N next=N` per node, ascending. */
  readonly progress: ReadonlyMap<NodeId, string>;
  readonly leadTransferee: NodeId | null;
  /** Leader only: whether a lease read would be served without a round trip now. */
  readonly leaseValid: boolean;
}

/** One Raft node's protocol state. Not re-entrant; drive it from one event loop. */
export class RaftCore {
  readonly id: NodeId;
  /** Everything else; the concern files mutate it only from inside one of the inputs below. */
  private readonly s: RaftState;

  /** Builds a core from its durable state. Throws `RaftError` (`CONFIG_INVALID`) on a bad config. */
  constructor(config: RaftConfig) {
    const valid = validateRaftConfig(config);
    if (!valid.ok) throw valid.error;
    this.id = config.id;
    this.s = new RaftState(config);
    if (config.applied !== undefined && config.applied > this.s.log.applied)
      replayConfig(this.s, logIndex(config.applied));
    if (config.bootstrapEntry === true) bootstrapThroughLog(this.s);
    // A restarted node may have acknowledged a lease it no longer remembers; a fresh one (term 0) cannot.
    if (config.readMode === 'lease' && this.s.term > 0) this.s.quietTicks = config.electionTicks;
    this.s.resetRandomizedElectionTimeout();
    this.s.traceEvent('start', { config: formatConfig(this.s.config), last: this.s.log.lastIndex() });
    traceLatestConfig(this.s);
  }

  /** Advances logical time by one tick (elections, heartbeats, check-quorum, lease, transfer timeout). */
  tick(): void {
    this.s.ticks++;
    if (this.s.quietTicks > 0) this.s.quietTicks--;
    if (this.s.role === 'leader') tickLeader(this.s);
    else tickElection(this.s);
  }

  /** Feeds one message from a peer (already validated by `validateRaftMessage`). */
  step(m: RaftMessage): void {
    stepMessage(this.s, m);
  }

  /** Starts an election now (as if the election timeout fired), e.g. for a scripted test. */
  campaign(): void {
    startCampaign(this.s, this.s.cfg.preVote ? 'pre-vote' : 'election');
  }

  /**
   * Appends `data` as a new entry (leader only). Errors: `NOT_LEADER` (with `leaderHint`),
   * `TRANSFER_IN_PROGRESS`, `PROPOSAL_TOO_LARGE`, `PROPOSALS_BACKLOGGED`. Success does not mean
   * committed: the entry may still be lost to a leader change; watch for it in `committedEntries`.
   */
  propose(data: Uint8Array): Result<ProposalRef, RaftError> {
    if (data.length > RAFT_ENTRY_BYTES_MAX)
      return err(
        new RaftError(
          'PROPOSAL_TOO_LARGE',
          `entry of ${data.length} bytes exceeds the limit of ${RAFT_ENTRY_BYTES_MAX}; split it`,
        ),
      );
    const refused = refuseProposal(
      this.s,
      entrySizeBytes({ type: 'normal', term: this.s.term, index: logIndex(1), data }),
    );
    if (refused !== null) return err(refused);
    return ok(appendEntry(this.s, { type: 'normal', data }));
  }

  /**
   * Proposes a configuration change (leader only); it takes effect when applied. Errors as for
   * `propose`, plus `CONF_CHANGE_PENDING` (one change at a time) and `CONF_CHANGE_INVALID`.
   */
  proposeConfChange(change: ConfChange): Result<ProposalRef, RaftError> {
    return proposeConfChange(this.s, change);
  }

  /**
   * Requests a linearizable read. The answer arrives as a `ReadState` with the same `context`
   * (compare bytes) in a later Ready: serve the read once applied >= its index. A request may
   * be dropped silently when leadership changes; callers time out and retry. A witness refuses
   * with `NOT_LEADER` (hinting the leader): it holds no data to read.
   */
  readIndex(context: Uint8Array): Result<void, RaftError> {
    if (context.length > RAFT_READ_CONTEXT_BYTES_MAX)
      return err(
        new RaftError(
          'READ_CONTEXT_TOO_LARGE',
          `read context of ${context.length} bytes exceeds ${RAFT_READ_CONTEXT_BYTES_MAX}`,
        ),
      );
    if (this.s.readStates.length >= RAFT_READ_INDEX_PENDING_MAX)
      return err(
        new RaftError('READ_QUEUE_FULL', 'too many read states are waiting for the next Ready; process Ready batches'),
      );
    if (this.s.role === 'leader') return leaderRead(this.s, this.id, context);
    if (
      isWitness(this.s.config, this.id) ||
      isWitness(roleConfig(this.s, this.id), this.id) ||
      this.s.holdsMetadataOnly()
    ) {
      return err(
        new RaftError(
          'NOT_LEADER',
          `node ${this.id} is a witness (or holds a witness's copy of the log): it has no entry data to serve reads from; read from the leader or a data node`,
          this.s.lead,
        ),
      );
    }
    if (this.s.lead === null)
      return err(new RaftError('NOT_LEADER', 'no leader is known; retry after an election', null));
    this.s.send({ type: 'MsgReadIndex', from: this.id, to: this.s.lead, term: this.s.term, context });
    return ok(undefined);
  }

  /**
   * Hands leadership to voter `to` (leader only): proposals are refused until it completes or
   * times out after an election timeout. `TRANSFER_INVALID` unless `to` is a voter.
   */
  transferLeadership(to: NodeId): Result<void, RaftError> {
    if (this.s.role !== 'leader')
      return err(new RaftError('NOT_LEADER', 'only the leader can transfer leadership', this.s.lead));
    if (to === this.id) return ok(undefined);
    if (!isVoter(this.s.config, to))
      return err(new RaftError('TRANSFER_INVALID', `node ${to} is not a voter of ${formatConfig(this.s.config)}`));
    if (isWitness(this.s.config, to))
      return err(
        new RaftError(
          'TRANSFER_INVALID',
          `node ${to} is a witness: it stores no entry data and can never lead; transfer to a data voter`,
        ),
      );
    if (this.s.leadTransferee === to) return ok(undefined);
    this.s.leadTransferee = to;
    this.s.transferElapsed = 0;
    this.s.traceEvent('transfer-start', { to });
    const pr = this.s.progress.get(to);
    if (pr !== undefined && pr.match === this.s.log.lastIndex()) sendTimeoutNow(this.s, to);
    else sendAppend(this.s, to, true);
    return ok(undefined);
  }

  /**
   * Hands leadership to the other data voter with the highest match, recently active ones first
   * (leader only): `transferLeadership` to it, which answers its id. `TRANSFER_INVALID` when no
   * other voter can lead. For a leader that must not lead (its own incarnation awaits a fence).
   */
  handOver(): Result<NodeId, RaftError> {
    if (this.s.role !== 'leader')
      return err(new RaftError('NOT_LEADER', 'only the leader can hand leadership over', this.s.lead));
    const to = successor(this.s);
    if (to === null)
      return err(new RaftError('TRANSFER_INVALID', `no voter of ${formatConfig(this.s.config)} but this one can lead`));
    const r = this.transferLeadership(to);
    return r.ok ? ok(to) : r;
  }

  /**
   * The shell has proof that `peer`'s process is gone (see `leaderGone`): a follower of `peer`
   * stops following it (its lease no longer binds this voter), and the first other voter by id
   * campaigns at once; otherwise nothing changes.
   */
  peerGone(peer: NodeId): void {
    leaderGone(this.s, peer);
  }

  /**
   * two_node (docs/raft.md "two_node"): the fencing layer proved `peer`, the only other voter of
   * this node's two-voter configuration, fenced (it won the fence race). Until a configuration
   * without `peer` as a voter is applied, the peer counts as granting every vote and
   * acknowledging every entry and round (`RaftState.fencedPeer`); the fencing layer proposes its
   * demotion to a learner. This node campaigns at once unless it leads. Safe because every entry
   * the two-voter log committed is here (commits needed both) and the peer takes part in nothing
   * while fenced; a message of the current term from the peer (a restarted incarnation) ends it. `CONF_CHANGE_INVALID` unless the applied configuration is
   * exactly the two voters, this node and `peer`, with no change in flight.
   */
  peerFenced(peer: NodeId): Result<void, RaftError> {
    const c = this.s.config;
    if (peer === this.id || isJoint(c) || c.voters.size !== 2 || !c.voters.has(this.id) || !c.voters.has(peer))
      return err(
        new RaftError(
          'CONF_CHANGE_INVALID',
          `two_node: node ${peer} cannot count as fenced: that needs a two-voter configuration of node ${this.id} and node ${peer}, and the configuration is ${formatConfig(c)}`,
        ),
      );
    this.s.fencedPeer = peer;
    this.s.traceEvent('fenced-peer', { peer });
    // A leader commits what only waited for the peer now (no acknowledgement will arrive to ask).
    if (this.s.role === 'leader' && maybeCommit(this.s)) bcastAppend(this.s);
    if (this.s.role !== 'leader' && !this.s.repairing) {
      this.s.electionElapsed = 0;
      startCampaign(this.s, this.s.cfg.preVote ? 'pre-vote' : 'election');
    }
    return ok(undefined);
  }

  /** The shell could not reach `to`: probe it again instead of streaming into the void. */
  reportUnreachable(to: NodeId): void {
    const pr = this.s.progress.get(to);
    if (this.s.role === 'leader' && pr !== undefined && pr.state === 'replicate') pr.becomeProbe();
  }

  /** The shell finished (or failed) sending a MsgSnap to `to`. */
  reportSnapshot(to: NodeId, failed: boolean): void {
    const pr = this.s.progress.get(to);
    if (this.s.role !== 'leader' || pr?.state !== 'snapshot') return;
    if (failed) pr.becomeProbe();
    else pr.probeSent = false;
  }

  /** True when `ready()` would return something to do. */
  hasReady(): boolean {
    if (this.s.outstanding !== null) return false;
    const soft = this.s.softState();
    return (
      this.s.appendPending ||
      this.s.roundNeeded ||
      this.s.outbox.length > 0 ||
      this.s.selfAfterPersist.length > 0 ||
      this.s.readStates.length > 0 ||
      this.s.log.unstableEntries().length > 0 ||
      this.s.log.unstableSnapshot() !== null ||
      soft.lead !== this.s.prevSoft.lead ||
      soft.role !== this.s.prevSoft.role ||
      this.s.hardChanged(this.s.hardState()) ||
      this.s.committedUpTo() > this.s.log.applied
    );
  }

  /** Takes the next batch of effects. At most one Ready is outstanding; see `ready.ts` for the contract. */
  ready(): Ready {
    assert(this.s.outstanding === null, 'advance() the previous Ready before taking another');
    flushLeader(this.s);
    traceLatestConfig(this.s);
    const hard = this.s.hardState();
    const hardChanged = this.s.hardChanged(hard);
    const termOrVoteChanged = hard.term !== this.s.prevHard.term || hard.vote !== this.s.prevHard.vote;
    const soft = this.s.softState();
    const softChanged = soft.lead !== this.s.prevSoft.lead || soft.role !== this.s.prevSoft.role;
    const messages: RaftMessage[] = [];
    const afterPersist: RaftMessage[] = [];
    for (const m of this.s.outbox) {
      // A message of a term or vote not yet durable could be contradicted after a crash.
      if (termOrVoteChanged || needsPersist(m)) afterPersist.push(m);
      else messages.push(m);
    }
    const entries = this.s.log.unstableEntries().slice();
    const snapshot = this.s.log.unstableSnapshot();
    const ready: Ready = {
      softState: softChanged ? soft : null,
      hardState: hardChanged ? hard : null,
      entries,
      snapshot,
      committedEntries: this.s.log.nextCommittedEntries(this.s.committedUpTo(), this.s.cfg.maxCommittedBytesPerReady),
      messages,
      messagesAfterPersist: afterPersist,
      readStates: this.s.readStates,
      mustSync: entries.length > 0 || snapshot !== null || termOrVoteChanged,
    };
    this.s.outbox = [];
    this.s.readStates = [];
    this.s.outstanding = { ready, self: this.s.selfAfterPersist };
    this.s.selfAfterPersist = [];
    return ready;
  }

  /** Acknowledges that `ready` was carried out (persisted, applied, sent) as its contract says. */
  advance(ready: Ready): void {
    const out = this.s.outstanding;
    assert(out !== null && out.ready === ready, 'advance() must be given the outstanding Ready');
    this.s.outstanding = null;
    if (ready.softState !== null) this.s.prevSoft = ready.softState;
    if (ready.hardState !== null) this.s.prevHard = ready.hardState;
    const lastEntry = ready.entries[ready.entries.length - 1];
    if (lastEntry !== undefined) this.s.log.stableTo(lastEntry.index, lastEntry.term);
    if (ready.snapshot !== null) {
      this.s.log.stableSnapTo(ready.snapshot.metadata.index);
      this.s.log.appliedTo(ready.snapshot.metadata.index);
    }
    for (const e of ready.committedEntries) {
      if (this.s.role === 'leader') this.s.uncommittedBytes = Math.max(0, this.s.uncommittedBytes - entrySizeBytes(e));
      if (e.type === 'conf') applyConfEntry(this.s, e);
      this.s.log.appliedTo(e.index);
    }
    for (const m of out.self) this.step(m);
    maybeAutoLeave(this.s);
    maybeDeferredCampaign(this.s);
  }

  /** The current configuration as of the applied index (for snapshots the application takes). */
  confState(): ConfState {
    return confStateFromConfig(this.s.config);
  }

  /** A copy of the core's state. */
  status(): RaftStatus {
    const progress = new Map<NodeId, string>();
    for (const [id, pr] of this.s.progress) progress.set(id, pr.format());
    return {
      id: this.id,
      role: this.s.role,
      term: this.s.term,
      vote: this.s.vote,
      lead: this.s.lead,
      commit: this.s.log.committed,
      applied: this.s.log.applied,
      firstIndex: this.s.log.firstIndex(),
      lastIndex: this.s.log.lastIndex(),
      config: formatConfig(this.s.config),
      latestConfig: formatConfig(quorumConfigs(this.s).at(-1) ?? this.s.config),
      confState: this.confState(),
      progress,
      leadTransferee: this.s.leadTransferee,
      leaseValid: leaseValid(this.s),
    };
  }

  /** The current term (cheap; `status()` copies much more). */
  get currentTerm(): Term {
    return this.s.term;
  }

  /** Entries in `[lo, hi)` of this node's log (tests and dumps). */
  logEntries(lo: LogIndex, hi: LogIndex): Result<Entry[], RaftError> {
    return this.s.log.entries(lo, hi, Number.MAX_SAFE_INTEGER);
  }

  /** Messages dropped because the outbox was full (they count as network loss). */
  get droppedMessageCount(): number {
    return this.s.droppedMessages;
  }

  /** True when this node is a witness in the applied configuration or the latest one in its log. */
  isWitnessHere(): boolean {
    return isWitness(this.s.config, this.id) || isWitness(roleConfig(this.s, this.id), this.id);
  }

  /** See `RaftState.holdsMetadataOnly`: this node's log holds entries without their data. */
  holdsMetadataOnly(): boolean {
    return this.s.holdsMetadataOnly();
  }

  /** True while the node is in repair mode (it neither votes nor campaigns). */
  get repairing(): boolean {
    return this.s.repairing;
  }
}
