/**
 * How a node's cluster log lives on its `Disk`, and how it is recovered at start.
 *
 * Files (one flat directory):
 * - `stable-state`: term, vote and a small blob (incarnation, repair flag), replaced atomically.
 * - `wal-*.log`: WAL records. Type `ENTRY` holds one log entry; an entry whose index is already
 *   present replaces it and every entry after it (Raft's conflict truncation, replayed in order).
 *   Type `HARD` repeats the term and vote, so a damaged stable-state file can be recovered from the
 *   log (both are written before any message that depends on them leaves the node, so whichever
 *   copy survives was never contradicted by what peers saw), and carries the commit index, so a
 *   restarted node knows what it had learned was committed (the newest record wins; a record
 *   written before the commit field existed reads as commit 0).
 * - `snap-*.snap`: state-machine snapshots with their configuration. After a follower installs a
 *   snapshot from its leader the WAL is reset, so recovery reads the newest valid snapshot, then
 *   the WAL entries after it.
 *
 * Damage policy (issue 4, "a node with a corrupted log must notice by checksum, refuse to vote
 * or lead with it, and repair from peers"):
 * - Mid-log WAL corruption (`WalCorruptionError`): the log is discarded (the snapshot and the
 *   stable state are kept) and the node starts in **repair** mode: it neither votes nor campaigns
 *   until it has caught up from a leader that committed an entry of its own term. It may have
 *   acknowledged entries it no longer holds; voting before the repair could elect a leader without
 *   them.
 * - A damaged stable-state file is recovered from the newest `HARD` record of an intact WAL,
 *   and the node starts in repair mode (the repair flag lived in that file: a node that was
 *   repairing would otherwise restart as healthy with an empty log); when both are damaged the
 *   node refuses to start (it cannot know its term or vote). A *missing* stable-state file beside
 *   an existing WAL or snapshot is treated the same way, never as a fresh node: a fresh node's
 *   term 0 and empty vote would let it vote a second time in a term it already voted in. The
 *   incarnation counter lived there too; the node learns its next one from the cluster
 *   (`MembershipService`, `ServiceContext.retire`).
 * - Every repair of durable state is reported as a `StorageRepair` in `Recovered.repairs`.
 * - A WAL whose `HARD` records name a commit beyond the entries held: repair mode too.
 * - A damaged snapshot falls back to an older one; with none left and entries compacted away the
 *   node starts in repair mode from an empty log.
 */
import { assert } from '../lib/assert.js';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { CohortError, DecodeError } from '../lib/errors.js';
import {
  incarnation as makeIncarnation,
  logIndex,
  term as makeTerm,
  type Incarnation,
  type LogIndex,
  type NodeId,
  type Term,
} from '../lib/ids.js';
import type { Disk } from '../storage/disk.js';
import type { RaftMessage } from '../log/index.js';
import type { NodeEnv } from './env.js';
import {
  CorruptFileError,
  StableStore,
  SnapshotStore,
  Wal,
  WalCorruptionError,
  discardedWalRepair,
  parseSegmentName,
  STABLE_STATE_FILE,
  StorageError,
  describeStorageFailure,
  type StableState,
  type StorageRepair,
  type WalRecord,
} from '../storage/index.js';
import { msgpackCodec } from '../transport/message-codec.js';
import { FRAME_PAYLOAD_BYTES_MAX } from '../constants.js';
import {
  MemoryRaftStorage,
  validateConfState,
  validateEntry,
  type ConfState,
  type Entry,
  type Snapshot,
} from '../log/index.js';

/** WAL record types used by the node shell. */
export const WAL_RECORD_ENTRY = 1;
export const WAL_RECORD_HARD = 2;

/** The small state kept in the stable-state blob. */
export interface NodeBlob {
  /** Bumped on every start. */
  readonly incarnation: Incarnation;
  /** Set while the node repairs a damaged log (see the file comment). */
  readonly repairing: boolean;
}

