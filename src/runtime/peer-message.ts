/**
 * The messages cohort nodes exchange on the peer transport: the Raft messages of the cluster log
 * plus the few messages of the node program (`cluster-node.ts`) itself.
 *
 * - `Forward`: a follower hands a proposal (one `StateMachineMux` command, encoded) to the node
 *   it believes leads, because the Raft core refuses proposals on followers.
 * - `ForwardApplied`: the leader applied the forwarded command at (`index`, `term`). The
 *   forwarder takes the result from its *own* state machine when it applies that index, so no
 *   output crosses the wire and the caller's node reflects the write when the call returns.
 * - `ForwardRefused`: the leader did not propose it (a definite refusal such as `NOT_LEADER` or
 *   `BUSY`) or cannot tell what happened (`TIMEOUT`, `PROPOSAL_DROPPED`, ...).
 * - `Ping`: sent to every peer once per heartbeat, carrying the sender's reachability row, so
 *   every node learns who hears whom and the leader's failure detector can corroborate.
 *
 * Raft messages keep their own `type` tags (`Msg...`); the node program's tags never start with
 * `Msg`, so one flat union needs no wrapper and a Raft message costs no extra bytes.
 */
import { assertNever } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import { validateRaftMessage, type RaftMessage } from '../log/index.js';
import type { ReachabilityEntry, ReachabilityRow } from '../membership/index.js';
import { msgpackCodec } from '../transport/message-codec.js';
import { FieldReader, invalidField, nodeIdValue, unionValue } from '../transport/message-fields.js';
import type { Codec } from '../transport/transport.js';
import type { RaftNodeErrorCode } from './raft-node.js';
import { CLUSTER_NODES_MAX, FRAME_PAYLOAD_BYTES_MAX } from '../constants.js';

/** Largest forward id (ids are a per-node counter; a safe integer never wraps in practice). */
export const FORWARD_ID_MAX: number = Number.MAX_SAFE_INTEGER;
/** Longest refusal message carried in `ForwardRefused`, in UTF-16 code units. */
export const FORWARD_MESSAGE_CHARS_MAX = 512;
/** Largest encoded command a `Forward` carries (the frame payload limit less room for the envelope). */
export const FORWARD_COMMAND_BYTES_MAX: number = FRAME_PAYLOAD_BYTES_MAX - 1024;
/** Largest silence a reachability row reports, in ms (about 49 days; longer is clamped by the sender). */
export const ROW_SILENCE_MS_MAX = 0xffff_ffff;

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
}

/** A heartbeat to every peer with the sender's reachability row. */
export interface PingMessage {
  readonly type: 'Ping';
  readonly row: ReachabilityRow;
  /** The sender's monotonic clock when sent, whole ms (lets the leader date a late row back). */
  readonly sentMs?: number;
  /** The sender's incarnation (a late copy from an older one is ignored). */
  readonly inc?: number;
}

/** Every message of the node program. */
export type NodeMessage = ForwardMessage | ForwardAppliedMessage | ForwardRefusedMessage | PingMessage;

/** Every message on the peer transport. */
export type PeerMessage = RaftMessage | NodeMessage;

/** True for the Raft part of the union (decided by the tag alone). */
export function isRaftMessage(m: PeerMessage): m is RaftMessage {
  return m.type.startsWith('Msg');
}

function readRowEntry(value: unknown, path: string): ReachabilityEntry {
  const r = FieldReader.of(value, path);
  const node = r.nodeId('node');
  const silentMs = r.has('silentMs') ? r.number('silentMs', 0, ROW_SILENCE_MS_MAX) : null;
  return { node, silentMs };
}

function readRow(r: FieldReader): PingMessage {
  const row = r.array('row', CLUSTER_NODES_MAX, readRowEntry);
  for (let i = 1; i < row.length; i++) {
    const prev = row[i - 1];
    const cur = row[i];
    if (prev !== undefined && cur !== undefined && prev.node >= cur.node)
      throw invalidField(`${r.path}.row[${i}].node`, 'node ids strictly ascending', cur.node);
  }
  const sentMs = r.has('sentMs') ? r.number('sentMs', 0, Number.MAX_SAFE_INTEGER) : undefined;
  const inc = r.has('inc') ? r.int('inc', 1, Number.MAX_SAFE_INTEGER) : undefined;
  return { type: 'Ping', row, ...(sentMs === undefined ? {} : { sentMs }), ...(inc === undefined ? {} : { inc }) };
}

function readLeader(r: FieldReader): NodeId | null {
  const v = r.raw('leader');
  return v === null || v === undefined ? null : nodeIdValue(v, `${r.path}.leader`);
}

/**
 * Validates a decoded value as a `PeerMessage`: Raft messages with `validateRaftMessage`, the
 * others field by field. Throws `DecodeError` only.
 */
export function validatePeerMessage(value: unknown): PeerMessage {
  const tag = FieldReader.of(value, 'PeerMessage').raw('type');
  if (typeof tag === 'string' && tag.startsWith('Msg')) return validateRaftMessage(value);
  return unionValue<NodeMessage>(value, 'PeerMessage', 'type', {
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
    ForwardRefused: (r) => ({
      type: 'ForwardRefused',
      id: r.int('id', 1, FORWARD_ID_MAX),
      code: r.enum('code', FORWARD_REFUSAL_CODES),
      message: r.string('message', FORWARD_MESSAGE_CHARS_MAX),
      leader: readLeader(r),
    }),
    Ping: readRow,
  });
}

/** A fresh codec for peer messages (each codec owns its msgpackr state). */
export function peerCodec(): Codec<PeerMessage> {
  return msgpackCodec(validatePeerMessage);
}

/** A short description of a node message for traces. */
export function describeNodeMessage(m: NodeMessage): string {
  switch (m.type) {
    case 'Forward':
      return `Forward #${m.id} (${m.command.length} bytes)`;
    case 'ForwardApplied':
      return `ForwardApplied #${m.id} at ${m.index}@${m.term}`;
    case 'ForwardRefused':
      return `ForwardRefused #${m.id} ${m.code}`;
    case 'Ping':
      return `Ping (${m.row.length} entries)`;
    default:
      return assertNever(m, 'node message');
  }
}
