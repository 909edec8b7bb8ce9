/**
 * The real `BlockStore`: one directory, one file per fragment, positional reads and writes on
 * node:fs callbacks (the libuv thread pool, so the event loop never blocks), `fdatasync` on
 * flush.
 *
 * - libuv may complete two requests on one file out of order, so every operation goes through an
 *   `OpSequencer` keyed by fragment, for the per-fragment issue order the contract promises.
 * - `create` writes `.<name>.creating`, sizes it with `ftruncate` (a sparse file of zeros),
 *   fdatasyncs it, renames it to `<name>` and fsyncs the directory: a crash leaves the fragment
 *   absent or whole. Stale `.creating` files from a crash are removed at open.
 * - A fragment's descriptor, once opened, stays open until `remove` or `close`: a descriptor
 *   with writes not yet flushed must never be closed, because since Linux 4.13 a writeback error
 *   is reported only to descriptors open when it happened (the "fsyncgate" lesson).
 *   `BLOCK_FRAGMENTS_MAX` bounds the descriptors.
 * - Reads and writes loop until every byte moved (fs may move fewer than asked).
 * - Completions are never synchronous: a request that fails validation completes on the next
 *   turn of the event loop.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { assert } from '../lib/assert.js';
import { BLOCK_IO_BYTES_MAX, BLOCK_OPS_PENDING_MAX } from '../constants.js';
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
import { makeDurableDirectory } from './file-disk.js';

const CREATING_SUFFIX = '.creating';

interface FragmentFile {
  readonly size: number;
  fd: number | null;
}

type Finish = (error: BlockStoreError | null) => void;

/** See the file comment. */
export class FileBlockStore implements BlockStore {
  private readonly fragments = new Map<string, FragmentFile>();
  private readonly sequencer = new OpSequencer(BLOCK_OPS_PENDING_MAX);
  private inFlight = 0;
  private closed = false;
  private closeWaiters: (() => void)[] = [];

