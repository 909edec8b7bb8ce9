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
  /** Too many callers are waiting on one storage operation. */
  | 'STORAGE_BACKPRESSURE';

/** Base class of every storage operating error. */
export class StorageError extends CohortError {
  override readonly name: string = 'StorageError';
  declare readonly code: StorageErrorCode;

  // eslint-disable-next-line @typescript-eslint/no-useless-constructor -- narrows `code` to the storage codes
  constructor(code: StorageErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
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
    detail: string,
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
    readonly file: string,
    detail: string,
    advice: string,
  ) {
    super(code, `${file} is corrupt: ${detail}. ${advice}`);
  }
}