const BLOB_VERSION = 1;

/** Encodes the stable-state blob. */
export function encodeBlob(blob: NodeBlob): Uint8Array {
  return new ByteWriter(16)
    .u32(BLOB_VERSION)
    .u32(blob.incarnation)
    .u8(blob.repairing ? 1 : 0)
    .finish()
    .slice();
}

/** Decodes the stable-state blob (an empty blob is a fresh node). Throws `DecodeError`. */
export function decodeBlob(bytes: Uint8Array): NodeBlob {
  if (bytes.length === 0) return { incarnation: makeIncarnation(0), repairing: false };
  const r = new ByteReader(bytes);
  const version = r.u32('blob version');
  if (version !== BLOB_VERSION)
    throw new DecodeError('BLOB_VERSION', `stable-state blob version ${version} is not ${BLOB_VERSION}`);
  const inc = r.u32('incarnation');
  const flags = r.u8('flags');
  r.end('stable-state blob');
  return { incarnation: makeIncarnation(inc), repairing: (flags & 1) === 1 };
}

const entryCodec = msgpackCodec(validateEntry);

/** Encodes a log entry as a WAL record payload. */
export function encodeEntryRecord(entry: Entry): Uint8Array {
  return entryCodec.encode(entry);
}

/** The content of a `HARD` record. */
export interface HardRecord {
  readonly term: Term;
  readonly vote: NodeId | null;
  /** The commit index known when the record was written (0 in records of the older format). */
  readonly commit: LogIndex;
}

/** Bytes of a `HARD` record without, then with, the commit index. */
const HARD_RECORD_BYTES_V1 = 12;
const HARD_RECORD_BYTES = 20;

/** Encodes a `HARD` record (term, vote, commit). */
export function encodeHardRecord(t: Term, vote: NodeId | null, commit: LogIndex): Uint8Array {
  return new ByteWriter(HARD_RECORD_BYTES)
    .u64(t)
    .u32(vote ?? 0)
    .u64(commit)
    .finish()
    .slice();
}

/** Decodes a `HARD` record of either format. Throws `DecodeError`. */
export function decodeHardRecord(bytes: Uint8Array): HardRecord {
  if (bytes.length !== HARD_RECORD_BYTES && bytes.length !== HARD_RECORD_BYTES_V1) {
    throw new DecodeError(
      'HARD_RECORD_SIZE',
      `a HARD record has ${HARD_RECORD_BYTES} bytes (or ${HARD_RECORD_BYTES_V1} in the older format), not ${bytes.length}`,
    );
  }
  const r = new ByteReader(bytes);
  const t = makeTerm(r.u64('term'));
  const vote = r.u32('vote');
  const commit = bytes.length === HARD_RECORD_BYTES ? logIndex(r.u64('commit')) : logIndex(0);
  r.end('hard record');
  return { term: t, vote: vote === 0 ? null : (vote as NodeId), commit };
}

interface SnapshotFile {
  readonly confState: ConfState;
  readonly data: Uint8Array;
  /** A witness's copy from the leader: no state-machine data (kept, since `confState` may not say so). */
  readonly metadataOnly?: true;
}

const snapshotCodec = msgpackCodec<SnapshotFile>(
  (value: unknown): SnapshotFile => {
    if (typeof value !== 'object' || value === null)
      throw new DecodeError('SNAPSHOT_SHAPE', 'snapshot file payload must be an object');
    const o = value as { confState?: unknown; data?: unknown; metadataOnly?: unknown };
    if (!(o.data instanceof Uint8Array))
      throw new DecodeError('SNAPSHOT_SHAPE', 'snapshot file payload has no data bytes');
    if (o.metadataOnly !== undefined && o.metadataOnly !== true)
      throw new DecodeError('SNAPSHOT_SHAPE', 'snapshot file metadataOnly must be true when present');
    return {
      confState: validateConfState(o.confState),
      data: o.data,
      ...(o.metadataOnly === true ? { metadataOnly: true as const } : {}),
    };
  },
  { payloadBytesMax: FRAME_PAYLOAD_BYTES_MAX },
);

