/**
 * One simulated run: a cluster of `workload` nodes on virtual time, driven from one seed through
 * a fault phase and a liveness phase, judged by the workload's checkers.
 *
 * Determinism: every random choice comes from a `Prng` forked from the seed by a fixed label
 * (`faults`, `network`, `node-3`, `driver`, ...), every callback runs from the one scheduler in
 * (time, insertion) order, and nothing reads a real clock, `Math.random` or object-key order.
 * So the same seed gives the same trace and the same `traceHash`, on any machine.
 *
 * Exceptions: an exception thrown inside the run (an assertion in node code, a runaway event
 * count) ends the run and is reported as a violation with its message, like any other bug the
 * seed found.
 */
import { assert } from '../lib/assert.js';
import { CohortError, type DecodeError } from '../lib/errors.js';
import { nodeId, type NodeId } from '../lib/ids.js';
import { Prng } from '../lib/prng.js';
import type { TraceFields } from '../runtime/env.js';
import { SIM_NODES_MAX, SIM_VIOLATIONS_MAX } from '../constants.js';
import { describeProfile, drawFaultProfile, type FaultProfile } from './fault-profile.js';
import { Nemesis, NO_FAULTS, type ClusterControl, type FaultCounts } from './nemesis.js';
import { SimNetwork, type NetworkStats } from './network.js';
import { SimNode, type DiskFactory, type SimulatedDisk } from './node-host.js';
import { SimBlockStore } from './block-store.js';
import { SimProcessRunner } from './process-runner.js';
import { msToUs, Scheduler } from './scheduler.js';
import { TraceRecorder, type SimEvent, type TraceSource } from './trace.js';
import type { DriverContext, SimPhase, Workload, WorkloadRun } from './workload.js';

/** Options of one run. */
export interface SimOptions {
  /** The run's seed (a safe integer). */
  readonly seed: number;
  /** A planted bug of the workload to enable (simulation only). */
  readonly canary?: string | undefined;
  /** Write the full trace to this file. */
  readonly tracePath?: string | undefined;
  /** Overrides the workload's fault-phase length, ms. */
  readonly faultPhaseMs?: number | undefined;
  /** Overrides the workload's cluster-size draw. */
  readonly nodeCount?: number | undefined;
  /** Builds each machine's disk (default: the real `SimDisk`, via the seed runner). */
  readonly diskFactory: DiskFactory;
}

/** A checker's finding. */
export interface Violation {
  readonly checker: string;
  readonly message: string;
  /** Virtual time of the report, µs. */
  readonly timeUs: number;
}

/** Everything a run reports. JSON-safe. */
export interface SimResult {
  readonly seed: number;
  readonly workload: string;
  readonly canary: string | null;
  readonly nodes: number;
  readonly traceHash: string;
  readonly violations: readonly Violation[];
  /** Virtual time simulated, ms. */
  readonly simulatedMs: number;
  readonly faultPhaseMs: number;
  /** Virtual ms from the start of the liveness phase until the liveness condition held, or null. */
  readonly convergedAfterMs: number | null;
  readonly events: number;
  readonly traceLines: number;
  readonly eventCounts: readonly (readonly [string, number])[];
  readonly faults: FaultCounts;
  readonly network: NetworkStats;
  readonly workloadStats: readonly (readonly [string, number])[];
  readonly profile: string;
  /** The newest trace lines, only when there are violations. */
  readonly traceTail: readonly string[];
}

/** How often the liveness condition is polled in the liveness phase, virtual ms. */
const LIVENESS_POLL_MS = 50;

/** Mutable state of one run, shared by the helpers below. */
interface RunState<M, I> {
  readonly seed: number;
  readonly prng: Prng;
  readonly scheduler: Scheduler;
  readonly recorder: TraceRecorder;
  readonly violations: Violation[];
  phase: SimPhase;
  run: WorkloadRun<M, I> | undefined;
  nodes: Map<NodeId, SimNode<M, I>>;
  /** Told about a crash the nemesis did not cause (a fail-stop), so it may restart the node. */
  onCrashed: ((node: NodeId) => void) | undefined;
}

