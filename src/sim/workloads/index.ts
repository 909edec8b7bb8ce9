/**
 * The workload registry: `cohort sim --workload NAME` picks from here. To add a workload, write
 * one module exporting a `Workload` and add it to `WORKLOADS` (the first entry is the default) and
 * its name to `WORKLOAD_NAMES` in names.ts (checked at load).
 */
import { assert, defined } from '../../lib/assert.js';
import { WORKLOAD_NAMES } from './names.js';
import type { Workload } from '../workload.js';
import { runSimulation, type SimOptions, type SimResult } from '../simulation.js';
import { broadcastWorkload } from './broadcast.js';
import { clusterWorkload, twoNodeWorkload } from './cluster.js';
import { raftWorkload } from './raft.js';
import { dlmWorkload } from './dlm.js';

/** A workload with its message and instance types erased, ready to run a seed. */
export interface WorkloadEntry {
  readonly name: string;
  readonly description: string;
  readonly canaries: readonly string[];
  run(options: SimOptions): SimResult;
}

function entry<M, I>(w: Workload<M, I>): WorkloadEntry {
  return {
    name: w.name,
    description: w.description,
    canaries: w.canaries,
    run: (options) => runSimulation(w, options),
  };
}

/** Every workload, default first. */
export const WORKLOADS: readonly WorkloadEntry[] = [
  entry(raftWorkload),
  entry(clusterWorkload),
  entry(broadcastWorkload),
  entry(twoNodeWorkload),
  entry(dlmWorkload),
];
assert(
  WORKLOADS.map((w) => w.name).join() === WORKLOAD_NAMES.join(),
  'WORKLOAD_NAMES (names.ts) lists every workload, default first',
);

/** The workload named `name`, or undefined. */
export function findWorkload(name: string): WorkloadEntry | undefined {
  return WORKLOADS.find((w) => w.name === name);
}

/** The default workload's name. */
export function defaultWorkloadName(): string {
  return defined(WORKLOADS[0], 'the default workload').name;
}
