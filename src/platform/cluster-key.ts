/**
 * The cluster key: 32 random bytes shared by every node, the root of peer authentication and
 * encryption. `cohort init` generates it; every node reads it from a file only its owner can
 * read.
 *
 * File format: one line, `cohort-cluster-key-v1:` followed by 64 lowercase hex digits, and a
 * newline. Text so that it survives copy and paste between machines; versioned so a later
 * format can be told apart; and a prefix so that pointing at the wrong file gives a clear error.
 */
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { inspect } from 'node:util';
import { CohortError } from '../lib/errors.js';

/** Bytes in a cluster key. */
export const CLUSTER_KEY_BYTES = 32;
/** The prefix of a key file's single line. */
export const CLUSTER_KEY_FILE_PREFIX = 'cohort-cluster-key-v1:';
/** Largest key file read; anything bigger is not a key file. */
const KEY_FILE_BYTES_MAX = 1024;

/** Raised for any problem with a key file; `code` says which (see each function). */
export class ClusterKeyError extends CohortError {
  override readonly name = 'ClusterKeyError';
}

/**
 * A cluster key. The bytes are reachable only through `bytes()`, and the key prints as
 * `ClusterKey(<redacted>)` in logs, `JSON.stringify` and `util.inspect`, so it is not leaked by
 * a stray log line.
 */
export class ClusterKey {
  readonly #bytes: Uint8Array;

  /** Wraps a copy of `bytes`, which must be exactly `CLUSTER_KEY_BYTES` long. */
  constructor(bytes: Uint8Array) {
    if (bytes.length !== CLUSTER_KEY_BYTES) {
      throw new ClusterKeyError('KEY_INVALID', `a cluster key is ${CLUSTER_KEY_BYTES} bytes, got ${bytes.length}`);
    }
    this.#bytes = Uint8Array.from(bytes);
  }

  /** The key material. Callers must not log or persist it. */
  bytes(): Uint8Array {
    return this.#bytes;
  }

  toString(): string {
    return 'ClusterKey(<redacted>)';
  }

