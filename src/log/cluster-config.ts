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
 *
 * Each side also carries its replicated quorum settings (`expected_votes`, the tie-breaker mode),
 * and the configuration names its witnesses (members that store only entry metadata). A change
 * of a setting goes through the same joint configuration as a voter change: while joint, every
 * decision needs a quorum of the old side under the old settings *and* of the new side under the
 * new ones, which is what keeps two disjoint sets from both being quorate across the change
 * (docs/raft.md, "Quorum settings in the configuration").
 */
import { assert } from '../lib/assert.js';
import { err, ok, type Result } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import { CLUSTER_NODES_MAX, QUORUM_EXPECTED_VOTES_MAX, RAFT_VOTES_PER_NODE_MAX } from '../constants.js';
import {
  DEFAULT_QUORUM_SETTINGS,
  type ConfChange,
  type ConfChangeSingle,
  type ConfState,
  type QuorumSettings,
  type VoterWeight,
} from './raft-message.js';
import { RaftError } from './raft-error.js';
import {
  hasQuorum,
  resolveTieBreaker,
  validateQuorumConfig,
  validateTieBreakerMode,
  type JointQuorumConfig,
  type QuorumConfig,
  type TieBreakerMode,
} from '../quorum/index.js';

/** A configuration in memory. Maps and sets iterate in ascending node order (built sorted). */
export interface ClusterConfig {
  readonly voters: ReadonlyMap<NodeId, number>;
  readonly outgoing: ReadonlyMap<NodeId, number>;
  readonly learners: ReadonlySet<NodeId>;
  readonly learnersNext: ReadonlySet<NodeId>;
  readonly autoLeave: boolean;
  /** Quorum settings of the incoming side (`voters`). */
  readonly quorum: QuorumSettings;
  /** Quorum settings of the outgoing side; `DEFAULT_QUORUM_SETTINGS` unless joint. */
  readonly outgoingQuorum: QuorumSettings;
  /** Members (voters of either side or learners) that store only entry metadata. */
  readonly witnesses: ReadonlySet<NodeId>;
}

/** The empty configuration of a node that has not joined a cluster yet. */
export const EMPTY_CONFIG: ClusterConfig = {
  voters: new Map(),
  outgoing: new Map(),
  learners: new Set(),
  learnersNext: new Set(),
  autoLeave: false,
  quorum: DEFAULT_QUORUM_SETTINGS,
  outgoingQuorum: DEFAULT_QUORUM_SETTINGS,
  witnesses: new Set(),
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

/** True when `id` is a member that stores only entry metadata (it never leads nor applies). */
export function isWitness(config: ClusterConfig, id: NodeId): boolean {
  return config.witnesses.has(id);
}

/** True when `id` may campaign and lead: a voter of either side that stores data. */
export function canLead(config: ClusterConfig, id: NodeId): boolean {
  return isVoter(config, id) && !isWitness(config, id);
}

/** Every node of the configuration (voters of both sides and learners), ascending. */
export function configNodes(config: ClusterConfig): NodeId[] {
  const all = new Set<NodeId>([
    ...config.voters.keys(),
    ...config.outgoing.keys(),
    ...config.learners,
    ...config.learnersNext,
  ]);
  return [...all].sort((a, b) => a - b);
}

function sumVotes(voters: ReadonlyMap<NodeId, number>): number {
  let total = 0;
  for (const v of voters.values()) total += v;
  return total;
}

function sameMode(a: TieBreakerMode, b: TieBreakerMode): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind !== 'list' || b.kind !== 'list') return true;
  return a.nodes.length === b.nodes.length && a.nodes.every((id, i) => id === b.nodes[i]);
}

/** True when two settings are equal (mode lists compared in order: their order is a priority). */
export function sameQuorumSettings(a: QuorumSettings, b: QuorumSettings): boolean {
  return a.expectedVotes === b.expectedVotes && sameMode(a.tieBreaker, b.tieBreaker);
}

function isDefaultSettings(s: QuorumSettings): boolean {
  return sameQuorumSettings(s, DEFAULT_QUORUM_SETTINGS);
}

