/**
 * Who this node hears, and since when: the row a node piggybacks to the leader so the leader's
 * failure detector can corroborate or contradict its own silence (the per-pair reachability
 * matrix of the design note, section 3).
 *
 * Pure: time is the caller's monotonic milliseconds. Bounded by `CLUSTER_NODES_MAX` peers.
 */
import { assert } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import { CLUSTER_NODES_MAX } from '../constants.js';

/**
 * One cell of a reachability row: how long the reporter has not heard `node`, by the reporter's
 * own clock, or null when it has not heard it at all since the reporter started tracking it.
 * Silences rather than timestamps, because clocks of different nodes are not comparable.
 */
export interface ReachabilityEntry {
  readonly node: NodeId;
  readonly silentMs: number | null;
}

/** A reachability row: one entry per peer, ascending by node id. */
export type ReachabilityRow = readonly ReachabilityEntry[];

/** Tracks when each peer was last heard, and produces this node's row. */
export class ReachabilityTracker {
  private readonly heard = new Map<NodeId, number | null>();
  private lastNowMs = Number.NEGATIVE_INFINITY;

  constructor(readonly self: NodeId) {}

  /** Sets the peers to track (self is ignored); kept peers keep their times, new ones start unheard. */
  setPeers(peers: readonly NodeId[]): void {
    assert(peers.length <= CLUSTER_NODES_MAX, `at most ${CLUSTER_NODES_MAX} peers are tracked`);
    const keep = new Set(peers.filter((p) => p !== this.self));
    for (const p of [...this.heard.keys()]) if (!keep.has(p)) this.heard.delete(p);
    for (const p of keep) if (!this.heard.has(p)) this.heard.set(p, null);
  }

  /**
   * Records that `node` was heard at `heardMs` (default `nowMs`; earlier for a message that
   * arrived late, see `ArrivalLateness`); untracked nodes are ignored, older evidence is kept out.
   */
  observe(node: NodeId, nowMs: number, heardMs = nowMs): void {
    this.checkTime(nowMs);
    if (!this.heard.has(node)) return;
    const at = Math.min(heardMs, nowMs);
    const prev = this.heard.get(node) ?? null;
    if (prev === null || at > prev) this.heard.set(node, at);
  }

  /** This node's row at `nowMs`, ascending by node id. */
  row(nowMs: number): ReachabilityRow {
    this.checkTime(nowMs);
    const out: ReachabilityEntry[] = [];
    for (const [node, at] of this.heard) out.push({ node, silentMs: at === null ? null : nowMs - at });
    return out.sort((a, b) => a.node - b.node);
  }

  private checkTime(nowMs: number): void {
    assert(
      Number.isFinite(nowMs) && nowMs >= this.lastNowMs,
      `time must not go backwards (${nowMs} after ${this.lastNowMs}); pass a monotonic clock`,
    );
    this.lastNowMs = nowMs;
  }
}
