/**
 * Failure-detector accuracy, judged from trace events only: no member is evicted (removed by a
 * `fail` or `quarantine` view) unless it was dead or silent for at least the stall bound.
 *
 * For each eviction of `X@i` (a view whose command is `fail`/`quarantine` and whose predecessor
 * view held `X@i`), the eviction is **excused** when
 * - that incarnation had ended before (a `sim crash` of X while it ran incarnation i), or
 * - X was *disturbed* for at least `stallBoundMs` in one stretch within the `lookbackMs` before
 *   the decision (the leader's `detector` decision for X@i, else the first apply of the view).
 *   Disturbances of X: X paused, X down, any partition in force (every node, conservatively),
 *   clogs of a link from or to X, any swizzle (it clogs every link of its nodes, so the links of
 *   every other node to them too). Stretches closer than `mergeGapMs` count as
 *   one (a node heard only for an instant between two stalls may not have been heard at all).
 * Otherwise it is a **false eviction**: reported as a violation and counted (`falseEvictions`).
 *
 * So a node that only stalled below the bound (the simulator's pauses of < 1 s, slow links,
 * message loss) must never be evicted; a node that was really gone may be.
 */
import type { NodeId } from '../../lib/ids.js';
import type { Checker } from '../workload.js';
import type { SimEvent } from '../trace.js';
import { CLUSTER_EVENT, EVICTION_COMMANDS, parseView, type TracedMember } from './cluster-events.js';

/** Bounds of the accuracy rule. */
export interface AccuracyBounds {
  /** A stretch of disturbance at least this long excuses an eviction (the stall tolerance). */
  readonly stallBoundMs: number;
  /** How far before a decision a disturbance may have ended and still excuse it. */
  readonly lookbackMs: number;
  /** Disturbances closer than this are merged into one stretch. */
  readonly mergeGapMs: number;
}

interface Interval {
  readonly startUs: number;
  /** null while still in force. */
  endUs: number | null;
}

/** See the module comment. */
export class ClusterAccuracyChecker implements Checker {
  readonly name = 'fd-accuracy';
  /** Disturbances per node (pauses, downtime, clogs), and partitions for everyone. */
  private readonly disturbances = new Map<NodeId, Interval[]>();
  private readonly partitions: Interval[] = [];
  /** The membership incarnation each node's current process runs (from `cluster-node-start`). */
  private readonly running = new Map<NodeId, number>();
  /** `node@incarnation` of processes that crashed. */
  private readonly ended = new Set<string>();
  /** `node@incarnation` → time of the latest detector decision to evict it, µs. */
  private readonly decisions = new Map<string, number>();
  /** Members of every view id seen, for finding who a view removed. */
  private readonly views = new Map<number, readonly TracedMember[]>();
  /** Evictions already judged (`node@incarnation`). */
  private readonly judged = new Set<string>();
  evictions = 0;
  falseEvictions = 0;
  /** Evictions that could not be judged (the predecessor view was never traced). */
  unjudged = 0;

  constructor(
    private readonly bounds: AccuracyBounds,
    private readonly violation: (message: string) => void,
  ) {}

  observe(e: SimEvent): void {
    if (e.source === 'sim') {
      this.observeSim(e);
      return;
    }
    if (typeof e.source !== 'number') return;
    const node = e.source as NodeId;
    const f = e.fields;
    if (e.event === CLUSTER_EVENT.nodeStart) this.running.set(node, Number(f.incarnation));
    else if (e.event === CLUSTER_EVENT.detector && typeof f.type === 'string' && EVICTION_COMMANDS.has(f.type))
      this.decisions.set(`${String(f.node)}@${String(f.incarnation)}`, e.timeUs);
    else if (e.event === CLUSTER_EVENT.view) this.observeView(e);
  }

  private intervals(node: NodeId): Interval[] {
    let list = this.disturbances.get(node);
    if (list === undefined) {
      list = [];
      this.disturbances.set(node, list);
    }
    return list;
  }

