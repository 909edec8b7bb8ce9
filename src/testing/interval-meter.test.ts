// Proves the interval meter's arithmetic: intervals between arrivals and one-way delays are
// summarised with nearest-rank p50/p99 and max, an empty set summarises to zeros, arrivals
// out of time order are a programmer error, and a full meter counts what it drops.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IntervalMeter, formatSummary, summarize } from './interval-meter.js';

test('summaries use nearest-rank percentiles', () => {
  assert.deepEqual(summarize([]), { count: 0, p50: 0, p99: 0, max: 0 });
  assert.deepEqual(summarize([5]), { count: 1, p50: 5, p99: 5, max: 5 });
  const hundred = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
  assert.deepEqual(summarize(hundred), { count: 100, p50: 50, p99: 99, max: 100 });
  assert.equal(formatSummary(summarize([1, 2])), 'n=2 p50=1.0 p99=2.0 max=2.0 ms');
});

test('intervals and delays come from arrival and send times', () => {
  const m = new IntervalMeter();
  m.record(1000, 999);
  m.record(1100, 1099);
  m.record(1350, 1200); // a late heartbeat: a 250 ms gap and a 150 ms delay
  m.record(1400);
  assert.deepEqual(m.intervals(), [100, 250, 50]);
  assert.deepEqual(m.intervalSummary(), { count: 3, p50: 100, p99: 250, max: 250 });
  assert.deepEqual(m.delaySummary(), { count: 3, p50: 1, p99: 150, max: 150 });
  assert.throws(() => {
    m.record(10);
  }, /time order/);
});

test('a full meter keeps its first arrivals and counts the rest', () => {
  const m = new IntervalMeter(2);
  for (let t = 0; t < 5; t++) m.record(t * 10);
  assert.equal(m.count, 2);
  assert.equal(m.dropped, 3);
  assert.deepEqual(m.intervals(), [10]);
});
