/**
 * The recovery coordinator's state: one recovery round per service group, a pure, deterministic
 * table held by the membership state machine and driven in the same apply as the membership and
 * group changes that open and restart its rounds (docs/recovery.md, docs/design/fencing-and-
 * recovery.md section 5, DESIGN.md section 5: the groupd model, made explicit).
 *
 * ## Rules
 *
 * - A group's round has a `generation`. Generations come from one table-wide counter (like group
 *   view ids), so they grow per group, also across a group's deletion and re-creation: a report
 *   or eviction naming a generation can never be taken for another round's.
 * - **Open.** An unclean removal of a member (it left the cluster view without leaving cleanly:
 *   failed, quarantined, replaced by a newer incarnation) opens the next generation in the same
 *   entry: phase `stopping`, members the survivors, waiting for the removed incarnations' fences.
 *   If a round is open, it is aborted and the next generation opens from the newest members; the
 *   aborted round's fences stay required.
 * - **Restart.** A join, a clean leave or an eviction while a round is open aborts it and opens
 *   the next generation with the new members and the same fences (as groupd restarts a round
 *   when the group changes during recovery: a newcomer must stop and start with the others, a
 *   leaver must not be waited for). With no round open, they open nothing.
 * - **Stop.** Each member reports `stopped` (members stop top level first; that order is the
 *   members' business, the table only collects the reports).
 * - **Due.** A round at level L becomes `starting` when all its fences are recorded
 *   (`onFenced`), every member reported `stopped`, and no round of a level below L is open. This is
 *   computed after every hook, in ascending (level, group) order, so a finish at level 1 makes
 *   level-2 rounds due in the same apply. Until then the phase says what it waits for first:
 *   `stopping` (members), `waiting-fence`, `waiting-lower`.
 * - **Start, finish.** Members report `started` (only once the start is due: earlier is refused
 *   `not-due`); when every member has, the round is `finished` and the group resumes. A round
 *   whose members all left finishes as soon as it is due, and is then forgotten.
 * - **Error, eviction.** A member reporting `error`, or evicted by the leader (`evict`, its
 *   timeout decision), is marked `error` and returned in `evict`: the caller removes it from the
 *   group and calls `onGroupChange`, which restarts the round without it. An eviction is only
 *   taken while the member owes the report the round waits for (a `stopped` while stopping, a
 *   `started` while starting); otherwise it lost the race with the report and is `stale`.
 * - **Stale.** A report or eviction for another generation, a round that is not open, or an
 *   incarnation that is not a member of the round changes nothing (`stale`).
 * - **Level 0** is the fence domain, the cluster view itself: level-0 groups get no rounds.
 *
 * Phases: `idle` (no round open; the group changed since the last one, or never had one),
 * `stopping`, `waiting-fence`, `waiting-lower`, `starting`, `finished` (the last round finished
 * and the group has not changed since). A group has a record while it has members or an open
 * round; a round whose members all left stays open until its fences are recorded, so a group
 * created again under that name cannot start before them.
 *
 * ## Hooks, for the membership state machine (it calls them in its apply; all are pure)
 *
 * Every hook returns a `RecoveryApply`: what it did, the `recovery` events to append (in order,
 * after the membership and group events of the same entry), and the evictions to apply.
 *
 * - `onGroupChange(group, level, membersAfter, removedUncleanly, index)`: after every applied
 *   change of a group's members, once per group per entry, in group-name order:
 *   - a `group-join` or `group-leave` that applied (`membersAfter`: the group's members after it,
 *     empty when it disappeared; `level`: `GroupApply.level`; `removedUncleanly`: []);
 *   - the removals of an entry that changed the cluster view (`GroupTable.removeNode`):
 *     `removedUncleanly` lists the incarnations the entry removed uncleanly (view change kinds
 *     `failed`, `replaced`, `quarantined`), [] for `left`; the same incarnations' fence records
 *     open in the same entry. Read each affected group's level before the removal
 *     (`groupsOf(node, incarnation)`, then `view(group).level`): a group whose last member goes
 *     has no view after it, and its round must still open (it waits for the fence);
 *   - an eviction (below).
 *   Level-0 groups may be passed (they are ignored), so the caller need not filter.
 * - `onFenced(node, incarnation, index)`: in the entry that records the fence of that incarnation,
 *   after that entry's `onGroupChange` calls. Pass the incarnation whose fence record closes (for
 *   today's `fenced` command: the record's `incarnation`, not the command's confirming one);
 *   matching is exact. A `fenced` of a current member removes it uncleanly and fences it in one
 *   entry: call `onGroupChange` (which opens the round), then `onFenced` (which satisfies it).
 * - `report(group, generation, node, incarnation, what, index)`: for `recovery-report`.
 * - `evict(group, generation, node, incarnation, index, reason)`: for `recovery-evict`.
 * - Evictions: for each `{group, node, incarnation}` in `RecoveryApply.evict`, the caller removes
 *   that incarnation from that group (a group view change, kind `removed`) and calls
 *   `onGroupChange(group, level, membersAfter, [], index)`. `onGroupChange` and `onFenced` never
 *   return evictions, so this is one step, never a recursion.
 * - `admitsNewGroup()`: a `group-join` that would create a group is refused `too-many-groups`
 *   when it is false (the table holds at most `RECOVERY_ROUNDS_MAX` records).
 * - `isOpen(group)`: whether the group's members must hold its service (an open round). What a
 *   member does is the recovery service's business: it reads `round(group)` after each apply
 *   (stop while `stopping`, start with `generation` and `members` once `starting`).
 * - `encode(w)` is both the snapshot section and the state-hash contribution (written after the
 *   group table); `decode(r, canary)` reads it; `checkAgainst(groupViews)` is the cross-check to
 *   run after decoding both tables.
 *
 * Iteration is always in sorted order (group names; (level, name) for the due rule; node ids),
 * never in map insertion order. No clock, no randomness, no I/O.
 */
