/**
 * The real `Disk`: one directory of files, node:fs callbacks (the libuv thread pool), cached file
 * descriptors, `fdatasync` for files and `fsync` on the directory.
 *
 * - libuv runs fs requests on several threads, so two requests on one file could complete out
 *   of order; every operation goes through an `OpSequencer` to keep the per-file order the
 *   contract promises.
 * - A descriptor with writes not yet synced is never closed: since Linux 4.13 a writeback error
 *   is reported to descriptors open when it happened, and a fresh descriptor's fsync could
 *   succeed over lost data (the "fsyncgate" lesson). Clean descriptors beyond
 *   `FILE_DISK_OPEN_FILES_MAX` are closed, least recently used first.
 * - `write` loops until every byte is written (fs.write may write fewer bytes than asked).
 * - Whether a write creates its file is only known when it runs, so a write to a name without a
 *   cached descriptor, or that a pending `rename`/`remove` touches, is ordered on the directory
 *   too: a later `syncDir` then covers the creation, as the contract promises.
 * - The constructor makes the data directory itself durable: after creating it (and any missing
 *   parents) it fsyncs the directory and every parent whose entry it added, so a crash cannot
 *   lose the whole directory under files already reported durable.
 * - Descriptor exhaustion (EMFILE, ENFILE) is not a disk fault (`descriptor-pressure.ts`): an
 *   open that finds no descriptor free is retried with backoff, holding its place in the
 *   per-file order, until one is free (or the disk closes), so the caller sees a slow operation,
 *   never a failure that would stop the node. The synchronous reads that open something (`list`,
 *   `read`, `readRange`; `size` needs no descriptor) cannot wait: they retry once on a reserve
 *   descriptor the disk holds for that purpose (closed for the retry, reopened after), and throw
 *   the error when that does not help.
 *   Errors on a descriptor already held (write, fdatasync, ftruncate, rename) still fail.
 */
import * as fs from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { assert } from '../lib/assert.js';
import { FILE_DISK_OPEN_FILES_MAX } from '../constants.js';
import { isValidDiskName, type Disk, type DiskCallback } from '../storage/disk.js';
import { OpSequencer } from '../storage/op-sequencer.js';
import { DescriptorPressure, descriptorExhaustion, descriptorRetryDelayMs } from './descriptor-pressure.js';

interface OpenFile {
  readonly fd: number;
  /** Writes or truncates not yet covered by a successful fdatasync. */
  dirty: boolean;
  /** Operations currently using the descriptor. */
  users: number;
  lastUse: number;
}

const DIR_KEY = '\0dir';
/** What the reserve descriptor holds open (any path every process may open will do). */
const RESERVE_PATH = '/dev/null';

/** Options of a `FileDisk`. */
export interface FileDiskOptions {
  /** Reports descriptor exhaustion (the daemon's logs it); default: a silent one. */
  readonly pressure?: DescriptorPressure;
}

/** See the file comment. */
export class FileDisk implements Disk {
  private readonly open = new Map<string, OpenFile>();
  private readonly sequencer = new OpSequencer();
  private dirFd: number | null = null;
  private useClock = 0;
  private inFlight = 0;
  private closeWaiters: DiskCallback[] = [];
  private closed = false;
  /** Names touched by an issued, not yet completed `rename` or `remove`, with their counts. */
  private readonly pendingDirNames = new Map<string, number>();
  private readonly pressure: DescriptorPressure;
  /** A descriptor held for the synchronous reads to retry on under exhaustion (null: not held now). */
  private reserveFd: number | null = null;

  /** Opens (creating if needed, durably) the directory `dir`. */
  constructor(
    readonly dir: string,
    options: FileDiskOptions = {},
  ) {
    makeDurableDirectory(dir);
    this.pressure = options.pressure ?? new DescriptorPressure(null);
    this.reserveFd = fs.openSync(RESERVE_PATH, 'r');
  }

  list(): string[] {
    return this.reading('listing', () =>
      fs
        .readdirSync(this.dir, { withFileTypes: true })
        .filter((entry) => entry.isFile())
        .map((entry) => entry.name)
        .sort(),
    );
  }

  read(name: string): Uint8Array | null {
    return this.reading(`reading ${name} in`, () => ifExists(() => new Uint8Array(fs.readFileSync(this.path(name)))));
  }

  size(name: string): number | null {
    // stat needs no descriptor, so no reserve either
    return ifExists(() => fs.statSync(this.path(name)).size);
  }

