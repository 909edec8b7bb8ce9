/**
 * The canonical bytes of the membership state: the snapshot (magic `CMBS`, a format byte, the
 * body, a CRC32C trailer) and the state hash (everything but the event window, whose digest the
 * event log keeps incrementally). Derived state (views, arbitration) is never written: `decode`
 * recomputes it, so a snapshot cannot contradict itself. `decode` checks every invariant and
 * raises only `DecodeError`.
 */
import { assertNever, defined } from '../lib/assert.js';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { crc32c } from '../lib/checksum.js';
import { DecodeError } from '../lib/errors.js';
import { incarnation as makeIncarnation, logIndex, term as makeTerm, type NodeId } from '../lib/ids.js';
import { FenceLedger } from '../fencing/index.js';
import { RecoveryTable } from '../recovery/index.js';
import { buildVotequorum, type WaitForAllRelease, type WaitForAllState } from '../quorum/index.js';
import { Fnv64 } from '../log/state-machine.js';
import { MEMBERSHIP_SNAPSHOT_BYTES_MAX } from '../constants.js';
import { GROUP_CANARIES, GroupTable } from '../groups/index.js';
import {
  FINGERPRINT_BYTES_MAX,
  readBool,
  readConfiguration,
  readEnum,
  readText,
  validateMembershipCommand,
  writeConfiguration,
  writeEnum,
  writeText,
} from './membership-command.js';
import { EventLog, NODE_STATUSES } from './membership-event.js';
import { recordProblem, type NodeRecord } from './node-record.js';
import {
  arbitrationOf,
  emptyState,
  membersOf,
  recoveryCanaryOf,
  voteSpecs,
  type Configuration,
  type MembershipCanary,
  type MembershipState,
} from './membership-state.js';

const SNAPSHOT_MAGIC = 0x53424d43; // 'CMBS' read as a little-endian u32
/**
 * Format 5: magic, format, applied index and term, view id, configuration, wait_for_all, node
 * records, group table (**with its emptied groups' messages**), fence ledger, recovery table,
 * event window, CRC32C. Format 4 (no emptied groups), format 3 (no recovery table either) and
 * format 2 (no fence ledger either) still restore, with no emptied group, an empty recovery table
 * (see `decodeSnapshot`) and, for format 2, the ledger of `ledgerOfFormat2`.
 */
const SNAPSHOT_FORMAT = 5;
/** The format before the emptied groups. */
const SNAPSHOT_FORMAT_NO_EMPTIED = 4;
/** The format before the recovery table. */
const SNAPSHOT_FORMAT_NO_RECOVERY = 3;
/** The format before the fence ledger. */
const SNAPSHOT_FORMAT_NO_LEDGER = 2;
const WAIT_PHASES: readonly WaitForAllState['phase'][] = ['off', 'waiting', 'released'];
const WAIT_RELEASES: readonly WaitForAllRelease[] = ['all-seen', 'joined-quorate-cluster', 'cancelled'];

function writeConfigSection(w: ByteWriter, c: Configuration | null): void {
  if (c === null) {
    w.u8(0);
    return;
  }
  w.u8(1);
  writeConfiguration(w, c.nodes, c.options);
  w.u32(c.highestExpected);
  writeText(w, c.fingerprint);
}

