/**
 * One configured node's membership record and the pure transition rules of every per-node
 * command (join, leave, fail, fenced, quarantine, release). See docs/membership.md for the table.
 *
 * The rules are incarnation-aware so that late, duplicated or reordered proposals are harmless:
 * - `seen` is the highest incarnation any command has named for the node. A command about an
 *   older incarnation is `stale`: a deterministic no-op.
 * - A command about a *newer* incarnation than the one recorded proves the recorded one is dead
 *   (the node restarted): if it was a member it is removed uncleanly and needs fencing.
 * - An incarnation that has ended (left, failed, fenced) never comes back: a later join of that
 *   same incarnation is stale; a restarted node joins with a new incarnation.
 * - A new incarnation is admitted only when nothing is pending for an older one: if the old one
 *   needs fencing, the join waits (`rejoin`) and is admitted when the fence is confirmed.
 *
 * Transitions are computed here and applied by the state machine (one owner per mutation).
 */
import type { GroupCommand } from '../groups/index.js';
import { assertNever } from '../lib/assert.js';
import type { Incarnation } from '../lib/ids.js';
import type { ApplyError } from '../log/state-machine.js';
import type { RecoveryCommand } from '../recovery/index.js';
import type { FailReason, MembershipCommand, QuarantineReason } from './membership-command.js';
import type { NodeStatus, ViewChangeKind } from './membership-event.js';

/**
 * A node's record. Invariants (checked on restore by `recordProblem`):
 * - `incarnation <= seen`; `rejoin` is 0 or equals `seen` and exceeds `incarnation`;
 * - `member` has `incarnation === seen >= 1`; only `needs-fencing` has a `rejoin`;
 * - `fencePending` is true for `needs-fencing`, false for `out` and `member`, and either for
 *   `quarantined` (a quarantined node that was a member must still be fenced).
 * `incarnation` is the incarnation the status is about (for `out`, the last one known, or 0).
 */
export interface NodeRecord {
  readonly status: NodeStatus;
  readonly incarnation: number;
  readonly seen: number;
  readonly rejoin: number;
  readonly fencePending: boolean;
}

/** A configured node nobody has heard of yet. */
export const FRESH_RECORD: NodeRecord = { status: 'out', incarnation: 0, seen: 0, rejoin: 0, fencePending: false };

/** What a per-node command did. */
export type MembershipOutcome =
  /** It changed the node's status (and maybe the view). */
  | 'applied'
  /** It repeated what is already recorded. */
  | 'duplicate'
  /** It named an older incarnation than the newest known: ignored. */
  | 'stale'
  /** A join recorded, to be admitted once the previous incarnation is fenced. */
  | 'waiting-for-fence'
  /** Nothing to do (e.g. a leave of a node that is not a member). */
  | 'no-change';

/** The result of one rule: the new record, the outcome, and the event it calls for, if any. */
export interface Transition {
  readonly record: NodeRecord;
  readonly outcome: MembershipOutcome;
  /** The member set changed: a view event with this change. */
  readonly view?: { readonly kind: ViewChangeKind; readonly incarnation: number; readonly cause: string };
  /** The status changed without changing the member set: a node event. */
  readonly note?: { readonly incarnation: number; readonly cause: string };
}

/**
 * A per-node command: one that may change a node's membership record (everything but `configure`,
 * the group commands and the fence ledger's own `fence-attempt` and `unfence`).
 */
export type NodeCommand = Exclude<
  MembershipCommand,
  { type: 'configure' } | { type: 'fence-attempt' } | { type: 'unfence' } | GroupCommand | RecoveryCommand
>;

function same(rec: NodeRecord, outcome: MembershipOutcome): Transition {
  return { record: rec, outcome };
}

function withSeen(rec: NodeRecord, inc: number): NodeRecord {
  return inc > rec.seen ? { ...rec, seen: inc, rejoin: 0 } : rec;
}

function needsFencing(incarnation: number, seen: number, rejoin = 0): NodeRecord {
  return { status: 'needs-fencing', incarnation, seen, rejoin, fencePending: true };
}

/** Human text for a fail reason (stored in the view event). */
export function describeFailReason(reason: FailReason): string {
  switch (reason.kind) {
    case 'detector': {
      const by = reason.corroborators.length === 0 ? 'no other node' : `node(s) ${reason.corroborators.join(',')}`;
      return `failure detector: silent for ${reason.silentMs} ms (threshold ${reason.timeoutMs} ms; corroborated by ${by}; leader lag ${reason.lagMs} ms)`;
    }
    case 'operator':
      return `declared failed by an operator${reason.note === '' ? '' : `: ${reason.note}`}`;
    case 'process-gone':
      return `process gone: its host closed its connections and refused a reconnect (last heard ${reason.silentMs} ms before)`;
    default:
      return assertNever(reason, 'fail reason');
  }
}

