/**
 * Typed operating errors of the Raft core. A caller switches on `code`; the message says what
 * went wrong and what to do about it. Programmer errors (a broken invariant, misuse of the
 * Ready/advance protocol) are assertions, not `RaftError`s.
 */
import { CohortError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';

/** Stable codes of `RaftError`. */
export type RaftErrorCode =
  /** This node is not the leader; retry on `leaderHint` (null when unknown). */
  | 'NOT_LEADER'
  /** A leadership transfer is in progress; retry once it finishes or times out. */
  | 'TRANSFER_IN_PROGRESS'
  /** The proposed entry is larger than RAFT_ENTRY_BYTES_MAX. */
  | 'PROPOSAL_TOO_LARGE'
  /** Too many uncommitted or unpersisted entries: back off until the log catches up. */
  | 'PROPOSALS_BACKLOGGED'
  /** A configuration change is already pending; wait until it is applied. */
  | 'CONF_CHANGE_PENDING'
  /** The configuration change does not fit the current configuration. */
  | 'CONF_CHANGE_INVALID'
  /** Too many read requests are waiting; back off. */
  | 'READ_QUEUE_FULL'
  /** The read context is larger than RAFT_READ_CONTEXT_BYTES_MAX. */
  | 'READ_CONTEXT_TOO_LARGE'
  /** The leadership transfer target is not a voter of the current configuration. */
  | 'TRANSFER_INVALID'
  /** Storage: the requested entries were compacted into a snapshot. */
  | 'LOG_COMPACTED'
  /** Storage: a snapshot is being prepared; try again later. */
  | 'SNAPSHOT_UNAVAILABLE'
  /** Storage: the snapshot is older than the one already held. */
  | 'SNAPSHOT_OUT_OF_DATE'
  /** The core configuration is invalid. */
  | 'CONFIG_INVALID';

/** An operating error of the Raft core or its storage. */
export class RaftError extends CohortError {
  override readonly name = 'RaftError';
  declare readonly code: RaftErrorCode;
  /** For `NOT_LEADER`: the leader this node knows of, if any. */
  readonly leaderHint: NodeId | null;

  constructor(code: RaftErrorCode, message: string, leaderHint: NodeId | null = null) {
    super(code, message);
    this.leaderHint = leaderHint;
  }
}
