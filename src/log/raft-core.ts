/**
 * The pure Raft core: a synchronous, deterministic state machine in the etcd-io/raft style.
 *
 * Inputs: `step(message)`, `tick()`, `propose`, `proposeConfChange`, `readIndex`,
 * `transferLeadership`, `reportUnreachable`/`reportSnapshot`. Output: `ready()` returns a `Ready`
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
 * two_node is a documented hook for the fencing layer (docs/raft.md).
 */
import { assert, assertNever } from '../lib/assert.js';
import { err, ok, type Result } from '../lib/errors.js';
import { logIndex, term as toTerm, type LogIndex, type NodeId, type Term } from '../lib/ids.js';
import {
  CLUSTER_NODES_MAX,
  RAFT_ENTRIES_PER_MESSAGE_MAX,
  RAFT_ENTRY_BYTES_MAX,
  RAFT_HEARTBEAT_ROUNDS_TRACKED_MAX,
  RAFT_OUTBOX_MESSAGES_MAX,
  RAFT_READ_CONTEXT_BYTES_MAX,
  RAFT_READ_INDEX_PENDING_MAX,
  RAFT_SNAPSHOT_BYTES_MAX,
  RAFT_UNSTABLE_ENTRIES_MAX,
} from '../constants.js';
import {
  EMPTY_CONFIG,
  applyConfChange,
  configFromConfState,
  configNodes,
  confStateFromConfig,
  formatConfig,
  isJoint,
  isVoter,
  isWitness,
  canLead,
  jointQuorumConfig,
  type ClusterConfig,
} from './cluster-config.js';
import { Progress } from './progress.js';
import { committedIndex, hasQuorum } from '../quorum/index.js';
import { electionOutcomeAll, explainElectionAll, isFreshLog, type ElectionRules } from './quorum-options.js';
import { entriesForFollower, snapshotForFollower } from './witness.js';
import { RaftError } from './raft-error.js';
import { RaftLog } from './raft-log.js';
import { validateRaftConfig, type RaftConfig } from './raft-config.js';
import {
  entrySizeBytes,
  type ConfChange,
  type ConfChangeSingle,
  type ConfEntry,
  type ConfState,
  type Entry,
  type HardState,
  type MsgApp,
  type MsgAppResp,
  type MsgHeartbeat,
  type MsgHeartbeatResp,
  type MsgReadIndex,
  type MsgReadIndexResp,
  type MsgSnap,
  type MsgVote,
  type RaftMessage,
  type SnapshotMetadata,
} from './raft-message.js';
import type { RaftRole, ReadState, Ready, SoftState } from './ready.js';

/** Where a proposal landed; it is applied iff an entry with this index *and term* is applied. */
export interface ProposalRef {
  readonly index: LogIndex;
  readonly term: Term;
}

/** A read waiting on the leader for a heartbeat round (and, early in a term, for a first commit). */
interface PendingRead {
  readonly from: NodeId;
  readonly context: Uint8Array;
  /** Read index; null until the leader has committed an entry of its term. */
  index: LogIndex | null;
  /** Heartbeat round that must be acknowledged by a quorum; 0 until `index` is known. */
  round: number;
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

type VoteKind = 'pre-vote' | 'election' | 'transfer';

/** Messages a node sends only once the Ready that produced them is durable (etcd's msgsAfterAppend). */
function needsPersist(m: RaftMessage): boolean {
  return m.type === 'MsgAppResp' || m.type === 'MsgVoteResp' || m.type === 'MsgPreVoteResp';
}

/** One Raft node's protocol state. Not re-entrant; drive it from one event loop. */
export class RaftCore {
  readonly id: NodeId;
  private readonly cfg: RaftConfig;
  private readonly log: RaftLog;
  private role: RaftRole = 'follower';
  private term: Term;
  private vote: NodeId | null;
  private lead: NodeId | null = null;
  private config: ClusterConfig = EMPTY_CONFIG;
  /** Leader only: every node of the configuration, self included. */
  private progress = new Map<NodeId, Progress>();
  /** Candidate only: votes received in this election. */
  private votes = new Map<NodeId, boolean>();
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** Local monotonic tick count (the lease clock). */
  private ticks = 0;
  /** Ticks left before this node may grant a vote after start (lease mode; see `inLease`). */
  private quietTicks = 0;
  private leadTransferee: NodeId | null = null;
  private transferElapsed = 0;
  /** Index of the latest configuration entry proposed by this leader (or found in its log). */
  private pendingConfIndex: LogIndex = logIndex(0);
  private uncommittedBytes = 0;
  /** Leader: a broadcast of new entries is due at the next `ready()` (batches proposals). */
  private appendPending = false;
  private outbox: RaftMessage[] = [];
  private selfAfterPersist: RaftMessage[] = [];
  private droppedMessages = 0;
  private readStates: ReadState[] = [];
  private pendingReads: PendingRead[] = [];
  /** Leader: the latest heartbeat round sent in this term, and the tick each round was sent. */
  private heartbeatRound = 0;
  private roundSentTick = new Map<number, number>();
  private roundNeeded = false;
  private leaseUntilTick = 0;
  /** Leader: set once TimeoutNow went out; no lease reads for the rest of the term. */
  private leaseRevoked = false;
  private prevSoft: SoftState;
  private prevHard: HardState;
  private outstanding: { ready: Ready; self: RaftMessage[] } | null = null;
  /** The current campaign is a leadership transfer (its vote requests bypass leader stickiness). */
  private campaignTransfer = false;
  /** A campaign refused while a committed configuration change was unapplied; retried at `advance`. */
  private deferredCampaign: VoteKind | null = null;
  /** Repair mode (see `RaftConfig.abstain`): no votes granted, no campaigns. */
  private abstain: boolean;
  /** False once a scan found no witness's copy here; set again when one may have arrived. */
  private mayHoldWitnessCopy = true;
  /**
   * The configurations every quorum decision needs a quorum of (see `quorumConfigs`), cached
   * with what they were derived from: the applied configuration and the last configuration
   * entry in the log (index and term identify that log prefix, by log matching).
   */
  private configsCache: {
    base: ClusterConfig;
    index: LogIndex;
    term: Term | null;
    configs: readonly ClusterConfig[];
  } | null = null;
  /**
   * Leader only: set when this leader applied a configuration that removes (or demotes) it. It
   * keeps leading, without counting itself, until a quorum of the new configuration knows the
   * removal committed, then hands over with `MsgTimeoutNow` and steps down when a newer term
   * appears (docs/raft.md, "Leader removal").
   */
  private leaving: { readonly confIndex: LogIndex; timeoutNowElapsed: number } | null = null;
  /** The latest counted configuration last traced (`conf-latest`), to trace only changes. */
  private tracedLatest: ClusterConfig | null = null;

  /** Builds a core from its durable state. Throws `RaftError` (`CONFIG_INVALID`) on a bad config. */
  constructor(config: RaftConfig) {
    const valid = validateRaftConfig(config);
    if (!valid.ok) throw valid.error;
    this.cfg = config;
    this.id = config.id;
    const init = config.storage.initialState();
    this.log = new RaftLog(config.storage, init.hardState.commit);
    this.term = init.hardState.term;
    this.vote = init.hardState.vote;
    this.config = configFromConfState(init.confState);
    if (config.bootstrapEntry === true && config.storage.firstIndex() === 1 && config.storage.lastIndex() >= 1) {
      // Bootstrapped through the log and restarted before any snapshot: entry 1 creates the
      // initial configuration again when it is re-applied, so start from nothing, as the first time.
      this.config = EMPTY_CONFIG;
    }
    this.prevHard = init.hardState;
    this.prevSoft = { lead: null, role: 'follower' };
    this.abstain = config.abstain ?? false;
    if (config.applied !== undefined && config.applied > this.log.applied) this.replayConfig(logIndex(config.applied));
    if (config.bootstrapEntry === true) this.bootstrapThroughLog();
    // A restarted node may have acknowledged a lease it no longer remembers; a fresh one (term 0) cannot.
    if (config.readMode === 'lease' && this.term > 0) this.quietTicks = config.electionTicks;
    this.resetRandomizedElectionTimeout();
    this.traceEvent('start', { config: formatConfig(this.config), last: this.log.lastIndex() });
    this.traceLatestConfig();
  }

