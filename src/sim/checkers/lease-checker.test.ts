// Proves the lease checker judges the sampler's events: one holder (or none) passes, two holders
// at one instant is a violation naming both nodes; and the sampler traces the holder set only
// when it changes, asks only nodes that run, and drops a paused node's late answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId, type NodeId } from '../../lib/ids.js';
import { Prng } from '../../lib/prng.js';
import type { TraceFields } from '../../runtime/env.js';
import type { DriverContext } from '../workload.js';
import type { SimEvent } from '../trace.js';
import { LEASE_EVENT, LeaseChecker, LeaseSampler } from './lease-checker.js';

const lease = (timeUs: number, holders: string): SimEvent => ({
  timeUs,
  source: 'client',
  event: LEASE_EVENT,
  fields: { holders },
});

test('one holder passes; two at one instant is a violation naming both', () => {
  const found: string[] = [];
  const c = new LeaseChecker((m) => found.push(m));
  c.observe(lease(1_000, '2'));
  c.observe(lease(2_000, ''));
  c.observe(lease(3_000, '3'));
  assert.deepEqual(found, []);
  c.observe(lease(4_500_000, '1,3'));
  assert.equal(found.length, 1);
  assert.match(String(found[0]), /nodes 1 and 3 report a valid leader lease at the same instant \(4\.500 s\)/);
  assert.equal(c.checks, 4);
  assert.equal(c.held, 3);
});

test('the sampler traces changes only, skips down nodes and drops late answers from paused ones', () => {
  const timers: { at: number; fn: () => void }[] = [];
  let now = 0;
  const traced: string[] = [];
  const valid = new Map<NodeId, boolean>([
    [nodeId(1), true],
    [nodeId(2), false],
    [nodeId(3), true],
  ]);
  const held: (() => void)[] = [];
  const state = new Map<NodeId, 'running' | 'down' | 'paused'>([
    [nodeId(1), 'running'],
    [nodeId(2), 'running'],
    [nodeId(3), 'down'],
  ]);
  const ctx: DriverContext<NodeId> = {
    nodes: [nodeId(1), nodeId(2), nodeId(3)],
    prng: new Prng(1),
    nowMs: () => now,
    phase: () => 'fault',
    after: (ms, fn) => {
      timers.push({ at: now + ms, fn });
      return { cancel: () => undefined };
    },
    call: (id, fn) => {
      const s = state.get(id);
      if (s === 'down') return false;
      if (s === 'paused')
        held.push(() => {
          fn(id);
        });
      else fn(id);
      return true;
    },
    trace: (event: string, fields?: TraceFields) => traced.push(`${event} ${String(fields?.holders)}`),
    crash: () => false,
    restart: () => false,
    devices: () => assert.fail('the lease sampler uses no device'),
  };
  const step = (): void => {
    const t = timers.shift();
    assert.ok(t !== undefined);
    now = t.at;
    t.fn();
  };
  new LeaseSampler<NodeId>(10, (id) => valid.get(id) ?? null).start(ctx);
  step();
  step();
  assert.deepEqual(traced, ['lease 1'], 'node 3 is down; an unchanged set is not traced again');
  state.set(nodeId(1), 'paused');
  step();
  assert.deepEqual(traced, ['lease 1', 'lease '], 'a paused node is not counted');
  for (const fn of held) fn();
  step();
  assert.deepEqual(traced, ['lease 1', 'lease '], 'its late answer is dropped');
});
