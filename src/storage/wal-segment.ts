/**
 * The WAL's on-disk format and its pure reader. See docs/storage.md for the full layout.
 *
 * A segment file `wal-<16 hex first seq>.log` is a 32-byte segment header followed by records.
 * Each record is a 24-byte header and a payload:
 *
 *   u32 crc32c   over bytes [4, 24 + length) of the record (header rest + payload)
 *   u32 length   payload bytes, at most WAL_RECORD_BYTES_MAX
 *   u8  type     1..255 (0 is never valid, so zero-filled space never parses)
 *   u8  flags    0
 *   u16 reserved 0
 *   u64 seq      the record's sequence number; consecutive within and across segments
 *   u32 index    position of the record inside its group-commit batch (0 starts a batch)
 *
 * The writer issues one write per batch and never issues the next batch's write before the
 * previous batch's fsync completed, and a batch never spans two segments. So a crash can leave
 * damage only inside the *last batch of the last segment*. The reader turns that into the rule:
 *
 * - Parse records from the start; stop at the first record that fails any check (the "damage
 *   point", where the next expected sequence number is S).
 * - In a non-last segment, any damage is corruption (`WalCorruptionError`).
 * - In the last segment, scan every later offset for records with a valid checksum. If every such
 *   record belongs to one batch that may be the torn one (its first sequence number, seq - index,
 *   is S or the first sequence number of the batch the last good record belongs to, and its seq
 *   is at least S), the damage is a torn tail: recovery keeps the records before the damage point
 *   and truncates the rest. A valid record from any other batch means a later write landed after
 *   this one, which the writer only issues after this one was synced: that is corruption.
 *
 * Consequence (documented limitation): damage confined to the last batch of the last segment is
 * indistinguishable from a torn write and is truncated, even if that batch had been synced.
 */
import { crc32c } from '../lib/checksum.js';
import { WAL_RECORD_BYTES_MAX } from '../constants.js';
import { assert } from '../lib/assert.js';
import { WalCorruptionError } from './storage-error.js';

/** Bytes of the segment header. */
export const SEGMENT_HEADER_BYTES = 32;
/** Bytes of a record header. */
export const RECORD_HEADER_BYTES = 24;
/** Format version written in every segment header. */
export const WAL_FORMAT_VERSION = 1;
/** Largest record type available to WAL users; 255 is the WAL's own reset marker. */
export const WAL_USER_TYPE_MAX = 254;
/** Record type of the reset marker: it starts a segment and supersedes every earlier segment. */
export const WAL_RESET_TYPE = 255;

const MAGIC = [0x43, 0x4f, 0x48, 0x57, 0x41, 0x4c, 0x30, 0x31]; // "COHWAL01"
const SEGMENT_NAME = /^wal-([0-9a-f]{16})\.log$/;
const TWO_32 = 0x1_0000_0000;

/** One record as recovered. `payload` is a view into the segment's bytes (no copy). */
export interface WalRecord {
  readonly seq: number;
  readonly type: number;
  readonly payload: Uint8Array;
}

/** What `scanSegment` found. */
export interface SegmentScan {
  /** Intact records in order, starting at the segment's first sequence number. */
  readonly records: WalRecord[];
  /** Bytes from the start of the file that hold the header and intact records. */
  readonly validBytes: number;
  /** Bytes after `validBytes` that are a torn tail (0 unless the segment is the last). */
  readonly tornBytes: number;
  /** False when the segment header itself was torn (only possible in the last segment). */
  readonly headerValid: boolean;
  /**
   * True when the torn tail starts with a *complete* record (its whole declared length is
   * present) that has no all-zero 512-byte sector yet fails its checksum. An interrupted
   * sequential write leaves a short or zero-filled tail, not this: it is more likely a bit flip in
   * a record that had been synced (etcd's torn-entry heuristic). Callers that cannot afford to
   * lose acknowledged records treat it as possible loss (the Raft shell enters repair mode).
   */
  readonly tailSuspect: boolean;
}

/** The segment file name for a segment whose first record has sequence number `firstSeq`. */
export function segmentName(firstSeq: number): string {
  assert(
    Number.isSafeInteger(firstSeq) && firstSeq >= 1,
    'segment first sequence number must be a positive safe integer',
  );
  return `wal-${firstSeq.toString(16).padStart(16, '0')}.log`;
}

/** The first sequence number encoded in a segment file name, or null when `name` is not a segment. */
export function parseSegmentName(name: string): number | null {
  const match = SEGMENT_NAME.exec(name);
  if (match === null) return null;
  const value = Number.parseInt(match[1] ?? '', 16);
  return Number.isSafeInteger(value) && value >= 1 ? value : null;
}

