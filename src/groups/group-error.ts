/** The typed refusal of a group request (docs/groups.md, "Errors"). */
import { CohortError } from '../lib/errors.js';

/** Stable codes of a group request refused by the group table (or before proposing). */
export type GroupErrorCode =
  /** The group's view changed since this node read it: re-read the view, then retry if still wanted. */
  | 'VIEW_CHANGED'
  /** This node's incarnation is not a member of the group. */
  | 'NOT_MEMBER'
  /** This node's incarnation is not in the cluster view yet (it is still joining). */
  | 'NOT_IN_VIEW'
  /** The group has no members. */
  | 'NO_SUCH_GROUP'
  /** A join named a level other than the group's (a group's level is set by the join that creates it). */
  | 'GROUP_LEVEL_MISMATCH'
  /** A bound of the group table (`GROUPS_MAX`, `GROUP_BARRIERS_PENDING_MAX`). */
  | 'LIMIT'
  /** A malformed name, level or message. */
  | 'INVALID';

/** A refused group request; the message says what to do. */
export class GroupError extends CohortError {
  override readonly name = 'GroupError';
  constructor(
    override readonly code: GroupErrorCode,
    message: string,
    /** The group's view id when refused (0 when the group does not exist). */
    readonly groupViewId: number,
  ) {
    super(code, message);
  }
}
