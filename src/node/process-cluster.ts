/**
 * A local cluster of real `cohort start` processes on loopback, for the real-process tests
 * (tier e) and the failover benchmark: `cohort init --nodes N` configs in a temporary directory,
 * one child process per node, helpers to ask a node for its status, run a CLI command, send
 * signals (kill -9, SIGSTOP, SIGCONT) and wait for a condition within a bound.
 *
 * Ownership: the cluster owns its children and its directory. `close` always leaves nothing
 * behind: it resumes stopped children, sends SIGTERM, kills whatever did not exit within
 * `PROCESS_STOP_TIMEOUT_MS`, and removes the directory. Bounded: at most `PROCESS_CLUSTER_NODES_MAX`
 * nodes, every wait has a deadline.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { TEST_PORT_BLOCKS, findFreePortBlock } from '../platform/ports.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { assert } from '../lib/assert.js';
import { CohortError } from '../lib/errors.js';
import { connectLocal, type ApiData } from '../client/index.js';
import { runInit } from '../cli/init-command.js';
import { LOCK_FILE } from './daemon-start.js';

/** The compiled CLI entry (dist/src/node -> bin/cohort.js). */
const BIN = fileURLToPath(new URL('../../../bin/cohort.js', import.meta.url));
/** Most nodes one local cluster runs (each is a process; the machine may be small). */
export const PROCESS_CLUSTER_NODES_MAX = 9;
/** Longest wait for a child to exit after SIGTERM before it is killed. */
export const PROCESS_STOP_TIMEOUT_MS = 8000;
/** Deadline of one status probe. */
const PROBE_TIMEOUT_MS = 1000;
/**
 * Attempts to find a free block of loopback ports (many: on a machine running other loopback
 * tests, tens of thousands of TIME-WAIT connections can make a third of the ports unbindable).
 */
const PORT_ATTEMPTS = 100;
/** Interval between two probes of `waitFor`. */
const POLL_MS = 25;

/** A condition not reached within its bound, or a process that misbehaved. */
export class ProcessClusterError extends CohortError {
  override readonly name = 'ProcessClusterError';
}

/** The output of one `cohort` command. */
export interface CommandRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** A `status` answer (see `cohort status --json` in docs/cli.md). */
export type NodeStatusAnswer = Readonly<Record<string, ApiData>>;

/** A base port B such that B+1..B+n (peers) and B+101..B+100+n (metrics) are free now. */
async function freeBasePort(n: number): Promise<number> {
  const base = await findFreePortBlock(n, { ...TEST_PORT_BLOCKS, attempts: PORT_ATTEMPTS });
  if (base === null)
    throw new ProcessClusterError('PORTS', `found no free block of ${2 * n} loopback ports in ${PORT_ATTEMPTS} tries`);
  return base;
}

/** Resolves with the exit code (or signal name) once `child` exited; rejects after `ms`. */
export function exitOf(child: ChildProcess, ms: number): Promise<number | string> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve(child.exitCode ?? child.signalCode ?? 'unknown');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new ProcessClusterError('EXIT_TIMEOUT', `process ${child.pid ?? '?'} did not exit within ${ms} ms`));
    }, ms);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve(code ?? signal ?? 'unknown');
    });
  });
}

/** Runs `cohort ARGS` to completion (killed after `timeoutMs`). */
export function runCohort(args: readonly string[], timeoutMs = 10_000): Promise<CommandRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new ProcessClusterError('COMMAND_TIMEOUT', `cohort ${args.join(' ')} did not finish within ${timeoutMs} ms`),
      );
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/**
 * Polls `probe` every `POLL_MS` until it returns a value other than null; resolves with it and
 * the time taken, or rejects naming `what` once `boundMs` passed.
 */
