// Proves the fence checker bites on each rule it claims, from hand-written trace events: a clean
// history (a failure fenced by an agent, the waiting incarnation admitted in the closing entry, a
// clean leave, several nodes tracing the same entries) passes; a second close of one incarnation
// at another log index, a fence opened for an incarnation that left cleanly (either order), a view
// holding the node while its fence is open (closed later, or never), an agent's proof in a
// manual-only run, and a fence still open past the bound in the liveness phase of an automatic
// run are each caught under their own checker name.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId } from '../../lib/ids.js';
import type { TraceFields } from '../../runtime/env.js';
import type { SimEvent, TraceSource } from '../trace.js';
import { ClusterFenceChecker } from './cluster-fence-checker.js';

interface Found {
  readonly checker: string;
  readonly message: string;
}

function setup(closeBoundMs = 10_000): {
  c: ClusterFenceChecker;
  found: Found[];
  feed: (source: TraceSource, event: string, fields: TraceFields, atMs?: number) => void;
} {
  const found: Found[] = [];
  const c = new ClusterFenceChecker({ closeBoundMs }, (checker, message) => found.push({ checker, message }));
  let t = 0;
  const feed = (source: TraceSource, event: string, fields: TraceFields, atMs?: number): void => {
    t = atMs === undefined ? t + 1 : atMs * 1000;
    c.observe({ timeUs: t, source, event, fields } satisfies SimEvent);
  };
  return { c, found, feed };
}

const view = (index: number, viewId: number, members: string, cmd: string, change?: string): TraceFields => ({
  index,
  viewId,
  members,
  quorate: true,
  cmd,
  ...(change === undefined ? {} : { change }),
});
const requested = (index: number, node: number, incarnation: number): TraceFields => ({
  index,
  node,
  incarnation,
  what: 'requested',
  reason: 'failure detector',
});
const attempt = (index: number, node: number, incarnation: number, result = 'ok'): TraceFields => ({
  index,
  node,
  incarnation,
  what: 'attempt',
  device: 'pdu',
  level: 1,
  result,
  round: 1,
});
const fenced = (index: number, node: number, incarnation: number, by = 'agent'): TraceFields => ({
  index,
  node,
  incarnation,
  what: 'fenced',
  by,
  ...(by === 'confirm' ? {} : { device: 'pdu', level: 1 }),
});

/** A history every rule accepts, traced by nodes 1 and 2. */
function cleanHistory(feed: ReturnType<typeof setup>['feed'], mode: 'auto' | 'manual'): void {
  feed('client', 'fence-topology', { mode, devices: mode === 'auto' ? 'pdu' : '', levels: 1, lateConfirm: false });
  for (const n of [1, 2]) {
    feed(n, 'view', view(5, 3, '1@1,2@1,3@1', 'join', 'joined:3@1'));
    // Node 3 incarnation 1 fails; incarnation 2 joins and waits; the fence closes and admits it.
    feed(n, 'fence-ledger', requested(7, 3, 1));
    feed(n, 'view', view(7, 4, '1@1,2@1', 'fail', 'failed:3@1'));
    feed(n, 'view', view(8, 4, '1@1,2@1', 'join'));
    feed(n, 'fence-ledger', attempt(9, 3, 1, 'failed'));
    feed(n, 'fence-ledger', attempt(10, 3, 1));
    feed(n, 'fence-ledger', fenced(11, 3, 1, mode === 'auto' ? 'agent' : 'confirm'));
    feed(n, 'view', view(11, 5, '1@1,2@1,3@2', 'fenced', 'admitted:3@2'));
    // Node 2 incarnation 1 leaves cleanly; incarnation 2 joins later.
    feed(n, 'view', view(14, 6, '1@1,3@2', 'leave', 'left:2@1'));
    feed(n, 'view', view(16, 7, '1@1,2@2,3@2', 'join', 'joined:2@2'));
  }
}

