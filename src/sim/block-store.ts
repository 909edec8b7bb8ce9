/**
 * The simulated block store: a `BlockStore` on virtual time whose crashes do exactly what the
 * contract in `src/storage/block-store.ts` allows, chosen by this store's own PRNG stream.
 *
 * Model:
 * - Each fragment holds its visible content and an undo log of the writes since its last
 *   successful `flush`. A crash rolls the fragment back to its flushed content, then re-applies
 *   each unflushed write independently, oldest first: kept whole (`keepUnflushedProbability`),
 *   torn (`tornWriteProbability`: each 512-byte sector it touched is kept or not, with a keep
 *   chance drawn once per write so near-complete and near-empty tears both occur), or dropped.
 *   A sector is atomic: it holds its flushed content or one write's content, never a mix, and no
 *   byte is fabricated.
 * - `create` and `remove` take effect, durably, when they complete; a crash before that leaves
 *   the fragment as it was (absent, or present).
 * - Operations run through an `OpSequencer` keyed by fragment (issue order per fragment), each
 *   with a latency drawn from the configured ranges; effects apply when the operation completes.
 *   After `crash()`, completions still pending never fire.
 * - `trim` is a write of zeros, kept, dropped or torn like any write.
 * - A flush that fails (an injected I/O error) leaves its writes unflushed: a later crash may
 *   still lose them, as the contract warns.
 * - `flipBits` corrupts flushed data (fragments with unflushed writes are skipped): media decay
 *   that a volume's checksums or parity must catch.
 *
 * The store outlives node incarnations: the simulator keeps one per machine, hands it to every
 * new incarnation, and crashes it with the machine.
 */
import { assert } from '../lib/assert.js';
import type { Prng } from '../lib/prng.js';
import { BLOCK_OPS_PENDING_MAX, BLOCK_SECTOR_BYTES } from '../constants.js';
import {
  blockExists,
  blockIoError,
  blockNotFound,
  checkBlockCreate,
  checkBlockRange,
  isValidFragmentName,
  type BlockCallback,
  type BlockReadCallback,
  type BlockStore,
  type BlockStoreError,
} from '../storage/block-store.js';
import { OpSequencer } from '../storage/op-sequencer.js';
import { SparseBytes } from '../storage/sparse-bytes.js';

/** Options of `SimBlockStore`. */
export interface SimBlockStoreOptions {
  /** Virtual-time scheduler from the simulator; must never run `fn` synchronously. */
  readonly schedule: (delayMs: number, fn: () => void) => void;
  /** This store's random stream. */
  readonly prng: Prng;
  /** Uniform latency range of reads, in ms. Default [0.05, 0.2]. */
  readonly readLatencyMs?: readonly [number, number];
  /** Uniform latency range of writes, creates and removes, in ms. Default [0.02, 0.1]. */
  readonly writeLatencyMs?: readonly [number, number];
  /** Uniform latency range of flushes, in ms. Default [0.2, 1]. */
  readonly flushLatencyMs?: readonly [number, number];
  /** At crash, chance that an unflushed write survives torn (per sector). Default 0.3. */
  readonly tornWriteProbability?: number;
  /** At crash, chance that an unflushed write survives whole. Default 0.2. */
  readonly keepUnflushedProbability?: number;
  /** Chance that any one read, write, trim or flush fails with `BLOCK_IO`. Default 0. */
  readonly ioErrorProbability?: number;
}

interface UnflushedWrite {
  readonly offset: number;
  readonly data: Uint8Array;
  readonly oldBytes: Uint8Array;
}

interface Fragment {
  readonly bytes: SparseBytes;
  /** Writes since the last successful flush, oldest first. */
  undo: UnflushedWrite[];
}

