/**
 * Measures a periodic signal (heartbeats, pings) as a receiver sees it: the intervals between
 * consecutive arrivals, and optionally each arrival's one-way delay, summarised as p50, p99 and
 * max. Pure: the caller passes every time (any clock, in ms), so the same meter serves a TCP
 * test on `performance.now()`, a node-level test on the env clock, and the simulator.
 *
 * Bounded: at most `samplesMax` arrivals are kept; later ones are counted in `dropped` (a
 * measurement that overflows says so instead of growing without bound).
 */
import { assert } from '../lib/assert.js';

/** Nearest-rank percentiles of a sample set, in the samples' unit; all 0 when empty. */
export interface SampleSummary {
  readonly count: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** Default bound of `IntervalMeter` samples. */
export const INTERVAL_METER_SAMPLES_MAX = 100_000;

/** Summarises `values` (any order) with nearest-rank p50 and p99. */
export function summarize(values: readonly number[]): SampleSummary {
  if (values.length === 0) return { count: 0, p50: 0, p99: 0, max: 0 };
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p: number): number => sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] ?? 0;
  return { count: sorted.length, p50: rank(0.5), p99: rank(0.99), max: sorted[sorted.length - 1] ?? 0 };
}

/** Formats a summary for a test diagnostic or a bench line, e.g. `n=30 p50=100.1 p99=103.2 max=104.0 ms`. */
export function formatSummary(s: SampleSummary, unit = 'ms'): string {
  return `n=${s.count} p50=${s.p50.toFixed(1)} p99=${s.p99.toFixed(1)} max=${s.max.toFixed(1)} ${unit}`;
}

/** Arrivals of one periodic signal at one receiver. */
export class IntervalMeter {
  private readonly arrivalsMs: number[] = [];
  private readonly delaysMs: number[] = [];
  /** Arrivals not kept because the meter was full. */
  dropped = 0;

  constructor(private readonly samplesMax: number = INTERVAL_METER_SAMPLES_MAX) {
    assert(Number.isSafeInteger(samplesMax) && samplesMax >= 2, 'a meter keeps at least two arrivals');
  }

  /**
   * Records an arrival at `atMs`; `sentAtMs`, when the sender's time is on the same clock,
   * adds the one-way delay. Arrivals must come in time order.
   */
  record(atMs: number, sentAtMs?: number): void {
    const last = this.arrivalsMs[this.arrivalsMs.length - 1];
    assert(last === undefined || atMs >= last, 'arrivals are recorded in time order');
    if (this.arrivalsMs.length >= this.samplesMax) {
      this.dropped++;
      return;
    }
    this.arrivalsMs.push(atMs);
    if (sentAtMs !== undefined) this.delaysMs.push(atMs - sentAtMs);
  }

  /** Arrivals kept. */
  get count(): number {
    return this.arrivalsMs.length;
  }

  /** The gaps between consecutive arrivals, in order. */
  intervals(): number[] {
    const out: number[] = [];
    for (let i = 1; i < this.arrivalsMs.length; i++)
      out.push((this.arrivalsMs[i] ?? 0) - (this.arrivalsMs[i - 1] ?? 0));
    return out;
  }

  /** Summary of the intervals between arrivals. */
  intervalSummary(): SampleSummary {
    return summarize(this.intervals());
  }

  /** Summary of the one-way delays of arrivals recorded with a send time. */
  delaySummary(): SampleSummary {
    return summarize(this.delaysMs);
  }
}
