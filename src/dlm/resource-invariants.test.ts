// Proves, on random operation streams over 4 nodes x 3 locks, that the resource engine keeps the
// DLM's safety and liveness promises (research/dlm.md 1.4-1.7), judged by a checker outside it:
// no two held granted modes conflict, every lock is on exactly one queue, errors change nothing,
// every accepted operation gets exactly one completion, nothing grantable is left queued after a
// re-grant pass, and once everything else is unlocked (and conversion deadlocks are broken by
// cancels) every queued request completes. A canary engine that skips the convert-queue
// compatibility check is caught, so the checker bites.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { nodeId } from '../lib/ids.js';
import { LKF, newEffects, type LockMode, type LockRef, type ResourceEffects } from './lock-types.js';
import { compatible, quecvtAllowed } from './lock-modes.js';
import { validateLock, validateUnlock } from './lock-flags.js';
import { Resource, type LockView, type ResourceError, type ResourceOptions } from './resource.js';
import type { Result } from '../lib/errors.js';

const LVB_LEN = 8;
const NODES = 4;
const LKIDS = 3;

type Op =
  | { kind: 'req'; ref: number; mode: LockMode; flags: number; bast: boolean }
  | { kind: 'cvt'; ref: number; mode: LockMode; flags: number; bast: boolean; lvb: number | null }
  | { kind: 'unlock'; ref: number; flags: number; lvb: number | null }
  | { kind: 'cancel'; ref: number; timeout: boolean }
  | { kind: 'purge'; node: number }
  | { kind: 'regrant'; recovery: boolean };

const LOCK_BITS = [
  LKF.NOQUEUE,
  LKF.NOQUEUEBAST,
  LKF.QUECVT,
  LKF.CONVDEADLK,
  LKF.NODLCKWT,
  LKF.EXPEDITE,
  LKF.HEADQUE,
  LKF.NOORDER,
  LKF.ALTPR,
  LKF.ALTCW,
  LKF.VALBLK,
  LKF.IVVALBLK,
];
const UNLOCK_BITS = [LKF.FORCEUNLOCK, LKF.VALBLK, LKF.IVVALBLK, LKF.CANCEL];

const orBits = (bits: number[]): number => bits.reduce((a, b) => a | b, 0);
const arbRef = fc.integer({ min: 0, max: NODES * LKIDS - 1 });
const arbMode = fc.integer({ min: 0, max: 5 }) as fc.Arbitrary<LockMode>;
// Half the requests carry no flag, so most operations are valid and the queues fill up.
const arbLockFlags = fc.oneof(
  { weight: 1, arbitrary: fc.constant(0) },
  { weight: 1, arbitrary: fc.subarray(LOCK_BITS, { minLength: 1, maxLength: 2 }).map(orBits) },
);
const arbLvb = fc.option(fc.integer({ min: 0, max: 3 }));

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      kind: fc.constant('req' as const),
      ref: arbRef,
      mode: arbMode,
      flags: arbLockFlags,
      bast: fc.boolean(),
    }),
  },
  {
    weight: 16,
    arbitrary: fc.record({
      kind: fc.constant('cvt' as const),
      ref: arbRef,
      mode: arbMode,
      flags: arbLockFlags,
      bast: fc.boolean(),
      lvb: arbLvb,
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('unlock' as const),
      ref: arbRef,
      flags: fc.subarray(UNLOCK_BITS, { maxLength: 2 }).map(orBits),
      lvb: arbLvb,
    }),
  },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('cancel' as const), ref: arbRef, timeout: fc.boolean() }) },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('purge' as const), node: fc.integer({ min: 1, max: NODES }) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('regrant' as const), recovery: fc.boolean() }) },
);

function refAt(i: number): LockRef {
  return { node: nodeId(Math.floor(i / LKIDS) + 1), lkid: (i % LKIDS) + 1 };
}

