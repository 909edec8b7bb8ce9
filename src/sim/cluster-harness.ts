/**
 * A small deterministic cluster of `CohortNode`s on one simulated scheduler, for tests and the
 * scenario scripts (testdata/cluster). Lighter than a simulator workload: no fault schedule, just
 * the operations a test asks for (crash, restart, pause like SIGSTOP, resume, cut links), with
 * every message going through the real peer codec and a seeded delay of 0.2 to 1 ms.
 *
 * Time is virtual: `runMs` and `runUntil` advance it; nothing here reads a real clock.
 */
import { assert, defined } from '../lib/assert.js';
import { nodeId, type NodeId } from '../lib/ids.js';
import { Prng } from '../lib/prng.js';
import { MemoryDisk } from '../storage/memory-disk.js';
import { MemoryBlockStore } from '../storage/memory-block-store.js';
import { RefusingProcessRunner } from '../runtime/process-runner.js';
import { DEFAULT_VOTEQUORUM_OPTIONS, type VotequorumOptions } from '../quorum/index.js';
import type { MemberNodeSpec } from '../membership/index.js';
import type { TransportHandlers } from '../transport/transport.js';
import type { NodeEnv } from '../runtime/env.js';
import {
  type CohortNode,
  createClusterNode,
  hostNode,
  registerServices,
  type CohortNodeOptions,
  type ClusterCanary,
  type NodeObserver,
  type ClusterTiming,
} from '../services.js';
import { nodePeerCodec, type ChannelMessage } from '../services.js';
import type { NodeService } from '../runtime/node-service.js';
import { Scheduler, msToUs } from './scheduler.js';

/** The timing the harness uses by default (the daemon's defaults at a 50 ms tick). */
export const HARNESS_TIMING: ClusterTiming = {
  tickMs: 50,
  heartbeatTicks: 2,
  electionTicks: 10,
  leaseMarginTicks: 1,
  heartbeatMs: 100,
  followerLeaseMs: 900,
  detector: {
    heartbeatMs: 100,
    suspectAfterMs: 1000,
    suspicionMinMs: 500,
    suspicionMaxMs: 1000,
    localHealthExtensionMaxMs: 3000,
  },
  requestTimeoutMs: 3000,
};

/** Options of a `ClusterHarness`. */
export interface ClusterHarnessOptions {
  /** Configured nodes 1..n (default 3), all voters with one vote unless `votes` says otherwise. */
  readonly nodes?: number;
  readonly votes?: readonly number[];
  readonly quorum?: VotequorumOptions;
  readonly timing?: ClusterTiming;
  readonly seed?: number;
  readonly canary?: ClusterCanary;
  /** An observer per node (called again for each incarnation). */
  readonly observerOf?: (id: NodeId) => NodeObserver | undefined;
  /** The cluster-wide settings fingerprint each node starts with (default: none, not checked). */
  readonly settingsFingerprintOf?: (id: NodeId) => string | undefined;
  /** A test-only service each incarnation hosts after the registered ones (it may open no channel). */
  readonly extraServiceOf?: (id: NodeId) => NodeService | undefined;
  /** The recovery member timeout of every node (default `RECOVERY_MEMBER_TIMEOUT_MS`). */
  readonly recoveryMemberTimeoutMs?: number;
}

/** From a kill to the proof of death at its peers: a reset, then a connect and its refusal. */
const GONE_PROOF_MS = 3;

/** See the module comment. */
export class ClusterHarness {
  readonly scheduler = new Scheduler();
  readonly ids: readonly NodeId[];
  readonly specs: readonly MemberNodeSpec[];
  private readonly nodes = new Map<NodeId, CohortNode>();
  private readonly handlers = new Map<NodeId, TransportHandlers<ChannelMessage>>();
  private readonly down = new Set<NodeId>();
  /** The incarnation each node's current process declared (`Transport.identify`). */
  private readonly declared = new Map<NodeId, number>();
  /** Crashes of each node so far: a proof of death is about the crash it was scheduled for. */
  private readonly crashes = new Map<NodeId, number>();
  /** Directed links that drop everything (`from>to`). */
  private readonly cut = new Set<string>();
  private readonly codec = nodePeerCodec();
  private readonly prng: Prng;
  private readonly disks = new Map<NodeId, MemoryDisk>();
  /** Paused nodes: their timers and inbound messages wait here until `resume`. */
  private readonly paused = new Map<NodeId, { timers: (() => void)[]; messages: (() => void)[] }>();
  private readonly opts: ClusterHarnessOptions;

