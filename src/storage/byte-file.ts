/**
 * A growable in-memory file body: the content store of `MemoryDisk` and `SimDisk`. Appends are
 * amortised O(length) (capacity doubles), so a WAL segment written batch by batch costs no
 * quadratic copying.
 */
import { assert } from '../lib/assert.js';

/** A mutable byte array with a logical size and spare capacity. */
export class ByteFile {
  private buf: Uint8Array;
  private length = 0;

  constructor(initial?: Uint8Array) {
    this.buf = new Uint8Array(Math.max(64, initial?.length ?? 0));
    if (initial !== undefined) {
      this.buf.set(initial);
      this.length = initial.length;
    }
  }

  /** Logical size in bytes. */
  get size(): number {
    return this.length;
  }

  /** A copy of the whole content. */
  copy(): Uint8Array {
    return this.buf.slice(0, this.length);
  }

  /** A copy of up to `length` bytes from `offset` (fewer at the end). */
  copyRange(offset: number, length: number): Uint8Array {
    assert(
      Number.isSafeInteger(offset) && offset >= 0 && Number.isSafeInteger(length) && length >= 0,
      'read range must be non-negative integers',
    );
    const start = Math.min(offset, this.length);
    return this.buf.slice(start, Math.min(this.length, start + length));
  }

  /** The byte at `offset` (which must be below `size`). */
  byteAt(offset: number): number {
    assert(offset >= 0 && offset < this.length, 'byte offset inside the file');
    return this.buf[offset] ?? 0;
  }

  /** Sets the byte at `offset` (which must be below `size`). */
  setByte(offset: number, value: number): void {
    assert(offset >= 0 && offset < this.length, 'byte offset inside the file');
    this.buf[offset] = value;
  }

  /**
   * Writes `data` at `offset`, zero-filling any gap past the current end. An empty write changes
   * nothing, even past the end (as POSIX `pwrite` of zero bytes).
   */
  write(offset: number, data: Uint8Array): void {
    assert(Number.isSafeInteger(offset) && offset >= 0, 'write offset must be a non-negative integer');
    if (data.length === 0) return;
    const end = offset + data.length;
    this.ensure(end);
    if (offset > this.length) this.buf.fill(0, this.length, offset);
    this.buf.set(data, offset);
    if (end > this.length) this.length = end;
  }

  /** Cuts or zero-extends to `size` bytes. */
  truncate(size: number): void {
    assert(Number.isSafeInteger(size) && size >= 0, 'truncate size must be a non-negative integer');
    this.ensure(size);
    if (size > this.length) this.buf.fill(0, this.length, size);
    this.length = size;
  }

  private ensure(capacity: number): void {
    if (capacity <= this.buf.length) return;
    let next = this.buf.length * 2;
    while (next < capacity) next *= 2;
    const grown = new Uint8Array(next);
    grown.set(this.buf.subarray(0, this.length));
    this.buf = grown;
  }
}
