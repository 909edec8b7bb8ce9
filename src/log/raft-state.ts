/**
 * The state of one Raft node, shared by the files that implement the protocol by concern (etcd's
 * `raft` struct). `RaftCore` (`raft-core.ts`) owns one and is its only public face; the concern
 * files are plain functions over it:
 *
 * - `raft-step.ts`: role transitions, the per-role tick and step functions (who handles what);
 * - `election.ts`: pre-vote and vote campaigns, vote counting and granting, leader stickiness;
 * - `replication.ts`: proposals, appends and their acknowledgements, the commit rule;
 * - `snapshot-transfer.ts`: sending and receiving snapshots when entries are compacted;
 * - `read-index.ts`: heartbeat rounds, read-index reads and the leader lease;
 * - `conf-change.ts`: bootstrap, proposing and applying configuration changes, leader removal;
 * - `quorum-configs.ts`: the configurations every quorum decision counts with, and the progress
 *   tracker kept in step with them.
 *
 * Rules: the fields are mutated only by those files, from inside one call of a `RaftCore` input
 * (never re-entrantly, never across a `Ready`); the only outputs are `send` (the outbox, or the
 * messages the node steps to itself once the Ready is durable) and `traceEvent`. Nothing here
 * reads a clock or global randomness: time is the tick count, randomness `cfg.prng`, drawn only
 * by `resetRandomizedElectionTimeout` (the order of draws is part of a simulated run's trace).
 */
import { assert } from '../lib/assert.js';
import { logIndex, type LogIndex, type NodeId, type Term } from '../lib/ids.js';
import { RAFT_OUTBOX_MESSAGES_MAX } from '../constants.js';
import { EMPTY_CONFIG, canLead, configFromConfState, type ClusterConfig } from './cluster-config.js';
import type { Progress } from './progress.js';
import { RaftLog } from './raft-log.js';
import type { RaftConfig } from './raft-config.js';
import type { RaftStorage } from './raft-storage.js';
import type { HardState, RaftMessage, SnapshotMetadata } from './raft-message.js';
import type { RaftRole, ReadState, Ready, SoftState } from './ready.js';

/** Why a campaign runs: a pre-vote, a real election, or a leadership transfer (`MsgTimeoutNow`). */
export type VoteKind = 'pre-vote' | 'election' | 'transfer';

/** A read waiting on the leader for a heartbeat round (and, early in a term, for a first commit). */
export interface PendingRead {
  readonly from: NodeId;
  readonly context: Uint8Array;
  /** Read index; null until the leader has committed an entry of its term. */
  index: LogIndex | null;
  /** Heartbeat round that must be acknowledged by a quorum; 0 until `index` is known. */
  round: number;
}

/** Messages a node sends only once the Ready that produced them is durable (etcd's msgsAfterAppend). */
export function needsPersist(m: RaftMessage): boolean {
  return m.type === 'MsgAppResp' || m.type === 'MsgVoteResp' || m.type === 'MsgPreVoteResp';
}

