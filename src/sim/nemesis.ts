/**
 * The nemesis injects the faults of a run's `FaultProfile` during the fault phase, each class on
 * its own Poisson schedule, and each injection undoes itself after a drawn duration (a crashed
 * node restarts, a pause resumes, a partition heals, a clog clears). `stop()` ends the fault
 * phase: nothing new is injected, and every fault still in force is undone at once, so the
 * liveness phase starts from a healed, fully running, fully connected cluster.
 *
 * Disk I/O errors are targeted: an injection arms "the next write, fsync or read of node N
 * fails" on any node (the leader included); the node fail-stops when it hits it, and the nemesis
 * treats that like one of its own crashes (`crashed`): it restarts the node after a drawn
 * downtime. Power cuts crash a majority, or every node, in one instant (each disk loses what was
 * not synced, as in any crash) and restart them after one drawn downtime. `stop()` disarms every
 * I/O error not yet hit.
 *
 * Bit flips land only on a fixed minority of nodes chosen at the start (`corruptible`), because
 * a protocol can only promise to repair corruption from an intact majority.
 */
import { assert } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import type { Prng } from '../lib/prng.js';
import type { TraceFields } from '../runtime/env.js';
import { DISK_FAULT_OPS, type DiskFaultOp } from './disk.js';
import type { FaultClass, FaultProfile } from './fault-profile.js';
import type { NodeState } from './node-host.js';
import { makePartition, type Partition } from './partition.js';
import type { Scheduler } from './scheduler.js';

/** What the nemesis may do to the cluster. */
export interface ClusterControl {
  readonly nodes: readonly NodeId[];
  state(node: NodeId): NodeState;
  incarnation(node: NodeId): number;
  /** Kills `node`'s process; `host` `down` is a power loss (no proof of death reaches peers). */
  crash(node: NodeId, host?: 'up' | 'down'): void;
  restart(node: NodeId): void;
  pause(node: NodeId): void;
  resume(node: NodeId): void;
  setPartition(partition: Partition | undefined): void;
  clog(from: NodeId, to: NodeId, untilUs: number): void;
  unclogAll(): void;
  flipBits(node: NodeId, count: number): number;
  /** Arms a targeted I/O error on `node`'s disk: its next operation of class `op` fails. */
  failNext(node: NodeId, op: DiskFaultOp): void;
  /** Disarms every targeted I/O error not yet hit, on every disk. */
  disarmAll(): void;
  /** Calls `fn` once when `node`'s next fsync starts, with its latency (ms). */
  onNextSync(node: NodeId, fn: (latencyMs: number) => void): void;
  /** True while `node`'s disk has an fsync in flight. */
  syncing(node: NodeId): boolean;
  /** Records a simulator event in the trace. */
  emit(event: string, fields: TraceFields): void;
}

/** Counts of injected faults, for the run summary. */
export interface FaultCounts {
  partitions: number;
  crashes: number;
  pauses: number;
  clogs: number;
  bitFlips: number;
  /** Targeted I/O errors armed. */
  ioErrors: number;
  /** Nodes that fail-stopped (hit an I/O error). */
  failStops: number;
  powerCuts: number;
}

/** Fault counts of a run without a nemesis. */
export const NO_FAULTS: Readonly<FaultCounts> = {
  partitions: 0,
  crashes: 0,
  pauses: 0,
  clogs: 0,
  bitFlips: 0,
  ioErrors: 0,
  failStops: 0,
  powerCuts: 0,
};

/** Chance that a clog injection is a swizzle of several nodes rather than one link. */
const SWIZZLE_PROBABILITY = 0.3;
/** Largest number of bits flipped by one injection. */
const FLIP_BITS_MAX = 4;
/** Mean downtime of a fail-stopped node when the run has no crash class, µs. */
const FAIL_STOP_DOWNTIME_MEAN_US = 1_000_000;
/** Chance that a power cut takes every node rather than a bare majority. */
const POWER_CUT_ALL_PROBABILITY = 0.5;
/**
 * Chance that a power cut is aimed: it waits until a majority of the nodes it takes have an fsync
 * in flight at once and strikes then, the instant at which a crash loses the most.
 */
const POWER_CUT_AIMED_PROBABILITY = 0.5;
/** An aimed power cut that found no such instant within this long strikes anyway, µs. */
const POWER_CUT_AIM_US_MAX = 2_000_000;

/** Injects faults; see the module comment. */
export class Nemesis {
  readonly counts: FaultCounts = { ...NO_FAULTS };
  /** Nodes whose disks may receive bit flips (a minority). */
  readonly corruptible: readonly NodeId[];
  private active = false;
  private partitioned = false;
  /** Draws of the classes added after the first ones (own streams: older classes keep theirs). */
  private readonly diskPrng: Prng;
  private readonly powerPrng: Prng;

