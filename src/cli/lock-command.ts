/**
 * `cohort lock [--lockspace LS] [--mode M] [--wait S | --nonblock] NAME -- COMMAND...`: run
 * COMMAND while holding the DLM lock NAME, as `flock(1)` runs one while holding a file lock.
 *
 * Order: connect to this node's daemon (`--socket PATH` or `$COHORT_SOCKET`), open the lockspace
 * (default `default`), take NAME in mode M (default EX), then spawn COMMAND with the CLI's stdio
 * and environment. The lock is held until COMMAND ends, then unlocked; the CLI's exit code is
 * COMMAND's (a death by signal N is 128+N, as a shell reports it).
 *
 * The lock belongs to the CLI's connection (its lock session): when the CLI dies, even by kill
 * -9, the daemon sees the connection close and releases the lock at once. COMMAND is not killed
 * with it (no process can arrange that for a kill -9); kill the process group to stop both.
 * When the daemon goes away while COMMAND runs, the lock is no longer held: the CLI says so in
 * one line, sends COMMAND SIGTERM, and exits 4 once it ended.
 *
 * Signals: SIGINT, SIGTERM and SIGHUP are forwarded to COMMAND while it runs (the lock is held
 * until it exits); while waiting for the lock they cancel the request and end the CLI with
 * 128+N, COMMAND never started.
 *
 * Exit codes (docs/cli.md): COMMAND's once it ran; before that 1 failure (a refused request, the
 * lockspace could not be joined), 2 usage, 4 the daemon cannot be reached (or went away), 7 the
 * daemon is busy, 8 the lock was not granted (`--nonblock`: held in a conflicting mode;
 * `--wait S`: not granted within S seconds; `--conflict-exit-code N` picks another code), 126
 * COMMAND could not be executed, 127 COMMAND was not found.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { InvalidArgumentError, type Command } from '@commander-js/extra-typings';
import { CohortClientError, connect, type CohortClient } from '../client/index.js';
import { DLM_RESOURCE_NAME_BYTES_MAX } from '../constants.js';
import { lockspaceNameProblem } from '../dlm/dlm-service.js';
import { parseMode } from '../dlm/lock-modes.js';
import type { LockHandle } from '../dlm/dlm-client.js';
import type { LockModeName } from '../dlm/lock-types.js';
import { intOption } from './options.js';
import type { StatusIo } from './status-command.js';

/** Exit codes of `cohort lock` before COMMAND runs (afterwards the code is COMMAND's). */
export const LOCK_EXIT = {
  failure: 1,
  usage: 2,
  unreachable: 4,
  busy: 7,
  /** The lock was not granted: `--nonblock` found it held, or `--wait S` ran out. */
  notGranted: 8,
  /** COMMAND exists but could not be executed (as a shell reports it). */
  cannotExecute: 126,
  /** COMMAND was not found (as a shell reports it). */
  notFound: 127,
} as const;

/** The lockspace used when `--lockspace` is not given. */
export const DEFAULT_LOCKSPACE = 'default';
/** Longest `--wait`, seconds: the daemon's request timeout is at most 2^31 ms. */
export const LOCK_WAIT_SECONDS_MAX = 2_000_000;
/** Connect and hello deadline. */
const CONNECT_TIMEOUT_MS = 5000;
/** Longest wait to join the lockspace (a cluster that is not quorate cannot admit the node). */
const OPEN_TIMEOUT_MS = 20_000;
/** Deadline of the unlock after COMMAND ended (the session's close releases it anyway). */
const UNLOCK_TIMEOUT_MS = 5000;
/** How often the CLI checks that its connection (and so its lock) is still there while COMMAND runs. */
const SESSION_POLL_MS = 200;
/** The signals forwarded to COMMAND. */
const FORWARDED: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** `cohort lock`, parsed. */
export interface LockCliOptions {
  readonly name: string;
  readonly command: readonly string[];
  readonly lockspace?: string;
  readonly mode?: LockModeName;
  /** Give up after this many seconds of waiting; 0 means NOQUEUE. */
  readonly waitSeconds?: number;
  readonly nonblock?: boolean;
  readonly conflictExitCode?: number;
  readonly socket?: string;
  readonly debug?: boolean;
  /** Signals the CLI reacts to (default: the process's); for tests. */
  readonly signals?: SignalSource;
}

