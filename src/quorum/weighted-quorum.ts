/**
 * Weighted quorum arithmetic (votequorum semantics), the one rule behind Raft's commit and
 * election quorums and the membership's `quorate` flag.
 *
 * A configuration side has voters with weights (`votes`, at least 1) and `expectedVotes` E, at
 * least the sum of its voters' votes. A set of voters is a quorum when it holds more than half
 * of E: `floor(E/2) + 1` votes. The optional tie-breaker node carries half a vote extra, so in
 * an exact half split the half holding it wins and the other half cannot.
 *
 * The arithmetic is done in integer *units*: a vote is 2 units, the tie-breaker adds 1, and a
 * set wins when its units exceed E. Why this is safe: two disjoint sets hold at most
 * `2 * sum(votes) + 1 <= 2E + 1` units between them, but two winners would need `2E + 2`. So two
 * disjoint sets can never both be quorums of one side, and therefore never of a joint
 * configuration either (each would need a quorum of the incoming side). This holds for any E
 * at or above the sum of votes, which is why a side whose E exceeds its voters' votes may need
 * every voter, or may never win at all (the wait-for-all / last-man-standing safety).
 *
 * All functions here are pure and allocation-free on their hot paths. They assert (a programmer
 * error) when handed a configuration that `validateQuorumConfig` would refuse: configurations
 * come from the cluster log, where they were validated before they were proposed.
 */
import { assert } from '../lib/assert.js';
import { CohortError, err, ok, type Result } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import { CLUSTER_NODES_MAX, QUORUM_EXPECTED_VOTES_MAX, RAFT_VOTES_PER_NODE_MAX } from '../constants.js';

/** One side of a (possibly joint) configuration. */
export interface QuorumConfig {
  /** nodeId -> votes, each an integer in [1, RAFT_VOTES_PER_NODE_MAX]; non-voters are absent. */
  readonly voters: ReadonlyMap<NodeId, number>;
  /** At least the sum of the voters' votes; a quorum is `floor(expectedVotes / 2) + 1` votes. */
  readonly expectedVotes: number;
  /** A voter of this side that wins an exact half split (auto_tie_breaker); absent: no tie-breaker. */
  readonly tieBreaker?: NodeId;
}

/**
 * A configuration, joint while a change is in flight (Raft joint consensus): a decision needs a
 * quorum of `incoming` and, when present, of `outgoing` too.
 */
export interface JointQuorumConfig {
  readonly incoming: QuorumConfig;
  readonly outgoing?: QuorumConfig;
}

/** Result of counting an election or any yes/no poll. */
export type VoteOutcome = 'won' | 'lost' | 'pending';

/** Codes of `QuorumConfigError`. */
export type QuorumConfigErrorCode =
  | 'QUORUM_TOO_MANY_VOTERS'
  | 'QUORUM_BAD_VOTES'
  | 'QUORUM_BAD_EXPECTED_VOTES'
  | 'QUORUM_EXPECTED_BELOW_TOTAL'
  | 'QUORUM_TIE_BREAKER_NOT_VOTER'
  | 'QUORUM_BAD_TIE_BREAKER'
  | 'QUORUM_BAD_WITNESS'
  | 'QUORUM_BAD_OPTION';

/** A configuration that would break the quorum rules; raised before it is ever proposed. */
export class QuorumConfigError extends CohortError {
  override readonly name = 'QuorumConfigError';
  declare readonly code: QuorumConfigErrorCode;

  // Not useless: it narrows `code` to the quorum codes at every construction site.
  // eslint-disable-next-line @typescript-eslint/no-useless-constructor
  constructor(code: QuorumConfigErrorCode, message: string) {
    super(code, message);
  }
}

/** Units a voter contributes: 2 per vote, plus 1 for the tie-breaker. */
function voterUnits(config: QuorumConfig, id: NodeId, votes: number): number {
  return 2 * votes + (id === config.tieBreaker ? 1 : 0);
}

