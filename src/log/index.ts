/**
 * The cluster log: the pure Raft core, its storage read interface, wire types and validator.
 * See docs/raft.md for the Ready contract and how this core differs from etcd-io/raft.
 * (The replicated state-machine interface and the KV store live in `state-machine.ts` and
 * `kv-state-machine.ts`; their owner exports them here.)
 */
export { RaftCore, type ProposalRef, type RaftStatus } from './raft-core.js';
export {
  type RaftConfig,
  type RaftCanary,
  type RaftTrace,
  type RaftTraceFields,
  type ReadMode,
  RAFT_CANARIES,
  RAFT_CONFIG_DEFAULTS,
  validateRaftConfig,
} from './raft-config.js';
export { RaftError, type RaftErrorCode } from './raft-error.js';
export type { Ready, ReadState, SoftState, RaftRole } from './ready.js';
export { type RaftStorage, type InitialState, MemoryRaftStorage } from './raft-storage.js';
export {
  type RaftMessage,
  type RaftMessageType,
  type Entry,
  type NormalEntry,
  type ConfEntry,
  type ConfChange,
  type ConfChangeSingle,
  type ConfState,
  type QuorumSettings,
  type VoterRole,
  DEFAULT_QUORUM_SETTINGS,
  type VoterWeight,
  type HardState,
  type Snapshot,
  type SnapshotMetadata,
  validateRaftMessage,
  validateConfState,
  validateEntry,
  entrySizeBytes,
} from './raft-message.js';
export {
  type ClusterConfig,
  applyConfChange,
  configFromConfState,
  confStateFromConfig,
  formatConfig,
  isJoint,
  isVoter,
  isWitness,
  canLead,
  jointQuorumConfig,
} from './cluster-config.js';
export {
  type ElectionRules,
  type LastManStandingView,
  electionOutcome,
  explainElection,
  isFreshLog,
  lastManStandingInput,
  lastManStandingConfChange,
  lastManStandingStep,
} from './quorum-options.js';
export { metadataOnlyEntry, entriesForFollower, snapshotForFollower } from './witness.js';
export { RaftHarness, formatEntry, formatMessage, type HarnessNode, type AddNodesOptions } from './raft-harness.js';
export * from './state-machine.js';
export * from './kv-state-machine.js';
export { kvKeyProblem, kvStoredKeyProblem } from './kv-key.js';
