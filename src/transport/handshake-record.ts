/**
 * The peer handshake's records and transcript (pure: encoding only; the cryptography lives in
 * `src/platform/peer-handshake.ts`).
 *
 * Every connection starts with three records, each sent as one plain frame (see
 * `frame-decoder.ts`), before any protocol byte is exchanged:
 *
 *     client (dialer)                                server (listener)
 *     hello     {mode, cluster, client id, id it dialed, lane, incarnation, instance, client nonce}  ->
 *            <-  challenge {mode, cluster, server id, server nonce, server proof}
 *     response  {client proof}                                          ->
 *
 * Either side may instead send a `refusal` with a reason code and close. Refusals are not
 * authenticated (they are sent when authentication failed or cannot start) and serve only to
 * make the other side's log say why; they never change any state beyond closing.
 *
 * The one authenticated "no" is `duplicate`: after verifying the client's proof, the server may
 * answer that another live process already runs the client's node id (see `TcpTransport`'s
 * duplicate rule). It carries the running process's incarnation and the host its connection
 * comes from, and an HMAC over the transcript, so only a holder of the cluster key can make a
 * node believe it is a duplicate (a newcomer that hears it stops).
 *
 * `instance` is 8 random bytes drawn once per process (per transport): two processes that claim
 * one node id differ in it even when their incarnations are equal. `incarnation` is the one the
 * node bumped durably at this start (0 when the transport runs without a node, as in tests).
 *
 * A connection carries one lane (`Lane` in `transport.ts`): the dialer names it in its hello and
 * both sides bind it into the transcript, so an attacker cannot move a connection to another
 * lane. The lane is sent as a raw code that the server checks (not the decoder): a peer that
 * names a lane we do not know (a newer version) is refused with `unknown-lane`, and both logs
 * say why.
 *
 * Record layout (little-endian): u32 magic "CoH1", u8 kind, then the kind's fields. Strings are
 * u32-length-prefixed UTF-8 bounded by `CLUSTER_NAME_BYTES_MAX`; nonces and proofs are 32 bytes.
 */
import { assert, assertNever } from '../lib/assert.js';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { DecodeError } from '../lib/errors.js';
import { NODE_ID_MAX, nodeId, type NodeId } from '../lib/ids.js';
import type { Lane } from './transport.js';

/**
 * First four bytes of every handshake record ("CoH2" little-endian): protocol and version.
 * Version 2 added the incarnation and instance to the hello and the `duplicate` record; a
 * version-1 peer reads "bad magic" and says which versions to check.
 */
export const HANDSHAKE_MAGIC = 0x32486f43;
/** Bytes in a process's random instance id. */
export const HANDSHAKE_INSTANCE_BYTES = 8;
/** Largest incarnation a hello carries (u32 on the wire). */
export const HANDSHAKE_INCARNATION_MAX = 0xffff_ffff;
/** Longest host text in a `duplicate` record, in bytes (an IPv6 address fits). */
export const DUPLICATE_HOST_BYTES_MAX = 64;
/** Bytes in each side's fresh nonce. */
export const HANDSHAKE_NONCE_BYTES = 32;
/** Bytes in an HMAC-SHA256 proof. */
export const HANDSHAKE_PROOF_BYTES = 32;
/** Longest cluster name, in bytes (names are ASCII). */
export const CLUSTER_NAME_BYTES_MAX = 64;
/** Largest handshake record; the frame decoder refuses longer frames before authentication. */
export const HANDSHAKE_RECORD_BYTES_MAX = 256;

/** How data frames are protected after the handshake. Both sides must agree. */
export type FrameMode = 'aes-256-gcm' | 'insecure-plaintext';

/** Why a side refused a handshake (sent in a `refusal` record, and logged). */
export type RefusalReason =
  | 'wrong-cluster-name'
  | 'wrong-cluster-key'
  | 'unknown-node'
  | 'claims-our-id'
  | 'wrong-node-dialed'
  | 'mode-mismatch'
  | 'too-many-pending'
  | 'protocol-error'
  | 'unknown-lane'
  | 'duplicate-node-id';

