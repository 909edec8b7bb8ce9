/**
 * Membership as a replicated state machine on the cluster log (docs/membership.md,
 * docs/design/membership-and-groups.md sections 1-4).
 *
 * State: the configured nodes and quorum options (committed by `configure`), one record per
 * configured node (status, incarnation; see `node-record.ts`), the current `viewId`, the
 * wait_for_all phase, and the bounded event window. Derived, never stored: the view's members and
 * its quorum arbitration (recomputed on restore, so a snapshot cannot disagree with itself).
 *
 * Every applied change of the member set makes a new view (`viewId + 1`) and a `view` event
 * carrying the members, the quorate flag with its explanation, and the change; a change of the
 * quorate flag also makes a `quorum` event; a status change that leaves the member set alone makes
 * a `node` event. Because every node applies the same commands in the same order, every node
 * derives the same views and events with the same numbers.
 *
 * The machine is pure and bounded: no clock, no I/O; at most `CLUSTER_NODES_MAX` records and the
 * event window's limits.
 */
import { assertNever, defined } from '../lib/assert.js';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { crc32c } from '../lib/checksum.js';
import { DecodeError, err, ok, type Result } from '../lib/errors.js';
import {
  incarnation as makeIncarnation,
  logIndex,
  term as makeTerm,
  viewId as makeViewId,
  type LogIndex,
  type NodeId,
  type Term,
  type ViewId,
} from '../lib/ids.js';
import {
  arbitrate,
  buildVotequorum,
  initialWaitForAll,
  stepWaitForAll,
  type Arbitration,
  type NodeVoteSpec,
  type QuorumConfig,
  type VotequorumOptions,
  type WaitForAllRelease,
  type WaitForAllState,
} from '../quorum/index.js';
import {
  assertApplyOrder,
  badCommand,
  Fnv64,
  stateHashOf,
  type ApplyError,
  type ApplyResult,
  type CommandCodec,
  type StateHash,
  type StateMachine,
} from '../log/state-machine.js';
import { MEMBERSHIP_SNAPSHOT_BYTES_MAX } from '../constants.js';
import {
  GROUP_CANARIES,
  GroupTable,
  type GroupApply,
  type GroupCanary,
  type GroupCommand,
  type GroupView,
  type RetainedMessage,
} from '../groups/index.js';
import {
  decodeMembershipCommand,
  FINGERPRINT_BYTES_MAX,
  membershipCommandCodec,
  readText,
  writeText,
  readBool,
  readConfiguration,
  readEnum,
  validateMembershipCommand,
  writeConfiguration,
  writeEnum,
  type MemberNodeSpec,
  type MembershipCommand,
  type MembershipCommandType,
} from './membership-command.js';
import {
  clipText,
  EVENT_CAUSE_BYTES_MAX,
  EVENT_EXPLANATION_BYTES_MAX,
  EventLog,
  NODE_STATUSES,
  type EventBody,
  type EventPage,
  type MembershipEvent,
  type MembershipEventError,
  type NodeStatus,
  type QuorumReason,
  type ViewMember,
} from './membership-event.js';
import {
  FRESH_RECORD,
  recordProblem,
  transition,
  type MembershipOutcome,
  type NodeCommand,
  type NodeRecord,
  type Transition,
} from './node-record.js';

// ------------------------------------------------------------------------------------------------
// Public shapes

/** What a successful command returns: what it did, and the view and quorum after it. */
export interface MembershipOutput {
  readonly type: MembershipCommandType;
  readonly outcome: MembershipOutcome;
  readonly viewId: ViewId;
  readonly quorate: boolean;
  /** Events the command produced (0 for a no-op). */
  readonly events: number;
  /** For a group command: what it did (outcome, group view, delivery of a message). */
  readonly group?: GroupApply;
}

/** Stable `ApplyError` codes of the membership machine (plus the shared `BAD_COMMAND`). */
export type MembershipErrorCode =
  | 'MEMBERSHIP_INVALID_COMMAND'
  | 'NOT_CONFIGURED'
  | 'UNKNOWN_NODE'
  | 'NODE_QUARANTINED'
  | 'CONFIG_INVALID'
  | 'CONFIG_REMOVES_LIVE_NODE'
  | 'SETTINGS_MISMATCH';