import { assert, assertInt, assertNever, defined } from '../lib/assert.js';
import type { ByteReader, ByteWriter } from '../lib/bytes.js';
import { DecodeError } from '../lib/errors.js';
import type { Incarnation, LogIndex, NodeId } from '../lib/ids.js';
import {
  CLUSTER_NODES_MAX,
  GROUP_LEVEL_MAX,
  GROUP_NAME_BYTES_MAX,
  RECOVERY_FENCES_PER_ROUND_MAX,
  RECOVERY_ROUNDS_MAX,
} from '../constants.js';
import { readName, writeName } from '../groups/group-command.js';
import type { RecoveryReport } from './recovery-command.js';
import type { RecoveryEventPayload, RecoveryMemberRef } from './recovery-event.js';

/** Where a group's recovery is; see the module comment. */
export type RecoveryPhase = 'idle' | 'stopping' | 'waiting-fence' | 'waiting-lower' | 'starting' | 'finished';

/** All phases, in encoding order. */
export const RECOVERY_PHASES: readonly RecoveryPhase[] = [
  'idle',
  'stopping',
  'waiting-fence',
  'waiting-lower',
  'starting',
  'finished',
];

/** Whether a round in `phase` is open (not yet finished, not idle). */
export function isOpenPhase(phase: RecoveryPhase): boolean {
  return phase !== 'idle' && phase !== 'finished';
}

/** A member of a round and its report on the round (null: none yet). */
export interface RecoveryRoundMember extends RecoveryMemberRef {
  readonly report: RecoveryReport | null;
}

/** A fence a round waits for, with the index of the entry that made the round wait for it. */
export interface RecoveryFenceWait extends RecoveryMemberRef {
  readonly sinceIndex: number;
}

/** A group's recovery state, as `rounds()` and `round()` give it. */
export interface RecoveryRound {
  readonly group: string;
  readonly level: number;
  /** 0 when the group never had a round. */
  readonly generation: number;
  readonly phase: RecoveryPhase;
  /** Ascending by node. */
  readonly members: readonly RecoveryRoundMember[];
  /** The fences not recorded yet, ascending by (node, incarnation); empty unless open. */
  readonly awaitingFences: readonly RecoveryFenceWait[];
  /** The index of the entry that opened this generation (0: none). */
  readonly openedAtIndex: number;
  /** The index of the entry that put the round in its phase. */
  readonly phaseSinceIndex: number;
}

