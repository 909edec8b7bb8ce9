/**
 * The write-ahead log engine: segment files over a `Disk`, group commit, recovery.
 *
 * Ownership and ordering:
 * - `append` assigns consecutive sequence numbers and copies the payload; nothing is durable
 *   until `onDurable(seq)` (or a `flush` callback) says so.
 * - Group commit: at most one batch is on the disk at a time (one write, then one sync, then a
 *   directory sync when the batch created its segment). Everything appended while a batch is in
 *   flight forms the next batch, cut at the batch limits. The next batch's write is issued only
 *   after the previous batch's sync completed: `wal-segment.ts` relies on this to tell a torn
 *   tail from corruption.
 * - A failed write or sync fails the WAL for good (`WAL_FAILED`): after a failed fsync the kernel
 *   may have dropped the dirty pages, so retrying could acknowledge data that is gone.
 * - Recovered records are in the page cache of a crashed process, not necessarily on the media:
 *   `open` first syncs the newest segment and the directory, and only then reports them durable.
 * - Callbacks run from disk completions, never inside the call that registered them.
 */
import { assert } from '../lib/assert.js';
import {
  WAL_BATCH_BYTES_MAX,
  WAL_BATCH_RECORDS_MAX,
  WAL_PENDING_BYTES_MAX,
  WAL_PENDING_RECORDS_MAX,
  WAL_RECORD_BYTES_MAX,
  WAL_SEGMENT_BYTES_TARGET,
  STORAGE_WAITERS_MAX,
} from '../constants.js';
import type { Disk } from './disk.js';
import { StorageError, WalCorruptionError } from './storage-error.js';
import type { StorageRepair } from './storage-repair.js';
import {
  RECORD_HEADER_BYTES,
  SEGMENT_HEADER_BYTES,
  WAL_RESET_TYPE,
  WAL_USER_TYPE_MAX,
  encodeRecord,
  encodeSegmentHeader,
  parseSegmentName,
  recordBytes,
  scanSegment,
  segmentName,
  type WalRecord,
} from './wal-segment.js';

/** Options of `Wal.open`. Limits default to `constants.ts` and may only be lowered (tests do). */
export interface WalOptions {
  /** Called after each group commit with the highest sequence number now durable. */
  readonly onDurable?: (throughSeq: number) => void;
  /** Called once when the WAL fails; nothing is acknowledged afterwards. */
  readonly onFailed?: (error: StorageError) => void;
  readonly segmentBytesTarget?: number;
  readonly batchRecordsMax?: number;
  readonly batchBytesMax?: number;
  readonly pendingRecordsMax?: number;
}

/** What `Wal.open` recovered. */
export interface WalRecovery {
  /** User records in sequence order (reset markers removed). Payloads are views, not copies. */
  readonly records: WalRecord[];
  /** Bytes of torn tail cut from the newest segment (0 after a clean shutdown). */
  readonly tornTailBytes: number;
  /** The cut tail began with a complete record that failed its checksum (see `SegmentScan.tailSuspect`). */
  readonly tailSuspect: boolean;
  /** The sequence number the next `append` will get. */
  readonly nextSeq: number;
  /** Segment files from before the newest reset marker, being removed. */
  readonly supersededSegments: number;
  /** The repairs made (a cut torn tail), for the node to log and count; empty after a clean stop. */
  readonly repairs: StorageRepair[];
}

/** Counters for tests and metrics. */
export interface WalStats {
  appends: number;
  batches: number;
  syncs: number;
  bytesWritten: number;
}

interface Segment {
  readonly name: string;
  readonly firstSeq: number;
  size: number;
  /** False until the segment's first batch (which carries the header) was written. */
  headerWritten: boolean;
  /** The segment's creation must be made durable by a directory sync before acknowledging. */
  needsDirSync: boolean;
}

type Pending =
  | { readonly kind: 'record'; readonly seq: number; readonly type: number; readonly payload: Uint8Array }
  | { readonly kind: 'reset'; readonly seq: number; readonly done: WalCallback };

/** Completion of a WAL operation: null on success, or the error that failed the WAL. */
export type WalCallback = (error: StorageError | null) => void;

