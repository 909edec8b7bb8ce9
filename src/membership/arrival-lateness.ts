/**
 * How late a peer's message arrived: the message carries the sender's monotonic clock when sent
 * (`sentMs`), and the receiver compares `arrival - sentMs` (clock offset plus transit) with an
 * on-time baseline: the lower envelope of those offsets, which follows a smaller offset at once
 * and rises no faster than `riseRate` ms per ms (clock drift between the two nodes, generously
 * bounded). The difference is how long the message was held back (a clog, a paused link, a burst
 * of queued messages): what it says about the sender is that old. A message held back for `d` ms
 * is dated back by at least `d - riseRate * (time since the last on-time message)`.
 *
 * Messages name the sender's incarnation: a newer one is a new process (a new clock), so its
 * baseline starts afresh; a message from an older incarnation than one already seen is stale (a
 * late copy from before a restart) and `lateness` returns null: it is no evidence of anything.
 * Within one incarnation the sender's clock is monotonic, so an older `sentMs` is a message that
 * was reordered or held back, and it is dated back like any late one.
 *
 * Used for liveness evidence (docs/membership.md, "Late messages"): a delayed message from a node
 * that died meanwhile must not make it look alive. Pure; constant memory per peer.
 */
import type { NodeId } from '../lib/ids.js';

/** Default rise rate of the baseline: 10 % (the simulator drifts clocks by up to 5 % each way). */
export const ARRIVAL_RISE_RATE = 0.1;

interface PeerClock {
  incarnation: number;
  baseline: number;
  atMs: number;
  lastSentMs: number;
}

/** See the module comment. */
export class ArrivalLateness {
  private readonly peers = new Map<NodeId, PeerClock>();

  constructor(private readonly riseRate = ARRIVAL_RISE_RATE) {}

  /**
   * How many ms late a message from incarnation `incarnation` of `from`, sent at `sentMs` (its
   * clock), arrives at `nowMs` (>= 0); null when it comes from an older incarnation than one
   * already heard (stale: ignore it).
   */
  lateness(from: NodeId, nowMs: number, sentMs: number, incarnation = 0): number | null {
    const offset = nowMs - sentMs;
    const p = this.peers.get(from);
    if (p !== undefined && incarnation < p.incarnation) return null;
    if (p === undefined || incarnation > p.incarnation) {
      this.peers.set(from, { incarnation, baseline: offset, atMs: nowMs, lastSentMs: sentMs });
      return 0;
    }
    const allowed = p.baseline + this.riseRate * Math.max(0, nowMs - p.atMs);
    const baseline = Math.min(offset, allowed);
    p.baseline = baseline;
    p.atMs = nowMs;
    p.lastSentMs = Math.max(p.lastSentMs, sentMs);
    return Math.max(0, offset - baseline);
  }

  /** Forgets `from` (it restarted: its clock is a new one). */
  forget(from: NodeId): void {
    this.peers.delete(from);
  }
}
