// Proves the failure-detector accuracy checker from hand-written trace events: evicting a node
// whose process crashed is fine; evicting a node that only paused below the bound is a false
// eviction (reported and counted); a pause, partition or clog of at least the bound excuses an
// eviction, and so do short stalls that follow each other closely; a long disturbance that ended
// before the lookback window does not; and quarantines are judged like fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { TraceFields } from '../../runtime/env.js';
import type { TraceSource } from '../trace.js';
import { ClusterAccuracyChecker } from './cluster-detector-checker.js';

const BOUNDS = { stallBoundMs: 1000, lookbackMs: 6000, mergeGapMs: 300 };

function harness(): {
  at: (ms: number, source: TraceSource, event: string, fields: TraceFields) => void;
  found: string[];
  checker: ClusterAccuracyChecker;
} {
  const found: string[] = [];
  const checker = new ClusterAccuracyChecker(BOUNDS, (m) => found.push(m));
  const at = (ms: number, source: TraceSource, event: string, fields: TraceFields): void => {
    checker.observe({ timeUs: ms * 1000, source, event, fields });
  };
  // Three nodes, incarnation 1 each, in view 3.
  for (const n of [1, 2, 3]) {
    at(0, 'sim', 'start', { node: n, incarnation: 1 });
    at(1, n, 'cluster-node-start', { incarnation: 1 });
  }
  at(100, 1, 'view', { index: 9, viewId: 3, members: '1@1,2@1,3@1', quorate: true, cmd: 'join' });
  return { at, found, checker };
}

const evict = (at: (ms: number, s: TraceSource, e: string, f: TraceFields) => void, ms: number, cmd = 'fail'): void => {
  at(ms - 20, 1, 'detector', { type: cmd, node: 3, incarnation: 1 });
  at(ms, 1, 'view', { index: 12, viewId: 4, members: '1@1,2@1', quorate: true, cmd });
};

test('evicting a crashed incarnation is fine', () => {
  const { at, found, checker } = harness();
  at(5000, 'sim', 'crash', { node: 3 });
  evict(at, 6700);
  assert.deepEqual(found, []);
  assert.deepEqual([checker.evictions, checker.falseEvictions], [1, 0]);
});

test('evicting a node that paused 800 ms is a false eviction; quarantines count too', () => {
  for (const cmd of ['fail', 'quarantine']) {
    const { at, found, checker } = harness();
    at(5000, 'sim', 'pause', { node: 3 });
    at(5800, 'sim', 'resume', { node: 3 });
    evict(at, 6000, cmd);
    assert.equal(checker.falseEvictions, 1);
    assert.match(
      found[0] ?? '',
      new RegExp(
        `node 3 incarnation 1 was evicted \\(${cmd}, view 4, decided at 5\\.980000 s\\) although it was alive and its longest disturbance in the 6000 ms before was 800 ms`,
      ),
    );
  }
});

test('a pause, a partition or a clog of at least the bound excuses an eviction', () => {
  const cases: [string, TraceFields, string, TraceFields][] = [
    ['pause', { node: 3 }, 'resume', { node: 3 }],
    ['partition', { shape: 'isolate-one', sides: '3|1,2' }, 'heal', {}],
  ];
  for (const [open, of, close, cf] of cases) {
    const { at, found } = harness();
    at(4000, 'sim', open, of);
    at(5200, 'sim', close, cf);
    evict(at, 6000);
    assert.deepEqual(found, [], open);
  }
  const { at, found } = harness();
  at(4000, 'sim', 'clog', { from: 3, to: 1, ms: 1500 });
  evict(at, 6000);
  assert.deepEqual(found, []);
});

test('short stalls close together count as one stretch; stalls far apart do not', () => {
  const close = harness();
  close.at(4000, 'sim', 'pause', { node: 3 });
  close.at(4600, 'sim', 'resume', { node: 3 });
  close.at(4800, 'sim', 'pause', { node: 3 });
  close.at(5400, 'sim', 'resume', { node: 3 });
  evict(close.at, 6000);
  assert.deepEqual(close.found, []);
  assert.equal(close.checker.longestStretchMs(3 as never, 6_000_000), 1400);
  const apart = harness();
  apart.at(3000, 'sim', 'pause', { node: 3 });
  apart.at(3600, 'sim', 'resume', { node: 3 });
  apart.at(4800, 'sim', 'pause', { node: 3 });
  apart.at(5400, 'sim', 'resume', { node: 3 });
  evict(apart.at, 6000);
  assert.equal(apart.found.length, 1);
});

test('a long disturbance that ended before the lookback window does not excuse an eviction', () => {
  const { at, found } = harness();
  at(1000, 'sim', 'pause', { node: 3 });
  at(3000, 'sim', 'resume', { node: 3 });
  evict(at, 10_000);
  assert.equal(found.length, 1);
});

test('an eviction whose predecessor view was never traced is counted as unjudged', () => {
  const { at, found, checker } = harness();
  at(6000, 1, 'view', { index: 20, viewId: 9, members: '1@1', quorate: false, cmd: 'fail' });
  assert.deepEqual(found, []);
  assert.equal(checker.unjudged, 1);
});
