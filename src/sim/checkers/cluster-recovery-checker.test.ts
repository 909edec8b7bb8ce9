// Proves the recovery checker bites, from hand-written traces: a round that starts after the
// fences it waits for were closed passes (several nodes tracing it); a start before a listed fence
// closed, a start after an unclean removal from the group before that member's fence (a round
// that forgot to wait for it, or kept running past the removal: the `skip-abort` canary), a start
// while a lower level's round is open, a start whose listed fence never closes, and a
// `fence-satisfied` before the close are each caught; removals without a fence (clean leaves,
// evictions), starts before a removal and a lower round opened in the start's own entry are not;
// `settled` tracks open rounds. The trace fields come from `recoveryTraceFields`, the format the
// node program uses, applied to real payloads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { incarnation, nodeId } from '../../lib/ids.js';
import type { RecoveryEventPayload } from '../../recovery/recovery-event.js';
import { ClusterFenceChecker } from './cluster-fence-checker.js';
import {
  ClusterRecoveryChecker,
  GROUP_REMOVED_TRACE_EVENT,
  recoveryTraceFields,
  RECOVERY_TRACE_EVENT,
} from './cluster-recovery-checker.js';
import type { TraceFields } from '../../runtime/env.js';

const ref = (
  n: number,
  i: number,
): { node: ReturnType<typeof nodeId>; incarnation: ReturnType<typeof incarnation> } => ({
  node: nodeId(n),
  incarnation: incarnation(i),
});

function setup(): {
  found: string[];
  fence: (source: number, fields: TraceFields) => void;
  recovery: (source: number, index: number, p: RecoveryEventPayload) => void;
  removed: (source: number, index: number, group: string, node: number, inc: number) => void;
  finish: () => void;
  checker: ClusterRecoveryChecker;
} {
  const found: string[] = [];
  const fences = new ClusterFenceChecker({ closeBoundMs: 60_000 }, (c, m) => found.push(`${c}: ${m}`));
  const checker = new ClusterRecoveryChecker(fences, (c, m) => found.push(`${c}: ${m}`));
  let t = 0;
  const both = (source: number, event: string, fields: TraceFields): void => {
    const e = { timeUs: t++, source: nodeId(source), event, fields };
    fences.observe(e);
    checker.observe(e);
  };
  return {
    found,
    fence: (source, fields) => {
      both(source, 'fence-ledger', fields);
    },
    recovery: (source, index, p) => {
      both(source, RECOVERY_TRACE_EVENT, recoveryTraceFields(index, p));
    },
    removed: (source, index, group, node, inc) => {
      both(source, GROUP_REMOVED_TRACE_EVENT, { index, group, node, incarnation: inc });
    },
    finish: () => {
      fences.finish();
      checker.finish();
    },
    checker,
  };
}

const round = { group: 'db', level: 1 };
const requested = (index: number, node: number, inc: number): TraceFields => ({
  index,
  node,
  incarnation: inc,
  what: 'requested',
  reason: 'fail',
});
const fenced = (index: number, node: number, inc: number): TraceFields => ({
  index,
  node,
  incarnation: inc,
  what: 'fenced',
  by: 'confirm',
});

/** Group db at level 1 runs with 1@1, 2@1, 3@1 (generation 1 finished at index 10). */
function history(s: ReturnType<typeof setup>): void {
  s.recovery(1, 10, { ...round, generation: 1, step: 'finished', members: [ref(1, 1), ref(2, 1), ref(3, 1)] });
}

test('a round that starts after its fences are closed passes, traced by several nodes', () => {
  const s = setup();
  for (const n of [1, 2]) {
    history(s);
    s.fence(n, requested(20, 3, 1));
    s.recovery(n, 20, {
      ...round,
      generation: 2,
      step: 'opened',
      reason: 'unclean-removal',
      previous: 0,
      members: [ref(1, 1), ref(2, 1)],
      fences: [ref(3, 1)],
    });
    s.fence(n, fenced(24, 3, 1));
    s.recovery(n, 24, { ...round, generation: 2, step: 'fence-satisfied', ...ref(3, 1) });
    s.recovery(n, 26, { ...round, generation: 2, step: 'start-due', members: [ref(1, 1), ref(2, 1)] });
    s.recovery(n, 28, { ...round, generation: 2, step: 'finished', members: [ref(1, 1), ref(2, 1)] });
  }
  s.finish();
  assert.deepEqual(s.found, []);
  assert.equal(s.checker.starts, 1);
});