/** Where the CLI's signals come from: the process, or a test's emitter. */
export interface SignalSource {
  on(signal: NodeJS.Signals, fn: () => void): void;
  off(signal: NodeJS.Signals, fn: () => void): void;
}

/** An operating error of `cohort lock` with the exit code it ends with. */
class LockFailure extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** The first problem of the parsed arguments (a usage error), or null. */
export function lockUsageProblem(o: LockCliOptions): string | null {
  if (o.command.length === 0) return 'give the COMMAND to run after --, e.g. cohort lock NAME -- make deploy';
  if (o.nonblock === true && o.waitSeconds !== undefined) return 'give --wait SECONDS or --nonblock, not both';
  const lsProblem = lockspaceNameProblem(o.lockspace ?? DEFAULT_LOCKSPACE);
  if (lsProblem !== null) return `--lockspace: ${lsProblem}`;
  const bytes = new TextEncoder().encode(o.name).length;
  if (bytes === 0 || bytes > DLM_RESOURCE_NAME_BYTES_MAX)
    return `NAME is 1 to ${DLM_RESOURCE_NAME_BYTES_MAX} bytes; got ${bytes}`;
  return null;
}

/** A commander parser for `--wait`: seconds, a non-negative decimal (`0.5`), at most the bound. */
export function waitOption(value: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value.trim()) || !Number.isFinite(n) || n > LOCK_WAIT_SECONDS_MAX)
    throw new InvalidArgumentError(
      `--wait must be a number of seconds from 0 to ${LOCK_WAIT_SECONDS_MAX}, got ${JSON.stringify(value)}`,
    );
  return n;
}

/** A commander parser for `--mode`. */
export function modeOption(value: string): LockModeName {
  const upper = value.toUpperCase();
  if (parseMode(upper) === null || upper === 'NL')
    throw new InvalidArgumentError(`--mode must be one of EX, PW, PR, CW, CR, got ${JSON.stringify(value)}`);
  return upper as LockModeName;
}

/** The exit code a shell gives a command that exited with `code` or died of `signal`. */
export function shellExitCode(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  const n = signal === null ? undefined : (osConstants.signals as Partial<Record<string, number>>)[signal];
  return 128 + (n ?? 0);
}

function signalNumber(signal: NodeJS.Signals): number {
  return (osConstants.signals as Partial<Record<string, number>>)[signal] ?? 0;
}

function exitForClientError(e: CohortClientError, conflict: number): number {
  switch (e.code) {
    case 'DAEMON_UNREACHABLE':
    case 'CONNECTION_LOST':
      return LOCK_EXIT.unreachable;
    case 'OVERLOADED':
      return LOCK_EXIT.busy;
    case 'NOT_GRANTED':
      return conflict;
    case 'TIMEOUT':
      return /connecting/.test(e.message) ? LOCK_EXIT.unreachable : LOCK_EXIT.failure;
    default:
      return LOCK_EXIT.failure;
  }
}

/** Listens to the forwarded signals until `stop` is called; `fn` sees each one. */
function onSignals(source: SignalSource, fn: (s: NodeJS.Signals) => void): () => void {
  const handlers = FORWARDED.map((s) => {
    const h = (): void => {
      fn(s);
    };
    source.on(s, h);
    return [s, h] as const;
  });
  return () => {
    for (const [s, h] of handlers) source.off(s, h);
  };
}

