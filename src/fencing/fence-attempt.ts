/**
 * What the fence ledger records about one fence (docs/design/fencing-and-recovery.md section 2):
 * an attempt to run a device, the proof that closes a record, and an unfence entry; their
 * structural validation and their canonical binary encoding, shared by the ledger's snapshot
 * section, the membership commands that carry them and the `fence` events.
 *
 * Structure only, like the membership command codec: every value has exactly one encoding and
 * `read*` accepts only that encoding (and only values `*Problem` accepts), raising nothing but
 * `DecodeError`. Text is well-formed Unicode, bounded in UTF-8 bytes (the agents clip their output
 * with `clipUtf8` of `fence-agent.ts`). Times are the proposer's wall clock in ms (the
 * machine reads no clock): an attempt's `atMs` is when it started, `atMs + durationMs` when it
 * ended. Levels are numbered from 1, as `topologyProblems` names them.
 *
 * Pure: imports only `src/lib`, the constants and the topology types (the fencing layer sits
 * below membership, which holds the ledger).
 */
import { assert, assertNever } from '../lib/assert.js';
import type { ByteReader, ByteWriter } from '../lib/bytes.js';
import { DecodeError } from '../lib/errors.js';
import { NODE_ID_MAX, type NodeId } from '../lib/ids.js';
import { FENCE_EXCERPT_BYTES_MAX, FENCE_LEVELS_MAX, FENCE_OPERATOR_BYTES_MAX, INCARNATION_MAX } from '../constants.js';
import type { AttemptOutcome } from './fence-agent.js';
import {
  deviceNameProblem,
  FENCE_ACTIONS,
  FENCE_AGENT_KINDS,
  type FenceAction,
  type FenceAgentKind,
} from './fence-topology.js';

// ------------------------------------------------------------------------------------------------
// Types

/**
 * Every attempt result (`AttemptOutcome` of `fence-agent.ts`: `ok`, `failed` with its exit code,
 * `timed-out`, `error`: it could not run), in encoding order.
 */
export const FENCE_ATTEMPT_RESULTS: readonly AttemptOutcome[] = ['ok', 'failed', 'timed-out', 'error'];

/** One run of one fence device against one fenced incarnation, as the executor reported it. */
export interface FenceAttempt {
  /** The node whose executor ran it (the leader at the time). */
  readonly executor: NodeId;
  /** The topology level it ran for, 1..FENCE_LEVELS_MAX. */
  readonly level: number;
  readonly device: string;
  readonly agent: FenceAgentKind;
  readonly action: FenceAction;
  readonly result: AttemptOutcome;
  /** The agent's exit status, 0..255, when it exited. */
  readonly exitCode?: number;
  /** How long it ran, ms (0..FENCE_DURATION_MS_MAX). */
  readonly durationMs: number;
  /** The agent's output, clipped to FENCE_EXCERPT_BYTES_MAX UTF-8 bytes (`clipUtf8`). */
  readonly excerpt: string;
  /** When it started, the proposer's wall clock, ms. */
  readonly atMs: number;
  /** The scheduler round it belongs to, from 1 (every level tried once more per round). */
  readonly round: number;
  /**
   * Program devices (`exec`, `process`) only: the newest incarnation of the target the executor
   * knew when the device started. A power or process fence ends whatever runs for the node then,
   * so a level whose devices all succeeded ended every incarnation up to the lowest `covers` among
   * them (`endedThrough` of `fence-scheduler.ts`; issue 12, simulator findings 6 and 9).
   */
  readonly covers?: number;
}

/**
 * What closes a fence record: the success of every device of a level (`agent`), a watchdog
 * device's wait elapsed (`watchdog`), or an operator's confirmation (`confirm`). A confirmation
 * from the legacy `fenced` encoding carries neither operator nor time.
 */
export type FenceProof =
  | { readonly by: 'agent'; readonly level: number; readonly device: string; readonly atMs: number }
  | { readonly by: 'watchdog'; readonly level: number; readonly device: string; readonly atMs: number }
  | { readonly by: 'confirm'; readonly operator?: string; readonly atMs?: number };

/** How a fence was proved, in encoding order. */
export const FENCE_PROOF_KINDS: readonly FenceProof['by'][] = ['agent', 'watchdog', 'confirm'];

