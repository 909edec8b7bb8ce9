/**
 * `cohort demo [--nodes N] [--dir DIR] [--keep]`: a real local cluster in one command.
 *
 * Writes a local cluster with `cohort init` code into a fresh temporary directory (or DIR, which
 * must be empty or missing), starts N `cohort start` child processes on loopback, waits until
 * every node is quorate (a clear error naming the laggards and their logs if not within
 * `DEMO_QUORATE_TIMEOUT_MS`), writes `DIR/demo.json` (each node's nodeId, name, pid, socket,
 * metricsUrl, config and log), prints a status table and commands to try, and stays in the
 * foreground. On Ctrl-C or SIGTERM it stops every child with SIGTERM (each leaves cleanly),
 * kills any that did not exit within `DEMO_STOP_TIMEOUT_MS`, and removes the directory unless
 * `--keep`.
 *
 * The demo recovers by itself: every config gets a `fencing` section with one `process` device
 * (it kills the daemon whose pid is in the node's `cohort.lock`), so when a node dies (try
 * `kill -9`), the survivors fence it, record the fence and recover; the demo then starts the node
 * again after `DEMO_RESTART_DELAY_MS` (a supervisor's job), as a new incarnation that joins.
 *
 * `cohort demo --simulated` prints the deterministic simulated run it showed before the daemon
 * existed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile, readFile } from 'node:fs/promises';
import { findFreePortBlock } from '../platform/ports.js';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError, type Command } from '@commander-js/extra-typings';
import { connectLocal } from '../client/index.js';
import { loadConfig } from '../node/config.js';
import { LOCK_FILE } from '../node/daemon-start.js';
import { appendFile } from 'node:fs/promises';
import { runInit } from './init-command.js';
import { intOption } from './options.js';
import { renderStatusTable } from './status-command.js';
// The simulator is reached through the sim command: only it may import src/sim (layering test).
import { runDemo as runSimulatedDemo } from './sim-command.js';

/** The simulated demo's fixed seed: the same summary every time. */
const DEMO_SEED = 20_260_425;
/** Longest wait for every node to be quorate after the processes start. */
export const DEMO_QUORATE_TIMEOUT_MS = 20_000;
/** Longest wait for a child to exit after SIGTERM before it is killed. */
export const DEMO_STOP_TIMEOUT_MS = 6_000;
/** A node that died is started again after this long (the survivors fence it first). */
export const DEMO_RESTART_DELAY_MS = 1_000;
/** Most nodes a demo starts (each is a process; the machine may be small). */
export const DEMO_NODES_MAX = 9;
/** Attempts to find a free block of loopback ports. */
const PORT_ATTEMPTS = 20;
/** The compiled CLI entry the children run (dist/src/cli -> bin/cohort.js). */
const BIN = fileURLToPath(new URL('../../../bin/cohort.js', import.meta.url));

/** Options of the real-process demo. */
export interface DemoOptions {
  readonly nodes: number;
  readonly dir?: string;
  readonly keep: boolean;
  /** Resolves when the demo should stop (default: SIGINT or SIGTERM). */
  readonly until?: Promise<unknown>;
}

/** Where the demo writes. */
export interface DemoIo {
  out(text: string): void;
  err(text: string): void;
}

/** One started node, as demo.json lists it. */
export interface DemoNode {
  readonly nodeId: number;
  readonly name: string;
  readonly pid: number;
  readonly socket: string;
  readonly metricsUrl: string | null;
  readonly config: string;
  readonly log: string;
}

class DemoFailure extends Error {}

function seedOption(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n))
    throw new InvalidArgumentError(`--seed must be a non-negative integer, got ${JSON.stringify(value)}`);
  return n;
}

/** A base port B such that B+1..B+n and B+101..B+100+n (metrics) are free now. */
async function freeBasePort(n: number): Promise<number> {
  const base = await findFreePortBlock(n, { from: 20_000, blocks: 400, attempts: PORT_ATTEMPTS });
  if (base === null)
    throw new DemoFailure(
      `found no free block of ${2 * n} loopback ports in ${PORT_ATTEMPTS} tries; free some ports and retry`,
    );
  return base;
}

