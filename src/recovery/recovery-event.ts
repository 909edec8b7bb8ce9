/**
 * The payloads of `recovery` events (docs/recovery.md): every step of a recovery round, as data
 * the membership event stream carries (one new event kind, `recovery`, with this payload), and
 * their canonical binary encoding.
 *
 * Every payload names its round: `group`, the group's `level`, and the round's `generation`.
 * Steps, in the order a round goes through them:
 *
 * - `opened`: a new generation of the group's round, with its members (the survivors, ascending by
 *   node) and every fence it waits for (ascending by node, incarnation); `reason` says why
 *   (`unclean-removal` of a member, or a `member-change`, a join, leave or eviction, while a round
 *   was open) and `previous` the generation it replaces (0 when none was open).
 * - `aborted`: an open generation ended before it finished; `next` is the generation that replaces
 *   it (0 when none does: the group became level 0).
 * - `stopped`: a member reported it stopped its part of the group.
 * - `fence-satisfied`: a fence the round waited for was recorded.
 * - `start-due`: the round may start (its fences are recorded, every member stopped, no round of a
 *   lower level is open); members learn it from the applied state and are told `start` with the
 *   generation and these members.
 * - `member-started`, `member-error`: a member's report after the start.
 * - `member-evicted`: the leader gave up waiting for a member (`reason` says why); like an
 *   `error`, the member is removed from the group and the round restarts without it.
 * - `finished`: every member reported `started`; the group resumes.
 *
 * Pure: no clock, no I/O.
 */
import { assertNever } from '../lib/assert.js';
import type { ByteReader, ByteWriter } from '../lib/bytes.js';
import { DecodeError } from '../lib/errors.js';
import { incarnation as makeIncarnation, type Incarnation, type NodeId } from '../lib/ids.js';
import {
  CLUSTER_NODES_MAX,
  GROUP_LEVEL_MAX,
  GROUP_NAME_BYTES_MAX,
  RECOVERY_FENCES_PER_ROUND_MAX,
  RECOVERY_REASON_BYTES_MAX,
} from '../constants.js';
import { readName, writeName } from '../groups/group-command.js';

/** A cluster member incarnation, as a round names it (a member, or an incarnation to fence). */
export interface RecoveryMemberRef {
  readonly node: NodeId;
  readonly incarnation: Incarnation;
}

/** The steps of a round; see the module comment. */
export type RecoveryStep =
  | 'opened'
  | 'aborted'
  | 'stopped'
  | 'fence-satisfied'
  | 'start-due'
  | 'member-started'
  | 'member-error'
  | 'member-evicted'
  | 'finished';

/** All steps, in encoding order. */
export const RECOVERY_STEPS: readonly RecoveryStep[] = [
  'opened',
  'aborted',
  'stopped',
  'fence-satisfied',
  'start-due',
  'member-started',
  'member-error',
  'member-evicted',
  'finished',
];

/** Why a generation was opened. */
export type RecoveryOpenReason = 'unclean-removal' | 'member-change';

/** All open reasons, in encoding order. */
export const RECOVERY_OPEN_REASONS: readonly RecoveryOpenReason[] = ['unclean-removal', 'member-change'];

/** What every payload names: the round. */
interface RoundRef {
  readonly group: string;
  readonly level: number;
  readonly generation: number;
}

/** The payload of a `recovery` event. */
export type RecoveryEventPayload =
  | (RoundRef & {
      readonly step: 'opened';
      readonly reason: RecoveryOpenReason;
      readonly previous: number;
      readonly members: readonly RecoveryMemberRef[];
      readonly fences: readonly RecoveryMemberRef[];
    })
  | (RoundRef & { readonly step: 'aborted'; readonly next: number })
  | (RoundRef & {
      readonly step: 'stopped' | 'fence-satisfied' | 'member-started' | 'member-error';
      readonly node: NodeId;
      readonly incarnation: Incarnation;
    })
  | (RoundRef & {
      readonly step: 'member-evicted';
      readonly node: NodeId;
      readonly incarnation: Incarnation;
      readonly reason: string;
    })
  | (RoundRef & { readonly step: 'start-due' | 'finished'; readonly members: readonly RecoveryMemberRef[] });

/** A `recovery` event as the membership event log's body (`kind` + `payload`, like `group`). */
export interface RecoveryEventBody {
  readonly kind: 'recovery';
  readonly payload: RecoveryEventPayload;
}

function writeRefs(w: ByteWriter, refs: readonly RecoveryMemberRef[]): void {
  w.u8(refs.length);
  for (const m of refs) w.u16(m.node).u64(m.incarnation);
}

/** Reads a list written by `writeRefs`: at most `max`, strictly ascending by (node, incarnation). */
export function readRefs(r: ByteReader, max: number, what: string): RecoveryMemberRef[] {
  const n = r.u8(`${what} count`);
  if (n > max) throw new DecodeError('DECODE_TOO_LARGE', `${n} ${what}; at most ${max}`);
  const out: RecoveryMemberRef[] = [];
  for (let i = 0; i < n; i++) {
    const node = r.u16(`${what} node`);
    const inc = r.u64(`${what} incarnation`);
    if (node < 1 || inc < 1) throw new DecodeError('DECODE_RANGE', `${what}: node ${node} incarnation ${inc}`);
    const prev = out.at(-1);
    if (prev !== undefined && (node < prev.node || (node === prev.node && inc <= prev.incarnation)))
      throw new DecodeError('DECODE_INVALID', `${what} are not strictly ascending`);
    out.push({ node: node as NodeId, incarnation: makeIncarnation(inc) });
  }
  return out;
}

