/**
 * Embedded mode: a real cohort cluster inside one process, for application tests and
 * single-process use. `startCluster({nodes: 3})` runs N `CohortNode`s (the daemon's node
 * program: Raft log, membership, KV) over a `MemoryNetwork` (every message through the real
 * peer codec, delivered asynchronously) and `MemoryDisk`s, with real timers and the daemon's
 * default timeout model, and waits until every node is quorate and joined.
 *
 * `client(id)` is a `CohortClient` whose calls run the daemon's own API handlers in-process
 * (`InProcessApi`), so results and errors are those of a daemon. `stopNode(id)` crashes a node
 * (no leave; its clients fail with `CONNECTION_LOST`), `restartNode(id)` starts it again on the
 * same disk as a new incarnation and, by default, confirms the old incarnation fenced (it
 * certainly is: its objects were stopped) so it rejoins the view. `stop()` (or `await using`)
 * stops everything and leaves no timer running.
 *
 * Fail-stop: a node whose storage fails (a write or fsync error; `injectDiskFault` plants one)
 * is stopped as `stopNode` would, at once (its environment drops every later callback and send),
 * and `nodes[i].failStop` says why until it is restarted.
 *
 * Node ids are 1..N. Durability: `MemoryDisk` is perfectly durable, so a crash loses nothing
 * that completed; completions are scheduled with `setImmediate` in issue order. Each node also
 * has a `MemoryBlockStore` kept across restarts like its disk, and runs programs (fence agents)
 * as real child processes (`ChildProcessRunner`, the daemon's runner): embedded mode runs in a
 * real process, and the `process` and `exec` fence agents are meant to work in tests and demos.
 * A program still running when its node is stopped finishes unobserved.
 */
import { performance } from 'node:perf_hooks';
import { pino, type Logger } from 'pino';
import { ApiCohortClient, CohortClientError, abortedError, type CohortClient } from '../client/index.js';
import { assert } from '../lib/assert.js';
import { nodeId as makeNodeId, type NodeId } from '../lib/ids.js';
import type { MemberNodeSpec } from '../membership/index.js';
import { registerApiHandlers } from '../node/api-handlers.js';
import { clusterTiming } from '../node/daemon.js';
import { deriveTimeouts, timeoutInputsWithDefaults, type TimeoutInputs } from '../node/timeouts.js';
import { createRealEnv } from '../platform/real-env.js';
import { buildVotequorum, DEFAULT_VOTEQUORUM_OPTIONS, type VotequorumOptions } from '../quorum/index.js';
import { type CohortNode, createClusterNode, type ClusterTiming } from '../services.js';
import { nodePeerCodec, type ChannelMessage } from '../services.js';
import type { Disk, DiskCallback } from '../storage/disk.js';
import { MemoryDisk } from '../storage/memory-disk.js';
import { MemoryBlockStore } from '../storage/memory-block-store.js';
import { MemoryNetwork, type MemoryTransport } from '../transport/memory-transport.js';
import { InProcessApi } from './in-process-api.js';

/** Most nodes of an embedded cluster (a process's timers serve them all). */
export const EMBEDDED_NODES_MAX = 9;
/** Default bound of `startCluster` and `restartNode` waits. */
export const EMBEDDED_WAIT_MS_DEFAULT = 10_000;
/** How often the waits look at the nodes' status. */
const POLL_MS = 10;
/** Longest wait for a stopped node's disk completions to drain. */
const DISK_DRAIN_MS_MAX = 2000;

/** Options of `startCluster`. */
export interface StartClusterOptions {
  /** Number of nodes, 1..EMBEDDED_NODES_MAX (default 3), each with one vote. */
  readonly nodes?: number;
  /** Timeout model inputs (docs/config.md); defaults as for a daemon (100 ms heartbeat). */
  readonly timeouts?: Partial<TimeoutInputs>;
  /** votequorum options (default: plain majority). */
  readonly quorum?: Partial<VotequorumOptions>;
  /** Shown as `cluster` in `status()` (default `embedded`). */
  readonly name?: string;
  /** Bound of the wait until quorate (default 10 s). */
  readonly timeoutMs?: number;
  /** Aborts the start (everything started is stopped). */
  readonly signal?: AbortSignal;
  /** Receives the nodes' debug traces (default: silent). */
  readonly logger?: Logger;
}

