// Proves the broadcast checker bites on each property from events alone: a delivery nobody
// broadcast, a wrong payload, a duplicate, a delivery lost across a restart, a reformat with no
// injected corruption; and that liveness waits for every node, excusing only ids whose every
// copy was lost to corruption.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId } from '../../lib/ids.js';
import type { TraceFields } from '../../runtime/env.js';
import type { TraceSource } from '../trace.js';
import { BroadcastChecker } from './broadcast-checker.js';

function setup() {
  const violations: string[] = [];
  const c = new BroadcastChecker([nodeId(1), nodeId(2)], 1000, (m) => violations.push(m));
  const ev = (source: TraceSource, event: string, fields: TraceFields = {}) => {
    c.observe({ timeUs: 0, source, event, fields });
  };
  ev('client', 'broadcast', { id: 1, payload: 'p1' });
  ev('client', 'submit', { id: 1, node: 1 });
  return { c, ev, violations };
}

test('a correct history has no violation and becomes live once every node delivered', () => {
  const { c, ev, violations } = setup();
  assert.equal(c.satisfied(), false, 'an accepted id is required before anyone delivers it');
  ev(1, 'deliver', { id: 1, payload: 'p1' });
  assert.match(c.describe(), /node 2 lacks 1/);
  ev(2, 'deliver', { id: 1, payload: 'p1' });
  ev('sim', 'crash', { node: 2 });
  ev(2, 'recover', { count: 1, ids: '1' });
  assert.equal(c.satisfied(), true);
  assert.deepEqual(violations, []);
});

test('integrity, duplicates, durability and dishonest reformats are reported', () => {
  const { ev, violations } = setup();
  ev(1, 'deliver', { id: 9, payload: 'x' });
  ev(1, 'deliver', { id: 1, payload: 'wrong' });
  ev(2, 'deliver', { id: 1, payload: 'p1' });
  ev(2, 'deliver', { id: 1, payload: 'p1' });
  ev(2, 'recover', { count: 0, ids: '' });
  ev(1, 'reformat', { reason: 'slot 0: checksum mismatch' });
  assert.equal(violations.length, 5, violations.join('\n'));
  assert.match(violations[0]!, /integrity: node 1 delivered id 9, which no client broadcast/);
  assert.match(violations[1]!, /payload "wrong"/);
  assert.match(violations[2]!, /duplicate: node 2 delivered id 1 a second time/);
  assert.match(violations[3]!, /durability: node 2 delivered 1 before it crashed/);
  assert.match(violations[4]!, /no bit was ever flipped/);
});

test('after injected corruption a reformat is allowed and a lost only copy is excused', () => {
  const { c, ev, violations } = setup();
  ev(1, 'deliver', { id: 1, payload: 'p1' });
  ev('sim', 'crash', { node: 1 });
  ev('sim', 'bitflip', { node: 1, bits: 2 });
  ev(1, 'reformat', { reason: 'slot 0: checksum mismatch' });
  ev(1, 'recover', { count: 0, ids: '' });
  assert.deepEqual(violations, []);
  assert.equal(c.satisfied(), true, 'no intact copy of id 1 exists anywhere');
  ev(1, 'deliver', { id: 1, payload: 'p1' });
  assert.deepEqual(violations, [], 'redelivery after a reformat is a new durable history');
  assert.equal(c.satisfied(), false);
});
