/**
 * The leader's view of each follower's log (etcd's `tracker`): how far it matches, what to send
 * next, and the flow-control state that bounds what is in flight.
 *
 * - `probe`: the leader does not know where the follower's log matches; it sends one MsgApp and
 *   waits for the answer (or a heartbeat response) before sending another.
 * - `replicate`: the follower is in sync; the leader streams entries optimistically, with at most
 *   `RAFT_INFLIGHT_MESSAGES_MAX` unacknowledged MsgApp messages (the `Inflights` window).
 * - `snapshot`: the follower needs a snapshot; nothing is sent until it acknowledges it, or until
 *   the attempt times out and the leader probes again.
 */
import { assert } from '../lib/assert.js';
import { logIndex, type LogIndex } from '../lib/ids.js';

/** Flow-control state of one follower. */
export type ProgressState = 'probe' | 'replicate' | 'snapshot';

/** A fixed-capacity FIFO of the last index of each unacknowledged MsgApp, oldest first. */
export class Inflights {
  private readonly ring: number[];
  private start = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    assert(Number.isInteger(capacity) && capacity > 0, 'inflights capacity must be a positive integer');
    this.ring = new Array<number>(capacity).fill(0);
  }

  /** Messages in flight. */
  get length(): number {
    return this.count;
  }

  /** True when no further MsgApp may be sent. */
  get full(): boolean {
    return this.count === this.capacity;
  }

  /** Records a MsgApp whose last entry is `last`; indexes must increase. */
  add(last: LogIndex): void {
    assert(!this.full, 'cannot add to a full inflights window');
    if (this.count > 0)
      assert(last > (this.ring[(this.start + this.count - 1) % this.capacity] ?? 0), 'inflight indexes must increase');
    this.ring[(this.start + this.count) % this.capacity] = last;
    this.count++;
  }

  /** Frees every message whose last index is `<= index` (acknowledged). */
  freeLE(index: LogIndex): void {
    while (this.count > 0 && (this.ring[this.start] ?? 0) <= index) {
      this.start = (this.start + 1) % this.capacity;
      this.count--;
    }
  }

  /** Frees the oldest message (its ack was probably lost). */
  freeFirst(): void {
    if (this.count === 0) return;
    this.start = (this.start + 1) % this.capacity;
    this.count--;
  }

  /** Frees everything. */
  reset(): void {
    this.start = 0;
    this.count = 0;
  }
}

/** One follower's replication progress, owned and mutated only by the leader's core. */
export class Progress {
  /** Highest index known to match the leader's log. */
  match: LogIndex;
  /** Next index to send. Invariant: `match < next`. */
  next: LogIndex;
  state: ProgressState = 'probe';
  /** In `snapshot` state: the index of the snapshot sent. */
  pendingSnapshot: LogIndex = logIndex(0);
  /** In `probe` state: a probe is outstanding, so sending is paused. */
  probeSent = false;
  /** Heard from since the last check-quorum round. */
  recentActive = false;
  /** Leader ticks spent in the current state (times out a lost snapshot). */
  stateTicks = 0;
  /** Highest heartbeat round this follower acknowledged in the leader's term. */
  ackedRound = 0;
  /** The commit index the latest heartbeats carried, and the first round that carried it. */
  private commitSent = 0;
  private commitSentRound = 0;
  /** Highest commit index this follower is known to have learned (it answered a heartbeat carrying it). */
  commitKnown = 0;
  readonly inflights: Inflights;

  constructor(next: LogIndex, inflightsMax: number) {
    assert(next >= 1, 'next index starts at 1');
    this.match = logIndex(0);
    this.next = next;
    this.inflights = new Inflights(inflightsMax);
  }

  /** A heartbeat of `round` carries `commit` to this follower. Rounds increase. */
  noteCommitSent(round: number, commit: number): void {
    if (commit === this.commitSent && this.commitSentRound > 0) return;
    this.commitSent = commit;
    this.commitSentRound = round;
  }

