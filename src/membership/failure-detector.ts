/**
 * The leader's failure detector (design note section 3; Lifeguard-style): pure, driven by the
 * caller's monotonic milliseconds, producing decisions the shell turns into membership commands.
 *
 * Inputs: `observe` (a message from a member arrived), `reachabilityRow` (a member's row: how
 * long it has not heard each other member), `localLag` (this node's own event-loop lag), and
 * `setMembers` (the committed view changed). Output: `tick(nowMs)` returns decisions.
 *
 * Rules, for each watched member (times from `src/node/timeouts.ts`, see `detectorOptions`):
 * - **Liveness evidence** is the newest of: the leader hearing the member itself, and fresh rows
 *   (received within `rowFreshMs`) in which another member heard it. `silence = now - newest`.
 * - **Suspect** once `silence >= suspectAfterMs` (a `suspect` decision, withdrawn by `clear`).
 * - **Fail** once `silence >= suspectAfterMs + window + extension`, where the suspicion `window`
 *   shrinks from `suspicionMaxMs` towards `suspicionMinMs` as independent corroborations C (fresh
 *   rows that also miss the member for `suspectAfterMs`) approach K = min(corroborationTarget,
 *   other members): `max - (max - min) * log(C + 1) / log(K + 1)` (Lifeguard's formula), and the
 *   `extension` is twice the leader's recent event-loop lag (above `lagToleranceMs`), at most
 *   `localHealthExtensionMaxMs`, and none when the member was last heard after the leader's last
 *   stall ended (the whole silence was observed by a healthy loop).
 * - **Own lag holds accusations back**: in a tick that follows a reported lag of a heartbeat or
 *   more (the leader itself just stalled and its inbound messages are still queued), no fail or
 *   quarantine is decided; at most `DETECTOR_SUPPRESSED_TICKS_MAX` ticks in a row, so a leader
 *   that is slow for good still detects failures (later, by the extension).
 * - **Gray failure**: when the leader has not heard a member for `suspectAfterMs` but fresh rows
 *   show others do, the member is not suspected (it is alive); if that lasts until the leader's
 *   own silence reaches `grayQuarantineMs`, one `quarantine` decision (partial connectivity)
 *   replaces the fail/rejoin churn a naive detector would cause.
 * - **Flapping**: a member about to be failed that this detector already failed
 *   `flapFailuresMax` times within `flapWindowMs` (each time it rejoined) is quarantined instead.
 * - **New leader**: a member of the first view that the leader has not heard itself is timed
 *   from the newest time the rows received in the first `seedGraceMs` report hearing it (possibly
 *   before the election), so a dead old leader is failed about one eviction timeout after it
 *   died, not one timeout after the election; within that grace no such member is failed, so
 *   every member's row has arrived first. Members added later are timed from when they joined.
 * - One decision of `fail` or `quarantine` per (member, incarnation): the shell proposes it and
 *   retries the idempotent command until it is applied or leadership is lost.
 * - **Proof the process is gone** (`processGone`, from `Transport.onPeerGone`: the member's host
 *   closed its connections and refused a reconnect) fails the member at once (reason
 *   `process-gone`), with no suspicion window, seed grace or lag suppression: those rules weigh
 *   silence, and this is not silence. Only for the watched incarnation (a proof about an older
 *   process never touches a newer one), and still subject to the flapping rule. A pause, a stall
 *   or a partition never produces the proof (`src/transport/gone-evidence.ts`), so they keep
 *   the timeouts above.
 *
 * Contract for the shell: call `tick` once per timer firing with the current monotonic time
 * (never replay missed ticks: the detector is timed by `nowMs`, not by tick counts), report the
 * lag measured for that firing with `localLag` just before it, and feed `observe` and
 * `reachabilityRow` as messages are processed.
 *
 * Bounded: at most `CLUSTER_NODES_MAX` watched members and rows of that many entries, and
 * `DETECTOR_FAILURES_REMEMBERED_MAX` failure times per node.
 */
import { assert } from '../lib/assert.js';
import type { Incarnation, NodeId } from '../lib/ids.js';
import { CLUSTER_NODES_MAX, DETECTOR_FAILURES_REMEMBERED_MAX, DETECTOR_SUPPRESSED_TICKS_MAX } from '../constants.js';
import type { FailReason, QuarantineReason } from './membership-command.js';
import type { ViewMember } from './membership-event.js';
import type { ReachabilityRow } from './reachability-tracker.js';