/** Options of `restartNode`. */
export interface RestartNodeOptions {
  /** Confirm the crashed incarnation fenced and wait until the new one is in the view (default true). */
  readonly rejoin?: boolean;
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** Options of `stopNode`. */
export interface StopNodeOptions {
  /** Leave the view cleanly first (bounded by 2 s) instead of crashing (default false). */
  readonly leave?: boolean;
}

/** Options of `waitQuorate`. */
export interface WaitOptions {
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

/** One node of an embedded cluster. */
export interface EmbeddedNode {
  readonly nodeId: NodeId;
  readonly name: string;
  readonly running: boolean;
  /** The running node program, or null while stopped (for inspection; use `client(id)` to act). */
  readonly clusterNode: CohortNode | null;
  /** Its disk, kept across restarts. */
  readonly disk: MemoryDisk;
  /** Its block store, kept across restarts. */
  readonly blocks: MemoryBlockStore;
  /** Why the node fail-stopped (one line naming the file and the error), or null; reset on restart. */
  readonly failStop: string | null;
}

/** An operation class `injectDiskFault` makes fail: writes (and truncates) or fsyncs. */
export type EmbeddedDiskFault = 'write' | 'sync';

interface Running {
  readonly node: CohortNode;
  readonly transport: MemoryTransport<ChannelMessage>;
  readonly api: InProcessApi;
}

class Slot implements EmbeddedNode {
  live: Running | null = null;
  diskPending = 0;
  failStop: string | null = null;
  readonly disk: MemoryDisk;
  readonly blocks: MemoryBlockStore;
  /** Injected faults not yet hit. */
  readonly armed: EmbeddedDiskFault[] = [];

  constructor(readonly spec: MemberNodeSpec) {
    // Disk and block store completions both count as pending storage work.
    const schedule = (fn: () => void): void => {
      this.diskPending++;
      setImmediate(() => {
        this.diskPending--;
        fn();
      });
    };
    this.disk = new MemoryDisk({ schedule });
    this.blocks = new MemoryBlockStore({ schedule });
  }

  get nodeId(): NodeId {
    return this.spec.nodeId;
  }

  /** The disk the node program gets: `disk`, failing the operations `armed` asks for with EIO. */
  faultyDisk(): Disk {
    const disk = this.disk;
    const hit = (op: EmbeddedDiskFault, name: string, done: DiskCallback): boolean => {
      const at = this.armed.indexOf(op);
      if (at < 0) return false;
      this.armed.splice(at, 1);
      const error = Object.assign(new Error(`EIO: i/o error on ${op === 'sync' ? 'fsync' : op} of ${name}`), {
        code: 'EIO',
      });
      setImmediate(() => {
        done(error);
      });
      return true;
    };
    return {
      list: () => disk.list(),
      read: (name) => disk.read(name),
      size: (name) => disk.size(name),
      readRange: (name, offset, length) => disk.readRange(name, offset, length),
      write: (name, offset, data, done) => {
        if (!hit('write', name, done)) disk.write(name, offset, data, done);
      },
      sync: (name, done) => {
        if (!hit('sync', name, done)) disk.sync(name, done);
      },
      truncate: (name, size, done) => {
        if (!hit('write', name, done)) disk.truncate(name, size, done);
      },
      rename: (from, to, done) => {
        disk.rename(from, to, done);
      },
      remove: (name, done) => {
        disk.remove(name, done);
      },
      syncDir: (done) => {
        if (!hit('sync', 'the directory', done)) disk.syncDir(done);
      },
    };
  }

  get name(): string {
    return this.spec.name;
  }

  get running(): boolean {
    return this.live !== null;
  }

