/**
 * The commands of the membership state machine, their structural validation and their binary
 * codec. See docs/membership.md for what each command does.
 *
 * Two levels of checking, on purpose:
 * - **Structure** (this file): ids and incarnations in range, strings short and well formed,
 *   lists sorted and free of duplicates, enums known. The decoder enforces it (a `DecodeError`),
 *   the encoder asserts it (proposing a malformed command is a caller bug), and `apply` returns
 *   `MEMBERSHIP_INVALID_COMMAND` for an already decoded command that breaks it.
 * - **Meaning** (the state machine): whether a configuration obeys the quorum rules, whether a
 *   node is configured, whether an incarnation is current. Those answers depend on the state, so
 *   they are deterministic `ApplyError`s or outcomes at apply time.
 *
 * The encoding is canonical: every valid command has exactly one encoding, and `decode` accepts
 * only that encoding (booleans are 0 or 1, lists strictly ascending), so `encode(decode(b))`
 * equals `b` for every `b` that decodes.
 */
import { assert, assertNever } from '../lib/assert.js';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { DecodeError } from '../lib/errors.js';
import { NODE_ID_MAX, type Incarnation, type NodeId } from '../lib/ids.js';
import type { TieBreakerMode, VotequorumOptions } from '../quorum/index.js';
import type { ApplyError, CommandCodec } from '../log/state-machine.js';
import {
  GROUP_COMMAND_TYPES,
  readGroupCommand,
  validateGroupCommand,
  writeGroupCommand,
  type GroupCommand,
} from '../groups/index.js';
import {
  fenceAttemptProblem,
  fenceProofProblem,
  fenceUnfenceProblem,
  isBareConfirm,
  readFenceAttempt,
  readFenceProof,
  readFenceUnfence,
  writeFenceAttempt,
  writeFenceProof,
  writeFenceUnfence,
  type FenceAttempt,
  type FenceProof,
  type FenceUnfence,
} from '../fencing/index.js';
import {
  RECOVERY_COMMAND_TYPES,
  readRecoveryCommand,
  validateRecoveryCommand,
  writeRecoveryCommand,
  type RecoveryCommand,
} from '../recovery/index.js';
import {
  CLUSTER_NODES_MAX,
  MEMBERSHIP_NODE_ADDRESS_BYTES_MAX,
  MEMBERSHIP_NODE_NAME_BYTES_MAX,
  MEMBERSHIP_NOTE_BYTES_MAX,
  QUORUM_EXPECTED_VOTES_MAX,
  QUORUM_LMS_WINDOW_TICKS_MAX,
  QUORUM_TIE_BREAKER_LIST_MAX,
  RAFT_VOTES_PER_NODE_MAX,
} from '../constants.js';

// ------------------------------------------------------------------------------------------------
// Types

/** What a configured node is for: a voter, a non-voting learner (votes 0), or a vote-only witness. */
export type MemberRole = 'voter' | 'learner' | 'witness';

/** One configured node, as the `configure` command commits it. */
export interface MemberNodeSpec {
  readonly nodeId: NodeId;
  /** Human name, 1..MEMBERSHIP_NODE_NAME_BYTES_MAX UTF-8 bytes. */
  readonly name: string;
  /** `host:port`, 1..MEMBERSHIP_NODE_ADDRESS_BYTES_MAX UTF-8 bytes (the config layer checks the syntax). */
  readonly address: string;
  /** 0 exactly for a learner; 1..RAFT_VOTES_PER_NODE_MAX for voters and witnesses. */
  readonly votes: number;
  readonly role: MemberRole;
}

/** Why a node is declared failed, with the evidence behind it (stored in the view event). */
export type FailReason =
  /** The leader's failure detector: how long the node was silent and what corroborated it. */
  | {
      readonly kind: 'detector';
      /** Silence the leader measured, in ms. */
      readonly silentMs: number;
      /** The eviction threshold that applied (suspicion window and lag extension included), in ms. */
      readonly timeoutMs: number;
      /** Other nodes whose reachability rows also missed the node, ascending. */
      readonly corroborators: readonly NodeId[];
      /** The leader's own event-loop lag counted at the decision, in ms. */
      readonly lagMs: number;
    }
  /** An operator (or a test) declared it failed. */
  | { readonly kind: 'operator'; readonly note: string }
  /**
   * The leader's transport proved the process gone (`Transport.onPeerGone`: its host closed its
   * connections and refused a reconnect), so it was failed without waiting out the timeout;
   * `silentMs` is how long the leader had not heard it then.
   */
  | { readonly kind: 'process-gone'; readonly silentMs: number };

