// Proves the group table's rules on their own: views change on every join, leave and removal
// with growing ids (also across a group's deletion and re-creation); a message is numbered and
// delivered to exactly the members of the view it was sent in, and refused `view-changed`
// otherwise (the planted `deliver-to-newcomer` bug is caught by the same check); barriers
// complete only when every member arrived and fail for everyone on a view change (the planted
// `barrier-without-all` bug is caught); bounds and refusals change nothing; and the canonical
// encoding round-trips (a restored table behaves like the original, on a random command stream),
// while damaged encodings raise only DecodeError. The command codec round-trips through the
// membership codec and rejects malformed names, sizes and levels. A group has one level, set by
// the join that creates it (another level is refused), and an older snapshot whose members had
// their own levels still decodes. A group that loses its last member keeps its retained messages
// among the emptied groups (bounded, oldest emptied first), which a re-creation takes over and the
// encoding carries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { DecodeError } from '../lib/errors.js';
import { incarnation, nodeId, type Incarnation, type NodeId } from '../lib/ids.js';
import {
  decodeMembershipCommand,
  encodeMembershipCommand,
  validateMembershipCommand,
} from '../membership/membership-command.js';
import {
  GROUP_BARRIERS_PENDING_MAX,
  GROUP_MESSAGE_BYTES_MAX,
  GROUPS_MAX,
  GROUPS_EMPTIED_BYTES_MAX,
  GROUPS_EMPTIED_MAX,
} from '../constants.js';
import { GroupTable, type GroupApply, type GroupCanary } from './group-table.js';
import type { GroupCommand } from './group-command.js';

const n = nodeId;
const inc = incarnation;
const everyoneInView = (): boolean => true;
const payload = new TextEncoder().encode('hello');

function join(t: GroupTable, group: string, node: number, i = 1, level = 0): GroupApply {
  return t.apply({ type: 'group-join', group, node: n(node), incarnation: inc(i), level }, everyoneInView);
}

function send(t: GroupTable, group: string, node: number, groupViewId: number, i = 1): GroupApply {
  return t.apply(
    { type: 'group-send', group, node: n(node), incarnation: inc(i), groupViewId, payload },
    everyoneInView,
  );
}

function barrier(t: GroupTable, group: string, name: string, node: number, groupViewId: number): GroupApply {
  return t.apply({ type: 'barrier', group, name, node: n(node), incarnation: inc(1), groupViewId }, everyoneInView);
}

test('views grow on join, leave and removal; a deleted group comes back with a higher view id', () => {
  const t = new GroupTable();
  assert.equal(join(t, 'g', 2).groupViewId, 1);
  assert.equal(join(t, 'g', 1).groupViewId, 2);
  assert.deepEqual(
    t.view('g')?.members.map((m) => m.node),
    [1, 2],
    'members ascend by node id',
  );
  assert.equal(join(t, 'g', 1).outcome, 'duplicate');
  assert.equal(join(t, 'h', 1).groupViewId, 3, 'view ids come from one cluster-wide counter');
  const removed = t.removeNode(n(1), inc(1), false);
  assert.deepEqual(
    removed.map((e) =>
      e.kind === 'group' ? `${e.payload.group}:${e.payload.groupViewId}:${e.payload.change.kind}` : '',
    ),
    ['g:4:removed', 'h:5:removed'],
    'groups in name order',
  );
  assert.equal(t.view('h'), null, 'a group disappears with its last member');
  assert.equal(join(t, 'h', 3).groupViewId, 6);
  const left = t.apply({ type: 'group-leave', group: 'g', node: n(2), incarnation: inc(1) }, everyoneInView);
  assert.equal(left.outcome, 'applied');
  assert.equal(t.view('g'), null);
  assert.equal(
    t.apply({ type: 'group-leave', group: 'g', node: n(2), incarnation: inc(1) }, everyoneInView).outcome,
    'no-such-group',
  );
});

