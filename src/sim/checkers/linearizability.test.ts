// Proves the linearizability checker gives the right verdicts: known-good and known-bad histories
// for each model, unknown outcomes treated as "any time after the call, or never", agreement with a
// brute-force search on thousands of small random histories, 'ok' on every history recorded from a
// real sequential run of the KV state machine with intervals around the true linearization points,
// 'illegal' once one read is changed to a never-written value, readable reports, budgets that
// give 'unknown' (never 'ok'), and a 10-client, 2,000-operation KV history checked in well under a second.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Prng } from '../../lib/prng.js';
import { logIndex, term } from '../../lib/ids.js';
import { KvStateMachine, type KvCommand } from '../../log/kv-state-machine.js';
import {
  checkLinearizability,
  LinearizabilityError,
  type CheckResult,
  type Model,
  type Operation,
} from './linearizability.js';
import {
  casRegisterModel,
  kvModel,
  kvModelInput,
  kvModelOutput,
  mutexModel,
  registerModel,
  type KvInput,
  type KvModelOutput,
  type MutexInput,
  type MutexOutput,
  type RegisterInput,
  type RegisterOutput,
  type RegisterValue,
} from './models.js';

type RegOp = Operation<RegisterInput, RegisterOutput>;
type KvOp = Operation<KvInput, KvModelOutput>;

/** An operation with a known outcome. */
function done<I, O>(clientId: number, call: number, ret: number, input: I, output: O): Operation<I, O> {
  return { clientId, call, return: ret, input, output };
}

/** An operation whose outcome is unknown (the client timed out). */
function lost<I, O>(clientId: number, call: number, input: I): Operation<I, O> {
  return { clientId, call, input };
}

const w = (value: RegisterValue): RegisterInput => ({ type: 'write', value });
const R: RegisterInput = { type: 'read' };
const wrote: RegisterOutput = { type: 'write' };
const saw = (value: RegisterValue): RegisterOutput => ({ type: 'read', value });

function verdict(r: CheckResult): string {
  return r.verdict;
}

// ------------------------------------------------------------------------------------------------
// Known histories

test('register: a read concurrent with a write may see either value', () => {
  const h: RegOp[] = [done(0, 0, 100, w(100), wrote), done(1, 25, 75, R, saw(100)), done(2, 30, 60, R, saw(null))];
  assert.equal(verdict(checkLinearizability(registerModel, h)), 'ok');
});

test('register: once a read saw the new value, a later read cannot see the old one', () => {
  const h: RegOp[] = [done(0, 0, 100, w(200), wrote), done(1, 10, 30, R, saw(200)), done(2, 40, 90, R, saw(null))];
  assert.equal(verdict(checkLinearizability(registerModel, h)), 'illegal');
});

test('register: concurrent writes with overlapping reads, legal and not', () => {
  const writes: RegOp[] = [done(0, 0, 10, w(1), wrote), done(1, 0, 10, w(2), wrote)];
  const overlapping: RegOp[] = [...writes, done(2, 5, 15, R, saw(1)), done(3, 5, 15, R, saw(2))];
  assert.equal(verdict(checkLinearizability(registerModel, overlapping)), 'ok', 'w1, r=1, w2, r=2 is an order');
  const afterBoth: RegOp[] = [...writes, done(2, 20, 25, R, saw(1)), done(3, 30, 35, R, saw(2))];
  assert.equal(
    verdict(checkLinearizability(registerModel, afterBoth)),
    'illegal',
    'no write happens between the two reads',
  );
  const flipFlop: RegOp[] = [
    ...writes,
    done(2, 5, 15, R, saw(1)),
    done(3, 5, 15, R, saw(2)),
    done(2, 16, 18, R, saw(1)),
    done(3, 16, 18, R, saw(2)),
  ];
  assert.equal(verdict(checkLinearizability(registerModel, flipFlop)), 'illegal');
});

