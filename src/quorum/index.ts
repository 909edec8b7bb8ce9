/** Pure weighted-quorum arithmetic and votequorum policy (DESIGN.md section 4); see docs/quorum.md. */
export {
  type QuorumConfig,
  type JointQuorumConfig,
  type VoteOutcome,
  type SideExplanation,
  type QuorumExplanation,
  type QuorumConfigErrorCode,
  QuorumConfigError,
  validateQuorumConfig,
  quorumVotes,
  voteOutcome,
  committedIndex,
  hasQuorum,
  explainSide,
  explainQuorum,
  majorityConfig,
} from './weighted-quorum.js';
export { type TieBreakerMode, resolveTieBreaker, validateTieBreakerMode } from './tie-breaker.js';
export {
  type ExpectedVotesInput,
  type ExpectedVotesSource,
  type ExpectedVotesDecision,
  computeExpectedVotes,
} from './expected-votes.js';
export {
  type WaitForAllState,
  type WaitForAllEvent,
  type WaitForAllRelease,
  initialWaitForAll,
  stepWaitForAll,
  missingVoters,
  isWaiting,
} from './wait-for-all.js';
export {
  type LastManStandingInput,
  type LastManStandingDecision,
  type LastManStandingHoldReason,
  decideLastManStanding,
} from './last-man-standing.js';
export {
  type NodeRole,
  type NodeVoteSpec,
  type VotequorumOptions,
  type VotequorumSetup,
  DEFAULT_VOTEQUORUM_OPTIONS,
  votersOf,
  buildVotequorum,
} from './votequorum-options.js';
export {
  type TwoNodeHook,
  type ArbitrationInput,
  type ArbitrationReason,
  type Arbitration,
  arbitrate,
} from './arbitration.js';