/** One Raft node's protocol state (see the file comment for who may change it). */
export class RaftState {
  readonly id: NodeId;
  readonly cfg: RaftConfig;
  readonly log: RaftLog;
  role: RaftRole = 'follower';
  term: Term;
  vote: NodeId | null;
  lead: NodeId | null = null;
  /** The configuration as of the applied index (or of a received snapshot not yet persisted). */
  config: ClusterConfig = EMPTY_CONFIG;
  /** Leader only: every node of the configuration, self included. */
  progress = new Map<NodeId, Progress>();
  /** Candidate only: votes received in this election. */
  votes = new Map<NodeId, boolean>();
  electionElapsed = 0;
  heartbeatElapsed = 0;
  randomizedElectionTimeout = 0;
  /** Local monotonic tick count (the lease clock). */
  ticks = 0;
  /** Ticks left before this node may grant a vote after start (lease mode; see `inLease`). */
  quietTicks = 0;
  leadTransferee: NodeId | null = null;
  transferElapsed = 0;
  /** Index of the latest configuration entry proposed by this leader (or found in its log). */
  pendingConfIndex: LogIndex = logIndex(0);
  uncommittedBytes = 0;
  /** Leader: a broadcast of new entries is due at the next `ready()` (batches proposals). */
  appendPending = false;
  outbox: RaftMessage[] = [];
  selfAfterPersist: RaftMessage[] = [];
  droppedMessages = 0;
  readStates: ReadState[] = [];
  pendingReads: PendingRead[] = [];
  /** Leader: the latest heartbeat round sent in this term, and the tick each round was sent. */
  heartbeatRound = 0;
  roundSentTick = new Map<number, number>();
  roundNeeded = false;
  leaseUntilTick = 0;
  /** Leader: set once TimeoutNow went out; no lease reads for the rest of the term. */
  leaseRevoked = false;
  prevSoft: SoftState;
  prevHard: HardState;
  outstanding: { ready: Ready; self: RaftMessage[] } | null = null;
  /** The current campaign is a leadership transfer (its vote requests bypass leader stickiness). */
  campaignTransfer = false;
  /** A campaign refused while a committed configuration change was unapplied; retried at `advance`. */
  deferredCampaign: VoteKind | null = null;
  /** Repair mode (see `RaftConfig.repairing`): no votes granted, no campaigns. */
  repairing: boolean;
  /** False once a scan found no witness's copy here; set again when one may have arrived. */
  mayHoldWitnessCopy = true;
  /**
   * The configurations every quorum decision needs a quorum of (see `quorumConfigs`), cached
   * with what they were derived from: the applied configuration and the last configuration
   * entry in the log (index and term identify that log prefix, by log matching).
   */
  configsCache: {
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
  leaving: { readonly confIndex: LogIndex; timeoutNowElapsed: number } | null = null;
  /**
   * two_node: the other voter of a two-voter configuration, proved fenced by the fencing layer
   * (`RaftCore.peerFenced`). Counted as granting every vote, acknowledging every entry and round
   * and being active, until a configuration without it as a voter is applied (the fencing layer
   * proposes its demotion), or a message of the current term comes from it (it is back).
   * Volatile: a restart forgets it, and the fence must be proved again (docs/raft.md "two_node").
   */
  fencedPeer: NodeId | null = null;
  /** The latest counted configuration last traced (`conf-latest`), to trace only changes. */
  tracedLatest: ClusterConfig | null = null;

  /** The state a node restarts with, read from its durable storage (`config` must be valid). */
  constructor(config: RaftConfig) {
    this.cfg = config;
    this.id = config.id;
    const init = config.storage.initialState();
    const bootstrapped = config.bootstrapEntry === true && holdsBootstrapEntry(config.storage);
    // The bootstrap entry is committed by construction (every node makes the same one and commits
    // it at once), so it counts as committed even when a crash lost the hard state that said so:
    // without it, a node (or a whole cluster after a power cut) whose durable commit is 0 would
    // never apply its configuration, and a node that is no voter of its applied one never campaigns.
    this.log = new RaftLog(
      config.storage,
      bootstrapped ? logIndex(Math.max(init.hardState.commit, 1)) : init.hardState.commit,
    );
    this.term = init.hardState.term;
    this.vote = init.hardState.vote;
    this.config = configFromConfState(init.confState);
    if (bootstrapped) {
      // Bootstrapped through the log and restarted before any snapshot: entry 1 creates the
      // initial configuration again when it is re-applied, so start from nothing, as the first time.
      this.config = EMPTY_CONFIG;
    }
    this.prevHard = init.hardState;
    this.prevSoft = { lead: null, role: 'follower' };
    this.repairing = config.repairing ?? false;
  }

  /** The volatile state a Ready reports when it changes. */
  softState(): SoftState {
    return { lead: this.lead, role: this.role };
  }

  /** The state that must be durable before messages of its term or vote go out. */
  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  /** True when `h` differs from the hard state the last acknowledged Ready carried. */
  hardChanged(h: HardState): boolean {
    return h.term !== this.prevHard.term || h.vote !== this.prevHard.vote || h.commit !== this.prevHard.commit;
  }

  /** How far committed entries are handed out for applying (the commit index, but for a canary). */
  committedUpTo(): LogIndex {
    // The apply-uncommitted canary hands out everything appended, committed or not.
    return this.cfg.canary === 'apply-uncommitted' ? this.log.lastIndex() : this.log.committed;
  }

  /** Draws the next election timeout in [electionTicks, 2*electionTicks) from the injected PRNG. */
  resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.cfg.prng.int(this.cfg.electionTicks, 2 * this.cfg.electionTicks);
  }

  /** True when this node may campaign and lead in the applied configuration (a data voter). */
  promotable(): boolean {
    return canLead(this.config, this.id);
  }

  /**
   * True when this node holds a witness's copy of the log: a metadata-only entry, or a snapshot
   * of a configuration in which it was a witness. Such a node lacks the data of those entries, so
   * it neither campaigns nor serves reads, even after a later configuration made it a data member
   * (a former witness must join again with an empty data directory to become a data node; see
   * docs/raft.md, "Witnesses"). The scan runs only when a copy may have arrived.
   */
  holdsMetadataOnly(): boolean {
    if (!this.mayHoldWitnessCopy) return false;
    const isMetadataOnly = (m: SnapshotMetadata): boolean =>
      m.metadataOnly === true || (m.confState.witnesses ?? []).includes(this.id);
    const pending = this.log.unstableSnapshot();
    if (pending !== null && isMetadataOnly(pending.metadata)) return true;
    const snap = this.cfg.storage.snapshot();
    if (snap.ok && isMetadataOnly(snap.value.metadata)) return true;
    const ents = this.log.entries(this.log.firstIndex(), logIndex(this.log.lastIndex() + 1), Number.MAX_SAFE_INTEGER);
    if (ents.ok && ents.value.some((e) => e.type === 'normal' && e.metadataOnly === true)) return true;
    if (ents.ok) this.mayHoldWitnessCopy = false;
    return !ents.ok;
  }

  /** Queues `m` for the next Ready (a self-addressed acknowledgement waits for persistence); bounded. */
  send(m: RaftMessage): void {
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

  /** Emits one trace event with the node's role, term, commit and leader (nothing without a trace hook). */
  traceEvent(event: string, extra: Readonly<Record<string, string | number | boolean | null>> = {}): void {
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

/**
 * Whether the log still starts with the bootstrap entry (`bootstrapThroughLog`): entry 1, term 1,
 * a configuration change. Only the bootstrap makes such an entry: a leader's first entry is empty.
 */
function holdsBootstrapEntry(storage: RaftStorage): boolean {
  if (storage.firstIndex() !== 1 || storage.lastIndex() < 1) return false;
  const first = storage.entries(logIndex(1), logIndex(2), Number.MAX_SAFE_INTEGER);
  const e = first.ok ? first.value[0] : undefined;
  return e?.type === 'conf' && e.term === 1;
}