interface Removal {
  readonly name: string;
  readonly done: WalCallback | null;
}

/** See the file comment. */
export class Wal {
  readonly stats: WalStats = { appends: 0, batches: 0, syncs: 0, bytesWritten: 0 };
  private readonly segments: Segment[];
  private readonly pending: (Pending | undefined)[] = [];
  private pendingHead = 0;
  private pendingRecords = 0;
  private pendingBytes = 0;
  private nextSeqValue: number;
  private durable: number;
  private busy = false;
  private failure: StorageError | null = null;
  private closed = false;
  private readonly waiters: { seq: number; done: WalCallback }[] = [];
  private readonly removals: Removal[] = [];
  private removing = false;
  private readonly limits: Required<Omit<WalOptions, 'onDurable' | 'onFailed'>>;

  private constructor(
    private readonly disk: Disk,
    private readonly options: WalOptions,
    segments: Segment[],
    nextSeq: number,
  ) {
    this.limits = {
      segmentBytesTarget: lowered(options.segmentBytesTarget, WAL_SEGMENT_BYTES_TARGET, 'segmentBytesTarget'),
      batchRecordsMax: lowered(options.batchRecordsMax, WAL_BATCH_RECORDS_MAX, 'batchRecordsMax'),
      batchBytesMax: lowered(options.batchBytesMax, WAL_BATCH_BYTES_MAX, 'batchBytesMax'),
      pendingRecordsMax: lowered(options.pendingRecordsMax, WAL_PENDING_RECORDS_MAX, 'pendingRecordsMax'),
    };
    this.segments = segments;
    this.nextSeqValue = nextSeq;
    this.durable = nextSeq - 1;
  }

  /**
   * Recovers the WAL stored on `disk`: reads every segment, classifies damage (see
   * `wal-segment.ts`), and queues the repairs (truncate the torn tail, remove superseded
   * segments, sync what the previous process may have left in the page cache). Appends may start
   * at once; they are written after the repairs. Throws `WalCorruptionError` on mid-log
   * corruption: the caller must not use this log.
   */
  static open(disk: Disk, options: WalOptions = {}): { wal: Wal; recovery: WalRecovery } {
    const names = disk.list().filter((name) => parseSegmentName(name) !== null);
    const start = newestReset(disk, names);
    const superseded = names.slice(0, start);
    const scanned = recoverSegments(disk, names.slice(start));
    const wal = new Wal(disk, options, scanned.segments, scanned.nextSeq);
    const last = scanned.segments.at(-1);
    const repairs = last === undefined || scanned.tornBytes === 0 ? [] : [tornTailRepair(last, scanned)];
    for (const name of superseded) wal.removals.push({ name, done: null });
    wal.pumpRemovals();
    if (last !== undefined) {
      // Earlier segments were synced before the newest one was created; the newest may not be.
      wal.durable = last.firstSeq - 1;
      wal.busy = true;
      wal.repair(last, scanned.tornBytes, scanned.nextSeq - 1);
    }
    return {
      wal,
      recovery: {
        records: scanned.records,
        tornTailBytes: scanned.tornBytes,
        tailSuspect: scanned.tailSuspect,
        nextSeq: scanned.nextSeq,
        supersededSegments: superseded.length,
        repairs,
      },
    };
  }

  /** The sequence number the next `append` will get. */
  get nextSeq(): number {
    return this.nextSeqValue;
  }

  /** The highest sequence number known durable (0 when none). */
  get durableSeq(): number {
    return this.durable;
  }

  /** The error that failed the WAL, or null while it is healthy. */
  get error(): StorageError | null {
    return this.failure;
  }

  /**
   * Appends one record of `type` (1..WAL_USER_TYPE_MAX) and returns its sequence number. The
   * payload is copied. Throws `WAL_RECORD_TOO_LARGE`, `WAL_BACKPRESSURE` (wait for `onDurable`),
   * `WAL_FAILED` or `WAL_CLOSED`; a refused append changes nothing.
   */
  append(type: number, payload: Uint8Array): number {
    return this.appendAll([{ type, payload }]);
  }