  /**
   * See `RaftConfig.bootstrapEntry`: on a fresh node with a configured storage, replace the
   * implicit initial configuration by committed entry 1 (term 1) that creates it from nothing.
   * The entry goes out in the first Ready (persisted, then applied like any committed entry).
   */
  private bootstrapThroughLog(): void {
    // Term 1 without a vote and without entries: a crash lost entry 1 but kept the term.
    if (this.log.lastIndex() !== 0 || this.term > 1 || this.vote !== null || configNodes(this.config).length === 0)
      return;
    assert(!isJoint(this.config), 'a fresh cluster does not start in a joint configuration');
    const initial = this.config;
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
      this.traceEvent('bootstrap-entry-skipped', {
        why: built.ok ? `the entry would build ${formatConfig(built.value)}` : built.error.message,
      });
      return;
    }
    this.config = EMPTY_CONFIG;
    this.term = toTerm(1);
    this.log.append([{ type: 'conf', term: this.term, index: logIndex(1), change }]);
    this.log.commitTo(logIndex(1));
    this.traceEvent('bootstrap-entry', { changes: changes.length });
  }

  /** Re-applies the configuration changes of entries the application already applied before a restart. */
  private replayConfig(applied: LogIndex): void {
    assert(applied <= this.log.committed, `applied ${applied} beyond the durable commit index ${this.log.committed}`);
    while (this.log.applied < applied) {
      const batch = this.log.nextCommittedEntries(applied, this.cfg.maxCommittedBytesPerReady);
      assert(batch.length > 0, 'replaying applied entries must make progress');
      for (const e of batch) if (e.type === 'conf') this.applyConfEntry(e);
      this.log.appliedTo((batch[batch.length - 1] as Entry).index);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Inputs

  /** Advances logical time by one tick (elections, heartbeats, check-quorum, lease, transfer timeout). */
  tick(): void {
    this.ticks++;
    if (this.quietTicks > 0) this.quietTicks--;
    if (this.role === 'leader') this.tickLeader();
    else this.tickElection();
  }

  /** Feeds one message from a peer (already validated by `validateRaftMessage`). */
  step(m: RaftMessage): void {
    if (m.to !== this.id) {
      this.traceEvent('drop-misaddressed', { type: m.type, from: m.from, to: m.to });
      return;
    }
    if ((m.type === 'MsgVoteResp' || m.type === 'MsgPreVoteResp') && m.commitHint !== undefined)
      this.learnCommit(m.from, m.commitHint.index, m.commitHint.term);
    if (m.term > this.term) {
      if (!this.stepHigherTerm(m)) return;
    } else if (m.term < this.term) {
      this.stepLowerTerm(m);
      return;
    }
    if (m.type === 'MsgVote' || m.type === 'MsgPreVote') {
      this.handleVoteRequest(m);
      return;
    }
    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        return;
      case 'candidate':
      case 'pre-candidate':
        this.stepCandidate(m);
        return;
      case 'follower':
        this.stepFollower(m);
        return;
      default:
        assertNever(this.role, 'role');
    }
  }

  /** Starts an election now (as if the election timeout fired), e.g. for a scripted test. */
  campaign(): void {
    this.startCampaign(this.cfg.preVote ? 'pre-vote' : 'election');
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
    const refused = this.refuseProposal(entrySizeBytes({ type: 'normal', term: this.term, index: logIndex(1), data }));
    if (refused !== null) return err(refused);
    return ok(this.appendEntry({ type: 'normal', data }));
  }

  /**
   * Proposes a configuration change (leader only); it takes effect when applied. Errors as for
   * `propose`, plus `CONF_CHANGE_PENDING` (one change at a time) and `CONF_CHANGE_INVALID`.
   */
  proposeConfChange(change: ConfChange): Result<ProposalRef, RaftError> {
    const refused = this.refuseProposal(entrySizeBytes({ type: 'conf', term: this.term, index: logIndex(1), change }));
    if (refused !== null) return err(refused);
    if (this.pendingConfIndex > this.log.applied) {
      return err(
        new RaftError(
          'CONF_CHANGE_PENDING',
          `configuration change at ${this.pendingConfIndex} is not applied yet (applied ${this.log.applied}); retry after it is`,
        ),
      );
    }
    const next = applyConfChange(this.config, change);
    if (!next.ok) return next;
    const ref = this.appendEntry({ type: 'conf', change });
    this.pendingConfIndex = ref.index;
    // Counting starts now with the new configuration too: its members need progress at once.
    this.syncProgress();
    return ok(ref);
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
    if (this.readStates.length >= RAFT_READ_INDEX_PENDING_MAX)
      return err(
        new RaftError('READ_QUEUE_FULL', 'too many read states are waiting for the next Ready; process Ready batches'),
      );
    if (this.role === 'leader') return this.leaderRead(this.id, context);
    if (isWitness(this.config, this.id) || isWitness(this.roleConfig(this.id), this.id) || this.holdsWitnessCopy()) {
      return err(
        new RaftError(
          'NOT_LEADER',
          `node ${this.id} is a witness (or holds a witness's copy of the log): it has no entry data to serve reads from; read from the leader or a data node`,
          this.lead,
        ),
      );
    }
    if (this.lead === null)
      return err(new RaftError('NOT_LEADER', 'no leader is known; retry after an election', null));
    this.send({ type: 'MsgReadIndex', from: this.id, to: this.lead, term: this.term, context });
    return ok(undefined);
  }

  /**
   * Hands leadership to voter `to` (leader only): proposals are refused until it completes or
   * times out after an election timeout. `TRANSFER_INVALID` unless `to` is a voter.
   */
  transferLeadership(to: NodeId): Result<void, RaftError> {
    if (this.role !== 'leader')
      return err(new RaftError('NOT_LEADER', 'only the leader can transfer leadership', this.lead));
    if (to === this.id) return ok(undefined);
    if (!isVoter(this.config, to))
      return err(new RaftError('TRANSFER_INVALID', `node ${to} is not a voter of ${formatConfig(this.config)}`));
    if (isWitness(this.config, to))
      return err(
        new RaftError(
          'TRANSFER_INVALID',
          `node ${to} is a witness: it stores no entry data and can never lead; transfer to a data voter`,
        ),
      );
    if (this.leadTransferee === to) return ok(undefined);
    this.leadTransferee = to;
    this.transferElapsed = 0;
    this.traceEvent('transfer-start', { to });
    const pr = this.progress.get(to);
    if (pr !== undefined && pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to, true);
    return ok(undefined);
  }

  /** The shell could not reach `to`: probe it again instead of streaming into the void. */
  reportUnreachable(to: NodeId): void {
    const pr = this.progress.get(to);
    if (this.role === 'leader' && pr !== undefined && pr.state === 'replicate') pr.becomeProbe();
  }

  /** The shell finished (or failed) sending a MsgSnap to `to`. */
  reportSnapshot(to: NodeId, failed: boolean): void {
    const pr = this.progress.get(to);
    if (this.role !== 'leader' || pr?.state !== 'snapshot') return;
    if (failed) pr.becomeProbe();
    else pr.probeSent = false;
  }

  // -------------------------------------------------------------------------------------------
  // Ready / advance

  /** True when `ready()` would return something to do. */
  hasReady(): boolean {
    if (this.outstanding !== null) return false;
    const soft = this.softState();
    return (
      this.appendPending ||
      this.roundNeeded ||
      this.outbox.length > 0 ||
      this.selfAfterPersist.length > 0 ||
      this.readStates.length > 0 ||
      this.log.unstableEntries().length > 0 ||
      this.log.unstableSnapshot() !== null ||
      soft.lead !== this.prevSoft.lead ||
      soft.role !== this.prevSoft.role ||
      this.hardChanged(this.hardState()) ||
      this.committedUpTo() > this.log.applied
    );
  }

  /** Takes the next batch of effects. At most one Ready is outstanding; see `ready.ts` for the contract. */
  ready(): Ready {
    assert(this.outstanding === null, 'advance() the previous Ready before taking another');
    this.flushLeader();
    this.traceLatestConfig();
    const hard = this.hardState();
    const hardChanged = this.hardChanged(hard);
    const termOrVoteChanged = hard.term !== this.prevHard.term || hard.vote !== this.prevHard.vote;
    const soft = this.softState();
    const softChanged = soft.lead !== this.prevSoft.lead || soft.role !== this.prevSoft.role;
    const messages: RaftMessage[] = [];
    const afterPersist: RaftMessage[] = [];
    for (const m of this.outbox) {
      // A message of a term or vote not yet durable could be contradicted after a crash.
      if (termOrVoteChanged || needsPersist(m)) afterPersist.push(m);
      else messages.push(m);
    }
    const entries = this.log.unstableEntries().slice();
    const snapshot = this.log.unstableSnapshot();
    const ready: Ready = {
      softState: softChanged ? soft : null,
      hardState: hardChanged ? hard : null,
      entries,
      snapshot,
      committedEntries: this.log.nextCommittedEntries(this.committedUpTo(), this.cfg.maxCommittedBytesPerReady),
      messages,
      messagesAfterPersist: afterPersist,
      readStates: this.readStates,
      mustSync: entries.length > 0 || snapshot !== null || termOrVoteChanged,
    };
    this.outbox = [];
    this.readStates = [];
    this.outstanding = { ready, self: this.selfAfterPersist };
    this.selfAfterPersist = [];
    return ready;
  }

  /** Acknowledges that `ready` was carried out (persisted, applied, sent) as its contract says. */
  advance(ready: Ready): void {
    const out = this.outstanding;
    assert(out !== null && out.ready === ready, 'advance() must be given the outstanding Ready');
    this.outstanding = null;
    if (ready.softState !== null) this.prevSoft = ready.softState;
    if (ready.hardState !== null) this.prevHard = ready.hardState;
    const lastEntry = ready.entries[ready.entries.length - 1];
    if (lastEntry !== undefined) this.log.stableTo(lastEntry.index, lastEntry.term);
    if (ready.snapshot !== null) {
      this.log.stableSnapTo(ready.snapshot.metadata.index);
      this.log.appliedTo(ready.snapshot.metadata.index);
    }
    for (const e of ready.committedEntries) {
      if (this.role === 'leader') this.uncommittedBytes = Math.max(0, this.uncommittedBytes - entrySizeBytes(e));
      if (e.type === 'conf') this.applyConfEntry(e);
      this.log.appliedTo(e.index);
    }
    for (const m of out.self) this.step(m);
    this.maybeAutoLeave();
    this.maybeDeferredCampaign();
  }

  /** Runs a campaign deferred by `startCampaign` now that its configuration change may be applied. */
  private maybeDeferredCampaign(): void {
    const kind = this.deferredCampaign;
    if (kind === null) return;
    this.deferredCampaign = null;
    if (this.role !== 'leader') this.startCampaign(kind); // defers again while a change is still unapplied
  }

  // -------------------------------------------------------------------------------------------
  // Queries

  /** The current configuration as of the applied index (for snapshots the application takes). */
  confState(): ConfState {
    return confStateFromConfig(this.config);
  }

  /** A copy of the core's state. */
  status(): RaftStatus {
    const progress = new Map<NodeId, string>();
    for (const [id, pr] of this.progress) progress.set(id, pr.format());
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      vote: this.vote,
      lead: this.lead,
      commit: this.log.committed,
      applied: this.log.applied,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      config: formatConfig(this.config),
      latestConfig: formatConfig(this.quorumConfigs().at(-1) ?? this.config),
      confState: this.confState(),
      progress,
      leadTransferee: this.leadTransferee,
      leaseValid: this.leaseValid(),
    };
  }

