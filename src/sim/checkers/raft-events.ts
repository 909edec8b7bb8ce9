/**
 * The trace vocabulary shared by the simulated Raft node program (`workloads/raft-program.ts`,
 * which emits it) and the Raft checkers (which read it). Checkers see only these events, never
 * node state, so the format here is the whole contract between the two sides.
 *
 * Node events (source = node id):
 * - `persist from=I ents=T:D,T:D,...`: entries I, I+1, ... became durable (Raft truncation: they
 *   replace whatever the node held at I and after).
 * - `recovered snap=S snapTerm=T ents=...`: a (re)started node's log after recovery: a snapshot
 *   covering 1..S (its last entry of term T), then entries S+1, ... (same list format). `applied`
 *   and `hash` give the state machine.
 * - `restore index=S term=T hash=H`: a leader's snapshot replaced the node's log and state.
 * - `apply index=I term=T d=D hash=H nodeTerm=N`: entry I was applied; `hash` is the state-machine
 *   hash after; `nodeTerm` is the applying node's current term, an upper bound of the term in
 *   which the entry was committed (the node learned the commit from a leader of its term or older).
 * - `elected term=T voters=.. outgoing=.. config=.. latest=..`: emitted right after the core's
 *   `raft-become-leader`, with the applied configuration the election was counted in
 *   (`1x2,3x1` = node 1 with 2 votes, ...; `config` in `formatConfig` form) and the latest one
 *   its log implies (`latest`), which it also counted in.
 * - `start-refused reason=..`: the node refused to start (`RecoveryError`: its disk is unusable).
 * - core events forwarded by the shell: `raft-become-leader`, `raft-vote-granted`,
 *   `raft-conf-applied` (`config` in `formatConfig` form), `raft-conf-latest` (the latest
 *   configuration the node counts with; `counted` > 1 when configuration entries follow its
 *   applied one), ...
 *
 * Client events (source = `client`): `call`, `return`, `fail`, `lost` (see `raft-history.ts`).
 */
import { crc32c } from '../../lib/checksum.js';
import type { NodeId } from '../../lib/ids.js';
import type { JointQuorumConfig, TieBreakerMode } from '../../quorum/index.js';
import {
  configFromConfState,
  DEFAULT_QUORUM_SETTINGS,
  jointQuorumConfig,
  type ClusterConfig,
  type ConfChange,
  type ConfChangeSingle,
  type ConfState,
  type Entry,
  type QuorumSettings,
  type VoterWeight,
} from '../../log/index.js';
import { configProblem } from '../../log/cluster-config.js';

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
  confLatest: 'raft-conf-latest',
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
 * The digest of a witness's copy of a normal entry (`metadataOnly`: same index, term and type,
 * no data). Log matching compares such a copy by term only; it never stands for the content.
 */
export const WITNESS_COPY_DIGEST = 'meta';

/** The state hash a witness reports: it applies nothing, so it has no state to compare. */
export const NO_STATE_HASH = '-';

/**
 * A short digest of an entry's content (type and payload, not index or term): 8 hex digits of
 * CRC32C, or `WITNESS_COPY_DIGEST` for a witness's copy. It tells entries apart for the
 * checkers; it is not a security measure.
 */