  /**
   * Appends several records that go to disk in the same batch when the WAL is idle, and returns
   * the last sequence number. All or nothing: on error none is appended.
   */
  appendAll(items: readonly { readonly type: number; readonly payload: Uint8Array }[]): number {
    this.checkUsable();
    assert(items.length > 0, 'appendAll needs at least one record');
    let bytes = 0;
    for (const { type, payload } of items) {
      assert(
        Number.isInteger(type) && type >= 1 && type <= WAL_USER_TYPE_MAX,
        `record type must be in 1..${WAL_USER_TYPE_MAX}`,
      );
      if (payload.length > WAL_RECORD_BYTES_MAX) {
        throw new StorageError(
          'WAL_RECORD_TOO_LARGE',
          `WAL record of ${payload.length} bytes exceeds the limit of ${WAL_RECORD_BYTES_MAX} bytes; split the data or store it in a snapshot`,
        );
      }
      bytes += payload.length;
    }
    if (
      this.pendingRecords + items.length > this.limits.pendingRecordsMax ||
      this.pendingBytes + bytes > WAL_PENDING_BYTES_MAX
    ) {
      throw new StorageError(
        'WAL_BACKPRESSURE',
        `WAL has ${this.pendingRecords} records (${this.pendingBytes} bytes) waiting for fsync; wait for onDurable before appending more`,
      );
    }
    for (const { type, payload } of items) {
      this.pending.push({ kind: 'record', seq: this.nextSeqValue++, type, payload: payload.slice() });
      this.stats.appends++;
    }
    this.pendingRecords += items.length;
    this.pendingBytes += bytes;
    this.startNext();
    return this.nextSeqValue - 1;
  }

  /**
   * Asks to be told when everything appended so far is durable. Returns true, without ever
   * calling `done`, when it already is; otherwise `done` is called once from a disk completion,
   * with null, or with the error that failed the WAL. Throws when the WAL already failed.
   */
  flush(done: WalCallback): boolean {
    this.checkUsable();
    const target = this.nextSeqValue - 1;
    if (target <= this.durable) return true;
    this.addWaiter(target, done);
    return false;
  }

  /**
   * Removes whole segments whose records all precede `seq` (log compaction after a snapshot),
   * oldest first, each removal made durable before the next so a crash never leaves a gap.
   * The newest segment is never removed. `done` runs once the removals are durable.
   */
  truncateBefore(seq: number, done: WalCallback): void {
    this.checkUsable();
    let removable = 0;
    while (removable + 1 < this.segments.length && (this.segments[removable + 1]?.firstSeq ?? Infinity) <= seq)
      removable++;
    const dropped = this.segments.splice(0, removable);
    dropped.forEach((segment, i) => {
      this.removals.push({ name: segment.name, done: i === dropped.length - 1 ? done : null });
    });
    if (dropped.length === 0) this.removals.push({ name: '', done });
    this.pumpRemovals();
  }

  /**
   * Discards every record (a snapshot replaced the whole log). Records appended before the call
   * are still written in order; then a reset marker starts a new segment, and once the marker is
   * durable `done` runs and recovery will never return anything older. Sequence numbers keep
   * growing (the marker takes one). Older segments are removed in the background.
   */
  reset(done: WalCallback): void {
    this.checkUsable();
    this.pending.push({ kind: 'reset', seq: this.nextSeqValue++, done });
    this.pendingRecords++;
    this.startNext();
  }

  /** Stops the WAL. Completions and callbacks still pending never fire (as after a crash). */
  close(): void {
    this.closed = true;
  }

  private checkUsable(): void {
    if (this.closed) throw new StorageError('WAL_CLOSED', 'the WAL was closed; open it again to continue');
    if (this.failure !== null) throw this.failure;
  }

  private addWaiter(seq: number, done: WalCallback): void {
    if (this.waiters.length >= STORAGE_WAITERS_MAX) {
      throw new StorageError(
        'STORAGE_BACKPRESSURE',
        `more than ${STORAGE_WAITERS_MAX} callers wait for WAL flushes; wait for earlier ones`,
      );
    }
    this.waiters.push({ seq, done });
  }

