/**
 * Raft wire and log types: entries, configuration changes, snapshots and the peer messages, plus
 * `validateRaftMessage`, the structural validator the transport codec runs on every decoded
 * value before a core sees it.
 *
 * Every message is a plain object (numbers, booleans, strings, arrays, `Uint8Array`) so that a
 * msgpack codec round-trips it unchanged. Every variable-size field has a named bound; the
 * validator rejects anything larger with a `DecodeError`, so a peer can never make a core
 * allocate without bound.
 */
import { DecodeError } from '../lib/errors.js';
import { NODE_ID_MAX, type LogIndex, type NodeId, type Term } from '../lib/ids.js';
import type { TieBreakerMode } from '../quorum/index.js';
import {
  CLUSTER_NODES_MAX,
  FRAME_PAYLOAD_BYTES_MAX,
  QUORUM_EXPECTED_VOTES_MAX,
  QUORUM_TIE_BREAKER_LIST_MAX,
  RAFT_ENTRIES_PER_MESSAGE_MAX,
  RAFT_ENTRY_BYTES_MAX,
  RAFT_READ_CONTEXT_BYTES_MAX,
  RAFT_SNAPSHOT_BYTES_MAX,
  RAFT_VOTES_PER_NODE_MAX,
} from '../constants.js';

/**
 * What a voter stores: everything (`data`, the default) or only entry metadata (`witness`: index,
 * term and type, never the payload; it votes and acknowledges but never leads or applies).
 */
export type VoterRole = 'data' | 'witness';

/**
 * One change inside a configuration change. `votes` is the votequorum weight (>= 1); `role`
 * defaults to `data` and cannot change while the node stays in the configuration (remove the
 * node, wipe its storage, add it back). The `set-*` changes replace one quorum setting of the
 * incoming side; like voter changes they always go through a joint configuration.
 */
export type ConfChangeSingle =
  | { readonly type: 'add-voter'; readonly node: NodeId; readonly votes: number; readonly role?: VoterRole }
  | { readonly type: 'add-learner'; readonly node: NodeId }
  | { readonly type: 'remove-node'; readonly node: NodeId }
  /** `expectedVotes` 0 means "the sum of the voters' votes"; otherwise at least that sum. */
  | { readonly type: 'set-expected-votes'; readonly expectedVotes: number }
  /** The tie-breaker mode; each side resolves it against its own voters (`resolveTieBreaker`). */
  | { readonly type: 'set-tie-breaker'; readonly tieBreaker: TieBreakerMode };

/**
 * A configuration change. An empty `changes` list on a joint configuration means "leave the
 * joint configuration". Changes that touch voters always go through a joint configuration;
 * with `autoLeave` the leader proposes the leave itself once the joint configuration is applied.
 */
export interface ConfChange {
  readonly changes: readonly ConfChangeSingle[];
  readonly autoLeave: boolean;
}

/** A voter and its votequorum weight. Lists of these are sorted by node id. */
export type VoterWeight = readonly [node: NodeId, votes: number];

/**
 * The replicated quorum settings of one side of a configuration (votequorum `expected_votes` and
 * `auto_tie_breaker`). `expectedVotes` 0 derives E from the side's voters (their sum); a
 * non-zero value is at least that sum. The tie-breaker mode is resolved against the side's
 * voters, never against who is present, so every partition computes the same node.
 */
export interface QuorumSettings {
  readonly expectedVotes: number;
  readonly tieBreaker: TieBreakerMode;
}

/** Settings of a side that sets nothing: E = sum of votes, no tie-breaker. */
export const DEFAULT_QUORUM_SETTINGS: QuorumSettings = { expectedVotes: 0, tieBreaker: { kind: 'off' } };

/**
 * A (possibly joint) cluster configuration as stored in snapshots. `outgoing` is empty unless the
 * configuration is joint. `learnersNext` are voters of `outgoing` that become learners when the
 * joint configuration is left (a node cannot be a voter and a learner at once).
 *
 * The optional fields are absent when they hold their defaults, so a configuration that uses no
 * votequorum option has exactly the stored form it had before they existed: `quorum` (incoming
 * side's settings), `outgoingQuorum` (the outgoing side's, only while joint), `witnesses`
 * (members, voters or learners, that store only entry metadata; sorted).
 */