/** Creates or checks the demo directory; returns it and whether the demo owns (and removes) it. */
async function demoDir(dir: string | undefined): Promise<string> {
  if (dir === undefined) return mkdtemp(join(tmpdir(), 'cohort-demo-'));
  const path = resolve(dir);
  const entries = await readdir(path).catch((e: unknown) => {
    if ((e as { code?: unknown }).code === 'ENOENT') return [];
    throw new DemoFailure(`cannot use --dir ${path}: ${e instanceof Error ? e.message : String(e)}`);
  });
  if (entries.length > 0)
    throw new DemoFailure(
      `--dir ${path} is not empty; give an empty or missing directory (the demo writes configs, keys and data there and removes them at exit unless --keep)`,
    );
  return path;
}

function startChild(config: string, log: string): ChildProcess {
  const fd = openSync(log, 'a', 0o600);
  try {
    return spawn(process.execPath, [BIN, 'start', '--config', config], {
      stdio: ['ignore', fd, fd],
      env: { ...process.env, NO_COLOR: '1' },
    });
  } finally {
    closeSync(fd);
  }
}

async function quorateAt(socket: string): Promise<boolean> {
  try {
    await using conn = await connectLocal({ socket, timeoutMs: 1000, clientName: 'cohort demo' });
    const s = (await conn.request('status', null, { signal: AbortSignal.timeout(1000) })) as { quorate?: unknown };
    return s.quorate === true;
  } catch {
    return false; // not up yet: the caller polls until its deadline
  }
}

