// Proves the recovery table's safety rules on random hook sequences, judged from outside: a small
// cluster model (4 nodes, groups at levels 1, 2, 2, 3) fails nodes, records fences, readmits
// nodes, joins and leaves groups, reports (also stale and early) and evicts, applying the
// table's evictions as the membership machine will. A checker that reads only the `recovery`
// events checks after every step that no start is due before the round's fences are recorded,
// before every member stopped, or while a round of a lower level is open; that no member starts
// before the start is due; that a round opens only after the previous one ended; that a restart
// keeps the aborted round's fences; and that every awaited fence is one the model still owes. The
// table's own state is checked against the model's groups. A table restored from its encoding at
// a random point behaves identically on the rest of the sequence. The planted bugs
// (`start-before-fence`, `start-before-lower`, `skip-abort`) are caught by this checker.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { incarnation, logIndex, nodeId } from '../lib/ids.js';
import { RecoveryTable, type RecoveryApply, type RecoveryCanary } from './recovery-table.js';
import type { RecoveryEventPayload, RecoveryMemberRef } from './recovery-event.js';
import type { RecoveryReport } from './recovery-command.js';

const NODES = [1, 2, 3, 4];
const GROUPS: ReadonlyMap<string, number> = new Map([
  ['a', 1],
  ['b', 2],
  ['c', 2],
  ['d', 3],
]);

type Step =
  | { readonly k: 'fail'; readonly node: number }
  | { readonly k: 'fence'; readonly pick: number }
  | { readonly k: 'rejoin'; readonly node: number }
  | { readonly k: 'join'; readonly node: number; readonly group: string }
  | { readonly k: 'leave'; readonly node: number; readonly group: string }
  | {
      readonly k: 'report';
      readonly node: number;
      readonly group: string;
      readonly what: RecoveryReport;
      readonly old: boolean;
    }
  | { readonly k: 'evict'; readonly node: number; readonly group: string; readonly old: boolean };

const node = fc.constantFrom(...NODES);
const group = fc.constantFrom(...GROUPS.keys());
const arbStep: fc.Arbitrary<Step> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ k: fc.constant('fail' as const), node }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('fence' as const), pick: fc.nat(7) }) },
  { weight: 2, arbitrary: fc.record({ k: fc.constant('rejoin' as const), node }) },
  { weight: 4, arbitrary: fc.record({ k: fc.constant('join' as const), node, group }) },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('leave' as const), node, group }) },
  {
    weight: 10,
    arbitrary: fc.record({
      k: fc.constant('report' as const),
      node,
      group,
      what: fc.constantFrom<RecoveryReport>('stopped', 'stopped', 'started', 'started', 'error'),
      old: fc.nat(9).map((x) => x === 0),
    }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant('evict' as const), node, group, old: fc.boolean() }) },
);

/** The cluster as the membership machine would hold it. */
interface Model {
  index: number;
  readonly incarnations: Map<number, number>;
  readonly up: Set<number>;
  /** Fences not recorded yet, as `node:incarnation`. */
  readonly owed: Set<string>;
  readonly members: Map<string, Map<number, number>>;
}

function newModel(): Model {
  return {
    index: 0,
    incarnations: new Map(NODES.map((n) => [n, 1])),
    up: new Set(NODES),
    owed: new Set(),
    members: new Map([...GROUPS.keys()].map((g) => [g, new Map<number, number>()])),
  };
}

function cloneModel(m: Model): Model {
  return {
    index: m.index,
    incarnations: new Map(m.incarnations),
    up: new Set(m.up),
    owed: new Set(m.owed),
    members: new Map([...m.members].map(([g, ms]) => [g, new Map(ms)])),
  };
}

const ref = (n: number, i: number): RecoveryMemberRef => ({ node: nodeId(n), incarnation: incarnation(i) });
const key = (r: RecoveryMemberRef): string => `${r.node}:${r.incarnation}`;

function membersOf(m: Model, g: string): RecoveryMemberRef[] {
  return [...(m.members.get(g) ?? new Map<number, number>())].sort(([a], [b]) => a - b).map(([n, i]) => ref(n, i));
}

