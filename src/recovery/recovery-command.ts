/**
 * The commands of the recovery coordinator, their structural validation and their binary
 * encoding (docs/recovery.md). They travel inside the membership state machine's command codec
 * (two new tags, in `RECOVERY_COMMAND_TYPES` order), because a round's state changes at the same
 * log positions as the membership and group changes that open and restart it.
 *
 * - `recovery-report`: member `node` at `incarnation` reports on generation `generation` of
 *   `group`'s round: `stopped` (it stopped its part of the group), `started` (it started with the
 *   round's members), or `error` (it could not; it is removed from the group).
 * - `recovery-evict`: the leader's decision that the member did not report within
 *   `RECOVERY_MEMBER_TIMEOUT_MS`; `reason` is for the event and the operator.
 *
 * Structure only (names, ids, sizes): meaning (is that the round's generation, a member of it)
 * is decided at apply time by `RecoveryTable`.
 */
import { assertNever } from '../lib/assert.js';
import type { ByteReader, ByteWriter } from '../lib/bytes.js';
import { DecodeError } from '../lib/errors.js';
import { NODE_ID_MAX, type Incarnation, type NodeId } from '../lib/ids.js';
import type { ApplyError } from '../log/state-machine.js';
import { GROUP_NAME_BYTES_MAX, RECOVERY_REASON_BYTES_MAX } from '../constants.js';
import { nameProblem, readName, writeName } from '../groups/group-command.js';

/** What a member reports on a round. */
export type RecoveryReport = 'stopped' | 'started' | 'error';

/** All reports, in encoding order. */
export const RECOVERY_REPORTS: readonly RecoveryReport[] = ['stopped', 'started', 'error'];

/** A recovery command. `generation` names the round (see `RecoveryTable`). */
export type RecoveryCommand =
  | {
      readonly type: 'recovery-report';
      readonly group: string;
      readonly generation: number;
      readonly node: NodeId;
      readonly incarnation: Incarnation;
      readonly what: RecoveryReport;
    }
  | {
      readonly type: 'recovery-evict';
      readonly group: string;
      readonly generation: number;
      readonly node: NodeId;
      readonly incarnation: Incarnation;
      readonly reason: string;
    };

/** The recovery command types. */
export type RecoveryCommandType = RecoveryCommand['type'];

/** The command types, in tag order, for membership's dispatch. */
export const RECOVERY_COMMAND_TYPES: readonly RecoveryCommandType[] = ['recovery-report', 'recovery-evict'];

const textEncoder = new TextEncoder();

function invalid(message: string): ApplyError {
  return { code: 'MEMBERSHIP_INVALID_COMMAND', message };
}

/** Checks a recovery command's structure; null when valid. */
export function validateRecoveryCommand(c: RecoveryCommand): ApplyError | null {
  const name = nameProblem(c.group, 'group name', GROUP_NAME_BYTES_MAX);
  if (name !== null) return invalid(name);
  if (!Number.isInteger(c.node) || c.node < 1 || c.node > NODE_ID_MAX)
    return invalid(`${c.node} is not a node id (1 to ${NODE_ID_MAX})`);
  if (!Number.isSafeInteger(c.incarnation) || c.incarnation < 1)
    return invalid(`incarnation ${c.incarnation} must be a positive safe integer`);
  if (!Number.isSafeInteger(c.generation) || c.generation < 1)
    return invalid(`recovery generation ${c.generation} must be a positive safe integer`);
  switch (c.type) {
    case 'recovery-report':
      return RECOVERY_REPORTS.includes(c.what)
        ? null
        : invalid(`recovery report ${c.what as string} is not one of ${RECOVERY_REPORTS.join(', ')}`);
    case 'recovery-evict': {
      const bytes = textEncoder.encode(c.reason).length;
      return bytes <= RECOVERY_REASON_BYTES_MAX
        ? null
        : invalid(`an eviction reason of ${bytes} bytes exceeds ${RECOVERY_REASON_BYTES_MAX}; shorten it`);
    }
    default:
      return assertNever(c, 'recovery command');
  }
}

/** Writes the body of a recovery command (after membership's tag). */
export function writeRecoveryCommand(w: ByteWriter, c: RecoveryCommand): void {
  writeName(w, c.group);
  w.u64(c.generation).u16(c.node).u64(c.incarnation);
  switch (c.type) {
    case 'recovery-report':
      w.u8(RECOVERY_REPORTS.indexOf(c.what));
      return;
    case 'recovery-evict':
      w.string(c.reason);
      return;
    default:
      assertNever(c, 'recovery command');
  }
}

/** Reads the body of a recovery command of `type`; raises only `DecodeError` (validate after). */
export function readRecoveryCommand(r: ByteReader, type: RecoveryCommandType): RecoveryCommand {
  const group = readName(r, GROUP_NAME_BYTES_MAX, 'group name');
  const generation = r.u64('generation');
  const node = r.u16('node') as NodeId;
  const incarnation = r.u64('incarnation') as Incarnation;
  switch (type) {
    case 'recovery-report': {
      const i = r.u8('recovery report');
      const what = RECOVERY_REPORTS[i];
      if (what === undefined) throw new DecodeError('DECODE_INVALID', `recovery report ${i} is unknown`);
      return { type, group, generation, node, incarnation, what };
    }
    case 'recovery-evict':
      return {
        type,
        group,
        generation,
        node,
        incarnation,
        reason: r.string(RECOVERY_REASON_BYTES_MAX, 'eviction reason'),
      };
    default:
      return assertNever(type, 'recovery command type');
  }
}