test('only a member of the cluster view may join; a newer incarnation replaces an older one', () => {
  const t = new GroupTable();
  const r = t.apply({ type: 'group-join', group: 'g', node: n(1), incarnation: inc(1), level: 0 }, () => false);
  assert.equal(r.outcome, 'not-in-view');
  assert.equal(t.view('g'), null, 'a refusal changes nothing');
  join(t, 'g', 1, 1);
  const again = join(t, 'g', 1, 2);
  assert.deepEqual(
    again.events.map((e) => (e.kind === 'group' ? `${e.payload.change.kind} ${e.payload.change.incarnation}` : e.kind)),
    ['removed 1', 'joined 2'],
  );
  assert.deepEqual(
    t.view('g')?.members.map((m) => m.incarnation),
    [2],
  );
  assert.deepEqual(t.removeNode(n(1), inc(1), false), [], 'removing the old incarnation again does nothing');
  assert.equal(t.removeNode(n(1), inc(3), true).length, 1, 'orOlder removes an older incarnation');
});

test('a message goes to exactly the members of the view it was sent in, numbered in order', () => {
  const t = new GroupTable();
  join(t, 'g', 1);
  const v = join(t, 'g', 2).groupViewId;
  const a = send(t, 'g', 1, v);
  const b = send(t, 'g', 2, v);
  assert.deepEqual([a.delivery?.seq, b.delivery?.seq], [1, 2]);
  assert.deepEqual(
    a.delivery?.members.map((m) => m.node),
    [1, 2],
  );
  const v2 = join(t, 'g', 3).groupViewId;
  const late = send(t, 'g', 1, v);
  assert.equal(late.outcome, 'view-changed', 'sent in the old view, ordered after the join');
  assert.equal(late.delivery, undefined, 'so nobody delivers it, the newcomer least of all');
  const fresh = send(t, 'g', 1, v2);
  const d = fresh.delivery;
  assert.ok(d !== undefined);
  assert.equal(d.seq, 1, 'numbering restarts in each view');
  assert.deepEqual(
    d.members.map((m) => m.node),
    [1, 2, 3],
  );
  assert.equal(send(t, 'g', 4, v2).outcome, 'not-member');
  assert.equal(send(t, 'nope', 1, v2).outcome, 'no-such-group');
});

test("the planted deliver-to-newcomer bug delivers an old view's message to the newcomer", () => {
  const t = new GroupTable('deliver-to-newcomer');
  const v = join(t, 'g', 1).groupViewId;
  join(t, 'g', 2);
  const late = send(t, 'g', 1, v);
  assert.equal(late.outcome, 'applied');
  assert.ok(
    late.delivery?.members.some((m) => m.node === 2),
    'the check the correct table makes is what prevents this',
  );
});

test('a barrier completes only when every member arrived, and fails for everyone on a view change', () => {
  for (const canary of [null, 'barrier-without-all'] as (GroupCanary | null)[]) {
    const t = new GroupTable(canary);
    join(t, 'g', 1);
    join(t, 'g', 2);
    const v = join(t, 'g', 3).groupViewId;
    assert.equal(barrier(t, 'g', 'b', 1, v).barrierReached, false);
    const second = barrier(t, 'g', 'b', 2, v);
    if (canary !== null) {
      assert.equal(second.barrierReached, true, 'the planted bug completes with 2 of 3');
      continue;
    }
    assert.equal(second.barrierReached, false);
    assert.equal(barrier(t, 'g', 'b', 2, v).outcome, 'duplicate');
    assert.deepEqual(t.pendingBarrier('g', 'b'), [1, 2]);
    const third = barrier(t, 'g', 'b', 3, v);
    assert.equal(third.barrierReached, true);
    assert.deepEqual(
      third.events.map((e) => e.kind === 'barrier' && `${e.payload.name} ${e.payload.outcome}`),
      ['b reached'],
    );
    assert.equal(t.pendingBarrier('g', 'b'), null);
    const late = barrier(t, 'g', 'b', 1, v);
    assert.deepEqual(
      [late.outcome, late.barrierReached],
      ['duplicate', true],
      'a late arrival does not open the reached barrier again',
    );
    assert.equal(t.pendingBarrier('g', 'b'), null);
    // A second round, cut by a member's removal.
    barrier(t, 'g', 'c', 1, v);
    barrier(t, 'g', 'd', 2, v);
    const events = t.removeNode(n(3), inc(1), false);
    assert.deepEqual(
      events.map((e) =>
        e.kind === 'barrier'
          ? `${e.payload.name} ${e.payload.outcome} ${e.payload.groupViewId}`
          : `view ${e.payload.groupViewId}`,
      ),
      [`c view-changed ${v}`, `d view-changed ${v}`, `view ${v + 1}`],
    );
    assert.equal(barrier(t, 'g', 'c', 1, v).outcome, 'view-changed', 'an arrival naming the old view is refused');
  }
});

