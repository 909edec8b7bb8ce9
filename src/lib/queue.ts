/**
 * Bounded FIFO queues. Every queue in cohort has a capacity from `constants.ts`; a full queue
 * refuses (`push` returns false) so the caller applies backpressure or drops by policy. Nothing
 * grows without bound.
 */
import { assert } from './assert.js';

/** A fixed-capacity ring buffer FIFO. O(1) push, shift and peek; iteration oldest first. */
export class BoundedQueue<T> implements Iterable<T> {
  private readonly items: (T | undefined)[];
  private head = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    assert(Number.isInteger(capacity) && capacity > 0, 'queue capacity must be a positive integer');
    this.items = new Array<T | undefined>(capacity);
  }

  /** Number of queued items. */
  get length(): number {
    return this.count;
  }

  /** True when no further item can be pushed. */
  get full(): boolean {
    return this.count === this.capacity;
  }

  /** Appends `item`; returns false (and changes nothing) when the queue is full. */
  push(item: T): boolean {
    if (this.count === this.capacity) return false;
    this.items[(this.head + this.count) % this.capacity] = item;
    this.count++;
    return true;
  }

  /** Removes and returns the oldest item, or `undefined` when empty. */
  shift(): T | undefined {
    if (this.count === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.capacity;
    this.count--;
    return item;
  }

  /** The oldest item without removing it. */
  peek(): T | undefined {
    return this.count === 0 ? undefined : this.items[this.head];
  }

  /** Removes every item. */
  clear(): void {
    this.items.fill(undefined);
    this.head = 0;
    this.count = 0;
  }

  *[Symbol.iterator](): Iterator<T> {
    for (let i = 0; i < this.count; i++) yield this.items[(this.head + i) % this.capacity] as T;
  }
}

/**
 * A fixed-capacity ring that keeps the newest `capacity` items, overwriting the oldest.
 * For histories and flight recorders, where losing the oldest is the documented policy.
 */
export class Ring<T> implements Iterable<T> {
  private readonly items: (T | undefined)[];
  private next = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    assert(Number.isInteger(capacity) && capacity > 0, 'ring capacity must be a positive integer');
    this.items = new Array<T | undefined>(capacity);
  }

  get length(): number {
    return this.count;
  }

  /** Adds `item`, overwriting the oldest when full. */
  push(item: T): void {
    this.items[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
    if (this.count < this.capacity) this.count++;
  }

  *[Symbol.iterator](): Iterator<T> {
    const start = (this.next - this.count + this.capacity) % this.capacity;
    for (let i = 0; i < this.count; i++) yield this.items[(start + i) % this.capacity] as T;
  }
}
