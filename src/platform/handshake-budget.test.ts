// Proves the handshake budget's rules on their own: a full unidentified tier evicts its oldest
// connection only once that one had a full poll phase (two turns), else refuses the newcomer; an
// unknown source at its share evicts only its own; a known source's connection is never evicted
// for an unknown one; claims are bounded per peer, and a claim from elsewhere never evicts one
// from the peer's configured host. Also that the log throttle reports what it suppressed once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as turn } from 'node:timers/promises';
import { nodeId } from '../lib/ids.js';
import { HandshakeBudget, sourceOf, type BudgetVerdict } from './handshake-budget.js';
import { LogThrottle } from './tcp-transport-core.js';

const LIMITS = { pendingHandshakesMax: 3, pendingHandshakesPerPeerMax: 2, pendingHandshakesPerSourceMax: 2 };
const KNOWN = '10.0.0.2';

function budget(): HandshakeBudget<string> {
  return new HandshakeBudget<string>(
    LIMITS,
    (s) => s === KNOWN,
    () => KNOWN,
  );
}

function evicted(v: BudgetVerdict<string>): string | null {
  return v.kind === 'refused' ? 'refused' : v.evicted;
}

async function twoTurns(): Promise<void> {
  await turn();
  await turn();
}

test('a full tier evicts its oldest connection only after a poll phase, else refuses', async () => {
  const b = budget();
  assert.equal(evicted(b.admit('k1', KNOWN)), null);
  assert.equal(evicted(b.admit('k2', KNOWN)), null);
  assert.equal(evicted(b.admit('k3', KNOWN)), null);
  assert.equal(evicted(b.admit('k4', KNOWN)), 'refused', 'all held ones are too new to evict');
  await twoTurns();
  assert.equal(evicted(b.admit('k4', KNOWN)), 'k1', 'the oldest goes');
  assert.equal(evicted(b.admit('k5', KNOWN)), 'k2');
  assert.equal(b.size, 3);
});

test('unknown sources: a share each, evicted first, never at a known source expense', async () => {
  const b = budget();
  assert.equal(evicted(b.admit('k1', KNOWN)), null);
  assert.equal(evicted(b.admit('u1', '192.0.2.9')), null);
  assert.equal(evicted(b.admit('u2', '192.0.2.9')), null);
  assert.equal(evicted(b.admit('u3', '192.0.2.9')), 'refused', 'the source is at its share and nothing is old');
  await twoTurns();
  assert.equal(evicted(b.admit('u3', '192.0.2.9')), 'u1', 'its own oldest makes room');
  assert.equal(evicted(b.admit('v1', '192.0.2.10')), 'u2', 'an unknown source goes before a known one');
  await twoTurns();
  assert.equal(evicted(b.admit('v2', '192.0.2.10')), 'u3');
  assert.equal(evicted(b.admit('v3', '192.0.2.11')), 'v1');
  assert.equal(evicted(b.admit('k2', KNOWN)), 'k1', 'unknown ones too new: a known newcomer takes a known slot');
  const k = budget();
  for (const c of ['k1', 'k2', 'k3']) k.admit(c, KNOWN);
  await twoTurns();
  assert.equal(evicted(k.admit('u1', '192.0.2.9')), 'refused', 'known sources are never evicted for unknown ones');
  assert.equal(evicted(k.admit('k4', KNOWN)), 'k1');
});

test('claims are bounded per peer; a stranger never evicts a claim from the peer host', async () => {
  const b = budget();
  for (const [c, s] of [
    ['h1', KNOWN],
    ['h2', KNOWN],
    ['s1', '192.0.2.9'],
  ] as const)
    b.admit(c, s);
  await twoTurns();
  assert.equal(evicted(b.claim('h1', nodeId(2))), null);
  assert.equal(evicted(b.claim('h2', nodeId(2))), null);
  assert.equal(evicted(b.claim('s1', nodeId(2))), 'refused', 'a stranger cannot evict claims from the host');
  b.admit('h3', KNOWN);
  assert.equal(evicted(b.claim('h3', nodeId(2))), 'h1', 'the peer host replaces its oldest claim');
  b.admit('t1', '192.0.2.7');
  assert.equal(evicted(b.claim('t1', nodeId(3))), null, 'claims of another peer are separate');
  b.release('h2');
  b.release('h2');
  assert.equal(b.size, 3, 'release is idempotent');
  assert.equal(sourceOf('::ffff:10.0.0.2'), KNOWN);
  assert.equal(sourceOf('::1'), '::1');
});

test('the log throttle keeps the first line, counts repeats and reports them once', () => {
  let now = 0;
  const t = new LogThrottle(1000, () => now);
  assert.equal(t.admit('k', {}, 'first'), 0);
  assert.equal(t.admit('k', { n: 1 }, 'second'), -1);
  assert.equal(t.admit('k', { n: 2 }, 'third'), -1);
  assert.deepEqual(t.expired(), [], 'the window is not over');
  now = 1000;
  assert.deepEqual(t.expired(), [{ key: 'k', count: 2, fields: { n: 2 }, message: 'third' }]);
  assert.deepEqual(t.expired(), [], 'reported once');
  assert.equal(t.holdsSuppressed, false);
  assert.equal(t.admit('k', {}, 'fourth'), 0, 'a new window starts with nothing unreported');
});
