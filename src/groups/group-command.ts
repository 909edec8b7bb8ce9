/**
 * The commands of service groups, their structural validation and their binary encoding. They
 * travel inside the membership state machine's command codec (tags 8 to 11, see
 * `src/membership/membership-command.ts`), because group views must change at the same log
 * position as the membership view that removes a member (docs/groups.md).
 *
 * - `group-join`: incarnation `incarnation` of `node` joins `group` with `level` (creating the
 *   group). Only a member of the current membership view may join.
 * - `group-leave`: it leaves `group` (the group disappears with its last member).
 * - `group-send`: a message from a member, sent in group view `groupViewId`. It is delivered, in log
 *   order, to exactly the members of that view, or refused `view-changed` when the group's view
 *   is no longer `groupViewId` (so a message is never delivered in a later view, nor to a newcomer).
 * - `barrier`: the member reached barrier `name` in group view `groupViewId`. The barrier completes
 *   when every member of that view has reached it, and fails for everyone when the view changes
 *   first.
 *
 * Structure only (names, sizes, ids): meaning (membership, views) is decided at apply time.
 */
import { assertNever } from '../lib/assert.js';
import type { ByteReader, ByteWriter } from '../lib/bytes.js';
import { DecodeError } from '../lib/errors.js';
import { NODE_ID_MAX, type Incarnation, type NodeId } from '../lib/ids.js';
import type { ApplyError } from '../log/state-machine.js';
import {
  BARRIER_NAME_BYTES_MAX,
  GROUP_LEVEL_MAX,
  GROUP_MESSAGE_BYTES_MAX,
  GROUP_NAME_BYTES_MAX,
} from '../constants.js';

/** A group command. `groupViewId` is a group view id (see `GroupTable`), not a membership view id. */
export type GroupCommand =
  | {
      readonly type: 'group-join';
      readonly group: string;
      readonly node: NodeId;
      readonly incarnation: Incarnation;
      readonly level: number;
    }
  | { readonly type: 'group-leave'; readonly group: string; readonly node: NodeId; readonly incarnation: Incarnation }
  | {
      readonly type: 'group-send';
      readonly group: string;
      readonly node: NodeId;
      readonly incarnation: Incarnation;
      readonly groupViewId: number;
      readonly payload: Uint8Array;
    }
  | {
      readonly type: 'barrier';
      readonly group: string;
      readonly name: string;
      readonly node: NodeId;
      readonly incarnation: Incarnation;
      readonly groupViewId: number;
    };

/** The group command types. */
export type GroupCommandType = GroupCommand['type'];

/** The command types, for membership's dispatch. */
export const GROUP_COMMAND_TYPES: readonly GroupCommandType[] = ['group-join', 'group-leave', 'group-send', 'barrier'];

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/-]*$/;
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function invalid(message: string): ApplyError {
  return { code: 'MEMBERSHIP_INVALID_COMMAND', message };
}

/**
 * Why `name` is not a valid group or barrier name, or null. Names are 1..`maxBytes` bytes of
 * ASCII letters, digits and `. _ : / -`, starting with a letter or digit: safe in logs, file
 * names and command lines.
 */
export function nameProblem(name: string, what: string, maxBytes: number): string | null {
  if (name.length === 0) return `${what} is empty; give a name of 1 to ${maxBytes} characters`;
  if (name.length > maxBytes)
    return `${what} "${name.slice(0, 16)}..." is ${name.length} characters; at most ${maxBytes}`;
  if (!NAME_PATTERN.test(name))
    return `${what} "${name}" may hold only letters, digits and . _ : / - and must start with a letter or digit`;
  return null;
}

function checkMember(node: number, inc: number): ApplyError | null {
  if (!Number.isInteger(node) || node < 1 || node > NODE_ID_MAX)
    return invalid(`${node} is not a node id (1 to ${NODE_ID_MAX})`);
  if (!Number.isSafeInteger(inc) || inc < 1) return invalid(`incarnation ${inc} must be a positive safe integer`);
  return null;
}

