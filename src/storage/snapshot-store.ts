/**
 * Snapshot files: written in bounded chunks to a temporary file, then made durable and renamed
 * into place atomically (write chunks, write header, fsync, rename, fsync directory). Older
 * snapshots are removed only after the new one is durable, so a crash always leaves at least
 * one complete snapshot if one ever existed.
 *
 * File `snap-<16 hex index>-<16 hex term>.snap`, layout (little-endian): a 48-byte header
 * ("COHSNP01", u32 version, u32 data crc32c, u64 index, u64 term, u64 data length, u32 header
 * crc32c over the 44 bytes before it, u32 zero) followed by the data.
 */
import { assert } from '../lib/assert.js';
import { crc32c } from '../lib/checksum.js';
import { logIndex, term, type LogIndex, type Term } from '../lib/ids.js';
import { SNAPSHOT_BYTES_MAX, SNAPSHOT_CHUNK_BYTES_MAX } from '../constants.js';
import type { Disk } from './disk.js';
import { CorruptFileError, StorageError } from './storage-error.js';

/** Bytes of the snapshot header. */
export const SNAPSHOT_HEADER_BYTES = 48;

const MAGIC = [0x43, 0x4f, 0x48, 0x53, 0x4e, 0x50, 0x30, 0x31]; // "COHSNP01"
const VERSION = 1;
const NAME = /^snap-([0-9a-f]{16})-([0-9a-f]{16})\.snap$/;
const TEMP_SUFFIX = '.tmp';
const TWO_32 = 0x1_0000_0000;
const ADVICE = 'Fall back to an older snapshot if one is listed, or fetch a snapshot from a peer.';

/** A snapshot file as listed (by name; `SnapshotStore.open` checks the content). */
export interface SnapshotMeta {
  readonly file: string;
  readonly index: LogIndex;
  readonly term: Term;
}

/** An opened, header-checked snapshot. */
export interface SnapshotHandle extends SnapshotMeta {
  /** Data bytes (without the header). */
  readonly bytes: number;
  /** Up to `length` data bytes from `offset`; `length` at most `SNAPSHOT_CHUNK_BYTES_MAX`. */
  readChunk(offset: number, length: number): Uint8Array;
}

/** The file name of the snapshot at (`index`, `term`). */
export function snapshotFileName(index: LogIndex, term: Term): string {
  return `snap-${index.toString(16).padStart(16, '0')}-${term.toString(16).padStart(16, '0')}.snap`;
}

/** Lists, opens, writes and prunes snapshot files on one `Disk`. */
export class SnapshotStore {
  constructor(
    private readonly disk: Disk,
    /** Complete snapshots kept after a new one is durable (the newest ones). */
    private readonly retain = 1,
  ) {
    assert(Number.isInteger(retain) && retain >= 1 && retain <= 16, 'snapshot retention must be in 1..16');
  }

  /** Complete snapshot files by name, newest (highest index, then term) first. */
  list(): SnapshotMeta[] {
    const out: SnapshotMeta[] = [];
    for (const file of this.disk.list()) {
      const match = NAME.exec(file);
      if (match === null) continue;
      const index = Number.parseInt(match[1] ?? '', 16);
      const snapTerm = Number.parseInt(match[2] ?? '', 16);
      if (!Number.isSafeInteger(index) || !Number.isSafeInteger(snapTerm)) continue;
      out.push({ file, index: logIndex(index), term: term(snapTerm) });
    }
    return out.sort((a, b) => b.index - a.index || b.term - a.term);
  }

  /**
   * Opens `meta` and checks its header and the checksum of all its data (read chunk by chunk).
   * Throws `CorruptFileError` (`SNAPSHOT_CORRUPT`) when anything is wrong: fall back to an older
   * snapshot or to a peer.
   */
  open(meta: SnapshotMeta): SnapshotHandle {
    const corrupt = (detail: string): CorruptFileError =>
      new CorruptFileError('SNAPSHOT_CORRUPT', meta.file, detail, ADVICE);
    const header = this.disk.readRange(meta.file, 0, SNAPSHOT_HEADER_BYTES);
    const size = this.disk.size(meta.file);
    if (header === null || size === null) throw corrupt('the file disappeared');
    const parsed = parseHeader(header);
    if (typeof parsed === 'string') throw corrupt(parsed);
    if (parsed.index !== meta.index || parsed.term !== meta.term)
      throw corrupt(`header says index ${parsed.index} term ${parsed.term}, the name disagrees`);
    if (parsed.bytes !== size - SNAPSHOT_HEADER_BYTES)
      throw corrupt(`header says ${parsed.bytes} data bytes, the file holds ${size - SNAPSHOT_HEADER_BYTES}`);
    const readChunk = (offset: number, length: number): Uint8Array => {
      assert(length >= 0 && length <= SNAPSHOT_CHUNK_BYTES_MAX, 'snapshot chunks are bounded');
      assert(offset >= 0 && offset <= parsed.bytes, 'snapshot chunk offset inside the data');
      const chunk = this.disk.readRange(
        meta.file,
        SNAPSHOT_HEADER_BYTES + offset,
        Math.min(length, parsed.bytes - offset),
      );
      if (chunk === null) throw corrupt('the file disappeared while being read');
      return chunk;
    };
    let crc = 0;
    for (let offset = 0; offset < parsed.bytes; offset += SNAPSHOT_CHUNK_BYTES_MAX)
      crc = crc32c(readChunk(offset, SNAPSHOT_CHUNK_BYTES_MAX), crc);
    if (crc !== parsed.dataCrc) throw corrupt('data checksum mismatch');
    return { ...meta, bytes: parsed.bytes, readChunk };
  }

