/**
 * The `cohort` package: the client library for talking to a local daemon (`connect`), embedded
 * mode (`startCluster`: a whole cluster in this process, for tests and single-process use),
 * plus the pure building blocks other programs may embed (the Raft core, the quorum arithmetic,
 * the KV state machine). The daemon, the CLI and the simulator are reached through the `cohort` command.
 */
export * from './client/index.js';
export {
  EMBEDDED_NODES_MAX,
  EmbeddedCluster,
  startCluster,
  type EmbeddedNode,
  type RestartNodeOptions,
  type StartClusterOptions,
  type StopNodeOptions,
  type WaitOptions,
} from './embedded/index.js';
export { CohortError, DecodeError, type Result } from './lib/errors.js';
export type { NodeId, Term, LogIndex, ViewId, Incarnation, FencingToken } from './lib/ids.js';
export {
  voteOutcome,
  committedIndex,
  hasQuorum,
  type QuorumConfig,
  type JointQuorumConfig,
  type VoteOutcome,
} from './quorum/index.js';
