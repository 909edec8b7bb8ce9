// Proves the scheduler runs events in (time, insertion) order, skips cancelled events, stops on
// request, refuses to grow past its bound with a typed error, and rounds ms delays up to µs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { msToUs, Scheduler, SimRunawayError } from './scheduler.js';

test('events run by time, then by insertion order at equal times', () => {
  const s = new Scheduler();
  const seen: string[] = [];
  s.at(20, () => seen.push('b@20'));
  s.at(10, () => seen.push('a@10'));
  s.at(20, () => seen.push('c@20'));
  s.at(10, () => {
    seen.push('d@10');
    s.after(0, () => seen.push('e@10-nested'));
    s.after(5, () => seen.push('f@15'));
  });
  s.runUntil(100);
  assert.deepEqual(seen, ['a@10', 'd@10', 'e@10-nested', 'f@15', 'b@20', 'c@20']);
  assert.equal(s.nowUs, 100);
});

test('any insertion order comes out sorted by (time, sequence)', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 50 }), { maxLength: 200 }), (times) => {
      const s = new Scheduler();
      const out: [number, number][] = [];
      times.forEach((t, i) => s.at(t, () => out.push([t, i])));
      s.runUntil(50);
      const expected = times.map((t, i): [number, number] => [t, i]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
      assert.deepEqual(out, expected);
    }),
  );
});

test('cancelled events never run; time stops at the limit; stop() ends early', () => {
  const s = new Scheduler();
  let ran = 0;
  s.at(5, () => ran++).cancel();
  s.at(6, () => ran++);
  s.at(7, () => ran++);
  s.at(200, () => ran++);
  s.runUntil(100, () => ran === 1);
  assert.equal(ran, 1);
  assert.equal(s.nowUs, 6, 'stopped right after the event that satisfied stop()');
  s.runUntil(100);
  assert.equal(ran, 2);
  assert.equal(s.nowUs, 100);
  assert.throws(() => s.at(99, () => undefined), /must be an integer ≥ now/);
});

test('the pending bound raises SIM_RUNAWAY instead of growing', () => {
  const s = new Scheduler(3);
  for (let i = 0; i < 3; i++) s.after(1, () => undefined);
  assert.throws(
    () => s.after(1, () => undefined),
    (e: unknown) => e instanceof SimRunawayError && e.code === 'SIM_RUNAWAY',
  );
});

test('msToUs rounds up to whole microseconds and rejects negatives', () => {
  assert.equal(msToUs(0), 0);
  assert.equal(msToUs(1), 1000);
  assert.equal(msToUs(0.0004), 1);
  assert.equal(msToUs(1.0000001), 1001);
  assert.throws(() => msToUs(-1));
  assert.throws(() => msToUs(Number.NaN));
});