  constructor(options: ClusterHarnessOptions = {}) {
    this.opts = options;
    const n = options.nodes ?? 3;
    this.ids = Array.from({ length: n }, (_, i) => nodeId(i + 1));
    this.specs = this.ids.map((id, i) => ({
      nodeId: id,
      name: `n${id}`,
      address: `127.0.0.1:${7400 + id}`,
      votes: options.votes?.[i] ?? 1,
      role: 'voter',
    }));
    this.prng = new Prng(options.seed ?? 42);
    for (const id of this.ids) this.start(id);
  }

  /** Runs `fn` for node `id` after `ms`, or defers it while the node is paused. */
  private after(id: NodeId, ms: number, fn: () => void, kind: 'timers' | 'messages' = 'timers'): { cancel(): void } {
    let cancelled = false;
    const h = this.scheduler.after(msToUs(ms), () => {
      const p = this.paused.get(id);
      if (p === undefined) fn();
      else
        p[kind].push(() => {
          if (!cancelled) fn();
        });
    });
    return {
      cancel: () => {
        cancelled = true;
        h.cancel();
      },
    };
  }

  private env(id: NodeId): NodeEnv<ChannelMessage> {
    const s = this.scheduler;
    const disk = this.disks.get(id) ?? new MemoryDisk({ schedule: (fn) => this.after(id, 0.1, fn) });
    this.disks.set(id, disk);
    return {
      nodeId: id,
      clock: { nowMs: () => s.nowUs / 1000 },
      timers: { after: (ms, fn) => this.after(id, ms, fn) },
      transport: {
        self: id,
        setHandlers: (h) => {
          this.handlers.set(id, h);
        },
        send: (to, m) => {
          if (this.down.has(id) || this.down.has(to) || this.cut.has(`${id}>${to}`)) return true;
          const bytes = this.codec.encode(m);
          this.after(
            to,
            0.2 + this.prng.float() * 0.8,
            () => {
              if (this.down.has(to) || this.down.has(id) || this.cut.has(`${id}>${to}`)) return;
              this.handlers.get(to)?.onMessage(id, this.codec.decode(bytes));
            },
            'messages',
          );
          return true;
        },
        close: () => Promise.resolve(),
        identify: (inc) => {
          this.declared.set(id, inc);
        },
      },
      disk,
      blocks: new MemoryBlockStore({ schedule: (fn) => this.after(id, 0.1, fn) }),
      processes: new RefusingProcessRunner((fn) => this.after(id, 0.1, fn)),
      prng: new Prng(1000 + id),
      trace: () => undefined,
      // A crash, as the daemon's exit would be (the harness has no restart schedule of its own).
      failStop: () => {
        if (!this.down.has(id)) this.crash(id);
      },
    };
  }

  private start(id: NodeId): void {
    const observer = this.opts.observerOf?.(id);
    const fingerprint = this.opts.settingsFingerprintOf?.(id);
    const options: CohortNodeOptions = {
      ...(fingerprint === undefined ? {} : { settingsFingerprint: fingerprint }),
      timing: this.opts.timing ?? HARNESS_TIMING,
      nodes: this.specs,
      quorum: this.opts.quorum ?? DEFAULT_VOTEQUORUM_OPTIONS,
      ...(observer === undefined ? {} : { observer }),
      ...(this.opts.canary === undefined ? {} : { canary: this.opts.canary }),
      ...(this.opts.recoveryMemberTimeoutMs === undefined
        ? {}
        : { recoveryMemberTimeoutMs: this.opts.recoveryMemberTimeoutMs }),
    };
    const extra = this.opts.extraServiceOf?.(id);
    let node: CohortNode;
    if (extra === undefined) node = createClusterNode(this.env(id), options);
    else {
      const registered = registerServices(id, options);
      node = hostNode(this.env(id), options, { ...registered, serviceList: [...registered.serviceList, extra] });
    }
    this.nodes.set(id, node);
    node.start();
  }

  /** The current instance of node `id`. */
  node(id: number): CohortNode {
    return defined(this.nodes.get(nodeId(id)), `node ${id}`);
  }

  /** Node `id`'s disk, kept across crashes (a test may damage it while the node is down). */
  disk(id: number): MemoryDisk {
    return defined(this.disks.get(nodeId(id)), `node ${id} has a disk`);
  }

