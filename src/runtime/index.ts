/** The environment interface node software runs against (real or simulated). */
export type { Clock, NodeEnv, TimerHandle, Timers, TraceFields } from './env.js';
