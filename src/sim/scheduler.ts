/**
 * The simulator's event queue: virtual time in integer microseconds and a binary heap of
 * callbacks ordered by (time, insertion sequence). Two events at the same instant run in the
 * order they were scheduled, so a run is a pure function of its seed.
 *
 * Nothing here touches a real clock or a Promise: `runUntil` calls callbacks one at a time,
 * synchronously, and time jumps straight to the next event.
 */
import { assert } from '../lib/assert.js';
import { CohortError } from '../lib/errors.js';
import { SIM_EVENTS_PENDING_MAX } from '../constants.js';

/** Raised when a run schedules more events than `SIM_EVENTS_PENDING_MAX` (a runaway program). */
export class SimRunawayError extends CohortError {
  override readonly name = 'SimRunawayError';
}

/** A scheduled callback; `cancel` is idempotent and O(1) (the entry is skipped when popped). */
export interface EventHandle {
  cancel(): void;
}

interface Entry {
  readonly timeUs: number;
  readonly seq: number;
  readonly fn: () => void;
  cancelled: boolean;
}

function before(a: Entry, b: Entry): boolean {
  return a.timeUs < b.timeUs || (a.timeUs === b.timeUs && a.seq < b.seq);
}

/** Converts milliseconds (fractional allowed) to whole microseconds, rounding up. */
export function msToUs(ms: number): number {
  assert(Number.isFinite(ms) && ms >= 0, `a delay must be a finite non-negative number of ms, got ${ms}`);
  // The small epsilon keeps float noise (0.1 * 1000 = 100.00000000000001) from adding a µs.
  return Math.max(0, Math.ceil(ms * 1000 - 1e-6));
}

/** A deterministic virtual-time event queue. */
export class Scheduler {
  private readonly heap: Entry[] = [];
  private seq = 0;
  private now = 0;
  private executed = 0;

  constructor(private readonly pendingMax: number = SIM_EVENTS_PENDING_MAX) {
    assert(Number.isInteger(pendingMax) && pendingMax > 0, 'pending event bound must be a positive integer');
  }

  /** Current virtual time in microseconds. */
  get nowUs(): number {
    return this.now;
  }

  /** Events in the queue, including cancelled ones not yet popped (they still hold memory). */
  get pending(): number {
    return this.heap.length;
  }

  /** Events run so far. */
  get eventsRun(): number {
    return this.executed;
  }

  /** Runs `fn` at absolute time `timeUs` (an integer, not in the past). */
  at(timeUs: number, fn: () => void): EventHandle {
    assert(
      Number.isSafeInteger(timeUs) && timeUs >= this.now,
      `event time ${timeUs} must be an integer ≥ now (${this.now})`,
    );
    if (this.heap.length >= this.pendingMax) {
      throw new SimRunawayError(
        'SIM_RUNAWAY',
        `more than ${this.pendingMax} pending events at t=${this.now}µs: the simulated program schedules without bound; look at the trace tail for the event that repeats`,
      );
    }
    const entry: Entry = { timeUs, seq: this.seq++, fn, cancelled: false };
    this.push(entry);
    return {
      cancel: () => {
        entry.cancelled = true;
      },
    };
  }

  /** Runs `fn` after `delayUs` microseconds (an integer ≥ 0). */
  after(delayUs: number, fn: () => void): EventHandle {
    assert(Number.isSafeInteger(delayUs) && delayUs >= 0, `delay must be a non-negative integer of µs, got ${delayUs}`);
    return this.at(this.now + delayUs, fn);
  }

  /**
   * Runs events in order until the queue is empty, the next event is later than `limitUs`, or
   * `stop()` returns true (checked after each event). Time ends at `limitUs` unless stopped early.
   */
  runUntil(limitUs: number, stop: () => boolean = () => false): void {
    assert(Number.isSafeInteger(limitUs) && limitUs >= this.now, 'run limit must be an integer not in the past');
    for (;;) {
      const top = this.heap[0];
      if (top === undefined || top.timeUs > limitUs) break;
      this.pop();
      if (top.cancelled) continue;
      this.now = top.timeUs;
      this.executed++;
      top.fn();
      if (stop()) return;
    }
    this.now = limitUs;
  }

  private push(entry: Entry): void {
    const heap = this.heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as Entry;
      if (!before(entry, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = entry;
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) return;
    let i = 0;
    const n = heap.length;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      if (right < n && before(heap[right] as Entry, heap[left] as Entry)) child = right;
      const c = heap[child] as Entry;
      if (!before(c, last)) break;
      heap[i] = c;
      i = child;
    }
    heap[i] = last;
  }
}