  // ---- the I/O pipeline: one step at a time ------------------------------------------------

  private startNext(): void {
    if (this.busy || this.closed || this.failure !== null) return;
    const head = this.pending[this.pendingHead];
    if (head === undefined) return;
    this.busy = true;
    if (head.kind === 'reset') this.writeReset(head);
    else this.writeBatch();
  }

  /** Runs `fn` if the WAL is still live when a disk completion arrives, or fails the WAL on error. */
  private step(what: string, file: string | null, fn: () => void): (error: Error | null) => void {
    return (error) => {
      if (this.closed || this.failure !== null) return;
      if (error !== null) {
        this.fail(what, file, error);
        return;
      }
      fn();
    };
  }

  private repair(last: Segment, tornBytes: number, recoveredThrough: number): void {
    const syncAll = (): void => {
      this.disk.sync(
        last.name,
        this.step(`fsync of ${last.name} during recovery`, last.name, () => {
          this.disk.syncDir(
            this.step('directory sync during recovery', null, () => {
              this.acknowledge(recoveredThrough);
            }),
          );
        }),
      );
    };
    if (tornBytes === 0) syncAll();
    else
      this.disk.truncate(
        last.name,
        last.size,
        this.step(`truncation of the torn tail of ${last.name}`, last.name, syncAll),
      );
  }

  private activeSegment(firstSeqIfNew: number, forceNew: boolean): Segment {
    const active = this.segments.at(-1);
    const empty = active !== undefined && active.firstSeq === firstSeqIfNew;
    if (active !== undefined && (empty || (!forceNew && active.size < this.limits.segmentBytesTarget))) return active;
    const segment: Segment = {
      name: segmentName(firstSeqIfNew),
      firstSeq: firstSeqIfNew,
      size: 0,
      headerWritten: false,
      needsDirSync: true,
    };
    this.segments.push(segment);
    return segment;
  }

  private writeBatch(): void {
    const first = this.pending[this.pendingHead];
    assert(first?.kind === 'record', 'a batch starts with a record');
    const segment = this.activeSegment(first.seq, false);
    const batch: Extract<Pending, { kind: 'record' }>[] = [];
    let bytes = segment.headerWritten ? 0 : SEGMENT_HEADER_BYTES;
    for (let i = this.pendingHead; i < this.pending.length && batch.length < this.limits.batchRecordsMax; i++) {
      const item = this.pending[i];
      if (item?.kind !== 'record') break;
      const size = recordBytes(item.payload.length);
      if (batch.length > 0 && bytes + size > this.limits.batchBytesMax) break;
      batch.push(item);
      bytes += size;
    }
    const buffer = new Uint8Array(bytes);
    let offset = 0;
    if (!segment.headerWritten) {
      buffer.set(encodeSegmentHeader(segment.firstSeq));
      offset = SEGMENT_HEADER_BYTES;
    }
    batch.forEach((item, index) => {
      offset = encodeRecord(buffer, offset, item.seq, index, item.type, item.payload);
    });
    assert(offset === bytes, 'the batch buffer is exactly filled');
    const lastSeq = (batch.at(-1) as { seq: number }).seq;
    this.writeAndSync(segment, buffer, lastSeq, batch.length);
  }

  private writeReset(marker: Extract<Pending, { kind: 'reset' }>): void {
    const segment = this.activeSegment(marker.seq, true);
    const header = segment.headerWritten ? 0 : SEGMENT_HEADER_BYTES;
    const buffer = new Uint8Array(header + RECORD_HEADER_BYTES);
    if (header > 0) buffer.set(encodeSegmentHeader(segment.firstSeq));
    encodeRecord(buffer, header, marker.seq, 0, WAL_RESET_TYPE, new Uint8Array(0));
    this.addWaiter(marker.seq, marker.done);
    this.writeAndSync(segment, buffer, marker.seq, 1);
  }

