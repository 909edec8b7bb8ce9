/**
 * The command line of every benchmark (bench/*.ts): `--name VALUE` (or `--name=VALUE`) flags with
 * a default and bounds, boolean `--name` flags, and `--help`.
 *
 * Contract (the same for every benchmark; `bench/bench-args.test.ts` runs each one):
 * - `--help` or `-h` anywhere prints the usage to stdout and exits 0 without running anything.
 * - An unknown flag, a missing value, a value that is not a number or is out of bounds, or a
 *   stray argument prints one line to stderr (`NAME: what is wrong; see --help`) and exits 2.
 * - Without flags the benchmark runs with its defaults, which must work.
 */

/** One flag of a benchmark. Bounds are inclusive; `int` takes integers only. */
export type BenchFlag =
  | {
      readonly kind: 'int' | 'number';
      readonly default: number;
      readonly min: number;
      readonly max: number;
      /** The value's name in the usage (`N`, `S`, `BYTES`). */
      readonly value: string;
      readonly help: string;
    }
  | {
      readonly kind: 'choice';
      readonly default: string;
      readonly choices: readonly string[];
      readonly help: string;
    }
  | { readonly kind: 'boolean'; readonly help: string }
  /** Internal (a forked helper process's role): not shown in the usage. */
  | { readonly kind: 'hidden'; readonly default: string };

type ValueOf<F extends BenchFlag> = F extends { readonly kind: 'boolean' }
  ? boolean
  : F extends { readonly kind: 'choice' | 'hidden' }
    ? string
    : number;

/** The parsed flags, by name. */
export type BenchValues<S extends Readonly<Record<string, BenchFlag>>> = { readonly [K in keyof S]: ValueOf<S[K]> };

/** What the usage says about a benchmark. */
export interface BenchInfo {
  /** The file name without `.js` (`wal`): the prefix of every error line. */
  readonly name: string;
  /** What it measures and how, a few lines. */
  readonly summary: string;
}

/**
 * Runs a benchmark's `main`; a failure is one line on stderr (`NAME: message`) and exit 1, with
 * the stack only when `--debug` was given.
 */
export async function runBench(name: string, main: () => Promise<void>): Promise<void> {
  try {
    await main();
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    const message = e instanceof Error ? e.message : String(e);
    process.stderr.write(`${name}: ${typeof code === 'string' ? `${code}: ` : ''}${message}\n`);
    if (process.argv.includes('--debug') && e instanceof Error) process.stderr.write(`${e.stack ?? ''}\n`);
    process.exitCode = 1;
  }
}

/** Prints `NAME: message; see --help` to stderr and exits 2 (a usage error). */
export function benchUsageError(name: string, message: string): never {
  process.stderr.write(`${name}: ${message}; see --help\n`);
  process.exit(2);
}

function describe(name: string, flag: BenchFlag): string | null {
  switch (flag.kind) {
    case 'int':
    case 'number':
      return (
        `  --${name} ${flag.value}`.padEnd(26) + `${flag.help} (default ${flag.default}; ${flag.min} to ${flag.max})`
      );
    case 'choice':
      return `  --${name} ${flag.choices.join('|')}`.padEnd(26) + `${flag.help} (default ${flag.default})`;
    case 'boolean':
      return `  --${name}`.padEnd(26) + flag.help;
    case 'hidden':
      return null;
  }
}

/** The usage text of a benchmark. */
export function benchUsage(info: BenchInfo, spec: Readonly<Record<string, BenchFlag>>): string {
  const lines = Object.entries(spec)
    .map(([name, flag]) => describe(name, flag))
    .filter((l) => l !== null);
  return [
    `Usage: node dist/bench/${info.name}.js [options]`,
    '',
    info.summary,
    '',
    'Options:',
    ...lines,
    `${'  --debug'.padEnd(26)}print the stack trace of a failure`,
    `${'  -h, --help'.padEnd(26)}print this help and exit`,
    '',
  ].join('\n');
}

