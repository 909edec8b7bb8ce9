/**
 * Cluster configurations and joint-consensus configuration changes (etcd's `confchange`).
 *
 * A configuration has incoming voters (with votequorum weights), outgoing voters (non-empty only
 * while joint), learners, and `learnersNext` (outgoing voters being demoted, who become learners
 * when the joint configuration is left). Every change that touches the voters goes through a
 * joint configuration, where decisions need a quorum of *both* voter sets: with weighted votes the
 * single-server shortcut is not safe in general (removing a node holding several votes can leave
 * two disjoint quorums), so cohort never takes it. Changes that only add or remove learners apply
 * directly. Everything here is pure: functions return new configurations and never mutate.
 */
import { assert } from '../lib/assert.js';
import { err, ok, type Result } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import { CLUSTER_NODES_MAX, RAFT_VOTES_PER_NODE_MAX } from '../constants.js';
import type { ConfChange, ConfChangeSingle, ConfState, VoterWeight } from './raft-message.js';
import { RaftError } from './raft-error.js';
import type { JointQuorumConfig, QuorumConfig } from '../quorum/index.js';

/** A configuration in memory. Maps and sets iterate in ascending node order (built sorted). */
export interface ClusterConfig {
  readonly voters: ReadonlyMap<NodeId, number>;
  readonly outgoing: ReadonlyMap<NodeId, number>;
  readonly learners: ReadonlySet<NodeId>;
  readonly learnersNext: ReadonlySet<NodeId>;
  readonly autoLeave: boolean;
}

/** The empty configuration of a node that has not joined a cluster yet. */
export const EMPTY_CONFIG: ClusterConfig = {
  voters: new Map(),
  outgoing: new Map(),
  learners: new Set(),
  learnersNext: new Set(),
  autoLeave: false,
};

function sortedMap(entries: Iterable<readonly [NodeId, number]>): Map<NodeId, number> {
  return new Map([...entries].sort((a, b) => a[0] - b[0]));
}

function sortedSet(ids: Iterable<NodeId>): Set<NodeId> {
  return new Set([...ids].sort((a, b) => a - b));
}

/** True while the configuration is joint (decisions need both voter sets). */
export function isJoint(config: ClusterConfig): boolean {
  return config.outgoing.size > 0;
}

/** True when `id` votes in either voter set. */
export function isVoter(config: ClusterConfig, id: NodeId): boolean {
  return config.voters.has(id) || config.outgoing.has(id);
}

/** Every node of the configuration (voters of both sides and learners), ascending. */
export function configNodes(config: ClusterConfig): NodeId[] {
  const all = new Set<NodeId>([...config.voters.keys(), ...config.outgoing.keys(), ...config.learners, ...config.learnersNext]);
  return [...all].sort((a, b) => a - b);
}

/** Checks the structural invariants; returns a human-readable problem or null. */
export function configProblem(config: ClusterConfig): string | null {
  for (const [id, votes] of [...config.voters, ...config.outgoing]) {
    if (!Number.isInteger(votes) || votes < 1 || votes > RAFT_VOTES_PER_NODE_MAX) return `node ${id} has ${votes} votes; a voter needs 1..${RAFT_VOTES_PER_NODE_MAX}`;
  }
  for (const id of config.learners) if (isVoter(config, id)) return `node ${id} is both a voter and a learner`;
  for (const id of config.learnersNext) {
    if (!config.outgoing.has(id) || config.voters.has(id)) return `node ${id} is a pending learner but not an outgoing-only voter`;
  }
  if (!isJoint(config) && config.learnersNext.size > 0) return 'pending learners exist outside a joint configuration';
  if (configNodes(config).length > CLUSTER_NODES_MAX) return `the configuration has more than ${CLUSTER_NODES_MAX} nodes`;
  return null;
}

/** Builds the in-memory configuration from its stored form; asserts its invariants. */
export function configFromConfState(cs: ConfState): ClusterConfig {
  const config: ClusterConfig = {
    voters: sortedMap(cs.voters),
    outgoing: sortedMap(cs.outgoing),
    learners: sortedSet(cs.learners),
    learnersNext: sortedSet(cs.learnersNext),
    autoLeave: cs.autoLeave,
  };
  const problem = configProblem(config);
  assert(problem === null, `stored configuration is invalid: ${problem ?? ''}`);
  return config;
}

/** The stored form of a configuration (sorted lists). */
export function confStateFromConfig(config: ClusterConfig): ConfState {
  const weights = (m: ReadonlyMap<NodeId, number>): VoterWeight[] => [...m].map(([id, v]) => [id, v] as const);
  return {
    voters: weights(config.voters),
    outgoing: weights(config.outgoing),
    learners: [...config.learners],
    learnersNext: [...config.learnersNext],
    autoLeave: config.autoLeave,
  };
}

function sumVotes(voters: ReadonlyMap<NodeId, number>): number {
  let total = 0;
  for (const v of voters.values()) total += v;
  return total;
}

function quorumSide(voters: ReadonlyMap<NodeId, number>): QuorumConfig {
  // expected_votes equals the sum of the configured votes for now. Hooks for later (quorum
  // options issue): an explicit expected_votes lowered by last_man_standing through a
  // configuration change, auto_tie_breaker (`tieBreaker`), wait_for_all, and two_node (a
  // 2-node cluster stays available after a peer loss only once the peer is fenced). A witness
  // is a voter whose log is metadata only (TODO: witness role in the core).
  return { voters, expectedVotes: sumVotes(voters) };
}