/** See the file comment. */
export class SimBlockStore implements BlockStore {
  readonly stats = { reads: 0, writes: 0, flushes: 0, ioErrors: 0, crashes: 0 };
  private readonly fragments = new Map<string, Fragment>();
  private sequencer = new OpSequencer(BLOCK_OPS_PENDING_MAX);
  private epoch = 0;
  private readonly readLatency: readonly [number, number];
  private readonly writeLatency: readonly [number, number];
  private readonly flushLatency: readonly [number, number];
  private readonly torn: number;
  private readonly keep: number;
  private readonly ioError: number;

  constructor(private readonly options: SimBlockStoreOptions) {
    this.readLatency = checkRange(options.readLatencyMs ?? [0.05, 0.2], 'readLatencyMs');
    this.writeLatency = checkRange(options.writeLatencyMs ?? [0.02, 0.1], 'writeLatencyMs');
    this.flushLatency = checkRange(options.flushLatencyMs ?? [0.2, 1], 'flushLatencyMs');
    this.torn = checkProbability(options.tornWriteProbability ?? 0.3, 'tornWriteProbability');
    this.keep = checkProbability(options.keepUnflushedProbability ?? 0.2, 'keepUnflushedProbability');
    this.ioError = checkProbability(options.ioErrorProbability ?? 0, 'ioErrorProbability');
    assert(this.torn + this.keep <= 1, 'tornWriteProbability + keepUnflushedProbability must be at most 1');
  }

  list(): string[] {
    return [...this.fragments.keys()].sort();
  }

  size(name: string): number | null {
    return this.fragments.get(name)?.bytes.size ?? null;
  }

  create(name: string, sizeBytes: number, done: BlockCallback): void {
    assert(isValidFragmentName(name), `invalid fragment name ${JSON.stringify(name)}`);
    this.submit(name, this.writeLatency, null, done, () => {
      if (this.fragments.has(name)) return blockExists(name);
      const invalid = checkBlockCreate(name, sizeBytes, this.fragments.size);
      if (invalid !== null) return invalid;
      this.fragments.set(name, { bytes: new SparseBytes(sizeBytes), undo: [] });
      return null;
    });
  }

  read(name: string, offset: number, length: number, done: BlockReadCallback): void {
    let data: Uint8Array | null = null;
    this.submit(
      name,
      this.readLatency,
      'read',
      (error) => {
        done(error, error === null ? data : null);
      },
      () => {
        const fragment = this.fragments.get(name);
        if (fragment === undefined) return blockNotFound('read', name);
        const invalid = checkBlockRange(name, fragment.bytes.size, offset, length);
        if (invalid !== null) return invalid;
        data = fragment.bytes.read(offset, length);
        this.stats.reads++;
        return null;
      },
    );
  }

  write(name: string, offset: number, data: Uint8Array, done: BlockCallback): void {
    this.mutate('write', name, offset, data.length, () => data.slice(), done);
  }

  /** A write of zeros: lost, kept or torn by a crash exactly like one. */
  trim(name: string, offset: number, length: number, done: BlockCallback): void {
    this.mutate('trim', name, offset, length, () => new Uint8Array(length), done);
  }

  private mutate(
    op: 'write' | 'trim',
    name: string,
    offset: number,
    length: number,
    bytes: () => Uint8Array,
    done: BlockCallback,
  ): void {
    this.submit(name, this.writeLatency, op, done, () => {
      const fragment = this.fragments.get(name);
      if (fragment === undefined) return blockNotFound(op, name);
      const invalid = checkBlockRange(name, fragment.bytes.size, offset, length);
      if (invalid !== null) return invalid;
      const copy = bytes();
      fragment.undo.push({ offset, data: copy, oldBytes: fragment.bytes.read(offset, copy.length) });
      fragment.bytes.write(offset, copy);
      this.stats.writes++;
      return null;
    });
  }

  flush(name: string, done: BlockCallback): void {
    this.submit(name, this.flushLatency, 'flush', done, () => {
      const fragment = this.fragments.get(name);
      if (fragment === undefined) return blockNotFound('flush', name);
      fragment.undo = [];
      this.stats.flushes++;
      return null;
    });
  }

