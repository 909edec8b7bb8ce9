/**
 * The peer handshake's cryptography and per-connection state machines (record formats are in
 * `src/transport/handshake-record.ts`).
 *
 * Mutual challenge-response over the cluster key K:
 *
 * - `authKey = HKDF-SHA256(K, salt = "", info = "cohort/v1 handshake authentication key")`.
 * - `T` = the transcript: mode, cluster name, client id, server id, lane, the client's
 *   incarnation and process instance, client nonce, server nonce. Each connection carries one
 *   lane, named by the dialer and bound here; the incarnation and instance are bound so that the
 *   server's duplicate rule (`TcpTransport`) acts only on claims the client proved.
 * - The server proves possession with `HMAC-SHA256(authKey, T || "… server->client")`, the client
 *   with `HMAC-SHA256(authKey, T || "… client->server")`. The labels differ, so a proof can never
 *   be reflected back as the other direction's; the fresh nonces make every transcript unique,
 *   so an old proof never verifies again. Comparisons are constant-time.
 * - A `duplicate` answer is `HMAC-SHA256(authKey, T || "… duplicate server->client" || running
 *   incarnation || running host)`: a client believes it only when the proof verifies.
 * - Frame keys: `HKDF-SHA256(K, salt = clientNonce || serverNonce, info = label || T)`, 36 bytes:
 *   a 32-byte AES key and a 4-byte nonce salt. Data flows from client to server only (each
 *   node sends on the connection it dialed), so only that direction's key is derived.
 *
 * Each state machine consumes decoded records and returns what to send and how it ended; it
 * never touches a socket, and checks the peer's identity claims (cluster name, node id, mode)
 * before any protocol byte can be decoded.
 */
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { assert } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import type { Lane } from '../transport/transport.js';
import {
  HANDSHAKE_INCARNATION_MAX,
  HANDSHAKE_LABELS,
  HANDSHAKE_NONCE_BYTES,
  hostFits,
  encodeHandshakeRecord,
  handshakeTranscript,
  laneCode,
  laneOfCode,
  type ChallengeRecord,
  type DuplicateRecord,
  type FrameMode,
  type HandshakeRecord,
  type HelloRecord,
  type RefusalReason,
} from '../transport/handshake-record.js';
import type { ClusterKey } from './cluster-key.js';
import { FRAME_KEY_BYTES, FRAME_SALT_BYTES, type FrameKeys } from './frame-cipher.js';

/** What a node knows about itself for handshakes. */
export interface HandshakeIdentity {
  readonly self: NodeId;
  readonly clusterName: string;
  readonly mode: FrameMode;
  /** Key material prepared once per transport (see `prepareHandshakeKeys`). */
  readonly keys: HandshakeKeys;
  /** This process's random instance id (`HANDSHAKE_INSTANCE_BYTES`), drawn once per transport. */
  readonly instance: Uint8Array;
  /** The node's incarnation at this start, read when a hello is built (0 = no node). */
  incarnation(): number;
  /** True when `id` is a configured peer (never true for `self`). */
  isPeer(id: NodeId): boolean;
}

/** What a server learned about an authenticated client's process. */
export interface ClientProcess {
  readonly incarnation: number;
  /** The instance id as hex, for comparisons and logs. */
  readonly instance: string;
}

/** The cluster key and the authentication key derived from it. */
export interface HandshakeKeys {
  readonly clusterKey: Uint8Array;
  readonly authKey: Uint8Array;
}

/** Derives the handshake authentication key once, so each handshake costs only HMACs. */
export function prepareHandshakeKeys(key: ClusterKey): HandshakeKeys {
  const clusterKey = key.bytes();
  const authKey = new Uint8Array(hkdfSync('sha256', clusterKey, new Uint8Array(0), HANDSHAKE_LABELS.authKey, 32));
  return { clusterKey, authKey };
}

