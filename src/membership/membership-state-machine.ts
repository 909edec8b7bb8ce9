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
import { assert, assertNever, defined } from '../lib/assert.js';
import { DecodeError, err, ok, type Result } from '../lib/errors.js';
import {
  incarnation as makeIncarnation,
  viewId as makeViewId,
  type Incarnation,
  type LogIndex,
  type NodeId,
  type Term,
  type ViewId,
} from '../lib/ids.js';
import {
  arbitrate,
  buildVotequorum,
  stepWaitForAll,
  type Arbitration,
  type VotequorumOptions,
  type WaitForAllState,
} from '../quorum/index.js';
import {
  assertApplyOrder,
  badCommand,
  stateHashOf,
  type ApplyError,
  type ApplyResult,
  type CommandCodec,
  type StateHash,
  type StateMachine,
} from '../log/state-machine.js';
import type { GroupApply, GroupCommand, GroupView, RetainedMessage } from '../groups/index.js';
import type { FenceRecord } from '../fencing/index.js';
import type { RecoveryCommand, RecoveryOutcome, RecoveryRound, RecoveryWait } from '../recovery/index.js';
import {
  decodeMembershipCommand,
  membershipCommandCodec,
  validateMembershipCommand,
  type MemberNodeSpec,
  type MembershipCommand,
  type MembershipCommandType,
} from './membership-command.js';
import {
  clipText,
  EVENT_CAUSE_BYTES_MAX,
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
  transition,
  type MembershipOutcome,
  type NodeCommand,
  type NodeRecord,
  type Transition,
} from './node-record.js';
import {
  arbitrationOf,
  emptyState,
  membersOf,
  quorumSummary,
  voteSpecs,
  waitForAllAfterConfigure,
  type Configuration,
  type MembershipCanary,
  type MembershipState,
} from './membership-state.js';
import { configBytesEqual, decodeSnapshot, encodeSnapshot, hashState } from './membership-snapshot.js';
import {
  affectedGroups,
  applyRecoveryCommand,
  isUnclean,
  recoveryAfterGroupChange,
  recoveryAfterViewChange,
  refusesNewGroup,
  type AffectedGroups,
} from './membership-recovery.js';

export { MEMBERSHIP_CANARIES, type MembershipCanary } from './membership-state.js';

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
  /**
   * For a recovery command: the recovery table's outcome (`outcome` says `no-change` for its
   * `not-due`: a `started` before the start was due).
   */
  readonly recovery?: RecoveryOutcome;
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

function membershipError(code: MembershipErrorCode, message: string): ApplyError {
  return { code, message };
}