async function waitQuorate(nodes: readonly DemoNode[], children: readonly ChildProcess[]): Promise<number> {
  const start = performance.now();
  for (;;) {
    const dead = children.findIndex((c) => c.exitCode !== null || c.signalCode !== null);
    if (dead >= 0) {
      const n = nodes[dead];
      const tail =
        n === undefined
          ? ''
          : (await readFile(n.log, 'utf8').catch(() => '')).trim().split('\n').slice(-3).join('\n    ');
      throw new DemoFailure(
        `node ${n?.nodeId ?? '?'} exited (code ${children[dead]?.exitCode ?? children[dead]?.signalCode ?? '?'}) before the cluster was quorate; its log ends:\n    ${tail}`,
      );
    }
    const ok = await Promise.all(nodes.map((n) => quorateAt(n.socket)));
    if (ok.every(Boolean)) return performance.now() - start;
    if (performance.now() - start > DEMO_QUORATE_TIMEOUT_MS) {
      const late = nodes.filter((_, i) => ok[i] !== true).map((n) => `node ${n.nodeId} (log ${n.log})`);
      throw new DemoFailure(
        `the cluster was not quorate within ${DEMO_QUORATE_TIMEOUT_MS / 1000} s; not quorate: ${late.join(', ')}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((done) => {
    const timer = setTimeout(() => {
      done(false);
    }, ms);
    child.once('exit', () => {
      clearTimeout(timer);
      done(true);
    });
  });
}

/** SIGTERM to every child (a clean leave each), then SIGKILL to any still running after the bound. */
async function stopChildren(children: readonly ChildProcess[]): Promise<number> {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  const exited = await Promise.all(children.map((c) => waitExit(c, DEMO_STOP_TIMEOUT_MS)));
  let killed = 0;
  for (const [i, c] of children.entries()) {
    if (exited[i] === true) continue;
    c.kill('SIGKILL');
    killed++;
    await waitExit(c, 2000);
  }
  return killed;
}

function signalled(): Promise<string> {
  return new Promise((done) => {
    const on = (name: string): void => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      done(name);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

async function startAll(
  dir: string,
  count: number,
  io: DemoIo,
): Promise<{ nodes: DemoNode[]; children: ChildProcess[] }> {
  const basePort = await freeBasePort(count);
  const quiet: DemoIo = {
    out: () => undefined,
    err: (t) => {
      io.err(t);
    },
  };
  if ((await runInit({ nodes: count, dir, basePort, cluster: 'demo' }, quiet)) !== 0)
    throw new DemoFailure('writing the cluster configs failed (see above)');
  await addFencing(dir, count);
  const nodes: DemoNode[] = [];
  const children: ChildProcess[] = [];
  for (let id = 1; id <= count; id++) {
    const configPath = join(dir, `node-${id}.yaml`);
    const loaded = await loadConfig(configPath);
    if (!loaded.ok) throw new DemoFailure(loaded.error.message);
    const c = loaded.value;
    const log = join(dir, `node-${id}.log`);
    const child = startChild(configPath, log);
    children.push(child);
    const metricsUrl = c.metrics === undefined ? null : `http://${c.metrics.host}:${c.metrics.port}/metrics`;
    nodes.push({
      nodeId: id,
      name: c.node.name,
      pid: child.pid ?? -1,
      socket: c.api.socket,
      metricsUrl,
      config: configPath,
      log,
    });
  }
  return { nodes, children };
}

/**
 * Appends the same `fencing` section to every node's config: one `process` device that kills the
 * daemon whose pid is in that node's lock file.
 */
async function addFencing(dir: string, count: number): Promise<void> {
  const pidFiles: string[] = [];
  for (let id = 1; id <= count; id++) {
    const loaded = await loadConfig(join(dir, `node-${id}.yaml`));
    if (!loaded.ok) throw new DemoFailure(loaded.error.message);
    pidFiles.push(`        ${loaded.value.node.name}: ${JSON.stringify(join(loaded.value.dataDir, LOCK_FILE))}`);
  }
  const section = [
    '',
    '# The demo fences a dead node by killing its process (the pid in its lock file).',
    'fencing:',
    '  devices:',
    '    - name: kill',
    '      agent: process',
    '      pidFiles:',
    ...pidFiles,
    '  levels: [[kill]]',
    '',
  ].join('\n');
  for (let id = 1; id <= count; id++) await appendFile(join(dir, `node-${id}.yaml`), section);
}

/**
 * Starts a node again when it dies while the demo runs (after `DEMO_RESTART_DELAY_MS`), and keeps
 * `nodes`, `children` and demo.json current. Returns the function that stops supervising.
 */
function supervise(dir: string, nodes: DemoNode[], children: ChildProcess[], io: DemoIo): () => void {
  let stopped = false;
  const watch = (i: number): void => {
    const child = children[i];
    if (child === undefined) return;
    child.once('exit', (code, signal) => {
      const n = nodes[i];
      if (stopped || n === undefined) return;
      io.out(
        `cohort demo: node ${n.nodeId} (pid ${n.pid}) exited (${signal ?? `code ${code ?? '?'}`}); the survivors fence it and recover; starting it again in ${DEMO_RESTART_DELAY_MS / 1000} s\n`,
      );
      setTimeout(() => {
        if (stopped) return;
        const next = startChild(n.config, n.log);
        children[i] = next;
        nodes[i] = { ...n, pid: next.pid ?? -1 };
        io.out(`cohort demo: node ${n.nodeId} started again (pid ${next.pid ?? '?'}); it joins as a new incarnation\n`);
        void writeFile(join(dir, 'demo.json'), `${JSON.stringify({ dir, nodes }, null, 2)}\n`, { mode: 0o644 }).catch(
          () => undefined,
        );
        watch(i);
      }, DEMO_RESTART_DELAY_MS).unref();
    });
  };
  children.forEach((_, i) => {
    watch(i);
  });
  return () => {
    stopped = true;
  };
}

async function printStatus(nodes: readonly DemoNode[], io: DemoIo, tookMs: number, dir: string): Promise<void> {
  const first = nodes[0];
  if (first === undefined) return;
  await using conn = await connectLocal({ socket: first.socket, clientName: 'cohort demo' });
  const status = await conn.request('status', null, { signal: AbortSignal.timeout(2000) });
  io.out(`cohort demo: ${nodes.length} nodes quorate after ${Math.round(tookMs)} ms (in ${dir})\n\n`);
  io.out(renderStatusTable(status));
  io.out('\nprocesses:\n');
  for (const n of nodes) io.out(`  node ${n.nodeId}  pid ${n.pid}  socket ${n.socket}  ${n.metricsUrl ?? ''}\n`);
  io.out(
    `\ntry, in another terminal:\n  COHORT_SOCKET=${first.socket} npx cohort status\n  npx cohort nodes --socket ${nodes.at(-1)?.socket ?? first.socket}\n  npx cohort quorum --json --socket ${first.socket}\n  curl ${first.metricsUrl?.replace(/\/metrics$/, '/healthz') ?? ''}\n  kill -9 ${nodes.at(-1)?.pid ?? ''}   # the survivors fence it (process agent) and recover; the demo starts it again\n  npx cohort events --follow --socket ${first.socket}   # every view, fence and recovery step\n  npx cohort fence history --socket ${first.socket}\n  npx cohort lock --socket ${first.socket} job -- sleep 5   # run it at once with --socket ${nodes.at(-1)?.socket ?? first.socket}: the second waits\n`,
  );
  io.out(
    `\n${join(dir, 'demo.json')} lists every node. Press Ctrl-C to stop the cluster (each node leaves cleanly).\n`,
  );
}

/** Runs the real-process demo; resolves to the exit code. Never throws. */
export async function runProcessDemo(opts: DemoOptions, io: DemoIo): Promise<number> {
  let dir: string | null = null;
  let children: ChildProcess[] = [];
  const until = opts.until ?? signalled();
  try {
    dir = await demoDir(opts.dir);
    const started = await startAll(dir, opts.nodes, io);
    children = started.children;
    const took = await Promise.race([waitQuorate(started.nodes, children), until.then(() => -1)]);
    if (took >= 0) {
      await writeFile(join(dir, 'demo.json'), `${JSON.stringify({ dir, nodes: started.nodes }, null, 2)}\n`, {
        mode: 0o644,
      });
      await printStatus(started.nodes, io, took, dir);
      const unsupervise = supervise(dir, started.nodes, children, io);
      await until;
      unsupervise();
    }
    io.out('\ncohort demo: stopping the nodes\n');
    return await finish(children, dir, opts.keep, io, 0);
  } catch (e) {
    io.err(`cohort demo: ${e instanceof Error ? e.message : String(e)}\n`);
    return finish(children, dir, opts.keep, io, 1);
  }
}

async function finish(
  children: readonly ChildProcess[],
  dir: string | null,
  keep: boolean,
  io: DemoIo,
  code: number,
): Promise<number> {
  const killed = await stopChildren(children);
  if (killed > 0)
    io.err(`cohort demo: ${killed} node(s) did not stop within ${DEMO_STOP_TIMEOUT_MS / 1000} s and were killed\n`);
  if (dir !== null) {
    if (keep) io.out(`cohort demo: kept ${dir}\n`);
    else await rm(dir, { recursive: true, force: true });
  }
  return killed > 0 && code === 0 ? 1 : code;
}

/** Registers `cohort demo` on `program`. */
export function registerDemo(program: Command, setCode: (code: number) => void): void {
  program
    .command('demo')
    .description('start a local cluster of real cohort processes on loopback and keep it running until Ctrl-C')
    .option('--nodes <n>', `number of nodes (1..${DEMO_NODES_MAX})`, intOption('--nodes', 1, DEMO_NODES_MAX), 3)
    .option('--dir <dir>', 'write configs, keys, data and logs here (empty or missing; default a temporary directory)')
    .option('--keep', 'keep the directory when stopping')
    .option('--simulated', 'instead, print a deterministic simulated 3-node run (no processes)')
    .option('--seed <n>', 'seed of the simulated run', seedOption, DEMO_SEED)
    .option('--json', 'with --simulated: print the run summary as one JSON object')
    .action(async (opts) => {
      if (opts.simulated === true) {
        setCode(await runSimulatedDemo({ seed: opts.seed, json: opts.json === true }));
        return;
      }
      const io: DemoIo = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };
      setCode(
        await runProcessDemo(
          { nodes: opts.nodes, keep: opts.keep === true, ...(opts.dir === undefined ? {} : { dir: opts.dir }) },
          io,
        ),
      );
    });
}