/** The quorum module's view of one side: E derived or explicit, the tie-breaker resolved. */
function quorumSide(voters: ReadonlyMap<NodeId, number>, settings: QuorumSettings): QuorumConfig {
  const expectedVotes = settings.expectedVotes === 0 ? sumVotes(voters) : settings.expectedVotes;
  const tieBreaker = resolveTieBreaker(settings.tieBreaker, voters);
  return tieBreaker === undefined ? { voters, expectedVotes } : { voters, expectedVotes, tieBreaker };
}

/** Problems of one side's settings (E below the voters' total, a malformed tie-breaker list). */
function sideProblem(name: string, voters: ReadonlyMap<NodeId, number>, settings: QuorumSettings): string | null {
  const e = settings.expectedVotes;
  if (!Number.isInteger(e) || e < 0 || e > QUORUM_EXPECTED_VOTES_MAX)
    return `${name} expected votes ${e} must be an integer from 0 (the voters' total) to ${QUORUM_EXPECTED_VOTES_MAX}`;
  const total = sumVotes(voters);
  if (e !== 0 && e < total) {
    return `${name} expected votes ${e} is below the ${total} votes of its voters, which would let two separate partitions both be quorate; set expected votes to at least ${total}, or to 0 to follow the voters' total`;
  }
  const tb = settings.tieBreaker;
  if (tb.kind === 'list' && (tb.nodes.length === 0 || new Set(tb.nodes).size !== tb.nodes.length))
    return `${name} tie-breaker list must name distinct nodes`;
  const valid = validateQuorumConfig(quorumSide(voters, settings));
  return valid.ok ? null : `${name}: ${valid.error.message}`;
}

/**
 * Witness rules for one side: at least one voter stores data, and the witnesses alone are never a
 * quorum, so every quorum (and so every commit and every election) includes a data node.
 */
function witnessProblem(
  name: string,
  voters: ReadonlyMap<NodeId, number>,
  settings: QuorumSettings,
  witnesses: ReadonlySet<NodeId>,
): string | null {
  if (voters.size === 0) return null;
  let dataVoters = 0;
  for (const id of voters.keys()) if (!witnesses.has(id)) dataVoters++;
  if (dataVoters === 0) return `every ${name} voter is a witness; at least one voter must store data`;
  if (witnesses.size > 0 && hasQuorum({ incoming: quorumSide(voters, settings) }, witnesses)) {
    return `the witnesses (${[...witnesses].filter((id) => voters.has(id)).join(',')}) would hold a ${name} quorum on their own, so a commit could live on no data node; give data nodes more votes or the witnesses fewer`;
  }
  return null;
}

/** Checks the structural invariants; returns a human-readable problem or null. */
export function configProblem(config: ClusterConfig): string | null {
  for (const [id, votes] of [...config.voters, ...config.outgoing]) {
    if (!Number.isInteger(votes) || votes < 1 || votes > RAFT_VOTES_PER_NODE_MAX)
      return `node ${id} has ${votes} votes; a voter needs 1..${RAFT_VOTES_PER_NODE_MAX}`;
  }
  for (const id of config.learners) if (isVoter(config, id)) return `node ${id} is both a voter and a learner`;
  for (const id of config.learnersNext) {
    if (!config.outgoing.has(id) || config.voters.has(id))
      return `node ${id} is a pending learner but not an outgoing-only voter`;
  }
  if (!isJoint(config) && config.learnersNext.size > 0) return 'pending learners exist outside a joint configuration';
  if (!isJoint(config) && !isDefaultSettings(config.outgoingQuorum))
    return 'outgoing quorum settings exist outside a joint configuration';
  const members = configNodes(config);
  if (members.length > CLUSTER_NODES_MAX) return `the configuration has more than ${CLUSTER_NODES_MAX} nodes`;
  for (const id of config.witnesses)
    if (!members.includes(id)) return `witness ${id} is not a member of the configuration`;
  return (
    sideProblem('incoming', config.voters, config.quorum) ??
    (isJoint(config) ? sideProblem('outgoing', config.outgoing, config.outgoingQuorum) : null) ??
    witnessProblem('incoming', config.voters, config.quorum, config.witnesses) ??
    (isJoint(config) ? witnessProblem('outgoing', config.outgoing, config.outgoingQuorum, config.witnesses) : null)
  );
}

