// Proves sealed frames open only once, in order, unmodified and under the right key: every
// flipped bit (header, ciphertext or tag), truncation, replay, reordering or wrong key fails
// authentication and poisons the opener; and proves the handshake state machines establish
// matching keys only when both sides share key, cluster name, mode and expected identities,
// that both learn the lane the dialer named (bound into the keys), that an unknown lane code
// is refused with its own reason on both sides, and that a `duplicate` answer convinces the
// client only when the server proved it for this very connection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { nodeId, type NodeId } from '../lib/ids.js';
import { FrameDecoder } from '../transport/frame-decoder.js';
import {
  decodeHandshakeRecord,
  encodeHandshakeRecord,
  type FrameMode,
  type HelloRecord,
} from '../transport/handshake-record.js';
import type { Lane } from '../transport/transport.js';
import { generateClusterKey, type ClusterKey } from './cluster-key.js';
import {
  AEAD_TAG_BYTES,
  FrameAuthError,
  createFrameOpener,
  createFrameSealer,
  type FrameKeys,
} from './frame-cipher.js';
import {
  ClientHandshake,
  ServerHandshake,
  prepareHandshakeKeys,
  type HandshakeIdentity,
  type HandshakeStep,
} from './peer-handshake.js';

function keys(): FrameKeys {
  return { key: randomBytes(32), salt: randomBytes(4) };
}

const authFailed = (e: unknown): boolean => e instanceof FrameAuthError && e.code === 'FRAME_AUTH_FAILED';

test('sealed frames open in order to the same plaintext, and parse as frames', () => {
  const k = keys();
  const sealer = createFrameSealer('aes-256-gcm', k);
  const opener = createFrameOpener('aes-256-gcm', k);
  const decoder = new FrameDecoder({ bodyBytesMin: AEAD_TAG_BYTES, bodyBytesMax: 1 << 20 });
  for (let i = 0; i < 50; i++) {
    const plaintext = randomBytes(i * 7);
    const frame = sealer.seal(plaintext);
    assert.equal(frame.length, plaintext.length + sealer.overheadBytes);
    assert.ok(
      !Buffer.from(frame).includes(plaintext) || plaintext.length < 4,
      'ciphertext does not contain the plaintext',
    );
    decoder.push(frame);
    const parsed = decoder.next();
    assert.ok(parsed !== undefined);
    assert.deepEqual(Buffer.from(opener.open(parsed)), plaintext);
  }
  assert.equal(sealer.sealed, 50);
});

test('flipping any single byte of a frame fails authentication', () => {
  const k = keys();
  const frame = createFrameSealer('aes-256-gcm', k).seal(randomBytes(40));
  for (let at = 0; at < frame.length; at++) {
    const tampered = Uint8Array.from(frame);
    tampered[at] = (tampered[at] ?? 0) ^ 0x01;
    const opener = createFrameOpener('aes-256-gcm', k);
    // A changed header changes the length the decoder would cut; here we give the opener the
    // bytes as they are, which is what it sees when the length still parses.
    assert.throws(() => opener.open(tampered), authFailed, `byte ${at}`);
  }
});

test('replayed, reordered, truncated or foreign frames fail, and the opener stays failed', () => {
  const k = keys();
  const sealer = createFrameSealer('aes-256-gcm', k);
  const f0 = sealer.seal(Buffer.from('zero'));
  const f1 = sealer.seal(Buffer.from('one'));
  const replay = createFrameOpener('aes-256-gcm', k);
  replay.open(f0);
  assert.throws(() => replay.open(f0), authFailed, 'replay');
  assert.throws(() => replay.open(f1), authFailed, 'poisoned after a failure');
  assert.throws(() => createFrameOpener('aes-256-gcm', k).open(f1), authFailed, 'reorder (skipped frame)');
  const shortened = Uint8Array.from(f0.subarray(0, f0.length - 1));
  shortened[0] = (shortened[0] ?? 0) - 1; // a consistent shorter length header
  assert.throws(() => createFrameOpener('aes-256-gcm', k).open(shortened), authFailed, 'truncation');
  assert.throws(() => createFrameOpener('aes-256-gcm', keys()).open(f0), authFailed, 'another key');
});