export async function waitFor<T>(
  what: string,
  boundMs: number,
  probe: () => Promise<T | null>,
): Promise<{ readonly value: T; readonly ms: number }> {
  const start = performance.now();
  for (;;) {
    const v = await probe();
    const ms = performance.now() - start;
    if (v !== null) return { value: v, ms };
    if (ms > boundMs) throw new ProcessClusterError('WAIT_TIMEOUT', `${what}: not reached within ${boundMs} ms`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

/** The members of a status answer, as `[nodeId, incarnation]` pairs. */
export function membersOf(s: NodeStatusAnswer): [number, number][] {
  const list = s['members'];
  assert(Array.isArray(list), 'a status answer lists the members');
  return (list as readonly Readonly<Record<string, ApiData>>[]).map((m) => [
    m['nodeId'] as number,
    m['incarnation'] as number,
  ]);
}

/** See the file comment. */
export class ProcessCluster {
  private readonly children = new Map<number, ChildProcess>();
  /** Per node: the command prefix its daemon runs under (`ip netns exec NS`), if any. */
  private readonly prefixes = new Map<number, readonly string[]>();

  private constructor(
    readonly dir: string,
    readonly size: number,
  ) {}

  /** Writes the configs of a fresh `size`-node cluster in a new temporary directory; starts nothing. */
  static async create(size: number): Promise<ProcessCluster> {
    assert(
      Number.isInteger(size) && size >= 1 && size <= PROCESS_CLUSTER_NODES_MAX,
      `a local cluster has 1..${PROCESS_CLUSTER_NODES_MAX} nodes`,
    );
    const dir = await mkdtemp(join(tmpdir(), 'cohort-pc-'));
    let errors = '';
    const code = await runInit(
      { nodes: size, dir, basePort: await freeBasePort(size) },
      { out: () => undefined, err: (t) => (errors += t) },
    );
    if (code !== 0) {
      await rm(dir, { recursive: true, force: true });
      throw new ProcessClusterError('INIT', `cohort init failed: ${errors.trim()}`);
    }
    return new ProcessCluster(dir, size);
  }

  /**
   * Appends `yaml` (top-level keys, e.g. a `fencing` section) to every node's config; call before
   * `start`. Every node gets the same text, as cluster-wide settings require.
   */
  async appendConfig(yaml: string): Promise<void> {
    for (const id of this.ids) await appendFile(join(this.dir, `node-${id}.yaml`), `\n${yaml}\n`);
  }

  /**
   * The YAML lines of a `process` fence device named `name` (for a `fencing.devices` list) that
   * kills any node of this cluster by the pid in its data directory's lock file.
   */
  processDevice(name: string): string {
    const lines = this.ids.map((id) => `        node-${id}: ${JSON.stringify(join(this.dataDir(id), LOCK_FILE))}`);
    return [`    - name: ${name}`, '      agent: process', '      pidFiles:', ...lines].join('\n');
  }

  /**
   * The YAML of a two_node pair (`quorum.twoNode`, `waitForAll`) fenced by one `process` device,
   * with `delays` as the `fencing.delays` flow map (`{}`, `{node-1: 5000}`).
   */
  twoNodeConfig(delays: string): string {
    return [
      'quorum:',
      '  twoNode: true',
      '  waitForAll: true',
      'fencing:',
      '  devices:',
      this.processDevice('kill'),
      '  levels: [[kill]]',
      `  delays: ${delays}`,
    ].join('\n');
  }

  /**
   * Runs every node in its own network namespace (`src/testing/netns.ts`): each config's peer
   * addresses become `address(i)` with the same ports, and each daemon starts under
   * `prefix(i)` (`ip netns exec NS`). Call before `start`. API sockets stay files in `dir`.
   */
  async placeInNamespaces(address: (id: number) => string, prefix: (id: number) => readonly string[]): Promise<void> {
    for (const id of this.ids) {
      const path = join(this.dir, `node-${id}.yaml`);
      let text = await readFile(path, 'utf8');
      text = text.replace(
        /- id: (\d+)\n(\s+)name: (\S+)\n\s+address: 127\.0\.0\.1:(\d+)/g,
        (_m, n: string, sp: string, name: string, port: string) =>
          `- id: ${n}\n${sp}name: ${name}\n${sp}address: ${address(Number(n))}:${port}`,
      );
      await writeFile(path, text);
      this.prefixes.set(id, prefix(id));
    }
  }

  /** Node `id`'s data directory. */
  dataDir(id: number): string {
    return join(this.dir, `node-${id}`);
  }

  /** Node ids 1..size. */
  get ids(): number[] {
    return Array.from({ length: this.size }, (_, i) => i + 1);
  }

  socket(id: number): string {
    return join(this.dir, `node-${id}`, 'cohort.sock');
  }

  log(id: number): string {
    return join(this.dir, `node-${id}.log`);
  }

  /** Starts node `id` (its log is appended to `log(id)`); it must not be running. */
  start(id: number): void {
    assert(!this.running(id), `node ${id} is already running`);
    const fd = openSync(this.log(id), 'a', 0o600);
    try {
      const prefix = this.prefixes.get(id) ?? [];
      const argv = [...prefix, process.execPath, BIN, 'start', '--config', join(this.dir, `node-${id}.yaml`)];
      const child = spawn(argv[0] as string, argv.slice(1), {
        stdio: ['ignore', fd, fd],
        env: { ...process.env, NO_COLOR: '1' },
      });
      this.children.set(id, child);
    } finally {
      closeSync(fd);
    }
  }

  startAll(): void {
    for (const id of this.ids) this.start(id);
  }

  running(id: number): boolean {
    const c = this.children.get(id);
    return c !== undefined && c.exitCode === null && c.signalCode === null;
  }

  /** Node `id`'s exit code (or signal name) once its process exited, else null. */
  exitCode(id: number): number | string | null {
    const c = this.children.get(id);
    return c?.exitCode ?? c?.signalCode ?? null;
  }

  pid(id: number): number {
    const pid = this.children.get(id)?.pid;
    assert(pid !== undefined, `node ${id} has a process`);
    return pid;
  }

  /** Sends `signal` to node `id`'s process. */
  signal(id: number, signal: NodeJS.Signals): void {
    const c = this.children.get(id);
    assert(c !== undefined && this.running(id), `node ${id} is running`);
    c.kill(signal);
  }

  /** Node `id`'s exit code (or signal name) once its process exited; rejects after `ms`. */
  exited(id: number, ms: number): Promise<number | string> {
    const c = this.children.get(id);
    assert(c !== undefined, `node ${id} was started`);
    return exitOf(c, ms);
  }

  /** kill -9 of node `id`; resolves once the process is gone. */
  async kill(id: number): Promise<void> {
    const c = this.children.get(id);
    assert(c !== undefined, `node ${id} was started`);
    c.kill('SIGKILL');
    await exitOf(c, 5000);
  }

  /** Node `id`'s status, or null when it does not answer within a second. */
  async status(id: number): Promise<NodeStatusAnswer | null> {
    try {
      await using conn = await connectLocal({
        socket: this.socket(id),
        timeoutMs: PROBE_TIMEOUT_MS,
        clientName: 'process-cluster',
      });
      return (await conn.request('status', null, {
        signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
      })) as NodeStatusAnswer;
    } catch {
      return null; // down, stopped or starting: callers poll
    }
  }

  /** One API request to node `id` (throws the client's typed error). */
  async request(id: number, method: string, params: ApiData = null, timeoutMs = 6000): Promise<ApiData> {
    await using conn = await connectLocal({ socket: this.socket(id), timeoutMs, clientName: 'process-cluster' });
    return await conn.request(method, params, { signal: AbortSignal.timeout(timeoutMs) });
  }

  /**
   * Puts `key=value` through the first of `ids` that accepts it, retrying refusals (no leader
   * yet, a node down) until `boundMs`; resolves with the time it took once acknowledged.
   */
  async put(ids: readonly number[], key: string, value: string, boundMs: number): Promise<number> {
    const r = await waitFor(`kv.put ${key}=${value} through one of ${ids.join(',')}`, boundMs, async () => {
      for (const id of ids) {
        try {
          await this.request(id, 'kv.put', { key, value }, 3000);
          return true;
        } catch {
          // not quorate yet, or this node is down: try the next one, then poll again
        }
      }
      return null;
    });
    return r.ms;
  }

  /** Resolves once every node of `ids` answers quorate, joined, with all of `ids` in its view. */
  async waitQuorate(ids: readonly number[], boundMs: number): Promise<number> {
    const r = await waitFor(`nodes ${ids.join(',')} quorate with each other in the view`, boundMs, async () => {
      const ss = await Promise.all(ids.map((i) => this.status(i)));
      const ok = ss.every(
        (s) =>
          s !== null &&
          s['quorate'] === true &&
          s['joined'] === true &&
          ids.every((i) => membersOf(s).some(([n]) => n === i)),
      );
      return ok ? true : null;
    });
    return r.ms;
  }

  /** The leader every node of `ids` names, once they agree on one among `ids`. */
  async waitLeader(
    ids: readonly number[],
    boundMs: number,
  ): Promise<{ readonly leader: number; readonly term: number; readonly ms: number }> {
    const r = await waitFor(`one leader among nodes ${ids.join(',')}`, boundMs, async () => {
      const ss = await Promise.all(ids.map((i) => this.status(i)));
      const leaders = new Set(ss.map((s) => s?.['leaderId']));
      const [leader] = [...leaders];
      const s = ss[0];
      return leaders.size === 1 && typeof leader === 'number' && ids.includes(leader) && s !== null && s !== undefined
        ? { leader, term: s['term'] as number }
        : null;
    });
    return { ...r.value, ms: r.ms };
  }

  /**
   * Stops everything and removes the directory; never throws. Stopped children are resumed
   * first (a stopped process cannot handle SIGTERM).
   */
  async close(): Promise<void> {
    const live = [...this.children.values()].filter((c) => c.exitCode === null && c.signalCode === null);
    for (const c of live) {
      c.kill('SIGCONT');
      c.kill('SIGTERM');
    }
    await Promise.all(
      live.map(async (c) => {
        try {
          await exitOf(c, PROCESS_STOP_TIMEOUT_MS);
        } catch {
          c.kill('SIGKILL');
          await exitOf(c, 2000).catch(() => undefined); // SIGKILL cannot be refused; give up quietly after the bound
        }
      }),
    );
    // COHORT_KEEP_TEST_DIRS=1 keeps the configs, data and logs of every cluster for a post-mortem.
    if (process.env['COHORT_KEEP_TEST_DIRS'] === '1') process.stderr.write(`# kept ${this.dir}\n`);
    else await rm(this.dir, { recursive: true, force: true });
  }
}