  readRange(name: string, offset: number, length: number): Uint8Array | null {
    assert(
      Number.isSafeInteger(offset) && offset >= 0 && Number.isSafeInteger(length) && length >= 0,
      'read range must be non-negative integers',
    );
    return this.reading(`reading ${name} in`, () => ifExists(() => this.readRangeNow(name, offset, length)));
  }

  private readRangeNow(name: string, offset: number, length: number): Uint8Array {
    const fd = fs.openSync(this.path(name), 'r');
    try {
      const out = new Uint8Array(length);
      let got = 0;
      while (got < length) {
        const n = fs.readSync(fd, out, got, length - got, offset + got);
        if (n === 0) break;
        got += n;
      }
      return out.subarray(0, got);
    } finally {
      fs.closeSync(fd);
    }
  }

  /**
   * Runs the synchronous read `fn`; when it finds no descriptor free, retries it once with the
   * reserve descriptor closed (then reopens the reserve, if a descriptor is free by then).
   */
  private reading<T>(what: string, fn: () => T): T {
    if (this.reserveFd === null && !this.closed) this.reserveFd = tryOpenSync(RESERVE_PATH);
    try {
      const value = fn();
      this.pressure.relieved(`${what} ${this.dir}`);
      return value;
    } catch (error) {
      const code = descriptorExhaustion(error);
      if (code === null || this.reserveFd === null) throw error;
      this.pressure.exhausted(`${what} ${this.dir}`, code);
      fs.closeSync(this.reserveFd);
      this.reserveFd = null;
      try {
        return fn();
      } finally {
        this.reserveFd = tryOpenSync(RESERVE_PATH);
      }
    }
  }

  write(name: string, offset: number, data: Uint8Array, done: DiskCallback): void {
    assert(Number.isSafeInteger(offset) && offset >= 0, 'write offset must be a non-negative integer');
    // Ordered on the directory whenever it may create the file, so a later syncDir covers it.
    const mayCreate = !this.open.has(name) || this.pendingDirNames.has(name);
    const keys = mayCreate ? [name, DIR_KEY] : [name];
    this.withFile(keys, name, true, done, (file, finish) => {
      file.dirty = true;
      writeAll(file.fd, data, offset, finish);
    });
  }

  sync(name: string, done: DiskCallback): void {
    this.withFile([name], name, false, done, (file, finish) => {
      fs.fdatasync(file.fd, (error) => {
        if (error === null) file.dirty = false;
        finish(error);
      });
    });
  }

  truncate(name: string, size: number, done: DiskCallback): void {
    assert(Number.isSafeInteger(size) && size >= 0, 'truncate size must be a non-negative integer');
    this.withFile([name], name, false, done, (file, finish) => {
      file.dirty = true;
      fs.ftruncate(file.fd, size, finish);
    });
  }

  rename(from: string, to: string, done: DiskCallback): void {
    assert(isValidDiskName(from) && isValidDiskName(to), 'rename needs valid file names');
    this.runDirOp([from, to], done, (finish) => {
      fs.rename(this.path(from), this.path(to), (error) => {
        if (error === null && from !== to) {
          // The descriptor follows the inode: `from`'s descriptor now serves `to`.
          this.forget(to);
          const moved = this.open.get(from);
          this.open.delete(from);
          if (moved !== undefined) this.open.set(to, moved);
        }
        finish(error);
      });
    });
  }

  remove(name: string, done: DiskCallback): void {
    assert(isValidDiskName(name), 'remove needs a valid file name');
    this.runDirOp([name], done, (finish) => {
      fs.unlink(this.path(name), (error) => {
        if (error === null || error.code === 'ENOENT') {
          this.forget(name);
          finish(null);
          return;
        }
        finish(error);
      });
    });
  }

  syncDir(done: DiskCallback): void {
    this.run([DIR_KEY], done, (finish) => {
      const fsyncDir = (fd: number): void => {
        fs.fsync(fd, finish);
      };
      if (this.dirFd !== null) {
        fsyncDir(this.dirFd);
        return;
      }
      this.openRetrying(this.dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY, 'opening', (error, fd) => {
        if (error !== null) {
          finish(error);
          return;
        }
        this.dirFd = fd;
        fsyncDir(fd);
      });
    });
  }

  /**
   * Waits for every issued operation, then closes all descriptors. Unsynced data is left to the
   * kernel (the contract never promised it). The disk is unusable afterwards.
   */
  close(done: DiskCallback): void {
    this.closed = true;
    this.closeWaiters.push(done);
    this.maybeClose();
  }