/**
 * Encodes the payload of a snapshot file. `metadataOnly` marks a witness's copy received from the
 * leader: its configuration may predate the witness's admission, so only the mark tells a restart
 * that there is no state-machine data to restore.
 */
export function encodeSnapshotFile(confState: ConfState, data: Uint8Array, metadataOnly = false): Uint8Array {
  return snapshotCodec.encode(metadataOnly ? { confState, data, metadataOnly: true } : { confState, data });
}

/** Raised when a node's disk cannot give it a safe starting point. */
export class RecoveryError extends CohortError {
  override readonly name = 'RecoveryError';
}

/** Everything recovered from a node's disk. */
export interface Recovered {
  readonly storage: MemoryRaftStorage;
  /**
   * The WAL, or null when it was corrupt: its segments are then removed by
   * `discardCorruptWal` only after the repair flag is durable, and a fresh WAL is opened.
   */
  readonly wal: Wal | null;
  /** Names of the corrupt WAL's segments (empty unless `wal` is null). */
  readonly corruptSegments: readonly string[];
  readonly stable: StableStore;
  readonly snapshots: SnapshotStore;
  /** The stable state to persist at start (incarnation already bumped). */
  readonly stableState: StableState;
  readonly blob: NodeBlob;
  /** WAL sequence number of each held entry, by index from `seqBase` on. */
  readonly entrySeqs: number[];
  readonly seqBase: LogIndex;
  /** Why the node starts in repair mode, or null. */
  readonly repairReason: string | null;
  /** Every repair recovery made to durable state (for the owner to log at warn and count). */
  readonly repairs: StorageRepair[];
  /**
   * The stable state (and with it the incarnation counter) was lost: the file is missing beside
   * an existing log, or damaged. The incarnation this start uses may be one the cluster already
   * saw; the membership service learns the right one from the cluster (see `retire`).
   */
  readonly stableStateLost: 'missing' | 'damaged' | null;
  /** Human-readable notes about other findings (traced at debug). */
  readonly notes: string[];
}

/**
 * Loads the newest snapshot that checks out; corrupt ones are skipped with a note and `skipped`
 * is set (the log it covered may be gone, so the caller repairs).
 */
function loadSnapshot(
  disk: Disk,
  snapshots: SnapshotStore,
  repairs: StorageRepair[],
  skipped: { value: boolean },
): Snapshot | null {
  for (const meta of snapshots.list()) {
    try {
      const handle = snapshots.open(meta);
      const bytes = new Uint8Array(handle.bytes);
      for (let off = 0; off < handle.bytes; off += 1024 * 1024)
        bytes.set(handle.readChunk(off, Math.min(1024 * 1024, handle.bytes - off)), off);
      const file = snapshotCodec.decode(bytes);
      return {
        metadata: {
          index: meta.index,
          term: meta.term,
          confState: file.confState,
          ...(file.metadataOnly === true ? { metadataOnly: true as const } : {}),
        },
        data: file.data,
      };
    } catch (e) {
      if (!(e instanceof CorruptFileError || e instanceof DecodeError)) throw e;
      repairs.push({
        kind: 'snapshot-skipped',
        file: meta.file,
        offset: 0,
        bytesLost: disk.size(meta.file) ?? 0,
        cause:
          e instanceof CorruptFileError ? `it fails its checks (${e.message})` : `it does not decode (${e.message})`,
        lost: `the snapshot at index ${meta.index}: an older snapshot, the WAL and the peers replace it`,
      });
      skipped.value = true;
    }
  }
  return null;
}

interface Replayed {
  entries: Entry[];
  seqs: number[];
  hard: HardRecord | null;
  /** The entries after the snapshot did not start right after it: some are missing. */
  gap: boolean;
}

