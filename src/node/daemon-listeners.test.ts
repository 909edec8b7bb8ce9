// Proves, with real `cohort start` processes, that a node's listeners cannot be used to take it
// down (issue 11, items 1 and 3): a flood of thousands of idle connections on the metrics port
// from an unprivileged user (uid 65534 when the test runs as root) leaves the node, started under
// a 512-descriptor limit, answering `cohort status`, taking part in an election and taking its
// restarted peer's connections back; the connections past the cap are refused at once, counted in
// /metrics and logged rate-limited; the held ones time out, so the node's descriptors come back by
// themselves. A full set of idle API clients does not lock the CLI out (the client idle longest
// gives its slot); when every slot is busy the CLI exits 7 with one line and the daemon logs the
// refusal. A limit too low for the descriptor budget refuses to start with exit 1 and one line
// naming the limit to raise.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readdirSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { connectLocal, CohortClientError, type ApiData, type ClientConnection } from '../client/index.js';
import { runInit } from '../cli/init-command.js';
import { API_CLIENTS_MAX, HTTP_CONNECTIONS_MAX, HTTP_IDLE_MS } from '../constants.js';
import { TEST_PORT_BLOCKS, findFreePortBlock } from '../platform/ports.js';
import { exitOf, runCohort, waitFor, type CommandRun } from './process-cluster.js';

const BIN = fileURLToPath(new URL('../../../bin/cohort.js', import.meta.url));
const HAVE_PRLIMIT = spawnSync('prlimit', ['--version']).status === 0;
const FLOOD_CONNECTIONS = 3000;
const FLOOD_FD_LIMIT = 512;

/** A child that opens `COUNT` connections to `HOST:PORT`, holds them (reading, never writing) and prints its counts. */
const FLOODER = `
const net = require('node:net');
const n = Number(process.env.COUNT);
const c = { started: 0, connected: 0, closed: 0, errors: 0 };
function one() {
  c.started++;
  const s = net.connect({ host: process.env.HOST, port: Number(process.env.PORT) });
  s.on('connect', () => c.connected++);
  s.on('error', () => c.errors++);
  s.on('close', () => c.closed++);
  s.resume();
}
const t = setInterval(() => { for (let k = 0; k < 100 && c.started < n; k++) one(); if (c.started >= n) clearInterval(t); }, 5);
setInterval(() => process.stdout.write(JSON.stringify(c) + '\\n'), 200);
`;

interface FloodCounts {
  readonly started: number;
  readonly connected: number;
  readonly closed: number;
  readonly errors: number;
}

/** Starts the flooder, as `nobody` (65534) when we are root so the flood is unprivileged. */
function flood(port: number, count: number): { child: ChildProcess; last: () => FloodCounts | null; user: string } {
  const asNobody = process.getuid?.() === 0;
  const child = spawn(process.execPath, ['-e', FLOODER], {
    cwd: '/',
    env: { HOST: '127.0.0.1', PORT: String(port), COUNT: String(count) },
    stdio: ['ignore', 'pipe', 'inherit'],
    ...(asNobody ? { uid: 65534, gid: 65534 } : {}),
  });
  let last: FloodCounts | null = null;
  let buffer = '';
  child.stdout.on('data', (d: Buffer) => {
    buffer += d.toString();
    const lines = buffer.split('\n');
    buffer = lines.pop() ?? '';
    const line = lines.at(-1);
    if (line !== undefined && line !== '') last = JSON.parse(line) as FloodCounts;
  });
  return { child, last: () => last, user: asNobody ? 'nobody (65534)' : 'the current user' };
}

