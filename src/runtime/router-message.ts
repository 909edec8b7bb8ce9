/**
 * The request router's peer messages (channel `CHANNEL_ROUTER`):
 *
 * - `Forward`: a follower hands a proposal (one `StateMachineMux` command, encoded) to the node
 *   it believes leads, because the Raft core refuses proposals on followers.
 * - `ForwardApplied`: the leader applied the forwarded command at (`index`, `term`). The
 *   forwarder takes the result from its *own* state machine when it applies that index, so no
 *   output crosses the wire and the caller's node reflects the write when the call returns.
 * - `ForwardRefused`: the leader did not propose it (a definite refusal such as `NOT_LEADER` or
 *   `BUSY`) or cannot tell what happened (`TIMEOUT`, `PROPOSAL_DROPPED`, ...).
 */
import { assertNever } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import { msgpackCodec } from '../transport/message-codec.js';
import { FieldReader, nodeIdValue, unionValue } from '../transport/message-fields.js';
import type { Codec } from '../transport/transport.js';
import type { RaftNodeErrorCode } from './raft-node.js';
import { FRAME_PAYLOAD_BYTES_MAX } from '../constants.js';

/** Largest forward id (ids are a per-node counter; a safe integer never wraps in practice). */
export const FORWARD_ID_MAX: number = Number.MAX_SAFE_INTEGER;
/** Longest refusal message carried in `ForwardRefused`, in UTF-16 code units. */
export const FORWARD_MESSAGE_CHARS_MAX = 512;
/** Largest encoded command a `Forward` carries (the frame payload limit less room for the envelope). */
export const FORWARD_COMMAND_BYTES_MAX: number = FRAME_PAYLOAD_BYTES_MAX - 1024;

/** Codes a `ForwardRefused` carries: the `RaftNodeError` codes of the leader's attempt. */
export const FORWARD_REFUSAL_CODES = [
  'NOT_LEADER',
  'TIMEOUT',
  'PROPOSAL_DROPPED',
  'OUTCOME_UNKNOWN',
  'BUSY',
  'STOPPED',
  'REFUSED',
] as const satisfies readonly RaftNodeErrorCode[];
/** One of `FORWARD_REFUSAL_CODES`. */
export type ForwardRefusalCode = (typeof FORWARD_REFUSAL_CODES)[number];

/** A proposal handed to the leader. `id` is unique per sender (and incarnation). */
export interface ForwardMessage {
  readonly type: 'Forward';
  readonly id: number;
  /** One `StateMachineMux` command, as its codec encodes it. */
  readonly command: Uint8Array;
}

/** The leader applied forward `id` at (`index`, `term`). */
export interface ForwardAppliedMessage {
  readonly type: 'ForwardApplied';
  readonly id: number;
  readonly index: number;
  readonly term: number;
}

/** The leader refused forward `id`, or lost track of it; `leader` is its hint, if any. */
export interface ForwardRefusedMessage {
  readonly type: 'ForwardRefused';
  readonly id: number;
  readonly code: ForwardRefusalCode;
  readonly message: string;
  readonly leader: NodeId | null;
  /** With `REFUSED`: the state machine's refusal code (e.g. `SETTINGS_MISMATCH`), when it has one. */
  readonly refusal?: string;
}

/** Every message of the request router. */
export type RouterMessage = ForwardMessage | ForwardAppliedMessage | ForwardRefusedMessage;

/** Longest state-machine refusal code carried. */
const REFUSAL_CODE_CHARS_MAX = 64;

function readLeader(r: FieldReader): NodeId | null {
  const v = r.raw('leader');
  return v === null || v === undefined ? null : nodeIdValue(v, `${r.path}.leader`);
}

/** Validates a decoded value as a `RouterMessage`. Throws `DecodeError` only. */
export function validateRouterMessage(value: unknown): RouterMessage {
  return unionValue<RouterMessage>(value, 'RouterMessage', 'type', {
    Forward: (r) => ({
      type: 'Forward',
      id: r.int('id', 1, FORWARD_ID_MAX),
      command: r.bytes('command', FORWARD_COMMAND_BYTES_MAX),
    }),
    ForwardApplied: (r) => ({
      type: 'ForwardApplied',
      id: r.int('id', 1, FORWARD_ID_MAX),
      index: r.int('index', 1, Number.MAX_SAFE_INTEGER),
      term: r.int('term', 1, Number.MAX_SAFE_INTEGER),
    }),
    ForwardRefused: (r) => {
      const refusal = r.has('refusal') ? r.string('refusal', REFUSAL_CODE_CHARS_MAX) : undefined;
      return {
        type: 'ForwardRefused',
        id: r.int('id', 1, FORWARD_ID_MAX),
        code: r.enum('code', FORWARD_REFUSAL_CODES),
        message: r.string('message', FORWARD_MESSAGE_CHARS_MAX),
        leader: readLeader(r),
        ...(refusal === undefined ? {} : { refusal }),
      };
    },
  });
}

/** The router channel's codec. */
export function routerCodec(): Codec<RouterMessage> {
  return msgpackCodec(validateRouterMessage);
}

/** A short description of a router message for traces. */
export function describeRouterMessage(m: RouterMessage): string {
  switch (m.type) {
    case 'Forward':
      return `Forward #${m.id} (${m.command.length} bytes)`;
    case 'ForwardApplied':
      return `ForwardApplied #${m.id} at ${m.index}@${m.term}`;
    case 'ForwardRefused':
      return `ForwardRefused #${m.id} ${m.code}`;
    default:
      return assertNever(m, 'router message');
  }
}