test('bounds refuse and change nothing', () => {
  const t = new GroupTable();
  for (let i = 0; i < GROUPS_MAX; i++) assert.equal(join(t, `g${i}`, 1).outcome, 'applied');
  assert.equal(join(t, 'one-more', 1).outcome, 'too-many-groups');
  const v = t.view('g0')?.groupViewId ?? 0;
  join(t, 'g0', 2);
  const v2 = t.view('g0')?.groupViewId ?? 0;
  assert.notEqual(v, v2);
  for (let i = 0; i < GROUP_BARRIERS_PENDING_MAX; i++)
    assert.equal(barrier(t, 'g0', `b${i}`, 1, v2).outcome, 'applied');
  assert.equal(barrier(t, 'g0', 'b-extra', 1, v2).outcome, 'too-many-barriers');
});

const arbCommand: fc.Arbitrary<GroupCommand> = fc.oneof(
  fc.record({
    type: fc.constant('group-join' as const),
    group: fc.constantFrom('a', 'b', 'c'),
    node: fc.integer({ min: 1, max: 4 }).map(n),
    incarnation: fc.integer({ min: 1, max: 3 }).map(inc),
    level: fc.integer({ min: 0, max: 3 }),
  }),
  fc.record({
    type: fc.constant('group-leave' as const),
    group: fc.constantFrom('a', 'b', 'c'),
    node: fc.integer({ min: 1, max: 4 }).map(n),
    incarnation: fc.integer({ min: 1, max: 3 }).map(inc),
  }),
  fc.record({
    type: fc.constant('group-send' as const),
    group: fc.constantFrom('a', 'b'),
    node: fc.integer({ min: 1, max: 4 }).map(n),
    incarnation: fc.integer({ min: 1, max: 3 }).map(inc),
    groupViewId: fc.integer({ min: 1, max: 30 }),
    payload: fc.uint8Array({ maxLength: 8 }),
  }),
  fc.record({
    type: fc.constant('barrier' as const),
    group: fc.constantFrom('a', 'b'),
    name: fc.constantFrom('x', 'y'),
    node: fc.integer({ min: 1, max: 4 }).map(n),
    incarnation: fc.integer({ min: 1, max: 3 }).map(inc),
    groupViewId: fc.integer({ min: 1, max: 30 }),
  }),
);

type Step =
  | { readonly kind: 'cmd'; readonly c: GroupCommand }
  | { readonly kind: 'remove'; readonly node: NodeId; readonly inc: Incarnation };
const arbStep: fc.Arbitrary<Step> = fc.oneof(
  { weight: 8, arbitrary: arbCommand.map((c) => ({ kind: 'cmd' as const, c })) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('remove' as const),
      node: fc.integer({ min: 1, max: 4 }).map(n),
      inc: fc.integer({ min: 1, max: 3 }).map(inc),
    }),
  },
);

function encodeTable(t: GroupTable): Uint8Array {
  const w = new ByteWriter(256);
  t.encode(w);
  return w.finish().slice();
}

function stepOnce(t: GroupTable, s: Step): string {
  if (s.kind === 'remove') return JSON.stringify(t.removeNode(s.node, s.inc, true));
  return JSON.stringify(t.apply(s.c, everyoneInView), (_k, v: unknown) => (v instanceof Uint8Array ? [...v] : v));
}

test('a table restored from its encoding behaves exactly like the original (random streams)', () => {
  fc.assert(
    fc.property(fc.array(arbStep, { maxLength: 60 }), fc.array(arbStep, { maxLength: 30 }), (prefix, rest) => {
      const a = new GroupTable();
      for (const s of prefix) stepOnce(a, s);
      const bytes = encodeTable(a);
      const b = GroupTable.decode(new ByteReader(bytes));
      assert.deepEqual(encodeTable(b), bytes, 'canonical: re-encoding gives the same bytes');
      for (const s of rest) assert.equal(stepOnce(b, s), stepOnce(a, s));
      assert.deepEqual(encodeTable(b), encodeTable(a));
    }),
    { numRuns: 300 },
  );
});