// ------------------------------------------------------------------------------------------------
// Options

/**
 * The detector's times, as `src/node/timeouts.ts` derives them: pass
 * `{ heartbeatMs: model.inputs.heartbeatMs, ...model.detector }`.
 */
export interface DetectorTimes {
  readonly heartbeatMs: number;
  readonly suspectAfterMs: number;
  readonly suspicionMinMs: number;
  readonly suspicionMaxMs: number;
  readonly localHealthExtensionMaxMs: number;
}

/** Every knob of the detector. `detectorOptions` derives the rest from `DetectorTimes`. */
export interface FailureDetectorOptions extends DetectorTimes {
  /** This node (never watched). */
  readonly self: NodeId;
  /** A row older than this no longer counts as liveness or corroboration. */
  readonly rowFreshMs: number;
  /** Own silence of a gray member at which it is quarantined. */
  readonly grayQuarantineMs: number;
  /** Window in which repeated failures of one node count as flapping. */
  readonly flapWindowMs: number;
  /** Failures within the window after which the next one is a quarantine. */
  readonly flapFailuresMax: number;
  /** K of the suspicion formula: corroborations that bring the window down to its minimum. */
  readonly corroborationTarget: number;
  /** Lag below this is timer noise and extends nothing. */
  readonly lagToleranceMs: number;
  /** A reported lag at or above this holds back accusations in the next tick. */
  readonly lagSuppressMs: number;
  /** After start, members not heard directly are not failed before this. */
  readonly seedGraceMs: number;
}

/** How much each ms of the leader's recent lag extends the eviction threshold. */
export const LAG_EXTENSION_FACTOR = 2;

/** The options for `self` from the timeout model's figures (see the file comment for each rule). */
export function detectorOptions(
  self: NodeId,
  t: DetectorTimes,
  overrides: Partial<Omit<FailureDetectorOptions, 'self'>> = {},
): FailureDetectorOptions {
  return {
    ...t,
    self,
    rowFreshMs: t.suspicionMinMs,
    grayQuarantineMs: t.suspectAfterMs + 2 * t.suspicionMaxMs,
    flapWindowMs: 10 * (t.suspectAfterMs + t.suspicionMaxMs),
    flapFailuresMax: 2,
    corroborationTarget: 3,
    lagToleranceMs: Math.floor(t.heartbeatMs / 4),
    lagSuppressMs: t.heartbeatMs,
    seedGraceMs: 2 * t.heartbeatMs,
    ...overrides,
  };
}

function checkOptions(o: FailureDetectorOptions): void {
  const positive = [o.heartbeatMs, o.suspectAfterMs, o.suspicionMinMs, o.rowFreshMs, o.flapWindowMs, o.lagSuppressMs];
  assert(
    positive.every((x) => Number.isFinite(x) && x > 0),
    'detector times must be positive',
  );
  assert(o.suspicionMinMs <= o.suspicionMaxMs, 'suspicion minimum must not exceed its maximum');
  assert(o.grayQuarantineMs > o.suspectAfterMs, 'a gray member is quarantined only after it would have been suspected');
  assert(
    o.localHealthExtensionMaxMs >= 0 && o.lagToleranceMs >= 0 && o.seedGraceMs >= 0,
    'detector extensions must not be negative',
  );
  assert(
    Number.isInteger(o.flapFailuresMax) &&
      o.flapFailuresMax >= 1 &&
      o.flapFailuresMax < DETECTOR_FAILURES_REMEMBERED_MAX,
    'flap count must fit the remembered failures',
  );
  assert(
    Number.isInteger(o.corroborationTarget) && o.corroborationTarget >= 1 && o.corroborationTarget < CLUSTER_NODES_MAX,
    'corroboration target must be a small positive integer',
  );
}

// ------------------------------------------------------------------------------------------------
// Decisions

/** Detector evidence, as the `fail` command carries it: a timeout, or proof the process is gone. */
export type DetectorEvidence = Extract<FailReason, { kind: 'detector' | 'process-gone' }>;

/**
 * What `tick` decided. `fail` and `quarantine` map one to one onto membership commands (the
 * `reason` is the command's); `suspect` and `clear` are for logs, metrics and the dashboard.
 */
