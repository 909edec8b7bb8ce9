/**
 * The simulated disk: a `Disk` on virtual time whose crashes do exactly what the durability
 * contract in `src/storage/disk.ts` allows, chosen by this disk's own PRNG stream.
 *
 * Model:
 * - Each file is an inode with its visible content and an undo log of the writes and truncates
 *   since its last completed `sync`. A crash rolls the inode back to its synced content, then
 *   re-applies each unsynced change independently: kept whole (`keepUnsyncedProbability`), torn
 *   (`tornWriteProbability`, writes only), or dropped. A torn write keeps either a prefix cut at
 *   any byte (a sequential writer interrupted) or a random subset of its 512-byte sectors
 *   (page writeback that persisted later sectors before earlier ones); the mode and the subset
 *   are drawn at the crash from this disk's PRNG. A missing sector reads as what was there
 *   before the write, which beyond the old end of file is zeros; the file may end at the last
 *   kept sector or, when the size update reached the disk, at the write's end. Holes left by
 *   dropped writes read as zeros; no byte is ever fabricated.
 * - The directory has a visible and a durable name table plus the log of creations, renames and
 *   removals since the last `syncDir`. A crash keeps the durable table plus a random prefix of
 *   that log (journaling file systems commit directory changes in order). An inode whose name
 *   does not survive is gone, synced data or not.
 * - Operations run through an `OpSequencer` (per-file issue order; `rename`/`remove`/creations
 *   also wait for the directory), each taking a latency drawn from the configured ranges; effects
 *   apply when the operation completes. After `crash()`, completions still pending never fire.
 *   Whether a write creates its file is only known when it runs, so a write to a name that is
 *   absent, or that a pending `rename`/`remove` touches, is ordered on the directory too.
 * - `flipBits` corrupts synced data: it models media decay the checksums must catch.
 *
 * The disk outlives node incarnations: the simulator keeps one `SimDisk` per node across
 * restarts and hands it to every new incarnation.
 */
import { assert, assertNever } from '../lib/assert.js';
import type { Prng } from '../lib/prng.js';
import { ByteFile } from '../storage/byte-file.js';
import { isValidDiskName, type Disk, type DiskCallback } from '../storage/disk.js';
import { OpSequencer } from '../storage/op-sequencer.js';

/** Options of `SimDisk` (the simulator engineer relies on these names). */
export interface SimDiskOptions {
  /** Virtual-time scheduler from the simulator; must never run `fn` synchronously. */
  schedule: (delayMs: number, fn: () => void) => void;
  /** This disk's random stream. */
  prng: Prng;
  /** Uniform latency range of writes, truncates, renames and removes, in ms. Default [0.02, 0.1]. */
  writeLatencyMs?: [number, number];
  /** Uniform latency range of `sync` and `syncDir`, in ms. Default [0.2, 1]. */
  syncLatencyMs?: [number, number];
  /** At crash, chance that an unsynced write survives torn (see `tornWriteModes`). Default 0.2. */
  tornWriteProbability?: number;
  /**
   * How a torn write is torn; each torn write draws one mode uniformly from this list. `prefix`
   * keeps the first bytes (cut at any byte); `sectors` keeps a random subset of the 512-byte
   * sectors it touches. Default both.
   */
  tornWriteModes?: readonly TornWriteMode[];
  /** At crash, chance that an unsynced write or truncate survives whole. Default 0.2. */
  keepUnsyncedProbability?: number;
  /** Chance that any one operation fails with an I/O error (EIO). Default 0. */
  ioErrorProbability?: number;
  /**
   * Chance that one `sync` or `syncDir` stalls (a device flushing its cache, a busy journal):
   * its latency is drawn from `syncStallMs` instead. Default 0.
   */
  syncStallProbability?: number;
  /** Uniform latency range of a stalled sync, in ms. Default [50, 500]. */
  syncStallMs?: [number, number];
}

/**
 * An operation class a targeted I/O error hits (`SimDisk.failNext`): `write` (writes and
 * truncates), `sync` (`sync` and `syncDir`: an fsync) or `read` (`read` and `readRange`, which
 * then throw `DiskReadError`).
 */