  /**
   * The follower answered the heartbeat of `round`: every round since `commitSentRound` carried
   * `commitSent`, so it learned at least that much (an answer to an older round proves nothing).
   */
  noteHeartbeatAck(round: number): void {
    if (this.commitSentRound > 0 && round >= this.commitSentRound)
      this.commitKnown = Math.max(this.commitKnown, this.commitSent);
  }

  private reset(state: ProgressState): void {
    this.state = state;
    this.probeSent = false;
    this.pendingSnapshot = logIndex(0);
    this.stateTicks = 0;
    this.inflights.reset();
  }

  /** Back to probing, after a rejection, a failed snapshot, or an unreachable follower. */
  becomeProbe(): void {
    const next = this.state === 'snapshot' ? Math.max(this.match + 1, this.pendingSnapshot + 1) : this.match + 1;
    this.reset('probe');
    this.next = logIndex(next);
  }

  /**
   * The follower said it does not hold the entry at `match` any more (it lost acknowledged
   * entries): nothing is known to match now; probe from `next`.
   */
  forgetMatch(next: LogIndex): void {
    this.match = logIndex(0);
    this.reset('probe');
    this.next = logIndex(Math.max(1, next));
  }

  /** Streams entries from `match + 1`. */
  becomeReplicate(): void {
    this.reset('replicate');
    this.next = logIndex(this.match + 1);
  }

  /** Waits for snapshot `index` to be installed. */
  becomeSnapshot(index: LogIndex): void {
    assert(index > this.match, 'a snapshot must move the follower forward');
    this.reset('snapshot');
    this.pendingSnapshot = index;
  }

  /** An acknowledgement up to `index`; returns true when `match` moved. */
  maybeUpdate(index: LogIndex): boolean {
    let updated = false;
    if (this.match < index) {
      this.match = index;
      this.probeSent = false;
      updated = true;
    }
    if (this.next < index + 1) this.next = logIndex(index + 1);
    return updated;
  }

  /** Records a MsgApp carrying entries up to `last` (called after sending). */
  sentEntries(last: LogIndex, entryCount: number): void {
    switch (this.state) {
      case 'replicate':
        if (entryCount > 0) {
          this.next = logIndex(last + 1);
          this.inflights.add(last);
        }
        return;
      case 'probe':
        this.probeSent = true;
        return;
      case 'snapshot':
        assert(false, 'no MsgApp is sent to a follower waiting for a snapshot');
    }
  }

  /**
   * A rejection of the MsgApp at `rejected` with the follower's hint `matchHint`. Returns false
   * when the rejection is stale (already superseded), true when `next` moved back.
   */
  maybeDecrTo(rejected: LogIndex, matchHint: LogIndex): boolean {
    if (this.state === 'replicate') {
      if (rejected <= this.match) return false;
      this.next = logIndex(this.match + 1);
      return true;
    }
    // Probes are sent one at a time, so a rejection of anything but the last probe is stale.
    if (this.next - 1 !== rejected) return false;
    this.next = logIndex(Math.max(Math.min(rejected, matchHint + 1), this.match + 1));
    this.probeSent = false;
    return true;
  }

  /** True when nothing may be sent to this follower now. */
  isPaused(): boolean {
    switch (this.state) {
      case 'probe':
        return this.probeSent;
      case 'replicate':
        return this.inflights.full;
      case 'snapshot':
        return true;
    }
  }

  /** `state match=N next=N` for status dumps. */
  format(): string {
    const extra =
      this.state === 'snapshot'
        ? ` pending=${this.pendingSnapshot}`
        : this.probeSent
          ? ' paused'
          : this.inflights.length > 0
            ? ` inflight=${this.inflights.length}`
            : '';
    return `${this.state} match=${this.match} next=${this.next}${extra}`;
  }
}