  get clusterNode(): CohortNode | null {
    return this.live?.node ?? null;
  }
}

/** Resolves once `probe` returns non-null; rejects with TIMEOUT (naming `what` and `why()`) or ABORTED. */
function pollUntil<T>(
  what: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  probe: () => T | null,
  why: () => string,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      finish();
      reject(abortedError(signal ?? AbortSignal.abort(), what));
    };
    const check = (): void => {
      let value: T | null;
      try {
        value = probe();
      } catch (e) {
        finish();
        reject(e instanceof Error ? e : new Error(String(e)));
        return;
      }
      if (value !== null) {
        finish();
        resolve(value);
      } else if (performance.now() - started >= timeoutMs) {
        finish();
        reject(new CohortClientError('TIMEOUT', `${what} did not happen within ${timeoutMs} ms: ${why()}`));
      } else {
        timer = setTimeout(check, POLL_MS);
      }
    };
    if (signal?.aborted === true) {
      reject(abortedError(signal, what));
      return;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    check();
  });
}

/** A running embedded cluster. Create it with `startCluster`. */
export class EmbeddedCluster implements AsyncDisposable {
  private readonly slots: Slot[];
  private readonly network = new MemoryNetwork<ChannelMessage>({
    codec: nodePeerCodec(),
    schedule: (fn) => setImmediate(fn),
  });
  private readonly specs: readonly MemberNodeSpec[];
  private stopping: Promise<void> | null = null;
  private readonly fencing = new Set<NodeId>();

  /** @internal use `startCluster`. */
  constructor(
    count: number,
    private readonly timing: ClusterTiming,
    private readonly quorumOptions: VotequorumOptions,
    private readonly clusterName: string,
    private readonly logger: Logger,
  ) {
    this.specs = Array.from({ length: count }, (_, i) => ({
      nodeId: makeNodeId(i + 1),
      name: `node-${i + 1}`,
      address: `memory:${i + 1}`,
      votes: 1,
      role: 'voter' as const,
    }));
    this.slots = this.specs.map((s) => new Slot(s));
  }

  /** Every node, by id order (index 0 is node 1). */
  get nodes(): readonly EmbeddedNode[] {
    return this.slots;
  }

  private slot(id: number): Slot {
    const s = this.slots[id - 1];
    if (s === undefined)
      throw new CohortClientError(
        'INVALID_ARGUMENT',
        `no node ${id} in this embedded cluster (nodes are 1..${this.slots.length})`,
      );
    return s;
  }

  /**
   * A new client of node `id`, running the daemon's API handlers in-process. Throws
   * `DAEMON_UNREACHABLE` when the node is stopped. Close it when done (`stop()` closes all).
   */
  client(id: number): CohortClient {
    const r = this.slot(id).live;
    if (r === null)
      throw new CohortClientError(
        'DAEMON_UNREACHABLE',
        `node ${id} of the embedded cluster is stopped; start it again with restartNode(${id})`,
      );
    return new ApiCohortClient(r.api.connect());
  }

  /** The node that leads in the highest term among the running nodes, or null (an election is on). */
  leader(): NodeId | null {
    let best: { id: NodeId; term: number } | null = null;
    for (const s of this.slots) {
      const st = s.live?.node.services.membership.status();
      if (st?.role === 'leader' && (best === null || st.term > best.term)) best = { id: s.nodeId, term: st.term };
    }
    return best?.id ?? null;
  }

  /** Cuts (`connected` false) or restores the network link between nodes `a` and `b`. */
  setLink(a: number, b: number, connected: boolean): void {
    this.network.setLink(this.slot(a).nodeId, this.slot(b).nodeId, connected);
  }

  /** @internal Starts node `id` on its disk. */
  async boot(id: number): Promise<void> {
    await this.bootSlot(this.slot(id));
  }

