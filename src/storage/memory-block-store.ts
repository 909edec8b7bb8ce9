/**
 * A perfectly durable `BlockStore` in memory, for unit tests and embedded mode.
 *
 * Every operation takes effect when its completion runs, and completions run in issue order
 * through a scheduler: an injected one (`schedule`), or, by default, an internal FIFO that the
 * caller drains with `runPending()`. Either way no callback runs inside the call that issued it.
 * Fragments are sparse (`SparseBytes`), so a large fragment costs memory only where written.
 */
import { CallbackQueue } from './callback-queue.js';
import { assert } from '../lib/assert.js';
import {
  blockExists,
  blockNotFound,
  checkBlockCreate,
  checkBlockRange,
  isValidFragmentName,
  type BlockCallback,
  type BlockReadCallback,
  type BlockStore,
  type BlockStoreError,
} from './block-store.js';
import { SparseBytes } from './sparse-bytes.js';

/** Options of `MemoryBlockStore`. */
export interface MemoryBlockStoreOptions {
  /** Runs `fn` later, in FIFO order with other scheduled functions. Default: the internal queue. */
  readonly schedule?: (fn: () => void) => void;
}

/** See the file comment. */
export class MemoryBlockStore implements BlockStore {
  private readonly fragments = new Map<string, SparseBytes>();
  private readonly queue = new CallbackQueue();
  private readonly schedule: (fn: () => void) => void;

  constructor(options: MemoryBlockStoreOptions = {}) {
    this.schedule = options.schedule ?? this.queue.push;
  }

  /** Runs queued completions (and those they queue) until none is left or `maxCallbacks` ran. */
  runPending(maxCallbacks = 10_000_000): number {
    return this.queue.run(maxCallbacks);
  }

  list(): string[] {
    return [...this.fragments.keys()].sort();
  }

  size(name: string): number | null {
    return this.fragments.get(name)?.size ?? null;
  }

  create(name: string, sizeBytes: number, done: BlockCallback): void {
    assert(isValidFragmentName(name), `invalid fragment name ${JSON.stringify(name)}`);
    this.later(done, () => {
      if (this.fragments.has(name)) return blockExists(name);
      const invalid = checkBlockCreate(name, sizeBytes, this.fragments.size);
      if (invalid !== null) return invalid;
      this.fragments.set(name, new SparseBytes(sizeBytes));
      return null;
    });
  }

  read(name: string, offset: number, length: number, done: BlockReadCallback): void {
    this.schedule(() => {
      const fragment = this.fragments.get(name);
      if (fragment === undefined) {
        done(blockNotFound('read', name), null);
        return;
      }
      const invalid = checkBlockRange(name, fragment.size, offset, length);
      if (invalid !== null) done(invalid, null);
      else done(null, fragment.read(offset, length));
    });
  }

  write(name: string, offset: number, data: Uint8Array, done: BlockCallback): void {
    this.later(done, () => {
      const fragment = this.fragments.get(name);
      if (fragment === undefined) return blockNotFound('write', name);
      const invalid = checkBlockRange(name, fragment.size, offset, data.length);
      if (invalid !== null) return invalid;
      fragment.write(offset, data);
      return null;
    });
  }

  trim(name: string, offset: number, length: number, done: BlockCallback): void {
    this.later(done, () => {
      const fragment = this.fragments.get(name);
      if (fragment === undefined) return blockNotFound('trim', name);
      const invalid = checkBlockRange(name, fragment.size, offset, length);
      if (invalid !== null) return invalid;
      fragment.write(offset, new Uint8Array(length));
      return null;
    });
  }

  flush(name: string, done: BlockCallback): void {
    this.later(done, () => (this.fragments.has(name) ? null : blockNotFound('flush', name)));
  }

  remove(name: string, done: BlockCallback): void {
    this.later(done, () => {
      this.fragments.delete(name);
      return null;
    });
  }

  private later(done: BlockCallback, effect: () => BlockStoreError | null): void {
    this.schedule(() => {
      done(effect());
    });
  }
}
