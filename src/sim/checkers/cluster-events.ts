/**
 * The trace vocabulary shared by the simulated cluster node program (`workloads/cluster-program.ts`,
 * which emits it), the cluster driver, and the cluster checkers (which read it). Checkers see only
 * these events, never node state, so this file is the whole contract between the two sides.
 *
 * Node events (source = node id):
 * - `view index=I viewId=V members=1@1,3@2 quorate=true cmd=join`: after the node applied the
 *   membership entry at log index I, its view is V with these members (`node@incarnation`,
 *   ascending) and this quorate flag; `cmd` is the command type that made it (`refused` when the
 *   state machine refused the command). Emitted whenever (viewId, members, quorate) differs from
 *   what this process traced last (always for its first membership apply), so a restarted node re-traces
 *   the views it re-applies.
 * - `cluster-node-start incarnation=N` (emitted by `ClusterNode` itself): the process runs with
 *   membership incarnation N (not the simulator's process count).
 * - `detector type=fail|quarantine|suspect|clear node=X incarnation=N [reason=K]` (by the
 *   membership service): a decision of the leader's failure detector; `reason` is the fail or
 *   quarantine reason's kind (`detector`, `process-gone`, `partial-connectivity`, `flapping`).
 * - `peer-gone peer=X incarnation=N` (by `ClusterNode`): this node's transport proved X's
 *   process N gone.
 * - `cluster-role role=.. term=.. lead=..` (by `ClusterNode`): the Raft role changed.
 * - `start-refused code=.. reason=..`: the node could not start from its disk.
 *
 * Client events (source = `client`, the cluster driver):
 * - `fence node=X incarnation=N action=confirm|power-cycle|release`: the operator's fence agent.
 * - `kill node=X incarnation=N host=up|down`: liveness phase, X crashed for good (followed by
 *   `sim crash`); `up`: its machine runs on, so its peers get proof that it is gone.
 * - `no-kill reason=..`: liveness phase, the completeness probe was skipped (e.g. the survivors
 *   would hold no quorum).
 *
 * Simulator events used: `start`, `crash`, `pause`, `resume`, `partition`, `heal`, `clog`,
 * `swizzle`, `phase`.
 */
import type { NodeId } from '../../lib/ids.js';
import { arbitrate, type QuorumConfig } from '../../quorum/index.js';

/** Event names of the cluster node program. */
export const CLUSTER_EVENT = {
  view: 'view',
  nodeStart: 'cluster-node-start',
  detector: 'detector',
  role: 'cluster-role',
  startRefused: 'start-refused',
} as const;

/** Event names of the cluster driver. */
export const CLUSTER_CLIENT_EVENT = {
  fence: 'fence',
  kill: 'kill',
  noKill: 'no-kill',
} as const;

/** Membership commands that remove a member against its will (the detector's verdicts). */
export const EVICTION_COMMANDS: ReadonlySet<string> = new Set(['fail', 'quarantine']);

/** One view member as traced. */
export interface TracedMember {
  readonly node: NodeId;
  readonly incarnation: number;
}

/** Encodes members as `1@1,3@2` (ascending by node). */
export function formatMembers(members: readonly TracedMember[]): string {
  return members.map((m) => `${m.node}@${m.incarnation}`).join(',');
}

/** Parses `formatMembers` output; null when malformed or not strictly ascending. */
export function parseMembers(text: string): TracedMember[] | null {
  if (text === '') return [];
  const out: TracedMember[] = [];
  for (const part of text.split(',')) {
    const m = /^(\d+)@(\d+)$/.exec(part);
    if (m === null) return null;
    const node = Number(m[1]) as NodeId;
    const last = out.at(-1);
    if (last !== undefined && last.node >= node) return null;
    out.push({ node, incarnation: Number(m[2]) });
  }
  return out;
}

/** A `view` event's fields, parsed. */
export interface TracedView {
  readonly index: number;
  readonly viewId: number;
  readonly members: readonly TracedMember[];
  /** `formatMembers` of `members`: the canonical content to compare. */
  readonly membersText: string;
  readonly quorate: boolean;
  readonly cmd: string;
}

/** Parses a `view` event's fields; null when they are malformed (a trace no checker can trust). */
export function parseView(fields: Readonly<Record<string, unknown>>): TracedView | null {
  const index = fields.index;
  const viewId = fields.viewId;
  const quorate = fields.quorate;
  const text = fields.members;
  if (
    typeof index !== 'number' ||
    typeof viewId !== 'number' ||
    typeof quorate !== 'boolean' ||
    typeof text !== 'string'
  )
    return null;
  const members = parseMembers(text);
  if (members === null || !Number.isSafeInteger(index) || !Number.isSafeInteger(viewId)) return null;
  return { index, viewId, members, membersText: text, quorate, cmd: typeof fields.cmd === 'string' ? fields.cmd : '' };
}

/**
 * Whether `present` is quorate under the run's configured votes, recomputed by the quorum module
 * exactly as votequorum decides it (expected votes, tie-breaker; wait_for_all and two_node are not
 * drawn by the workload).
 */
export function quorateFor(config: QuorumConfig, present: ReadonlySet<NodeId>): boolean {
  return arbitrate({
    config: { incoming: config },
    present,
    waitForAll: { phase: 'off' },
    twoNode: { enabled: false, fencedPeers: new Set() },
  }).quorate;
}