  toJSON(): string {
    return this.toString();
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/** A fresh key from the operating system's CSPRNG. */
export function generateClusterKey(): ClusterKey {
  return new ClusterKey(randomBytes(CLUSTER_KEY_BYTES));
}

/** The file text for `key`. */
export function formatClusterKey(key: ClusterKey): string {
  return `${CLUSTER_KEY_FILE_PREFIX}${Buffer.from(key.bytes()).toString('hex')}\n`;
}

/**
 * Parses key file text; `source` names the file in errors. Throws `ClusterKeyError`
 * `KEY_FILE_FORMAT` when the text is not exactly one key line.
 */
export function parseClusterKey(text: string, source: string): ClusterKey {
  const line = text.trim();
  if (!line.startsWith(CLUSTER_KEY_FILE_PREFIX)) {
    throw new ClusterKeyError(
      'KEY_FILE_FORMAT',
      `${source} is not a cohort cluster key file (it must start with "${CLUSTER_KEY_FILE_PREFIX}"); create one with \`cohort init\``,
    );
  }
  const hex = line.slice(CLUSTER_KEY_FILE_PREFIX.length);
  if (!/^[0-9a-fA-F]*$/.test(hex) || hex.length !== CLUSTER_KEY_BYTES * 2) {
    throw new ClusterKeyError(
      'KEY_FILE_FORMAT',
      `${source} holds ${hex.length} characters after the prefix; a key is exactly ${CLUSTER_KEY_BYTES * 2} hex digits. The file is damaged or truncated: copy it again from another node`,
    );
  }
  return new ClusterKey(Buffer.from(hex, 'hex'));
}

/** Options of `writeClusterKeyFile`. */
export interface WriteKeyOptions {
  /** Replace an existing file. Without it, an existing file is an error. */
  readonly force?: boolean;
}

/**
 * Writes `key` to `path` with mode 0600, durably (write, fsync, and with `force` an atomic
 * rename over the old file). Errors (`ClusterKeyError`): `KEY_FILE_EXISTS` when the file exists
 * and `force` is not set; `KEY_FILE_WRITE` for any I/O failure, with the system's reason.
 */
export async function writeClusterKeyFile(path: string, key: ClusterKey, options: WriteKeyOptions = {}): Promise<void> {
  const text = formatClusterKey(key);
  if (options.force !== true) {
    await writeNew(path, text, path);
    return;
  }
  // Write a temporary file beside the target and rename it over: a crash leaves either the old
  // key or the new one, never a half-written file.
  const temp = join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${Date.now()}`);
  try {
    await writeNew(temp, text, path);
    await rename(temp, path);
  } catch (error) {
    await unlink(temp).catch(() => undefined);
    if (error instanceof ClusterKeyError) throw error;
    throw new ClusterKeyError('KEY_FILE_WRITE', `cannot write cluster key file ${path}: ${systemReason(error)}`, {
      cause: error,
    });
  }
  await syncDirectory(dirname(path));
}

/** Creates `file` exclusively with mode 0600, writes `text` and fsyncs; `shown` names it in errors. */
async function writeNew(file: string, text: string, shown: string): Promise<void> {
  let handle;
  try {
    // O_EXCL: never follow or reuse an existing file (or a symlink planted at the path).
    handle = await open(file, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
  } catch (error) {
    if (isErrno(error, 'EEXIST')) {
      throw new ClusterKeyError(
        'KEY_FILE_EXISTS',
        `cluster key file ${shown} already exists; refusing to overwrite it. Use --force to replace it (then copy the new key to every node)`,
        {
          cause: error,
        },
      );
    }
    throw new ClusterKeyError('KEY_FILE_WRITE', `cannot create cluster key file ${shown}: ${systemReason(error)}`, {
      cause: error,
    });
  }
  try {
    await handle.chmod(0o600); // the umask may only have removed bits, but be exact
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } catch (error) {
    throw new ClusterKeyError('KEY_FILE_WRITE', `cannot write cluster key file ${shown}: ${systemReason(error)}`, {
      cause: error,
    });
  } finally {
    await handle.close();
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, fsConstants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Reads and validates the key file at `path`. Errors (`ClusterKeyError`): `KEY_FILE_MISSING`;
 * `KEY_FILE_PERMISSIONS` when group or others may read or write it (with the `chmod 600` fix);
 * `KEY_FILE_FORMAT` when it is not a regular file, too big, or not one key line;
 * `KEY_FILE_READ` for other I/O failures.
 */
export async function readClusterKeyFile(path: string): Promise<ClusterKey> {
  let handle;
  try {
    handle = await open(path, fsConstants.O_RDONLY);
  } catch (error) {
    if (isErrno(error, 'ENOENT')) {
      throw new ClusterKeyError(
        'KEY_FILE_MISSING',
        `cluster key file ${path} does not exist; create it with \`cohort init\` or copy it from another node`,
        { cause: error },
      );
    }
    throw new ClusterKeyError('KEY_FILE_READ', `cannot read cluster key file ${path}: ${systemReason(error)}`, {
      cause: error,
    });
  }
  try {
    // fstat the open file (not the path) so the checks apply to the bytes we read.
    const info = await handle.stat();
    checkKeyFileStat(path, info.isFile(), info.mode, info.size);
    const text = await handle.readFile('utf8');
    return parseClusterKey(text, `cluster key file ${path}`);
  } catch (error) {
    if (error instanceof ClusterKeyError) throw error;
    throw new ClusterKeyError('KEY_FILE_READ', `cannot read cluster key file ${path}: ${systemReason(error)}`, {
      cause: error,
    });
  } finally {
    await handle.close();
  }
}

function checkKeyFileStat(path: string, isFile: boolean, mode: number, size: number): void {
  if (!isFile) throw new ClusterKeyError('KEY_FILE_FORMAT', `cluster key path ${path} is not a regular file`);
  if ((mode & 0o077) !== 0) {
    const shown = (mode & 0o777).toString(8).padStart(4, '0');
    throw new ClusterKeyError(
      'KEY_FILE_PERMISSIONS',
      `cluster key file ${path} has mode ${shown}, so other users can read or change it; run \`chmod 600 ${path}\` (and replace the key if it may have leaked)`,
    );
  }
  if (size > KEY_FILE_BYTES_MAX)
    throw new ClusterKeyError(
      'KEY_FILE_FORMAT',
      `cluster key file ${path} is ${size} bytes; a key file is one short line`,
    );
}

function isErrno(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}

function systemReason(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
