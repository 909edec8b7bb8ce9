/**
 * The core's view of its log: durable entries (read through `RaftStorage`) followed by unstable
 * ones (appended in memory, handed out in `Ready.entries`, not yet acknowledged as persisted),
 * plus the commit and apply indexes. Like etcd's `raftLog` + `unstable`.
 *
 * Invariants (asserted): `applied <= committed <= lastIndex()`; a committed entry is never
 * truncated; unstable entries are contiguous and start right after the durable log (or the
 * unstable snapshot), possibly overlapping the durable tail that they are about to replace.
 */
import { assert } from '../lib/assert.js';
import { err, ok, type Result } from '../lib/errors.js';
import { logIndex, term as toTerm, type LogIndex, type Term } from '../lib/ids.js';
import type { Entry, Snapshot } from './raft-message.js';
import { RaftError } from './raft-error.js';
import { limitSize, type RaftStorage } from './raft-storage.js';

/** Entries read per step when searching backwards for the last configuration entry. */
const CONF_SCAN_WINDOW_ENTRIES = 256;

/** Entries not yet persisted, and a received snapshot not yet persisted. */
interface Unstable {
  snapshot: Snapshot | null;
  entries: Entry[];
  /** Index of `entries[0]` (or where it would be). */
  offset: LogIndex;
}

/** Durable log + unstable tail + commit/apply cursors. Mutated only by its owning core. */
export class RaftLog {
  readonly storage: RaftStorage;
  private unstable: Unstable;
  /** Highest index known committed. */
  committed: LogIndex;
  /** Highest index the application has applied (acknowledged through `advance`). */
  applied: LogIndex;
  /**
   * Index of the last configuration entry in the log, or an index `<= applied` when no
   * configuration entry follows the applied index (then exactly one configuration, the applied
   * one, is in force: the core's fast path). Maintained on append, truncation and restore.
   */
  private lastConf: LogIndex;

  constructor(storage: RaftStorage, committed: LogIndex) {
    this.storage = storage;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = { snapshot: null, entries: [], offset: logIndex(last + 1) };
    assert(
      committed >= first - 1 && committed <= last,
      `hard state commit ${committed} outside the stored log [${first - 1}, ${last}]`,
    );
    this.committed = committed;
    this.applied = logIndex(first - 1);
    this.lastConf = logIndex(0);
    this.lastConf = this.findLastConf(first, logIndex(last + 1));
  }

  /** See the field: the last configuration entry, or an index `<= applied` when none follows it. */
  lastConfIndex(): LogIndex {
    return this.lastConf;
  }

  /**
   * The index of the last configuration entry in `[lo, hi)`, or 0. Reads backwards a window at a
   * time, so the common case (a recent configuration entry, or a short range) reads little; only
   * start-up and a truncation call it.
   */
  private findLastConf(lo: LogIndex, hi: LogIndex): LogIndex {
    for (let top = hi; top > lo;) {
      const bottom = logIndex(Math.max(lo, top - CONF_SCAN_WINDOW_ENTRIES));
      const r = this.entries(bottom, top, Number.MAX_SAFE_INTEGER);
      assert(r.ok, `entries [${bottom}, ${top}) after the first index are readable`);
      for (let i = r.value.length - 1; i >= 0; i--) {
        const e = r.value[i] as Entry;
        if (e.type === 'conf') return e.index;
      }
      top = bottom;
    }
    return logIndex(0);
  }

  /** First index still available (entries before it are only in a snapshot). */
  firstIndex(): LogIndex {
    const snap = this.unstable.snapshot;
    return snap !== null ? logIndex(snap.metadata.index + 1) : this.storage.firstIndex();
  }

  /** Index of the last entry (or of the snapshot when no entry follows it). */
  lastIndex(): LogIndex {
    const u = this.unstable;
    if (u.entries.length > 0) return logIndex(u.offset + u.entries.length - 1);
    if (u.snapshot !== null) return u.snapshot.metadata.index;
    return this.storage.lastIndex();
  }

  /** The term of entry `i`, or null when `i` is compacted away or beyond the last index. */
  termOrNull(i: LogIndex): Term | null {
    if (i < this.firstIndex() - 1 || i > this.lastIndex()) return null;
    const u = this.unstable;
    if (u.snapshot !== null && i === u.snapshot.metadata.index) return u.snapshot.metadata.term;
    if (i >= u.offset) return (u.entries[i - u.offset] as Entry).term;
    const t = this.storage.term(i);
    return t.ok ? t.value : null;
  }