/** Runs one step on `t` and `m`; returns every hook result it produced (evictions applied). */
function run(t: RecoveryTable, m: Model, s: Step): RecoveryApply[] {
  const index = logIndex(++m.index);
  const out: RecoveryApply[] = [];
  const inc = m.incarnations.get(s.k === 'fence' ? 0 : s.node) ?? 0;
  const change = (g: string, gone: RecoveryMemberRef[]): void => {
    out.push(t.onGroupChange(g, GROUPS.get(g) ?? 0, membersOf(m, g), gone, index));
  };
  const applyEvictions = (r: RecoveryApply): void => {
    out.push(r);
    for (const e of r.evict) {
      const ms = m.members.get(e.group);
      assert.ok(ms !== undefined && ms.get(e.node) === e.incarnation, 'an eviction names a current member');
      ms.delete(e.node);
      change(e.group, []);
    }
  };
  switch (s.k) {
    case 'fail':
      if (!m.up.has(s.node)) return out;
      m.up.delete(s.node);
      m.owed.add(key(ref(s.node, inc)));
      for (const [g, ms] of m.members)
        if (ms.get(s.node) === inc) {
          ms.delete(s.node);
          change(g, [ref(s.node, inc)]);
        }
      return out;
    case 'fence': {
      const owed = [...m.owed].sort();
      const k = owed[s.pick % Math.max(1, owed.length)];
      if (k === undefined) return out;
      m.owed.delete(k);
      const [n, i] = k.split(':').map(Number);
      out.push(t.onFenced(nodeId(n ?? 0), incarnation(i ?? 0), index));
      return out;
    }
    case 'rejoin':
      if (m.up.has(s.node) || m.owed.has(key(ref(s.node, inc)))) return out;
      m.up.add(s.node);
      m.incarnations.set(s.node, inc + 1);
      return out;
    case 'join': {
      const ms = m.members.get(s.group);
      if (!m.up.has(s.node) || ms === undefined || ms.has(s.node)) return out;
      if (!t.admitsNewGroup() && ms.size === 0) return out;
      ms.set(s.node, inc);
      change(s.group, []);
      return out;
    }
    case 'leave': {
      const ms = m.members.get(s.group);
      if (ms?.get(s.node) !== inc) return out;
      ms.delete(s.node);
      change(s.group, []);
      return out;
    }
    case 'report':
    case 'evict': {
      const generation = Math.max(1, (t.round(s.group)?.generation ?? 1) - (s.old ? 1 : 0));
      const n = nodeId(s.node);
      applyEvictions(
        s.k === 'report'
          ? t.report(s.group, generation, n, incarnation(inc), s.what, index)
          : t.evict(s.group, generation, n, incarnation(inc), index, 'timeout'),
      );
      return out;
    }
    default:
      return s satisfies never;
  }
}

/** Judges the event stream only (a checker outside the system). */
class RecoveryChecker {
  private readonly open = new Map<
    string,
    { level: number; generation: number; fences: Set<string>; stopped: Set<string>; members: string[]; due: boolean }
  >();
  /** Fences of aborted rounds, that the next generation must keep. */
  private readonly carried = new Map<string, Set<string>>();

  observe(e: RecoveryEventPayload, model: Model): void {
    const fail = (what: string): never => {
      throw new Error(`recovery checker: ${e.group} generation ${e.generation}: ${what}`);
    };
    const cur = this.open.get(e.group);
    if (e.step !== 'opened' && (cur === undefined || cur.generation !== e.generation))
      fail(`${e.step} for a round that is not open`);
    switch (e.step) {
      case 'opened': {
        if (cur !== undefined) fail('opened while the previous generation is open');
        const fences = new Set(e.fences.map(key));
        for (const f of this.carried.get(e.group) ?? []) if (!fences.has(f)) fail(`dropped the fence of ${f}`);
        this.carried.delete(e.group);
        for (const f of fences) if (!model.owed.has(f)) fail(`awaits fence ${f}, which is recorded already`);
        this.open.set(e.group, {
          level: e.level,
          generation: e.generation,
          fences,
          stopped: new Set(),
          members: e.members.map(key),
          due: false,
        });
        return;
      }
      case 'aborted':
        this.carried.set(e.group, cur?.fences ?? new Set());
        this.open.delete(e.group);
        return;
      case 'fence-satisfied':
        if (cur?.fences.delete(key(e)) !== true) fail(`fence ${key(e)} recorded but not awaited`);
        return;
      case 'stopped':
        cur?.stopped.add(key(e));
        return;
      case 'start-due': {
        if (cur === undefined) return;
        if (cur.fences.size > 0) fail(`start due before its fences ${[...cur.fences].join(' ')} were recorded`);
        const notStopped = cur.members.filter((x) => !cur.stopped.has(x));
        if (notStopped.length > 0) fail(`start due before ${notStopped.join(' ')} stopped`);
        for (const [g, o] of this.open)
          if (o.level < cur.level) fail(`start due at level ${cur.level} while ${g} (level ${o.level}) is open`);
        cur.due = true;
        return;
      }
      case 'member-started':
        if (cur?.due !== true) fail(`${key(e)} started before the start was due`);
        return;
      case 'member-error':
      case 'member-evicted':
        return;
      case 'finished':
        if (cur?.due !== true) fail('finished before the start was due');
        this.open.delete(e.group);
        return;
      default:
        e satisfies never;
    }
  }
}

