/**
 * Data-driven scenario scripts in the etcd-io/raft style (test support; may use `node:`).
 *
 * A script is a sequence of commands, each with optional input lines, a `----` separator and
 * the expected output, which ends at a blank line:
 *
 * ```
 * # a comment
 * command-name positional key=value key=(a,b,c)
 * optional input lines
 * ----
 * expected output lines
 * ```
 *
 * Output that itself contains blank lines is written between a doubled separator: `----` twice
 * after the input, and `----` twice after the output. `runScripts` registers one `node:test`
 * test per `.txt` file; the commands of a file run in order against one handler, so later
 * commands see the state earlier ones built. On a mismatch the test fails at the first wrong
 * command with its `file:line` and a line diff; with `COHORT_REWRITE=1` in the environment the
 * expected blocks are rewritten in place with the actual output instead (review the git diff).
 */
import { test } from 'node:test';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CohortError } from '../lib/errors.js';

/** Largest script file read, in bytes. */
export const SCRIPT_FILE_BYTES_MAX = 4 * 1024 * 1024;
/** Most commands in one script file. */
export const SCRIPT_COMMANDS_MAX = 10_000;
/** Diffs of outputs longer than this many lines show only the first differing line. */
const DIFF_LINES_MAX = 2000;

/** One command of a script, as the handler sees it. */
export interface ScriptCommand {
  readonly name: string;
  /** `key=value` and `key=(a,b,c)` arguments; `key=()` gives an empty list. */
  readonly args: Map<string, string[]>;
  /** Arguments without `=`, in order. */
  readonly positional: string[];
  /** The lines between the command and `----`, joined with `\n` (no trailing newline). */
  readonly input: string;
  /** `file:line` of the command, for error messages. */
  readonly pos: string;
}

/** A parsed command with its expected output and where that output sits in the file. */
export interface ScriptCase {
  readonly cmd: ScriptCommand;
  /** The command line as written. */
  readonly text: string;
  /** Expected output: the block's lines each ending in `\n` (empty string for an empty block). */
  readonly expected: string;
  /** Line index (0-based) of the first `----`. */
  readonly blockStart: number;
  /** Line index just past the expected block (and its closing separators). */
  readonly blockEnd: number;
}

/** Script parse errors and bad command arguments; the message starts with `file:line`. */
export class ScriptError extends CohortError {
  override readonly name = 'ScriptError';
}

function parseError(pos: string, message: string): ScriptError {
  return new ScriptError('SCRIPT_PARSE', `${pos}: ${message}`);
}