/** Why a node is quarantined (a gray failure kept out instead of evicted and readmitted in a loop). */
export type QuarantineReason =
  /** The leader could not hear the node while other nodes could, for `silentMs`. */
  | { readonly kind: 'partial-connectivity'; readonly silentMs: number; readonly heardBy: readonly NodeId[] }
  /** The node was declared failed `failures` times within `windowMs`. */
  | { readonly kind: 'flapping'; readonly failures: number; readonly windowMs: number }
  | { readonly kind: 'operator'; readonly note: string };

/**
 * A membership command as proposed to the cluster log.
 *
 * - `configure`: the configured nodes (strictly ascending ids) and the quorum options; committed
 *   at bootstrap and on every configuration change (including a last-man-standing step). With
 *   `resetExpectedTracking` the tracked highest expected votes restarts from this configuration
 *   (an operator's explicit change or a last-man-standing step; see `src/quorum/expected-votes.ts`).
 * - `join` / `leave`: a node's incarnation enters or cleanly leaves the view.
 * - `fail`: the incarnation is removed uncleanly and must be fenced.
 * - `fenced`: the fencing layer proves the node was fenced at this incarnation or later (`proof`:
 *   a level's devices all succeeded, a watchdog wait elapsed, or an operator confirmed); it closes
 *   the fence record of the incarnation that was pending.
 * - `fence-attempt`: the leader's fence executor ran one device against the incarnation; recorded
 *   in its pending fence record (a no-op for a finished or unknown record).
 * - `unfence`: a device was told `on` for the node after the incarnation's fence (a clean join of
 *   a newer incarnation); recorded in the finished fence record (a no-op otherwise).
 * - `quarantine`: keep the node out (and fenced) until `release`; `incarnation` null means
 *   whatever incarnation is current (an operator's command).
 * - `release`: lift a quarantine.
 * - `group-join`, `group-leave`, `group-send`, `barrier`: service groups (`src/groups`); they live
 *   here so a group view changes at the same log position as the cluster view that removes a member.
 * - `recovery-report`, `recovery-evict`: the recovery coordinator (`src/recovery`); they live here
 *   so a round changes at the same log positions as the group views it recovers.
 */
export type MembershipCommand =
  | {
      readonly type: 'configure';
      readonly nodes: readonly MemberNodeSpec[];
      readonly options: VotequorumOptions;
      readonly resetExpectedTracking: boolean;
      /** The proposer's cluster-wide settings fingerprint; joins must carry the same one. */
      readonly fingerprint?: string;
    }
  | {
      readonly type: 'join';
      readonly node: NodeId;
      readonly incarnation: Incarnation;
      /** The joining node's cluster-wide settings fingerprint (absent: not checked). */
      readonly fingerprint?: string;
    }
  | { readonly type: 'leave'; readonly node: NodeId; readonly incarnation: Incarnation }
  | { readonly type: 'fail'; readonly node: NodeId; readonly incarnation: Incarnation; readonly reason: FailReason }
  | { readonly type: 'fenced'; readonly node: NodeId; readonly incarnation: Incarnation; readonly proof: FenceProof }
  | {
      readonly type: 'fence-attempt';
      readonly node: NodeId;
      readonly incarnation: Incarnation;
      readonly attempt: FenceAttempt;
    }
  | {
      readonly type: 'unfence';
      readonly node: NodeId;
      readonly incarnation: Incarnation;
      readonly unfence: FenceUnfence;
    }
  | {
      readonly type: 'quarantine';
      readonly node: NodeId;
      readonly incarnation: Incarnation | null;
      readonly reason: QuarantineReason;
    }
  | { readonly type: 'release'; readonly node: NodeId }
  | GroupCommand
  | RecoveryCommand;

/** The command types, for exhaustive tables. */
export type MembershipCommandType = MembershipCommand['type'];

/** Largest millisecond figure carried in evidence (fits the u32 encoding; about 49 days). */
export const EVIDENCE_MS_MAX = 0xffff_ffff;

// ------------------------------------------------------------------------------------------------
// Structural validation

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
// With the `u` flag a surrogate class matches only unpaired surrogates, which UTF-8 cannot encode.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** UTF-8 length of `s`, or -1 when `s` holds an unpaired surrogate (not encodable). */
export function utf8Length(s: string): number {
  if (LONE_SURROGATE.test(s)) return -1;
  return textEncoder.encode(s).length;
}

function invalid(message: string): ApplyError {
  return { code: 'MEMBERSHIP_INVALID_COMMAND', message };
}