const keyOf = (ref: LockRef): string => `${String(ref.node)}:${String(ref.lkid)}`;

/** The checker's own model: which locks exist and which have an operation awaiting completion. */
class Model {
  readonly exists = new Set<string>();
  readonly pending = new Set<string>();
}

function lvbOf(n: number | null): Uint8Array | null {
  return n === null ? null : new Uint8Array(LVB_LEN).fill(n);
}

/** The error the call must be refused with, per research/dlm.md 1.4 and 1.6, or null. */
function expectedError(op: Op, r: Resource, m: Model): string | null {
  switch (op.kind) {
    case 'req':
      if (validateLock(op.mode, op.flags, false) !== null) return 'INVALID';
      return m.exists.has(keyOf(refAt(op.ref))) ? 'EXISTS' : null;
    case 'cvt': {
      if (validateLock(op.mode, op.flags, true) !== null) return 'INVALID';
      const v = r.get(refAt(op.ref));
      if (v === null) return 'NOT_FOUND';
      if (v.queue !== 'granted') return 'BUSY';
      const gr = v.granted ?? 0;
      return (op.flags & LKF.QUECVT) !== 0 && !quecvtAllowed(gr, op.mode) ? 'INVALID' : null;
    }
    case 'unlock': {
      if (validateUnlock(op.flags) !== null || (op.flags & LKF.CANCEL) !== 0) return 'INVALID';
      const v = r.get(refAt(op.ref));
      if (v === null) return 'NOT_FOUND';
      return v.queue !== 'granted' && (op.flags & LKF.FORCEUNLOCK) === 0 ? 'BUSY' : null;
    }
    case 'cancel':
      return r.get(refAt(op.ref)) === null ? 'NOT_FOUND' : null;
    case 'purge':
    case 'regrant':
      return null;
  }
}

/** Applies `op`; returns the call's Result (or null for purge/regrant). */
function apply(r: Resource, op: Op, out: ResourceEffects): Result<unknown, ResourceError> | null {
  switch (op.kind) {
    case 'req':
      return r.request(refAt(op.ref), op.mode, op.flags, op.bast, out);
    case 'cvt':
      return r.convert(refAt(op.ref), op.mode, op.flags, op.bast, lvbOf(op.lvb), out);
    case 'unlock':
      return r.unlock(refAt(op.ref), op.flags, lvbOf(op.lvb), out);
    case 'cancel':
      return r.cancel(refAt(op.ref), op.timeout ? 'timeout' : 'cancelled', out);
    case 'purge':
      r.purgeNode(nodeId(op.node), out);
      return null;
    case 'regrant':
      r.regrant(op.recovery, out);
      return null;
  }
}

/** research/dlm.md 1.3, 1.4: the queues are well formed and no two held modes conflict. */
function checkState(r: Resource, m: Model): void {
  const d = r.dump();
  const all: LockView[] = [...d.granted, ...d.converting, ...d.waiting];
  const keys = all.map((l) => keyOf(l.ref));
  assert.equal(new Set(keys).size, keys.length, 'a lock is on two queues');
  assert.equal(all.length, r.lockCount, 'every lock is on a queue');
  assert.deepEqual([...keys].sort(), [...m.exists].sort(), 'the engine holds exactly the live locks');
  for (const l of d.granted) assert.ok(l.queue === 'granted' && l.granted !== null && l.requested === null);
  for (const l of d.converting) assert.ok(l.queue === 'converting' && l.granted !== null && l.requested !== null);
  for (const l of d.waiting) assert.ok(l.queue === 'waiting' && l.granted === null && l.requested !== null);
  for (let i = 1; i < d.granted.length; i++) {
    assert.ok((d.granted[i - 1]?.granted ?? 0) >= (d.granted[i]?.granted ?? 0), 'granted queue by mode');
  }
  const held = [...d.granted, ...d.converting];
  for (const [i, a] of held.entries()) {
    for (const b of held.slice(i + 1)) {
      assert.ok(
        compatible(a.granted ?? 0, b.granted ?? 0),
        `incompatible holders ${keyOf(a.ref)}:${String(a.granted)} and ${keyOf(b.ref)}:${String(b.granted)}`,
      );
    }
  }
  for (const l of all) {
    assert.equal(m.pending.has(keyOf(l.ref)), l.queue !== 'granted', `pending of ${keyOf(l.ref)}`);
  }
}