function daemon(config: string, log: string, fdLimit?: number): ChildProcess {
  const fd = openSync(log, 'a');
  try {
    const args = [BIN, 'start', '--config', config];
    // prlimit execs the command: the child's pid is the daemon's.
    return fdLimit === undefined
      ? spawn(process.execPath, args, { stdio: ['ignore', fd, fd] })
      : spawn('prlimit', [`--nofile=${fdLimit}:${fdLimit}`, process.execPath, ...args], { stdio: ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
}

/** A `cohort status --json` the daemon answered: exit 0 (quorate) or 3 (not quorate), with its status. */
function answered(run: CommandRun): boolean {
  return (run.code === 0 || run.code === 3) && (JSON.parse(run.stdout) as Record<string, unknown>)['nodeId'] === 1;
}

function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

async function status(socket: string): Promise<Record<string, ApiData> | null> {
  try {
    await using conn = await connectLocal({ socket, timeoutMs: 1000 });
    return (await conn.request('status', null, { signal: AbortSignal.timeout(1000) })) as Record<string, ApiData>;
  } catch {
    return null;
  }
}

function httpGet(url: string): Promise<{ code: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        resolve({ code: res.statusCode ?? 0, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url} timed out`)));
    req.on('error', reject);
  });
}

async function cluster(nodes: number): Promise<{ dir: string; base: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'cohort-caps-'));
  const base = await findFreePortBlock(nodes, { ...TEST_PORT_BLOCKS, attempts: 30 });
  assert.ok(base !== null, 'free loopback ports');
  assert.equal(await runInit({ nodes, dir, basePort: base }, { out: () => undefined, err: () => undefined }), 0);
  return { dir, base };
}

async function stopAll(children: readonly ChildProcess[]): Promise<void> {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  for (const c of children)
    await exitOf(c, 10_000).catch(async () => {
      c.kill('SIGKILL');
      await exitOf(c, 2000).catch(() => undefined);
    });
}

function skipWithoutPrlimit(t: TestContext): boolean {
  if (HAVE_PRLIMIT && process.platform === 'linux') return false;
  t.skip('needs prlimit (util-linux) and /proc');
  return true;
}

test('a flood of idle connections on the metrics port leaves the node its descriptors, its API and its peers', async (t) => {
  if (skipWithoutPrlimit(t)) return;
  const { dir, base } = await cluster(3);
  const children: ChildProcess[] = [];
  let flooder: ChildProcess | undefined;
  try {
    const socket = (i: number): string => join(dir, `node-${i}`, 'cohort.sock');
    const log = (i: number): string => join(dir, `node-${i}.log`);
    for (let i = 1; i <= 3; i++)
      children.push(daemon(join(dir, `node-${i}.yaml`), log(i), i === 1 ? FLOOD_FD_LIMIT : undefined));
    const allIn = async (): Promise<Record<string, ApiData> | null> => {
      const ss = await Promise.all([1, 2, 3].map((i) => status(socket(i))));
      const ok = ss.every((s) => s?.['quorate'] === true && (s['members'] as unknown[]).length === 3);
      return ok ? (ss[0] ?? null) : null;
    };
    const up = await waitFor('three quorate nodes', 30_000, allIn);
    const pid = children[0]?.pid ?? -1;
    const baseline = openFds(pid);
    // The cap the daemon logged at start (read before asserting anything, so old code fails on behaviour).
    const cap = Number(/at most (\d+) http/.exec(await readFile(log(1), 'utf8'))?.[1] ?? HTTP_CONNECTIONS_MAX);

    const f = flood(base + 101, FLOOD_CONNECTIONS);
    flooder = f.child;
    const flooded = await waitFor(`${FLOOD_CONNECTIONS} connections opened by ${f.user}`, 15_000, () => {
      const c = f.last();
      return Promise.resolve(
        c !== null && c.started === FLOOD_CONNECTIONS && c.connected + c.errors >= c.started ? c : null,
      );
    });
    const during = openFds(pid);
    process.stderr.write(
      `# flood of ${FLOOD_CONNECTIONS} by ${f.user}: ${flooded.value.connected} connected, ${flooded.value.closed} closed by node 1 so far (cap ${cap}); node 1 holds ${during} descriptors (${baseline} before, limit ${FLOOD_FD_LIMIT})\n`,
    );
    // Old code: the flood takes every descriptor and `cohort status` fails with exit 4 (write EPIPE).
    // The node answers (exit 0, or 3 if a loaded machine let its lease lapse): it is reachable.
    const answer = await runCohort(['status', '--json', '--socket', socket(1)]);
    assert.ok(answered(answer), `cohort status during the flood: exit ${answer.code} ${answer.stderr}`);
    assert.ok(cap > 0 && cap < FLOOD_FD_LIMIT / 4, `node 1's HTTP cap (${cap}) is sized from its 512 limit`);
    assert.ok(during <= baseline + cap + 8, `descriptors held during the flood: ${during}`);

    // An election during the flood: the leader (or node 2) restarts; node 1 takes its lanes back.
    const leader = up.value['leaderId'] as number;
    const victim = leader === 1 ? 2 : leader;
    const old = children[victim - 1];
    assert.ok(old !== undefined);
    old.kill('SIGTERM');
    assert.equal(await exitOf(old, 10_000), 0);
    children[victim - 1] = daemon(join(dir, `node-${victim}.yaml`), log(victim));
    const back = await waitFor(`node ${victim} back in the view, three quorate`, 30_000, allIn);
    process.stderr.write(
      `# node ${victim} restarted during the flood; all three quorate again in ${Math.round(back.ms)} ms\n`,
    );

    // The held connections time out: the node's descriptors come back while the flooder still holds its ends.
    const recovered = await waitFor('node 1 back to its descriptors', HTTP_IDLE_MS + 10_000, () =>
      Promise.resolve(openFds(pid) <= baseline + 8 ? openFds(pid) : null),
    );
    process.stderr.write(`# idle flood connections timed out: node 1 holds ${recovered.value} descriptors\n`);
    flooder.kill('SIGKILL');
    await exitOf(flooder, 5000);

    let health = '';
    const healthy = await waitFor('node 1 healthy (/healthz 200)', 15_000, async () => {
      const h = await httpGet(`http://127.0.0.1:${base + 101}/healthz`);
      health = h.body;
      return h.code === 200 ? true : null;
    }).catch((e: unknown) => {
      throw new Error(`${e instanceof Error ? e.message : String(e)}: ${health}`);
    });
    process.stderr.write(`# /healthz 200 after the flood in ${Math.round(healthy.ms)} ms\n`);
    const metrics = await httpGet(`http://127.0.0.1:${base + 101}/metrics`);
    const refused = Number(/cohort_connections_refused_total\{listener="http"\} (\d+)/.exec(metrics.body)?.[1]);
    assert.ok(refused >= FLOOD_CONNECTIONS - cap - 50, `refusals counted: ${refused}`);
    const warnings = (await readFile(log(1), 'utf8')).split('\n').filter((l) => /refused a connection/.test(l));
    assert.ok(warnings.length >= 1 && warnings.length <= 4, `rate-limited refusal lines: ${warnings.length}`);
    assert.match(
      warnings[0] ?? '',
      /metrics http 127\.0\.0\.1:\d+: refused a connection \(at most \d+ connections at once\)/,
    );
  } finally {
    flooder?.kill('SIGKILL');
    await stopAll(children);
    await rm(dir, { recursive: true, force: true });
  }
});

test('idle API clients never lock the CLI out; when every slot is busy it exits 7 and the daemon logs it', async () => {
  const { dir } = await cluster(1);
  const socket = join(dir, 'node-1', 'cohort.sock');
  const log = join(dir, 'node-1.log');
  const node = daemon(join(dir, 'node-1.yaml'), log);
  const clients: ClientConnection[] = [];
  try {
    await waitFor('node 1 quorate', 30_000, async () => ((await status(socket))?.['quorate'] === true ? true : null));
    const slots = Number(/\((\d+) client slots\)/.exec(await readFile(log, 'utf8'))?.[1] ?? API_CLIENTS_MAX);
    assert.ok(slots >= 8, `client slots: ${slots}`);
    for (let i = 0; i < slots; i++) clients.push(await connectLocal({ socket, clientName: `idle ${i}` }));
    await sleep(1500); // past the eviction age: every slot is held by an idle client

    // Old code: exit 1 "serves at most 64 API clients" until a client goes away by itself.
    const first = await runCohort(['status', '--json', '--socket', socket]);
    assert.ok(answered(first), `exit ${first.code}: ${first.stderr}`);
    const evicted = clients.filter((c) => !c.open);
    assert.equal(evicted.length, 1, 'exactly one idle client gave its slot');
    await assert.rejects(evicted[0]?.request('status') ?? Promise.resolve(), (e: unknown) => {
      return e instanceof CohortClientError && e.code === 'IDLE' && /to give its slot to a new client/.test(e.message);
    });

    // Every slot busy: a subscription is never idle, so nobody is evicted and the CLI is refused.
    const busy = clients.filter((c) => c.open);
    busy.push(await connectLocal({ socket, clientName: 'one more' }));
    clients.push(busy.at(-1) as ClientConnection);
    assert.equal(busy.length, slots);
    const streams = busy.map((c) => c.stream('events', { follow: true }));
    await Promise.all(streams.map((st) => st.next())); // every subscription is live on the daemon
    const refused = await runCohort(['status', '--socket', socket]);
    assert.equal(refused.code, 7, `${refused.stdout}${refused.stderr}`);
    assert.equal(refused.stderr.trim().split('\n').length, 1, 'one line');
    assert.match(refused.stderr, /^cohort status: every one of the \d+ API client slots is busy .*retry later/);
    assert.ok(busy.every((c) => c.open));
    await waitFor('the refusal in the daemon log', 5000, async () =>
      /api socket .*: refused a connection \(every one of the \d+ client slots is busy\)/.test(
        await readFile(log, 'utf8'),
      )
        ? true
        : null,
    );
    for (const s of streams) await s.return();
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await stopAll([node]);
    await rm(dir, { recursive: true, force: true });
  }
});

test('a limit too low for the descriptor budget refuses to start: exit 1, one line naming the limit to raise', async (t) => {
  if (skipWithoutPrlimit(t)) return;
  const { dir } = await cluster(3);
  try {
    // 256: far below what a node needs (about 460), yet enough for Node to load the daemon's
    // modules, which it reads concurrently (at 128 the module loader itself can hit EMFILE).
    const child = spawn(
      'prlimit',
      ['--nofile=256:256', process.execPath, BIN, 'start', '--config', join(dir, 'node-1.yaml')],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const code = await exitOf(child, 10_000).catch((e: unknown) => {
      child.kill('SIGKILL');
      throw e;
    });
    assert.equal(code, 1, stderr);
    const lines = stderr.trim().split('\n');
    assert.equal(lines.length, 1, stderr);
    assert.match(
      lines[0] ?? '',
      /^cohort start: cannot start: the open-file limit \(RLIMIT_NOFILE\) is 256, too low for this node: it needs at least (\d+) descriptors .*raise the limit \(ulimit -n, LimitNOFILE= in a systemd unit\) to at least \1/,
    );
    assert.equal(
      await stat(join(dir, 'node-1', 'cohort.lock')).then(
        () => true,
        () => false,
      ),
      false,
      'nothing taken',
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