  private path(name: string): string {
    assert(isValidDiskName(name), `invalid disk file name ${JSON.stringify(name)}`);
    return join(this.dir, name);
  }

  /** Runs `body` through the sequencer and reports its result to `done` after the sequencer moved on. */
  private run(
    keys: string[],
    done: DiskCallback,
    body: (finish: (error: NodeJS.ErrnoException | null) => void) => void,
  ): void {
    if (this.closed) {
      // A completion chain may still issue its next step after close; it fails, asynchronously.
      queueMicrotask(() => {
        done(Object.assign(new Error('EBADF: FileDisk is closed'), { code: 'EBADF' }));
      });
      return;
    }
    this.inFlight++;
    this.sequencer.submit(keys, (next) => {
      body((error) => {
        next();
        this.inFlight--;
        done(error);
        this.maybeClose();
      });
    });
  }

  /** `run` for a rename or remove: while it is pending, writes to `names` order on the directory. */
  private runDirOp(
    names: string[],
    done: DiskCallback,
    body: (finish: (error: NodeJS.ErrnoException | null) => void) => void,
  ): void {
    if (this.closed) {
      this.run([...names, DIR_KEY], done, body);
      return;
    }
    for (const name of names) this.pendingDirNames.set(name, (this.pendingDirNames.get(name) ?? 0) + 1);
    this.run([...names, DIR_KEY], done, (finish) => {
      body((error) => {
        for (const name of names) {
          const left = (this.pendingDirNames.get(name) ?? 0) - 1;
          if (left > 0) this.pendingDirNames.set(name, left);
          else this.pendingDirNames.delete(name);
        }
        finish(error);
      });
    });
  }

  /** Like `run`, with `name`'s descriptor opened (created when `create`) and pinned for the body. */
  private withFile(
    keys: string[],
    name: string,
    create: boolean,
    done: DiskCallback,
    body: (file: OpenFile, finish: (error: NodeJS.ErrnoException | null) => void) => void,
  ): void {
    this.run(keys, done, (finish) => {
      this.acquire(name, create, (error, file) => {
        if (error !== null || file === null) {
          finish(error);
          return;
        }
        body(file, (bodyError) => {
          file.users--;
          finish(bodyError);
        });
      });
    });
  }

  private acquire(
    name: string,
    create: boolean,
    done: (error: NodeJS.ErrnoException | null, file: OpenFile | null) => void,
  ): void {
    const cached = this.open.get(name);
    if (cached !== undefined) {
      cached.users++;
      cached.lastUse = ++this.useClock;
      done(null, cached);
      return;
    }
    const flags = fs.constants.O_RDWR | (create ? fs.constants.O_CREAT : 0);
    this.openRetrying(this.path(name), flags, `opening ${name} in`, (error, fd) => {
      if (error !== null) {
        done(error, null);
        return;
      }
      const file: OpenFile = { fd, dirty: false, users: 1, lastUse: ++this.useClock };
      this.open.set(name, file);
      this.evictClean();
      done(null, file);
    });
  }

  /**
   * `fs.open`, retried with backoff while it fails for want of a descriptor (and the disk is not
   * closed). `what` names the operation in the pressure warnings ("opening X in").
   */
  private openRetrying(
    path: string,
    flags: number,
    what: string,
    done: (error: NodeJS.ErrnoException | null, fd: number) => void,
    attempt = 0,
  ): void {
    fs.open(path, flags, 0o600, (error, fd) => {
      const code = descriptorExhaustion(error);
      if (code !== null && !this.closed) {
        this.pressure.exhausted(`${what} ${this.dir}`, code);
        setTimeout(() => {
          this.openRetrying(path, flags, what, done, attempt + 1);
        }, descriptorRetryDelayMs(attempt));
        return;
      }
      if (error === null) {
        this.pressure.relieved(`${what} ${this.dir}`);
        // A reserve given up under pressure is taken back as soon as a descriptor is to be had.
        if (this.reserveFd === null && !this.closed) this.reserveFd = tryOpenSync(RESERVE_PATH);
      }
      done(error, fd);
    });
  }

  /** Closes least recently used clean, idle descriptors beyond the limit. */
  private evictClean(): void {
    if (this.open.size <= FILE_DISK_OPEN_FILES_MAX) return;
    const idle = [...this.open.entries()]
      .filter(([, f]) => !f.dirty && f.users === 0)
      .sort((a, b) => a[1].lastUse - b[1].lastUse);
    for (const [name, file] of idle) {
      if (this.open.size <= FILE_DISK_OPEN_FILES_MAX) break;
      this.open.delete(name);
      fs.close(file.fd, () => undefined);
    }
  }

