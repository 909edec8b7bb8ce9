// Proves that validateRaftMessage accepts every well-formed message unchanged after a msgpack
// round trip, and rejects malformed or oversized input (100,000 generated values) with a
// DecodeError carrying a RAFT_MSG_* code, never any other exception.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { pack, unpack } from 'msgpackr';
import { DecodeError } from '../lib/errors.js';
import { logIndex, nodeId, term } from '../lib/ids.js';
import { RAFT_ENTRIES_PER_MESSAGE_MAX, RAFT_READ_CONTEXT_BYTES_MAX } from '../constants.js';
import { validateRaftMessage, type Entry, type RaftMessage } from './raft-message.js';

const env = { from: nodeId(1), to: nodeId(2), term: term(3) };
const entry = (i: number): Entry => ({
  type: 'normal',
  term: term(1),
  index: logIndex(i),
  data: new Uint8Array([i & 0xff]),
});
const samples: RaftMessage[] = [
  {
    type: 'MsgApp',
    ...env,
    logTerm: term(1),
    index: logIndex(4),
    entries: [
      entry(5),
      {
        type: 'conf',
        term: term(3),
        index: logIndex(6),
        change: { changes: [{ type: 'add-voter', node: nodeId(4), votes: 2 }], autoLeave: true },
      },
    ],
    commit: logIndex(4),
  },
  { type: 'MsgAppResp', ...env, index: logIndex(9), reject: true, rejectHint: logIndex(3), logTerm: term(1) },
  { type: 'MsgVote', ...env, logTerm: term(2), index: logIndex(7), transfer: false },
  { type: 'MsgPreVote', ...env, logTerm: term(2), index: logIndex(7), transfer: false },
  { type: 'MsgVoteResp', ...env, reject: false },
  { type: 'MsgPreVoteResp', ...env, reject: true },
  { type: 'MsgVoteResp', ...env, reject: true, commitHint: { index: logIndex(9), term: term(2) } },
  { type: 'MsgHeartbeat', ...env, commit: logIndex(3), round: 12 },
  { type: 'MsgHeartbeatResp', ...env, round: 12 },
  {
    type: 'MsgSnap',
    ...env,
    snapshot: {
      metadata: {
        index: logIndex(10),
        term: term(2),
        confState: {
          voters: [
            [nodeId(1), 1],
            [nodeId(2), 3],
          ],
          outgoing: [],
          learners: [nodeId(5)],
          learnersNext: [],
          autoLeave: false,
        },
      },
      data: new Uint8Array([1, 2, 3]),
    },
  },
  { type: 'MsgTimeoutNow', ...env },
  { type: 'MsgReadIndex', ...env, context: new Uint8Array([9]) },
  { type: 'MsgReadIndexResp', ...env, context: new Uint8Array([9]), index: logIndex(8), reject: false },
];

function normalise(v: unknown): unknown {
  // msgpackr decodes bin as Buffer (whose toJSON runs before a replacer): compare plain bytes.
  if (v instanceof Uint8Array) return { bytes: [...v] };
  if (Array.isArray(v)) return v.map(normalise);
  if (typeof v === 'object' && v !== null)
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, normalise(x)]));
  return v;
}

function codeOf(f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (e) {
    assert.ok(e instanceof DecodeError, `expected a DecodeError, got ${String(e)}`);
    assert.match(e.code, /^RAFT_MSG_/);
    return e.code;
  }
}

test('every message type survives a msgpack round trip and validates unchanged', () => {
  for (const m of samples) {
    const back = validateRaftMessage(unpack(pack(m)));
    assert.deepEqual(normalise(back), normalise(m));
  }
});

test('malformed messages are rejected with a typed code', () => {
  assert.equal(
    codeOf(() => validateRaftMessage(null)),
    'RAFT_MSG_SHAPE',
  );
  assert.equal(
    codeOf(() => validateRaftMessage({ ...env, type: 'MsgBogus' })),
    'RAFT_MSG_TYPE',
  );
  assert.equal(
    codeOf(() => validateRaftMessage({ ...env, type: 'MsgVoteResp', reject: 1 })),
    'RAFT_MSG_FIELD',
  );
  assert.equal(
    codeOf(() => validateRaftMessage({ ...env, type: 'MsgVoteResp', reject: true, commitHint: 5 })),
    'RAFT_MSG_FIELD',
  );
  assert.equal(
    codeOf(() =>
      validateRaftMessage({ ...env, type: 'MsgVoteResp', reject: true, commitHint: { index: -1, term: 1 } }),
    ),
    'RAFT_MSG_FIELD',
  );
  assert.equal(
    codeOf(() => validateRaftMessage({ ...env, from: 0, type: 'MsgVoteResp', reject: true })),
    'RAFT_MSG_FIELD',
  );
  assert.equal(
    codeOf(() => validateRaftMessage({ ...env, term: -1, type: 'MsgTimeoutNow' })),
    'RAFT_MSG_FIELD',
  );
  const tooMany = {
    ...samples[0],
    entries: Array.from({ length: RAFT_ENTRIES_PER_MESSAGE_MAX + 1 }, (_, i) => entry(i + 1)),
  };
  assert.equal(
    codeOf(() => validateRaftMessage(tooMany)),
    'RAFT_MSG_TOO_LARGE',
  );
  const ctx = { ...env, type: 'MsgReadIndex', context: new Uint8Array(RAFT_READ_CONTEXT_BYTES_MAX + 1) };
  assert.equal(
    codeOf(() => validateRaftMessage(ctx)),
    'RAFT_MSG_TOO_LARGE',
  );
  const badVotes = {
    ...samples[0],
    entries: [
      {
        type: 'conf',
        term: 1,
        index: 1,
        change: { changes: [{ type: 'add-voter', node: 4, votes: 0 }], autoLeave: true },
      },
    ],
  };
  assert.equal(
    codeOf(() => validateRaftMessage(badVotes)),
    'RAFT_MSG_RANGE',
  );
});

test('100,000 generated values: only DecodeError escapes, and valid mutations pass', () => {
  const mutated = fc
    .tuple(fc.constantFrom(...samples), fc.string(), fc.anything())
    .map(([m, key, value]) => ({ ...m, [key]: value }));
  fc.assert(
    fc.property(fc.oneof(fc.anything(), mutated), (value) => {
      const code = codeOf(() => validateRaftMessage(value));
      assert.ok(code === 'ok' || code.startsWith('RAFT_MSG_'));
    }),
    { numRuns: 100_000, seed: 7 },
  );
});