/** The current view, with its quorum verdict. */
export interface MembershipView {
  readonly viewId: ViewId;
  /** Ascending by node id. */
  readonly members: readonly ViewMember[];
  readonly quorate: boolean;
  readonly reason: QuorumReason;
  readonly explanation: string;
}

/** One configured node and its membership record, for `cohort nodes` and the fencing layer. */
export interface NodeInfo extends MemberNodeSpec {
  readonly status: NodeStatus;
  /** The incarnation the status is about (for `out`, the last one known; 0 if none). */
  readonly incarnation: number;
  /** The newest incarnation any command named. */
  readonly seen: number;
  /** A newer incarnation waiting to be admitted once `incarnation` is fenced (0 if none). */
  readonly rejoin: number;
  /** Whether `incarnation` must still be fenced. */
  readonly fencePending: boolean;
}

// ------------------------------------------------------------------------------------------------
// State

interface Configuration {
  /** Strictly ascending by id. */
  readonly nodes: readonly MemberNodeSpec[];
  readonly options: VotequorumOptions;
  readonly quorum: QuorumConfig;
  /** The tracked highest expected votes (expected_votes_tracking). */
  readonly highestExpected: number;
  /** The cluster-wide settings fingerprint joins must match ('' when none was given). */
  readonly fingerprint: string;
}

/** The whole mutable state; replaced as one object by `restore`, so a restore is all or nothing. */
interface MembershipState {
  config: Configuration | null;
  /** One record per configured node. */
  records: Map<NodeId, NodeRecord>;
  viewId: number;
  waitForAll: WaitForAllState;
  events: EventLog;
  appliedIndex: LogIndex;
  appliedTerm: Term;
  /** The service groups (their views change with the cluster view; see `src/groups`). */
  groups: GroupTable;
  /** Derived from the above by `recompute`; null until configured. */
  arbitration: Arbitration | null;
  /** A planted bug (simulator only); not part of the state's bytes. */
  readonly canary: MembershipCanary | null;
}

function emptyState(canary: MembershipCanary | null): MembershipState {
  const groupCanary = GROUP_CANARIES.find((c) => c === canary) ?? null;
  return {
    config: null,
    records: new Map(),
    viewId: 0,
    waitForAll: { phase: 'off' },
    events: new EventLog(),
    appliedIndex: logIndex(0),
    appliedTerm: makeTerm(0),
    groups: new GroupTable(groupCanary),
    arbitration: null,
    canary,
  };
}

/**
 * Planted bugs the simulator's checkers must catch (never set in production):
 * `quorate-without-quorum` flags every view quorate; `skip-view-bump` keeps the view id when a
 * member leaves or fails (a node with it disagrees with the others about view ids); and the group
 * table's canaries (`GroupCanary`).
 */
export type MembershipCanary = 'quorate-without-quorum' | 'skip-view-bump' | GroupCanary;

/** Every membership canary name. */
export const MEMBERSHIP_CANARIES: readonly MembershipCanary[] = [
  'quorate-without-quorum',
  'skip-view-bump',
  ...GROUP_CANARIES,
];

function membershipError(code: MembershipErrorCode, message: string): ApplyError {
  return { code, message };
}

function isApplyError(x: Transition | ApplyError): x is ApplyError {
  return 'code' in x;
}

function membersOf(records: ReadonlyMap<NodeId, NodeRecord>): ViewMember[] {
  const out: ViewMember[] = [];
  for (const [node, rec] of records)
    if (rec.status === 'member') out.push({ node, incarnation: makeIncarnation(rec.incarnation) });
  return out.sort((a, b) => a.node - b.node);
}

function voteSpecs(nodes: readonly MemberNodeSpec[]): NodeVoteSpec[] {
  return nodes.map((n) => ({ nodeId: n.nodeId, votes: n.votes, role: n.role === 'witness' ? 'witness' : 'data' }));
}

/** Nodes that two_node may treat as safely gone: out, or quarantined with no fence pending. */
function noFencePending(records: ReadonlyMap<NodeId, NodeRecord>): Set<NodeId> {
  const out = new Set<NodeId>();
  for (const [node, rec] of records)
    if (rec.status === 'out' || (rec.status === 'quarantined' && !rec.fencePending)) out.add(node);
  return out;
}

