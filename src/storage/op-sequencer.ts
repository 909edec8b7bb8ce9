/**
 * Orders asynchronous disk operations so that operations sharing a key (a file name, or the
 * directory) run one at a time, in issue order, while operations on unrelated files overlap.
 *
 * The `Disk` contract promises per-file completion order; the real file system (libuv's thread
 * pool) and the simulator's random latencies would break it, so both run every operation
 * through one sequencer. Pure: no I/O, no timers.
 */
import { assert } from '../lib/assert.js';
import { DISK_OPS_PENDING_MAX } from '../constants.js';

/** Starts an operation; the operation calls `finish` exactly once when it has completed. */
export type OpStart = (finish: () => void) => void;

interface Op {
  readonly seq: number;
  readonly keys: readonly string[];
  readonly start: OpStart;
  /** Keys whose queue this op is not yet at the head of. */
  blockers: number;
  started: boolean;
  finished: boolean;
}

/** A keyed FIFO scheduler; see the file comment. */
export class OpSequencer {
  private readonly queues = new Map<string, Op[]>();
  private nextSeq = 0;
  private pendingCount = 0;

  /** `pendingMax`: operations pending at once before `submit` asserts (a caller is unbounded). */
  constructor(private readonly pendingMax: number = DISK_OPS_PENDING_MAX) {
    assert(Number.isInteger(pendingMax) && pendingMax > 0, 'a pending bound is a positive integer');
  }

  /** Operations submitted and not yet finished. */
  get pending(): number {
    return this.pendingCount;
  }

  /**
   * Runs `start` once every earlier operation sharing one of `keys` has finished. `start` may be
   * called synchronously from `submit` when nothing blocks it, so it must only issue I/O, never
   * complete a caller's callback inline.
   */
  submit(keys: readonly string[], start: OpStart): void {
    assert(keys.length > 0, 'a disk operation names at least one key');
    assert(
      this.pendingCount < this.pendingMax,
      `more than ${this.pendingMax} storage operations pending: a caller is unbounded`,
    );
    const unique = [...new Set(keys)];
    const op: Op = { seq: this.nextSeq++, keys: unique, start, blockers: 0, started: false, finished: false };
    this.pendingCount++;
    for (const key of unique) {
      let queue = this.queues.get(key);
      if (queue === undefined) {
        queue = [];
        this.queues.set(key, queue);
      }
      if (queue.length > 0) op.blockers++;
      queue.push(op);
    }
    if (op.blockers === 0) this.run(op);
  }

  private run(op: Op): void {
    assert(!op.started, 'a disk operation starts once');
    op.started = true;
    op.start(() => {
      this.finish(op);
    });
  }

  private finish(op: Op): void {
    assert(op.started && !op.finished, 'a disk operation finishes once, after it started');
    op.finished = true;
    this.pendingCount--;
    const ready: Op[] = [];
    for (const key of op.keys) {
      const queue = this.queues.get(key);
      assert(queue !== undefined && queue[0] === op, 'a finishing operation heads each of its queues');
      queue.shift();
      const next = queue.length > 0 ? queue[0] : undefined;
      if (next === undefined) {
        this.queues.delete(key);
        continue;
      }
      next.blockers--;
      if (next.blockers === 0) ready.push(next);
    }
    ready.sort((a, b) => a.seq - b.seq);
    for (const next of ready) this.run(next);
  }
}
