/**
 * The refusal log of one listening socket: every connection a listener refuses (its cap was
 * reached) is counted, and at most one warn line per `REFUSAL_LOG_WINDOW_MS` is written, saying
 * how many more were refused since the previous line. A flood of thousands of connections a
 * second so costs one log line per window, and the count is never lost: `refused` is what the
 * metrics export.
 */
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { REFUSAL_LOG_WINDOW_MS } from '../constants.js';

/** Counts refusals of one listener and logs them rate-limited (see the file comment). */
export class RefusalLog {
  /** Every refusal since start. */
  refused = 0;
  private lastLineMs = -Infinity;
  private unlogged = 0;

  constructor(
    /** Names the listener in the line, e.g. `metrics http 127.0.0.1:9100`. */
    private readonly listener: string,
    private readonly logger: Logger | undefined,
    private readonly windowMs: number = REFUSAL_LOG_WINDOW_MS,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Notes one refusal; `why` is the reason shown (e.g. `at most 64 connections`). */
  note(why: string): void {
    this.refused++;
    this.unlogged++;
    const now = this.now();
    if (now - this.lastLineMs < this.windowMs) return;
    const more = this.unlogged - 1;
    this.lastLineMs = now;
    this.unlogged = 0;
    this.logger?.warn(
      { listener: this.listener, refused: this.refused },
      `${this.listener}: refused a connection (${why})` +
        (more > 0 ? `; ${more} more refused since the previous line` : '') +
        `; ${this.refused} refused since start`,
    );
  }
}
