/**
 * The key-value state machine: a small, bounded, etcd-like store replicated through the cluster
 * log. Tests and the simulator use it as the workload that the linearizability checker judges;
 * `cohort` users keep configuration in it.
 *
 * Semantics (etcd's, restricted to single-key operations plus a prefix range):
 * - A global `revision` starts at 0 and increases by exactly 1 for each mutation (a put, a
 *   successful cas, a delete that removed a key). Reads, failed compares, deletes of absent keys
 *   and refused commands leave it unchanged.
 * - Each key carries `createRevision` (revision of the put that created it), `modRevision`
 *   (revision of its last put) and `version` (puts since creation, 1 after the first). Deleting a
 *   key forgets all three; re-creating it starts again at version 1.
 * - `cas` compares either the current value (`null` means "the key is absent") or the current
 *   `modRevision` (0 means "the key is absent"), and puts only when the compare holds.
 * - `range` returns keys that start with a prefix, in JavaScript string order (UTF-16 code
 *   units), at most `limit` entries and about `KV_RANGE_BYTES_MAX` bytes, with `more` set when
 *   entries were left out.
 * Keys are non-empty, well-formed Unicode strings of at most `KV_KEY_BYTES_MAX` UTF-8 bytes
 * (`kv-key.ts`; a new key also holds no control character, checked before proposing, never in
 * `apply`); values are bytes, at most `KV_VALUE_BYTES_MAX`; the store holds at most `KV_KEYS_MAX`
 * keys and `KV_STATE_BYTES_MAX` key+value bytes. Breaking a limit gives an `ApplyError`, never an exception.
 */
import { assert, assertNever } from '../lib/assert.js';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { crc32c } from '../lib/checksum.js';
import { DecodeError, err, ok, type Result } from '../lib/errors.js';
import { logIndex, term as makeTerm, type LogIndex, type Term } from '../lib/ids.js';
import {
  KV_KEY_BYTES_MAX,
  KV_KEYS_MAX,
  KV_RANGE_BYTES_MAX,
  KV_RANGE_ENTRIES_MAX,
  KV_STATE_BYTES_MAX,
  KV_VALUE_BYTES_MAX,
  RAFT_SNAPSHOT_BYTES_MAX,
} from '../constants.js';
import {
  assertApplyOrder,
  badCommand,
  Fnv64,
  MultisetHash64,
  stateHashOf,
  type ApplyError,
  type ApplyResult,
  type CommandCodec,
  type Digest64,
  type StateHash,
  type StateMachine,
} from './state-machine.js';
import { kvStoredKeyProblem, utf8Length } from './kv-key.js';

// ------------------------------------------------------------------------------------------------
// Commands and outputs

/** What a `cas` compares before it puts. */
export type KvCompare =
  /** Holds when the current value equals `value` byte for byte; `null` holds when the key is absent. */
  | { readonly kind: 'value'; readonly value: Uint8Array | null }
  /** Holds when the key's current `modRevision` equals this; 0 holds when the key is absent. */
  | { readonly kind: 'modRevision'; readonly modRevision: number };

/** A KV command, as proposed to the cluster log. */
export type KvCommand =
  | { readonly type: 'get'; readonly key: string }
  | { readonly type: 'put'; readonly key: string; readonly value: Uint8Array }
  | { readonly type: 'cas'; readonly key: string; readonly compare: KvCompare; readonly value: Uint8Array }
  | { readonly type: 'delete'; readonly key: string }
  | { readonly type: 'range'; readonly prefix: string; readonly limit: number };

/** One key's current value and revisions. `value` is a private copy the caller may keep. */
export interface KvEntry {
  readonly key: string;
  readonly value: Uint8Array;
  readonly createRevision: number;
  readonly modRevision: number;
  readonly version: number;
}

/**
 * The output of a successful KV command. `revision` is the store's revision after the command
 * (for a mutation, the revision it created).
 */
