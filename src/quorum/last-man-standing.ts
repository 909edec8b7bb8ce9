/**
 * last_man_standing: after the membership has been stable for a window, shrink expected votes
 * by one step so the survivors of a slow, rolling failure stay quorate (5 -> 4 -> 3 -> 2).
 *
 * The rule, and why each part is there:
 * - Only a quorate partition steps, and the step is proposed as a joint configuration change
 *   that the present nodes can commit (a quorum of the old *and* the new side). A minority can
 *   never shrink its way into quorum.
 * - One step at a time, each after a full stable window (`stableTicks`: ticks since the
 *   membership or the configuration last changed; the caller resets it on either). A node that
 *   merely restarts or flaps gets a window to come back before its vote is written off.
 * - A step never lowers E below the voters' total: it *removes the absent voter's votes* from
 *   the configuration (the node stays configured and becomes a non-voter), so the arithmetic's
 *   safety proof still holds. Lowering E alone while the absent voters kept their votes would
 *   let the departed nodes and the survivors both be quorate (a classic votequorum LMS hazard).
 *   If E exceeds the total (an override or tracked highest), the step lowers E by one vote.
 * - Which absent voter goes first: fewest votes (the smallest step), then the highest node id.
 * - Never below `QUORUM_LMS_EXPECTED_VOTES_FLOOR` (2). A lone survivor of two is the two_node
 *   case, which needs its peer confirmed fenced (the fencing layer's hook, see `arbitration.ts`).
 * - A step that would let the witnesses alone be a quorum is refused (a commit must reach data).
 * - The reverse step: when a configured voter whose votes were removed is present again for a
 *   full window, its votes are restored (E rises), one node per step, before any lowering.
 */
import { assert } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import { QUORUM_LMS_EXPECTED_VOTES_FLOOR, QUORUM_LMS_WINDOW_TICKS_MAX } from '../constants.js';
import { resolveTieBreaker, type TieBreakerMode } from './tie-breaker.js';
import { hasQuorum, type QuorumConfig } from './weighted-quorum.js';

/** Everything the decision reads; all of it comes from committed state plus the tick counter. */
export interface LastManStandingInput {
  readonly enabled: boolean;
  readonly windowTicks: number;
  /** Ticks since the membership or the configuration last changed. */
  readonly stableTicks: number;
  /** The committed configuration (not joint: see `jointInFlight`). */
  readonly config: QuorumConfig;
  /** True while a configuration change is in flight; no step is proposed until it settles. */
  readonly jointInFlight: boolean;
  /** Nodes in the current membership view. */
  readonly present: ReadonlySet<NodeId>;
  /** Every configured node's configured votes (0 for learners): the votes a restore gives back. */
  readonly configuredVotes: ReadonlyMap<NodeId, number>;
  /** The tie-breaker mode, re-resolved for the proposed voters. */
  readonly tieBreaker: TieBreakerMode;
  /** Witness nodes: a step that would let them alone be a quorum is refused. */
  readonly witnesses: ReadonlySet<NodeId>;
}

/** Why no step is proposed now. */
export type LastManStandingHoldReason =
  | 'disabled'
  | 'joint-in-flight'
  | 'window-pending'
  | 'not-quorate'
  | 'nothing-absent'
  | 'at-floor'
  | 'witness-majority';

/** The decision, with what an event or `cohort quorum` needs to explain it. */
export type LastManStandingDecision =
  | {
      readonly kind: 'hold';
      readonly reason: LastManStandingHoldReason;
      readonly expectedVotes: number;
      /** Ticks left in the window when `window-pending`, else 0. */
      readonly ticksRemaining: number;
    }
  | {
      readonly kind: 'lower' | 'raise';
      readonly expectedVotesBefore: number;
      readonly expectedVotesAfter: number;
      /** The voter whose votes are removed (lower) or restored (raise); undefined when a lower step only trims E's excess. */
      readonly node: NodeId | undefined;
      /** The proposed configuration side, to commit as the incoming side of a joint change. */
      readonly proposed: QuorumConfig;
    };

function hold(
  reason: LastManStandingHoldReason,
  input: LastManStandingInput,
  ticksRemaining = 0,
): LastManStandingDecision {
  return { kind: 'hold', reason, expectedVotes: input.config.expectedVotes, ticksRemaining };
}

