// Proves, with real `cohort start` daemons on loopback, that the peer port holds up against what a
// tester did to it: (1) thousands of idle connections to two nodes' peer ports, opened by an
// unprivileged local user (`nobody` when the test runs as root) and reopened as fast as they are
// closed, neither keep a restarted third node from rejoining nor exhaust the flooded daemons'
// file descriptors nor flood their logs; (2) a second daemon started with a copy of a running
// node's config (fresh data directory, another port) is refused: it exits 1 with one line naming
// the node id and where the running one is, the peers log one warning each, and the running
// node keeps its connections (no reconnect churn) and its place in the view.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { ProcessCluster, membersOf, runCohort, waitFor } from './process-cluster.js';
import { startFlood, type Flood } from '../testing/flood-process.js';

const QUORATE_BOUND_MS = 15_000;
/** Idle connections the flood keeps open against each flooded daemon. */
const FLOOD_CONNECTIONS = 5000;
/** The restarted node rejoins within this (generous: the machine may be loaded and flooded). */
const REJOIN_BOUND_MS = 40_000;
/**
 * From the restarted node's "running" line, its connections to both flooded nodes are up within
 * this (they take well under a second; before the handshake budget they were shut out by 64
 * held connections for tens of seconds).
 */
const CONNECT_BOUND_MS = 10_000;
/** Most descriptors a flooded daemon may hold (it needs a few dozen of its own). */
const FLOODED_FDS_MAX = 250;
/** Most log lines a flooded daemon may write during the flood (throttled: one per kind per 30 s). */
const FLOODED_LOG_LINES_MAX = 30;

/** The peer port of node `id` in a cluster made by `cohort init`. */
async function peerPort(cluster: ProcessCluster, id: number): Promise<number> {
  const text = await readFile(join(cluster.dir, `node-${id}.yaml`), 'utf8');
  const m = new RegExp(`- id: ${id}\\n\\s+name: [^\\n]+\\n\\s+address: 127\\.0\\.0\\.1:(\\d+)`).exec(text);
  assert.ok(m?.[1] !== undefined, `node ${id}'s address is in its config`);
  return Number(m[1]);
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const a = s.address();
  assert.ok(a !== null && typeof a === 'object');
  await new Promise<void>((resolve) => {
    s.close(() => {
      resolve();
    });
  });
  return a.port;
}

function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0; // not Linux, or the process is gone
  }
}

/** Milliseconds from node `id`'s last "running as incarnation" line to its control connection to each of `peers`. */
async function connectDelays(cluster: ProcessCluster, id: number, peers: readonly number[]): Promise<number[]> {
  const entries = (await logLines(cluster, id)).map((l) => JSON.parse(l) as { time: number; msg: string });
  const startIndex = entries.findLastIndex((e) => /running as incarnation/.test(e.msg));
  const start = entries[startIndex];
  assert.ok(start !== undefined, 'the restarted node logged that it runs');
  const after = entries.slice(startIndex);
  return peers.map((p) => {
    const up = after.find((e) => new RegExp(`^connected to node ${p} at \\S+$`).test(e.msg));
    return up === undefined ? Number.POSITIVE_INFINITY : up.time - start.time;
  });
}

async function logLines(cluster: ProcessCluster, id: number): Promise<string[]> {
  return (await readFile(cluster.log(id), 'utf8').catch(() => '')).split('\n').filter((l) => l.length > 0);
}

