/**
 * The cohort daemon (`cohort start --config FILE`): one node of a cluster as a process.
 *
 * Start (`daemon-start.ts`, all or nothing): load and validate the config (exit 2 with every
 * problem listed), install the signal handlers, then read the key, take the data directory's
 * lock, bind every listener (peer port, API socket, metrics port), open every file and recover
 * the node's state, and only then start the node (bumping its incarnation durably), accept and
 * dial peers and serve the API. A failure before that prints one line naming what failed,
 * releases everything taken in reverse order and exits 1 (`DAEMON_EXIT.failure`); a signal
 * before that releases everything and exits 0. Either way the data directory is as before.
 *
 * Fail-stop: a storage fault while running (a WAL, stable-state or snapshot write, fsync or read
 * failing) ends the process at once: one fatal line naming the file and the error, exit 3
 * (`DAEMON_EXIT.storage`); no leave, no cleanup (the lock file stays; the next start takes it
 * over when its pid is gone). The others fail the node out of the view. Running out of file
 * descriptors (EMFILE, ENFILE) is not a storage fault: the disk waits for a descriptor (one
 * warning per episode) and the node recovers by itself (`platform/descriptor-pressure.ts`).
 *
 * A retired incarnation (`INCARNATION_RETIRED`: the stable state was lost and the cluster had
 * seen a higher incarnation of this node) is not an exit either: the run stops without a leave,
 * releases everything, and the daemon starts again in the same process as the next incarnation.
 *
 * Stop (SIGTERM or SIGINT; a second signal exits at once): a clean `leave` when this node is in
 * the view (bounded by `LEAVE_TIMEOUT_MS`), then stop the node, close the API (removing the
 * socket), the transport, the disk and the metrics endpoint, release the lock, flush the logs,
 * exit 0.
 *
 * Duplicate node id: when a peer proves (with the cluster key) that another live process already
 * runs this node id (`TcpTransport`'s duplicate rule: a different process of the same id with an
 * incarnation not higher than the running one's), this process is the newcomer: it logs one
 * fatal line naming the node id, where the running one connects from and its incarnation, stops
 * without a `leave` (a leave would take the running node's place in the view) and exits 1
 * (`DAEMON_EXIT.failure`). The running node is not disturbed.
 */
import { unlink } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { MemberNodeSpec } from '../membership/index.js';
import { createLogger } from '../platform/logger.js';
import type { DuplicateNotice } from '../platform/tcp-transport-core.js';
import type { CohortNodeOptions, NodeObserver, ClusterTiming } from '../services.js';
import type { TimeoutModel } from './timeouts.js';
import { configFingerprint, loadConfig, type NodeConfig } from './config.js';
import { DAEMON_EXIT, StartError, StartInterrupted, startDaemon, type Running } from './daemon-start.js';

export { BLOCKS_DIR, DAEMON_EXIT, LOCK_FILE } from './daemon-start.js';

/** Longest wait for the clean leave at shutdown; then the node stops anyway (it will be failed). */
export const LEAVE_TIMEOUT_MS = 2000;
/**
 * Runs whose incarnation was retired (learned from the cluster) one process may start again
 * after; one is the expected case (the stable state was lost), more means something is wrong.
 */
const RETIREMENTS_MAX = 2;
/** Deadline of a client's proposal or read inside the daemon. */
export const REQUEST_TIMEOUT_MS = 5000;

/** Where the daemon writes the lines a human reads before the logger exists. */
export interface DaemonIo {
  err(text: string): void;
}

/** The membership view of the configured nodes. */
export function memberSpecs(config: NodeConfig): MemberNodeSpec[] {
  return config.nodes.map((n) => ({
    nodeId: n.id,
    name: n.name,
    address: n.address,
    votes: n.votes,
    role: n.votes === 0 ? 'learner' : n.role,
  }));
}

/** The `ClusterTiming` of a timeout model (`src/node/timeouts.ts`): what the daemon and embedded mode run with. */
export function clusterTiming(t: TimeoutModel): ClusterTiming {
  return {
    tickMs: t.tickMs,
    heartbeatTicks: t.raft.heartbeatTicks,
    electionTicks: t.raft.electionTicks,
    leaseMarginTicks: t.raft.leaseMarginTicks,
    heartbeatMs: t.inputs.heartbeatMs,
    followerLeaseMs: t.nodeLeaseMs - t.driftMarginMs,
    detector: { heartbeatMs: t.inputs.heartbeatMs, ...t.detector },
    requestTimeoutMs: REQUEST_TIMEOUT_MS,
  };
}