/** Splits a command line into tokens; parentheses group a list that may contain spaces. */
function tokenize(line: string, pos: string): string[] {
  const tokens: string[] = [];
  let current = '';
  let depth = 0;
  for (const ch of line) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (depth < 0) throw parseError(pos, `unbalanced ')' in: ${line}`);
    if (depth === 0 && (ch === ' ' || ch === '\t')) {
      if (current !== '') tokens.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  if (depth !== 0) throw parseError(pos, `unclosed '(' in: ${line}`);
  if (current !== '') tokens.push(current);
  return tokens;
}

function parseValue(raw: string, pos: string): string[] {
  if (!raw.startsWith('(')) return [raw];
  if (!raw.endsWith(')')) throw parseError(pos, `list value ${raw} must end with ')'`);
  const inner = raw.slice(1, -1).trim();
  return inner === '' ? [] : inner.split(',').map((s) => s.trim());
}

/** Parses a command line (`name positional key=value key=(a,b)`). */
export function parseCommandLine(line: string, pos: string, input = ''): ScriptCommand {
  const [name, ...rest] = tokenize(line, pos);
  if (name === undefined || name.includes('='))
    throw parseError(pos, `a command must start with its name, got: ${line}`);
  const args = new Map<string, string[]>();
  const positional: string[] = [];
  for (const token of rest) {
    const eq = token.indexOf('=');
    if (eq < 0) {
      positional.push(token);
      continue;
    }
    const key = token.slice(0, eq);
    if (key === '') throw parseError(pos, `argument ${token} has no name before '='`);
    if (args.has(key)) throw parseError(pos, `argument ${key} is given twice`);
    args.set(key, parseValue(token.slice(eq + 1), pos));
  }
  return { name, args, positional, input, pos };
}

/** Reads the expected block starting at the first `----` (index `i`); returns lines and end. */
function readExpected(lines: readonly string[], i: number, pos: string): { out: string[]; end: number } {
  const out: string[] = [];
  let j = i + 1;
  if (lines[j] === '----') {
    // Doubled separator: the output runs until `----` twice and may contain blank lines.
    j++;
    while (!(lines[j] === '----' && lines[j + 1] === '----')) {
      if (j >= lines.length)
        throw parseError(pos, "output opened with a doubled '----' is never closed by '----' twice");
      out.push(lines[j] as string);
      j++;
    }
    return { out, end: j + 2 };
  }
  while (j < lines.length && lines[j] !== '') {
    out.push(lines[j] as string);
    j++;
  }
  return { out, end: j };
}

/** Parses a whole script. `file` only labels positions. Throws `ScriptError` on bad syntax. */
export function parseScript(text: string, file = '<script>'): ScriptCase[] {
  const lines = text.split('\n');
  const cases: ScriptCase[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i] as string;
    if (line.trim() === '' || line.startsWith('#')) {
      i++;
      continue;
    }
    const pos = `${file}:${i + 1}`;
    const input: string[] = [];
    i++;
    while (i < lines.length && lines[i] !== '----') input.push(lines[i++] as string);
    if (i >= lines.length) throw parseError(pos, `command has no '----' line before the end of the file: ${line}`);
    const { out, end } = readExpected(lines, i, pos);
    if (cases.length >= SCRIPT_COMMANDS_MAX)
      throw parseError(pos, `more than ${SCRIPT_COMMANDS_MAX} commands in one script; split the file`);
    cases.push({
      cmd: parseCommandLine(line, pos, input.join('\n')),
      text: line,
      expected: out.map((l) => `${l}\n`).join(''),
      blockStart: i,
      blockEnd: end,
    });
    i = end;
  }
  return cases;
}

/** Output normalised the way it is stored: every line ends in `\n`, none if empty. */
export function normalizeOutput(output: string): string {
  if (output === '') return '';
  return output.endsWith('\n') ? output : `${output}\n`;
}

/** The lines (separators included) that store `output` in a script. */
function formatBlock(output: string): string[] {
  const body = output === '' ? [] : output.slice(0, -1).split('\n');
  // A blank line would end a plain block, and a leading `----` would read as a doubled separator.
  return body.includes('') || body[0] === '----' ? ['----', '----', ...body, '----', '----'] : ['----', ...body];
}

/** A minimal line diff (longest common subsequence), `-` expected and `+` actual. */
export function lineDiff(expected: string, actual: string): string {
  const a = expected === '' ? [] : expected.slice(0, -1).split('\n');
  const b = actual === '' ? [] : actual.slice(0, -1).split('\n');
  if (a.length > DIFF_LINES_MAX || b.length > DIFF_LINES_MAX) {
    let k = 0;
    while (k < a.length && k < b.length && a[k] === b[k]) k++;
    return `first difference at output line ${k + 1}:\n-${a[k] ?? '<end>'}\n+${b[k] ?? '<end>'}\n`;
  }
  // lcs[i][j] = LCS length of a[i..] and b[j..]
  const lcs = Array.from({ length: a.length + 1 }, () => new Array<number>(b.length + 1).fill(0));
  for (let i = a.length - 1; i >= 0; i--) {
    const row = lcs[i] as number[];
    const next = lcs[i + 1] as number[];
    for (let j = b.length - 1; j >= 0; j--)
      row[j] = a[i] === b[j] ? (next[j + 1] as number) + 1 : Math.max(next[j] as number, row[j + 1] as number);
  }
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    if (i < a.length && j < b.length && a[i] === b[j]) {
      out.push(` ${a[i++] as string}`);
      j++;
    } else if (
      i < a.length &&
      (j >= b.length || ((lcs[i + 1] as number[])[j] as number) >= ((lcs[i] as number[])[j + 1] as number))
    ) {
      out.push(`-${a[i++] as string}`);
    } else {
      out.push(`+${b[j++] as string}`);
    }
  }
  return `${out.join('\n')}\n`;
}