function isNodeId(n: number): boolean {
  return Number.isInteger(n) && n >= 1 && n <= NODE_ID_MAX;
}

function isIncarnation(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 1;
}

function isMs(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= EVIDENCE_MS_MAX;
}

function checkText(s: string, what: string, minBytes: number, maxBytes: number): ApplyError | null {
  const n = utf8Length(s);
  if (n < 0) return invalid(`${what} holds an unpaired UTF-16 surrogate; use well-formed Unicode`);
  if (n < minBytes || n > maxBytes)
    return invalid(`${what} is ${n} UTF-8 bytes; it must be ${minBytes} to ${maxBytes}`);
  return null;
}

/** Node ids strictly ascending (sorted, no duplicates), at most `max`. */
function checkIdList(ids: readonly NodeId[], what: string, max: number): ApplyError | null {
  if (ids.length > max) return invalid(`${what} lists ${ids.length} nodes; at most ${max} are allowed`);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i] as number;
    if (!isNodeId(id)) return invalid(`${what} holds ${id}, which is not a node id (1 to ${NODE_ID_MAX})`);
    if (i > 0 && id <= (ids[i - 1] as number))
      return invalid(`${what} must be strictly ascending (sorted, no repeats); found ${ids[i - 1] ?? ''} then ${id}`);
  }
  return null;
}

function checkNodeSpec(n: MemberNodeSpec, at: number): ApplyError | null {
  if (!isNodeId(n.nodeId))
    return invalid(`nodes[${at}] has id ${n.nodeId}; node ids are integers from 1 to ${NODE_ID_MAX}`);
  const text =
    checkText(n.name, `nodes[${at}].name`, 1, MEMBERSHIP_NODE_NAME_BYTES_MAX) ??
    checkText(n.address, `nodes[${at}].address`, 1, MEMBERSHIP_NODE_ADDRESS_BYTES_MAX);
  if (text !== null) return text;
  if (!Number.isInteger(n.votes) || n.votes < 0 || n.votes > RAFT_VOTES_PER_NODE_MAX) {
    return invalid(`node ${n.nodeId} has votes ${n.votes}; votes are integers from 0 to ${RAFT_VOTES_PER_NODE_MAX}`);
  }
  switch (n.role) {
    case 'learner':
      return n.votes === 0
        ? null
        : invalid(
            `node ${n.nodeId} is a learner with ${n.votes} votes; a learner has votes 0 (make it a voter to give it votes)`,
          );
    case 'voter':
    case 'witness':
      return n.votes > 0
        ? null
        : invalid(`node ${n.nodeId} is a ${n.role} with votes 0; give it votes >= 1 or make it a learner`);
    default:
      return assertNever(n.role, 'member role');
  }
}

function checkTieBreaker(mode: TieBreakerMode): ApplyError | null {
  switch (mode.kind) {
    case 'off':
    case 'lowest':
    case 'highest':
      return null;
    case 'list':
      if (mode.nodes.length === 0)
        return invalid('auto_tie_breaker list is empty; list at least one node or use lowest/highest');
      // The priority order matters, so the list is not sorted: only range and repeats are checked.
      if (mode.nodes.length > QUORUM_TIE_BREAKER_LIST_MAX)
        return invalid(`auto_tie_breaker list has ${mode.nodes.length} nodes; at most ${QUORUM_TIE_BREAKER_LIST_MAX}`);
      if (!mode.nodes.every(isNodeId)) return invalid('auto_tie_breaker list holds a value that is not a node id');
      if (new Set(mode.nodes).size !== mode.nodes.length) return invalid('auto_tie_breaker list names a node twice');
      return null;
    default:
      return assertNever(mode, 'tie-breaker mode');
  }
}

function checkOptions(o: VotequorumOptions): ApplyError | null {
  if (
    o.expectedVotes !== undefined &&
    (!Number.isInteger(o.expectedVotes) || o.expectedVotes < 1 || o.expectedVotes > QUORUM_EXPECTED_VOTES_MAX)
  ) {
    return invalid(`expected_votes ${o.expectedVotes} must be an integer from 1 to ${QUORUM_EXPECTED_VOTES_MAX}`);
  }
  if (
    !Number.isInteger(o.lastManStandingWindowTicks) ||
    o.lastManStandingWindowTicks < 1 ||
    o.lastManStandingWindowTicks > QUORUM_LMS_WINDOW_TICKS_MAX
  ) {
    return invalid(
      `last_man_standing_window ${o.lastManStandingWindowTicks} ticks must be an integer from 1 to ${QUORUM_LMS_WINDOW_TICKS_MAX}`,
    );
  }
  return checkTieBreaker(o.autoTieBreaker);
}