  /** The whole data of `meta`, checked (for small snapshots; large ones use `open` + `readChunk`). */
  load(meta: SnapshotMeta): Uint8Array {
    const handle = this.open(meta);
    assert(handle.bytes <= SNAPSHOT_CHUNK_BYTES_MAX * 4, 'load() is for small snapshots; use open() and readChunk()');
    const out = new Uint8Array(handle.bytes);
    for (let offset = 0; offset < handle.bytes; offset += SNAPSHOT_CHUNK_BYTES_MAX)
      out.set(handle.readChunk(offset, SNAPSHOT_CHUNK_BYTES_MAX), offset);
    return out;
  }

  /** Starts writing the snapshot at (`index`, `term`). One writer per store at a time. */
  create(index: LogIndex, snapTerm: Term): SnapshotWriter {
    return new SnapshotWriter(this.disk, index, snapTerm, (meta, done) => {
      this.prune(meta, done);
    });
  }

  /**
   * Removes the `snap-*.tmp` leftovers of writes a crash interrupted; `done` runs after the
   * directory sync. Call it once at start, before the first `create` (the Raft shell does so
   * while it recovers): nothing else removes them, and each may be as large as a snapshot. Never
   * call it while a `SnapshotWriter` of this store is open: it would delete that writer's file.
   */
  removeTemporaries(done: (error: StorageError | null) => void): void {
    const temps = this.disk.list().filter((f) => f.startsWith('snap-') && f.endsWith(TEMP_SUFFIX));
    this.removeAll(temps, done);
  }

  private prune(newest: SnapshotMeta, done: (error: StorageError | null) => void): void {
    const older = this.list().filter(
      (m) => m.file !== newest.file && (m.index < newest.index || (m.index === newest.index && m.term < newest.term)),
    );
    this.removeAll(
      older.slice(Math.max(0, this.retain - 1)).map((m) => m.file),
      done,
    );
  }

  private removeAll(files: string[], done: (error: StorageError | null) => void): void {
    let remaining = files.length;
    let failed = false;
    const fail = (error: Error): void => {
      if (failed) return;
      failed = true;
      done(
        new StorageError('SNAPSHOT_FAILED', `removing old snapshot files failed (${error.message})`, {
          cause: error,
          operation: 'removal of old snapshot files',
        }),
      );
    };
    const syncDone = (error: Error | null): void => {
      if (error === null) done(null);
      else fail(error);
    };
    const afterRemove = (error: Error | null): void => {
      if (error !== null) {
        fail(error);
        return;
      }
      if (--remaining === 0) this.disk.syncDir(syncDone);
    };
    if (files.length === 0) {
      // Nothing to remove; still answer asynchronously through the disk.
      this.disk.syncDir(syncDone);
      return;
    }
    for (const file of files) this.disk.remove(file, afterRemove);
  }
}

/**
 * Writes one snapshot in chunks. At most one chunk is in flight (bounded memory); a chunk must
 * not be modified until its `done` ran. `commit` makes it durable and visible; `abort` drops it.
 */
export class SnapshotWriter {
  private readonly tmp: string;
  private readonly file: string;
  private offset = 0;
  private crc = 0;
  private state: 'open' | 'busy' | 'done' | StorageError = 'open';

  constructor(
    private readonly disk: Disk,
    private readonly index: LogIndex,
    private readonly snapTerm: Term,
    private readonly onCommitted: (meta: SnapshotMeta, done: (error: StorageError | null) => void) => void,
  ) {
    this.file = snapshotFileName(index, snapTerm);
    this.tmp = `${this.file}${TEMP_SUFFIX}`;
  }

  /** Data bytes written so far. */
  get bytes(): number {
    return this.offset;
  }

  /**
   * Appends `chunk` (at most `SNAPSHOT_CHUNK_BYTES_MAX` bytes). Throws `SNAPSHOT_TOO_LARGE` when
   * the snapshot would exceed `SNAPSHOT_BYTES_MAX`, or the writer's failure.
   */
  write(chunk: Uint8Array, done: (error: StorageError | null) => void): void {
    this.checkOpen();
    assert(
      chunk.length <= SNAPSHOT_CHUNK_BYTES_MAX,
      `snapshot chunks must be at most ${SNAPSHOT_CHUNK_BYTES_MAX} bytes`,
    );
    if (this.offset + chunk.length > SNAPSHOT_BYTES_MAX) {
      throw new StorageError(
        'SNAPSHOT_TOO_LARGE',
        `snapshot would exceed ${SNAPSHOT_BYTES_MAX} bytes; compact the state machine or raise SNAPSHOT_BYTES_MAX`,
      );
    }
    this.state = 'busy';
    this.crc = crc32c(chunk, this.crc);
    const at = SNAPSHOT_HEADER_BYTES + this.offset;
    this.offset += chunk.length;
    this.disk.write(
      this.tmp,
      at,
      chunk,
      this.step(
        'write',
        () => {
          this.state = 'open';
          done(null);
        },
        done,
      ),
    );
  }