/**
 * The quorum module's view of `config`. `learnerVotes` counts learners as 1-vote voters: only
 * the `count-learner-vote` canary passes it.
 */
export function jointQuorumConfig(config: ClusterConfig, learnerVotes = false): JointQuorumConfig {
  let incoming = quorumSide(config.voters);
  if (learnerVotes) {
    const inflated = sortedMap([...config.voters, ...[...config.learners].map((id) => [id, 1] as const)]);
    incoming = { voters: inflated, expectedVotes: sumVotes(inflated) };
  }
  if (!isJoint(config)) return { incoming };
  return { incoming, outgoing: quorumSide(config.outgoing) };
}

function invalid(message: string): Result<ClusterConfig, RaftError> {
  return err(new RaftError('CONF_CHANGE_INVALID', message));
}

/** Leaves a joint configuration: the outgoing set is dropped and pending learners become learners. */
function leaveJoint(config: ClusterConfig): Result<ClusterConfig, RaftError> {
  if (!isJoint(config)) return invalid('cannot leave a joint configuration: the configuration is not joint');
  return ok({
    voters: config.voters,
    outgoing: new Map(),
    learners: sortedSet([...config.learners, ...config.learnersNext]),
    learnersNext: new Set(),
    autoLeave: false,
  });
}

function learnerOnly(config: ClusterConfig, c: ConfChangeSingle): boolean {
  switch (c.type) {
    case 'add-learner':
      return !isVoter(config, c.node);
    case 'remove-node':
      return !isVoter(config, c.node);
    case 'add-voter':
      return false;
  }
}

interface Draft {
  voters: Map<NodeId, number>;
  learners: Set<NodeId>;
  learnersNext: Set<NodeId>;
}

function applySingle(draft: Draft, outgoing: ReadonlyMap<NodeId, number>, c: ConfChangeSingle): string | null {
  switch (c.type) {
    case 'add-voter':
      if (!Number.isInteger(c.votes) || c.votes < 1 || c.votes > RAFT_VOTES_PER_NODE_MAX) return `add-voter ${c.node}: votes must be in 1..${RAFT_VOTES_PER_NODE_MAX}`;
      draft.learners.delete(c.node);
      draft.learnersNext.delete(c.node);
      draft.voters.set(c.node, c.votes);
      return null;
    case 'add-learner':
      draft.voters.delete(c.node);
      if (outgoing.has(c.node)) draft.learnersNext.add(c.node);
      else draft.learners.add(c.node);
      return null;
    case 'remove-node':
      draft.voters.delete(c.node);
      draft.learners.delete(c.node);
      draft.learnersNext.delete(c.node);
      return null;
  }
}

function sameConfig(a: ClusterConfig, b: ClusterConfig): boolean {
  const s = (c: ClusterConfig): string => JSON.stringify(confStateFromConfig({ ...c, autoLeave: false }));
  return s(a) === s(b);
}

/**
 * Applies `change` to `config` and returns the next configuration, or `CONF_CHANGE_INVALID`
 * with the reason. An empty change leaves a joint configuration; learner-only changes apply
 * directly; anything touching voters enters a joint configuration whose outgoing side is the
 * current voter set. Refused: entering joint while joint, a change that leaves no voter, a
 * change that changes nothing, and any result that breaks `configProblem`.
 */
export function applyConfChange(config: ClusterConfig, change: ConfChange): Result<ClusterConfig, RaftError> {
  if (change.changes.length === 0) return leaveJoint(config);
  if (isJoint(config)) return invalid('a configuration change is only allowed outside a joint configuration; leave the joint configuration first');
  const simple = change.changes.every((c) => learnerOnly(config, c));
  const draft: Draft = { voters: new Map(config.voters), learners: new Set(config.learners), learnersNext: new Set() };
  const outgoing = simple ? new Map<NodeId, number>() : config.voters;
  for (const c of change.changes) {
    const problem = applySingle(draft, outgoing, c);
    if (problem !== null) return invalid(problem);
  }
  const next: ClusterConfig = {
    voters: sortedMap(draft.voters),
    outgoing: simple ? new Map() : sortedMap(outgoing),
    learners: sortedSet(draft.learners),
    learnersNext: sortedSet(draft.learnersNext),
    autoLeave: simple ? false : change.autoLeave,
  };
  if (next.voters.size === 0) return invalid('the change would leave no voter; keep at least one voter');
  if (sameConfig(config, { ...next, outgoing: new Map(), learners: sortedSet([...next.learners, ...next.learnersNext]), learnersNext: new Set() })) {
    return invalid('the change does not change the configuration');
  }
  const problem = configProblem(next);
  return problem === null ? ok(next) : invalid(problem);
}

/** A one-line human form, e.g. `voters=(1,2 3x2)&&(1,2,3) learners=(4)`. */
export function formatConfig(config: ClusterConfig): string {
  const side = (m: ReadonlyMap<NodeId, number>): string => `(${[...m].map(([id, v]) => (v === 1 ? `${id}` : `${id}x${v}`)).join(',')})`;
  let s = `voters=${side(config.voters)}`;
  if (isJoint(config)) s += `&&${side(config.outgoing)}`;
  if (config.learners.size > 0) s += ` learners=(${[...config.learners].join(',')})`;
  if (config.learnersNext.size > 0) s += ` learners_next=(${[...config.learnersNext].join(',')})`;
  if (config.autoLeave) s += ' autoleave';
  return s;
}
