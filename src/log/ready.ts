/**
 * The batch of effects a Raft core hands to its shell, and the ordering contract the shell must
 * follow (etcd's `Ready`). One Ready is outstanding at a time: take it with `core.ready()`, carry
 * it out in this order, then acknowledge it with `core.advance(ready)`:
 *
 * 1. Send `messages` (now, or in parallel with step 2: they never depend on this Ready's writes).
 * 2. Persist, durably (fsync) and atomically enough that a crash leaves a prefix of the log:
 *    `snapshot` (if any), then `entries` (appended; an entry whose index already exists replaces
 *    it and every entry after it), then `hardState` (if any). Then make them visible to the
 *    core's `RaftStorage` (for `MemoryRaftStorage`: `applySnapshot`, `append`, `setHardState`).
 * 3. Apply `snapshot` to the state machine (if any), then `committedEntries` in order. They may
 *    include entries of this Ready's `entries`, which is why step 2 comes first: an entry is
 *    applied only once it is durable locally.
 * 4. Send `messagesAfterPersist`: vote grants, append acknowledgements, and every message of a
 *    Ready that changes the term or the vote. Sending them before step 2 completes can elect two
 *    leaders in one term or lose an acknowledged entry.
 * 5. Hand `readStates` to waiting readers: a read with context C may be served once the applied
 *    index is at least its `index`.
 * 6. Call `advance(ready)`. The core then counts its own vote and its own append acknowledgement
 *    (a leader commits only entries it has persisted itself) and applies configuration changes
 *    found in `committedEntries`.
 *
 * Steps 1 and 2 may overlap; nothing in step 3 or later may start before step 2 has finished.
 */
import type { LogIndex, NodeId } from '../lib/ids.js';
import type { Entry, HardState, RaftMessage, Snapshot } from './raft-message.js';

/** The role a core plays in its current term. */
export type RaftRole = 'follower' | 'pre-candidate' | 'candidate' | 'leader';

/** Volatile state worth reporting when it changes (not persisted). */
export interface SoftState {
  readonly lead: NodeId | null;
  readonly role: RaftRole;
}

/** A linearizable read is safe to serve once the applied index reaches `index`. */
export interface ReadState {
  readonly index: LogIndex;
  readonly context: Uint8Array;
}

/** One batch of effects; see the module comment for the order in which to carry it out. */
export interface Ready {
  /** Set when the role or the known leader changed since the last Ready. */
  readonly softState: SoftState | null;
  /** Set when term, vote or commit changed; persist before `messagesAfterPersist`. */
  readonly hardState: HardState | null;
  /** Entries to append durably, oldest first. */
  readonly entries: readonly Entry[];
  /** A snapshot received from the leader to persist, then to load into the state machine. */
  readonly snapshot: Snapshot | null;
  /** Entries to apply, oldest first, after persisting this Ready. */
  readonly committedEntries: readonly Entry[];
  /** Messages that may be sent before (or while) this Ready is persisted. */
  readonly messages: readonly RaftMessage[];
  /** Messages that must not be sent until this Ready's snapshot, entries and hard state are durable. */
  readonly messagesAfterPersist: readonly RaftMessage[];
  /** Reads whose index is now known. */
  readonly readStates: readonly ReadState[];
  /** True when the persist of step 2 must be fsynced (entries, snapshot, or term/vote changed). */
  readonly mustSync: boolean;
}