export type DiskFaultOp = 'write' | 'sync' | 'read';

/** Every `DiskFaultOp`, for drawing one. */
export const DISK_FAULT_OPS: readonly DiskFaultOp[] = ['write', 'sync', 'read'];

/** See `SimDiskOptions.tornWriteModes`. */
export type TornWriteMode = 'prefix' | 'sectors';

/** Sector size of the torn-write model: the unit a disk writes atomically. */
export const SIM_DISK_SECTOR_BYTES = 512;

type Undo =
  | {
      readonly kind: 'write';
      readonly offset: number;
      readonly data: Uint8Array;
      readonly oldSize: number;
      readonly oldBytes: Uint8Array;
    }
  | { readonly kind: 'truncate'; readonly size: number; readonly oldSize: number; readonly oldBytes: Uint8Array };

interface Inode {
  readonly file: ByteFile;
  /** Changes since the last completed sync, oldest first. */
  undo: Undo[];
}

type DirOp =
  | { readonly kind: 'create'; readonly name: string; readonly inode: Inode }
  | { readonly kind: 'rename'; readonly from: string; readonly to: string }
  | { readonly kind: 'remove'; readonly name: string };

const DIR_KEY = '\0dir';

/** See the file comment. */
export class SimDisk implements Disk {
  readonly stats = { writes: 0, syncs: 0, bytesWritten: 0 };
  private names = new Map<string, Inode>();
  private durableNames = new Map<string, Inode>();
  private dirLog: DirOp[] = [];
  private sequencer = new OpSequencer();
  private epoch = 0;
  private readonly writeLatency: [number, number];
  private readonly syncLatency: [number, number];
  private readonly torn: number;
  private readonly keep: number;
  private readonly ioError: number;
  private readonly tornModes: readonly TornWriteMode[];
  private readonly stall: number;
  private readonly stallLatency: [number, number];
  /** Syncs started and not yet completed (reset by a crash). */
  private syncsRunning = 0;
  /** Called once when the next sync starts, with its latency (`onNextSync`). */
  private syncWatch: ((latencyMs: number) => void) | null = null;
  /** Targeted faults armed by `failNext`: how many of the next operations of each class fail. */
  private armed = new Map<DiskFaultOp, number>();
  /** Names touched by a submitted, not yet completed `rename` or `remove`, with their counts. */
  private pendingDirNames = new Map<string, number>();

  constructor(private readonly options: SimDiskOptions) {
    this.writeLatency = checkRange(options.writeLatencyMs ?? [0.02, 0.1], 'writeLatencyMs');
    this.syncLatency = checkRange(options.syncLatencyMs ?? [0.2, 1], 'syncLatencyMs');
    this.torn = checkProbability(options.tornWriteProbability ?? 0.2, 'tornWriteProbability');
    this.keep = checkProbability(options.keepUnsyncedProbability ?? 0.2, 'keepUnsyncedProbability');
    this.ioError = checkProbability(options.ioErrorProbability ?? 0, 'ioErrorProbability');
    this.stall = checkProbability(options.syncStallProbability ?? 0, 'syncStallProbability');
    this.stallLatency = checkRange(options.syncStallMs ?? [50, 500], 'syncStallMs');
    assert(this.torn + this.keep <= 1, 'tornWriteProbability + keepUnsyncedProbability must be at most 1');
    this.tornModes = [...(options.tornWriteModes ?? ['prefix', 'sectors'])];
    assert(this.tornModes.length > 0, 'tornWriteModes must name at least one mode');
  }

  list(): string[] {
    return [...this.names.keys()].sort();
  }

  read(name: string): Uint8Array | null {
    this.readFault('read', name);
    return this.names.get(name)?.file.copy() ?? null;
  }

  size(name: string): number | null {
    return this.names.get(name)?.file.size ?? null;
  }

  readRange(name: string, offset: number, length: number): Uint8Array | null {
    this.readFault('read', name);
    return this.names.get(name)?.file.copyRange(offset, length) ?? null;
  }

