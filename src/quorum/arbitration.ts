/**
 * Arbitration: is this partition quorate, and why (DESIGN.md section 11 point 4, explainable
 * arbitration). Combines the arithmetic with wait_for_all and the two_node fencing hook into one
 * verdict whose explanation an event, a log line or `cohort quorum` can print as is.
 *
 * Order of the rules: wait_for_all first (a waiting node is never quorate, whatever the votes),
 * then the arithmetic (majority, or the tie-breaker's half vote), then, only for a two_node
 * cluster that lost its peer, the fencing hook.
 */
import { assert } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import { missingVoters, type WaitForAllState } from './wait-for-all.js';
import {
  explainQuorum,
  type JointQuorumConfig,
  type QuorumExplanation,
  type SideExplanation,
} from './weighted-quorum.js';

/**
 * The two_node hook, fed by the fencing layer. A two-voter cluster that lost one node stays
 * quorate only once that node is confirmed fenced (for the incarnation that was lost): both
 * nodes race to fence each other and only the winner survives to read a confirmation.
 */
export interface TwoNodeHook {
  readonly enabled: boolean;
  /** Nodes the fencing layer confirmed fenced since they were last seen. */
  readonly fencedPeers: ReadonlySet<NodeId>;
}

/** What arbitration reads. */
export interface ArbitrationInput {
  readonly config: JointQuorumConfig;
  /** Nodes in the current membership view. */
  readonly present: ReadonlySet<NodeId>;
  readonly waitForAll: WaitForAllState;
  readonly twoNode?: TwoNodeHook;
}

/** The rule that decided. */
export type ArbitrationReason =
  | 'majority'
  | 'tie-breaker'
  | 'no-majority'
  | 'tie-breaker-absent'
  | 'wait-for-all'
  | 'two-node-peer-fenced'
  | 'two-node-awaiting-fence';

/** The verdict and its explanation. */
export interface Arbitration {
  readonly quorate: boolean;
  readonly reason: ArbitrationReason;
  readonly arithmetic: QuorumExplanation;
  /** wait_for_all phase, and the voters it still waits for (empty unless waiting). */
  readonly waitForAll: { readonly phase: WaitForAllState['phase']; readonly missing: readonly NodeId[] };
  /** One line for humans, e.g. `quorate: 2/4 votes with tie-breaker node 1 (quorum 3 of expected 4)`. */
  readonly summary: string;
}

function sideReason(side: SideExplanation): ArbitrationReason {
  if (side.quorate) return side.tieBreaker?.decisive === true ? 'tie-breaker' : 'majority';
  // Exactly half of an even E, without the tie-breaker's half vote: the other half holds it.
  const tieLost =
    side.tieBreaker !== undefined && !side.tieBreaker.present && 2 * side.presentVotes === side.expectedVotes;
  return tieLost ? 'tie-breaker-absent' : 'no-majority';
}

function arithmeticReason(a: QuorumExplanation): ArbitrationReason {
  const sides = a.outgoing === undefined ? [a.incoming] : [a.incoming, a.outgoing];
  if (a.quorate) return sides.some((s) => s.tieBreaker?.decisive === true) ? 'tie-breaker' : 'majority';
  return sideReason(sides.find((s) => !s.quorate) ?? a.incoming);
}

function describeSide(side: SideExplanation): string {
  const tb =
    side.tieBreaker === undefined
      ? ''
      : `, tie-breaker node ${side.tieBreaker.nodeId} ${side.tieBreaker.present ? 'present' : 'absent'}`;
  return `${side.presentVotes}/${side.totalVotes} votes (quorum ${side.quorumVotes} of expected ${side.expectedVotes}${tb})`;
}

/** The two_node verdict when the arithmetic failed: a lone survivor of two with its peer fenced. */
function twoNodeVerdict(
  input: ArbitrationInput,
): { quorate: boolean; reason: ArbitrationReason; peer: NodeId } | undefined {
  const hook = input.twoNode;
  if (hook?.enabled !== true || input.config.outgoing !== undefined) return undefined;
  const voters = [...input.config.incoming.voters.keys()];
  assert(voters.length === 2, 'two_node needs exactly two voters (validated at configuration)');
  const [a, b] = voters as [NodeId, NodeId];
  const aHere = input.present.has(a);
  if (aHere === input.present.has(b)) return undefined; // both present (majority) or neither
  const peer = aHere ? b : a;
  return hook.fencedPeers.has(peer)
    ? { quorate: true, reason: 'two-node-peer-fenced', peer }
    : { quorate: false, reason: 'two-node-awaiting-fence', peer };
}

/** Decides and explains whether the partition `present` is quorate. */
export function arbitrate(input: ArbitrationInput): Arbitration {
  const arithmetic = explainQuorum(input.config, input.present);
  const sides =
    arithmetic.outgoing === undefined
      ? describeSide(arithmetic.incoming)
      : `incoming ${describeSide(arithmetic.incoming)}; outgoing ${describeSide(arithmetic.outgoing)}`;
  if (input.waitForAll.phase === 'waiting') {
    const missing = missingVoters(input.config, input.present);
    const summary =
      missing.length === 0
        ? `not quorate: wait_for_all has not released yet; ${sides}`
        : `not quorate: wait_for_all is waiting for node(s) ${missing.join(',')} to be seen with the others; ${sides}`;
    return { quorate: false, reason: 'wait-for-all', arithmetic, waitForAll: { phase: 'waiting', missing }, summary };
  }
  const waitForAll = { phase: input.waitForAll.phase, missing: [] };
  if (!arithmetic.quorate) {
    const two = twoNodeVerdict(input);
    if (two !== undefined) {
      const summary = two.quorate
        ? `quorate: two_node survivor, peer node ${two.peer} confirmed fenced; ${sides}`
        : `not quorate: two_node survivor waits for peer node ${two.peer} to be confirmed fenced; ${sides}`;
      return { quorate: two.quorate, reason: two.reason, arithmetic, waitForAll, summary };
    }
  }
  const reason = arithmeticReason(arithmetic);
  const verdict = arithmetic.quorate ? 'quorate' : 'not quorate';
  const why =
    reason === 'tie-breaker'
      ? ' (exact half split won by the tie-breaker)'
      : reason === 'tie-breaker-absent'
        ? ' (exact half split: the other half holds the tie-breaker)'
        : '';
  return { quorate: arithmetic.quorate, reason, arithmetic, waitForAll, summary: `${verdict}${why}: ${sides}` };
}
