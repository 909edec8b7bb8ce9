/**
 * Fencing (issue 12, docs/design/fencing-and-recovery.md sections 2 and 3): the shared fence
 * topology, the fence ledger held by the membership state machine, the record pieces and their
 * codec, the pure fence scheduler the leader's executor follows, the agents' pure parts and the
 * self-fence rule. Pure cores: no clocks, no I/O; times are the caller's wall clock in ms. (The
 * service adapter, `fence-service.ts`, is imported directly by `src/services.ts`.)
 */
export {
  FENCE_ACTIONS,
  FENCE_AGENT_KINDS,
  MANUAL_ONLY_TOPOLOGY,
  deviceNameProblem,
  plugFor,
  topologyProblems,
  type ExecDevice,
  type FenceAction,
  type FenceAgentKind,
  type FenceDevice,
  type FenceLevel,
  type FenceTopology,
  type ManualDevice,
  type ProcessDevice,
  type WatchdogDevice,
} from './fence-topology.js';
export {
  FENCE_ATTEMPT_RESULTS,
  FENCE_DURATION_MS_MAX,
  FENCE_PROOF_KINDS,
  FENCE_ROUND_MAX,
  fenceAttemptProblem,
  fenceProofProblem,
  fenceUnfenceProblem,
  isBareConfirm,
  readFenceAttempt,
  readFenceProof,
  readFenceUnfence,
  readShortText,
  utf8Bytes,
  writeFenceAttempt,
  writeFenceProof,
  writeFenceUnfence,
  writeShortText,
  type FenceAttempt,
  type FenceProof,
  type FenceUnfence,
} from './fence-attempt.js';
export {
  fenceActionOf,
  nextFenceStep,
  roundBackoffMs,
  type FenceManualReason,
  type FenceSchedulerInput,
  type FenceStep,
  type FenceWaitReason,
} from './fence-scheduler.js';
export {
  CLIP_MARK,
  agentAttemptResult,
  agentProcessSpec,
  clipUtf8,
  outputExcerpt,
  targetFor,
  type AgentRequest,
  type AgentTarget,
  type AttemptOutcome,
  type AttemptResult,
  type PowerStatus,
} from './fence-agent.js';
export { selfFenceVerdict, type SelfFenceInput, type SelfFenceVerdict } from './self-fence.js';
export { FenceLedger, type FenceLedgerOutcome, type FenceOutcome, type FenceRecord } from './fence-ledger.js';
