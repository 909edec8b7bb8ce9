/**
 * The proving workload: reliable broadcast with persistence (`broadcast-node.ts`), a client
 * driver, and the checker (`broadcast-checker.ts`). It exists to prove the simulator before
 * the cluster log does, and stays as a cheap smoke workload afterwards.
 *
 * The driver plays clients that hand each message to a random non-empty subset of the nodes
 * (a client that dies partway through its sends reaches only some), during the fault phase.
 */
import { assert } from '../../lib/assert.js';
import type { NodeId } from '../../lib/ids.js';
import { SIM_BROADCASTS_MAX } from '../../constants.js';
import type { Driver, DriverContext, Workload, WorkloadRun, WorkloadSetup } from '../workload.js';
import { broadcastCodec, type BroadcastMessage } from './broadcast-codec.js';
import { BroadcastChecker } from './broadcast-checker.js';
import { BROADCAST_CANARIES, BroadcastNode, type BroadcastCanary } from './broadcast-node.js';

/** Virtual length of the fault phase, ms. */
const FAULT_PHASE_MS = 20_000;
/** The liveness bound: every node has everything this long after faults stop, ms. */
const LIVENESS_BOUND_MS = 15_000;

function asCanary(name: string | undefined): BroadcastCanary | undefined {
  if (name === undefined) return undefined;
  const found = BROADCAST_CANARIES.find((c) => c === name);
  assert(found !== undefined, `unknown broadcast canary ${name}`);
  return found;
}

/** Clients broadcasting messages at random intervals during the fault phase. */
class BroadcastDriver implements Driver<BroadcastNode> {
  private nextId = 1;
  private ctx: DriverContext<BroadcastNode> | undefined;
  private meanGapMs = 0;
  private sent = 0;

  get broadcasts(): number {
    return this.sent;
  }

  start(ctx: DriverContext<BroadcastNode>): void {
    this.ctx = ctx;
    this.meanGapMs = ctx.prng.int(50, 600);
    this.schedule();
  }

  private schedule(): void {
    const ctx = this.ctx;
    if (ctx === undefined) return;
    ctx.after(Math.max(1, Math.round(ctx.prng.exponential(this.meanGapMs))), () => {
      if (ctx.phase() !== 'fault' || this.nextId > SIM_BROADCASTS_MAX) return;
      this.broadcast(ctx);
      this.schedule();
    });
  }

  private broadcast(ctx: DriverContext<BroadcastNode>): void {
    const id = this.nextId++;
    const payload = `m${id}.${ctx.prng.nextU32().toString(36)}`;
    const targets = this.targets(ctx);
    this.sent++;
    ctx.trace('broadcast', { id, payload, to: targets.join(',') });
    for (const node of targets) {
      // The trace line comes first: the node may deliver (and trace) inside the call.
      ctx.trace('submit', { id, node });
      const accepted = ctx.call(node, (instance) => {
        instance.submit(id, payload);
      });
      if (!accepted) ctx.trace('refused', { id, node });
    }
  }

  /** A random non-empty subset: one node half the time, otherwise each node with p = 1/2. */
  private targets(ctx: DriverContext<BroadcastNode>): NodeId[] {
    if (ctx.prng.chance(0.5)) return [ctx.prng.pick(ctx.nodes)];
    const some = ctx.nodes.filter(() => ctx.prng.chance(0.5));
    return some.length > 0 ? some : [ctx.prng.pick(ctx.nodes)];
  }
}

function create(setup: WorkloadSetup): WorkloadRun<BroadcastMessage, BroadcastNode> {
  const canary = asCanary(setup.canary);
  const nodes = setup.nodes;
  const checker = new BroadcastChecker(nodes, LIVENESS_BOUND_MS, (message) => {
    setup.violation('broadcast', message);
  });
  const driver = new BroadcastDriver();
  let deliveries = 0;
  let reformats = 0;
  const counter = {
    name: 'broadcast-stats',
    observe: (e: { source: unknown; event: string }) => {
      if (typeof e.source !== 'number') return;
      if (e.event === 'deliver') deliveries++;
      else if (e.event === 'reformat') reformats++;
    },
  };
  return {
    program: { codec: broadcastCodec, start: (env) => new BroadcastNode(env, nodes, canary) },
    driver,
    checkers: [checker, counter],
    liveness: checker,
    stats: () => [
      ['broadcasts', driver.broadcasts],
      ['deliveries', deliveries],
      ['reformats', reformats],
    ],
  };
}

/** The registered proving workload. */
export const broadcastWorkload: Workload<BroadcastMessage, BroadcastNode> = {
  name: 'broadcast',
  description: 'reliable broadcast with persistence (the proving workload until the cluster log lands)',
  canaries: BROADCAST_CANARIES,
  tolerates: { diskCorruption: true, ioErrors: false },
  nodeCount: (prng) => prng.pick([3, 3, 4, 5, 5]),
  faultPhaseMs: FAULT_PHASE_MS,
  create,
};
