/**
 * The block store contract under ddraid volume fragments (DESIGN.md section 8): a flat set of
 * named, fixed-size fragments, each an array of 512-byte sectors read and written by range.
 * Three implementations: real files (`src/platform/file-block-store.ts`, one file per fragment,
 * positional I/O, `fdatasync` on flush), memory (`src/storage/memory-block-store.ts`) and the
 * simulated store (`src/sim/block-store.ts`: latencies, crashes that lose or tear unflushed
 * writes, bit rot, injected I/O errors). One compliance suite
 * (`src/storage/block-store-compliance.test.ts`) runs this contract against all three.
 *
 * Why named fragments in one store rather than one store object per fragment: a node holds one
 * fragment per volume it is a member of, and the set must outlive node incarnations (the
 * simulator keeps one store per machine, as it keeps one `Disk`) and be listed at start to find
 * what a previous incarnation created. One object on `NodeEnv` keeps that narrow, and each
 * fragment is still one file with its own flush, so one volume's flush never waits on another's.
 *
 * Every operation is asynchronous and completes through its callback, never synchronously inside
 * the call that started it (the simulator orders completions on virtual time; the real store never
 * blocks the event loop). `list` and `size` are synchronous: they read metadata kept in memory.
 *
 * Contract:
 * - Addresses are byte offsets; `offset` and `length` must be whole sectors (`BLOCK_SECTOR_BYTES`)
 *   or the operation fails with `BLOCK_MISALIGNED`; a range past the fragment's size fails with
 *   `BLOCK_OUT_OF_RANGE`; one read or write moves at most `BLOCK_IO_BYTES_MAX` (`BLOCK_TOO_LARGE`).
 * - Operations naming the same fragment complete in the order they were issued. A read returns
 *   what earlier completed writes put there (durable or not); never-written sectors read zero.
 * - `create` is atomic and durable when it completes: after a crash the fragment is either absent
 *   or present at its full size, all zeros. `remove` is durable when it completes; before that a
 *   crash may leave the fragment present. Creating an existing name fails with `BLOCK_EXISTS`;
 *   any operation on an absent name fails with `BLOCK_NOT_FOUND`; removing an absent name succeeds.
 * - Durability: a completed `write` (or `trim`, a write of zeros) may be lost or torn by a crash
 *   until a later `flush` of the same fragment completes without error. A successful `flush` makes
 *   every write issued before it on that fragment durable. Torn means per sector: after a crash each sector an unflushed write
 *   touched holds its durable content or the content of one of the unflushed writes to it, never a
 *   mix inside one sector and never bytes nobody wrote.
 * - A failed `flush` is not retryable (the "fsyncgate" lesson, as for `Disk.sync`): the writes it
 *   covered may be lost even if a later flush succeeds. Callers treat it as fatal for the fragment.
 * - I/O errors are `BLOCK_IO` with the platform error as `cause`.
 */
import { CohortError } from '../lib/errors.js';
import { BLOCK_FRAGMENT_BYTES_MAX, BLOCK_FRAGMENTS_MAX, BLOCK_IO_BYTES_MAX, BLOCK_SECTOR_BYTES } from '../constants.js';
import { isValidDiskName } from './disk.js';

/** Stable codes of block store errors. */
export type BlockStoreErrorCode =
  /** The device failed the operation (EIO, ENOSPC, ...); `cause` holds the platform error. */
  | 'BLOCK_IO'
  /** The range ends past the fragment's size. */
  | 'BLOCK_OUT_OF_RANGE'
  /** The offset or length is not a whole number of sectors. */
  | 'BLOCK_MISALIGNED'
  /** One I/O above `BLOCK_IO_BYTES_MAX`, or a fragment above `BLOCK_FRAGMENT_BYTES_MAX`. */
  | 'BLOCK_TOO_LARGE'
  /** No fragment has this name. */
  | 'BLOCK_NOT_FOUND'
  /** `create` of a name that exists. */
  | 'BLOCK_EXISTS'
  /** `create` beyond `BLOCK_FRAGMENTS_MAX` fragments. */
  | 'BLOCK_LIMIT';

/** The one error type of block stores; switch on `code`. */
export class BlockStoreError extends CohortError {
  override readonly name = 'BlockStoreError';
  declare readonly code: BlockStoreErrorCode;

