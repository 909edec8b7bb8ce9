/**
 * The workloads' names, default first, without loading them: `cohort` lists them in its help
 * while the simulator itself loads only when `cohort sim` runs (a daemon's start never pays for
 * it). `WORKLOADS` (index.ts) asserts at load that it holds exactly these, in this order.
 */
export const WORKLOAD_NAMES: readonly string[] = ['raft', 'cluster', 'broadcast', 'two-node', 'dlm'];