  /** Opens (creating if needed, durably) the directory `dir` and lists its fragments. */
  constructor(readonly dir: string) {
    makeDurableDirectory(dir);
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isFile()) continue;
      if (entry.name.startsWith('.') && entry.name.endsWith(CREATING_SUFFIX)) {
        fs.unlinkSync(join(dir, entry.name));
        continue;
      }
      if (!isValidFragmentName(entry.name)) continue;
      this.fragments.set(entry.name, { size: fs.statSync(join(dir, entry.name)).size, fd: null });
    }
  }

  list(): string[] {
    return [...this.fragments.keys()].sort();
  }

  size(name: string): number | null {
    return this.fragments.get(name)?.size ?? null;
  }

  create(name: string, sizeBytes: number, done: BlockCallback): void {
    assert(isValidFragmentName(name), `invalid fragment name ${JSON.stringify(name)}`);
    this.run(name, done, (finish) => {
      if (this.fragments.has(name)) {
        later(finish, blockExists(name));
        return;
      }
      const invalid = checkBlockCreate(name, sizeBytes, this.fragments.size);
      if (invalid !== null) {
        later(finish, invalid);
        return;
      }
      this.createFile(name, sizeBytes, finish);
    });
  }

  read(name: string, offset: number, length: number, done: BlockReadCallback): void {
    const out = new Uint8Array(Number.isSafeInteger(length) && length > 0 && length <= BLOCK_IO_BYTES_MAX ? length : 0);
    this.withFragment(
      'read',
      name,
      offset,
      length,
      (error) => {
        done(error, error === null ? out : null);
      },
      (fd, finish) => {
        readAll(fd, out, offset, (error) => {
          finish(error === null ? null : blockIoError('read', name, error));
        });
      },
    );
  }

  write(name: string, offset: number, data: Uint8Array, done: BlockCallback): void {
    this.withFragment('write', name, offset, data.length, done, (fd, finish) => {
      writeAll(fd, data, offset, (error) => {
        finish(error === null ? null : blockIoError('write', name, error));
      });
    });
  }

  /** Writes zeros (Node has no `fallocate` hole punching); bounded like a write. */
  trim(name: string, offset: number, length: number, done: BlockCallback): void {
    this.withFragment('trim', name, offset, length, done, (fd, finish) => {
      writeAll(fd, new Uint8Array(length), offset, (error) => {
        finish(error === null ? null : blockIoError('trim', name, error));
      });
    });
  }

  flush(name: string, done: BlockCallback): void {
    this.withFragment('flush', name, 0, 0, done, (fd, finish) => {
      fs.fdatasync(fd, (error) => {
        finish(error === null ? null : blockIoError('flush', name, error));
      });
    });
  }

  remove(name: string, done: BlockCallback): void {
    assert(isValidFragmentName(name), `invalid fragment name ${JSON.stringify(name)}`);
    this.run(name, done, (finish) => {
      const fragment = this.fragments.get(name);
      if (fragment === undefined) {
        later(finish, null);
        return;
      }
      const unlink = (): void => {
        fs.unlink(this.path(name), (error) => {
          if (error !== null && error.code !== 'ENOENT') {
            finish(blockIoError('remove', name, error));
            return;
          }
          this.fragments.delete(name);
          this.syncDir('remove', name, finish);
        });
      };
      if (fragment.fd === null) {
        unlink();
        return;
      }
      const fd = fragment.fd;
      fragment.fd = null;
      fs.close(fd, () => {
        unlink();
      });
    });
  }

  /** Waits for every issued operation, then closes all descriptors. The store is unusable afterwards. */
  close(done: () => void): void {
    this.closed = true;
    this.closeWaiters.push(done);
    this.maybeClose();
  }

  private path(name: string): string {
    return join(this.dir, name);
  }

  private createFile(name: string, sizeBytes: number, finish: Finish): void {
    const temp = this.path(`.${name}${CREATING_SUFFIX}`);
    const fail = (error: NodeJS.ErrnoException, fd: number | null): void => {
      const cleanUp = (): void => {
        fs.unlink(temp, () => {
          finish(blockIoError('create', name, error));
        });
      };
      if (fd === null) cleanUp();
      else fs.close(fd, cleanUp);
    };
    fs.open(temp, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o600, (openError, fd) => {
      if (openError !== null) {
        fail(openError, null);
        return;
      }
      fs.ftruncate(fd, sizeBytes, (truncateError) => {
        if (truncateError !== null) {
          fail(truncateError, fd);
          return;
        }
        fs.fdatasync(fd, (syncError) => {
          if (syncError !== null) {
            fail(syncError, fd);
            return;
          }
          fs.rename(temp, this.path(name), (renameError) => {
            if (renameError !== null) {
              fail(renameError, fd);
              return;
            }
            this.fragments.set(name, { size: sizeBytes, fd });
            this.syncDir('create', name, finish);
          });
        });
      });
    });
  }

  private syncDir(op: string, name: string, finish: Finish): void {
    fs.open(this.dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY, (openError, fd) => {
      if (openError !== null) {
        finish(blockIoError(op, name, openError));
        return;
      }
      fs.fsync(fd, (syncError) => {
        fs.close(fd, () => {
          finish(syncError === null ? null : blockIoError(op, name, syncError));
        });
      });
    });
  }

  /** Runs `body` on `name`'s descriptor once the range checks pass, in per-fragment order. */
  private withFragment(
    op: string,
    name: string,
    offset: number,
    length: number,
    done: BlockCallback,
    body: (fd: number, finish: Finish) => void,
  ): void {
    this.run(name, done, (finish) => {
      const fragment = this.fragments.get(name);
      if (fragment === undefined) {
        later(finish, blockNotFound(op, name));
        return;
      }
      const invalid = checkBlockRange(name, fragment.size, offset, length);
      if (invalid !== null) {
        later(finish, invalid);
        return;
      }
      if (length === 0 && op !== 'flush') {
        later(finish, null); // nothing to move; still never synchronous
        return;
      }
      if (fragment.fd !== null) {
        body(fragment.fd, finish);
        return;
      }
      fs.open(this.path(name), fs.constants.O_RDWR, (error, fd) => {
        if (error !== null) {
          finish(blockIoError(op, name, error));
          return;
        }
        fragment.fd = fd;
        body(fd, finish);
      });
    });
  }

  private run(name: string, done: BlockCallback, body: (finish: Finish) => void): void {
    if (this.closed) {
      setImmediate(() => {
        done(blockIoError('use', name, new Error('EBADF: the block store is closed')));
      });
      return;
    }
    this.inFlight++;
    this.sequencer.submit([name], (next) => {
      body((error) => {
        next();
        this.inFlight--;
        done(error);
        this.maybeClose();
      });
    });
  }

  private maybeClose(): void {
    if (!this.closed || this.inFlight > 0 || this.closeWaiters.length === 0) return;
    for (const fragment of this.fragments.values()) {
      if (fragment.fd !== null) fs.closeSync(fragment.fd);
      fragment.fd = null;
    }
    const waiters = this.closeWaiters;
    this.closeWaiters = [];
    for (const done of waiters) setImmediate(done);
  }
}

/** Completes `finish` on a later turn of the event loop (the contract forbids synchronous completion). */
function later(finish: Finish, error: BlockStoreError | null): void {
  setImmediate(() => {
    finish(error);
  });
}

function readAll(
  fd: number,
  out: Uint8Array,
  offset: number,
  done: (error: NodeJS.ErrnoException | null) => void,
): void {
  let got = 0;
  const more = (): void => {
    if (got >= out.length) {
      done(null);
      return;
    }
    fs.read(fd, out, got, out.length - got, offset + got, (error, n) => {
      if (error !== null) {
        done(error);
        return;
      }
      if (n === 0) {
        done(null); // past the end of a short file: the rest reads as zeros
        return;
      }
      got += n;
      more();
    });
  };
  more();
}

function writeAll(
  fd: number,
  data: Uint8Array,
  offset: number,
  done: (error: NodeJS.ErrnoException | null) => void,
): void {
  let written = 0;
  const more = (): void => {
    if (written >= data.length) {
      done(null);
      return;
    }
    fs.write(fd, data, written, data.length - written, offset + written, (error, n) => {
      if (error !== null) {
        done(error);
        return;
      }
      if (n === 0) {
        done(Object.assign(new Error(`EIO: write made no progress at byte ${offset + written}`), { code: 'EIO' }));
        return;
      }
      written += n;
      more();
    });
  };
  more();
}