function checkConfigure(nodes: readonly MemberNodeSpec[], options: VotequorumOptions): ApplyError | null {
  if (nodes.length === 0 || nodes.length > CLUSTER_NODES_MAX)
    return invalid(`a configuration lists ${nodes.length} nodes; it needs 1 to ${CLUSTER_NODES_MAX}`);
  for (let i = 0; i < nodes.length; i++) {
    const n = nodes[i] as MemberNodeSpec;
    const bad = checkNodeSpec(n, i);
    if (bad !== null) return bad;
    const prev = nodes[i - 1];
    if (prev !== undefined && n.nodeId <= prev.nodeId)
      return invalid(`configured nodes must be sorted by id with no repeats; found ${prev.nodeId} then ${n.nodeId}`);
  }
  return checkOptions(options);
}

function checkFailReason(r: FailReason): ApplyError | null {
  switch (r.kind) {
    case 'detector':
      if (!isMs(r.silentMs) || !isMs(r.timeoutMs) || !isMs(r.lagMs))
        return invalid(`failure evidence times must be integers from 0 to ${EVIDENCE_MS_MAX} ms`);
      return checkIdList(r.corroborators, 'corroborators', CLUSTER_NODES_MAX);
    case 'operator':
      return checkText(r.note, 'note', 0, MEMBERSHIP_NOTE_BYTES_MAX);
    case 'process-gone':
      return isMs(r.silentMs)
        ? null
        : invalid(`failure evidence times must be integers from 0 to ${EVIDENCE_MS_MAX} ms`);
    default:
      return assertNever(r, 'fail reason');
  }
}

function checkQuarantineReason(r: QuarantineReason): ApplyError | null {
  switch (r.kind) {
    case 'partial-connectivity':
      if (!isMs(r.silentMs)) return invalid(`quarantine silentMs must be an integer from 0 to ${EVIDENCE_MS_MAX}`);
      return checkIdList(r.heardBy, 'heardBy', CLUSTER_NODES_MAX);
    case 'flapping':
      if (!isMs(r.failures) || !isMs(r.windowMs))
        return invalid(`flapping evidence must be integers from 0 to ${EVIDENCE_MS_MAX}`);
      return null;
    case 'operator':
      return checkText(r.note, 'note', 0, MEMBERSHIP_NOTE_BYTES_MAX);
    default:
      return assertNever(r, 'quarantine reason');
  }
}

/** Longest settings fingerprint, in bytes (`sha256:` and 64 hex digits fit). */
export const FINGERPRINT_BYTES_MAX = 80;

function checkFingerprint(f: string | undefined): ApplyError | null {
  if (f === undefined) return null;
  return checkText(f, 'settings fingerprint', 1, FINGERPRINT_BYTES_MAX);
}

function checkNodeAndIncarnation(node: number, inc: number | null): ApplyError | null {
  if (!isNodeId(node)) return invalid(`${node} is not a node id (1 to ${NODE_ID_MAX})`);
  if (inc !== null && !isIncarnation(inc))
    return invalid(`incarnation ${inc} must be a positive safe integer (nodes count their starts from 1)`);
  return null;
}

function checkFence(problem: string | null): ApplyError | null {
  return problem === null ? null : invalid(problem);
}

/**
 * Checks a command's structure. Returns null when valid, or the `MEMBERSHIP_INVALID_COMMAND`
 * error `apply` returns for it. Proposers call it before `encode`, which asserts.
 */
export function validateMembershipCommand(c: MembershipCommand): ApplyError | null {
  switch (c.type) {
    case 'configure':
      return checkConfigure(c.nodes, c.options) ?? checkFingerprint(c.fingerprint);
    case 'join':
      return checkNodeAndIncarnation(c.node, c.incarnation) ?? checkFingerprint(c.fingerprint);
    case 'leave':
      return checkNodeAndIncarnation(c.node, c.incarnation);
    case 'fenced':
      return checkNodeAndIncarnation(c.node, c.incarnation) ?? checkFence(fenceProofProblem(c.proof));
    case 'fence-attempt':
      return checkNodeAndIncarnation(c.node, c.incarnation) ?? checkFence(fenceAttemptProblem(c.attempt));
    case 'unfence':
      return checkNodeAndIncarnation(c.node, c.incarnation) ?? checkFence(fenceUnfenceProblem(c.unfence));
    case 'fail':
      return checkNodeAndIncarnation(c.node, c.incarnation) ?? checkFailReason(c.reason);
    case 'quarantine':
      return checkNodeAndIncarnation(c.node, c.incarnation) ?? checkQuarantineReason(c.reason);
    case 'release':
      return checkNodeAndIncarnation(c.node, null);
    case 'group-join':
    case 'group-leave':
    case 'group-send':
    case 'barrier':
      return validateGroupCommand(c);
    case 'recovery-report':
    case 'recovery-evict':
      return validateRecoveryCommand(c);
    default:
      return assertNever(c, 'membership command');
  }
}