/**
 * After a re-grant pass nothing grantable is left waiting (research/dlm.md 1.4 rules 2, 6, 7, 9):
 * the convert queue's head, any NOORDER conversion, and (with no conversion queued) the wait
 * queue's head or any NOORDER request must each conflict with some held granted mode.
 */
function checkSettled(r: Resource): void {
  const d = r.dump();
  const held = [...d.granted, ...d.converting];
  const blocked = (l: LockView): boolean => held.some((h) => h !== l && !compatible(h.granted ?? 0, l.requested ?? 0));
  for (const [i, l] of d.converting.entries()) {
    if (i === 0 || (l.flags & LKF.NOORDER) !== 0) assert.ok(blocked(l), `${keyOf(l.ref)} left on the convert queue`);
  }
  if (d.converting.length > 0) return;
  for (const [i, l] of d.waiting.entries()) {
    if (i === 0 || (l.flags & LKF.NOORDER) !== 0) assert.ok(blocked(l), `${keyOf(l.ref)} left on the wait queue`);
  }
}

/** Runs one operation and checks its effects against the model (research/dlm.md 1.6, 1.7). */
function step(r: Resource, m: Model, op: Op): void {
  const before = r.dump();
  const out = newEffects();
  const want = expectedError(op, r, m);
  const res = apply(r, op, out);
  if (res !== null && !res.ok) {
    assert.equal(res.error.code, want, `${JSON.stringify(op)} refused: ${res.error.message}`);
    assert.deepEqual(out, newEffects(), 'a refused call has no effects');
    assert.deepEqual(r.dump(), before, 'a refused call changes nothing');
    return;
  }
  assert.equal(want, null, `${JSON.stringify(op)} accepted, expected ${String(want)}`);
  const own = op.kind === 'purge' || op.kind === 'regrant' ? null : keyOf(refAt(op.ref));
  switch (op.kind) {
    case 'req':
      m.exists.add(keyOf(refAt(op.ref)));
      m.pending.add(keyOf(refAt(op.ref)));
      break;
    case 'cvt':
    case 'unlock':
      m.pending.add(keyOf(refAt(op.ref)));
      break;
    case 'cancel':
      assert.equal(
        res?.ok === true && res.value,
        m.pending.has(keyOf(refAt(op.ref))),
        'cancel is moot iff nothing is pending',
      );
      if (res?.ok === true && res.value === false) assert.deepEqual(out, newEffects(), 'a moot cancel has no effects');
      break;
    case 'purge':
      for (const k of [...m.exists]) {
        if (k.startsWith(`${String(op.node)}:`)) {
          m.exists.delete(k);
          m.pending.delete(k);
        }
      }
      break;
    case 'regrant':
      break;
  }
  const completed = new Set<string>();
  for (const c of out.completions) {
    const k = keyOf(c.ref);
    assert.ok(m.pending.has(k), `completion for ${k} with nothing outstanding`);
    assert.ok(!completed.has(k), `two completions for ${k}`);
    completed.add(k);
    m.pending.delete(k);
    const v = r.get(c.ref);
    if (c.mode === null) {
      assert.equal(v, null, `${k} ended (${c.status})`);
      m.exists.delete(k);
    } else {
      assert.equal(v?.granted, c.mode, `${k} holds the completion's mode`);
      assert.equal(v.queue, 'granted');
    }
  }
  if (op.kind === 'req' || op.kind === 'cvt') {
    const outcome = res?.ok === true ? res.value : null;
    assert.equal(outcome === 'queued', !completed.has(own ?? ''), `${String(outcome)} and its completion`);
  }
  if (op.kind === 'unlock') assert.ok(completed.has(own ?? ''), 'an unlock completes at once');
  for (const b of out.basts) {
    const v = r.get(b.ref);
    assert.ok(v !== null && v.bast, `bast to ${keyOf(b.ref)}: live and registered`);
    assert.ok(v.granted !== null, 'a bast goes to a holder');
    const selfBast = (v.flags & LKF.NODLCKWT) !== 0 && (v.requested === b.mode || v.granted === b.mode);
    assert.ok(!compatible(v.granted, b.mode) || selfBast, `bast ${keyOf(b.ref)} for a mode it does not block`);
  }
  checkState(r, m);
  const passed =
    op.kind === 'unlock' ||
    op.kind === 'regrant' ||
    (op.kind === 'purge' && before.granted.length + before.converting.length + before.waiting.length > r.lockCount) ||
    (op.kind === 'cancel' && res?.ok === true && res.value === true) ||
    (op.kind === 'cvt' && res?.ok === true && res.value === 'granted');
  if (passed) checkSettled(r);
}