  private async bootSlot(slot: Slot): Promise<void> {
    assert(slot.live === null, 'a running node is not booted again');
    const id = slot.nodeId;
    const transport = this.network.endpoint(
      id,
      this.specs.map((s) => s.nodeId).filter((p) => p !== id),
    );
    const logger = this.logger.child({ node: id });
    const booted: { live: Running | null } = { live: null };
    slot.failStop = null;
    const env = createRealEnv<ChannelMessage>({
      nodeId: id,
      transport,
      disk: slot.faultyDisk(),
      blocks: slot.blocks,
      logger,
      onFailStop: (reason) => {
        logger.error({ reason }, `${reason}; stopping node ${id} (fail-stop)`);
        slot.failStop = reason;
        // The environment's gate is closed already; stop the objects on the next turn, as stopNode does.
        setImmediate(() => {
          if (booted.live !== null && slot.live === booted.live) void this.halt(slot);
        });
      },
    });
    let node: CohortNode;
    try {
      node = createClusterNode(env, {
        timing: this.timing,
        nodes: this.specs,
        quorum: this.quorumOptions,
      });
    } catch (e) {
      await transport.close();
      throw new CohortClientError(
        'UNAVAILABLE',
        `node ${id} of the embedded cluster cannot start: ${e instanceof Error ? e.message : String(e)}`,
        { cause: e },
      );
    }
    const api = new InProcessApi();
    registerApiHandlers(api, node, {
      clusterName: this.clusterName,
      fingerprint: 'embedded',
      startedAtMs: performance.now(),
      links: () => transport.status(),
    });
    slot.live = { node, transport, api };
    booted.live = slot.live;
    await new Promise<void>((resolve, reject) => {
      node.start((error) => {
        if (error === null) resolve();
        else
          reject(
            new CohortClientError('UNAVAILABLE', `node ${id} of the embedded cluster cannot start: ${error.message}`, {
              cause: error,
            }),
          );
      });
    }).catch(async (e: unknown) => {
      await this.halt(slot);
      throw e;
    });
  }

