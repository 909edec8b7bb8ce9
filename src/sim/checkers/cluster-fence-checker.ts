/**
 * Fencing, judged from trace events only (`cluster-events.ts`: `fence-ledger`, `view` with its
 * `change`, the driver's `fence-topology`, the simulator's `phase`). The fence ledger changes at
 * log positions, so every rule is stated by log index: the same index traced by several nodes is
 * one ledger change.
 *
 * Safety (each a violation under its own checker name):
 * - `fence-once`: a fence (node, incarnation) is closed at most once: every `fenced` of it, on
 *   every node, names one log index.
 * - `fence-clean-leave`: no fence record is opened for an incarnation that left cleanly (a view
 *   change `left:node@incarnation`).
 * - `fence-admission`: while a fence of node X is open (from the index that opened it, up to but
 *   not including the index that closed it), no view holds X at all: neither the fenced
 *   incarnation nor a newer one waiting for it. Judged at once when the process that traces the
 *   view traced the fence's opening and no close since (it applied every entry in between one by
 *   one); otherwise when the close is traced, or at the end of the run (a fence never closed
 *   covers every later index).
 *
 * Liveness (`fence-liveness`):
 * - in a manual-only run (`fence-topology mode=manual`) a fence is closed only by a confirmation;
 * - in an automatic run (`mode=auto`: devices that succeed once the faults stop) every fence open
 *   in the liveness phase is closed within `closeBoundMs` of the later of its opening and the
 *   phase's start. `settled()` (no fence open) is part of the workload's liveness condition, so a
 *   run does not end with a fence still open.
 *
 * For the recovery checker (`cluster-recovery-checker.ts`, wired in the cluster workload): as
 * `FenceIndexes`, `openedIndex` and `closedIndex(node, incarnation)` answer the log indexes that
 * opened and closed a fence, as the traces show them, so `ClusterRecoveryChecker` ("no group at
 * level >= 1 starts a view that excludes a failed node before that node's fence is committed")
 * compares them with a round's start index.
 */
import type { NodeId } from '../../lib/ids.js';
import type { Checker } from '../workload.js';
import type { SimEvent } from '../trace.js';
import type { FenceIndexes } from './cluster-recovery-checker.js';
import { GROUP_EVENT } from './cluster-group-events.js';
import { CLUSTER_CLIENT_EVENT, CLUSTER_EVENT, parseFence, parseView, parseViewChange } from './cluster-events.js';

/** Options of the fence checker. */
export interface ClusterFenceCheckerOptions {
  /** In automatic runs, how long after the later of its opening and the liveness phase's start a fence must be closed, ms. */
  readonly closeBoundMs: number;
}

/** What the traces showed of one fence record. */
interface TracedRecord {
  readonly node: NodeId;
  readonly incarnation: number;
  /** The index that opened it (null: its opening was not traced, e.g. skipped by snapshots). */
  openIndex: number | null;
  /** When it was first seen open (true virtual µs). */
  openUs: number;
  closeIndex: number | null;
  closeBy: string;
  lateReported: boolean;
  admissionReported: boolean;
}

/** `ClusterNode`'s trace event when a node fences itself (watchdog topologies). */
const SELF_FENCE_EVENT = 'self-fence';

const key = (node: NodeId, incarnation: number): string => `${node}/${incarnation}`;

/** See the module comment. */
export class ClusterFenceChecker implements Checker, FenceIndexes {
  readonly name = 'cluster-fence';
  private readonly records = new Map<string, TracedRecord>();
  /** Incarnations that left cleanly (`node/incarnation`). */
  private readonly cleanLeft = new Set<string>();
  /** Log indexes at which some view held node X (any incarnation). */
  private readonly memberAt = new Map<NodeId, Set<number>>();
  /**
   * Per process (by node, reset when it restarts or installs a snapshot: `sim start`/`crash`,
   * `raft-snapshot-restored`, a `restore` view): the fences it applied
   * the opening of and not yet the close. Such a process applied every entry since one by one, so
   * a view it traces holding the node of one of them is a definite verdict, at once.
   */
  private readonly openOn = new Map<NodeId, Map<string, TracedRecord>>();
  private mode: 'manual' | 'auto' | null = null;
  private livenessUs: number | null = null;
  private lastUs = 0;
  /** Fence-ledger events seen (all nodes). */
  events = 0;
  /** Distinct fences seen, closed, closed by an agent (or watchdog), closed by a confirmation; attempts recorded. */
  readonly counts = {
    opened: 0,
    closed: 0,
    byAgent: 0,
    byConfirm: 0,
    attempts: 0,
    selfFences: 0,
    /** two_node: fence races started and won, peers given their vote back (`two-node-race.ts`). */
    races: 0,
    raceWins: 0,
    promotions: 0,
  };
  /** Log indexes of the attempts seen (one attempt per entry). */
  private readonly attemptIndexes = new Set<number>();