/** Runs one seed of `workload`; see the module comment. */
export function runSimulation<M, I>(workload: Workload<M, I>, options: SimOptions): SimResult {
  assert(Number.isSafeInteger(options.seed), 'seed must be a safe integer');
  const canary = options.canary;
  assert(
    canary === undefined || workload.canaries.includes(canary),
    `unknown canary ${canary ?? ''} for workload ${workload.name}`,
  );
  const prng = new Prng(options.seed);
  const count = options.nodeCount ?? workload.nodeCount(prng.fork('nodes'));
  assert(
    Number.isInteger(count) && count >= 1 && count <= SIM_NODES_MAX,
    `node count must be in [1, ${SIM_NODES_MAX}]`,
  );
  const faultPhaseMs = options.faultPhaseMs ?? workload.faultPhaseMs;
  const state: RunState<M, I> = {
    seed: options.seed,
    prng,
    scheduler: new Scheduler(),
    recorder: new TraceRecorder(options.tracePath === undefined ? {} : { filePath: options.tracePath }),
    violations: [],
    phase: 'fault',
    run: undefined,
    nodes: new Map(),
    onCrashed: undefined,
  };
  const ids = Array.from({ length: count }, (_, i) => nodeId(i + 1));
  const drawn = drawFaultProfile(prng.fork('faults'), count, workload.tolerates);
  const profile = workload.shapeFaults === undefined ? drawn : workload.shapeFaults(drawn, prng.fork('fault-shape'));
  let nemesis: Nemesis | undefined;
  let network: SimNetwork<M> | undefined;
  let convergedAfterMs: number | null = null;
  try {
    const run = workload.create({
      nodes: ids,
      prng: prng.fork('workload'),
      canary,
      violation: (checker, message) => {
        report(state, checker, message);
      },
    });
    state.run = run;
    emit(state, 'sim', 'begin', {
      seed: options.seed,
      workload: workload.name,
      nodes: count,
      canary: canary ?? null,
      profile: describeProfile(profile),
    });
    network = buildCluster(state, run, ids, profile, options.diskFactory);
    const cluster = control(state, network);
    const theNemesis = new Nemesis(state.scheduler, prng.fork('nemesis'), profile, cluster);
    nemesis = theNemesis;
    state.onCrashed = (id) => {
      theNemesis.crashed(id);
    };
    for (const n of state.nodes.values()) startNode(state, n);
    run.driver.start(driverContext(state, ids, cluster));
    nemesis.start();
    state.scheduler.runUntil(msToUs(faultPhaseMs), () => state.violations.length > 0);
    if (state.violations.length === 0) convergedAfterMs = livenessPhase(state, run, nemesis);
    for (const c of run.checkers) c.finish?.();
  } catch (e) {
    reportException(state, e);
  }
  // The closing line folds whole-run counters into the hash, so a divergence in untraced
  // activity (message order, event count) still changes the trace hash.
  const net = network?.stats;
  emit(state, 'sim', 'end', {
    violations: state.violations.length,
    events: state.scheduler.eventsRun,
    sent: net?.sent ?? 0,
    delivered: net?.delivered ?? 0,
    lost: net?.lost ?? 0,
    cut: net?.cut ?? 0,
    duplicated: net?.duplicated ?? 0,
  });
  const traceHash = state.recorder.finish();
  return summarize(state, {
    workload,
    canary,
    count,
    faultPhaseMs,
    convergedAfterMs,
    traceHash,
    nemesis,
    network,
    profile,
  });
}

function report<M, I>(state: RunState<M, I>, checker: string, message: string): void {
  if (state.violations.length >= SIM_VIOLATIONS_MAX) return;
  state.violations.push({ checker, message, timeUs: state.scheduler.nowUs });
  emit(state, 'sim', 'violation', { checker, message });
}

function reportException<M, I>(state: RunState<M, I>, e: unknown): void {
  const name = e instanceof CohortError ? e.code : e instanceof Error ? e.name : 'Error';
  const message = e instanceof Error ? e.message : String(e);
  const frame =
    e instanceof Error
      ? (e.stack ?? '')
          .split('\n')
          .slice(1, 3)
          .map((s) => s.trim())
          .join(' | ')
      : '';
  report(state, 'exception', `${name}: ${message}${frame === '' ? '' : ` (${frame})`}`);
}

/** Records an event in the trace and shows it to every checker. */
function emit<M, I>(state: RunState<M, I>, source: TraceSource, event: string, fields: TraceFields): void {
  const e: SimEvent = { timeUs: state.scheduler.nowUs, source, event, fields };
  state.recorder.record(e);
  const run = state.run;
  if (run === undefined) return;
  for (const c of run.checkers) c.observe(e);
}