/** Builds the in-memory configuration from its stored form; asserts its invariants. */
export function configFromConfState(cs: ConfState): ClusterConfig {
  const config: ClusterConfig = {
    voters: sortedMap(cs.voters),
    outgoing: sortedMap(cs.outgoing),
    learners: sortedSet(cs.learners),
    learnersNext: sortedSet(cs.learnersNext),
    autoLeave: cs.autoLeave,
    quorum: cs.quorum ?? DEFAULT_QUORUM_SETTINGS,
    outgoingQuorum: cs.outgoingQuorum ?? DEFAULT_QUORUM_SETTINGS,
    witnesses: sortedSet(cs.witnesses ?? []),
  };
  const problem = configProblem(config);
  assert(problem === null, `stored configuration is invalid: ${problem ?? ''}`);
  return config;
}

/** The stored form of a configuration (sorted lists; default settings and no witnesses are left out). */
export function confStateFromConfig(config: ClusterConfig): ConfState {
  const weights = (m: ReadonlyMap<NodeId, number>): VoterWeight[] => [...m].map(([id, v]) => [id, v] as const);
  return {
    voters: weights(config.voters),
    outgoing: weights(config.outgoing),
    learners: [...config.learners],
    learnersNext: [...config.learnersNext],
    autoLeave: config.autoLeave,
    ...(isDefaultSettings(config.quorum) ? {} : { quorum: config.quorum }),
    ...(isDefaultSettings(config.outgoingQuorum) ? {} : { outgoingQuorum: config.outgoingQuorum }),
    ...(config.witnesses.size === 0 ? {} : { witnesses: [...config.witnesses] }),
  };
}

// Configurations are immutable, so their quorum view can be cached per object: the commit path
// asks for it on every acknowledgement. A WeakMap keeps no configuration alive.
const quorumViews = new WeakMap<ClusterConfig, JointQuorumConfig>();

function buildJointQuorumConfig(config: ClusterConfig): JointQuorumConfig {
  const incoming = quorumSide(config.voters, config.quorum);
  if (!isJoint(config)) return { incoming };
  return { incoming, outgoing: quorumSide(config.outgoing, config.outgoingQuorum) };
}

/**
 * The quorum module's view of `config`: each side with its expected votes and resolved
 * tie-breaker. `learnerVotes` counts learners as 1-vote voters: only the `count-learner-vote`
 * canary passes it. Callers must not mutate the result (it is shared).
 */
export function jointQuorumConfig(config: ClusterConfig, learnerVotes = false): JointQuorumConfig {
  if (learnerVotes) {
    const inflated = sortedMap([...config.voters, ...[...config.learners].map((id) => [id, 1] as const)]);
    const base = buildJointQuorumConfig(config);
    return { ...base, incoming: { voters: inflated, expectedVotes: sumVotes(inflated) } };
  }
  let view = quorumViews.get(config);
  if (view === undefined) {
    view = buildJointQuorumConfig(config);
    quorumViews.set(config, view);
  }
  return view;
}

function invalid(message: string): Result<ClusterConfig, RaftError> {
  return err(new RaftError('CONF_CHANGE_INVALID', message));
}

/** Leaves a joint configuration: the outgoing set is dropped and pending learners become learners. */
function leaveJoint(config: ClusterConfig): Result<ClusterConfig, RaftError> {
  if (!isJoint(config)) return invalid('cannot leave a joint configuration: the configuration is not joint');
  const voters = config.voters;
  const learners = sortedSet([...config.learners, ...config.learnersNext]);
  const members = new Set<NodeId>([...voters.keys(), ...learners]);
  return ok({
    voters,
    outgoing: new Map(),
    learners,
    learnersNext: new Set(),
    autoLeave: false,
    quorum: config.quorum,
    outgoingQuorum: DEFAULT_QUORUM_SETTINGS,
    // A witness that was only an outgoing voter leaves with the outgoing side.
    witnesses: sortedSet([...config.witnesses].filter((id) => members.has(id))),
  });
}

