/**
 * The daemon's structured logger: pino, JSON lines to stdout for machines, and a compact
 * human-readable line format when stdout is a terminal (or `log.format: pretty`).
 *
 * pino-pretty is not a dependency: `prettyDestination` is a small pino destination of our own
 * that turns each JSON line into `HH:MM:SS.mmm LEVEL msg key=value ...`, with the error stack on
 * the following lines. It formats synchronously, one line per record, and never throws on a
 * record it cannot parse (it prints it as is).
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogFormat, LogLevel } from '../node/config.js';

/** Options of `createLogger`. */
export interface LoggerOptions {
  readonly level?: LogLevel;
  readonly format?: LogFormat;
  /** Fields bound to every record (e.g. `{ node: 1 }`). */
  readonly base?: Readonly<Record<string, string | number>>;
  /** Where lines go (default stdout). Tests pass a collector. */
  readonly destination?: { write(text: string): unknown };
  /** Whether the destination is a terminal (default `process.stdout.isTTY`); decides `auto`. */
  readonly isTty?: boolean;
  /** Colour the level in pretty output (default: when a terminal). */
  readonly colors?: boolean;
}

const LEVEL_NAMES: Readonly<Record<number, string>> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};
const LEVEL_COLORS: Readonly<Record<number, string>> = { 10: '90', 20: '36', 30: '32', 40: '33', 50: '31', 60: '35' };
/** Keys pino adds that the pretty line shows in fixed places (or hides). */
const FIXED_KEYS = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'err']);
/** Longest rendering of one field value in a pretty line. */
const FIELD_CHARS_MAX = 200;

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

function clock(ms: unknown): string {
  if (typeof ms !== 'number') return '--:--:--.---';
  const d = new Date(ms);
  return `${pad(d.getHours(), 2)}:${pad(d.getMinutes(), 2)}:${pad(d.getSeconds(), 2)}.${pad(d.getMilliseconds(), 3)}`;
}

function fieldText(value: unknown): string {
  const text =
    typeof value === 'string' ? (/^[^\s"=]+$/.test(value) ? value : JSON.stringify(value)) : JSON.stringify(value);
  return text.length > FIELD_CHARS_MAX ? `${text.slice(0, FIELD_CHARS_MAX)}…` : text;
}

/** Formats one pino JSON line as a human-readable line (with a trailing newline). */
export function formatPrettyLine(line: string, colors = false): string {
  let record: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(line);
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed))
      return line.endsWith('\n') ? line : `${line}\n`;
    record = parsed as Record<string, unknown>;
  } catch {
    return line.endsWith('\n') ? line : `${line}\n`;
  }
  const level = typeof record['level'] === 'number' ? record['level'] : 30;
  const name = (LEVEL_NAMES[level] ?? String(level)).padEnd(5);
  const shownLevel = colors ? `\u001b[${LEVEL_COLORS[level] ?? '0'}m${name}\u001b[0m` : name;
  const fields = Object.entries(record)
    .filter(([k]) => !FIXED_KEYS.has(k))
    .map(([k, v]) => `${k}=${fieldText(v)}`);
  const msg = typeof record['msg'] === 'string' ? record['msg'] : '';
  let out = `${clock(record['time'])} ${shownLevel} ${msg}${fields.length > 0 ? ` ${fields.join(' ')}` : ''}\n`;
  const err = record['err'];
  if (err !== null && typeof err === 'object') {
    const e = err as { message?: unknown; stack?: unknown; code?: unknown };
    const head = typeof e.stack === 'string' ? e.stack : String(e.message);
    out += `${head
      .split('\n')
      .map((l) => `    ${l}`)
      .join('\n')}${e.code === undefined ? '' : `\n    code=${fieldText(e.code)}`}\n`;
  }
  return out;
}

/** A pino destination that writes pretty lines to `target`. */
export function prettyDestination(target: { write(text: string): unknown }, colors = false): DestinationStream {
  return {
    write(line: string): void {
      target.write(formatPrettyLine(line.endsWith('\n') ? line.slice(0, -1) : line, colors));
    },
  };
}

/**
 * Creates the daemon logger. `format: 'auto'` (the default) is pretty on a terminal and JSON
 * otherwise. JSON goes through pino's asynchronous stdout destination unless a destination is
 * given; call `logger.flush()` before exiting.
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const tty = options.isTty ?? process.stdout.isTTY;
  const format = options.format ?? 'auto';
  const pretty = format === 'pretty' || (format === 'auto' && tty);
  const settings = { level: options.level ?? 'info', base: { ...options.base } };
  if (pretty) return pino(settings, prettyDestination(options.destination ?? process.stdout, options.colors ?? tty));
  if (options.destination !== undefined) {
    const target = options.destination;
    return pino(settings, {
      write: (line: string) => {
        target.write(line);
      },
    });
  }
  return pino(settings, pino.destination({ fd: 1, sync: false }));
}