/** Writes a payload in canonical form (the caller writes the event kind). */
export function writeRecoveryEvent(w: ByteWriter, p: RecoveryEventPayload): void {
  w.u8(RECOVERY_STEPS.indexOf(p.step));
  writeName(w, p.group);
  w.u8(p.level).u64(p.generation);
  switch (p.step) {
    case 'opened':
      w.u8(RECOVERY_OPEN_REASONS.indexOf(p.reason)).u64(p.previous);
      writeRefs(w, p.members);
      writeRefs(w, p.fences);
      return;
    case 'aborted':
      w.u64(p.next);
      return;
    case 'stopped':
    case 'fence-satisfied':
    case 'member-started':
    case 'member-error':
      w.u16(p.node).u64(p.incarnation);
      return;
    case 'member-evicted':
      w.u16(p.node).u64(p.incarnation).string(p.reason);
      return;
    case 'start-due':
    case 'finished':
      writeRefs(w, p.members);
      return;
    default:
      assertNever(p, 'recovery event');
  }
}

/** Reads what `writeRecoveryEvent` wrote; raises only `DecodeError`. */
export function readRecoveryEvent(r: ByteReader): RecoveryEventPayload {
  const stepIndex = r.u8('recovery step');
  const step = RECOVERY_STEPS[stepIndex];
  if (step === undefined) throw new DecodeError('DECODE_INVALID', `recovery step ${stepIndex} is unknown`);
  const group = readName(r, GROUP_NAME_BYTES_MAX, 'group name');
  const level = r.u8('group level');
  if (level < 1 || level > GROUP_LEVEL_MAX)
    throw new DecodeError('DECODE_RANGE', `recovery level ${level}; 1 to ${GROUP_LEVEL_MAX}`);
  const generation = r.u64('generation');
  if (generation < 1) throw new DecodeError('DECODE_RANGE', 'recovery generation 0');
  const round = { group, level, generation };
  const member = (): { node: NodeId; incarnation: Incarnation } => {
    const node = r.u16('node');
    const inc = r.u64('incarnation');
    if (node < 1 || inc < 1) throw new DecodeError('DECODE_RANGE', `node ${node} incarnation ${inc}`);
    return { node: node as NodeId, incarnation: makeIncarnation(inc) };
  };
  switch (step) {
    case 'opened': {
      const reasonIndex = r.u8('open reason');
      const reason = RECOVERY_OPEN_REASONS[reasonIndex];
      if (reason === undefined) throw new DecodeError('DECODE_INVALID', `open reason ${reasonIndex} is unknown`);
      const previous = r.u64('previous generation');
      const members = readRefs(r, CLUSTER_NODES_MAX, 'members');
      const fences = readRefs(r, RECOVERY_FENCES_PER_ROUND_MAX, 'fences');
      return { ...round, step, reason, previous, members, fences };
    }
    case 'aborted':
      return { ...round, step, next: r.u64('next generation') };
    case 'stopped':
    case 'fence-satisfied':
    case 'member-started':
    case 'member-error':
      return { ...round, step, ...member() };
    case 'member-evicted': {
      const m = member();
      return { ...round, step, ...m, reason: r.string(RECOVERY_REASON_BYTES_MAX, 'eviction reason') };
    }
    case 'start-due':
    case 'finished':
      return { ...round, step, members: readRefs(r, CLUSTER_NODES_MAX, 'members') };
    default:
      return assertNever(step, 'recovery step');
  }
}

/** One line for logs and `cohort events`: what the step did to which round. */
export function describeRecoveryEvent(p: RecoveryEventPayload): string {
  const round = `recovery ${p.group} (level ${p.level}) generation ${p.generation}`;
  const refs = (l: readonly RecoveryMemberRef[]): string => `[${l.map((m) => `${m.node}:${m.incarnation}`).join(' ')}]`;
  switch (p.step) {
    case 'opened':
      return `${round} opened (${p.reason}${p.previous > 0 ? `, replaces ${p.previous}` : ''}): members ${refs(p.members)}, waits for fences ${refs(p.fences)}`;
    case 'aborted':
      return `${round} aborted${p.next > 0 ? `; generation ${p.next} replaces it` : ''}`;
    case 'stopped':
      return `${round}: node ${p.node} incarnation ${p.incarnation} stopped`;
    case 'fence-satisfied':
      return `${round}: fence of node ${p.node} incarnation ${p.incarnation} recorded`;
    case 'start-due':
      return `${round}: start is due for ${refs(p.members)}`;
    case 'member-started':
      return `${round}: node ${p.node} incarnation ${p.incarnation} started`;
    case 'member-error':
      return `${round}: node ${p.node} incarnation ${p.incarnation} reported an error; it leaves the group`;
    case 'member-evicted':
      return `${round}: node ${p.node} incarnation ${p.incarnation} evicted (${p.reason}); it leaves the group`;
    case 'finished':
      return `${round} finished: ${refs(p.members)} resume`;
    default:
      return assertNever(p, 'recovery event');
  }
}