const MODES: readonly FrameMode[] = ['aes-256-gcm', 'insecure-plaintext'];
const REASONS: readonly RefusalReason[] = [
  'wrong-cluster-name',
  'wrong-cluster-key',
  'unknown-node',
  'claims-our-id',
  'wrong-node-dialed',
  'mode-mismatch',
  'too-many-pending',
  'protocol-error',
  'unknown-lane',
  'duplicate-node-id',
];

/** Each lane's code in the hello record and the transcript (append only: codes are wire format). */
const LANE_CODES: Readonly<Record<Lane, number>> = { control: 0, bulk: 1 };
const LANE_BY_CODE: ReadonlyMap<number, Lane> = new Map(
  (Object.keys(LANE_CODES) as Lane[]).map((lane) => [LANE_CODES[lane], lane]),
);

/** The wire code of `lane` (what a hello's `laneCode` holds). */
export function laneCode(lane: Lane): number {
  return LANE_CODES[lane];
}

/** The lane a wire code names, or `undefined` for a code this version does not know. */
export function laneOfCode(code: number): Lane | undefined {
  return LANE_BY_CODE.get(code);
}

/** The dialer's opening record. */
export interface HelloRecord {
  readonly kind: 'hello';
  readonly mode: FrameMode;
  readonly clusterName: string;
  readonly clientId: NodeId;
  /** The node the client believes it dialed; the server refuses if that is not itself. */
  readonly dialedId: NodeId;
  /**
   * The lane this connection carries, as its wire code (`laneCode`); any u8 decodes, and the
   * server refuses a code it does not know (`laneOfCode` undefined) with `unknown-lane`.
   */
  readonly laneCode: number;
  /** The client's incarnation at this start (0 = none, a transport without a node). */
  readonly incarnation: number;
  /** The client process's random instance id (`HANDSHAKE_INSTANCE_BYTES`). */
  readonly instance: Uint8Array;
  readonly clientNonce: Uint8Array;
}

/** The listener's answer: its identity, nonce and proof of key possession. */
export interface ChallengeRecord {
  readonly kind: 'challenge';
  readonly mode: FrameMode;
  readonly clusterName: string;
  readonly serverId: NodeId;
  readonly serverNonce: Uint8Array;
  readonly serverProof: Uint8Array;
}

/** The dialer's proof of key possession. */
export interface ResponseRecord {
  readonly kind: 'response';
  readonly clientProof: Uint8Array;
}

/** A refusal with its reason; the sender closes the connection after it. */
export interface RefusalRecord {
  readonly kind: 'refusal';
  readonly reason: RefusalReason;
}

/**
 * The server's authenticated answer that another live process runs the client's node id: the
 * running process's incarnation, the host its connection comes from, and
 * `HMAC(authKey, T | label | incarnation | host)`. The sender closes after it.
 */
export interface DuplicateRecord {
  readonly kind: 'duplicate';
  readonly runningIncarnation: number;
  readonly runningHost: string;
  readonly proof: Uint8Array;
}

/** Any handshake record. */
export type HandshakeRecord = HelloRecord | ChallengeRecord | ResponseRecord | RefusalRecord | DuplicateRecord;

const KIND_CODES = { hello: 1, challenge: 2, response: 3, refusal: 4, duplicate: 5 } as const;

/** Returns a human-readable problem with `name` as a cluster name, or `undefined` if it is fine. */
export function clusterNameProblem(name: string): string | undefined {
  if (name.length === 0 || name.length > CLUSTER_NAME_BYTES_MAX)
    return `cluster name must be 1 to ${CLUSTER_NAME_BYTES_MAX} characters long`;
  if (!/^[A-Za-z0-9._-]+$/.test(name)) return 'cluster name may contain only letters, digits, ".", "_" and "-"';
  return undefined;
}

