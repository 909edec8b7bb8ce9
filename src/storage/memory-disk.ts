/**
 * A perfectly durable `Disk` in memory, for unit tests and single-process use.
 *
 * Every mutation takes effect when its completion runs, and completions run in issue order
 * through a scheduler: an injected one (`schedule`), or, by default, an internal FIFO that the
 * caller drains with `runPending()`. Either way no callback runs inside the call that issued it,
 * and nothing here needs `node:` or a clock, so runs are deterministic.
 */
import { CallbackQueue } from './callback-queue.js';
import { assert } from '../lib/assert.js';
import { ByteFile } from './byte-file.js';
import { isValidDiskName, type Disk, type DiskCallback } from './disk.js';

/** Options of `MemoryDisk`. */
export interface MemoryDiskOptions {
  /** Runs `fn` later, in FIFO order with other scheduled functions. Default: the internal queue. */
  readonly schedule?: (fn: () => void) => void;
  /** Initial files (copied), e.g. a crash image built by a test. */
  readonly files?: ReadonlyMap<string, Uint8Array>;
}

/** See the file comment. */
export class MemoryDisk implements Disk {
  private readonly files = new Map<string, ByteFile>();
  private readonly queue = new CallbackQueue();
  private readonly schedule: (fn: () => void) => void;
  /** Counts of mutations, for tests that check batching. */
  readonly stats = { writes: 0, syncs: 0, syncDirs: 0, bytesWritten: 0 };

  constructor(options: MemoryDiskOptions = {}) {
    this.schedule = options.schedule ?? this.queue.push;
    for (const [name, data] of options.files ?? []) {
      assert(isValidDiskName(name), `invalid disk file name ${JSON.stringify(name)}`);
      this.files.set(name, new ByteFile(data));
    }
  }

  /**
   * Runs queued completions (and those they queue) until none is left or `maxCallbacks` ran.
   * Returns how many ran. Only meaningful with the default internal scheduler.
   */
  runPending(maxCallbacks = 10_000_000): number {
    return this.queue.run(maxCallbacks);
  }

  /** Completions queued on the internal scheduler and not yet run. */
  get pendingCallbacks(): number {
    return this.queue.pending;
  }

  /** A copy of every file's content, by name, sorted. */
  snapshot(): Map<string, Uint8Array> {
    const out = new Map<string, Uint8Array>();
    for (const name of this.list()) out.set(name, this.files.get(name)?.copy() ?? new Uint8Array(0));
    return out;
  }

  list(): string[] {
    return [...this.files.keys()].sort();
  }

  read(name: string): Uint8Array | null {
    return this.files.get(name)?.copy() ?? null;
  }

  size(name: string): number | null {
    return this.files.get(name)?.size ?? null;
  }

  readRange(name: string, offset: number, length: number): Uint8Array | null {
    return this.files.get(name)?.copyRange(offset, length) ?? null;
  }

  write(name: string, offset: number, data: Uint8Array, done: DiskCallback): void {
    assert(isValidDiskName(name), `invalid disk file name ${JSON.stringify(name)}`);
    this.later(done, () => {
      let file = this.files.get(name);
      if (file === undefined) {
        file = new ByteFile();
        this.files.set(name, file);
      }
      file.write(offset, data);
      this.stats.writes++;
      this.stats.bytesWritten += data.length;
      return null;
    });
  }

  sync(name: string, done: DiskCallback): void {
    this.later(done, () => {
      this.stats.syncs++;
      return this.files.has(name) ? null : missing('sync', name);
    });
  }

  truncate(name: string, size: number, done: DiskCallback): void {
    this.later(done, () => {
      const file = this.files.get(name);
      if (file === undefined) return missing('truncate', name);
      file.truncate(size);
      return null;
    });
  }

  rename(from: string, to: string, done: DiskCallback): void {
    assert(isValidDiskName(to), `invalid disk file name ${JSON.stringify(to)}`);
    this.later(done, () => {
      const file = this.files.get(from);
      if (file === undefined) return missing('rename', from);
      this.files.delete(from);
      this.files.set(to, file);
      return null;
    });
  }

  remove(name: string, done: DiskCallback): void {
    this.later(done, () => {
      this.files.delete(name);
      return null;
    });
  }

  syncDir(done: DiskCallback): void {
    this.later(done, () => {
      this.stats.syncDirs++;
      return null;
    });
  }

  private later(done: DiskCallback, effect: () => Error | null): void {
    this.schedule(() => {
      done(effect());
    });
  }
}

function missing(op: string, name: string): Error {
  return new Error(`ENOENT: ${op} of missing file ${name}`);
}