  write(name: string, offset: number, data: Uint8Array, done: DiskCallback): void {
    assert(isValidDiskName(name), `invalid disk file name ${JSON.stringify(name)}`);
    assert(Number.isSafeInteger(offset) && offset >= 0, 'write offset must be a non-negative integer');
    // Ordered on the directory whenever it may create the file, so a later syncDir covers it.
    const mayCreate = !this.names.has(name) || this.pendingDirNames.has(name);
    const keys = mayCreate ? [name, DIR_KEY] : [name];
    this.submit(keys, this.writeLatency, done, 'write', name, () => {
      let inode = this.names.get(name);
      if (inode === undefined) {
        inode = { file: new ByteFile(), undo: [] };
        this.names.set(name, inode);
        this.dirLog.push({ kind: 'create', name, inode });
      }
      const oldSize = inode.file.size;
      const copy = data.slice();
      inode.undo.push({
        kind: 'write',
        offset,
        data: copy,
        oldSize,
        oldBytes: inode.file.copyRange(offset, data.length),
      });
      inode.file.write(offset, copy);
      this.stats.writes++;
      this.stats.bytesWritten += data.length;
      return null;
    });
  }

  sync(name: string, done: DiskCallback): void {
    this.submit([name], this.syncLatency, done, 'sync', name, () => {
      const inode = this.names.get(name);
      if (inode === undefined) return enoent('sync', name);
      inode.undo = [];
      this.stats.syncs++;
      return null;
    });
  }

  truncate(name: string, size: number, done: DiskCallback): void {
    assert(Number.isSafeInteger(size) && size >= 0, 'truncate size must be a non-negative integer');
    this.submit([name], this.writeLatency, done, 'write', name, () => {
      const inode = this.names.get(name);
      if (inode === undefined) return enoent('truncate', name);
      const oldSize = inode.file.size;
      inode.undo.push({
        kind: 'truncate',
        size,
        oldSize,
        oldBytes: inode.file.copyRange(size, Math.max(0, oldSize - size)),
      });
      inode.file.truncate(size);
      return null;
    });
  }

  rename(from: string, to: string, done: DiskCallback): void {
    assert(isValidDiskName(to), `invalid disk file name ${JSON.stringify(to)}`);
    this.submitDirOp([from, to], this.writeLatency, done, `${from} -> ${to}`, () => {
      const inode = this.names.get(from);
      if (inode === undefined) return enoent('rename', from);
      if (from === to) return null;
      this.names.set(to, inode);
      this.names.delete(from);
      this.dirLog.push({ kind: 'rename', from, to });
      return null;
    });
  }

  remove(name: string, done: DiskCallback): void {
    this.submitDirOp([name], this.writeLatency, done, name, () => {
      if (this.names.delete(name)) this.dirLog.push({ kind: 'remove', name });
      return null;
    });
  }

  syncDir(done: DiskCallback): void {
    this.submit([DIR_KEY], this.syncLatency, done, 'sync', 'the directory', () => {
      this.durableNames = new Map(this.names);
      this.dirLog = [];
      return null;
    });
  }

  /**
   * Arms a targeted fault: the next operation of class `op` on this disk fails with EIO (a
   * completion error naming the file, or for `read` a thrown `DiskReadError`). Arming twice fails
   * the next two. A crash does not disarm it: the fault is in the device, not the process.
   */
  failNext(op: DiskFaultOp): void {
    this.armed.set(op, (this.armed.get(op) ?? 0) + 1);
  }

  /** Disarms every targeted fault and sync watch not yet hit (the end of the fault phase). */
  disarm(): void {
    this.armed.clear();
    this.syncWatch = null;
  }

  /**
   * Calls `fn` once, when the next `sync` or `syncDir` starts, with its latency: the nemesis aims
   * a power cut at an fsync in flight (the instant a crash loses the most). Replaces an earlier
   * watch not yet called. `fn` must not touch the disk (it runs inside its scheduling).
   */
  onNextSync(fn: (latencyMs: number) => void): void {
    this.syncWatch = fn;
  }

  /** True while an fsync (`sync` or `syncDir`) is in flight: a crash now may lose what it covers. */
  get syncing(): boolean {
    return this.syncsRunning > 0;
  }

