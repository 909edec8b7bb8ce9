/**
 * Lease-based self-fencing (the `watchdog` agent's node side, as sbd's watchdog mode): a node that
 * may have been cut off from the cluster ends itself within its lease, so its peers can treat it
 * as fenced once the lease and a margin have passed, without any device (docs/fencing.md).
 *
 * The rule, evaluated on every tick of a node whose topology holds a watchdog device:
 * 1. **Removed**: this incarnation applied its own removal from the view (failed, quarantined,
 *    replaced): it is no longer a member, and may hold locks or writes that the survivors are
 *    about to recover. It ends at once.
 * 2. **Cut off**: this incarnation has been a member of a quorate view, its local quorum verdict
 *    (`local-quorum.ts`: leader contact within the follower lease) is negative, and the nodes it
 *    heard within the lease (itself, plus every node whose pings arrived within the lease, dated
 *    back by their lateness) hold no quorum. It ends at once.
 *
 * What makes the survivors' wait safe is the lease, not the exit: a node whose local verdict is
 * negative stops granting anything (locks, volume I/O) at once, and a verdict stays positive only
 * while the leader's messages arrive. A removed node that still hears the leader applies its
 * removal (rule 1); one that does not hear the leader stops serving within the follower lease of
 * the last message, which precedes the removal. The survivors wait `nodeLeaseMs + driftMarginMs`
 * plus one tick after they applied the removal (`watchdogWaitMs`), which covers both. The exit
 * makes the end visible and final (a supervisor restarts the node as a new incarnation, which
 * joins through a normal join). Against a frozen process (SIGSTOP, a hung kernel) only a real
 * watchdog device helps: the process cannot act while frozen, but it stops feeding the device,
 * which resets the machine within `timeouts.watchdogMs`.
 *
 * Why rule 2 also asks for connectivity and not only the leader: during a normal election no node
 * hears a leader, yet the majority still hears itself; a rule keyed on the leader alone would make
 * the whole cluster end itself on every failover that outlasts the lease. A node that hears a
 * quorum but not the leader (an asymmetric cut) stays up without serving (its verdict is
 * negative) until it hears the leader again or applies its removal.
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
  /** The local quorum verdict now (leader contact within the follower lease, view quorate). */
  readonly locallyQuorate: boolean;
  /**
   * Whether these nodes (self included) hold a quorum by the cluster's rules (`src/quorum`'s
   * arithmetic: votes, expected votes, tie-breaker). Null: rule 2 is off (two_node, where the
   * fence race with per-node delays decides which half survives).
   */
  readonly quorate: ((heard: ReadonlySet<NodeId>) => boolean) | null;
  /** Silence per peer by this node's clock, ms (null: never heard this incarnation). */
  readonly silences: readonly { readonly node: NodeId; readonly silentMs: number | null }[];
  /** How long a peer's last ping counts as contact. */
  readonly nodeLeaseMs: number;
}

/** The verdict: end this incarnation now, or not, and why. */
export type SelfFenceVerdict =
  | { readonly fence: false; readonly heard: readonly NodeId[] }
  | {
      readonly fence: true;
      readonly rule: 'removed' | 'cut-off';
      readonly heard: readonly NodeId[];
      readonly why: string;
    };

/** Applies the rule of the file comment. `heard` lists the nodes heard within the lease, self first. */
export function selfFenceVerdict(i: SelfFenceInput): SelfFenceVerdict {
  const heard: NodeId[] = [i.self];
  for (const s of i.silences) {
    if (s.node === i.self || s.silentMs === null || s.silentMs > i.nodeLeaseMs) continue;
    heard.push(s.node);
  }
  if (i.removed)
    return {
      fence: true,
      rule: 'removed',
      heard,
      why: 'this incarnation was removed from the cluster view; it ends itself so the survivors can recover its locks and writes',
    };
  if (i.wasQuorateMember && !i.locallyQuorate && i.quorate !== null && !i.quorate(new Set(heard)))
    return {
      fence: true,
      rule: 'cut-off',
      heard,
      why: `cut off: the nodes heard within the ${i.nodeLeaseMs} ms lease (${heard.join(', ')}) hold no quorum; it ends itself before the survivors' wait runs out`,
    };
  return { fence: false, heard };
}