/** Encodes one handshake record (the frame body). Asserts field sizes: callers build records. */
export function encodeHandshakeRecord(record: HandshakeRecord): Uint8Array {
  const w = new ByteWriter(128, HANDSHAKE_RECORD_BYTES_MAX);
  w.u32(HANDSHAKE_MAGIC).u8(KIND_CODES[record.kind]);
  switch (record.kind) {
    case 'hello':
      w.u8(MODES.indexOf(record.mode))
        .string(record.clusterName)
        .u16(record.clientId)
        .u16(record.dialedId)
        .u8(record.laneCode)
        .u32(record.incarnation)
        .bytes(fixed(record.instance, HANDSHAKE_INSTANCE_BYTES))
        .bytes(fixed(record.clientNonce, HANDSHAKE_NONCE_BYTES));
      break;
    case 'challenge':
      w.u8(MODES.indexOf(record.mode)).string(record.clusterName).u16(record.serverId);
      w.bytes(fixed(record.serverNonce, HANDSHAKE_NONCE_BYTES)).bytes(fixed(record.serverProof, HANDSHAKE_PROOF_BYTES));
      break;
    case 'response':
      w.bytes(fixed(record.clientProof, HANDSHAKE_PROOF_BYTES));
      break;
    case 'refusal':
      w.u8(REASONS.indexOf(record.reason));
      break;
    case 'duplicate':
      assert(hostFits(record.runningHost), 'the running host fits a duplicate record');
      w.u32(record.runningIncarnation).string(record.runningHost).bytes(fixed(record.proof, HANDSHAKE_PROOF_BYTES));
      break;
    default:
      assertNever(record, 'handshake record');
  }
  return w.finish().slice();
}

/** True when `host` fits the host field of a `duplicate` record. */
export function hostFits(host: string): boolean {
  return new TextEncoder().encode(host).length <= DUPLICATE_HOST_BYTES_MAX;
}

function fixed(bytes: Uint8Array, n: number): Uint8Array {
  assert(bytes.length === n, `handshake field must be ${n} bytes, got ${bytes.length}`);
  return bytes;
}

/** Decodes one handshake record; throws `DecodeError` (`HANDSHAKE_MALFORMED` or `DECODE_*`). */
export function decodeHandshakeRecord(body: Uint8Array): HandshakeRecord {
  if (body.length > HANDSHAKE_RECORD_BYTES_MAX)
    throw malformed(`record of ${body.length} bytes exceeds ${HANDSHAKE_RECORD_BYTES_MAX}`);
  const r = new ByteReader(body);
  const magic = r.u32('handshake magic');
  if (magic !== HANDSHAKE_MAGIC)
    throw malformed(
      `bad magic 0x${magic.toString(16)}: the peer is not a cohort node, or runs an incompatible version`,
    );
  const kind = r.u8('record kind');
  const record = decodeBody(r, kind);
  r.end('handshake record');
  return record;
}

function decodeBody(r: ByteReader, kind: number): HandshakeRecord {
  switch (kind) {
    case KIND_CODES.hello:
      return {
        kind: 'hello',
        mode: readMode(r),
        clusterName: r.string(CLUSTER_NAME_BYTES_MAX, 'cluster name'),
        clientId: readNodeId(r, 'client id'),
        dialedId: readNodeId(r, 'dialed id'),
        laneCode: r.u8('lane'),
        incarnation: r.u32('incarnation'),
        instance: r.bytes(HANDSHAKE_INSTANCE_BYTES, 'instance').slice(),
        clientNonce: r.bytes(HANDSHAKE_NONCE_BYTES, 'client nonce').slice(),
      };
    case KIND_CODES.challenge:
      return {
        kind: 'challenge',
        mode: readMode(r),
        clusterName: r.string(CLUSTER_NAME_BYTES_MAX, 'cluster name'),
        serverId: readNodeId(r, 'server id'),
        serverNonce: r.bytes(HANDSHAKE_NONCE_BYTES, 'server nonce').slice(),
        serverProof: r.bytes(HANDSHAKE_PROOF_BYTES, 'server proof').slice(),
      };
    case KIND_CODES.response:
      return { kind: 'response', clientProof: r.bytes(HANDSHAKE_PROOF_BYTES, 'client proof').slice() };
    case KIND_CODES.refusal: {
      const code = r.u8('refusal reason');
      const reason = REASONS[code];
      if (reason === undefined) throw malformed(`unknown refusal reason ${code}`);
      return { kind: 'refusal', reason };
    }
    case KIND_CODES.duplicate:
      return {
        kind: 'duplicate',
        runningIncarnation: r.u32('running incarnation'),
        runningHost: r.string(DUPLICATE_HOST_BYTES_MAX, 'running host'),
        proof: r.bytes(HANDSHAKE_PROOF_BYTES, 'duplicate proof').slice(),
      };
    default:
      throw malformed(`unknown record kind ${kind}`);
  }
}

