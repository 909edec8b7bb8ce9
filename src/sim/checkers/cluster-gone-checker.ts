/**
 * The fast path's soundness, judged from trace events only: the leader fails a member with
 * reason `process-gone` only when that member's process had really ended.
 *
 * A `detector type=fail reason=process-gone node=X incarnation=i` decision is sound when a
 * `sim crash` of X happened while X ran incarnation i, before the decision. Anything else (X
 * paused, partitioned, clogged, slow, or alive and well) is a violation: the proof that a
 * process is gone must never come from silence, however long. Pauses of any length, including
 * the 5 s ones of the scenario scripts, must leave this checker silent; the `pause-is-gone`
 * canary (silence taken for proof) must not.
 */
import type { NodeId } from '../../lib/ids.js';
import type { Checker } from '../workload.js';
import type { SimEvent } from '../trace.js';
import { CLUSTER_EVENT } from './cluster-events.js';

/** See the module comment. */
export class ClusterGoneChecker implements Checker {
  readonly name = 'gone-proof';
  /** The membership incarnation each node's current process runs (from `cluster-node-start`). */
  private readonly running = new Map<NodeId, number>();
  /** `node@incarnation` of processes that crashed. */
  private readonly ended = new Set<string>();
  /** Sound `process-gone` failures seen. */
  goneFailures = 0;

  constructor(private readonly violation: (message: string) => void) {}

  observe(e: SimEvent): void {
    if (e.source === 'sim') {
      if (e.event !== 'crash') return;
      const node = Number(e.fields.node) as NodeId;
      const inc = this.running.get(node);
      if (inc !== undefined) this.ended.add(`${node}@${inc}`);
      this.running.delete(node);
      return;
    }
    if (typeof e.source !== 'number') return;
    const f = e.fields;
    if (e.event === CLUSTER_EVENT.nodeStart) {
      this.running.set(e.source as NodeId, Number(f.incarnation));
      return;
    }
    if (e.event !== CLUSTER_EVENT.detector || f.type !== 'fail' || f.reason !== 'process-gone') return;
    const who = `${String(f.node)}@${String(f.incarnation)}`;
    if (this.ended.has(who)) {
      this.goneFailures++;
      return;
    }
    this.violation(
      `node ${String(e.source)} failed ${who} as process-gone at ${(e.timeUs / 1000).toFixed(1)} ms, but that process never crashed: the proof came from silence`,
    );
  }

  finish(): void {
    // Everything is judged as it happens.
  }
}