// ------------------------------------------------------------------------------------------------
// Codec. Byte 0 names the command *and* its encoding: a future encoding takes a new tag, so
// entries already in logs and snapshots keep decoding. Little-endian; node ids are u16.
// Tags: 1 configure, 2 join, 3 leave, 4 fail, 5 fenced (bare confirmation), 6 quarantine,
// 7 release, 8-11 group commands, 12 fence-attempt, 13 fenced (with proof), 14 unfence,
// 15-16 recovery commands.

const TAG_CONFIGURE = 1;
const TAG_JOIN = 2;
const TAG_LEAVE = 3;
const TAG_FAIL = 4;
const TAG_FENCED = 5;
const TAG_QUARANTINE = 6;
const TAG_RELEASE = 7;
/** Group commands take tags 8.. in `GROUP_COMMAND_TYPES` order (8 to 11). */
const TAG_GROUP_FIRST = 8;
/** `fence-attempt`. */
const TAG_FENCE_ATTEMPT = 12;
/**
 * `fenced` with its proof. A bare confirmation (no operator, no time) keeps the old encoding,
 * tag 5 (node, incarnation), so old entries decode as `proof: {by: 'confirm'}` and the encoding
 * stays canonical: tag 13 never carries a bare confirmation.
 */
const TAG_FENCED_PROOF = 13;
/** `unfence`. */
const TAG_UNFENCE = 14;
/** Recovery commands take tags 15.. in `RECOVERY_COMMAND_TYPES` order (15 `recovery-report`, 16 `recovery-evict`). */
const TAG_RECOVERY_FIRST = 15;
assert(TAG_GROUP_FIRST + GROUP_COMMAND_TYPES.length <= TAG_FENCE_ATTEMPT, 'group tags end before the fence tags');

const ROLES: readonly MemberRole[] = ['voter', 'learner', 'witness'];
const TIE_BREAKER_KINDS: readonly TieBreakerMode['kind'][] = ['off', 'lowest', 'highest', 'list'];
/** Append only: a kind's index is its byte on the wire. */
const FAIL_KINDS: readonly FailReason['kind'][] = ['detector', 'operator', 'process-gone'];
const QUARANTINE_KINDS: readonly QuarantineReason['kind'][] = ['partial-connectivity', 'flapping', 'operator'];

/** Writes a string as u32 length + UTF-8 (shared with the snapshot and event encodings). */
export function writeText(w: ByteWriter, s: string): void {
  w.lenBytes(textEncoder.encode(s));
}

/** Reads a u32-length-prefixed UTF-8 string of at most `maxBytes`; raises only `DecodeError`. */
export function readText(r: ByteReader, maxBytes: number, what: string): string {
  const b = r.lenBytes(maxBytes, what);
  try {
    return textDecoder.decode(b);
  } catch (cause) {
    throw new DecodeError('DECODE_UTF8', `${what} is not valid UTF-8`, { cause });
  }
}

/** Reads a byte that must be 0 or 1 (canonical booleans). */
export function readBool(r: ByteReader, what: string): boolean {
  const b = r.u8(what);
  if (b > 1) throw new DecodeError('DECODE_INVALID', `${what} is ${b}; a boolean is 0 or 1`);
  return b === 1;
}

/** Reads a u8 index into `values`. */
export function readEnum<T>(r: ByteReader, values: readonly T[], what: string): T {
  const i = r.u8(what);
  const v = values[i];
  if (v === undefined)
    throw new DecodeError('DECODE_INVALID', `${what} ${i} is not one of the ${values.length} known values`);
  return v;
}

/** Writes the index of `value` in `values` as a u8. */
export function writeEnum<T>(w: ByteWriter, values: readonly T[], value: T): void {
  const i = values.indexOf(value);
  assert(i >= 0, 'enum value is known');
  w.u8(i);
}

/** Writes a u8 count then u16 node ids. */
export function writeIds(w: ByteWriter, ids: readonly NodeId[]): void {
  w.u8(ids.length);
  for (const id of ids) w.u16(id);
}