test('plaintext mode frames the bytes as they are (benchmarks only)', () => {
  const frame = createFrameSealer('insecure-plaintext', keys()).seal(Buffer.from('abc'));
  assert.deepEqual([...frame], [3, 0, 0, 0, 97, 98, 99]);
  assert.deepEqual(Buffer.from(createFrameOpener('insecure-plaintext', keys()).open(frame)).toString(), 'abc');
});

interface Side {
  readonly self: NodeId;
  readonly key: ClusterKey;
  readonly clusterName?: string;
  readonly mode?: FrameMode;
  readonly peers: readonly number[];
}

function identity(s: Side): HandshakeIdentity {
  return {
    self: s.self,
    clusterName: s.clusterName ?? 'test',
    mode: s.mode ?? 'aes-256-gcm',
    keys: prepareHandshakeKeys(s.key),
    instance: new Uint8Array(8).fill(s.self),
    incarnation: () => 1,
    isPeer: (id) => s.peers.includes(id),
  };
}

/** Runs a whole handshake in memory; returns both sides' final steps. */
function run(
  client: Side,
  server: Side,
  dialed: NodeId,
  lane: Lane = 'control',
  rewriteHello: (h: HelloRecord) => HelloRecord = (h) => h,
): { client: HandshakeStep; server: HandshakeStep | undefined } {
  const c = new ClientHandshake(identity(client), dialed, lane);
  const s = new ServerHandshake(identity(server));
  const hello = decodeHandshakeRecord(c.start());
  assert.ok(hello.kind === 'hello');
  const first = s.step(decodeHandshakeRecord(encodeHandshakeRecord(rewriteHello(hello))));
  if (first.kind !== 'continue')
    return { client: c.step(decodeHandshakeRecord(first.send ?? new Uint8Array())), server: first };
  const clientStep = c.step(decodeHandshakeRecord(first.send));
  const serverStep = clientStep.send === undefined ? undefined : s.step(decodeHandshakeRecord(clientStep.send));
  return { client: clientStep, server: serverStep };
}

test('a handshake between nodes sharing the key establishes the same frame keys', () => {
  const key = generateClusterKey();
  const r = run({ self: nodeId(1), key, peers: [2] }, { self: nodeId(2), key, peers: [1] }, nodeId(2));
  // assert.equal narrows both steps to 'established'.
  assert.equal(r.client.kind, 'established');
  assert.ok(r.server !== undefined);
  assert.equal(r.server.kind, 'established');
  assert.equal(r.client.peer, 2);
  assert.equal(r.server.peer, 1);
  const sealed = createFrameSealer('aes-256-gcm', r.client.keys).seal(Buffer.from('hi'));
  assert.equal(Buffer.from(createFrameOpener('aes-256-gcm', r.server.keys).open(sealed)).toString(), 'hi');
  const again = run({ self: nodeId(1), key, peers: [2] }, { self: nodeId(2), key, peers: [1] }, nodeId(2));
  assert.ok(
    again.client.kind === 'established' && Buffer.compare(again.client.keys.key, r.client.keys.key) !== 0,
    'fresh nonces give fresh keys',
  );
});

test('each identity problem is refused with its own reason', () => {
  const key = generateClusterKey();
  const reason = (step: HandshakeStep | undefined): string | undefined =>
    step?.kind === 'refused' ? step.reason : step?.kind;
  const wrongKey = run(
    { self: nodeId(1), key: generateClusterKey(), peers: [2] },
    { self: nodeId(2), key, peers: [1] },
    nodeId(2),
  );
  assert.equal(reason(wrongKey.client), 'wrong-cluster-key');
  assert.equal(reason(wrongKey.server), 'wrong-cluster-key', 'the server verifies the mismatch itself');
  const cases: [Side, Side, number, string][] = [
    [
      { self: nodeId(1), key, peers: [2], clusterName: 'a' },
      { self: nodeId(2), key, peers: [1], clusterName: 'b' },
      2,
      'wrong-cluster-name',
    ],
    [
      { self: nodeId(1), key, peers: [2], mode: 'insecure-plaintext' },
      { self: nodeId(2), key, peers: [1] },
      2,
      'mode-mismatch',
    ],
    [{ self: nodeId(3), key, peers: [2] }, { self: nodeId(2), key, peers: [1] }, 2, 'unknown-node'],
    [{ self: nodeId(2), key, peers: [2] }, { self: nodeId(2), key, peers: [1, 2] }, 2, 'claims-our-id'],
    [{ self: nodeId(1), key, peers: [2, 3] }, { self: nodeId(2), key, peers: [1] }, 3, 'wrong-node-dialed'],
  ];
  for (const [client, server, dialed, expected] of cases) {
    const r = run(client, server, nodeId(dialed));
    assert.equal(reason(r.server), expected, `server side of ${expected}`);
    assert.ok(
      r.client.kind === 'refused' && r.client.byPeer && r.client.reason === expected,
      `client hears ${expected}`,
    );
  }
});