/** Encodes the 32-byte header of a segment starting at `firstSeq`. */
export function encodeSegmentHeader(firstSeq: number): Uint8Array {
  const out = new Uint8Array(SEGMENT_HEADER_BYTES);
  const view = new DataView(out.buffer);
  out.set(MAGIC, 0);
  view.setUint32(8, WAL_FORMAT_VERSION, true);
  view.setUint32(12, 0, true);
  setU64(view, 16, firstSeq);
  view.setUint32(24, 0, true);
  view.setUint32(28, crc32c(out.subarray(0, 28)), true);
  return out;
}

/** Bytes a record with a `payloadBytes`-byte payload occupies. */
export function recordBytes(payloadBytes: number): number {
  return RECORD_HEADER_BYTES + payloadBytes;
}

/**
 * Encodes one record into `out` at `offset`; returns the offset after it. The caller sized `out`
 * with `recordBytes`.
 */
export function encodeRecord(
  out: Uint8Array,
  offset: number,
  seq: number,
  indexInBatch: number,
  type: number,
  payload: Uint8Array,
): number {
  assert(type >= 1 && type <= 255 && Number.isInteger(type), 'record type must be in 1..255');
  assert(payload.length <= WAL_RECORD_BYTES_MAX, 'record payload must fit WAL_RECORD_BYTES_MAX');
  assert(Number.isSafeInteger(seq) && seq >= 1, 'record sequence number must be a positive safe integer');
  assert(Number.isInteger(indexInBatch) && indexInBatch >= 0 && indexInBatch < TWO_32, 'batch index must fit u32');
  const end = offset + recordBytes(payload.length);
  assert(end <= out.length, 'record must fit the output buffer');
  const view = new DataView(out.buffer, out.byteOffset, out.byteLength);
  view.setUint32(offset + 4, payload.length, true);
  view.setUint8(offset + 8, type);
  view.setUint8(offset + 9, 0);
  view.setUint16(offset + 10, 0, true);
  setU64(view, offset + 12, seq);
  view.setUint32(offset + 20, indexInBatch, true);
  out.set(payload, offset + RECORD_HEADER_BYTES);
  view.setUint32(offset, crc32c(out.subarray(offset + 4, end)), true);
  return end;
}

/** A record parsed at some offset, before sequence checks. */
interface RawRecord {
  readonly seq: number;
  readonly index: number;
  readonly type: number;
  readonly payload: Uint8Array;
  readonly end: number;
}

/** Parses a self-consistent record (sane header, checksum matches) at `offset`, or returns null. */
function parseRecordAt(bytes: Uint8Array, view: DataView, offset: number): RawRecord | null {
  if (bytes.length - offset < RECORD_HEADER_BYTES) return null;
  const length = view.getUint32(offset + 4, true);
  const type = view.getUint8(offset + 8);
  if (type === 0 || view.getUint8(offset + 9) !== 0 || view.getUint16(offset + 10, true) !== 0) return null;
  if (length > WAL_RECORD_BYTES_MAX || length > bytes.length - offset - RECORD_HEADER_BYTES) return null;
  const seq = getU64(view, offset + 12);
  if (seq === null || seq < 1) return null;
  const end = offset + RECORD_HEADER_BYTES + length;
  if (crc32c(bytes.subarray(offset + 4, end)) !== view.getUint32(offset, true)) return null;
  return {
    seq,
    index: view.getUint32(offset + 20, true),
    type,
    payload: bytes.subarray(offset + RECORD_HEADER_BYTES, end),
    end,
  };
}

/** Why the segment header is unusable, or null when it is valid for `firstSeq`; `fatal` when a crash cannot explain it. */
function checkHeader(bytes: Uint8Array, view: DataView, firstSeq: number): { detail: string; fatal: boolean } | null {
  if (bytes.length < SEGMENT_HEADER_BYTES)
    return { detail: `file is ${bytes.length} bytes, shorter than the segment header`, fatal: false };
  if (crc32c(bytes.subarray(0, 28)) !== view.getUint32(28, true))
    return { detail: 'segment header checksum mismatch', fatal: false };
  // From here the header is intact as written, so any mismatch is not a crash artifact.
  for (let i = 0; i < MAGIC.length; i++) {
    if (bytes[i] !== MAGIC[i]) return { detail: 'not a cohort WAL segment (bad magic)', fatal: true };
  }
  const version = view.getUint32(8, true);
  if (version !== WAL_FORMAT_VERSION)
    return {
      detail: `unsupported WAL format version ${version} (this build reads ${WAL_FORMAT_VERSION})`,
      fatal: true,
    };
  const headerSeq = getU64(view, 16);
  if (headerSeq !== firstSeq)
    return {
      detail: `header says first sequence number ${String(headerSeq)}, file name says ${firstSeq}`,
      fatal: true,
    };
  return null;
}

/**
 * Parses segment `name` (content `bytes`, first sequence number `firstSeq`) and classifies any
 * damage by the rule in the file comment. `last` says whether this is the newest segment.
 * Throws only `WalCorruptionError`; never reads out of bounds, never loops past the input.
 */