/** Reads a u8 count (at most `max`) then u16 node ids; ids must be valid node ids. */
export function readIds(r: ByteReader, max: number, what: string): NodeId[] {
  const count = r.u8(`${what} count`);
  if (count > max) throw new DecodeError('DECODE_TOO_LARGE', `${what} lists ${count} nodes; at most ${max}`);
  const out: NodeId[] = [];
  for (let i = 0; i < count; i++) out.push(readNodeId(r, what));
  return out;
}

/** Reads a u16 node id, refusing 0. */
export function readNodeId(r: ByteReader, what: string): NodeId {
  const id = r.u16(what);
  if (id === 0) throw new DecodeError('DECODE_RANGE', `${what} is 0, which is not a node id`);
  return id as NodeId;
}

/** Reads a u64 incarnation, refusing 0. */
export function readIncarnation(r: ByteReader, what: string): Incarnation {
  const inc = r.u64(what);
  if (inc === 0) throw new DecodeError('DECODE_RANGE', `${what} is 0; incarnations start at 1`);
  return inc as Incarnation;
}

function writeOptions(w: ByteWriter, o: VotequorumOptions): void {
  if (o.expectedVotes === undefined) w.u8(0);
  else w.u8(1).u32(o.expectedVotes);
  w.u8(o.expectedVotesTracking ? 1 : 0).u8(o.waitForAll ? 1 : 0);
  const tb = o.autoTieBreaker;
  writeEnum(w, TIE_BREAKER_KINDS, tb.kind);
  if (tb.kind === 'list') writeIds(w, tb.nodes);
  w.u8(o.lastManStanding ? 1 : 0)
    .u32(o.lastManStandingWindowTicks)
    .u8(o.twoNode ? 1 : 0);
}

function readTieBreaker(r: ByteReader): TieBreakerMode {
  const kind = readEnum(r, TIE_BREAKER_KINDS, 'tie-breaker kind');
  return kind === 'list' ? { kind, nodes: readIds(r, QUORUM_TIE_BREAKER_LIST_MAX, 'tie-breaker list') } : { kind };
}

function readOptions(r: ByteReader): VotequorumOptions {
  const expectedVotes = readBool(r, 'expected votes flag') ? r.u32('expected votes') : undefined;
  const expectedVotesTracking = readBool(r, 'expected votes tracking');
  const waitForAll = readBool(r, 'wait for all');
  const autoTieBreaker = readTieBreaker(r);
  const lastManStanding = readBool(r, 'last man standing');
  const lastManStandingWindowTicks = r.u32('last man standing window');
  const twoNode = readBool(r, 'two node');
  return {
    expectedVotes,
    expectedVotesTracking,
    waitForAll,
    autoTieBreaker,
    lastManStanding,
    lastManStandingWindowTicks,
    twoNode,
  };
}

/** Writes the configured nodes and options (also the snapshot's configuration section). */
export function writeConfiguration(w: ByteWriter, nodes: readonly MemberNodeSpec[], options: VotequorumOptions): void {
  w.u8(nodes.length);
  for (const n of nodes) {
    w.u16(n.nodeId);
    writeText(w, n.name);
    writeText(w, n.address);
    w.u8(n.votes);
    writeEnum(w, ROLES, n.role);
  }
  writeOptions(w, options);
}

/** Reads what `writeConfiguration` wrote (structure only; the caller validates). */
export function readConfiguration(r: ByteReader): { nodes: MemberNodeSpec[]; options: VotequorumOptions } {
  const count = r.u8('node count');
  if (count > CLUSTER_NODES_MAX)
    throw new DecodeError('DECODE_TOO_LARGE', `${count} configured nodes; at most ${CLUSTER_NODES_MAX}`);
  const nodes: MemberNodeSpec[] = [];
  for (let i = 0; i < count; i++) {
    const nodeId = readNodeId(r, 'node id');
    const name = readText(r, MEMBERSHIP_NODE_NAME_BYTES_MAX, 'node name');
    const address = readText(r, MEMBERSHIP_NODE_ADDRESS_BYTES_MAX, 'node address');
    const votes = r.u8('votes');
    nodes.push({ nodeId, name, address, votes, role: readEnum(r, ROLES, 'role') });
  }
  return { nodes, options: readOptions(r) };
}

function writeFailReason(w: ByteWriter, reason: FailReason): void {
  writeEnum(w, FAIL_KINDS, reason.kind);
  switch (reason.kind) {
    case 'detector':
      w.u32(reason.silentMs).u32(reason.timeoutMs).u32(reason.lagMs);
      writeIds(w, reason.corroborators);
      return;
    case 'operator':
      writeText(w, reason.note);
      return;
    case 'process-gone':
      w.u32(reason.silentMs);
      return;
    default:
      assertNever(reason, 'fail reason');
  }
}

