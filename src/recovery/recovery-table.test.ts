// Proves the recovery table's rules one by one (docs/recovery.md): an unclean removal opens a
// round and a join or clean leave opens none; a round never becomes `starting` before its fences
// are recorded and every member stopped; level 2 never starts before level 1 finished, and a
// level-1 finish makes level 2 due in the same hook; a newer unclean removal aborts the round and
// opens the next generation with both removals' fences; stale, duplicate and early reports change
// nothing; an error or an eviction returns the member to remove, and removing it restarts the
// round; a round whose members all left waits for its fence, so the group created again cannot
// start before it; level 0 gets no rounds; `waitingFor` says what a round waits for, since when;
// the encoding round-trips, and damaged bytes raise only DecodeError; the `skip-abort` canary
// keeps a round going past a newer unclean removal. The random-sequence
// property test and the canaries are in recovery-property.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { DecodeError } from '../lib/errors.js';
import { incarnation, logIndex, nodeId, type LogIndex } from '../lib/ids.js';
import { RecoveryTable, type RecoveryApply } from './recovery-table.js';
import type { RecoveryMemberRef } from './recovery-event.js';

const m = (node: number, i = 1): RecoveryMemberRef => ({ node: nodeId(node), incarnation: incarnation(i) });
const ix = (i: number): LogIndex => logIndex(i);
const steps = (a: RecoveryApply): string[] => a.events.map((e) => `${e.group}:${e.step}:${e.generation}`);

function encode(t: RecoveryTable): Uint8Array {
  const w = new ByteWriter(256);
  t.encode(w);
  return w.finish().slice();
}

/** Group g (level 1) with members 1, 2, 3; node 2 removed uncleanly at index 10. */
function failedRound(): RecoveryTable {
  const t = new RecoveryTable();
  t.onGroupChange('g', 1, [m(1), m(2), m(3)], [], ix(1));
  t.onGroupChange('g', 1, [m(1), m(3)], [m(2)], ix(10));
  return t;
}

test('joins and clean leaves open nothing; an unclean removal opens a round waiting for the fence', () => {
  const t = new RecoveryTable();
  assert.deepEqual(t.onGroupChange('g', 1, [m(1)], [], ix(1)).events, []);
  t.onGroupChange('g', 1, [m(1), m(2), m(3)], [], ix(2));
  assert.deepEqual(t.onGroupChange('g', 1, [m(1), m(2)], [], ix(3)).events, [], 'a clean leave');
  assert.equal(t.round('g')?.phase, 'idle');
  assert.equal(t.round('g')?.generation, 0);
  const r = t.onGroupChange('g', 1, [m(1)], [m(2)], ix(4));
  assert.deepEqual(r.events, [
    {
      step: 'opened',
      group: 'g',
      level: 1,
      generation: 1,
      reason: 'unclean-removal',
      previous: 0,
      members: [m(1)],
      fences: [m(2)],
    },
  ]);
  const round = t.round('g');
  assert.equal(round?.phase, 'stopping');
  assert.equal(round.openedAtIndex, 4);
  assert.deepEqual(round.awaitingFences, [{ ...m(2), sinceIndex: 4 }]);
});

test('a round never starts before its fences are recorded, nor before every member stopped', () => {
  const t = failedRound();
  assert.deepEqual(steps(t.report('g', 1, nodeId(1), incarnation(1), 'stopped', ix(11))), ['g:stopped:1']);
  assert.equal(t.round('g')?.phase, 'stopping', 'node 3 has not stopped');
  assert.equal(t.report('g', 1, nodeId(1), incarnation(1), 'started', ix(12)).outcome, 'not-due');
  t.report('g', 1, nodeId(3), incarnation(1), 'stopped', ix(13));
  assert.equal(t.round('g')?.phase, 'waiting-fence');
  assert.equal(t.round('g')?.phaseSinceIndex, 13);
  assert.equal(t.report('g', 1, nodeId(3), incarnation(1), 'started', ix(14)).outcome, 'not-due');
  assert.deepEqual(steps(t.onFenced(nodeId(2), incarnation(1), ix(15))), ['g:fence-satisfied:1', 'g:start-due:1']);
  assert.equal(t.round('g')?.phase, 'starting');
  t.report('g', 1, nodeId(1), incarnation(1), 'started', ix(16));
  assert.equal(t.round('g')?.phase, 'starting');
  assert.deepEqual(steps(t.report('g', 1, nodeId(3), incarnation(1), 'started', ix(17))), [
    'g:member-started:1',
    'g:finished:1',
  ]);
  assert.equal(t.round('g')?.phase, 'finished');
  assert.equal(t.isOpen('g'), false);
});

