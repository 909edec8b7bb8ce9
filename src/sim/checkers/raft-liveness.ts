/**
 * Raft liveness, judged from trace events: once the faults stop (the simulator heals every
 * partition and restarts every node), if the voters that never had a bit flipped hold a quorum
 * of the latest committed configuration, then
 * 1. within `commitBoundMs` (the workload states it in ticks) some node applies an entry beyond
 *    everything applied before the faults stopped: a leader was elected and committed something;
 * 2. the workload's marker write is acknowledged to its client; and
 * 3. every member of the latest configuration reaches the same applied index with the same state
 *    hash. A member is excused only when it refused to start (`start-refused`, e.g. both copies
 *    of its term and vote destroyed) *and* the trace shows bit flips on its disk.
 * When the healthy voters hold no quorum (bit flips on voters that carry most of the votes), the
 * cluster may legitimately stay unavailable: the condition is still tried until shortly before
 * the bound, then accepted, and the run is counted as excused.
 *
 * A node counts its elections with every configuration its log implies, committed or not
 * (docs/raft.md, "Counting with every configuration in the log"). So the same holds when no
 * healthy node can win an election: for each healthy voter, the healthy nodes whose logs are no
 * newer than its own (the only ones that would grant it) must hold a quorum of the latest applied
 * configuration AND of the latest configuration in its log (`raft-conf-latest`). A configuration
 * entry that needs a destroyed voter then blocks the cluster exactly as etcd-io/raft would be
 * blocked once that entry is applied. This check only adds the configurations in the logs; it
 * never excuses a run whose healthy nodes could elect a leader. Witnesses, and nodes that ever
 * persisted a witness's copy of an entry, are never candidates: they cannot lead. With a witness,
 * the committed entries may live on one data node only; when that node cannot start, the cluster
 * is rightly stuck.
 */
import type { NodeId } from '../../lib/ids.js';
import { hasQuorum } from '../../quorum/index.js';
import type { Checker, Liveness } from '../workload.js';
import type { SimEvent } from '../trace.js';
import {
  CLIENT_EVENT,
  membersOf,
  NO_STATE_HASH,
  parseConfig,
  parseEntries,
  quorumConfigOf,
  RAFT_EVENT,
  WITNESS_COPY_DIGEST,
  type ParsedConfig,
} from './raft-events.js';

/** Margin before the bound at which an excused run is accepted, ms (above the 50 ms poll). */
const EXCUSE_MARGIN_MS = 200;

interface Applied {
  index: number;
  hash: string;
}

/** The (index, term) of the last entry of a node's log. */
interface Tip {
  readonly index: number;
  readonly term: number;
}

function newerThan(a: Tip, b: Tip): boolean {
  return a.term > b.term || (a.term === b.term && a.index > b.index);
}

/** See the module comment. */
export class RaftLiveness implements Checker, Liveness {
  readonly name = 'raft-liveness';
  private config: { index: number; parsed: ParsedConfig };
  private readonly applied = new Map<NodeId, Applied>();
  private readonly flipped = new Set<NodeId>();
  private readonly refused = new Set<NodeId>();
  /** Each node's log tip, followed from persist, recovered and restore events. */
  private readonly tips = new Map<NodeId, Tip>();
  /** Each node's latest counted configuration when a configuration entry follows its applied one. */
  private readonly pending = new Map<NodeId, ParsedConfig>();
  private maxApplied = 0;
  private startUs: number | null = null;
  private appliedAtStart = 0;
  private progressUs: number | null = null;
  private markerUs: number | null = null;
  private lateReported = false;
  private nowMs: () => number = () => 0;
  /** Set once the run was accepted without a quorum of healthy voters. */
  excused = false;
  /** Nodes that persisted a witness's copy of an entry: they never lead (`RaftCore.holdsMetadataOnly`). */
  private readonly witnessCopies = new Set<NodeId>();

  constructor(
    initial: ParsedConfig,
    readonly boundMs: number,
    private readonly commitBoundMs: number,
    private readonly commitBoundTicks: number,
    private readonly violation: (message: string) => void,
  ) {
    this.config = { index: 0, parsed: initial };
  }

  /** Gives the condition the simulator's true clock (the driver's `nowMs`). */
  attachClock(nowMs: () => number): void {
    this.nowMs = nowMs;
  }

  /** Virtual ms from the end of the faults to the first new commit, or null. */
  get commitAfterMs(): number | null {
    return this.startUs === null || this.progressUs === null ? null : (this.progressUs - this.startUs) / 1000;
  }

  observe(e: SimEvent): void {
    if (e.source === 'sim') {
      this.observeSim(e);
      return;
    }
    if (e.source === 'client') {
      if (e.event === CLIENT_EVENT.return && e.fields.marker === true && this.markerUs === null)
        this.markerUs = e.timeUs;
      return;
    }
    const node = e.source as NodeId;
    const f = e.fields;
    switch (e.event) {
      case RAFT_EVENT.apply:
        this.noteApplied(node, Number(f.index), String(f.hash), e.timeUs);
        return;
      case RAFT_EVENT.restore:
        this.tips.set(node, { index: Number(f.index), term: Number(f.term) });
        this.noteApplied(node, Number(f.index), String(f.hash), e.timeUs);
        return;
      case RAFT_EVENT.persist:
        this.notePersist(node, Number(f.from), String(f.ents));
        return;
      case RAFT_EVENT.recovered:
        this.refused.delete(node);
        this.tips.set(node, { index: Number(f.snap), term: Number(f.snapTerm) });
        this.notePersist(node, Number(f.snap) + 1, String(f.ents));
        this.noteApplied(node, Number(f.applied), String(f.hash), e.timeUs);
        return;
      case RAFT_EVENT.confLatest: {
        const parsed = parseConfig(String(f.config));
        if (parsed !== null && Number(f.counted) > 1) this.pending.set(node, parsed);
        else this.pending.delete(node);
        return;
      }
      case RAFT_EVENT.startRefused:
        this.refused.add(node);
        this.applied.delete(node);
        this.tips.delete(node);
        this.pending.delete(node);
        return;
      case RAFT_EVENT.confApplied: {
        const index = Number(f.index);
        const parsed = parseConfig(String(f.config));
        if (parsed !== null && index > this.config.index) this.config = { index, parsed };
        return;
      }
      default:
        return;
    }
  }

