// Proves handshake records round-trip (the hello with its lane code, any u8 of which decodes so
// the server can refuse an unknown lane by name), that every truncation, trailing byte, bad
// magic, kind, mode, reason or node id is a DecodeError, that the transcript binds every field
// including the lane, and that cluster names are validated with a clear message.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DecodeError } from '../lib/errors.js';
import { nodeId } from '../lib/ids.js';
import { Prng } from '../lib/prng.js';
import {
  HANDSHAKE_NONCE_BYTES,
  clusterNameProblem,
  decodeHandshakeRecord,
  encodeHandshakeRecord,
  explainRefusal,
  handshakeTranscript,
  laneCode,
  laneOfCode,
  type HandshakeRecord,
  type TranscriptFields,
} from './handshake-record.js';

const n1 = new Uint8Array(HANDSHAKE_NONCE_BYTES).fill(1);
const n2 = new Uint8Array(HANDSHAKE_NONCE_BYTES).fill(2);

const RECORDS: HandshakeRecord[] = [
  {
    kind: 'hello',
    mode: 'aes-256-gcm',
    clusterName: 'prod-a',
    clientId: nodeId(1),
    dialedId: nodeId(2),
    laneCode: laneCode('bulk'),
    incarnation: 7,
    instance: new Uint8Array(8).fill(9),
    clientNonce: n1,
  },
  {
    kind: 'challenge',
    mode: 'insecure-plaintext',
    clusterName: 'x',
    serverId: nodeId(65535),
    serverNonce: n2,
    serverProof: n1,
  },
  { kind: 'response', clientProof: n2 },
  { kind: 'refusal', reason: 'wrong-cluster-key' },
  { kind: 'refusal', reason: 'duplicate-node-id' },
  { kind: 'duplicate', runningIncarnation: 12, runningHost: '10.0.0.7', proof: n2 },
];

test('every record kind round-trips', () => {
  for (const r of RECORDS) assert.deepEqual(decodeHandshakeRecord(encodeHandshakeRecord(r)), r);
});

test('every truncation and any trailing byte is a DecodeError', () => {
  for (const r of RECORDS) {
    const bytes = encodeHandshakeRecord(r);
    for (let cut = 0; cut < bytes.length; cut++)
      assert.throws(() => decodeHandshakeRecord(bytes.subarray(0, cut)), DecodeError, `${r.kind} cut at ${cut}`);
    assert.throws(
      () => decodeHandshakeRecord(Uint8Array.from([...bytes, 0])),
      (e: unknown) => e instanceof DecodeError && e.code === 'DECODE_TRAILING',
    );
  }
});

test('lane codes round-trip; an unknown lane code decodes (the server refuses it by name)', () => {
  for (const lane of ['control', 'bulk'] as const) assert.equal(laneOfCode(laneCode(lane)), lane);
  assert.notEqual(laneCode('control'), laneCode('bulk'));
  assert.equal(laneOfCode(200), undefined);
  const hello = RECORDS[0]!;
  assert.ok(hello.kind === 'hello');
  const odd = decodeHandshakeRecord(encodeHandshakeRecord({ ...hello, laneCode: 200 }));
  assert.ok(odd.kind === 'hello' && odd.laneCode === 200);
  assert.match(explainRefusal('unknown-lane'), /names a lane this node does not know/);
});

test('bad magic, kind, mode, reason and node ids are HANDSHAKE_MALFORMED', () => {
  const hello = encodeHandshakeRecord(RECORDS[0]!);
  const mutate = (at: number, value: number): Uint8Array => {
    const copy = Uint8Array.from(hello);
    copy[at] = value;
    return copy;
  };
  const malformed = (e: unknown): boolean => e instanceof DecodeError && e.code === 'HANDSHAKE_MALFORMED';
  assert.throws(
    () => decodeHandshakeRecord(mutate(0, 0x48)),
    (e: unknown) => malformed(e) && /not a cohort node/.test((e as Error).message),
  );
  assert.throws(() => decodeHandshakeRecord(mutate(4, 9)), malformed);
  assert.throws(() => decodeHandshakeRecord(mutate(5, 7)), malformed);
  const idAt = 4 + 1 + 1 + 4 + 'prod-a'.length;
  assert.throws(
    () => decodeHandshakeRecord(Uint8Array.from([...hello.subarray(0, idAt), 0, 0, ...hello.subarray(idAt + 2)])),
    malformed,
  );
  assert.throws(() => decodeHandshakeRecord(Uint8Array.from([0x43, 0x6f, 0x48, 0x32, 4, 200])), malformed);
});

test('fuzz: 100,000 random and mutated records raise only DecodeError', () => {
  const prng = new Prng(3);
  const encoded = RECORDS.map(encodeHandshakeRecord);
  let rejected = 0;
  for (let run = 0; run < 100_000; run++) {
    const input = Uint8Array.from(prng.pick(encoded));
    for (let k = prng.int(0, 3); k > 0; k--) input[prng.int(0, input.length)] = prng.int(0, 256);
    try {
      decodeHandshakeRecord(input.subarray(0, prng.int(0, input.length + 1)));
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      rejected++;
    }
  }
  assert.ok(rejected > 50_000, `rejected ${rejected}`);
});

test('the transcript changes when any bound field changes', () => {
  const base: TranscriptFields = {
    mode: 'aes-256-gcm',
    clusterName: 'c',
    clientId: nodeId(1),
    serverId: nodeId(2),
    lane: 'control',
    incarnation: 3,
    instance: new Uint8Array(8).fill(4),
    clientNonce: n1,
    serverNonce: n2,
  };
  const variants: TranscriptFields[] = [
    { ...base, mode: 'insecure-plaintext' },
    { ...base, clusterName: 'd' },
    { ...base, clientId: nodeId(2), serverId: nodeId(1) },
    { ...base, lane: 'bulk' },
    { ...base, incarnation: 4 },
    { ...base, instance: new Uint8Array(8).fill(5) },
    { ...base, clientNonce: n2, serverNonce: n1 },
  ];
  const seen = new Set([Buffer.from(handshakeTranscript(base)).toString('hex')]);
  for (const v of variants) seen.add(Buffer.from(handshakeTranscript(v)).toString('hex'));
  assert.equal(seen.size, variants.length + 1);
});

test('cluster names are checked with a clear message', () => {
  assert.equal(clusterNameProblem('prod-eu.1_a'), undefined);
  assert.match(clusterNameProblem('') ?? '', /1 to 64 characters/);
  assert.match(clusterNameProblem('a'.repeat(65)) ?? '', /1 to 64 characters/);
  assert.match(clusterNameProblem('has space') ?? '', /only letters, digits/);
  fc.assert(fc.property(fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/), (name) => clusterNameProblem(name) === undefined));
  assert.match(
    explainRefusal('wrong-cluster-key'),
    /wrong cluster key \(HMAC mismatch\); check that every node uses the same key file/,
  );
});
