// Proves the recovery checker bites, from hand-written traces (the workload does not emit
// `recovery` events yet): a round that starts after the fences it waits for were closed passes
// (several nodes tracing it); a start before a listed fence closed, a start that
// drops a member that ran with the group while that member's fence is open (a round that forgot
// to wait for it), a start whose listed fence never closes, and a `fence-satisfied` before the
// close are each caught. The trace fields come from `recoveryTraceFields`, the format the node
// program will use, applied to real payloads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { incarnation, nodeId } from '../../lib/ids.js';
import type { RecoveryEventPayload } from '../../recovery/recovery-event.js';
import { ClusterFenceChecker } from './cluster-fence-checker.js';
import { ClusterRecoveryChecker, recoveryTraceFields, RECOVERY_TRACE_EVENT } from './cluster-recovery-checker.js';
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

test('a start that drops a member whose fence is open, without waiting for it, is caught', () => {
  const s = setup();
  history(s);
  s.fence(1, requested(20, 3, 1));
  // The buggy round lists no fence at all.
  s.recovery(1, 20, {
    ...round,
    generation: 2,
    step: 'opened',
    reason: 'unclean-removal',
    previous: 0,
    members: [ref(1, 1), ref(2, 1)],
    fences: [],
  });
  s.recovery(1, 21, { ...round, generation: 2, step: 'start-due', members: [ref(1, 1), ref(2, 1)] });
  s.finish();
  assert.equal(s.found.length, 1, s.found.join('\n'));
  assert.match(s.found[0] ?? '', /excludes 3@1, which ran with the group.*never closed/);
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
