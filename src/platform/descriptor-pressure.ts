/**
 * Descriptor exhaustion is pressure, not a fault: when the process (EMFILE) or the whole system
 * (ENFILE) has no file descriptor free, an `open`, `accept` or `connect` fails although nothing
 * is wrong with the disk or the network, and nothing was written or sent. The operation can be
 * retried once descriptors are free again, and must be: treating it as a storage fault would
 * fail-stop (or, worse, half-stop) a healthy node whenever something else holds its descriptors
 * (idle connections to one of its ports, a leak elsewhere in the process), and the node would
 * not come back by itself once the pressure ends.
 *
 * `DescriptorPressure` is the one place that tells an operator about it: the first failure of
 * an episode is logged as a warning naming the error code and what failed, repeats at most once
 * per `DESCRIPTOR_PRESSURE_LOG_WINDOW_MS` (with how many failed since), and the end of the
 * episode (the first retry that succeeds) as one info line with its length. Retries back off
 * from `DESCRIPTOR_RETRY_MS_MIN` to `DESCRIPTOR_RETRY_MS_MAX`: bounded work while the pressure
 * lasts, and a recovery within `DESCRIPTOR_RETRY_MS_MAX` of its end.
 *
 * Only the failure to obtain a descriptor is retried. A write, fsync or rename that failed on a
 * descriptor already held is a storage fault and fail-stops as before (an fsync failure is not
 * retryable: the data it covered may be gone).
 */
import { performance } from 'node:perf_hooks';
import { assert } from '../lib/assert.js';

/** First delay before retrying an operation that found no descriptor free. */
export const DESCRIPTOR_RETRY_MS_MIN = 5;
/** Longest delay between two retries (also the worst lag of a recovery after the pressure ends). */
export const DESCRIPTOR_RETRY_MS_MAX = 500;
/** While an episode lasts, at most one warning per this window. */
export const DESCRIPTOR_PRESSURE_LOG_WINDOW_MS = 10_000;

/** Where the lines go (a pino `Logger` fits). */
export interface PressureLogger {
  warn(fields: object, message: string): void;
  info(fields: object, message: string): void;
}

/** The system codes of descriptor exhaustion. */
export type DescriptorExhaustionCode = 'EMFILE' | 'ENFILE';

/** The exhaustion code of `error`, or null when it is any other error (or no error). */
export function descriptorExhaustion(error: unknown): DescriptorExhaustionCode | null {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'EMFILE' || code === 'ENFILE' ? code : null;
}

/** Delay before retry number `attempt` (0-based): doubling from the minimum, capped. */
export function descriptorRetryDelayMs(attempt: number): number {
  assert(Number.isInteger(attempt) && attempt >= 0, 'a retry attempt is a non-negative integer');
  return Math.min(DESCRIPTOR_RETRY_MS_MAX, DESCRIPTOR_RETRY_MS_MIN * 2 ** Math.min(attempt, 20));
}

function explain(code: DescriptorExhaustionCode): string {
  return code === 'EMFILE'
    ? 'EMFILE: this process has no file descriptor free (its nofile limit is reached)'
    : 'ENFILE: the system has no file descriptor free';
}

/**
 * One episode of descriptor pressure at a time, reported as the file comment says. Not thread
 * safe (one event loop); `now` is injectable for tests.
 */
export class DescriptorPressure {
  private episode: { readonly startMs: number; failures: number; lastWarnMs: number; sinceWarn: number } | null = null;

  constructor(
    private readonly logger: PressureLogger | null,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** True between a failure and the next success. */
  get active(): boolean {
    return this.episode !== null;
  }

  /** `what` (e.g. "opening stable-state.tmp in /data") failed for want of a descriptor and will be retried. */
  exhausted(what: string, code: DescriptorExhaustionCode): void {
    const now = this.now();
    const e = this.episode;
    if (e === null) {
      this.episode = { startMs: now, failures: 1, lastWarnMs: now, sinceWarn: 0 };
      this.logger?.warn(
        { code, what },
        `out of file descriptors: ${what} failed (${explain(code)}); retrying until descriptors are free again (what holds them? check idle connections and the nofile limit)`,
      );
      return;
    }
    e.failures++;
    e.sinceWarn++;
    if (now - e.lastWarnMs < DESCRIPTOR_PRESSURE_LOG_WINDOW_MS) return;
    this.logger?.warn(
      { code, what, failures: e.failures, ms: Math.round(now - e.startMs) },
      `still out of file descriptors after ${Math.round((now - e.startMs) / 1000)} s: ${what} failed (${explain(code)}); ${e.sinceWarn} failures since the last line, retrying`,
    );
    e.lastWarnMs = now;
    e.sinceWarn = 0;
  }

  /** `what` obtained its descriptor: ends the episode, if one was running. */
  relieved(what: string): void {
    const e = this.episode;
    if (e === null) return;
    this.episode = null;
    const ms = Math.round(this.now() - e.startMs);
    this.logger?.info(
      { what, failures: e.failures, ms },
      `file descriptors available again after ${ms} ms (${e.failures} failed attempts): ${what} succeeded`,
    );
  }
}
