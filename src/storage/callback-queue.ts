/**
 * `CallbackQueue`: the default scheduler of the in-memory stores (`MemoryDisk`,
 * `MemoryBlockStore`). Completions wait here, in FIFO order, until a test runs them with `run`,
 * so a test decides exactly when a write or fsync completes. Pure; O(1) per callback.
 */

/** See the file comment. */
export class CallbackQueue {
  private readonly queue: ((() => void) | undefined)[] = [];
  private head = 0;

  /** Queues `fn` (the `schedule` function the stores take). */
  readonly push = (fn: () => void): void => {
    this.queue.push(fn);
  };

  /** Runs queued callbacks (and those they queue) until none is left or `maxCallbacks` ran; returns how many ran. */
  run(maxCallbacks: number): number {
    let ran = 0;
    while (this.head < this.queue.length && ran < maxCallbacks) {
      const fn = this.queue[this.head];
      this.queue[this.head] = undefined;
      this.head++;
      ran++;
      if (fn !== undefined) fn();
    }
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    }
    return ran;
  }

  /** Callbacks queued and not yet run. */
  get pending(): number {
    return this.queue.length - this.head;
  }
}