function arbitrationOf(s: MembershipState): Arbitration | null {
  if (s.config === null) return null;
  const present = new Set(membersOf(s.records).map((m) => m.node));
  const a = arbitrate({
    config: { incoming: s.config.quorum },
    present,
    waitForAll: s.waitForAll,
    twoNode: { enabled: s.config.options.twoNode, fencedPeers: noFencePending(s.records) },
  });
  return s.canary === 'quorate-without-quorum' ? { ...a, quorate: true } : a;
}

function quorumSummary(a: Arbitration | null): { quorate: boolean; reason: QuorumReason; explanation: string } {
  if (a === null)
    return {
      quorate: false,
      reason: 'not-configured',
      explanation: 'not quorate: no configuration has been committed yet',
    };
  return { quorate: a.quorate, reason: a.reason, explanation: clipText(a.summary, EVENT_EXPLANATION_BYTES_MAX) };
}

/** wait_for_all after a configuration change (see docs/membership.md). */
function waitForAllAfterConfigure(
  previous: WaitForAllState,
  wasConfigured: boolean,
  wasQuorate: boolean,
  enabled: boolean,
): WaitForAllState {
  if (!enabled) return { phase: 'off' };
  if (!wasConfigured) return initialWaitForAll(true);
  if (previous.phase !== 'off') return previous;
  // Turning the option on in a running cluster must not take quorum away from a quorate view.
  return wasQuorate ? { phase: 'released', how: 'joined-quorate-cluster' } : { phase: 'waiting' };
}

// ------------------------------------------------------------------------------------------------
// The machine

/**
 * The membership state machine. Besides `apply`, it answers local reads (`view`, `nodes`,
 * `eventsFrom`) that never change state; use the log layer's read barrier first when a read must
 * be linearizable.
 */
export class MembershipStateMachine implements StateMachine<MembershipCommand, MembershipOutput> {
  readonly codec: CommandCodec<MembershipCommand> = membershipCommandCodec;
  private s: MembershipState;
  private hashCache: StateHash | null = null;

  /** `canary`: a planted bug, for the simulator only. */
  constructor(private readonly canary: MembershipCanary | null = null) {
    this.s = emptyState(canary);
  }

  /** Every service group's current view, by name. */
  groups(): GroupView[] {
    return this.s.groups.views();
  }

  /** One group's current view, or null when it has no members. */
  group(name: string): GroupView | null {
    return this.s.groups.view(name);
  }

  /** The messages `group` retains of its current view (see `GroupTable.retainedMessages`). */
  retainedMessages(group: string): readonly RetainedMessage[] {
    return this.s.groups.retainedMessages(group);
  }

  /** Whether barrier `name` of `group` was reached in the group's current view. */
  barrierReached(group: string, name: string): boolean {
    return this.s.groups.barrierReached(group, name);
  }

  /** The last message number of `group`'s current view (0 when none or no group). */
  groupSeq(group: string): number {
    return this.s.groups.seqOf(group);
  }

  /** Members that reached pending barrier `name` of `group`; null when none is pending. */
  pendingBarrier(group: string, name: string): NodeId[] | null {
    return this.s.groups.pendingBarrier(group, name);
  }

  get appliedIndex(): LogIndex {
    return this.s.appliedIndex;
  }

  get appliedTerm(): Term {
    return this.s.appliedTerm;
  }

  /** The current view and its quorum verdict. */
  view(): MembershipView {
    return {
      viewId: makeViewId(this.s.viewId),
      members: membersOf(this.s.records),
      ...quorumSummary(this.s.arbitration),
    };
  }

  /** The full arbitration behind the quorate flag (null until configured), for `cohort quorum`. */
  arbitration(): Arbitration | null {
    return this.s.arbitration;
  }

  /**
   * Whether the nodes in `present` would hold a quorum under the committed configuration (the
   * same arithmetic as the view's arbitration: votes, expected votes, tie-breaker, wait_for_all),
   * false before a configuration is committed. For the self-fence's connectivity rule.
   */
  quorateWith(present: ReadonlySet<NodeId>): boolean {
    const s = this.s;
    if (s.config === null) return false;
    return arbitrate({ config: { incoming: s.config.quorum }, present, waitForAll: s.waitForAll }).quorate;
  }

