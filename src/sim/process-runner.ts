/**
 * The simulated `ProcessRunner`: scripted agents on virtual time. A test or workload registers an
 * agent per program path; each spawn calls the agent with the request and this runner's PRNG, and
 * the agent's answer decides what the "program" does: exit with a code and output after a delay,
 * die of a signal, hang until stopped (optionally ignoring SIGTERM), or fail to start. A path with
 * no agent fails to start with `PROCESS_NOT_FOUND`, as a missing file does.
 *
 * Timing follows the real runner: the timeout and `kill()` send SIGTERM; a program that does not
 * ignore it ends `SIGTERM_EXIT_MS` later by that signal, one that does ends by SIGKILL after the
 * grace. Every completion goes through the injected scheduler (the simulator's gate), so results
 * for a crashed incarnation never arrive; `crash()` forgets every running program.
 */
import { assert } from '../lib/assert.js';
import type { Prng } from '../lib/prng.js';
import { PROCESS_KILL_GRACE_MS, PROCESSES_RUNNING_MAX } from '../constants.js';
import {
  assertValidSpec,
  NO_OUTPUT,
  OutputCapture,
  outputOf,
  ProcessError,
  type ProcessEnding,
  type ProcessHandle,
  type ProcessResult,
  type ProcessRunner,
  type ProcessSpec,
} from '../runtime/process-runner.js';

/** What an agent sees of its invocation. */
export interface SimAgentRequest {
  readonly program: string;
  readonly args: readonly string[];
  readonly env: ReadonlyMap<string, string>;
  readonly stdin: Uint8Array;
}

/** Output an agent writes (text is UTF-8 encoded). */
export type SimAgentOutput = Uint8Array | string;

/** What one run of an agent does. */
export type SimAgentBehaviour =
  | {
      readonly kind: 'exit';
      readonly code: number;
      readonly delayMs: number;
      readonly stdout?: SimAgentOutput;
      readonly stderr?: SimAgentOutput;
      readonly ignoresTerm?: boolean;
    }
  | {
      readonly kind: 'signal';
      readonly signal: string;
      readonly delayMs: number;
      readonly stdout?: SimAgentOutput;
      readonly stderr?: SimAgentOutput;
      readonly ignoresTerm?: boolean;
    }
  | {
      /** Runs until stopped; its output is written at once. */
      readonly kind: 'hang';
      readonly stdout?: SimAgentOutput;
      readonly stderr?: SimAgentOutput;
      readonly ignoresTerm?: boolean;
    }
  | { readonly kind: 'start-failure'; readonly errno: 'ENOENT' | 'EACCES' };

/** A scripted program: decides one run's behaviour, drawing any randomness from `prng`. */
export type SimAgent = (request: SimAgentRequest, prng: Prng) => SimAgentBehaviour;

/** Options of `SimProcessRunner`. */
export interface SimProcessRunnerOptions {
  /** Virtual-time scheduler (the simulator's gate); must never run `fn` synchronously. */
  readonly schedule: (delayMs: number, fn: () => void) => void;
  /** The machine's clock reading, ms (for durations). */
  readonly nowMs: () => number;
  /** This runner's random stream, handed to agents. */
  readonly prng: Prng;
  /** Virtual time from spawn to start (or start failure), ms. Default 1. */
  readonly startLatencyMs?: number;
  /** Programs running at once before spawns fail with `PROCESS_LIMIT`. Default `PROCESSES_RUNNING_MAX`. */
  readonly runningMax?: number;
}

/** How long a program that honours SIGTERM takes to die of it, virtual ms. */
export const SIGTERM_EXIT_MS = 1;

interface Run {
  readonly spec: ProcessSpec;
  readonly startedMs: number;
  readonly stdout: OutputCapture;
  readonly stderr: OutputCapture;
  readonly ignoresTerm: boolean;
  readonly done: (result: ProcessResult) => void;
  stopping: 'PROCESS_TIMED_OUT' | 'PROCESS_KILLED' | null;
  ended: boolean;
}

/** See the file comment. */
export class SimProcessRunner implements ProcessRunner {
  private readonly agents = new Map<string, SimAgent>();
  private runningCount = 0;
  private epoch = 0;
  private readonly startLatencyMs: number;
  private readonly runningMax: number;

  constructor(private readonly options: SimProcessRunnerOptions) {
    this.startLatencyMs = options.startLatencyMs ?? 1;
    this.runningMax = options.runningMax ?? PROCESSES_RUNNING_MAX;
    assert(Number.isFinite(this.startLatencyMs) && this.startLatencyMs >= 0, 'start latency is non-negative');
    assert(
      Number.isInteger(this.runningMax) && this.runningMax >= 1 && this.runningMax <= PROCESSES_RUNNING_MAX,
      `runningMax must be in [1, ${PROCESSES_RUNNING_MAX}]`,
    );
  }