test('damaged table encodings raise only DecodeError', () => {
  const t = new GroupTable();
  join(t, 'g', 1);
  const v = join(t, 'g', 2).groupViewId;
  barrier(t, 'g', 'b', 1, v);
  const good = encodeTable(t);
  for (let cut = 0; cut < good.length; cut++)
    assert.throws(() => GroupTable.decode(new ByteReader(good.subarray(0, cut))).view('g'), DecodeError);
  fc.assert(
    fc.property(fc.integer({ min: 0, max: good.length - 1 }), fc.integer({ min: 1, max: 255 }), (at, x) => {
      const bad = good.slice();
      bad[at] = (bad[at] ?? 0) ^ x;
      try {
        const r = new ByteReader(bad);
        GroupTable.decode(r);
      } catch (e) {
        assert.ok(e instanceof DecodeError, String(e));
      }
    }),
    { numRuns: 2000 },
  );
});

test('group commands round-trip through the membership codec; malformed ones are refused', () => {
  fc.assert(
    fc.property(arbCommand, (c) => {
      const bytes = encodeMembershipCommand(c);
      const back = decodeMembershipCommand(bytes);
      assert.deepEqual(back, { ...c });
      assert.deepEqual(encodeMembershipCommand(back), bytes);
    }),
    { numRuns: 500 },
  );
  const base = { type: 'group-join' as const, node: n(1), incarnation: inc(1), level: 0 };
  assert.match(validateMembershipCommand({ ...base, group: '' })?.message ?? '', /group name is empty/);
  assert.match(validateMembershipCommand({ ...base, group: 'bad name' })?.message ?? '', /letters, digits/);
  assert.match(validateMembershipCommand({ ...base, group: 'x'.repeat(65) })?.message ?? '', /at most 64/);
  assert.match(validateMembershipCommand({ ...base, group: 'g', level: 256 })?.message ?? '', /level 256/);
  const big = {
    type: 'group-send' as const,
    group: 'g',
    node: n(1),
    incarnation: inc(1),
    groupViewId: 1,
    payload: new Uint8Array(GROUP_MESSAGE_BYTES_MAX + 1),
  };
  assert.match(validateMembershipCommand(big)?.message ?? '', /exceeds/);
  assert.match(
    validateMembershipCommand({
      type: 'barrier',
      group: 'g',
      name: '-x',
      node: n(1),
      incarnation: inc(1),
      groupViewId: 1,
    })?.message ?? '',
    /barrier name/,
  );
  fc.assert(
    fc.property(fc.integer({ min: 8, max: 11 }), fc.uint8Array({ maxLength: 40 }), (tag, rest) => {
      try {
        decodeMembershipCommand(Uint8Array.of(tag, ...rest));
      } catch (e) {
        assert.ok(e instanceof DecodeError, String(e));
      }
    }),
    { numRuns: 3000 },
  );
});

test('a group has one level, set by the join that creates it; a join naming another is refused', () => {
  const t = new GroupTable();
  assert.equal(join(t, 'g', 1, 1, 2).level, 2);
  assert.equal(t.view('g')?.level, 2);
  const before = encodeTable(t);
  const refused = join(t, 'g', 2, 1, 1);
  assert.equal(refused.outcome, 'level-mismatch');
  assert.equal(refused.level, 2, 'the refusal says the group level');
  assert.deepEqual(refused.events, []);
  assert.deepEqual(encodeTable(t), before, 'a refusal changes nothing');
  assert.equal(join(t, 'g', 1, 2, 3).outcome, 'level-mismatch', 'a newer incarnation cannot change it either');
  assert.equal(join(t, 'g', 2, 1, 2).outcome, 'applied');
  assert.deepEqual(
    t.view('g')?.members.map((m) => m.level),
    [2, 2],
    'every member carries the group level',
  );
  t.removeNode(n(1), inc(1), false);
  t.removeNode(n(2), inc(1), false);
  assert.equal(t.view('g'), null);
  assert.equal(join(t, 'g', 3, 1, 1).level, 1, 'a group created again takes the new join level');
});

test('a snapshot written when members had their own levels decodes; the group takes the lowest', () => {
  const name = new TextEncoder().encode('old');
  const w = new ByteWriter(64);
  w.u64(2).u8(1).u8(name.length).bytes(name).u64(2).u32(0).u8(2);
  w.u16(1).u64(1).u8(3);
  w.u16(2).u64(1).u8(1);
  w.u8(0).u8(0).u16(0);
  const t = GroupTable.decode(new ByteReader(w.finish().slice()), null, false);
  assert.equal(t.view('old')?.level, 1);
  assert.deepEqual(
    t.view('old')?.members.map((m) => m.level),
    [1, 1],
  );
  assert.equal(join(t, 'old', 3, 1, 3).outcome, 'level-mismatch');
  assert.equal(join(t, 'old', 3, 1, 1).outcome, 'applied');
  const again = GroupTable.decode(new ByteReader(encodeTable(t)));
  assert.deepEqual(encodeTable(again), encodeTable(t), 'what this build writes is canonical');
});