  /** Every configured node with its record, ascending by id (empty until configured). */
  nodes(): NodeInfo[] {
    const config = this.s.config;
    if (config === null) return [];
    return config.nodes.map((n) => ({ ...n, ...defined(this.s.records.get(n.nodeId), 'record of a configured node') }));
  }

  /** The committed quorum options and expected votes (null until configured). */
  configuration(): {
    readonly options: VotequorumOptions;
    readonly expectedVotes: number;
    readonly highestExpected: number;
  } | null {
    const c = this.s.config;
    return c === null
      ? null
      : { options: c.options, expectedVotes: c.quorum.expectedVotes, highestExpected: c.highestExpected };
  }

  /** The wait_for_all phase of the committed state. */
  waitForAll(): WaitForAllState {
    return this.s.waitForAll;
  }

  /** Reads the event stream (see `EventLog.eventsFrom`). */
  eventsFrom(seq: number, limit: number): Result<EventPage, MembershipEventError> {
    return this.s.events.eventsFrom(seq, limit);
  }

  /** The seq the next event will get (so `nextEventSeq - 1` is the newest). */
  get nextEventSeq(): number {
    return this.s.events.nextSeq;
  }

  apply(index: LogIndex, term: Term, command: Uint8Array | MembershipCommand): ApplyResult<MembershipOutput> {
    assertApplyOrder(this.s.appliedIndex, this.s.appliedTerm, index, term);
    const result = this.applyCommand(index, command);
    this.s.appliedIndex = index;
    this.s.appliedTerm = term;
    this.hashCache = null;
    return result;
  }

  private applyCommand(index: LogIndex, command: Uint8Array | MembershipCommand): ApplyResult<MembershipOutput> {
    let c: MembershipCommand;
    if (command instanceof Uint8Array) {
      try {
        c = decodeMembershipCommand(command);
      } catch (e) {
        if (e instanceof DecodeError) return err(badCommand(e));
        throw e;
      }
    } else {
      const invalid = validateMembershipCommand(command);
      if (invalid !== null) return err(invalid);
      c = command;
    }
    switch (c.type) {
      case 'configure':
        return this.configure(index, c);
      case 'group-join':
      case 'group-leave':
      case 'group-send':
      case 'barrier':
        return this.groupCommand(index, c);
      case 'join':
      case 'leave':
      case 'fail':
      case 'fenced':
      case 'quarantine':
      case 'release':
        return this.nodeCommand(index, c);
      default:
        return assertNever(c, 'membership command');
    }
  }

  private groupCommand(index: LogIndex, c: GroupCommand): ApplyResult<MembershipOutput> {
    const s = this.s;
    if (s.config === null)
      return err(
        membershipError(
          'NOT_CONFIGURED',
          `no configuration is committed yet, so node ${c.node} cannot use group ${c.group}`,
        ),
      );
    const members = membersOf(s.records);
    const r = s.groups.apply(c, (node, inc) => members.some((m) => m.node === node && m.incarnation === inc));
    for (const e of r.events) this.emit(index, e);
    return ok({ ...this.output(c.type, r.outcome === 'applied' ? 'applied' : 'no-change', r.events.length), group: r });
  }

  private output(type: MembershipCommandType, outcome: MembershipOutcome, events: number): MembershipOutput {
    return { type, outcome, viewId: makeViewId(this.s.viewId), quorate: this.s.arbitration?.quorate ?? false, events };
  }

