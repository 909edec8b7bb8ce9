/**
 * The real `NodeEnv` (src/runtime/env.ts) the daemon runs its cores in: a monotonic clock
 * (`performance.now()`, never wall time, so NTP steps cannot move it), one-shot timers on
 * `setTimeout`, a PRNG seeded from the operating system's CSPRNG, and `trace` mapped to pino
 * debug records. The transport, disk and block store are passed in (TcpTransport, FileDisk,
 * FileBlockStore); programs run as real child processes (`ChildProcessRunner`) unless a runner
 * is passed.
 *
 * Fail-stop (`NodeEnv.failStop`): the environment closes a gate at once (no timer callback,
 * message or disk completion reaches the node any more; sends and disk mutations are dropped),
 * then hands the reason to `onFailStop`. The daemon's default logs one fatal line
 * (`storage failure: fsync of X failed: EIO: ...; stopping (fail-stop)`) and exits the process
 * with `FAIL_STOP_EXIT_CODE`; embedded mode passes its own handler that stops the node.
 *
 * Also the event-loop health monitor the failure detector uses to "know its own health"
 * (DESIGN.md section 11.1): a node whose own loop stalled must extend its suspicion of others
 * rather than accuse them, because the silence it saw may be its own.
 */
import { randomInt } from 'node:crypto';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { assert } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import { Prng } from '../lib/prng.js';
import type { Disk } from '../storage/disk.js';
import type { BlockStore } from '../storage/block-store.js';
import type { ProcessRunner } from '../runtime/process-runner.js';
import { ChildProcessRunner } from './child-process-runner.js';
import type { Transport } from '../transport/transport.js';
import type { Clock, NodeEnv, TimerHandle, TraceFields } from '../runtime/env.js';

/** Largest timer delay Node accepts (larger values fire after 1 ms: a silent bug, so refuse). */
export const TIMER_DELAY_MS_MAX = 2_147_483_647;

/**
 * Exit code of a daemon that fail-stopped on a storage fault (docs/daemon.md, docs/cli.md):
 * distinct from 1 (could not start) so a supervisor can tell a dying disk from a bad start.
 */
export const FAIL_STOP_EXIT_CODE = 3;

/** Called once when the node fail-stops, after the gate closed (`reason` is one operator line). */
export type FailStopHandler = (reason: string, error: Error) => void;

/** Inputs of `createRealEnv`. */
export interface RealEnvOptions<M> {
  readonly nodeId: NodeId;
  readonly transport: Transport<M>;
  readonly disk: Disk;
  readonly blocks: BlockStore;
  /** Default: a `ChildProcessRunner`. */
  readonly processes?: ProcessRunner;
  readonly logger: Logger;
  /** A fixed PRNG seed (tests, reproducing a run); default: from the CSPRNG, logged at debug. */
  readonly seed?: number;
  /** What fail-stop does after the gate closed; default `exitOnFailStop(logger)`. */
  readonly onFailStop?: FailStopHandler;
}

/**
 * The daemon's fail-stop: one fatal log line naming the file and the error, flushed, then the
 * process exits with `FAIL_STOP_EXIT_CODE` (`exit` is injectable for tests).
 */
export function exitOnFailStop(
  logger: Logger,
  exit: (code: number) => void = (code) => process.exit(code),
): FailStopHandler {
  return (reason, error) => {
    logger.fatal(
      { error: error.message, code: (error as { code?: unknown }).code ?? null },
      `${reason}; stopping (fail-stop)`,
    );
    logger.flush();
    exit(FAIL_STOP_EXIT_CODE);
  };
}

/** The transport as the node sees it: nothing is sent or delivered once `dead()`. */
function gatedTransport<M>(inner: Transport<M>, dead: () => boolean): Transport<M> {
  return {
    self: inner.self,
    setHandlers: (h) => {
      inner.setHandlers({
        onMessage: (from, m) => {
          if (!dead()) h.onMessage(from, m);
        },
        onPeerUp: (peer) => {
          if (!dead()) h.onPeerUp(peer);
        },
        onPeerDown: (peer) => {
          if (!dead()) h.onPeerDown(peer);
        },
        onPeerGone: (peer, incarnation) => {
          if (!dead()) h.onPeerGone?.(peer, incarnation);
        },
      });
    },
    send: (to, m, lane) => !dead() && inner.send(to, m, lane),
    close: () => inner.close(),
    ...(inner.identify === undefined
      ? {}
      : {
          identify: (incarnation: number) => {
            inner.identify?.(incarnation);
          },
        }),
  };
}

/** The disk as the node sees it: once `dead()` nothing more is written and no completion runs. */
/** `inner` with nothing issued, and no completion delivered, once the incarnation fail-stopped. */
function gatedBlocks(inner: BlockStore, dead: () => boolean): BlockStore {
  const gate =
    <A extends unknown[]>(done: (...args: A) => void) =>
    (...args: A): void => {
      if (!dead()) done(...args);
    };
  return {
    list: () => inner.list(),
    size: (name) => inner.size(name),
    create: (name, sizeBytes, done) => {
      if (!dead()) inner.create(name, sizeBytes, gate(done));
    },
    read: (name, offset, length, done) => {
      if (!dead()) inner.read(name, offset, length, gate(done));
    },
    write: (name, offset, data, done) => {
      if (!dead()) inner.write(name, offset, data, gate(done));
    },
    trim: (name, offset, length, done) => {
      if (!dead()) inner.trim(name, offset, length, gate(done));
    },
    flush: (name, done) => {
      if (!dead()) inner.flush(name, gate(done));
    },
    remove: (name, done) => {
      if (!dead()) inner.remove(name, gate(done));
    },
  };
}

