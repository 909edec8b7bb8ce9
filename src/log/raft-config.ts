/**
 * Configuration of one Raft core, its validation, and the planted-bug canaries.
 *
 * Times are in ticks (the shell decides how long a tick is). Validation rejects combinations
 * that are unsafe, not just odd: a lease needs check-quorum and a drift margin smaller than the
 * election timeout, and heartbeats must be more frequent than elections.
 */
import { err, ok, type Result } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import type { Prng } from '../lib/prng.js';
import {
  RAFT_COMMITTED_BYTES_PER_READY_MAX,
  RAFT_ELECTION_TICKS_MAX,
  RAFT_ENTRY_BYTES_MAX,
  RAFT_INFLIGHT_MESSAGES_MAX,
  RAFT_MESSAGE_ENTRIES_BYTES_TARGET,
  RAFT_UNCOMMITTED_BYTES_MAX,
} from '../constants.js';
import { RaftError } from './raft-error.js';
import type { RaftStorage } from './raft-storage.js';

/**
 * A deliberately planted bug, used ONLY by the simulator (`cohort sim --canary NAME`) to prove
 * its checkers catch each class of violation. Never set it anywhere else.
 * - `ack-before-quorum`: the leader commits as soon as one follower acknowledged.
 * - `double-vote`: a node grants a second vote in a term it already voted in.
 * - `skip-log-matching`: a follower appends without checking the previous entry's term.
 * - `apply-uncommitted`: entries are handed to the application before they commit.
 * - `count-learner-vote`: learners' votes count toward election quorums.
 */
export type RaftCanary =
  'ack-before-quorum' | 'double-vote' | 'skip-log-matching' | 'apply-uncommitted' | 'count-learner-vote';

/** Every canary name, for command-line parsing and tests. */
export const RAFT_CANARIES: readonly RaftCanary[] = [
  'ack-before-quorum',
  'double-vote',
  'skip-log-matching',
  'apply-uncommitted',
  'count-learner-vote',
];

/** Fields of every trace event: enough to read a failure at a glance. */
export interface RaftTraceFields {
  readonly role: string;
  readonly term: number;
  readonly commit: number;
  readonly lead: number;
  readonly [key: string]: string | number | boolean | null;
}

/** Trace hook: one call per notable event (role change, vote, commit, config change...). */
export type RaftTrace = (event: string, fields: RaftTraceFields) => void;

/** How a leader serves `readIndex` requests. */
export type ReadMode =
  /** Confirm leadership with a heartbeat round for every batch of reads (always safe). */
  | 'read-index'
  /**
   * Serve from the leader lease when it is valid (no round trip), else fall back to
   * `read-index`. Safe while clocks drift by less than `leaseMarginTicks` per election timeout.
   */
  | 'lease';

/** Options of one core. */
export interface RaftConfig {
  readonly id: NodeId;
  readonly storage: RaftStorage;
  /** This node's random stream (election timeout jitter). */
  readonly prng: Prng;
  /** Minimum election timeout; the actual one is drawn in [electionTicks, 2*electionTicks). */
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  /** Pre-vote (§9.6): a node that cannot win does not disrupt the cluster by raising its term. */
  readonly preVote: boolean;
  /** A leader that has not heard from a quorum for an election timeout steps down. */
  readonly checkQuorum: boolean;
  readonly readMode: ReadMode;
  /** Lease shortening that absorbs clock drift between nodes, in ticks (lease mode). */
  readonly leaseMarginTicks: number;
  /** Soft cap on entry bytes per MsgApp. */
  readonly maxMessageBytes: number;
  /** Unacknowledged MsgApp messages per follower. */
  readonly maxInflightMessages: number;
  /** Uncommitted entry bytes the leader accepts before refusing proposals. */
  readonly maxUncommittedBytes: number;
  /** Committed entry bytes per Ready. */
  readonly maxCommittedBytesPerReady: number;
  /** Index already applied by the application on restart (entries after it are re-delivered). */
  readonly applied?: number;
  /**
   * Repair mode: the node lost log entries it may have acknowledged (a corrupt WAL), so it must
   * neither vote nor campaign until it has caught up from a leader that committed an entry of
   * its own term (that leader holds every committed entry, and so does this node once it has
   * replicated up to that commit). The core leaves the mode by itself; see `RaftCore.repairing`.
   */
  readonly repairing?: boolean;
  /**
   * Bootstrap through the log (etcd's `Bootstrap`): a fresh node (empty log, term 0) whose storage
   * holds a non-empty initial configuration starts from the empty configuration and appends, as
   * committed entry 1 of term 1, the configuration change that creates it. Every initial member
   * builds the same entry, so a node that joins later with an empty configuration and replays the
   * log from index 1 reaches the same configuration. Without it such a joiner applies the first
   * configuration changes to the wrong base and diverges (it may even elect itself alone).
   */
  readonly bootstrapEntry?: boolean;
  /**
   * votequorum `wait_for_all`: while this node's log is fresh (no leader ever wrote to it), it
   * wins an election only with the grants of every voter of the configuration, seen in one
   * election; afterwards the normal weighted rules apply. Set from the node's quorum config.
   */
  readonly waitForAll?: boolean;
  readonly trace?: RaftTrace;
  /** SIMULATOR ONLY: a planted bug. */
  readonly canary?: RaftCanary;
}