  private writeAndSync(segment: Segment, buffer: Uint8Array, lastSeq: number, count: number): void {
    this.stats.batches++;
    this.disk.write(
      segment.name,
      segment.size,
      buffer,
      this.step(`write of ${buffer.length} bytes to ${segment.name}`, segment.name, () => {
        segment.size += buffer.length;
        segment.headerWritten = true;
        this.stats.bytesWritten += buffer.length;
        this.stats.syncs++;
        this.disk.sync(
          segment.name,
          this.step(`fsync of ${segment.name}`, segment.name, () => {
            if (!segment.needsDirSync) {
              this.complete(count, lastSeq);
              return;
            }
            this.disk.syncDir(
              this.step(`directory sync after creating ${segment.name}`, segment.name, () => {
                segment.needsDirSync = false;
                this.complete(count, lastSeq);
              }),
            );
          }),
        );
      }),
    );
  }

  /** A batch (or reset marker) is fully durable, its segment's creation included. */
  private complete(count: number, lastSeq: number): void {
    this.dequeue(count);
    this.acknowledge(lastSeq);
  }

  private dequeue(count: number): void {
    for (let i = 0; i < count; i++) {
      const item = this.pending[this.pendingHead];
      assert(item !== undefined, 'dequeued items were pending');
      this.pending[this.pendingHead++] = undefined;
      this.pendingRecords--;
      if (item.kind === 'record') this.pendingBytes -= item.payload.length;
      else this.supersedeBefore(item.seq);
    }
    if (this.pendingHead > 1024 && this.pendingHead * 2 > this.pending.length) {
      this.pending.splice(0, this.pendingHead);
      this.pendingHead = 0;
    }
  }

  /** After a durable reset marker at `seq`, every older segment goes (in the background). */
  private supersedeBefore(seq: number): void {
    const keep = this.segments.findIndex((s) => s.firstSeq === seq);
    assert(keep >= 0, 'the reset marker starts a segment');
    for (const segment of this.segments.splice(0, keep)) this.removals.push({ name: segment.name, done: null });
    this.pumpRemovals();
  }

  private acknowledge(throughSeq: number): void {
    assert(throughSeq >= this.durable, 'durability only moves forward');
    this.durable = throughSeq;
    this.busy = false;
    let resolved = 0;
    while (resolved < this.waiters.length && (this.waiters[resolved]?.seq ?? Infinity) <= throughSeq) resolved++;
    const ready = this.waiters.splice(0, resolved);
    this.startNext();
    for (const waiter of ready) waiter.done(null);
    this.options.onDurable?.(throughSeq);
  }

  private fail(what: string, file: string | null, cause: Error): void {
    this.failure = new StorageError(
      'WAL_FAILED',
      `WAL ${what} failed (${cause.message}); the WAL acknowledges nothing more: restart the node to recover from disk`,
      { cause, operation: what, ...(file === null ? {} : { file }) },
    );
    const waiters = this.waiters.splice(0);
    const removals = this.removals.splice(0);
    for (const waiter of waiters) waiter.done(this.failure);
    for (const removal of removals) removal.done?.(this.failure);
    this.options.onFailed?.(this.failure);
  }

  // ---- background removals: one at a time, each made durable before the next -------------

  private pumpRemovals(): void {
    if (this.removing || this.closed || this.failure !== null) return;
    const next = this.removals[0];
    if (next === undefined) return;
    this.removing = true;
    const finish = (): void => {
      this.removing = false;
      this.removals.shift();
      next.done?.(null);
      this.pumpRemovals();
    };
    if (next.name === '') {
      // A no-op truncateBefore still answers asynchronously, after earlier removals.
      this.disk.syncDir(this.step('directory sync', null, finish));
      return;
    }
    this.disk.remove(
      next.name,
      this.step(`removal of ${next.name}`, next.name, () => {
        this.disk.syncDir(this.step(`directory sync after removing ${next.name}`, next.name, finish));
      }),
    );
  }
}

function lowered(value: number | undefined, max: number, what: string): number {
  if (value === undefined) return max;
  assert(Number.isInteger(value) && value >= 1 && value <= max, `${what} must be an integer in [1, ${max}]`);
  return value;
}

