/**
 * The cohort daemon (`cohort start --config FILE`): one node of a cluster as a process.
 *
 * Start, in order (each failure is one clear line and an exit code; nothing is left behind):
 * 1. load and validate the config (exit 2 with every problem listed); size the descriptor budget
 *    from the open-file limit (`fd-budget.ts`; exit 1 naming the limit to raise when too low);
 * 2. read the cluster key (mode 0600), create the data directory (0700) and take its lock
 *    file, so two daemons never share one log;
 * 3. build the real environment (FileDisk, TcpTransport authenticated and encrypted with the
 *    cluster key, monotonic timers) and the `CohortNode` (Raft log, membership, KV), which
 *    recovers its state from the data directory and bumps its incarnation;
 * 4. listen for peers, serve the local API on the Unix socket, and metrics if configured.
 *
 * Fail-stop: a storage fault while running (a WAL, stable-state or snapshot write, fsync or read
 * failing) ends the process at once: one fatal line naming the file and the error, exit 3
 * (`DAEMON_EXIT.storage`); no leave, no cleanup (the lock file stays; the next start takes it
 * over when its pid is gone). The others fail the node out of the view. Running out of file
 * descriptors (EMFILE, ENFILE) is not a storage fault: the disk waits for a descriptor (one
 * warning per episode) and the node recovers by itself (`platform/descriptor-pressure.ts`).
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
import { randomInt } from 'node:crypto';
import { open, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { CohortError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import { Prng } from '../lib/prng.js';
import type { MemberNodeSpec } from '../membership/index.js';
import { ApiServer, ApiServerError } from '../platform/api-server.js';
import { ClusterKeyError, readClusterKeyFile, type ClusterKey } from '../platform/cluster-key.js';
import { DescriptorPressure } from '../platform/descriptor-pressure.js';
import { FileDisk } from '../platform/file-disk.js';
import { FileBlockStore } from '../platform/file-block-store.js';
import { createLogger } from '../platform/logger.js';
import { createRealEnv, FAIL_STOP_EXIT_CODE } from '../platform/real-env.js';
import { TcpTransport, type PeerAddress } from '../platform/tcp-transport.js';
import type { DuplicateNotice } from '../platform/tcp-transport-core.js';
import {
  type CohortNode,
  createClusterNode,
  type CohortNodeOptions,
  type NodeObserver,
  type ClusterTiming,
} from '../services.js';
import type { TimeoutModel } from './timeouts.js';
import { nodePeerCodec, type ChannelMessage } from '../services.js';
import { RecoveryError } from '../runtime/raft-persistence.js';
import { describeRepair } from '../storage/index.js';
import { configFingerprint, loadConfig, type NodeConfig } from './config.js';
import { registerApiHandlers } from './api-handlers.js';
import { startMetrics, type DaemonCounters, type MetricsEndpoint } from './metrics.js';
import { fdBudget, readOpenFileLimit, type FdBudget } from './fd-budget.js';
import { PENDING_HANDSHAKES_PER_SOURCE_MAX } from '../constants.js';

/**
 * Exit codes of `cohort start` (docs/cli.md): `storage` is a fail-stop on a storage fault while
 * running, or after a lost stable state's incarnation was learned from the cluster
 * (`FAIL_STOP_EXIT_CODE`, exited from the environment with one fatal log line).
 */
export const DAEMON_EXIT = { ok: 0, failure: 1, usage: 2, storage: FAIL_STOP_EXIT_CODE } as const;
/** Longest wait for the clean leave at shutdown; then the node stops anyway (it will be failed). */
export const LEAVE_TIMEOUT_MS = 2000;
/** Deadline of a client's proposal or read inside the daemon. */
export const REQUEST_TIMEOUT_MS = 5000;
/** The lock file in the data directory (holds the daemon's pid). */
export const LOCK_FILE = 'cohort.lock';
/** Subdirectory of `dataDir` holding volume fragments (the node's `BlockStore`). */
export const BLOCKS_DIR = 'blocks';

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

/** The `CohortNode` options a validated config gives (timing from the one timeout model). */
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

export function clusterNodeOptions(config: NodeConfig, observer?: NodeObserver): CohortNodeOptions {
  return {
    timing: clusterTiming(config.timeouts),
    nodes: memberSpecs(config),
    quorum: config.votequorum.options,
    settingsFingerprint: configFingerprint(config),
    ...(observer === undefined ? {} : { observer }),
  };
}