  private open(node: NodeId, t: number): void {
    this.intervals(node).push({ startUs: t, endUs: null });
  }

  private close(node: NodeId, t: number): void {
    for (const i of this.intervals(node)) if (i.endUs === null) i.endUs = t;
  }

  private observeSim(e: SimEvent): void {
    const f = e.fields;
    const t = e.timeUs;
    switch (e.event) {
      case 'pause':
        this.open(f.node as NodeId, t);
        return;
      case 'resume':
        this.close(f.node as NodeId, t);
        return;
      case 'crash': {
        const node = f.node as NodeId;
        const inc = this.running.get(node);
        if (inc !== undefined) this.ended.add(`${node}@${inc}`);
        this.running.delete(node);
        this.close(node, t);
        this.open(node, t);
        return;
      }
      case 'start':
        this.close(f.node as NodeId, t);
        return;
      case 'partition':
        this.partitions.push({ startUs: t, endUs: null });
        return;
      case 'heal':
        for (const p of this.partitions) if (p.endUs === null) p.endUs = t;
        return;
      case 'clog': {
        const end = t + Number(f.ms) * 1000;
        this.intervals(f.from as NodeId).push({ startUs: t, endUs: end });
        this.intervals(f.to as NodeId).push({ startUs: t, endUs: end });
        return;
      }
      case 'swizzle':
        // Every link of the listed nodes is clogged, so every other node loses its links to
        // them too: a swizzle disturbs everyone, like a partition.
        this.partitions.push({ startUs: t, endUs: t + Number(f.ms) * 1000 });
        return;
      default:
        return;
    }
  }

  private observeView(e: SimEvent): void {
    const v = parseView(e.fields);
    if (v === null) return;
    if (!this.views.has(v.viewId)) this.views.set(v.viewId, v.members);
    if (!EVICTION_COMMANDS.has(v.cmd)) return;
    const before = this.views.get(v.viewId - 1);
    if (before === undefined) {
      this.unjudged++;
      return;
    }
    const after = new Set(v.members.map((m) => `${m.node}@${m.incarnation}`));
    for (const m of before) {
      const key = `${m.node}@${m.incarnation}`;
      if (after.has(key) || this.judged.has(key)) continue;
      this.judged.add(key);
      this.judge(m, v.viewId, v.cmd, this.decisions.get(key) ?? e.timeUs);
    }
  }

  private judge(m: TracedMember, viewId: number, cmd: string, atUs: number): void {
    this.evictions++;
    const key = `${m.node}@${m.incarnation}`;
    if (this.ended.has(key)) return;
    const longest = this.longestStretchMs(m.node, atUs);
    if (longest >= this.bounds.stallBoundMs) return;
    this.falseEvictions++;
    this.violation(
      `fd accuracy: node ${m.node} incarnation ${m.incarnation} was evicted (${cmd}, view ${viewId}, decided at ${(atUs / 1e6).toFixed(6)} s) although it was alive and its longest disturbance in the ${this.bounds.lookbackMs} ms before was ${Math.round(longest)} ms (bound ${this.bounds.stallBoundMs} ms)`,
    );
  }

  /** The longest merged stretch of disturbance of `node` that overlaps the lookback window before `atUs`, ms. */
  longestStretchMs(node: NodeId, atUs: number): number {
    const fromUs = atUs - this.bounds.lookbackMs * 1000;
    const spans = [...(this.disturbances.get(node) ?? []), ...this.partitions]
      .map((i) => ({ start: i.startUs, end: Math.min(i.endUs ?? atUs, atUs) }))
      .filter((i) => i.start <= atUs && i.end >= fromUs)
      .sort((a, b) => a.start - b.start);
    let longest = 0;
    let cur: { start: number; end: number } | null = null;
    for (const s of spans) {
      if (cur !== null && s.start - cur.end <= this.bounds.mergeGapMs * 1000) cur.end = Math.max(cur.end, s.end);
      else cur = { ...s };
      longest = Math.max(longest, (cur.end - cur.start) / 1000);
    }
    return longest;
  }
}