function learnerOnly(config: ClusterConfig, c: ConfChangeSingle): boolean {
  switch (c.type) {
    case 'add-learner':
      return !isVoter(config, c.node);
    case 'remove-node':
      return !isVoter(config, c.node);
    case 'add-voter':
    case 'set-expected-votes':
    case 'set-tie-breaker':
      return false;
  }
}

interface Draft {
  voters: Map<NodeId, number>;
  learners: Set<NodeId>;
  learnersNext: Set<NodeId>;
  quorum: QuorumSettings;
  witnesses: Set<NodeId>;
}

/** A member keeps its role (data or witness) for as long as it stays in the configuration. */
function roleProblem(config: ClusterConfig, c: ConfChangeSingle & { type: 'add-voter' }): string | null {
  const wantWitness = c.role === 'witness';
  const member = isVoter(config, c.node) || config.learners.has(c.node);
  if (!member || isWitness(config, c.node) === wantWitness) return null;
  const from = wantWitness ? 'data node' : 'witness';
  return `node ${c.node} is a ${from}; a member cannot change between data node and witness (its log would hold the wrong kind of entries): remove it, wipe its storage, then add it back as a ${wantWitness ? 'witness' : 'data node'}`;
}

function applySingle(
  config: ClusterConfig,
  draft: Draft,
  outgoing: ReadonlyMap<NodeId, number>,
  c: ConfChangeSingle,
): string | null {
  switch (c.type) {
    case 'add-voter': {
      if (!Number.isInteger(c.votes) || c.votes < 1 || c.votes > RAFT_VOTES_PER_NODE_MAX)
        return `add-voter ${c.node}: votes must be in 1..${RAFT_VOTES_PER_NODE_MAX}`;
      const role = roleProblem(config, c);
      if (role !== null) return role;
      draft.learners.delete(c.node);
      draft.learnersNext.delete(c.node);
      draft.voters.set(c.node, c.votes);
      if (c.role === 'witness') draft.witnesses.add(c.node);
      return null;
    }
    case 'add-learner':
      draft.voters.delete(c.node);
      if (outgoing.has(c.node)) draft.learnersNext.add(c.node);
      else draft.learners.add(c.node);
      return null;
    case 'remove-node':
      draft.voters.delete(c.node);
      draft.learners.delete(c.node);
      draft.learnersNext.delete(c.node);
      // An outgoing voter keeps its witness mark until the joint configuration is left.
      if (!outgoing.has(c.node)) draft.witnesses.delete(c.node);
      return null;
    case 'set-expected-votes':
      draft.quorum = { ...draft.quorum, expectedVotes: c.expectedVotes };
      return null;
    case 'set-tie-breaker':
      // Validated against the final voters once the whole change is applied (items may come in
      // any order: a list may name a voter added later in the same change).
      draft.quorum = { ...draft.quorum, tieBreaker: c.tieBreaker };
      return null;
  }
}

function sameConfig(a: ClusterConfig, b: ClusterConfig): boolean {
  const s = (c: ClusterConfig): string => JSON.stringify(confStateFromConfig({ ...c, autoLeave: false }));
  return s(a) === s(b);
}

/**
 * Rules for a configuration a change is about to create (beyond `configProblem`): its new side
 * must be able to win with every voter present, or the cluster could never commit again (not
 * even the change that would repair it). A bootstrap configuration is not held to this: an
 * operator may start a cluster whose expected votes are out of reach on purpose.
 */
