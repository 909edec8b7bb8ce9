/**
 * The cluster workload's fencing rig: per seed, either **manual** fencing (no device: every fence
 * waits for the operator's confirmation, which the driver gives for dead incarnations) or
 * **automatic** fencing, where the leader's executor (`FenceService`) runs scripted agents on the
 * simulated machines (`src/sim/fence-agents.ts`):
 *
 * - `exec`: one shared power switch (`pdu`, a `fence_dummy`-like agent on `FENCE_SIM_PROGRAM`,
 *   registered on every machine: a PDU is one device whichever node talks to it). Its `off`
 *   powers the target down (the node crashes `afterMs` after the spawn) and the plug is switched
 *   back on `bootMs` later (the machine boots a new incarnation); its `reboot` does both.
 * - `process`: `/bin/sh` running the process agent's script; the pid file
 *   `/run/cohort/NAME.pid` names the simulated node, which is killed (then restarted by its
 *   supervisor `bootMs` later). Unlike the real script, which refuses a pid file naming the node
 *   that runs it, this one kills the fencing node too (docs/simulator.md, finding 8).
 * - sometimes two levels: a flaky exec device first, the process device second;
 * - sometimes a per-node fence delay for one node.
 *
 * A `two_node` run (the `two-node` workload) always fences automatically with program devices
 * (a watchdog cannot settle the fence race), never confirms late (no leader can commit a
 * confirmation in a split), and usually gives one node a fence delay, so that it wins the race;
 * without one both may shoot, and both go down.
 *
 * During the fault phase the agents fail, hang or crash at the drawn rates; once the faults stop
 * every run succeeds, so every open fence closes (the fence liveness checker's premise). Some
 * automatic seeds also let the operator confirm dead incarnations late (`lateConfirm`), racing
 * the executor: a fence may be closed once only.
 *
 * Everything is drawn from the `fencing` fork of the workload's stream; the agents draw from
 * each machine's process-runner stream.
 */
import type { NodeId } from '../../lib/ids.js';
import type { Prng } from '../../lib/prng.js';
import type { MemberNodeSpec } from '../../membership/index.js';
import { PROCESS_AGENT_SHELL } from '../../fencing/process-agent.js';
import {
  MANUAL_ONLY_TOPOLOGY,
  type FenceDevice,
  type FenceLevel,
  type FenceTopology,
} from '../../fencing/fence-topology.js';
import {
  outcomeByRates,
  simExecAgent,
  simProcessAgent,
  type SimOutcomeChooser,
  type SimOutcomeRates,
} from '../fence-agents.js';
import type { SimAgent } from '../process-runner.js';
import type { DriverContext } from '../workload.js';

const encoder = new TextEncoder();

/** Where the scripted power switch's agent is registered. */
export const FENCE_SIM_PROGRAM = '/usr/sbin/fence_sim';
/** Chance that a seed fences automatically. */
const AUTO_PROBABILITY = 0.5;
/** Chance that an automatic seed lets the operator confirm late too. */
const LATE_CONFIRM_PROBABILITY = 0.25;
/** Chance that an automatic seed ends its topology with a watchdog level. */
const WATCHDOG_PROBABILITY = 0.25;
/** Chance that one node gets a fence delay. */
const FENCE_DELAY_PROBABILITY = 0.3;
/** In a two_node run: chance that one node gets a fence delay (the fence race's usual setup). */
const TWO_NODE_DELAY_PROBABILITY = 0.8;

/** The run's fencing, drawn by `drawFencing`. */
export interface ClusterFencing {
  readonly mode: 'manual' | 'auto';
  readonly topology: FenceTopology;
  /** The operator also confirms dead incarnations whose fence is pending this long (auto seeds). */
  readonly lateConfirmMs: number | null;
  /** The exec device's fencing action (null: no exec device). */
  readonly execAction: 'off' | 'reboot' | null;
  readonly execRates: SimOutcomeRates;
  readonly processRates: SimOutcomeRates;
  /** `pdu` or `pdu;kill` (levels split by `;`), for the `fence-topology` trace event. */
  readonly describe: string;
  /** A node a device brought down starts again this long after it went down, ms (see `BOOT_MS`). */
  readonly bootMs: number;
}

/**
 * How long a node a device brought down stays down: a machine's boot, or a supervisor's restart
 * delay. Longer than the detector needs to evict an incarnation (`DETECTION_BOUND_MS`): a device
 * fences a machine or a pid file, not an incarnation, so it also kills a newer incarnation waiting
 * for the fence, which the fence's proof then admits although it is dead; a node back before the
 * detector evicted that dead member joins as its replacement, the replacement's fence kills it
 * again, and so on (seed 20 livelocked so with a 300 ms restart: see docs/simulator.md).
 */
const BOOT_MS: readonly [number, number] = [4_000, 8_000];

