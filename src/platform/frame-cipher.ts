/**
 * Data-frame protection: AES-256-GCM records with implicit counter nonces.
 *
 * A sealed frame is `u32 LE length | ciphertext | 16-byte tag`, where `length` counts the
 * ciphertext and tag. The 4 length bytes are the AEAD's associated data, so changing the length
 * breaks authentication. The 96-bit nonce is a 4-byte salt (derived with the key for this
 * connection and direction) followed by a 64-bit little-endian frame counter that is never sent:
 * both ends count frames. So any flipped bit, truncation, reordering, replay (within or across
 * connections: each connection derives a fresh key) or dropped frame fails authentication on the
 * receiver, which then closes the connection.
 *
 * Node's cipher objects cannot be re-keyed or re-IV'd, so each record costs one `createCipheriv`
 * (a few microseconds): the transport amortises that by batching many messages per record.
 *
 * The `insecure-plaintext` mode (for benchmarks only) frames the plaintext as-is: no secrecy,
 * no integrity, no replay protection.
 */
import { createCipheriv, createDecipheriv, type CipherGCM, type DecipherGCM } from 'node:crypto';
import { assert } from '../lib/assert.js';
import { CohortError } from '../lib/errors.js';
import { FRAME_HEADER_BYTES, writeFrameHeader } from '../transport/frame-decoder.js';
import type { FrameMode } from '../transport/handshake-record.js';

/** Bytes of the GCM authentication tag at the end of every sealed frame. */
export const AEAD_TAG_BYTES = 16;
/** Bytes of a frame key. */
export const FRAME_KEY_BYTES = 32;
/** Bytes of the per-connection nonce salt. */
export const FRAME_SALT_BYTES = 4;
/**
 * Frames one connection may seal before it must be replaced by a new one (with fresh keys). Far
 * below the 2^64 counter space and the 2^32-record guidance for random-nonce GCM; at a million
 * records per second it takes nine years to reach.
 */
export const FRAME_COUNTER_MAX: number = 2 ** 48;

/** Key and nonce salt for one direction of one connection. */
export interface FrameKeys {
  readonly key: Uint8Array;
  readonly salt: Uint8Array;
}

/** Raised when a frame fails authentication or arrives out of counter order. */
export class FrameAuthError extends CohortError {
  override readonly name = 'FrameAuthError';
}

/** Seals plaintexts into whole frames (header included), one counter value per frame. */
export interface FrameSealer {
  /** Bytes a sealed frame adds to its plaintext. */
  readonly overheadBytes: number;
  /** Frames sealed so far. */
  readonly sealed: number;
  /** The whole frame for `plaintext`. Throws `CohortError` `FRAME_COUNTER_EXHAUSTED` at the limit. */
  seal(plaintext: Uint8Array): Uint8Array;
}

/** Opens whole frames (as returned by `FrameDecoder.next`) in counter order. */
export interface FrameOpener {
  /** Smallest valid frame body (the frame decoder's minimum). */
  readonly bodyBytesMin: number;
  /** The plaintext of `frame`. Throws `FrameAuthError` (`FRAME_AUTH_FAILED`); then stays failed. */
  open(frame: Uint8Array): Uint8Array;
}

function checkKeys(keys: FrameKeys): void {
  assert(keys.key.length === FRAME_KEY_BYTES, 'frame key must be 32 bytes');
  assert(keys.salt.length === FRAME_SALT_BYTES, 'frame salt must be 4 bytes');
}

/** The nonce for frame number `counter`, written into `nonce` (salt already in bytes 0..3). */
function setCounter(nonce: Buffer, counter: number): void {
  nonce.writeUInt32LE(counter % 0x100000000, FRAME_SALT_BYTES);
  nonce.writeUInt32LE(Math.floor(counter / 0x100000000), FRAME_SALT_BYTES + 4);
}

class GcmSealer implements FrameSealer {
  readonly overheadBytes = FRAME_HEADER_BYTES + AEAD_TAG_BYTES;
  private counter = 0;
  private readonly key: Buffer;
  private readonly nonce = Buffer.alloc(12);

  constructor(keys: FrameKeys) {
    checkKeys(keys);
    this.key = Buffer.from(keys.key);
    this.nonce.set(keys.salt, 0);
  }