/** Index in `names` of the newest segment that starts with an intact reset marker, or 0. */
function newestReset(disk: Disk, names: readonly string[]): number {
  for (let i = names.length - 1; i > 0; i--) {
    const name = names[i] ?? '';
    const head = disk.readRange(name, 0, SEGMENT_HEADER_BYTES + RECORD_HEADER_BYTES);
    if (head === null) continue;
    try {
      const scan = scanSegment(name, head, parseSegmentName(name) ?? 0, true);
      if (scan.records[0]?.type === WAL_RESET_TYPE) return i;
    } catch (error) {
      // A damaged head is no reset marker; the full scan below classifies the damage.
      if (!(error instanceof WalCorruptionError)) throw error;
    }
  }
  return 0;
}

/** The report of a cut torn tail in segment `last` (its `size` is where the cut starts). */
function tornTailRepair(last: Segment, scanned: Recovered): StorageRepair {
  const intact = scanned.nextSeq - 1;
  return {
    kind: 'wal-torn-tail',
    file: last.name,
    offset: last.size,
    bytesLost: scanned.tornBytes,
    cause: scanned.tailSuspect
      ? 'the tail starts with a complete record that fails its checksum (a bit flip in synced data?)'
      : 'an interrupted write (a partial or zero-filled batch)',
    lost: `the cut bytes held the record(s) after sequence number ${intact}${
      scanned.tailSuspect
        ? ', possibly acknowledged: the node repairs from its peers'
        : ', taken for an interrupted write, so assumed never acknowledged'
    }`,
  };
}

/**
 * The report of discarding the whole WAL on `disk` after `error` (mid-log corruption): every
 * segment's bytes are dropped and the log entries they held are rebuilt from peers.
 */
export function discardedWalRepair(disk: Disk, error: WalCorruptionError, keptThrough: number): StorageRepair {
  const names = disk.list().filter((name) => parseSegmentName(name) !== null);
  const bytes = names.reduce((sum, name) => sum + (disk.size(name) ?? 0), 0);
  return {
    kind: 'wal-discarded',
    file: error.segment,
    offset: error.offset,
    bytesLost: bytes,
    cause: `mid-log corruption: ${error.detail}`,
    lost: `all ${names.length} WAL segment(s), i.e. every log entry ${
      keptThrough === 0 ? '(no snapshot is kept)' : `after the snapshot at index ${keptThrough}`
    }; they are rebuilt from peers`,
  };
}

interface Recovered {
  readonly segments: Segment[];
  readonly records: WalRecord[];
  readonly tornBytes: number;
  readonly tailSuspect: boolean;
  readonly nextSeq: number;
}

function recoverSegments(disk: Disk, names: readonly string[]): Recovered {
  const segments: Segment[] = [];
  const records: WalRecord[] = [];
  let expected: number | null = null;
  let tornBytes = 0;
  let tailSuspect = false;
  for (let i = 0; i < names.length; i++) {
    const name = names[i] ?? '';
    const firstSeq = parseSegmentName(name) ?? 0;
    if (expected !== null && firstSeq !== expected) {
      throw new WalCorruptionError(
        name,
        0,
        `segment starts at sequence number ${firstSeq} but the previous segment ends before ${expected} (a segment is missing or extra)`,
      );
    }
    const bytes = disk.read(name) ?? new Uint8Array(0);
    const last = i === names.length - 1;
    const scan = scanSegment(name, bytes, firstSeq, last);
    scan.records.forEach((record, j) => {
      if (record.type !== WAL_RESET_TYPE) records.push(record);
      else if (i !== 0 || j !== 0)
        throw new WalCorruptionError(name, 0, `reset marker ${record.seq} is not the first record of the log`);
    });
    if (last) {
      tornBytes = scan.tornBytes;
      tailSuspect = scan.tailSuspect;
    }
    segments.push({ name, firstSeq, size: scan.validBytes, headerWritten: scan.headerValid, needsDirSync: false });
    expected = firstSeq + scan.records.length;
  }
  return { segments, records, tornBytes, tailSuspect, nextSeq: expected ?? 1 };
}