/** Result of running one script. */
export type ScriptResult =
  | { readonly ok: true; readonly commands: number; readonly rewritten: string | undefined }
  | { readonly ok: false; readonly pos: string; readonly message: string };

/** Handler type: returns the output of one command. Thrown errors fail the script. */
export type ScriptHandler = (cmd: ScriptCommand) => string;

function runOne(c: ScriptCase, handler: ScriptHandler): string {
  try {
    return normalizeOutput(handler(c.cmd));
  } catch (cause) {
    const what = cause instanceof Error ? cause.message : String(cause);
    throw new ScriptError('SCRIPT_HANDLER', `${c.cmd.pos}: command \`${c.cmd.name}\` threw: ${what}`, { cause });
  }
}

/**
 * Runs a script's commands in order. Without `rewrite`, stops at the first mismatch and
 * describes it; with `rewrite`, runs everything and returns the file text with every expected
 * block replaced by the actual output (`rewritten`, undefined when nothing changed).
 */
export function checkScript(text: string, file: string, handler: ScriptHandler, rewrite = false): ScriptResult {
  const cases = parseScript(text, file);
  const lines = text.split('\n');
  const rebuilt: string[] = [];
  let copied = 0;
  let changed = false;
  for (const c of cases) {
    const actual = runOne(c, handler);
    if (actual === c.expected) continue;
    if (!rewrite) {
      const message = `${c.cmd.pos}: output of \`${c.text}\` differs\n--- expected\n+++ actual\n${lineDiff(c.expected, actual)}(set COHORT_REWRITE=1 to accept the actual output, then review the diff)`;
      return { ok: false, pos: c.cmd.pos, message };
    }
    changed = true;
    rebuilt.push(...lines.slice(copied, c.blockStart), ...formatBlock(actual));
    copied = c.blockEnd;
  }
  rebuilt.push(...lines.slice(copied));
  return { ok: true, commands: cases.length, rewritten: changed ? rebuilt.join('\n') : undefined };
}

/** The repository root: the nearest ancestor of this file holding package.json. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    dir = dirname(dir);
  }
  throw new ScriptError(
    'SCRIPT_NO_ROOT',
    `no package.json above ${fileURLToPath(import.meta.url)}; run the tests from inside the repository`,
  );
}

/** Options for `runScripts`. */
export interface RunScriptsOptions {
  /** Rewrite expected output in place; defaults to `COHORT_REWRITE=1` in the environment. */
  readonly rewrite?: boolean;
  /** A fresh handler per file (state never leaks between files); wins over the `handler` argument. */
  readonly handlerFactory?: () => ScriptHandler;
}

/**
 * Registers one `node:test` test per `.txt` file in `dir` (relative to the repository root),
 * in sorted order. A directory with no scripts registers a failing test: a suite that silently
 * ran nothing could never fail.
 */