  get sealed(): number {
    return this.counter;
  }

  seal(plaintext: Uint8Array): Uint8Array {
    if (this.counter >= FRAME_COUNTER_MAX) {
      throw new CohortError(
        'FRAME_COUNTER_EXHAUSTED',
        `connection sealed ${FRAME_COUNTER_MAX} frames; it must be replaced to get fresh keys`,
      );
    }
    const bodyBytes = plaintext.length + AEAD_TAG_BYTES;
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + bodyBytes);
    writeFrameHeader(frame, 0, bodyBytes);
    setCounter(this.nonce, this.counter);
    this.counter++;
    const cipher: CipherGCM = createCipheriv('aes-256-gcm', this.key, this.nonce, { authTagLength: AEAD_TAG_BYTES });
    cipher.setAAD(frame.subarray(0, FRAME_HEADER_BYTES));
    const head = cipher.update(plaintext);
    const tail = cipher.final(); // empty for GCM, but part of the contract
    frame.set(head, FRAME_HEADER_BYTES);
    frame.set(tail, FRAME_HEADER_BYTES + head.length);
    frame.set(cipher.getAuthTag(), FRAME_HEADER_BYTES + plaintext.length);
    return frame;
  }
}

class GcmOpener implements FrameOpener {
  readonly bodyBytesMin = AEAD_TAG_BYTES;
  private counter = 0;
  private failed = false;
  private readonly key: Buffer;
  private readonly nonce = Buffer.alloc(12);

  constructor(keys: FrameKeys) {
    checkKeys(keys);
    this.key = Buffer.from(keys.key);
    this.nonce.set(keys.salt, 0);
  }

  open(frame: Uint8Array): Uint8Array {
    if (this.failed) throw new FrameAuthError('FRAME_AUTH_FAILED', 'the connection already failed authentication');
    assert(frame.length >= FRAME_HEADER_BYTES + AEAD_TAG_BYTES, 'the frame decoder enforces the minimum body');
    const tagAt = frame.length - AEAD_TAG_BYTES;
    setCounter(this.nonce, this.counter);
    const decipher: DecipherGCM = createDecipheriv('aes-256-gcm', this.key, this.nonce, {
      authTagLength: AEAD_TAG_BYTES,
    });
    decipher.setAAD(frame.subarray(0, FRAME_HEADER_BYTES));
    decipher.setAuthTag(frame.subarray(tagAt));
    const head = decipher.update(frame.subarray(FRAME_HEADER_BYTES, tagAt));
    try {
      const tail = decipher.final();
      this.counter++;
      return tail.length === 0 ? head : Buffer.concat([head, tail]);
    } catch (cause) {
      this.failed = true;
      throw new FrameAuthError(
        'FRAME_AUTH_FAILED',
        `frame #${this.counter} failed authentication (tampered, truncated, reordered or replayed, or sealed with another key)`,
        { cause },
      );
    }
  }
}

class PlainSealer implements FrameSealer {
  readonly overheadBytes = FRAME_HEADER_BYTES;
  private counter = 0;

  get sealed(): number {
    return this.counter;
  }

  seal(plaintext: Uint8Array): Uint8Array {
    const frame = Buffer.allocUnsafe(FRAME_HEADER_BYTES + plaintext.length);
    writeFrameHeader(frame, 0, plaintext.length);
    frame.set(plaintext, FRAME_HEADER_BYTES);
    this.counter++;
    return frame;
  }
}

class PlainOpener implements FrameOpener {
  readonly bodyBytesMin = 0;

  open(frame: Uint8Array): Uint8Array {
    return frame.subarray(FRAME_HEADER_BYTES);
  }
}

/** A sealer for `mode`; `keys` are required (and checked) only for AES-256-GCM. */
export function createFrameSealer(mode: FrameMode, keys: FrameKeys): FrameSealer {
  return mode === 'aes-256-gcm' ? new GcmSealer(keys) : new PlainSealer();
}

/** An opener for `mode`, matching `createFrameSealer` with the same keys. */
export function createFrameOpener(mode: FrameMode, keys: FrameKeys): FrameOpener {
  return mode === 'aes-256-gcm' ? new GcmOpener(keys) : new PlainOpener();
}
