// Proves embedded mode runs a real cluster in one process: three nodes become quorate; the typed
// client works against the daemon's handlers in-process (KV writes on one node are read on the
// others, CAS and delete, status/nodes/quorum/events typed); stopping the leader leaves a
// majority that commits the next write, the stopped node's clients fail with CONNECTION_LOST,
// and a restart rejoins as a new incarnation that reads what was written meanwhile; every wait
// honours an AbortSignal; and `await using` stops everything with no timer left (checked with a
// control that sees the timers while running, and by a child process that must exit); a leader
// whose fsync fails fail-stops (stopped, with the reason shown) and the others elect.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { CohortClientError, type CohortClient } from '../client/index.js';
import { startCluster, type EmbeddedCluster } from './index.js';
import { clientFailure } from '../testing/api-support.js';

/** Retries `fn` through an election (UNAVAILABLE / NOT_QUORATE / TIMEOUT), up to `ms`. */
async function retry<T>(ms: number, fn: () => Promise<T>): Promise<T> {
  const deadline = performance.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (
        !(e instanceof CohortClientError) ||
        !['UNAVAILABLE', 'NOT_QUORATE', 'TIMEOUT'].includes(e.code) ||
        performance.now() > deadline
      )
        throw e;
      await sleep(50);
    }
  }
}

function timers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
}

test('three nodes become quorate; KV across nodes, typed status, nodes, quorum and events; await using leaves no timer', async () => {
  const before = timers();
  let running: EmbeddedCluster | undefined;
  {
    await using cluster = await startCluster({ nodes: 3 });
    running = cluster;
    assert.ok(timers() > before, 'control: a running cluster holds timers, so the check below can fail');
    await using c1 = cluster.client(1);
    await using c3 = cluster.client(3);
    const put = await c1.kv.put('greeting', 'hello');
    assert.equal(put.version, 1);
    const got = await c3.kv.get('greeting');
    assert.ok(got.found);
    assert.equal(got.text, 'hello');
    assert.deepEqual([...got.value], [...new TextEncoder().encode('hello')]);
    assert.equal(got.modRevision, put.modRevision);
    assert.deepEqual(await cluster.client(2).kv.get('missing'), {
      key: 'missing',
      found: false,
      revision: got.revision,
    });

    const lost = await c3.kv.cas('greeting', 'bye', { expected: 'not the value' });
    assert.equal(lost.succeeded, false);
    assert.equal(lost.text, 'hello', 'a failed CAS shows the current value');
    assert.equal((await c3.kv.cas('greeting', 'bye', { expectedModRevision: put.modRevision })).succeeded, true);
    assert.equal((await c1.kv.cas('fresh', 'v', { expected: null })).succeeded, true);
    assert.equal((await c1.kv.delete('greeting')).deleted, true);
    assert.equal((await c1.kv.delete('greeting')).deleted, false);
    const bad = await clientFailure(c1.kv.get(''));
    assert.equal(bad.code, 'INVALID_ARGUMENT');

    const s = await c3.status();
    assert.equal(s.nodeId, 3);
    assert.equal(s.quorate, true);
    assert.equal(s.cluster, 'embedded');
    assert.deepEqual(
      s.members.map((m) => [m.nodeId, m.state]),
      [
        [1, 'member'],
        [2, 'member'],
        [3, 'member'],
      ],
    );
    assert.equal(s.leaderId, cluster.leader());
    const nodes = await c3.nodes();
    assert.deepEqual(
      nodes.nodes.map((n) => [n.nodeId, n.status, n.self, n.link]),
      [
        [1, 'member', false, 'open'],
        [2, 'member', false, 'open'],
        [3, 'member', true, 'self'],
      ],
    );
    const q = await c1.quorum();
    assert.equal(q.viewQuorate, true);
    assert.equal(q.expectedVotes, 3);

    const joined: number[] = [];
    for await (const e of c1.events({ follow: false }))
      if (e.kind === 'view' && e.payload.change.kind === 'joined') joined.push(e.payload.change.node);
    assert.deepEqual(joined.sort(), [1, 2, 3]);
  }
  assert.equal(
    running.nodes.every((n) => !n.running),
    true,
  );
  await sleep(20); // let the last scheduled deliveries run out
  assert.equal(timers(), before, `timers left after dispose: ${process.getActiveResourcesInfo().join(', ')}`);
});