export interface ConfState {
  readonly voters: readonly VoterWeight[];
  readonly outgoing: readonly VoterWeight[];
  readonly learners: readonly NodeId[];
  readonly learnersNext: readonly NodeId[];
  readonly autoLeave: boolean;
  readonly quorum?: QuorumSettings;
  readonly outgoingQuorum?: QuorumSettings;
  readonly witnesses?: readonly NodeId[];
}

/**
 * An ordinary entry; the leader's empty entry at the start of its term has empty `data`.
 * `metadataOnly` marks a copy sent to a witness: the payload was left out on purpose, `data` is
 * empty, and the entry must never be applied or taken for the real one (only its index, term and
 * type are true).
 */
export interface NormalEntry {
  readonly type: 'normal';
  readonly term: Term;
  readonly index: LogIndex;
  readonly data: Uint8Array;
  readonly metadataOnly?: true;
}

/** A configuration change entry; it takes effect when it is applied. */
export interface ConfEntry {
  readonly type: 'conf';
  readonly term: Term;
  readonly index: LogIndex;
  readonly change: ConfChange;
}

/** One cluster log entry. */
export type Entry = NormalEntry | ConfEntry;

/**
 * What a snapshot covers: the last included entry and the configuration as of that entry.
 * `metadataOnly` marks a snapshot sent to a witness: its `data` was left out and is empty.
 */
export interface SnapshotMetadata {
  readonly index: LogIndex;
  readonly term: Term;
  readonly confState: ConfState;
  readonly metadataOnly?: true;
}

/** A state-machine snapshot; `data` is opaque to Raft. */
export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  readonly data: Uint8Array;
}

/** The state that must be durable before votes and acknowledgements leave the node. */
export interface HardState {
  readonly term: Term;
  /** The node this node voted for in `term`, or null. */
  readonly vote: NodeId | null;
  readonly commit: LogIndex;
}

interface Envelope {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
}

/** Leader to follower: append `entries` after (`index`, `logTerm`); also carries the commit index. */
export interface MsgApp extends Envelope {
  readonly type: 'MsgApp';
  readonly logTerm: Term;
  readonly index: LogIndex;
  readonly entries: readonly Entry[];
  readonly commit: LogIndex;
}

/**
 * Follower to leader. Accepted: `index` is the follower's last index known to match. Rejected:
 * `index` is the rejected MsgApp's `index`, and (`rejectHint`, `logTerm`) tell the leader where
 * to retry (the follower's best guess of the last entry that may match, and its term).
 */
export interface MsgAppResp extends Envelope {
  readonly type: 'MsgAppResp';
  readonly index: LogIndex;
  readonly reject: boolean;
  readonly rejectHint: LogIndex;
  readonly logTerm: Term;
}

/** A vote request for `term` with the candidate's last entry. `transfer` bypasses leader stickiness. */
export interface MsgVote extends Envelope {
  readonly type: 'MsgVote' | 'MsgPreVote';
  readonly logTerm: Term;
  readonly index: LogIndex;
  readonly transfer: boolean;
}

/** A vote answer; a pre-vote grant carries the term of the pre-vote it answers. */
export interface MsgVoteResp extends Envelope {
  readonly type: 'MsgVoteResp' | 'MsgPreVoteResp';
  readonly reject: boolean;
  /**
   * On a refusal: the refusing node's commit index and the term of its entry there. A candidate
   * that holds that same entry learns that everything up to it is committed (log matching), so
   * it can apply a configuration change it did not know had committed (e.g. when the leader that
   * committed its own removal crashed before telling anyone).
   */
  readonly commitHint?: { readonly index: LogIndex; readonly term: Term };
}

/** Leader liveness and commit propagation; `round` numbers leadership confirmations. */
export interface MsgHeartbeat extends Envelope {
  readonly type: 'MsgHeartbeat';
  readonly commit: LogIndex;
  readonly round: number;
}