function readFailReason(r: ByteReader): FailReason {
  const kind = readEnum(r, FAIL_KINDS, 'fail reason');
  if (kind === 'operator') return { kind, note: readText(r, MEMBERSHIP_NOTE_BYTES_MAX, 'note') };
  if (kind === 'process-gone') return { kind, silentMs: r.u32('silentMs') };
  const silentMs = r.u32('silentMs');
  const timeoutMs = r.u32('timeoutMs');
  const lagMs = r.u32('lagMs');
  return { kind, silentMs, timeoutMs, lagMs, corroborators: readIds(r, CLUSTER_NODES_MAX, 'corroborators') };
}

function writeQuarantineReason(w: ByteWriter, reason: QuarantineReason): void {
  writeEnum(w, QUARANTINE_KINDS, reason.kind);
  switch (reason.kind) {
    case 'partial-connectivity':
      w.u32(reason.silentMs);
      writeIds(w, reason.heardBy);
      return;
    case 'flapping':
      w.u32(reason.failures).u32(reason.windowMs);
      return;
    case 'operator':
      writeText(w, reason.note);
      return;
    default:
      assertNever(reason, 'quarantine reason');
  }
}

function readQuarantineReason(r: ByteReader): QuarantineReason {
  const kind = readEnum(r, QUARANTINE_KINDS, 'quarantine reason');
  switch (kind) {
    case 'partial-connectivity': {
      const silentMs = r.u32('silentMs');
      return { kind, silentMs, heardBy: readIds(r, CLUSTER_NODES_MAX, 'heardBy') };
    }
    case 'flapping': {
      const failures = r.u32('failures');
      return { kind, failures, windowMs: r.u32('windowMs') };
    }
    case 'operator':
      return { kind, note: readText(r, MEMBERSHIP_NOTE_BYTES_MAX, 'note') };
    default:
      return assertNever(kind, 'quarantine reason');
  }
}

function writeBody(w: ByteWriter, c: MembershipCommand): void {
  switch (c.type) {
    case 'configure':
      w.u8(TAG_CONFIGURE);
      writeConfiguration(w, c.nodes, c.options);
      w.u8(c.resetExpectedTracking ? 1 : 0);
      writeText(w, c.fingerprint ?? '');
      return;
    case 'join':
      w.u8(TAG_JOIN).u16(c.node).u64(c.incarnation);
      writeText(w, c.fingerprint ?? '');
      return;
    case 'leave':
      w.u8(TAG_LEAVE).u16(c.node).u64(c.incarnation);
      return;
    case 'fenced':
      w.u8(isBareConfirm(c.proof) ? TAG_FENCED : TAG_FENCED_PROOF)
        .u16(c.node)
        .u64(c.incarnation);
      if (!isBareConfirm(c.proof)) writeFenceProof(w, c.proof);
      return;
    case 'fence-attempt':
      w.u8(TAG_FENCE_ATTEMPT).u16(c.node).u64(c.incarnation);
      writeFenceAttempt(w, c.attempt);
      return;
    case 'unfence':
      w.u8(TAG_UNFENCE).u16(c.node).u64(c.incarnation);
      writeFenceUnfence(w, c.unfence);
      return;
    case 'fail':
      w.u8(TAG_FAIL).u16(c.node).u64(c.incarnation);
      writeFailReason(w, c.reason);
      return;
    case 'quarantine':
      w.u8(TAG_QUARANTINE).u16(c.node);
      if (c.incarnation === null) w.u8(0);
      else w.u8(1).u64(c.incarnation);
      writeQuarantineReason(w, c.reason);
      return;
    case 'release':
      w.u8(TAG_RELEASE).u16(c.node);
      return;
    case 'group-join':
    case 'group-leave':
    case 'group-send':
    case 'barrier':
      w.u8(TAG_GROUP_FIRST + GROUP_COMMAND_TYPES.indexOf(c.type));
      writeGroupCommand(w, c);
      return;
    case 'recovery-report':
    case 'recovery-evict':
      w.u8(TAG_RECOVERY_FIRST + RECOVERY_COMMAND_TYPES.indexOf(c.type));
      writeRecoveryCommand(w, c);
      return;
    default:
      assertNever(c, 'membership command');
  }
}