/** Takes the lock, or throws `LockFailure`; the abort of `stop` cancels the wait. */
async function acquire(client: CohortClient, o: LockCliOptions, stop: AbortSignal): Promise<LockHandle> {
  const ls = o.lockspace ?? DEFAULT_LOCKSPACE;
  const mode = o.mode ?? 'EX';
  const conflict = o.conflictExitCode ?? LOCK_EXIT.notGranted;
  const startMs = performance.now();
  const waitMs = o.waitSeconds === undefined ? null : Math.round(o.waitSeconds * 1000);
  const noQueue = o.nonblock === true || waitMs === 0;
  const openMs = waitMs === null || noQueue ? OPEN_TIMEOUT_MS : Math.min(waitMs, OPEN_TIMEOUT_MS);
  try {
    const space = await client.dlm.lockspace(ls, {
      signal: AbortSignal.any([stop, AbortSignal.timeout(openMs)]),
    });
    const leftMs = waitMs === null || noQueue ? null : Math.max(1, Math.round(waitMs - (performance.now() - startMs)));
    return await space.lock(o.name, mode, {
      signal: stop,
      ...(noQueue ? { flags: ['NOQUEUE'] as const } : {}),
      ...(leftMs === null ? {} : { timeoutMs: leftMs }),
    });
  } catch (e) {
    if (!(e instanceof CohortClientError)) throw e;
    if (stop.aborted) throw e;
    const what = `${JSON.stringify(o.name)} (${mode}) in lockspace ${ls}`;
    if (e.code === 'NOT_GRANTED')
      throw new LockFailure(conflict, `${what} is held in a conflicting mode; not waiting (--nonblock)`);
    if (e.code === 'TIMEOUT' && waitMs !== null && !/connecting/.test(e.message))
      throw new LockFailure(conflict, `${what} was not granted within ${o.waitSeconds ?? 0} s (--wait)`);
    if (e.code === 'TIMEOUT' && !/connecting/.test(e.message))
      throw new LockFailure(
        LOCK_EXIT.failure,
        `lockspace ${ls} could not be joined within ${OPEN_TIMEOUT_MS / 1000} s (is the node quorate? cohort status)`,
      );
    throw e;
  }
}

/** Spawns COMMAND; resolves once it started (or rejects with the spawn error). */
function start(command: readonly string[]): Promise<ChildProcess> {
  const [file, ...args] = command;
  if (file === undefined) return Promise.reject(new LockFailure(LOCK_EXIT.usage, 'no COMMAND'));
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: 'inherit' });
    child.once('spawn', () => {
      resolve(child);
    });
    child.once('error', (e: NodeJS.ErrnoException) => {
      const code = e.code === 'ENOENT' ? LOCK_EXIT.notFound : LOCK_EXIT.cannotExecute;
      reject(new LockFailure(code, `cannot run ${JSON.stringify(file)}: ${e.message}`));
    });
  });
}

/**
 * Waits for the started `child` to end while `client` stays connected; resolves to the exit code.
 * When the connection (and so the lock) is lost, terminates `child` and ends with 4.
 */
async function supervise(child: ChildProcess, client: CohortClient, io: StatusIo): Promise<number> {
  const watch = { lost: false };
  const poll = setInterval(() => {
    if (watch.lost || client.open) return;
    watch.lost = true;
    io.err(
      'cohort lock: the connection to the daemon was lost, so the lock is no longer held; stopping COMMAND (SIGTERM)\n',
    );
    child.kill('SIGTERM');
  }, SESSION_POLL_MS);
  try {
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve([child.exitCode, child.signalCode]);
      else
        child.once('exit', (c, s) => {
          resolve([c, s]);
        });
    });
    return watch.lost ? LOCK_EXIT.unreachable : shellExitCode(code, signal);
  } finally {
    clearInterval(poll);
  }
}

/** The exit code of `e`, an error before COMMAND ran. */
function failureCode(e: unknown, o: LockCliOptions): number {
  if (e instanceof LockFailure) return e.exitCode;
  if (e instanceof CohortClientError) return exitForClientError(e, o.conflictExitCode ?? LOCK_EXIT.notGranted);
  return LOCK_EXIT.failure;
}

