// Proves two_node with real daemons (issue 12, item 4): after kill -9 of one node the survivor
// fences it with the `process` agent (a fence race nobody else runs), then commits alone and
// records the fence; the killed node, restarted, joins through a normal join and gets its vote
// back, so the next failure can be survived the other way round. A clean stop of either node (the
// leader here) leaves the other running alone with no fence. With manual fencing the survivor
// waits until `cohort fence confirm` on it (the local path: nothing can be committed), then runs
// alone and records the confirmation. In network namespaces (root
// only), a split of two live nodes is settled by the race: the node whose peer has no fence delay
// shoots first, the other is killed before its own delay ends, and only the winner commits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import type { ApiData } from '../client/index.js';
import { NetnsLab, netnsAvailable } from '../testing/netns.js';
import { ProcessCluster, membersOf, runCohort, waitFor } from './process-cluster.js';

type Obj = Readonly<Record<string, ApiData>>;

const QUORATE_BOUND_MS = 20_000;
/** Failure timeout, the race, an election and two commits, on two shared cores. */
const ALONE_BOUND_MS = 15_000;

function log(line: string): void {
  process.stderr.write(`# ${line}\n`);
}

async function fencedRecord(c: ProcessCluster, via: number, node: number, incarnation: number): Promise<Obj | null> {
  const h = (await c.request(via, 'fence.history', { node }).catch(() => null)) as { finished: Obj[] } | null;
  return h?.finished.find((r) => r['incarnation'] === incarnation) ?? null;
}

/** Waits until `id` alone is a quorate member of its view, then puts a key through it. */
async function aloneAndWriting(c: ProcessCluster, id: number, key: string): Promise<number> {
  const t0 = performance.now();
  await waitFor(`node ${id} quorate alone`, ALONE_BOUND_MS, async () => {
    const s = await c.status(id);
    return s?.['quorate'] === true &&
      membersOf(s)
        .map(([n]) => n)
        .join() === String(id)
      ? true
      : null;
  });
  await c.put([id], key, 'alone', ALONE_BOUND_MS);
  return performance.now() - t0;
}

test('two_node: the survivor of a kill -9 fences its peer, runs alone, and the peer rejoins with its vote back', async () => {
  const c = await ProcessCluster.create(2);
  try {
    await c.appendConfig(c.twoNodeConfig('{}'));
    c.startAll();
    await c.waitQuorate(c.ids, QUORATE_BOUND_MS);
    await c.put(c.ids, 'before', 'both', 10_000);
    // Round 1: node 2 dies; node 1 must fence it before it runs alone.
    const inc2 = Number((await c.status(2))?.['incarnation']);
    const t0 = performance.now();
    await c.kill(2);
    const aloneMs = await aloneAndWriting(c, 1, 'round-1');
    log(`node 1 alone and writing ${Math.round(performance.now() - t0)} ms after kill -9 of node 2`);
    assert.ok(aloneMs >= 0);
    const rec = await waitFor('the fence of node 2 recorded', ALONE_BOUND_MS, () => fencedRecord(c, 1, 2, inc2));
    const proof = (rec.value['outcome'] as Obj)['proof'] as Obj;
    assert.equal(proof['by'], 'agent', 'closed by the race the survivor won with its device');
    assert.equal(proof['device'], 'kill');
    // Node 2 comes back as a new incarnation through a normal join.
    c.start(2);
    await c.waitQuorate(c.ids, QUORATE_BOUND_MS);
    const s2 = await c.status(2);
    assert.ok(Number(s2?.['incarnation']) > inc2, 'the peer returns as a newer incarnation');
    // It came back as a learner and gets its vote back once it holds every entry.
    await waitFor('node 2 a voter again', QUORATE_BOUND_MS, async () =>
      (await c.status(1))?.['raftConfig'] === 'voters=(1,2)' ? true : null,
    );
    // Round 2: the other way round. Node 2 can survive only if it got its vote back and has been
    // a quorate member again (else node 1's death would leave it stuck).
    await c.put(c.ids, 'between', 'both', 10_000);
    const inc1 = Number((await c.status(1))?.['incarnation']);
    await c.kill(1);
    const aloneMs2 = await aloneAndWriting(c, 2, 'round-2');
    log(`node 2 alone and writing ${Math.round(aloneMs2)} ms after kill -9 of node 1`);
    await waitFor('the fence of node 1 recorded', ALONE_BOUND_MS, () => fencedRecord(c, 2, 1, inc1));
    const got = (await c.request(2, 'kv.get', { key: 'round-1' })) as Obj | null;
    assert.equal(got?.['text'], 'alone', 'what node 1 committed alone survived on node 2');
  } finally {
    await c.close();
  }
});