  /** Term of the last entry. */
  lastTerm(): Term {
    const t = this.termOrNull(this.lastIndex());
    assert(t !== null, 'the last entry always has a known term');
    return t;
  }

  /** True when entry `i` exists with term `t`. */
  matchTerm(i: LogIndex, t: Term): boolean {
    return this.termOrNull(i) === t;
  }

  /** Raft's up-to-date rule (§5.4.1): is a log ending at (`index`, `t`) at least as new as ours? */
  isUpToDate(index: LogIndex, t: Term): boolean {
    const lastTerm = this.lastTerm();
    return t > lastTerm || (t === lastTerm && index >= this.lastIndex());
  }

  /** Entries in `[lo, hi)` up to `maxBytes` (at least one), from storage then the unstable tail. */
  entries(lo: LogIndex, hi: LogIndex, maxBytes: number): Result<Entry[], RaftError> {
    assert(lo <= hi && hi <= this.lastIndex() + 1, `entries [${lo}, ${hi}) beyond the last index ${this.lastIndex()}`);
    if (lo < this.firstIndex()) return err(new RaftError('LOG_COMPACTED', `entry ${lo} is compacted`));
    if (lo === hi) return ok([]);
    const u = this.unstable;
    let out: Entry[] = [];
    if (lo < u.offset) {
      const stored = this.storage.entries(lo, logIndex(Math.min(hi, u.offset)), maxBytes);
      if (!stored.ok) return stored;
      out = stored.value;
      // Storage stopped early because of the byte budget: do not reach into the unstable tail.
      if (out.length < Math.min(hi, u.offset) - lo) return ok(out);
    }
    if (hi > u.offset) out = out.concat(u.entries.slice(Math.max(lo, u.offset) - u.offset, hi - u.offset));
    return ok(limitSize(out, maxBytes));
  }

  /** The unstable entries (to be persisted), oldest first. */
  unstableEntries(): readonly Entry[] {
    return this.unstable.entries;
  }

  /** The unstable snapshot (to be persisted), if any. */
  unstableSnapshot(): Snapshot | null {
    return this.unstable.snapshot;
  }

  /**
   * First index among `entries` whose term differs from ours or that we do not have; 0 when
   * every entry is already present with the same term.
   */
  findConflict(entries: readonly Entry[]): LogIndex {
    for (const e of entries) if (!this.matchTerm(e.index, e.term)) return e.index;
    return logIndex(0);
  }

  /**
   * The largest index `<= index` whose term is `<= t`, with its term (0 when unknown); the
   * leader and follower use it to skip a whole term of conflicting entries per round trip.
   */
  findConflictByTerm(index: LogIndex, t: Term): readonly [LogIndex, Term] {
    let i = Math.min(index, this.lastIndex());
    for (; i >= this.firstIndex() - 1; i--) {
      const ti = this.termOrNull(logIndex(i));
      if (ti === null) break;
      if (ti <= t) return [logIndex(i), ti];
    }
    return [logIndex(Math.max(i, 0)), toTerm(0)];
  }