/** A startup failure: the message is the one line shown; `exitCode` is what the process returns. */
class StartError extends CohortError {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super('DAEMON_START', message);
  }
}

/**
 * Opens (creating if needed) the data directory's `FileDisk`; a failure is a `StartError` whose
 * line names the directory and the real cause (read-only file system, permission, not a
 * directory...).
 */
function openDataDir(dir: string, logger: Logger): FileDisk {
  try {
    return new FileDisk(dir, { pressure: new DescriptorPressure(logger) });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    throw new StartError(`cannot use the data directory ${dir}: ${message}`, DAEMON_EXIT.failure);
  }
}

/** Takes the data directory's lock, or explains who holds it. */
async function lockDataDir(dir: string): Promise<string> {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(path, 'wx', 0o600);
      await handle.writeFile(`${process.pid}\n`);
      await handle.close();
      return path;
    } catch (e) {
      if ((e as { code?: unknown }).code !== 'EEXIST')
        throw new StartError(
          `cannot create the lock file ${path}: ${e instanceof Error ? e.message : String(e)}`,
          DAEMON_EXIT.failure,
        );
    }
    const pid = Number.parseInt((await readFile(path, 'utf8').catch(() => '')).trim(), 10);
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid)) {
      throw new StartError(
        `another cohort daemon (pid ${pid}) is using the data directory ${dir}; stop it first (two daemons must never share a log)`,
        DAEMON_EXIT.failure,
      );
    }
    await unlink(path).catch(() => undefined); // left by a daemon that died: take it over
  }
  throw new StartError(`cannot take the lock file ${path}; remove it if no cohort daemon runs`, DAEMON_EXIT.failure);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: unknown }).code === 'EPERM';
  }
}

/** Everything a running daemon holds, released in reverse order by `stop`. */
interface Running {
  readonly config: NodeConfig;
  readonly logger: Logger;
  readonly node: CohortNode;
  readonly transport: TcpTransport<ChannelMessage>;
  readonly disk: FileDisk;
  readonly blocks: FileBlockStore;
  readonly api: ApiServer;
  readonly metrics: MetricsEndpoint | null;
  readonly lockPath: string;
}

function observerFor(logger: Logger, counters: () => DaemonCounters | null): NodeObserver {
  return {
    onRole: (role, term, lead) => {
      counters()?.roleChanges.inc();
      logger.info(
        { role, term, lead },
        `raft: ${role} in term ${term}${lead === null ? ', no leader known' : `, leader ${lead}`}`,
      );
    },
    onMembershipApplied: (index, output, error) => {
      if (error !== null) logger.warn({ index, error }, `membership command at ${index} refused: ${error}`);
      else if (output !== null && output.events > 0)
        logger.info(
          { index, type: output.type, outcome: output.outcome, viewId: output.viewId, quorate: output.quorate },
          `membership: ${output.type} ${output.outcome}; view ${output.viewId} ${output.quorate ? 'quorate' : 'NOT quorate'}`,
        );
    },
    onDecision: (d) => {
      counters()?.detectorDecisions.inc({ type: d.type });
      const line = `failure detector: ${d.type} node ${d.node} (incarnation ${d.incarnation})`;
      if (d.type === 'fail' || d.type === 'quarantine')
        logger.warn({ decision: d.type, node: d.node, incarnation: d.incarnation, reason: d.reason }, line);
      else logger.info({ decision: d.type, node: d.node, incarnation: d.incarnation }, line);
    },
    onJoinProblem: (problem) => {
      logger.error({ problem }, `cannot join the cluster: ${problem}`);
    },
    onJoined: (incarnation) => {
      logger.info({ incarnation }, `joined the view as incarnation ${incarnation}`);
    },
    onIncarnationLearned: (incarnation, seen, next) => {
      logger.warn(
        { incarnation, seen, next },
        `incarnation ${incarnation} was already used: the cluster saw incarnation ${seen} of this node (the stable state was lost); learned it from the cluster and saved it: the next start runs as incarnation ${next}; stopping now`,
      );
    },
    onRepaired: (applied) => {
      logger.warn({ applied }, `storage repair complete: the log was rebuilt from peers up to index ${applied}`);
    },
    onBackgroundFailure: (what, error) => {
      counters()?.backgroundFailures.inc();
      logger.debug({ what, code: error.code }, `${what} not applied yet (${error.code}: ${error.message}); retrying`);
    },
  };
}