test('a fence recorded before the stops still waits for them', () => {
  const t = failedRound();
  assert.deepEqual(steps(t.onFenced(nodeId(2), incarnation(1), ix(11))), ['g:fence-satisfied:1']);
  assert.equal(t.round('g')?.phase, 'stopping');
  assert.equal(t.onFenced(nodeId(2), incarnation(1), ix(12)).outcome, 'no-change', 'recorded once');
  assert.equal(t.onFenced(nodeId(2), incarnation(2), ix(12)).outcome, 'no-change', 'another incarnation');
  t.report('g', 1, nodeId(1), incarnation(1), 'stopped', ix(13));
  assert.deepEqual(steps(t.report('g', 1, nodeId(3), incarnation(1), 'stopped', ix(14))), [
    'g:stopped:1',
    'g:start-due:1',
  ]);
});

test('level 2 starts only once level 1 finished, in the same hook that finishes it', () => {
  const t = new RecoveryTable();
  t.onGroupChange('vol', 2, [m(1), m(2), m(3)], [], ix(1));
  t.onGroupChange('ls', 1, [m(1), m(2), m(3)], [], ix(2));
  t.onGroupChange('app', 3, [m(1), m(3)], [], ix(3));
  for (const g of ['app', 'ls', 'vol'])
    t.onGroupChange(g, t.round(g)?.level ?? 0, g === 'app' ? [m(1)] : [m(1), m(2)], [m(3)], ix(10));
  const gen = (g: string): number => t.round(g)?.generation ?? 0;
  assert.deepEqual([gen('app'), gen('ls'), gen('vol')], [1, 2, 3], 'one generation counter');
  for (const g of ['app', 'vol', 'ls'])
    for (const node of g === 'app' ? [1] : [1, 2]) t.report(g, gen(g), nodeId(node), incarnation(1), 'stopped', ix(11));
  assert.deepEqual(steps(t.onFenced(nodeId(3), incarnation(1), ix(12))), [
    'app:fence-satisfied:1',
    'ls:fence-satisfied:2',
    'vol:fence-satisfied:3',
    'ls:start-due:2',
  ]);
  assert.equal(t.round('vol')?.phase, 'waiting-lower');
  assert.equal(t.round('app')?.phase, 'waiting-lower');
  assert.deepEqual(
    t.waitingFor('app')?.lower.map((l) => `${l.group}/${l.level}/${l.phase}`),
    ['ls/1/starting', 'vol/2/waiting-lower'],
  );
  assert.equal(t.report('vol', 3, nodeId(1), incarnation(1), 'started', ix(13)).outcome, 'not-due');
  t.report('ls', 2, nodeId(1), incarnation(1), 'started', ix(14));
  assert.deepEqual(steps(t.report('ls', 2, nodeId(2), incarnation(1), 'started', ix(15))), [
    'ls:member-started:2',
    'ls:finished:2',
    'vol:start-due:3',
  ]);
  assert.equal(t.round('app')?.phase, 'waiting-lower', 'level 3 waits for level 2');
  t.report('vol', 3, nodeId(1), incarnation(1), 'started', ix(16));
  assert.deepEqual(steps(t.report('vol', 3, nodeId(2), incarnation(1), 'started', ix(17))), [
    'vol:member-started:3',
    'vol:finished:3',
    'app:start-due:1',
  ]);
});

