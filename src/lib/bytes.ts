/**
 * Codec helpers: a growable writer and a bounds-checked reader for little-endian binary formats.
 *
 * `ByteReader` never reads past its end and never allocates more than the bytes it was given:
 * every length it decodes is checked against what remains before it is used. Any violation is a
 * `DecodeError` with a stable code, so decoders built on it raise nothing else on bad input.
 */
import { assert } from './assert.js';
import { DecodeError } from './errors.js';

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Appends little-endian fields into a buffer that doubles as needed up to `maxBytes`. */
export class ByteWriter {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;

  constructor(
    initialBytes = 256,
    private readonly maxBytes = 0x7fffffff,
  ) {
    assert(initialBytes > 0 && initialBytes <= maxBytes, 'writer sizes must be positive and ordered');
    this.buf = new Uint8Array(initialBytes);
    this.view = new DataView(this.buf.buffer);
  }

  /** Bytes written so far. */
  get length(): number {
    return this.pos;
  }

  private reserve(n: number): void {
    const need = this.pos + n;
    assert(need <= this.maxBytes, `encoded size exceeds ${this.maxBytes} bytes`);
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = new Uint8Array(Math.min(size, this.maxBytes));
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): this {
    this.reserve(1);
    this.view.setUint8(this.pos, v);
    this.pos += 1;
    return this;
  }

  u16(v: number): this {
    this.reserve(2);
    this.view.setUint16(this.pos, v, true);
    this.pos += 2;
    return this;
  }

  u32(v: number): this {
    this.reserve(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
    return this;
  }

  /** A non-negative safe integer as 8 bytes. */
  u64(v: number): this {
    assert(Number.isSafeInteger(v) && v >= 0, 'u64 must be a non-negative safe integer');
    this.reserve(8);
    this.view.setBigUint64(this.pos, BigInt(v), true);
    this.pos += 8;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.reserve(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** A u32 length prefix followed by the bytes. */
  lenBytes(b: Uint8Array): this {
    return this.u32(b.length).bytes(b);
  }

  /** A u32 length prefix followed by UTF-8. */
  string(s: string): this {
    return this.lenBytes(textEncoder.encode(s));
  }

  /** Overwrites 4 bytes at `offset` (for a length or checksum filled in after the body). */
  patchU32(offset: number, v: number): void {
    assert(offset >= 0 && offset + 4 <= this.pos, 'patch offset out of range');
    this.view.setUint32(offset, v, true);
  }

  /** A view of the bytes written (shares memory with the writer until the next write). */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

/** Reads little-endian fields; throws `DecodeError` instead of reading out of bounds. */
export class ByteReader {
  private readonly view: DataView;
  private pos = 0;

  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  /** Current offset from the start of the buffer. */
  get offset(): number {
    return this.pos;
  }

  /** Bytes not yet read. */
  get remaining(): number {
    return this.buf.length - this.pos;
  }

  private need(n: number, what: string): void {
    if (n > this.buf.length - this.pos) {
      throw new DecodeError(
        'DECODE_TRUNCATED',
        `truncated ${what}: need ${n} bytes at offset ${this.pos}, have ${this.remaining}`,
      );
    }
  }

  u8(what = 'u8'): number {
    this.need(1, what);
    return this.view.getUint8(this.pos++);
  }

  u16(what = 'u16'): number {
    this.need(2, what);
    const v = this.view.getUint16(this.pos, true);
    this.pos += 2;
    return v;
  }

  u32(what = 'u32'): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }

  /** An 8-byte unsigned integer that must be a safe integer. */
  u64(what = 'u64'): number {
    this.need(8, what);
    const v = this.view.getBigUint64(this.pos, true);
    this.pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER))
      throw new DecodeError('DECODE_RANGE', `${what} ${v} exceeds the safe integer range`);
    return Number(v);
  }

  /** `n` bytes as a view into the input (no copy). */
  bytes(n: number, what = 'bytes'): Uint8Array {
    this.need(n, what);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }

  /** A u32 length prefix (at most `maxBytes`) followed by that many bytes. */
  lenBytes(maxBytes: number, what = 'field'): Uint8Array {
    const n = this.u32(`${what} length`);
    if (n > maxBytes)
      throw new DecodeError('DECODE_TOO_LARGE', `${what} length ${n} exceeds the limit of ${maxBytes} bytes`);
    return this.bytes(n, what);
  }

  /** A u32-length-prefixed UTF-8 string of at most `maxBytes` bytes. */
  string(maxBytes: number, what = 'string'): string {
    const b = this.lenBytes(maxBytes, what);
    try {
      return textDecoder.decode(b);
    } catch (cause) {
      throw new DecodeError('DECODE_UTF8', `${what} is not valid UTF-8`, { cause });
    }
  }

  /** Throws unless every byte was consumed. */
  end(what = 'message'): void {
    if (this.remaining !== 0)
      throw new DecodeError('DECODE_TRAILING', `${this.remaining} trailing bytes after ${what}`);
  }
}