/** Replays WAL records after snapshot `snap` with Raft's truncation semantics. */
function replay(records: readonly WalRecord[], snap: Snapshot | null): Replayed {
  const snapIndex = snap?.metadata.index ?? 0;
  const out: Replayed = { entries: [], seqs: [], hard: null, gap: false };
  let matchAtSnap: boolean | null = null;
  for (const rec of records) {
    if (rec.type === WAL_RECORD_HARD) {
      out.hard = decodeHardRecord(rec.payload);
      continue;
    }
    assert(rec.type === WAL_RECORD_ENTRY, `unknown WAL record type ${rec.type}`);
    const e = entryCodec.decode(rec.payload);
    if (e.index <= snapIndex) {
      // An entry at or below the snapshot point written after later entries is a conflict
      // rewrite: it truncated everything after it.
      out.entries.length = 0;
      out.seqs.length = 0;
      if (e.index === snapIndex) matchAtSnap = e.term === snap?.metadata.term;
      continue;
    }
    const at = e.index - snapIndex - 1;
    if (at > out.entries.length) {
      // Entries missing between the snapshot (or the previous entry) and this one.
      out.gap = true;
      continue;
    }
    out.entries.length = at;
    out.seqs.length = at;
    out.entries.push(e);
    out.seqs.push(rec.seq);
  }
  // Entries after a snapshot whose own entry at the snapshot index has another term belong to a
  // diverged log that the installed snapshot replaced (a crash between the snapshot and the reset).
  if (matchAtSnap === false) {
    out.entries = [];
    out.seqs = [];
  }
  return out;
}

/**
 * Recovers a node's durable state from `disk`, or throws `RecoveryError` when it cannot do so
 * safely. `bootstrap` is the configuration of a fresh node (empty disk).
 */