test('a newer unclean removal aborts the round and opens the next generation; both fences stay required', () => {
  const t = failedRound();
  t.report('g', 1, nodeId(1), incarnation(1), 'stopped', ix(11));
  const r = t.onGroupChange('g', 1, [m(1)], [m(3)], ix(12));
  assert.deepEqual(steps(r), ['g:aborted:1', 'g:opened:2']);
  const opened = r.events[1];
  assert.ok(opened?.step === 'opened');
  assert.deepEqual(opened.fences, [m(2), m(3)]);
  assert.equal(opened.previous, 1);
  assert.deepEqual(t.round('g')?.members, [{ ...m(1), report: null }], 'reports start afresh');
  assert.deepEqual(
    t.round('g')?.awaitingFences.map((f) => f.sinceIndex),
    [10, 12],
    'each fence keeps the index since which it is awaited',
  );
  assert.equal(t.report('g', 1, nodeId(1), incarnation(1), 'stopped', ix(13)).outcome, 'stale', 'old generation');
  t.report('g', 2, nodeId(1), incarnation(1), 'stopped', ix(14));
  t.onFenced(nodeId(3), incarnation(1), ix(15));
  assert.equal(t.round('g')?.phase, 'waiting-fence', "the aborted round's fence is still awaited");
  t.onFenced(nodeId(2), incarnation(1), ix(16));
  assert.equal(t.round('g')?.phase, 'starting');
});

test('canary skip-abort: a newer unclean removal keeps the round going and it starts before that fence', () => {
  const t = new RecoveryTable('skip-abort');
  t.onGroupChange('g', 1, [m(1), m(2), m(3)], [], ix(1));
  t.onGroupChange('g', 1, [m(1), m(3)], [m(2)], ix(10));
  t.report('g', 1, nodeId(1), incarnation(1), 'stopped', ix(11));
  assert.deepEqual(steps(t.onGroupChange('g', 1, [m(1)], [m(3)], ix(12))), [], 'no abort, no new generation');
  assert.deepEqual(t.round('g')?.members, [{ ...m(1), report: 'stopped' }]);
  assert.deepEqual(steps(t.onFenced(nodeId(2), incarnation(1), ix(13))), ['g:fence-satisfied:1', 'g:start-due:1']);
  assert.equal(t.round('g')?.phase, 'starting', "3@1's fence was never awaited");
});

test('stale and duplicate reports change nothing', () => {
  const t = failedRound();
  const before = encode(t);
  assert.equal(t.report('g', 2, nodeId(1), incarnation(1), 'stopped', ix(11)).outcome, 'stale', 'future generation');
  assert.equal(t.report('g', 1, nodeId(2), incarnation(1), 'stopped', ix(11)).outcome, 'stale', 'the removed member');
  assert.equal(t.report('g', 1, nodeId(1), incarnation(2), 'stopped', ix(11)).outcome, 'stale', 'another incarnation');
  assert.equal(t.report('h', 1, nodeId(1), incarnation(1), 'stopped', ix(11)).outcome, 'stale', 'no such group');
  assert.equal(t.evict('g', 1, nodeId(4), incarnation(1), ix(11)).outcome, 'stale');
  assert.deepEqual(encode(t), before);
  t.report('g', 1, nodeId(1), incarnation(1), 'stopped', ix(12));
  const after = encode(t);
  assert.equal(t.report('g', 1, nodeId(1), incarnation(1), 'stopped', ix(13)).outcome, 'duplicate');
  assert.deepEqual(encode(t), after);
  const done = new RecoveryTable();
  done.onGroupChange('g', 1, [m(1), m(2)], [], ix(1));
  done.onGroupChange('g', 1, [m(1)], [m(2)], ix(2));
  done.onFenced(nodeId(2), incarnation(1), ix(3));
  done.report('g', 1, nodeId(1), incarnation(1), 'stopped', ix(4));
  done.report('g', 1, nodeId(1), incarnation(1), 'started', ix(5));
  assert.equal(done.round('g')?.phase, 'finished');
  assert.equal(done.report('g', 1, nodeId(1), incarnation(1), 'error', ix(6)).outcome, 'stale', 'round finished');
});