/** Asserts a voter's weight is legal; cheap enough for the hot path. */
function checkVotes(votes: number): void {
  assert(
    Number.isInteger(votes) && votes >= 1 && votes <= RAFT_VOTES_PER_NODE_MAX,
    `voter votes must be an integer in [1, ${RAFT_VOTES_PER_NODE_MAX}], got ${votes}`,
  );
}

/** Asserts the whole-side invariants once the votes were summed during the caller's pass. */
function checkSide(config: QuorumConfig, totalVotes: number): void {
  assert(
    config.expectedVotes >= totalVotes,
    `expectedVotes ${config.expectedVotes} is below the voters' total ${totalVotes}: two disjoint quorums would be possible`,
  );
  assert(
    config.expectedVotes <= QUORUM_EXPECTED_VOTES_MAX && Number.isInteger(config.expectedVotes),
    'expectedVotes must be an integer within QUORUM_EXPECTED_VOTES_MAX',
  );
  assert(
    config.tieBreaker === undefined || config.voters.has(config.tieBreaker),
    'the tie-breaker must be a voter of its side',
  );
}

/**
 * Checks a configuration side as a whole; the error says what is wrong and how to fix it.
 * Call it on every configuration before proposing it; the arithmetic below asserts the same.
 */
export function validateQuorumConfig(config: QuorumConfig): Result<QuorumConfig, QuorumConfigError> {
  if (config.voters.size > CLUSTER_NODES_MAX) {
    return err(
      new QuorumConfigError(
        'QUORUM_TOO_MANY_VOTERS',
        `${config.voters.size} voters configured; at most ${CLUSTER_NODES_MAX} are supported: make the extra nodes non-voting (votes 0)`,
      ),
    );
  }
  let total = 0;
  for (const [id, votes] of config.voters) {
    if (!Number.isInteger(votes) || votes < 1 || votes > RAFT_VOTES_PER_NODE_MAX) {
      return err(
        new QuorumConfigError(
          'QUORUM_BAD_VOTES',
          `node ${id} has votes ${votes}; a voter needs an integer from 1 to ${RAFT_VOTES_PER_NODE_MAX} (use votes 0 to make it a non-voting learner instead)`,
        ),
      );
    }
    total += votes;
  }
  const e = config.expectedVotes;
  if (!Number.isInteger(e) || e < 0 || e > QUORUM_EXPECTED_VOTES_MAX) {
    return err(
      new QuorumConfigError(
        'QUORUM_BAD_EXPECTED_VOTES',
        `expected votes ${e} must be an integer from 0 to ${QUORUM_EXPECTED_VOTES_MAX}`,
      ),
    );
  }
  if (e < total) {
    return err(
      new QuorumConfigError(
        'QUORUM_EXPECTED_BELOW_TOTAL',
        `expected votes ${e} is below the ${total} votes of the configured voters, which would let two separate partitions both be quorate; set expected votes to at least ${total} or remove voters`,
      ),
    );
  }
  if (config.tieBreaker !== undefined && !config.voters.has(config.tieBreaker)) {
    return err(
      new QuorumConfigError(
        'QUORUM_TIE_BREAKER_NOT_VOTER',
        `tie-breaker node ${config.tieBreaker} is not a voter of this configuration; name a voting node or turn the tie-breaker off`,
      ),
    );
  }
  return ok(config);
}

/** Votes a quorum of `config` needs without the tie-breaker: `floor(E/2) + 1`. */
export function quorumVotes(config: QuorumConfig): number {
  return Math.floor(config.expectedVotes / 2) + 1;
}

