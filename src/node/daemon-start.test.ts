// Proves start-up is all or nothing, with real daemons on loopback (a fresh 3-node cluster per
// test): while node 3's metrics port, peer port or API socket path is taken, `cohort start`
// exits 1 at once with one line naming what failed, and leaves no lock file, no socket and not
// one changed byte in its data directory (a first start creates nothing; a restart writes no WAL
// record and bumps no incarnation); nodes 1 and 2 never see the attempt (node 3 is not a member,
// never needs-fencing, no new incarnation seen); and after a refused restart node 3's next real
// start is exactly the incarnation after its last successful one. In process: a signal seen at
// any step before the node starts ends the start-up with everything released (no directory, no
// lock, no socket; both ports bindable again).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import type { ApiData } from '../client/index.js';
import { loadConfig, type NodeConfig } from './config.js';
import { runInit } from '../cli/init-command.js';
import { createLogger } from '../platform/logger.js';
import { TEST_PORT_BLOCKS, findFreePortBlock } from '../platform/ports.js';
import { clusterNodeOptions, LOCK_FILE } from './daemon.js';
import { StartInterrupted, startDaemon } from './daemon-start.js';
import { membersOf, ProcessCluster, runCohort } from './process-cluster.js';

/** Generous: on a loaded 2-core machine a daemon process alone can take 5 s to start. */
const QUORATE_BOUND_MS = 25_000;
/** A failed start must end well within this (it binds before it joins; the machine may be loaded). */
const FAILED_START_BOUND_MS = 15_000;

/** A 3-node cluster of real daemons, node 3's config, and node 3's config file. */
interface Fixture {
  readonly cluster: ProcessCluster;
  readonly config3: NodeConfig;
  readonly configPath: string;
}

/**
 * Runs `body` against a fresh cluster (each test its own, so a failure cannot cascade): nodes 1
 * and 2 quorate; with `node3Ran`, node 3 first started, joined as incarnation 1 and stopped
 * cleanly, so it has a data directory.
 */
async function withCluster(node3Ran: boolean, body: (f: Fixture) => Promise<void>): Promise<void> {
  const cluster = await ProcessCluster.create(3);
  try {
    const configPath = join(cluster.dir, 'node-3.yaml');
    const loaded = await loadConfig(configPath);
    assert.ok(loaded.ok);
    const f: Fixture = { cluster, config3: loaded.value, configPath };
    if (node3Ran) {
      cluster.startAll();
      await cluster.waitQuorate([1, 2, 3], QUORATE_BOUND_MS);
      assert.deepEqual(await incarnationOf3(f, 3), 1);
      cluster.signal(3, 'SIGTERM');
      assert.equal(await cluster.exited(3, 10_000), 0, 'a clean stop');
    } else {
      cluster.start(1);
      cluster.start(2);
      await cluster.waitQuorate([1, 2], QUORATE_BOUND_MS);
    }
    await body(f);
  } finally {
    await cluster.close();
  }
}

/** Node 3's incarnation in the view node `id` applied. */
async function incarnationOf3(f: Fixture, id: number): Promise<number | undefined> {
  const s = await f.cluster.status(id);
  assert.ok(s !== null, `node ${id} answers`);
  return membersOf(s).find(([n]) => n === 3)?.[1];
}

/** After the failed attempts: node 3 starts for real as the very next incarnation. */
async function assertNextStartIs(f: Fixture, incarnation: number): Promise<void> {
  f.cluster.start(3);
  await f.cluster.waitQuorate([1, 2, 3], QUORATE_BOUND_MS);
  for (const id of [1, 2, 3]) assert.equal(await incarnationOf3(f, id), incarnation, `node 3's incarnation on ${id}`);
}

/** Every entry under `dir` with its bytes (files) or its kind (anything else); null when `dir` is missing. */
async function contents(dir: string): Promise<Map<string, string> | null> {
  let entries;
  try {
    entries = await readdir(dir, { recursive: true, withFileTypes: true });
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ENOENT') return null;
    throw e;
  }
  const out = new Map<string, string>();
  for (const entry of entries) {
    const path = join(entry.parentPath, entry.name);
    const name = relative(dir, path);
    if (entry.isFile()) out.set(name, (await readFile(path)).toString('base64'));
    else out.set(name, entry.isDirectory() ? '<dir>' : entry.isSocket() ? '<socket>' : '<other>');
  }
  return new Map([...out].sort(([a], [b]) => a.localeCompare(b)));
}

function listen(host: string, port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => socket.destroy());
    server.once('error', reject);
    server.listen({ host, port }, () => {
      resolve(server);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => {
      resolve();
    });
  });
}

async function exists(path: string): Promise<boolean> {
  return lstat(path).then(
    () => true,
    () => false,
  );
}

/** Node 3's record as nodes 1 and 2 see it (both must answer). */
async function node3AsSeen(cluster: ProcessCluster): Promise<Record<string, ApiData>[]> {
  const out: Record<string, ApiData>[] = [];
  for (const id of [1, 2]) {
    const s = await cluster.status(id);
    assert.ok(s !== null, `node ${id} answers`);
    assert.ok(!membersOf(s).some(([n]) => n === 3), `node 3 is not a member on node ${id}`);
    const answer = (await cluster.request(id, 'nodes')) as Record<string, ApiData>;
    const rec = (answer['nodes'] as Record<string, ApiData>[]).find((n) => n['nodeId'] === 3);
    assert.ok(rec !== undefined, `node ${id} lists node 3`);
    out.push(rec);
  }
  return out;
}