export function runScripts(dir: string, handler: ScriptHandler, options: RunScriptsOptions = {}): void {
  const root = repoRoot();
  const abs = resolve(root, dir);
  const files = existsSync(abs)
    ? readdirSync(abs)
        .filter((f) => f.endsWith('.txt'))
        .sort()
    : [];
  if (files.length === 0) {
    test(`scripts in ${dir}`, () => {
      throw new ScriptError('SCRIPT_NONE', `no .txt scripts found in ${abs}`);
    });
    return;
  }
  const rewrite = options.rewrite ?? process.env.COHORT_REWRITE === '1';
  for (const name of files) {
    const path = join(abs, name);
    const label = relative(root, path);
    test(label, () => {
      const text = readFileSync(path, 'utf8');
      if (Buffer.byteLength(text) > SCRIPT_FILE_BYTES_MAX)
        throw new ScriptError('SCRIPT_TOO_LARGE', `${label} is larger than ${SCRIPT_FILE_BYTES_MAX} bytes; split it`);
      const result = checkScript(text, label, options.handlerFactory ? options.handlerFactory() : handler, rewrite);
      if (!result.ok) throw new ScriptError('SCRIPT_MISMATCH', result.message);
      if (result.rewritten !== undefined) writeFileSync(path, result.rewritten);
    });
  }
}

// --- typed argument helpers ---------------------------------------------------------------

function argError(cmd: ScriptCommand, message: string): ScriptError {
  return new ScriptError('SCRIPT_BAD_ARG', `${cmd.pos}: ${cmd.name}: ${message}`);
}

/** Throws unless every `key=` argument of `cmd` is one of `allowed` (catches typos in scripts). */
export function expectArgs(cmd: ScriptCommand, allowed: readonly string[]): void {
  for (const key of cmd.args.keys()) {
    if (!allowed.includes(key))
      throw argError(cmd, `unknown argument ${key}= (expected one of: ${allowed.join(', ') || 'none'})`);
  }
}

/** True when `key=` was given. */
export function hasArg(cmd: ScriptCommand, key: string): boolean {
  return cmd.args.has(key);
}

function values(cmd: ScriptCommand, key: string): string[] | undefined {
  return cmd.args.get(key);
}

/** A single-valued string argument; `fallback` when absent, an error when absent without one. */
export function stringArg(cmd: ScriptCommand, key: string, fallback?: string): string {
  const v = values(cmd, key);
  if (v === undefined) {
    if (fallback === undefined) throw argError(cmd, `missing argument ${key}=`);
    return fallback;
  }
  if (v.length !== 1) throw argError(cmd, `argument ${key}= needs exactly one value, got ${v.length}`);
  return v[0] as string;
}

function toInt(cmd: ScriptCommand, key: string, raw: string): number {
  if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(Number(raw)))
    throw argError(cmd, `argument ${key}=${raw} must be an integer`);
  return Number(raw);
}

/** A single integer argument. */
export function intArg(cmd: ScriptCommand, key: string, fallback?: number): number {
  if (!hasArg(cmd, key)) {
    if (fallback === undefined) throw argError(cmd, `missing argument ${key}=`);
    return fallback;
  }
  return toInt(cmd, key, stringArg(cmd, key));
}

/** A list of integers: `key=(1,2,3)` or `key=4`. */
export function intsArg(cmd: ScriptCommand, key: string, fallback?: readonly number[]): number[] {
  const v = values(cmd, key);
  if (v === undefined) {
    if (fallback === undefined) throw argError(cmd, `missing argument ${key}=`);
    return [...fallback];
  }
  return v.map((raw) => toInt(cmd, key, raw));
}

/** A list of strings: `key=(a,b)` or `key=a`. */
export function stringsArg(cmd: ScriptCommand, key: string, fallback?: readonly string[]): string[] {
  const v = values(cmd, key);
  if (v === undefined) {
    if (fallback === undefined) throw argError(cmd, `missing argument ${key}=`);
    return [...fallback];
  }
  return [...v];
}

/** A boolean argument: `key=true` or `key=false`. */
export function boolArg(cmd: ScriptCommand, key: string, fallback?: boolean): boolean {
  if (!hasArg(cmd, key)) {
    if (fallback === undefined) throw argError(cmd, `missing argument ${key}=`);
    return fallback;
  }
  const raw = stringArg(cmd, key);
  if (raw !== 'true' && raw !== 'false') throw argError(cmd, `argument ${key}=${raw} must be true or false`);
  return raw === 'true';
}
