/**
 * The Raft core's read interface to durable log storage (etcd's `Storage`), and
 * `MemoryRaftStorage`, its in-memory implementation.
 *
 * The core only reads through `RaftStorage`; writes flow the other way, through `Ready`: the
 * shell persists `Ready.entries`, `Ready.hardState` and `Ready.snapshot` (fsync), and only then
 * appends them to the storage the core reads (for `MemoryRaftStorage`: `append`, `setHardState`,
 * `applySnapshot`) before calling `advance`. So everything `RaftStorage` returns is durable.
 *
 * Ownership: returned arrays are fresh and owned by the caller; entries and their `data` are
 * immutable and shared. Expected conditions (`LOG_COMPACTED`, `SNAPSHOT_UNAVAILABLE`) are
 * `Result` errors; asking for an index beyond `lastIndex()` is a programmer error and asserts.
 * An I/O failure in a disk-backed implementation throws: the node must crash, not guess.
 */
import { assert } from '../lib/assert.js';
import { err, ok, type Result } from '../lib/errors.js';
import { logIndex, term, type LogIndex, type Term } from '../lib/ids.js';
import type { ConfState, Entry, HardState, Snapshot } from './raft-message.js';
import { entrySizeBytes } from './raft-message.js';
import { RaftError } from './raft-error.js';

/** The durable state a core starts from. */
export interface InitialState {
  readonly hardState: HardState;
  /** The configuration as of the last snapshot (entries after it replay their changes). */
  readonly confState: ConfState;
}

/** Read access to the durable log. */
export interface RaftStorage {
  /** Hard state and configuration as of the last persisted snapshot. */
  initialState(): InitialState;
  /**
   * Entries in `[lo, hi)`, at most `maxBytes` in total but always at least one when `lo < hi`.
   * `LOG_COMPACTED` when `lo < firstIndex()`. Requires `hi <= lastIndex() + 1`.
   */
  entries(lo: LogIndex, hi: LogIndex, maxBytes: number): Result<Entry[], RaftError>;
  /**
   * The term of entry `i`, for `firstIndex() - 1 <= i <= lastIndex()` (the entry just before the
   * first one is the snapshot's last entry, whose term is known). `LOG_COMPACTED` below that.
   */
  term(i: LogIndex): Result<Term, RaftError>;
  /** Index of the first entry still held (snapshot index + 1). */
  firstIndex(): LogIndex;
  /** Index of the last entry held (the snapshot index when no entry follows it). */
  lastIndex(): LogIndex;
  /** The latest snapshot; `SNAPSHOT_UNAVAILABLE` while one is being prepared (retry later). */
  snapshot(): Result<Snapshot, RaftError>;
}

const EMPTY_CONF: ConfState = { voters: [], outgoing: [], learners: [], learnersNext: [], autoLeave: false };

/** Limits the entries of `list` (in order) to `maxBytes`, keeping at least one. */
export function limitSize(list: Entry[], maxBytes: number): Entry[] {
  let size = 0;
  for (let i = 0; i < list.length; i++) {
    const e = list[i] as Entry;
    size += entrySizeBytes(e);
    if (i > 0 && size > maxBytes) return list.slice(0, i);
  }
  return list;
}

/**
 * An in-memory `RaftStorage` that the shell fills after persisting (like etcd's MemoryStorage);
 * the simulator and tests also use it as the durable store itself. `entries[0]` is never held:
 * the log starts after `snap.metadata.index`, whose term is `snap.metadata.term`.
 */
export class MemoryRaftStorage implements RaftStorage {
  private hard: HardState = { term: term(0), vote: null, commit: logIndex(0) };
  private snap: Snapshot;
  /** Index of the last compacted entry; `log[0]` is entry `base + 1`. */
  private base: LogIndex = logIndex(0);
  /** Term of entry `base` (known even though the entry itself is gone). */
  private baseTerm: Term = term(0);
  private log: Entry[] = [];

  /** Optionally starts from a configuration (a fresh cluster's bootstrap configuration). */
  constructor(confState: ConfState = EMPTY_CONF) {
    this.snap = { metadata: { index: logIndex(0), term: term(0), confState }, data: new Uint8Array(0) };
  }

  initialState(): InitialState {
    return { hardState: this.hard, confState: this.snap.metadata.confState };
  }