  // eslint-disable-next-line @typescript-eslint/no-useless-constructor -- narrows `code` to the block store codes
  constructor(code: BlockStoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Completion of a mutation; `error` is null on success. */
export type BlockCallback = (error: BlockStoreError | null) => void;

/** Completion of a read: exactly one of `error` and `data` is null. */
export type BlockReadCallback = (error: BlockStoreError | null, data: Uint8Array | null) => void;

/** A flat set of named fixed-size fragments; see the file comment for the contract. */
export interface BlockStore {
  /** Names of the fragments present, sorted. */
  list(): string[];
  /** The size in bytes of fragment `name`, or null when absent. */
  size(name: string): number | null;
  /** Creates fragment `name` of `sizeBytes` (whole sectors) zero bytes, atomically and durably. */
  create(name: string, sizeBytes: number, done: BlockCallback): void;
  /** Reads `length` bytes at `offset` of `name`. */
  read(name: string, offset: number, length: number, done: BlockReadCallback): void;
  /** Writes `data` at `offset` of `name`; `data` must not change until `done`. */
  write(name: string, offset: number, data: Uint8Array, done: BlockCallback): void;
  /**
   * Makes `length` bytes at `offset` of `name` read as zeros (what NBD TRIM and WRITE_ZEROES
   * need). Same ranges, order, durability and tearing as a `write` of zeros of that length.
   */
  trim(name: string, offset: number, length: number, done: BlockCallback): void;
  /** Makes every write and trim issued earlier on `name` durable (a barrier; see the contract). */
  flush(name: string, done: BlockCallback): void;
  /** Deletes fragment `name` durably. Removing an absent fragment succeeds. */
  remove(name: string, done: BlockCallback): void;
}

/**
 * True when `name` is a valid fragment name: a valid `Disk` file name that does not start with a
 * dot (the file store keeps its temporary files under dot names).
 */
export function isValidFragmentName(name: string): boolean {
  return isValidDiskName(name) && !name.startsWith('.');
}

/** The error of an I/O range against a fragment of `sizeBytes`, or null when the range is valid. */
export function checkBlockRange(
  name: string,
  sizeBytes: number,
  offset: number,
  length: number,
): BlockStoreError | null {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0) {
    return new BlockStoreError('BLOCK_MISALIGNED', `${name}: offset ${offset} and length ${length} must be integers`);
  }
  if (offset % BLOCK_SECTOR_BYTES !== 0 || length % BLOCK_SECTOR_BYTES !== 0) {
    return new BlockStoreError(
      'BLOCK_MISALIGNED',
      `${name}: offset ${offset} and length ${length} must be multiples of ${BLOCK_SECTOR_BYTES} bytes`,
    );
  }
  if (length > BLOCK_IO_BYTES_MAX) {
    return new BlockStoreError(
      'BLOCK_TOO_LARGE',
      `${name}: ${length} bytes in one I/O (at most ${BLOCK_IO_BYTES_MAX})`,
    );
  }
  if (offset + length > sizeBytes) {
    return new BlockStoreError(
      'BLOCK_OUT_OF_RANGE',
      `${name}: bytes [${offset}, ${offset + length}) are past the fragment's ${sizeBytes} bytes`,
    );
  }
  return null;
}

/** The error of `create(name, sizeBytes)` given the current fragment count, or null when valid. */
export function checkBlockCreate(name: string, sizeBytes: number, fragments: number): BlockStoreError | null {
  if (!Number.isSafeInteger(sizeBytes) || sizeBytes < 0 || sizeBytes % BLOCK_SECTOR_BYTES !== 0) {
    return new BlockStoreError(
      'BLOCK_MISALIGNED',
      `${name}: size ${sizeBytes} must be a multiple of ${BLOCK_SECTOR_BYTES} bytes`,
    );
  }
  if (sizeBytes > BLOCK_FRAGMENT_BYTES_MAX) {
    return new BlockStoreError(
      'BLOCK_TOO_LARGE',
      `${name}: ${sizeBytes} bytes is above the ${BLOCK_FRAGMENT_BYTES_MAX}-byte fragment limit`,
    );
  }
  if (fragments >= BLOCK_FRAGMENTS_MAX) {
    return new BlockStoreError('BLOCK_LIMIT', `${name}: the store already holds ${fragments} fragments`);
  }
  return null;
}

/** `BLOCK_NOT_FOUND` for `name`. */
export function blockNotFound(op: string, name: string): BlockStoreError {
  return new BlockStoreError('BLOCK_NOT_FOUND', `${op} of fragment ${name}: no such fragment`);
}

/** `BLOCK_EXISTS` for `name`. */
export function blockExists(name: string): BlockStoreError {
  return new BlockStoreError('BLOCK_EXISTS', `create of fragment ${name}: it already exists`);
}

/** `BLOCK_IO` wrapping a platform error. */
export function blockIoError(op: string, name: string, cause: unknown): BlockStoreError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new BlockStoreError('BLOCK_IO', `${op} of fragment ${name} failed: ${detail}`, { cause });
}