function parseValue(bench: string, name: string, flag: BenchFlag, text: string): number | string {
  switch (flag.kind) {
    case 'int':
    case 'number': {
      const n = Number(text);
      const shape = flag.kind === 'int' ? /^-?\d+$/ : /^-?(\d+\.?\d*|\.\d+)$/;
      if (!shape.test(text.trim()) || !Number.isFinite(n) || n < flag.min || n > flag.max)
        benchUsageError(
          bench,
          `--${name} must be ${flag.kind === 'int' ? 'an integer' : 'a number'} from ${flag.min} to ${flag.max}, got ${JSON.stringify(text)}`,
        );
      return n;
    }
    case 'choice':
      if (!flag.choices.includes(text))
        benchUsageError(bench, `--${name} must be one of ${flag.choices.join(', ')}, got ${JSON.stringify(text)}`);
      return text;
    case 'hidden':
      return text;
    case 'boolean':
      return benchUsageError(bench, `--${name} takes no value`);
  }
}

/**
 * Parses `argv` (default: this process's arguments) against `spec`; handles `--help` and usage
 * errors as the file comment says (both end the process).
 */
export function benchArgs<const S extends Readonly<Record<string, BenchFlag>>>(
  info: BenchInfo,
  spec: S,
  argv: readonly string[] = process.argv.slice(2),
): BenchValues<S> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(benchUsage(info, spec));
    process.exit(0);
  }
  const values = new Map<string, number | string | boolean>();
  for (const [name, flag] of Object.entries(spec)) values.set(name, flag.kind === 'boolean' ? false : flag.default);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    if (arg === '--debug') continue; // read by `runBench`
    const m = /^--([a-z][a-z0-9-]*)(?:=(.*))?$/s.exec(arg);
    if (m === null) benchUsageError(info.name, `unexpected argument ${JSON.stringify(arg)}`);
    const name = m[1] ?? '';
    const flag = Object.hasOwn(spec, name) ? spec[name] : undefined;
    if (flag === undefined) benchUsageError(info.name, `unknown option --${name}`);
    if (flag.kind === 'boolean') {
      if (m[2] !== undefined) benchUsageError(info.name, `--${name} takes no value`);
      values.set(name, true);
      continue;
    }
    const text = m[2] ?? argv[++i];
    if (text === undefined) benchUsageError(info.name, `--${name} needs a value`);
    values.set(name, parseValue(info.name, name, flag, text));
  }
  return Object.fromEntries(values) as BenchValues<S>;
}

/** Nearest-rank percentile `p` (0-100) of an ascending list (NaN when it is empty). */
export function percentile(sorted: readonly number[], p: number): number {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return sorted[Math.min(sorted.length, rank) - 1] ?? Number.NaN;
}

/** Median, p99, min and max of one measured figure over the runs, ms. */
export interface MsSummary {
  readonly median: number;
  readonly p99: number;
  readonly min: number;
  readonly max: number;
}

/** The summary of each of `keys` over `samples` (one object of figures per run). */
export function summarizeMs<K extends string>(
  samples: readonly Readonly<Record<K, number>>[],
  keys: readonly K[],
): Record<K, MsSummary> {
  const out = {} as Record<K, MsSummary>;
  for (const k of keys) {
    const xs = samples.map((s) => s[k]).sort((a, b) => a - b);
    out[k] = { median: percentile(xs, 50), p99: percentile(xs, 99), min: xs[0] ?? 0, max: xs.at(-1) ?? 0 };
  }
  return out;
}

/**
 * Writes `title` and a table to stdout: one row per metric (its label, median, p99, min, max in
 * ms, then any `extra` cells), the first column left-aligned and the others right-aligned.
 */
export function writeMsTable(
  title: string,
  header: readonly string[],
  metrics: readonly { readonly label: string; readonly summary: MsSummary; readonly extra?: readonly string[] }[],
): void {
  const rows: string[][] = [
    [...header],
    ...metrics.map((m) => [
      m.label,
      ...[m.summary.median, m.summary.p99, m.summary.min, m.summary.max].map((v) => `${Math.round(v)} ms`),
      ...(m.extra ?? []),
    ]),
  ];
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  process.stdout.write(`${title}\n`);
  for (const r of rows)
    process.stdout.write(
      `${r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))).join('  ')}\n`,
    );
}
