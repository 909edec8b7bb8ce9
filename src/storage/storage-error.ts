/**
 * Typed operating errors of the storage layer. Every error carries a stable `code`; the message
 * says what is wrong and what the operator or caller can do about it.
 */
import { CohortError } from '../lib/errors.js';

/** Stable codes of storage errors. */
export type StorageErrorCode =
  /** A WAL segment is damaged somewhere a crash cannot explain: synced data was lost or altered. */
  | 'WAL_CORRUPT'
  /** A write, sync or directory sync under the WAL failed; the WAL acknowledges nothing more. */
  | 'WAL_FAILED'
  /** Too many appended records are waiting for their group commit; retry after `onDurable`. */
  | 'WAL_BACKPRESSURE'
  /** One record payload exceeds `WAL_RECORD_BYTES_MAX`. */
  | 'WAL_RECORD_TOO_LARGE'
  /** The WAL was closed. */
  | 'WAL_CLOSED'
  /** The stable-state file fails its checksum or format checks. */
  | 'STABLE_CORRUPT'
  /** Saving the stable state failed; the store refuses further saves. */
  | 'STABLE_FAILED'
  /** A snapshot file fails its checksum or format checks. */
  | 'SNAPSHOT_CORRUPT'
  /** A snapshot is larger than `SNAPSHOT_BYTES_MAX` (or than the length it declared). */
  | 'SNAPSHOT_TOO_LARGE'
  /** Writing a snapshot failed; the partial snapshot is discarded. */
  | 'SNAPSHOT_FAILED'
  /** Reading a file at start failed with an I/O error (the node fail-stops). */
  | 'READ_FAILED'
  /** Too many callers are waiting on one storage operation. */
  | 'STORAGE_BACKPRESSURE';

/** Where a storage I/O failure happened: for the fail-stop line (`describeStorageFailure`). */
export interface StorageFailureSite {
  /** The file the failed operation named (a WAL segment, the stable-state file, a snapshot). */
  readonly file?: string;
  /** The operation that failed, naming the file, e.g. `fsync of 0000000000000001.wal`. */
  readonly operation?: string;
}

/** Base class of every storage operating error. */
export class StorageError extends CohortError {
  override readonly name: string = 'StorageError';
  declare readonly code: StorageErrorCode;
  /** The file involved, when the error comes from an I/O operation on one; else null. */
  readonly file: string | null;
  /** The failed operation (naming the file), when the error comes from one; else null. */
  readonly operation: string | null;

  constructor(code: StorageErrorCode, message: string, options?: { cause?: unknown } & StorageFailureSite) {
    super(code, message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.file = options?.file ?? null;
    this.operation = options?.operation ?? null;
  }
}

/**
 * One line for an operator about a fatal storage error: the failed operation with its file and
 * the underlying error (`fsync of 0000000000000001.wal failed: EIO: i/o error`), or the error's
 * own message when it has no operation.
 */
export function describeStorageFailure(error: StorageError): string {
  const cause = error.cause instanceof Error ? error.cause.message : null;
  if (error.operation === null || cause === null) return `${error.code}: ${error.message}`;
  return `${error.operation} failed: ${cause}`;
}

/**
 * Mid-log WAL corruption: a record that fails its checks is followed by data only a later,
 * synced write could have produced, or a non-last segment is damaged, or segments are missing.
 * Never a torn tail (that is repaired silently and reported as a byte count). The node must not
 * serve from this log: restore the node from a snapshot and its peers.
 */
export class WalCorruptionError extends StorageError {
  override readonly name = 'WalCorruptionError';

  constructor(
    /** The segment file where the damage is. */
    readonly segment: string,
    /** Byte offset of the damage inside `segment`. */
    readonly offset: number,
    /** What check failed, without the advice (for a repair report). */
    readonly detail: string,
  ) {
    super(
      'WAL_CORRUPT',
      `WAL segment ${segment} is corrupt at byte ${offset}: ${detail}. Synced log data was lost or altered (disk fault or outside ` +
        'tampering), so this node must not use its log: move the WAL directory aside and let the node rejoin and recover from its peers.',
    );
  }
}

/** A stable-state or snapshot file failed its integrity checks. */
export class CorruptFileError extends StorageError {
  override readonly name = 'CorruptFileError';

  constructor(
    code: 'STABLE_CORRUPT' | 'SNAPSHOT_CORRUPT',
    /** The damaged file. */
    override readonly file: string,
    detail: string,
    advice: string,
  ) {
    super(code, `${file} is corrupt: ${detail}. ${advice}`);
  }
}
