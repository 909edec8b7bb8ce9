/**
 * Embedded mode: a real cohort cluster in one process (`startCluster`), with `CohortClient`s
 * that run the daemon's API handlers in-process. For application tests and single-process use;
 * see docs/client.md.
 */
export {
  EMBEDDED_NODES_MAX,
  EMBEDDED_WAIT_MS_DEFAULT,
  EmbeddedCluster,
  startCluster,
  type EmbeddedDiskFault,
  type EmbeddedNode,
  type RestartNodeOptions,
  type StartClusterOptions,
  type StopNodeOptions,
  type WaitOptions,
} from './embedded-cluster.js';
export { InProcessApi, InProcessChannel } from './in-process-api.js';
