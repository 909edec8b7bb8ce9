/**
 * Membership (issue 6): the replicated membership state machine with views, incarnations and
 * the quorate flag; the event stream; the leader's failure detector; local quorum knowledge.
 * Pure cores: no clocks, no I/O. See docs/membership.md.
 */
export {
  type MemberRole,
  type MemberNodeSpec,
  type FailReason,
  type QuarantineReason,
  type MembershipCommand,
  type MembershipCommandType,
  EVIDENCE_MS_MAX,
  validateMembershipCommand,
  encodeMembershipCommand,
  decodeMembershipCommand,
  membershipCommandCodec,
} from './membership-command.js';
export {
  type NodeStatus,
  type QuorumReason,
  type ViewMember,
  type ViewChangeKind,
  type ViewPayload,
  type QuorumPayload,
  type NodePayload,
  type MembershipEvent,
  type FenceEventWhat,
  type FencePayload,
  FENCE_EVENT_WHATS,
  type EventBody,
  type EventPage,
  type MembershipEventErrorCode,
  MembershipEventError,
  EventLog,
  EVENT_EXPLANATION_BYTES_MAX,
  EVENT_CAUSE_BYTES_MAX,
  clipText,
} from './membership-event.js';
export {
  type NodeRecord,
  type MembershipOutcome,
  type Transition,
  type NodeCommand,
  FRESH_RECORD,
  transition,
  describeFailReason,
  describeQuarantineReason,
} from './node-record.js';
export {
  type MembershipOutput,
  type MembershipErrorCode,
  type MembershipView,
  type NodeInfo,
  type MembershipCanary,
  MEMBERSHIP_CANARIES,
  MembershipStateMachine,
} from './membership-state-machine.js';
export { type ReachabilityEntry, type ReachabilityRow, ReachabilityTracker } from './reachability-tracker.js';
export { ARRIVAL_RISE_RATE, ArrivalLateness } from './arrival-lateness.js';
export {
  type DetectorTimes,
  type FailureDetectorOptions,
  type DetectorEvidence,
  type DetectorDecision,
  type WatchStatus,
  LAG_EXTENSION_FACTOR,
  detectorOptions,
  FailureDetector,
} from './failure-detector.js';
export {
  type LocalQuorumInput,
  type LocalQuorumReason,
  type LocalQuorumStatus,
  localQuorumStatus,
} from './local-quorum.js';
export {
  CHANNEL_MEMBERSHIP,
  CLUSTER_CANARIES,
  MEMBERSHIP_CHANNEL,
  MUX_TAG_MEMBERSHIP,
  MembershipService,
  bootstrapConfState,
  type ClusterCanary,
  type ClusterTiming,
  type MembershipObserver,
  type MembershipServiceOptions,
} from './membership-service.js';
export {
  FenceConfirmError,
  fenceTarget,
  type ClusterStatus,
  type FenceConfirmErrorCode,
  type FenceConfirmation,
  type StatusMember,
} from './membership-status.js';
export { ROW_SILENCE_MS_MAX, pingCodec, validatePingMessage, type PingMessage } from './ping-message.js';
export { MembershipLiveness } from './membership-liveness.js';