function sideOutcome(config: QuorumConfig, votes: ReadonlyMap<NodeId, boolean>): VoteOutcome {
  assert(config.voters.size <= CLUSTER_NODES_MAX, 'too many voters');
  let granted = 0;
  let unknown = 0;
  let total = 0;
  for (const [id, weight] of config.voters) {
    checkVotes(weight);
    total += weight;
    const v = votes.get(id);
    if (v === true) granted += voterUnits(config, id, weight);
    else if (v === undefined) unknown += voterUnits(config, id, weight);
  }
  checkSide(config, total);
  if (granted > config.expectedVotes) return 'won';
  if (granted + unknown <= config.expectedVotes) return 'lost';
  return 'pending';
}

/**
 * Counts a poll. `votes` maps a voter to its answer (true = granted); voters missing from it
 * have not answered; entries for non-voters are ignored. 'won' once the granted voters are a
 * quorum of every side, 'lost' as soon as some side can no longer reach a quorum even if every
 * unanswered voter granted, otherwise 'pending'.
 */
export function voteOutcome(config: JointQuorumConfig, votes: ReadonlyMap<NodeId, boolean>): VoteOutcome {
  const incoming = sideOutcome(config.incoming, votes);
  if (config.outgoing === undefined) return incoming;
  const outgoing = sideOutcome(config.outgoing, votes);
  if (incoming === 'lost' || outgoing === 'lost') return 'lost';
  if (incoming === 'won' && outgoing === 'won') return 'won';
  return 'pending';
}

// Scratch space for `committedIndex`: one cluster at most, reused on every call so the commit
// hot path allocates nothing. Safe because cores are synchronous and never re-entered.
const scratchMatch = new Float64Array(CLUSTER_NODES_MAX);
const scratchUnits = new Uint16Array(CLUSTER_NODES_MAX);

function sideCommittedIndex(config: QuorumConfig, match: ReadonlyMap<NodeId, number>): number {
  assert(config.voters.size <= CLUSTER_NODES_MAX, 'too many voters');
  let n = 0;
  let total = 0;
  for (const [id, weight] of config.voters) {
    checkVotes(weight);
    total += weight;
    const m = match.get(id) ?? 0;
    assert(
      Number.isSafeInteger(m) && m >= 0,
      `match index of node ${id} must be a non-negative safe integer, got ${m}`,
    );
    const units = voterUnits(config, id, weight);
    // Insertion sort, descending by match: n <= 64, and it needs no allocation.
    let j = n;
    while (j > 0 && (scratchMatch[j - 1] as number) < m) {
      scratchMatch[j] = scratchMatch[j - 1] as number;
      scratchUnits[j] = scratchUnits[j - 1] as number;
      j--;
    }
    scratchMatch[j] = m;
    scratchUnits[j] = units;
    n++;
  }
  checkSide(config, total);
  // Walking down from the highest match, the first prefix whose units exceed E is the smallest
  // quorum; every voter in it has match >= the prefix's last match, which is the answer. Any
  // higher index is held only by a strict sub-prefix, which is not a quorum.
  let acc = 0;
  for (let i = 0; i < n; i++) {
    acc += scratchUnits[i] as number;
    if (acc > config.expectedVotes) return scratchMatch[i] as number;
  }
  return 0;
}

/**
 * The largest index replicated on a quorum: the largest `i` such that the voters whose match
 * is at least `i` form a quorum of every side (the minimum over the joint sides). Voters absent
 * from `match` count as 0; non-voters in `match` are ignored. Returns 0 when no index is held
 * by a quorum (including a side that can never win). Raft must still only commit entries of the
 * leader's own term; that check belongs to the caller.
 */
export function committedIndex(config: JointQuorumConfig, match: ReadonlyMap<NodeId, number>): number {
  const incoming = sideCommittedIndex(config.incoming, match);
  if (config.outgoing === undefined) return incoming;
  return Math.min(incoming, sideCommittedIndex(config.outgoing, match));
}