  constructor(
    private readonly options: ClusterFenceCheckerOptions,
    private readonly violation: (checker: string, message: string) => void,
  ) {}

  observe(e: SimEvent): void {
    this.lastUs = e.timeUs;
    if (e.source === 'sim' && e.event === 'phase' && e.fields.name === 'liveness') this.livenessUs = e.timeUs;
    else if (e.source === 'sim' && (e.event === 'start' || e.event === 'crash') && typeof e.fields.node === 'number')
      this.openOn.delete(e.fields.node as NodeId);
    else if (e.source === 'client' && e.event === CLUSTER_CLIENT_EVENT.fenceTopology) {
      const m = e.fields.mode;
      this.mode = m === 'auto' || m === 'manual' ? m : null;
    } else if (typeof e.source === 'number' && e.event === CLUSTER_EVENT.fence) this.onFence(e);
    else if (typeof e.source === 'number' && e.event === CLUSTER_EVENT.view) this.onView(e);
    else if (typeof e.source === 'number' && e.event === SELF_FENCE_EVENT) this.counts.selfFences++;
    else if (typeof e.source === 'number' && e.event === 'two-node-race') this.counts.races++;
    else if (typeof e.source === 'number' && e.event === 'two-node-race-won') this.counts.raceWins++;
    else if (typeof e.source === 'number' && e.event === 'two-node-voter' && e.fields.step === 'promote')
      this.counts.promotions++;
    // A snapshot install skips entries (a `restore` view is traced only when the view changed).
    else if (typeof e.source === 'number' && e.event === GROUP_EVENT.snapshotRestored)
      this.openOn.delete(e.source as NodeId);
    this.checkLate(e.timeUs);
  }

  finish(): void {
    this.checkLate(this.lastUs);
    for (const r of this.records.values()) this.checkAdmission(r, true);
  }

  /** No fence is open (every one traced as opened was traced as closed). */
  settled(): boolean {
    for (const r of this.records.values()) if (r.closeIndex === null) return false;
    return true;
  }

  /** Open fences, for the liveness condition's description. */
  describeOpen(): string {
    const open = [...this.records.values()].filter((r) => r.closeIndex === null);
    return open.map((r) => `${r.node}@${r.incarnation} (opened at index ${r.openIndex ?? '?'})`).join(', ');
  }

  /** The log index that opened the fence of (node, incarnation), or null when no trace showed it. */
  openedIndex(node: NodeId, incarnation: number): number | null {
    return this.records.get(key(node, incarnation))?.openIndex ?? null;
  }

  /** The log index that closed the fence of (node, incarnation), or null when no trace showed it closed. */
  closedIndex(node: NodeId, incarnation: number): number | null {
    return this.records.get(key(node, incarnation))?.closeIndex ?? null;
  }

  /** Whether a traced fence of any incarnation of `node` was open at log index `index` (as traced so far). */
  fenceOpenAt(node: NodeId, index: number): boolean {
    for (const r of this.records.values()) if (r.node === node && this.openAt(r, index)) return true;
    return false;
  }

  private record(node: NodeId, incarnation: number, timeUs: number): TracedRecord {
    const k = key(node, incarnation);
    let r = this.records.get(k);
    if (r === undefined) {
      r = {
        node,
        incarnation,
        openIndex: null,
        openUs: timeUs,
        closeIndex: null,
        closeBy: '',
        lateReported: false,
        admissionReported: false,
      };
      this.records.set(k, r);
      this.counts.opened++;
    }
    return r;
  }