export type DetectorDecision =
  | { readonly type: 'suspect'; readonly node: NodeId; readonly incarnation: Incarnation; readonly silentMs: number }
  | { readonly type: 'clear'; readonly node: NodeId; readonly incarnation: Incarnation }
  | {
      readonly type: 'fail';
      readonly node: NodeId;
      readonly incarnation: Incarnation;
      readonly reason: DetectorEvidence;
    }
  | {
      readonly type: 'quarantine';
      readonly node: NodeId;
      readonly incarnation: Incarnation;
      readonly reason: QuarantineReason;
    };

/** What the detector thinks of one member right now (for status output and tests). */
export interface WatchStatus {
  readonly node: NodeId;
  readonly incarnation: Incarnation;
  /** Silence counting every source of liveness. */
  readonly silentMs: number;
  /** Silence of the leader's own link. */
  readonly ownSilentMs: number;
  readonly suspected: boolean;
  readonly gray: boolean;
  readonly decided: 'none' | 'fail' | 'quarantine';
}

// ------------------------------------------------------------------------------------------------
// State

interface Watch {
  readonly incarnation: Incarnation;
  /** When the leader itself last heard the member; null: not since the watch began. */
  ownHeardMs: number | null;
  /** When the watch began: own timing starts here unless the seed says otherwise. */
  readonly startMs: number;
  /** Members of the new leader's first view: their timing may be seeded from early rows. */
  readonly seeding: boolean;
  /** Newest time a row received within the seed grace reports hearing the member; null: none. */
  seededMs: number | null;
  suspected: boolean;
  /** Set while the member is a gray failure (own silence long, others hear it). */
  gray: boolean;
  decided: 'none' | 'fail' | 'quarantine';
}

interface StoredRow {
  readonly receivedMs: number;
  /** node -> silence reported; null: the reporter has not heard it. */
  readonly silences: ReadonlyMap<NodeId, number | null>;
}

/** Per-member evidence computed once per tick. */
interface Evidence {
  readonly silentMs: number;
  readonly ownSilentMs: number;
  readonly corroborators: NodeId[];
  readonly heardBy: NodeId[];
}

/** Sliding maximum of the lag samples over about `memoryMs` (two buckets). */
class LagMemory {
  private bucketStartMs: number | null = null;
  private current = 0;
  private previous = 0;

  constructor(private readonly memoryMs: number) {}

  add(nowMs: number, lagMs: number): void {
    if (this.bucketStartMs === null || nowMs - this.bucketStartMs >= this.memoryMs) {
      const adjacent = this.bucketStartMs !== null && nowMs - this.bucketStartMs < 2 * this.memoryMs;
      this.previous = adjacent ? this.current : 0;
      this.current = 0;
      this.bucketStartMs = nowMs;
    }
    this.current = Math.max(this.current, lagMs);
  }

  recent(nowMs: number): number {
    if (this.bucketStartMs === null) return 0;
    const age = nowMs - this.bucketStartMs;
    if (age >= 2 * this.memoryMs) return 0;
    return age >= this.memoryMs ? this.current : Math.max(this.current, this.previous);
  }
}

// ------------------------------------------------------------------------------------------------
// The detector

/** See the file comment. One instance per leadership term: create it when this node becomes leader. */
export class FailureDetector {
  private readonly watches = new Map<NodeId, Watch>();
  private readonly rows = new Map<NodeId, StoredRow>();

  private readonly failures = new Map<NodeId, number[]>();
  /** When this node's last stall (a tick late by more than `lagToleranceMs`) ended. */
  private lastStallEndMs = Number.NEGATIVE_INFINITY;
  private readonly lag: LagMemory;
  private pendingLagMs = 0;
  private suppressedTicks = 0;
  private lastNowMs: number;
  private started = false;

  constructor(
    readonly options: FailureDetectorOptions,
    startMs: number,
  ) {
    checkOptions(options);
    this.lastNowMs = startMs;
    this.lag = new LagMemory(options.suspectAfterMs + options.suspicionMaxMs);
  }

  /**
   * Sets the members to watch (the committed view). A member already watched at the same
   * incarnation keeps its state; a new member or a new incarnation starts a fresh watch timed
   * from now (from the rows, for the members of the first call: the new leader's seed).
   */
  setMembers(members: readonly ViewMember[], nowMs: number): void {
    this.advance(nowMs);
    assert(members.length <= CLUSTER_NODES_MAX, `at most ${CLUSTER_NODES_MAX} members are watched`);
    const seeding = !this.started;
    this.started = true;
    const keep = new Map(members.filter((m) => m.node !== this.options.self).map((m) => [m.node, m.incarnation]));
    for (const [node, w] of [...this.watches]) if (keep.get(node) !== w.incarnation) this.watches.delete(node);
    for (const node of [...this.rows.keys()]) if (!keep.has(node) && node !== this.options.self) this.rows.delete(node);
    for (const [node, incarnation] of keep) {
      if (this.watches.has(node)) continue;
      this.watches.set(node, {
        incarnation,
        ownHeardMs: null,
        startMs: nowMs,
        seeding,
        seededMs: null,
        suspected: false,
        gray: false,
        decided: 'none',
      });
    }
    this.pruneFailures(nowMs);
  }