/** The `CohortNode` options a validated config gives (timing from the one timeout model). */
export function clusterNodeOptions(config: NodeConfig, observer?: NodeObserver): CohortNodeOptions {
  return {
    timing: clusterTiming(config.timeouts),
    nodes: memberSpecs(config),
    quorum: config.votequorum.options,
    settingsFingerprint: configFingerprint(config),
    fencing: {
      topology: config.fencing,
      watchdogWaitMs: config.timeouts.nodeLeaseMs + config.timeouts.driftMarginMs + config.timeouts.tickMs,
    },
    ...(observer === undefined ? {} : { observer }),
  };
}

/** The one line a duplicate (newcomer) process stops with; see the module comment. */
export function duplicateLine(config: NodeConfig, incarnation: number, n: DuplicateNotice): string {
  const self = config.nodes.find((x) => x.id === config.node.id);
  const configured = self === undefined ? '' : `; its configured address is ${self.host}:${self.port}`;
  return (
    `node ${config.node.id} is already running elsewhere (incarnation ${n.runningIncarnation}, connected to node ${n.by} from ${n.runningHost}${configured}); ` +
    `this process (incarnation ${incarnation}, listening on ${config.listen.host}:${config.listen.port}) stops: two daemons must never share a node id (a copied configuration?)`
  );
}

/**
 * Clean shutdown; never throws (each step's failure is logged and the next step still runs).
 * `leave` is false for a duplicate process, which must not touch the view of the running one.
 */
async function stop(r: Running, signal: string, leave = true): Promise<void> {
  const log = r.logger;
  log.info({ signal }, `${signal}: shutting down`);
  if (leave && r.node.services.membership.joined) {
    const left = await new Promise<string | null>((resolve) => {
      const timer = setTimeout(() => {
        resolve(`no answer within ${LEAVE_TIMEOUT_MS} ms`);
      }, LEAVE_TIMEOUT_MS);
      r.node.services.membership.leave(LEAVE_TIMEOUT_MS, (e) => {
        clearTimeout(timer);
        resolve(e === null ? null : `${e.code}: ${e.message}`);
      });
    });
    if (left === null) log.info('left the cluster cleanly');
    else log.warn({ reason: left }, `could not leave cleanly (${left}); the others will fail this node instead`);
  }
  r.node.stop();
  const steps: [string, () => Promise<void>][] = [
    ['watchdog', () => r.watchdog?.close() ?? Promise.resolve()],
    ['api', () => r.api.close()],
    ['transport', () => r.transport.close()],
    [
      'disk',
      () =>
        new Promise<void>((resolve, reject) => {
          r.disk.close((e) => {
            if (e === null) resolve();
            else reject(e);
          });
        }),
    ],
    [
      'block store',
      () =>
        new Promise<void>((resolve) => {
          r.blocks.close(resolve);
        }),
    ],
    ['metrics', () => r.metrics?.close() ?? Promise.resolve()],
    ['lock', () => unlink(r.lockPath)],
  ];
  for (const [what, step] of steps) {
    try {
      await step();
    } catch (e) {
      log.warn(
        { step: what, error: e instanceof Error ? e.message : String(e) },
        `shutdown: closing the ${what} failed`,
      );
    }
  }
  log.info('stopped');
}

/** The daemon's SIGTERM/SIGINT handling, from before the start-up to the end of the stop. */
interface Signals {
  /** The first signal received, or null. */
  received(): string | null;
  /** Resolves with the first signal (at once if it came during the start-up). */
  readonly first: Promise<string>;
  /** Removes the handlers. */
  dispose(): void;
}

/**
 * Installs the handlers: the first SIGTERM or SIGINT is recorded (the start-up stops at its next
 * step, a running daemon stops cleanly); a second one exits at once with `DAEMON_EXIT.failure`.
 */
function watchSignals(logger: Logger): Signals {
  let received: string | null = null;
  let resolveFirst: (signal: string) => void = () => undefined;
  const first = new Promise<string>((resolve) => {
    resolveFirst = resolve;
  });
  const onSignal = (name: NodeJS.Signals): void => {
    if (received !== null) {
      // A second signal while starting or shutting down: stop waiting for peers.
      logger.warn('second signal: exiting without a clean shutdown');
      logger.flush();
      process.exit(DAEMON_EXIT.failure);
    }
    received = name;
    resolveFirst(name);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  return {
    received: () => received,
    first,
    dispose: () => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
    },
  };
}