/** Draws the run's fencing (see the module comment). */
export function drawFencing(nodes: readonly MemberNodeSpec[], prng: Prng, twoNode = false): ClusterFencing {
  if (!twoNode && !prng.chance(AUTO_PROBABILITY))
    return {
      mode: 'manual',
      topology: MANUAL_ONLY_TOPOLOGY,
      lateConfirmMs: null,
      execAction: null,
      execRates: {},
      processRates: {},
      describe: '',
      bootMs: 0,
    };
  const shape = prng.pick(['exec', 'process', 'two-level'] as const);
  const devices = new Map<string, FenceDevice>();
  const levels: FenceLevel[] = [];
  const execAction = shape === 'process' ? null : prng.chance(0.75) ? 'off' : 'reboot';
  if (execAction !== null) {
    devices.set('pdu', {
      agent: 'exec',
      name: 'pdu',
      program: FENCE_SIM_PROGRAM,
      action: execAction,
      options: new Map([['ip', '10.0.0.250']]),
      unfence: false,
      timeoutMs: 2_000,
      retries: prng.int(0, 3),
    });
    levels.push({ devices: ['pdu'] });
  }
  if (shape !== 'exec') {
    devices.set('kill', {
      agent: 'process',
      name: 'kill',
      pidFiles: new Map(nodes.map((n) => [n.name, `/run/cohort/${n.name}.pid`])),
      timeoutMs: 1_000,
      retries: 1,
    });
    levels.push({ devices: ['kill'] });
  }
  const flaky = shape === 'two-level' ? 0.5 : prng.pick([0, 0.2, 0.4]);
  const execRates = { fail: flaky, hang: prng.pick([0, 0.1]), crash: prng.pick([0, 0.05]) };
  const processRates = { fail: shape === 'two-level' ? 0.1 : prng.pick([0, 0.3]) };
  // Some seeds add a last level with a watchdog device: every node then fences itself when it is
  // removed or cut off from a quorum for its lease, and the executor's fallback waits it out.
  if (!twoNode && prng.fork('watchdog').chance(WATCHDOG_PROBABILITY)) {
    devices.set('wd', { agent: 'watchdog', name: 'wd', timeoutMs: 1_000, retries: 0 });
    levels.push({ devices: ['wd'] });
  }
  const fenceDelayMs = new Map<NodeId, number>();
  if (prng.chance(twoNode ? TWO_NODE_DELAY_PROBABILITY : FENCE_DELAY_PROBABILITY))
    fenceDelayMs.set(prng.pick(nodes).nodeId, prng.int(500, 3_001));
  return {
    mode: 'auto',
    topology: { devices, levels, fenceDelayMs },
    lateConfirmMs: !twoNode && prng.chance(LATE_CONFIRM_PROBABILITY) ? prng.int(2_000, 8_001) : null,
    execAction,
    execRates,
    processRates,
    describe: levels.map((l) => l.devices.join(',')).join(';'),
    bootMs: prng.int(BOOT_MS[0], BOOT_MS[1] + 1),
  };
}

/** What the rig needs from the driver. */
export interface FenceEffects {
  /** A device acted on `node`: crash it `afterMs` from now; power it back on later (see the driver). */
  powerOff(node: NodeId, afterMs: number, powerBack: () => void): void;
  /** Whether `node`'s process runs now (for the process agent's `status` and "already gone"). */
  alive(node: NodeId): boolean;
}

/** Counters for the workload's stats. */
export interface FenceRigCounts {
  /** Device actions that reached a node (power off, reboot, kill). */
  agentActions: number;
}

/**
 * Registers the run's agents on every machine (call in `Driver.start`, before any fence runs).
 * Agents' callbacks run inside `spawn`: the effects are only scheduled (`FenceEffects.powerOff`).
 */
export class FenceRig {
  readonly counts: FenceRigCounts = { agentActions: 0 };

  constructor(
    private readonly fencing: ClusterFencing,
    private readonly nodes: readonly MemberNodeSpec[],
  ) {}

  install(ctx: DriverContext<unknown>, effects: FenceEffects): void {
    if (this.fencing.mode === 'manual') return;
    const byName = new Map(this.nodes.map((n) => [n.name, n.nodeId]));
    const faultOnly = (rates: SimOutcomeRates): SimOutcomeChooser => {
      const byRates = outcomeByRates(rates);
      return (run, prng) => (run.action !== 'on' && ctx.phase() === 'fault' ? byRates(run, prng) : 'ok');
    };
    const agents: [string, SimAgent][] = [];
    if (this.fencing.execAction !== null) {
      const holder: { pdu: SimAgent | null } = { pdu: null };
      const plugPrng = ctx.prng.fork('pdu-on');
      const pdu = simExecAgent({
        choose: faultOnly(this.fencing.execRates),
        power: (plug, action, afterMs) => {
          const node = byName.get(plug);
          if (node === undefined || action === 'on') return;
          this.counts.agentActions++;
          effects.powerOff(node, afterMs, () => {
            // The operator switches the plug back on (fence_dummy's state), so the next `off` acts.
            if (action === 'off' && holder.pdu !== null)
              holder.pdu(
                {
                  program: FENCE_SIM_PROGRAM,
                  args: [],
                  env: new Map(),
                  stdin: encoder.encode(`action=on\nplug=${plug}\n`),
                },
                plugPrng,
              );
          });
        },
      });
      holder.pdu = pdu;
      agents.push([FENCE_SIM_PROGRAM, pdu]);
    }
    if (this.fencing.topology.devices.has('kill')) {
      const kill = simProcessAgent({
        choose: faultOnly(this.fencing.processRates),
        alive: (name) => {
          const node = byName.get(name);
          return node !== undefined && effects.alive(node);
        },
        kill: (name, afterMs) => {
          const node = byName.get(name);
          if (node === undefined) return;
          this.counts.agentActions++;
          effects.powerOff(node, afterMs, () => undefined);
        },
      });
      agents.push([PROCESS_AGENT_SHELL, kill]);
    }
    for (const id of ctx.nodes)
      for (const [program, agent] of agents) ctx.devices(id).processes.register(program, agent);
  }
}
