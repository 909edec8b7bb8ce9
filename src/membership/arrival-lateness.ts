/**
 * How late a peer's message arrived: the message carries the sender's monotonic clock when sent
 * (`sentMs`), and the receiver compares `arrival - sentMs` (clock offset plus transit) with the
 * smallest such offset seen from that peer in the last `windowMs` (the on-time baseline; the
 * previous baseline when the window is empty, as after a long clog). The difference is how long
 * the message was held back (a clog, a paused link, a retransmission): what it says about the
 * sender is that old. Clock drift skews it by at most the drift over the window.
 *
 * Used for liveness evidence (docs/membership.md, "Late messages"): a delayed message from a
 * node that died meanwhile must not make it look alive. Pure; bounded by `samplesMax` per peer.
 */
import type { NodeId } from '../lib/ids.js';

/** Default window of the on-time baseline, ms. */
export const ARRIVAL_WINDOW_MS = 2000;
/** Offsets kept per peer. */
const SAMPLES_MAX = 64;

interface PeerOffsets {
  readonly samples: { readonly atMs: number; readonly offset: number }[];
  baseline: number;
}

/** See the module comment. */
export class ArrivalLateness {
  private readonly peers = new Map<NodeId, PeerOffsets>();

  constructor(private readonly windowMs = ARRIVAL_WINDOW_MS) {}

  /** How many ms late a message from `from`, sent at `sentMs` (its clock), arrives at `nowMs` (>= 0). */
  lateness(from: NodeId, nowMs: number, sentMs: number): number {
    const offset = nowMs - sentMs;
    const t = this.peers.get(from) ?? { samples: [], baseline: offset };
    while (t.samples.length > 0 && (t.samples[0]?.atMs ?? nowMs) < nowMs - this.windowMs) t.samples.shift();
    const windowMin = t.samples.reduce((m, x) => Math.min(m, x.offset), Number.POSITIVE_INFINITY);
    const baseline = Math.min(offset, Number.isFinite(windowMin) ? windowMin : t.baseline);
    t.samples.push({ atMs: nowMs, offset });
    if (t.samples.length > SAMPLES_MAX) t.samples.shift();
    t.baseline = baseline;
    this.peers.set(from, t);
    return Math.max(0, offset - baseline);
  }

  /** Forgets `from` (it restarted: its clock is a new one). */
  forget(from: NodeId): void {
    this.peers.delete(from);
  }
}