  /** A message from `node` arrived at `nowMs`. Non-members are ignored. */
  observe(node: NodeId, nowMs: number, heardMs = nowMs): void {
    this.advance(nowMs);
    const w = this.watches.get(node);
    if (w !== undefined && (w.ownHeardMs === null || heardMs > w.ownHeardMs)) w.ownHeardMs = Math.min(heardMs, nowMs);
  }

  /**
   * `from`'s reachability row arrived at `nowMs` (it also counts as hearing `from`). Rows from
   * non-members are ignored. `from === self` seeds the leader's own observations (the row this
   * node kept as a follower), so a new leader starts with what it already knew.
   */
  reachabilityRow(from: NodeId, row: ReachabilityRow, nowMs: number, lateMs = 0, incarnation?: number): void {
    this.advance(nowMs);
    if (row.length > CLUSTER_NODES_MAX) return; // malformed input: the decoder bounds rows
    if (from === this.options.self) {
      this.seedOwn(row, nowMs);
      return;
    }
    if (!this.watches.has(from)) return;
    // A row held back in the network (a clog, a paused link) says what its sender heard when it
    // was sent, not now: it is dated back by how late it arrived (`ArrivalLateness`), or a node
    // that died meanwhile looks alive.
    const at = nowMs - Math.max(0, lateMs);
    // Only the watched incarnation's own Pings show it is alive (a restarted process is another).
    if (incarnation === undefined || incarnation === this.watches.get(from)?.incarnation) this.observe(from, nowMs, at);
    const silences = new Map<NodeId, number | null>();
    for (const e of row) {
      if (e.node === from || (e.silentMs !== null && !(Number.isFinite(e.silentMs) && e.silentMs >= 0))) continue;
      silences.set(e.node, e.silentMs);
      if (e.silentMs !== null) this.seed(e.node, at - e.silentMs, nowMs);
    }
    const prev = this.rows.get(from);
    if (prev !== undefined && prev.receivedMs > at) return; // older than the row kept
    this.rows.set(from, { receivedMs: at, silences });
  }

  /** A row received during the seed grace reports hearing `node` at `heardMs`. */
  private seed(node: NodeId, heardMs: number, nowMs: number): void {
    const w = this.watches.get(node);
    if (w === undefined || !w.seeding || nowMs >= w.startMs + this.options.seedGraceMs) return;
    if (w.seededMs === null || heardMs > w.seededMs) w.seededMs = heardMs;
  }

  private seedOwn(row: ReachabilityRow, nowMs: number): void {
    for (const e of row) {
      const w = this.watches.get(e.node);
      if (w === undefined || e.silentMs === null || !(e.silentMs >= 0)) continue;
      const at = nowMs - e.silentMs;
      if (w.ownHeardMs === null || at > w.ownHeardMs) w.ownHeardMs = at;
    }
  }

  /**
   * Proof that process `incarnation` of `node` is gone (see the file comment). Returns the
   * decision now: `fail` with reason `process-gone` (or `quarantine` if the member flaps) when
   * `node` is a watched member at that incarnation with nothing decided yet; else null (a stale
   * proof about an older incarnation, a non-member, a decision already made).
   */
  processGone(node: NodeId, incarnation: number, nowMs: number): DetectorDecision | null {
    this.advance(nowMs);
    const w = this.watches.get(node);
    if (w === undefined || w.incarnation !== incarnation || w.decided !== 'none') return null;
    const silentMs = Math.round(this.evidence(node, w, nowMs).silentMs);
    const recent = this.recordFailure(node, nowMs);
    if (recent > this.options.flapFailuresMax) {
      w.decided = 'quarantine';
      return {
        type: 'quarantine',
        node,
        incarnation: w.incarnation,
        reason: { kind: 'flapping', failures: recent, windowMs: this.options.flapWindowMs },
      };
    }
    w.decided = 'fail';
    return { type: 'fail', node, incarnation: w.incarnation, reason: { kind: 'process-gone', silentMs } };
  }