/** What a round waits for (`cohort recovery`: "why is my cluster stuck?"). */
export interface RecoveryWait {
  readonly group: string;
  readonly level: number;
  readonly generation: number;
  readonly phase: RecoveryPhase;
  /** Since which entry the round is in this phase. */
  readonly sinceIndex: number;
  /** Fences not recorded yet (each with the index since which it is awaited). */
  readonly fences: readonly RecoveryFenceWait[];
  /** Members that owe `stopped` (while stopping). */
  readonly notStopped: readonly RecoveryMemberRef[];
  /** Members that owe `started` (while starting). */
  readonly notStarted: readonly RecoveryMemberRef[];
  /** Members that reported `error` or were evicted, waiting for the caller to remove them. */
  readonly evicting: readonly RecoveryMemberRef[];
  /** Open rounds of lower levels, ascending by (level, group). */
  readonly lower: readonly {
    readonly group: string;
    readonly level: number;
    readonly generation: number;
    readonly phase: RecoveryPhase;
  }[];
}

/**
 * What a hook did. `applied`: it changed the table; `no-change`: nothing to do; `duplicate`: the
 * member already reported that; `stale`: another generation, a round not open, or not a member
 * (or an eviction that lost the race with the report); `not-due`: `started` before the start was due.
 */
export type RecoveryOutcome = 'applied' | 'no-change' | 'duplicate' | 'stale' | 'not-due';

/** A member the caller must remove from its group (then call `onGroupChange`). */
export interface RecoveryEviction extends RecoveryMemberRef {
  readonly group: string;
  readonly generation: number;
}

/** The result of a hook. */
export interface RecoveryApply {
  readonly outcome: RecoveryOutcome;
  /** `recovery` events to append, in order. */
  readonly events: readonly RecoveryEventPayload[];
  /** Members to remove from their groups (only from `report` with `error` and `evict`). */
  readonly evict: readonly RecoveryEviction[];
}

/**
 * Planted bugs for the checkers (never set in production): `start-before-fence` ignores the
 * fences in the due rule; `start-before-lower` ignores lower levels; `skip-abort` skips the abort
 * on a newer view change: an unclean removal while the group's round is open keeps that round
 * (generation, reports, fences) going with the survivors instead of opening the next generation,
 * and does not add the removed incarnations' fences, so the round can start without them before
 * their fences.
 */
export type RecoveryCanary = 'start-before-fence' | 'start-before-lower' | 'skip-abort';

/** Planted-bug names, for validation. */
export const RECOVERY_CANARIES: readonly RecoveryCanary[] = ['start-before-fence', 'start-before-lower', 'skip-abort'];

interface MemberState {
  readonly incarnation: Incarnation;
  report: RecoveryReport | null;
}

interface RoundState {
  level: number;
  generation: number;
  phase: RecoveryPhase;
  members: Map<NodeId, MemberState>;
  /** Ascending by (node, incarnation). */
  fences: RecoveryFenceWait[];
  openedAtIndex: number;
  phaseSinceIndex: number;
}

const REPORT_CODES: readonly (RecoveryReport | null)[] = [null, 'stopped', 'started', 'error'];

const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
const byRef = (a: RecoveryMemberRef, b: RecoveryMemberRef): number => a.node - b.node || a.incarnation - b.incarnation;

/** The recovery table. See the module comment. */
export class RecoveryTable {
  private readonly rounds_ = new Map<string, RoundState>();
  /** The last generation handed out, table-wide. */
  private lastGeneration = 0;

  constructor(private readonly canary: RecoveryCanary | null = null) {}

  // ----------------------------------------------------------------------------------------------
  // Queries

  /** Every group's recovery state, by group name. */
  rounds(): RecoveryRound[] {
    return this.names().map((name) => this.viewOf(name, defined(this.rounds_.get(name), 'round')));
  }

  /** One group's recovery state, or null when the table holds none for it. */
  round(group: string): RecoveryRound | null {
    const r = this.rounds_.get(group);
    return r === undefined ? null : this.viewOf(group, r);
  }

  /** Whether `group` has an open round (its members must not run the group's service). */
  isOpen(group: string): boolean {
    const r = this.rounds_.get(group);
    return r !== undefined && isOpenPhase(r.phase);
  }

