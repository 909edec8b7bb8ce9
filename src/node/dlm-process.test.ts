// Proves the DLM with three real daemons on loopback and every client a separate `cohort lock`
// process: three EX holders on three nodes contending for one name run their commands one at a
// time (the timestamps the commands write show no two critical sections overlap); PR holders on
// two nodes share (each command sees the other inside its own critical section) while an EX
// `--nonblock` is refused with exit 8; COMMAND's exit code (and a signal death as 128+N) passes
// through; a client killed with kill -9 while holding is released by its daemon at once, so a
// waiter on another node runs within a bound (measured and printed); and a client killed with
// kill -9 while waiting leaves no request behind: the master's queue drops it, the holder's
// unlock grants the next live waiter, and no node's dump shows a stale lock. The last subtest kills
// the daemon that masters a held lock: once it is fenced the survivors rebuild the resource from
// their own locks (DLM recovery), so a second EX holder is never granted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ApiData } from '../client/index.js';
import { ProcessCluster, exitOf, runCohort, waitFor } from './process-cluster.js';

const BIN = fileURLToPath(new URL('../../../bin/cohort.js', import.meta.url));
const QUORATE_BOUND_MS = 20_000;
/** Longest wait for one `cohort lock` process to end once it may. */
const EXIT_BOUND_MS = 15_000;
/** Longest wait for a queue or a marker file to show what a step expects. */
const STEP_BOUND_MS = 10_000;
/** kill -9 of a holder to its waiter's COMMAND running, on two shared cores (expected: well under a second). */
const HANDOVER_BOUND_MS = 1500;
const LS = 'proc';

type Obj = Readonly<Record<string, ApiData>>;

function log(line: string): void {
  process.stderr.write(`# ${line}\n`);
}

/** One `cohort lock` process, in its own process group (so a kill -9 hits the CLI alone). */
interface LockProc {
  readonly child: ChildProcess;
  readonly stderr: () => string;
}

const started: ChildProcess[] = [];

/** Starts `cohort lock --socket S(node) ARGS NAME -- sh -c SCRIPT` in `cwd`. */
function lockProc(
  c: ProcessCluster,
  node: number,
  cwd: string,
  args: readonly string[],
  name: string,
  script: string,
): LockProc {
  const child = spawn(
    process.execPath,
    [BIN, 'lock', '--socket', c.socket(node), '--lockspace', LS, ...args, name, '--', 'sh', '-c', script],
    { cwd, detached: true, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NO_COLOR: '1' } },
  );
  started.push(child);
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return { child, stderr: () => stderr };
}

/** Kills what is left of every process group this file started (the CLIs' orphaned commands). */
function killAll(): void {
  for (const child of started) {
    if (child.pid === undefined) continue;
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e; // ESRCH: the group is already gone
    }
  }
  started.length = 0;
}

async function exited(p: LockProc): Promise<number | string> {
  return exitOf(p.child, EXIT_BOUND_MS);
}

async function waitFile(path: string): Promise<number> {
  return (await waitFor(`${path} exists`, STEP_BOUND_MS, () => Promise.resolve(existsSync(path) ? true : null))).ms;
}

/** `resource` as its master shows it (`{node, queues}`), or null when no node masters it with locks. */
async function mastered(
  c: ProcessCluster,
  resource: string,
): Promise<{ node: number; granted: Obj[]; waiting: Obj[]; converting: Obj[] } | null> {
  for (const id of c.ids) {
    const d = (await c.request(id, 'dlm.dump', { lockspace: LS })) as Obj;
    const r = (d['mastered'] as readonly Obj[]).find((x) => x['resource'] === resource);
    if (r === undefined) continue;
    const q = (k: string): Obj[] => [...(r[k] as readonly Obj[])];
    if (q('granted').length + q('waiting').length + q('converting').length > 0)
      return { node: id, granted: q('granted'), waiting: q('waiting'), converting: q('converting') };
  }
  return null;
}