/** Checks the table's state against the model after a step. */
function checkState(t: RecoveryTable, m: Model): void {
  const views = [...GROUPS].map(([g, level]) => ({ group: g, level, members: membersOf(m, g) }));
  assert.equal(t.checkAgainst(views.filter((v) => v.members.length > 0)), null);
  for (const r of t.rounds()) {
    if (r.phase === 'starting' || r.phase === 'finished') {
      assert.deepEqual(r.awaitingFences, [], `${r.group} ${r.phase} with fences pending`);
      assert.ok(
        r.members.every((x) => x.report !== null),
        `${r.group} ${r.phase} with a member that did not stop`,
      );
    }
    for (const f of r.awaitingFences) assert.ok(m.owed.has(key(f)), `${r.group} awaits recorded fence ${key(f)}`);
  }
}

function encode(t: RecoveryTable): Uint8Array {
  const w = new ByteWriter(512);
  t.encode(w);
  return w.finish().slice();
}

function runChecked(steps: readonly Step[], canary: RecoveryCanary | null): void {
  const t = new RecoveryTable(canary);
  const m = newModel();
  const checker = new RecoveryChecker();
  for (const s of steps) {
    for (const r of run(t, m, s)) for (const e of r.events) checker.observe(e, m);
    checkState(t, m);
  }
}

/** Sequences that start with every node in every group, so rounds have members. */
const arbRun = fc
  .array(arbStep, { minLength: 10, maxLength: 120 })
  .map((rest) => [
    ...NODES.flatMap((n) => [...GROUPS.keys()].map((g): Step => ({ k: 'join', node: n, group: g }))),
    ...rest,
  ]);

test('random hook sequences keep the safety rules (checked after every step from the events)', () => {
  fc.assert(
    fc.property(arbRun, (steps) => {
      runChecked(steps, null);
    }),
    { numRuns: 400 },
  );
});

test('the sequences reach the interesting states (so the property can fail)', () => {
  const seen = new Set<string>();
  for (const steps of fc.sample(arbRun, { numRuns: 200, seed: 7 })) {
    const t = new RecoveryTable();
    const m = newModel();
    for (const s of steps) for (const r of run(t, m, s)) for (const e of r.events) seen.add(e.step);
  }
  for (const step of ['opened', 'aborted', 'start-due', 'finished', 'member-evicted', 'member-error'])
    assert.ok(seen.has(step), `no ${step} in 200 sequences`);
});

test('a table restored from its encoding at any point behaves identically on the rest', () => {
  fc.assert(
    fc.property(arbRun, fc.nat(200), (steps, cutAt) => {
      const cut = 16 + (cutAt % Math.max(1, steps.length - 16));
      const a = new RecoveryTable();
      const ma = newModel();
      for (const s of steps.slice(0, cut)) run(a, ma, s);
      const bytes = encode(a);
      const b = RecoveryTable.decode(new ByteReader(bytes));
      assert.deepEqual(encode(b), bytes, 'canonical');
      const mb = cloneModel(ma);
      for (const s of steps.slice(cut)) assert.deepEqual(run(b, mb, s), run(a, ma, s));
      assert.deepEqual(encode(b), encode(a));
    }),
    { numRuns: 200 },
  );
});

for (const [canary, finding] of [
  ['start-before-fence', /before its fences/],
  ['start-before-lower', /while .* \(level \d\) is open/],
  // The kept round starts without the member that failed (it never stopped) and its fence.
  ['skip-abort', /start due before .* stopped/],
] as const) {
  test(`the checker catches the planted bug ${canary}`, () => {
    assert.throws(
      () => {
        fc.assert(
          fc.property(arbRun, (steps) => {
            runChecked(steps, canary);
          }),
          { numRuns: 400, seed: 1 },
        );
      },
      (e: unknown) => e instanceof Error && finding.test(`${e.message} ${String(e.cause)}`),
    );
  });
}