/** Acknowledges heartbeat `round`. */
export interface MsgHeartbeatResp extends Envelope {
  readonly type: 'MsgHeartbeatResp';
  readonly round: number;
}

/** Leader to a follower whose next entry was compacted away: the whole snapshot. */
export interface MsgSnap extends Envelope {
  readonly type: 'MsgSnap';
  readonly snapshot: Snapshot;
}

/** Leadership transfer: the target campaigns at once, without pre-vote. */
export interface MsgTimeoutNow extends Envelope {
  readonly type: 'MsgTimeoutNow';
}

/** Follower to leader: "what index must I wait for to serve a linearizable read?" */
export interface MsgReadIndex extends Envelope {
  readonly type: 'MsgReadIndex';
  readonly context: Uint8Array;
}

/** Leader's answer to MsgReadIndex; `reject` when it cannot serve reads yet. */
export interface MsgReadIndexResp extends Envelope {
  readonly type: 'MsgReadIndexResp';
  readonly context: Uint8Array;
  readonly index: LogIndex;
  readonly reject: boolean;
}

/** Every message Raft cores exchange. Switch on `type`; end with `assertNever`. */
export type RaftMessage =
  | MsgApp
  | MsgAppResp
  | MsgVote
  | MsgVoteResp
  | MsgHeartbeat
  | MsgHeartbeatResp
  | MsgSnap
  | MsgTimeoutNow
  | MsgReadIndex
  | MsgReadIndexResp;

/** The `type` tags of `RaftMessage`. */
export type RaftMessageType = RaftMessage['type'];

/** Fixed per-entry overhead used when sizing batches (index, term, type, framing). */
export const ENTRY_OVERHEAD_BYTES = 24;

/** Approximate encoded size of an entry, for byte budgets (never for correctness). */
export function entrySizeBytes(entry: Entry): number {
  switch (entry.type) {
    case 'normal':
      return ENTRY_OVERHEAD_BYTES + entry.data.length;
    case 'conf': {
      let listed = 0;
      for (const c of entry.change.changes)
        if (c.type === 'set-tie-breaker' && c.tieBreaker.kind === 'list') listed += c.tieBreaker.nodes.length;
      return ENTRY_OVERHEAD_BYTES + 16 * (entry.change.changes.length + 1) + 4 * listed;
    }
    default:
      return unreachable(entry);
  }
}

function unreachable(value: never): never {
  throw new DecodeError('RAFT_UNREACHABLE', `unexpected value ${JSON.stringify(value)}`);
}

// ---------------------------------------------------------------------------------------------
// Validation. Each helper throws a DecodeError naming the field; nothing else escapes.

type Obj = Readonly<Record<string, unknown>>;

function fail(code: string, message: string): never {
  throw new DecodeError(code, `invalid raft message: ${message}`);
}

function object(value: unknown, what: string): Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) {
    fail('RAFT_MSG_SHAPE', `${what} must be an object`);
  }
  return value as Obj;
}

function uint(o: Obj, key: string, what: string, max = Number.MAX_SAFE_INTEGER): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    fail('RAFT_MSG_FIELD', `${what}.${key} must be a non-negative safe integer`);
  if (v > max) fail('RAFT_MSG_RANGE', `${what}.${key} = ${v} exceeds ${max}`);
  return v;
}

function node(v: unknown, what: string): NodeId {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > NODE_ID_MAX)
    fail('RAFT_MSG_FIELD', `${what} must be a node id in [1, ${NODE_ID_MAX}]`);
  return v as NodeId;
}

function bool(o: Obj, key: string, what: string): boolean {
  const v = o[key];
  if (typeof v !== 'boolean') fail('RAFT_MSG_FIELD', `${what}.${key} must be a boolean`);
  return v;
}

function bytes(o: Obj, key: string, what: string, max: number): Uint8Array {
  const v = o[key];
  if (!(v instanceof Uint8Array)) fail('RAFT_MSG_FIELD', `${what}.${key} must be bytes`);
  if (v.length > max) fail('RAFT_MSG_TOO_LARGE', `${what}.${key} has ${v.length} bytes, the limit is ${max}`);
  return v;
}