  get running(): number {
    return this.runningCount;
  }

  /** Makes `program` (an absolute path) run `agent`; replaces an earlier registration. */
  register(program: string, agent: SimAgent): void {
    assert(program.startsWith('/'), `an agent's program is an absolute path: ${program}`);
    this.agents.set(program, agent);
  }

  /** The machine crashed: running programs are forgotten and none of their results arrive. */
  crash(): void {
    this.epoch++;
    this.runningCount = 0;
  }

  spawn(spec: ProcessSpec, done: (result: ProcessResult) => void): ProcessHandle {
    assertValidSpec(spec);
    const startedMs = this.options.nowMs();
    const failNow = (error: ProcessError): ProcessHandle => {
      this.later(this.startLatencyMs, () => {
        done({ kind: 'failed', error, ending: null, output: NO_OUTPUT, durationMs: this.options.nowMs() - startedMs });
      });
      return { kill: () => undefined };
    };
    if (this.runningCount >= this.runningMax) {
      return failNow(new ProcessError('PROCESS_LIMIT', `${spec.program}: ${this.runningMax} programs already run`));
    }
    const agent = this.agents.get(spec.program);
    if (agent === undefined) {
      return failNow(new ProcessError('PROCESS_NOT_FOUND', `${spec.program} could not be started: ENOENT (no agent)`));
    }
    const behaviour = agent(
      { program: spec.program, args: spec.args, env: spec.env ?? new Map(), stdin: spec.stdin ?? new Uint8Array(0) },
      this.options.prng,
    );
    if (behaviour.kind === 'start-failure') {
      const code = behaviour.errno === 'ENOENT' ? 'PROCESS_NOT_FOUND' : 'PROCESS_NOT_PERMITTED';
      return failNow(new ProcessError(code, `${spec.program} could not be started: ${behaviour.errno}`));
    }
    this.runningCount++;
    const run: Run = {
      spec,
      startedMs,
      stdout: new OutputCapture(),
      stderr: new OutputCapture(),
      ignoresTerm: behaviour.ignoresTerm ?? false,
      done,
      stopping: null,
      ended: false,
    };
    run.stdout.push(bytesOf(behaviour.stdout));
    run.stderr.push(bytesOf(behaviour.stderr));
    switch (behaviour.kind) {
      case 'exit':
        this.later(this.startLatencyMs + behaviour.delayMs, () => {
          this.end(run, { kind: 'exit', code: behaviour.code });
        });
        break;
      case 'signal':
        this.later(this.startLatencyMs + behaviour.delayMs, () => {
          this.end(run, { kind: 'signal', signal: behaviour.signal });
        });
        break;
      case 'hang':
        break;
    }
    this.later(spec.timeoutMs, () => {
      this.stop(run, 'PROCESS_TIMED_OUT');
    });
    return {
      kill: () => {
        this.stop(run, 'PROCESS_KILLED');
      },
    };
  }

  private stop(run: Run, reason: 'PROCESS_TIMED_OUT' | 'PROCESS_KILLED'): void {
    if (run.ended || run.stopping !== null) return;
    run.stopping = reason;
    if (!run.ignoresTerm) {
      this.later(SIGTERM_EXIT_MS, () => {
        this.end(run, { kind: 'signal', signal: 'SIGTERM' });
      });
    }
    this.later(run.spec.killGraceMs ?? PROCESS_KILL_GRACE_MS, () => {
      this.end(run, { kind: 'signal', signal: 'SIGKILL' });
    });
  }

  private end(run: Run, ending: ProcessEnding): void {
    if (run.ended) return;
    run.ended = true;
    this.runningCount--;
    const output = outputOf(run.stdout, run.stderr);
    const durationMs = this.options.nowMs() - run.startedMs;
    if (run.stopping !== null) {
      const what =
        run.stopping === 'PROCESS_TIMED_OUT' ? `ran past its ${run.spec.timeoutMs} ms timeout` : 'was killed';
      const error = new ProcessError(run.stopping, `${run.spec.program} ${what}`);
      run.done({ kind: 'failed', error, ending, output, durationMs });
      return;
    }
    switch (ending.kind) {
      case 'exit':
        run.done({ kind: 'exited', exitCode: ending.code, output, durationMs });
        return;
      case 'signal':
        run.done({ kind: 'signalled', signal: ending.signal, output, durationMs });
        return;
    }
  }

  /** Schedules `fn` unless the machine crashes first. */
  private later(delayMs: number, fn: () => void): void {
    const epoch = this.epoch;
    this.options.schedule(delayMs, () => {
      if (epoch === this.epoch) fn();
    });
  }
}

function bytesOf(output: SimAgentOutput | undefined): Uint8Array {
  if (output === undefined) return new Uint8Array(0);
  return typeof output === 'string' ? new TextEncoder().encode(output) : output;
}
