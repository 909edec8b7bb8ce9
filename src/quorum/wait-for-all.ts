/**
 * wait_for_all: a freshly started cluster is not quorate until every configured voter has been
 * seen at once; after that the normal arithmetic rules.
 *
 * Why: with two_node, or with expected votes lowered by last-man-standing, a node that boots
 * alone (its peers down or behind a partition) could otherwise declare itself quorate and start
 * fencing the others. Waiting for everyone once proves the configuration is whole before any
 * partition may act on its own.
 *
 * The state machine is pure and tiny; who holds it is the caller's choice. In cohort the leader
 * steps it with each committed membership and commits the release as a view event, so every
 * node applies the same release at the same log position. A node that restarts starts over in
 * `waiting` and is released by seeing everyone, or by joining a cluster that is already
 * released and quorate (corosync does the same when it hears a quorate peer).
 */
import { assertNever } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import type { JointQuorumConfig } from './weighted-quorum.js';

/** How the wait ended. */
export type WaitForAllRelease = 'all-seen' | 'joined-quorate-cluster' | 'cancelled';

/** The wait_for_all state. `off` when the option is disabled: it never blocks. */
export type WaitForAllState =
  | { readonly phase: 'off' }
  | { readonly phase: 'waiting' }
  | { readonly phase: 'released'; readonly how: WaitForAllRelease };

/** Inputs that can end the wait. */
export type WaitForAllEvent =
  /** The nodes present at once (one membership view) under the current configuration. */
  | { readonly type: 'membership'; readonly present: ReadonlySet<NodeId>; readonly config: JointQuorumConfig }
  /** This node joined a cluster whose committed state is already released and quorate. */
  | { readonly type: 'joined-quorate-cluster' }
  /** An operator overrode the wait (corosync `quorum.cancel_wait_for_all`). */
  | { readonly type: 'cancel' };

/** The state of a node that just started. */
export function initialWaitForAll(enabled: boolean): WaitForAllState {
  return enabled ? { phase: 'waiting' } : { phase: 'off' };
}

/** Every voter of every side of `config` that is not in `present`, ascending. */
export function missingVoters(config: JointQuorumConfig, present: ReadonlySet<NodeId>): NodeId[] {
  const missing = new Set<NodeId>();
  for (const id of config.incoming.voters.keys()) if (!present.has(id)) missing.add(id);
  if (config.outgoing) for (const id of config.outgoing.voters.keys()) if (!present.has(id)) missing.add(id);
  return [...missing].sort((a, b) => a - b);
}

/**
 * The next state. Only `waiting` changes: once released (or off) the wait never comes back
 * until the node restarts, matching votequorum.
 */
export function stepWaitForAll(state: WaitForAllState, event: WaitForAllEvent): WaitForAllState {
  if (state.phase !== 'waiting') return state;
  switch (event.type) {
    case 'membership':
      return missingVoters(event.config, event.present).length === 0 ? { phase: 'released', how: 'all-seen' } : state;
    case 'joined-quorate-cluster':
      return { phase: 'released', how: 'joined-quorate-cluster' };
    case 'cancel':
      return { phase: 'released', how: 'cancelled' };
    default:
      return assertNever(event, 'wait-for-all event');
  }
}

/** True while wait_for_all still forbids quorum. */
export function isWaiting(state: WaitForAllState): boolean {
  return state.phase === 'waiting';
}