/** Defaults for everything but identity, storage and randomness. */
export const RAFT_CONFIG_DEFAULTS = {
  electionTicks: 10,
  heartbeatTicks: 1,
  preVote: true,
  checkQuorum: true,
  readMode: 'lease',
  leaseMarginTicks: 2,
  maxMessageBytes: RAFT_MESSAGE_ENTRIES_BYTES_TARGET,
  maxInflightMessages: RAFT_INFLIGHT_MESSAGES_MAX,
  maxUncommittedBytes: RAFT_UNCOMMITTED_BYTES_MAX,
  maxCommittedBytesPerReady: RAFT_COMMITTED_BYTES_PER_READY_MAX,
} as const satisfies Partial<RaftConfig>;

function invalid(message: string): Result<RaftConfig, RaftError> {
  return err(new RaftError('CONFIG_INVALID', `invalid raft configuration: ${message}`));
}

function intIn(n: number, min: number, max: number): boolean {
  return Number.isInteger(n) && n >= min && n <= max;
}

/** Checks `config` as a whole; the error message names the field and the fix. */
export function validateRaftConfig(config: RaftConfig): Result<RaftConfig, RaftError> {
  const c = config;
  if (!intIn(c.heartbeatTicks, 1, RAFT_ELECTION_TICKS_MAX))
    return invalid(`heartbeatTicks must be an integer in [1, ${RAFT_ELECTION_TICKS_MAX}]`);
  if (!intIn(c.electionTicks, c.heartbeatTicks + 1, RAFT_ELECTION_TICKS_MAX)) {
    return invalid(
      `electionTicks (${c.electionTicks}) must exceed heartbeatTicks (${c.heartbeatTicks}) and be at most ${RAFT_ELECTION_TICKS_MAX}`,
    );
  }
  if (c.readMode === 'lease' && !c.checkQuorum)
    return invalid("readMode 'lease' requires checkQuorum: without it a deposed leader never learns it lost its lease");
  if (c.readMode === 'lease' && !intIn(c.leaseMarginTicks, 1, c.electionTicks - 1)) {
    return invalid(
      `leaseMarginTicks must be in [1, electionTicks - 1] = [1, ${c.electionTicks - 1}] so a lease absorbs clock drift and still exists`,
    );
  }
  if (!intIn(c.maxInflightMessages, 1, RAFT_INFLIGHT_MESSAGES_MAX))
    return invalid(`maxInflightMessages must be in [1, ${RAFT_INFLIGHT_MESSAGES_MAX}]`);
  if (!intIn(c.maxMessageBytes, 1, RAFT_MESSAGE_ENTRIES_BYTES_TARGET))
    return invalid(`maxMessageBytes must be in [1, ${RAFT_MESSAGE_ENTRIES_BYTES_TARGET}]`);
  if (!intIn(c.maxUncommittedBytes, RAFT_ENTRY_BYTES_MAX, RAFT_UNCOMMITTED_BYTES_MAX)) {
    return invalid(
      `maxUncommittedBytes must be in [${RAFT_ENTRY_BYTES_MAX}, ${RAFT_UNCOMMITTED_BYTES_MAX}] (at least one maximal entry)`,
    );
  }
  if (!intIn(c.maxCommittedBytesPerReady, RAFT_ENTRY_BYTES_MAX, RAFT_COMMITTED_BYTES_PER_READY_MAX)) {
    return invalid(
      `maxCommittedBytesPerReady must be in [${RAFT_ENTRY_BYTES_MAX}, ${RAFT_COMMITTED_BYTES_PER_READY_MAX}]`,
    );
  }
  if (c.applied !== undefined && !intIn(c.applied, 0, Number.MAX_SAFE_INTEGER))
    return invalid('applied must be a non-negative integer');
  return ok(config);
}