/** Waits until the master of `resource` shows `waiting` requests from exactly these nodes (in order). */
async function waitQueue(c: ProcessCluster, resource: string, waiting: readonly number[]): Promise<number> {
  const r = await waitFor(`${resource}: waiting queue [${waiting.join(', ')}]`, STEP_BOUND_MS, async () => {
    const m = await mastered(c, resource);
    const nodes = m?.waiting.map((l) => Number(l['node'])) ?? [];
    return nodes.join() === waiting.join() ? true : null;
  });
  return r.ms;
}

/** Every node's own locks on `resource` in the test lockspace. */
async function localLocks(c: ProcessCluster, resource: string): Promise<Obj[]> {
  const out: Obj[] = [];
  for (const id of c.ids) {
    const d = (await c.request(id, 'dlm.dump', { lockspace: LS })) as Obj;
    out.push(...(d['locks'] as readonly Obj[]).filter((l) => l['resource'] === resource));
  }
  return out;
}

/** `[start, end]` in ms of each id's critical section, from lines `ID start|end NANOSECONDS`. */
function sections(text: string): Map<string, [number, number]> {
  const m = new Map<string, [number, number]>();
  for (const line of text.trim().split('\n')) {
    const [id, what, ns] = line.split(' ');
    assert.ok(id !== undefined && ns !== undefined && /^\d+$/.test(ns), `a timestamp line: ${line}`);
    const ms = Number(BigInt(ns) / 1000n) / 1000;
    const s = m.get(id) ?? [NaN, NaN];
    if (what === 'start') s[0] = ms;
    else s[1] = ms;
    m.set(id, s);
  }
  return m;
}

const stamp = (id: string, what: string): string => `echo "${id} ${what} $(date +%s%N)" >> sections`;