/** A device told `on` for a node that joined cleanly after its fence (storage fencing). */
export interface FenceUnfence {
  readonly device: string;
  readonly result: AttemptOutcome;
  /** When it ran, the proposer's wall clock, ms. */
  readonly atMs: number;
}

/** Longest attempt duration carried, ms (a u32: about 49 days). */
export const FENCE_DURATION_MS_MAX = 0xffff_ffff;
/** Highest round number carried (a u32). */
export const FENCE_ROUND_MAX = 0xffff_ffff;

// ------------------------------------------------------------------------------------------------
// Text

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
// Device names are ASCII; anything else decodes to U+FFFD and fails the name pattern.
const lenientDecoder = new TextDecoder('utf-8', { ignoreBOM: true });
// With the `u` flag a surrogate class matches only unpaired surrogates, which UTF-8 cannot encode.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;

/** UTF-8 length of `s`, or -1 when `s` holds an unpaired surrogate (not encodable). */
export function utf8Bytes(s: string): number {
  return LONE_SURROGATE.test(s) ? -1 : textEncoder.encode(s).length;
}

/** Writes text as a u16 length and UTF-8 (every fencing text is far below 64 KiB). */
export function writeShortText(w: ByteWriter, s: string): void {
  const b = textEncoder.encode(s);
  assert(b.length <= 0xffff, 'short text fits a u16 length');
  w.u16(b.length).bytes(b);
}

/** Reads what `writeShortText` wrote, at most `maxBytes`; raises only `DecodeError`. */
export function readShortText(r: ByteReader, maxBytes: number, what: string): string {
  const n = r.u16(`${what} length`);
  if (n > maxBytes) throw new DecodeError('DECODE_TOO_LARGE', `${what} is ${n} bytes; at most ${maxBytes}`);
  try {
    return textDecoder.decode(r.bytes(n, what));
  } catch (cause) {
    if (cause instanceof DecodeError) throw cause;
    throw new DecodeError('DECODE_UTF8', `${what} is not valid UTF-8`, { cause });
  }
}

// ------------------------------------------------------------------------------------------------
// Validation (null: valid; else one sentence saying what is wrong)