  /** What `group`'s round waits for, or null when the table holds nothing for it. */
  waitingFor(group: string): RecoveryWait | null {
    const r = this.rounds_.get(group);
    if (r === undefined) return null;
    const refs = (pred: (m: MemberState) => boolean): RecoveryMemberRef[] =>
      membersOf(r)
        .filter((m) => pred(m))
        .map(({ node, incarnation }) => ({ node, incarnation }));
    const open = isOpenPhase(r.phase);
    return {
      group,
      level: r.level,
      generation: r.generation,
      phase: r.phase,
      sinceIndex: r.phaseSinceIndex,
      fences: r.fences,
      notStopped: open && r.phase !== 'starting' ? refs((m) => m.report === null) : [],
      notStarted: r.phase === 'starting' ? refs((m) => m.report === 'stopped') : [],
      evicting: open ? refs((m) => m.report === 'error') : [],
      lower: open
        ? this.byLevel()
            .map((name) => ({ name, s: defined(this.rounds_.get(name), 'round') }))
            .filter(({ s }) => s.level < r.level && isOpenPhase(s.phase))
            .map(({ name, s }) => ({ group: name, level: s.level, generation: s.generation, phase: s.phase }))
        : [],
    };
  }

  /** Whether a new group may be created (the table has room for its record). */
  admitsNewGroup(): boolean {
    return this.rounds_.size < RECOVERY_ROUNDS_MAX;
  }

  // ----------------------------------------------------------------------------------------------
  // Hooks

  /**
   * `group`'s members changed (see the module comment for when to call it): `membersAfter` are
   * its members after the change (ascending by node; empty when the group is gone), `level` its
   * level, `removedUncleanly` the incarnations this entry removed from it uncleanly. Opens,
   * restarts or updates the group's round, then applies the due rule.
   */
  onGroupChange(
    group: string,
    level: number,
    membersAfter: readonly RecoveryMemberRef[],
    removedUncleanly: readonly RecoveryMemberRef[],
    index: LogIndex,
  ): RecoveryApply {
    assertInt(level, 0, GROUP_LEVEL_MAX, 'group level');
    assert(membersAfter.length <= CLUSTER_NODES_MAX, 'a group has at most CLUSTER_NODES_MAX members');
    for (let i = 1; i < membersAfter.length; i++)
      assert(defined(membersAfter[i]).node > defined(membersAfter[i - 1]).node, 'members ascend by node');
    for (const gone of removedUncleanly)
      assert(!membersAfter.some((m) => m.node === gone.node), `node ${gone.node} was removed from ${group} uncleanly`);
    const events: RecoveryEventPayload[] = [];
    let rec = this.rounds_.get(group);
    if (level === 0) {
      // Level 0 is the fence domain: no group rounds. A record can only exist if the group was
      // created again at level 0 while its old round waited; the new group is not coordinated.
      if (rec === undefined) return { outcome: 'no-change', events, evict: [] };
      if (isOpenPhase(rec.phase))
        events.push({ step: 'aborted', group, level: rec.level, generation: rec.generation, next: 0 });
      this.rounds_.delete(group);
      this.settle(index, events);
      return { outcome: 'applied', events, evict: [] };
    }
    if (rec === undefined) {
      if (membersAfter.length === 0 && removedUncleanly.length === 0)
        return { outcome: 'no-change', events, evict: [] };
      assert(this.admitsNewGroup(), 'the recovery table is full: refuse joins creating groups (admitsNewGroup)');
      rec = {
        level,
        generation: 0,
        phase: 'idle',
        members: new Map(),
        fences: [],
        openedAtIndex: 0,
        phaseSinceIndex: 0,
      };
      this.rounds_.set(group, rec);
    }
    const open = isOpenPhase(rec.phase);
    const changed = !sameMembers(rec, membersAfter) || rec.level !== level;
    if (this.canary === 'skip-abort' && open && removedUncleanly.length > 0 && rec.level === level) {
      // The planted bug: the round goes on without the removed members and their fences.
      for (const node of [...rec.members.keys()])
        if (!membersAfter.some((m) => m.node === node)) rec.members.delete(node);
    } else if (removedUncleanly.length > 0 || (open && changed)) {
      this.open(group, rec, level, membersAfter, removedUncleanly, index, events);
    } else if (!open && changed) {
      rec.level = level;
      rec.members = memberMap(membersAfter);
      rec.phase = 'idle';
      rec.phaseSinceIndex = index;
    } else {
      return { outcome: 'no-change', events, evict: [] };
    }
    this.settle(index, events);
    return { outcome: 'applied', events, evict: [] };
  }

