/**
 * The stable-state file: the Raft term, the vote, and a small opaque blob, replaced atomically.
 *
 * Save protocol: write `<name>.tmp`, cut it to length, fsync it, rename it over `<name>`, fsync
 * the directory; `done` runs after the directory sync. A crash at any point leaves either the
 * old file or the new one, never a mix. Saves are serialised; saves requested while one is in
 * flight coalesce into one write of the newest state, and each `done` runs once a state at least
 * as new as its own is durable.
 *
 * Layout (little-endian): "COHSTB01", u32 version, u32 vote (0 = none), u64 term,
 * u32 blob length, blob, u32 crc32c of everything before it.
 */
import { assert } from '../lib/assert.js';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { crc32c } from '../lib/checksum.js';
import { DecodeError } from '../lib/errors.js';
import { NODE_ID_MAX, nodeId, term, type NodeId, type Term } from '../lib/ids.js';
import { STABLE_BLOB_BYTES_MAX, STORAGE_WAITERS_MAX } from '../constants.js';
import type { Disk } from './disk.js';
import { CorruptFileError, StorageError } from './storage-error.js';

/** The state a node must never forget across restarts. */
export interface StableState {
  readonly term: Term;
  readonly vote: NodeId | null;
  /** Opaque to storage (e.g. an incarnation counter); at most `STABLE_BLOB_BYTES_MAX` bytes. */
  readonly blob: Uint8Array;
}

/** Default file name of the stable state. */
export const STABLE_STATE_FILE = 'stable-state';

const MAGIC = new Uint8Array([0x43, 0x4f, 0x48, 0x53, 0x54, 0x42, 0x30, 0x31]); // "COHSTB01"
const VERSION = 1;
const ADVICE =
  'The node cannot know its term or vote, so it must not vote: restore the file from a backup, or wipe this node and let it rejoin as a new member.';

/** Encodes `state` in the stable-state layout. */
export function encodeStableState(state: StableState): Uint8Array {
  assert(
    state.blob.length <= STABLE_BLOB_BYTES_MAX,
    `stable-state blob must be at most ${STABLE_BLOB_BYTES_MAX} bytes`,
  );
  const writer = new ByteWriter(64 + state.blob.length);
  writer
    .bytes(MAGIC)
    .u32(VERSION)
    .u32(state.vote ?? 0)
    .u64(state.term)
    .lenBytes(state.blob);
  const body = writer.finish();
  writer.u32(crc32c(body));
  return writer.finish().slice();
}

/** Decodes a stable-state file; throws `CorruptFileError` (`STABLE_CORRUPT`) on any damage. */
export function decodeStableState(file: string, bytes: Uint8Array): StableState {
  const corrupt = (detail: string): CorruptFileError => new CorruptFileError('STABLE_CORRUPT', file, detail, ADVICE);
  if (bytes.length < 4) throw corrupt(`only ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (crc32c(bytes.subarray(0, bytes.length - 4)) !== view.getUint32(bytes.length - 4, true))
    throw corrupt('checksum mismatch');
  const reader = new ByteReader(bytes.subarray(0, bytes.length - 4));
  try {
    const magic = reader.bytes(MAGIC.length, 'magic');
    if (!magic.every((b, i) => b === MAGIC[i])) throw corrupt('not a cohort stable-state file (bad magic)');
    const version = reader.u32('version');
    if (version !== VERSION) throw corrupt(`unsupported version ${version}`);
    const vote = reader.u32('vote');
    if (vote > NODE_ID_MAX) throw corrupt(`vote ${vote} is not a node id`);
    const currentTerm = reader.u64('term');
    const blob = reader.lenBytes(STABLE_BLOB_BYTES_MAX, 'blob').slice();
    reader.end('stable state');
    return { term: term(currentTerm), vote: vote === 0 ? null : nodeId(vote), blob };
  } catch (error) {
    if (error instanceof DecodeError) throw corrupt(error.message);
    throw error;
  }
}

/** Reads and writes one stable-state file; see the file comment. */
export class StableStore {
  private inFlight: StorageError | 'idle' | 'busy' = 'idle';
  private next: { state: StableState; dones: ((error: StorageError | null) => void)[] } | null = null;

  constructor(
    private readonly disk: Disk,
    private readonly file = STABLE_STATE_FILE,
  ) {}

  /** The stored state, or null when none was ever saved. Throws `CorruptFileError` when damaged. */
  load(): StableState | null {
    const bytes = this.disk.read(this.file);
    return bytes === null ? null : decodeStableState(this.file, bytes);
  }

  /**
   * Saves `state`; `done` runs from a disk completion once it (or a newer state) is durable, or
   * with `STABLE_FAILED`. Throws `STABLE_FAILED` once a save has failed (an fsync failure is not
   * retryable) and `STORAGE_BACKPRESSURE` beyond `STORAGE_WAITERS_MAX` waiting saves.
   */
  save(state: StableState, done: (error: StorageError | null) => void): void {
    if (this.inFlight instanceof StorageError) throw this.inFlight;
    const bytes = encodeStableState(state); // validates before anything is queued
    if (this.inFlight === 'idle') {
      this.write(bytes, [done]);
      return;
    }
    if (this.next === null) this.next = { state, dones: [] };
    if (this.next.dones.length >= STORAGE_WAITERS_MAX) {
      throw new StorageError(
        'STORAGE_BACKPRESSURE',
        `more than ${STORAGE_WAITERS_MAX} stable-state saves are waiting; wait for earlier ones`,
      );
    }
    this.next.state = state;
    this.next.dones.push(done);
  }

  private write(bytes: Uint8Array, dones: ((error: StorageError | null) => void)[]): void {
    this.inFlight = 'busy';
    const tmp = `${this.file}.tmp`;
    const finish = (error: Error | null): void => {
      if (error !== null) {
        const failure = new StorageError(
          'STABLE_FAILED',
          `saving ${this.file} failed (${error.message}); the node must stop: its term and vote may not be durable`,
          { cause: error, file: this.file, operation: `saving ${this.file}` },
        );
        this.inFlight = failure;
        const waiting = [...dones, ...(this.next?.dones ?? [])];
        this.next = null;
        for (const d of waiting) d(failure);
        return;
      }
      this.inFlight = 'idle';
      const next = this.next;
      this.next = null;
      if (next !== null) this.write(encodeStableState(next.state), next.dones);
      for (const d of dones) d(null);
    };
    const then = (fn: () => void) => (error: Error | null) => {
      if (error !== null) finish(error);
      else fn();
    };
    this.disk.write(
      tmp,
      0,
      bytes,
      then(() => {
        this.disk.truncate(
          tmp,
          bytes.length,
          then(() => {
            this.disk.sync(
              tmp,
              then(() => {
                this.disk.rename(
                  tmp,
                  this.file,
                  then(() => {
                    this.disk.syncDir(finish);
                  }),
                );
              }),
            );
          }),
        );
      }),
    );
  }
}