/** Human text for a quarantine reason. */
export function describeQuarantineReason(reason: QuarantineReason): string {
  switch (reason.kind) {
    case 'partial-connectivity':
      return `gray failure: the leader has not heard it for ${reason.silentMs} ms while node(s) ${reason.heardBy.join(',') || 'none'} still do`;
    case 'flapping':
      return `flapping: declared failed ${reason.failures} times within ${reason.windowMs} ms`;
    case 'operator':
      return `quarantined by an operator${reason.note === '' ? '' : `: ${reason.note}`}`;
    default:
      return assertNever(reason, 'quarantine reason');
  }
}

function join(rec: NodeRecord, inc: number): Transition | ApplyError {
  if (inc < rec.seen) return same(rec, 'stale');
  if (inc === rec.seen) {
    if (rec.status === 'member') return same(rec, 'duplicate');
    if (rec.status === 'needs-fencing' && rec.rejoin === inc) return same(rec, 'waiting-for-fence');
    return same(rec, 'stale'); // this incarnation already ended; a restart brings a new one
  }
  switch (rec.status) {
    case 'out':
      return {
        record: { status: 'member', incarnation: inc, seen: inc, rejoin: 0, fencePending: false },
        outcome: 'applied',
        view: { kind: 'joined', incarnation: inc, cause: `incarnation ${inc} joined` },
      };
    case 'member':
      return {
        record: needsFencing(rec.incarnation, inc, inc),
        outcome: 'waiting-for-fence',
        view: {
          kind: 'replaced',
          incarnation: rec.incarnation,
          cause: `incarnation ${inc} joined while incarnation ${rec.incarnation} was a member: incarnation ${rec.incarnation} crashed and needs fencing; incarnation ${inc} is admitted once it is fenced`,
        },
      };
    case 'needs-fencing':
      return {
        record: needsFencing(rec.incarnation, inc, inc),
        outcome: 'waiting-for-fence',
        note: { incarnation: inc, cause: `incarnation ${inc} waits for incarnation ${rec.incarnation} to be fenced` },
      };
    case 'quarantined':
      return {
        code: 'NODE_QUARANTINED',
        message: `incarnation ${inc} may not join: the node is quarantined; fix its connectivity, then release it (cohort release NODE)`,
      };
    default:
      return assertNever(rec.status, 'node status');
  }
}

/** A leave or fail of the current incarnation (`inc === rec.seen`). */
function endCurrent(rec: NodeRecord, inc: number, clean: boolean, cause: string): Transition {
  if (rec.status === 'member') {
    return clean
      ? { record: { ...rec, status: 'out' }, outcome: 'applied', view: { kind: 'left', incarnation: inc, cause } }
      : {
          record: needsFencing(inc, rec.seen),
          outcome: 'applied',
          view: { kind: 'failed', incarnation: inc, cause: `${cause}; needs fencing` },
        };
  }
  if (rec.status === 'needs-fencing' && rec.rejoin === inc) {
    return {
      record: { ...rec, rejoin: 0 },
      outcome: 'applied',
      note: {
        incarnation: inc,
        cause: `waiting incarnation ${inc} ${clean ? 'left' : 'failed'} before it was admitted`,
      },
    };
  }
  if (!clean && rec.status === 'needs-fencing' && rec.incarnation === inc) return same(rec, 'duplicate');
  return same(rec, 'no-change');
}

/** A leave or fail naming an incarnation newer than any known: the recorded one crashed. */
function endNewer(rec: NodeRecord, inc: number, clean: boolean): Transition {
  const record = withSeen(rec, inc);
  if (rec.status === 'member') {
    const how = clean ? 'left' : 'was declared failed';
    return {
      record: needsFencing(rec.incarnation, inc),
      outcome: 'applied',
      view: {
        kind: 'failed',
        incarnation: rec.incarnation,
        cause: `newer incarnation ${inc} ${how}, so incarnation ${rec.incarnation} ended without leaving; needs fencing`,
      },
    };
  }
  if (rec.status === 'needs-fencing' && rec.rejoin !== 0) {
    return {
      record,
      outcome: 'applied',
      note: {
        incarnation: rec.rejoin,
        cause: `waiting incarnation ${rec.rejoin} was superseded by incarnation ${inc}, which ${clean ? 'left' : 'failed'}`,
      },
    };
  }
  return same(record, 'no-change');
}

function leaveOrFail(rec: NodeRecord, inc: number, clean: boolean, cause: string): Transition {
  if (inc < rec.seen) return same(rec, 'stale');
  return inc === rec.seen ? endCurrent(rec, inc, clean, cause) : endNewer(rec, inc, clean);
}

