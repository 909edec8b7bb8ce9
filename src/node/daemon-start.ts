/**
 * The daemon's start-up (`cohort start`): all or nothing. Either every resource is held and the
 * node runs, or the start fails with one line naming what failed and everything taken so far
 * is released, in reverse order, so the machine and the data directory are as before the
 * attempt and the cluster never hears of it.
 *
 * Order, and why (the numbers of docs/daemon.md, "Starting"; `runDaemon` in daemon.ts did 1.
 * load the config and 2. install the signal handlers, so a signal at any later step is seen):
 * 3. size the descriptor budget from the open-file limit (`fd-budget.ts`: the cap of every
 *    listener; too low a limit fails here, naming it) and read the cluster key (nothing to undo);
 * 4. create the data directory if missing (0700; removed again when this attempt created it)
 *    and take its lock file, before anything else touches the directory: two daemons never
 *    share one log, and only the lock holder may repair or remove anything in it;
 * 5. bind every listener: the peer port (`TcpTransport.bind`: it listens but closes whatever
 *    connects until step 7), the API socket (answering `UNAVAILABLE` until step 7) and the
 *    metrics port. A port or socket in use is found here, before any state is written;
 * 6. open every file: the block store and the node, which recovers its state from the data
 *    directory (WAL, snapshots, stable state) and computes its next incarnation in memory;
 * 7. start the node: it persists the bumped incarnation (the point of no return: nothing after
 *    it can fail for a listener's sake), then the transport accepts and dials peers (so the
 *    node joins and may campaign) and the API serves.
 *
 * A storage fault while starting fail-stops like one while running (exit 3, no cleanup). A
 * signal before step 7 ends the start at the next step with everything released
 * (`StartInterrupted`); a signal during or after step 7 is the caller's to handle with a
 * normal stop.
 */
import { randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { open, readFile, rmdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { CohortError } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import { Prng } from '../lib/prng.js';
import { ApiServer, ApiServerError } from '../platform/api-server.js';
import { openWatchdogFeeder, type WatchdogFeeder } from './watchdog-feeder.js';
import { ClusterKeyError, readClusterKeyFile, type ClusterKey } from '../platform/cluster-key.js';
import { DescriptorPressure } from '../platform/descriptor-pressure.js';
import { FileDisk } from '../platform/file-disk.js';
import { FileBlockStore } from '../platform/file-block-store.js';
import { createRealEnv, exitOnFailStop, FAIL_STOP_EXIT_CODE } from '../platform/real-env.js';
import { TcpTransport, type PeerAddress } from '../platform/tcp-transport.js';
import type { DuplicateNotice } from '../platform/tcp-transport-core.js';
import { PENDING_HANDSHAKES_PER_SOURCE_MAX } from '../constants.js';
import { RecoveryError } from '../runtime/raft-persistence.js';
import { describeRepair } from '../storage/index.js';
import {
  createClusterNode,
  nodePeerCodec,
  type ChannelMessage,
  type CohortNode,
  type CohortNodeOptions,
  type NodeObserver,
} from '../services.js';
import { registerApiHandlers } from './api-handlers.js';
import { configFingerprint, type NodeConfig } from './config.js';
import { fdBudget, readOpenFileLimit, type FdBudget } from './fd-budget.js';
import { startMetrics, type DaemonCounters, type MetricsEndpoint } from './metrics.js';

/**
 * Exit codes of `cohort start` (docs/cli.md, docs/daemon.md): `ok` after a clean stop (also when
 * a signal ended the start-up), `failure` when it could not start (key, data directory, lock, a
 * port or socket in use, recovery), `usage` for a bad config, `storage` for a fail-stop on a
 * storage fault while running, or after a lost stable state's incarnation was learned from the
 * cluster (`FAIL_STOP_EXIT_CODE`, exited from the environment with one fatal log line).
 */
export const DAEMON_EXIT = { ok: 0, failure: 1, usage: 2, storage: FAIL_STOP_EXIT_CODE } as const;
/** The lock file in the data directory (holds the daemon's pid). */
export const LOCK_FILE = 'cohort.lock';
/** Subdirectory of `dataDir` holding volume fragments (the node's `BlockStore`). */
export const BLOCKS_DIR = 'blocks';

/** A start-up failure: the message is the one line shown; `exitCode` is what the process returns. */
export class StartError extends CohortError {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super('DAEMON_START', message);
  }
}

/** A signal arrived before the node started; everything taken was released. */
export class StartInterrupted extends CohortError {
  constructor(readonly signal: string) {
    super('DAEMON_START_INTERRUPTED', `${signal} during start-up`);
  }
}

/** Everything a running daemon holds, released in reverse order by its stop. */
export interface Running {
  readonly config: NodeConfig;
  readonly logger: Logger;
  readonly node: CohortNode;
  readonly transport: TcpTransport<ChannelMessage>;
  readonly disk: FileDisk;
  readonly blocks: FileBlockStore;
  readonly api: ApiServer;
  readonly metrics: MetricsEndpoint | null;
  readonly lockPath: string;
  /** The watchdog feeder (`watchdog.device`), or null. */
  readonly watchdog: WatchdogFeeder | null;
}

/** What the start-up needs besides the config. */
export interface StartHooks {
  /** The node's options, given the observer the daemon logs and counts with. */
  nodeOptions(observer: NodeObserver): CohortNodeOptions;
  /** The signal received since the handlers were installed, or null. Read between steps. */
  interrupted(): string | null;
  /**
   * A peer proved another live process runs this node id (`TcpTransport`'s duplicate rule);
   * only once the transport accepts and dials (step 7).
   */
  onDuplicate(notice: DuplicateNotice): void;
  /**
   * The node learned from the cluster that its incarnation was already used and made the used
   * one durable (`ServiceContext.retire`): this run is over, and a new start in the same process
   * runs as the next incarnation. Every other fail-stop exits (`exitOnFailStop`).
   */
  onRetired(reason: string): void;
}

/** What was taken so far, with how to give it back; released newest first, never throwing. */
class Acquired {
  private readonly held: { readonly what: string; readonly release: () => Promise<void> | void }[] = [];

  constructor(private readonly logger: Logger) {}

  add(what: string, release: () => Promise<void> | void): void {
    this.held.push({ what, release });
  }

  async releaseAll(): Promise<void> {
    for (let item = this.held.pop(); item !== undefined; item = this.held.pop()) {
      try {
        await item.release();
      } catch (e) {
        this.logger.warn(
          { step: item.what, error: errorText(e) },
          `start-up: releasing the ${item.what} failed: ${errorText(e)}`,
        );
      }
    }
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function errorCode(e: unknown): unknown {
  return (e as { code?: unknown } | null)?.code;
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
      if (errorCode(e) !== 'EEXIST')
        throw new StartError(`cannot create the lock file ${path}: ${errorText(e)}`, DAEMON_EXIT.failure);
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
    return errorCode(e) === 'EPERM';
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (e) {
    if (errorCode(e) === 'ENOENT') return false;
    throw new StartError(`cannot inspect ${path}: ${errorText(e)}`, DAEMON_EXIT.failure);
  }
}

/** Removes a directory this attempt created, if it is empty again (anything else in it stays). */
async function removeIfEmpty(dir: string, logger: Logger): Promise<void> {
  await rmdir(dir).catch((e: unknown) => {
    logger.debug({ dir, error: errorText(e) }, `start-up: kept ${dir}: ${errorText(e)}`);
  });
}

/** The one line for a listener that could not bind (`cause` is the system error). */
function listenerError(what: string, host: string, port: number, e: unknown): StartError {
  const cause = e instanceof Error && e.cause !== undefined ? e.cause : e;
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  const code = errorCode(cause);
  const line =
    code === 'EADDRINUSE'
      ? `port ${where} (${what}) is in use by another process`
      : code === 'EACCES'
        ? `port ${where} (${what}) may not be bound by this user (permission denied)`
        : code === 'EADDRNOTAVAIL'
          ? `address ${where} (${what}) is not an address of this host`
          : `cannot listen on ${where} (${what}): ${errorText(cause)}`;
  return new StartError(line, DAEMON_EXIT.failure);
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
        `incarnation ${incarnation} was already used: the cluster saw incarnation ${seen} of this node (the stable state was lost); learned it from the cluster and saved it: this run ends and the daemon starts again as incarnation ${next}`,
      );
    },
    onRepaired: (applied) => {
      logger.warn({ applied }, `storage repair complete: the log was rebuilt from peers up to index ${applied}`);
    },
    onFenceStep: (node, incarnation, step) => {
      const what =
        step.kind === 'run'
          ? `running device ${step.device} (level ${step.level}, try ${step.attemptNo}, round ${step.round}, ${step.action} ${step.plug})`
          : step.kind === 'wait'
            ? `waiting (${step.why}) until ${new Date(step.untilMs).toISOString()}`
            : step.kind === 'exhausted'
              ? `every level failed in round ${step.round}; the next round starts at ${new Date(step.nextRoundAtMs).toISOString()} (or confirm by hand: cohort fence confirm ${node})`
              : step.kind === 'manual'
                ? `waiting for an operator: cohort fence confirm ${node} (${step.why}${step.device === undefined ? '' : `, device ${step.device}`})`
                : `level ${step.level} succeeded (device ${step.device}); recording the fence`;
      const line = `fence of node ${node} (incarnation ${incarnation}): ${what}`;
      if (step.kind === 'exhausted' || step.kind === 'manual')
        logger.warn({ node, incarnation, step: step.kind }, line);
      else logger.info({ node, incarnation, step: step.kind }, line);
    },
    onFenceAttempt: (node, incarnation, a) => {
      counters()?.fenceAttempts.inc({ device: a.device, result: a.result });
      const line = `fence of node ${node} (incarnation ${incarnation}): device ${a.device} ${a.action} ${a.result}${a.exitCode === undefined ? '' : ` (exit ${a.exitCode})`} in ${a.durationMs} ms${a.excerpt === '' ? '' : `: ${a.excerpt}`}`;
      if (a.result === 'ok') logger.info({ node, incarnation, device: a.device, result: a.result }, line);
      else logger.warn({ node, incarnation, device: a.device, result: a.result }, line);
    },
    onUnfence: (node, incarnation, u) => {
      counters()?.unfenceAttempts.inc({ device: u.device, result: u.result });
      const line = `unfence of node ${node} (after the fence of incarnation ${incarnation}): device ${u.device} on ${u.plug} ${u.result}${u.exitCode === undefined ? '' : ` (exit ${u.exitCode})`} in ${u.durationMs} ms, try ${u.attemptNo} of ${u.tries}${u.excerpt === '' ? '' : `: ${u.excerpt}`}`;
      if (u.result === 'ok') logger.info({ node, incarnation, device: u.device, result: u.result }, line);
      else logger.warn({ node, incarnation, device: u.device, result: u.result }, line);
    },
    onUnfenceGaveUp: (node, incarnation, devices) => {
      logger.error(
        { node, incarnation, devices },
        `unfence of node ${node} (after the fence of incarnation ${incarnation}): gave up on ${devices.join(', ')}: every try failed; the node may have no access to its storage: check the device, then run its agent with action on by hand (cohort fence history --node ${node} shows the tries)`,
      );
    },
    onSelfFence: (why) => {
      logger.fatal({ why }, `self-fence: ${why}`);
    },
    onBackgroundFailure: (what, error) => {
      counters()?.backgroundFailures.inc();
      logger.debug({ what, code: error.code }, `${what} not applied yet (${error.code}: ${error.message}); retrying`);
    },
  };
}