function array(o: Obj, key: string, what: string, max: number): readonly unknown[] {
  const v = o[key];
  if (!Array.isArray(v)) fail('RAFT_MSG_FIELD', `${what}.${key} must be an array`);
  if (v.length > max) fail('RAFT_MSG_TOO_LARGE', `${what}.${key} has ${v.length} items, the limit is ${max}`);
  return v;
}

/** A tie-breaker mode: `{kind: 'off'|'lowest'|'highest'}` or `{kind: 'list', nodes}` (distinct ids). */
function tieBreakerMode(value: unknown, what: string): TieBreakerMode {
  const o = object(value, what);
  switch (o['kind']) {
    case 'off':
    case 'lowest':
    case 'highest':
      return { kind: o['kind'] };
    case 'list': {
      const nodes = array(o, 'nodes', what, QUORUM_TIE_BREAKER_LIST_MAX).map((n, i) => node(n, `${what}.nodes[${i}]`));
      if (nodes.length === 0) fail('RAFT_MSG_RANGE', `${what}.nodes must name at least one node`);
      if (new Set(nodes).size !== nodes.length) fail('RAFT_MSG_FIELD', `${what}.nodes names a node twice`);
      return { kind: 'list', nodes };
    }
    default:
      return fail('RAFT_MSG_FIELD', `${what}.kind must be 'off', 'lowest', 'highest' or 'list'`);
  }
}

function addVoter(o: Obj, what: string): ConfChangeSingle {
  if (uint(o, 'votes', what, RAFT_VOTES_PER_NODE_MAX) < 1) fail('RAFT_MSG_RANGE', `${what}.votes must be at least 1`);
  const base = { type: 'add-voter', node: node(o['node'], `${what}.node`), votes: o['votes'] as number } as const;
  const role = o['role'];
  if (role === undefined || role === 'data') return base;
  if (role !== 'witness') fail('RAFT_MSG_FIELD', `${what}.role must be 'data' or 'witness'`);
  return { ...base, role };
}

function confChangeSingle(value: unknown, what: string): ConfChangeSingle {
  const o = object(value, what);
  switch (o['type']) {
    case 'add-voter':
      return addVoter(o, what);
    case 'add-learner':
      return { type: 'add-learner', node: node(o['node'], `${what}.node`) };
    case 'remove-node':
      return { type: 'remove-node', node: node(o['node'], `${what}.node`) };
    case 'set-expected-votes':
      return { type: 'set-expected-votes', expectedVotes: uint(o, 'expectedVotes', what, QUORUM_EXPECTED_VOTES_MAX) };
    case 'set-tie-breaker':
      return { type: 'set-tie-breaker', tieBreaker: tieBreakerMode(o['tieBreaker'], `${what}.tieBreaker`) };
    default:
      return fail('RAFT_MSG_FIELD', `${what}.type is not a known configuration change`);
  }
}

function confChange(value: unknown, what: string): ConfChange {
  const o = object(value, what);
  const changes = array(o, 'changes', what, CLUSTER_NODES_MAX).map((c, i) =>
    confChangeSingle(c, `${what}.changes[${i}]`),
  );
  return { changes, autoLeave: bool(o, 'autoLeave', what) };
}

function entry(value: unknown, what: string): Entry {
  const o = object(value, what);
  const term = uint(o, 'term', what) as Term;
  const index = uint(o, 'index', what) as LogIndex;
  if (index < 1) fail('RAFT_MSG_RANGE', `${what}.index must be at least 1`);
  switch (o['type']) {
    case 'normal': {
      const data = bytes(o, 'data', what, RAFT_ENTRY_BYTES_MAX);
      if (!optionalTrue(o, 'metadataOnly', what)) return { type: 'normal', term, index, data };
      if (data.length > 0)
        fail('RAFT_MSG_FIELD', `${what} is marked metadataOnly but carries ${data.length} data bytes`);
      return { type: 'normal', term, index, data, metadataOnly: true };
    }
    case 'conf':
      return { type: 'conf', term, index, change: confChange(o['change'], `${what}.change`) };
    default:
      return fail('RAFT_MSG_FIELD', `${what}.type must be 'normal' or 'conf'`);
  }
}

