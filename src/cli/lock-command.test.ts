// Proves `cohort lock`, `cohort lockspaces` and `cohort locks dump` over a real API socket served
// by the daemon's own handlers on a node of an embedded cluster: bad arguments are usage errors
// (exit 2) with one line naming the problem, before any daemon is asked; COMMAND's exit code
// passes through (a signal death as 128+N, a missing command as 127) and the lock is released
// after it; `--nonblock` and `--wait` exit 8 (or `--conflict-exit-code`) while another node holds
// the lock, without running COMMAND; a signal while waiting cancels the request (128+N, COMMAND
// not run), a signal while COMMAND runs is forwarded to it; an unreachable daemon exits 4; and
// the two listing commands show the lockspace, the master's queues and this node's locks; and when
// the daemon goes away while COMMAND runs, COMMAND gets SIGTERM and the CLI exits 4 with one line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCluster } from '../embedded/index.js';
import { registerApiHandlers } from '../node/api-handlers.js';
import { clientFailure, withApiServer } from '../testing/api-support.js';
import { LOCK_EXIT, lockUsageProblem, runLock, shellExitCode, type LockCliOptions } from './lock-command.js';
import { LOCKS_EXIT, runLocks } from './locks-command.js';
import { main } from './main.js';
import type { StatusIo } from './status-command.js';

function capture(): { out: string[]; err: string[]; io: StatusIo } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (t) => out.push(t), err: (t) => err.push(t) } };
}

/** Runs `main` with stderr captured; resolves to the exit code and the lines. */
async function mainCapturing(args: readonly string[]): Promise<{ code: number; err: string }> {
  const stderr = process.stderr.write.bind(process.stderr);
  let err = '';
  process.stderr.write = (chunk: string | Uint8Array): boolean => {
    err += typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk);
    return true;
  };
  try {
    return { code: await main(['node', 'cohort', ...args]), err };
  } finally {
    process.stderr.write = stderr;
  }
}

test('bad arguments are usage errors (exit 2) with one line naming the problem, before any daemon is asked', async () => {
  const nowhere = ['--socket', join(tmpdir(), 'cohort-lock-none.sock')];
  const cases: [readonly string[], RegExp][] = [
    [['lock', 'job'], /give the COMMAND to run after --/],
    [['lock', 'job', '--nonblock', '--wait', '1', '--', 'true'], /--wait SECONDS or --nonblock, not both/],
    [['lock', 'job', '--wait', 'soon', '--', 'true'], /--wait must be a number of seconds/],
    [['lock', 'job', '--wait', '-1', '--', 'true'], /--wait must be a number of seconds/],
    [['lock', 'job', '--mode', 'XX', '--', 'true'], /--mode must be one of EX, PW, PR, CW, CR/],
    [['lock', 'job', '--mode', 'NL', '--', 'true'], /--mode must be one of/],
    [['lock', 'job', '--lockspace', 'a b', '--', 'true'], /--lockspace: a lockspace name is/],
    [['lock', 'x'.repeat(65), '--', 'true'], /NAME is 1 to 64 bytes; got 65/],
    [['lock', 'job', '--conflict-exit-code', '300', '--', 'true'], /--conflict-exit-code must be an integer/],
    [['lock'], /missing required argument/],
    [['locks'], /Usage: cohort locks/],
    [['locks', 'dump'], /missing required argument/],
  ];
  for (const [args, message] of cases) {
    const r = await mainCapturing(args.length === 1 && args[0] === 'locks' ? args : [...args, ...nowhere]);
    assert.equal(r.code, LOCK_EXIT.usage, `cohort ${args.join(' ')}: ${r.err}`);
    assert.match(r.err, message, `cohort ${args.join(' ')}`);
  }
  assert.equal(lockUsageProblem({ name: 'job', command: ['true'], mode: 'PR', waitSeconds: 0 }), null);
  assert.equal(shellExitCode(null, 'SIGKILL'), 137);
  assert.equal(shellExitCode(3, null), 3);
});