  /**
   * Appends `entries` (contiguous, starting at most at `lastIndex() + 1`), replacing any
   * conflicting suffix. Truncating a committed entry is a safety violation and asserts.
   */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const after = (entries[0] as Entry).index;
    assert(after > this.committed, `appending at ${after} would overwrite committed entry (commit ${this.committed})`);
    assert(after <= this.lastIndex() + 1, `append at ${after} leaves a gap after ${this.lastIndex()}`);
    const truncates = after <= this.lastIndex();
    const u = this.unstable;
    if (after === u.offset + u.entries.length) {
      u.entries = u.entries.concat(entries);
    } else if (after <= u.offset) {
      // Replaces durable entries from `after` on; the shell overwrites them when it persists.
      u.offset = after;
      u.entries = entries.slice();
    } else {
      u.entries = u.entries.slice(0, after - u.offset).concat(entries);
    }
    this.noteConfEntries(after, entries, truncates);
  }

  /** Keeps `lastConf` right after `entries` were written from `after` on. */
  private noteConfEntries(after: LogIndex, entries: readonly Entry[], truncated: boolean): void {
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i] as Entry;
      if (e.type === 'conf') {
        this.lastConf = e.index;
        return;
      }
    }
    // No configuration entry among the new ones: a truncation may have removed the last one.
    // Only entries after the applied index matter, and truncation never reaches below the commit.
    if (truncated && this.lastConf >= after)
      this.lastConf = this.findLastConf(logIndex(Math.max(this.applied + 1, this.firstIndex())), after);
  }

  /**
   * Follower side of MsgApp: if our log has (`prevIndex`, `prevTerm`), append the new part of
   * `entries`, advance the commit index to min(`commit`, last new index), and return that last
   * new index; null when the log-matching check fails. `skipMatchCheck` is the canary that
   * deliberately omits the check.
   */
  maybeAppend(
    prevIndex: LogIndex,
    prevTerm: Term,
    commit: LogIndex,
    entries: readonly Entry[],
    skipMatchCheck = false,
  ): LogIndex | null {
    if (!skipMatchCheck && !this.matchTerm(prevIndex, prevTerm)) return null;
    if (skipMatchCheck && prevIndex > this.lastIndex()) return null;
    const lastNew = logIndex(prevIndex + entries.length);
    const conflict = this.findConflict(entries);
    if (conflict !== 0) {
      assert(
        skipMatchCheck || conflict > this.committed,
        `entry ${conflict} conflicts with the committed log (commit ${this.committed})`,
      );
      const from = Math.max(conflict, this.committed + 1);
      this.append(entries.slice(from - (prevIndex + 1)));
    }
    this.commitTo(logIndex(Math.min(commit, lastNew)));
    return lastNew;
  }

  /** Raises the commit index to `n` (never lowers it). */
  commitTo(n: LogIndex): void {
    if (n <= this.committed) return;
    assert(n <= this.lastIndex(), `commit ${n} beyond the last index ${this.lastIndex()}`);
    this.committed = n;
  }

  /** Leader rule: commit `n` only if entry `n` is from the current term `t` (§5.4.2). */
  maybeCommit(n: LogIndex, t: Term): boolean {
    if (n > this.committed && this.termOrNull(n) === t) {
      this.commitTo(n);
      return true;
    }
    return false;
  }

  /** Committed entries after `applied`, up to `upTo` and `maxBytes` (none while a snapshot is pending). */
  nextCommittedEntries(upTo: LogIndex, maxBytes: number): Entry[] {
    if (this.unstable.snapshot !== null) return [];
    const lo = logIndex(this.applied + 1);
    if (upTo < lo) return [];
    const r = this.entries(lo, logIndex(upTo + 1), maxBytes);
    assert(r.ok, `committed entries after the applied index ${this.applied} must not be compacted`);
    return r.value;
  }

  /** The application applied everything up to `i`. */
  appliedTo(i: LogIndex): void {
    assert(i >= this.applied, `applied index must not go back (${this.applied} -> ${i})`);
    this.applied = i;
  }

  /** Entries up to (`i`, `t`) were persisted; they leave the unstable tail if still the same. */
  stableTo(i: LogIndex, t: Term): void {
    const u = this.unstable;
    if (i < u.offset || i >= u.offset + u.entries.length) return;
    if ((u.entries[i - u.offset] as Entry).term !== t) return; // replaced meanwhile: persist again
    u.entries = u.entries.slice(i + 1 - u.offset);
    u.offset = logIndex(i + 1);
  }

  /** The unstable snapshot at `i` was persisted. */
  stableSnapTo(i: LogIndex): void {
    if (this.unstable.snapshot?.metadata.index === i) this.unstable.snapshot = null;
  }

  /** Replaces the log with `snapshot` (follower installing a leader's snapshot). */
  restore(snapshot: Snapshot): void {
    assert(snapshot.metadata.index > this.committed, 'a restored snapshot must be newer than the commit index');
    this.committed = snapshot.metadata.index;
    this.unstable = { snapshot, entries: [], offset: logIndex(snapshot.metadata.index + 1) };
    // The snapshot's configuration is the one in force; no entry follows it yet.
    this.lastConf = logIndex(0);
  }
}