  private configure(
    index: LogIndex,
    c: Extract<MembershipCommand, { type: 'configure' }>,
  ): ApplyResult<MembershipOutput> {
    const s = this.s;
    for (const [node, rec] of s.records) {
      if (rec.status !== 'out' && !c.nodes.some((n) => n.nodeId === node)) {
        return err(
          membershipError(
            'CONFIG_REMOVES_LIVE_NODE',
            `the configuration drops node ${node}, which is ${rec.status}; make it leave (or fail and fence it, or release it) before removing it`,
          ),
        );
      }
    }
    const tracked = c.resetExpectedTracking ? 0 : (s.config?.highestExpected ?? 0);
    const built = buildVotequorum(voteSpecs(c.nodes), c.options, tracked);
    if (!built.ok)
      return err(
        membershipError(
          'CONFIG_INVALID',
          `the configuration breaks the quorum rules (${built.error.code}): ${built.error.message}`,
        ),
      );
    const config: Configuration = {
      nodes: c.nodes,
      options: c.options,
      quorum: built.value.config,
      highestExpected: built.value.expected.highestExpected,
      fingerprint: c.fingerprint ?? '',
    };
    if (s.config !== null && configBytesEqual(s.config, config)) return ok(this.output('configure', 'duplicate', 0));
    const wasQuorate = s.arbitration?.quorate ?? false;
    const records = new Map<NodeId, NodeRecord>();
    for (const n of c.nodes) records.set(n.nodeId, s.records.get(n.nodeId) ?? FRESH_RECORD);
    s.waitForAll = waitForAllAfterConfigure(s.waitForAll, s.config !== null, wasQuorate, c.options.waitForAll);
    s.config = config;
    s.records = records;
    this.recompute();
    return ok(this.output('configure', 'applied', this.emitQuorumChange(index, wasQuorate)));
  }

  private nodeCommand(index: LogIndex, c: NodeCommand): ApplyResult<MembershipOutput> {
    const s = this.s;
    if (s.config === null)
      return err(
        membershipError(
          'NOT_CONFIGURED',
          `no configuration is committed yet, so node ${c.node} cannot ${c.type}; commit the bootstrap configuration first`,
        ),
      );
    if (
      c.type === 'join' &&
      c.fingerprint !== undefined &&
      s.config.fingerprint !== '' &&
      c.fingerprint !== s.config.fingerprint
    ) {
      return err(
        membershipError(
          'SETTINGS_MISMATCH',
          `node ${c.node} may not join: its cluster-wide settings (fingerprint ${c.fingerprint}) differ from the cluster's (${s.config.fingerprint}); use the same cluster name, node list, quorum options and timeouts on every node (compare \`cohort status --json\` configFingerprint), then restart it`,
        ),
      );
    }
    const rec = s.records.get(c.node);
    if (rec === undefined)
      return err(
        membershipError(
          'UNKNOWN_NODE',
          `node ${c.node} is not in the committed configuration; add it with a configuration change first`,
        ),
      );
    const t = transition(rec, c);
    if (isApplyError(t)) return err(t);
    if (t.record === rec) return ok(this.output(c.type, t.outcome, 0));
    const wasQuorate = s.arbitration?.quorate ?? false;
    const before = membersOf(s.records);
    s.records.set(c.node, t.record);
    const skipBump = s.canary === 'skip-view-bump' && (t.view?.kind === 'left' || t.view?.kind === 'failed');
    if (t.view !== undefined && !skipBump) s.viewId++;
    this.recompute();
    let events = 0;
    if (t.view !== undefined) {
      const change = {
        node: c.node,
        incarnation: makeIncarnation(t.view.incarnation),
        kind: t.view.kind,
        cause: clipText(t.view.cause, EVENT_CAUSE_BYTES_MAX),
      };
      const after = membersOf(s.records);
      this.emit(index, { kind: 'view', payload: { members: after, ...quorumSummary(s.arbitration), change } });
      events++;
      // An incarnation that left the cluster view leaves every group at the same log position.
      for (const gone of before.filter(
        (m) => !after.some((a) => a.node === m.node && a.incarnation === m.incarnation),
      )) {
        for (const e of s.groups.removeNode(gone.node, gone.incarnation, true)) {
          this.emit(index, e);
          events++;
        }
      }
    } else if (t.note !== undefined) {
      this.emit(index, {
        kind: 'node',
        payload: {
          node: c.node,
          incarnation: t.note.incarnation,
          from: rec.status,
          to: t.record.status,
          cause: clipText(t.note.cause, EVENT_CAUSE_BYTES_MAX),
        },
      });
      events++;
    }
    events += this.emitQuorumChange(index, wasQuorate);
    return ok(this.output(c.type, t.outcome, events));
  }

