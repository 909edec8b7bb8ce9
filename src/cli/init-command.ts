/**
 * `cohort init`: writes node configs and a cluster key.
 *
 *     cohort init [--config FILE] [--cluster NAME] [--node-id N] [--name NAME] [--address HOST:PORT]
 *                 [--peer ID=NAME@HOST:PORT ...] [--data-dir DIR] [--key-file FILE] [--metrics-port P] [--force] [--json]
 *     cohort init --nodes N --dir DIR [--cluster NAME] [--host HOST] [--base-port P] [--force] [--json]
 *
 * The first form writes one node's config (by default a one-node cluster; `--peer` adds the
 * other nodes) and a key file beside it unless the key file already exists and is to be shared.
 * The second writes a whole local cluster: `DIR/node-1.yaml` … `DIR/node-N.yaml`, one shared
 * `DIR/cluster.key`, node i listening on base-port + i and serving metrics on base-port + 100 + i.
 *
 * Safety: every file written is validated first (the generated config goes through the same
 * `parseConfig` as `cohort start`), no existing file is overwritten without `--force` (the error
 * names each such file, and nothing at all is written), the key file gets mode 0600, and with
 * `--force` each file is replaced atomically (write, fsync, rename).
 *
 * Exit codes: 0 written, 1 failure (a file exists, cannot write), 2 usage error.
 */
import { constants as fsConstants } from 'node:fs';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { InvalidArgumentError, type Command } from '@commander-js/extra-typings';
import { stringify } from 'yaml';
import { CLUSTER_NODES_MAX } from '../constants.js';
import {
  generateClusterKey,
  readClusterKeyFile,
  writeClusterKeyFile,
  ClusterKeyError,
} from '../platform/cluster-key.js';
import { parseAddress, parseConfig } from '../node/config.js';
import { intOption } from './options.js';

const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
/** Mode of written config files: no secrets inside, but only the owner edits them. */
const CONFIG_FILE_MODE = 0o644;
const DEFAULT_BASE_PORT = 7400;
const METRICS_PORT_OFFSET = 100;
const DEFAULT_CLUSTER = 'cohort';

/** A peer given with `--peer ID=NAME@HOST:PORT`. */
export interface PeerSpec {
  readonly id: number;
  readonly name: string;
  readonly address: string;
}

/** Options of `cohort init` after parsing. */
export interface InitOptions {
  readonly config?: string;
  readonly cluster?: string;
  readonly nodeId?: number;
  readonly name?: string;
  readonly address?: string;
  readonly peer?: readonly PeerSpec[];
  readonly dataDir?: string;
  readonly keyFile?: string;
  readonly metricsPort?: number;
  readonly nodes?: number;
  readonly dir?: string;
  readonly host?: string;
  readonly basePort?: number;
  readonly force?: boolean;
  readonly json?: boolean;
}

/** Where output goes (tests capture it). */
export interface InitIo {
  out(text: string): void;
  err(text: string): void;
}

/** One file to write. */
interface PlannedFile {
  readonly path: string;
  readonly kind: 'config' | 'key';
  /** Config text; absent for the key. */
  readonly text?: string;
}

class UsageError extends Error {}
class InitFailure extends Error {}

/** Parses `ID=NAME@HOST:PORT`. */
export function parsePeer(value: string): PeerSpec {
  const m = /^(\d{1,5})=([^@]+)@(.+)$/.exec(value.trim());
  if (m === null)
    throw new InvalidArgumentError(`--peer must look like 2=node-2@10.0.0.2:7400, got ${JSON.stringify(value)}`);
  const address = m[3] ?? '';
  const parsed = parseAddress(address);
  if (typeof parsed === 'string') throw new InvalidArgumentError(`--peer ${value}: ${parsed}`);
  return { id: Number(m[1]), name: m[2] ?? '', address };
}

function collectPeer(value: string, previous: readonly PeerSpec[] | undefined): PeerSpec[] {
  return [...(previous ?? []), parsePeer(value)];
}

