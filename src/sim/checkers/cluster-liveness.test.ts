// Proves the cluster liveness and completeness condition from hand-written trace events: it holds
// once every node runs in one quorate view and the survivors of the liveness kill applied its
// removal (detection time measured from the kill); a late removal is a completeness violation
// (with more time allowed when a new leader was elected meanwhile); a restarted node re-applying
// old views without the killed node does not count as a removal; a missing node, a non-quorate
// view or a stale incarnation is not convergence; and `no-kill` ends the probe.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TraceFields } from '../../runtime/env.js';
import type { TraceSource } from '../trace.js';
import { ClusterLiveness } from './cluster-liveness.js';

function harness(nodes = 3): {
  at: (ms: number, s: TraceSource, e: string, f: TraceFields) => void;
  found: string[];
  l: ClusterLiveness;
  now: { ms: number };
} {
  const found: string[] = [];
  const l = new ClusterLiveness(nodes, 60_000, 3000, 3000, (c, m) => found.push(`${c}: ${m}`));
  const now = { ms: 0 };
  l.attachClock(() => now.ms);
  const at = (ms: number, source: TraceSource, event: string, fields: TraceFields): void => {
    now.ms = ms;
    l.observe({ timeUs: ms * 1000, source, event, fields });
  };
  for (let n = 1; n <= nodes; n++) {
    at(0, 'sim', 'start', { node: n, incarnation: 1 });
    at(1, n, 'cluster-node-start', { incarnation: 1 });
  }
  at(1000, 'sim', 'phase', { name: 'liveness', boundMs: 60_000 });
  return { at, found, l, now };
}

const all = (
  at: (ms: number, s: TraceSource, e: string, f: TraceFields) => void,
  ms: number,
  members = '1@1,2@1,3@1',
  quorate = true,
): void => {
  for (const n of [1, 2, 3]) at(ms, n, 'view', { index: 9, viewId: 3, members, quorate, cmd: 'join' });
};

test('convergence, then the kill removed by every survivor within the bound', () => {
  const { at, found, l } = harness();
  all(at, 1100);
  assert.equal(l.satisfied(), false, 'converged, but the probe has not run yet');
  at(1200, 'client', 'kill', { node: 3, incarnation: 1 });
  at(1200, 'sim', 'crash', { node: 3 });
  at(2900, 1, 'view', { index: 12, viewId: 4, members: '1@1,2@1', quorate: true, cmd: 'fail' });
  assert.equal(l.satisfied(), false, 'node 2 has not applied it yet');
  at(2950, 2, 'view', { index: 12, viewId: 4, members: '1@1,2@1', quorate: true, cmd: 'fail' });
  assert.equal(l.satisfied(), true);
  assert.deepEqual(found, []);
  assert.equal(l.detectionMs, 1700);
  assert.equal(l.convergedAfterMs, 100);
});

test('a removal after the bound is a completeness violation; an election allows more time', () => {
  const late = harness();
  all(late.at, 1100);
  late.at(1200, 'client', 'kill', { node: 3, incarnation: 1 });
  late.at(1200, 'sim', 'crash', { node: 3 });
  late.now.ms = 4300;
  assert.equal(late.l.satisfied(), false);
  assert.equal(late.found.length, 1);
  assert.match(
    late.found[0] ?? '',
    /^fd-completeness: .*node 3 incarnation 1 was killed at 1\.200000 s and no survivor has applied its removal yet \(bound 3000 ms\)/,
  );
  const elected = harness();
  all(elected.at, 1100);
  elected.at(1200, 'client', 'kill', { node: 3, incarnation: 1 });
  elected.at(1200, 'sim', 'crash', { node: 3 });
  elected.at(3000, 2, 'cluster-role', { role: 'leader', term: 3, lead: 2 });
  elected.now.ms = 4300;
  assert.equal(elected.l.satisfied(), false);
  assert.deepEqual(elected.found, []);
  for (const n of [1, 2])
    elected.at(5000, n, 'view', { index: 14, viewId: 4, members: '1@1,2@1', quorate: true, cmd: 'quarantine' });
  assert.equal(elected.l.satisfied(), true);
  assert.equal(elected.l.detectionAcrossElection, true);
});

test('a restarted node re-applying old views does not count as a removal', () => {
  const { at, l } = harness();
  all(at, 1100);
  at(1200, 'client', 'kill', { node: 3, incarnation: 1 });
  at(1200, 'sim', 'crash', { node: 3 });
  at(1300, 1, 'view', { index: 7, viewId: 2, members: '1@1,2@1', quorate: true, cmd: 'fail' });
  at(1300, 2, 'view', { index: 7, viewId: 2, members: '1@1,2@1', quorate: true, cmd: 'fail' });
  assert.equal(l.satisfied(), false);
  assert.equal(l.detectionMs, null);
});

test('no convergence with a node missing, a non-quorate view, or a stale incarnation', () => {
  const missing = harness();
  for (const n of [1, 2, 3])
    missing.at(1100, n, 'view', { index: 9, viewId: 3, members: '1@1,2@1', quorate: true, cmd: 'fail' });
  missing.at(1200, 'client', 'no-kill', { reason: 'survivors-hold-no-quorum' });
  assert.equal(missing.l.satisfied(), false);
  assert.match(missing.l.describe(), /never agreed on one quorate view/);
  const minority = harness();
  all(minority.at, 1100, '1@1,2@1,3@1', false);
  minority.at(1200, 'client', 'no-kill', { reason: 'x' });
  assert.equal(minority.l.satisfied(), false);
  const stale = harness();
  stale.at(1050, 'sim', 'crash', { node: 3 });
  stale.at(1060, 'sim', 'start', { node: 3, incarnation: 2 });
  stale.at(1070, 3, 'cluster-node-start', { incarnation: 2 });
  all(stale.at, 1100);
  stale.at(1200, 'client', 'no-kill', { reason: 'x' });
  assert.equal(stale.l.satisfied(), false, 'the view holds 3@1 but node 3 runs incarnation 2');
  all(stale.at, 1300, '1@1,2@1,3@2');
  assert.equal(stale.l.satisfied(), true);
});