  /**
   * A process (or power) crash: every unsynced change is dropped, kept, or torn as described in
   * the file comment; completions still pending never fire. The disk stays usable for the next
   * incarnation.
   */
  crash(): void {
    this.epoch++;
    this.syncsRunning = 0;
    this.sequencer = new OpSequencer();
    this.pendingDirNames = new Map();
    const prng = this.options.prng;
    const names = new Map(this.durableNames);
    const surviving = prng.int(0, this.dirLog.length + 1);
    for (const op of this.dirLog.slice(0, surviving)) applyDirOp(names, op);
    const inodes = new Set(names.values());
    for (const inode of [...names.keys()].sort().map((n) => names.get(n))) {
      if (inode !== undefined && inodes.delete(inode)) this.recoverInode(inode);
    }
    this.names = names;
    this.durableNames = new Map(names);
    this.dirLog = [];
  }

  /**
   * Flips `count` random bits in synced file data (files with unsynced changes are skipped, so
   * the flip is in what a crash would keep). Returns the number of flips done (fewer when there
   * is no synced data).
   */
  flipBits(count: number): number {
    assert(Number.isInteger(count) && count >= 0, 'flip count must be a non-negative integer');
    const candidates = [...this.durableNames.keys()]
      .sort()
      .map((name) => this.durableNames.get(name))
      .filter((inode): inode is Inode => inode !== undefined && inode.undo.length === 0 && inode.file.size > 0);
    const total = candidates.reduce((sum, inode) => sum + inode.file.size, 0);
    if (total === 0) return 0;
    for (let i = 0; i < count; i++) {
      let at = Math.min(total - 1, Math.floor(this.options.prng.float() * total));
      for (const inode of candidates) {
        if (at < inode.file.size) {
          inode.file.setByte(at, inode.file.byteAt(at) ^ (1 << this.options.prng.int(0, 8)));
          break;
        }
        at -= inode.file.size;
      }
    }
    return count;
  }

  /** Consumes one armed fault of class `op`; true when there was one. */
  private takeArmed(op: DiskFaultOp): boolean {
    const n = this.armed.get(op) ?? 0;
    if (n === 0) return false;
    if (n === 1) this.armed.delete(op);
    else this.armed.set(op, n - 1);
    return true;
  }

  private readFault(op: 'read', name: string): void {
    if (this.takeArmed(op)) throw new DiskReadError(name);
  }

  private recoverInode(inode: Inode): void {
    const changes = inode.undo;
    inode.undo = [];
    for (let i = changes.length - 1; i >= 0; i--) rollBack(inode.file, changes[i] as Undo);
    const prng = this.options.prng;
    for (const change of changes) {
      const r = prng.float();
      if (r < this.keep) replay(inode.file, change);
      else if (r < this.keep + this.torn && change.kind === 'write' && change.data.length > 0)
        this.tear(inode.file, change);
    }
  }

  /** Re-applies part of `change` as a torn write, in a mode drawn from this disk's PRNG. */
  private tear(file: ByteFile, change: Extract<Undo, { kind: 'write' }>): void {
    const prng = this.options.prng;
    const mode = prng.pick(this.tornModes);
    switch (mode) {
      case 'prefix':
        file.write(change.offset, change.data.subarray(0, prng.int(0, change.data.length)));
        return;
      case 'sectors':
        tearSectors(file, change, prng);
        return;
      default:
        assertNever(mode);
    }
  }

  /** `submit` for a rename or remove: while it is pending, writes to `names` order on the directory. */
  private submitDirOp(
    names: string[],
    latency: [number, number],
    done: DiskCallback,
    what: string,
    effect: () => Error | null,
  ): void {
    const tracked = this.pendingDirNames;
    for (const name of names) tracked.set(name, (tracked.get(name) ?? 0) + 1);
    this.submit([...names, DIR_KEY], latency, done, 'write', what, () => {
      for (const name of names) {
        const left = (tracked.get(name) ?? 0) - 1;
        if (left > 0) tracked.set(name, left);
        else tracked.delete(name);
      }
      return effect();
    });
  }