/** Runs `cohort lock`; resolves to the exit code. Never throws. */
export async function runLock(o: LockCliOptions, io: StatusIo): Promise<number> {
  const problem = lockUsageProblem(o);
  if (problem !== null) {
    io.err(`cohort lock: ${problem}\n`);
    return LOCK_EXIT.usage;
  }
  // One listener from start to end (no window where a signal takes the default action): before
  // COMMAND runs, a signal cancels the wait (COMMAND is never started); then it is forwarded.
  const stop = new AbortController();
  // Written by the signal listener, read after awaits: a holder object, not narrowed locals.
  const state: { stoppedBy: NodeJS.Signals | null; child: ChildProcess | null } = { stoppedBy: null, child: null };
  const stoppedBy = (): NodeJS.Signals | null => state.stoppedBy;
  const unlisten = onSignals(o.signals ?? process, (s) => {
    if (state.child !== null) state.child.kill(s);
    else {
      state.stoppedBy ??= s;
      stop.abort();
    }
  });
  try {
    await using client = await connect({
      ...(o.socket === undefined ? {} : { socket: o.socket }),
      timeoutMs: CONNECT_TIMEOUT_MS,
      signal: stop.signal,
      clientName: `cohort lock ${o.name}`,
    });
    const lock = await acquire(client, o, stop.signal);
    try {
      if (state.stoppedBy !== null) throw new LockFailure(128 + signalNumber(state.stoppedBy), 'COMMAND not run');
      const child = await start(o.command);
      state.child = child;
      // A signal that came while COMMAND was being started is its too.
      const late = stoppedBy();
      if (late !== null) child.kill(late);
      return await supervise(child, client, io);
    } finally {
      // The session's close (the connection, just after) releases the lock too.
      if (client.open) await lock.unlock({ signal: AbortSignal.timeout(UNLOCK_TIMEOUT_MS) }).catch(() => undefined);
    }
  } catch (e) {
    if (state.stoppedBy !== null && state.child === null) {
      io.err(`cohort lock: ${state.stoppedBy} while waiting for the lock; COMMAND not run\n`);
      return 128 + signalNumber(state.stoppedBy);
    }
    io.err(`cohort lock: ${e instanceof Error ? e.message : String(e)}\n`);
    if (o.debug === true && e instanceof Error && e.stack !== undefined) io.err(`${e.stack}\n`);
    return failureCode(e, o);
  } finally {
    unlisten();
  }
}

/** Registers `cohort lock` on `program`. */
export function registerLock(program: Command, setCode: (code: number) => void): void {
  program
    .command('lock')
    .description(
      "run COMMAND while holding the cluster-wide lock NAME, like flock(1) (exit: COMMAND's; 8 not granted with --nonblock or --wait, 4 daemon unreachable, 7 daemon busy)",
    )
    .argument('<name>', `the lock's resource name (1 to ${DLM_RESOURCE_NAME_BYTES_MAX} bytes)`)
    .argument('[command...]', 'the command to run while the lock is held (after --)')
    .option('--lockspace <ls>', `the lockspace (default ${DEFAULT_LOCKSPACE})`)
    .option('--mode <mode>', 'the lock mode: EX (default), PW, PR, CW or CR', modeOption)
    .option('--wait <seconds>', 'give up (exit 8) when not granted within SECONDS (0: do not wait)', waitOption)
    .option('--nonblock', 'do not wait: exit 8 at once when the lock is held in a conflicting mode')
    .option(
      '--conflict-exit-code <n>',
      `the exit code when the lock is not granted (default ${LOCK_EXIT.notGranted})`,
      intOption('--conflict-exit-code', 0, 255),
    )
    .option('--socket <path>', "this node's API socket (default $COHORT_SOCKET)")
    .option('--debug', 'print the stack trace of an error')
    .action(async (name, command, opts) => {
      const io: StatusIo = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };
      setCode(
        await runLock(
          {
            name,
            command,
            ...(opts.lockspace === undefined ? {} : { lockspace: opts.lockspace }),
            ...(opts.mode === undefined ? {} : { mode: opts.mode }),
            ...(opts.wait === undefined ? {} : { waitSeconds: opts.wait }),
            ...(opts.conflictExitCode === undefined ? {} : { conflictExitCode: opts.conflictExitCode }),
            ...(opts.socket === undefined ? {} : { socket: opts.socket }),
            nonblock: opts.nonblock === true,
            debug: opts.debug === true,
          },
          io,
        ),
      );
    });
}