  /** The fence of `node` at `incarnation` was recorded: every round waiting for it stops waiting. */
  onFenced(node: NodeId, incarnation: Incarnation, index: LogIndex): RecoveryApply {
    const events: RecoveryEventPayload[] = [];
    for (const group of this.names()) {
      const r = defined(this.rounds_.get(group), 'round');
      const i = r.fences.findIndex((f) => f.node === node && f.incarnation === incarnation);
      if (i < 0) continue;
      r.fences.splice(i, 1);
      events.push({ step: 'fence-satisfied', group, level: r.level, generation: r.generation, node, incarnation });
    }
    if (events.length === 0) return { outcome: 'no-change', events, evict: [] };
    this.settle(index, events);
    return { outcome: 'applied', events, evict: [] };
  }

  /**
   * Member `node` at `incarnation` reports `what` on generation `generation` of `group`'s round.
   * `error` marks it and returns it in `evict` (the caller removes it from the group).
   */
  report(
    group: string,
    generation: number,
    node: NodeId,
    incarnation: Incarnation,
    what: RecoveryReport,
    index: LogIndex,
  ): RecoveryApply {
    const found = this.memberOf(group, generation, node, incarnation);
    if (found === null) return stale();
    const { r, m } = found;
    const round = { group, level: r.level, generation };
    const events: RecoveryEventPayload[] = [];
    const evict: RecoveryEviction[] = [];
    switch (what) {
      case 'stopped':
        if (m.report === 'stopped' || m.report === 'started') return duplicate();
        if (m.report === 'error') return stale();
        m.report = 'stopped';
        events.push({ step: 'stopped', ...round, node, incarnation });
        break;
      case 'started':
        if (m.report === 'started') return duplicate();
        if (m.report === 'error') return stale();
        if (r.phase !== 'starting') return { outcome: 'not-due', events, evict };
        m.report = 'started';
        events.push({ step: 'member-started', ...round, node, incarnation });
        break;
      case 'error':
        if (m.report === 'error') return duplicate();
        m.report = 'error';
        events.push({ step: 'member-error', ...round, node, incarnation });
        evict.push({ group, generation, node, incarnation });
        break;
      default:
        return assertNever(what, 'recovery report');
    }
    this.settle(index, events);
    return { outcome: 'applied', events, evict };
  }

  /**
   * The leader's decision that member `node` at `incarnation` did not report in time: like an
   * `error` report, if the member still owes the report the round waits for; `stale` otherwise.
   */
  evict(
    group: string,
    generation: number,
    node: NodeId,
    incarnation: Incarnation,
    index: LogIndex,
    reason = '',
  ): RecoveryApply {
    const found = this.memberOf(group, generation, node, incarnation);
    if (found === null) return stale();
    const { r, m } = found;
    if (m.report === 'error') return duplicate();
    const owes = r.phase === 'starting' ? m.report === 'stopped' : m.report === null;
    if (!owes) return stale();
    m.report = 'error';
    const events: RecoveryEventPayload[] = [
      { step: 'member-evicted', group, level: r.level, generation, node, incarnation, reason },
    ];
    this.settle(index, events);
    return { outcome: 'applied', events, evict: [{ group, generation, node, incarnation }] };
  }

  // ----------------------------------------------------------------------------------------------
  // Rules