test('the lane the dialer names reaches the server, is bound into the keys, and an unknown lane is refused', () => {
  const key = generateClusterKey();
  const a: Side = { self: nodeId(1), key, peers: [2] };
  const b: Side = { self: nodeId(2), key, peers: [1] };
  for (const lane of ['control', 'bulk'] as const) {
    const r = run(a, b, nodeId(2), lane);
    assert.ok(r.client.kind === 'established' && r.server?.kind === 'established');
    assert.equal(r.client.lane, lane);
    assert.equal(r.server.lane, lane, 'the server learns the lane from the hello');
  }
  // A man-in-the-middle that moves a bulk connection to the control lane breaks the proofs.
  const moved = run(a, b, nodeId(2), 'bulk', (h) => ({ ...h, laneCode: 0 }));
  assert.equal(moved.client.kind, 'refused');
  assert.ok(moved.server?.kind === 'refused' && moved.server.reason === 'wrong-cluster-key');
  const unknown = run(a, b, nodeId(2), 'control', (h) => ({ ...h, laneCode: 7 }));
  assert.ok(unknown.server?.kind === 'refused' && unknown.server.reason === 'unknown-lane', 'the server refuses');
  assert.match(unknown.server.detail, /lane code 7/);
  assert.ok(
    unknown.client.kind === 'refused' && unknown.client.byPeer && unknown.client.reason === 'unknown-lane',
    'the client hears why',
  );
});

test('a duplicate answer verifies only when proven with the key for this connection', () => {
  const key = generateClusterKey();
  const client = new ClientHandshake(identity({ self: nodeId(1), key, peers: [2] }), nodeId(2), 'control');
  const server = new ServerHandshake(identity({ self: nodeId(2), key, peers: [1] }));
  const challenge = server.step(decodeHandshakeRecord(client.start()));
  assert.ok(challenge.kind === 'continue');
  const established = client.step(decodeHandshakeRecord(challenge.send));
  assert.ok(established.kind === 'established' && established.send !== undefined);
  const accepted = server.step(decodeHandshakeRecord(established.send));
  assert.ok(accepted.kind === 'established');
  assert.deepEqual(accepted.client, { incarnation: 1, instance: '0101010101010101' }, 'the server learns the process');
  const notice = decodeHandshakeRecord(server.duplicateNotice(5, '10.0.0.3'));
  assert.ok(notice.kind === 'duplicate');
  assert.equal(client.verifiesDuplicate(notice), true);
  assert.equal(client.verifiesDuplicate({ ...notice, runningIncarnation: 6 }), false, 'the incarnation is bound');
  assert.equal(client.verifiesDuplicate({ ...notice, runningHost: '10.0.0.4' }), false, 'the host is bound');
  assert.equal(client.verifiesDuplicate({ ...notice, proof: randomBytes(32) }), false, 'a forged proof fails');
  // The same notice replayed onto another connection (fresh nonces) does not verify there.
  const other = new ClientHandshake(identity({ self: nodeId(1), key, peers: [2] }), nodeId(2), 'control');
  const otherServer = new ServerHandshake(identity({ self: nodeId(2), key, peers: [1] }));
  const otherChallenge = otherServer.step(decodeHandshakeRecord(other.start()));
  assert.ok(otherChallenge.kind === 'continue');
  assert.equal(other.verifiesDuplicate(notice), false, 'not before the handshake completed');
  other.step(decodeHandshakeRecord(otherChallenge.send));
  assert.equal(other.verifiesDuplicate(notice), false, 'not on another connection');
});
