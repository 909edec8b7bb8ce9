/**
 * Stream framing for the peer transport (pure: no I/O).
 *
 * A frame on the wire is a 4-byte little-endian body length followed by that many body bytes:
 *
 *     +----------------+------------------------------+
 *     | u32 LE length  | body (length bytes)          |
 *     +----------------+------------------------------+
 *
 * The body is opaque here: a handshake record before authentication, an AES-256-GCM record
 * (ciphertext and tag) after it. The 4 header bytes are returned with the body because the
 * cipher authenticates them as associated data.
 *
 * `FrameDecoder` turns arbitrary TCP chunks into whole frames. It checks every declared length
 * against its limits before it allocates or waits for a single body byte, so a hostile length
 * costs nothing, and it never holds more memory than the bytes actually received plus one copy
 * of the frame being assembled.
 */
import { assert } from '../lib/assert.js';
import { DecodeError } from '../lib/errors.js';
import { FRAME_WIRE_BYTES_MAX } from '../constants.js';

/** Size of the length prefix in front of every frame body. */
export const FRAME_HEADER_BYTES = 4;

/** Largest body a frame may declare: the wire maximum less the header. */
export const FRAME_BODY_BYTES_MAX: number = FRAME_WIRE_BYTES_MAX - FRAME_HEADER_BYTES;

/** Writes the header for a body of `bodyBytes` at `offset` in `target`. */
export function writeFrameHeader(target: Uint8Array, offset: number, bodyBytes: number): void {
  assert(
    Number.isInteger(bodyBytes) && bodyBytes >= 0 && bodyBytes <= FRAME_BODY_BYTES_MAX,
    `frame body of ${bodyBytes} bytes is out of range`,
  );
  assert(offset >= 0 && offset + FRAME_HEADER_BYTES <= target.length, 'frame header does not fit the target');
  target[offset] = bodyBytes & 0xff;
  target[offset + 1] = (bodyBytes >>> 8) & 0xff;
  target[offset + 2] = (bodyBytes >>> 16) & 0xff;
  target[offset + 3] = (bodyBytes >>> 24) & 0xff;
}

/** Reads the body length from the header at `offset` (the caller has checked 4 bytes exist). */
export function readFrameHeader(source: Uint8Array, offset: number): number {
  assert(offset >= 0 && offset + FRAME_HEADER_BYTES <= source.length, 'frame header is out of range');
  return (
    ((source[offset] ?? 0) |
      ((source[offset + 1] ?? 0) << 8) |
      ((source[offset + 2] ?? 0) << 16) |
      ((source[offset + 3] ?? 0) << 24)) >>>
    0
  );
}

/** One frame, header included, as a fresh array. */
export function encodeFrame(body: Uint8Array): Uint8Array {
  const frame = new Uint8Array(FRAME_HEADER_BYTES + body.length);
  writeFrameHeader(frame, 0, body.length);
  frame.set(body, FRAME_HEADER_BYTES);
  return frame;
}

/** Limits a decoder enforces on every declared body length. */
export interface FrameLimits {
  /** Smallest acceptable body (an AEAD record is at least its tag). */
  readonly bodyBytesMin: number;
  /** Largest acceptable body; at most `FRAME_BODY_BYTES_MAX`. */
  readonly bodyBytesMax: number;
}

function checkLimits(limits: FrameLimits): void {
  assert(
    Number.isInteger(limits.bodyBytesMin) && limits.bodyBytesMin >= 0,
    'frame body minimum must be a non-negative integer',
  );
  assert(
    Number.isInteger(limits.bodyBytesMax) && limits.bodyBytesMax <= FRAME_BODY_BYTES_MAX,
    'frame body maximum exceeds FRAME_BODY_BYTES_MAX',
  );
  assert(limits.bodyBytesMin <= limits.bodyBytesMax, 'frame body limits must be ordered');
}

/**
 * Reassembles frames from a byte stream.
 *
 * Usage: `push(chunk)` whenever bytes arrive, then call `next()` until it returns `undefined`.
 * Each frame is returned whole (header and body). A frame that lies inside one pushed chunk is
 * returned as a view of that chunk (no copy); the decoder never writes to pushed chunks, so the
 * views stay valid. Limits may be changed between frames (the transport raises them once a peer
 * has authenticated).
 *
 * Errors: `next()` throws `DecodeError` with code `FRAME_TOO_LARGE` or `FRAME_TOO_SMALL` when a
 * header declares a length outside the limits; `finish()` throws `FRAME_TRUNCATED` when the
 * stream ended inside a frame. After an error the decoder is poisoned: every later call throws
 * the same error, so a caller cannot accidentally resynchronise on attacker-chosen bytes.
 */
export class FrameDecoder {
  private readonly chunks: Uint8Array[] = [];
  /** Index of the first unconsumed chunk in `chunks`. */
  private head = 0;
  /** Bytes of `chunks[head]` already consumed. */
  private headOffset = 0;
  private buffered = 0;
  private limits: FrameLimits;
  private failure: DecodeError | undefined;

