/**
 * What a Raft shell (`RaftNode`) is configured with: its options, the observer hooks called as
 * things happen, and the shell canaries the simulator plants to prove its checkers bite.
 */
import type { LogIndex, NodeId, Term } from '../lib/ids.js';
import type { ApplyResult, ConfState, Entry, RaftConfig, RaftRole, StateMachine } from '../log/index.js';

/** Options of one Raft node. */
export interface RaftNodeOptions<C extends { readonly type: string }, O> {
  /** Length of one Raft tick in milliseconds of the environment's clock. */
  readonly tickMs: number;
  /**
   * Raft knobs; identity, storage, randomness and trace are supplied by the shell.
   * `bootstrapEntry` defaults to true here: a fresh node writes its initial configuration as
   * committed entry 1, so members added later replay the log onto the right base. Set
   * `waitForAll` from the node's `quorum.waitForAll`.
   */
  readonly raft?: Partial<Omit<RaftConfig, 'id' | 'storage' | 'prng' | 'applied' | 'trace'>>;
  /**
   * The configuration of a fresh cluster (used only when the disk is empty), with its quorum
   * settings (`quorum`: expected votes, tie-breaker) and `witnesses`.
   */
  readonly bootstrap: ConfState;
  readonly stateMachine: StateMachine<C, O>;
  /** Take a snapshot once this many entries were applied since the last one. */
  readonly snapshotEntries: number;
  /** Entries kept in memory behind a snapshot so slightly lagging followers avoid a snapshot. */
  readonly snapshotCatchUpEntries: number;
  /** A request not answered after this many ticks completes with `TIMEOUT`. */
  readonly requestTimeoutTicks: number;
  /** Observer hooks (metrics in the daemon, checkers in the simulator). */
  readonly observer?: RaftObserver<O>;
  /** SIMULATOR ONLY: a planted bug in the shell (see `RaftShellCanary`). */
  readonly canary?: RaftShellCanary;
}

/**
 * A deliberately planted bug in the Raft shell, used ONLY by the simulator to prove its checkers
 * catch it. `ack-before-fsync`: a Ready's entries count as durable as soon as they are written
 * to the WAL, before its fsync completes: a follower acknowledges them, the leader counts its own
 * append, and committed entries apply, while a power cut can still take them away.
 */
export type RaftShellCanary = 'ack-before-fsync';

/** Every shell canary name. */
export const RAFT_SHELL_CANARIES: readonly RaftShellCanary[] = ['ack-before-fsync'];

/** Things worth observing from outside, called synchronously as they happen. */
export interface RaftObserver<O> {
  /** The node became `role` in `term` (leader `lead`). */
  onRole?(role: RaftRole, term: Term, lead: NodeId | null): void;
  /** Entries became durable in this node's log. */
  onPersist?(entries: readonly Entry[]): void;
  /** A committed entry was applied (`result` is null for configuration and empty entries). */
  onApply?(entry: Entry, result: ApplyResult<O> | null): void;
  /**
   * A snapshot from the leader replaced the log (and the state machine, unless `metadataOnly`:
   * a witness's copy carries no data and its state machine is left alone).
   */
  onRestore?(index: LogIndex, term: Term, metadataOnly: boolean): void;
  /** Repair mode ended: the log this node lost is rebuilt from the leader up to `applied`. */
  onRepaired?(applied: LogIndex): void;
}