  constructor(
    private readonly scheduler: Scheduler,
    private readonly prng: Prng,
    private readonly profile: FaultProfile,
    private readonly cluster: ClusterControl,
  ) {
    this.diskPrng = prng.fork('disk-faults');
    this.powerPrng = prng.fork('power-cuts');
    const shuffled = prng.fork('corruptible').shuffle([...cluster.nodes]);
    this.corruptible = shuffled.slice(0, profile.corruptibleNodes).sort((a, b) => a - b);
    assert(
      this.corruptible.length * 2 < cluster.nodes.length || this.corruptible.length === 0,
      'bit flips only on a minority',
    );
  }

  /** Starts the fault phase. */
  start(): void {
    this.active = true;
    const p = this.profile;
    this.every(p.partition, 'partition', (c) => {
      this.partition(c);
    });
    this.every(p.crash, 'crash', (c) => {
      this.crash(c);
    });
    this.every(p.pause, 'pause', (c) => {
      this.pause(c);
    });
    this.every(p.clog, 'clog', (c) => {
      this.clog(c);
    });
    this.every(p.bitFlip, 'bitflip', () => {
      this.flip();
    });
    this.every(p.ioError, 'ioerror', () => {
      this.ioError();
    });
    this.every(p.powerCut, 'powercut', (c) => {
      this.powerCut(c);
    });
  }

  /**
   * A node crashed on its own (it fail-stopped on an I/O error): during the fault phase it is
   * restarted after a drawn downtime, like a crash the nemesis injected.
   */
  crashed(node: NodeId): void {
    this.counts.failStops++;
    if (!this.active) return;
    const inc = this.cluster.incarnation(node);
    const mean = this.profile.crash?.meanDurationUs ?? FAIL_STOP_DOWNTIME_MEAN_US;
    this.later(Math.max(1, Math.round(this.diskPrng.exponential(mean))), () => {
      if (this.cluster.state(node) === 'down' && this.cluster.incarnation(node) === inc) this.cluster.restart(node);
    });
  }

  /** Ends the fault phase: heals, unclogs, resumes and restarts everything. */
  stop(): void {
    this.active = false;
    this.cluster.disarmAll();
    if (this.partitioned) this.heal();
    this.cluster.unclogAll();
    for (const n of this.cluster.nodes) {
      const s = this.cluster.state(n);
      if (s === 'paused') this.cluster.resume(n);
      else if (s === 'down') this.cluster.restart(n);
    }
  }

  private every(cls: FaultClass | undefined, label: string, inject: (cls: FaultClass) => void): void {
    if (cls === undefined) return;
    const prng = this.prng.fork(label);
    const next = (): void => {
      this.scheduler.after(Math.max(1, Math.round(prng.exponential(cls.meanIntervalUs))), () => {
        if (!this.active) return;
        inject(cls);
        next();
      });
    };
    next();
  }

  private duration(cls: FaultClass): number {
    return Math.max(1, Math.round(this.prng.exponential(cls.meanDurationUs)));
  }

  /** Runs `fn` after `us` only if the fault phase is still on. */
  private later(us: number, fn: () => void): void {
    this.scheduler.after(us, () => {
      if (this.active) fn();
    });
  }

  private partition(cls: FaultClass): void {
    if (this.partitioned) return;
    const shape = this.prng.pick(this.profile.shapes);
    const p = makePartition(shape, this.cluster.nodes, this.prng);
    this.partitioned = true;
    this.counts.partitions++;
    this.cluster.setPartition(p);
    this.cluster.emit('partition', { shape, sides: p.description });
    this.later(this.duration(cls), () => {
      this.heal();
    });
  }

  private heal(): void {
    this.partitioned = false;
    this.cluster.setPartition(undefined);
    this.cluster.emit('heal', {});
  }

  private crash(cls: FaultClass): void {
    const candidates = this.cluster.nodes.filter((n) => this.cluster.state(n) !== 'down');
    if (candidates.length === 0) return;
    const node = this.prng.pick(candidates);
    this.counts.crashes++;
    this.cluster.crash(node);
    const inc = this.cluster.incarnation(node);
    this.later(this.duration(cls), () => {
      if (this.cluster.state(node) === 'down' && this.cluster.incarnation(node) === inc) this.cluster.restart(node);
    });
  }

  private pause(cls: FaultClass): void {
    const candidates = this.cluster.nodes.filter((n) => this.cluster.state(n) === 'running');
    if (candidates.length === 0) return;
    const node = this.prng.pick(candidates);
    this.counts.pauses++;
    this.cluster.pause(node);
    const inc = this.cluster.incarnation(node);
    this.later(this.duration(cls), () => {
      if (this.cluster.state(node) === 'paused' && this.cluster.incarnation(node) === inc) this.cluster.resume(node);
    });
  }