  /** Aborts `rec`'s open round (if any) and opens the next generation; see the module comment. */
  private open(
    group: string,
    rec: RoundState,
    level: number,
    membersAfter: readonly RecoveryMemberRef[],
    removedUncleanly: readonly RecoveryMemberRef[],
    index: LogIndex,
    events: RecoveryEventPayload[],
  ): void {
    const wasOpen = isOpenPhase(rec.phase);
    const previous = wasOpen ? rec.generation : 0;
    const generation = ++this.lastGeneration;
    if (wasOpen)
      events.push({ step: 'aborted', group, level: rec.level, generation: rec.generation, next: generation });
    const fences = wasOpen ? [...rec.fences] : [];
    for (const gone of removedUncleanly)
      if (!fences.some((f) => f.node === gone.node && f.incarnation === gone.incarnation))
        fences.push({ node: gone.node, incarnation: gone.incarnation, sinceIndex: index });
    fences.sort(byRef);
    assert(fences.length <= RECOVERY_FENCES_PER_ROUND_MAX, 'a node has at most one fence pending');
    rec.level = level;
    rec.generation = generation;
    rec.phase = 'stopping';
    rec.members = memberMap(membersAfter);
    rec.fences = fences;
    rec.openedAtIndex = index;
    rec.phaseSinceIndex = index;
    events.push({
      step: 'opened',
      group,
      level,
      generation,
      reason: removedUncleanly.length > 0 ? 'unclean-removal' : 'member-change',
      previous,
      members: membersAfter.map(({ node, incarnation }) => ({ node, incarnation })),
      fences: fences.map(({ node, incarnation }) => ({ node, incarnation })),
    });
  }

  /**
   * The due rule, applied to every open round in ascending (level, group) order, so a round's
   * lower levels are settled before it is judged: one pass reaches the fixpoint. Then forgets
   * finished rounds without members.
   */
  private settle(index: LogIndex, events: RecoveryEventPayload[]): void {
    for (const group of this.byLevel()) {
      const r = defined(this.rounds_.get(group), 'round');
      if (!isOpenPhase(r.phase)) continue;
      const round = { group, level: r.level, generation: r.generation };
      if (r.phase !== 'starting') {
        const next = this.duePhase(r);
        if (next !== r.phase) {
          r.phase = next;
          r.phaseSinceIndex = index;
          if (next === 'starting') events.push({ step: 'start-due', ...round, members: refsOf(r) });
        }
      }
      if (r.phase === 'starting' && membersOf(r).every((m) => m.report === 'started')) {
        r.phase = 'finished';
        r.phaseSinceIndex = index;
        events.push({ step: 'finished', ...round, members: refsOf(r) });
      }
    }
    for (const group of this.names()) {
      const r = defined(this.rounds_.get(group), 'round');
      if (!isOpenPhase(r.phase) && r.members.size === 0) this.rounds_.delete(group);
    }
  }

  /** The phase an open round that has not started yet is in: what it waits for first. */
  private duePhase(r: RoundState): RecoveryPhase {
    if (membersOf(r).some((m) => m.report !== 'stopped')) return 'stopping';
    if (r.fences.length > 0 && this.canary !== 'start-before-fence') return 'waiting-fence';
    if (this.canary !== 'start-before-lower' && this.lowerOpen(r.level)) return 'waiting-lower';
    return 'starting';
  }

  private lowerOpen(level: number): boolean {
    for (const r of this.rounds_.values()) if (r.level < level && isOpenPhase(r.phase)) return true;
    return false;
  }

  private memberOf(
    group: string,
    generation: number,
    node: NodeId,
    incarnation: Incarnation,
  ): { r: RoundState; m: MemberState } | null {
    const r = this.rounds_.get(group);
    if (r === undefined || !isOpenPhase(r.phase) || r.generation !== generation) return null;
    const m = r.members.get(node);
    return m === undefined || m.incarnation !== incarnation ? null : { r, m };
  }

  private names(): string[] {
    return [...this.rounds_.keys()].sort(byName);
  }

  /** Group names by (level, name). */
  private byLevel(): string[] {
    return this.names().sort(
      (a, b) => defined(this.rounds_.get(a)).level - defined(this.rounds_.get(b)).level || byName(a, b),
    );
  }

  private viewOf(group: string, r: RoundState): RecoveryRound {
    return {
      group,
      level: r.level,
      generation: r.generation,
      phase: r.phase,
      members: membersOf(r),
      awaitingFences: [...r.fences],
      openedAtIndex: r.openedAtIndex,
      phaseSinceIndex: r.phaseSinceIndex,
    };
  }

  // ----------------------------------------------------------------------------------------------
  // Canonical encoding (snapshot section and state hash)