test('an unreachable daemon exits 4 with one line naming the socket; COMMAND is not run', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cohort-lock-'));
  try {
    const socket = join(dir, 'none.sock');
    const marker = join(dir, 'ran');
    const r = capture();
    assert.equal(await runLock({ name: 'job', command: ['touch', marker], socket }, r.io), LOCK_EXIT.unreachable);
    assert.equal(r.err.length, 1);
    assert.ok(r.err[0]?.includes(socket), r.err.join(''));
    assert.equal(existsSync(marker), false, 'COMMAND did not run');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('cohort lock against a live node: exit codes pass through, --nonblock/--wait exit 8 while held, signals', async () => {
  await using cluster = await startCluster({ nodes: 3 });
  const node = cluster.nodes[0]?.clusterNode;
  assert.ok(node);
  const dir = await mkdtemp(join(tmpdir(), 'cohort-lock-'));
  try {
    await withApiServer(
      (s) => {
        registerApiHandlers(s, node, { clusterName: 'test', fingerprint: 'f', startedAtMs: 0, links: () => [] });
      },
      async (socket) => {
        const run = (o: Omit<LockCliOptions, 'socket'>): Promise<{ code: number; err: string }> => {
          const c = capture();
          return runLock({ ...o, socket }, c.io).then((code) => ({ code, err: c.err.join('') }));
        };
        // Exit codes pass through; the lock is released after each, or the next would wait.
        assert.equal((await run({ name: 'job', command: ['sh', '-c', 'exit 3'] })).code, 3);
        assert.equal((await run({ name: 'job', command: ['sh', '-c', 'kill -TERM $$'] })).code, 143);
        const missing = await run({ name: 'job', command: [join(dir, 'no-such-command')] });
        assert.equal(missing.code, LOCK_EXIT.notFound);
        assert.match(missing.err, /^cohort lock: cannot run "[^"]+no-such-command": .*ENOENT/);
        assert.equal((await run({ name: 'job', nonblock: true, command: ['true'] })).code, 0, 'released each time');

        // Another node holds it in EX.
        const other = await cluster.client(2).dlm.lockspace('default');
        const held = await other.lock('job', 'EX');
        const marker = join(dir, 'ran');
        const nonblock = await run({ name: 'job', nonblock: true, command: ['touch', marker] });
        assert.deepEqual(
          [nonblock.code, nonblock.err],
          [
            LOCK_EXIT.notGranted,
            'cohort lock: "job" (EX) in lockspace default is held in a conflicting mode; not waiting (--nonblock)\n',
          ],
        );
        const t0 = performance.now();
        const waited = await run({ name: 'job', mode: 'PR', waitSeconds: 0.3, command: ['touch', marker] });
        const waitedMs = performance.now() - t0;
        assert.equal(waited.code, LOCK_EXIT.notGranted, waited.err);
        assert.match(waited.err, /^cohort lock: "job" \(PR\) in lockspace default was not granted within 0\.3 s/);
        assert.ok(waitedMs >= 250 && waitedMs < 3000, `gave up after ${Math.round(waitedMs)} ms`);
        const conflict = await run({ name: 'job', waitSeconds: 0, conflictExitCode: 9, command: ['touch', marker] });
        assert.equal(conflict.code, 9);
        assert.equal(existsSync(marker), false, 'COMMAND never ran while the lock was held elsewhere');

        // A signal while waiting cancels the request; COMMAND is not run.
        const signals = new EventEmitter();
        const c1 = capture();
        const waiting = runLock({ name: 'job', socket, signals, command: ['touch', marker] }, c1.io);
        await sleep(200);
        signals.emit('SIGINT');
        assert.equal(await waiting, 130);
        assert.deepEqual(c1.err, ['cohort lock: SIGINT while waiting for the lock; COMMAND not run\n']);
        assert.equal(existsSync(marker), false);
        await held.unlock();

        // A signal while COMMAND runs is forwarded to it; the lock is held until it ends.
        const started = join(dir, 'started');
        const c2 = capture();
        const running = runLock(
          { name: 'job', socket, signals, command: ['sh', '-c', `touch ${started}; exec sleep 20`] },
          c2.io,
        );
        for (let i = 0; i < 100 && !existsSync(started); i++) await sleep(20);
        assert.ok(existsSync(started), 'COMMAND started');
        assert.equal((await clientFailure(other.lock('job', 'PR', { flags: ['NOQUEUE'] }))).code, 'NOT_GRANTED');
        signals.emit('SIGTERM');
        assert.equal(await running, 143, c2.err.join(''));
        const after = await other.lock('job', 'EX', { flags: ['NOQUEUE'] });
        await after.unlock();
      },
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('cohort lockspaces and cohort locks dump show the lockspace, the queues and the locks; --json; exit 5', async () => {
  await using cluster = await startCluster({ nodes: 3 });
  const node = cluster.nodes[0]?.clusterNode;
  assert.ok(node);
  await withApiServer(
    (s) => {
      registerApiHandlers(s, node, { clusterName: 'test', fingerprint: 'f', startedAtMs: 0, links: () => [] });
    },
    async (socket) => {
      const none = capture();
      assert.equal(await runLocks(null, { socket }, none.io), LOCKS_EXIT.ok);
      assert.deepEqual(none.out, ['no lockspaces open on this node (cohort lock opens one)\n']);
      const missing = capture();
      assert.equal(await runLocks('app', { socket }, missing.io), LOCKS_EXIT.notFound);
      assert.match(missing.err.join(''), /^cohort locks dump: .*has not opened lockspace app\n$/);

      // Node 1 holds `config` in PR; node 2 waits for EX: whoever masters it shows both.
      const [a, b] = await Promise.all([1, 2].map((i) => cluster.client(i).dlm.lockspace('app')));
      assert.ok(a !== undefined && b !== undefined);
      const held = await a.lock('config', 'PR');
      const waiting = b.lock('config', 'EX');
      await sleep(100);
      const list = capture();
      assert.equal(await runLocks(null, { socket }, list.io), LOCKS_EXIT.ok);
      const rows = list.out.join('').trimEnd().split('\n');
      assert.match(rows[0] ?? '', /^LOCKSPACE\s+MEMBERS\s+GEN\s+LOCKS\s+MASTERED\s+DIRECTORY\s+STATE$/);
      assert.match(rows[1] ?? '', /^app\s+1 2\s+\d+\s+1\s+\d+\s+\d+\s+running$/);
      const json = capture();
      assert.equal(await runLocks(null, { socket, json: true }, json.io), LOCKS_EXIT.ok);
      const infos = JSON.parse(json.out.join('')) as { name: string; locks: number; members: number[] }[];
      assert.deepEqual(
        infos.map((i) => [i.name, i.locks, i.members]),
        [['app', 1, [1, 2]]],
      );

      const dump = capture();
      assert.equal(await runLocks('app', { socket }, dump.io), LOCKS_EXIT.ok);
      const text = dump.out.join('');
      assert.match(text, /^lockspace app: generation \d+, members 1 2\n/);
      assert.match(
        text,
        /this node's locks: 1\nLKID\s+RESOURCE\s+GRANTED\s+IN FLIGHT\s+MASTER\s+ORPHAN\n\d+\s+config\s+PR\s+-\s+\d\s+no\n/,
      );
      // The first asker masters a resource (docs/dlm.md): node 1, whose dump shows both queues.
      const masters = await Promise.all(
        [1, 2].map(
          async (i) => (await cluster.client(i).dlm.dump('app')) as unknown as { mastered: { resource: string }[] },
        ),
      );
      const masterIndex = masters.findIndex((d) => d.mastered.some((r) => r.resource === 'config'));
      assert.equal(masterIndex, 0, 'node 1 asked first, so it masters config');
      assert.match(text, /\nconfig\s+1\/\d+ PR\s+-\s+2\/\d+ EX\n/);
      const dumpJson = capture();
      assert.equal(await runLocks('app', { socket, json: true }, dumpJson.io), LOCKS_EXIT.ok);
      const parsed = JSON.parse(dumpJson.out.join('')) as { lockspace: string; locks: { resource: string }[] };
      assert.deepEqual([parsed.lockspace, parsed.locks.map((l) => l.resource)], ['app', ['config']]);

      await held.unlock();
      await (await waiting).unlock();
    },
  );
});

test('the daemon going away while COMMAND runs: one line, COMMAND gets SIGTERM, exit 4', async () => {
  await using cluster = await startCluster({ nodes: 3 });
  const node = cluster.nodes[0]?.clusterNode;
  assert.ok(node);
  const dir = await mkdtemp(join(tmpdir(), 'cohort-lock-'));
  try {
    const servers: { close(): Promise<void> }[] = [];
    await withApiServer(
      (s) => {
        servers.push(s);
        registerApiHandlers(s, node, { clusterName: 'test', fingerprint: 'f', startedAtMs: 0, links: () => [] });
      },
      async (socket) => {
        const started = join(dir, 'started');
        const terminated = join(dir, 'terminated');
        const c = capture();
        const running = runLock(
          {
            name: 'job',
            socket,
            command: [
              'sh',
              '-c',
              `trap 'touch ${terminated}; exit 0' TERM; touch ${started}; while :; do sleep 0.05; done`,
            ],
          },
          c.io,
        );
        for (let i = 0; i < 100 && !existsSync(started); i++) await sleep(20);
        assert.ok(existsSync(started), 'COMMAND started');
        assert.equal(servers.length, 1);
        await servers[0]?.close();
        assert.equal(await running, LOCK_EXIT.unreachable, c.err.join(''));
        assert.deepEqual(c.err, [
          'cohort lock: the connection to the daemon was lost, so the lock is no longer held; stopping COMMAND (SIGTERM)\n',
        ]);
        assert.ok(existsSync(terminated), 'COMMAND was sent SIGTERM');
      },
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
