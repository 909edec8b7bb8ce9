/**
 * One simulated machine: a disk and a block store that outlive processes, a program runner, a
 * drifting clock, and the current process incarnation of the node program. Every callback into
 * the node (message, peer event, timer, disk, block store and program completion, client call)
 * passes through one gate, `run`, which enforces:
 *
 * - crash: callbacks from an earlier incarnation, or for a node that is down, are dropped;
 * - pause (SIGSTOP): callbacks are held in arrival order and released on resume;
 * - nothing is re-entrant: the scheduler calls one callback at a time.
 *
 * Fail-stop (`NodeEnv.failStop`, a storage fault): the incarnation crashes exactly as a process
 * crash does (the disk's `crash()`, the gate closed), through `onFailStop` when the simulator set
 * one (so the crash is traced and the nemesis may restart the node later).
 *
 * Clock drift: each machine has a rate (e.g. 0.95-1.05) and an arbitrary offset. Its
 * `clock.nowMs()` advances at that rate and its timers' delays are scaled to match, so a node
 * whose clock runs fast fires its timers early in true time, as on real hardware.
 */
import { assert } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import type { Prng } from '../lib/prng.js';
import type { NodeEnv, TimerHandle, TraceFields } from '../runtime/env.js';
import type { Disk } from '../storage/disk.js';
import type { BlockStore } from '../storage/block-store.js';
import type { ProcessRunner } from '../runtime/process-runner.js';
import type { SimAgent } from './process-runner.js';
import type { DiskFaultOp } from './disk.js';
import type { Transport } from '../transport/transport.js';
import { SIM_PAUSE_HELD_MAX } from '../constants.js';
import { msToUs, type Scheduler } from './scheduler.js';
import type { SimNetwork } from './network.js';
import type { NodeProgram } from './workload.js';

/** The simulated disk API the simulator relies on (implemented by `SimDisk` in `disk.ts`). */
export interface SimulatedDisk extends Disk {
  /** Process crash: unsynced data may be lost or torn; pending completions never fire. */
  crash(): void;
  /** Corrupts `count` random bits of durable data; returns the number of flips done. */
  flipBits(count: number): number;
  /** Arms a targeted I/O error: the next operation of class `op` fails (see `SimDisk.failNext`). */
  failNext(op: DiskFaultOp): void;
  /** Disarms every targeted I/O error and sync watch not yet hit. */
  disarm(): void;
  /** Calls `fn` once when the next fsync starts, with its latency (see `SimDisk.onNextSync`). */
  onNextSync(fn: (latencyMs: number) => void): void;
  /** True while an fsync is in flight. */
  readonly syncing: boolean;
}

/** The simulated block store API the simulator relies on (implemented by `SimBlockStore`). */
export interface SimulatedBlockStore extends BlockStore {
  /** Machine crash: unflushed writes may be lost or torn; pending completions never fire. */
  crash(): void;
  /** Corrupts `count` random bits of flushed data; returns the number of flips done. */
  flipBits(count: number): number;
}

/** The simulated program runner the simulator relies on (implemented by `SimProcessRunner`). */
export interface SimulatedProcessRunner extends ProcessRunner {
  /** Machine crash: running programs are forgotten; none of their results arrive. */
  crash(): void;
  /** Makes `program` run the scripted `agent` on this machine (workloads install fence agents here). */
  register(program: string, agent: SimAgent): void;
}

/** A machine's devices beside its disk; both outlive incarnations and crash with the machine. */
export interface MachineDevices {
  readonly blocks: SimulatedBlockStore;
  readonly processes: SimulatedProcessRunner;
}

/** Options the simulator passes when it builds a machine's disk. */
export interface SimDiskSetup {
  schedule: (delayMs: number, fn: () => void) => void;
  prng: Prng;
  writeLatencyMs?: [number, number];
  syncLatencyMs?: [number, number];
  tornWriteProbability?: number;
  keepUnsyncedProbability?: number;
  syncStallProbability?: number;
}

/** Builds a machine's disk (the real `SimDisk` by default; tests may pass another). */
export type DiskFactory = (setup: SimDiskSetup) => SimulatedDisk;

/** Process state of a simulated node. */
export type NodeState = 'down' | 'running' | 'paused';

/** Machine parameters drawn per node from the seed. */
export interface MachineParams {
  /** Clock rate relative to true time (1 = exact). */
  readonly clockRate: number;
  /** The clock's reading at true time 0, ms. */
  readonly clockOffsetMs: number;
}