function gatedDisk(inner: Disk, dead: () => boolean): Disk {
  const gate =
    (done: (error: Error | null) => void) =>
    (error: Error | null): void => {
      if (!dead()) done(error);
    };
  return {
    list: () => inner.list(),
    read: (name) => inner.read(name),
    size: (name) => inner.size(name),
    readRange: (name, offset, length) => inner.readRange(name, offset, length),
    write: (name, offset, data, done) => {
      if (!dead()) inner.write(name, offset, data, gate(done));
    },
    sync: (name, done) => {
      if (!dead()) inner.sync(name, gate(done));
    },
    truncate: (name, size, done) => {
      if (!dead()) inner.truncate(name, size, gate(done));
    },
    rename: (from, to, done) => {
      if (!dead()) inner.rename(from, to, gate(done));
    },
    remove: (name, done) => {
      if (!dead()) inner.remove(name, gate(done));
    },
    syncDir: (done) => {
      if (!dead()) inner.syncDir(gate(done));
    },
  };
}

/** A monotonic millisecond clock from `performance.now()`. */
export const monotonicClock: Clock = { nowMs: () => performance.now(), wallMs: () => Date.now() };

/**
 * Builds the environment. Timer callbacks run on Node's event loop one at a time; an exception
 * in one propagates (an assertion failure must crash the process, not be swallowed).
 */
export function createRealEnv<M>(options: RealEnvOptions<M>): NodeEnv<M> & { readonly seed: number } {
  const seed = options.seed ?? randomInt(0, 2 ** 48 - 1);
  const logger = options.logger;
  logger.debug({ seed }, 'node prng seeded');
  const onFailStop = options.onFailStop ?? exitOnFailStop(logger);
  const state = { dead: false };
  const dead = (): boolean => state.dead;
  return {
    nodeId: options.nodeId,
    clock: monotonicClock,
    timers: {
      after(delayMs: number, fn: () => void): TimerHandle {
        assert(
          Number.isFinite(delayMs) && delayMs >= 0 && delayMs <= TIMER_DELAY_MS_MAX,
          `timer delay must be in [0, ${TIMER_DELAY_MS_MAX}] ms, got ${delayMs}`,
        );
        const timer = setTimeout(() => {
          if (!state.dead) fn();
        }, delayMs);
        return {
          cancel(): void {
            clearTimeout(timer);
          },
        };
      },
    },
    transport: gatedTransport(options.transport, dead),
    disk: gatedDisk(options.disk, dead),
    blocks: gatedBlocks(options.blocks, dead),
    processes: options.processes ?? new ChildProcessRunner(),
    prng: new Prng(seed),
    seed,
    trace(event: string, fields?: TraceFields): void {
      // Cheap when debug is off: no object is built.
      if (!logger.isLevelEnabled('debug')) return;
      logger.debug({ event, ...fields }, event);
    },
    failStop(reason: string, error: Error): void {
      if (state.dead) return;
      state.dead = true;
      onFailStop(reason, error);
    },
  };
}

/** What the loop monitor reports. Delays in milliseconds. */
export interface LoopHealth {
  /** Worst event-loop delay seen in the current and the previous window (a stall shows here). */
  readonly maxDelayMs: number;
  /** 99th percentile delay over the same span. */
  readonly p99DelayMs: number;
  /** Mean delay over the current window (0 when it has no sample yet). */
  readonly meanDelayMs: number;
}

/** Options of `monitorEventLoop`. */
export interface LoopMonitorOptions {
  /** Sampling resolution (default 10 ms). */
  readonly resolutionMs?: number;
  /** Statistics are kept for the current and the previous window of this length (default 2 s). */
  readonly windowMs?: number;
}

/** A running monitor. `health()` is cheap; call `close()` on shutdown. */
export interface LoopMonitor {
  health(): LoopHealth;
  close(): void;
}

/**
 * Watches this process's event-loop delay with `perf_hooks.monitorEventLoopDelay`. Two windows
 * are kept so a stall is still visible for at least one whole window after it ended, which is
 * when the failure detector processes the backlog it caused.
 */
export function monitorEventLoop(options: LoopMonitorOptions = {}): LoopMonitor {
  const resolution = options.resolutionMs ?? 10;
  const windowMs = options.windowMs ?? 2000;
  assert(Number.isInteger(resolution) && resolution >= 1, 'loop monitor resolution must be a positive integer');
  assert(windowMs >= 10 * resolution, 'loop monitor window must cover at least ten samples');
  const histogram = monitorEventLoopDelay({ resolution });
  histogram.enable();
  let previous = { max: 0, p99: 0 };
  const ms = (ns: number): number => (Number.isFinite(ns) ? ns / 1e6 : 0);
  const rotate = setInterval(() => {
    previous = { max: ms(histogram.max), p99: ms(histogram.percentile(99)) };
    histogram.reset();
  }, windowMs);
  rotate.unref();
  return {
    health(): LoopHealth {
      const count = histogram.count;
      const max = count > 0 ? ms(histogram.max) : 0;
      const p99 = count > 0 ? ms(histogram.percentile(99)) : 0;
      return {
        maxDelayMs: Math.max(max, previous.max),
        p99DelayMs: Math.max(p99, previous.p99),
        meanDelayMs: count > 0 ? ms(histogram.mean) : 0,
      };
    },
    close(): void {
      clearInterval(rotate);
      histogram.disable();
    },
  };
}
