// Proves topologyProblems names each broken rule once: undefined, repeated and unused devices,
// empty levels, device names, too many levels, and a round that would make more attempts than a
// fence record keeps (the scheduler must see every attempt of the current round).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FENCE_ATTEMPTS_KEPT, FENCE_LEVELS_MAX } from '../constants.js';
import {
  MANUAL_ONLY_TOPOLOGY,
  plugFor,
  topologyProblems,
  type FenceDevice,
  type FenceTopology,
} from './fence-topology.js';

function wd(name: string, retries = 0): FenceDevice {
  return { name, agent: 'watchdog', timeoutMs: 1000, retries };
}

function topo(levels: string[][], devices: FenceDevice[]): FenceTopology {
  return {
    devices: new Map(devices.map((d) => [d.name, d])),
    levels: levels.map((l) => ({ devices: l })),
    fenceDelayMs: new Map(),
  };
}

test('a valid topology has no problems; each broken rule is named', () => {
  assert.deepEqual(topologyProblems(MANUAL_ONLY_TOPOLOGY), []);
  assert.deepEqual(topologyProblems(topo([['a'], ['b', 'c']], [wd('a', 2), wd('b'), wd('c')])), []);
  const problems = topologyProblems(topo([[], ['a', 'a', 'x']], [wd('a'), wd('unused'), wd('Bad Name')]));
  assert.equal(problems.length, 6, problems.join('\n'));
  assert.match(problems.join('\n'), /level 1 names no device/);
  assert.match(problems.join('\n'), /"x", which is not defined/);
  assert.match(problems.join('\n'), /"a" twice/);
  assert.match(problems.join('\n'), /"unused" is in no level/);
  assert.match(problems.join('\n'), /must match \[a-z0-9\]/);
});

test('too many levels, and a round that does not fit the kept attempts, are refused', () => {
  const many = Array.from({ length: FENCE_LEVELS_MAX + 1 }, (_, i) => `d${i}`);
  assert.ok(
    topologyProblems(
      topo(
        many.map((d) => [d]),
        many.map((d) => wd(d)),
      ),
    ).some((p) => /levels; at most/.test(p)),
  );
  const fits = topo([['a'], ['b']], [wd('a', FENCE_ATTEMPTS_KEPT / 2 - 1), wd('b', FENCE_ATTEMPTS_KEPT / 2 - 1)]);
  assert.deepEqual(topologyProblems(fits), []);
  const over = topo([['a'], ['b']], [wd('a', FENCE_ATTEMPTS_KEPT / 2 - 1), wd('b', FENCE_ATTEMPTS_KEPT / 2)]);
  assert.match(topologyProblems(over).join('\n'), new RegExp(`${FENCE_ATTEMPTS_KEPT + 1} attempts`));
});

test('a device fences the nodes in its hosts (plug from the map); a process device only those it has a pid file for', () => {
  const exec: FenceDevice = {
    name: 'ipmi',
    agent: 'exec',
    program: '/usr/sbin/fence_ipmilan',
    action: 'off',
    options: new Map(),
    unfence: false,
    timeoutMs: 1000,
    retries: 0,
    hosts: new Map([['n1', 'slot-7']]),
  };
  assert.equal(plugFor(exec, 'n1'), 'slot-7');
  assert.equal(plugFor(exec, 'n2'), null);
  const proc: FenceDevice = {
    name: 'kill',
    agent: 'process',
    pidFiles: new Map([['n1', '/run/n1.pid']]),
    timeoutMs: 1000,
    retries: 0,
  };
  assert.equal(plugFor(proc, 'n1'), 'n1');
  assert.equal(plugFor(proc, 'n2'), null, 'no pid file: cannot fence');
});