function voterList(o: Obj, key: string, what: string): VoterWeight[] {
  return array(o, key, what, CLUSTER_NODES_MAX).map((v, i) => {
    if (!Array.isArray(v) || v.length !== 2)
      fail('RAFT_MSG_FIELD', `${what}.${key}[${i}] must be a [node, votes] pair`);
    const votes: unknown = v[1];
    if (typeof votes !== 'number' || !Number.isInteger(votes) || votes < 1 || votes > RAFT_VOTES_PER_NODE_MAX) {
      fail('RAFT_MSG_RANGE', `${what}.${key}[${i}] votes must be in [1, ${RAFT_VOTES_PER_NODE_MAX}]`);
    }
    return [node(v[0], `${what}.${key}[${i}]`), votes] as const;
  });
}

/** `o[key]` is absent (false) or exactly `true`; anything else is refused. */
function optionalTrue(o: Obj, key: string, what: string): boolean {
  const v = o[key];
  if (v === undefined) return false;
  if (v !== true) fail('RAFT_MSG_FIELD', `${what}.${key} must be true when present`);
  return true;
}

function quorumSettings(value: unknown, what: string): QuorumSettings {
  const o = object(value, what);
  return {
    expectedVotes: uint(o, 'expectedVotes', what, QUORUM_EXPECTED_VOTES_MAX),
    tieBreaker: tieBreakerMode(o['tieBreaker'], `${what}.tieBreaker`),
  };
}

/**
 * Validates a configuration as found in a snapshot (also used by storage decoders). Shape and
 * bounds only; whether the configuration obeys the quorum rules is `configFromConfState`'s check.
 */
export function validateConfState(value: unknown, what = 'confState'): ConfState {
  const o = object(value, what);
  const nodes = (key: string): NodeId[] =>
    array(o, key, what, CLUSTER_NODES_MAX).map((n, i) => node(n, `${what}.${key}[${i}]`));
  const base: ConfState = {
    voters: voterList(o, 'voters', what),
    outgoing: voterList(o, 'outgoing', what),
    learners: nodes('learners'),
    learnersNext: nodes('learnersNext'),
    autoLeave: bool(o, 'autoLeave', what),
  };
  return {
    ...base,
    ...(o['quorum'] === undefined ? {} : { quorum: quorumSettings(o['quorum'], `${what}.quorum`) }),
    ...(o['outgoingQuorum'] === undefined
      ? {}
      : { outgoingQuorum: quorumSettings(o['outgoingQuorum'], `${what}.outgoingQuorum`) }),
    ...(o['witnesses'] === undefined ? {} : { witnesses: nodes('witnesses') }),
  };
}

function snapshot(value: unknown, what: string): Snapshot {
  const o = object(value, what);
  const m = object(o['metadata'], `${what}.metadata`);
  const metadata: SnapshotMetadata = {
    index: uint(m, 'index', `${what}.metadata`) as LogIndex,
    term: uint(m, 'term', `${what}.metadata`) as Term,
    confState: validateConfState(m['confState'], `${what}.metadata.confState`),
  };
  const data = bytes(o, 'data', what, RAFT_SNAPSHOT_BYTES_MAX);
  if (!optionalTrue(m, 'metadataOnly', `${what}.metadata`)) return { metadata, data };
  if (data.length > 0) fail('RAFT_MSG_FIELD', `${what} is marked metadataOnly but carries ${data.length} data bytes`);
  return { metadata: { ...metadata, metadataOnly: true }, data };
}

function entries(o: Obj, what: string): Entry[] {
  const list = array(o, 'entries', what, RAFT_ENTRIES_PER_MESSAGE_MAX).map((e, i) => entry(e, `${what}.entries[${i}]`));
  let total = 0;
  for (const e of list) total += entrySizeBytes(e);
  if (total > FRAME_PAYLOAD_BYTES_MAX)
    fail('RAFT_MSG_TOO_LARGE', `${what}.entries total ${total} bytes, the limit is ${FRAME_PAYLOAD_BYTES_MAX}`);
  return list;
}