test('cohort lock between real processes on three real daemons', async (t) => {
  const c = await ProcessCluster.create(3);
  const dir = await mkdtemp(join(tmpdir(), 'cohort-dlm-proc-'));
  try {
    // A dead node is fenced by killing its process (the last subtest kills a daemon).
    await c.appendConfig(['fencing:', '  devices:', c.processDevice('kill'), '  levels: [[kill]]'].join('\n'));
    c.startAll();
    await c.waitQuorate(c.ids, QUORATE_BOUND_MS);

    await t.test('EX holders on three nodes serialise: no two critical sections overlap', async () => {
      const cwd = await mkdtemp(join(dir, 'ex-'));
      const procs = c.ids.map((id) =>
        lockProc(c, id, cwd, [], 'serial', `${stamp(`n${id}`, 'start')}; sleep 0.4; ${stamp(`n${id}`, 'end')}`),
      );
      const codes = await Promise.all(procs.map(exited));
      assert.deepEqual(codes, [0, 0, 0], procs.map((p) => p.stderr()).join(''));
      const s = [...sections(await readFile(join(cwd, 'sections'), 'utf8')).entries()].sort(
        (a, b) => a[1][0] - b[1][0],
      );
      assert.equal(s.length, 3, 'three critical sections');
      for (let i = 1; i < s.length; i++) {
        const [prevId, [, prevEnd]] = s[i - 1] ?? ['', [NaN, NaN]];
        const [id, [start]] = s[i] ?? ['', [NaN, NaN]];
        assert.ok(start >= prevEnd, `${id} started ${start - prevEnd} ms after ${prevId} ended: they overlap`);
        log(`EX: ${id} started ${Math.round(start - prevEnd)} ms after ${prevId} ended`);
      }
    });

    await t.test('PR holders on two nodes share; an EX --nonblock meanwhile exits 8', async () => {
      const cwd = await mkdtemp(join(dir, 'pr-'));
      // Each command marks itself in, waits (bounded) to see the other in too, then waits for `done`.
      const script = (me: string, other: string): string =>
        `${stamp(me, 'start')}; touch ${me}; i=0; while [ ! -e ${other} ] || [ ! -e done ]; do ` +
        `[ $i -ge 200 ] && exit 1; sleep 0.05; i=$((i+1)); done; ${stamp(me, 'end')}`;
      const a = lockProc(c, 1, cwd, ['--mode', 'PR'], 'shared', script('a', 'b'));
      const b = lockProc(c, 2, cwd, ['--mode', 'PR'], 'shared', script('b', 'a'));
      await waitFile(join(cwd, 'a'));
      await waitFile(join(cwd, 'b'));
      const ex = await runCohort([
        'lock',
        '--socket',
        c.socket(3),
        '--lockspace',
        LS,
        '--nonblock',
        'shared',
        '--',
        'true',
      ]);
      assert.equal(ex.code, 8, ex.stderr);
      assert.match(ex.stderr, /^cohort lock: "shared" \(EX\) in lockspace proc is held in a conflicting mode/);
      await writeFile(join(cwd, 'done'), '');
      assert.deepEqual(await Promise.all([exited(a), exited(b)]), [0, 0], a.stderr() + b.stderr());
      const s = sections(await readFile(join(cwd, 'sections'), 'utf8'));
      const [as, ae] = s.get('a') ?? [NaN, NaN];
      const [bs, be] = s.get('b') ?? [NaN, NaN];
      assert.ok(as < be && bs < ae, `the PR sections overlap: a [${as}, ${ae}], b [${bs}, ${be}]`);
    });

    await t.test("COMMAND's exit code passes through; a signal death is 128+N", async () => {
      const code = await runCohort([
        'lock',
        '--socket',
        c.socket(2),
        '--lockspace',
        LS,
        'code',
        '--',
        'sh',
        '-c',
        'exit 42',
      ]);
      assert.deepEqual([code.code, code.stderr], [42, '']);
      const killed = await runCohort([
        'lock',
        '--socket',
        c.socket(3),
        '--lockspace',
        LS,
        'code',
        '--',
        'sh',
        '-c',
        'kill -KILL $$',
      ]);
      assert.equal(killed.code, 137);
      assert.deepEqual(await localLocks(c, 'code'), [], 'released after each');
    });

    await t.test('kill -9 of a client holding the lock: a waiter on another node runs at once', async () => {
      const times: number[] = [];
      for (const [holderNode, waiterNode] of [
        [1, 3],
        [2, 1],
        [3, 2],
      ] as const) {
        const cwd = await mkdtemp(join(dir, 'k9-'));
        const name = `held-${holderNode}`;
        const holder = lockProc(c, holderNode, cwd, [], name, 'touch held; exec sleep 60');
        await waitFile(join(cwd, 'held'));
        const waiter = lockProc(c, waiterNode, cwd, [], name, 'date +%s%N > granted');
        await waitQueue(c, name, [waiterNode]);
        const killedAtMs = Date.now();
        holder.child.kill('SIGKILL');
        assert.equal(await exited(waiter), 0, waiter.stderr());
        const grantedNs = BigInt((await readFile(join(cwd, 'granted'), 'utf8')).trim());
        const ms = Number(grantedNs / 1_000_000n) - killedAtMs;
        times.push(ms);
        log(
          `kill -9 of the holder on node ${holderNode} -> the waiter's COMMAND on node ${waiterNode} ran ${ms} ms later`,
        );
        assert.ok(ms < HANDOVER_BOUND_MS, `the waiter ran ${ms} ms after the kill -9 (bound ${HANDOVER_BOUND_MS} ms)`);
        assert.equal(await exited(holder), 'SIGKILL');
        killAll(); // the holder's orphaned `sleep 60`
        assert.deepEqual(await localLocks(c, name), [], 'no lock left on any node');
      }
      log(`kill -9 -> waiter granted and running: ${times.join(', ')} ms`);
    });

    await t.test(
      'kill -9 of a client waiting for the lock: its request disappears; the next live waiter gets it',
      async () => {
        const cwd = await mkdtemp(join(dir, 'w9-'));
        const name = 'waited';
        const holder = lockProc(
          c,
          1,
          cwd,
          [],
          name,
          'touch held; i=0; while [ ! -e release ]; do [ $i -ge 300 ] && exit 1; sleep 0.05; i=$((i+1)); done',
        );
        await waitFile(join(cwd, 'held'));
        const doomed = lockProc(c, 2, cwd, [], name, 'touch doomed-ran');
        await waitQueue(c, name, [2]);
        const live = lockProc(c, 3, cwd, [], name, 'touch live-ran');
        await waitQueue(c, name, [2, 3]);
        doomed.child.kill('SIGKILL');
        const goneMs = await waitQueue(c, name, [3]);
        log(`kill -9 of a waiter on node 2 -> its request left the master's queue within ${Math.round(goneMs)} ms`);
        assert.deepEqual(
          (await localLocks(c, name)).map((l) => l['granted']),
          ['EX', null],
          "node 1's granted lock and node 3's waiting request; nothing of node 2's",
        );
        await writeFile(join(cwd, 'release'), '');
        assert.deepEqual([await exited(holder), await exited(live), await exited(doomed)], [0, 0, 'SIGKILL']);
        assert.ok(existsSync(join(cwd, 'live-ran')), "the live waiter's COMMAND ran");
        assert.ok(!existsSync(join(cwd, 'doomed-ran')), "the killed waiter's COMMAND never ran");
        assert.equal(await mastered(c, name), null, 'the master holds no granted or queued request');
        assert.deepEqual(await localLocks(c, name), [], 'no node has a lock on it');
        const dump = await runCohort(['locks', 'dump', LS, '--socket', c.socket(1)]);
        assert.equal(dump.code, 0, dump.stderr);
        assert.doesNotMatch(dump.stdout, /waited\s+\S*\d\/\d+/, 'cohort locks dump shows no request on it');
      },
    );

    // Last: it kills a daemon.
    await t.test('kill -9 of the node that masters a held lock: no second EX holder is granted', async () => {
      const cwd = await mkdtemp(join(dir, 'master-'));
      const name = 'remaster';
      // Node 3 asks first, so it masters the name (and keeps the resource a while after the unlock).
      const first = await runCohort(['lock', '--socket', c.socket(3), '--lockspace', LS, name, '--', 'true']);
      assert.equal(first.code, 0, first.stderr);
      const holder = lockProc(c, 1, cwd, [], name, 'touch held; exec sleep 60');
      await waitFile(join(cwd, 'held'));
      assert.equal((await mastered(c, name))?.node, 3, 'node 3 masters it');
      await c.kill(3);
      await waitFor('lockspace proc without node 3, running', QUORATE_BOUND_MS, async () => {
        const list = (await c.request(1, 'dlm.lockspaces').catch(() => [])) as readonly Obj[];
        const ls = list.find((x) => x['name'] === LS);
        return ls !== undefined &&
          ls['paused'] === false &&
          ls['recovering'] === false &&
          JSON.stringify(ls['members']) === '[1,2]'
          ? true
          : null;
      });
      // The lockspace group's recovery round finishes: the DLM reported `started` on both survivors.
      await waitFor(`the recovery round of dlm:${LS} finished`, QUORATE_BOUND_MS, async () => {
        const r = (await c.request(1, 'recovery').catch(() => null)) as Obj | null;
        const rounds = (r?.['rounds'] ?? []) as readonly Obj[];
        const round = rounds.find((x) => x['group'] === `dlm:${LS}`);
        return round !== undefined && (round['phase'] === 'finished' || round['phase'] === 'idle') ? true : null;
      });
      const second = await runCohort([
        'lock',
        '--socket',
        c.socket(2),
        '--lockspace',
        LS,
        '--wait',
        '3',
        name,
        '--',
        'true',
      ]);
      assert.equal(holder.child.exitCode, null, 'the first holder still runs');
      assert.equal(second.code, 8, `a second EX was granted (exit ${second.code}) while node 1 holds ${name}`);
    });
  } finally {
    killAll();
    await c.close();
    await rm(dir, { recursive: true, force: true });
  }
});