test('a clean history passes, in automatic and in manual runs', () => {
  for (const mode of ['auto', 'manual'] as const) {
    const { c, found, feed } = setup();
    cleanHistory(feed, mode);
    feed('sim', 'phase', { name: 'liveness', boundMs: 60_000 });
    c.finish();
    assert.deepEqual(found, [], mode);
    assert.ok(c.settled());
    assert.equal(c.closedIndex(nodeId(3), 1), 11);
    assert.deepEqual(
      { ...c.counts },
      {
        opened: 1,
        closed: 1,
        byAgent: mode === 'auto' ? 1 : 0,
        byConfirm: mode === 'auto' ? 0 : 1,
        attempts: 2,
        selfFences: 0,
        races: 0,
        raceWins: 0,
        promotions: 0,
      },
    );
  }
});

test('a second close of one incarnation at another log index is caught (fence-once)', () => {
  const { c, found, feed } = setup();
  cleanHistory(feed, 'auto');
  feed(2, 'fence-ledger', fenced(11, 3, 1)); // the same entry again: one close
  feed(1, 'fence-ledger', fenced(13, 3, 1, 'confirm')); // a late confirmation that closed it again
  c.finish();
  assert.deepEqual(
    found.map((f) => f.checker),
    ['fence-once'],
  );
  assert.match(found[0]?.message ?? '', /fenced twice: at log index 11 \(by agent\) and at 13 \(by confirm/);
});

test('a fence opened for an incarnation that left cleanly is caught, whichever is traced first', () => {
  for (const leaveFirst of [true, false]) {
    const { c, found, feed } = setup();
    cleanHistory(feed, 'manual');
    const leave = (): void => {
      feed(1, 'view', view(20, 8, '1@1,3@2', 'leave', 'left:2@2'));
    };
    if (leaveFirst) leave();
    feed(1, 'fence-ledger', requested(20, 2, 2));
    if (!leaveFirst) leave();
    feed(1, 'fence-ledger', fenced(22, 2, 2, 'confirm'));
    c.finish();
    assert.deepEqual(
      found.map((f) => f.checker),
      ['fence-clean-leave'],
      `leave first: ${leaveFirst}`,
    );
    assert.match(found[0]?.message ?? '', /node 2 incarnation 2 was opened at log index 20, but that incarnation left/);
  }
});

test('a view holding the node while its fence is open is caught (fence-admission)', () => {
  // Closed later than the view that admitted the waiting incarnation: caught when the close is traced.
  {
    const { found, feed } = setup();
    feed('client', 'fence-topology', { mode: 'auto', devices: 'pdu', levels: 1, lateConfirm: false });
    feed(1, 'fence-ledger', requested(7, 3, 1));
    feed(1, 'view', view(7, 4, '1@1,2@1', 'fail', 'failed:3@1'));
    // Node 2 did not trace the opening (a snapshot skipped it): its view waits for the close.
    feed(2, 'view', view(8, 5, '1@1,2@1,3@2', 'join', 'admitted:3@2'));
    assert.equal(found.length, 0, 'not judged before the close is known');
    feed(1, 'fence-ledger', fenced(12, 3, 1));
    assert.deepEqual(
      found.map((f) => f.checker),
      ['fence-admission'],
    );
    assert.match(found[0]?.message ?? '', /view at log index 8 holds node 3 while the fence of incarnation 1 is open/);
  }
  // The process that traced the opening and no close traces a view holding the node: at once.
  {
    const { found, feed } = setup();
    feed(1, 'fence-ledger', requested(21, 1, 1));
    feed(1, 'view', view(21, 2, '1@2', 'join', 'admitted:1@2'));
    assert.deepEqual(
      found.map((f) => f.checker),
      ['fence-admission'],
    );
  }
  // ... but not after it restarted or installed a snapshot (it may have skipped the close).
  for (const reset of ['restart', 'restore', 'snapshot']) {
    const { found, feed } = setup();
    feed(1, 'fence-ledger', requested(7, 3, 1));
    if (reset === 'restart') feed('sim', 'start', { node: 1, incarnation: 2 });
    else if (reset === 'restore') feed(1, 'view', view(12, 6, '1@1,2@1', 'restore'));
    else feed(1, 'raft-snapshot-restored', { index: 12, snapTerm: 3 }); // the view did not change
    feed(1, 'view', view(13, 7, '1@1,2@1,3@2', 'join', 'joined:3@2'));
    feed(2, 'fence-ledger', fenced(12, 3, 1));
    assert.equal(found.length, 0, reset);
  }
  // Never closed: caught at the end of the run; a view traced after the close is judged at once.
  {
    const { c, found, feed } = setup();
    feed(1, 'fence-ledger', requested(7, 3, 1));
    feed(2, 'view', view(9, 5, '1@1,2@1,3@2', 'join', 'admitted:3@2'));
    c.finish();
    assert.deepEqual(
      found.map((f) => f.checker),
      ['fence-admission'],
    );
    assert.match(found[0]?.message ?? '', /never closed/);
  }
  {
    const { found, feed } = setup();
    feed(1, 'fence-ledger', requested(7, 3, 1));
    feed(1, 'fence-ledger', fenced(12, 3, 1));
    feed(2, 'view', view(10, 5, '1@1,2@1,3@1', 'restore'));
    assert.deepEqual(
      found.map((f) => f.checker),
      ['fence-admission'],
    );
    assert.match(
      found[0]?.message ?? '',
      /holds 3@1 while the fence of incarnation 1 is open \(opened at 7, closed at 12\)/,
    );
  }
});

test('an agent closing a fence in a manual-only run is caught (fence-liveness)', () => {
  const { c, found, feed } = setup();
  feed('client', 'fence-topology', { mode: 'manual', devices: '', levels: 0, lateConfirm: false });
  feed(1, 'fence-ledger', requested(7, 3, 1));
  feed(1, 'fence-ledger', fenced(9, 3, 1, 'agent'));
  c.finish();
  assert.deepEqual(
    found.map((f) => f.checker),
    ['fence-liveness'],
  );
  assert.match(
    found[0]?.message ?? '',
    /fenced by agent \(device pdu\) at log index 9, but the run's topology has no device/,
  );
});

test('an automatic run with a fence still open past the bound after the faults stop is caught (fence-liveness)', () => {
  const { c, found, feed } = setup(10_000);
  feed('client', 'fence-topology', { mode: 'auto', devices: 'pdu', levels: 1, lateConfirm: false }, 0);
  feed(1, 'fence-ledger', requested(7, 3, 1), 1_000);
  feed(1, 'fence-ledger', requested(8, 2, 1), 2_000);
  feed('sim', 'phase', { name: 'liveness', boundMs: 60_000 }, 30_000);
  assert.equal(c.settled(), false);
  assert.match(c.describeOpen(), /3@1 \(opened at index 7\), 2@1 \(opened at index 8\)/);
  feed(1, 'fence-ledger', fenced(20, 2, 1), 39_000); // within the bound
  feed(1, 'view', view(21, 9, '1@1', 'join'), 40_001); // past the bound for 3@1
  assert.deepEqual(
    found.map((f) => f.checker),
    ['fence-liveness'],
  );
  assert.match(found[0]?.message ?? '', /node 3 incarnation 1 .* still open 10000 ms after the faults stopped/);
  c.finish(); // reported once
  assert.equal(found.length, 1);
  // The same history in a manual-only run is not judged by the bound (confirmations are the driver's).
  const manual = setup(10_000);
  manual.feed('client', 'fence-topology', { mode: 'manual', devices: '', levels: 0, lateConfirm: false }, 0);
  manual.feed(1, 'fence-ledger', requested(7, 3, 1), 1_000);
  manual.feed('sim', 'phase', { name: 'liveness', boundMs: 60_000 }, 30_000);
  manual.feed(1, 'view', view(21, 9, '1@1', 'join'), 90_000);
  manual.c.finish();
  assert.deepEqual(manual.found, []);
});

test('a malformed fence-ledger event is reported', () => {
  const { found, feed } = setup();
  feed(1, 'fence-ledger', { index: 'x', node: 3, incarnation: 1, what: 'fenced' });
  assert.equal(found.length, 1);
});
