/**
 * votequorum options at the Raft level: how an election is counted (weighted quorum, tie-breaker,
 * wait_for_all), why it was not won (for the trace), and how a last_man_standing decision of the
 * quorum module becomes a configuration change. Pure functions over `ClusterConfig`; the core
 * (`raft-core.ts`) calls them and owns every state change.
 *
 * - expected votes and the tie-breaker live in the replicated configuration (`cluster-config.ts`)
 *   and reach every count through `jointQuorumConfig`, so elections, commit, check-quorum and
 *   read confirmation all use them.
 * - wait_for_all is a per-node option (`RaftConfig.waitForAll`): a candidate whose log is fresh
 *   (no entry a leader ever wrote) wins only with the grants of every voter of every side,
 *   collected in one election. Once any leader was elected its first entry is in the log of a
 *   quorum, so later candidates either hold it (not fresh) or cannot win against it.
 * - last_man_standing: `decideLastManStanding` (quorum module) decides; `lastManStandingConfChange`
 *   turns the decision into a joint configuration change (the absent voter becomes a learner, or
 *   a returning one gets its vote back), which the leader proposes like any other change.
 * - two_node: not counted here. The fencing layer proves the lost peer fenced and calls
 *   `RaftCore.peerFenced`; the core then counts the peer's grants and acknowledgements itself
 *   until the configuration demoting it is applied (docs/raft.md "two_node").
 */
import { assert, assertNever } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import {
  arbitrate,
  decideLastManStanding,
  missingVoters,
  voteOutcome,
  type JointQuorumConfig,
  type LastManStandingDecision,
  type LastManStandingInput,
  type QuorumConfig,
  type VoteOutcome,
} from '../quorum/index.js';
import { applyConfChange, formatConfig, isJoint, jointQuorumConfig, type ClusterConfig } from './cluster-config.js';
import type { ConfChange, ConfChangeSingle } from './raft-message.js';

/** How an election is counted on this node. */
export interface ElectionRules {
  /** wait_for_all applies: this node's log is fresh and the option is on. */
  readonly waitForAll: boolean;
  /** SIMULATOR ONLY (`count-learner-vote` canary): learners count as 1-vote voters. */
  readonly learnerVotes: boolean;
}

/**
 * True when no leader ever wrote to this log: it is empty, or it holds only the bootstrap entry
 * (`RaftConfig.bootstrapEntry`: committed entry 1 of term 1, written by no leader; the first
 * election is then for term 2, so a leader's first entry is never at (1, 1) in that mode).
 */
export function isFreshLog(lastIndex: number, lastTerm: number, bootstrapEntry: boolean): boolean {
  if (lastIndex === 0) return true;
  return bootstrapEntry && lastIndex === 1 && lastTerm === 1;
}

function allVotersGranted(
  config: JointQuorumConfig,
  votes: ReadonlyMap<NodeId, boolean>,
): 'all' | 'refused' | 'missing' {
  let missing = false;
  const sides: readonly QuorumConfig[] =
    config.outgoing === undefined ? [config.incoming] : [config.incoming, config.outgoing];
  for (const side of sides) {
    for (const id of side.voters.keys()) {
      const v = votes.get(id);
      if (v === false) return 'refused';
      if (v === undefined) missing = true;
    }
  }
  return missing ? 'missing' : 'all';
}

/**
 * Counts an election (or pre-election) under `config` and the rules. Without wait_for_all this
 * is the quorum module's `voteOutcome` (weighted, tie-broken, joint). With it, the election is won
 * only once every voter of every side granted (and the arithmetic agrees), and lost as soon as one
 * voter refused: every voter must be seen at once.
 */
export function electionOutcome(
  config: ClusterConfig,
  votes: ReadonlyMap<NodeId, boolean>,
  rules: ElectionRules,
): VoteOutcome {
  const quorum = jointQuorumConfig(config, rules.learnerVotes);
  const outcome = voteOutcome(quorum, votes);
  if (!rules.waitForAll) return outcome;
  const seen = allVotersGranted(quorum, votes);
  switch (seen) {
    case 'refused':
      return 'lost';
    case 'missing':
      return outcome === 'lost' ? 'lost' : 'pending';
    case 'all':
      return outcome;
    default:
      return assertNever(seen, 'wait-for-all count');
  }
}

/**
 * One line saying why an election is not (yet) won, for the trace, e.g.
 * `wait_for_all: 2 of 3 voters seen (waiting for node 3)` or
 * `not quorate (exact half split: the other half holds the tie-breaker): 2/4 votes (quorum 3 of expected 4, tie-breaker node 1 absent)`,
 * with `; refused by node N` appended when voters refused (e.g. a longer log than the candidate's).
 * Not a hot path: called when an election is lost or times out.
 */
export function explainElection(
  config: ClusterConfig,
  votes: ReadonlyMap<NodeId, boolean>,
  rules: ElectionRules,
): string {
  const quorum = jointQuorumConfig(config, rules.learnerVotes);
  const granted = new Set<NodeId>();
  for (const [id, v] of votes) if (v) granted.add(id);
  if (rules.waitForAll) {
    const missing = missingVoters(quorum, granted);
    if (missing.length > 0) {
      const all = new Set<NodeId>([...quorum.incoming.voters.keys(), ...(quorum.outgoing?.voters.keys() ?? [])]);
      const refused = [...votes].filter(([, v]) => !v).map(([id]) => id);
      const why = refused.length > 0 ? `refused by node ${refused.join(',')}` : `waiting for node ${missing.join(',')}`;
      return `wait_for_all: ${all.size - missing.length} of ${all.size} voters seen (${why})`;
    }
  }
  const summary = arbitrate({ config: quorum, present: granted, waitForAll: { phase: 'off' } }).summary;
  const refused = [...votes].filter(([, v]) => !v).map(([id]) => id);
  return refused.length === 0 ? summary : `${summary}; refused by node ${refused.join(',')}`;
}

