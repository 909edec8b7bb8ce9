// Proves recovery participation end to end through the typed client (the daemon's handlers,
// in-process): three nodes take part in an application group's recovery with
// `client.recovery.participate`; when node 3 crashes, the survivors' `stop` callbacks run, no
// `start` comes while the crashed incarnation awaits its fence (`client.recovery.status()` names
// the fence), and after `fenceConfirm` both start with the survivors under the same, newer
// generation and then finish. Leaving a participation leaves the group.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Participation, RecoveryCallbacks } from '../client/index.js';
import { startCluster } from './index.js';

const GROUP = 'app';

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function callbacks(id: number, log: string[]): RecoveryCallbacks {
  return {
    stop: (generation) => {
      log.push(`n${id} stop g${generation}`);
    },
    start: async (info) => {
      await new Promise((resolve) => setTimeout(resolve, 10));
      log.push(`n${id} start g${info.generation} [${info.members.map((m) => m.node).join(',')}]`);
    },
    finish: (generation) => {
      log.push(`n${id} finish g${generation}`);
    },
  };
}

test('recovery through the client: survivors stop, start after the fence with each other, and finish', async () => {
  await using cluster = await startCluster({ nodes: 3 });
  const log: string[] = [];
  const parts: Participation[] = [];
  for (const id of [1, 2, 3]) parts.push(await cluster.client(id).recovery.participate(GROUP, callbacks(id, log)));
  const client = cluster.client(1);
  const views = await client.groups.list();
  assert.deepEqual(
    views.find((v) => v.group === GROUP)?.members.map((m) => [m.node, m.level]),
    [
      [1, 3],
      [2, 3],
      [3, 3],
    ],
    'participate joins the group at the application level',
  );
  assert.equal(log.length, 0, 'joining opens no round');

  await cluster.stopNode(3);
  await until(() => log.filter((l) => l.includes(' stop ')).length === 2, 15_000, 'both survivors to stop');
  const status = await client.recovery.status();
  const round = status.find((r) => r.group === GROUP);
  assert.ok(round !== undefined);
  await until(
    async () => (await client.recovery.status()).find((r) => r.group === GROUP)?.phase === 'waiting-fence',
    5000,
    'the round to wait for the fence',
  );
  const waiting = (await client.recovery.status()).find((r) => r.group === GROUP);
  assert.deepEqual(
    waiting?.waiting?.fences.map((f) => `${f.node}@${f.incarnation}`),
    ['3@1'],
  );
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.ok(!log.some((l) => l.includes(' start ')), `no start before the fence: ${log.join('; ')}`);

  await client.fenceConfirm(3);
  await until(() => log.filter((l) => l.includes(' finish ')).length === 2, 10_000, 'both survivors to finish');
  const gen = round.generation;
  assert.ok(gen > 0);
  for (const id of [1, 2])
    assert.deepEqual(
      log.filter((l) => l.startsWith(`n${id} `)),
      [`n${id} stop g${gen}`, `n${id} start g${gen} [1,2]`, `n${id} finish g${gen}`],
    );
  assert.equal((await client.recovery.status()).find((r) => r.group === GROUP)?.phase, 'finished');

  await parts[1]!.leave();
  await until(
    async () =>
      (await client.groups.list())
        .find((v) => v.group === GROUP)
        ?.members.map((m) => m.node)
        .join() === '1',
    5000,
    'node 2 to leave the group',
  );
  await parts[0]!.leave();
});