/** How a handshake step ended. `send` (when present) goes out before anything else happens. */
export type HandshakeStep =
  | { readonly kind: 'continue'; readonly send: Uint8Array }
  | {
      readonly kind: 'established';
      readonly peer: NodeId;
      /** The lane the connection carries (the dialer's choice, bound into the keys). */
      readonly lane: Lane;
      readonly keys: FrameKeys;
      /** The client's process (set by the server side only). */
      readonly client?: ClientProcess;
      readonly send?: Uint8Array;
    }
  | {
      readonly kind: 'refused';
      /** Why; `byPeer` means the other side sent this reason (unauthenticated, informative). */
      readonly reason: RefusalReason;
      readonly byPeer: boolean;
      /** The node id the peer claimed, when it said one. */
      readonly claimed?: NodeId;
      /** Extra detail for the log line. */
      readonly detail: string;
      readonly send?: Uint8Array;
    };

function proof(authKey: Uint8Array, transcript: Uint8Array, label: string): Uint8Array {
  return createHmac('sha256', authKey).update(transcript).update(label).digest();
}

function duplicateProof(authKey: Uint8Array, transcript: Uint8Array, incarnation: number, host: string): Uint8Array {
  const detail = Buffer.alloc(4);
  detail.writeUInt32LE(incarnation, 0);
  return createHmac('sha256', authKey)
    .update(transcript)
    .update(HANDSHAKE_LABELS.duplicateProof)
    .update(detail)
    .update(host)
    .digest();
}

function proofMatches(expected: Uint8Array, got: Uint8Array): boolean {
  return expected.length === got.length && timingSafeEqual(expected, got);
}

function frameKeys(
  keys: HandshakeKeys,
  transcript: Uint8Array,
  clientNonce: Uint8Array,
  serverNonce: Uint8Array,
): FrameKeys {
  const salt = new Uint8Array(clientNonce.length + serverNonce.length);
  salt.set(clientNonce, 0);
  salt.set(serverNonce, clientNonce.length);
  const label = new TextEncoder().encode(HANDSHAKE_LABELS.clientToServerKey);
  const info = new Uint8Array(label.length + transcript.length);
  info.set(label, 0);
  info.set(transcript, label.length);
  // Node caps HKDF info at 1024 bytes; the transcript is bounded well below that.
  assert(info.length <= 1024, 'hkdf info within the Node limit');
  const okm = new Uint8Array(hkdfSync('sha256', keys.clusterKey, salt, info, FRAME_KEY_BYTES + FRAME_SALT_BYTES));
  return { key: okm.subarray(0, FRAME_KEY_BYTES), salt: okm.subarray(FRAME_KEY_BYTES) };
}

function refusal(reason: RefusalReason): Uint8Array {
  return encodeHandshakeRecord({ kind: 'refusal', reason });
}

function refuse(reason: RefusalReason, detail: string, claimed: NodeId | undefined, tellPeer: boolean): HandshakeStep {
  const base = { kind: 'refused' as const, reason, byPeer: false, detail };
  const withClaim = claimed === undefined ? base : { ...base, claimed };
  return tellPeer ? { ...withClaim, send: refusal(reason) } : withClaim;
}

function unexpected(record: HandshakeRecord, waitingFor: string, claimed: NodeId | undefined): HandshakeStep {
  if (record.kind === 'refusal') {
    const base = {
      kind: 'refused' as const,
      reason: record.reason,
      byPeer: true,
      detail: 'the peer refused the handshake',
    };
    return claimed === undefined ? base : { ...base, claimed };
  }
  return refuse('protocol-error', `expected a ${waitingFor} record, got ${record.kind}`, claimed, true);
}

/**
 * The dialing side. `start()` gives the hello; `step(record)` consumes the challenge (or a
 * refusal) and ends the handshake either way.
 */
export class ClientHandshake {
  private readonly clientNonce = randomBytes(HANDSHAKE_NONCE_BYTES);
  private readonly incarnation: number;
  private done = false;
  /** Set once established: what a later `duplicate` answer must be bound to. */
  private transcript: Uint8Array | undefined;