  private clog(cls: FaultClass): void {
    if (this.prng.chance(SWIZZLE_PROBABILITY)) {
      this.swizzle(cls);
      return;
    }
    const from = this.prng.pick(this.cluster.nodes);
    const others = this.cluster.nodes.filter((n) => n !== from);
    const to = this.prng.pick(others);
    const us = this.duration(cls);
    this.counts.clogs++;
    this.cluster.clog(from, to, this.scheduler.nowUs + us);
    this.cluster.emit('clog', { from, to, ms: Math.round(us / 1000) });
  }

  /**
   * FoundationDB's "swizzle-clog": clog every link of a random subset of nodes one node at a
   * time, then unclog them one at a time in a different random order. Messages sent on a
   * clogged link wait until it clears (nothing is lost), which reorders traffic in bulk.
   */
  private swizzle(cls: FaultClass): void {
    const subset = this.prng.shuffle([...this.cluster.nodes]).slice(0, this.prng.int(1, this.cluster.nodes.length + 1));
    const now = this.scheduler.nowUs;
    const spanUs = this.duration(cls);
    const starts = subset.map((_, i) => now + Math.floor((spanUs * i) / (2 * subset.length)));
    const ends = this.prng.shuffle(subset.map((_, i) => now + spanUs + Math.floor((spanUs * i) / subset.length)));
    subset.forEach((node, i) => {
      const start = starts[i] ?? now;
      const end = ends[i] ?? now;
      this.scheduler.at(start, () => {
        if (!this.active) return;
        for (const other of this.cluster.nodes) {
          if (other === node) continue;
          this.cluster.clog(node, other, end);
          this.cluster.clog(other, node, end);
        }
      });
    });
    this.counts.clogs++;
    this.cluster.emit('swizzle', {
      nodes: [...subset].sort((a, b) => a - b).join(','),
      ms: Math.round((2 * spanUs) / 1000),
    });
  }

  private ioError(): void {
    const node = this.diskPrng.pick(this.cluster.nodes);
    const op = this.diskPrng.pick(DISK_FAULT_OPS);
    this.counts.ioErrors++;
    this.cluster.failNext(node, op);
    this.cluster.emit('ioerror', { node, op });
  }

  /** Crashes a majority (or every node) at once; they come back together after one downtime. */
  private powerCut(cls: FaultClass): void {
    const all = this.cluster.nodes;
    const size = this.powerPrng.chance(POWER_CUT_ALL_PROBABILITY) ? all.length : Math.floor(all.length / 2) + 1;
    const cut = this.powerPrng
      .shuffle([...all])
      .slice(0, size)
      .sort((a, b) => a - b);
    const downtime = Math.max(1, Math.round(this.powerPrng.exponential(cls.meanDurationUs)));
    if (this.powerPrng.chance(POWER_CUT_AIMED_PROBABILITY)) this.aimPowerCut(cut, downtime);
    else this.cutPower(cut, downtime);
  }

  /**
   * Watches the next fsync of every node in `cut`; when one starts and a majority of `cut` then
   * has an fsync in flight, strikes (1 µs later: never from inside a disk's scheduling). Strikes
   * anyway after `POWER_CUT_AIM_US_MAX`.
   */
  private aimPowerCut(cut: readonly NodeId[], downtime: number): void {
    const aim = { done: false };
    const strike = (): void => {
      if (aim.done) return;
      aim.done = true;
      this.cutPower(cut, downtime);
    };
    const watch = (node: NodeId): void => {
      this.cluster.onNextSync(node, () => {
        if (aim.done) return;
        const syncing = cut.filter((n) => this.cluster.syncing(n)).length;
        if (syncing * 2 > cut.length) this.later(1, strike);
        else watch(node);
      });
    };
    for (const node of cut) watch(node);
    this.later(POWER_CUT_AIM_US_MAX, strike);
  }

  private cutPower(cut: readonly NodeId[], downtime: number): void {
    this.counts.powerCuts++;
    this.cluster.emit('powercut', { nodes: cut.join(','), ms: Math.round(downtime / 1000) });
    const crashed: [NodeId, number][] = [];
    for (const node of cut) {
      if (this.cluster.state(node) === 'down') continue;
      this.cluster.crash(node, 'down');
      crashed.push([node, this.cluster.incarnation(node)]);
    }
    this.later(downtime, () => {
      for (const [node, inc] of crashed)
        if (this.cluster.state(node) === 'down' && this.cluster.incarnation(node) === inc) this.cluster.restart(node);
    });
  }

  private flip(): void {
    if (this.corruptible.length === 0) return;
    const node = this.prng.pick(this.corruptible);
    const flipped = this.cluster.flipBits(node, this.prng.int(1, FLIP_BITS_MAX + 1));
    if (flipped > 0) this.counts.bitFlips++;
  }
}