function checkViewId(v: number): ApplyError | null {
  return Number.isSafeInteger(v) && v >= 1 ? null : invalid(`group view id ${v} must be a positive safe integer`);
}

/** Checks a group command's structure; null when valid. */
export function validateGroupCommand(c: GroupCommand): ApplyError | null {
  const name = nameProblem(c.group, 'group name', GROUP_NAME_BYTES_MAX);
  if (name !== null) return invalid(name);
  const member = checkMember(c.node, c.incarnation);
  if (member !== null) return member;
  switch (c.type) {
    case 'group-join':
      return Number.isInteger(c.level) && c.level >= 0 && c.level <= GROUP_LEVEL_MAX
        ? null
        : invalid(`group level ${c.level} must be an integer from 0 to ${GROUP_LEVEL_MAX}`);
    case 'group-leave':
      return null;
    case 'group-send':
      if (c.payload.length > GROUP_MESSAGE_BYTES_MAX)
        return invalid(
          `a group message of ${c.payload.length} bytes exceeds ${GROUP_MESSAGE_BYTES_MAX}; split it or store large data elsewhere`,
        );
      return checkViewId(c.groupViewId);
    case 'barrier': {
      const bad = nameProblem(c.name, 'barrier name', BARRIER_NAME_BYTES_MAX);
      return bad !== null ? invalid(bad) : checkViewId(c.groupViewId);
    }
    default:
      return assertNever(c, 'group command');
  }
}

/** Writes an ASCII name (validated) as u8 length + bytes. */
export function writeName(w: ByteWriter, name: string): void {
  const b = textEncoder.encode(name);
  w.u8(b.length).bytes(b);
}

/** Reads a name written by `writeName`; checks it like `nameProblem`. */
export function readName(r: ByteReader, maxBytes: number, what: string): string {
  const n = r.u8(`${what} length`);
  if (n > maxBytes) throw new DecodeError('DECODE_TOO_LARGE', `${what} of ${n} bytes; at most ${maxBytes}`);
  let name: string;
  try {
    name = textDecoder.decode(r.bytes(n, what));
  } catch (cause) {
    if (cause instanceof DecodeError) throw cause;
    throw new DecodeError('DECODE_UTF8', `${what} is not valid UTF-8`, { cause });
  }
  const bad = nameProblem(name, what, maxBytes);
  if (bad !== null) throw new DecodeError('DECODE_INVALID', bad);
  return name;
}

/** Writes the body of a group command (after membership's tag). */
export function writeGroupCommand(w: ByteWriter, c: GroupCommand): void {
  writeName(w, c.group);
  w.u16(c.node).u64(c.incarnation);
  switch (c.type) {
    case 'group-join':
      w.u8(c.level);
      return;
    case 'group-leave':
      return;
    case 'group-send':
      w.u64(c.groupViewId).lenBytes(c.payload);
      return;
    case 'barrier':
      w.u64(c.groupViewId);
      writeName(w, c.name);
      return;
    default:
      assertNever(c, 'group command');
  }
}

/** Reads the body of a group command of `type` (structure is validated by the caller). */
export function readGroupCommand(r: ByteReader, type: GroupCommandType): GroupCommand {
  const group = readName(r, GROUP_NAME_BYTES_MAX, 'group name');
  const node = r.u16('node') as NodeId;
  const incarnation = r.u64('incarnation') as Incarnation;
  switch (type) {
    case 'group-join':
      return { type, group, node, incarnation, level: r.u8('level') };
    case 'group-leave':
      return { type, group, node, incarnation };
    case 'group-send': {
      const groupViewId = r.u64('group view id');
      return {
        type,
        group,
        node,
        incarnation,
        groupViewId,
        payload: r.lenBytes(GROUP_MESSAGE_BYTES_MAX, 'group message').slice(),
      };
    }
    case 'barrier': {
      const groupViewId = r.u64('group view id');
      return { type, group, node, incarnation, groupViewId, name: readName(r, BARRIER_NAME_BYTES_MAX, 'barrier name') };
    }
    default:
      return assertNever(type, 'group command type');
  }
}
