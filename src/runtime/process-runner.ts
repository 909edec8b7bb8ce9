/**
 * The process runner contract: how node software runs an external program (fence agents,
 * DESIGN.md section 6) without blocking its event loop. Two implementations: real child
 * processes (`src/platform/child-process-runner.ts`) and scripted agents on virtual time
 * (`src/sim/process-runner.ts`); `RefusingProcessRunner` below serves environments that run no
 * programs. One compliance suite (`src/runtime/process-runner-compliance.test.ts`) runs the
 * contract against both implementations.
 *
 * Contract:
 * - `spawn` starts `spec.program` (an absolute path, no PATH search) with `spec.args`, the
 *   environment plus `spec.env`, and `spec.stdin` written to its standard input, which is then
 *   closed. It returns a handle at once; `done` runs exactly once, later, never inside `spawn`.
 * - stdout and stderr are captured separately, each up to `PROCESS_OUTPUT_BYTES_MAX` bytes; the
 *   rest is read and dropped (the program never blocks on a full pipe) and `truncated` is set.
 * - The result is `exited` (an exit code) or `signalled` (a signal the runner did not send),
 *   or `failed` with a typed `ProcessError`: the program could not be started
 *   (`PROCESS_NOT_FOUND`, `PROCESS_NOT_PERMITTED`, `PROCESS_START_FAILED`), too many run at once
 *   (`PROCESS_LIMIT`), it ran past `spec.timeoutMs` (`PROCESS_TIMED_OUT`), or `kill()` ended it
 *   (`PROCESS_KILLED`); `PROCESS_UNAVAILABLE` where no programs run at all. A timed-out or killed
 *   program gets SIGTERM, then SIGKILL after `spec.killGraceMs`; its result comes when it has
 *   ended, with the output it wrote and how it ended.
 * - `kill()` is idempotent and does nothing once the program ended or was already being stopped.
 * - At most `PROCESSES_RUNNING_MAX` programs run at once per runner (a spawn beyond fails).
 */
import { assert } from '../lib/assert.js';
import { CohortError } from '../lib/errors.js';
import {
  PROCESS_ARGS_MAX,
  PROCESS_ENV_ADDITIONS_MAX,
  PROCESS_OUTPUT_BYTES_MAX,
  PROCESS_STDIN_BYTES_MAX,
  PROCESS_TIMEOUT_MS_MAX,
} from '../constants.js';

/** What to run. */
export interface ProcessSpec {
  /** Absolute path of the program. */
  readonly program: string;
  /** Arguments (not including the program name). At most `PROCESS_ARGS_MAX`. */
  readonly args: readonly string[];
  /** Variables added to (or replacing in) the runner's environment. At most `PROCESS_ENV_ADDITIONS_MAX`. */
  readonly env?: ReadonlyMap<string, string>;
  /** Bytes written to standard input before it is closed (default none). At most `PROCESS_STDIN_BYTES_MAX`. */
  readonly stdin?: Uint8Array;
  /** The program is stopped (SIGTERM, then SIGKILL) when it runs longer than this, ms. */
  readonly timeoutMs: number;
  /** Wait between SIGTERM and SIGKILL, ms. Default `PROCESS_KILL_GRACE_MS`. */
  readonly killGraceMs?: number;
}

/** Stable codes of process runner failures. */
export type ProcessErrorCode =
  /** The program does not exist (ENOENT). */
  | 'PROCESS_NOT_FOUND'
  /** The program may not be executed (EACCES, EPERM). */
  | 'PROCESS_NOT_PERMITTED'
  /** The program could not be started for another reason (EMFILE, EAGAIN, ...); `cause` says which. */
  | 'PROCESS_START_FAILED'
  /** `PROCESSES_RUNNING_MAX` programs already run. */
  | 'PROCESS_LIMIT'
  /** The program ran past its timeout and was stopped. */
  | 'PROCESS_TIMED_OUT'
  /** `kill()` stopped the program. */
  | 'PROCESS_KILLED'
  /** This environment runs no programs (`RefusingProcessRunner`). */
  | 'PROCESS_UNAVAILABLE';

/** The one error type of process runners; switch on `code`. */
export class ProcessError extends CohortError {
  override readonly name = 'ProcessError';
  declare readonly code: ProcessErrorCode;