export type KvOutput =
  | { readonly type: 'get'; readonly revision: number; readonly entry: KvEntry | null }
  | { readonly type: 'put'; readonly revision: number; readonly entry: KvEntry }
  /** On success `entry` is the new entry; on failure it is the current one (null when absent), so a caller can retry. */
  | { readonly type: 'cas'; readonly revision: number; readonly succeeded: boolean; readonly entry: KvEntry | null }
  | { readonly type: 'delete'; readonly revision: number; readonly deleted: boolean }
  | { readonly type: 'range'; readonly revision: number; readonly entries: readonly KvEntry[]; readonly more: boolean };

/** Stable `ApplyError` codes of the KV machine (plus the shared `BAD_COMMAND`). */
export type KvErrorCode =
  | 'KV_INVALID_KEY'
  | 'KV_VALUE_TOO_LARGE'
  | 'KV_INVALID_LIMIT'
  | 'KV_INVALID_COMPARE'
  | 'KV_TOO_MANY_KEYS'
  | 'KV_STATE_TOO_LARGE';

function kvError(code: KvErrorCode, message: string): ApplyError {
  return { code, message };
}

// ------------------------------------------------------------------------------------------------
// Validation (shared by `apply`, the encoder and the decoder)

const textEncoder = new TextEncoder();
// `ignoreBOM: true`: a key may legitimately start with U+FEFF; the default decoder would drop it
// and break the round trip.
const keyDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The stored-key rule (`kv-key.ts`); a put's stricter admission rule is checked before proposing. */
function checkKey(key: string, what: 'key' | 'prefix'): ApplyError | null {
  const problem = kvStoredKeyProblem(key, what);
  return problem === null ? null : kvError('KV_INVALID_KEY', problem);
}

function checkValue(value: Uint8Array, what: string): ApplyError | null {
  if (value.length > KV_VALUE_BYTES_MAX) {
    return kvError(
      'KV_VALUE_TOO_LARGE',
      `${what} is ${value.length} bytes; the limit is ${KV_VALUE_BYTES_MAX}: store large data elsewhere and keep a reference here`,
    );
  }
  return null;
}

function checkCompare(c: KvCompare): ApplyError | null {
  switch (c.kind) {
    case 'value':
      return c.value === null ? null : checkValue(c.value, 'compared value');
    case 'modRevision':
      if (Number.isSafeInteger(c.modRevision) && c.modRevision >= 0) return null;
      return kvError('KV_INVALID_COMPARE', `compared modRevision ${c.modRevision} is not a non-negative safe integer`);
    default:
      return assertNever(c, 'compare kind');
  }
}

/**
 * Checks a decoded command against the limits. Returns null when it is valid, or the
 * `ApplyError` that `apply` would return. Proposers call it before `encode` (which asserts).
 */
export function validateKvCommand(c: KvCommand): ApplyError | null {
  switch (c.type) {
    case 'get':
    case 'delete':
      return checkKey(c.key, 'key');
    case 'put':
      return checkKey(c.key, 'key') ?? checkValue(c.value, 'value');
    case 'cas':
      return checkKey(c.key, 'key') ?? checkCompare(c.compare) ?? checkValue(c.value, 'value');
    case 'range':
      if (!Number.isInteger(c.limit) || c.limit < 1 || c.limit > KV_RANGE_ENTRIES_MAX) {
        return kvError(
          'KV_INVALID_LIMIT',
          `range limit ${c.limit} must be an integer in [1, ${KV_RANGE_ENTRIES_MAX}]; page through larger ranges`,
        );
      }
      return checkKey(c.prefix, 'prefix');
    default:
      return assertNever(c, 'kv command');
  }
}

// ------------------------------------------------------------------------------------------------
// Command codec. Byte 0 is a tag that names the command *and* its encoding: a future change of
// encoding takes a new tag, so entries already in logs and snapshots keep decoding.

