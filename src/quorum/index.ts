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
