/**
 * Recovery after fencing, judged from trace events only: the vocabulary for the membership
 * stream's `recovery` events (`src/recovery/recovery-event.ts`) and the checker of the rules
 * "no group at level >= 1 starts with a view that excludes a failed node before that node's fence
 * is committed" and "no round starts while a round of a lower level is open"
 * (docs/design/fencing-and-recovery.md section 5).
 *
 * The cluster workload's node program (`workloads/cluster-program.ts`) traces, for every event of
 * an applied entry, in the entry's event order (like `fence-ledger`, before the entry's `view`):
 *
 * - every `recovery` event: `recovery index=I group=G level=L generation=N step=S [reason previous
 *   members fences] [next] [node incarnation] [members]` (`recoveryTraceFields`), members and
 *   fences as `1@1,3@2`;
 * - every group view change that removes a member (`GroupChangeKind` `removed`: the member left
 *   the cluster view, cleanly or not, or a recovery eviction): `group-removed index=I group=G
 *   node=N incarnation=C`;
 *
 * and the workload feeds `ClusterRecoveryChecker` with the fence checker's ledger view
 * (`ClusterFenceChecker` implements `FenceIndexes`).
 *
 * Rules, by log index; a round is (group, generation) (generations are table-wide):
 * - `recovery-fence`:
 *   - at `start-due` (index S) every fence the round's `opened` listed is closed at an index <= S;
 *   - an unclean removal of X from group G (a `group-removed` at index R whose fence record the
 *     same entry opened: the fence ledger's `requested` at R) must be followed by X's fence before
 *     G starts: every `start-due` of G at an index S >= R needs X's fence closed at an index <= S
 *     (a round that forgot the fence, or kept running past the removal without reopening, shows);
 *   - a `fence-satisfied` (index F) names a fence closed at an index <= F.
 * - `recovery-levels`: a `start-due` at index S of a round at level L while a round of a lower
 *   level is open: opened at an index < S and ended (`aborted` or `finished`) at an index > S, or
 *   never. Events of one entry are not ordered by index alone, so a lower round opened in the
 *   entry S itself is not judged (the table may have made the start due before that open).
 * Fences whose close was not traced (yet), and the two cross-round rules, are judged at the end
 * of the run, with every node's traces seen.
 *
 * Liveness: `settled()` says every round traced as opened was traced as ended; the workload adds
 * it to its liveness condition, so once the faults stop every round finishes (or is replaced by
 * a newer generation that finishes) within the run's liveness bound.
 */
import type { NodeId } from '../../lib/ids.js';
import type { RecoveryEventPayload, RecoveryMemberRef } from '../../recovery/recovery-event.js';
import type { TraceFields } from '../../runtime/env.js';
import type { Checker } from '../workload.js';
import type { SimEvent } from '../trace.js';
import { formatMembers, parseMembers, type TracedMember } from './cluster-events.js';

/** The node program's trace event for a `recovery` event. */
export const RECOVERY_TRACE_EVENT = 'recovery';
/** The node program's trace event for a group view change that removed a member. */
export const GROUP_REMOVED_TRACE_EVENT = 'group-removed';

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

/** What the traces showed of one round (a generation of a group). */
interface TracedRound {
  readonly group: string;
  readonly generation: number;
  level: number;
  /** The fences its `opened` listed (null: its `opened` was not traced). */
  fences: readonly TracedMember[] | null;
  opened: number | null;
  /** The index of its `aborted` or `finished`, null while none was traced. */
  ended: number | null;
  /** The index of its `start-due`, null while none was traced. */
  started: number | null;
}

/** A removal of a member from a group (`group-removed`). */
interface TracedRemoval {
  readonly group: string;
  readonly index: number;
  readonly node: NodeId;
  readonly incarnation: number;
}

/** Distinct events seen, by step (several nodes trace each entry). */
export interface RecoveryCounts {
  opened: number;
  aborted: number;
  stopped: number;
  fenceSatisfied: number;
  startDue: number;
  memberStarted: number;
  memberError: number;
  memberEvicted: number;
  finished: number;
  /** Distinct `group-removed` events. */
  removals: number;
}

const COUNTED: Readonly<Record<string, keyof RecoveryCounts>> = {
  opened: 'opened',
  aborted: 'aborted',
  stopped: 'stopped',
  'fence-satisfied': 'fenceSatisfied',
  'start-due': 'startDue',
  'member-started': 'memberStarted',
  'member-error': 'memberError',
  'member-evicted': 'memberEvicted',
  finished: 'finished',
};

/** See the module comment. */
export class ClusterRecoveryChecker implements Checker {
  readonly name = 'cluster-recovery';
  readonly counts: RecoveryCounts = {
    opened: 0,
    aborted: 0,
    stopped: 0,
    fenceSatisfied: 0,
    startDue: 0,
    memberStarted: 0,
    memberError: 0,
    memberEvicted: 0,
    finished: 0,
    removals: 0,
  };
  /** Rounds by `group/generation`. */
  private readonly rounds = new Map<string, TracedRound>();
  /** Removals by `group/index/node@incarnation`. */
  private readonly removals = new Map<string, TracedRemoval>();
  /** Events already counted (`step/group/generation/index/node/incarnation`). */
  private readonly seen = new Set<string>();
  private pending: Pending[] = [];