  /**
   * This node's event loop was late by `lagMs` (measured by the shell, e.g. timer lateness).
   * Report it before the `tick` it delayed.
   */
  localLag(lagMs: number): void {
    assert(Number.isFinite(lagMs) && lagMs >= 0, 'lag must be a non-negative number of ms');
    this.pendingLagMs = Math.max(this.pendingLagMs, lagMs);
  }

  /** Evaluates every member at `nowMs`; returns the decisions (at most one per member), ascending by node. */
  tick(nowMs: number): DetectorDecision[] {
    this.advance(nowMs);
    const stalled = this.pendingLagMs >= this.options.lagSuppressMs;
    if (this.pendingLagMs > this.options.lagToleranceMs) this.lastStallEndMs = nowMs;
    this.lag.add(nowMs, this.pendingLagMs);
    this.pendingLagMs = 0;
    const suppress = stalled && this.suppressedTicks < DETECTOR_SUPPRESSED_TICKS_MAX;
    this.suppressedTicks = suppress ? this.suppressedTicks + 1 : 0;
    const out: DetectorDecision[] = [];
    for (const node of [...this.watches.keys()].sort((a, b) => a - b)) {
      const d = this.evaluate(node, nowMs, suppress);
      if (d !== null) out.push(d);
    }
    return out;
  }

  /** What the detector thinks of every member at `nowMs`, ascending by node (no state change). */
  status(nowMs: number): WatchStatus[] {
    const out: WatchStatus[] = [];
    for (const node of [...this.watches.keys()].sort((a, b) => a - b)) {
      const w = this.watch(node);
      const e = this.evidence(node, w, nowMs);
      out.push({
        node,
        incarnation: w.incarnation,
        silentMs: e.silentMs,
        ownSilentMs: e.ownSilentMs,
        suspected: w.suspected,
        gray: w.gray,
        decided: w.decided,
      });
    }
    return out;
  }

  /**
   * The eviction threshold for a member with `corroborations` now (suspicion plus lag extension).
   * With `heardMs` (when the member was last heard), a silence that began after this node's last
   * stall ended gets no extension: this node's loop was healthy for all of it.
   */
  thresholdMs(corroborations: number, nowMs: number, heardMs?: number): number {
    const extension = heardMs !== undefined && heardMs >= this.lastStallEndMs ? 0 : this.lagExtensionMs(nowMs);
    return this.options.suspectAfterMs + this.suspicionWindowMs(corroborations) + extension;
  }

  // ---------------------------------------------------------------------------------------------

  private advance(nowMs: number): void {
    assert(
      Number.isFinite(nowMs) && nowMs >= this.lastNowMs,
      `time must not go backwards (${nowMs} after ${this.lastNowMs}); pass a monotonic clock`,
    );
    this.lastNowMs = nowMs;
  }

  private watch(node: NodeId): Watch {
    const w = this.watches.get(node);
    assert(w !== undefined, `node ${node} is watched`);
    return w;
  }

  /** Newest time a row received since `freshSinceMs` reports hearing `node`, or null. */
  private rowsHeardMs(node: NodeId, freshSinceMs: number): number | null {
    let best: number | null = null;
    for (const [reporter, row] of this.rows) {
      if (reporter === node || row.receivedMs < freshSinceMs) continue;
      const s = row.silences.get(node);
      if (s === undefined || s === null) continue;
      const at = row.receivedMs - s;
      if (best === null || at > best) best = at;
    }
    return best;
  }

  private evidence(node: NodeId, w: Watch, nowMs: number): Evidence {
    const fresh = nowMs - this.options.rowFreshMs;
    // Own timing: the leader's own observation; before one, the new leader's seed from the rows
    // of its first moments (possibly before the election), else the start of the watch.
    const own = w.ownHeardMs ?? w.seededMs ?? w.startMs;
    const relayed = this.rowsHeardMs(node, fresh);
    const newest = relayed === null ? own : Math.max(own, relayed);
    const corroborators: NodeId[] = [];
    const heardBy: NodeId[] = [];
    for (const [reporter, row] of this.rows) {
      if (reporter === node || row.receivedMs < fresh) continue;
      const s = row.silences.get(node);
      if (s === undefined || s === null) continue;
      if (s >= this.options.suspectAfterMs) corroborators.push(reporter);
      else heardBy.push(reporter);
    }
    corroborators.sort((a, b) => a - b);
    heardBy.sort((a, b) => a - b);
    return { silentMs: Math.max(0, nowMs - newest), ownSilentMs: Math.max(0, nowMs - own), corroborators, heardBy };
  }