function buildCluster<M, I>(
  state: RunState<M, I>,
  run: WorkloadRun<M, I>,
  ids: readonly NodeId[],
  profile: FaultProfile,
  diskFactory: DiskFactory,
): SimNetwork<M> {
  const host = {
    isUp: (n: NodeId) => (state.nodes.get(n)?.state ?? 'down') !== 'down',
    incarnationOf: (n: NodeId) => state.nodes.get(n)?.incarnation ?? 0,
    deliver: (n: NodeId, inc: number, fn: () => void) => {
      state.nodes.get(n)?.run(inc, fn, true);
    },
    codecError: (from: NodeId, to: NodeId, error: DecodeError) => {
      report(state, 'codec', `message ${from}→${to} failed to decode (${error.code}): ${error.message}`);
    },
  };
  const network = new SimNetwork<M>(
    state.scheduler,
    state.prng.fork('network'),
    profile.network,
    ids,
    run.program.codec,
    host,
  );
  const drift = profile.clockDriftMax;
  for (const id of ids) {
    const machinePrng = state.prng.fork(`machine-${id}`);
    const clockRate = 1 + (machinePrng.int(0, 20_001) / 10_000 - 1) * drift;
    const clockOffsetMs = machinePrng.int(0, 1_000_000_000);
    const owner: { node: SimNode<M, I> | undefined } = { node: undefined };
    // Device completions reach the node through its gate, tied to the incarnation that issued them.
    const gated = (delayMs: number, fn: () => void): void => {
      const node = owner.node;
      assert(node !== undefined, 'a device scheduled before its node exists');
      const inc = node.incarnation;
      state.scheduler.after(msToUs(delayMs), () => {
        node.run(inc, fn);
      });
    };
    const disk: SimulatedDisk = diskFactory({
      schedule: gated,
      prng: state.prng.fork(`disk-${id}`),
      writeLatencyMs: profile.disk.writeLatencyMs,
      syncLatencyMs: profile.disk.syncLatencyMs,
      tornWriteProbability: profile.disk.tornWriteProbability,
      keepUnsyncedProbability: profile.disk.keepUnsyncedProbability,
      syncStallProbability: profile.disk.syncStallProbability,
    });
    const sink = (n: NodeId, event: string, fields: TraceFields): void => {
      emit(state, n, event, fields);
    };
    const node = new SimNode<M, I>(
      id,
      state.scheduler,
      network,
      disk,
      { clockRate, clockOffsetMs },
      state.prng.fork(`node-${id}`),
      run.program,
      sink,
      {
        blocks: new SimBlockStore({ schedule: gated, prng: state.prng.fork(`blocks-${id}`) }),
        processes: new SimProcessRunner({
          // Program delays (timeouts, grace, agents' run times) are on the machine's clock: they scale with its drift like timers.
          schedule: (delayMs, fn) => {
            gated(delayMs / clockRate, fn);
          },
          nowMs: () => owner.node?.clockMs() ?? 0,
          prng: state.prng.fork(`processes-${id}`),
        }),
      },
    );
    owner.node = node;
    node.onFailStop = (reason) => {
      emit(state, 'sim', 'crash', { node: id, cause: 'fail-stop', reason });
      node.crash();
      state.onCrashed?.(id);
    };
    state.nodes.set(id, node);
  }
  return network;
}

function startNode<M, I>(state: RunState<M, I>, node: SimNode<M, I>): void {
  emit(state, 'sim', 'start', { node: node.id, incarnation: node.incarnation + 1 });
  node.start();
}

function nodeOf<M, I>(state: RunState<M, I>, id: NodeId): SimNode<M, I> {
  const n = state.nodes.get(id);
  assert(n !== undefined, `no simulated node ${id}`);
  return n;
}

function control<M, I>(state: RunState<M, I>, network: SimNetwork<M>): ClusterControl {
  return {
    nodes: [...state.nodes.keys()],
    state: (id) => nodeOf(state, id).state,
    incarnation: (id) => nodeOf(state, id).incarnation,
    crash: (id, host = 'up') => {
      emit(state, 'sim', 'crash', { node: id });
      nodeOf(state, id).crash(host);
    },
    restart: (id) => {
      startNode(state, nodeOf(state, id));
    },
    pause: (id) => {
      emit(state, 'sim', 'pause', { node: id });
      nodeOf(state, id).pause();
    },
    resume: (id) => {
      emit(state, 'sim', 'resume', { node: id });
      nodeOf(state, id).resume();
    },
    setPartition: (p) => {
      network.setPartition(p);
    },
    clog: (from, to, untilUs) => {
      network.clog(from, to, untilUs);
    },
    unclogAll: () => {
      network.unclogAll();
    },
    flipBits: (id, count) => {
      const flipped = nodeOf(state, id).disk.flipBits(count);
      emit(state, 'sim', 'bitflip', { node: id, bits: flipped });
      return flipped;
    },
    onNextSync: (id, fn) => {
      nodeOf(state, id).disk.onNextSync(fn);
    },
    syncing: (id) => nodeOf(state, id).disk.syncing,
    failNext: (id, op) => {
      nodeOf(state, id).disk.failNext(op);
    },
    disarmAll: () => {
      for (const n of state.nodes.values()) n.disk.disarm();
    },
    emit: (event, fields) => {
      emit(state, 'sim', event, fields);
    },
  };
}