/** Units held by the members of `reachable` in one side (summing the side's votes on the way). */
function reachableUnits(config: QuorumConfig, reachable: ReadonlySet<NodeId>): number {
  assert(config.voters.size <= CLUSTER_NODES_MAX, 'too many voters');
  let units = 0;
  let total = 0;
  for (const [id, weight] of config.voters) {
    checkVotes(weight);
    total += weight;
    if (reachable.has(id)) units += voterUnits(config, id, weight);
  }
  checkSide(config, total);
  return units;
}

/** Whether `reachable` (non-voters ignored) holds a quorum of every side. */
export function hasQuorum(config: JointQuorumConfig, reachable: ReadonlySet<NodeId>): boolean {
  if (reachableUnits(config.incoming, reachable) <= config.incoming.expectedVotes) return false;
  if (config.outgoing === undefined) return true;
  return reachableUnits(config.outgoing, reachable) > config.outgoing.expectedVotes;
}

/** Why one side is or is not quorate for a given set of present nodes. */
export interface SideExplanation {
  readonly quorate: boolean;
  /** Votes of the present voters. */
  readonly presentVotes: number;
  /** Sum of the votes of every voter of the side. */
  readonly totalVotes: number;
  readonly expectedVotes: number;
  /** `floor(expectedVotes / 2) + 1`. */
  readonly quorumVotes: number;
  /** The side's tie-breaker, whether it is present, and whether it decided the outcome. */
  readonly tieBreaker: { readonly nodeId: NodeId; readonly present: boolean; readonly decisive: boolean } | undefined;
  /** Voters not present, ascending by node id. */
  readonly missing: readonly NodeId[];
}

/** `explainSide` for both sides of a joint configuration; quorate only if every side is. */
export interface QuorumExplanation {
  readonly quorate: boolean;
  readonly incoming: SideExplanation;
  readonly outgoing: SideExplanation | undefined;
}

/**
 * Explains `hasQuorum` for one side (not a hot path: allocates the `missing` list). The tie-breaker
 * is decisive when the present voters hold exactly half of E with it and so win only because of it.
 */
export function explainSide(config: QuorumConfig, present: ReadonlySet<NodeId>): SideExplanation {
  let presentVotes = 0;
  let totalVotes = 0;
  const missing: NodeId[] = [];
  for (const [id, weight] of config.voters) {
    checkVotes(weight);
    totalVotes += weight;
    if (present.has(id)) presentVotes += weight;
    else missing.push(id);
  }
  checkSide(config, totalVotes);
  missing.sort((a, b) => a - b);
  const tb = config.tieBreaker;
  const tbPresent = tb !== undefined && present.has(tb);
  const units = 2 * presentVotes + (tbPresent ? 1 : 0);
  const quorate = units > config.expectedVotes;
  return {
    quorate,
    presentVotes,
    totalVotes,
    expectedVotes: config.expectedVotes,
    quorumVotes: quorumVotes(config),
    tieBreaker:
      tb === undefined
        ? undefined
        : { nodeId: tb, present: tbPresent, decisive: quorate && 2 * presentVotes <= config.expectedVotes },
    missing,
  };
}

/** Explains `hasQuorum` for a joint configuration (for events, logs and `cohort quorum`). */
export function explainQuorum(config: JointQuorumConfig, present: ReadonlySet<NodeId>): QuorumExplanation {
  const incoming = explainSide(config.incoming, present);
  const outgoing = config.outgoing === undefined ? undefined : explainSide(config.outgoing, present);
  return { quorate: incoming.quorate && (outgoing === undefined || outgoing.quorate), incoming, outgoing };
}

/** A simple (non-joint) configuration: every listed voter with 1 vote, E = voter count. */
export function majorityConfig(voters: readonly NodeId[]): JointQuorumConfig {
  assert(voters.length <= CLUSTER_NODES_MAX, 'too many voters');
  const map = new Map<NodeId, number>();
  for (const id of voters) map.set(id, 1);
  assert(map.size === voters.length, 'voter ids must be distinct');
  return { incoming: { voters: map, expectedVotes: map.size } };
}
