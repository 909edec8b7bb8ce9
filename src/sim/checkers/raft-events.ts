/**
 * The trace vocabulary shared by the simulated Raft node program (`workloads/raft-program.ts`,
 * which emits it) and the Raft checkers (which read it). Checkers see only these events, never
 * node state, so the format here is the whole contract between the two sides.
 *
 * Node events (source = node id):
 * - `persist from=I ents=T:D,T:D,...`: entries I, I+1, ... became durable (Raft truncation: they
 *   replace whatever the node held at I and after).
 * - `recovered snap=S ents=...`: a (re)started node's log after recovery: a snapshot covering
 *   1..S, then entries S+1, ... (same list format). `applied` and `hash` give the state machine.
 * - `restore index=S term=T hash=H`: a leader's snapshot replaced the node's log and state.
 * - `apply index=I term=T d=D hash=H`: entry I was applied; `hash` is the state-machine hash after.
 * - `elected term=T voters=.. outgoing=..`: emitted right after the core's `raft-become-leader`,
 *   with the configuration the election was counted in (`1x2,3x1` = node 1 with 2 votes, ...).
 * - `start-refused reason=..`: the node refused to start (`RecoveryError`: its disk is unusable).
 * - core events forwarded by the shell: `raft-become-leader`, `raft-vote-granted`,
 *   `raft-conf-applied` (`config` in `formatConfig` form), ...
 *
 * Client events (source = `client`): `call`, `return`, `fail`, `lost` (see `raft-history.ts`).
 */
import { crc32c } from '../../lib/checksum.js';
import type { NodeId } from '../../lib/ids.js';
import type { JointQuorumConfig, QuorumConfig } from '../../quorum/index.js';
import type { ConfChange, ConfChangeSingle, Entry, VoterWeight } from '../../log/index.js';

/** Event names emitted by the Raft node program. */
export const RAFT_EVENT = {
  persist: 'persist',
  recovered: 'recovered',
  restore: 'restore',
  apply: 'apply',
  elected: 'elected',
  startRefused: 'start-refused',
  becomeLeader: 'raft-become-leader',
  voteGranted: 'raft-vote-granted',
  confApplied: 'raft-conf-applied',
} as const;

/** Event names emitted by the Raft workload's clients. */
export const CLIENT_EVENT = {
  call: 'call',
  return: 'return',
  fail: 'fail',
  lost: 'lost',
} as const;

const encoder = new TextEncoder();

/** A canonical text of one change (any kind: unknown kinds are spelled out in full). */
export function describeSingleChange(c: ConfChangeSingle): string {
  if (c.type === 'add-voter') return `+v${c.node}x${c.votes}`;
  if (c.type === 'add-learner') return `+l${c.node}`;
  if (c.type === 'remove-node') return `-${c.node}`;
  // Quorum-setting changes and any later kind: spelled out in full (canonical key order).
  return JSON.stringify(c, Object.keys(c).sort());
}

function describeChange(change: ConfChange): string {
  return `${change.autoLeave ? 'auto' : 'explicit'}:${change.changes.map(describeSingleChange).join(',')}`;
}

/**
 * A short digest of an entry's content (type and payload, not index or term): 8 hex digits of
 * CRC32C. It tells entries apart for the checkers; it is not a security measure.
 */
export function entryDigest(entry: Entry): string {
  const bytes = entry.type === 'normal' ? entry.data : encoder.encode(describeChange(entry.change));
  const tag = entry.type === 'normal' ? 0x6e : 0x63;
  return (crc32c(bytes, tag) >>> 0).toString(16).padStart(8, '0');
}

/** One entry as the checkers track it. */
export interface EntryMark {
  readonly term: number;
  readonly digest: string;
}

/** Encodes consecutive entries as `term:digest,term:digest,...` (empty string for none). */
export function encodeEntries(entries: readonly Entry[]): string {
  let s = '';
  for (const e of entries) s += `${s === '' ? '' : ','}${e.term}:${entryDigest(e)}`;
  return s;
}

/** Parses `encodeEntries` output; returns null when malformed (a trace the checker cannot trust). */
export function parseEntries(text: string): EntryMark[] | null {
  if (text === '') return [];
  const out: EntryMark[] = [];
  for (const part of text.split(',')) {
    const colon = part.indexOf(':');
    const term = Number(part.slice(0, colon));
    const digest = part.slice(colon + 1);
    if (colon <= 0 || !Number.isSafeInteger(term) || term < 0 || !/^[0-9a-f]{8}$/.test(digest)) return null;
    out.push({ term, digest });
  }
  return out;
}

/** Encodes voters as `1x2,3x1` (node x votes), ascending. */
export function encodeVoters(voters: readonly VoterWeight[]): string {
  return voters.map(([id, votes]) => `${id}x${votes}`).join(',');
}

/** Parses `encodeVoters` output into a node → votes map; null when malformed. */
export function parseVoters(text: string): Map<NodeId, number> | null {
  const out = new Map<NodeId, number>();
  if (text === '') return out;
  for (const part of text.split(',')) {
    const m = /^(\d+)x(\d+)$/.exec(part);
    if (m === null) return null;
    out.set(Number(m[1]) as NodeId, Number(m[2]));
  }
  return out;
}

function side(voters: ReadonlyMap<NodeId, number>): QuorumConfig {
  let total = 0;
  for (const v of voters.values()) total += v;
  return { voters, expectedVotes: total };
}

/** The quorum module's view of a (possibly joint) voter configuration, as the core builds it. */
export function quorumConfigOf(incoming: ReadonlyMap<NodeId, number>, outgoing: ReadonlyMap<NodeId, number>): JointQuorumConfig {
  return outgoing.size === 0 ? { incoming: side(incoming) } : { incoming: side(incoming), outgoing: side(outgoing) };
}

/** The members of a configuration in `formatConfig` form, split by role. */
export interface ParsedConfig {
  readonly voters: Map<NodeId, number>;
  readonly outgoing: Map<NodeId, number>;
  /** Learners and pending learners. */
  readonly learners: Set<NodeId>;
}

function parseSide(text: string | undefined): Map<NodeId, number> {
  const out = new Map<NodeId, number>();
  if (text === undefined || text === '') return out;
  for (const part of text.split(',')) {
    const [id, votes] = part.split('x');
    out.set(Number(id) as NodeId, votes === undefined ? 1 : Number(votes));
  }
  return out;
}

function parseIds(text: string | undefined): NodeId[] {
  return text === undefined || text === '' ? [] : text.split(',').map((s) => Number(s) as NodeId);
}

/**
 * Parses the core's `formatConfig` text, e.g. `voters=(1,2,3x2)&&(1,2) learners=(4)
 * learners_next=(5) autoleave`. Returns null when it does not look like one.
 */
export function parseConfig(text: string): ParsedConfig | null {
  const m = /^voters=\(([^)]*)\)(?:&&\(([^)]*)\))?(?: learners=\(([^)]*)\))?(?: learners_next=\(([^)]*)\))?(?: autoleave)?$/.exec(text);
  if (m === null) return null;
  return {
    voters: parseSide(m[1]),
    outgoing: parseSide(m[2]),
    learners: new Set([...parseIds(m[3]), ...parseIds(m[4])]),
  };
}

/** Every member of a parsed configuration (voters of both sides and learners), ascending. */
export function membersOf(c: ParsedConfig): NodeId[] {
  return [...new Set<NodeId>([...c.voters.keys(), ...c.outgoing.keys(), ...c.learners])].sort((a, b) => a - b);
}
