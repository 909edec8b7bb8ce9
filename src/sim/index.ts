/** The deterministic simulator: run one seed, run a batch, and the workload registry. */
export { runSimulation, type SimOptions, type SimResult, type Violation } from './simulation.js';
export {
  deriveSeeds,
  parseSeedFile,
  runBatch,
  runSeed,
  type BatchResult,
  type SeedJob,
  type SeedSummary,
} from './seed-runner.js';
export { defaultWorkloadName, findWorkload, WORKLOADS, type WorkloadEntry } from './workloads/index.js';
export type {
  Checker,
  Driver,
  DriverContext,
  FaultTolerance,
  Liveness,
  NodeProgram,
  SimPhase,
  Workload,
  WorkloadRun,
  WorkloadSetup,
} from './workload.js';
export { formatEvent, formatTimeUs, type SimEvent } from './trace.js';
export { PARTITION_SHAPES, makePartition, type Partition, type PartitionShape } from './partition.js';