export function recover(
  disk: Disk,
  bootstrap: ConfState,
  onDurable: (seq: number) => void,
  onFailed?: (error: StorageError) => void,
): Recovered {
  const notes: string[] = [];
  const repairs: StorageRepair[] = [];
  const repairReasons: string[] = [];
  const stable = new StableStore(disk);
  const snapshots = new SnapshotStore(disk, SNAPSHOTS_RETAINED);
  let stableState: StableState | null = null;
  let stableDamage: string | null = null;
  try {
    stableState = stable.load();
  } catch (e) {
    if (!(e instanceof CorruptFileError)) throw e;
    stableDamage = e.message;
  }
  // The stable state is saved before anything is written to the WAL or a snapshot, so a log
  // without it means the file was lost (deleted, or a restore without it): the term, the vote
  // and the repair flag are unknown exactly as when it is damaged, and are treated alike.
  const hasLog = snapshots.list().length > 0 || disk.list().some((n) => parseSegmentName(n) !== null);
  const stableMissing = stableState === null && stableDamage === null && hasLog;
  if (stableMissing) stableDamage = 'the file is missing although the data directory holds a log';
  const skipped = { value: false };
  const snap = loadSnapshot(disk, snapshots, repairs, skipped);
  if (skipped.value) repairReasons.push('a snapshot was damaged, so the entries it covered may be lost');
  let wal: Wal | null = null;
  let records: readonly WalRecord[] = [];
  let corruptSegments: string[] = [];
  try {
    const opened = Wal.open(disk, { onDurable, ...(onFailed === undefined ? {} : { onFailed }) });
    wal = opened.wal;
    records = opened.recovery.records;
    repairs.push(...opened.recovery.repairs);
    if (opened.recovery.tailSuspect)
      repairReasons.push('the WAL tail held a complete record that failed its checksum (a bit flip in synced data?)');
  } catch (e) {
    if (!(e instanceof WalCorruptionError)) throw e;
    repairReasons.push(`the WAL is corrupt (${e.message}); it is discarded`);
    repairs.push(discardedWalRepair(disk, e, snap?.metadata.index ?? 0));
    corruptSegments = disk.list().filter((n) => parseSegmentName(n) !== null);
  }
  const r = replay(records, snap);
  if (r.gap) repairReasons.push('entries are missing between the snapshot and the WAL');
  const heldUpTo = (snap?.metadata.index ?? 0) + r.entries.length;
  if ((r.hard?.commit ?? 0) > heldUpTo)
    repairReasons.push(
      `the WAL says entries up to ${r.hard?.commit ?? 0} were committed but the log ends at ${heldUpTo}`,
    );
  // The stable-state file also keeps the repair flag: with it damaged, a node that was repairing
  // (its log discarded) would look healthy. Assume it was.
  if (stableDamage !== null)
    repairReasons.push('the stable-state file is damaged or missing, so whether the node was repairing is unknown');
  const repairReason = repairReasons.length > 0 ? `${repairReasons.join('; ')}; repairing from peers` : null;
  if (stableDamage !== null && (r.hard === null || wal === null)) {
    throw new RecoveryError(
      'RECOVERY_IMPOSSIBLE',
      `the stable-state file is damaged or missing (${stableDamage}) and the WAL holds no intact copy of the term and vote: this node cannot know whom it voted for, so it must not rejoin with its old identity. Wipe its data directory and add it back as a new member.`,
    );
  }
  if (stableDamage !== null && r.hard !== null) {
    repairs.push({
      kind: stableMissing ? 'stable-state-missing' : 'stable-state-damaged',
      file: STABLE_STATE_FILE,
      offset: 0,
      bytesLost: disk.size(STABLE_STATE_FILE) ?? 0,
      cause: stableDamage,
      lost: `the term, vote, repair flag and incarnation counter: term ${r.hard.term} and vote ${r.hard.vote ?? 'none'} were recovered from the WAL, the node repairs from its peers, and it learns its incarnation from the cluster`,
    });
  }
  const hard = pickNewer({ term: stableState?.term ?? makeTerm(0), vote: stableState?.vote ?? null }, r.hard);
  let blob: NodeBlob;
  try {
    blob = decodeBlob(stableState?.blob ?? new Uint8Array(0));
  } catch (e) {
    if (!(e instanceof DecodeError)) throw e;
    notes.push(`stable-state blob unreadable (${e.message}); starting a new incarnation count`);
    blob = { incarnation: makeIncarnation(0), repairing: false };
  }
  const reason = repairReason ?? (blob.repairing ? 'the node was repairing a damaged log when it stopped' : null);
  blob = { incarnation: makeIncarnation(blob.incarnation + 1), repairing: reason !== null };

  const storage = new MemoryRaftStorage(snap?.metadata.confState ?? bootstrap);
  if (snap !== null) assert(storage.applySnapshot(snap).ok, 'a recovered snapshot is newer than the empty start');
  storage.append(r.entries);
  const commit = recoveredCommit(snap?.metadata.index ?? logIndex(0), storage.lastIndex(), r.hard, notes);
  storage.setHardState({ term: hard.term, vote: hard.vote, commit });
  return {
    storage,
    wal,
    corruptSegments,
    stable,
    snapshots,
    stableState: { term: hard.term, vote: hard.vote, blob: encodeBlob(blob) },
    blob,
    entrySeqs: r.seqs,
    seqBase: logIndex((snap?.metadata.index ?? 0) + 1),
    repairReason: reason,
    repairs,
    stableStateLost: stableMissing ? 'missing' : stableDamage === null ? null : 'damaged',
    notes,
  };
}

/**
 * The commit index to restart with: the newest `HARD` record's, never below the snapshot (which
 * only ever covers committed entries) nor beyond the recovered log. A record is written after the
 * entries of its batch and the log never loses a committed entry, so the clamp only matters for
 * a log cut short by repair; it is noted.
 */