/** Registers `cohort init` on `program`. */
export function registerInit(program: Command, setCode: (code: number) => void): void {
  program
    .command('init')
    .description('write a node config and a cluster key (or a whole local cluster with --nodes N --dir DIR)')
    .option('--config <file>', 'config file to write (single node; default cohort.yaml)')
    .option('--cluster <name>', `cluster name (default ${DEFAULT_CLUSTER})`)
    .option('--node-id <n>', "this node's id (default 1)", intOption('--node-id', 1, 65_535))
    .option('--name <name>', "this node's name (default node-ID)")
    .option(
      '--address <host:port>',
      `address peers use to reach this node (default 127.0.0.1:${DEFAULT_BASE_PORT + 1})`,
    )
    .option('--peer <id=name@host:port>', 'another node of the cluster (repeat for each)', collectPeer)
    .option('--data-dir <dir>', 'data directory (default data-NAME beside the config)')
    .option('--key-file <file>', 'cluster key file (default cluster.key beside the config; an existing one is reused)')
    .option('--metrics-port <port>', 'serve Prometheus metrics on this port', intOption('--metrics-port', 1, 65_535))
    .option('--nodes <n>', 'write a local cluster of N nodes (with --dir)', intOption('--nodes', 1, CLUSTER_NODES_MAX))
    .option('--dir <dir>', 'directory for a local cluster (with --nodes)')
    .option('--host <host>', 'loopback host of a local cluster', '127.0.0.1')
    .option(
      '--base-port <port>',
      `node i of a local cluster listens on base-port + i (default ${DEFAULT_BASE_PORT})`,
      intOption('--base-port', 1024, 65_000),
    )
    .option('--force', 'overwrite existing files')
    .option('--json', 'print what was written as one JSON object')
    .action(async (opts) => {
      const io: InitIo = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };
      setCode(await runInit(stripUndefined(opts), io));
    });
}

function stripUndefined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

/** Runs `cohort init` with parsed options; resolves to the exit code. Never throws. */
export async function runInit(opts: InitOptions, io: InitIo): Promise<number> {
  try {
    const { files, keyPath, reuseKey, next } = await plan(opts);
    await refuseExisting(files, opts.force === true);
    await writeAll(files, opts.force === true);
    report(io, opts, files, keyPath, reuseKey, next);
    return EXIT_OK;
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`cohort init: ${e.message}\n`);
      return EXIT_USAGE;
    }
    if (e instanceof InitFailure || e instanceof ClusterKeyError) {
      io.err(`cohort init: ${e.message}\n`);
      return EXIT_FAILURE;
    }
    io.err(`cohort init: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT_FAILURE;
  }
}

interface Plan {
  readonly files: PlannedFile[];
  readonly keyPath: string;
  /** The single-node form found a valid key file and shares it instead of writing one. */
  readonly reuseKey: boolean;
  readonly next: string[];
}

async function plan(opts: InitOptions): Promise<Plan> {
  const cluster = opts.nodes !== undefined || opts.dir !== undefined;
  if (cluster) {
    const single = (
      ['config', 'nodeId', 'name', 'address', 'peer', 'dataDir', 'keyFile', 'metricsPort'] as const
    ).filter((k) => opts[k] !== undefined);
    if (single.length > 0)
      throw new UsageError(
        `--${single.map(kebab).join(', --')} appl${single.length === 1 ? 'ies' : 'y'} to a single node; a local cluster (--nodes N --dir DIR) is configured by --cluster, --host and --base-port`,
      );
    if (opts.nodes === undefined || opts.dir === undefined)
      throw new UsageError('a local cluster needs both --nodes N and --dir DIR');
    return planCluster(opts.nodes, resolve(opts.dir), opts);
  }
  return planSingle(opts);
}

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function configText(value: Record<string, unknown>, path: string): string {
  const header = `# cohort node config, written by \`cohort init\`. Every key is documented in docs/config.md.\n# Paths are relative to this file's directory. Start the node with: cohort start --config ${path}\n`;
  const text = header + stringify(value, { lineWidth: 0 });
  // Never write what `cohort start` would refuse.
  const check = parseConfig(text, 'yaml', path, dirname(path));
  if (!check.ok) throw new UsageError(check.error.message);
  return text;
}

function planCluster(count: number, dir: string, opts: InitOptions): Plan {
  const host = opts.host ?? '127.0.0.1';
  const basePort = opts.basePort ?? DEFAULT_BASE_PORT;
  if (basePort + METRICS_PORT_OFFSET + count > 65_535)
    throw new UsageError(
      `--base-port ${basePort} leaves no room for ${count} nodes and their metrics ports; use a lower one`,
    );
  const hostPart = host.includes(':') ? `[${host}]` : host;
  const nodes = Array.from({ length: count }, (_, i) => ({
    id: i + 1,
    name: `node-${i + 1}`,
    address: `${hostPart}:${basePort + i + 1}`,
  }));
  const files: PlannedFile[] = [];
  const next: string[] = [];
  for (const n of nodes) {
    const path = join(dir, `${n.name}.yaml`);
    const value = {
      cluster: { name: opts.cluster ?? DEFAULT_CLUSTER },
      node: { id: n.id, name: n.name },
      nodes,
      keyFile: 'cluster.key',
      dataDir: n.name,
      metrics: { host, port: basePort + METRICS_PORT_OFFSET + n.id },
    };
    files.push({ path, kind: 'config', text: configText(value, path) });
    next.push(`cohort start --config ${path}`);
  }
  const keyPath = join(dir, 'cluster.key');
  files.push({ path: keyPath, kind: 'key' });
  return { files, keyPath, reuseKey: false, next };
}