/**
 * Checks that `value` (typically fresh out of msgpack) is a well-formed `RaftMessage` within
 * every size bound, and returns it typed. Throws `DecodeError` with a `RAFT_MSG_*` code
 * otherwise; never anything else. Semantic checks (is the term current, do indexes match the
 * log) are the core's job; this only guarantees shape and bounds.
 */
export function validateRaftMessage(value: unknown): RaftMessage {
  const o = object(value, 'message');
  const type = o['type'];
  if (typeof type !== 'string') fail('RAFT_MSG_TYPE', 'message.type must be a string');
  const what = type;
  const env = {
    from: node(o['from'], `${what}.from`),
    to: node(o['to'], `${what}.to`),
    term: uint(o, 'term', what) as Term,
  };
  switch (type as RaftMessageType) {
    case 'MsgApp':
      return {
        type: 'MsgApp',
        ...env,
        logTerm: uint(o, 'logTerm', what) as Term,
        index: uint(o, 'index', what) as LogIndex,
        entries: entries(o, what),
        commit: uint(o, 'commit', what) as LogIndex,
      };
    case 'MsgAppResp':
      return {
        type: 'MsgAppResp',
        ...env,
        index: uint(o, 'index', what) as LogIndex,
        reject: bool(o, 'reject', what),
        rejectHint: uint(o, 'rejectHint', what) as LogIndex,
        logTerm: uint(o, 'logTerm', what) as Term,
      };
    case 'MsgVote':
    case 'MsgPreVote':
      return {
        type: type as 'MsgVote' | 'MsgPreVote',
        ...env,
        logTerm: uint(o, 'logTerm', what) as Term,
        index: uint(o, 'index', what) as LogIndex,
        transfer: bool(o, 'transfer', what),
      };
    case 'MsgVoteResp':
    case 'MsgPreVoteResp': {
      const resp = { type: type as 'MsgVoteResp' | 'MsgPreVoteResp', ...env, reject: bool(o, 'reject', what) };
      const hint = o['commitHint'];
      if (hint === undefined) return resp;
      if (typeof hint !== 'object' || hint === null) fail('RAFT_MSG_FIELD', `${what}.commitHint must be an object`);
      const h = hint as Obj;
      return {
        ...resp,
        commitHint: {
          index: uint(h, 'index', `${what}.commitHint`) as LogIndex,
          term: uint(h, 'term', `${what}.commitHint`) as Term,
        },
      };
    }
    case 'MsgHeartbeat':
      return {
        type: 'MsgHeartbeat',
        ...env,
        commit: uint(o, 'commit', what) as LogIndex,
        round: uint(o, 'round', what),
      };
    case 'MsgHeartbeatResp':
      return { type: 'MsgHeartbeatResp', ...env, round: uint(o, 'round', what) };
    case 'MsgSnap':
      return { type: 'MsgSnap', ...env, snapshot: snapshot(o['snapshot'], `${what}.snapshot`) };
    case 'MsgTimeoutNow':
      return { type: 'MsgTimeoutNow', ...env };
    case 'MsgReadIndex':
      return { type: 'MsgReadIndex', ...env, context: bytes(o, 'context', what, RAFT_READ_CONTEXT_BYTES_MAX) };
    case 'MsgReadIndexResp':
      return {
        type: 'MsgReadIndexResp',
        ...env,
        context: bytes(o, 'context', what, RAFT_READ_CONTEXT_BYTES_MAX),
        index: uint(o, 'index', what) as LogIndex,
        reject: bool(o, 'reject', what),
      };
    default:
      return fail('RAFT_MSG_TYPE', `unknown message type ${JSON.stringify(type).slice(0, 64)}`);
  }
}

/** Validates one log entry (also used by the WAL decoder of the node shell). */
export function validateEntry(value: unknown, what = 'entry'): Entry {
  return entry(value, what);
}