test('stopping the leader: the survivors commit the next write; its clients fail; a restart rejoins and catches up', async () => {
  await using cluster = await startCluster({ nodes: 3 });
  const leader = cluster.leader();
  assert.ok(leader !== null);
  const old: CohortClient = cluster.client(leader);
  await old.kv.put('k', 'before');
  await cluster.stopNode(leader);
  assert.equal((await clientFailure(old.status())).code, 'CONNECTION_LOST');
  assert.equal(old.open, false);
  assert.equal(
    (() => {
      try {
        cluster.client(leader);
      } catch (e) {
        return e instanceof CohortClientError ? e.code : 'other';
      }
      return 'no error';
    })(),
    'DAEMON_UNREACHABLE',
  );

  const survivor = leader === 1 ? 2 : 1;
  await using c = cluster.client(survivor);
  const t0 = performance.now();
  await retry(8000, () => c.kv.put('k', 'after'));
  assert.ok(performance.now() - t0 < 8000);
  assert.notEqual(cluster.leader(), leader);

  const oldIncarnation = (await c.nodes()).nodes.find((n) => n.nodeId === leader)?.incarnation ?? 0;
  await cluster.restartNode(leader);
  await using back = cluster.client(leader);
  const got = await back.kv.get('k');
  assert.equal(got.found && got.text, 'after', 'the restarted node reads what was written while it was down');
  const s = await back.status();
  assert.equal(s.joined, true);
  assert.ok(s.incarnation > oldIncarnation, 'a restart is a new incarnation');
  assert.ok(s.members.some((m) => m.nodeId === leader && m.incarnation === s.incarnation));
});

test('every wait honours an AbortSignal: calls, streams, and startCluster itself', async () => {
  const early = new AbortController();
  early.abort();
  assert.equal((await clientFailure(startCluster({ nodes: 3, signal: early.signal }))).code, 'ABORTED');
  const slow = await clientFailure(startCluster({ nodes: 3, timeoutMs: 1 }));
  assert.equal(slow.code, 'TIMEOUT');
  assert.match(slow.message, /node \d/);

  await using cluster = await startCluster({ nodes: 3 });
  await using c = cluster.client(1);
  assert.equal((await clientFailure(c.kv.get('x', { signal: early.signal }))).code, 'ABORTED');

  // Node 1 cut off from both peers: a write cannot commit; the caller's deadline ends the wait.
  cluster.setLink(1, 2, false);
  cluster.setLink(1, 3, false);
  const t0 = performance.now();
  const late = await clientFailure(c.kv.put('x', 'y', { signal: AbortSignal.timeout(300) }));
  assert.ok(['TIMEOUT', 'NOT_QUORATE', 'UNAVAILABLE'].includes(late.code), late.code);
  assert.ok(performance.now() - t0 < 2500, 'the caller did not wait for the daemon deadline (5 s)');
  cluster.setLink(1, 2, true);
  cluster.setLink(1, 3, true);

  const ac = new AbortController();
  const events = c.events({ signal: ac.signal });
  const first = await events.next();
  assert.equal(first.done, false);
  setTimeout(() => {
    ac.abort();
  }, 20);
  const drained = (async () => {
    for (;;) if ((await events.next()).done === true) return 'done';
  })();
  assert.equal((await clientFailure(drained)).code, 'ABORTED');
});

test('a process that used an embedded cluster exits on its own after stop (no timer or handle left)', async () => {
  const index = fileURLToPath(new URL('./index.js', import.meta.url));
  const script = `
    const { startCluster } = await import(${JSON.stringify(index)});
    const cluster = await startCluster({ nodes: 3 });
    const c = cluster.client(2);
    await c.kv.put('a', 'b');
    for await (const e of c.events({ follow: true })) { if (e.seq >= 3) break; }
    await cluster[Symbol.asyncDispose]();
    console.log('stopped');
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | string>((resolve) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      resolve('did not exit within 15 s');
    }, 15_000);
    child.on('exit', (c) => {
      clearTimeout(timer);
      resolve(c ?? 'signal');
    });
  });
  assert.equal(code, 0);
  assert.equal(out.trim(), 'stopped');
});

test('a leader whose fsync fails fail-stops: it is stopped with the reason, the others elect, and it can restart', async () => {
  await using cluster = await startCluster({ nodes: 3 });
  const leader = cluster.leader();
  assert.ok(leader !== null);
  const other = leader === 1 ? 2 : 1;
  cluster.injectDiskFault(leader, 'sync');
  await using c = cluster.client(other);
  // The write makes the leader fsync; whether it commits before the crash does not matter here.
  await c.kv.put('k', 'v').catch(() => undefined);
  const deadline = performance.now() + 10_000;
  while (cluster.nodes[leader - 1]?.running === true && performance.now() < deadline) await sleep(10);
  const node = cluster.nodes[leader - 1];
  assert.equal(node?.running, false, 'the leader stopped');
  assert.match(node.failStop ?? '', /^storage failure: fsync of .* failed: EIO: i\/o error on fsync of /);
  while ((cluster.leader() ?? leader) === leader && performance.now() < deadline + 10_000) await sleep(10);
  assert.notEqual(cluster.leader() ?? leader, leader, 'the others elected a new leader');
  await retry(10_000, () => c.kv.put('after', 'v'));
  await cluster.restartNode(leader);
  assert.equal(cluster.nodes[leader - 1]?.failStop, null, 'a restart clears the reason');
});