test('an error returns the member to evict; removing it restarts the round without it', () => {
  const t = failedRound();
  t.report('g', 1, nodeId(1), incarnation(1), 'stopped', ix(11));
  const r = t.report('g', 1, nodeId(3), incarnation(1), 'error', ix(12));
  assert.deepEqual(steps(r), ['g:member-error:1']);
  assert.deepEqual(r.evict, [{ group: 'g', generation: 1, ...m(3) }]);
  assert.deepEqual(t.waitingFor('g')?.evicting, [m(3)]);
  assert.equal(t.report('g', 1, nodeId(3), incarnation(1), 'error', ix(13)).outcome, 'duplicate');
  t.onFenced(nodeId(2), incarnation(1), ix(13));
  assert.equal(t.round('g')?.phase, 'stopping', 'an erring member does not count as stopped');
  // The caller removes it from the group and reports the change:
  const restart = t.onGroupChange('g', 1, [m(1)], [], ix(14));
  assert.deepEqual(steps(restart), ['g:aborted:1', 'g:opened:2']);
  assert.equal(restart.evict.length, 0, 'a group change never evicts: no recursion');
  assert.equal(restart.events[1]?.step === 'opened' && restart.events[1].reason, 'member-change');
  t.report('g', 2, nodeId(1), incarnation(1), 'stopped', ix(15));
  assert.equal(t.round('g')?.phase, 'starting', 'the fence was already recorded');
});

test('an eviction is taken only while the member owes the awaited report', () => {
  const t = failedRound();
  t.report('g', 1, nodeId(1), incarnation(1), 'stopped', ix(11));
  assert.equal(t.evict('g', 1, nodeId(1), incarnation(1), ix(12), 'late').outcome, 'stale', 'it already stopped');
  const r = t.evict('g', 1, nodeId(3), incarnation(1), ix(12), 'no stop within 30 s');
  assert.deepEqual(r.events, [
    { step: 'member-evicted', group: 'g', level: 1, generation: 1, ...m(3), reason: 'no stop within 30 s' },
  ]);
  assert.deepEqual(r.evict, [{ group: 'g', generation: 1, ...m(3) }]);
  t.onGroupChange('g', 1, [m(1)], [], ix(13));
  t.report('g', 2, nodeId(1), incarnation(1), 'stopped', ix(14));
  assert.equal(t.round('g')?.phase, 'waiting-fence');
  assert.equal(t.evict('g', 2, nodeId(1), incarnation(1), ix(15)).outcome, 'stale', 'nothing is owed while waiting');
  t.onFenced(nodeId(2), incarnation(1), ix(16));
  assert.equal(t.evict('g', 2, nodeId(1), incarnation(1), ix(17)).outcome, 'applied', 'it owes started');
});

test('a join or a clean leave during an open round restarts it; the newcomer must stop too', () => {
  const t = failedRound();
  t.report('g', 1, nodeId(1), incarnation(1), 'stopped', ix(11));
  assert.deepEqual(steps(t.onGroupChange('g', 1, [m(1), m(3), m(4)], [], ix(12))), ['g:aborted:1', 'g:opened:2']);
  assert.deepEqual(
    t.waitingFor('g')?.notStopped.map((x) => x.node),
    [1, 3, 4],
  );
  assert.deepEqual(steps(t.onGroupChange('g', 1, [m(1), m(4)], [], ix(13))), ['g:aborted:2', 'g:opened:3']);
  assert.equal(t.onGroupChange('g', 1, [m(1), m(4)], [], ix(14)).outcome, 'no-change', 'same members');
  assert.deepEqual(
    t.round('g')?.awaitingFences.map((f) => f.node),
    [2],
  );
});

test('a round whose members all left waits for its fence: the group created again cannot start before it', () => {
  const t = new RecoveryTable();
  t.onGroupChange('g', 1, [m(1), m(2)], [], ix(1));
  t.onGroupChange('g', 1, [m(1)], [m(2)], ix(2));
  t.onGroupChange('g', 1, [], [], ix(3));
  assert.equal(t.round('g')?.phase, 'waiting-fence');
  t.onGroupChange('g', 1, [m(3)], [], ix(4));
  t.report('g', t.round('g')?.generation ?? 0, nodeId(3), incarnation(1), 'stopped', ix(5));
  assert.equal(t.round('g')?.phase, 'waiting-fence');
  t.onFenced(nodeId(2), incarnation(1), ix(6));
  assert.equal(t.round('g')?.phase, 'starting');
  // A round without members finishes as soon as it is due, and is forgotten.
  const u = new RecoveryTable();
  u.onGroupChange('h', 2, [m(1)], [], ix(1));
  u.onGroupChange('h', 2, [], [m(1)], ix(2));
  assert.deepEqual(steps(u.onFenced(nodeId(1), incarnation(1), ix(3))), [
    'h:fence-satisfied:1',
    'h:start-due:1',
    'h:finished:1',
  ]);
  assert.equal(u.round('h'), null);
  assert.deepEqual(u.rounds(), []);
  const v = new RecoveryTable();
  v.onGroupChange('k', 1, [m(1)], [], ix(1));
  v.onGroupChange('k', 1, [], [], ix(2));
  assert.equal(v.round('k'), null, 'an idle group that lost its members is forgotten');
});