/** Where a node's trace events go. */
export type TraceSink = (node: NodeId, event: string, fields: TraceFields) => void;

/** One simulated machine and its current process; see the module comment. */
export class SimNode<M, I> {
  private stateValue: NodeState = 'down';
  private incarnationValue = 0;
  private instanceValue: I | undefined;
  private held: (() => void)[] = [];
  /** Messages dropped because the held queue was full while paused. */
  heldDropped = 0;
  /**
   * Called when the live incarnation fail-stops, instead of a bare `crash()`: it must crash this
   * node (the simulator traces it and tells the nemesis). Set by the simulator.
   */
  onFailStop: ((reason: string) => void) | undefined;

  constructor(
    readonly id: NodeId,
    private readonly scheduler: Scheduler,
    private readonly network: SimNetwork<M>,
    readonly disk: SimulatedDisk,
    private readonly machine: MachineParams,
    private readonly prng: Prng,
    private readonly program: NodeProgram<M, I>,
    private readonly traceSink: TraceSink,
    readonly devices: MachineDevices,
  ) {
    assert(machine.clockRate > 0, 'clock rate must be positive');
  }

  get state(): NodeState {
    return this.stateValue;
  }

  get incarnation(): number {
    return this.incarnationValue;
  }

  /** The live instance (undefined while down). For the driver's gated calls only. */
  get instance(): I | undefined {
    return this.instanceValue;
  }

  /** This machine's clock reading, ms. */
  clockMs(): number {
    return this.machine.clockOffsetMs + (this.scheduler.nowUs / 1000) * this.machine.clockRate;
  }

  /**
   * The gate: runs `fn` now if `incarnation` is current and the node is running, holds it while
   * paused, drops it otherwise. `droppable` callbacks (messages) are dropped instead of held when
   * the held queue is full, as a full socket buffer would; timers and disk completions are not.
   */
  run(incarnation: number, fn: () => void, droppable = false): void {
    if (incarnation !== this.incarnationValue || this.stateValue === 'down') return;
    if (this.stateValue === 'paused') {
      if (this.held.length >= SIM_PAUSE_HELD_MAX) {
        assert(
          droppable,
          `node ${this.id}: more than ${SIM_PAUSE_HELD_MAX} timers and disk completions held while paused`,
        );
        this.heldDropped++;
        return;
      }
      this.held.push(fn);
      return;
    }
    fn();
  }

  /** Starts a new incarnation of the program on this machine's disk. */
  start(): void {
    assert(this.stateValue === 'down', `node ${this.id} must be down to start`);
    this.incarnationValue++;
    this.stateValue = 'running';
    const incarnation = this.incarnationValue;
    const env = this.makeEnv(incarnation);
    const instance = this.program.start(env, incarnation);
    // A read error while starting fail-stops the incarnation before it even has an instance.
    if (incarnation === this.incarnationValue && this.state !== 'down') this.instanceValue = instance;
  }

  /**
   * Kills the process: instance, timers, held callbacks and in-flight deliveries are dropped.
   * `host`: `up` (a kill or an exit: the machine's kernel resets the process's connections and
   * refuses reconnects, so peers get proof it is gone) or `down` (power lost: silence only).
   */
  crash(host: 'up' | 'down' = 'up'): void {
    assert(this.stateValue !== 'down', `node ${this.id} is already down`);
    this.stateValue = 'down';
    this.instanceValue = undefined;
    this.held = [];
    this.disk.crash();
    this.devices.blocks.crash();
    this.devices.processes.crash();
    this.network.detach(this.id, host === 'up');
  }

  /** Stops delivering anything to the node until `resume`. */
  pause(): void {
    assert(this.stateValue === 'running', `node ${this.id} must be running to pause`);
    this.stateValue = 'paused';
  }

  /** Releases held callbacks in arrival order (new arrivals queue behind them). */
  resume(): void {
    assert(this.stateValue === 'paused', `node ${this.id} must be paused to resume`);
    this.stateValue = 'running';
    const held = this.held;
    this.held = [];
    const inc = this.incarnationValue;
    // Released through the scheduler so each runs as its own event, as after a real SIGCONT.
    for (const fn of held)
      this.scheduler.after(0, () => {
        this.run(inc, fn);
      });
  }

  /**
   * Asserts that `incarnation` is the live process. Node code runs only through the gate, so an
   * ended process issuing I/O means a driver reached an instance around it (a zombie): its disk
   * operation would land on the next incarnation's disk queue and, its completion dropped by the
   * gate, block that file for good; its messages would arrive from a dead process.
   */
  private assertLive(incarnation: number, what: string): void {
    assert(
      incarnation === this.incarnationValue && this.stateValue !== 'down',
      `node ${this.id}: incarnation ${incarnation} issued a ${what} after its process ended (a call reached it outside the gate, SimNode.run)`,
    );
  }