/** Whether two configurations encode to the same bytes (an identical `configure` is a duplicate). */
export function configBytesEqual(a: Configuration, b: Configuration): boolean {
  const wa = new ByteWriter(1024);
  const wb = new ByteWriter(1024);
  writeConfigSection(wa, a);
  writeConfigSection(wb, b);
  const x = wa.finish();
  const y = wb.finish();
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function writeWaitForAll(w: ByteWriter, state: WaitForAllState): void {
  writeEnum(w, WAIT_PHASES, state.phase);
  if (state.phase === 'released') writeEnum(w, WAIT_RELEASES, state.how);
}

function writeRecords(w: ByteWriter, s: MembershipState): void {
  w.u8(s.records.size);
  for (const n of s.config?.nodes ?? []) {
    const rec = defined(s.records.get(n.nodeId), 'record of a configured node');
    w.u16(n.nodeId);
    writeEnum(w, NODE_STATUSES, rec.status);
    w.u64(rec.incarnation)
      .u64(rec.seen)
      .u64(rec.rejoin)
      .u8(rec.fencePending ? 1 : 0);
  }
}

/** Everything up to the group table, in canonical order (the snapshot body's first part). */
function writeCore(w: ByteWriter, s: MembershipState): void {
  w.u64(s.appliedIndex).u64(s.appliedTerm).u64(s.viewId);
  writeConfigSection(w, s.config);
  writeWaitForAll(w, s.waitForAll);
  writeRecords(w, s);
  s.groups.encode(w);
}

/**
 * The state hash: the canonical bytes of everything but the ledger and the events (the recovery
 * table right after the group table), then the ledger's and the event window's digests.
 */
export function hashState(s: MembershipState): { hi: number; lo: number } {
  const w = new ByteWriter(1024, MEMBERSHIP_SNAPSHOT_BYTES_MAX);
  writeCore(w, s);
  s.recovery.encode(w);
  return new Fnv64()
    .bytes(w.finish())
    .digest64(s.fences.digest())
    .u64(s.events.nextSeq)
    .u32(s.events.length)
    .digest64(s.events.digestValue())
    .digest();
}

/** The snapshot bytes of `s`. */
export function encodeSnapshot(s: MembershipState): Uint8Array {
  const w = new ByteWriter(4096, MEMBERSHIP_SNAPSHOT_BYTES_MAX);
  w.u32(SNAPSHOT_MAGIC).u8(SNAPSHOT_FORMAT);
  writeCore(w, s);
  s.fences.encode(w);
  s.recovery.encode(w);
  s.events.encode(w);
  w.u32(crc32c(w.finish()));
  return w.finish().slice();
}

function corrupt(message: string): DecodeError {
  return new DecodeError(
    'SNAPSHOT_INVALID',
    `membership snapshot is invalid: ${message}; take a fresh snapshot from a healthy node`,
  );
}

function readConfigSection(r: ByteReader): Configuration | null {
  if (!readBool(r, 'configured flag')) return null;
  const { nodes, options } = readConfiguration(r);
  const highestExpected = r.u32('highest expected votes');
  const fingerprint = readText(r, FINGERPRINT_BYTES_MAX, 'settings fingerprint');
  const invalid = validateMembershipCommand({ type: 'configure', nodes, options, resetExpectedTracking: false });
  if (invalid !== null) throw corrupt(invalid.message);
  const built = buildVotequorum(voteSpecs(nodes), options, options.expectedVotesTracking ? highestExpected : 0);
  if (!built.ok) throw corrupt(`its configuration breaks the quorum rules: ${built.error.message}`);
  if (built.value.expected.highestExpected !== highestExpected)
    throw corrupt(`tracked highest expected votes ${highestExpected} does not match the configuration`);
  return { nodes, options, quorum: built.value.config, highestExpected, fingerprint };
}

function readWaitForAll(r: ByteReader): WaitForAllState {
  const phase = readEnum(r, WAIT_PHASES, 'wait_for_all phase');
  switch (phase) {
    case 'off':
    case 'waiting':
      return { phase };
    case 'released':
      return { phase, how: readEnum(r, WAIT_RELEASES, 'wait_for_all release') };
    default:
      return assertNever(phase, 'wait_for_all phase');
  }
}

function readRecords(r: ByteReader, config: Configuration | null): Map<NodeId, NodeRecord> {
  const count = r.u8('record count');
  const nodes = config?.nodes ?? [];
  if (count !== nodes.length) throw corrupt(`${count} node records for ${nodes.length} configured nodes`);
  const records = new Map<NodeId, NodeRecord>();
  for (const n of nodes) {
    if (r.u16('record node') !== n.nodeId)
      throw corrupt(`the records do not follow the configured nodes (expected node ${n.nodeId})`);
    const status = readEnum(r, NODE_STATUSES, 'node status');
    const rec: NodeRecord = {
      status,
      incarnation: r.u64('incarnation'),
      seen: r.u64('seen'),
      rejoin: r.u64('rejoin'),
      fencePending: readBool(r, 'fence pending'),
    };
    const problem = recordProblem(rec);
    if (problem !== null) throw corrupt(`node ${n.nodeId}: ${problem}`);
    records.set(n.nodeId, rec);
  }
  return records;
}

/** Every group member is a member of the cluster view (removals are applied together). */
function checkGroupMembers(s: MembershipState): void {
  const members = membersOf(s.records);
  for (const g of s.groups.views()) {
    for (const m of g.members) {
      if (!members.some((v) => v.node === m.node && v.incarnation === m.incarnation))
        throw corrupt(
          `group ${g.group} lists node ${m.node} incarnation ${m.incarnation}, which is not in the cluster view`,
        );
    }
  }
}

/**
 * The ledger of a format-2 snapshot (taken before the fence ledger existed): empty, except that
 * every node still awaiting a fence gets a pending record opened at the snapshot's applied
 * index, so the ledger's invariant holds and the executor finds the fence to run.
 */
function ledgerOfFormat2(s: MembershipState): FenceLedger {
  const ledger = new FenceLedger();
  for (const [node, rec] of [...s.records].sort(([a], [b]) => a - b)) {
    if (!rec.fencePending) continue;
    ledger.open(
      node,
      makeIncarnation(rec.incarnation),
      `incarnation ${rec.incarnation} was awaiting its fence when this state was saved, before fence records were kept`,
      s.appliedIndex,
    );
  }
  return ledger;
}

/** Node records with a pending fence and pending ledger records correspond one to one. */
function checkFenceLedger(s: MembershipState): void {
  for (const [node, rec] of s.records) {
    const open = s.fences.pendingOf(node);
    if (rec.fencePending !== (open !== null) || (open !== null && open.incarnation !== rec.incarnation))
      throw corrupt(
        `node ${node} (${rec.status}, incarnation ${rec.incarnation}) and its fence record (${open === null ? 'none pending' : `incarnation ${open.incarnation} pending`}) disagree`,
      );
  }
  for (const open of s.fences.pending())
    if (!s.records.has(open.node)) throw corrupt(`a fence is pending for node ${open.node}, which is not configured`);
}

/**
 * The recovery table's records agree with the group views (levels and members), and every fence a
 * round waits for is the pending fence record of its node (the entry that records the fence also
 * satisfies the rounds, so a round never waits for a fence that is not pending).
 */
function checkRecoveryTable(s: MembershipState): void {
  const problem = s.recovery.checkAgainst(s.groups.views());
  if (problem !== null) throw corrupt(problem);
  for (const round of s.recovery.rounds())
    for (const f of round.awaitingFences)
      if (s.fences.pendingOf(f.node)?.incarnation !== f.incarnation)
        throw corrupt(
          `the recovery round of ${round.group} waits for the fence of node ${f.node} incarnation ${f.incarnation}, which is not pending`,
        );
}

function checkWaitForAll(s: MembershipState): void {
  const enabled = s.config?.options.waitForAll ?? false;
  if (enabled === (s.waitForAll.phase === 'off'))
    throw corrupt(`wait_for_all phase ${s.waitForAll.phase} contradicts the option (${enabled ? 'on' : 'off'})`);
}

/** Decodes and checks a snapshot; raises only `DecodeError`. */
export function decodeSnapshot(bytes: Uint8Array, canary: MembershipCanary | null): MembershipState {
  if (bytes.length < 4 + 1 + 24 + 4) throw corrupt(`${bytes.length} bytes is shorter than the smallest snapshot`);
  const body = bytes.subarray(0, bytes.length - 4);
  if (crc32c(body) !== new ByteReader(bytes.subarray(bytes.length - 4)).u32('checksum')) {
    throw new DecodeError(
      'SNAPSHOT_CHECKSUM',
      'membership snapshot checksum mismatch: the bytes were corrupted in storage or transfer; fetch the snapshot again',
    );
  }
  const r = new ByteReader(body);
  if (r.u32('magic') !== SNAPSHOT_MAGIC)
    throw new DecodeError(
      'SNAPSHOT_MAGIC',
      'not a membership snapshot (bad magic): it belongs to another state machine',
    );
  const format = r.u8('format');
  if (format < SNAPSHOT_FORMAT_NO_LEDGER || format > SNAPSHOT_FORMAT)
    throw new DecodeError(
      'SNAPSHOT_VERSION',
      `membership snapshot format ${format} is not supported (this build reads formats ${SNAPSHOT_FORMAT_NO_LEDGER} to ${SNAPSHOT_FORMAT}); upgrade this node`,
    );
  const s = emptyState(canary);
  s.appliedIndex = logIndex(r.u64('appliedIndex'));
  s.appliedTerm = makeTerm(r.u64('appliedTerm'));
  s.viewId = r.u64('viewId');
  s.config = readConfigSection(r);
  s.waitForAll = readWaitForAll(r);
  s.records = readRecords(r, s.config);
  s.groups = GroupTable.decode(
    r,
    GROUP_CANARIES.find((c) => c === canary) ?? null,
    format > SNAPSHOT_FORMAT_NO_EMPTIED, // before format 5 no emptied group was kept
  );
  checkGroupMembers(s);
  s.fences = format === SNAPSHOT_FORMAT_NO_LEDGER ? ledgerOfFormat2(s) : FenceLedger.decode(r);
  checkFenceLedger(s);
  // Before format 4 there was no recovery table: an empty one (no round was open, none had run).
  if (format > SNAPSHOT_FORMAT_NO_RECOVERY) s.recovery = RecoveryTable.decode(r, recoveryCanaryOf(canary));
  checkRecoveryTable(s);
  s.events = EventLog.decode(r);
  r.end('membership snapshot');
  checkWaitForAll(s);
  if (s.viewId > 0 && s.config === null) throw corrupt(`view ${s.viewId} without a configuration`);
  s.arbitration = arbitrationOf(s);
  return s;
}