function withVoters(input: LastManStandingInput, voters: Map<NodeId, number>, expectedVotes: number): QuorumConfig {
  const sorted = new Map([...voters].sort((a, b) => a[0] - b[0]));
  const tb = resolveTieBreaker(input.tieBreaker, sorted);
  return tb === undefined ? { voters: sorted, expectedVotes } : { voters: sorted, expectedVotes, tieBreaker: tb };
}

/** A configured voter that is present but holds no votes in the configuration (lowest id first). */
function restorable(input: LastManStandingInput): NodeId | undefined {
  let pick: NodeId | undefined;
  for (const [id, votes] of input.configuredVotes) {
    if (votes > 0 && !input.config.voters.has(id) && input.present.has(id) && (pick === undefined || id < pick))
      pick = id;
  }
  return pick;
}

/** The absent voter to remove: fewest votes, then highest id. */
function removable(input: LastManStandingInput): NodeId | undefined {
  let pick: NodeId | undefined;
  let pickVotes = 0;
  for (const [id, votes] of input.config.voters) {
    if (input.present.has(id)) continue;
    if (pick === undefined || votes < pickVotes || (votes === pickVotes && id > pick)) {
      pick = id;
      pickVotes = votes;
    }
  }
  return pick;
}

function lowerStep(input: LastManStandingInput): LastManStandingDecision {
  const config = input.config;
  let total = 0;
  for (const v of config.voters.values()) total += v;
  const voters = new Map(config.voters);
  let node: NodeId | undefined;
  let after: number;
  if (config.expectedVotes > total) {
    after = config.expectedVotes - 1;
  } else {
    node = removable(input);
    if (node === undefined) return hold('nothing-absent', input);
    after = config.expectedVotes - (voters.get(node) ?? 0);
    voters.delete(node);
  }
  if (after < QUORUM_LMS_EXPECTED_VOTES_FLOOR) return hold('at-floor', input);
  return propose(input, 'lower', node, voters, after);
}

function propose(
  input: LastManStandingInput,
  kind: 'lower' | 'raise',
  node: NodeId | undefined,
  voters: Map<NodeId, number>,
  after: number,
): LastManStandingDecision {
  const proposed = withVoters(input, voters, after);
  // The present nodes must be able to commit the joint change (old and new side).
  if (!hasQuorum({ incoming: proposed, outgoing: input.config }, input.present)) return hold('not-quorate', input);
  // Every quorum must keep a data node (see votequorum-options.ts): witnesses alone never win.
  if (input.witnesses.size > 0 && hasQuorum({ incoming: proposed }, input.witnesses))
    return hold('witness-majority', input);
  return { kind, expectedVotesBefore: input.config.expectedVotes, expectedVotesAfter: after, node, proposed };
}

/**
 * Decides whether to propose one last-man-standing step now, and which. Pure: the caller (the
 * leader) proposes `proposed` as a joint configuration change and resets `stableTicks` when it
 * commits.
 */
export function decideLastManStanding(input: LastManStandingInput): LastManStandingDecision {
  assert(
    Number.isInteger(input.windowTicks) && input.windowTicks >= 1 && input.windowTicks <= QUORUM_LMS_WINDOW_TICKS_MAX,
    'last-man-standing window out of range',
  );
  assert(
    Number.isSafeInteger(input.stableTicks) && input.stableTicks >= 0,
    'stableTicks must be a non-negative integer',
  );
  if (!input.enabled) return hold('disabled', input);
  if (input.jointInFlight) return hold('joint-in-flight', input);
  if (input.stableTicks < input.windowTicks)
    return hold('window-pending', input, input.windowTicks - input.stableTicks);
  if (!hasQuorum({ incoming: input.config }, input.present)) return hold('not-quorate', input);
  const back = restorable(input);
  if (back !== undefined) {
    const votes = input.configuredVotes.get(back) ?? 0;
    const voters = new Map(input.config.voters).set(back, votes);
    return propose(input, 'raise', back, voters, input.config.expectedVotes + votes);
  }
  if (input.config.expectedVotes <= QUORUM_LMS_EXPECTED_VOTES_FLOOR) return hold('at-floor', input);
  return lowerStep(input);
}