test('level 0 is the fence domain: level-0 groups get no rounds', () => {
  const t = new RecoveryTable();
  assert.equal(t.onGroupChange('z', 0, [m(1), m(2)], [], ix(1)).outcome, 'no-change');
  assert.equal(t.onGroupChange('z', 0, [m(1)], [m(2)], ix(2)).outcome, 'no-change');
  assert.equal(t.round('z'), null);
});

test('waitingFor says what a round waits for and since which entry', () => {
  const t = failedRound();
  const w = t.waitingFor('g');
  assert.deepEqual(
    { ...w, lower: w?.lower.length },
    {
      group: 'g',
      level: 1,
      generation: 1,
      phase: 'stopping',
      sinceIndex: 10,
      fences: [{ ...m(2), sinceIndex: 10 }],
      notStopped: [m(1), m(3)],
      notStarted: [],
      evicting: [],
      lower: 0,
    },
  );
  assert.equal(t.waitingFor('nope'), null);
});

test('the encoding round-trips; a restored table behaves the same; damaged bytes raise only DecodeError', () => {
  const t = new RecoveryTable();
  t.onGroupChange('a', 1, [m(1), m(2), m(3)], [], ix(1));
  t.onGroupChange('b', 2, [m(1), m(2), m(3)], [], ix(2));
  t.onGroupChange('a', 1, [m(1), m(2)], [m(3)], ix(3));
  t.onGroupChange('b', 2, [m(1), m(2)], [m(3)], ix(3));
  t.report('a', 1, nodeId(1), incarnation(1), 'stopped', ix(4));
  t.report('b', 2, nodeId(1), incarnation(1), 'stopped', ix(4));
  t.report('b', 2, nodeId(2), incarnation(1), 'stopped', ix(4));
  const good = encode(t);
  const back = RecoveryTable.decode(new ByteReader(good));
  assert.deepEqual(encode(back), good);
  assert.deepEqual(back.rounds(), t.rounds());
  assert.deepEqual(back.onFenced(nodeId(3), incarnation(1), ix(5)), t.onFenced(nodeId(3), incarnation(1), ix(5)));
  for (let cut = 0; cut < good.length; cut++)
    assert.throws(() => RecoveryTable.decode(new ByteReader(good.subarray(0, cut))), DecodeError);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: good.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, x) => {
      const bad = good.slice();
      bad[at] = (bad[at] ?? 0) ^ x;
      try {
        RecoveryTable.decode(new ByteReader(bad));
      } catch (e) {
        assert.ok(e instanceof DecodeError, String(e));
      }
    }),
    { numRuns: 2000 },
  );
});

test('a phase that contradicts the reports, or a table that is not settled, does not decode', () => {
  const t = failedRound();
  t.report('g', 1, nodeId(1), incarnation(1), 'stopped', ix(11));
  t.report('g', 1, nodeId(3), incarnation(1), 'stopped', ix(12));
  const bytes = encode(t);
  // The phase byte follows lastGeneration (8), count (1), name (1 + 1), level (1), generation (8).
  const at = 8 + 1 + 2 + 1 + 8;
  assert.equal(bytes[at], 2, 'waiting-fence');
  for (const phase of [0, 1, 3, 4, 5]) {
    const bad = bytes.slice();
    bad[at] = phase;
    assert.throws(() => RecoveryTable.decode(new ByteReader(bad)), DecodeError, `phase ${phase}`);
  }
});

test('checkAgainst: a record must list its group level and members', () => {
  const t = failedRound();
  assert.equal(t.checkAgainst([{ group: 'g', level: 1, members: [m(1), m(3)] }]), null);
  assert.match(t.checkAgainst([{ group: 'g', level: 2, members: [m(1), m(3)] }]) ?? '', /level/);
  assert.match(t.checkAgainst([{ group: 'g', level: 1, members: [m(1)] }]) ?? '', /other members/);
  assert.match(t.checkAgainst([]) ?? '', /does not exist/);
});
