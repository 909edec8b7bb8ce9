// Proves watchdog self-fencing on real daemons in network namespaces (issue 12, root only): a
// follower cut off from the others (its cable pulled: packets dropped, never refused) ends itself
// within its lease (exit 3, "self-fenced" in its log), and the majority records its fence as
// `watchdog` only after waiting out the lease and margin, strictly after the cut-off node ended;
// the majority keeps committing meanwhile.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import type { ApiData } from '../client/index.js';
import { NetnsLab, netnsAvailable } from '../testing/netns.js';
import { ProcessCluster, membersOf, waitFor } from './process-cluster.js';

type Obj = Readonly<Record<string, ApiData>>;

function log(line: string): void {
  process.stderr.write(`# ${line}\n`);
}

test(
  'a node cut off in a network namespace ends itself by its lease; the majority waits the lease out, then records the fence',
  { skip: netnsAvailable() ? false : 'needs root (network namespaces)' },
  async () => {
    const lab = await NetnsLab.create(3);
    const c = await ProcessCluster.create(3);
    try {
      await c.appendConfig(
        ['fencing:', '  devices:', '    - {name: lease, agent: watchdog}', '  levels: [[lease]]'].join('\n'),
      );
      await c.placeInNamespaces(
        (id) => lab.address(id),
        (id) => lab.exec(id),
      );
      c.startAll();
      await waitFor('every node quorate', 20_000, async () => {
        const ss = await Promise.all(c.ids.map((i) => c.status(i)));
        return ss.every((s) => s?.['quorate'] === true && membersOf(s).length === 3) ? true : null;
      });
      const lead = await c.waitLeader(c.ids, 10_000);
      const victim = c.ids.find((i) => i !== lead.leader) ?? 3;
      const others = c.ids.filter((i) => i !== victim);
      const inc = Number((await c.status(victim))?.['incarnation']);
      const t0 = performance.now();
      await lab.cut(victim);
      const code = await c.exited(victim, 15_000);
      const endedMs = performance.now() - t0;
      log(`cut-off node ${victim} ended itself after ${Math.round(endedMs)} ms (exit ${String(code)})`);
      assert.equal(code, 3, 'a self-fence is a fail-stop: exit 3');
      assert.match(
        await readFile(c.log(victim), 'utf8'),
        /self-fenced: cut off: the nodes heard within the \d+ ms lease \(\d\) hold no quorum/,
      );
      const fenced = await waitFor(`node ${victim}'s fence recorded by the majority`, 20_000, async () => {
        const h = (await c.request(lead.leader, 'fence.history', { node: victim }).catch(() => null)) as {
          finished: Obj[];
        } | null;
        return h?.finished.find((r) => r['incarnation'] === inc) ?? null;
      });
      const fencedMs = performance.now() - t0;
      log(`the majority recorded the fence of node ${victim} ${Math.round(fencedMs)} ms after the cut`);
      const proof = (fenced.value['outcome'] as Obj)['proof'] as Obj;
      assert.equal(proof['by'], 'watchdog');
      assert.ok(fencedMs > endedMs, 'the fence is recorded only after the cut-off node ended');
      // The majority keeps working.
      await c.put(others, 'after-cut', 'ok', 10_000);
    } finally {
      await c.close();
      await lab.destroy();
    }
  },
);

test('in a watchdog-armed cluster a clean stop still exits 0: a clean leave is no reason to self-fence', async () => {
  const c = await ProcessCluster.create(3);
  try {
    await c.appendConfig(
      ['fencing:', '  devices:', '    - {name: lease, agent: watchdog}', '  levels: [[lease]]'].join('\n'),
    );
    c.startAll();
    await waitFor('every node quorate', 20_000, async () => {
      const ss = await Promise.all(c.ids.map((i) => c.status(i)));
      return ss.every((s) => s?.['quorate'] === true && membersOf(s).length === 3) ? true : null;
    });
    const { leader } = await c.waitLeader(c.ids, 10_000);
    const follower = c.ids.find((i) => i !== leader) ?? 3;
    c.signal(follower, 'SIGTERM');
    assert.equal(await c.exited(follower, 15_000), 0, 'a clean stop');
    assert.doesNotMatch(await readFile(c.log(follower), 'utf8'), /self-fenced/);
  } finally {
    await c.close();
  }
});
