/**
 * The real `ProcessRunner` (src/runtime/process-runner.ts): node:child_process `spawn`, all
 * asynchronous, so the event loop never blocks on a program.
 *
 * - Each program runs in its own process group (`detached`), and stopping it signals the whole
 *   group: a fence agent's own children (ssh, ipmitool) stop with it instead of holding its
 *   pipes open. The group is also why a daemon that dies leaves a running agent to finish.
 * - The result is delivered on `close` (the program ended and its pipes are drained), or on the
 *   spawn `error` when it never started. A program that exits while a background child keeps its
 *   stdout open completes only when that child closes it, or at the timeout, which stops the
 *   whole group.
 * - Standard input is written in one piece and closed; a program that exits without reading it
 *   (EPIPE) is not an error of the runner: its exit status speaks for it.
 * - Durations come from the monotonic clock.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { assert } from '../lib/assert.js';
import { PROCESS_KILL_GRACE_MS, PROCESSES_RUNNING_MAX } from '../constants.js';
import {
  assertValidSpec,
  NO_OUTPUT,
  OutputCapture,
  outputOf,
  ProcessError,
  type ProcessEnding,
  type ProcessErrorCode,
  type ProcessHandle,
  type ProcessResult,
  type ProcessRunner,
  type ProcessSpec,
} from '../runtime/process-runner.js';

/** Options of `ChildProcessRunner`. */
export interface ChildProcessRunnerOptions {
  /** Programs running at once before spawns fail with `PROCESS_LIMIT`. Default `PROCESSES_RUNNING_MAX`. */
  readonly runningMax?: number;
}

/** Why the runner is stopping a program, if it is. */
type StopReason = 'PROCESS_TIMED_OUT' | 'PROCESS_KILLED';

/** See the file comment. */
export class ChildProcessRunner implements ProcessRunner {
  private runningCount = 0;
  private readonly runningMax: number;

  constructor(options: ChildProcessRunnerOptions = {}) {
    this.runningMax = options.runningMax ?? PROCESSES_RUNNING_MAX;
    assert(
      Number.isInteger(this.runningMax) && this.runningMax >= 1 && this.runningMax <= PROCESSES_RUNNING_MAX,
      `runningMax must be in [1, ${PROCESSES_RUNNING_MAX}]`,
    );
  }

  get running(): number {
    return this.runningCount;
  }

  spawn(spec: ProcessSpec, done: (result: ProcessResult) => void): ProcessHandle {
    assertValidSpec(spec);
    if (this.runningCount >= this.runningMax) {
      const error = new ProcessError('PROCESS_LIMIT', `${spec.program}: ${this.runningMax} programs already run`);
      setImmediate(() => {
        done({ kind: 'failed', error, ending: null, output: NO_OUTPUT, durationMs: 0 });
      });
      return { kill: () => undefined };
    }
    this.runningCount++;
    return new RunningProcess(spec, (result) => {
      this.runningCount--;
      done(result);
    });
  }
}

/** One spawned program, from spawn to its single completion. */
class RunningProcess implements ProcessHandle {
  private readonly startedMs = performance.now();
  private readonly stdout = new OutputCapture();
  private readonly stderr = new OutputCapture();
  private readonly child: ChildProcess | null;
  private stopping: StopReason | null = null;
  private settled = false;
  private timeoutTimer: NodeJS.Timeout | undefined;
  private killTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly spec: ProcessSpec,
    private readonly done: (result: ProcessResult) => void,
  ) {
    let child: ChildProcess;
    try {
      child = spawn(spec.program, [...spec.args], {
        env: { ...process.env, ...Object.fromEntries(spec.env ?? []) },
        stdio: ['pipe', 'pipe', 'pipe'],
        detached: true,
      });
    } catch (error) {
      // Invalid arguments throw synchronously; the contract still completes asynchronously.
      this.child = null;
      setImmediate(() => {
        this.startFailed(error);
      });
      return;
    }
    this.child = child;
    child.stdout?.on('data', (chunk: Buffer) => {
      this.stdout.push(chunk);
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      this.stderr.push(chunk);
    });
    child.stdin?.on('error', () => {
      // EPIPE: the program ended without reading all of its stdin; its exit status says the rest.
    });
    child.stdin?.end(spec.stdin ?? new Uint8Array(0));
    child.on('error', (error) => {
      if (child.pid === undefined) this.startFailed(error);
      // Otherwise a signal could not be sent: the program already ended, and `close` follows.
    });
    child.on('close', (code, signal) => {
      const ending: ProcessEnding =
        code !== null ? { kind: 'exit', code } : { kind: 'signal', signal: signal ?? 'unknown' };
      this.finish(ending);
    });
    this.timeoutTimer = setTimeout(() => {
      this.stop('PROCESS_TIMED_OUT');
    }, spec.timeoutMs);
  }

  kill(): void {
    this.stop('PROCESS_KILLED');
  }

  private stop(reason: StopReason): void {
    if (this.settled || this.stopping !== null || this.child === null) return;
    this.stopping = reason;
    this.signalGroup('SIGTERM');
    this.killTimer = setTimeout(() => {
      this.signalGroup('SIGKILL');
    }, this.spec.killGraceMs ?? PROCESS_KILL_GRACE_MS);
  }

  private signalGroup(signal: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (pid === undefined || this.settled) return;
    try {
      process.kill(-pid, signal);
    } catch {
      // ESRCH: the group is already gone; `close` follows.
    }
  }

  private startFailed(cause: unknown): void {
    const errno = (cause as NodeJS.ErrnoException | null)?.code;
    const code: ProcessErrorCode =
      errno === 'ENOENT'
        ? 'PROCESS_NOT_FOUND'
        : errno === 'EACCES' || errno === 'EPERM'
          ? 'PROCESS_NOT_PERMITTED'
          : 'PROCESS_START_FAILED';
    const detail = cause instanceof Error ? cause.message : String(cause);
    this.settle({
      kind: 'failed',
      error: new ProcessError(code, `${this.spec.program} could not be started: ${detail}`, { cause }),
      ending: null,
      output: NO_OUTPUT,
      durationMs: performance.now() - this.startedMs,
    });
  }

  private finish(ending: ProcessEnding): void {
    const output = outputOf(this.stdout, this.stderr);
    const durationMs = performance.now() - this.startedMs;
    const reason = this.stopping;
    if (reason !== null) {
      const what = reason === 'PROCESS_TIMED_OUT' ? `ran past its ${this.spec.timeoutMs} ms timeout` : 'was killed';
      const error = new ProcessError(reason, `${this.spec.program} ${what}`);
      this.settle({ kind: 'failed', error, ending, output, durationMs });
      return;
    }
    switch (ending.kind) {
      case 'exit':
        this.settle({ kind: 'exited', exitCode: ending.code, output, durationMs });
        return;
      case 'signal':
        this.settle({ kind: 'signalled', signal: ending.signal, output, durationMs });
        return;
    }
  }

  private settle(result: ProcessResult): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timeoutTimer);
    clearTimeout(this.killTimer);
    this.done(result);
  }
}