export function entryDigest(entry: Entry): string {
  if (entry.type === 'normal' && entry.metadataOnly === true) return WITNESS_COPY_DIGEST;
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
    if (
      colon <= 0 ||
      !Number.isSafeInteger(term) ||
      term < 0 ||
      !(/^[0-9a-f]{8}$/.test(digest) || digest === WITNESS_COPY_DIGEST)
    )
      return null;
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

/** The members and quorum settings of a configuration in `formatConfig` form. */
export interface ParsedConfig {
  readonly voters: ReadonlyMap<NodeId, number>;
  readonly outgoing: ReadonlyMap<NodeId, number>;
  /** Learners and pending learners. */
  readonly learners: ReadonlySet<NodeId>;
  /** The whole configuration (expected votes, tie-breakers, witnesses), as the core holds it. */
  readonly cluster: ClusterConfig;
}

/**
 * The quorum module's view of a configuration exactly as the core counts it: each side with its
 * expected votes and resolved tie-breaker (`jointQuorumConfig`), never a plain sum of votes.
 */
export function quorumConfigOf(c: ParsedConfig): JointQuorumConfig {
  return jointQuorumConfig(c.cluster);
}

function parseSide(text: string | undefined): Array<readonly [NodeId, number]> | null {
  if (text === undefined || text === '') return [];
  const out: Array<readonly [NodeId, number]> = [];
  for (const part of text.split(',')) {
    const m = /^(\d+)(?:x(\d+))?$/.exec(part);
    if (m === null) return null;
    out.push([Number(m[1]) as NodeId, m[2] === undefined ? 1 : Number(m[2])]);
  }
  return out;
}

function parseIds(text: string | undefined): NodeId[] | null {
  if (text === undefined || text === '') return [];
  const parts = text.split(',');
  if (!parts.every((p) => /^\d+$/.test(p))) return null;
  return parts.map((p) => Number(p) as NodeId);
}

function parseMode(text: string | undefined): TieBreakerMode | null {
  if (text === undefined || text === 'off') return { kind: 'off' };
  if (text === 'lowest' || text === 'highest') return { kind: text };
  const m = /^list\(([\d,]+)\)$/.exec(text);
  const nodes = m === null ? null : parseIds(m[1]);
  return nodes === null || nodes.length === 0 ? null : { kind: 'list', nodes };
}

function parseSettings(expected: string | undefined, mode: string | undefined): QuorumSettings | null {
  const tieBreaker = parseMode(mode);
  if (tieBreaker === null) return null;
  return { expectedVotes: expected === undefined ? 0 : Number(expected), tieBreaker };
}

const CONFIG_RE = new RegExp(
  '^voters=\\(([^)]*)\\)(?:&&\\(([^)]*)\\))?(?: learners=\\(([^)]*)\\))?(?: learners_next=\\(([^)]*)\\))?( autoleave)?' +
    '(?: expected=(\\d+))?(?: tie-breaker=([a-z]+|list\\([\\d,]+\\)))?' +
    '(?: outgoing-expected=(\\d+))?(?: outgoing-tie-breaker=([a-z]+|list\\([\\d,]+\\)))?( outgoing-default)?' +
    '(?: witnesses=\\(([^)]*)\\))?$',
);

/**
 * Parses the core's `formatConfig` text, e.g. `voters=(1,2,3x2)&&(1,2) learners=(4)
 * learners_next=(5) autoleave expected=5 tie-breaker=lowest outgoing-default witnesses=(3)`,
 * including every quorum-setting suffix. Returns null when it does not look like one or
 * describes an invalid configuration (a trace the checkers cannot trust).
 */
export function parseConfig(text: string): ParsedConfig | null {
  const m = CONFIG_RE.exec(text);
  if (m === null) return null;
  const voters = parseSide(m[1]);
  const outgoing = parseSide(m[2]);
  const learners = parseIds(m[3]);
  const learnersNext = parseIds(m[4]);
  const witnesses = parseIds(m[11]);
  const quorum = parseSettings(m[6], m[7]);
  if (
    voters === null ||
    outgoing === null ||
    learners === null ||
    learnersNext === null ||
    witnesses === null ||
    quorum === null
  )
    return null;
  const explicitOutgoing = m[8] !== undefined || m[9] !== undefined;
  // formatConfig prints the outgoing settings only when joint and different from the incoming
  // ones, and `outgoing-default` when they differ by being the defaults.
  let outgoingQuorum: QuorumSettings | null = DEFAULT_QUORUM_SETTINGS;
  if (outgoing.length > 0)
    outgoingQuorum = explicitOutgoing
      ? parseSettings(m[8], m[9])
      : m[10] !== undefined
        ? DEFAULT_QUORUM_SETTINGS
        : quorum;
  if (outgoingQuorum === null) return null;
  const cs: ConfState = {
    voters,
    outgoing,
    learners,
    learnersNext,
    autoLeave: m[5] !== undefined,
    quorum,
    outgoingQuorum,
    ...(witnesses.length > 0 ? { witnesses } : {}),
  };
  const probe: ClusterConfig = {
    voters: new Map(voters),
    outgoing: new Map(outgoing),
    learners: new Set(learners),
    learnersNext: new Set(learnersNext),
    autoLeave: cs.autoLeave,
    quorum,
    outgoingQuorum,
    witnesses: new Set(witnesses),
  };
  if (configProblem(probe) !== null) return null;
  const cluster = configFromConfState(cs);
  return {
    voters: cluster.voters,
    outgoing: cluster.outgoing,
    learners: new Set([...learners, ...learnersNext]),
    cluster,
  };
}
/** Every member of a parsed configuration (voters of both sides and learners), ascending. */
export function membersOf(c: ParsedConfig): NodeId[] {
  return [...new Set<NodeId>([...c.voters.keys(), ...c.outgoing.keys(), ...c.learners])].sort((a, b) => a - b);
}