/**
 * Counts an election that must be won in EVERY configuration of `configs` (the applied one and
 * each one implied by configuration entries after it in the candidate's log; see docs/raft.md,
 * "Counting with every configuration in the log"): won when won in all of them, lost as soon as
 * lost in one, pending otherwise. `configs` is never empty.
 */
export function electionOutcomeAll(
  configs: readonly ClusterConfig[],
  votes: ReadonlyMap<NodeId, boolean>,
  rules: ElectionRules,
): VoteOutcome {
  assert(configs.length > 0, 'an election is counted in at least one configuration');
  let all = true;
  for (const config of configs) {
    const outcome = electionOutcome(config, votes, rules);
    if (outcome === 'lost') return 'lost';
    if (outcome === 'pending') all = false;
  }
  return all ? 'won' : 'pending';
}

/**
 * `explainElection` for the first configuration of `configs` the election is not won in, naming
 * it when several configurations are counted (e.g. `in voters=(2) (2 of 3 configurations in the
 * log): ...`). Not a hot path.
 */
export function explainElectionAll(
  configs: readonly ClusterConfig[],
  votes: ReadonlyMap<NodeId, boolean>,
  rules: ElectionRules,
): string {
  assert(configs.length > 0, 'an election is counted in at least one configuration');
  const at = configs.findIndex((c) => electionOutcome(c, votes, rules) !== 'won');
  const config = configs[at < 0 ? 0 : at] as ClusterConfig;
  const why = explainElection(config, votes, rules);
  if (configs.length === 1) return why;
  return `in ${formatConfig(config)} (${(at < 0 ? 0 : at) + 1} of ${configs.length} configurations in the log): ${why}`;
}

// ---------------------------------------------------------------------------------------------
// last_man_standing

/** What the membership layer knows when it asks for a last_man_standing step. */
export interface LastManStandingView {
  readonly enabled: boolean;
  readonly windowTicks: number;
  /** Ticks since the membership or the configuration last changed. */
  readonly stableTicks: number;
  /** Nodes the failure detector sees now. */
  readonly present: ReadonlySet<NodeId>;
  /** Every configured node's configured votes (0 for non-voters): what a restore gives back. */
  readonly configuredVotes: ReadonlyMap<NodeId, number>;
}

/** The quorum module's input for `config` (its incoming side; joint means a change is in flight). */
export function lastManStandingInput(config: ClusterConfig, view: LastManStandingView): LastManStandingInput {
  return {
    enabled: view.enabled,
    windowTicks: view.windowTicks,
    stableTicks: view.stableTicks,
    config: jointQuorumConfig(config).incoming,
    jointInFlight: isJoint(config),
    present: view.present,
    configuredVotes: view.configuredVotes,
    tieBreaker: config.quorum.tieBreaker,
    witnesses: config.witnesses,
  };
}

function sumVotes(voters: ReadonlyMap<NodeId, number>): number {
  let total = 0;
  for (const v of voters.values()) total += v;
  return total;
}

function sameSide(a: QuorumConfig, b: QuorumConfig): boolean {
  if (a.expectedVotes !== b.expectedVotes || a.tieBreaker !== b.tieBreaker || a.voters.size !== b.voters.size)
    return false;
  for (const [id, v] of a.voters) if (b.voters.get(id) !== v) return false;
  return true;
}

/**
 * Turns a last_man_standing decision into the configuration change that carries it out, or null
 * for a hold. A `lower` step demotes the absent voter to a learner (it stays configured and gets
 * its vote back on return); a `raise` step makes the returning node a voter again with its role
 * kept. Expected votes are written only when the stored setting would not already give the
 * decided E (0, "the voters' total", whenever E equals the total). The change auto-leaves its
 * joint configuration. Asserts that applying it to `config` yields exactly the decided side: the
 * decision and the change can never disagree.
 */
export function lastManStandingConfChange(config: ClusterConfig, decision: LastManStandingDecision): ConfChange | null {
  if (decision.kind === 'hold') return null;
  assert(!isJoint(config), 'last_man_standing never steps during a configuration change');
  const changes: ConfChangeSingle[] = [];
  const node = decision.node;
  if (node !== undefined && decision.kind === 'lower') changes.push({ type: 'add-learner', node });
  if (node !== undefined && decision.kind === 'raise') {
    const votes = decision.proposed.voters.get(node);
    assert(votes !== undefined, `a raise step restores node ${node}'s votes`);
    changes.push(
      config.witnesses.has(node)
        ? { type: 'add-voter', node, votes, role: 'witness' }
        : { type: 'add-voter', node, votes },
    );
  }
  const after = decision.expectedVotesAfter;
  const stored = after === sumVotes(decision.proposed.voters) ? 0 : after;
  if (stored !== config.quorum.expectedVotes) changes.push({ type: 'set-expected-votes', expectedVotes: stored });
  const change: ConfChange = { changes, autoLeave: true };
  const next = applyConfChange(config, change);
  assert(next.ok, `last_man_standing change must apply: ${next.ok ? '' : next.error.message}`);
  assert(
    sameSide(jointQuorumConfig(next.value).incoming, decision.proposed),
    'last_man_standing change must produce the decided configuration',
  );
  return change;
}

/** Decides one last_man_standing step for `config` and the change that carries it out (null: hold). */
export function lastManStandingStep(
  config: ClusterConfig,
  view: LastManStandingView,
): { readonly decision: LastManStandingDecision; readonly change: ConfChange | null } {
  const decision = decideLastManStanding(lastManStandingInput(config, view));
  return { decision, change: lastManStandingConfChange(config, decision) };
}
