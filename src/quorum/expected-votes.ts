/**
 * expected_votes: the E every quorum is measured against, for a configuration being built.
 *
 * Rules (votequorum, made safe for a replicated configuration):
 * 1. E is never below the total votes of the configuration's voters. Below it, two disjoint
 *    partitions could both hold more than half of E: split brain. An override below the total
 *    is refused at validation and never reaches this function.
 * 2. An operator override (`expected_votes`) raises E above the total, e.g. to keep a cluster
 *    from becoming quorate before a planned node joins.
 * 3. With `expected_votes_tracking`, E also never drops below the highest E the cluster has
 *    committed, so removing a voter administratively does not quietly make quorum easier.
 * 4. The only ways down are a last-man-standing step (`last-man-standing.ts`), which removes an
 *    absent voter's votes and commits the lowered E, and an explicit operator change; both
 *    reset the tracked highest to the new E.
 */
import { assert } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import { QUORUM_EXPECTED_VOTES_MAX } from '../constants.js';

/** What E is computed from. */
export interface ExpectedVotesInput {
  /** Voters of the configuration being built. */
  readonly voters: ReadonlyMap<NodeId, number>;
  /** The operator's `expected_votes`, or undefined to derive it from the voters. */
  readonly override: number | undefined;
  /** Whether `expected_votes_tracking` is on. */
  readonly tracking: boolean;
  /** Highest E committed so far (0 on a new cluster); only read when tracking. */
  readonly highestExpected: number;
}

/** Which rule set E. */
export type ExpectedVotesSource = 'total' | 'override' | 'highest-tracked';

/** E, where it came from, and the highest-expected value to remember. */
export interface ExpectedVotesDecision {
  readonly expectedVotes: number;
  readonly totalVotes: number;
  readonly source: ExpectedVotesSource;
  readonly highestExpected: number;
}

/** Computes E for a configuration by the rules above. */
export function computeExpectedVotes(input: ExpectedVotesInput): ExpectedVotesDecision {
  let total = 0;
  for (const v of input.voters.values()) total += v;
  assert(
    input.override === undefined || input.override >= total,
    `expected_votes override ${input.override} below the voters' total ${total} must be refused at validation`,
  );
  assert(
    Number.isInteger(input.highestExpected) && input.highestExpected >= 0,
    'highest expected must be a non-negative integer',
  );
  let expectedVotes = total;
  let source: ExpectedVotesSource = 'total';
  if (input.override !== undefined && input.override > expectedVotes) {
    expectedVotes = input.override;
    source = 'override';
  }
  if (input.tracking && input.highestExpected > expectedVotes) {
    expectedVotes = input.highestExpected;
    source = 'highest-tracked';
  }
  assert(expectedVotes <= QUORUM_EXPECTED_VOTES_MAX, 'expected votes above QUORUM_EXPECTED_VOTES_MAX');
  const highestExpected = input.tracking ? Math.max(input.highestExpected, expectedVotes) : expectedVotes;
  return { expectedVotes, totalVotes: total, source, highestExpected };
}
