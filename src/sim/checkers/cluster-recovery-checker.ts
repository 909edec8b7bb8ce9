/**
 * Recovery after fencing, judged from trace events only: the vocabulary for the membership
 * stream's `recovery` events (`src/recovery/recovery-event.ts`) and the checker of the rule
 * "no group at level >= 1 starts with a view that excludes a failed node before that node's fence
 * is committed" (docs/design/fencing-and-recovery.md section 5).
 *
 * Not wired yet: the workload emits no `recovery` trace until the recovery table is in the
 * membership machine. Then the node program traces, for every `recovery` event of an applied
 * entry (like `fence-ledger`, before the entry's `view`):
 *
 *   `recovery index=I group=G level=L generation=N step=S [reason previous members fences]
 *    [node incarnation] [members]` (`recoveryTraceFields`), members and fences as `1@1,3@2`;
 *
 * and the workload adds `ClusterRecoveryChecker` fed with the fence checker's ledger view
 * (`ClusterFenceChecker` implements `FenceIndexes`).
 *
 * Rules (checker `recovery-fence`), by log index, a round being (group, level, generation):
 * - at `start-due` (index S) every fence the round's `opened` listed is closed at an index <= S;
 * - at `start-due`, every incarnation the group ran with before (the members of its previous
 *   `start-due` or `finished`) that the new members exclude and whose fence is open at S (opened
 *   at or before S, not closed by S) is a violation: the round would start without waiting for it;
 * - a `fence-satisfied` (index F) names a fence closed at an index <= F.
 * A fence whose close was not traced (yet) is judged at the end of the run.
 */
import type { NodeId } from '../../lib/ids.js';
import type { RecoveryEventPayload, RecoveryMemberRef } from '../../recovery/recovery-event.js';
import type { TraceFields } from '../../runtime/env.js';
import type { Checker } from '../workload.js';
import type { SimEvent } from '../trace.js';
import { formatMembers, parseMembers, type TracedMember } from './cluster-events.js';

/** The node program's trace event for a `recovery` event. */
export const RECOVERY_TRACE_EVENT = 'recovery';

/** The trace fields of one `recovery` event applied at log `index` (see the module comment). */
export function recoveryTraceFields(index: number, p: RecoveryEventPayload): TraceFields {
  const base = { index, group: p.group, level: p.level, generation: p.generation, step: p.step };
  switch (p.step) {
    case 'opened':
      return {
        ...base,
        reason: p.reason,
        previous: p.previous,
        members: formatMembers(p.members),
        fences: formatMembers(p.fences),
      };
    case 'aborted':
      return { ...base, next: p.next };
    case 'stopped':
    case 'fence-satisfied':
    case 'member-started':
    case 'member-error':
    case 'member-evicted':
      return { ...base, node: p.node, incarnation: p.incarnation };
    case 'start-due':
    case 'finished':
      return { ...base, members: formatMembers(p.members) };
  }
}

/** What the recovery checker needs to know of the fence ledger (by log index, from traces). */
export interface FenceIndexes {
  /** The index that opened the fence of (node, incarnation), or null when no trace showed it. */
  openedIndex(node: NodeId, incarnation: number): number | null;
  /** The index that closed it, or null when no trace showed it closed. */
  closedIndex(node: NodeId, incarnation: number): number | null;
}

/** A `recovery` trace's fields, parsed (lists empty when absent). */
interface TracedRecovery {
  readonly index: number;
  readonly group: string;
  readonly level: number;
  readonly generation: number;
  readonly step: string;
  readonly members: readonly TracedMember[];
  readonly fences: readonly TracedMember[];
  readonly node: number;
  readonly incarnation: number;
}

function parseRecovery(f: Readonly<Record<string, unknown>>): TracedRecovery | null {
  const num = (v: unknown): number | null => (typeof v === 'number' && Number.isSafeInteger(v) ? v : null);
  const list = (v: unknown): TracedMember[] | null =>
    v === undefined ? [] : typeof v === 'string' ? parseMembers(v) : null;
  const index = num(f.index);
  const level = num(f.level);
  const generation = num(f.generation);
  const members = list(f.members);
  const fences = list(f.fences);
  if (index === null || level === null || generation === null || members === null || fences === null) return null;
  if (typeof f.group !== 'string' || typeof f.step !== 'string') return null;
  return {
    index,
    group: f.group,
    level,
    generation,
    step: f.step,
    members,
    fences,
    node: num(f.node) ?? 0,
    incarnation: num(f.incarnation) ?? 0,
  };
}

