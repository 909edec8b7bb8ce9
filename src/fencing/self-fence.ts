/**
 * Lease-based self-fencing (the `watchdog` agent's node side, as sbd's watchdog mode): a node that
 * may have been cut off from the cluster ends itself within its lease, so its peers can treat it
 * as fenced once the lease and a margin have passed, without any device (docs/fencing.md).
 *
 * The rule, evaluated on every tick of a node whose topology holds a watchdog device:
 * 1. **Removed**: this incarnation applied its own removal from the view (failed, quarantined,
 *    replaced): it is no longer a member, and may hold locks or writes that the survivors are
 *    about to recover. It ends at once.
 * 2. **Cut off**: this incarnation has been a member of a quorate view, and the votes it heard
 *    within the node lease (its own, plus every voter whose pings arrived within the lease, dated
 *    back by their lateness) are below the quorum. It ends at once.
 *
 * Why connectivity and not the leader: during a normal election no node hears a leader, yet the
 * majority still hears itself; a rule keyed on the leader would make the whole cluster end itself
 * on every failover. Why this is enough for the survivors' wait: a node that the others cannot
 * hear either stops hearing them too (then rule 2 fires within the lease of the last contact,
 * which precedes the eviction) or still hears the leader (then it applies its removal and rule 1
 * fires). The survivors wait `nodeLeaseMs + driftMarginMs` plus one tick after they applied the
 * removal (`watchdogWaitMs`), which covers both. Against a frozen process (SIGSTOP, a hung
 * kernel) only a real watchdog device helps: the process cannot end itself while frozen, but it
 * stops feeding the device, which resets the machine within `timeouts.watchdogMs`.
 *
 * Pure: the caller passes what it heard and the time.
 */
import type { NodeId } from '../lib/ids.js';

/** What the verdict is computed from. */
export interface SelfFenceInput {
  readonly self: NodeId;
  /** This incarnation has been a member of a quorate view (rule 2 applies only after that). */
  readonly wasQuorateMember: boolean;
  /** This incarnation applied its own removal from the view. */
  readonly removed: boolean;
  /** Votes per configured voter (self included). */
  readonly votes: ReadonlyMap<NodeId, number>;
  /** The quorum (votes needed). */
  readonly quorum: number;
  /** Silence per peer by this node's clock, ms (null: never heard this incarnation). */
  readonly silences: readonly { readonly node: NodeId; readonly silentMs: number | null }[];
  /** How long a peer's last ping counts as contact. */
  readonly nodeLeaseMs: number;
}

/** The verdict: end this incarnation now, or not, and why. */
export type SelfFenceVerdict =
  | { readonly fence: false; readonly heardVotes: number }
  | { readonly fence: true; readonly rule: 'removed' | 'cut-off'; readonly heardVotes: number; readonly why: string };

/** Applies the rule of the file comment. */
export function selfFenceVerdict(i: SelfFenceInput): SelfFenceVerdict {
  let heard = i.votes.get(i.self) ?? 0;
  const heardNodes: NodeId[] = [];
  for (const s of i.silences) {
    if (s.node === i.self || s.silentMs === null || s.silentMs > i.nodeLeaseMs) continue;
    const v = i.votes.get(s.node) ?? 0;
    heard += v;
    if (v > 0) heardNodes.push(s.node);
  }
  if (i.removed)
    return {
      fence: true,
      rule: 'removed',
      heardVotes: heard,
      why: 'this incarnation was removed from the cluster view; it ends itself so the survivors can recover its locks and writes',
    };
  if (i.wasQuorateMember && heard < i.quorum)
    return {
      fence: true,
      rule: 'cut-off',
      heardVotes: heard,
      why: `cut off: heard ${heard} of the ${i.quorum} votes needed within the ${i.nodeLeaseMs} ms lease (voters heard: ${heardNodes.length === 0 ? 'none' : heardNodes.join(', ')}); it ends itself before the survivors' wait runs out`,
    };
  return { fence: false, heardVotes: heard };
}
