/**
 * TEMPORARY stand-in for `src/quorum` (being written by another engineer), with the agreed API,
 * so that the Raft core compiles and runs its tests before it lands. Delete this file and
 * import `../quorum/index.js` instead once it exists. Naive on purpose.
 */
import type { NodeId } from '../lib/ids.js';

/** One side of a (possibly joint) configuration. */
export interface QuorumConfig {
  readonly voters: ReadonlyMap<NodeId, number>;
  readonly expectedVotes: number;
  readonly tieBreaker?: NodeId;
}

/** A configuration; `outgoing` is present while joint. */
export interface JointQuorumConfig {
  readonly incoming: QuorumConfig;
  readonly outgoing?: QuorumConfig;
}

/** The state of an election. */
export type VoteOutcome = 'won' | 'lost' | 'pending';

function wins(config: QuorumConfig, members: ReadonlySet<NodeId>): boolean {
  let votes = 0;
  for (const [id, v] of config.voters) if (members.has(id)) votes += v;
  const quorum = Math.floor(config.expectedVotes / 2) + 1;
  if (votes >= quorum) return true;
  const tie = config.tieBreaker;
  return tie !== undefined && 2 * votes === config.expectedVotes && members.has(tie);
}

function sideOutcome(config: QuorumConfig, votes: ReadonlyMap<NodeId, boolean>): VoteOutcome {
  if (config.voters.size === 0) return 'won';
  const yes = new Set<NodeId>();
  const maybe = new Set<NodeId>();
  for (const id of config.voters.keys()) {
    const v = votes.get(id);
    if (v === true) yes.add(id);
    if (v !== false) maybe.add(id);
  }
  if (wins(config, yes)) return 'won';
  return wins(config, maybe) ? 'pending' : 'lost';
}

/** Outcome of an election given the votes received so far. */
export function voteOutcome(config: JointQuorumConfig, votes: ReadonlyMap<NodeId, boolean>): VoteOutcome {
  const a = sideOutcome(config.incoming, votes);
  const b = config.outgoing === undefined ? 'won' : sideOutcome(config.outgoing, votes);
  if (a === 'won' && b === 'won') return 'won';
  if (a === 'lost' || b === 'lost') return 'lost';
  return 'pending';
}

function sideCommitted(config: QuorumConfig, match: ReadonlyMap<NodeId, number>): number {
  if (config.voters.size === 0) return Number.MAX_SAFE_INTEGER;
  const candidates = [...config.voters.keys()].map((id) => match.get(id) ?? 0).sort((x, y) => y - x);
  for (const n of candidates) {
    const members = new Set<NodeId>();
    for (const id of config.voters.keys()) if ((match.get(id) ?? 0) >= n) members.add(id);
    if (wins(config, members)) return n;
  }
  return 0;
}

/** Largest index acknowledged by a quorum of both sides. */
export function committedIndex(config: JointQuorumConfig, match: ReadonlyMap<NodeId, number>): number {
  const a = sideCommitted(config.incoming, match);
  const b = config.outgoing === undefined ? Number.MAX_SAFE_INTEGER : sideCommitted(config.outgoing, match);
  return Math.min(a, b);
}

/** True when `reachable` holds a quorum of both sides. */
export function hasQuorum(config: JointQuorumConfig, reachable: ReadonlySet<NodeId>): boolean {
  const side = (c: QuorumConfig): boolean => c.voters.size === 0 || wins(c, reachable);
  return side(config.incoming) && (config.outgoing === undefined || side(config.outgoing));
}
