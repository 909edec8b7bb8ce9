/**
 * The environment a node's software runs in. The daemon builds it from real clocks, sockets
 * and files (`src/platform`); the simulator builds it from virtual time, a simulated network
 * and simulated disks (`src/sim`). The node software above it is the same code in both: the
 * production code path is the simulated code path.
 *
 * Every callback (timer, message, disk, block store and process completion) is delivered one at a time from the
 * environment's event loop; nothing here is re-entrant.
 */
import type { NodeId } from '../lib/ids.js';
import type { Prng } from '../lib/prng.js';
import type { Transport } from '../transport/transport.js';
import type { Disk } from '../storage/disk.js';
import type { BlockStore } from '../storage/block-store.js';
import type { ProcessRunner } from './process-runner.js';

/** A monotonic clock in milliseconds (fractional allowed). Never goes backwards. */
export interface Clock {
  nowMs(): number;
  /**
   * Wall-clock time, ms since the Unix epoch, for records people read (never for timing). Absent:
   * a fixed epoch plus `nowMs()` (the simulator's virtual time, deterministic).
   */
  wallMs?(): number;
}

/** The epoch `wallMs` counts from where a clock has no wall clock: 2026-01-01T00:00:00Z. */
export const VIRTUAL_EPOCH_MS = 1_767_225_600_000;

/** A cancellable one-shot timer. */
export interface TimerHandle {
  cancel(): void;
}

/** One-shot timers on the environment's clock. */
export interface Timers {
  /** Calls `fn` once, no earlier than `delayMs` from now. */
  after(delayMs: number, fn: () => void): TimerHandle;
}

/** A structured trace event: one line in the simulator's trace, a debug log line in the daemon. */
export interface TraceFields {
  readonly [key: string]: string | number | boolean | null | undefined;
}

/** Everything a node's software may touch. */
export interface NodeEnv<M> {
  readonly nodeId: NodeId;
  readonly clock: Clock;
  readonly timers: Timers;
  readonly transport: Transport<M>;
  readonly disk: Disk;
  /**
   * Volume fragments (ddraid), beside the `disk` and, like it, kept across incarnations of the
   * node on one machine. Unused until volumes land; see `src/storage/block-store.ts`.
   */
  readonly blocks: BlockStore;
  /**
   * Runs external programs (fence agents) without blocking; see `src/runtime/process-runner.ts`.
   * Unused until fencing agents land.
   */
  readonly processes: ProcessRunner;
  /** This node's random stream (seeded in the simulator, from a CSPRNG seed in the daemon). */
  readonly prng: Prng;
  /** Records `event` with its fields. Must be cheap; the simulator hashes every line. */
  trace(event: string, fields?: TraceFields): void;
  /**
   * Fail-stop: this node can no longer trust its storage (a write, fsync or read failed), so the
   * environment ends this incarnation now, as a crash would. `reason` is one line for the
   * operator naming the file and the error (`storage failure: fsync of X failed: EIO: ...`).
   *
   * Contract: from the moment of the call, no callback of this incarnation runs (timers,
   * messages, disk completions), nothing more is sent and nothing more is written; the caller
   * returns without touching the environment again. Unsynced data may be lost, as in a crash.
   * The daemon logs `reason` as a fatal line and exits with `FAIL_STOP_EXIT_CODE`; embedded mode
   * stops the node (visible in its status); the simulator crashes the incarnation (the nemesis
   * may restart it later). Idempotent.
   */
  failStop(reason: string, error: Error): void;
}