  private observeSim(e: SimEvent): void {
    if (e.event === 'bitflip' && typeof e.fields.bits === 'number' && e.fields.bits > 0)
      this.flipped.add(e.fields.node as NodeId);
    else if (e.event === 'phase' && e.fields.name === 'liveness') {
      this.startUs = e.timeUs;
      this.appliedAtStart = this.maxApplied;
    }
  }

  private noteApplied(node: NodeId, index: number, hash: string, timeUs: number): void {
    if (!Number.isSafeInteger(index)) return;
    this.applied.set(node, { index, hash });
    if (index > this.maxApplied) this.maxApplied = index;
    if (this.startUs !== null && this.progressUs === null && index > this.appliedAtStart) {
      this.progressUs = timeUs;
      if ((timeUs - this.startUs) / 1000 > this.commitBoundMs && !this.healthyQuorumLost()) this.reportLate();
    }
  }

  /** A persist (or recovered log) of entries from `from` on: they replace the tail from there. */
  private notePersist(node: NodeId, from: number, ents: string): void {
    const marks = parseEntries(ents);
    if (marks?.some((m) => m.digest === WITNESS_COPY_DIGEST) === true) this.witnessCopies.add(node);
    const last = marks?.at(-1);
    if (last === undefined || !Number.isSafeInteger(from)) return;
    this.tips.set(node, { index: from + (marks?.length ?? 1) - 1, term: last.term });
  }

  private reportLate(): void {
    if (this.lateReported) return;
    this.lateReported = true;
    this.violation(
      `liveness: no new entry committed within ${this.commitBoundTicks} ticks (${this.commitBoundMs} ms) after the faults stopped`,
    );
  }

  /**
   * True when the voters without bit flips hold no quorum of the latest configuration, or when
   * no healthy node could win an election (see the module comment).
   */
  private healthyQuorumLost(): boolean {
    const c = this.config.parsed;
    const healthy = new Set<NodeId>();
    for (const id of [...c.voters.keys(), ...c.outgoing.keys()]) if (!this.flipped.has(id)) healthy.add(id);
    return !hasQuorum(quorumConfigOf(c), healthy) || !this.someoneCanWin();
  }

  /** Whether a healthy, running voter could collect a quorum of every configuration it counts. */
  private someoneCanWin(): boolean {
    const healthy = [...this.tips.keys()].filter((id) => !this.flipped.has(id) && !this.refused.has(id));
    const applied = this.config.parsed;
    for (const candidate of healthy) {
      const own = this.tips.get(candidate) as Tip;
      const latest = this.pending.get(candidate);
      const counted = latest === undefined ? [applied] : [applied, latest];
      // Only a voter of the applied configuration campaigns (the core's `promotable`): a learner
      // whose promotion is still pending in the log cannot, however up to date its log is.
      if (!applied.voters.has(candidate) && !applied.outgoing.has(candidate)) continue;
      // A witness never leads, nor does a node holding a witness's copy of the log.
      if (this.witnessCopies.has(candidate) || counted.some((cfg) => cfg.cluster.witnesses.has(candidate))) continue;
      const grant = new Set<NodeId>(healthy.filter((id) => !newerThan(this.tips.get(id) as Tip, own)));
      if (counted.every((cfg) => hasQuorum(quorumConfigOf(cfg), grant))) return true;
    }
    return false;
  }

  /** Members that must converge: the latest configuration minus excused nodes. */
  private required(): NodeId[] {
    return membersOf(this.config.parsed).filter((id) => !(this.refused.has(id) && this.flipped.has(id)));
  }

  private converged(): boolean {
    if (this.progressUs === null || this.markerUs === null) return false;
    let first: Applied | undefined;
    for (const id of this.required()) {
      const a = this.applied.get(id);
      if (a === undefined || a.index < this.maxApplied) return false;
      if (a.hash === NO_STATE_HASH) continue; // a witness holds no state to compare
      first ??= a;
      if (a.hash !== first.hash) return false;
    }
    return true;
  }

  satisfied(): boolean {
    if (this.startUs === null) return false;
    const lost = this.healthyQuorumLost();
    const elapsedMs = this.nowMs() - this.startUs / 1000;
    if (!lost && this.progressUs === null && elapsedMs > this.commitBoundMs) this.reportLate();
    if (this.converged()) return true;
    if (lost && elapsedMs >= this.boundMs - EXCUSE_MARGIN_MS) {
      this.excused = true;
      return true;
    }
    return false;
  }

  describe(): string {
    const missing: string[] = [];
    if (this.progressUs === null) missing.push('no entry was committed after the faults stopped');
    if (this.markerUs === null) missing.push('the marker write was never acknowledged');
    for (const id of this.required()) {
      const a = this.applied.get(id);
      if (a === undefined)
        missing.push(
          `node ${id} never reported an applied index${this.refused.has(id) ? ' (it refused to start, with no bit flip on its disk)' : ''}`,
        );
      else if (a.index < this.maxApplied) missing.push(`node ${id} applied ${a.index} of ${this.maxApplied}`);
    }
    return `${missing.join('; ')} (configuration ${membersOf(this.config.parsed).join(',')} at index ${this.config.index})`;
  }
}