const texts = (t: GroupTable, group: string): string[] =>
  t.retainedMessages(group).map((m) => `${m.groupViewId}#${m.seq}:${m.from}`);

test('a group that loses its last member keeps its messages for members a snapshot carries past its end', () => {
  const t = new GroupTable();
  join(t, 'g', 1);
  const v = join(t, 'g', 2).groupViewId;
  send(t, 'g', 2, v);
  t.apply({ type: 'group-leave', group: 'g', node: n(2), incarnation: inc(1) }, everyoneInView);
  assert.deepEqual(t.removeNode(n(1), inc(1), false).length, 1);
  assert.equal(t.view('g'), null, 'the group is gone');
  assert.deepEqual(texts(t, 'g'), [`${v}#1:2`], 'its messages are kept');
  // They travel in the encoding, and a table restored from it behaves the same.
  const copy = GroupTable.decode(new ByteReader(encodeTable(t)));
  assert.deepEqual(texts(copy, 'g'), texts(t, 'g'));
  assert.deepEqual(encodeTable(copy), encodeTable(t));
  // A join that creates the group again takes them over (ids keep growing, so no slot is reused).
  const again = join(t, 'g', 3).groupViewId;
  assert.ok(again > v);
  const w = send(t, 'g', 3, again);
  assert.equal(w.outcome, 'applied');
  assert.deepEqual(texts(t, 'g'), [`${v}#1:2`, `${again}#1:3`]);
  assert.deepEqual(encodeTable(GroupTable.decode(new ByteReader(encodeTable(t)))), encodeTable(t));
  // A group that never carried a message is not kept.
  join(t, 'quiet', 1);
  t.removeNode(n(1), inc(1), false);
  const bytes = encodeTable(t);
  assert.equal(bytes.at(-1), 0, 'no emptied group: the count is 0');
});

test('emptied groups are bounded: the oldest emptied goes first, by count and by bytes', () => {
  const t = new GroupTable();
  const empty = (group: string, size: number): void => {
    const v = join(t, group, 1).groupViewId;
    t.apply(
      { type: 'group-send', group, node: n(1), incarnation: inc(1), groupViewId: v, payload: new Uint8Array(size) },
      everyoneInView,
    );
    t.removeNode(n(1), inc(1), false);
  };
  for (let i = 0; i <= GROUPS_EMPTIED_MAX; i++) empty(`r${i}`, 1);
  assert.deepEqual(texts(t, 'r0'), [], 'one past the count: the oldest is dropped');
  for (let i = 1; i <= GROUPS_EMPTIED_MAX; i++) assert.equal(texts(t, `r${i}`).length, 1, `r${i} kept`);
  empty('big', GROUPS_EMPTIED_BYTES_MAX - 2);
  assert.equal(texts(t, 'big').length, 1, 'the newest always fits');
  const left = Array.from({ length: GROUPS_EMPTIED_MAX }, (_, i) => `r${i + 1}`).filter((g) => texts(t, g).length > 0);
  assert.deepEqual(
    left,
    [`r${GROUPS_EMPTIED_MAX - 1}`, `r${GROUPS_EMPTIED_MAX}`],
    'older ones made room, oldest first',
  );
  // The bounds hold on decode too: a emptied group that is also a live group is refused.
  join(t, 'live', 1);
  const good = encodeTable(t);
  const w = new ByteWriter(256);
  const decoded = GroupTable.decode(new ByteReader(good));
  decoded.encode(w);
  assert.deepEqual(w.finish().slice(), good);
  const liveName = new TextEncoder().encode('live');
  const bigName = new TextEncoder().encode('big');
  const at = Buffer.from(good).lastIndexOf(Buffer.from([bigName.length, ...bigName]));
  assert.ok(at > 0, 'found the emptied entry');
  const bad = Buffer.concat([
    good.subarray(0, at),
    Buffer.from([liveName.length, ...liveName]),
    good.subarray(at + 1 + bigName.length),
  ]);
  assert.throws(() => GroupTable.decode(new ByteReader(bad)), /emptied group live is also a group/);
});