test('two_node with manual fencing: the survivor waits until an operator confirms on it, then runs alone', async () => {
  const c = await ProcessCluster.create(2);
  try {
    await c.appendConfig(['quorum:', '  twoNode: true', '  waitForAll: true'].join('\n'));
    c.startAll();
    await c.waitQuorate(c.ids, QUORATE_BOUND_MS);
    const inc2 = Number((await c.status(2))?.['incarnation']);
    await c.kill(2);
    // Nothing can be committed, and nobody may go on before the fence is confirmed.
    await new Promise((r) => setTimeout(r, 3000));
    assert.notEqual((await c.status(1))?.['quorate'], true, 'no confirmation yet: node 1 is not quorate');
    const confirm = await runCohort(['fence', 'confirm', '2', '--socket', c.socket(1)]);
    assert.equal(confirm.code, 0, confirm.stderr);
    assert.match(confirm.stdout, /confirmed fenced on this node \(two_node split/);
    const aloneMs = await aloneAndWriting(c, 1, 'confirmed');
    log(`node 1 alone and writing ${Math.round(aloneMs)} ms after the confirmation`);
    const rec = await waitFor('the confirmation recorded', ALONE_BOUND_MS, () => fencedRecord(c, 1, 2, inc2));
    assert.equal(((rec.value['outcome'] as Obj)['proof'] as Obj)['by'], 'confirm');
  } finally {
    await c.close();
  }
});

test('two_node: a clean stop of one node leaves the other running alone, with no fence', async () => {
  const c = await ProcessCluster.create(2);
  try {
    await c.appendConfig(c.twoNodeConfig('{}'));
    c.startAll();
    await c.waitQuorate(c.ids, QUORATE_BOUND_MS);
    const leader = (await c.waitLeader(c.ids, QUORATE_BOUND_MS)).leader;
    // The leader leaves: it must demote itself and hand over before it stops.
    const leaver = leader;
    const stays = c.ids.find((i) => i !== leaver) ?? 1;
    c.signal(leaver, 'SIGTERM');
    assert.equal(await c.exited(leaver, 15_000), 0, 'a clean stop');
    const aloneMs = await aloneAndWriting(c, stays, 'after-leave');
    log(`node ${stays} alone and writing ${Math.round(aloneMs)} ms after node ${leaver} stopped cleanly`);
    assert.equal((await c.status(stays))?.['raftConfig'], `voters=(${stays}) learners=(${leaver})`);
    const h = (await c.request(stays, 'fence.history', { node: leaver })) as { pending: Obj[]; finished: Obj[] };
    assert.equal(h.pending.length + h.finished.length, 0, 'a clean leave is never fenced');
    // It comes back through a normal join and gets its vote back.
    c.start(leaver);
    await c.waitQuorate(c.ids, QUORATE_BOUND_MS);
    await waitFor(`node ${leaver} a voter again`, QUORATE_BOUND_MS, async () =>
      (await c.status(stays))?.['raftConfig'] === 'voters=(1,2)' ? true : null,
    );
  } finally {
    await c.close();
  }
});

test(
  'two_node: a split of two live nodes is settled by the fence race; the node with no delay on it survives',
  { skip: netnsAvailable() ? false : 'needs root (network namespaces)' },
  async () => {
    const lab = await NetnsLab.create(2);
    const c = await ProcessCluster.create(2);
    try {
      // Fencing node 1 waits 5 s, fencing node 2 does not: node 1 shoots first and survives.
      await c.appendConfig(c.twoNodeConfig('{node-1: 5000}'));
      await c.placeInNamespaces(
        (id) => lab.address(id),
        (id) => lab.exec(id),
      );
      c.startAll();
      await c.waitQuorate(c.ids, QUORATE_BOUND_MS);
      const inc2 = Number((await c.status(2))?.['incarnation']);
      const t0 = performance.now();
      await lab.cut(2);
      const code = await c.exited(2, ALONE_BOUND_MS);
      log(`node 2 killed by node 1's fence ${Math.round(performance.now() - t0)} ms after the split (${String(code)})`);
      assert.equal(code, 'SIGKILL', 'the loser of the race is killed by the winner');
      await aloneAndWriting(c, 1, 'after-split');
      log(`node 1 alone and writing ${Math.round(performance.now() - t0)} ms after the split`);
      assert.ok(c.running(1), 'the winner runs on');
      const rec = await waitFor('the fence of node 2 recorded', ALONE_BOUND_MS, () => fencedRecord(c, 1, 2, inc2));
      assert.equal(((rec.value['outcome'] as Obj)['proof'] as Obj)['by'], 'agent');
    } finally {
      await c.close();
      await lab.destroy();
    }
  },
);