function isMs(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function textProblem(s: string, what: string, minBytes: number, maxBytes: number): string | null {
  const n = utf8Bytes(s);
  if (n < 0) return `${what} holds an unpaired UTF-16 surrogate`;
  if (n < minBytes || n > maxBytes) return `${what} is ${n} UTF-8 bytes; it must be ${minBytes} to ${maxBytes}`;
  return null;
}

function levelProblem(level: number): string | null {
  return Number.isInteger(level) && level >= 1 && level <= FENCE_LEVELS_MAX
    ? null
    : `fence level ${level} must be an integer from 1 to ${FENCE_LEVELS_MAX}`;
}

/** Why `a` is not a well-formed attempt, or null. */
export function fenceAttemptProblem(a: FenceAttempt): string | null {
  if (!Number.isInteger(a.executor) || a.executor < 1 || a.executor > NODE_ID_MAX)
    return `attempt executor ${a.executor} is not a node id`;
  const bad = levelProblem(a.level) ?? deviceNameProblem(a.device);
  if (bad !== null) return bad;
  if (!FENCE_AGENT_KINDS.includes(a.agent)) return `attempt agent "${a.agent}" is unknown`;
  if (!FENCE_ACTIONS.includes(a.action)) return `attempt action "${a.action}" is unknown`;
  if (!FENCE_ATTEMPT_RESULTS.includes(a.result)) return `attempt result "${a.result}" is unknown`;
  if (a.exitCode !== undefined && (!Number.isInteger(a.exitCode) || a.exitCode < 0 || a.exitCode > 255))
    return `attempt exit code ${a.exitCode} must be an integer from 0 to 255`;
  if (!isMs(a.durationMs) || a.durationMs > FENCE_DURATION_MS_MAX)
    return `attempt duration ${a.durationMs} ms must be an integer from 0 to ${FENCE_DURATION_MS_MAX}`;
  if (!isMs(a.atMs)) return `attempt time ${a.atMs} must be a non-negative safe integer (ms)`;
  if (!Number.isInteger(a.round) || a.round < 1 || a.round > FENCE_ROUND_MAX)
    return `attempt round ${a.round} must be an integer from 1 to ${FENCE_ROUND_MAX}`;
  if (a.covers !== undefined && (!Number.isInteger(a.covers) || a.covers < 1 || a.covers > INCARNATION_MAX))
    return `attempt covers incarnation ${a.covers}; it must be an integer from 1 to ${INCARNATION_MAX}`;
  return textProblem(a.excerpt, 'attempt excerpt', 0, FENCE_EXCERPT_BYTES_MAX);
}

/** Why `p` is not a well-formed proof, or null. */
export function fenceProofProblem(p: FenceProof): string | null {
  switch (p.by) {
    case 'agent':
    case 'watchdog':
      if (!isMs(p.atMs)) return `fence time ${p.atMs} must be a non-negative safe integer (ms)`;
      return levelProblem(p.level) ?? deviceNameProblem(p.device);
    case 'confirm':
      if (p.atMs !== undefined && !isMs(p.atMs)) return `fence time ${p.atMs} must be a non-negative safe integer (ms)`;
      if (p.operator !== undefined) return textProblem(p.operator, 'operator', 1, FENCE_OPERATOR_BYTES_MAX);
      return null;
    default:
      return assertNever(p, 'fence proof');
  }
}

/** Why `u` is not a well-formed unfence entry, or null. */
export function fenceUnfenceProblem(u: FenceUnfence): string | null {
  if (!FENCE_ATTEMPT_RESULTS.includes(u.result)) return `unfence result "${u.result}" is unknown`;
  if (!isMs(u.atMs)) return `unfence time ${u.atMs} must be a non-negative safe integer (ms)`;
  return deviceNameProblem(u.device);
}

/** Whether `p` is the legacy confirmation (no operator, no time): the `fenced` command's old encoding. */
export function isBareConfirm(p: FenceProof): boolean {
  return p.by === 'confirm' && p.operator === undefined && p.atMs === undefined;
}

// ------------------------------------------------------------------------------------------------
// Encoding

function writeIndex<T>(w: ByteWriter, values: readonly T[], value: T): void {
  const i = values.indexOf(value);
  assert(i >= 0, 'enum value is known');
  w.u8(i);
}

function readIndex<T>(r: ByteReader, values: readonly T[], what: string): T {
  const i = r.u8(what);
  const v = values[i];
  if (v === undefined) throw new DecodeError('DECODE_INVALID', `${what} ${i} is not one of ${values.length} values`);
  return v;
}

function writeDevice(w: ByteWriter, name: string): void {
  const b = textEncoder.encode(name);
  w.u8(b.length).bytes(b);
}

function readDevice(r: ByteReader, what: string): string {
  const n = r.u8(`${what} length`);
  const name = lenientDecoder.decode(r.bytes(n, what));
  const bad = deviceNameProblem(name);
  if (bad !== null) throw new DecodeError('DECODE_INVALID', bad);
  return name;
}

function check<T>(value: T, problem: (v: T) => string | null): T {
  const bad = problem(value);
  if (bad !== null) throw new DecodeError('DECODE_INVALID', bad);
  return value;
}

/** Writes an attempt (asserts it is well formed). */
export function writeFenceAttempt(w: ByteWriter, a: FenceAttempt): void {
  assert(fenceAttemptProblem(a) === null, 'fence attempt to encode is well formed');
  w.u16(a.executor).u8(a.level);
  writeDevice(w, a.device);
  writeIndex(w, FENCE_AGENT_KINDS, a.agent);
  writeIndex(w, FENCE_ACTIONS, a.action);
  writeIndex(w, FENCE_ATTEMPT_RESULTS, a.result);
  w.u8((a.exitCode === undefined ? 0 : 1) | (a.covers === undefined ? 0 : 2));
  if (a.exitCode !== undefined) w.u8(a.exitCode);
  if (a.covers !== undefined) w.u32(a.covers);
  w.u32(a.durationMs);
  writeShortText(w, a.excerpt);
  w.u64(a.atMs).u32(a.round);
}

/** Reads what `writeFenceAttempt` wrote; raises only `DecodeError`. */
export function readFenceAttempt(r: ByteReader): FenceAttempt {
  const executor = r.u16('attempt executor') as NodeId;
  const level = r.u8('attempt level');
  const device = readDevice(r, 'attempt device');
  const agent = readIndex(r, FENCE_AGENT_KINDS, 'attempt agent');
  const action = readIndex(r, FENCE_ACTIONS, 'attempt action');
  const result = readIndex(r, FENCE_ATTEMPT_RESULTS, 'attempt result');
  const flags = r.u8('attempt flags');
  if (flags > 3) throw new DecodeError('DECODE_INVALID', `attempt flags ${flags}; only bits 0 and 1 exist`);
  const exitCode = (flags & 1) === 0 ? undefined : r.u8('exit code');
  const covers = (flags & 2) === 0 ? undefined : r.u32('attempt covers');
  const durationMs = r.u32('attempt duration');
  const excerpt = readShortText(r, FENCE_EXCERPT_BYTES_MAX, 'attempt excerpt');
  const atMs = r.u64('attempt time');
  const round = r.u32('attempt round');
  const attempt: FenceAttempt = {
    executor,
    level,
    device,
    agent,
    action,
    result,
    ...(exitCode === undefined ? {} : { exitCode }),
    durationMs,
    excerpt,
    atMs,
    round,
    ...(covers === undefined ? {} : { covers }),
  };
  return check(attempt, fenceAttemptProblem);
}

/** Writes a proof (asserts it is well formed). The bare confirmation is written too (flags 0). */
export function writeFenceProof(w: ByteWriter, p: FenceProof): void {
  assert(fenceProofProblem(p) === null, 'fence proof to encode is well formed');
  writeIndex(w, FENCE_PROOF_KINDS, p.by);
  switch (p.by) {
    case 'agent':
    case 'watchdog':
      w.u8(p.level);
      writeDevice(w, p.device);
      w.u64(p.atMs);
      return;
    case 'confirm':
      w.u8((p.operator === undefined ? 0 : 1) | (p.atMs === undefined ? 0 : 2));
      if (p.operator !== undefined) writeShortText(w, p.operator);
      if (p.atMs !== undefined) w.u64(p.atMs);
      return;
    default:
      assertNever(p, 'fence proof');
  }
}

/** Reads what `writeFenceProof` wrote; raises only `DecodeError`. */
export function readFenceProof(r: ByteReader): FenceProof {
  const by = readIndex(r, FENCE_PROOF_KINDS, 'fence proof kind');
  switch (by) {
    case 'agent':
    case 'watchdog': {
      const level = r.u8('fence level');
      const device = readDevice(r, 'fence device');
      return check({ by, level, device, atMs: r.u64('fence time') }, fenceProofProblem);
    }
    case 'confirm': {
      const flags = r.u8('confirmation flags');
      if (flags > 3) throw new DecodeError('DECODE_INVALID', `confirmation flags ${flags}; only bits 0 and 1 exist`);
      const operator = (flags & 1) === 0 ? undefined : readShortText(r, FENCE_OPERATOR_BYTES_MAX, 'operator');
      const atMs = (flags & 2) === 0 ? undefined : r.u64('fence time');
      const proof: FenceProof = {
        by,
        ...(operator === undefined ? {} : { operator }),
        ...(atMs === undefined ? {} : { atMs }),
      };
      return check(proof, fenceProofProblem);
    }
    default:
      return assertNever(by, 'fence proof kind');
  }
}

/** Writes an unfence entry (asserts it is well formed). */
export function writeFenceUnfence(w: ByteWriter, u: FenceUnfence): void {
  assert(fenceUnfenceProblem(u) === null, 'unfence entry to encode is well formed');
  writeDevice(w, u.device);
  writeIndex(w, FENCE_ATTEMPT_RESULTS, u.result);
  w.u64(u.atMs);
}

/** Reads what `writeFenceUnfence` wrote; raises only `DecodeError`. */
export function readFenceUnfence(r: ByteReader): FenceUnfence {
  const device = readDevice(r, 'unfence device');
  const result = readIndex(r, FENCE_ATTEMPT_RESULTS, 'unfence result');
  return check({ device, result, atMs: r.u64('unfence time') }, fenceUnfenceProblem);
}