  /** True while `id` is crashed. */
  isDown(id: number): boolean {
    return this.down.has(nodeId(id));
  }

  /**
   * Crashes `id`: it stops and the network drops everything to and from it. With `hostUp` (a
   * kill: the machine runs on, its kernel resets the connections and refuses reconnects) every
   * running node linked to it both ways gets `onPeerGone` 3 ms later (after the messages in
   * flight, at most 1 ms), if `id` is still down then; a paused node gets it when it resumes.
   * Without (the default: a power loss, or the process unreachable), peers hear only silence.
   */
  crash(id: number, hostUp = false): void {
    const node = nodeId(id);
    this.down.add(node);
    this.node(id).stop();
    const crash = (this.crashes.get(node) ?? 0) + 1;
    this.crashes.set(node, crash);
    const declared = this.declared.get(node);
    this.declared.delete(node);
    if (!hostUp || declared === undefined) return;
    for (const a of this.ids) {
      if (a === node || this.down.has(a) || this.cut.has(`${a}>${node}`) || this.cut.has(`${node}>${a}`)) continue;
      this.after(
        a,
        GONE_PROOF_MS,
        () => {
          if (!this.down.has(node) || this.crashes.get(node) !== crash || this.down.has(a)) return;
          this.handlers.get(a)?.onPeerGone?.(node, declared);
        },
        'messages',
      );
    }
  }

  /** Restarts a crashed node on its disk (a new incarnation). */
  restart(id: number): void {
    assert(this.down.delete(nodeId(id)), `node ${id} is not crashed`);
    this.start(nodeId(id));
  }

  /** Pauses `id` like SIGSTOP: nothing of it runs; its timers and inbound messages wait. */
  pause(id: number): void {
    this.paused.set(nodeId(id), { timers: [], messages: [] });
  }

  /**
   * Resumes `id` like SIGCONT: its overdue timers fire at once, and the messages that waited are
   * delivered `messageDelayMs` later (0: right after the timers).
   */
  resume(id: number, messageDelayMs: number): void {
    const p = defined(this.paused.get(nodeId(id)), `node ${id} is paused`);
    this.paused.delete(nodeId(id));
    for (const fn of p.timers) fn();
    this.scheduler.after(msToUs(messageDelayMs), () => {
      for (const fn of p.messages) fn();
    });
  }

  /** Cuts every link between the sides (both directions); nodes on one side still talk. */
  partition(sides: readonly (readonly number[])[]): void {
    for (const a of sides)
      for (const b of sides) if (a !== b) for (const x of a) for (const y of b) this.cut.add(`${x}>${y}`);
  }

  /** Restores every cut link. */
  heal(): void {
    this.cut.clear();
  }

  runMs(ms: number): void {
    this.scheduler.runUntil(this.scheduler.nowUs + msToUs(ms));
  }

  /** Runs until `cond` holds (checked every 10 ms); throws after `limitMs`. Returns the ms taken. */
  runUntil(cond: () => boolean, limitMs: number): number {
    const start = this.scheduler.nowUs;
    while (!cond()) {
      assert(this.scheduler.nowUs - start < msToUs(limitMs), `condition not reached within ${limitMs} ms`);
      this.runMs(10);
    }
    return (this.scheduler.nowUs - start) / 1000;
  }

  /** Virtual time in ms. */
  nowMs(): number {
    return this.scheduler.nowUs / 1000;
  }

  /** Running nodes. */
  running(): CohortNode[] {
    return this.ids.filter((id) => !this.down.has(id)).map((id) => this.node(id));
  }

  /** The one running leader (asserts there is exactly one). */
  leader(): CohortNode {
    const leaders = this.running().filter((n) => n.services.membership.status().role === 'leader');
    assert(leaders.length === 1, `expected one leader, found ${leaders.length}`);
    return defined(leaders[0], 'leader');
  }

  /** Running followers. */
  followers(): CohortNode[] {
    return this.running().filter((n) => n.services.membership.status().role === 'follower');
  }

  /** True when every listed node has joined and sees a quorate view of exactly these members. */
  allJoinedAndQuorate(ids: readonly number[]): boolean {
    return ids.every((id) => {
      const s = this.node(id).services.membership.status();
      return s.quorate && s.members.length === ids.length && s.joined;
    });
  }
}