test(
  'a flood of idle connections to the peer ports keeps no node out, and bounds descriptors and log lines',
  { timeout: 120_000 },
  async () => {
    const cluster = await ProcessCluster.create(3);
    const floods: Flood[] = [];
    try {
      cluster.startAll();
      await cluster.waitQuorate([1, 2, 3], QUORATE_BOUND_MS);
      // A clean stop (a node killed with -9 waits for an operator's fence confirmation instead).
      cluster.signal(3, 'SIGTERM');
      await waitFor('node 3 to stop', 15_000, () => Promise.resolve(cluster.running(3) ? null : true));
      const linesBefore = await Promise.all([1, 2].map((i) => logLines(cluster, i)));
      for (const i of [1, 2]) floods.push(startFlood(await peerPort(cluster, i), FLOOD_CONNECTIONS));
      await Promise.all(floods.map((f) => f.started));
      await new Promise((r) => setTimeout(r, 2000)); // let the floods fill the listeners' budgets
      const fdsMax = [0, 0];
      const sampler = setInterval(() => {
        for (const [k, i] of [1, 2].entries()) fdsMax[k] = Math.max(fdsMax[k] ?? 0, fdCount(cluster.pid(i)));
      }, 100);
      try {
        cluster.start(3);
        const ms = await cluster.waitQuorate([1, 2, 3], REJOIN_BOUND_MS);
        // Quorate can come first (the peers dialed node 3): wait, within the bound, for node 3's
        // own control connections to show in its log before judging their delays.
        let delays = await connectDelays(cluster, 3, [1, 2]);
        const deadline = performance.now() + CONNECT_BOUND_MS;
        while (delays.some((d) => !Number.isFinite(d)) && performance.now() < deadline) {
          await new Promise((r) => setTimeout(r, 200));
          delays = await connectDelays(cluster, 3, [1, 2]);
        }
        process.stderr.write(
          `# node 3 restarted and rejoined under the flood in ${Math.round(ms)} ms; connected to nodes 1, 2 ${delays.join(', ')} ms after it ran\n`,
        );
        for (const d of delays) assert.ok(d < CONNECT_BOUND_MS, `node 3 connected ${d} ms after it ran`);
      } finally {
        clearInterval(sampler);
      }
      const reports = await Promise.all(floods.map((f) => f.stop()));
      process.stderr.write(`# floods: ${JSON.stringify(reports)}; most descriptors held: ${fdsMax.join(', ')}\n`);
      for (const r of reports) assert.ok(r.opened > 500, `the flood opened ${r.opened} connections`);
      for (const n of fdsMax) assert.ok(n < FLOODED_FDS_MAX, `a flooded daemon held ${n} descriptors`);
      for (const [k, i] of [1, 2].entries()) {
        const during = (await logLines(cluster, i)).slice(linesBefore[k]?.length ?? 0);
        const floodLines = during.filter((l) =>
          /flooding the (peer|cluster) port|handshake timed out|handshakes already pending/.test(l),
        );
        assert.ok(
          floodLines.length <= FLOODED_LOG_LINES_MAX,
          `node ${i} wrote ${floodLines.length} flood lines:\n${floodLines.slice(0, 5).join('\n')}`,
        );
      }
      const s = await cluster.status(1);
      assert.ok(s !== null && membersOf(s).some(([n]) => n === 3), 'node 3 is in the view again');
    } finally {
      for (const f of floods) f.kill();
      await cluster.close();
    }
  },
);

test(
  'a second daemon with a running node id is refused with one line and the running node is undisturbed',
  { timeout: 60_000 },
  async () => {
    const cluster = await ProcessCluster.create(3);
    try {
      cluster.startAll();
      await cluster.waitQuorate([1, 2, 3], QUORATE_BOUND_MS);
      const before = await cluster.status(2);
      assert.ok(before !== null);
      const incarnation = membersOf(before).find(([n]) => n === 2)?.[1];
      const connectedBefore = (await logLines(cluster, 2)).filter((l) => /connected to node/.test(l)).length;
      // The tester's mistake: node 2's config copied, with a fresh data directory and another port.
      const copy = (await readFile(join(cluster.dir, 'node-2.yaml'), 'utf8'))
        .replace('dataDir: node-2', 'dataDir: copy-of-2')
        .replace(/\nmetrics:\n(?: {2}.*\n)*/, '\n');
      await writeFile(
        join(cluster.dir, 'copy.yaml'),
        `${copy.trimEnd()}\nlisten: {host: 127.0.0.1, port: ${await freePort()}}\n`,
      );
      const r = await runCohort(['start', '--config', join(cluster.dir, 'copy.yaml')], 25_000);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      assert.match(
        r.stderr,
        /^cohort start: node 2 is already running elsewhere \(incarnation \d+, connected to node [13] from 127\.0\.0\.1; its configured address is 127\.0\.0\.1:\d+\); this process \(incarnation \d+, listening on 127\.0\.0\.1:\d+\) stops: two daemons must never share a node id/,
      );
      const warned = await Promise.all(
        [1, 3].map(async (i) => (await logLines(cluster, i)).filter((l) => /two processes share node id 2/.test(l))),
      );
      assert.ok(
        warned.some((w) => w.length >= 1),
        'a peer that refused the newcomer says why',
      );
      for (const w of warned) assert.ok(w.length <= 2, `rate-limited: ${w.length} lines`);
      // The running node 2 kept its connections, its incarnation and its place in the view.
      assert.equal(cluster.running(2), true);
      const connectedAfter = (await logLines(cluster, 2)).filter((l) => /connected to node/.test(l)).length;
      assert.equal(connectedAfter, connectedBefore, 'node 2 never had to reconnect');
      await cluster.waitQuorate([1, 2, 3], QUORATE_BOUND_MS);
      const after = await cluster.status(1);
      assert.ok(after !== null);
      assert.equal(membersOf(after).find(([n]) => n === 2)?.[1], incarnation, 'node 2 is the same incarnation');
    } finally {
      await cluster.close();
    }
  },
);
