/**
 * The disk contract under the WAL, the stable-state file and snapshot files. Three
 * implementations: real files (`src/platform`), the simulated disk (`src/sim`), and memory.
 *
 * Reads are synchronous: they happen at open, before a node serves anything. Mutations are
 * asynchronous with a completion callback, so the simulator can schedule them on virtual time
 * and the real implementation never blocks the event loop. Callbacks are never called
 * synchronously from inside the call that started the operation.
 *
 * Durability contract (the simulator enforces exactly this, and crashes test it):
 * - `write` data may be lost, or torn at any byte, until a later `sync` of the same file
 *   completes without error.
 * - `rename`, file creation and `remove` may be lost until `syncDir` of the directory completes.
 * - Operations on one file complete in the order they were issued.
 */

/** Completion callback; `error` is set when the operation failed (e.g. ENOSPC, EIO). */
export type DiskCallback = (error: Error | null) => void;

/** A flat directory of files addressed by name (no subdirectories). */
export interface Disk {
  /** Names of the files present (durable or not), sorted. */
  list(): string[];
  /** The whole content of `name` as this process sees it, or null when absent. */
  read(name: string): Uint8Array | null;
  /** Writes `data` at `offset` of `name`, creating the file if needed. */
  write(name: string, offset: number, data: Uint8Array, done: DiskCallback): void;
  /** Makes every completed write to `name` durable. */
  sync(name: string, done: DiskCallback): void;
  /** Cuts `name` to `size` bytes (durable after `sync`). */
  truncate(name: string, size: number, done: DiskCallback): void;
  /** Atomically replaces `to` with `from` (durable after `syncDir`). */
  rename(from: string, to: string, done: DiskCallback): void;
  /** Deletes `name` (durable after `syncDir`). */
  remove(name: string, done: DiskCallback): void;
  /** Makes creations, renames and removals durable. */
  syncDir(done: DiskCallback): void;
}