  // eslint-disable-next-line @typescript-eslint/no-useless-constructor -- narrows `code` to the process codes
  constructor(code: ProcessErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** Captured output of one program. */
export interface ProcessOutput {
  readonly stdout: Uint8Array;
  /** True when stdout exceeded `PROCESS_OUTPUT_BYTES_MAX` and only its first bytes are kept. */
  readonly stdoutTruncated: boolean;
  readonly stderr: Uint8Array;
  readonly stderrTruncated: boolean;
}

/** How a program that ran ended. */
export type ProcessEnding =
  { readonly kind: 'exit'; readonly code: number } | { readonly kind: 'signal'; readonly signal: string };

/** The one completion of a spawn; see the contract in the file comment. */
export type ProcessResult =
  | { readonly kind: 'exited'; readonly exitCode: number; readonly output: ProcessOutput; readonly durationMs: number }
  | { readonly kind: 'signalled'; readonly signal: string; readonly output: ProcessOutput; readonly durationMs: number }
  | {
      readonly kind: 'failed';
      readonly error: ProcessError;
      /** How the program ended (after SIGTERM or SIGKILL when stopped); null when it never started. */
      readonly ending: ProcessEnding | null;
      readonly output: ProcessOutput;
      readonly durationMs: number;
    };

/** A running (or finished) program. */
export interface ProcessHandle {
  /** Stops the program: SIGTERM, then SIGKILL after the grace. Idempotent; no effect once ended. */
  kill(): void;
}

/** Runs external programs; see the file comment. */
export interface ProcessRunner {
  spawn(spec: ProcessSpec, done: (result: ProcessResult) => void): ProcessHandle;
  /** Programs started and not yet ended. */
  readonly running: number;
}

/** Output of a program that never ran. */
export const NO_OUTPUT: ProcessOutput = {
  stdout: new Uint8Array(0),
  stdoutTruncated: false,
  stderr: new Uint8Array(0),
  stderrTruncated: false,
};

/** Asserts `spec` is within the contract's bounds (a bad spec is a programmer or config-validation error). */
export function assertValidSpec(spec: ProcessSpec): void {
  assert(
    spec.program.startsWith('/') && !spec.program.includes('\0'),
    `program must be an absolute path: ${spec.program}`,
  );
  assert(spec.args.length <= PROCESS_ARGS_MAX, `at most ${PROCESS_ARGS_MAX} arguments`);
  assert(
    spec.args.every((a) => !a.includes('\0')),
    'arguments hold no NUL byte',
  );
  const env = spec.env ?? new Map<string, string>();
  assert(env.size <= PROCESS_ENV_ADDITIONS_MAX, `at most ${PROCESS_ENV_ADDITIONS_MAX} environment additions`);
  for (const [name, value] of env) {
    assert(/^[A-Za-z_][A-Za-z0-9_]*$/.test(name), `invalid environment variable name ${JSON.stringify(name)}`);
    assert(!value.includes('\0'), `environment variable ${name} holds a NUL byte`);
  }
  assert((spec.stdin?.length ?? 0) <= PROCESS_STDIN_BYTES_MAX, `stdin is at most ${PROCESS_STDIN_BYTES_MAX} bytes`);
  assert(
    Number.isFinite(spec.timeoutMs) && spec.timeoutMs > 0 && spec.timeoutMs <= PROCESS_TIMEOUT_MS_MAX,
    `timeout must be in (0, ${PROCESS_TIMEOUT_MS_MAX}] ms`,
  );
  const grace = spec.killGraceMs;
  assert(
    grace === undefined || (Number.isFinite(grace) && grace >= 0 && grace <= PROCESS_TIMEOUT_MS_MAX),
    `kill grace must be in [0, ${PROCESS_TIMEOUT_MS_MAX}] ms`,
  );
}

/** Collects one output stream up to `PROCESS_OUTPUT_BYTES_MAX` bytes, dropping and flagging the rest. */
export class OutputCapture {
  private readonly chunks: Uint8Array[] = [];
  private kept = 0;
  truncated = false;

  constructor(private readonly limit: number = PROCESS_OUTPUT_BYTES_MAX) {
    assert(Number.isInteger(limit) && limit >= 0, 'an output limit is a non-negative integer');
  }

  push(chunk: Uint8Array): void {
    const room = this.limit - this.kept;
    if (chunk.length > room) this.truncated = true;
    const taken = chunk.length > room ? chunk.subarray(0, room) : chunk;
    if (taken.length === 0) return;
    this.chunks.push(taken.slice());
    this.kept += taken.length;
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.kept);
    let at = 0;
    for (const c of this.chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

/** The `ProcessOutput` of two captures. */
export function outputOf(stdout: OutputCapture, stderr: OutputCapture): ProcessOutput {
  return {
    stdout: stdout.bytes(),
    stdoutTruncated: stdout.truncated,
    stderr: stderr.bytes(),
    stderrTruncated: stderr.truncated,
  };
}

/**
 * A runner for environments that run no programs (unit tests, the cluster harness): every spawn
 * fails with `PROCESS_UNAVAILABLE`, asynchronously through `schedule`.
 */
export class RefusingProcessRunner implements ProcessRunner {
  readonly running = 0;

  constructor(private readonly schedule: (fn: () => void) => void) {}

  spawn(spec: ProcessSpec, done: (result: ProcessResult) => void): ProcessHandle {
    assertValidSpec(spec);
    const error = new ProcessError('PROCESS_UNAVAILABLE', `${spec.program}: this environment runs no programs`);
    this.schedule(() => {
      done({ kind: 'failed', error, ending: null, output: NO_OUTPUT, durationMs: 0 });
    });
    return { kill: () => undefined };
  }
}
