// Proves the typed fencing client end to end (the daemon's handlers, in-process): with no fence
// devices configured, a crashed node's fence is pending in `client.fencing.history()` with no
// attempt (only an operator can close it), `client.fenceConfirm` closes it with a `confirm` proof,
// `client.fencing.fence(node)` refuses a node that is not a member with a clear message, and
// `client.events()` carries the typed fence events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CohortClientError } from '../client/index.js';
import { startCluster } from './index.js';

async function until(cond: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

test('fence history through the client: pending with no devices, closed by a confirmation', async () => {
  await using cluster = await startCluster({ nodes: 3 });
  const client = cluster.client(1);
  assert.deepEqual(await client.fencing.history(), { pending: [], finished: [] });
  await cluster.stopNode(3);
  await until(async () => (await client.fencing.history()).pending.length === 1, 15_000, 'a pending fence');
  const pending = (await client.fencing.history()).pending[0];
  assert.equal(pending?.node, 3);
  assert.equal(pending.state, 'pending');
  assert.deepEqual(pending.attempts, [], 'no device: nothing runs');
  await assert.rejects(
    client.fencing.fence(3),
    (e: unknown) => e instanceof CohortClientError && /node 3 is being fenced already/.test(e.message),
  );
  await client.fenceConfirm(3);
  const h = await client.fencing.history({ node: 3 });
  assert.equal(h.pending.length, 0);
  const done = h.finished[0];
  assert.equal(done?.state, 'fenced');
  assert.equal((done.proof as { by: string }).by, 'confirm');
  const fenceEvents: string[] = [];
  for await (const e of client.events({ follow: false }))
    if (e.kind === 'fence') fenceEvents.push(`${e.payload.what} ${e.payload.node}`);
  assert.deepEqual(fenceEvents, ['requested 3', 'fenced 3'], 'the event stream carries typed fence events');
});