/** A check that waits for a fence's close to be traced: the fence must be closed at or before `by`. */
interface Pending {
  readonly fence: RecoveryMemberRef | TracedMember;
  readonly by: number;
  readonly what: string;
}

const refKey = (m: TracedMember): string => `${m.node}@${m.incarnation}`;

/** See the module comment. */
export class ClusterRecoveryChecker implements Checker {
  readonly name = 'cluster-recovery';
  /** The fences each round's `opened` listed (`group/level/generation`), first traced. */
  private readonly roundFences = new Map<string, readonly TracedMember[]>();
  /** The members each group (`group/level`) last ran with (its latest `start-due` or `finished`, by index). */
  private readonly ranWith = new Map<string, { index: number; members: readonly TracedMember[] }>();
  /** `start-due` entries already judged (`group/level/generation/index`): several nodes trace each. */
  private readonly judged = new Set<string>();
  private pending: Pending[] = [];
  /** Distinct `start-due` entries judged. */
  starts = 0;

  constructor(
    private readonly fences: FenceIndexes,
    private readonly violation: (checker: string, message: string) => void,
  ) {}

  observe(e: SimEvent): void {
    if (typeof e.source !== 'number' || e.event !== RECOVERY_TRACE_EVENT) return;
    const r = parseRecovery(e.fields);
    if (r === null) {
      this.violation('recovery-fence', `node ${e.source} traced a malformed recovery event`);
      return;
    }
    if (r.level < 1) return;
    const round = `${r.group}/${r.level}/${r.generation}`;
    const group = `${r.group}/${r.level}`;
    switch (r.step) {
      case 'opened':
        if (!this.roundFences.has(round)) this.roundFences.set(round, r.fences);
        return;
      case 'fence-satisfied':
        this.require({ node: r.node as NodeId, incarnation: r.incarnation }, r.index, `${round} fence-satisfied`);
        return;
      case 'start-due': {
        const once = `${round}/${r.index}`;
        if (this.judged.has(once)) return;
        this.judged.add(once);
        this.starts++;
        const listed = this.roundFences.get(round) ?? [];
        for (const f of listed)
          this.require(f, r.index, `${round} start-due at index ${r.index} (a fence its round waits for)`);
        const waited = new Set(listed.map(refKey));
        const before = this.ranWith.get(group);
        if (before !== undefined && before.index < r.index) {
          const now = new Set(r.members.map(refKey));
          for (const m of before.members) {
            const opened = this.fences.openedIndex(m.node, m.incarnation);
            if (now.has(refKey(m)) || waited.has(refKey(m)) || opened === null || opened > r.index) continue;
            this.require(
              m,
              r.index,
              `${round} start-due at index ${r.index} (excludes ${refKey(m)}, which ran with the group)`,
            );
          }
        }
        this.remember(group, r.index, r.members);
        return;
      }
      case 'finished':
        this.remember(group, r.index, r.members);
        return;
      default:
        return;
    }
  }

  finish(): void {
    for (const p of this.pending) this.judge(p, true);
    this.pending = [];
  }

  private remember(group: string, index: number, members: readonly TracedMember[]): void {
    const was = this.ranWith.get(group);
    if (was === undefined || was.index <= index) this.ranWith.set(group, { index, members });
  }

  /** The fence must be closed at an index <= `by`: judged now if its close is known, else later. */
  private require(fence: TracedMember, by: number, what: string): void {
    const p = { fence, by, what };
    if (!this.judge(p, false)) this.pending.push(p);
  }

  /** Returns whether the check could be decided (reporting a violation if it fails). */
  private judge(p: Pending, final: boolean): boolean {
    const closed = this.fences.closedIndex(p.fence.node, p.fence.incarnation);
    // Unknown yet: a node that traced `by` applied every earlier entry first, so the close is
    // most likely later or missing; the end of the run decides with every trace seen.
    if (closed === null && !final) return false;
    if (closed !== null && closed <= p.by) return true;
    this.violation(
      'recovery-fence',
      `${p.what}: the fence of node ${p.fence.node} incarnation ${p.fence.incarnation} is ${closed === null ? 'never closed' : `closed only at index ${closed}`}`,
    );
    return true;
  }
}