  constructor(limits: FrameLimits) {
    checkLimits(limits);
    this.limits = limits;
  }

  /** Bytes received and not yet returned in a frame. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Replaces the limits; they apply from the next header read. */
  setLimits(limits: FrameLimits): void {
    checkLimits(limits);
    this.limits = limits;
  }

  /** Appends received bytes. The decoder keeps a reference to `chunk`; do not modify it later. */
  push(chunk: Uint8Array): void {
    if (this.failure !== undefined) throw this.failure;
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /** The next whole frame (header and body), or `undefined` until more bytes arrive. */
  next(): Uint8Array | undefined {
    if (this.failure !== undefined) throw this.failure;
    if (this.buffered < FRAME_HEADER_BYTES) return undefined;
    const bodyBytes = this.peekLength();
    this.checkLength(bodyBytes);
    const frameBytes = FRAME_HEADER_BYTES + bodyBytes;
    if (this.buffered < frameBytes) return undefined;
    return this.take(frameBytes);
  }

  /** Declares the end of the stream; throws `FRAME_TRUNCATED` if a partial frame is buffered. */
  finish(): void {
    if (this.failure !== undefined) throw this.failure;
    if (this.buffered === 0) return;
    const declared =
      this.buffered >= FRAME_HEADER_BYTES
        ? `a frame of ${FRAME_HEADER_BYTES + this.peekLength()} bytes`
        : 'a frame header';
    this.fail('FRAME_TRUNCATED', `stream ended inside ${declared} after ${this.buffered} bytes`);
  }

  private checkLength(bodyBytes: number): void {
    const { bodyBytesMin, bodyBytesMax } = this.limits;
    if (bodyBytes > bodyBytesMax) {
      this.fail('FRAME_TOO_LARGE', `frame declares a body of ${bodyBytes} bytes; the limit is ${bodyBytesMax}`);
    }
    if (bodyBytes < bodyBytesMin) {
      this.fail('FRAME_TOO_SMALL', `frame declares a body of ${bodyBytes} bytes; the minimum is ${bodyBytesMin}`);
    }
  }

  private fail(code: string, message: string): never {
    this.failure = new DecodeError(code, message);
    this.chunks.length = 0;
    this.head = 0;
    this.headOffset = 0;
    this.buffered = 0;
    throw this.failure;
  }

  /** Reads the 4 header bytes, which may span chunks, without consuming them. */
  private peekLength(): number {
    const first = this.chunks[this.head];
    assert(first !== undefined, 'buffered bytes imply a head chunk');
    if (first.length - this.headOffset >= FRAME_HEADER_BYTES) return readFrameHeader(first, this.headOffset);
    const header = new Uint8Array(FRAME_HEADER_BYTES);
    this.copyOut(header, FRAME_HEADER_BYTES, false);
    return readFrameHeader(header, 0);
  }

  /** Consumes `n` buffered bytes and returns them contiguous (a view when possible). */
  private take(n: number): Uint8Array {
    const first = this.chunks[this.head];
    assert(first !== undefined, 'buffered bytes imply a head chunk');
    let out: Uint8Array;
    if (first.length - this.headOffset >= n) {
      out = first.subarray(this.headOffset, this.headOffset + n);
      this.headOffset += n;
      this.buffered -= n;
      this.dropConsumedHead();
    } else {
      out = new Uint8Array(n);
      this.copyOut(out, n, true);
    }
    this.compact();
    return out;
  }

  /** Copies the first `n` buffered bytes into `target`; consumes them when `consume` is set. */
  private copyOut(target: Uint8Array, n: number, consume: boolean): void {
    assert(n <= this.buffered && n <= target.length, 'copy exceeds buffered bytes');
    let index = this.head;
    let offset = this.headOffset;
    let copied = 0;
    while (copied < n) {
      const chunk = this.chunks[index];
      assert(chunk !== undefined, 'buffered count matches the chunks');
      const step = Math.min(n - copied, chunk.length - offset);
      target.set(chunk.subarray(offset, offset + step), copied);
      copied += step;
      offset += step;
      if (offset === chunk.length) {
        index++;
        offset = 0;
      }
    }
    if (!consume) return;
    for (let i = this.head; i < index; i++) this.chunks[i] = EMPTY;
    this.head = index;
    this.headOffset = offset;
    this.buffered -= n;
  }

  private dropConsumedHead(): void {
    const first = this.chunks[this.head];
    if (first !== undefined && this.headOffset === first.length) {
      this.chunks[this.head] = EMPTY;
      this.head++;
      this.headOffset = 0;
    }
  }

  /** Drops consumed chunk slots so the array does not grow with the stream's history. */
  private compact(): void {
    if (this.head === this.chunks.length) {
      this.chunks.length = 0;
      this.head = 0;
    } else if (this.head >= 64 && this.head * 2 >= this.chunks.length) {
      this.chunks.splice(0, this.head);
      this.head = 0;
    }
  }
}

const EMPTY = new Uint8Array(0);