/**
 * The liveness phase: unlock every idle granted lock until none is left; a convert queue that is
 * then stuck must be a real conversion deadlock (its head blocked by another conversion's granted
 * mode), broken by cancelling that conversion. Every request must end with its completion.
 */
function drain(r: Resource, m: Model): void {
  step(r, m, { kind: 'regrant', recovery: false });
  for (let round = 0; round < 200; round++) {
    const idle = r.dump().granted.filter((l) => !m.pending.has(keyOf(l.ref)));
    const first = idle[0];
    if (first !== undefined) {
      const ref = first.ref;
      const index = (ref.node - 1) * LKIDS + (ref.lkid - 1);
      step(r, m, { kind: 'unlock', ref: index, flags: 0, lvb: null });
      continue;
    }
    const d = r.dump();
    if (d.converting.length === 0) {
      assert.equal(d.waiting.length, 0, 'requests wait with nothing granted or converting');
      assert.ok(r.isEmpty());
      assert.equal(m.pending.size, 0, 'every request completed');
      return;
    }
    const head = d.converting[0];
    assert.ok(head !== undefined);
    const blockers = d.converting.filter((c) => c !== head && !compatible(c.granted ?? 0, head.requested ?? 0));
    const last = blockers.at(-1);
    assert.ok(last !== undefined, `the head conversion ${keyOf(head.ref)} is grantable but waits`);
    const index = (last.ref.node - 1) * LKIDS + (last.ref.lkid - 1);
    step(r, m, { kind: 'cancel', ref: index, timeout: false });
  }
  assert.fail('drain did not finish');
}

function streamProperty(options: ResourceOptions): fc.IPropertyWithHooks<[Op[]]> {
  return fc.property(fc.array(arbOp, { minLength: 20, maxLength: 120, size: 'max' }), (ops) => {
    const r = new Resource('res', LVB_LEN, options);
    const m = new Model();
    for (const op of ops) step(r, m, op);
    drain(r, m);
  });
}

test('research/dlm.md 1.4-1.7: random streams keep safety, one completion per operation, and liveness', () => {
  fc.assert(streamProperty({}), { numRuns: 400, seed: 20261208 });
});

test('research/dlm.md 1.4-1.7: the same holds for other seeds', () => {
  fc.assert(streamProperty({}), { numRuns: 200 });
});

test('canary: an engine that ignores the convert queue in rule 2 is caught by the checker', () => {
  const details = fc.check(streamProperty({ canary: 'grant-incompatible' }), { numRuns: 1000, seed: 7 });
  assert.equal(details.failed, true, 'the checker must catch the broken engine');
  assert.match(String(details.errorInstance), /incompatible holders/);
});