  /** The current term (cheap; `status()` copies much more). */
  get currentTerm(): Term {
    return this.term;
  }

  /** Entries in `[lo, hi)` of this node's log (tests and dumps). */
  logEntries(lo: LogIndex, hi: LogIndex): Result<Entry[], RaftError> {
    return this.log.entries(lo, hi, Number.MAX_SAFE_INTEGER);
  }

  /** Messages dropped because the outbox was full (they count as network loss). */
  get droppedMessageCount(): number {
    return this.droppedMessages;
  }

  // -------------------------------------------------------------------------------------------
  // State transitions

  private softState(): SoftState {
    return { lead: this.lead, role: this.role };
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  private hardChanged(h: HardState): boolean {
    return h.term !== this.prevHard.term || h.vote !== this.prevHard.vote || h.commit !== this.prevHard.commit;
  }

  private committedUpTo(): LogIndex {
    // The apply-uncommitted canary hands out everything appended, committed or not.
    return this.cfg.canary === 'apply-uncommitted' ? this.log.lastIndex() : this.log.committed;
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.cfg.prng.int(this.cfg.electionTicks, 2 * this.cfg.electionTicks);
  }

  private reset(t: Term): void {
    if (t !== this.term) {
      assert(t > this.term, `term must not go back (${this.term} -> ${t})`);
      this.term = t;
      this.vote = null;
    }
    this.lead = null;
    this.deferredCampaign = null;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.leadTransferee = null;
    this.transferElapsed = 0;
    this.votes = new Map();
    this.progress = new Map();
    this.pendingReads = [];
    this.heartbeatRound = 0;
    this.roundSentTick = new Map();
    this.roundNeeded = false;
    this.leaseUntilTick = 0;
    this.leaseRevoked = false;
    this.appendPending = false;
    this.uncommittedBytes = 0;
    this.leaving = null;
  }

  private becomeFollower(t: Term, lead: NodeId | null): void {
    this.reset(t);
    this.role = 'follower';
    this.lead = lead;
    this.traceEvent('become-follower');
  }

  private becomePreCandidate(): void {
    assert(this.role !== 'leader', 'a leader cannot become a pre-candidate');
    // Pre-vote changes neither term nor vote: a node that cannot win disturbs nobody.
    this.votes = new Map();
    this.lead = null;
    this.role = 'pre-candidate';
    this.traceEvent('become-pre-candidate');
  }

  private becomeCandidate(): void {
    assert(this.role !== 'leader', 'a leader cannot become a candidate');
    this.reset(toTerm(this.term + 1));
    this.vote = this.id;
    this.role = 'candidate';
    this.traceEvent('become-candidate');
  }

  private becomeLeader(): void {
    assert(this.role === 'candidate', `only a candidate becomes leader (was ${this.role})`);
    this.reset(this.term);
    this.role = 'leader';
    this.lead = this.id;
    this.syncProgress();
    // A configuration entry may sit uncommitted in our log; never stack a second one on it.
    this.pendingConfIndex = this.log.lastIndex();
    this.appendEntry({ type: 'normal', data: new Uint8Array(0) });
    this.traceEvent('become-leader');
  }

  private addProgress(id: NodeId): void {
    if (this.progress.has(id)) return;
    assert(this.progress.size < CLUSTER_NODES_MAX, 'progress tracker bounded by the cluster size');
    const pr = new Progress(logIndex(this.log.lastIndex() + 1), this.cfg.maxInflightMessages);
    pr.recentActive = id === this.id;
    if (id === this.id) pr.becomeReplicate();
    this.progress.set(id, pr);
  }

  private promotable(): boolean {
    return canLead(this.config, this.id);
  }

  /**
   * True when this node holds a witness's copy of the log: a metadata-only entry, or a snapshot
   * of a configuration in which it was a witness. Such a node lacks the data of those entries, so
   * it neither campaigns nor serves reads, even after a later configuration made it a data member
   * (a former witness must join again with an empty data directory to become a data node; see
   * docs/raft.md, "Witnesses"). The scan runs only when a copy may have arrived.
   */
  /** True when this node is a witness in the applied configuration or the latest one in its log. */
  isWitnessHere(): boolean {
    return isWitness(this.config, this.id) || isWitness(this.roleConfig(this.id), this.id);
  }

  holdsWitnessCopy(): boolean {
    if (!this.mayHoldWitnessCopy) return false;
    const noData = (m: SnapshotMetadata): boolean =>
      m.metadataOnly === true || (m.confState.witnesses ?? []).includes(this.id);
    const pending = this.log.unstableSnapshot();
    if (pending !== null && noData(pending.metadata)) return true;
    const snap = this.cfg.storage.snapshot();
    if (snap.ok && noData(snap.value.metadata)) return true;
    const ents = this.log.entries(this.log.firstIndex(), logIndex(this.log.lastIndex() + 1), Number.MAX_SAFE_INTEGER);
    if (ents.ok && ents.value.some((e) => e.type === 'normal' && e.metadataOnly === true)) return true;
    if (ents.ok) this.mayHoldWitnessCopy = false;
    return !ents.ok;
  }

  // -------------------------------------------------------------------------------------------
  // Ticks

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      if (this.role !== 'follower')
        this.traceEvent('election-not-won', {
          why: explainElectionAll(this.quorumConfigs(), this.votes, this.electionRules()),
        });
      this.startCampaign(this.cfg.preVote ? 'pre-vote' : 'election');
      return;
    }
    if (
      (this.role === 'pre-candidate' || this.role === 'candidate') &&
      this.electionElapsed % this.cfg.heartbeatTicks === 0 &&
      !this.voteRequestsUnsent()
    )
      this.sendVoteRequests();
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    for (const pr of this.progress.values()) pr.stateTicks++;
    if (this.leaving !== null) this.leaving.timeoutNowElapsed++;
    if (this.leadTransferee !== null && ++this.transferElapsed >= this.cfg.electionTicks) {
      this.traceEvent('transfer-timeout', { to: this.leadTransferee });
      this.leadTransferee = null;
    }
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum && !this.checkQuorumActive()) {
        this.traceEvent('step-down-check-quorum');
        this.becomeFollower(this.term, null);
        return;
      }
      this.retryStaleSnapshots();
    }
    this.maybeAutoLeave();
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
    }
    this.maybeHandOver();
  }

  /** True when a quorum was heard from since the last check; clears the marks for the next round. */
  private checkQuorumActive(): boolean {
    const active = new Set<NodeId>();
    for (const [id, pr] of this.progress) {
      if (id === this.id || pr.recentActive) active.add(id);
      if (id !== this.id) pr.recentActive = false;
    }
    return this.quorumConfigs().every((c) => hasQuorum(jointQuorumConfig(c), active));
  }

  /** A MsgSnap may have been lost: after an election timeout without an answer, probe again. */
  private retryStaleSnapshots(): void {
    for (const pr of this.progress.values())
      if (pr.state === 'snapshot' && pr.stateTicks >= this.cfg.electionTicks) pr.becomeProbe();
  }

  // -------------------------------------------------------------------------------------------
  // Elections

  private startCampaign(kind: VoteKind): void {
    if (this.abstain) {
      this.traceEvent('campaign-ignored-repairing');
      return;
    }
    if (!this.promotable()) {
      this.traceEvent(isWitness(this.config, this.id) ? 'campaign-ignored-witness' : 'campaign-ignored-not-voter');
      return;
    }
    if (this.holdsWitnessCopy()) {
      this.traceEvent('campaign-ignored-witness-copy');
      return;
    }
    if (this.role === 'leader') return;
    if (this.unappliedConfChange()) {
      // etcd's (Campaign) invariant: a configuration takes effect when applied, so counting votes
      // while a committed change is unapplied could use a configuration two steps old and elect a
      // second leader in this term (docs/raft.md, "Why this is safe"). The campaign runs once the
      // change is applied (a leadership transfer arriving just before the commit is not lost).
      this.deferredCampaign = kind;
      this.traceEvent('campaign-deferred-unapplied-conf', { applied: this.log.applied, committed: this.log.committed });
      return;
    }
    if (kind === 'pre-vote') this.becomePreCandidate();
    else this.becomeCandidate();
    if (kind === 'pre-vote') {
      // A pre-vote binds nothing, so our own counts at once; a real vote only once durable.
      if (this.poll(this.id, true)) return;
    } else {
      this.selfAfterPersist.push({ type: 'MsgVoteResp', from: this.id, to: this.id, term: this.term, reject: false });
    }
    this.campaignTransfer = kind === 'transfer';
    this.sendVoteRequests();
  }

  /** True while earlier vote requests still wait in the outbox (not handed out in a Ready yet). */
  private voteRequestsUnsent(): boolean {
    return this.outbox.some((m) => m.type === 'MsgVote' || m.type === 'MsgPreVote');
  }

  /**
   * (Pre-)candidate: asks every voter of every counted configuration that has not answered yet.
   * Called when the campaign starts and again every heartbeat interval while it lasts, so one lost
   * request or answer does not cost a whole election timeout (with a bare quorum under loss,
   * needing every grant in a single exchange could stall elections indefinitely). A repeat is
   * harmless: a pre-vote binds nothing, and a voter grants a real vote again only to the
   * candidate it already voted for in that term.
   */
  private sendVoteRequests(): void {
    assert(this.role === 'pre-candidate' || this.role === 'candidate', 'only a campaign asks for votes');
    const pre = this.role === 'pre-candidate';
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const id of this.voteTargets()) {
      if (id === this.id || this.votes.has(id)) continue;
      this.send({
        type: pre ? 'MsgPreVote' : 'MsgVote',
        from: this.id,
        to: id,
        term: toTerm(pre ? this.term + 1 : this.term),
        logTerm: lastTerm,
        index: lastIndex,
        transfer: this.campaignTransfer,
      });
    }
  }

  /** True when a configuration change is committed but not applied yet (it takes effect at `advance`). */
  private unappliedConfChange(): boolean {
    if (this.log.committed <= this.log.applied) return false;
    // Campaigns are rare and entries after the applied index are never compacted.
    const r = this.log.entries(this.firstUnappliedHeld(), logIndex(this.log.committed + 1), Number.MAX_SAFE_INTEGER);
    assert(r.ok, 'committed entries after the applied index are still in the log');
    return r.value.some((e) => e.type === 'conf');
  }

  /** The voters of every configuration counted (see `quorumConfigs`), ascending. */
  private voteTargets(): NodeId[] {
    const ids = new Set<NodeId>();
    for (const c of this.quorumConfigs()) {
      for (const id of c.voters.keys()) ids.add(id);
      for (const id of c.outgoing.keys()) ids.add(id);
      if (this.cfg.canary === 'count-learner-vote') for (const id of c.learners) ids.add(id);
    }
    return [...ids].sort((a, b) => a - b);
  }

  /** How this node counts its elections now (wait_for_all applies only while its log is fresh). */
  private electionRules(): ElectionRules {
    const fresh = isFreshLog(this.log.lastIndex(), this.log.lastTerm(), this.cfg.bootstrapEntry === true);
    return {
      waitForAll: this.cfg.waitForAll === true && fresh,
      learnerVotes: this.cfg.canary === 'count-learner-vote',
    };
  }

  /** Records a vote; returns true when the election was decided (and acted upon). */
  private poll(from: NodeId, granted: boolean): boolean {
    if (!this.votes.has(from)) this.votes.set(from, granted);
    const outcome = electionOutcomeAll(this.quorumConfigs(), this.votes, this.electionRules());
    switch (outcome) {
      case 'won':
        if (this.role === 'pre-candidate') this.startCampaign('election');
        else this.becomeLeader();
        return true;
      case 'lost':
        this.traceEvent('election-lost', {
          why: explainElectionAll(this.quorumConfigs(), this.votes, this.electionRules()),
        });
        this.becomeFollower(this.term, null);
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
  private inLease(): boolean {
    if (this.quietTicks > 0) return true;
    return this.cfg.checkQuorum && this.lead !== null && this.electionElapsed < this.cfg.electionTicks;
  }

  /** Handles a message of a higher term; returns false when it was consumed or ignored. */
  private stepHigherTerm(m: RaftMessage): boolean {
    if (m.type === 'MsgVote' || m.type === 'MsgPreVote') {
      if (!m.transfer && this.inLease()) {
        this.traceEvent('vote-ignored-in-lease', { type: m.type, from: m.from, msgTerm: m.term });
        return false;
      }
      if (m.type === 'MsgPreVote') return true; // never bump our term for a pre-vote
    }
    if (m.type === 'MsgPreVoteResp' && !m.reject) return true; // a grant carries the future term
    const leaderMsg = m.type === 'MsgApp' || m.type === 'MsgHeartbeat' || m.type === 'MsgSnap';
    this.becomeFollower(m.term, leaderMsg ? m.from : null);
    return true;
  }

  /**
   * A refusing voter's commit index (`MsgVoteResp.commitHint`): a commit index is only ever a
   * committed index, and holding the same (index, term) means holding the same entries up to it
   * (log matching), so ours are committed up to there too. Term-independent, like any fact about
   * commitment; a wrong or stale hint that does not match our log is ignored.
   */
  private learnCommit(from: NodeId, index: LogIndex, t: Term): void {
    if (index <= this.log.committed || !this.log.matchTerm(index, t)) return;
    this.log.commitTo(index);
    this.traceEvent('commit-learned', { from, index });
  }

  /** The hint a refusal carries (see `learnCommit`), or nothing before the first commit. */
  private commitHint(): { commitHint: { index: LogIndex; term: Term } } | Record<string, never> {
    const t = this.log.termOrNull(this.log.committed);
    return this.log.committed === 0 || t === null ? {} : { commitHint: { index: this.log.committed, term: t } };
  }

  private stepLowerTerm(m: RaftMessage): void {
    if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === 'MsgApp' || m.type === 'MsgHeartbeat')) {
      // A stale leader (e.g. healed from a partition) learns our term and steps down; without
      // this, pre-vote could leave it stuck never hearing about the newer term.
      this.send({
        type: 'MsgAppResp',
        from: this.id,
        to: m.from,
        term: this.term,
        index: logIndex(0),
        reject: false,
        rejectHint: logIndex(0),
        logTerm: toTerm(0),
      });
    } else if (m.type === 'MsgPreVote') {
      this.send({
        type: 'MsgPreVoteResp',
        from: this.id,
        to: m.from,
        term: this.term,
        reject: true,
        ...this.commitHint(),
      });
    }
  }

  private handleVoteRequest(m: MsgVote): void {
    const respType = m.type === 'MsgVote' ? 'MsgVoteResp' : 'MsgPreVoteResp';
    const canVote =
      this.vote === m.from ||
      (this.vote === null && this.lead === null) ||
      (m.type === 'MsgPreVote' && m.term > this.term) ||
      (this.cfg.canary === 'double-vote' && m.type === 'MsgVote');
    if (canVote && !this.abstain && this.log.isUpToDate(m.index, m.logTerm)) {
      this.send({ type: respType, from: this.id, to: m.from, term: m.term, reject: false });
      if (m.type === 'MsgVote') {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
      this.traceEvent('vote-granted', { type: m.type, to: m.from, msgTerm: m.term });
    } else {
      this.send({ type: respType, from: this.id, to: m.from, term: this.term, reject: true, ...this.commitHint() });
    }
  }

  // -------------------------------------------------------------------------------------------
  // Role step functions

  private stepLeader(m: RaftMessage): void {
    switch (m.type) {
      case 'MsgAppResp':
        this.handleAppendResponse(m);
        return;
      case 'MsgHeartbeatResp':
        this.handleHeartbeatResponse(m);
        return;
      case 'MsgReadIndex':
        this.handleReadIndexRequest(m);
        return;
      case 'MsgApp':
      case 'MsgHeartbeat':
      case 'MsgSnap':
        // Two leaders in one term: only a planted canary may cause it; let the checkers see it.
        assert(this.cfg.canary !== undefined, `two leaders in term ${this.term}: ${m.from} and ${this.id}`);
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

  private stepCandidate(m: RaftMessage): void {
    switch (m.type) {
      case 'MsgApp':
      case 'MsgHeartbeat':
      case 'MsgSnap':
        // A leader exists in our term: it won, we lost.
        this.becomeFollower(this.term, m.from);
        this.stepFollower(m);
        return;
      case 'MsgVoteResp':
      case 'MsgPreVoteResp':
        if ((m.type === 'MsgVoteResp') === (this.role === 'candidate')) this.poll(m.from, !m.reject);
        return;
      case 'MsgReadIndex':
        this.send({
          type: 'MsgReadIndexResp',
          from: this.id,
          to: m.from,
          term: this.term,
          context: m.context,
          index: logIndex(0),
          reject: true,
        });
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

  private stepFollower(m: RaftMessage): void {
    switch (m.type) {
      case 'MsgApp':
        this.heardFromLeader(m.from);
        this.handleAppend(m);
        this.maybeEndRepair(m.commit);
        return;
      case 'MsgHeartbeat':
        this.heardFromLeader(m.from);
        this.handleHeartbeat(m);
        return;
      case 'MsgSnap':
        this.heardFromLeader(m.from);
        this.handleSnapshot(m);
        return;
      case 'MsgTimeoutNow':
        this.traceEvent('timeout-now', { from: m.from });
        this.startCampaign('transfer');
        return;
      case 'MsgReadIndexResp':
        if (!m.reject && this.readStates.length < RAFT_READ_INDEX_PENDING_MAX)
          this.readStates.push({ index: m.index, context: m.context });
        return;
      case 'MsgReadIndex':
        this.send({
          type: 'MsgReadIndexResp',
          from: this.id,
          to: m.from,
          term: this.term,
          context: m.context,
          index: logIndex(0),
          reject: true,
        });
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
  private maybeEndRepair(leaderCommit: LogIndex): void {
    if (!this.abstain || this.lead === null) return;
    const committed = this.log.committed;
    if (committed === 0 || committed < leaderCommit || this.log.termOrNull(committed) !== this.term) return;
    this.abstain = false;
    this.traceEvent('repair-complete', { committed });
  }

  /** True while the node is in repair mode (it neither votes nor campaigns). */
  get abstaining(): boolean {
    return this.abstain;
  }

  private heardFromLeader(from: NodeId): void {
    this.electionElapsed = 0;
    this.lead = from;
    this.deferredCampaign = null; // a leader exists: a campaign deferred for a pending change is moot
  }

  // -------------------------------------------------------------------------------------------
  // Follower side of replication

  private handleAppend(m: MsgApp): void {
    if (m.index < this.log.committed) {
      this.sendAppendResponse(m.from, this.log.committed, false);
      return;
    }
    if (m.entries.some((e) => e.type === 'normal' && e.metadataOnly === true)) this.mayHoldWitnessCopy = true;
    const lastNew = this.log.maybeAppend(
      m.index,
      m.logTerm,
      m.commit,
      m.entries,
      this.cfg.canary === 'skip-log-matching',
    );
    if (lastNew !== null) {
      this.sendAppendResponse(m.from, lastNew, false);
      return;
    }
    // Find the last index that may still match, skipping a whole term per round trip.
    const [hint, hintTerm] = this.log.findConflictByTerm(logIndex(Math.min(m.index, this.log.lastIndex())), m.logTerm);
    this.send({
      type: 'MsgAppResp',
      from: this.id,
      to: m.from,
      term: this.term,
      index: m.index,
      reject: true,
      rejectHint: hint,
      logTerm: hintTerm,
    });
  }

  private sendAppendResponse(to: NodeId, index: LogIndex, reject: boolean): void {
    this.send({
      type: 'MsgAppResp',
      from: this.id,
      to,
      term: this.term,
      index,
      reject,
      rejectHint: logIndex(0),
      logTerm: toTerm(0),
    });
  }

  private handleHeartbeat(m: MsgHeartbeat): void {
    // The leader sends min(match, commit); a follower that lost acknowledged entries (a corrupt
    // WAL discarded in repair mode) holds less than that. Never commit what is not held: the
    // entries held up to there are the leader's (see handleAppendResponse for the re-probe).
    this.log.commitTo(logIndex(Math.min(m.commit, this.log.lastIndex())));
    this.send({ type: 'MsgHeartbeatResp', from: this.id, to: m.from, term: this.term, round: m.round });
  }

  private handleSnapshot(m: MsgSnap): void {
    const meta = m.snapshot.metadata;
    if (meta.metadataOnly === true || (meta.confState.witnesses ?? []).includes(this.id))
      this.mayHoldWitnessCopy = true;
    if (meta.index <= this.log.committed) {
      this.sendAppendResponse(m.from, this.log.committed, false);
      return;
    }
    // Unlike etcd, a snapshot whose configuration predates this node's admission is accepted:
    // the node learns of its membership by applying the later entries, instead of stalling until
    // the leader happens to take a newer snapshot.
    const cfg = configFromConfState(meta.confState);
    if (this.log.matchTerm(meta.index, meta.term)) {
      // We already hold the snapshot's last entry: just learn that it is committed.
      this.log.commitTo(meta.index);
    } else {
      this.log.restore(m.snapshot);
      this.setConfig(cfg);
      this.traceEvent('snapshot-restored', { index: meta.index, snapTerm: meta.term });
    }
    this.sendAppendResponse(m.from, this.log.lastIndex(), false);
  }

  // -------------------------------------------------------------------------------------------
  // Leader side of replication

  /** Refusal reasons common to every proposal, or null when the leader accepts it. */
  private refuseProposal(sizeBytes: number): RaftError | null {
    if (this.role !== 'leader')
      return new RaftError('NOT_LEADER', `node ${this.id} is not the leader; propose on the leader`, this.lead);
    if (this.leaving !== null)
      return new RaftError(
        'TRANSFER_IN_PROGRESS',
        `node ${this.id} was removed from the configuration and is handing leadership over; retry on the next leader shortly`,
        this.leadTransferee,
      );
    if (this.leadTransferee !== null)
      return new RaftError(
        'TRANSFER_IN_PROGRESS',
        `leadership is moving to ${this.leadTransferee}; retry shortly`,
        this.leadTransferee,
      );
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + sizeBytes > this.cfg.maxUncommittedBytes) {
      return new RaftError(
        'PROPOSALS_BACKLOGGED',
        `${this.uncommittedBytes} bytes are uncommitted (limit ${this.cfg.maxUncommittedBytes}); wait for commits`,
      );
    }
    if (this.log.unstableEntries().length >= RAFT_UNSTABLE_ENTRIES_MAX) {
      return new RaftError(
        'PROPOSALS_BACKLOGGED',
        `${RAFT_UNSTABLE_ENTRIES_MAX} entries await persistence; process Ready batches`,
      );
    }
    return null;
  }

  /** Leader: appends one entry of the current term; broadcast happens at the next `ready()`. */
  private appendEntry(body: { type: 'normal'; data: Uint8Array } | { type: 'conf'; change: ConfChange }): ProposalRef {
    assert(this.role === 'leader', 'only a leader appends new entries');
    const index = logIndex(this.log.lastIndex() + 1);
    const entry: Entry =
      body.type === 'normal'
        ? { type: 'normal', term: this.term, index, data: body.data }
        : { type: 'conf', term: this.term, index, change: body.change };
    this.log.append([entry]);
    this.uncommittedBytes += entrySizeBytes(entry);
    // Our own acknowledgement counts only once the entry is durable (stepped in advance()).
    this.selfAfterPersist = this.selfAfterPersist.filter((m) => m.type !== 'MsgAppResp');
    this.selfAfterPersist.push({
      type: 'MsgAppResp',
      from: this.id,
      to: this.id,
      term: this.term,
      index,
      reject: false,
      rejectHint: logIndex(0),
      logTerm: toTerm(0),
    });
    this.appendPending = true;
    return { index, term: this.term };
  }

  /** Work deferred to `ready()` so that a burst of proposals or reads costs one broadcast. */
  private flushLeader(): void {
    if (this.role !== 'leader') return;
    if (this.appendPending) {
      this.appendPending = false;
      this.bcastAppend();
    }
    if (this.roundNeeded) this.bcastHeartbeat();
  }

  private bcastAppend(): void {
    for (const id of this.progress.keys()) if (id !== this.id) this.sendAppend(id, true);
  }

  /** Sends entries (or a snapshot) to `to` if flow control allows; returns true if something was sent. */
  private sendAppend(to: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(to);
    if (pr === undefined || to === this.id || pr.isPaused()) return false;
    const prevIndex = logIndex(pr.next - 1);
    const prevTerm = this.log.termOrNull(prevIndex);
    const last = this.log.lastIndex();
    const ents =
      pr.next <= last ? this.log.entries(pr.next, logIndex(last + 1), this.cfg.maxMessageBytes) : ok<Entry[]>([]);
    if (prevTerm === null || !ents.ok) return this.sendSnapshot(to, pr);
    const entries = entriesForFollower(this.roleConfig(to), to, ents.value.slice(0, RAFT_ENTRIES_PER_MESSAGE_MAX));
    if (entries.length === 0 && !sendIfEmpty) return false;
    this.send({
      type: 'MsgApp',
      from: this.id,
      to,
      term: this.term,
      logTerm: prevTerm,
      index: prevIndex,
      entries,
      commit: this.log.committed,
    });
    const lastSent = entries[entries.length - 1];
    pr.sentEntries(lastSent === undefined ? prevIndex : lastSent.index, entries.length);
    return true;
  }

  private sendSnapshot(to: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) return false; // do not ship a snapshot into a partition
    const snap = this.cfg.storage.snapshot();
    if (!snap.ok) {
      this.traceEvent('snapshot-unavailable', { to });
      return false;
    }
    if (snap.value.data.length > RAFT_SNAPSHOT_BYTES_MAX) {
      this.traceEvent('snapshot-too-large', { to, bytes: snap.value.data.length });
      return false;
    }
    const index = snap.value.metadata.index;
    assert(index > 0, 'entries were compacted, so a snapshot must exist');
    pr.becomeSnapshot(index);
    this.send({
      type: 'MsgSnap',
      from: this.id,
      to,
      term: this.term,
      snapshot: snapshotForFollower(this.roleConfig(to), to, snap.value),
    });
    this.traceEvent('snapshot-sent', { to, index });
    return true;
  }

  private handleAppendResponse(m: MsgAppResp): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    if (m.reject) {
      let probe = m.rejectHint;
      if (m.logTerm > 0) probe = this.log.findConflictByTerm(m.rejectHint, m.logTerm)[0];
      if (pr.match > 0 && m.index === pr.match && m.rejectHint < pr.match) {
        // The follower no longer holds the entry it acknowledged at `match`: it lost part of its
        // log (a corrupt WAL discarded in repair mode). A stale rejection can look the same; both
        // are handled by forgetting the match and probing again (it only costs a resend).
        this.traceEvent('follower-lost-entries', { from: m.from, match: pr.match, hint: m.rejectHint });
        pr.forgetMatch(logIndex(probe + 1));
        this.sendAppend(m.from, true);
        return;
      }
      if (pr.maybeDecrTo(m.index, probe)) {
        if (pr.state === 'replicate') pr.becomeProbe();
        this.sendAppend(m.from, true);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (!pr.maybeUpdate(m.index) && !(pr.match === m.index && pr.state === 'probe')) return;
    if (pr.state === 'probe') pr.becomeReplicate();
    else if (pr.state === 'snapshot' && pr.match + 1 >= this.log.firstIndex()) {
      pr.becomeProbe();
      pr.becomeReplicate();
    } else if (pr.state === 'replicate') pr.inflights.freeLE(m.index);
    if (this.maybeCommit()) this.bcastAppend();
    else if (wasPaused) this.sendAppend(m.from, true);
    // Fill the flow-control window; the loop is bounded by the inflights capacity.
    for (let i = 0; i < this.cfg.maxInflightMessages && this.sendAppend(m.from, false); i++);
    if (m.from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(m.from);
  }

  /** Advances the commit index to what a quorum holds, if it is of the current term. */
  private maybeCommit(): boolean {
    const match = new Map<NodeId, number>();
    for (const [id, pr] of this.progress) match.set(id, pr.match);
    let index: number;
    if (this.cfg.canary === 'ack-before-quorum') {
      index = Math.max(...match.values()); // planted bug: one acknowledgement is enough
    } else {
      index = this.quorumIndex(match);
    }
    const before = this.log.committed;
    const moved = this.log.maybeCommit(logIndex(Math.min(index, this.log.lastIndex())), this.term);
    if (moved && before < this.log.committed) this.onFirstCommitInTerm(before);
    return moved;
  }

  private committedInTerm(): boolean {
    return this.log.termOrNull(this.log.committed) === this.term;
  }

  private sendTimeoutNow(to: NodeId): void {
    this.leaseRevoked = true; // the target may win without waiting for our lease to lapse
    this.leaseUntilTick = 0;
    this.send({ type: 'MsgTimeoutNow', from: this.id, to, term: this.term });
    this.traceEvent('timeout-now-sent', { to });
  }

  // -------------------------------------------------------------------------------------------
  // Heartbeats, read index and the lease

  private bcastHeartbeat(): void {
    this.roundNeeded = false;
    this.heartbeatRound++;
    this.roundSentTick.set(this.heartbeatRound, this.ticks);
    if (this.roundSentTick.size > RAFT_HEARTBEAT_ROUNDS_TRACKED_MAX) {
      const oldest = this.roundSentTick.keys().next();
      if (oldest.done !== true) this.roundSentTick.delete(oldest.value);
    }
    for (const [id, pr] of this.progress) {
      if (id === this.id) {
        pr.ackedRound = this.heartbeatRound;
        continue;
      }
      const commit = logIndex(Math.min(pr.match, this.log.committed));
      pr.noteCommitSent(this.heartbeatRound, commit);
      this.send({ type: 'MsgHeartbeat', from: this.id, to: id, term: this.term, commit, round: this.heartbeatRound });
    }
    this.confirmRounds();
  }

  private handleHeartbeatResponse(m: MsgHeartbeatResp): void {
    const pr = this.progress.get(m.from);
    if (pr === undefined) return;
    pr.recentActive = true;
    pr.probeSent = false;
    if (pr.state === 'replicate' && pr.inflights.full) pr.inflights.freeFirst(); // an ack was probably lost
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, true);
    if (m.round <= this.heartbeatRound) pr.noteHeartbeatAck(m.round);
    if (m.round > pr.ackedRound && m.round <= this.heartbeatRound) {
      pr.ackedRound = m.round;
      this.confirmRounds();
    }
    this.maybeHandOver();
  }

  /** Releases reads and extends the lease up to the newest round a quorum acknowledged. */
  private confirmRounds(): void {
    const acked = new Map<NodeId, number>();
    for (const [id, pr] of this.progress) acked.set(id, pr.ackedRound);
    const confirmed = this.quorumIndex(acked);
    const sent = this.roundSentTick.get(confirmed);
    if (sent !== undefined && !this.leaseRevoked) {
      this.leaseUntilTick = Math.max(this.leaseUntilTick, sent + this.cfg.electionTicks - this.cfg.leaseMarginTicks);
    }
    for (const r of this.roundSentTick.keys()) if (r < confirmed) this.roundSentTick.delete(r);
    let released = 0;
    for (const read of this.pendingReads) {
      if (read.index === null || read.round === 0 || read.round > confirmed) break;
      this.answerRead(read.from, read.context, read.index);
      released++;
    }
    if (released > 0) this.pendingReads = this.pendingReads.slice(released);
  }

  /** True when a read may be served from the lease without a round trip. */
  private leaseValid(): boolean {
    return (
      this.role === 'leader' &&
      this.cfg.readMode === 'lease' &&
      !this.leaseRevoked &&
      this.leadTransferee === null &&
      this.leaving === null &&
      !isJoint(this.config) &&
      this.quorumConfigs().length === 1 &&
      this.committedInTerm() &&
      this.ticks < this.leaseUntilTick
    );
  }

  private leaderRead(from: NodeId, context: Uint8Array): Result<void, RaftError> {
    if (this.leaseValid()) {
      this.answerRead(from, context, this.log.committed);
      return ok(undefined);
    }
    if (this.pendingReads.length >= RAFT_READ_INDEX_PENDING_MAX)
      return err(
        new RaftError('READ_QUEUE_FULL', `${RAFT_READ_INDEX_PENDING_MAX} reads are waiting for confirmation; back off`),
      );
    const known = this.committedInTerm();
    this.pendingReads.push({
      from,
      context,
      index: known ? this.log.committed : null,
      round: known ? this.heartbeatRound + 1 : 0,
    });
    // The confirming heartbeat round goes out at the next ready(), batching concurrent reads.
    if (known) this.roundNeeded = true;
    return ok(undefined);
  }

  private handleReadIndexRequest(m: MsgReadIndex): void {
    const r = this.leaderRead(m.from, m.context);
    if (!r.ok)
      this.send({
        type: 'MsgReadIndexResp',
        from: this.id,
        to: m.from,
        term: this.term,
        context: m.context,
        index: logIndex(0),
        reject: true,
      });
  }

  private answerRead(from: NodeId, context: Uint8Array, index: LogIndex): void {
    if (from === this.id) {
      this.readStates.push({ index, context });
      return;
    }
    const resp: MsgReadIndexResp = {
      type: 'MsgReadIndexResp',
      from: this.id,
      to: from,
      term: this.term,
      context,
      index,
      reject: false,
    };
    this.send(resp);
  }

  /** The first commit of a term fixes the read index of reads that arrived before it. */
  private onFirstCommitInTerm(before: LogIndex): void {
    if (this.log.termOrNull(before) === this.term) return;
    for (const read of this.pendingReads) {
      if (read.index !== null) continue;
      read.index = this.log.committed;
      read.round = this.heartbeatRound + 1;
      this.roundNeeded = true;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Configuration

  private applyConfEntry(e: ConfEntry): void {
    const next = applyConfChange(this.config, e.change);
    if (!next.ok) {
      // Deterministic on every node (same entries, same order, same starting configuration).
      this.traceEvent('conf-change-ignored', { index: e.index, reason: next.error.message });
      return;
    }
    this.setConfig(next.value);
    this.traceEvent('conf-applied', { index: e.index, config: formatConfig(this.config) });
    if (this.role !== 'leader') return;
    if (!canLead(this.config, this.id) && this.leaving === null) {
      this.leaving = { confIndex: e.index, timeoutNowElapsed: this.cfg.electionTicks };
      this.traceEvent('leader-removed', { index: e.index, config: formatConfig(this.config) });
    }
    if (this.maybeCommit()) this.bcastAppend();
    this.maybeHandOver();
  }

  private setConfig(next: ClusterConfig): void {
    this.config = next;
    if (this.role !== 'leader') return;
    this.syncProgress();
    // Acknowledgements were counted under the old configuration: the lease starts over.
    this.leaseUntilTick = 0;
    for (const pr of this.progress.values()) pr.ackedRound = 0;
    if (this.leadTransferee !== null && !isVoter(next, this.leadTransferee)) this.leadTransferee = null;
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
  private maybeHandOver(): void {
    const leaving = this.leaving;
    if (leaving === null || this.role !== 'leader' || !this.removalKnown(leaving.confIndex)) return;
    const target = this.successor();
    if (target === null) return;
    if (this.leadTransferee !== target) {
      this.leadTransferee = target;
      this.transferElapsed = 0;
      this.traceEvent('hand-over', { to: target, index: leaving.confIndex });
    }
    const pr = this.progress.get(target);
    if (pr === undefined || pr.match < this.log.lastIndex()) return; // replication catches it up first
    if (leaving.timeoutNowElapsed < this.cfg.electionTicks) return;
    leaving.timeoutNowElapsed = 0;
    this.sendTimeoutNow(target);
  }

  /** True when a quorum of every counted configuration knows that entry `index` is committed. */
  private removalKnown(index: LogIndex): boolean {
    if (this.log.committed < index) return false;
    const knowers = new Set<NodeId>();
    for (const [id, pr] of this.progress) if (id !== this.id && pr.commitKnown >= index) knowers.add(id);
    return this.quorumConfigs().every((c) => hasQuorum(jointQuorumConfig(c), knowers));
  }

  /** The data voter with the highest match (recently active ones first), or null. */
  private successor(): NodeId | null {
    let best: NodeId | null = null;
    let bestKey = -1;
    for (const [id, pr] of this.progress) {
      if (id === this.id || !canLead(this.config, id)) continue;
      const key = pr.match * 2 + (pr.recentActive ? 1 : 0);
      if (key > bestKey) {
        best = id;
        bestKey = key;
      }
    }
    return best;
  }

  /** Leader: once a joint configuration with auto-leave is applied, propose leaving it. */
  private maybeAutoLeave(): void {
    if (this.role !== 'leader' || !isJoint(this.config) || !this.config.autoLeave) return;
    if (this.pendingConfIndex > this.log.applied || this.leadTransferee !== null) return;
    const r = this.proposeConfChange({ changes: [], autoLeave: false });
    if (r.ok) this.traceEvent('auto-leave-proposed', { index: r.value.index });
  }

  // -------------------------------------------------------------------------------------------
  // Counting with every configuration in the log

  /**
   * The configurations a quorum decision (election and pre-vote outcome, commit index,
   * check-quorum, read confirmation and the lease) needs a quorum of: the applied configuration,
   * then each one the configuration entries after the applied index would produce, in log order,
   * applied or not, committed or not. Requiring all of them is at least as strict as the applied
   * configuration (etcd's rule) and as the latest one in the log (the dissertation's rule), so a
   * node whose commit index is stale (e.g. lost across a crash) cannot count with a configuration
   * the cluster already left (docs/raft.md, "Counting with every configuration in the log").
   *
   * Fast path: when no configuration entry follows the applied index, exactly the applied
   * configuration, without scanning. Otherwise derived once per (applied configuration, last
   * configuration entry) and cached. A change that would be refused when applied is skipped here
   * exactly as it will be at apply time (same entries, same order, same starting configuration).
   */
  private quorumConfigs(): readonly ClusterConfig[] {
    const index = this.log.lastConfIndex();
    const cached = this.configsCache;
    const fast = index <= this.log.applied;
    const term = fast ? null : this.log.termOrNull(index);
    if (
      cached !== null &&
      cached.base === this.config &&
      (fast ? cached.configs.length === 1 : cached.index === index && cached.term === term)
    )
      return cached.configs;
    const configs = fast ? [this.config] : this.deriveConfigs(index);
    this.configsCache = { base: this.config, index, term, configs };
    return configs;
  }

  /** The applied configuration followed by those of the configuration entries up to `lastConf`. */
  private deriveConfigs(lastConf: LogIndex): ClusterConfig[] {
    const configs: ClusterConfig[] = [this.config];
    const lo = this.firstUnappliedHeld();
    if (lastConf < lo) return configs;
    const r = this.log.entries(lo, logIndex(lastConf + 1), Number.MAX_SAFE_INTEGER);
    assert(r.ok, 'entries after the applied index (or the pending snapshot) are never compacted');
    let current = this.config;
    for (const e of r.value) {
      if (e.type !== 'conf') continue;
      const next = applyConfChange(current, e.change);
      if (!next.ok) continue; // ignored at apply time too (conf-change-ignored)
      current = next.value;
      configs.push(current);
    }
    // Bounded by the configuration entries held after the applied index (one per change).
    return configs;
  }

  /**
   * Traces `conf-latest` (index of the last configuration entry, or of the applied one, and the
   * configuration) when the latest counted configuration changed: the simulator's liveness check
   * needs to know which configurations bind each node's elections.
   */
  private traceLatestConfig(): void {
    if (this.cfg.trace === undefined) return;
    const configs = this.quorumConfigs();
    const latest = configs[configs.length - 1] as ClusterConfig;
    if (latest === this.tracedLatest) return;
    this.tracedLatest = latest;
    this.traceEvent('conf-latest', {
      index: Math.max(this.log.lastConfIndex(), this.log.applied),
      config: formatConfig(latest),
      counted: configs.length,
    });
  }

  /**
   * The first entry after what `this.config` reflects: after the applied index, or after a
   * received snapshot not yet persisted (its configuration is already in force, its entries are
   * gone from the log).
   */
  private firstUnappliedHeld(): LogIndex {
    return logIndex(Math.max(this.log.applied + 1, this.log.firstIndex()));
  }

  /** The highest value a quorum of EVERY counted configuration holds (commit index, confirmed round). */
  private quorumIndex(values: ReadonlyMap<NodeId, number>): number {
    let index = Number.MAX_SAFE_INTEGER;
    for (const c of this.quorumConfigs()) index = Math.min(index, committedIndex(jointQuorumConfig(c), values));
    return index;
  }

  /**
   * The configuration that says whether `id` is a witness: the latest counted one that has it as
   * a member (a member never changes between data node and witness while it stays a member).
   */
  private roleConfig(id: NodeId): ClusterConfig {
    const configs = this.quorumConfigs();
    for (let i = configs.length - 1; i >= 0; i--) {
      const c = configs[i] as ClusterConfig;
      if (configNodes(c).includes(id)) return c;
    }
    return this.config;
  }

  /** Leader: progress for exactly the members of every counted configuration (and itself). */
  private syncProgress(): void {
    if (this.role !== 'leader') return;
    const nodes = new Set<NodeId>();
    for (const c of this.quorumConfigs()) for (const id of configNodes(c)) nodes.add(id);
    for (const id of [...this.progress.keys()]) if (!nodes.has(id) && id !== this.id) this.progress.delete(id);
    for (const id of nodes) this.addProgress(id);
  }

  // -------------------------------------------------------------------------------------------
  // Output

  private send(m: RaftMessage): void {
    assert(m.from === this.id, 'messages are sent from this node');
    if (m.to === this.id) {
      assert(needsPersist(m), `only persistence acknowledgements are self-addressed, not ${m.type}`);
      this.selfAfterPersist.push(m);
      return;
    }
    if (this.outbox.length >= RAFT_OUTBOX_MESSAGES_MAX) {
      this.droppedMessages++; // equivalent to network loss, which Raft tolerates
      return;
    }
    this.outbox.push(m);
  }

  private traceEvent(event: string, extra: Readonly<Record<string, string | number | boolean | null>> = {}): void {
    const trace = this.cfg.trace;
    if (trace === undefined) return;
    trace(event, {
      ...extra,
      role: this.role,
      term: this.term,
      commit: this.log.committed,
      lead: this.lead ?? 0,
      node: this.id,
    });
  }
}