  constructor(
    private readonly identity: HandshakeIdentity,
    /** The node this connection was dialed for. */
    readonly dialed: NodeId,
    /** The lane this connection carries. */
    readonly lane: Lane,
  ) {
    assert(identity.isPeer(dialed), 'only configured peers are dialed');
    this.incarnation = identity.incarnation();
    assert(
      Number.isInteger(this.incarnation) && this.incarnation >= 0 && this.incarnation <= HANDSHAKE_INCARNATION_MAX,
      'an incarnation fits the hello',
    );
  }

  /** The hello record to send first. */
  start(): Uint8Array {
    const { mode, clusterName, self } = this.identity;
    const hello: HelloRecord = {
      kind: 'hello',
      mode,
      clusterName,
      clientId: self,
      dialedId: this.dialed,
      laneCode: laneCode(this.lane),
      incarnation: this.incarnation,
      instance: this.identity.instance,
      clientNonce: this.clientNonce,
    };
    return encodeHandshakeRecord(hello);
  }

  /**
   * True when `record` is a `duplicate` answer the server proved with the cluster key for this
   * connection's transcript; false for a forgery, a replay from another connection, or before
   * the handshake completed. Only then may the caller act on it (stop the process).
   */
  verifiesDuplicate(record: DuplicateRecord): boolean {
    if (this.transcript === undefined) return false;
    const expected = duplicateProof(
      this.identity.keys.authKey,
      this.transcript,
      record.runningIncarnation,
      record.runningHost,
    );
    return proofMatches(expected, record.proof);
  }

  /** Consumes the server's answer. */
  step(record: HandshakeRecord): HandshakeStep {
    assert(!this.done, 'client handshake takes exactly one answer');
    this.done = true;
    if (record.kind !== 'challenge') return unexpected(record, 'challenge', this.dialed);
    return this.onChallenge(record);
  }

  private onChallenge(c: ChallengeRecord): HandshakeStep {
    const id = this.identity;
    if (c.mode !== id.mode)
      return refuse('mode-mismatch', `we use ${id.mode}, the peer uses ${c.mode}`, c.serverId, true);
    if (c.clusterName !== id.clusterName) {
      return refuse(
        'wrong-cluster-name',
        `we are in cluster "${id.clusterName}", the peer is in "${c.clusterName}"`,
        c.serverId,
        true,
      );
    }
    if (c.serverId !== this.dialed) {
      return refuse(
        'wrong-node-dialed',
        `we dialed node ${this.dialed} but reached node ${c.serverId}`,
        c.serverId,
        true,
      );
    }
    const transcript = handshakeTranscript({
      mode: id.mode,
      clusterName: id.clusterName,
      clientId: id.self,
      serverId: c.serverId,
      lane: this.lane,
      incarnation: this.incarnation,
      instance: id.instance,
      clientNonce: this.clientNonce,
      serverNonce: c.serverNonce,
    });
    const clientProof = proof(id.keys.authKey, transcript, HANDSHAKE_LABELS.clientProof);
    const response = encodeHandshakeRecord({ kind: 'response', clientProof });
    if (!proofMatches(proof(id.keys.authKey, transcript, HANDSHAKE_LABELS.serverProof), c.serverProof)) {
      // Still send our proof: the server can then verify the mismatch itself and log it too.
      // It reveals nothing reusable: it is bound to this transcript's fresh server nonce.
      return {
        kind: 'refused',
        reason: 'wrong-cluster-key',
        byPeer: false,
        claimed: c.serverId,
        detail: 'the peer could not prove it holds our cluster key',
        send: response,
      };
    }
    this.transcript = transcript;
    return {
      kind: 'established',
      peer: c.serverId,
      lane: this.lane,
      keys: frameKeys(id.keys, transcript, this.clientNonce, c.serverNonce),
      send: response,
    };
  }
}

/**
 * The listening side. `step(hello)` answers with a challenge (or a refusal); `step(response)`
 * verifies the client's proof and ends the handshake.
 */
export class ServerHandshake {
  private readonly serverNonce = randomBytes(HANDSHAKE_NONCE_BYTES);
  private hello: HelloRecord | undefined;
  private lane: Lane | undefined;
  private transcript: Uint8Array | undefined;
  private done = false;

  constructor(private readonly identity: HandshakeIdentity) {}