  /** Records the durable hard state. */
  setHardState(hardState: HardState): void {
    this.hard = hardState;
  }

  firstIndex(): LogIndex {
    return logIndex(this.base + 1);
  }

  lastIndex(): LogIndex {
    return logIndex(this.base + this.log.length);
  }

  term(i: LogIndex): Result<Term, RaftError> {
    if (i < this.base) return err(compacted(i, this.base));
    assert(i <= this.lastIndex(), `term(${i}) asked beyond the last index ${this.lastIndex()}`);
    if (i === this.base) return ok(this.baseTerm);
    return ok((this.log[i - this.base - 1] as Entry).term);
  }

  entries(lo: LogIndex, hi: LogIndex, maxBytes: number): Result<Entry[], RaftError> {
    if (lo <= this.base) return err(compacted(lo, this.base));
    assert(
      lo <= hi && hi <= this.lastIndex() + 1,
      `entries [${lo}, ${hi}) out of bounds (last index ${this.lastIndex()})`,
    );
    return ok(limitSize(this.log.slice(lo - this.base - 1, hi - this.base - 1), maxBytes));
  }

  snapshot(): Result<Snapshot, RaftError> {
    return ok(this.snap);
  }

  /**
   * Replaces the whole log with `snapshot` (a follower installing the leader's snapshot).
   * `SNAPSHOT_OUT_OF_DATE` when it is not newer than the snapshot held.
   */
  applySnapshot(snapshot: Snapshot): Result<void, RaftError> {
    if (snapshot.metadata.index <= this.snap.metadata.index)
      return err(outOfDate(snapshot.metadata.index, this.snap.metadata.index));
    this.snap = snapshot;
    this.base = snapshot.metadata.index;
    this.baseTerm = snapshot.metadata.term;
    this.log = [];
    return ok(undefined);
  }

  /**
   * Records a snapshot of the application state as of applied index `index` (with the
   * configuration as of that index) and returns it. Entries are kept; `compact` drops them.
   */
  createSnapshot(index: LogIndex, confState: ConfState, data: Uint8Array): Result<Snapshot, RaftError> {
    if (index <= this.snap.metadata.index) return err(outOfDate(index, this.snap.metadata.index));
    const t = this.term(index);
    if (!t.ok) return t;
    this.snap = { metadata: { index, term: t.value, confState }, data };
    return ok(this.snap);
  }

  /**
   * Drops the entries up to and including `index`. The snapshot must cover them (create it
   * first), so a leader can always send a lagging follower what it no longer holds.
   */
  compact(index: LogIndex): Result<void, RaftError> {
    assert(
      index <= this.snap.metadata.index,
      `compact(${index}) beyond the snapshot at ${this.snap.metadata.index}: create a snapshot first`,
    );
    if (index <= this.base) return err(compacted(index, this.base));
    const t = this.term(index);
    assert(t.ok, 'a compaction point above the base is held');
    this.log = this.log.slice(index - this.base);
    this.base = index;
    this.baseTerm = t.value;
    return ok(undefined);
  }

  /**
   * Appends persisted entries; entries that overlap the held tail replace it from their first
   * index on. Entries must be contiguous and must start at or before `lastIndex() + 1`; entries
   * already compacted are skipped.
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = (entries[0] as Entry).index;
    for (let i = 1; i < entries.length; i++)
      assert((entries[i] as Entry).index === first + i, 'appended entries must be contiguous');
    const fresh = entries.filter((e) => e.index > this.base);
    if (fresh.length === 0) return;
    const start = (fresh[0] as Entry).index;
    assert(start <= this.lastIndex() + 1, `append at ${start} leaves a gap after the last index ${this.lastIndex()}`);
    this.log = this.log.slice(0, start - this.base - 1).concat(fresh);
  }
}

function compacted(i: LogIndex, base: LogIndex): RaftError {
  return new RaftError(
    'LOG_COMPACTED',
    `entry ${i} was compacted (entries up to ${base} are only in the snapshot); send the snapshot instead`,
  );
}

function outOfDate(index: LogIndex, held: LogIndex): RaftError {
  return new RaftError('SNAPSHOT_OUT_OF_DATE', `snapshot at ${index} is not newer than the one held at ${held}`);
}