  remove(name: string, done: BlockCallback): void {
    this.submit(name, this.writeLatency, null, done, () => {
      this.fragments.delete(name);
      return null;
    });
  }

  /**
   * A machine crash: every unflushed write is dropped, kept or torn as the file comment says;
   * completions still pending never fire. The store stays usable for the next incarnation.
   */
  crash(): void {
    this.epoch++;
    this.stats.crashes++;
    this.sequencer = new OpSequencer(BLOCK_OPS_PENDING_MAX);
    const prng = this.options.prng;
    for (const name of this.list()) {
      const fragment = this.fragments.get(name);
      if (fragment === undefined || fragment.undo.length === 0) continue;
      const changes = fragment.undo;
      fragment.undo = [];
      for (let i = changes.length - 1; i >= 0; i--) {
        const change = changes[i] as UnflushedWrite;
        fragment.bytes.write(change.offset, change.oldBytes);
      }
      for (const change of changes) {
        const r = prng.float();
        if (r < this.keep) fragment.bytes.write(change.offset, change.data);
        else if (r < this.keep + this.torn) tearSectors(fragment.bytes, change, prng);
      }
    }
  }

  /**
   * Flips `count` random bits of flushed data (fragments with unflushed writes are skipped).
   * Returns the number of flips done: 0 when no fragment holds flushed, allocated data.
   */
  flipBits(count: number): number {
    assert(Number.isInteger(count) && count >= 0, 'flip count must be a non-negative integer');
    const candidates = this.list()
      .map((name) => this.fragments.get(name))
      .filter((f): f is Fragment => f !== undefined && f.undo.length === 0 && f.bytes.allocatedBytes > 0);
    const total = candidates.reduce((sum, f) => sum + f.bytes.allocatedBytes, 0);
    if (total === 0) return 0;
    const prng = this.options.prng;
    for (let i = 0; i < count; i++) {
      let at = prng.int(0, total);
      for (const fragment of candidates) {
        if (at < fragment.bytes.allocatedBytes) {
          fragment.bytes.flipAllocatedBit(at, prng.int(0, 8));
          break;
        }
        at -= fragment.bytes.allocatedBytes;
      }
    }
    return count;
  }

  /** Runs `effect` after a drawn latency, in issue order per fragment; crashed epochs never complete. */
  private submit(
    name: string,
    latency: readonly [number, number],
    op: 'read' | 'write' | 'trim' | 'flush' | null,
    done: BlockCallback,
    effect: () => BlockStoreError | null,
  ): void {
    const epoch = this.epoch;
    this.sequencer.submit([name], (finish) => {
      const prng = this.options.prng;
      const delay = latency[0] + prng.float() * (latency[1] - latency[0]);
      this.options.schedule(delay, () => {
        if (epoch !== this.epoch) return; // crashed: this completion never happens
        let error: BlockStoreError | null;
        if (op !== null && this.ioError > 0 && prng.chance(this.ioError)) {
          this.stats.ioErrors++;
          error = blockIoError(op, name, new Error('EIO: simulated I/O error'));
        } else {
          error = effect();
        }
        finish();
        done(error);
      });
    });
  }
}

/** Re-applies the sectors of `change` each with a keep chance drawn once for this write. */
function tearSectors(bytes: SparseBytes, change: UnflushedWrite, prng: Prng): void {
  const keepChance = prng.float();
  for (let at = 0; at < change.data.length; at += BLOCK_SECTOR_BYTES) {
    if (prng.chance(keepChance)) bytes.write(change.offset + at, change.data.subarray(at, at + BLOCK_SECTOR_BYTES));
  }
}

function checkRange(range: readonly [number, number], what: string): readonly [number, number] {
  assert(
    Number.isFinite(range[0]) && range[0] >= 0 && range[1] >= range[0],
    `${what} must be [min, max] with 0 <= min <= max`,
  );
  return range;
}

function checkProbability(p: number, what: string): number {
  assert(p >= 0 && p <= 1, `${what} must be in [0, 1]`);
  return p;
}
