/**
 * What a simulated workload is: a node program (the software under test, written against
 * `NodeEnv`), a driver (clients issuing operations), checkers that judge the run from outside,
 * and a liveness condition that must hold within a bound once faults stop.
 *
 * Adding a workload (the Raft cluster log, membership, the DLM) means writing one module that
 * exports a `Workload` and listing it in `workloads/index.ts`. The simulator owns time, network,
 * disks, faults, the trace and the verdict; the workload owns the protocol and its oracle.
 *
 * The observation rule: checkers see only `SimEvent`s (what nodes emit through `env.trace`, what
 * the driver records, and the simulator's own fault events). They never read node state, so a
 * checker cannot be fooled by the bug it is meant to catch, and the production code path is the
 * simulated code path.
 */
import type { NodeId } from '../lib/ids.js';
import type { Prng } from '../lib/prng.js';
import type { NodeEnv, TraceFields } from '../runtime/env.js';
import type { Codec } from '../transport/transport.js';
import type { FaultProfile } from './fault-profile.js';
import type { MachineDevices } from './node-host.js';
import type { EventHandle } from './scheduler.js';
import type { SimEvent } from './trace.js';

/** The software run on every simulated node. `I` is the instance type the driver talks to. */
export interface NodeProgram<M, I> {
  /** Encodes every message on send and decodes it on delivery. */
  readonly codec: Codec<M>;
  /**
   * Starts one incarnation (1, 2, ...) of a node. Called again after a crash with the same disk
   * (whatever survived the crash) and a fresh transport, timers and PRNG stream. The instance
   * installs its transport handlers itself; it is simply dropped on crash (no cleanup runs).
   */
  start(env: NodeEnv<M>, incarnation: number): I;
}

/** The two phases of every run. */
export type SimPhase = 'fault' | 'liveness';

/** What a driver may do: its own timers on true virtual time, and calls into nodes. */
export interface DriverContext<I> {
  /** Sorted ids of the cluster's nodes. */
  readonly nodes: readonly NodeId[];
  /** The driver's own random stream. */
  readonly prng: Prng;
  /** True virtual time in ms (no drift: the driver is the outside observer). */
  nowMs(): number;
  /** The current phase. */
  phase(): SimPhase;
  /** Runs `fn` after `delayMs` of virtual time (not gated: the driver never crashes). */
  after(delayMs: number, fn: () => void): EventHandle;
  /**
   * Calls `fn` with `node`'s current instance through the node's gate, as a client request
   * arriving over a socket would be: refused (returns false) when the node is down, held until
   * resume when it is paused, run now otherwise.
   */
  call(node: NodeId, fn: (instance: I) => void): boolean;
  /** Records a client event in the trace (checkers see it, e.g. to build a history). */
  trace(event: string, fields?: TraceFields): void;
  /**
   * Crashes `node` exactly as the nemesis does (traced as `sim crash`): an operator's power
   * switch, e.g. a fence agent (`host` `down`: peers hear silence), or a node killed for good in
   * the liveness phase (nothing restarts it then; `host` `up`, the default: its machine runs on,
   * so its peers get proof that the process is gone). Returns false, doing nothing, when the
   * node is already down.
   */
  crash(node: NodeId, host?: 'up' | 'down'): boolean;
  /** Starts a new incarnation of a down node (traced as `sim start`); false when it is not down. */
  restart(node: NodeId): boolean;
  /**
   * `node`'s machine devices (they outlive its incarnations). The one use: register scripted
   * programs (`devices.processes.register(path, agent)`), e.g. the fence agents a workload's
   * fence topology names, before any node runs them (in `Driver.start`). Never touch the disk or
   * the block store through it: node I/O goes through the node's gate.
   */
  devices(node: NodeId): MachineDevices;
}

/** Issues operations against the cluster during the run. */
export interface Driver<I> {
  /** Called once at time 0, after every node started. */
  start(ctx: DriverContext<I>): void;
  /** Called when the liveness phase begins (faults have stopped). */
  onLiveness?(): void;
}

/** Judges the run from its events. Reports through the `violation` callback of `WorkloadSetup`. */
export interface Checker {
  readonly name: string;
  /** Sees every event of the run, in trace order. */
  observe(event: SimEvent): void;
  /** Called once when the run ends (after the liveness check), for whole-history checks. */
  finish?(): void;
}

/** The condition that must become true in the liveness phase, within `boundMs`. */
export interface Liveness {
  /** Virtual ms after the liveness phase starts by which `satisfied()` must hold. */
  readonly boundMs: number;
  /** Evaluated from observed events only. */
  satisfied(): boolean;
  /** What is still missing (for the violation message). */
  describe(): string;
}

/** The faults a protocol promises to survive; the nemesis injects only these. */
export interface FaultTolerance {
  /** Bit flips in durable data, on a minority of nodes. */
  readonly diskCorruption: boolean;
  /**
   * Disk I/O errors (write, fsync, read) on any node: the node must fail-stop
   * (`NodeEnv.failStop`) and survive as a crash.
   */
  readonly ioErrors: boolean;
}

/** Everything a workload gets to build one run. */
export interface WorkloadSetup {
  readonly nodes: readonly NodeId[];
  /** The workload's random stream (forked from the run seed). */
  readonly prng: Prng;
  /** The planted bug to enable, or undefined for the correct protocol. */
  readonly canary: string | undefined;
  /** Reports a violation; the simulator stops the run soon after the first. */
  violation(checker: string, message: string): void;
}

/** One run's workload instance. */
export interface WorkloadRun<M, I> {
  readonly program: NodeProgram<M, I>;
  readonly driver: Driver<I>;
  readonly checkers: readonly Checker[];
  readonly liveness: Liveness;
  /** Workload figures for the summary (e.g. deliveries), in a stable order. */
  stats(): readonly (readonly [string, number])[];
}

/** A registered workload. */
export interface Workload<M, I> {
  readonly name: string;
  readonly description: string;
  /** Planted bugs this workload can enable (`--canary NAME`), simulation only. */
  readonly canaries: readonly string[];
  readonly tolerates: FaultTolerance;
  /** Draws the cluster size for a run, in [1, SIM_NODES_MAX]. */
  nodeCount(prng: Prng): number;
  /** Default virtual length of the fault phase, ms. */
  readonly faultPhaseMs: number;
  /**
   * Optional: reshapes the run's drawn fault profile (e.g. some seeds with only short pauses, so
   * an accuracy checker bites). Draw only from `prng` (the run's `fault-shape` stream).
   */
  shapeFaults?(profile: FaultProfile, prng: Prng): FaultProfile;
  create(setup: WorkloadSetup): WorkloadRun<M, I>;
}
