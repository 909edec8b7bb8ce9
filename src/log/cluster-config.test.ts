// Proves the configuration-change rules: voter changes always go through a joint configuration
// (both halves must agree), learner-only changes apply directly, demoted voters become learners
// only on leaving, invalid changes are refused with CONF_CHANGE_INVALID, and a configuration
// survives its stored form. Also covers the flow-control window and MemoryRaftStorage.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { logIndex, nodeId, term } from '../lib/ids.js';
import {
  applyConfChange,
  configFromConfState,
  confStateFromConfig,
  formatConfig,
  isJoint,
  type ClusterConfig,
} from './cluster-config.js';
import { Inflights, Progress } from './progress.js';
import { MemoryRaftStorage } from './raft-storage.js';
import type { ConfChange } from './raft-message.js';

const id = nodeId;
const base = configFromConfState({
  voters: [
    [id(1), 1],
    [id(2), 1],
    [id(3), 1],
  ],
  outgoing: [],
  learners: [id(4)],
  learnersNext: [],
  autoLeave: false,
});

function apply(c: ClusterConfig, change: ConfChange): ClusterConfig {
  const r = applyConfChange(c, change);
  assert.ok(r.ok, r.ok ? '' : r.error.message);
  return r.value;
}

test('voter changes enter a joint configuration and leave it with an empty change', () => {
  const joint = apply(base, {
    changes: [
      { type: 'add-voter', node: id(4), votes: 2 },
      { type: 'remove-node', node: id(1) },
    ],
    autoLeave: true,
  });
  assert.ok(isJoint(joint));
  assert.equal(formatConfig(joint), 'voters=(2,3,4x2)&&(1,2,3) autoleave');
  const left = apply(joint, { changes: [], autoLeave: false });
  assert.equal(formatConfig(left), 'voters=(2,3,4x2)');
});

test('demoting a voter makes it a pending learner until the joint configuration is left', () => {
  const joint = apply(base, { changes: [{ type: 'add-learner', node: id(3) }], autoLeave: false });
  assert.equal(formatConfig(joint), 'voters=(1,2)&&(1,2,3) learners=(4) learners_next=(3)');
  assert.equal(formatConfig(apply(joint, { changes: [], autoLeave: false })), 'voters=(1,2) learners=(3,4)');
});

test('learner-only changes apply directly; invalid changes are refused', () => {
  assert.equal(
    formatConfig(apply(base, { changes: [{ type: 'add-learner', node: id(5) }], autoLeave: true })),
    'voters=(1,2,3) learners=(4,5)',
  );
  const refuse = (c: ClusterConfig, change: ConfChange): string => {
    const r = applyConfChange(c, change);
    return r.ok ? 'ok' : r.error.code;
  };
  assert.equal(refuse(base, { changes: [], autoLeave: false }), 'CONF_CHANGE_INVALID'); // not joint
  assert.equal(
    refuse(base, { changes: [{ type: 'add-voter', node: id(1), votes: 1 }], autoLeave: false }),
    'CONF_CHANGE_INVALID',
  ); // no-op
  const single = configFromConfState({
    voters: [[id(1), 1]],
    outgoing: [],
    learners: [],
    learnersNext: [],
    autoLeave: false,
  });
  assert.equal(
    refuse(single, { changes: [{ type: 'remove-node', node: id(1) }], autoLeave: false }),
    'CONF_CHANGE_INVALID',
  ); // no voter left
  const joint = apply(base, { changes: [{ type: 'remove-node', node: id(3) }], autoLeave: false });
  assert.equal(
    refuse(joint, { changes: [{ type: 'add-learner', node: id(6) }], autoLeave: false }),
    'CONF_CHANGE_INVALID',
  ); // joint
  assert.equal(
    refuse(base, { changes: [{ type: 'add-voter', node: id(7), votes: 0 }], autoLeave: false }),
    'CONF_CHANGE_INVALID',
  );
});

test('a configuration survives its stored form', () => {
  const joint = apply(base, {
    changes: [
      { type: 'add-learner', node: id(2) },
      { type: 'add-voter', node: id(9), votes: 3 },
    ],
    autoLeave: true,
  });
  assert.equal(formatConfig(configFromConfState(confStateFromConfig(joint))), formatConfig(joint));
});

test('the inflights window is bounded and frees in order', () => {
  const w = new Inflights(3);
  for (const i of [2, 4, 6]) w.add(logIndex(i));
  assert.equal(w.full, true);
  assert.throws(() => {
    w.add(logIndex(8));
  }, /full/);
  w.freeLE(logIndex(4));
  assert.equal(w.length, 1);
  w.freeFirst();
  assert.equal(w.length, 0);
  const pr = new Progress(logIndex(5), 2);
  assert.equal(pr.maybeDecrTo(logIndex(3), logIndex(1)), false, 'a probe rejection other than the last is stale');
  assert.equal(pr.maybeDecrTo(logIndex(4), logIndex(1)), true);
  assert.equal(pr.next, 2);
});

test('MemoryRaftStorage: append replaces a conflicting tail, snapshots and compaction keep terms', () => {
  const s = new MemoryRaftStorage();
  const e = (i: number, t: number) => ({
    type: 'normal' as const,
    term: term(t),
    index: logIndex(i),
    data: new Uint8Array(0),
  });
  s.append([e(1, 1), e(2, 1), e(3, 1)]);
  s.append([e(2, 2)]);
  assert.equal(s.lastIndex(), 2);
  const t2 = s.term(logIndex(2));
  assert.ok(t2.ok && t2.value === 2);
  assert.ok(
    s.createSnapshot(
      logIndex(2),
      { voters: [[id(1), 1]], outgoing: [], learners: [], learnersNext: [], autoLeave: false },
      new Uint8Array([1]),
    ).ok,
  );
  assert.ok(s.compact(logIndex(2)).ok);
  assert.equal(s.firstIndex(), 3);
  const compacted = s.entries(logIndex(2), logIndex(3), 100);
  assert.equal(compacted.ok ? 'ok' : compacted.error.code, 'LOG_COMPACTED');
  const snapTerm = s.term(logIndex(2));
  assert.ok(snapTerm.ok && snapTerm.value === 2, 'the term at the compaction point stays known');
  assert.throws(() => {
    s.append([e(5, 2)]);
  }, /gap/);
});