  /** Steps wait_for_all with the current members and recomputes the arbitration. */
  private recompute(): void {
    const s = this.s;
    const config = defined(s.config, 'configuration');
    const present = new Set(membersOf(s.records).map((m) => m.node));
    s.waitForAll = stepWaitForAll(s.waitForAll, { type: 'membership', present, config: { incoming: config.quorum } });
    s.arbitration = arbitrationOf(s);
  }

  /** Emits a quorum event when the quorate flag differs from `wasQuorate`; returns the count. */
  private emitQuorumChange(index: LogIndex, wasQuorate: boolean): number {
    const a = this.s.arbitration;
    if (a === null || a.quorate === wasQuorate) return 0;
    this.emit(index, { kind: 'quorum', payload: quorumSummary(a) });
    return 1;
  }

  private emit(index: LogIndex, body: EventBody): MembershipEvent {
    return this.s.events.append(body, makeViewId(this.s.viewId), index);
  }

  stateHash(): StateHash {
    this.hashCache ??= stateHashOf(hashState(this.s));
    return this.hashCache;
  }

  snapshot(): Uint8Array {
    return encodeSnapshot(this.s);
  }

  restore(bytes: Uint8Array): Result<void, DecodeError> {
    try {
      this.s = decodeSnapshot(bytes, this.canary);
      this.hashCache = null;
      return ok(undefined);
    } catch (e) {
      if (e instanceof DecodeError) return err(e);
      throw e;
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Canonical bytes of the state: the snapshot, and the hash of everything but the events (whose
// digest the event log keeps incrementally).

const SNAPSHOT_MAGIC = 0x53424d43; // 'CMBS' read as a little-endian u32
const SNAPSHOT_FORMAT = 2;
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

function configBytesEqual(a: Configuration, b: Configuration): boolean {
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

/** Everything but the event window, in canonical order (the snapshot body's first part). */
function writeCore(w: ByteWriter, s: MembershipState): void {
  w.u64(s.appliedIndex).u64(s.appliedTerm).u64(s.viewId);
  writeConfigSection(w, s.config);
  writeWaitForAll(w, s.waitForAll);
  writeRecords(w, s);
  s.groups.encode(w);
}

function hashState(s: MembershipState): { hi: number; lo: number } {
  const w = new ByteWriter(1024, MEMBERSHIP_SNAPSHOT_BYTES_MAX);
  writeCore(w, s);
  return new Fnv64()
    .bytes(w.finish())
    .u64(s.events.nextSeq)
    .u32(s.events.length)
    .digest64(s.events.digestValue())
    .digest();
}

function encodeSnapshot(s: MembershipState): Uint8Array {
  const w = new ByteWriter(4096, MEMBERSHIP_SNAPSHOT_BYTES_MAX);
  w.u32(SNAPSHOT_MAGIC).u8(SNAPSHOT_FORMAT);
  writeCore(w, s);
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

function checkWaitForAll(s: MembershipState): void {
  const enabled = s.config?.options.waitForAll ?? false;
  if (enabled === (s.waitForAll.phase === 'off'))
    throw corrupt(`wait_for_all phase ${s.waitForAll.phase} contradicts the option (${enabled ? 'on' : 'off'})`);
}

function decodeSnapshot(bytes: Uint8Array, canary: MembershipCanary | null): MembershipState {
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
  if (format !== SNAPSHOT_FORMAT)
    throw new DecodeError(
      'SNAPSHOT_VERSION',
      `membership snapshot format ${format} is not supported (this build reads format ${SNAPSHOT_FORMAT}); upgrade this node`,
    );
  const s = emptyState(canary);
  s.appliedIndex = logIndex(r.u64('appliedIndex'));
  s.appliedTerm = makeTerm(r.u64('appliedTerm'));
  s.viewId = r.u64('viewId');
  s.config = readConfigSection(r);
  s.waitForAll = readWaitForAll(r);
  s.records = readRecords(r, s.config);
  s.groups = GroupTable.decode(r, GROUP_CANARIES.find((c) => c === canary) ?? null);
  checkGroupMembers(s);
  s.events = EventLog.decode(r);
  r.end('membership snapshot');
  checkWaitForAll(s);
  if (s.viewId > 0 && s.config === null) throw corrupt(`view ${s.viewId} without a configuration`);
  s.arbitration = arbitrationOf(s);
  return s;
}