  private submit(
    keys: string[],
    latency: [number, number],
    done: DiskCallback,
    op: Exclude<DiskFaultOp, 'read'>,
    name: string,
    effect: () => Error | null,
  ): void {
    const epoch = this.epoch;
    const sequencer = this.sequencer;
    sequencer.submit(keys, (finish) => {
      const range =
        op === 'sync' && this.stall > 0 && this.options.prng.chance(this.stall) ? this.stallLatency : latency;
      const delay = range[0] + this.options.prng.float() * (range[1] - range[0]);
      if (op === 'sync') this.syncsRunning++;
      const watch = op === 'sync' ? this.syncWatch : null;
      if (watch !== null) {
        this.syncWatch = null;
        watch(delay);
      }
      this.options.schedule(delay, () => {
        if (epoch !== this.epoch) return; // crashed: this completion never happens
        if (op === 'sync') this.syncsRunning--;
        const failed = this.takeArmed(op) || (this.ioError > 0 && this.options.prng.chance(this.ioError));
        const error = failed ? eio(op, name) : effect();
        finish();
        done(error);
      });
    });
  }
}

/** A read that failed with an I/O error (thrown: reads are synchronous). Names the file. */
export class DiskReadError extends Error {
  override readonly name = 'DiskReadError';
  readonly code = 'EIO';
  constructor(readonly file: string) {
    super(`EIO: i/o error on read of ${file} (simulated)`);
  }
}

function eio(op: Exclude<DiskFaultOp, 'read'>, name: string): Error {
  return Object.assign(new Error(`EIO: i/o error on ${op === 'sync' ? 'fsync' : op} of ${name} (simulated)`), {
    code: 'EIO',
  });
}

function applyDirOp(names: Map<string, Inode>, op: DirOp): void {
  switch (op.kind) {
    case 'create':
      names.set(op.name, op.inode);
      return;
    case 'rename': {
      const inode = names.get(op.from);
      if (inode === undefined) return;
      names.set(op.to, inode);
      names.delete(op.from);
      return;
    }
    case 'remove':
      names.delete(op.name);
      return;
  }
}

function rollBack(file: ByteFile, change: Undo): void {
  switch (change.kind) {
    case 'write':
      file.write(change.offset, change.oldBytes);
      file.truncate(change.oldSize);
      return;
    case 'truncate':
      // Restores the old size first: a zero-extending truncate has no old bytes to put back,
      // and writing even nothing at `size` must not leave the file extended.
      file.truncate(change.oldSize);
      if (change.oldBytes.length > 0) file.write(change.size, change.oldBytes);
      return;
    default:
      assertNever(change);
  }
}

/**
 * Keeps a random subset of the sectors `change` touched, each with a probability drawn once for
 * this write (so near-complete and near-empty tears both occur). A sector partly covered by the
 * write keeps only the write's bytes in it. The file ends at the last kept byte or, when the size
 * update is drawn as persisted, at the write's end with the missing sectors reading zero there.
 */
function tearSectors(file: ByteFile, change: Extract<Undo, { kind: 'write' }>, prng: Prng): void {
  const end = change.offset + change.data.length;
  const keepChance = prng.float();
  for (
    let sector = change.offset - (change.offset % SIM_DISK_SECTOR_BYTES);
    sector < end;
    sector += SIM_DISK_SECTOR_BYTES
  ) {
    if (!prng.chance(keepChance)) continue;
    const from = Math.max(sector, change.offset);
    const to = Math.min(sector + SIM_DISK_SECTOR_BYTES, end);
    file.write(from, change.data.subarray(from - change.offset, to - change.offset));
  }
  if (file.size < end && prng.chance(0.5)) file.truncate(end);
}

/** Re-applies `change` whole. */
function replay(file: ByteFile, change: Undo): void {
  switch (change.kind) {
    case 'write':
      file.write(change.offset, change.data);
      return;
    case 'truncate':
      file.truncate(change.size);
      return;
  }
}

function enoent(op: string, name: string): Error {
  return new Error(`ENOENT: ${op} of missing file ${name}`);
}

function checkRange(range: [number, number], what: string): [number, number] {
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