/**
 * Runs the daemon for the config at `configPath` until SIGTERM or SIGINT; resolves to the exit
 * code (`DAEMON_EXIT`: 0 after a clean stop or a start-up ended by a signal, 1 when it could not
 * start, 2 for a bad config, 3 after a storage fail-stop). A failed start writes one line to
 * `io.err` and leaves nothing behind (see `daemon-start.ts`). A run whose node retired its
 * incarnation (it learned from the cluster that the incarnation was already used) is stopped
 * without a leave and followed by a new run in this process, at most `RETIREMENTS_MAX` times.
 */
export async function runDaemon(configPath: string, io: DaemonIo): Promise<number> {
  const loaded = await loadConfig(configPath);
  if (!loaded.ok) {
    io.err(`cohort start: ${loaded.error.message}\n`);
    return DAEMON_EXIT.usage;
  }
  const config = loaded.value;
  const logger = createLogger({ level: config.log.level, format: config.log.format, base: { node: config.node.id } });
  const signals = watchSignals(logger);
  try {
    for (let run = 1; ; run++) {
      const outcome = await runOnce(config, logger, signals, io);
      if (outcome.kind === 'exit') return outcome.code;
      // The node learned its incarnation from the cluster: start again in this process.
      if (run > RETIREMENTS_MAX) {
        logger.fatal(`the incarnation was retired ${run} times in one process; stopping (fail-stop)`);
        logger.flush();
        return DAEMON_EXIT.storage;
      }
      logger.warn(`${outcome.reason}; starting again as the next incarnation`);
    }
  } finally {
    signals.dispose();
  }
}

/** How one run of the node ended: an exit code, or a retired incarnation (start again). */
type RunOutcome =
  { readonly kind: 'exit'; readonly code: number } | { readonly kind: 'retired'; readonly reason: string };

/** One start, run and stop of the node (see `runDaemon`). */
async function runOnce(config: NodeConfig, logger: Logger, signals: Signals, io: DaemonIo): Promise<RunOutcome> {
  let duplicate: ((line: string) => void) | null = null;
  const duplicated = new Promise<string>((resolve) => {
    duplicate = resolve;
  });
  let retire: ((reason: string) => void) | null = null;
  const retired = new Promise<string>((resolve) => {
    retire = resolve;
  });
  let running: Running | null = null;
  const onDuplicate = (notice: DuplicateNotice): void => {
    const line = duplicateLine(config, running?.node.incarnation ?? notice.ourIncarnation, notice);
    duplicate?.(line);
    duplicate = null;
  };
  try {
    running = await startDaemon(config, logger, {
      nodeOptions: (observer) => clusterNodeOptions(config, observer),
      interrupted: () => signals.received(),
      onDuplicate,
      onRetired: (reason) => {
        retire?.(reason);
        retire = null;
      },
    });
  } catch (e) {
    if (e instanceof StartInterrupted) {
      logger.info({ signal: e.signal }, `${e.signal} during start-up: released everything; not started`);
      logger.flush();
      return { kind: 'exit', code: DAEMON_EXIT.ok };
    }
    const message = e instanceof Error ? e.message : String(e);
    logger.fatal({ error: message }, `cannot start: ${message}`);
    logger.flush();
    io.err(`cohort start: cannot start: ${message}\n`);
    return { kind: 'exit', code: e instanceof StartError ? e.exitCode : DAEMON_EXIT.failure };
  }
  logger.info(
    {
      incarnation: running.node.incarnation,
      listen: `${config.listen.host}:${config.listen.port}`,
      socket: config.api.socket,
      metrics: running.metrics?.url ?? null,
      fingerprint: configFingerprint(config),
    },
    `node ${config.node.id} (${config.node.name}) of cluster ${config.cluster.name} running as incarnation ${running.node.incarnation}; API at ${config.api.socket}`,
  );
  // A signal during the start-up's last step, or a duplicate found at once, ends it here too.
  const ended = await Promise.race([
    signals.first.then((signal) => ({ signal, duplicateOf: null, retired: null })),
    duplicated.then((line) => ({ signal: 'duplicate node id', duplicateOf: line, retired: null })),
    retired.then((reason) => ({ signal: 'incarnation retired', duplicateOf: null, retired: reason })),
  ]);
  if (ended.duplicateOf !== null) {
    logger.fatal({ nodeId: config.node.id }, `cannot run: ${ended.duplicateOf}`);
    io.err(`cohort start: ${ended.duplicateOf}\n`);
  }
  // Neither a duplicate nor a retired incarnation leaves: neither is (or may act as) a member.
  await stop(running, ended.signal, ended.duplicateOf === null && ended.retired === null);
  logger.flush();
  if (ended.retired !== null) return { kind: 'retired', reason: ended.retired };
  return { kind: 'exit', code: ended.duplicateOf === null ? DAEMON_EXIT.ok : DAEMON_EXIT.failure };
}