  /**
   * Writes the header, fsyncs, renames into place and fsyncs the directory; then removes older
   * snapshots beyond the store's retention. `done` runs after all of it, with the snapshot's
   * meta, or with `SNAPSHOT_FAILED` (the new snapshot may then be absent; older ones remain).
   */
  commit(done: (error: StorageError | null, meta: SnapshotMeta | null) => void): void {
    this.checkOpen();
    this.state = 'busy';
    const header = encodeHeader(this.index, this.snapTerm, this.offset, this.crc);
    const meta: SnapshotMeta = { file: this.file, index: this.index, term: this.snapTerm };
    const fail = (error: StorageError | null): void => {
      done(error, null);
    };
    // The header goes last: a torn file without it can never pass `open`.
    this.disk.write(
      this.tmp,
      0,
      header,
      this.step(
        'header write',
        () => {
          this.disk.truncate(
            this.tmp,
            SNAPSHOT_HEADER_BYTES + this.offset,
            this.step(
              'truncate',
              () => {
                this.disk.sync(
                  this.tmp,
                  this.step(
                    'fsync',
                    () => {
                      this.disk.rename(
                        this.tmp,
                        this.file,
                        this.step(
                          'rename',
                          () => {
                            this.disk.syncDir(
                              this.step(
                                'directory sync',
                                () => {
                                  this.state = 'done';
                                  this.onCommitted(meta, (error) => {
                                    done(error, meta);
                                  });
                                },
                                fail,
                              ),
                            );
                          },
                          fail,
                        ),
                      );
                    },
                    fail,
                  ),
                );
              },
              fail,
            ),
          );
        },
        fail,
      ),
    );
  }

  /** Drops the partial snapshot; `done` runs once its temporary file is removed. */
  abort(done: (error: StorageError | null) => void): void {
    assert(this.state !== 'busy', 'abort only between operations');
    this.state = 'done';
    this.disk.remove(this.tmp, (error) => {
      done(
        error === null
          ? null
          : new StorageError('SNAPSHOT_FAILED', `removing ${this.tmp} failed (${error.message})`, {
              cause: error,
              file: this.tmp,
              operation: `removal of ${this.tmp}`,
            }),
      );
    });
  }

  private checkOpen(): void {
    if (this.state instanceof StorageError) throw this.state;
    assert(this.state === 'open', 'snapshot writer: one operation at a time, none after commit or abort');
  }

  private step(
    what: string,
    next: () => void,
    done: (error: StorageError | null) => void,
  ): (error: Error | null) => void {
    return (error) => {
      if (error === null) {
        next();
        return;
      }
      const failure = new StorageError(
        'SNAPSHOT_FAILED',
        `snapshot ${this.file}: ${what} failed (${error.message}); the partial snapshot is discarded`,
        { cause: error, file: this.tmp, operation: `${what} of ${this.tmp}` },
      );
      this.state = failure;
      done(failure);
    };
  }
}

function encodeHeader(index: number, snapTerm: number, bytes: number, dataCrc: number): Uint8Array {
  const out = new Uint8Array(SNAPSHOT_HEADER_BYTES);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint32(8, VERSION, true);
  view.setUint32(12, dataCrc, true);
  setU64(view, 16, index);
  setU64(view, 24, snapTerm);
  setU64(view, 32, bytes);
  view.setUint32(40, 0, true);
  view.setUint32(44, crc32c(out.subarray(0, 44)), true);
  return out;
}

function parseHeader(header: Uint8Array): { index: number; term: number; bytes: number; dataCrc: number } | string {
  if (header.length < SNAPSHOT_HEADER_BYTES) return `only ${header.length} bytes, shorter than the header`;
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  if (crc32c(header.subarray(0, 44)) !== view.getUint32(44, true)) return 'header checksum mismatch';
  if (!MAGIC.every((b, i) => header[i] === b)) return 'not a cohort snapshot (bad magic)';
  const version = view.getUint32(8, true);
  if (version !== VERSION) return `unsupported snapshot version ${version}`;
  const index = getU64(view, 16);
  const snapTerm = getU64(view, 24);
  const bytes = getU64(view, 32);
  if (index === null || snapTerm === null || bytes === null || bytes > SNAPSHOT_BYTES_MAX)
    return 'header fields out of range';
  return { index, term: snapTerm, bytes, dataCrc: view.getUint32(12, true) };
}

function setU64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value % TWO_32, true);
  view.setUint32(offset + 4, Math.floor(value / TWO_32), true);
}

function getU64(view: DataView, offset: number): number | null {
  const hi = view.getUint32(offset + 4, true);
  return hi > 0x1f_ffff ? null : hi * TWO_32 + view.getUint32(offset, true);
}
