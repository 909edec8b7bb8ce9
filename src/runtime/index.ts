/** The environment interface node software runs against (real or simulated). */
export type { Clock, NodeEnv, TimerHandle, Timers, TraceFields } from './env.js';
/** How node software runs external programs (fence agents). */
export {
  NO_OUTPUT,
  OutputCapture,
  ProcessError,
  RefusingProcessRunner,
  assertValidSpec,
  outputOf,
  type ProcessEnding,
  type ProcessErrorCode,
  type ProcessHandle,
  type ProcessOutput,
  type ProcessResult,
  type ProcessRunner,
  type ProcessSpec,
} from './process-runner.js';