  /** Stops a node's program, API and endpoint, then waits for its disk completions to drain. */
  private async halt(slot: Slot): Promise<void> {
    const r = slot.live;
    if (r === null) return;
    slot.live = null;
    r.api.shutdown(
      new CohortClientError(
        'CONNECTION_LOST',
        `node ${slot.nodeId} of the embedded cluster was stopped; take a new client once it is restarted`,
      ),
    );
    r.node.stop();
    await r.transport.close();
    const started = performance.now();
    while (slot.diskPending > 0) {
      assert(
        performance.now() - started < DISK_DRAIN_MS_MAX,
        `the disk of node ${slot.nodeId} did not drain within ${DISK_DRAIN_MS_MAX} ms`,
      );
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /**
   * Plants a storage fault: the next `op` (a write or an fsync) of node `id`'s disk fails with
   * EIO. The node then fail-stops (see the module comment). For tests of fail-stop.
   */
  injectDiskFault(id: number, op: EmbeddedDiskFault): void {
    this.slot(id).armed.push(op);
  }

  /**
   * Stops node `id`: a crash by default (no leave: the leader's failure detector removes it
   * from the view within about 2 s and it then needs fencing), or a clean leave with
   * `{leave: true}`. Its clients fail with `CONNECTION_LOST`. A stopped node is a no-op.
   */
  async stopNode(id: number, options: StopNodeOptions = {}): Promise<void> {
    const slot = this.slot(id);
    const r = slot.live;
    if (r === null) return;
    if (options.leave === true && r.node.services.membership.joined) {
      await new Promise<void>((resolve) => {
        r.node.services.membership.leave(2000, () => {
          resolve();
        });
      });
    }
    await this.halt(slot);
  }

  /**
   * Starts node `id` again on the same disk (a new incarnation). With `rejoin` (default) it then
   * confirms the crashed incarnation fenced when the cluster asks for it and waits until the new
   * incarnation is in the view and quorate (TIMEOUT after `timeoutMs`, default 10 s).
   */
  async restartNode(id: number, options: RestartNodeOptions = {}): Promise<void> {
    const slot = this.slot(id);
    if (slot.live !== null)
      throw new CohortClientError(
        'INVALID_ARGUMENT',
        `node ${id} of the embedded cluster is running; stopNode(${id}) first`,
      );
    await this.bootSlot(slot);
    if (options.rejoin === false) return;
    const what = `node ${id} rejoining the view`;
    await pollUntil(
      what,
      options.timeoutMs ?? EMBEDDED_WAIT_MS_DEFAULT,
      options.signal,
      () => this.admitStep(slot),
      () => this.describe([slot]),
    );
  }

  /** One step of a rejoin: confirm a pending fence of `slot`'s old incarnation; true once joined and quorate. */
  private admitStep(slot: Slot): true | null {
    const node = slot.live?.node;
    if (node === undefined)
      throw new CohortClientError('UNAVAILABLE', `node ${slot.nodeId} was stopped while rejoining`);
    if (node.services.membership.joined && node.services.membership.status().quorate) return true;
    const leaderId = this.leader();
    const leader = leaderId === null ? undefined : this.slot(leaderId).live?.node;
    const rec = leader?.services.membership.nodes().find((n) => n.nodeId === slot.nodeId);
    if (
      leader === undefined ||
      rec === undefined ||
      !rec.fencePending ||
      rec.incarnation >= node.incarnation ||
      this.fencing.has(slot.nodeId)
    )
      return null;
    // The old incarnation is stopped for certain: this process holds it. Confirm it fenced.
    this.fencing.add(slot.nodeId);
    leader.services.membership.fenceConfirm(slot.nodeId, rec.incarnation, () => {
      this.fencing.delete(slot.nodeId);
    });
    return null;
  }

  private describe(slots: readonly Slot[]): string {
    return slots
      .map((s) => {
        const st = s.live?.node.services.membership.status();
        if (st === undefined) return `node ${s.nodeId} stopped`;
        return `node ${s.nodeId} ${st.joined ? 'joined' : 'not joined'}, ${st.quorumExplanation}`;
      })
      .join('; ');
  }

  /** Waits until every running node is quorate and in the view (TIMEOUT names the nodes that are not). */
  async waitQuorate(options: WaitOptions = {}): Promise<void> {
    const ready = (s: Slot): boolean => {
      const n = s.live?.node;
      return n === undefined || (n.services.membership.joined && n.services.membership.status().quorate);
    };
    await pollUntil(
      'the embedded cluster becoming quorate',
      options.timeoutMs ?? EMBEDDED_WAIT_MS_DEFAULT,
      options.signal,
      () => (this.slots.every(ready) ? true : null),
      () => this.describe(this.slots.filter((s) => !ready(s))),
    );
  }

  /** Stops every node (crash-stop: a stopped cluster is not restarted). Idempotent; never throws. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      for (const s of this.slots) await this.halt(s);
    })();
    return this.stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/**
 * Starts an embedded cluster and resolves once every node is quorate and joined. Rejects with
 * `INVALID_ARGUMENT` (bad options), `TIMEOUT` (not quorate within `timeoutMs`: the message says
 * which node and why), `ABORTED`, or `UNAVAILABLE` (a node could not start); nothing is left
 * running then.
 *
 * ```ts
 * await using cluster = await startCluster({ nodes: 3 });
 * await using client = cluster.client(1);
 * await client.kv.put('greeting', 'hello');
 * ```
 */
export async function startCluster(options: StartClusterOptions = {}): Promise<EmbeddedCluster> {
  const count = options.nodes ?? 3;
  if (!Number.isSafeInteger(count) || count < 1 || count > EMBEDDED_NODES_MAX)
    throw new CohortClientError(
      'INVALID_ARGUMENT',
      `startCluster: nodes must be an integer in [1, ${EMBEDDED_NODES_MAX}], got ${count}`,
    );
  const model = deriveTimeouts(timeoutInputsWithDefaults(options.timeouts ?? {}));
  if (!model.ok) throw new CohortClientError('INVALID_ARGUMENT', `startCluster: ${model.error.message}`);
  const quorum: VotequorumOptions = { ...DEFAULT_VOTEQUORUM_OPTIONS, ...options.quorum };
  const votes = buildVotequorum(
    Array.from({ length: count }, (_, i) => ({ nodeId: makeNodeId(i + 1), votes: 1, role: 'data' as const })),
    quorum,
  );
  if (!votes.ok) throw new CohortClientError('INVALID_ARGUMENT', `startCluster: ${votes.error.message}`);
  const logger = options.logger ?? pino({ level: 'silent' });
  const cluster = new EmbeddedCluster(count, clusterTiming(model.value), quorum, options.name ?? 'embedded', logger);
  try {
    if (options.signal?.aborted === true) throw abortedError(options.signal, 'starting the embedded cluster');
    for (const n of cluster.nodes) await cluster.boot(n.nodeId);
    await cluster.waitQuorate({
      timeoutMs: options.timeoutMs ?? EMBEDDED_WAIT_MS_DEFAULT,
      ...(options.signal === undefined ? {} : { signal: options.signal }),
    });
  } catch (e) {
    await cluster.stop();
    throw e;
  }
  return cluster;
}
