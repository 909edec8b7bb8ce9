// Proves the DLM end to end through the typed client (the daemon's handlers, in-process), on
// three embedded nodes: a lockspace opened on every node; an EX lock serialises holders across
// nodes (the second waits until the first unlocks, then is granted); PR holders on several nodes
// share; NOQUEUE fails at once with NOT_GRANTED (research/dlm.md 1.5); a waiting request is
// cancelled by the caller's signal (ABORTED, research/dlm.md 1.6); closing a client releases its
// locks at once so a waiter on another node is granted; a blocking notification reaches the
// holder with the blocking mode (research/dlm.md 1.7); the value block written by an EX holder is
// read by the next holder (research/dlm.md 1.8); blocking notifications also come as an async
// iterator that ends with the lock; and `dlm.lockspaces` shows the lockspace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { clientFailure } from '../testing/api-support.js';
import { startCluster } from './index.js';

async function code(p: Promise<unknown>): Promise<string> {
  return (await clientFailure(p)).code;
}

test('DLM through the client: serialised EX, shared PR, NOQUEUE, cancel, session close, blocking notes, value block', async () => {
  await using cluster = await startCluster({ nodes: 3 });
  const clients = [1, 2, 3].map((i) => cluster.client(i));
  const spaces = await Promise.all(clients.map((c) => c.dlm.lockspace('app')));
  const [a, b, c] = spaces;
  assert.ok(a !== undefined && b !== undefined && c !== undefined);

  // EX serialises across nodes.
  const blocked: string[] = [];
  const first = await a.lock('config', 'EX', { onBlocking: (m) => blocked.push(m) });
  assert.equal(first.mode, 'EX');
  let secondGranted = false;
  const second = b.lock('config', 'EX').then((h) => {
    secondGranted = true;
    return h;
  });
  await sleep(100);
  assert.equal(secondGranted, false, 'the second EX waits while the first is held');
  assert.deepEqual(blocked, ['EX'], 'the holder is told an EX request waits');
  assert.equal(await code(c.lock('config', 'PR', { flags: ['NOQUEUE'] })), 'NOT_GRANTED');
  await first.unlock();
  const h2 = await second;
  assert.equal(h2.mode, 'EX');

  // A waiting request cancelled by the caller's signal.
  const ac = new AbortController();
  const waiting = c.lock('config', 'PR', { signal: ac.signal });
  await sleep(50);
  ac.abort();
  assert.equal(await code(waiting), 'ABORTED');
  await h2.unlock();

  // PR shares across nodes.
  const prs = await Promise.all([a, b, c].map((s) => s.lock('shared', 'PR')));
  assert.deepEqual(
    prs.map((h) => h.mode),
    ['PR', 'PR', 'PR'],
  );
  for (const h of prs) await h.unlock();

  // Closing a client releases its locks at once: a waiter elsewhere is granted.
  const held = await c.lock('job', 'EX');
  assert.equal(held.mode, 'EX');
  const next = a.lock('job', 'EX');
  await sleep(50);
  await clients[2]!.close();
  const h3 = await next;
  assert.equal(h3.mode, 'EX');

  // The value block written by an EX holder is read by the next holder.
  const lvb = new Uint8Array(32).fill(7);
  await h3.unlock({ lvb, flags: ['VALBLK'] });
  const reader = await b.lock('job', 'PR', { flags: ['VALBLK'] });
  assert.deepEqual([...(reader.lvb ?? [])], [...lvb]);
  await reader.unlock();

  // Blocking notifications as an async iterator.
  const watched = await a.lock('watched', 'EX', { blocking: true });
  const wants = b.lock('watched', 'PR');
  const it = watched.blocking();
  const firstNote = await it.next();
  assert.deepEqual(firstNote, { done: false, value: 'PR' }, 'the holder reads the blocking mode');
  await watched.unlock();
  assert.equal((await it.next()).done, true, 'the iterator ends with the lock');
  await (await wants).unlock();

  const info = await clients[0]!.dlm.lockspaces();
  assert.equal(info[0]?.name, 'app');
  assert.deepEqual(info[0].members, [1, 2, 3]);
});