function fenced(rec: NodeRecord, inc: number): Transition {
  switch (rec.status) {
    case 'needs-fencing': {
      if (inc < rec.incarnation) return same(rec, 'stale');
      const seen = Math.max(rec.seen, inc);
      if (rec.rejoin > inc) {
        return {
          record: { status: 'member', incarnation: rec.rejoin, seen, rejoin: 0, fencePending: false },
          outcome: 'applied',
          view: {
            kind: 'admitted',
            incarnation: rec.rejoin,
            cause: `incarnation ${rec.incarnation} was fenced (at ${inc}); waiting incarnation ${rec.rejoin} admitted`,
          },
        };
      }
      return {
        record: { status: 'out', incarnation: rec.incarnation, seen, rejoin: 0, fencePending: false },
        outcome: 'applied',
        note: { incarnation: rec.incarnation, cause: `fenced (confirmed at incarnation ${inc})` },
      };
    }
    case 'member':
      if (inc < rec.incarnation) return same(rec, 'stale');
      return {
        record: { ...rec, status: 'out', seen: Math.max(rec.seen, inc) },
        outcome: 'applied',
        view: {
          kind: 'failed',
          incarnation: rec.incarnation,
          cause: `fenced while a member (confirmed at incarnation ${inc}); nothing left to fence`,
        },
      };
    case 'quarantined':
      if (inc < rec.incarnation) return same(rec, 'stale');
      if (!rec.fencePending) return same(withSeen(rec, inc), 'duplicate');
      return {
        record: { ...withSeen(rec, inc), fencePending: false },
        outcome: 'applied',
        note: {
          incarnation: rec.incarnation,
          cause: `fence confirmed at incarnation ${inc}; still quarantined until released`,
        },
      };
    case 'out':
      return same(withSeen(rec, inc), inc <= rec.incarnation ? 'duplicate' : 'no-change');
    default:
      return assertNever(rec.status, 'node status');
  }
}

function quarantine(rec: NodeRecord, inc: Incarnation | null, reason: QuarantineReason): Transition {
  if (inc !== null && inc < rec.seen) return same(rec, 'stale');
  const base = inc === null ? rec : withSeen(rec, inc);
  const cause = describeQuarantineReason(reason);
  switch (rec.status) {
    case 'quarantined':
      return same(base, 'duplicate');
    case 'member':
      return {
        record: { ...base, status: 'quarantined', fencePending: true, rejoin: 0 },
        outcome: 'applied',
        view: { kind: 'quarantined', incarnation: rec.incarnation, cause: `${cause}; needs fencing` },
      };
    case 'needs-fencing':
      return {
        record: { ...base, status: 'quarantined', fencePending: true, rejoin: 0 },
        outcome: 'applied',
        note: { incarnation: rec.incarnation, cause: `${cause} (still needs fencing)` },
      };
    case 'out':
      return {
        record: { ...base, status: 'quarantined', fencePending: false },
        outcome: 'applied',
        note: { incarnation: rec.incarnation, cause },
      };
    default:
      return assertNever(rec.status, 'node status');
  }
}

function release(rec: NodeRecord): Transition {
  if (rec.status !== 'quarantined') return same(rec, 'no-change');
  if (rec.fencePending) {
    return {
      record: needsFencing(rec.incarnation, rec.seen),
      outcome: 'applied',
      note: {
        incarnation: rec.incarnation,
        cause: 'quarantine released; the node must still be fenced before a new incarnation is admitted',
      },
    };
  }
  return {
    record: { ...rec, status: 'out' },
    outcome: 'applied',
    note: { incarnation: rec.incarnation, cause: 'quarantine released; the node may join with a new incarnation' },
  };
}

/**
 * The rule for `command` applied to `rec`: a transition, or the deterministic refusal
 * (`NODE_QUARANTINED`). Pure: it reads nothing but its arguments.
 */
export function transition(rec: NodeRecord, command: NodeCommand): Transition | ApplyError {
  switch (command.type) {
    case 'join':
      return join(rec, command.incarnation);
    case 'leave':
      return leaveOrFail(rec, command.incarnation, true, `incarnation ${command.incarnation} left cleanly`);
    case 'fail':
      return leaveOrFail(rec, command.incarnation, false, describeFailReason(command.reason));
    case 'fenced':
      return fenced(rec, command.incarnation);
    case 'quarantine':
      return quarantine(rec, command.incarnation, command.reason);
    case 'release':
      return release(rec);
    default:
      return assertNever(command, 'node command');
  }
}

/** Why a decoded record breaks the invariants above, or null when it holds them. */
export function recordProblem(rec: NodeRecord): string | null {
  if (rec.incarnation > rec.seen) return `incarnation ${rec.incarnation} is above the newest seen ${rec.seen}`;
  if (rec.rejoin !== 0 && (rec.status !== 'needs-fencing' || rec.rejoin !== rec.seen || rec.rejoin <= rec.incarnation))
    return `rejoin ${rec.rejoin} is impossible in status ${rec.status}`;
  switch (rec.status) {
    case 'member':
      return rec.incarnation >= 1 && rec.incarnation === rec.seen && !rec.fencePending
        ? null
        : 'a member must hold the newest incarnation and no pending fence';
    case 'needs-fencing':
      return rec.incarnation >= 1 && rec.fencePending
        ? null
        : 'needs-fencing must name an incarnation and have a pending fence';
    case 'out':
      return rec.fencePending ? 'an out node has no pending fence' : null;
    case 'quarantined':
      return rec.fencePending && rec.incarnation < 1 ? 'a pending fence needs an incarnation' : null;
    default:
      return assertNever(rec.status, 'node status');
  }
}