function driverContext<M, I>(state: RunState<M, I>, ids: readonly NodeId[], cluster: ClusterControl): DriverContext<I> {
  return {
    nodes: ids,
    prng: state.prng.fork('driver'),
    nowMs: () => state.scheduler.nowUs / 1000,
    phase: () => state.phase,
    after: (delayMs, fn) => state.scheduler.after(msToUs(delayMs), fn),
    call: (id, fn) => {
      const node = nodeOf(state, id);
      if (node.state === 'down') return false;
      node.run(node.incarnation, () => {
        const instance = node.instance;
        assert(instance !== undefined, 'a running node has an instance');
        fn(instance);
      });
      return true;
    },
    trace: (event, fields) => {
      emit(state, 'client', event, fields ?? {});
    },
    crash: (id, host = 'up') => {
      if (nodeOf(state, id).state === 'down') return false;
      cluster.crash(id, host);
      return true;
    },
    restart: (id) => {
      if (nodeOf(state, id).state !== 'down') return false;
      cluster.restart(id);
      return true;
    },
    devices: (id) => nodeOf(state, id).devices,
  };
}

/** Stops faults, then polls the liveness condition until it holds or its bound passes. */
function livenessPhase<M, I>(state: RunState<M, I>, run: WorkloadRun<M, I>, nemesis: Nemesis): number | null {
  state.phase = 'liveness';
  const startUs = state.scheduler.nowUs;
  emit(state, 'sim', 'phase', { name: 'liveness', boundMs: run.liveness.boundMs });
  nemesis.stop();
  run.driver.onLiveness?.();
  const live = { satisfied: false };
  const poll = (): void => {
    live.satisfied = run.liveness.satisfied();
    if (!live.satisfied) state.scheduler.after(msToUs(LIVENESS_POLL_MS), poll);
  };
  state.scheduler.after(0, poll);
  state.scheduler.runUntil(startUs + msToUs(run.liveness.boundMs), () => live.satisfied || state.violations.length > 0);
  if (live.satisfied) {
    const after = (state.scheduler.nowUs - startUs) / 1000;
    emit(state, 'sim', 'converged', { afterMs: after });
    return after;
  }
  if (state.violations.length === 0) {
    report(
      state,
      'liveness',
      `not converged ${run.liveness.boundMs} ms after faults stopped: ${run.liveness.describe()}`,
    );
  }
  return null;
}

interface SummaryInput<M, I> {
  readonly workload: Workload<M, I>;
  readonly canary: string | undefined;
  readonly count: number;
  readonly faultPhaseMs: number;
  readonly convergedAfterMs: number | null;
  readonly traceHash: string;
  readonly nemesis: Nemesis | undefined;
  readonly network: SimNetwork<M> | undefined;
  readonly profile: FaultProfile;
}

function summarize<M, I>(state: RunState<M, I>, s: SummaryInput<M, I>): SimResult {
  return {
    seed: state.seed,
    workload: s.workload.name,
    canary: s.canary ?? null,
    nodes: s.count,
    traceHash: s.traceHash,
    violations: state.violations,
    simulatedMs: state.scheduler.nowUs / 1000,
    faultPhaseMs: s.faultPhaseMs,
    convergedAfterMs: s.convergedAfterMs,
    events: state.scheduler.eventsRun,
    traceLines: state.recorder.lineCount,
    eventCounts: state.recorder.eventCounts(),
    faults: s.nemesis?.counts ?? NO_FAULTS,
    network: s.network?.stats ?? { sent: 0, delivered: 0, lost: 0, cut: 0, reset: 0, duplicated: 0, refused: 0 },
    workloadStats: state.run?.stats() ?? [],
    profile: describeProfile(s.profile),
    traceTail: state.violations.length > 0 ? state.recorder.tail() : [],
  };
}
