/**
 * Wire messages and the on-disk record format of the proving workload (reliable broadcast with
 * persistence). Both are small fixed binary formats over `ByteWriter`/`ByteReader`; decoders
 * raise only `DecodeError`, so a codec bug surfaces in simulation as a `codec` violation.
 */
import { assertNever } from '../../lib/assert.js';
import { ByteReader, ByteWriter } from '../../lib/bytes.js';
import { crc32c } from '../../lib/checksum.js';
import { DecodeError } from '../../lib/errors.js';
import type { Codec } from '../../transport/transport.js';

/** Largest broadcast payload, in UTF-8 bytes. */
export const PAYLOAD_BYTES_MAX = 32;
/** Largest broadcast id. */
export const BROADCAST_ID_MAX = 0xffff_ffff;

/** A broadcast message (first receipt: persist, relay; later: acknowledge). */
export interface DataMessage {
  readonly type: 'data';
  readonly id: number;
  readonly payload: string;
}
/** "I have `id` durably": the sender stops retransmitting it to us. */
export interface AckMessage {
  readonly type: 'ack';
  readonly id: number;
}
/** Sent at start: "send me everything you have delivered" (repairs a reformatted node). */
export interface HelloMessage {
  readonly type: 'hello';
}
/** "I have queued everything I delivered for you": stops the hello retransmissions. */
export interface WelcomeMessage {
  readonly type: 'welcome';
}
/** Every message of the broadcast protocol. */
export type BroadcastMessage = DataMessage | AckMessage | HelloMessage | WelcomeMessage;

const TAG_DATA = 1;
const TAG_ACK = 2;
const TAG_HELLO = 3;
const TAG_WELCOME = 4;

function readId(r: ByteReader): number {
  const id = r.u32('id');
  if (id === 0) throw new DecodeError('DECODE_RANGE', 'broadcast id 0 is reserved');
  return id;
}

/** Encodes `m` (a pure function of the message). */
export function encodeBroadcastMessage(m: BroadcastMessage): Uint8Array {
  const w = new ByteWriter(64);
  switch (m.type) {
    case 'data':
      w.u8(TAG_DATA).u32(m.id).string(m.payload);
      break;
    case 'ack':
      w.u8(TAG_ACK).u32(m.id);
      break;
    case 'hello':
      w.u8(TAG_HELLO);
      break;
    case 'welcome':
      w.u8(TAG_WELCOME);
      break;
    default:
      assertNever(m, 'broadcast message');
  }
  return w.finish().slice();
}

/** Decodes one message; throws `DecodeError` on anything malformed. */
export function decodeBroadcastMessage(bytes: Uint8Array): BroadcastMessage {
  const r = new ByteReader(bytes);
  const tag = r.u8('tag');
  let m: BroadcastMessage;
  switch (tag) {
    case TAG_DATA:
      m = { type: 'data', id: readId(r), payload: r.string(PAYLOAD_BYTES_MAX, 'payload') };
      break;
    case TAG_ACK:
      m = { type: 'ack', id: readId(r) };
      break;
    case TAG_HELLO:
      m = { type: 'hello' };
      break;
    case TAG_WELCOME:
      m = { type: 'welcome' };
      break;
    default:
      throw new DecodeError('DECODE_TAG', `unknown broadcast message tag ${tag}`);
  }
  r.end('broadcast message');
  return m;
}

/** The codec the simulator uses for this workload. */
export const broadcastCodec: Codec<BroadcastMessage> = {
  encode: encodeBroadcastMessage,
  decode: decodeBroadcastMessage,
};

/**
 * On-disk record: fixed 48 bytes, so a slot's position never depends on earlier (possibly
 * corrupt) bytes. Layout: magic u16, id u32, payload length u8, payload (32 bytes, zero
 * padded), CRC32C of the preceding 39 bytes (u32), 4 zero bytes, trailer 0xA5.
 *
 * Why the trailer: a crash can leave a slot that was never durably written as a prefix of the
 * record followed by zeros (the file grew) or as all zeros, and those always end in 0x00. A
 * bit flip leaves the trailer in place (or makes it another non-zero value). So the last byte
 * tells "never written" (skip it) from "written and damaged" (corruption) without guessing.
 */
export const RECORD_BYTES = 48;
const RECORD_MAGIC = 0xb0ad;
const RECORD_TRAILER = 0xa5;
const CRC_OFFSET = 39;

/** One slot's reading. */
export type RecordSlot =
  | { readonly kind: 'record'; readonly id: number; readonly payload: string }
  | { readonly kind: 'unwritten' }
  | { readonly kind: 'corrupt'; readonly reason: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** Encodes one record slot. */
export function encodeRecord(id: number, payload: string): Uint8Array {
  const body = encoder.encode(payload);
  const out = new Uint8Array(RECORD_BYTES);
  const view = new DataView(out.buffer);
  view.setUint16(0, RECORD_MAGIC, true);
  view.setUint32(2, id, true);
  out[6] = body.length;
  out.set(body, 7);
  view.setUint32(CRC_OFFSET, crc32c(out.subarray(0, CRC_OFFSET)), true);
  out[RECORD_BYTES - 1] = RECORD_TRAILER;
  return out;
}

/** Classifies one 48-byte slot; see `RECORD_BYTES`. */
export function readRecord(slot: Uint8Array): RecordSlot {
  if (slot.length !== RECORD_BYTES) return { kind: 'corrupt', reason: `slot of ${slot.length} bytes` };
  if (slot[RECORD_BYTES - 1] === 0) return { kind: 'unwritten' };
  const view = new DataView(slot.buffer, slot.byteOffset, slot.byteLength);
  if (slot[RECORD_BYTES - 1] !== RECORD_TRAILER) return { kind: 'corrupt', reason: 'bad trailer' };
  if (view.getUint32(CRC_OFFSET, true) !== crc32c(slot.subarray(0, CRC_OFFSET)))
    return { kind: 'corrupt', reason: 'checksum mismatch' };
  if (view.getUint16(0, true) !== RECORD_MAGIC) return { kind: 'corrupt', reason: 'bad magic' };
  const length = slot[6] ?? 0;
  if (length > PAYLOAD_BYTES_MAX || slot.subarray(CRC_OFFSET + 4, RECORD_BYTES - 1).some((b) => b !== 0))
    return { kind: 'corrupt', reason: 'bad layout' };
  const id = view.getUint32(2, true);
  if (id === 0) return { kind: 'corrupt', reason: 'id 0' };
  try {
    return { kind: 'record', id, payload: decoder.decode(slot.subarray(7, 7 + length)) };
  } catch {
    return { kind: 'corrupt', reason: 'payload is not UTF-8' };
  }
}
