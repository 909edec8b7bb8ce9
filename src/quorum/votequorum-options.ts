/**
 * votequorum options as cohort configures them, validated as a whole, and the quorum
 * configuration they produce. Each option is documented in docs/quorum.md.
 *
 * Witness: a voter that holds votes but stores no data (a tiny `cohort witness` process, like
 * corosync-qnetd) so that an even-sized cluster survives the loss of half its data nodes. The
 * arithmetic treats it as any voter; one extra rule keeps data safe: the witnesses alone must
 * never be a quorum, so every quorum (and so every commit) includes at least one data node.
 */
import { err, ok, type Result } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import {
  CLUSTER_NODES_MAX,
  QUORUM_EXPECTED_VOTES_MAX,
  QUORUM_LMS_WINDOW_TICKS_MAX,
  RAFT_VOTES_PER_NODE_MAX,
} from '../constants.js';
import { computeExpectedVotes, type ExpectedVotesDecision } from './expected-votes.js';
import { resolveTieBreaker, validateTieBreakerMode, type TieBreakerMode } from './tie-breaker.js';
import { QuorumConfigError, hasQuorum, validateQuorumConfig, type QuorumConfig } from './weighted-quorum.js';

/** What a configured node stores: everything (`data`) or only what voting needs (`witness`). */
export type NodeRole = 'data' | 'witness';

/** One configured node's vote. `votes` 0 makes a non-voting member (a Raft learner). */
export interface NodeVoteSpec {
  readonly nodeId: NodeId;
  readonly votes: number;
  readonly role: NodeRole;
}

/** The votequorum options (corosync names in brackets). */
export interface VotequorumOptions {
  /** [expected_votes] an explicit E, at least the configured total; undefined derives it. */
  readonly expectedVotes: number | undefined;
  /** [expected_votes_tracking] never let E drop below the highest E committed. */
  readonly expectedVotesTracking: boolean;
  /** [wait_for_all] not quorate after a start until every voter was seen at once. */
  readonly waitForAll: boolean;
  /** [auto_tie_breaker, auto_tie_breaker_node] who wins an exact half split. */
  readonly autoTieBreaker: TieBreakerMode;
  /** [last_man_standing] shrink E one step after each stable window. */
  readonly lastManStanding: boolean;
  /** [last_man_standing_window] the window, in ticks. */
  readonly lastManStandingWindowTicks: number;
  /**
   * [two_node] a two-voter cluster whose lone survivor may stay quorate, but only once the
   * fencing layer confirms its peer is fenced (see `arbitration.ts`). Implies wait_for_all.
   */
  readonly twoNode: boolean;
}

/** Defaults: plain majority of the configured votes, every option off. */
export const DEFAULT_VOTEQUORUM_OPTIONS: VotequorumOptions = {
  expectedVotes: undefined,
  expectedVotesTracking: false,
  waitForAll: false,
  autoTieBreaker: { kind: 'off' },
  lastManStanding: false,
  lastManStandingWindowTicks: 100,
  twoNode: false,
};

/** Voters (votes >= 1) of the node list, ascending by node id. */
export function votersOf(nodes: readonly NodeVoteSpec[]): Map<NodeId, number> {
  const sorted = [...nodes].filter((n) => n.votes > 0).sort((a, b) => a.nodeId - b.nodeId);
  return new Map(sorted.map((n) => [n.nodeId, n.votes]));
}

function bad(code: QuorumConfigError['code'], message: string): Result<never, QuorumConfigError> {
  return err(new QuorumConfigError(code, message));
}

function checkNodes(nodes: readonly NodeVoteSpec[]): Result<true, QuorumConfigError> {
  if (nodes.length > CLUSTER_NODES_MAX)
    return bad(
      'QUORUM_TOO_MANY_VOTERS',
      `${nodes.length} nodes configured; at most ${CLUSTER_NODES_MAX} are supported`,
    );
  const seen = new Set<NodeId>();
  for (const n of nodes) {
    if (seen.has(n.nodeId))
      return bad('QUORUM_BAD_OPTION', `node ${n.nodeId} is configured twice; give every node a distinct id`);
    seen.add(n.nodeId);
    if (!Number.isInteger(n.votes) || n.votes < 0 || n.votes > RAFT_VOTES_PER_NODE_MAX) {
      return bad(
        'QUORUM_BAD_VOTES',
        `node ${n.nodeId} has votes ${n.votes}; use an integer from 0 (non-voting) to ${RAFT_VOTES_PER_NODE_MAX}`,
      );
    }
    if (n.role === 'witness' && n.votes === 0)
      return bad(
        'QUORUM_BAD_WITNESS',
        `witness node ${n.nodeId} has no votes; a witness exists only to vote, give it votes >= 1`,
      );
  }
  return ok(true);
}

