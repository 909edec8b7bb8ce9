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
 *   the views it re-applies. When the entry changed the member set it also carries
 *   `change=kind:node@incarnation` (the membership view event's change: `joined`, `left` (a clean
 *   leave), `failed`, `replaced`, `quarantined`, `admitted`); absent on a restore or a quorum-only
 *   change.
 * - `fence-ledger index=I node=X incarnation=N what=requested|attempt|fenced|unfenced ...`: the
 *   membership entry at log index I changed the fence record of (X, N) (one per `fence` event of
 *   the membership event stream, traced before the `view` of the same entry). `requested` carries
 *   `reason`; `attempt` carries `device level result round`; `fenced` carries `by=agent|watchdog|
 *   confirm` and, for agent and watchdog proofs, `device level`. Every node that applies the entry
 *   one by one traces it (a snapshot install skips it): the same index from several nodes is one
 *   ledger change.
 * - `recovery index=I group=G level=L generation=N step=S ...`: reserved for the membership stream's
 *   `recovery` events once the recovery table is wired (format and checker:
 *   `cluster-recovery-checker.ts`); not emitted yet.
 * - `fence-step node=X incarnation=N step=run|wait|succeeded|exhausted|manual what=..`: the leader's
 *   executor changed what it does next for the open fence of (X, N) (diagnostics only).
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
 * - `fence-topology mode=manual|auto devices=.. levels=.. lateConfirm=true|false` (once, at time
 *   0): the run's fence topology as the checkers need it: `manual` (no device: every fence waits
 *   for the operator's confirmation) or `auto` (devices that succeed once the faults stop);
 *   `devices` the device names in level order (`a,b`; `a;b` for two levels); `lateConfirm` when the
 *   operator may also confirm dead incarnations late, racing the executor.
 * - `leave node=X incarnation=N result=ok|CODE`: the operator stopped X cleanly (a membership
 *   `leave`, then the process is stopped and restarted later); traced when the leave's `done` runs.
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
  fence: 'fence-ledger',
  fenceStep: 'fence-step',
} as const;

/** Event names of the cluster driver. */
export const CLUSTER_CLIENT_EVENT = {
  fence: 'fence',
  kill: 'kill',
  noKill: 'no-kill',
  fenceTopology: 'fence-topology',
  leave: 'leave',
} as const;

/** What a `fence-ledger` event says happened to a fence record. */
export type TracedFenceWhat = 'requested' | 'attempt' | 'fenced' | 'unfenced';

/** A `fence-ledger` event's fields, parsed. */
export interface TracedFence {
  readonly index: number;
  readonly node: NodeId;
  readonly incarnation: number;
  readonly what: TracedFenceWhat;
  /** `fenced`: the proof's kind (`agent`, `watchdog`, `confirm`); '' otherwise. */
  readonly by: string;
  /** `attempt`: the result (`ok`, `failed`, `timed-out`, `error`); '' otherwise. */
  readonly result: string;
  /** `attempt` and agent/watchdog `fenced`: the device; '' otherwise. */
  readonly device: string;
}

const FENCE_WHATS: ReadonlySet<string> = new Set(['requested', 'attempt', 'fenced', 'unfenced']);

/** Parses a `fence-ledger` event's fields; null when malformed. */
export function parseFence(fields: Readonly<Record<string, unknown>>): TracedFence | null {
  const { index, node, incarnation, what } = fields;
  if (
    typeof index !== 'number' ||
    typeof node !== 'number' ||
    typeof incarnation !== 'number' ||
    typeof what !== 'string' ||
    !FENCE_WHATS.has(what) ||
    !Number.isSafeInteger(index) ||
    !Number.isSafeInteger(node) ||
    !Number.isSafeInteger(incarnation)
  )
    return null;
  const text = (v: unknown): string => (typeof v === 'string' ? v : '');
  return {
    index,
    node: node as NodeId,
    incarnation,
    what: what as TracedFenceWhat,
    by: text(fields.by),
    result: text(fields.result),
    device: text(fields.device),
  };
}

/** A `view` event's `change` field (`left:2@1`), parsed; null when absent or malformed. */
export function parseViewChange(
  fields: Readonly<Record<string, unknown>>,
): { readonly kind: string; readonly node: NodeId; readonly incarnation: number } | null {
  const text = fields.change;
  if (typeof text !== 'string') return null;
  const m = /^([a-z]+):(\d+)@(\d+)$/.exec(text);
  if (m === null) return null;
  return { kind: m[1] as string, node: Number(m[2]) as NodeId, incarnation: Number(m[3]) };
}

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