const TAG_GET = 1;
const TAG_PUT = 2;
const TAG_CAS = 3;
const TAG_DELETE = 4;
const TAG_RANGE = 5;
const CMP_VALUE = 1;
const CMP_ABSENT = 2;
const CMP_MOD_REVISION = 3;

function writeKey(w: ByteWriter, key: string): void {
  w.lenBytes(textEncoder.encode(key));
}

function readKey(r: ByteReader, what: 'key' | 'prefix'): string {
  const b = r.lenBytes(KV_KEY_BYTES_MAX, what);
  if (what === 'key' && b.length === 0) throw new DecodeError('DECODE_INVALID', 'key is empty');
  try {
    return keyDecoder.decode(b);
  } catch (cause) {
    throw new DecodeError('DECODE_UTF8', `${what} is not valid UTF-8`, { cause });
  }
}

function writeCompare(w: ByteWriter, c: KvCompare): void {
  switch (c.kind) {
    case 'value':
      if (c.value === null) w.u8(CMP_ABSENT);
      else w.u8(CMP_VALUE).lenBytes(c.value);
      return;
    case 'modRevision':
      w.u8(CMP_MOD_REVISION).u64(c.modRevision);
      return;
    default:
      assertNever(c, 'compare kind');
  }
}

function readCompare(r: ByteReader): KvCompare {
  const kind = r.u8('compare kind');
  switch (kind) {
    case CMP_VALUE:
      return { kind: 'value', value: r.lenBytes(KV_VALUE_BYTES_MAX, 'compared value') };
    case CMP_ABSENT:
      return { kind: 'value', value: null };
    case CMP_MOD_REVISION:
      return { kind: 'modRevision', modRevision: r.u64('compared modRevision') };
    default:
      throw new DecodeError('DECODE_INVALID', `unknown compare kind ${kind}`);
  }
}

/** Encodes a valid KV command (assert: call `validateKvCommand` on untrusted commands first). */
export function encodeKvCommand(c: KvCommand): Uint8Array {
  const invalid = validateKvCommand(c);
  assert(invalid === null, `encoding an invalid KV command: ${invalid?.message ?? ''}`);
  const w = new ByteWriter(64);
  switch (c.type) {
    case 'get':
      writeKey(w.u8(TAG_GET), c.key);
      break;
    case 'put':
      writeKey(w.u8(TAG_PUT), c.key);
      w.lenBytes(c.value);
      break;
    case 'cas':
      writeKey(w.u8(TAG_CAS), c.key);
      writeCompare(w, c.compare);
      w.lenBytes(c.value);
      break;
    case 'delete':
      writeKey(w.u8(TAG_DELETE), c.key);
      break;
    case 'range':
      writeKey(w.u8(TAG_RANGE), c.prefix);
      w.u32(c.limit);
      break;
    default:
      assertNever(c, 'kv command');
  }
  return w.finish().slice();
}

function readCommandBody(r: ByteReader, tag: number): KvCommand {
  switch (tag) {
    case TAG_GET:
      return { type: 'get', key: readKey(r, 'key') };
    case TAG_PUT:
      return { type: 'put', key: readKey(r, 'key'), value: r.lenBytes(KV_VALUE_BYTES_MAX, 'value') };
    case TAG_CAS: {
      const key = readKey(r, 'key');
      const compare = readCompare(r);
      return { type: 'cas', key, compare, value: r.lenBytes(KV_VALUE_BYTES_MAX, 'value') };
    }
    case TAG_DELETE:
      return { type: 'delete', key: readKey(r, 'key') };
    case TAG_RANGE: {
      const prefix = readKey(r, 'prefix');
      const limit = r.u32('range limit');
      if (limit < 1 || limit > KV_RANGE_ENTRIES_MAX)
        throw new DecodeError('DECODE_RANGE', `range limit ${limit} is outside [1, ${KV_RANGE_ENTRIES_MAX}]`);
      return { type: 'range', prefix, limit };
    }
    default:
      throw new DecodeError('DECODE_INVALID', `unknown KV command tag ${tag}`);
  }
}

