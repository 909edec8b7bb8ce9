/**
 * A fixed-size byte array stored sparsely in 64 KiB chunks: the content store of the memory and
 * simulated block stores, so a large fragment costs memory only for what was written. Chunks
 * never written read as zeros.
 */
import { assert } from '../lib/assert.js';

/** Allocation unit, in bytes; a power of two, so offsets split with shifts and masks. */
const CHUNK_BYTES = 64 * 1024;

/** See the file comment. */
export class SparseBytes {
  private readonly chunks = new Map<number, Uint8Array>();

  constructor(readonly size: number) {
    assert(Number.isSafeInteger(size) && size >= 0, 'a sparse array size is a non-negative integer');
  }

  /** Bytes held in allocated chunks (the last chunk holds only what lies inside `size`). */
  get allocatedBytes(): number {
    let total = 0;
    for (const chunk of this.chunks.values()) total += chunk.length;
    return total;
  }

  /** A copy of `length` bytes at `offset` (the range must lie inside `size`). */
  read(offset: number, length: number): Uint8Array {
    this.checkRange(offset, length);
    const out = new Uint8Array(length);
    this.eachPiece(offset, length, (chunk, within, at, count) => {
      const held = this.chunks.get(chunk);
      if (held !== undefined) out.set(held.subarray(within, within + count), at);
    });
    return out;
  }

  /** Copies `data` in at `offset` (the range must lie inside `size`). */
  write(offset: number, data: Uint8Array): void {
    this.checkRange(offset, data.length);
    this.eachPiece(offset, data.length, (chunk, within, at, count) => {
      let held = this.chunks.get(chunk);
      if (held === undefined) {
        held = new Uint8Array(Math.min(CHUNK_BYTES, this.size - chunk * CHUNK_BYTES));
        this.chunks.set(chunk, held);
      }
      held.set(data.subarray(at, at + count), within);
    });
  }

  /**
   * Flips bit `bit` (0-7) of the `n`th allocated byte, counting allocated chunks in address
   * order; `n` must be below `allocatedBytes`. For bit-rot injection.
   */
  flipAllocatedBit(n: number, bit: number): void {
    assert(Number.isInteger(n) && n >= 0 && n < this.allocatedBytes, 'flip inside the allocated bytes');
    assert(Number.isInteger(bit) && bit >= 0 && bit < 8, 'a bit of a byte');
    let at = n;
    for (const key of [...this.chunks.keys()].sort((a, b) => a - b)) {
      const chunk = this.chunks.get(key);
      assert(chunk !== undefined, 'an allocated chunk');
      if (at < chunk.length) {
        chunk[at] = (chunk[at] ?? 0) ^ (1 << bit);
        return;
      }
      at -= chunk.length;
    }
  }

  private checkRange(offset: number, length: number): void {
    assert(
      Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0,
      'a sparse range is non-negative integers',
    );
    assert(offset + length <= this.size, `range [${offset}, ${offset + length}) is inside ${this.size} bytes`);
  }

  /** Calls `fn(chunkIndex, offsetInChunk, offsetInRange, count)` for each chunk the range touches. */
  private eachPiece(
    offset: number,
    length: number,
    fn: (chunk: number, within: number, at: number, count: number) => void,
  ): void {
    let at = 0;
    while (at < length) {
      const position = offset + at;
      const within = position % CHUNK_BYTES;
      const count = Math.min(CHUNK_BYTES - within, length - at);
      fn(Math.floor(position / CHUNK_BYTES), within, at, count);
      at += count;
    }
  }
}