/**
 * Runs `cohort start` for node 3 while something is taken, and checks the all-or-nothing
 * contract: exit 1 with one line matching `line`, the data directory exactly as before, nodes
 * 1 and 2 seeing node 3 with `seen` unchanged, never needing fencing.
 */
async function assertFailedStart(f: Fixture, line: RegExp, seen: number): Promise<void> {
  const { config3 } = f;
  const before = await contents(config3.dataDir);
  const run = await runCohort(['start', '--config', f.configPath], FAILED_START_BOUND_MS);
  assert.equal(run.code, 1, `exit code (stderr: ${run.stderr})`);
  const lines = run.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line on stderr: ${run.stderr}`);
  assert.match(lines[0] ?? '', line);
  assert.doesNotMatch(run.stdout + run.stderr, /\n\s+at /, 'no stack trace');
  assert.equal(await exists(join(config3.dataDir, LOCK_FILE)), false, 'no lock file is left');
  assert.deepEqual(await contents(config3.dataDir), before, 'the data directory is unchanged');
  for (const rec of await node3AsSeen(f.cluster)) {
    assert.notEqual(rec['status'], 'needs-fencing', 'node 3 is never marked needs-fencing');
    assert.notEqual(rec['status'], 'member');
    assert.equal(rec['seen'], seen, 'no new incarnation of node 3 was seen');
  }
}

test('(a) metrics port taken on a first start: exit 1, one line, nothing created, never a member', async () => {
  await withCluster(false, async (f) => {
    const { metrics } = f.config3;
    assert.ok(metrics !== undefined, 'cohort init configures metrics');
    assert.equal(await contents(f.config3.dataDir), null, 'a first start');
    const blocker = await listen(metrics.host, metrics.port);
    try {
      await assertFailedStart(
        f,
        new RegExp(`^cohort start: cannot start: port 127\\.0\\.0\\.1:${metrics.port} \\(metrics\\) is in use`),
        0,
      );
    } finally {
      await closeServer(blocker);
    }
    assert.equal(await exists(f.config3.api.socket), false, 'no socket is left');
  });
});

test('(b) peer port taken on a restart: exit 1, one line, no incarnation bump, no WAL record', async () => {
  await withCluster(true, async (f) => {
    const { listen: peers } = f.config3;
    const blocker = await listen(peers.host, peers.port);
    try {
      await assertFailedStart(
        f,
        new RegExp(`^cohort start: cannot start: port 127\\.0\\.0\\.1:${peers.port} \\(peers\\) is in use`),
        1,
      );
    } finally {
      await closeServer(blocker);
    }
    assert.equal(await exists(f.config3.api.socket), false, 'no socket is left');
    await assertNextStartIs(f, 2);
  });
});

test('(c) API socket path unusable on a restart: exit 1, one line, the path untouched, no incarnation bump', async () => {
  await withCluster(true, async (f) => {
    const socket = f.config3.api.socket;
    await writeFile(socket, 'not a socket\n');
    await assertFailedStart(f, /^cohort start: .*cohort\.sock exists and is not a socket/, 1);
    assert.equal(await readFile(socket, 'utf8'), 'not a socket\n', 'the file at the path is untouched');
  });
});

test('a signal at any step before the node starts: start-up ends with everything released', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cohort-start-'));
  try {
    const base = await findFreePortBlock(3, { ...TEST_PORT_BLOCKS, attempts: 100 });
    assert.ok(base !== null, 'free ports');
    assert.equal(await runInit({ nodes: 3, dir, basePort: base }, { out: () => undefined, err: () => undefined }), 0);
    const loaded = await loadConfig(join(dir, 'node-1.yaml'));
    assert.ok(loaded.ok);
    const config = loaded.value;
    const { metrics } = config;
    assert.ok(metrics !== undefined);
    const logger = createLogger({ level: 'warn', format: 'json', destination: { write: () => true } });
    // Checkpoints: after the key, the data directory and lock, the listeners, the node's files.
    for (let step = 1; step <= 4; step++) {
      let checks = 0;
      const failure = await startDaemon(config, logger, {
        nodeOptions: (observer) => clusterNodeOptions(config, observer),
        interrupted: () => (++checks === step ? 'SIGTERM' : null),
        onDuplicate: () => assert.fail('the node never started, so no peer saw it'),
        onRetired: () => assert.fail('the node never started, so it learned nothing'),
      }).then(
        () => null,
        (e: unknown) => e,
      );
      assert.ok(failure instanceof StartInterrupted, `step ${step}: interrupted (${String(failure)})`);
      assert.equal(checks, step, `step ${step}: stopped at the first signal seen`);
      assert.equal(await contents(config.dataDir), null, `step ${step}: no data directory is left`);
      for (const { host, port } of [config.listen, metrics]) await closeServer(await listen(host, port));
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