export function scanSegment(name: string, bytes: Uint8Array, firstSeq: number, last: boolean): SegmentScan {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerProblem = checkHeader(bytes, view, firstSeq);
  if (headerProblem !== null) {
    if (headerProblem.fatal || !last) throw new WalCorruptionError(name, 0, headerProblem.detail);
    // A torn header: the segment's first write never completed. Only the first batch can follow.
    checkTornTail(name, bytes, view, 0, firstSeq, null, headerProblem.detail);
    return { records: [], validBytes: 0, tornBytes: bytes.length, headerValid: false, tailSuspect: false };
  }
  const records: WalRecord[] = [];
  let offset = SEGMENT_HEADER_BYTES;
  let expectedSeq = firstSeq;
  let batchFirst: number | null = null;
  while (offset < bytes.length) {
    const rec = parseRecordAt(bytes, view, offset);
    const problem = rec === null ? 'record header or checksum invalid' : sequenceProblem(rec, expectedSeq, batchFirst);
    if (problem !== null) {
      if (!last) throw new WalCorruptionError(name, offset, `${problem} in a segment that is not the newest`);
      checkTornTail(name, bytes, view, offset, expectedSeq, batchFirst, problem);
      return {
        records,
        validBytes: offset,
        tornBytes: bytes.length - offset,
        headerValid: true,
        tailSuspect: completeButCorrupt(bytes, view, offset),
      };
    }
    assert(rec !== null, 'a record without problems was parsed');
    records.push({ seq: rec.seq, type: rec.type, payload: rec.payload });
    batchFirst = rec.seq - rec.index;
    expectedSeq++;
    offset = rec.end;
  }
  return { records, validBytes: offset, tornBytes: 0, headerValid: true, tailSuspect: false };
}

/** See `SegmentScan.tailSuspect`: a whole, non-zero-sectored record at `offset` that failed its check. */
function completeButCorrupt(bytes: Uint8Array, view: DataView, offset: number): boolean {
  if (bytes.length - offset < RECORD_HEADER_BYTES) return false;
  const length = view.getUint32(offset + 4, true);
  if (length > WAL_RECORD_BYTES_MAX || length > bytes.length - offset - RECORD_HEADER_BYTES) return false;
  const end = offset + RECORD_HEADER_BYTES + length;
  for (let sector = offset - (offset % 512); sector < end; sector += 512) {
    const from = Math.max(sector, offset);
    const to = Math.min(sector + 512, end);
    let zero = true;
    for (let i = from; i < to && zero; i++) zero = bytes[i] === 0;
    if (zero) return false;
  }
  return true;
}

/** Why `rec` cannot be the next record, or null when it can. */
function sequenceProblem(rec: RawRecord, expectedSeq: number, batchFirst: number | null): string | null {
  if (rec.seq !== expectedSeq) return `record has sequence number ${rec.seq}, expected ${expectedSeq}`;
  const first = rec.seq - rec.index;
  if (rec.index === 0 || first === batchFirst) return null;
  return `record ${rec.seq} claims batch index ${rec.index}, which does not continue the previous batch`;
}

/**
 * Throws `WalCorruptionError` unless everything from `damageOffset` on can be the remains of one
 * torn batch write (see the file comment). `prevBatchFirst` is the first sequence number of the
 * batch of the last good record in this segment, or null when there is none.
 */
function checkTornTail(
  name: string,
  bytes: Uint8Array,
  view: DataView,
  damageOffset: number,
  expectedSeq: number,
  prevBatchFirst: number | null,
  damage: string,
): void {
  let tornBatch: number | null = null;
  for (let offset = damageOffset; offset + RECORD_HEADER_BYTES <= bytes.length; offset++) {
    const rec = parseRecordAt(bytes, view, offset);
    if (rec === null) continue;
    const batch = rec.seq - rec.index;
    const candidate = batch === expectedSeq || (prevBatchFirst !== null && batch === prevBatchFirst);
    if (rec.seq >= expectedSeq && candidate && (tornBatch === null || tornBatch === batch)) {
      tornBatch = batch;
      continue;
    }
    throw new WalCorruptionError(
      name,
      damageOffset,
      `${damage}, yet an intact record (sequence number ${rec.seq}, batch starting at ${batch}) follows at byte ${offset}, ` +
        'so this is not a torn final write',
    );
  }
}

function setU64(view: DataView, offset: number, value: number): void {
  view.setUint32(offset, value % TWO_32, true);
  view.setUint32(offset + 4, Math.floor(value / TWO_32), true);
}

/** A u64 that must be a safe integer, or null when it is not. */
function getU64(view: DataView, offset: number): number | null {
  const lo = view.getUint32(offset, true);
  const hi = view.getUint32(offset + 4, true);
  if (hi > 0x1f_ffff) return null;
  return hi * TWO_32 + lo;
}