test('register: a stale read after a completed write is illegal, with a readable report', () => {
  const h: RegOp[] = [done(0, 0, 10, w(1), wrote), done(0, 20, 30, w(2), wrote), done(1, 40, 50, R, saw(1))];
  const r = checkLinearizability(registerModel, h);
  assert.ok(r.verdict === 'illegal');
  assert.deepEqual(
    r.report.prefix.map((p) => p.op.index),
    [0, 1],
  );
  assert.deepEqual(
    r.report.prefix.map((p) => p.stateAfter),
    ['value=1', 'value=2'],
  );
  assert.equal(r.report.stuck.index, 2);
  assert.equal(r.report.stuck.text, '#2 client 1 [40, 50] read() -> 1');
  assert.equal(r.report.stateAfterPrefix, 'value=2');
  assert.match(r.report.text, /longest linearizable prefix: 2 of 3 operations/);
  assert.match(r.report.text, /cannot linearize: #2 client 1 \[40, 50\] read\(\) -> 1/);
});

test('register: touching intervals count as concurrent (the permissive reading of a clock tie)', () => {
  const h: RegOp[] = [done(0, 0, 10, w(1), wrote), done(1, 10, 20, R, saw(null))];
  assert.equal(verdict(checkLinearizability(registerModel, h)), 'ok');
  const apart: RegOp[] = [done(0, 0, 10, w(1), wrote), done(1, 11, 20, R, saw(null))];
  assert.equal(verdict(checkLinearizability(registerModel, apart)), 'illegal');
});

test('unknown outcomes may take effect at any time after their call, or never', () => {
  const base: RegOp[] = [done(0, 0, 10, w(1), wrote), lost(1, 20, w(2))];
  const cases: [RegOp[], string, string][] = [
    [[...base, done(2, 40, 50, R, saw(2))], 'ok', 'it took effect'],
    [[...base, done(2, 40, 50, R, saw(1))], 'ok', 'it has not taken effect (yet, or ever)'],
    [
      [...base, done(2, 40, 50, R, saw(1)), done(2, 60, 70, R, saw(2)), done(2, 80, 90, R, saw(2))],
      'ok',
      'it took effect late',
    ],
    [[...base, done(2, 40, 50, R, saw(2)), done(2, 60, 70, R, saw(1))], 'illegal', 'once visible it cannot be undone'],
    [[...base, done(2, 12, 15, R, saw(2))], 'illegal', 'it cannot take effect before its call'],
  ];
  for (const [h, expected, why] of cases) assert.equal(verdict(checkLinearizability(registerModel, h)), expected, why);
});

test('an unknown cas is judged by the model state it lands in', () => {
  const cas = (expected: RegisterValue, value: RegisterValue): RegisterInput => ({ type: 'cas', expected, value });
  const h: RegOp[] = [done(0, 0, 10, w(1), wrote), lost(1, 20, cas(1, 5)), done(2, 40, 50, R, saw(5))];
  assert.equal(verdict(checkLinearizability(casRegisterModel, h)), 'ok');
  const cannot: RegOp[] = [done(0, 0, 10, w(1), wrote), lost(1, 20, cas(9, 5)), done(2, 40, 50, R, saw(5))];
  assert.equal(
    verdict(checkLinearizability(casRegisterModel, cannot)),
    'illegal',
    'the compare never holds, so 5 is never written',
  );
});

test('mutex: overlapping grants are illegal; handover through a release is fine', () => {
  const acq = (owner: number): MutexInput => ({ type: 'acquire', owner });
  const rel = (owner: number): MutexInput => ({ type: 'release', owner });
  const granted: MutexOutput = { type: 'acquire', granted: true };
  const released: MutexOutput = { type: 'release' };
  const refused: MutexOutput = { type: 'acquire', granted: false };
  const check = (h: Operation<MutexInput, MutexOutput>[]): string => verdict(checkLinearizability(mutexModel, h));
  assert.equal(check([done(1, 0, 10, acq(1), granted), done(2, 5, 15, acq(2), granted)]), 'illegal');
  assert.equal(
    check([done(1, 0, 10, acq(1), granted), done(1, 20, 30, rel(1), released), done(2, 25, 40, acq(2), granted)]),
    'ok',
  );
  assert.equal(
    check([done(1, 0, 10, acq(1), granted), done(2, 20, 30, rel(2), released)]),
    'illegal',
    'only the holder may release',
  );
  assert.equal(
    check([lost(1, 0, acq(1)), done(2, 5, 15, acq(2), granted), done(2, 20, 30, rel(2), released)]),
    'ok',
    'the lost acquire never happened',
  );
  assert.equal(check([done(1, 0, 10, acq(1), granted), done(2, 20, 30, acq(2), refused)]), 'ok');
  assert.equal(
    check([done(2, 0, 10, acq(2), refused)]),
    'illegal',
    'a try-lock cannot be refused while the mutex is free',
  );
});

test('kv: keys are checked independently and the failing key is reported', () => {
  const put = (key: string, value: string): KvInput => ({ type: 'put', key, value });
  const get = (key: string): KvInput => ({ type: 'get', key });
  const h: KvOp[] = [
    done(0, 0, 10, put('a', 'x'), { type: 'put' }),
    done(1, 0, 10, put('b', 'y'), { type: 'put' }),
    done(2, 20, 30, get('a'), { type: 'get', value: 'x' }),
    done(3, 20, 30, get('b'), { type: 'get', value: null }),
  ];
  const r = checkLinearizability(kvModel, h);
  assert.ok(r.verdict === 'illegal');
  assert.equal(r.stats.partitions, 2);
  assert.equal(r.report.partitionIndex, 1);
  assert.equal(r.report.stuck.index, 3);
  assert.match(r.report.text, /get\("b"\) -> nil/);
  assert.equal(verdict(checkLinearizability(kvModel, h.slice(0, 3))), 'ok');
});

test('malformed histories raise LinearizabilityError with LIN_BAD_HISTORY', () => {
  const bad: RegOp[][] = [
    [{ clientId: 0, call: 10, return: 5, input: R, output: saw(null) }],
    [{ clientId: 0, call: NaN, return: 5, input: R, output: saw(null) }],
    [{ clientId: 0, call: 0, return: 5, input: R }],
    [{ clientId: 0, call: 0, return: -Infinity, input: R, output: saw(null) }],
  ];
  for (const h of bad) {
    assert.throws(
      () => checkLinearizability(registerModel, h),
      (e: unknown) => e instanceof LinearizabilityError && e.code === 'LIN_BAD_HISTORY',
    );
  }
  assert.equal(verdict(checkLinearizability(registerModel, [])), 'ok');
});

// ------------------------------------------------------------------------------------------------
// Budgets

/** n writes of distinct values, all concurrent, then a read of a value nobody wrote: exponential to refute. */
function pathological(n: number): RegOp[] {
  const h: RegOp[] = [];
  for (let i = 0; i < n; i++) h.push(done(i, 0, 100, w(i + 1), wrote));
  h.push(done(n, 200, 210, R, saw(-1)));
  return h;
}

test('a pathological history exhausts the step budget and gives unknown, not ok', () => {
  const r = checkLinearizability(registerModel, pathological(40), { stepsMax: 200_000 });
  assert.ok(r.verdict === 'unknown');
  assert.equal(r.reason, 'steps');
  assert.match(r.message, /nothing was proven/);
  assert.ok(r.stats.steps <= 200_001);
  // The same history, small enough to finish, is refuted: the budget, not the answer, caused 'unknown'.
  assert.equal(verdict(checkLinearizability(registerModel, pathological(8))), 'illegal');
});

test('the cache and deadline budgets give unknown too, and a zero budget never says ok', () => {
  const cache = checkLinearizability(registerModel, pathological(40), { cacheBytesMax: 64 * 1024 });
  assert.ok(cache.verdict === 'unknown' && cache.reason === 'cache');
  let now = 0;
  const deadline = checkLinearizability(registerModel, pathological(40), {
    deadline: { now: () => (now += 10), atMs: 1000 },
  });
  assert.ok(deadline.verdict === 'unknown' && deadline.reason === 'deadline');
  const good: RegOp[] = [done(0, 0, 10, w(1), wrote), done(1, 20, 30, R, saw(1))];
  assert.equal(verdict(checkLinearizability(registerModel, good, { stepsMax: 0 })), 'unknown');
  assert.equal(verdict(checkLinearizability(registerModel, good, { stepsMax: 10 })), 'ok');
});

// ------------------------------------------------------------------------------------------------
// Agreement with brute force

/** Is there an order of all known ops and some unknown ops that respects real time and the model? */
function bruteForce<S, I, O>(model: Model<S, I, O>, h: readonly Operation<I, O>[]): boolean {
  const unknown = (op: Operation<I, O>): boolean => op.return === undefined || op.return === Infinity;
  const mustPrecede = (a: Operation<I, O>, b: Operation<I, O>): boolean => !unknown(a) && (a.return ?? 0) < b.call;
  const used = new Array<boolean>(h.length).fill(false);
  const extend = (state: S, placed: number): boolean => {
    if (h.every((op, i) => used[i] === true || unknown(op))) return true;
    for (let i = 0; i < h.length; i++) {
      if (used[i] === true) continue;
      const op = h[i]!;
      // Every op that must precede this one is placed already (unknown ones are optional and so are not required).
      if (h.some((other, j) => j !== i && used[j] !== true && mustPrecede(other, op))) continue;
      const r = model.step(state, op.input, unknown(op) ? undefined : op.output);
      if (!r.ok) continue;
      used[i] = true;
      const found = extend(r.state, placed + 1);
      used[i] = false;
      if (found) return true;
    }
    return false;
  };
  return extend(model.init(), 0);
}

const small = fc.integer({ min: 1, max: 3 });
const regValue: fc.Arbitrary<RegisterValue> = fc.option(small, { nil: null });
const regOpArb: fc.Arbitrary<RegOp> = fc
  .tuple(
    fc.nat({ max: 3 }),
    fc.integer({ min: 0, max: 20 }),
    fc.integer({ min: 0, max: 10 }),
    fc.integer({ min: 0, max: 9 }),
    fc.oneof(
      regValue.map((v): [RegisterInput, RegisterOutput] => [R, saw(v)]),
      small.map((v): [RegisterInput, RegisterOutput] => [w(v), wrote]),
      fc.tuple(regValue, small, fc.boolean()).map(([e, v, s]): [RegisterInput, RegisterOutput] => [
        { type: 'cas', expected: e, value: v },
        { type: 'cas', succeeded: s },
      ]),
    ),
  )
  .map(([client, call, len, roll, [input, output]]) =>
    roll < 2 ? lost(client, call, input) : done(client, call, call + len, input, output),
  );

test('agrees with a brute-force search on small random histories', () => {
  let illegal = 0;
  let ok = 0;
  fc.assert(
    fc.property(fc.array(regOpArb, { maxLength: 7 }), (h) => {
      const expected = bruteForce(casRegisterModel, h);
      const got = checkLinearizability(casRegisterModel, h).verdict;
      if (expected) ok++;
      else illegal++;
      return got === (expected ? 'ok' : 'illegal');
    }),
    { numRuns: Number(process.env.LIN_STRESS_RUNS ?? 3000) },
  );
  // The generator must exercise both answers, or the property proves little.
  assert.ok(ok > 300 && illegal > 300, `ok ${ok}, illegal ${illegal}`);
});

// ------------------------------------------------------------------------------------------------
// Histories recorded from the real KV state machine

const unhex = (s: string): Uint8Array => Uint8Array.from(Buffer.from(s, 'hex'));

/** The KV state-machine command for a model input (the inverse of `kvModelInput`). */
function commandOf(input: KvInput): KvCommand {
  switch (input.type) {
    case 'cas':
      return {
        type: 'cas',
        key: input.key,
        compare: { kind: 'value', value: input.expected === null ? null : unhex(input.expected) },
        value: unhex(input.value),
      };
    case 'put':
      return { type: 'put', key: input.key, value: unhex(input.value) };
    case 'get':
    case 'delete':
      return input;
  }
}

/** Runs `input` on the real state machine and returns what a client would have recorded. */
function execute(sm: KvStateMachine, input: KvInput): KvModelOutput {
  const command = commandOf(input);
  assert.deepEqual(kvModelInput(command), input, 'the recorder helper maps commands back to model inputs');
  const r = sm.apply(logIndex(sm.appliedIndex + 1), term(1), command);
  assert.ok(r.ok);
  const out = kvModelOutput(r.value);
  assert.ok(out !== null);
  return out;
}

interface Planned {
  readonly input: KvInput;
  readonly clientId: number;
  /** Where the operation takes effect; the interval is built around it. */
  readonly at: number;
  readonly before: number;
  readonly after: number;
  /** 0: known outcome; 1: unknown, took effect; 2: unknown, never took effect. */
  readonly fate: number;
}

/** Executes the plan in linearization-point order on a real KV machine and records the history. */
function record(plan: readonly Planned[]): KvOp[] {
  const sm = new KvStateMachine();
  return [...plan]
    .sort((a, b) => a.at - b.at)
    .map((p): KvOp => {
      const call = p.at - p.before;
      if (p.fate === 2) return lost(p.clientId, call, p.input);
      const output = execute(sm, p.input);
      return p.fate === 1 ? lost(p.clientId, call, p.input) : done(p.clientId, call, p.at + p.after, p.input, output);
    });
}

const keyArb = fc.constantFrom('a', 'b', 'c');
const valArb = fc.constantFrom('01', '02', '03', '04');
const kvInputArb: fc.Arbitrary<KvInput> = fc.oneof(
  keyArb.map((key): KvInput => ({ type: 'get', key })),
  fc.tuple(keyArb, valArb).map(([key, value]): KvInput => ({ type: 'put', key, value })),
  fc
    .tuple(keyArb, fc.option(valArb, { nil: null }), valArb)
    .map(([key, expected, value]): KvInput => ({ type: 'cas', key, expected, value })),
  keyArb.map((key): KvInput => ({ type: 'delete', key })),
);
const planArb: fc.Arbitrary<Planned[]> = fc
  .array(fc.tuple(kvInputArb, fc.nat({ max: 9 }), fc.nat({ max: 40 }), fc.nat({ max: 40 }), fc.nat({ max: 19 })), {
    minLength: 1,
    maxLength: 40,
  })
  .map((xs) =>
    xs.map(([input, clientId, before, after, roll], i) => ({
      input,
      clientId,
      at: 10 * i,
      before,
      after,
      fate: roll === 0 ? 1 : roll === 1 ? 2 : 0,
    })),
  );

test('histories from a real sequential run, with intervals around the true points, are always ok', () => {
  fc.assert(
    fc.property(planArb, (plan) => checkLinearizability(kvModel, record(plan)).verdict === 'ok'),
    { numRuns: Number(process.env.LIN_STRESS_RUNS ?? 500) },
  );
});

test('changing one read to a never-written value always makes the history illegal', () => {
  fc.assert(
    fc.property(planArb, fc.nat(), (plan, pick) => {
      const h = record(plan);
      const reads = h.flatMap((op, i) => (op.input.type === 'get' && op.return !== undefined ? [i] : []));
      fc.pre(reads.length > 0);
      const victim = reads[pick % reads.length]!;
      const op = h[victim]!;
      h[victim] = { ...op, output: { type: 'get', value: 'ff' } };
      const r = checkLinearizability(kvModel, h);
      if (r.verdict !== 'illegal') return false;
      // The invented read can never be placed, so the search is blocked at its return or earlier.
      // (It is usually blamed itself; the exact blame depends on concurrent operations.)
      return (
        r.report.prefix.every((p) => p.op.index !== victim) && (r.report.stuck.return ?? Infinity) <= (op.return ?? 0)
      );
    }),
    { numRuns: Number(process.env.LIN_STRESS_RUNS ?? 500) },
  );
});

// ------------------------------------------------------------------------------------------------
// Performance

/** 10 clients issuing `count` operations over 20 keys with overlapping, random latencies. */
function busyHistory(seed: number, count: number): KvOp[] {
  const prng = new Prng(seed);
  const plan: Planned[] = [];
  const clientFree = new Array<number>(10).fill(0);
  for (let i = 0; i < count; i++) {
    const clientId = i % 10;
    const call = (clientFree[clientId] ?? 0) + prng.int(0, 5);
    const latency = prng.int(1, 60);
    clientFree[clientId] = call + latency + 1;
    const key = `k${prng.int(0, 20)}`;
    const value = prng.int(0, 256).toString(16).padStart(2, '0');
    const kind = prng.int(0, 4);
    const input: KvInput =
      kind === 0
        ? { type: 'get', key }
        : kind === 1
          ? { type: 'put', key, value }
          : kind === 2
            ? { type: 'cas', key, expected: prng.chance(0.5) ? null : value, value }
            : { type: 'delete', key };
    const at = call + prng.int(0, latency + 1);
    plan.push({ input, clientId, at, before: at - call, after: call + latency - at, fate: prng.chance(0.02) ? 1 : 0 });
  }
  return record(plan);
}

test('a 10-client, 2,000-operation KV history over 20 keys checks in well under a second', (t) => {
  const h = busyHistory(7, 2000);
  const started = performance.now();
  const r = checkLinearizability(kvModel, h);
  const elapsedMs = performance.now() - started;
  assert.equal(r.verdict, 'ok');
  assert.equal(r.stats.partitions, 20);
  assert.ok(elapsedMs < 1000, `took ${elapsedMs.toFixed(1)} ms`);
  t.diagnostic(`2,000 operations checked in ${elapsedMs.toFixed(1)} ms, ${r.stats.steps} steps`);
  // The same history with one stale read planted is caught just as fast.
  const reads = h.flatMap((op, i) => (op.input.type === 'get' && op.return !== undefined ? [i] : []));
  const victim = reads[Math.floor(reads.length / 2)]!;
  h[victim] = { ...h[victim]!, output: { type: 'get', value: 'zz' } };
  const bad = checkLinearizability(kvModel, h);
  assert.ok(bad.verdict === 'illegal' && bad.report.stuck.index === victim);
});

/** One register, 10 clients, writes of unique values and reads, recorded from a sequential run. */
function registerHistory(seed: number, count: number): RegOp[] {
  const prng = new Prng(seed);
  const clientFree = new Array<number>(10).fill(0);
  const planned: { op: RegOp; at: number }[] = [];
  for (let i = 0; i < count; i++) {
    const clientId = i % 10;
    const call = (clientFree[clientId] ?? 0) + prng.int(0, 5);
    const latency = prng.int(1, 60);
    clientFree[clientId] = call + latency + 1;
    const input = prng.chance(0.5) ? w(i) : R;
    planned.push({ op: done(clientId, call, call + latency, input, wrote), at: call + prng.int(0, latency + 1) });
  }
  let value: RegisterValue = null;
  return planned
    .sort((a, b) => a.at - b.at)
    .map(({ op }) => {
      if (op.input.type === 'write') value = op.input.value;
      return op.input.type === 'read' ? { ...op, output: saw(value) } : op;
    });
}

test('a long single-object history (1,500 operations, one partition) is checked both ways', () => {
  const h = registerHistory(11, 1500);
  const good = checkLinearizability(registerModel, h);
  assert.equal(good.verdict, 'ok');
  // A stale read near the end: it returns a value overwritten long before it was called.
  const late = h.flatMap((op, i) => (op.input.type === 'read' && i > 1400 ? [i] : []));
  const victim = late[0]!;
  const first = h.find((op) => op.input.type === 'write')!;
  assert.ok(first.input.type === 'write');
  h[victim] = { ...h[victim]!, output: saw(first.input.value) };
  const bad = checkLinearizability(registerModel, h);
  assert.ok(bad.verdict === 'illegal');
  assert.ok(bad.report.prefix.length > 1300, 'the search got far before getting stuck');
});