test('a start before a fence its round waits for is closed is caught', () => {
  const s = setup();
  history(s);
  s.fence(1, requested(20, 3, 1));
  s.recovery(1, 20, {
    ...round,
    generation: 2,
    step: 'opened',
    reason: 'unclean-removal',
    previous: 0,
    members: [ref(1, 1), ref(2, 1)],
    fences: [ref(3, 1)],
  });
  s.recovery(1, 22, { ...round, generation: 2, step: 'start-due', members: [ref(1, 1), ref(2, 1)] });
  s.fence(1, fenced(24, 3, 1));
  s.finish();
  assert.equal(s.found.length, 1, s.found.join('\n'));
  assert.match(
    s.found[0] ?? '',
    /recovery-fence: db\/1\/2 start-due at index 22 .*node 3 incarnation 1 is closed only at index 24/,
  );
});

test('a start after an unclean removal whose fence is open is caught, even when no round listed the fence', () => {
  const s = setup();
  history(s);
  // Entry 20 fails 3@1: its fence record opens and it leaves the group in the same entry.
  s.fence(1, requested(20, 3, 1));
  s.removed(1, 20, 'db', 3, 1);
  // The buggy table kept generation 2 (opened at 15, before the failure) going without 3@1.
  s.recovery(1, 15, {
    ...round,
    generation: 2,
    step: 'opened',
    reason: 'member-change',
    previous: 0,
    members: [ref(1, 1), ref(2, 1), ref(3, 1)],
    fences: [],
  });
  s.recovery(1, 21, { ...round, generation: 2, step: 'start-due', members: [ref(1, 1), ref(2, 1)] });
  s.recovery(1, 23, { ...round, generation: 2, step: 'finished', members: [ref(1, 1), ref(2, 1)] });
  s.fence(1, fenced(24, 3, 1));
  s.finish();
  assert.equal(s.found.length, 1, s.found.join('\n'));
  assert.match(
    s.found[0] ?? '',
    /recovery-fence: db\/1\/2 start-due at index 21 \(db lost 3@1 uncleanly at index 20\).*closed only at index 24/,
  );
});

test('removals without a fence in their entry (clean leaves, evictions) and starts before a removal are not judged', () => {
  const s = setup();
  history(s);
  // 3@1 is evicted at 18 (no fence); 2@1 leaves the cluster cleanly at 19 (no fence).
  s.removed(1, 18, 'db', 3, 1);
  s.removed(1, 19, 'db', 2, 1);
  s.recovery(1, 17, { ...round, generation: 2, step: 'start-due', members: [ref(1, 1), ref(2, 1), ref(3, 1)] });
  // 3@1 fails later (its fence opens at 30, closes at 40): the group no longer held it.
  s.fence(1, requested(30, 3, 1));
  s.recovery(1, 31, {
    ...round,
    generation: 3,
    step: 'opened',
    reason: 'member-change',
    previous: 0,
    members: [ref(1, 1)],
    fences: [],
  });
  s.recovery(1, 32, { ...round, generation: 3, step: 'start-due', members: [ref(1, 1)] });
  s.recovery(1, 33, { ...round, generation: 3, step: 'finished', members: [ref(1, 1)] });
  // A removal whose fence opened in its entry, but after every start of the group.
  s.fence(1, requested(50, 1, 1));
  s.removed(1, 50, 'db', 1, 1);
  s.fence(1, fenced(40, 3, 1));
  s.fence(1, fenced(55, 1, 1));
  s.finish();
  assert.deepEqual(s.found, []);
  assert.ok(s.checker.settled());
  assert.equal(s.checker.counts.removals, 3);
});