  /** Drops `name`'s descriptor after its file was unlinked or replaced. */
  private forget(name: string): void {
    const file = this.open.get(name);
    if (file === undefined) return;
    this.open.delete(name);
    fs.close(file.fd, () => undefined);
  }

  private maybeClose(): void {
    if (!this.closed || this.inFlight > 0 || this.closeWaiters.length === 0) return;
    for (const file of this.open.values()) fs.closeSync(file.fd);
    this.open.clear();
    if (this.dirFd !== null) fs.closeSync(this.dirFd);
    this.dirFd = null;
    if (this.reserveFd !== null) fs.closeSync(this.reserveFd);
    this.reserveFd = null;
    const waiters = this.closeWaiters;
    this.closeWaiters = [];
    for (const done of waiters)
      queueMicrotask(() => {
        done(null);
      });
  }
}

/**
 * Creates `dir` (and missing parents) with mode 0700 if needed, then fsyncs `dir` and every
 * directory whose entry this call added (the parent of each directory it created), so the data
 * directory cannot vanish in a crash after files in it were reported durable. When `dir` already
 * existed its parent is fsynced too (an earlier process may have created `dir` and crashed before
 * making it durable), skipping a parent this process may not open (EACCES/EPERM): that
 * directory is someone else's to keep durable. Synchronous: it runs once, at open, before any
 * file is used. Returns the directories it fsynced, deepest first. Throws the real cause when a
 * directory cannot be created (`createDirectories`).
 */
export function makeDurableDirectory(dir: string): string[] {
  const target = resolve(dir);
  const firstCreated = createDirectories(target);
  const synced: string[] = [];
  if (firstCreated === undefined) {
    fsyncDirectory(target);
    synced.push(target);
    const parent = dirname(target);
    if (parent !== target && fsyncDirectory(parent, true)) synced.push(parent);
    return synced;
  }
  const stop = dirname(resolve(firstCreated));
  for (let at = target; ; at = dirname(at)) {
    fsyncDirectory(at);
    synced.push(at);
    if (at === stop || dirname(at) === at) break;
  }
  return synced;
}

/**
 * Creates the absolute path `target` and its missing parents, one level at a time, with mode
 * 0700; returns the first (outermost) directory it created, or undefined when `target` existed.
 * Unlike `mkdirSync(target, { recursive: true })`, which answers ENOENT when a missing directory
 * cannot be created on a read-only mount (it stats the directory after EROFS or EACCES and
 * reports that), a failure is the real one (EROFS, EACCES, ENOSPC, ENOTDIR) and names the
 * directory that could not be created.
 */
function createDirectories(target: string): string | undefined {
  const missing: string[] = [];
  for (let at = target; ; at = dirname(at)) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(at);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    }
    if (st !== undefined) {
      if (!st.isDirectory())
        throw Object.assign(new Error(`ENOTDIR: ${at} exists and is not a directory`), { code: 'ENOTDIR' });
      break;
    }
    missing.push(at);
    if (dirname(at) === at) break;
  }
  missing.reverse();
  for (const at of missing) {
    try {
      fs.mkdirSync(at, { mode: 0o700 });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error; // created meanwhile: fine
    }
  }
  return missing[0];
}

/** Fsyncs the directory `path`; returns false when `skipDenied` and it may not be opened. */
function fsyncDirectory(path: string, skipDenied = false): boolean {
  let fd: number;
  try {
    fd = fs.openSync(path, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (skipDenied && (code === 'EACCES' || code === 'EPERM')) return false;
    throw error;
  }
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

function writeAll(
  fd: number,
  data: Uint8Array,
  offset: number,
  done: (error: NodeJS.ErrnoException | null) => void,
): void {
  let written = 0;
  // Always at least one fs.write, so even an empty write completes asynchronously.
  const more = (): void => {
    fs.write(fd, data, written, data.length - written, offset + written, (error, n) => {
      if (error !== null) {
        done(error);
        return;
      }
      written += n;
      if (written >= data.length) done(null);
      else if (n === 0)
        done(Object.assign(new Error(`EIO: write made no progress at byte ${offset + written}`), { code: 'EIO' }));
      else more();
    });
  };
  more();
}

/** `fs.openSync(path, 'r')`, or null when it fails. */
function tryOpenSync(path: string): number | null {
  try {
    return fs.openSync(path, 'r');
  } catch {
    return null; // no descriptor free yet: the next read tries again
  }
}

function ifExists<T>(fn: () => T): T | null {
  try {
    return fn();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}
