/**
 * The leader-lease checker: at no instant of true (virtual) time may two nodes report a valid
 * leader lease (`leaseValid` in their status). A lease lets a leader answer reads without a
 * round trip; two at once means a stale leader could serve a read that misses a newer leader's
 * writes.
 *
 * Observation: `LeaseSampler` (the driver side) asks every running node for its lease state on
 * a fixed period of true virtual time, as a client polling `cohort status` would, and traces a
 * `lease` client event whenever the set of holders changes (`holders` is a sorted comma list,
 * empty for none). Clock drift does not enter: every node is asked at the same true instant, and
 * each answers from its own drifting clock. A paused node is not asked (it cannot answer; a late
 * answer describes a past instant and is dropped). The checker judges only those events.
 */
import type { NodeId } from '../../lib/ids.js';
import type { TraceFields } from '../../runtime/env.js';
import type { Checker, DriverContext } from '../workload.js';
import type { SimEvent } from '../trace.js';

/** The client event the sampler traces. */
export const LEASE_EVENT = 'lease';

/** Checks that leases never overlap; see the module comment. */
export class LeaseChecker implements Checker {
  readonly name = 'lease';
  /** `lease` events judged (a test can tell a checker that saw nothing from one that passed). */
  checks = 0;
  /** Samples at which some node held a lease. */
  held = 0;

  constructor(private readonly violation: (message: string) => void) {}

  observe(e: SimEvent): void {
    if (e.source !== 'client' || e.event !== LEASE_EVENT) return;
    this.checks++;
    const holders = typeof e.fields.holders === 'string' && e.fields.holders !== '' ? e.fields.holders.split(',') : [];
    if (holders.length > 0) this.held++;
    if (holders.length < 2) return;
    this.violation(
      `nodes ${holders.join(' and ')} report a valid leader lease at the same instant (${(e.timeUs / 1e6).toFixed(3)} s)`,
    );
  }
}

/** Samples every running node's lease state; see the module comment. */
export class LeaseSampler<I> {
  private last = '';
  private round = 0;

  constructor(
    /** Sampling period, ms of true virtual time. */
    private readonly periodMs: number,
    /** The lease state of one node instance, or null when it cannot tell (it refused to start). */
    private readonly leaseOf: (instance: I) => boolean | null,
  ) {}

  /** Starts sampling (call once, from the driver's `start`). */
  start(ctx: DriverContext<I>): void {
    const tick = (): void => {
      this.sample(ctx);
      ctx.after(this.periodMs, tick);
    };
    ctx.after(this.periodMs, tick);
  }

  private sample(ctx: DriverContext<I>): void {
    const round = ++this.round;
    const holders: NodeId[] = [];
    for (const id of ctx.nodes) {
      ctx.call(id, (instance) => {
        // A paused node answers after its resume: that answer is about another instant.
        if (round === this.round && this.leaseOf(instance) === true) holders.push(id);
      });
    }
    this.round++;
    const text = holders.join(',');
    if (text === this.last) return;
    this.last = text;
    const fields: TraceFields = { holders: text };
    ctx.trace(LEASE_EVENT, fields);
  }
}