function reachableProblem(next: ClusterConfig): string | null {
  const side = quorumSide(next.voters, next.quorum);
  if (hasQuorum({ incoming: side }, new Set(next.voters.keys()))) return null;
  return `with expected votes ${side.expectedVotes}, even all ${sumVotes(next.voters)} votes of the new voters could never form a quorum, so the cluster could never commit again; lower expected votes (0 follows the voters' total) or add voters`;
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
  if (isJoint(config))
    return invalid(
      'a configuration change is only allowed outside a joint configuration; leave the joint configuration first',
    );
  const simple = change.changes.every((c) => learnerOnly(config, c));
  const draft: Draft = {
    voters: new Map(config.voters),
    learners: new Set(config.learners),
    learnersNext: new Set(),
    quorum: config.quorum,
    witnesses: new Set(config.witnesses),
  };
  const outgoing = simple ? new Map<NodeId, number>() : config.voters;
  for (const c of change.changes) {
    const problem = applySingle(config, draft, outgoing, c);
    if (problem !== null) return invalid(problem);
  }
  const next: ClusterConfig = {
    voters: sortedMap(draft.voters),
    outgoing: simple ? new Map() : sortedMap(outgoing),
    learners: sortedSet(draft.learners),
    learnersNext: sortedSet(draft.learnersNext),
    autoLeave: simple ? false : change.autoLeave,
    quorum: draft.quorum,
    // While joint, the outgoing side keeps the settings it was decided under.
    outgoingQuorum: simple ? DEFAULT_QUORUM_SETTINGS : config.quorum,
    witnesses: sortedSet(draft.witnesses),
  };
  if (next.voters.size === 0) return invalid('the change would leave no voter; keep at least one voter');
  if (change.changes.some((c) => c.type === 'set-tie-breaker')) {
    // An operator's explicit choice must take effect: a list naming no voter would do nothing.
    const mode = validateTieBreakerMode(next.quorum.tieBreaker, next.voters);
    if (!mode.ok) return invalid(mode.error.message);
  }
  const left: ClusterConfig = {
    ...next,
    outgoing: new Map(),
    outgoingQuorum: DEFAULT_QUORUM_SETTINGS,
    learners: sortedSet([...next.learners, ...next.learnersNext]),
    learnersNext: new Set(),
    witnesses: sortedSet(
      [...next.witnesses].filter((id) => next.voters.has(id) || next.learners.has(id) || next.learnersNext.has(id)),
    ),
  };
  if (sameConfig(config, left)) return invalid('the change does not change the configuration');
  const problem = configProblem(next) ?? reachableProblem(next);
  return problem === null ? ok(next) : invalid(problem);
}

function formatMode(mode: TieBreakerMode): string {
  return mode.kind === 'list' ? `list(${mode.nodes.join(',')})` : mode.kind;
}

function formatSettings(s: QuorumSettings, prefix: string): string {
  let out = '';
  if (s.expectedVotes !== 0) out += ` ${prefix}expected=${s.expectedVotes}`;
  if (s.tieBreaker.kind !== 'off') out += ` ${prefix}tie-breaker=${formatMode(s.tieBreaker)}`;
  return out;
}

/** A one-line human form, e.g. `voters=(1,2 3x2)&&(1,2,3) learners=(4)`. */
export function formatConfig(config: ClusterConfig): string {
  const side = (m: ReadonlyMap<NodeId, number>): string =>
    `(${[...m].map(([id, v]) => (v === 1 ? `${id}` : `${id}x${v}`)).join(',')})`;
  let s = `voters=${side(config.voters)}`;
  if (isJoint(config)) s += `&&${side(config.outgoing)}`;
  if (config.learners.size > 0) s += ` learners=(${[...config.learners].join(',')})`;
  if (config.learnersNext.size > 0) s += ` learners_next=(${[...config.learnersNext].join(',')})`;
  if (config.autoLeave) s += ' autoleave';
  // The votequorum settings come last, and only when set, so plain configurations read as before.
  s += formatSettings(config.quorum, '');
  if (isJoint(config) && !sameQuorumSettings(config.quorum, config.outgoingQuorum)) {
    s += formatSettings(config.outgoingQuorum, 'outgoing-');
    if (isDefaultSettings(config.outgoingQuorum)) s += ' outgoing-default';
  }
  if (config.witnesses.size > 0) s += ` witnesses=(${[...config.witnesses].join(',')})`;
  return s;
}