  constructor(
    private readonly fences: FenceIndexes,
    private readonly violation: (checker: string, message: string) => void,
  ) {}

  /** Distinct `start-due` entries judged. */
  get starts(): number {
    return this.counts.startDue;
  }

  observe(e: SimEvent): void {
    if (typeof e.source !== 'number') return;
    if (e.event === GROUP_REMOVED_TRACE_EVENT) this.observeRemoval(e);
    if (e.event !== RECOVERY_TRACE_EVENT) return;
    const r = parseRecovery(e.fields);
    if (r === null) {
      this.violation('recovery-fence', `node ${e.source} traced a malformed recovery event`);
      return;
    }
    if (r.level < 1) return;
    const once = `${r.step}/${r.group}/${r.generation}/${r.index}/${r.node}/${r.incarnation}`;
    if (this.seen.has(once)) return;
    this.seen.add(once);
    const counted = COUNTED[r.step];
    if (counted !== undefined) this.counts[counted]++;
    const round = this.round(r.group, r.generation, r.level);
    const name = `${r.group}/${r.level}/${r.generation}`;
    switch (r.step) {
      case 'opened':
        round.level = r.level;
        round.opened = r.index;
        round.fences = r.fences;
        return;
      case 'aborted':
      case 'finished':
        round.ended = r.index;
        return;
      case 'fence-satisfied':
        this.require({ node: r.node as NodeId, incarnation: r.incarnation }, r.index, `${name} fence-satisfied`);
        return;
      case 'start-due':
        round.started = r.index;
        for (const f of round.fences ?? [])
          this.require(f, r.index, `${name} start-due at index ${r.index} (a fence its round waits for)`);
        return;
      default:
        return;
    }
  }

  finish(): void {
    for (const p of this.pending) this.judge(p, true);
    this.pending = [];
    this.judgeRemovals();
    this.judgeLevels();
  }

  /** Every round traced as opened was traced as ended (`aborted` or `finished`). */
  settled(): boolean {
    for (const r of this.rounds.values()) if (r.opened !== null && r.ended === null) return false;
    return true;
  }

  /** The open rounds, for the liveness condition's description. */
  describeOpen(): string {
    return [...this.rounds.values()]
      .filter((r) => r.opened !== null && r.ended === null)
      .map((r) => `${r.group} generation ${r.generation} (level ${r.level}, opened at index ${r.opened ?? '?'})`)
      .join(', ');
  }

  private round(group: string, generation: number, level: number): TracedRound {
    const key = `${group}/${generation}`;
    let r = this.rounds.get(key);
    if (r === undefined) {
      r = { group, generation, level, fences: null, opened: null, ended: null, started: null };
      this.rounds.set(key, r);
    }
    return r;
  }

  private observeRemoval(e: SimEvent): void {
    const f = e.fields;
    const ok = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
    if (!ok(f.index) || !ok(f.node) || !ok(f.incarnation) || typeof f.group !== 'string') {
      this.violation('recovery-fence', `node ${String(e.source)} traced a malformed group-removed event`);
      return;
    }
    const key = `${f.group}/${f.index}/${f.node}@${f.incarnation}`;
    if (this.removals.has(key)) return;
    this.counts.removals++;
    this.removals.set(key, { group: f.group, index: f.index, node: f.node as NodeId, incarnation: f.incarnation });
  }

  /** The unclean-removal rule (see the module comment), with every trace seen. */
  private judgeRemovals(): void {
    const startsOf = new Map<string, TracedRound[]>();
    for (const r of this.rounds.values()) {
      if (r.started === null) continue;
      const list = startsOf.get(r.group) ?? [];
      list.push(r);
      startsOf.set(r.group, list);
    }
    for (const x of this.removals.values()) {
      if (this.fences.openedIndex(x.node, x.incarnation) !== x.index) continue; // not unclean, or not traced
      for (const r of startsOf.get(x.group) ?? []) {
        const s = r.started;
        if (s === null || s < x.index) continue;
        this.judge(
          {
            fence: x,
            by: s,
            what: `${r.group}/${r.level}/${r.generation} start-due at index ${s} (${x.group} lost ${refKey(x)} uncleanly at index ${x.index})`,
          },
          true,
        );
      }
    }
  }

  /** The lower-level rule (see the module comment), with every trace seen. */
  private judgeLevels(): void {
    const rounds = [...this.rounds.values()];
    for (const r of rounds) {
      const s = r.started;
      if (s === null) continue;
      for (const low of rounds) {
        if (low.level >= r.level || low.opened === null || low.opened >= s) continue;
        if (low.ended !== null && low.ended <= s) continue;
        this.violation(
          'recovery-levels',
          `${r.group}/${r.level}/${r.generation} start-due at index ${s} while ${low.group}/${low.level}/${low.generation} (a lower level) is open: opened at index ${low.opened}, ${low.ended === null ? 'never ended' : `ended at index ${low.ended}`}`,
        );
        break;
      }
    }
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