async function planSingle(opts: InitOptions): Promise<Plan> {
  const path = resolve(opts.config ?? 'cohort.yaml');
  const id = opts.nodeId ?? 1;
  const name = opts.name ?? `node-${id}`;
  const address = opts.address ?? `127.0.0.1:${DEFAULT_BASE_PORT + 1}`;
  if (typeof parseAddress(address) === 'string')
    throw new UsageError(`--address ${JSON.stringify(address)} is not host:port`);
  const nodes = [{ id, name, address }, ...(opts.peer ?? [])].sort((a, b) => a.id - b.id);
  const keyFile = opts.keyFile ?? 'cluster.key';
  const value: Record<string, unknown> = {
    cluster: { name: opts.cluster ?? DEFAULT_CLUSTER },
    node: { id, name },
    nodes,
    keyFile,
    dataDir: opts.dataDir ?? `data-${name}`,
  };
  if (opts.metricsPort !== undefined) value['metrics'] = { port: opts.metricsPort };
  const files: PlannedFile[] = [{ path, kind: 'config', text: configText(value, path) }];
  const keyPath = resolve(dirname(path), keyFile);
  // Joining an existing cluster: a valid key already in place is shared, not replaced (a new
  // key would lock this node out). --force still generates a fresh one.
  const reuseKey = opts.force !== true && (await validKeyAt(keyPath));
  if (!reuseKey) files.push({ path: keyPath, kind: 'key' });
  return { files, keyPath, reuseKey, next: [`cohort start --config ${path}`] };
}

async function validKeyAt(path: string): Promise<boolean> {
  try {
    await readClusterKeyFile(path);
    return true;
  } catch (e) {
    if (e instanceof ClusterKeyError && e.code === 'KEY_FILE_MISSING') return false;
    if (e instanceof ClusterKeyError)
      throw new InitFailure(`${e.message}; fix it, or pass --force to replace it with a new key`);
    throw e;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ENOENT') return false;
    throw new InitFailure(`cannot check ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Refuses before writing anything when any target exists and `force` is off. */
async function refuseExisting(files: readonly PlannedFile[], force: boolean): Promise<void> {
  if (force) return;
  const existing: string[] = [];
  for (const f of files) if (await exists(f.path)) existing.push(f.path);
  if (existing.length === 0) return;
  const which =
    existing.length === 1 ? `${existing[0] ?? ''} already exists` : `these files already exist: ${existing.join(', ')}`;
  throw new InitFailure(
    `${which}; refusing to overwrite. Use --force to replace ${existing.length === 1 ? 'it' : 'them'} (a replaced cluster key must then be copied to every node)`,
  );
}

async function writeAll(files: readonly PlannedFile[], force: boolean): Promise<void> {
  for (const f of files) {
    await mkdir(dirname(f.path), { recursive: true });
    if (f.kind === 'key') await writeClusterKeyFile(f.path, generateClusterKey(), { force });
    else await writeTextFile(f.path, f.text ?? '', force);
  }
}

/** Writes `text` durably; without `force` the file must not exist, with it the old file is replaced atomically. */
async function writeTextFile(path: string, text: string, force: boolean): Promise<void> {
  const target = force ? join(dirname(path), `.${basename(path)}.tmp-${process.pid}`) : path;
  let handle;
  try {
    handle = await open(target, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, CONFIG_FILE_MODE);
  } catch (e) {
    if ((e as { code?: unknown }).code === 'EEXIST')
      throw new InitFailure(`${path} already exists; refusing to overwrite it. Use --force to replace it`);
    throw new InitFailure(`cannot create ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } catch (e) {
    throw new InitFailure(`cannot write ${path}: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    await handle.close();
  }
  if (target !== path) {
    try {
      await rename(target, path);
    } catch (e) {
      await unlink(target).catch(() => undefined);
      throw new InitFailure(`cannot replace ${path}: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
}

function report(
  io: InitIo,
  opts: InitOptions,
  files: readonly PlannedFile[],
  keyPath: string,
  reuseKey: boolean,
  next: readonly string[],
): void {
  const configs = files.filter((f) => f.kind === 'config').map((f) => f.path);
  if (opts.json === true) {
    io.out(`${JSON.stringify({ configs, keyFile: keyPath, keyWritten: !reuseKey, next })}\n`);
    return;
  }
  const cwd = process.cwd();
  const shown = (p: string): string => {
    const r = relative(cwd, p);
    return r.startsWith('..') || r === '' ? p : r;
  };
  for (const c of configs) io.out(`wrote config ${shown(c)}\n`);
  io.out(
    reuseKey
      ? `using the existing cluster key ${shown(keyPath)}\n`
      : `wrote cluster key ${shown(keyPath)} (mode 0600: keep it secret; every node needs the same key)\n`,
  );
  io.out(
    next.length === 1
      ? `next: ${next[0] ?? ''}\n`
      : `next, one per node (each in its own terminal or as a service):\n${next.map((n) => `  ${n}`).join('\n')}\n`,
  );
}