/**
 * Decodes a KV command. Raises only `DecodeError`. Byte fields of the result are views into
 * `bytes` (no copy): the state machine copies what it keeps.
 */
export function decodeKvCommand(bytes: Uint8Array): KvCommand {
  const r = new ByteReader(bytes);
  const command = readCommandBody(r, r.u8('command tag'));
  r.end('KV command');
  return command;
}

/** The KV command codec, as a `CommandCodec`. */
export const kvCommandCodec: CommandCodec<KvCommand> = { encode: encodeKvCommand, decode: decodeKvCommand };

// ------------------------------------------------------------------------------------------------
// The state machine

interface Slot {
  value: Uint8Array;
  createRevision: number;
  modRevision: number;
  version: number;
  keyBytes: number;
  digest: Digest64;
}

function slotDigest(key: string, s: Omit<Slot, 'digest' | 'keyBytes'>): Digest64 {
  return new Fnv64().string(key).bytes(s.value).u64(s.createRevision).u64(s.modRevision).u64(s.version).digest();
}

function entryOf(key: string, s: Slot): KvEntry {
  return {
    key,
    value: s.value.slice(),
    createRevision: s.createRevision,
    modRevision: s.modRevision,
    version: s.version,
  };
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** First index in sorted `keys` whose key is >= `key`. */
function lowerBound(keys: readonly string[], key: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((keys[mid] ?? '') < key) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The whole mutable state; replaced as one object by `restore`, so a restore is all or nothing. */
interface KvState {
  readonly slots: Map<string, Slot>;
  /** Every key in `slots`, sorted, for prefix ranges. */
  readonly sorted: string[];
  readonly digest: MultisetHash64;
  revision: number;
  stateBytes: number;
  appliedIndex: LogIndex;
  appliedTerm: Term;
}

function emptyState(): KvState {
  return {
    slots: new Map(),
    sorted: [],
    digest: new MultisetHash64(),
    revision: 0,
    stateBytes: 0,
    appliedIndex: logIndex(0),
    appliedTerm: makeTerm(0),
  };
}

/**
 * The KV store as a `StateMachine`. Besides `apply`, it answers local reads (`get`, `range`)
 * for the log layer's lease and read-index reads; those never change state.
 */
export class KvStateMachine implements StateMachine<KvCommand, KvOutput> {
  readonly codec: CommandCodec<KvCommand> = kvCommandCodec;
  private s: KvState = emptyState();

  get appliedIndex(): LogIndex {
    return this.s.appliedIndex;
  }

  get appliedTerm(): Term {
    return this.s.appliedTerm;
  }

  /** The store's revision: the number of mutations applied since it was empty. */
  get revision(): number {
    return this.s.revision;
  }

  /** Keys held. */
  get size(): number {
    return this.s.slots.size;
  }

  /** Key + value bytes held (what `KV_STATE_BYTES_MAX` bounds). */
  get stateBytes(): number {
    return this.s.stateBytes;
  }

  apply(index: LogIndex, term: Term, command: Uint8Array | KvCommand): ApplyResult<KvOutput> {
    assertApplyOrder(this.s.appliedIndex, this.s.appliedTerm, index, term);
    const result = this.applyCommand(command);
    this.s.appliedIndex = index;
    this.s.appliedTerm = term;
    return result;
  }

  private applyCommand(command: Uint8Array | KvCommand): ApplyResult<KvOutput> {
    let c: KvCommand;
    if (command instanceof Uint8Array) {
      try {
        c = decodeKvCommand(command);
      } catch (e) {
        if (e instanceof DecodeError) return err(badCommand(e));
        throw e;
      }
    } else {
      c = command;
    }
    const invalid = validateKvCommand(c);
    if (invalid !== null) return err(invalid);
    return this.execute(c);
  }

  private execute(c: KvCommand): ApplyResult<KvOutput> {
    switch (c.type) {
      case 'get':
        return ok(this.get(c.key));
      case 'put':
        return this.put(c.key, c.value);
      case 'cas':
        return this.cas(c.key, c.compare, c.value);
      case 'delete':
        return ok(this.delete(c.key));
      case 'range':
        return ok(this.range(c.prefix, c.limit));
      default:
        return assertNever(c, 'kv command');
    }
  }

  /** Reads one key (no state change). */
  get(key: string): Extract<KvOutput, { type: 'get' }> {
    const slot = this.s.slots.get(key);
    return { type: 'get', revision: this.s.revision, entry: slot === undefined ? null : entryOf(key, slot) };
  }

  /**
   * Reads keys starting with `prefix` in string order (no state change): at most `limit` entries
   * (clamped to `KV_RANGE_ENTRIES_MAX`), stopping early once `KV_RANGE_BYTES_MAX` bytes are
   * collected; `more` tells whether matching keys were left out.
   */
  range(prefix: string, limit: number): Extract<KvOutput, { type: 'range' }> {
    const max = Math.max(1, Math.min(limit, KV_RANGE_ENTRIES_MAX));
    const entries: KvEntry[] = [];
    let bytes = 0;
    let i = lowerBound(this.s.sorted, prefix);
    for (; i < this.s.sorted.length; i++) {
      const key = this.s.sorted[i] ?? '';
      if (!key.startsWith(prefix) || entries.length >= max || bytes >= KV_RANGE_BYTES_MAX) break;
      const slot = this.s.slots.get(key);
      assert(slot !== undefined, 'sorted keys and slots agree');
      entries.push(entryOf(key, slot));
      bytes += slot.keyBytes + slot.value.length;
    }
    const more = i < this.s.sorted.length && (this.s.sorted[i] ?? '').startsWith(prefix);
    return { type: 'range', revision: this.s.revision, entries, more };
  }

  private put(key: string, value: Uint8Array): ApplyResult<KvOutput> {
    const r = this.write(key, value);
    if (!r.ok) return r;
    return ok({ type: 'put', revision: this.s.revision, entry: r.value });
  }

  private cas(key: string, compare: KvCompare, value: Uint8Array): ApplyResult<KvOutput> {
    const slot = this.s.slots.get(key);
    if (!compareHolds(slot, compare)) {
      return ok({
        type: 'cas',
        revision: this.s.revision,
        succeeded: false,
        entry: slot === undefined ? null : entryOf(key, slot),
      });
    }
    const r = this.write(key, value);
    if (!r.ok) return r;
    return ok({ type: 'cas', revision: this.s.revision, succeeded: true, entry: r.value });
  }

  /** The one place a key is created or overwritten; checks the limits before it changes anything. */
  private write(key: string, value: Uint8Array): Result<KvEntry, ApplyError> {
    const s = this.s;
    const old = s.slots.get(key);
    const keyBytes = old?.keyBytes ?? utf8Length(key);
    const newStateBytes =
      s.stateBytes - (old === undefined ? 0 : old.keyBytes + old.value.length) + keyBytes + value.length;
    if (old === undefined && s.slots.size >= KV_KEYS_MAX) {
      return err(
        kvError(
          'KV_TOO_MANY_KEYS',
          `the store already holds ${KV_KEYS_MAX} keys (KV_KEYS_MAX); delete keys before creating more`,
        ),
      );
    }
    if (newStateBytes > KV_STATE_BYTES_MAX) {
      return err(
        kvError(
          'KV_STATE_TOO_LARGE',
          `this put would grow the store to ${newStateBytes} bytes, past KV_STATE_BYTES_MAX (${KV_STATE_BYTES_MAX}); delete or shrink values first`,
        ),
      );
    }
    const revision = s.revision + 1;
    const fields = {
      value: value.slice(), // the command's bytes may be a view into a reused log buffer
      createRevision: old?.createRevision ?? revision,
      modRevision: revision,
      version: (old?.version ?? 0) + 1,
    };
    const slot: Slot = { ...fields, keyBytes, digest: slotDigest(key, fields) };
    if (old === undefined) s.sorted.splice(lowerBound(s.sorted, key), 0, key);
    else s.digest.remove(old.digest);
    s.digest.add(slot.digest);
    s.slots.set(key, slot);
    s.revision = revision;
    s.stateBytes = newStateBytes;
    return ok(entryOf(key, slot));
  }

  private delete(key: string): Extract<KvOutput, { type: 'delete' }> {
    const s = this.s;
    const old = s.slots.get(key);
    if (old === undefined) return { type: 'delete', revision: s.revision, deleted: false };
    const at = lowerBound(s.sorted, key);
    assert(s.sorted[at] === key, 'a held key is in the sorted index');
    s.sorted.splice(at, 1);
    s.slots.delete(key);
    s.digest.remove(old.digest);
    s.stateBytes -= old.keyBytes + old.value.length;
    s.revision += 1;
    return { type: 'delete', revision: s.revision, deleted: true };
  }

  stateHash(): StateHash {
    return stateHashOf(hashState(this.s));
  }

  snapshot(): Uint8Array {
    return encodeSnapshot(this.s);
  }

  restore(bytes: Uint8Array): Result<void, DecodeError> {
    try {
      this.s = decodeSnapshot(bytes);
      return ok(undefined);
    } catch (e) {
      if (e instanceof DecodeError) return err(e);
      throw e;
    }
  }
}

function compareHolds(slot: Slot | undefined, c: KvCompare): boolean {
  switch (c.kind) {
    case 'value':
      if (c.value === null) return slot === undefined;
      return slot !== undefined && bytesEqual(slot.value, c.value);
    case 'modRevision':
      return (slot?.modRevision ?? 0) === c.modRevision;
    default:
      return assertNever(c, 'compare kind');
  }
}

function hashState(s: KvState): Digest64 {
  return new Fnv64()
    .u64(s.appliedIndex)
    .u64(s.appliedTerm)
    .u64(s.revision)
    .u32(s.slots.size)
    .digest64(s.digest.value())
    .digest();
}

// ------------------------------------------------------------------------------------------------
// Snapshot format (little-endian):
//   magic u32 'CKVS' | format u8 = 1 | appliedIndex u64 | appliedTerm u64 | revision u64 | count u32
//   count × (key: u32 len + UTF-8 | value: u32 len + bytes | createRevision u64 | modRevision u64 | version u64)
//   crc32c u32 of every byte before it
// Entries are in sorted key order, which makes the bytes a function of the state alone.

const SNAPSHOT_MAGIC = 0x53564b43; // 'CKVS' read as a little-endian u32
const SNAPSHOT_FORMAT = 1;
const SNAPSHOT_HEADER_BYTES = 4 + 1 + 8 + 8 + 8 + 4;
const SNAPSHOT_ENTRY_OVERHEAD_BYTES = 4 + 4 + 8 + 8 + 8;

function encodeSnapshot(s: KvState): Uint8Array {
  const size = SNAPSHOT_HEADER_BYTES + s.slots.size * SNAPSHOT_ENTRY_OVERHEAD_BYTES + s.stateBytes + 4;
  assert(size <= RAFT_SNAPSHOT_BYTES_MAX, 'KV limits keep a snapshot within one Raft snapshot message');
  const w = new ByteWriter(size, size);
  w.u32(SNAPSHOT_MAGIC).u8(SNAPSHOT_FORMAT).u64(s.appliedIndex).u64(s.appliedTerm).u64(s.revision).u32(s.slots.size);
  for (const key of s.sorted) {
    const slot = s.slots.get(key);
    assert(slot !== undefined, 'sorted keys and slots agree');
    writeKey(w, key);
    w.lenBytes(slot.value).u64(slot.createRevision).u64(slot.modRevision).u64(slot.version);
  }
  w.u32(crc32c(w.finish()));
  assert(w.length === size, 'snapshot size is computed exactly');
  return w.finish().slice();
}

function corrupt(message: string): DecodeError {
  return new DecodeError(
    'SNAPSHOT_INVALID',
    `KV snapshot is invalid: ${message}; take a fresh snapshot from a healthy node`,
  );
}

function readSnapshotHeader(bytes: Uint8Array): { r: ByteReader; s: KvState; count: number } {
  if (bytes.length < SNAPSHOT_HEADER_BYTES + 4)
    throw corrupt(`${bytes.length} bytes is shorter than the smallest snapshot`);
  const body = bytes.subarray(0, bytes.length - 4);
  const stored = new ByteReader(bytes.subarray(bytes.length - 4)).u32('checksum');
  if (crc32c(body) !== stored)
    throw new DecodeError(
      'SNAPSHOT_CHECKSUM',
      'KV snapshot checksum mismatch: the bytes were corrupted in storage or transfer; fetch the snapshot again',
    );
  const r = new ByteReader(body);
  if (r.u32('magic') !== SNAPSHOT_MAGIC)
    throw new DecodeError('SNAPSHOT_MAGIC', 'not a KV snapshot (bad magic): it belongs to another state machine');
  const format = r.u8('format');
  if (format !== SNAPSHOT_FORMAT)
    throw new DecodeError(
      'SNAPSHOT_VERSION',
      `KV snapshot format ${format} is not supported (this build reads format ${SNAPSHOT_FORMAT}); upgrade this node`,
    );
  const s = emptyState();
  s.appliedIndex = logIndex(r.u64('appliedIndex'));
  s.appliedTerm = makeTerm(r.u64('appliedTerm'));
  s.revision = r.u64('revision');
  const count = r.u32('entry count');
  if (count > KV_KEYS_MAX) throw corrupt(`${count} keys exceeds KV_KEYS_MAX (${KV_KEYS_MAX})`);
  return { r, s, count };
}

function readSnapshotEntry(r: ByteReader, s: KvState, previousKey: string | null): string {
  const key = readKey(r, 'key');
  if (previousKey !== null && !(previousKey < key))
    throw corrupt(`key ${JSON.stringify(key)} is out of order or repeated`);
  const value = r.lenBytes(KV_VALUE_BYTES_MAX, 'value').slice();
  const createRevision = r.u64('createRevision');
  const modRevision = r.u64('modRevision');
  const version = r.u64('version');
  const revisionsOk = createRevision >= 1 && createRevision <= modRevision && modRevision <= s.revision;
  if (!revisionsOk || version < 1 || version > modRevision - createRevision + 1) {
    throw corrupt(
      `key ${JSON.stringify(key)} has impossible revisions (create ${createRevision}, mod ${modRevision}, version ${version}, store ${s.revision})`,
    );
  }
  const keyBytes = utf8Length(key);
  s.stateBytes += keyBytes + value.length;
  if (s.stateBytes > KV_STATE_BYTES_MAX)
    throw corrupt(`more than KV_STATE_BYTES_MAX (${KV_STATE_BYTES_MAX}) bytes of keys and values`);
  const fields = { value, createRevision, modRevision, version };
  const slot: Slot = { ...fields, keyBytes, digest: slotDigest(key, fields) };
  s.slots.set(key, slot);
  s.sorted.push(key);
  s.digest.add(slot.digest);
  return key;
}

function decodeSnapshot(bytes: Uint8Array): KvState {
  const { r, s, count } = readSnapshotHeader(bytes);
  let previousKey: string | null = null;
  for (let i = 0; i < count; i++) previousKey = readSnapshotEntry(r, s, previousKey);
  r.end('KV snapshot');
  return s;
}
