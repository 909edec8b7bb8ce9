/**
 * The plaintext of one data frame: a batch of one or more encoded messages (pure: no I/O).
 *
 *     +-------------+-----------+-------------+-----------+----
 *     | u32 LE len1 | message 1 | u32 LE len2 | message 2 | ...
 *     +-------------+-----------+-------------+-----------+----
 *
 * Batching is why the transport is fast: the sender seals everything queued for a peer in one
 * flush into as few AEAD records as the size target allows, so the per-record cipher set-up
 * (a few microseconds in Node) is paid once per batch instead of once per message.
 *
 * A batch is decoded only after its frame authenticated, but the reader still checks every
 * length (a peer with the key may run buggy or newer code) and raises `DecodeError`
 * (`BATCH_MALFORMED`) rather than reading out of bounds.
 */
import { assert } from '../lib/assert.js';
import { DecodeError } from '../lib/errors.js';
import { FRAME_PAYLOAD_BYTES_MAX } from '../constants.js';

/** Size of the length prefix in front of each message in a batch. */
export const BATCH_ENTRY_HEADER_BYTES = 4;

/** Largest batch plaintext: one maximal message and its prefix always fits alone. */
export const BATCH_BYTES_MAX: number = FRAME_PAYLOAD_BYTES_MAX + BATCH_ENTRY_HEADER_BYTES;

/** Bytes a message of `messageBytes` occupies inside a batch. */
export function batchEntryBytes(messageBytes: number): number {
  return BATCH_ENTRY_HEADER_BYTES + messageBytes;
}

/**
 * Writes `messages[from, to)` as one batch into `target` at `offset`; returns the end offset.
 * The caller sized `target` with `batchEntryBytes` and kept the total within `BATCH_BYTES_MAX`.
 */
export function writeBatch(
  target: Uint8Array,
  offset: number,
  messages: readonly Uint8Array[],
  from: number,
  to: number,
): number {
  assert(from >= 0 && from < to && to <= messages.length, 'a batch holds at least one message');
  let pos = offset;
  for (let i = from; i < to; i++) {
    const message = messages[i];
    assert(
      message !== undefined && message.length <= FRAME_PAYLOAD_BYTES_MAX,
      'batched message exceeds FRAME_PAYLOAD_BYTES_MAX',
    );
    const n = message.length;
    target[pos] = n & 0xff;
    target[pos + 1] = (n >>> 8) & 0xff;
    target[pos + 2] = (n >>> 16) & 0xff;
    target[pos + 3] = (n >>> 24) & 0xff;
    target.set(message, pos + BATCH_ENTRY_HEADER_BYTES);
    pos += BATCH_ENTRY_HEADER_BYTES + n;
  }
  assert(pos - offset <= BATCH_BYTES_MAX, 'batch exceeds BATCH_BYTES_MAX');
  return pos;
}

/** Encodes `messages` as one batch (a convenience for tests and tools; the transport writes in place). */
export function encodeBatch(messages: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const m of messages) total += batchEntryBytes(m.length);
  const out = new Uint8Array(total);
  writeBatch(out, 0, messages, 0, messages.length);
  return out;
}

/**
 * Calls `onMessage` with a view of each message in `batch`, in order. Validates the whole batch
 * structure first, so a malformed batch delivers nothing (a partially delivered batch would be
 * harder to reason about than a dropped one). Throws `DecodeError` (`BATCH_MALFORMED`).
 */
export function readBatch(batch: Uint8Array, onMessage: (message: Uint8Array) => void): void {
  const count = checkBatch(batch);
  let pos = 0;
  for (let i = 0; i < count; i++) {
    const n = entryLength(batch, pos);
    const start = pos + BATCH_ENTRY_HEADER_BYTES;
    onMessage(batch.subarray(start, start + n));
    pos = start + n;
  }
}

/** Returns the number of messages in `batch` after checking every length; throws on a bad one. */
export function checkBatch(batch: Uint8Array): number {
  if (batch.length === 0)
    throw new DecodeError('BATCH_MALFORMED', 'empty batch: a data frame carries at least one message');
  if (batch.length > BATCH_BYTES_MAX)
    throw new DecodeError('BATCH_MALFORMED', `batch of ${batch.length} bytes exceeds ${BATCH_BYTES_MAX}`);
  let pos = 0;
  let count = 0;
  while (pos < batch.length) {
    if (batch.length - pos < BATCH_ENTRY_HEADER_BYTES) {
      throw new DecodeError('BATCH_MALFORMED', `batch ends inside a message length prefix at offset ${pos}`);
    }
    const n = entryLength(batch, pos);
    if (n > FRAME_PAYLOAD_BYTES_MAX)
      throw new DecodeError(
        'BATCH_MALFORMED',
        `message of ${n} bytes at offset ${pos} exceeds ${FRAME_PAYLOAD_BYTES_MAX}`,
      );
    if (n > batch.length - pos - BATCH_ENTRY_HEADER_BYTES) {
      throw new DecodeError(
        'BATCH_MALFORMED',
        `message at offset ${pos} declares ${n} bytes but only ${batch.length - pos - BATCH_ENTRY_HEADER_BYTES} remain`,
      );
    }
    pos += BATCH_ENTRY_HEADER_BYTES + n;
    count++;
  }
  return count;
}

function entryLength(batch: Uint8Array, pos: number): number {
  return (
    ((batch[pos] ?? 0) |
      ((batch[pos + 1] ?? 0) << 8) |
      ((batch[pos + 2] ?? 0) << 16) |
      ((batch[pos + 3] ?? 0) << 24)) >>>
    0
  );
}