  /** The machine's disk as one incarnation sees it: mutations assert that the process lives. */
  private diskFor(incarnation: number): Disk {
    const disk = this.disk;
    const live = (op: string): void => {
      this.assertLive(incarnation, `disk ${op}`);
    };
    return {
      list: () => disk.list(),
      read: (name) => disk.read(name),
      size: (name) => disk.size(name),
      readRange: (name, offset, length) => disk.readRange(name, offset, length),
      write: (name, offset, data, done) => {
        live('write');
        disk.write(name, offset, data, done);
      },
      sync: (name, done) => {
        live('sync');
        disk.sync(name, done);
      },
      truncate: (name, size, done) => {
        live('truncate');
        disk.truncate(name, size, done);
      },
      rename: (from, to, done) => {
        live('rename');
        disk.rename(from, to, done);
      },
      remove: (name, done) => {
        live('remove');
        disk.remove(name, done);
      },
      syncDir: (done) => {
        live('syncDir');
        disk.syncDir(done);
      },
    };
  }

  /** The machine's block store as one incarnation sees it: operations assert that the process lives. */
  private blocksFor(incarnation: number): BlockStore {
    const blocks = this.devices.blocks;
    const live = (op: string): void => {
      this.assertLive(incarnation, `block store ${op}`);
    };
    return {
      list: () => blocks.list(),
      size: (name) => blocks.size(name),
      create: (name, sizeBytes, done) => {
        live('create');
        blocks.create(name, sizeBytes, done);
      },
      read: (name, offset, length, done) => {
        live('read');
        blocks.read(name, offset, length, done);
      },
      write: (name, offset, data, done) => {
        live('write');
        blocks.write(name, offset, data, done);
      },
      trim: (name, offset, length, done) => {
        live('trim');
        blocks.trim(name, offset, length, done);
      },
      flush: (name, done) => {
        live('flush');
        blocks.flush(name, done);
      },
      remove: (name, done) => {
        live('remove');
        blocks.remove(name, done);
      },
    };
  }

  /** The machine's program runner as one incarnation sees it: `spawn` asserts that the process lives. */
  private processesFor(incarnation: number): ProcessRunner {
    const processes = this.devices.processes;
    return {
      get running() {
        return processes.running;
      },
      spawn: (spec, done) => {
        this.assertLive(incarnation, 'program spawn');
        return processes.spawn(spec, done);
      },
    };
  }

  /** The network transport of one incarnation: `send` asserts that the process lives. */
  private transportFor(incarnation: number): Transport<M> {
    const transport = this.network.transportFor(this.id);
    return {
      self: transport.self,
      setHandlers: (h) => {
        transport.setHandlers(h);
      },
      send: (to, message, lane) => {
        this.assertLive(incarnation, 'send');
        return transport.send(to, message, lane);
      },
      close: () => transport.close(),
      identify: (inc) => {
        transport.identify?.(inc);
      },
    };
  }

  private makeEnv(incarnation: number): NodeEnv<M> {
    const rate = this.machine.clockRate;
    return {
      nodeId: this.id,
      clock: { nowMs: () => this.clockMs() },
      timers: {
        after: (delayMs: number, fn: () => void): TimerHandle => {
          let cancelled = false;
          const handle = this.scheduler.after(msToUs(delayMs / rate), () => {
            this.run(incarnation, () => {
              if (!cancelled) fn();
            });
          });
          return {
            cancel: () => {
              cancelled = true;
              handle.cancel();
            },
          };
        },
      },
      transport: this.transportFor(incarnation),
      disk: this.diskFor(incarnation),
      blocks: this.blocksFor(incarnation),
      processes: this.processesFor(incarnation),
      prng: this.prng.fork(`incarnation-${incarnation}`),
      trace: (event, fields) => {
        this.traceSink(this.id, event, fields ?? {});
      },
      failStop: (reason, error) => {
        if (incarnation !== this.incarnationValue || this.stateValue === 'down') return;
        this.traceSink(this.id, 'fail-stop', { reason, message: error.message });
        if (this.onFailStop === undefined) this.crash();
        else this.onFailStop(reason);
        assert(this.state === 'down', `node ${this.id}: onFailStop must crash the node`);
      },
    };
  }
}
