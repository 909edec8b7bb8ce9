// Proves `cohort groups` over a real API socket served by the daemon's own handlers on a node of
// an embedded cluster: with no group it says so; after joins it prints one row per group with its
// view and members (node.incarnation/level), `--json` prints the list, and `cohort events`
// describes group-view and barrier events in one readable line each.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster } from '../embedded/index.js';
import { registerApiHandlers } from '../node/api-handlers.js';
import { withApiServer } from '../testing/api-support.js';
import { runStatus, type StatusIo } from './status-command.js';
import { describeEvent } from './events-command.js';

function capture(): { out: string[]; err: string[]; io: StatusIo } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (t) => out.push(t), err: (t) => err.push(t) } };
}

test('cohort groups lists every group with its view; --json gives the list; events describe group and barrier events', async () => {
  await using cluster = await startCluster({ nodes: 3 });
  const node = cluster.nodes[0]?.clusterNode;
  assert.ok(node);
  await withApiServer(
    (server) => {
      registerApiHandlers(server, node, {
        clusterName: 'test',
        fingerprint: 'f',
        startedAtMs: 0,
        links: () => [],
      });
    },
    async (socket) => {
      const empty = capture();
      assert.equal(await runStatus('groups', { socket }, empty.io), 0);
      assert.deepEqual(empty.out, ['no service groups (a group exists while it has members)\n']);
      const a = await cluster.client(1).groups.join('alpha', { level: 2 });
      await cluster.client(3).groups.join('alpha', { level: 2 });
      const b = await cluster.client(2).groups.join('beta');
      await Promise.all([
        a.barrier('go'),
        cluster
          .client(3)
          .groups.join('alpha', { level: 2 })
          .then((h) => h.barrier('go')),
      ]);
      const table = capture();
      assert.equal(await runStatus('groups', { socket }, table.io), 0);
      const lines = table.out.join('').trimEnd().split('\n');
      assert.match(lines[0] ?? '', /^GROUP\s+VIEW\s+MEMBERS/);
      assert.match(lines[1] ?? '', /^alpha\s+\d+\s+1\.1\/2 3\.1\/2$/);
      assert.match(lines[2] ?? '', /^beta\s+\d+\s+2\.1\/0$/);
      const json = capture();
      assert.equal(await runStatus('groups', { socket, json: true }, json.io), 0);
      const list = JSON.parse(json.out.join('')) as { group: string; members: { node: number }[] }[];
      assert.deepEqual(
        list.map((g) => [g.group, g.members.map((m) => m.node)]),
        [
          ['alpha', [1, 3]],
          ['beta', [2]],
        ],
      );
      const page = node.services.membership.eventsFrom(1, 100);
      assert.ok(page.ok);
      const described = page.value.events
        .filter((e) => e.kind === 'group' || e.kind === 'barrier')
        .map((e) => describeEvent(JSON.parse(JSON.stringify(e)) as never));
      assert.ok(
        described.some((l) => /group alpha: node 1 incarnation 1 joined; group view \d+ members \[1:1\]$/.test(l)),
        described.join('\n'),
      );
      assert.ok(
        described.some((l) => /barrier alpha\/go: reached \(group view \d+\)$/.test(l)),
        described.join('\n'),
      );
      await b.leave();
    },
  );
});