/** One warn line per repair recovery made to the node's storage (counted once metrics run). */
function logRepairs(logger: Logger, node: CohortNode): void {
  for (const r of node.storageRepairs)
    logger.warn(
      { repair: r.kind, file: r.file, offset: r.offset, bytesLost: r.bytesLost, lost: r.lost },
      describeRepair(r),
    );
  if (node.stableStateLost !== null)
    logger.warn(
      { stableState: node.stableStateLost, incarnation: node.incarnation },
      `the stable state was ${node.stableStateLost}: running as incarnation ${node.incarnation} until the cluster says which incarnation this node is at`,
    );
}

function peersOf(config: NodeConfig): Map<NodeId, PeerAddress> {
  return new Map(
    config.nodes.filter((n) => n.id !== config.node.id).map((n) => [n.id, { host: n.host, port: n.port }]),
  );
}

async function readKey(config: NodeConfig): Promise<ClusterKey> {
  try {
    return await readClusterKeyFile(config.keyFile);
  } catch (e) {
    if (e instanceof ClusterKeyError) throw new StartError(e.message, DAEMON_EXIT.failure);
    throw e;
  }
}

function startNode(node: CohortNode): Promise<void> {
  return new Promise((resolve, reject) => {
    node.start((error) => {
      if (error === null) resolve();
      else reject(new StartError(`the node could not start: ${error.message}`, DAEMON_EXIT.failure));
    });
  });
}

/**
 * The descriptor budget for this process's open-file limit: the cap of every listener. Throws a
 * `StartError` (exit 1) naming the limit to raise when even the smallest caps do not fit.
 */
