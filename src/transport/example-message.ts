/**
 * A small example message protocol: the pattern later protocols (Raft, DLM, groups) follow,
 * and the message type the transport's tests, fuzzers and benchmark use.
 *
 * Pattern: a discriminated union on `type`, one validator per case built from the field
 * readers, the union validator dispatching on the tag, and a codec made from the validator.
 */
import { assertNever } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import { FieldReader, unionValue, intValue } from './message-fields.js';
import { msgpackCodec } from './message-codec.js';
import type { Codec } from './transport.js';

/** Largest `seq` (a safe non-negative integer). */
export const EXAMPLE_SEQ_MAX: number = Number.MAX_SAFE_INTEGER;
/** Largest ping payload, in bytes. */
export const EXAMPLE_PAYLOAD_BYTES_MAX: number = 1024 * 1024;
/** Largest gossip note, in UTF-16 code units. */
export const EXAMPLE_NOTE_CHARS_MAX = 256;
/** Most node ids one gossip message may list. */
export const EXAMPLE_NODES_MAX = 64;
/** Allowed gossip moods (an enum field for the tests). */
export const EXAMPLE_MOODS = ['calm', 'busy', 'leaving'] as const;

/** A ping, answered by a pong carrying the same `seq` and payload. */
export interface ExamplePing {
  readonly type: 'ping';
  readonly seq: number;
  readonly payload: Uint8Array;
}

/** The answer to a ping. */
export interface ExamplePong {
  readonly type: 'pong';
  readonly seq: number;
  readonly payload: Uint8Array;
}

/** A message with strings, enums and arrays, to exercise every kind of field. */
export interface ExampleGossip {
  readonly type: 'gossip';
  readonly from: NodeId;
  readonly mood: (typeof EXAMPLE_MOODS)[number];
  readonly note: string;
  readonly alive: readonly number[];
  readonly urgent: boolean;
}

/** Every example message. */
export type ExampleMessage = ExamplePing | ExamplePong | ExampleGossip;

function readPingPong<T extends 'ping' | 'pong'>(
  r: FieldReader,
  type: T,
): { type: T; seq: number; payload: Uint8Array } {
  return { type, seq: r.int('seq', 0, EXAMPLE_SEQ_MAX), payload: r.bytes('payload', EXAMPLE_PAYLOAD_BYTES_MAX) };
}

function readGossip(r: FieldReader): ExampleGossip {
  return {
    type: 'gossip',
    from: r.nodeId('from'),
    mood: r.enum('mood', EXAMPLE_MOODS),
    note: r.string('note', EXAMPLE_NOTE_CHARS_MAX),
    alive: r.array('alive', EXAMPLE_NODES_MAX, (v, path) => intValue(v, path, 1, 65_535)),
    urgent: r.bool('urgent'),
  };
}

/** Validates a decoded value as an `ExampleMessage`; throws `DecodeError` (`MESSAGE_INVALID`). */
export function validateExampleMessage(value: unknown): ExampleMessage {
  return unionValue<ExampleMessage>(value, 'ExampleMessage', 'type', {
    ping: (r) => readPingPong(r, 'ping'),
    pong: (r) => readPingPong(r, 'pong'),
    gossip: readGossip,
  });
}

/** A fresh codec for `ExampleMessage` (each codec owns its msgpackr state). */
export function exampleCodec(): Codec<ExampleMessage> {
  return msgpackCodec(validateExampleMessage);
}

/** A one-line description, showing the exhaustive `switch` every handler should use. */
export function describeExampleMessage(m: ExampleMessage): string {
  switch (m.type) {
    case 'ping':
    case 'pong':
      return `${m.type} #${m.seq} (${m.payload.length} bytes)`;
    case 'gossip':
      return `gossip from ${m.from} (${m.mood}, ${m.alive.length} alive)`;
    default:
      return assertNever(m, 'example message');
  }
}