  /** The node id the client claimed in its hello, once known. */
  get claimed(): NodeId | undefined {
    return this.hello?.clientId;
  }

  /** Consumes the next record from the client. */
  step(record: HandshakeRecord): HandshakeStep {
    assert(!this.done, 'server handshake already ended');
    if (this.hello === undefined) {
      if (record.kind !== 'hello') return this.end(unexpected(record, 'hello', undefined));
      return this.onHello(record);
    }
    this.done = true;
    if (record.kind !== 'response') return unexpected(record, 'response', this.hello.clientId);
    return this.onResponse(this.hello, record.clientProof);
  }

  private end(step: HandshakeStep): HandshakeStep {
    this.done = true;
    return step;
  }

  private onHello(h: HelloRecord): HandshakeStep {
    const id = this.identity;
    const who = h.clientId;
    if (h.mode !== id.mode)
      return this.end(refuse('mode-mismatch', `we use ${id.mode}, the peer uses ${h.mode}`, who, true));
    if (h.clusterName !== id.clusterName) {
      return this.end(
        refuse(
          'wrong-cluster-name',
          `we are in cluster "${id.clusterName}", the peer is in "${h.clusterName}"`,
          who,
          true,
        ),
      );
    }
    if (who === id.self) return this.end(refuse('claims-our-id', `the peer claims our own id ${id.self}`, who, true));
    if (!id.isPeer(who)) return this.end(refuse('unknown-node', `node ${who} is not in our peer list`, who, true));
    if (h.dialedId !== id.self)
      return this.end(
        refuse('wrong-node-dialed', `the peer dialed node ${h.dialedId} but reached us (node ${id.self})`, who, true),
      );
    const lane = laneOfCode(h.laneCode);
    if (lane === undefined)
      return this.end(refuse('unknown-lane', `the peer asked for lane code ${h.laneCode}`, who, true));
    this.hello = h;
    this.lane = lane;
    this.transcript = handshakeTranscript({
      mode: id.mode,
      clusterName: id.clusterName,
      clientId: who,
      serverId: id.self,
      lane,
      incarnation: h.incarnation,
      instance: h.instance,
      clientNonce: h.clientNonce,
      serverNonce: this.serverNonce,
    });
    const serverProof = proof(id.keys.authKey, this.transcript, HANDSHAKE_LABELS.serverProof);
    const challenge = encodeHandshakeRecord({
      kind: 'challenge',
      mode: id.mode,
      clusterName: id.clusterName,
      serverId: id.self,
      serverNonce: this.serverNonce,
      serverProof,
    });
    return { kind: 'continue', send: challenge };
  }

  private onResponse(h: HelloRecord, clientProof: Uint8Array): HandshakeStep {
    const transcript = this.transcript;
    const lane = this.lane;
    assert(transcript !== undefined && lane !== undefined, 'the transcript and lane are set with the hello');
    const expected = proof(this.identity.keys.authKey, transcript, HANDSHAKE_LABELS.clientProof);
    if (!proofMatches(expected, clientProof)) {
      return refuse('wrong-cluster-key', 'the peer could not prove it holds our cluster key', h.clientId, true);
    }
    return {
      kind: 'established',
      peer: h.clientId,
      lane,
      keys: frameKeys(this.identity.keys, transcript, h.clientNonce, this.serverNonce),
      client: { incarnation: h.incarnation, instance: Buffer.from(h.instance).toString('hex') },
    };
  }

  /**
   * The authenticated `duplicate` answer for this (established) connection: another live process,
   * of incarnation `runningIncarnation` connected from `runningHost`, runs the client's node id.
   */
  duplicateNotice(runningIncarnation: number, runningHost: string): Uint8Array {
    const transcript = this.transcript;
    assert(transcript !== undefined && this.done, 'a duplicate notice follows a verified response');
    const host = hostFits(runningHost) ? runningHost : '?';
    return encodeHandshakeRecord({
      kind: 'duplicate',
      runningIncarnation,
      runningHost: host,
      proof: duplicateProof(this.identity.keys.authKey, transcript, runningIncarnation, host),
    });
  }
}