function checkWitnesses(nodes: readonly NodeVoteSpec[], config: QuorumConfig): Result<true, QuorumConfigError> {
  const witnesses = new Set(nodes.filter((n) => n.role === 'witness').map((n) => n.nodeId));
  if (witnesses.size === 0) return ok(true);
  if (witnesses.size === config.voters.size)
    return bad('QUORUM_BAD_WITNESS', 'every voter is a witness; at least one voter must store data');
  if (hasQuorum({ incoming: config }, witnesses)) {
    return bad(
      'QUORUM_BAD_WITNESS',
      `the witnesses (${[...witnesses].join(',')}) hold a quorum on their own, so a commit could live on no data node; give data nodes more votes or witnesses fewer`,
    );
  }
  return ok(true);
}

function checkOptions(options: VotequorumOptions, total: number, voterCount: number): Result<true, QuorumConfigError> {
  const e = options.expectedVotes;
  if (e !== undefined && (!Number.isInteger(e) || e < total || e > QUORUM_EXPECTED_VOTES_MAX)) {
    return bad(
      'QUORUM_EXPECTED_BELOW_TOTAL',
      `expected_votes ${e} must be an integer from the configured total ${total} to ${QUORUM_EXPECTED_VOTES_MAX}; below the total, two partitions could both be quorate`,
    );
  }
  const w = options.lastManStandingWindowTicks;
  if (!Number.isInteger(w) || w < 1 || w > QUORUM_LMS_WINDOW_TICKS_MAX) {
    return bad(
      'QUORUM_BAD_OPTION',
      `last_man_standing_window ${w} ticks must be an integer from 1 to ${QUORUM_LMS_WINDOW_TICKS_MAX}`,
    );
  }
  if (options.twoNode && (voterCount !== 2 || total !== 2)) {
    return bad(
      'QUORUM_BAD_OPTION',
      `two_node needs exactly two voters with one vote each (found ${voterCount} voters, ${total} votes); turn two_node off for larger clusters`,
    );
  }
  if (options.twoNode && !options.waitForAll) {
    return bad(
      'QUORUM_BAD_OPTION',
      'two_node requires wait_for_all: a node booting alone must not take over before it has seen its peer once',
    );
  }
  return ok(true);
}

/** A validated quorum setup: the configuration to commit first and how E was chosen. */
export interface VotequorumSetup {
  readonly config: QuorumConfig;
  readonly expected: ExpectedVotesDecision;
  readonly options: VotequorumOptions;
}

/**
 * Validates the nodes and options as a whole and builds the initial configuration side. Every
 * error names the node or option at fault and what to change.
 */
export function buildVotequorum(
  nodes: readonly NodeVoteSpec[],
  options: VotequorumOptions,
  highestExpected = 0,
): Result<VotequorumSetup, QuorumConfigError> {
  const checked = checkNodes(nodes);
  if (!checked.ok) return checked;
  const voters = votersOf(nodes);
  let total = 0;
  for (const v of voters.values()) total += v;
  if (voters.size === 0) return bad('QUORUM_BAD_OPTION', 'no node has votes; give at least one node votes >= 1');
  const opts = checkOptions(options, total, voters.size);
  if (!opts.ok) return opts;
  const tbMode = validateTieBreakerMode(options.autoTieBreaker, voters);
  if (!tbMode.ok) return tbMode;
  const expected = computeExpectedVotes({
    voters,
    override: options.expectedVotes,
    tracking: options.expectedVotesTracking,
    highestExpected,
  });
  const tb = resolveTieBreaker(options.autoTieBreaker, voters);
  const config: QuorumConfig =
    tb === undefined
      ? { voters, expectedVotes: expected.expectedVotes }
      : { voters, expectedVotes: expected.expectedVotes, tieBreaker: tb };
  const valid = validateQuorumConfig(config);
  if (!valid.ok) return valid;
  const witnesses = checkWitnesses(nodes, config);
  if (!witnesses.ok) return witnesses;
  return ok({ config, expected, options });
}