  /** Writes the table in canonical order. */
  encode(w: ByteWriter): void {
    w.u64(this.lastGeneration).u8(this.rounds_.size);
    for (const group of this.names()) {
      const r = defined(this.rounds_.get(group), 'round');
      writeName(w, group);
      w.u8(r.level).u64(r.generation).u8(RECOVERY_PHASES.indexOf(r.phase)).u64(r.openedAtIndex).u64(r.phaseSinceIndex);
      w.u8(r.members.size);
      for (const m of membersOf(r)) w.u16(m.node).u64(m.incarnation).u8(REPORT_CODES.indexOf(m.report));
      w.u8(r.fences.length);
      for (const f of r.fences) w.u16(f.node).u64(f.incarnation).u64(f.sinceIndex);
    }
  }

  /**
   * Reads what `encode` wrote; raises only `DecodeError`: on truncation, bounds, order, unknown
   * codes, a round whose phase contradicts its reports and fences, and a table that is not
   * settled (the due rule would change it: every hook leaves the table settled).
   */
  static decode(r: ByteReader, canary: RecoveryCanary | null = null): RecoveryTable {
    const t = new RecoveryTable(canary);
    t.lastGeneration = r.u64('last recovery generation');
    const count = r.u8('recovery round count');
    if (count > RECOVERY_ROUNDS_MAX)
      throw new DecodeError('DECODE_TOO_LARGE', `${count} recovery rounds; at most ${RECOVERY_ROUNDS_MAX}`);
    let prev: string | null = null;
    for (let i = 0; i < count; i++) {
      const group = readName(r, GROUP_NAME_BYTES_MAX, 'group name');
      if (prev !== null && group <= prev)
        throw new DecodeError('DECODE_INVALID', 'recovery rounds are not in ascending group order');
      prev = group;
      const round = readRound(r, group, t.lastGeneration);
      const problem = phaseProblem(round, canary);
      if (problem !== null) throw new DecodeError('DECODE_INVALID', `recovery round of ${group}: ${problem}`);
      t.rounds_.set(group, round);
    }
    const events: RecoveryEventPayload[] = [];
    const phases = (): string =>
      t
        .rounds()
        .map((x) => `${x.group}:${x.phase}`)
        .join(' ');
    const before = phases();
    t.settle(0 as LogIndex, events);
    if (events.length > 0 || phases() !== before)
      throw new DecodeError('DECODE_INVALID', 'the recovery table is not settled (a round is due or forgettable)');
    return t;
  }

  /**
   * Why this table cannot be held beside these group views, or null: every record's level and
   * members must be its group's (a record without members may outlive its group).
   */
  checkAgainst(
    views: readonly {
      readonly group: string;
      readonly level: number;
      readonly members: readonly RecoveryMemberRef[];
    }[],
  ): string | null {
    for (const v of views) {
      const r = this.rounds_.get(v.group);
      if (v.level === 0) {
        if (r !== undefined) return `level-0 group ${v.group} has a recovery record`;
        continue;
      }
      if (r === undefined) continue; // a group that has not changed since the table was introduced
      if (r.level !== v.level) return `group ${v.group} has level ${v.level}, its recovery record ${r.level}`;
      if (!sameMembers(r, v.members)) return `the recovery record of ${v.group} lists other members than the group`;
    }
    for (const [group, r] of this.rounds_)
      if (r.members.size > 0 && !views.some((v) => v.group === group))
        return `the recovery record of ${group} lists members of a group that does not exist`;
    return null;
  }
}

function stale(): RecoveryApply {
  return { outcome: 'stale', events: [], evict: [] };
}

function duplicate(): RecoveryApply {
  return { outcome: 'duplicate', events: [], evict: [] };
}

function memberMap(members: readonly RecoveryMemberRef[]): Map<NodeId, MemberState> {
  return new Map(members.map((m) => [m.node, { incarnation: m.incarnation, report: null }]));
}

function sameMembers(r: RoundState, members: readonly RecoveryMemberRef[]): boolean {
  return (
    r.members.size === members.length && members.every((m) => r.members.get(m.node)?.incarnation === m.incarnation)
  );
}

function membersOf(r: RoundState): RecoveryRoundMember[] {
  return [...r.members.entries()]
    .sort(([a], [b]) => a - b)
    .map(([node, m]) => ({ node, incarnation: m.incarnation, report: m.report }));
}

function refsOf(r: RoundState): RecoveryMemberRef[] {
  return membersOf(r).map(({ node, incarnation }) => ({ node, incarnation }));
}