/** Encodes a command. Asserts it is structurally valid (check with `validateMembershipCommand`). */
export function encodeMembershipCommand(c: MembershipCommand): Uint8Array {
  const bad = validateMembershipCommand(c);
  assert(bad === null, `membership command to encode is malformed: ${bad?.message ?? ''}`);
  const w = new ByteWriter(64);
  writeBody(w, c);
  return w.finish().slice();
}

function readBody(r: ByteReader, tag: number): MembershipCommand {
  switch (tag) {
    case TAG_CONFIGURE: {
      const { nodes, options } = readConfiguration(r);
      const resetExpectedTracking = readBool(r, 'reset expected tracking');
      const fingerprint = readText(r, FINGERPRINT_BYTES_MAX, 'settings fingerprint');
      return fingerprint === ''
        ? { type: 'configure', nodes, options, resetExpectedTracking }
        : { type: 'configure', nodes, options, resetExpectedTracking, fingerprint };
    }
    case TAG_JOIN: {
      const node = readNodeId(r, 'node');
      const incarnation = readIncarnation(r, 'incarnation');
      const fingerprint = readText(r, FINGERPRINT_BYTES_MAX, 'settings fingerprint');
      return fingerprint === ''
        ? { type: 'join', node, incarnation }
        : { type: 'join', node, incarnation, fingerprint };
    }
    case TAG_LEAVE:
      return { type: 'leave', node: readNodeId(r, 'node'), incarnation: readIncarnation(r, 'incarnation') };
    case TAG_FENCED: {
      const node = readNodeId(r, 'node');
      const incarnation = readIncarnation(r, 'incarnation');
      return { type: 'fenced', node, incarnation, proof: { by: 'confirm' } };
    }
    case TAG_FENCED_PROOF: {
      const node = readNodeId(r, 'node');
      const incarnation = readIncarnation(r, 'incarnation');
      const proof = readFenceProof(r);
      if (isBareConfirm(proof))
        throw new DecodeError(
          'DECODE_INVALID',
          'a bare confirmation is encoded with tag 5, not 13 (canonical encoding)',
        );
      return { type: 'fenced', node, incarnation, proof };
    }
    case TAG_FENCE_ATTEMPT: {
      const node = readNodeId(r, 'node');
      const incarnation = readIncarnation(r, 'incarnation');
      return { type: 'fence-attempt', node, incarnation, attempt: readFenceAttempt(r) };
    }
    case TAG_UNFENCE: {
      const node = readNodeId(r, 'node');
      const incarnation = readIncarnation(r, 'incarnation');
      return { type: 'unfence', node, incarnation, unfence: readFenceUnfence(r) };
    }
    case TAG_FAIL: {
      const node = readNodeId(r, 'node');
      const incarnation = readIncarnation(r, 'incarnation');
      return { type: 'fail', node, incarnation, reason: readFailReason(r) };
    }
    case TAG_QUARANTINE: {
      const node = readNodeId(r, 'node');
      const incarnation = readBool(r, 'incarnation flag') ? readIncarnation(r, 'incarnation') : null;
      return { type: 'quarantine', node, incarnation, reason: readQuarantineReason(r) };
    }
    case TAG_RELEASE:
      return { type: 'release', node: readNodeId(r, 'node') };
    default: {
      const groupType = tag >= TAG_GROUP_FIRST ? GROUP_COMMAND_TYPES[tag - TAG_GROUP_FIRST] : undefined;
      if (groupType !== undefined) return readGroupCommand(r, groupType);
      const recoveryType = tag >= TAG_RECOVERY_FIRST ? RECOVERY_COMMAND_TYPES[tag - TAG_RECOVERY_FIRST] : undefined;
      if (recoveryType !== undefined) return readRecoveryCommand(r, recoveryType);
      throw new DecodeError('DECODE_INVALID', `unknown membership command tag ${tag}`);
    }
  }
}

/**
 * Decodes a command. Raises only `DecodeError`: on truncation, trailing bytes, unknown tags or
 * enums, non-canonical booleans, and anything `validateMembershipCommand` refuses.
 */
export function decodeMembershipCommand(bytes: Uint8Array): MembershipCommand {
  const r = new ByteReader(bytes);
  const c = readBody(r, r.u8('command tag'));
  r.end('membership command');
  const bad = validateMembershipCommand(c);
  if (bad !== null) throw new DecodeError('DECODE_INVALID', bad.message);
  return c;
}

/** The membership command codec, as a `CommandCodec`. */
export const membershipCommandCodec: CommandCodec<MembershipCommand> = {
  encode: encodeMembershipCommand,
  decode: decodeMembershipCommand,
};