  private suspicionWindowMs(corroborations: number): number {
    const { suspicionMinMs: min, suspicionMaxMs: max } = this.options;
    const others = Math.max(0, this.watches.size - 1);
    const k = Math.min(this.options.corroborationTarget, others);
    if (k === 0 || corroborations <= 0) return max;
    if (corroborations >= k) return min;
    const c = corroborations;
    return Math.max(min, Math.ceil(max - ((max - min) * Math.log(c + 1)) / Math.log(k + 1)));
  }

  private lagExtensionMs(nowMs: number): number {
    const lag = this.lag.recent(nowMs);
    if (lag <= this.options.lagToleranceMs) return 0;
    return Math.min(this.options.localHealthExtensionMaxMs, Math.ceil(LAG_EXTENSION_FACTOR * lag));
  }

  private evaluate(node: NodeId, nowMs: number, suppress: boolean): DetectorDecision | null {
    const w = this.watch(node);
    if (w.decided !== 'none') return null;
    const e = this.evidence(node, w, nowMs);
    const o = this.options;
    const wasSuspected = w.suspected;
    w.gray = e.ownSilentMs >= o.suspectAfterMs && e.silentMs < o.suspectAfterMs;
    w.suspected = e.silentMs >= o.suspectAfterMs;
    if (w.gray) {
      if (!suppress && e.ownSilentMs >= o.grayQuarantineMs) {
        w.decided = 'quarantine';
        return {
          type: 'quarantine',
          node,
          incarnation: w.incarnation,
          reason: { kind: 'partial-connectivity', silentMs: Math.round(e.ownSilentMs), heardBy: e.heardBy },
        };
      }
    } else if (w.suspected) {
      const decision = this.accuse(node, w, e, nowMs, suppress);
      if (decision !== null) return decision;
    }
    if (w.suspected && !wasSuspected)
      return { type: 'suspect', node, incarnation: w.incarnation, silentMs: Math.round(e.silentMs) };
    if (!w.suspected && wasSuspected) return { type: 'clear', node, incarnation: w.incarnation };
    return null;
  }

  /** A suspected member: fail (or quarantine, if it flaps) once its silence passes the threshold. */
  private accuse(node: NodeId, w: Watch, e: Evidence, nowMs: number, suppress: boolean): DetectorDecision | null {
    const o = this.options;
    const timeoutMs = this.thresholdMs(e.corroborators.length, nowMs, nowMs - e.silentMs);
    const inSeedGrace = w.ownHeardMs === null && nowMs < w.startMs + o.seedGraceMs;
    if (suppress || inSeedGrace || e.silentMs < timeoutMs) return null;
    const recent = this.recordFailure(node, nowMs);
    if (recent > o.flapFailuresMax) {
      w.decided = 'quarantine';
      return {
        type: 'quarantine',
        node,
        incarnation: w.incarnation,
        reason: { kind: 'flapping', failures: recent, windowMs: o.flapWindowMs },
      };
    }
    w.decided = 'fail';
    const lagMs = Math.round(this.lag.recent(nowMs));
    return {
      type: 'fail',
      node,
      incarnation: w.incarnation,
      reason: { kind: 'detector', silentMs: Math.round(e.silentMs), timeoutMs, corroborators: e.corroborators, lagMs },
    };
  }

  /** Remembers a failure of `node` at `nowMs`; returns failures within the flap window, this one included. */
  private recordFailure(node: NodeId, nowMs: number): number {
    const since = nowMs - this.options.flapWindowMs;
    const times = (this.failures.get(node) ?? []).filter((t) => t > since);
    times.push(nowMs);
    while (times.length > DETECTOR_FAILURES_REMEMBERED_MAX) times.shift();
    this.failures.set(node, times);
    return times.length;
  }

  private pruneFailures(nowMs: number): void {
    const since = nowMs - this.options.flapWindowMs;
    for (const [node, times] of [...this.failures]) {
      if (times.every((t) => t <= since)) this.failures.delete(node);
    }
    // Failures are recorded only for watched members, and at most CLUSTER_NODES_MAX are watched at once.
    assert(this.failures.size <= 2 * CLUSTER_NODES_MAX, 'failure history stays bounded');
  }
}
