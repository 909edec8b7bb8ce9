/**
 * The disk contract under the WAL, the stable-state file and snapshot files. Three
 * implementations: real files (`src/platform/file-disk.ts`), the simulated disk (`src/sim/disk.ts`),
 * and memory (`src/storage/memory-disk.ts`). One compliance suite
 * (`src/storage/storage-compliance.test.ts`) runs this contract against all three.
 *
 * Reads are synchronous: they happen at open, before a node serves anything. Mutations are
 * asynchronous with a completion callback, so the simulator can schedule them on virtual time
 * and the real implementation never blocks the event loop. Callbacks are never called
 * synchronously from inside the call that started the operation.
 *
 * Durability contract (the simulator enforces exactly this, and crashes test it):
 * - `write` and `truncate` effects may be lost, or a write torn, until a later `sync` of the same
 *   file completes without error. A torn write keeps a prefix cut at any byte, or any subset of
 *   the 512-byte sectors it touched (writeback may persist later sectors before earlier ones).
 *   Nothing is ever fabricated: after a crash a byte holds either what was durable, what a
 *   lost-or-torn write put there, or zero where the file grew. An empty write never extends a
 *   file.
 * - File creation (the first `write` to a new name), `rename` and `remove` may be lost until a
 *   later `syncDir` completes. Unsynced directory operations that survive a crash survive in
 *   issue order (a prefix of them), as on a journaling file system.
 * - Operations naming the same file complete in the order they were issued; `rename` and
 *   `remove` wait for earlier operations on the names they touch, and `syncDir` waits for
 *   earlier creations, renames and removals, including a write that (re)creates a file behind
 *   a pending `rename` or `remove` of its name.
 * - A failed `sync` or `syncDir` is not retryable: after a failure the data it covered may be
 *   lost even if a later sync succeeds (the "fsyncgate" lesson). Callers treat it as fatal for
 *   that file.
 */

/** Completion callback; `error` is set when the operation failed (e.g. ENOSPC, EIO). */
export type DiskCallback = (error: Error | null) => void;

/** A flat directory of files addressed by name (no subdirectories). */
export interface Disk {
  /** Names of the files present (durable or not), sorted. */
  list(): string[];
  /** The whole content of `name` as this process sees it, or null when absent. */
  read(name: string): Uint8Array | null;
  /** The size in bytes of `name` as this process sees it, or null when absent. */
  size(name: string): number | null;
  /**
   * Up to `length` bytes of `name` from `offset` (fewer at the end of the file), or null when
   * absent. Lets large files (snapshots) be read in bounded chunks.
   */
  readRange(name: string, offset: number, length: number): Uint8Array | null;
  /** Writes `data` at `offset` of `name`, creating the file if needed. `data` must not change until `done`. */
  write(name: string, offset: number, data: Uint8Array, done: DiskCallback): void;
  /** Makes every completed write and truncate of `name` durable. Fails when `name` is absent. */
  sync(name: string, done: DiskCallback): void;
  /** Cuts or zero-extends `name` to `size` bytes (durable after `sync`). Fails when `name` is absent. */
  truncate(name: string, size: number, done: DiskCallback): void;
  /** Atomically replaces `to` with `from` (durable after `syncDir`). Fails when `from` is absent. */
  rename(from: string, to: string, done: DiskCallback): void;
  /** Deletes `name` (durable after `syncDir`). Removing an absent file succeeds. */
  remove(name: string, done: DiskCallback): void;
  /** Makes earlier creations, renames and removals durable. */
  syncDir(done: DiskCallback): void;
}

/** Largest file name a `Disk` accepts, in bytes; names are plain (no `/`, not `.` or `..`). */
export const DISK_NAME_BYTES_MAX = 255;

/** True when `name` is a valid flat file name for every `Disk` implementation. */
export function isValidDiskName(name: string): boolean {
  return (
    name.length > 0 &&
    name.length <= DISK_NAME_BYTES_MAX &&
    name !== '.' &&
    name !== '..' &&
    !name.includes('/') &&
    !name.includes('\0')
  );
}
