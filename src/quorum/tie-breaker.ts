/**
 * auto_tie_breaker: which voter carries the half vote that settles an exact half split.
 *
 * The tie-breaker is resolved from the *configuration* (its voters), never from the current
 * membership, so every partition computes the same node: a partition cannot tell a listed node
 * that is dead from one that sits in the other half, and choosing per partition could let both
 * halves pick a tie-breaker of their own. This differs from corosync's list mode, which picks
 * the first listed node still present; cohort re-resolves the tie-breaker instead when a
 * configuration change (an administrator's, or a last-man-standing step) removes it.
 */
import { assert, assertNever } from '../lib/assert.js';
import { err, ok, type Result } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import { QUORUM_TIE_BREAKER_LIST_MAX } from '../constants.js';
import { QuorumConfigError } from './weighted-quorum.js';

/** How the tie-breaker is chosen (corosync `auto_tie_breaker_node`). */
export type TieBreakerMode =
  | { readonly kind: 'off' }
  | { readonly kind: 'lowest' }
  | { readonly kind: 'highest' }
  /** The first node of `nodes` (priority order) that is a voter of the configuration. */
  | { readonly kind: 'list'; readonly nodes: readonly NodeId[] };

/** The tie-breaker of a side with these voters, or undefined (off, no voters, no listed voter). */
export function resolveTieBreaker(mode: TieBreakerMode, voters: ReadonlyMap<NodeId, number>): NodeId | undefined {
  switch (mode.kind) {
    case 'off':
      return undefined;
    case 'lowest':
    case 'highest': {
      let pick: NodeId | undefined;
      for (const id of voters.keys()) {
        if (pick === undefined || (mode.kind === 'lowest' ? id < pick : id > pick)) pick = id;
      }
      return pick;
    }
    case 'list':
      assert(mode.nodes.length <= QUORUM_TIE_BREAKER_LIST_MAX, 'tie-breaker list too long');
      return mode.nodes.find((id) => voters.has(id));
    default:
      return assertNever(mode, 'tie-breaker mode');
  }
}

/**
 * Checks a tie-breaker mode against the configured voters: a list must be short, free of
 * duplicates, and name at least one voter (otherwise the option would silently do nothing).
 */
export function validateTieBreakerMode(
  mode: TieBreakerMode,
  voters: ReadonlyMap<NodeId, number>,
): Result<TieBreakerMode, QuorumConfigError> {
  if (mode.kind !== 'list') return ok(mode);
  if (mode.nodes.length > QUORUM_TIE_BREAKER_LIST_MAX) {
    return err(
      new QuorumConfigError(
        'QUORUM_BAD_TIE_BREAKER',
        `auto_tie_breaker list has ${mode.nodes.length} nodes; at most ${QUORUM_TIE_BREAKER_LIST_MAX} are allowed`,
      ),
    );
  }
  if (new Set(mode.nodes).size !== mode.nodes.length) {
    return err(
      new QuorumConfigError(
        'QUORUM_BAD_TIE_BREAKER',
        `auto_tie_breaker list ${mode.nodes.join(',')} names a node twice; list each node once, in priority order`,
      ),
    );
  }
  if (!mode.nodes.some((id) => voters.has(id))) {
    return err(
      new QuorumConfigError(
        'QUORUM_BAD_TIE_BREAKER',
        `auto_tie_breaker list ${mode.nodes.join(',')} names no voting node; list at least one node with votes >= 1`,
      ),
    );
  }
  return ok(mode);
}