function readRound(r: ByteReader, group: string, lastGeneration: number): RoundState {
  const level = r.u8('level');
  if (level < 1 || level > GROUP_LEVEL_MAX)
    throw new DecodeError('DECODE_RANGE', `recovery round of ${group} has level ${level}; 1 to ${GROUP_LEVEL_MAX}`);
  const generation = r.u64('generation');
  if (generation > lastGeneration)
    throw new DecodeError(
      'DECODE_RANGE',
      `recovery round of ${group} has generation ${generation} > ${lastGeneration}`,
    );
  const phaseCode = r.u8('recovery phase');
  const phase = RECOVERY_PHASES[phaseCode];
  if (phase === undefined) throw new DecodeError('DECODE_INVALID', `recovery phase ${phaseCode} is unknown`);
  const openedAtIndex = r.u64('opened at index');
  const phaseSinceIndex = r.u64('phase since index');
  const memberCount = r.u8('round member count');
  if (memberCount > CLUSTER_NODES_MAX)
    throw new DecodeError('DECODE_TOO_LARGE', `${memberCount} round members; at most ${CLUSTER_NODES_MAX}`);
  const members = new Map<NodeId, MemberState>();
  let prevNode = 0;
  for (let i = 0; i < memberCount; i++) {
    const node = r.u16('round member');
    if (node <= prevNode) throw new DecodeError('DECODE_INVALID', `members of ${group}'s round are not ascending`);
    prevNode = node;
    const incarnation = r.u64('member incarnation');
    if (incarnation < 1) throw new DecodeError('DECODE_RANGE', 'a round member incarnation is 0');
    const code = r.u8('member report');
    const report = REPORT_CODES[code];
    if (report === undefined) throw new DecodeError('DECODE_INVALID', `member report ${code} is unknown`);
    members.set(node as NodeId, { incarnation: incarnation as Incarnation, report });
  }
  const fenceCount = r.u8('fence count');
  if (fenceCount > RECOVERY_FENCES_PER_ROUND_MAX)
    throw new DecodeError('DECODE_TOO_LARGE', `${fenceCount} fences; at most ${RECOVERY_FENCES_PER_ROUND_MAX}`);
  const fences: RecoveryFenceWait[] = [];
  for (let i = 0; i < fenceCount; i++) {
    const node = r.u16('fence node') as NodeId;
    const incarnation = r.u64('fence incarnation') as Incarnation;
    const sinceIndex = r.u64('fence since index');
    const f = { node, incarnation, sinceIndex };
    const last = fences.at(-1);
    if (node < 1 || incarnation < 1 || (last !== undefined && byRef(last, f) >= 0))
      throw new DecodeError('DECODE_INVALID', `fences of ${group}'s round are not ascending or name node 0`);
    fences.push(f);
  }
  return { level, generation, phase, members, fences, openedAtIndex, phaseSinceIndex };
}

/** Why `r`'s phase contradicts its reports and fences, or null. */
function phaseProblem(r: RoundState, canary: RecoveryCanary | null): string | null {
  const reports = [...r.members.values()].map((m) => m.report);
  const open = isOpenPhase(r.phase);
  if (!open && r.fences.length > 0) return `${r.phase} with fences pending`;
  if (r.generation === 0 && r.phase !== 'idle') return `${r.phase} without a generation`;
  if (open && r.openedAtIndex === 0) return `${r.phase} without the index that opened it`;
  switch (r.phase) {
    case 'idle':
      return reports.every((x) => x === null) ? null : 'idle with reports';
    case 'finished':
      return reports.every((x) => x === 'started') ? null : 'finished before every member started';
    case 'stopping':
      return reports.some((x) => x === null || x === 'error') && !reports.includes('started')
        ? null
        : 'stopping with every member stopped, or one started';
    case 'waiting-fence':
    case 'waiting-lower':
      return reports.every((x) => x === 'stopped') &&
        (r.phase === 'waiting-fence' ? r.fences.length > 0 : r.fences.length === 0 || canary === 'start-before-fence')
        ? null
        : `${r.phase} with a member not stopped, or fences that say otherwise`;
    case 'starting':
      return !reports.includes(null) && (r.fences.length === 0 || canary === 'start-before-fence')
        ? null
        : 'starting with a member not stopped, or fences pending';
    default:
      return assertNever(r.phase, 'recovery phase');
  }
}