  private onFence(e: SimEvent): void {
    const f = parseFence(e.fields);
    if (f === null) {
      this.violation('fence-once', `node ${String(e.source)} traced a malformed fence-ledger event`);
      return;
    }
    this.events++;
    const r = this.record(f.node, f.incarnation, e.timeUs);
    const source = e.source as NodeId;
    let mine = this.openOn.get(source);
    if (mine === undefined) this.openOn.set(source, (mine = new Map<string, TracedRecord>()));
    if (f.what === 'requested') mine.set(key(f.node, f.incarnation), r);
    if (f.what === 'fenced') mine.delete(key(f.node, f.incarnation));
    switch (f.what) {
      case 'requested':
        if (r.openIndex === null) {
          r.openIndex = f.index;
          if (this.cleanLeft.has(key(f.node, f.incarnation))) this.reportCleanLeave(f.node, f.incarnation, f.index);
        }
        break;
      case 'attempt':
        if (!this.attemptIndexes.has(f.index)) {
          this.attemptIndexes.add(f.index);
          this.counts.attempts++;
        }
        break;
      case 'fenced':
        if (r.closeIndex !== null && r.closeIndex !== f.index) {
          this.violation(
            'fence-once',
            `node ${f.node} incarnation ${f.incarnation} was fenced twice: at log index ${r.closeIndex} (by ${r.closeBy}) and at ${f.index} (by ${f.by}, traced by node ${String(e.source)})`,
          );
          return;
        }
        if (r.closeIndex !== null) return;
        r.closeIndex = f.index;
        r.closeBy = f.by;
        this.counts.closed++;
        if (f.by === 'confirm') this.counts.byConfirm++;
        else this.counts.byAgent++;
        if (this.mode === 'manual' && f.by !== 'confirm')
          this.violation(
            'fence-liveness',
            `node ${f.node} incarnation ${f.incarnation} was fenced by ${f.by} (device ${f.device}) at log index ${f.index}, but the run's topology has no device: only a confirmation may close it`,
          );
        this.checkAdmission(r, false);
        break;
      case 'unfenced':
        break;
    }
  }

  private onView(e: SimEvent): void {
    const v = parseView(e.fields);
    if (v === null) return; // the view checker reports malformed views
    const source = e.source as NodeId;
    if (v.cmd === 'restore') this.openOn.delete(source);
    for (const r of this.openOn.get(source)?.values() ?? [])
      if (v.members.some((m) => m.node === r.node)) this.reportAdmission(r, v.index, `node ${r.node}`);
    const change = parseViewChange(e.fields);
    if (change !== null && change.kind === 'left') {
      const k = key(change.node, change.incarnation);
      this.cleanLeft.add(k);
      const r = this.records.get(k);
      if (r?.openIndex != null) this.reportCleanLeave(change.node, change.incarnation, r.openIndex);
    }
    for (const m of v.members) {
      let at = this.memberAt.get(m.node);
      if (at === undefined) this.memberAt.set(m.node, (at = new Set()));
      if (at.has(v.index)) continue;
      at.add(v.index);
      // Immediate verdict when the node's fences are known closed after this index.
      for (const r of this.records.values())
        if (r.node === m.node && r.openIndex !== null && r.closeIndex !== null && this.openAt(r, v.index))
          this.reportAdmission(r, v.index, `${m.node}@${m.incarnation}`);
    }
  }

  private reportCleanLeave(node: NodeId, incarnation: number, openIndex: number): void {
    this.violation(
      'fence-clean-leave',
      `a fence of node ${node} incarnation ${incarnation} was opened at log index ${openIndex}, but that incarnation left cleanly`,
    );
  }

  /** Whether the fence was open at log index `index` (opened at or before it, closed after it). */
  private openAt(r: TracedRecord, index: number): boolean {
    return r.openIndex !== null && r.openIndex <= index && (r.closeIndex === null || index < r.closeIndex);
  }

  /** Checks every traced view index holding the record's node (at the end: also for fences never closed). */
  private checkAdmission(r: TracedRecord, final: boolean): void {
    if (r.openIndex === null || (r.closeIndex === null && !final)) return;
    const at = this.memberAt.get(r.node);
    if (at === undefined) return;
    const bad = [...at].filter((i) => this.openAt(r, i)).sort((a, b) => a - b)[0];
    if (bad !== undefined) this.reportAdmission(r, bad, `node ${r.node}`);
  }

  private reportAdmission(r: TracedRecord, index: number, who: string): void {
    if (r.admissionReported) return;
    r.admissionReported = true;
    this.violation(
      'fence-admission',
      `the view at log index ${index} holds ${who} while the fence of incarnation ${r.incarnation} is open (opened at ${r.openIndex ?? '?'}, ${r.closeIndex === null ? 'never closed' : `closed at ${r.closeIndex}`})`,
    );
  }

  private checkLate(nowUs: number): void {
    if (this.mode !== 'auto' || this.livenessUs === null) return;
    for (const r of this.records.values()) {
      if (r.closeIndex !== null || r.lateReported) continue;
      const fromUs = Math.max(r.openUs, this.livenessUs);
      if (nowUs - fromUs <= this.options.closeBoundMs * 1000) continue;
      r.lateReported = true;
      this.violation(
        'fence-liveness',
        `the fence of node ${r.node} incarnation ${r.incarnation} (opened at log index ${r.openIndex ?? '?'}) is still open ${this.options.closeBoundMs} ms after ${r.openUs > this.livenessUs ? 'it opened' : 'the faults stopped'}, though the topology's devices succeed once the faults stop`,
      );
    }
  }
}