function recoveredCommit(snapIndex: LogIndex, lastIndex: LogIndex, hard: HardRecord | null, notes: string[]): LogIndex {
  const known = Math.max(snapIndex, hard?.commit ?? 0);
  if (known > lastIndex)
    notes.push(
      `the WAL says entries up to ${known} were committed but the log ends at ${lastIndex}; restarting with commit ${lastIndex}`,
    );
  return logIndex(Math.min(known, lastIndex));
}

/** Snapshots kept on disk: the newest plus one fallback in case the newest is damaged. */
const SNAPSHOTS_RETAINED = 2;

function pickNewer(a: { term: Term; vote: NodeId | null }, b: HardRecord | null): { term: Term; vote: NodeId | null } {
  if (b === null || b.term < a.term) return a;
  if (b.term > a.term) return b;
  return { term: a.term, vote: a.vote ?? b.vote };
}

/**
 * Removes a corrupt WAL's segments (call only once the repair flag is durable) and opens a fresh,
 * empty WAL once the removals are durable, so no old segment can be read as part of the new log.
 * A failed removal or directory sync is reported as a `StorageError` (`WAL_FAILED`): the caller
 * must fail-stop on it like on any other storage failure (a raw disk error once stopped only the
 * shell, leaving a silent process the environment never restarted: simulator seed 1099257315).
 */
export function discardCorruptWal(
  disk: Disk,
  segments: readonly string[],
  onDurable: (seq: number) => void,
  done: (error: StorageError | null, wal: Wal | null) => void,
  onFailed?: (error: StorageError) => void,
): void {
  let remaining = segments.length;
  let failed = false;
  const failure = (operation: string, cause: Error, file?: string): StorageError =>
    new StorageError(
      'WAL_FAILED',
      `discarding the corrupt WAL failed: ${operation} failed (${cause.message}); restart the node to repair again`,
      { cause, operation, ...(file === undefined ? {} : { file }) },
    );
  const afterSync = (error: Error | null): void => {
    if (error !== null) done(failure('fsync of the directory', error), null);
    else done(null, Wal.open(disk, { onDurable, ...(onFailed === undefined ? {} : { onFailed }) }).wal);
  };
  if (remaining === 0) {
    disk.syncDir(afterSync);
    return;
  }
  for (const name of segments) {
    disk.remove(name, (error) => {
      if (failed) return;
      if (error !== null) {
        failed = true;
        done(failure(`removal of ${name}`, error, name), null);
        return;
      }
      if (--remaining === 0) disk.syncDir(afterSync);
    });
  }
}

/**
 * `recover`, fail-stopping on an I/O error while reading the disk (it throws: reads are
 * synchronous). The environment ends the incarnation; the constructor then throws a
 * `StorageError` (`READ_FAILED`) that the caller only sees where `failStop` returns.
 */
export function recoverOrFailStop(
  env: NodeEnv<RaftMessage>,
  bootstrap: ConfState,
  onWalFailed: (e: StorageError) => void,
): Recovered {
  try {
    return recover(
      env.disk,
      bootstrap,
      () => {
        /* durability is tracked per flush */
      },
      onWalFailed,
    );
  } catch (e) {
    if (!isDiskIoError(e)) throw e;
    const error = new StorageError('READ_FAILED', `reading the node's storage failed (${e.message})`, {
      cause: e,
      operation: 'read at start',
    });
    env.trace('storage-failed', { code: error.code, file: null, message: error.message });
    env.failStop(`storage failure: ${describeStorageFailure(error)}`, error);
    throw error;
  }
}

/** True for an I/O error a `Disk` read throws (an `Error` with an errno code such as `EIO`). */
function isDiskIoError(e: unknown): e is Error & { readonly code: string } {
  if (!(e instanceof Error) || e instanceof CohortError) return false;
  const code = (e as { code?: unknown }).code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code);
}