function descriptorBudget(config: NodeConfig, logger: Logger): FdBudget {
  const { limit, source } = readOpenFileLimit();
  const r = fdBudget(limit, config.nodes.length - 1);
  if (!r.ok) throw new StartError(r.message, DAEMON_EXIT.failure);
  const { caps, total } = r.budget;
  logger.info(
    { fdLimit: limit, fdLimitSource: source, caps, fdBudget: total },
    `descriptor budget: limit ${limit}; at most ${caps.http} http, ${caps.apiConnections} api (${caps.apiClients} client slots) and ${caps.peerConnections} peer connections; ${total} descriptors at most`,
  );
  return r.budget;
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

async function start(
  config: NodeConfig,
  logger: Logger,
  onDuplicate: (notice: DuplicateNotice) => void,
): Promise<Running> {
  const budget = descriptorBudget(config, logger);
  const key = await readKey(config);
  // Descriptor exhaustion delays the disk (logged once per episode), it never stops the node.
  const disk = openDataDir(config.dataDir, logger);
  const lockPath = await lockDataDir(config.dataDir);
  // After the lock: opening the store removes half-created fragments, which only the owner may do.
  let blocks: FileBlockStore;
  try {
    blocks = new FileBlockStore(join(config.dataDir, BLOCKS_DIR));
  } catch (e) {
    await unlink(lockPath).catch(() => undefined);
    throw new StartError(
      `cannot open the block store in ${join(config.dataDir, BLOCKS_DIR)}: ${e instanceof Error ? e.message : String(e)}`,
      DAEMON_EXIT.failure,
    );
  }
  let counters: DaemonCounters | null = null;
  // The node (made below, after the transport it needs) bumps the incarnation before anything dials.
  let incarnationNow = 0;
  const transport = new TcpTransport<ChannelMessage>({
    self: config.node.id,
    clusterName: config.cluster.name,
    listen: config.listen,
    peers: peersOf(config),
    key,
    codec: nodePeerCodec(),
    logger,
    prng: new Prng(randomInt(0, 2 ** 48 - 1)),
    incarnation: () => incarnationNow,
    onDuplicateOfSelf: onDuplicate,
    limits: {
      pendingHandshakesMax: budget.caps.peerPending,
      pendingHandshakesPerSourceMax: Math.min(PENDING_HANDSHAKES_PER_SOURCE_MAX, budget.caps.peerPending),
      connectionsMax: budget.caps.peerConnections,
    },
  });
  const env = createRealEnv<ChannelMessage>({ nodeId: config.node.id, transport, disk, blocks, logger });
  let node: CohortNode;
  try {
    node = createClusterNode(
      env,
      clusterNodeOptions(
        config,
        observerFor(logger, () => counters),
      ),
    );
  } catch (e) {
    await unlink(lockPath).catch(() => undefined);
    if (e instanceof RecoveryError)
      throw new StartError(`cannot recover the node's state from ${config.dataDir}: ${e.message}`, DAEMON_EXIT.failure);
    throw e;
  }
  logRepairs(logger, node);
  incarnationNow = node.incarnation;
  await startNode(node);
  await transport.start().catch((e: unknown) => {
    node.stop();
    throw new StartError(
      `${e instanceof Error ? e.message : String(e)}; is another daemon using port ${config.listen.port}?`,
      DAEMON_EXIT.failure,
    );
  });
  const api = new ApiServer({
    socketPath: config.api.socket,
    mode: config.api.mode,
    serverName: `cohort node ${config.node.id} (${config.node.name})`,
    logger,
    clientsMax: budget.caps.apiClients,
    connectionsMax: budget.caps.apiConnections,
  });
  registerApiHandlers(api, node, {
    clusterName: config.cluster.name,
    fingerprint: configFingerprint(config),
    startedAtMs: performance.now(),
    links: () => transport.status(),
  });
  await api.listen().catch(async (e: unknown) => {
    node.stop();
    await transport.close();
    throw new StartError(
      e instanceof ApiServerError
        ? e.message
        : `cannot serve the API socket ${config.api.socket}: ${e instanceof Error ? e.message : String(e)}`,
      DAEMON_EXIT.failure,
    );
  });
  let metrics: MetricsEndpoint | null = null;
  if (config.metrics !== undefined) {
    metrics = await startMetrics(config.metrics.host, config.metrics.port, node, {
      logger,
      connectionsMax: budget.caps.http,
      api: () => api.snapshot(),
      budget,
      peerRefused: () => transport.refusedConnections,
    });
    counters = metrics.counters;
    for (const r of node.storageRepairs) counters.storageRepairs.inc({ kind: r.kind });
  }
  return { config, logger, node, transport, disk, blocks, api, metrics, lockPath };
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

/**
 * Runs the daemon for the config at `configPath` until SIGTERM or SIGINT; resolves to the exit
 * code (0 after a clean stop, 1 when it could not start, 2 for a bad config).
 */
export async function runDaemon(configPath: string, io: DaemonIo): Promise<number> {
  const loaded = await loadConfig(configPath);
  if (!loaded.ok) {
    io.err(`cohort start: ${loaded.error.message}\n`);
    return DAEMON_EXIT.usage;
  }
  const config = loaded.value;
  const logger = createLogger({ level: config.log.level, format: config.log.format, base: { node: config.node.id } });
  let duplicate: ((line: string) => void) | null = null;
  const duplicated = new Promise<string>((resolve) => {
    duplicate = resolve;
  });
  let running: Running | null = null;
  const onDuplicate = (notice: DuplicateNotice): void => {
    const line = duplicateLine(config, running?.node.incarnation ?? notice.ourIncarnation, notice);
    duplicate?.(line);
    duplicate = null;
  };
  try {
    running = await start(config, logger, onDuplicate);
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    logger.fatal({ error: message }, `cannot start: ${message}`);
    logger.flush();
    io.err(`cohort start: ${message}\n`);
    return e instanceof StartError ? e.exitCode : DAEMON_EXIT.failure;
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
  const signaled = new Promise<string>((resolve) => {
    const onSignal = (name: string): void => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      // A second signal while shutting down: stop waiting for peers.
      const force = (): void => {
        logger.warn('second signal: exiting without a clean shutdown');
        logger.flush();
        process.exit(DAEMON_EXIT.failure);
      };
      process.once('SIGTERM', force);
      process.once('SIGINT', force);
      resolve(name);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  const ended = await Promise.race([
    signaled.then((signal) => ({ signal, duplicateOf: null })),
    duplicated.then((line) => ({ signal: 'duplicate node id', duplicateOf: line })),
  ]);
  if (ended.duplicateOf !== null) {
    logger.fatal({ nodeId: config.node.id }, `cannot run: ${ended.duplicateOf}`);
    io.err(`cohort start: ${ended.duplicateOf}\n`);
  }
  await stop(running, ended.signal, ended.duplicateOf === null);
  logger.flush();
  process.removeAllListeners('SIGTERM');
  process.removeAllListeners('SIGINT');
  return ended.duplicateOf === null ? DAEMON_EXIT.ok : DAEMON_EXIT.failure;
}
