/**
 * The simulator's trace: one line per event, a running SHA-256 over every line (the run's
 * `traceHash`), a bounded tail of the newest lines for failure reports, per-event counts, and
 * optionally the full trace written to a file.
 *
 * Line format (stable: changing it changes every recorded hash):
 *
 *     <seconds.micros> <who> <event> [role=.. term=.. commit=..] [other fields sorted by key]
 *
 * `who` is `n<id>` for a node, `sim` for the simulator itself (faults, phases), `client` for a
 * workload driver. Field order never depends on object-key order: well-known fields first,
 * then the rest sorted by name.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, openSync, writeSync } from 'node:fs';
import { assert } from '../lib/assert.js';
import { Ring } from '../lib/queue.js';
import type { TraceFields } from '../runtime/env.js';
import { SIM_TRACE_TAIL_LINES } from '../constants.js';

/** Who emitted a trace event. */
export type TraceSource = number | 'sim' | 'client';

/** One observed event, as checkers see it (the same data the trace line is made from). */
export interface SimEvent {
  readonly timeUs: number;
  readonly source: TraceSource;
  readonly event: string;
  readonly fields: TraceFields;
}

const LEADING_FIELDS = ['role', 'term', 'commit', 'lead'] as const;
const LEADING = new Set<string>(LEADING_FIELDS);
const FILE_FLUSH_BYTES = 64 * 1024;

/** Formats integer microseconds as `seconds.micros` with six digits. */
export function formatTimeUs(timeUs: number): string {
  const s = Math.floor(timeUs / 1_000_000);
  const us = timeUs - s * 1_000_000;
  return `${s}.${String(us).padStart(6, '0')}`;
}

function formatValue(v: string | number | boolean | null): string {
  if (typeof v === 'string') return /^[\w.:/,{}|<>=@+-]*$/.test(v) && v !== '' ? v : JSON.stringify(v);
  return String(v);
}

/** Formats one event as its trace line (without newline). */
export function formatEvent(e: SimEvent): string {
  const who = typeof e.source === 'number' ? `n${e.source}` : e.source;
  let line = `${formatTimeUs(e.timeUs)} ${who} ${e.event}`;
  for (const key of LEADING_FIELDS) {
    const v = e.fields[key];
    if (v !== undefined) line += ` ${key}=${formatValue(v)}`;
  }
  const rest = Object.keys(e.fields)
    .filter((k) => !LEADING.has(k))
    .sort();
  for (const key of rest) {
    const v = e.fields[key];
    if (v !== undefined) line += ` ${key}=${formatValue(v)}`;
  }
  return line;
}

/** Records trace lines; see the module comment. Call `close()` when a file sink is set. */
export class TraceRecorder {
  private readonly hash: Hash = createHash('sha256');
  private readonly tailLines: Ring<string>;
  private readonly counts = new Map<string, number>();
  private lines = 0;
  private fd: number | undefined;
  private fileBuffer = '';
  private digest: string | undefined;

  constructor(options: { tailLines?: number; filePath?: string } = {}) {
    this.tailLines = new Ring(options.tailLines ?? SIM_TRACE_TAIL_LINES);
    if (options.filePath !== undefined) this.fd = openSync(options.filePath, 'w');
  }

  /** Appends `event`'s line to the hash, the tail, the counts and the file. */
  record(event: SimEvent): void {
    assert(this.digest === undefined, 'trace is finished; no further events may be recorded');
    const line = formatEvent(event);
    this.hash.update(line);
    this.hash.update('\n');
    this.tailLines.push(line);
    this.lines++;
    this.counts.set(event.event, (this.counts.get(event.event) ?? 0) + 1);
    if (this.fd !== undefined) {
      this.fileBuffer += line + '\n';
      if (this.fileBuffer.length >= FILE_FLUSH_BYTES) this.flush();
    }
  }

  /** Lines recorded so far. */
  get lineCount(): number {
    return this.lines;
  }

  /** The newest lines, oldest first (at most the tail capacity). */
  tail(): string[] {
    return [...this.tailLines];
  }

  /** Events per kind, sorted by event name. */
  eventCounts(): [string, number][] {
    return [...this.counts].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  }

  /** Finishes the hash (hex SHA-256 of every line with its newline) and closes the file. */
  finish(): string {
    if (this.digest === undefined) {
      this.digest = this.hash.digest('hex');
      this.close();
    }
    return this.digest;
  }

  /** Flushes and closes the file sink, if any. Idempotent. */
  close(): void {
    if (this.fd === undefined) return;
    this.flush();
    closeSync(this.fd);
    this.fd = undefined;
  }

  private flush(): void {
    if (this.fd === undefined || this.fileBuffer === '') return;
    writeSync(this.fd, this.fileBuffer);
    this.fileBuffer = '';
  }
}