function isApplyError(x: Transition | ApplyError): x is ApplyError {
  return 'code' in x;
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

  /** The messages `group` retains, also after it lost its last member (see `GroupTable.retainedMessages`). */
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

  /** The fence record of `(node, incarnation)`, pending or finished; null when unknown or dropped. */
  fenceRecord(node: NodeId, incarnation: number): FenceRecord | null {
    return this.s.fences.record(node, incarnation);
  }

  /** Fence records still waiting for their fence, ascending by node (what the executor runs). */
  pendingFences(): FenceRecord[] {
    return this.s.fences.pending();
  }

  /** Up to `limit` finished fence records, the latest finished first (see `FenceLedger.history`). */
  fenceHistory(limit?: number): FenceRecord[] {
    return this.s.fences.history(limit);
  }

  /** Every service group's recovery state (rounds open, finished or idle), by group name. */
  recoveryRounds(): RecoveryRound[] {
    return this.s.recovery.rounds();
  }

  /** What `group`'s recovery round waits for, or null when the table holds nothing for it. */
  recoveryWaitingFor(group: string): RecoveryWait | null {
    return this.s.recovery.waitingFor(group);
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
      case 'fence-attempt':
      case 'unfence':
        return this.fenceEntry(index, c);
      case 'recovery-report':
      case 'recovery-evict':
        return this.recoveryCommand(index, c);
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
    if (refusesNewGroup(s, c)) {
      // The recovery table is full (groups whose old rounds still wait for fences): no new group.
      return ok({
        ...this.output(c.type, 'no-change', 0),
        group: { outcome: 'too-many-groups', groupViewId: 0, events: [] },
      });
    }
    const members = membersOf(s.records);
    const r = s.groups.apply(c, (node, inc) => members.some((m) => m.node === node && m.incarnation === inc));
    for (const e of r.events) this.emit(index, e);
    let events = r.events.length;
    if (r.outcome === 'applied' && (c.type === 'group-join' || c.type === 'group-leave'))
      events += recoveryAfterGroupChange(s, index, c.group, r.level ?? 0, (e) => this.emit(index, e));
    return ok({ ...this.output(c.type, r.outcome === 'applied' ? 'applied' : 'no-change', events), group: r });
  }

  /** `recovery-report`, `recovery-evict`: see `applyRecoveryCommand` (never an error). */
  private recoveryCommand(index: LogIndex, c: RecoveryCommand): ApplyResult<MembershipOutput> {
    const r = applyRecoveryCommand(this.s, index, c, (e) => this.emit(index, e));
    const outcome: MembershipOutcome = r.outcome === 'not-due' ? 'no-change' : r.outcome;
    return ok({ ...this.output(c.type, outcome, r.events), recovery: r.outcome });
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
    const t = (s.canary === 'admit-before-fence' ? admitBeforeFence(rec, c) : null) ?? transition(rec, c);
    if (isApplyError(t)) return err(t);
    if (t.record === rec) {
      const outcome = this.fencedOutcome(c, t.outcome);
      if (s.canary === 'fence-twice' && c.type === 'fenced' && outcome === 'duplicate') {
        // Planted bug: a closed record is closed again.
        this.emit(index, {
          kind: 'fence',
          payload: { node: c.node, incarnation: c.incarnation, what: 'fenced', proof: c.proof },
        });
        return ok(this.output(c.type, outcome, 1));
      }
      return ok(this.output(c.type, outcome, 0));
    }
    const wasQuorate = s.arbitration?.quorate ?? false;
    const before = membersOf(s.records);
    s.records.set(c.node, t.record);
    const skipBump = s.canary === 'skip-view-bump' && (t.view?.kind === 'left' || t.view?.kind === 'failed');
    if (t.view !== undefined && !skipBump) s.viewId++;
    this.recompute();
    let events = 0;
    let affected: AffectedGroups = new Map();
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
      const goneList = before.filter((m) => !after.some((a) => a.node === m.node && a.incarnation === m.incarnation));
      affected = affectedGroups(s.groups.views(), goneList);
      for (const gone of goneList) {
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
    const ledger = this.fenceLedgerStep(index, c, rec, t);
    events += ledger.events;
    events += this.emitQuorumChange(index, wasQuorate);
    const unclean = t.view !== undefined && isUnclean(t.view.kind);
    events += recoveryAfterViewChange(s, index, affected, unclean, ledger.closed, (e) => this.emit(index, e));
    return ok(this.output(c.type, this.fencedOutcome(c, t.outcome), events));
  }

  /**
   * The fence ledger's part of a per-node command, in the same apply (design note section 1):
   * the transition that makes an incarnation's fence pending (`fail` or `quarantine` of a member,
   * a `join` that replaces one, a `leave` or `fail` naming a newer incarnation of a member) opens
   * its record; the `fenced` that clears it closes the record of the incarnation that was pending
   * (the command may name a newer one: a fence at incarnation i covers every older one); a
   * `fenced` of a member opens and closes one at once (it was fenced while a member). Emits the
   * `fence` events; returns their count and the incarnation whose record closed (null: none).
   */
  private fenceLedgerStep(
    index: LogIndex,
    c: NodeCommand,
    rec: NodeRecord,
    t: Transition,
  ): { events: number; closed: { node: NodeId; incarnation: Incarnation } | null } {
    const fences = this.s.fences;
    const cause = t.view?.cause ?? t.note?.cause ?? c.type;
    const canary = this.s.canary;
    const admittedEarly = canary === 'admit-before-fence' && c.type === 'join' && t.view?.kind === 'admitted';
    const inc = makeIncarnation(
      rec.fencePending || (admittedEarly && rec.status === 'member') ? rec.incarnation : t.record.incarnation,
    );
    let events = 0;
    let closed: { node: NodeId; incarnation: Incarnation } | null = null;
    const open = (): void => {
      assert(fences.open(c.node, inc, cause, index) === 'opened', 'an unclean removal opens a new fence record');
      const reason = defined(fences.record(c.node, inc), 'the record just opened').request.reason;
      this.emit(index, { kind: 'fence', payload: { node: c.node, incarnation: inc, what: 'requested', reason } });
      events++;
    };
    const close = (): void => {
      assert(c.type === 'fenced', 'only a fenced command clears a pending fence');
      assert(fences.close(c.node, inc, c.proof, index) === 'applied', 'a pending fence has an open record');
      this.emit(index, { kind: 'fence', payload: { node: c.node, incarnation: inc, what: 'fenced', proof: c.proof } });
      events++;
      closed = { node: c.node, incarnation: inc };
    };
    if (admittedEarly) {
      // Planted bug: the old incarnation's fence stays open (opened now if it was a member).
      if (!rec.fencePending) open();
      return { events, closed };
    }
    if (canary === 'fence-clean-leave' && t.view?.kind === 'left')
      open(); // planted bug
    else if (!rec.fencePending && t.record.fencePending) open();
    else if (rec.fencePending && !t.record.fencePending) close();
    else if (rec.fencePending)
      assert(t.record.incarnation === rec.incarnation, 'a pending fence keeps its incarnation');
    else if (c.type === 'fenced' && rec.status === 'member' && t.outcome === 'applied') {
      open();
      close();
    }
    return { events, closed };
  }

  /** A `fenced` that changed nothing is a `duplicate` when its incarnation's record is closed. */
  private fencedOutcome(c: NodeCommand, outcome: MembershipOutcome): MembershipOutcome {
    if (c.type !== 'fenced' || (outcome !== 'stale' && outcome !== 'no-change')) return outcome;
    return this.s.fences.record(c.node, c.incarnation)?.outcome.state === 'fenced' ? 'duplicate' : outcome;
  }

  /**
   * `fence-attempt` and `unfence`: recorded in the fence record of `(node, incarnation)` when it
   * is in the state that takes them (pending, resp. finished), with a `fence` event; otherwise a
   * deterministic no-op whose outcome says why (`stale`: an attempt on a finished record;
   * `no-change`: no such record, or an unfence before the fence). Never an error: the proposer
   * may race a confirmation or a leadership change.
   */
  private fenceEntry(
    index: LogIndex,
    c: Extract<MembershipCommand, { type: 'fence-attempt' | 'unfence' }>,
  ): ApplyResult<MembershipOutput> {
    const key = { node: c.node, incarnation: c.incarnation };
    const outcome =
      c.type === 'fence-attempt'
        ? this.s.fences.recordAttempt(c.node, c.incarnation, c.attempt)
        : this.s.fences.recordUnfence(c.node, c.incarnation, c.unfence);
    if (outcome !== 'applied') return ok(this.output(c.type, outcome, 0));
    this.emit(
      index,
      c.type === 'fence-attempt'
        ? { kind: 'fence', payload: { ...key, what: 'attempt', attempt: c.attempt } }
        : { kind: 'fence', payload: { ...key, what: 'unfenced', unfence: c.unfence } },
    );
    return ok(this.output(c.type, outcome, 1));
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

/**
 * The `admit-before-fence` canary's rule (simulator only): a join of an incarnation newer than any
 * seen, for a node that is a member or awaits its fence, admits the new incarnation at once
 * (the correct rule makes it wait for the fence). Null when the correct rule applies.
 */
function admitBeforeFence(rec: NodeRecord, c: NodeCommand): Transition | null {
  if (c.type !== 'join' || c.incarnation <= rec.seen || (rec.status !== 'member' && rec.status !== 'needs-fencing'))
    return null;
  return {
    record: { status: 'member', incarnation: c.incarnation, seen: c.incarnation, rejoin: 0, fencePending: false },
    outcome: 'applied',
    view: {
      kind: 'admitted',
      incarnation: c.incarnation,
      cause: `incarnation ${c.incarnation} admitted before incarnation ${rec.incarnation} was fenced (canary)`,
    },
  };
}