function readMode(r: ByteReader): FrameMode {
  const code = r.u8('frame mode');
  const mode = MODES[code];
  if (mode === undefined) throw malformed(`unknown frame mode ${code}`);
  return mode;
}

function readNodeId(r: ByteReader, what: string): NodeId {
  const n = r.u16(what);
  if (n < 1 || n > NODE_ID_MAX) throw malformed(`${what} ${n} is not a valid node id`);
  return nodeId(n);
}

function malformed(message: string): DecodeError {
  return new DecodeError('HANDSHAKE_MALFORMED', message);
}

/** Domain-separation labels appended to the transcript for each proof and derived key. */
export const HANDSHAKE_LABELS = {
  serverProof: 'cohort/v1 proof server->client',
  clientProof: 'cohort/v1 proof client->server',
  authKey: 'cohort/v1 handshake authentication key',
  clientToServerKey: 'cohort/v1 frames client->server',
  duplicateProof: 'cohort/v2 duplicate server->client',
} as const;

/** What both sides bind into the transcript. */
export interface TranscriptFields {
  readonly mode: FrameMode;
  readonly clusterName: string;
  readonly clientId: NodeId;
  readonly serverId: NodeId;
  readonly lane: Lane;
  readonly incarnation: number;
  readonly instance: Uint8Array;
  readonly clientNonce: Uint8Array;
  readonly serverNonce: Uint8Array;
}

/**
 * The bytes both proofs and the session keys are bound to: a fixed prefix, the mode, the
 * cluster name, both ids, the lane, the client's incarnation and instance, and both nonces, each
 * fixed-size or length-prefixed so that no two different field sets give the same bytes.
 */
export function handshakeTranscript(f: TranscriptFields): Uint8Array {
  const w = new ByteWriter(192, 512);
  w.string('cohort/v2 handshake transcript')
    .u8(MODES.indexOf(f.mode))
    .string(f.clusterName)
    .u16(f.clientId)
    .u16(f.serverId)
    .u8(laneCode(f.lane))
    .u32(f.incarnation)
    .bytes(fixed(f.instance, HANDSHAKE_INSTANCE_BYTES));
  w.bytes(fixed(f.clientNonce, HANDSHAKE_NONCE_BYTES)).bytes(fixed(f.serverNonce, HANDSHAKE_NONCE_BYTES));
  return w.finish().slice();
}

/** A one-line explanation of a refusal reason for logs, with what the operator should check. */
export function explainRefusal(reason: RefusalReason): string {
  switch (reason) {
    case 'wrong-cluster-name':
      return 'wrong cluster name; check that every node is configured with the same cluster name';
    case 'wrong-cluster-key':
      return 'wrong cluster key (HMAC mismatch); check that every node uses the same key file';
    case 'unknown-node':
      return 'node id not in the peer list; add it to the configuration of every node';
    case 'claims-our-id':
      return 'the peer claims our own node id; two nodes are configured with the same id';
    case 'wrong-node-dialed':
      return 'the address reached a different node than the one configured for it; check the peer address map';
    case 'mode-mismatch':
      return 'frame protection mode differs (encrypted vs insecure plaintext); use the same setting on every node';
    case 'too-many-pending':
      return 'too many unauthenticated connections pending; retrying later';
    case 'protocol-error':
      return 'handshake protocol error; check that both nodes run compatible cohort versions';
    case 'unknown-lane':
      return 'the connection names a lane this node does not know; check that both nodes run compatible cohort versions';
    case 'duplicate-node-id':
      return 'another process is already running this node id; two daemons must never share a node id (a copied configuration?)';
    default:
      return assertNever(reason, 'refusal reason');
  }
}
