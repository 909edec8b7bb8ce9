/**
 * Liveness evidence for the membership service: the reachability pings every node sends once per
 * heartbeat, and the leader's `FailureDetector` (one per leadership) fed by them.
 *
 * - Liveness evidence comes from Pings only: they carry their send time, so one held back in the
 *   network is dated back (`ArrivalLateness`) instead of making a node that died meanwhile look
 *   alive; a late copy from an older incarnation of the sender is ignored.
 * - The tick timer's lateness is the detector's measure of its own health (`localLag`).
 * - Pure: time comes in as arguments; the service sends what `ping` returns.
 */
import { assert } from '../lib/assert.js';
import { CLUSTER_NODES_MAX } from '../constants.js';
import type { NodeId } from '../lib/ids.js';
import { ArrivalLateness } from './arrival-lateness.js';
import { FailureDetector, detectorOptions, type DetectorDecision, type DetectorTimes } from './failure-detector.js';
import type { ViewMember } from './membership-event.js';
import { ROW_SILENCE_MS_MAX, type PingMessage } from './ping-message.js';
import { ReachabilityTracker, type ReachabilityRow } from './reachability-tracker.js';

/** See the file comment. */
export class MembershipLiveness {
  private readonly tracker: ReachabilityTracker;
  /** How late each peer's Pings arrive (dates liveness evidence back). */
  private readonly arrivals = new ArrivalLateness();
  private detector: FailureDetector | null = null;
  private lastPingMs = Number.NEGATIVE_INFINITY;
  /**
   * Proofs that a peer's process is gone (`processGone`): per node, the newest incarnation proven
   * gone, kept for a detector that starts later (a follower that becomes leader after the old
   * leader died) and for a member whose join is applied after its process ended. At most one
   * entry per peer. A proof never goes stale: the incarnation it names never comes back.
   */
  private readonly gone = new Map<NodeId, number>();
  /** Decisions the detector made outside `decide` (from remembered proofs), handed out next. */
  private pending: DetectorDecision[] = [];

  constructor(
    private readonly self: NodeId,
    peers: readonly NodeId[],
    private readonly times: DetectorTimes,
    /** The `evict-on-missed-heartbeat` canary: accuse after about one missed heartbeat. */
    private readonly planted: boolean,
  ) {
    this.tracker = new ReachabilityTracker(self);
    this.tracker.setPeers(peers);
  }

  /** A Ping arrived from `from` at `now`. */
  onPing(from: NodeId, m: PingMessage, now: number): void {
    const lateMs = m.sentMs === undefined ? 0 : this.arrivals.lateness(from, now, m.sentMs, m.inc ?? 0);
    if (lateMs === null) return; // a late copy from an older incarnation of the sender
    this.tracker.observe(from, now, now - lateMs);
    this.detector?.reachabilityRow(from, m.row, now, lateMs, m.inc);
  }

  /** The Ping to send to every peer now, or null when the last one is less than a heartbeat old. */
  ping(now: number, incarnation: number): PingMessage | null {
    if (now - this.lastPingMs < this.times.heartbeatMs) return null;
    this.lastPingMs = now;
    const row = this.tracker.row(now).map((e) => ({
      node: e.node,
      silentMs: e.silentMs === null ? null : Math.min(Math.round(e.silentMs), ROW_SILENCE_MS_MAX),
    }));
    return { type: 'Ping', row, sentMs: Math.max(0, Math.round(now)), inc: incarnation };
  }

  /** How long this node has not heard each peer (its reachability row), ascending by node id. */
  silences(now: number): ReachabilityRow {
    return this.tracker.row(now);
  }

  /**
   * Proof that process `incarnation` of `node` is gone (`Transport.onPeerGone`). Remembered; on
   * the leader, returns the detector's decision to act on now (null when there is none: not
   * leading, not a member at that incarnation, already decided).
   */
  processGone(node: NodeId, incarnation: number, now: number): DetectorDecision | null {
    const known = this.gone.get(node);
    if (known === undefined || incarnation > known) this.gone.set(node, incarnation);
    assert(this.gone.size <= CLUSTER_NODES_MAX, 'one remembered proof per node');
    return this.detector?.processGone(node, incarnation, now) ?? null;
  }

  /** Applies every remembered proof to the detector's members (new ones, or a new detector). */
  private applyProofs(now: number): void {
    const d = this.detector;
    if (d === null) return;
    for (const [node, inc] of this.gone) {
      const decision = d.processGone(node, inc, now);
      if (decision !== null) this.pending.push(decision);
    }
  }

  /** This node became leader: a fresh detector judges `members` from now. */
  startDetector(members: readonly ViewMember[], now: number): void {
    const t = this.times;
    // The canary's detector accuses after about one missed heartbeat, with no suspicion window.
    const planted = this.planted
      ? {
          suspectAfterMs: Math.ceil(1.5 * t.heartbeatMs),
          suspicionMinMs: 1,
          suspicionMaxMs: 1,
          localHealthExtensionMaxMs: 0,
        }
      : {};
    const d = new FailureDetector(
      detectorOptions(this.self, { ...t, ...planted }, this.planted ? { grayQuarantineMs: 10 * t.suspectAfterMs } : {}),
      now,
    );
    d.setMembers(members, now);
    d.reachabilityRow(this.self, this.tracker.row(now), now);
    this.detector = d;
    this.applyProofs(now);
  }

  /** The leadership ended: its detector's judgements end with it. */
  stopDetector(): void {
    this.detector = null;
    this.pending = [];
  }

  /** The view changed: the detector watches its members. */
  setMembers(members: readonly ViewMember[], now: number): void {
    this.detector?.setMembers(members, now);
    this.applyProofs(now);
  }

  /** The detector's decisions now (none when not leading); `lagMs` is this node's tick lateness. */
  decide(now: number, lagMs: number): DetectorDecision[] {
    const d = this.detector;
    if (d === null) return [];
    d.localLag(lagMs);
    const early = this.pending;
    this.pending = [];
    return [...early, ...d.tick(now)];
  }
}
