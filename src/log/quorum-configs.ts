/**
 * Counting with every configuration in the log, and the progress tracker kept in step with it.
 *
 * Rules: every quorum decision (election outcome, commit index, check-quorum, read confirmation,
 * the lease) needs a quorum of the applied configuration and of each one the configuration entries
 * after the applied index produce, committed or not (docs/raft.md, "Counting with every
 * configuration in the log"). The list is derived once per (applied configuration, last
 * configuration entry) and cached. A leader tracks progress for exactly the members of those
 * configurations, itself included, bounded by `CLUSTER_NODES_MAX`.
 */
import { assert } from '../lib/assert.js';
import { logIndex, type LogIndex, type NodeId } from '../lib/ids.js';
import { CLUSTER_NODES_MAX } from '../constants.js';
import { committedIndex } from '../quorum/index.js';
import { applyConfChange, configNodes, formatConfig, jointQuorumConfig, type ClusterConfig } from './cluster-config.js';
import { Progress } from './progress.js';
import type { RaftState } from './raft-state.js';

/**
 * The configurations a quorum decision (election and pre-vote outcome, commit index,
 * check-quorum, read confirmation and the lease) needs a quorum of: the applied configuration,
 * then each one the configuration entries after the applied index would produce, in log order,
 * applied or not, committed or not. Requiring all of them is at least as strict as the applied
 * configuration (etcd's rule) and as the latest one in the log (the dissertation's rule), so a
 * node whose commit index is stale (e.g. lost across a crash) cannot count with a configuration
 * the cluster already left (docs/raft.md, "Counting with every configuration in the log").
 *
 * Fast path: when no configuration entry follows the applied index, exactly the applied
 * configuration, without scanning. Otherwise derived once per (applied configuration, last
 * configuration entry) and cached. A change that would be refused when applied is skipped here
 * exactly as it will be at apply time (same entries, same order, same starting configuration).
 */
export function quorumConfigs(s: RaftState): readonly ClusterConfig[] {
  const index = s.log.lastConfIndex();
  const cached = s.configsCache;
  const fast = index <= s.log.applied;
  const term = fast ? null : s.log.termOrNull(index);
  if (
    cached !== null &&
    cached.base === s.config &&
    (fast ? cached.configs.length === 1 : cached.index === index && cached.term === term)
  )
    return cached.configs;
  const configs = fast ? [s.config] : deriveConfigs(s, index);
  s.configsCache = { base: s.config, index, term, configs };
  return configs;
}

/** The applied configuration followed by those of the configuration entries up to `lastConf`. */
function deriveConfigs(s: RaftState, lastConf: LogIndex): ClusterConfig[] {
  const configs: ClusterConfig[] = [s.config];
  const lo = firstUnappliedHeld(s);
  if (lastConf < lo) return configs;
  const r = s.log.entries(lo, logIndex(lastConf + 1), Number.MAX_SAFE_INTEGER);
  assert(r.ok, 'entries after the applied index (or the pending snapshot) are never compacted');
  let current = s.config;
  for (const e of r.value) {
    if (e.type !== 'conf') continue;
    const next = applyConfChange(current, e.change);
    if (!next.ok) continue; // ignored at apply time too (conf-change-ignored)
    current = next.value;
    configs.push(current);
  }
  // Bounded by the configuration entries held after the applied index (one per change).
  return configs;
}

/**
 * Traces `conf-latest` (index of the last configuration entry, or of the applied one, and the
 * configuration) when the latest counted configuration changed: the simulator's liveness check
 * needs to know which configurations bind each node's elections.
 */
export function traceLatestConfig(s: RaftState): void {
  if (s.cfg.trace === undefined) return;
  const configs = quorumConfigs(s);
  const latest = configs[configs.length - 1] as ClusterConfig;
  if (latest === s.tracedLatest) return;
  s.tracedLatest = latest;
  s.traceEvent('conf-latest', {
    index: Math.max(s.log.lastConfIndex(), s.log.applied),
    config: formatConfig(latest),
    counted: configs.length,
  });
}

/**
 * The first entry after what `s.config` reflects: after the applied index, or after a
 * received snapshot not yet persisted (its configuration is already in force, its entries are
 * gone from the log).
 */
export function firstUnappliedHeld(s: RaftState): LogIndex {
  return logIndex(Math.max(s.log.applied + 1, s.log.firstIndex()));
}

/** The highest value a quorum of EVERY counted configuration holds (commit index, confirmed round). */
export function quorumIndex(s: RaftState, values: ReadonlyMap<NodeId, number>): number {
  const counted = s.fencedPeer === null ? values : new Map(values).set(s.fencedPeer, Number.MAX_SAFE_INTEGER);
  let index = Number.MAX_SAFE_INTEGER;
  for (const c of quorumConfigs(s)) index = Math.min(index, committedIndex(jointQuorumConfig(c), counted));
  return index;
}

/**
 * The configuration that says whether `id` is a witness: the latest counted one that has it as
 * a member (a member never changes between data node and witness while it stays a member).
 */
export function roleConfig(s: RaftState, id: NodeId): ClusterConfig {
  const configs = quorumConfigs(s);
  for (let i = configs.length - 1; i >= 0; i--) {
    const c = configs[i] as ClusterConfig;
    if (configNodes(c).includes(id)) return c;
  }
  return s.config;
}

/** Leader: progress for exactly the members of every counted configuration (and itself). */
export function syncProgress(s: RaftState): void {
  if (s.role !== 'leader') return;
  const nodes = new Set<NodeId>();
  for (const c of quorumConfigs(s)) for (const id of configNodes(c)) nodes.add(id);
  for (const id of [...s.progress.keys()]) if (!nodes.has(id) && id !== s.id) s.progress.delete(id);
  for (const id of nodes) addProgress(s, id);
}

function addProgress(s: RaftState, id: NodeId): void {
  if (s.progress.has(id)) return;
  assert(s.progress.size < CLUSTER_NODES_MAX, 'progress tracker bounded by the cluster size');
  const pr = new Progress(logIndex(s.log.lastIndex() + 1), s.cfg.maxInflightMessages);
  pr.recentActive = id === s.id;
  if (id === s.id) pr.becomeReplicate();
  s.progress.set(id, pr);
}