test('a start while a lower level round is open is caught; one after it ended, or beside an open of the same entry, is not', () => {
  const s = setup();
  const lock = { group: 'lock', level: 1 };
  const vol = { group: 'vol', level: 2 };
  const opened = (index: number, r: { group: string; level: number }, generation: number): void => {
    for (const n of [1, 2])
      s.recovery(n, index, {
        ...r,
        generation,
        step: 'opened',
        reason: 'member-change',
        previous: 0,
        members: [ref(1, 1)],
        fences: [],
      });
  };
  // Fine: lock 1 finishes at 12, vol 2 starts at 12 (the same entry, after it).
  opened(10, lock, 1);
  opened(10, vol, 2);
  s.recovery(1, 11, { ...lock, generation: 1, step: 'start-due', members: [ref(1, 1)] });
  s.recovery(1, 12, { ...lock, generation: 1, step: 'finished', members: [ref(1, 1)] });
  s.recovery(1, 12, { ...vol, generation: 2, step: 'start-due', members: [ref(1, 1)] });
  s.recovery(1, 13, { ...vol, generation: 2, step: 'finished', members: [ref(1, 1)] });
  // Fine: vol 4 starts at 20, lock 3 opens in that entry (after the start, in the table's order).
  opened(19, vol, 4);
  opened(20, lock, 3);
  s.recovery(1, 20, { ...vol, generation: 4, step: 'start-due', members: [ref(1, 1)] });
  s.recovery(1, 21, { ...vol, generation: 4, step: 'finished', members: [ref(1, 1)] });
  assert.equal(s.checker.settled(), false);
  assert.match(s.checker.describeOpen(), /^lock generation 3 \(level 1, opened at index 20\)$/);
  // Bug: vol 5 starts at 30 while lock 3 is still open (it ends at 31).
  opened(29, vol, 5);
  s.recovery(2, 30, { ...vol, generation: 5, step: 'start-due', members: [ref(1, 1)] });
  s.recovery(2, 31, { ...lock, generation: 3, step: 'aborted', next: 6 });
  opened(31, lock, 6);
  s.recovery(2, 32, { ...lock, generation: 6, step: 'start-due', members: [ref(1, 1)] });
  s.recovery(2, 33, { ...lock, generation: 6, step: 'finished', members: [ref(1, 1)] });
  s.recovery(2, 34, { ...vol, generation: 5, step: 'finished', members: [ref(1, 1)] });
  assert.ok(s.checker.settled());
  s.finish();
  assert.equal(s.found.length, 1, s.found.join('\n'));
  assert.match(
    s.found[0] ?? '',
    /recovery-levels: vol\/2\/5 start-due at index 30 while lock\/1\/3 \(a lower level\) is open: opened at index 20, ended at index 31/,
  );
  assert.equal(s.checker.counts.opened, 6);
  assert.equal(s.checker.counts.startDue, 5);
});

test('a fence-satisfied before the close is caught', () => {
  const s = setup();
  s.fence(1, requested(20, 3, 1));
  s.recovery(1, 21, { ...round, generation: 2, step: 'fence-satisfied', ...ref(3, 1) });
  s.fence(1, fenced(23, 3, 1));
  s.finish();
  assert.equal(s.found.length, 1, s.found.join('\n'));
  assert.match(s.found[0] ?? '', /fence-satisfied: the fence of node 3 incarnation 1 is closed only at index 23/);
});

test('a malformed recovery trace is reported', () => {
  const found: string[] = [];
  const fences = new ClusterFenceChecker({ closeBoundMs: 1 }, () => undefined);
  const c = new ClusterRecoveryChecker(fences, (_, m) => found.push(m));
  c.observe({ timeUs: 0, source: nodeId(1), event: RECOVERY_TRACE_EVENT, fields: { index: 'x' } });
  assert.equal(found.length, 1);
});