/** One warn line and one count per repair recovery made to the node's storage. */
function logRepairs(logger: Logger, node: CohortNode, counters: DaemonCounters | null): void {
  for (const r of node.storageRepairs) {
    logger.warn(
      { repair: r.kind, file: r.file, offset: r.offset, bytesLost: r.bytesLost, lost: r.lost },
      describeRepair(r),
    );
    counters?.storageRepairs.inc({ kind: r.kind });
  }
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

function startNode(node: CohortNode): Promise<void> {
  return new Promise((resolve, reject) => {
    node.start((error) => {
      if (error === null) resolve();
      else reject(new StartError(`the node could not start: ${error.message}`, DAEMON_EXIT.failure));
    });
  });
}

/** Step 4: the data directory (created if missing) and its lock. */
async function takeDataDir(
  config: NodeConfig,
  acquired: Acquired,
  logger: Logger,
): Promise<{ readonly disk: FileDisk; readonly lockPath: string }> {
  const dir = config.dataDir;
  const created = !(await exists(dir));
  let disk: FileDisk;
  try {
    // Creates the directory (durably) if missing; opens no file. Descriptor exhaustion delays
    // the disk (logged once per episode), it never stops the node.
    disk = new FileDisk(dir, { pressure: new DescriptorPressure(logger) });
  } catch (e) {
    // The real cause: read-only file system, permission, not a directory...
    throw new StartError(`cannot use the data directory ${dir}: ${errorText(e)}`, DAEMON_EXIT.failure);
  }
  if (created) acquired.add('data directory', () => removeIfEmpty(dir, logger));
  acquired.add(
    'disk',
    () =>
      new Promise<void>((resolve, reject) => {
        disk.close((e) => {
          if (e === null) resolve();
          else reject(e);
        });
      }),
  );
  const lockPath = await lockDataDir(dir);
  acquired.add('lock', () => unlink(lockPath));
  return { disk, lockPath };
}

/** The listeners of step 5, bound; nothing is served yet. */
interface Listeners {
  readonly transport: TcpTransport<ChannelMessage>;
  readonly api: ApiServer;
  readonly metrics: MetricsEndpoint | null;
}

/** Step 5: binds the peer port, the API socket and the metrics port (each released on failure). */
async function bindListeners(
  config: NodeConfig,
  key: ClusterKey,
  budget: FdBudget,
  logger: Logger,
  acquired: Acquired,
  hooks: StartHooks,
  running: () => CohortNode | null,
): Promise<Listeners> {
  const transport = new TcpTransport<ChannelMessage>({
    self: config.node.id,
    clusterName: config.cluster.name,
    listen: config.listen,
    peers: peersOf(config),
    key,
    codec: nodePeerCodec(),
    logger,
    prng: new Prng(randomInt(0, 2 ** 48 - 1)),
    // Read only by handshakes, which start at step 7, after the node has bumped it.
    incarnation: () => running()?.incarnation ?? 0,
    onDuplicateOfSelf: (notice) => {
      hooks.onDuplicate(notice);
    },
    reportPeerGone: config.processGoneProof,
    limits: {
      pendingHandshakesMax: budget.caps.peerPending,
      pendingHandshakesPerSourceMax: Math.min(PENDING_HANDSHAKES_PER_SOURCE_MAX, budget.caps.peerPending),
      connectionsMax: budget.caps.peerConnections,
    },
  });
  acquired.add('peer listener', () => transport.close());
  await transport.bind().catch((e: unknown) => {
    throw listenerError('peers', config.listen.host, config.listen.port, e);
  });
  const api = new ApiServer({
    socketPath: config.api.socket,
    mode: config.api.mode,
    serverName: `cohort node ${config.node.id} (${config.node.name})`,
    logger,
    clientsMax: budget.caps.apiClients,
    connectionsMax: budget.caps.apiConnections,
    startsPaused: true,
  });
  acquired.add('API socket', () => api.close());
  await api.listen().catch((e: unknown) => {
    throw new StartError(
      e instanceof ApiServerError ? e.message : `cannot serve the API socket ${config.api.socket}: ${errorText(e)}`,
      DAEMON_EXIT.failure,
    );
  });
  let metrics: MetricsEndpoint | null = null;
  if (config.metrics !== undefined) {
    const { host, port } = config.metrics;
    const options = {
      logger,
      connectionsMax: budget.caps.http,
      api: () => api.snapshot(),
      budget,
      peerRefused: () => transport.refusedConnections,
    };
    metrics = await startMetrics(host, port, running, options).catch((e: unknown) => {
      throw listenerError('metrics', host, port, e);
    });
    const endpoint = metrics;
    acquired.add('metrics listener', () => endpoint.close());
  }
  return { transport, api, metrics };
}

/** Step 6: the block store and the node, recovered from the data directory (nothing new persisted: recovery may only cut a torn WAL tail). */
function openNode(
  config: NodeConfig,
  logger: Logger,
  disk: FileDisk,
  listeners: Listeners,
  hooks: StartHooks,
  acquired: Acquired,
): { readonly node: CohortNode; readonly blocks: FileBlockStore } {
  const blocksDir = join(config.dataDir, BLOCKS_DIR);
  if (!existsSync(blocksDir)) acquired.add('block store directory', () => removeIfEmpty(blocksDir, logger));
  let blocks: FileBlockStore;
  try {
    blocks = new FileBlockStore(blocksDir); // removes half-created fragments: only the lock holder may
  } catch (e) {
    throw new StartError(`cannot open the block store in ${blocksDir}: ${errorText(e)}`, DAEMON_EXIT.failure);
  }
  acquired.add(
    'block store',
    () =>
      new Promise<void>((resolve) => {
        blocks.close(resolve);
      }),
  );
  const { transport } = listeners;
  const exitOnFault = exitOnFailStop(logger);
  const env = createRealEnv<ChannelMessage>({
    nodeId: config.node.id,
    transport,
    disk,
    blocks,
    logger,
    onFailStop: (reason, error) => {
      if ((error as { code?: unknown }).code === 'INCARNATION_RETIRED') hooks.onRetired(reason);
      else exitOnFault(reason, error);
    },
  });
  const counters = (): DaemonCounters | null => listeners.metrics?.counters ?? null;
  let node: CohortNode;
  try {
    node = createClusterNode(env, hooks.nodeOptions(observerFor(logger, counters)));
  } catch (e) {
    if (e instanceof RecoveryError)
      throw new StartError(`cannot recover the node's state from ${config.dataDir}: ${e.message}`, DAEMON_EXIT.failure);
    throw e;
  }
  acquired.add('node', () => {
    node.stop();
  });
  logRepairs(logger, node, counters());
  return { node, blocks };
}

/** Opens (arms) the configured watchdog device, or null when none is configured. */
async function openWatchdog(config: NodeConfig, logger: Logger, acquired: Acquired): Promise<WatchdogFeeder | null> {
  const device = config.watchdog?.device;
  const watchdog = config.timeouts.watchdog;
  if (device === undefined || watchdog === undefined) return null;
  try {
    const feeder = await openWatchdogFeeder(device, watchdog.feedIntervalMs, logger);
    acquired.add('watchdog', () => feeder.close());
    return feeder;
  } catch (e) {
    throw new StartError(
      `cannot open the watchdog device ${device}: ${e instanceof Error ? e.message : String(e)} (load a driver, e.g. modprobe softdog, or remove watchdog.device)`,
      DAEMON_EXIT.failure,
    );
  }
}

/**
 * Runs steps 3 to 7 of the file comment and resolves with everything the running daemon holds.
 * Rejects with `StartError` (the one line to show, the exit code), `StartInterrupted` (a signal
 * before the node started), or a programmer error; in each case everything taken was released
 * first. A storage fault exits the process (fail-stop) without returning.
 */
export async function startDaemon(config: NodeConfig, logger: Logger, hooks: StartHooks): Promise<Running> {
  const acquired = new Acquired(logger);
  const checkpoint = (): void => {
    const signal = hooks.interrupted();
    if (signal !== null) throw new StartInterrupted(signal);
  };
  try {
    const budget = descriptorBudget(config, logger);
    const key = await readKey(config);
    checkpoint();
    const { disk, lockPath } = await takeDataDir(config, acquired, logger);
    checkpoint();
    let started: CohortNode | null = null;
    const listeners = await bindListeners(config, key, budget, logger, acquired, hooks, () => started);
    checkpoint();
    const { node, blocks } = openNode(config, logger, disk, listeners, hooks, acquired);
    checkpoint();
    const watchdog = await openWatchdog(config, logger, acquired);
    // The point of no return: the new incarnation becomes durable here.
    await startNode(node);
    started = node;
    const { transport, api, metrics } = listeners;
    registerApiHandlers(api, node, {
      clusterName: config.cluster.name,
      fingerprint: configFingerprint(config),
      startedAtMs: performance.now(),
      links: () => transport.status(),
    });
    await transport.start(); // bound already: it cannot fail for the port's sake now
    api.serve();
    watchdog?.start(() => node.running && node.services.fencing.healthy());
    return { config, logger, node, transport, disk, blocks, api, metrics, lockPath, watchdog };
  } catch (e) {
    await acquired.releaseAll();
    throw e;
  }
}
