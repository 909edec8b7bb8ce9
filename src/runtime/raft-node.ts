/**
 * The Raft shell: drives a `RaftCore` with a `NodeEnv` (ticks from timers, messages from the
 * transport, durability from the disk) and applies committed entries to a `StateMachine`.
 * The daemon and the simulator run this same code; only the `NodeEnv` differs.
 *
 * Ordering (the `Ready` contract of `src/log/ready.ts`, carried out here):
 * 1. `ready.messages` are sent at once (they never depend on this Ready's writes).
 * 2. The snapshot (file, then WAL reset), the entries (WAL group commit) and a changed term or
 *    vote (stable-state file plus a WAL `HARD` record) are persisted; the next Ready is not taken
 *    until all of them are durable. Proposals arriving meanwhile queue in the core and go out in
 *    the next Ready: that is the group commit of the cluster log. A newer commit index rides
 *    along in a `HARD` record with every WAL batch written anyway, and a Ready that would apply a
 *    configuration entry beyond the durable commit index writes and syncs one first, so a
 *    restarted node knows the configuration changes it applied were committed.
 * 3. Only then: the storage the core reads is updated, the snapshot and committed entries are
 *    applied, `messagesAfterPersist` (votes, append acks) are sent, reads are answered, and
 *    `advance` is called.
 *
 * Requests (`propose`, `read`) complete through callbacks, exactly once: with the state
 * machine's result, with a definite refusal, or with `TIMEOUT` (outcome unknown to the caller).
 */
import { assert, defined } from '../lib/assert.js';
import { err, ok, type Result } from '../lib/errors.js';
import {
  incarnation as makeIncarnation,
  logIndex,
  type Incarnation,
  type LogIndex,
  type NodeId,
  type Term,
} from '../lib/ids.js';
import {
  RAFT_CONFIG_DEFAULTS,
  RaftCore,
  RaftError,
  type ConfChange,
  type ConfState,
  type Entry,
  type RaftMessage,
  type RaftRole,
  type RaftStatus,
  type Ready,
  type StateMachine,
  type ApplyResult,
} from '../log/index.js';
import { describeStorageFailure, StorageError, type Wal } from '../storage/index.js';
import { INCARNATION_MAX, RAFT_NODE_PENDING_REQUESTS_MAX } from '../constants.js';
import type { NodeEnv, TimerHandle } from './env.js';
import { RaftNodeError, RaftRequests } from './raft-requests.js';

export { RaftNodeError, type RaftNodeErrorCode } from './raft-requests.js';
import {
  WAL_RECORD_ENTRY,
  WAL_RECORD_HARD,
  discardCorruptWal,
  encodeEntryRecord,
  encodeHardRecord,
  encodeSnapshotFile,
  recoverOrFailStop,
  encodeBlob,
  type Recovered,
} from './raft-persistence.js';

/** Missed ticks caught up after a stall are capped at this many election timeouts. */
const TICK_CATCH_UP_ELECTIONS = 4;

export {
  RAFT_SHELL_CANARIES,
  type RaftNodeOptions,
  type RaftObserver,
  type RaftShellCanary,
} from './raft-node-options.js';
import type { RaftNodeOptions } from './raft-node-options.js';

/** See the file comment. */
export class RaftNode<C extends { readonly type: string }, O> {
  readonly incarnation: Incarnation;
  /** The incarnation every blob written records as used (this run's, or one learned: `retireIncarnation`). */
  private usedIncarnation: Incarnation;
  private readonly core: RaftCore;
  private readonly rec: Recovered;
  private readonly sm: StateMachine<C, O>;
  private readonly opts: RaftNodeOptions<C, O>;
  private ticks = 0;
  private tickTimer: TimerHandle | null = null;
  private persisting = false;
  /** The role the last soft state reported was leader (current whenever no Ready is persisting). */
  private leading = false;
  private stopped = false;
  private started = false;
  /** Clock time the tick count corresponds to (see `scheduleTick`). */
  private lastTickMs = 0;
  /** True once the incarnation is durable and the WAL usable: inputs are handled only then. */
  private running = false;
  private walOrNull: Wal | null;
  private applied: LogIndex;
  private snapshotIndex: LogIndex;
  private snapshotting = false;
  private savedTerm: Term;
  private savedVote: NodeId | null;
  /** The commit index of the newest `HARD` record written (durable once the Ready's flush is). */
  private savedCommit: LogIndex;
  /** The newest commit index the core reported (a commit-only change is written lazily). */
  private knownCommit: LogIndex;
  private repairing: boolean;
  /**
   * The state machine lacks entry data: it started from, or restored, a witness's copy, or applied
   * a metadata-only entry since. This node's own snapshots then carry the `metadataOnly` mark, so
   * a restart knows it too (even after the node left the configuration that made it a witness).
   */
  private metadataOnlyState: boolean;
  private readonly requests: RaftRequests<O>;
  /** WAL sequence number of each entry held, for entries `seqBase`, `seqBase + 1`, ... */
  private entrySeqs: number[];
  private seqBase: LogIndex;

  constructor(
    private readonly env: NodeEnv<RaftMessage>,
    options: RaftNodeOptions<C, O>,
  ) {
    this.opts = options;
    this.sm = options.stateMachine;
    this.requests = new RaftRequests<O>(options.requestTimeoutTicks);
    this.rec = recoverOrFailStop(env, options.bootstrap, (e) => {
      this.fail(e);
    });
    for (const note of this.rec.notes) env.trace('recovery-note', { note });
    this.incarnation = this.rec.blob.incarnation;
    this.usedIncarnation = this.incarnation;
    this.walOrNull = this.rec.wal;
    this.entrySeqs = [...this.rec.entrySeqs];
    this.seqBase = this.rec.seqBase;
    this.repairing = this.rec.repairReason !== null;
    if (this.rec.repairReason !== null) env.trace('repair-start', { reason: this.rec.repairReason });
    const snap = this.rec.storage.snapshot();
    assert(snap.ok, 'memory storage always holds a snapshot');
    this.snapshotIndex = snap.value.metadata.index;
    this.metadataOnlyState = snap.value.metadata.index > 0 && this.isMetadataOnly(snap.value.metadata);
    if (snap.value.metadata.index > 0 && !this.metadataOnlyState) {
      const restored = this.sm.restore(snap.value.data);
      assert(restored.ok, 'a snapshot that passed its checksum restores');
    }
    this.applied = snap.value.metadata.index;
    this.savedTerm = this.rec.stableState.term;
    this.savedVote = this.rec.stableState.vote;
    this.savedCommit = this.rec.storage.initialState().hardState.commit;
    this.knownCommit = this.savedCommit;
    this.core = new RaftCore({
      ...RAFT_CONFIG_DEFAULTS,
      bootstrapEntry: true,
      ...options.raft,
      id: env.nodeId,
      storage: this.rec.storage,
      prng: env.prng.fork('raft'),
      applied: this.applied,
      repairing: this.repairing,
      trace: (event, fields) => {
        env.trace(`raft-${event}`, fields);
      },
    });
  }

  /**
   * Starts the node: persists the new incarnation (and the repair flag), discards a corrupt WAL
   * if recovery found one, then begins ticking and handling messages. Messages that arrive before
   * that are dropped (the protocol retransmits). `onStarted` runs once the node is running.
   */
  start(onStarted?: (error: Error | null) => void): void {
    assert(!this.started, 'a node starts once');
    this.started = true;
    this.env.transport.setHandlers({
      onMessage: (_from, m) => {
        if (!this.running) return;
        this.core.step(m);
        this.pump();
      },
      onPeerUp: () => undefined,
      onPeerDown: (peer) => {
        if (this.running) this.core.reportUnreachable(peer);
      },
      onPeerGone: (peer) => {
        if (!this.running) return;
        this.core.peerGone(peer);
        this.pump();
      },
    });
    // A storage error while starting fail-stops the node like any other; `onStarted` still hears
    // of it where the environment lets the caller run on (embedded mode, tests). Every error here
    // is a `StorageError`: a start that failed without fail-stopping would leave a process that
    // neither runs nor counts as crashed, so nothing would ever restart it (seed 1099257315).
    const failed = (error: StorageError): void => {
      this.env.trace('start-failed', { message: error.message });
      this.fail(error);
      this.stop();
      onStarted?.(error);
    };
    this.rec.stable.save(this.rec.stableState, (error) => {
      if (error !== null) {
        failed(error);
        return;
      }
      if (this.stopped) return;
      const run = (): void => {
        this.running = true;
        this.env.trace('node-start', {
          incarnation: this.incarnation,
          applied: this.applied,
          repairing: this.repairing,
        });
        this.rec.snapshots.removeTemporaries((e) => {
          if (e !== null) this.env.trace('snapshot-temp-cleanup-failed', { message: e.message });
        });
        this.lastTickMs = this.env.clock.nowMs();
        this.scheduleTick();
        this.pump();
        onStarted?.(null);
      };
      if (this.walOrNull !== null) {
        run();
        return;
      }
      discardCorruptWal(
        this.env.disk,
        this.rec.corruptSegments,
        () => undefined,
        (e, wal) => {
          if (e !== null) {
            failed(e);
            return;
          }
          assert(wal !== null, 'a discard that succeeded opens a WAL');
          if (this.stopped) return;
          this.walOrNull = wal;
          run();
        },
        (e) => {
          this.fail(e);
        },
      );
    });
  }

  /** Stops ticking and drops every pending request with `STOPPED`. Idempotent. */
  stop(): void {
    this.halt();
    this.requests.dropAll(new RaftNodeError('STOPPED', 'the node is stopping'));
  }

  /** Stops ticking and handling inputs, leaving pending requests alone (a crash answers nobody). */
  private halt(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.running = false;
    this.tickTimer?.cancel();
    this.walOrNull?.close();
  }

  /**
   * True when this node's state machine does not hold the entries' data, so its state must not be
   * read or compared: it is a witness (in the applied configuration or the latest one in its log),
   * holds a witness's copy of the log, or started from or applied a witness's copy since.
   */
  holdsMetadataOnly(): boolean {
    return this.metadataOnlyState || this.core.holdsMetadataOnly() || this.core.isWitnessHere();
  }

  /** The core's status plus shell state. */
  status(): RaftStatus & {
    readonly incarnation: Incarnation;
    readonly repairing: boolean;
    readonly snapshotIndex: LogIndex;
  } {
    const core = this.core.status();
    return {
      ...core,
      leaseValid: core.leaseValid && !this.tickOverdue(),
      incarnation: this.incarnation,
      repairing: this.repairing,
      snapshotIndex: this.snapshotIndex,
    };
  }

  /**
   * `status().leaseValid`, cheaply: a node that is not leader holds no lease, and while no Ready
   * is persisting every role change has reached the shell, so only a leader (or a node with a
   * Ready in flight) asks the core. For frequent polling (the simulator's lease checker).
   */
  leaseValid(): boolean {
    if (!this.leading && !this.persisting) return false;
    return this.core.status().leaseValid && !this.tickOverdue();
  }

  /**
   * Entries in `[lo, hi)` of the log this node holds (durable and in-memory), e.g. what it
   * recovered at start. Read-only: for status dumps and the simulator's checkers.
   */
  logEntries(lo: LogIndex, hi: LogIndex): Result<Entry[], RaftError> {
    return this.core.logEntries(lo, hi);
  }

  /** What recovery repaired at construction (log it), and whether the stable state was lost. */
  get recovery(): Pick<Recovered, 'repairs' | 'stableStateLost'> {
    return this.rec;
  }

  /**
   * Records durably that incarnations up to `highestUsed` are used (the cluster saw them), so the
   * next start runs as `max(highestUsed, this.incarnation) + 1`; `done` runs once that is
   * durable (null) or with the storage error (the node then fail-stops as for any save). This run
   * keeps its incarnation: the caller ends it (see `ServiceContext.retire`). Returns the
   * incarnation the next start will use.
   */
  retireIncarnation(highestUsed: number, done: (error: StorageError | null) => void): Incarnation {
    assert(this.running, 'the node records a used incarnation only while running');
    assert(Number.isSafeInteger(highestUsed) && highestUsed >= 0, 'an incarnation is a non-negative integer');
    const used = Math.max(highestUsed, this.usedIncarnation);
    assert(used < INCARNATION_MAX, `incarnations are below ${INCARNATION_MAX}`);
    this.usedIncarnation = makeIncarnation(used);
    const blob = encodeBlob({ incarnation: this.usedIncarnation, repairing: this.repairing });
    this.rec.stable.save({ term: this.savedTerm, vote: this.savedVote, blob }, (e) => {
      if (e !== null) this.fail(e);
      done(e);
    });
    return makeIncarnation(used + 1);
  }

  /** The core's current term (cheap). */
  /** The highest index applied to the state machine (cheap; `status()` builds a whole report). */
  get appliedIndex(): LogIndex {
    return this.applied;
  }

  get currentTerm(): Term {
    return this.core.currentTerm;
  }

  /** The term of entry `index` in the durable log (or of the snapshot's last entry), or null when unknown. */
  termOf(index: LogIndex): Term | null {
    const t = this.rec.storage.term(index);
    return t.ok ? t.value : null;
  }

  /** The state machine (for local, possibly stale reads; use `read` first for linearizable ones). */
  get stateMachine(): StateMachine<C, O> {
    return this.sm;
  }

  /**
   * Proposes `command` (encoded with the state machine's codec). `done` runs once: with the
   * state machine's result when the entry is applied here, or with a `RaftNodeError`.
   * `NOT_LEADER`, `BUSY` and `STOPPED` are definite (nothing was proposed); `TIMEOUT` and
   * `OUTCOME_UNKNOWN` mean the command may or may not take effect.
   */
  propose(command: C, done: (r: Result<O, RaftNodeError>) => void): void {
    const refusal = this.refuseRequest();
    if (refusal !== null) {
      done(err(refusal));
      return;
    }
    const r = this.core.propose(this.sm.codec.encode(command));
    if (!r.ok) {
      done(err(this.translate(r.error)));
      return;
    }
    this.requests.addProposal(r.value.index, r.value.term, this.ticks, done);
    this.pump();
  }

  /** Proposes a configuration change; `done` runs when it is applied here (or fails). */
  proposeConfChange(change: ConfChange, done: (r: Result<void, RaftNodeError>) => void): void {
    const refusal = this.refuseRequest();
    if (refusal !== null) {
      done(err(refusal));
      return;
    }
    const r = this.core.proposeConfChange(change);
    if (!r.ok) {
      done(err(this.translate(r.error)));
      return;
    }
    this.requests.addProposal(r.value.index, r.value.term, this.ticks, (res) => {
      done(res.ok ? ok(undefined) : res);
    });
    this.pump();
  }

  /**
   * Waits until a linearizable read is safe: `done(ok)` means the local state machine now
   * reflects every write committed before `read` was called.
   */
  read(done: (r: Result<void, RaftNodeError>) => void): void {
    const refusal = this.refuseRequest();
    if (refusal !== null) {
      done(err(refusal));
      return;
    }
    const ctx = this.requests.newReadContext();
    const r = this.core.readIndex(ctx);
    if (!r.ok) {
      done(err(this.translate(r.error)));
      return;
    }
    this.requests.addRead(ctx, this.ticks, done);
    this.pump();
  }

  /** Asks the leader to hand leadership to `to`. */
  transferLeadership(to: NodeId): Result<void, RaftNodeError> {
    const r = this.core.transferLeadership(to);
    this.pump();
    return r.ok ? ok(undefined) : err(this.translate(r.error));
  }

  /** two_node: the fence race against `peer` was won (`RaftCore.peerFenced`). */
  peerFenced(peer: NodeId): Result<void, RaftNodeError> {
    const r = this.core.peerFenced(peer);
    this.pump();
    return r.ok ? ok(undefined) : err(this.translate(r.error));
  }

  /** Asks the leader to hand leadership to the best other data voter (`RaftCore.handOver`). */
  handOver(): Result<NodeId, RaftNodeError> {
    const r = this.core.handOver();
    this.pump();
    return r.ok ? ok(r.value) : err(this.translate(r.error));
  }

  /** The WAL; usable once the node is running. */
  private get wal(): Wal {
    return defined(this.walOrNull, 'the WAL (the node is not running yet)');
  }

  private refuseRequest(): RaftNodeError | null {
    if (this.stopped || !this.running) return new RaftNodeError('STOPPED', 'the node is not running');
    if (this.requests.size >= RAFT_NODE_PENDING_REQUESTS_MAX) {
      return new RaftNodeError(
        'BUSY',
        `${RAFT_NODE_PENDING_REQUESTS_MAX} requests are already waiting on this node; retry after some complete`,
      );
    }
    return null;
  }

  private translate(e: RaftError): RaftNodeError {
    if (e.code === 'NOT_LEADER') {
      const lead = this.core.status().lead;
      return new RaftNodeError(
        'NOT_LEADER',
        lead === null
          ? 'no leader is known right now; retry shortly'
          : `node ${lead} is the leader; send the request there`,
        lead,
      );
    }
    return new RaftNodeError('REFUSED', e.message);
  }

  // -------------------------------------------------------------------------------------------
  // The loop

  /**
   * Ticks by elapsed monotonic time: a timer that fires late (an event-loop stall, SIGSTOP, a
   * paused simulated node) catches up the missed ticks at once, up to a cap. Counting one tick
   * per timer call instead would let a leader that was stopped for seconds still believe its
   * lease valid when it resumes and serve a stale read; caught up, its lease and check-quorum
   * run out as they would have on time.
   */
  private scheduleTick(): void {
    this.tickTimer = this.env.timers.after(this.opts.tickMs, () => {
      if (this.stopped) return;
      const now = this.env.clock.nowMs();
      const due = Math.max(1, Math.floor((now - this.lastTickMs) / this.opts.tickMs));
      const electionTicks = this.opts.raft?.electionTicks ?? RAFT_CONFIG_DEFAULTS.electionTicks;
      const n = Math.min(due, TICK_CATCH_UP_ELECTIONS * electionTicks);
      this.lastTickMs = n === due ? this.lastTickMs + due * this.opts.tickMs : now;
      if (n > 1) this.env.trace('tick-catch-up', { ticks: n });
      for (let i = 0; i < n; i++) {
        this.ticks++;
        this.core.tick();
      }
      this.requests.expire(this.ticks);
      this.scheduleTick();
      this.pump();
    });
  }

  /**
   * True when a tick is overdue by a whole tick or more (a stall or pause the tick timer has not
   * caught up yet) or the node does not run: the core's lease then counts ticks that did not pass
   * on its clock, so it must not be reported valid until the catch-up ran.
   */
  private tickOverdue(): boolean {
    return !this.running || this.env.clock.nowMs() - this.lastTickMs >= 2 * this.opts.tickMs;
  }

  /** Takes and carries out Readies until none is left or one waits on the disk. */
  private pump(): void {
    while (!this.stopped && !this.persisting && this.core.hasReady()) {
      const rd = this.core.ready();
      this.send(rd.messages);
      const waits = this.persist(rd);
      if (waits) return;
      this.finish(rd);
    }
  }

  /**
   * Starts persisting `rd`. Returns true when completion is asynchronous (then `finish` runs
   * from the last disk completion); false when nothing had to be written.
   */
  private persist(rd: Ready): boolean {
    const termOrVote =
      rd.hardState !== null && (rd.hardState.term !== this.savedTerm || rd.hardState.vote !== this.savedVote);
    if (rd.hardState !== null) this.knownCommit = rd.hardState.commit;
    // Applying a configuration change the disk does not know is committed would let a crash
    // restart this node counting with it while believing it uncommitted: record the commit first.
    const confBeyondCommit = rd.committedEntries.some((e) => e.type === 'conf' && e.index > this.savedCommit);
    if (rd.snapshot === null && rd.entries.length === 0 && !termOrVote && !confBeyondCommit) return false;
    // A HARD record is cheap in a batch that is written and synced anyway; after a snapshot's WAL
    // reset it also restores the copy of term and vote the reset removed.
    const hard = termOrVote || rd.snapshot !== null || this.knownCommit > this.savedCommit;
    this.persisting = true;
    let parts = 1; // one for the caller, released once every part has been started
    const partDone = (error: StorageError | null): void => {
      if (error !== null) {
        this.fail(error);
        return;
      }
      if (--parts > 0 || this.stopped) return;
      this.persisting = false;
      this.finish(rd);
      this.pump();
    };
    if (termOrVote) {
      parts++;
      const hs = defined(rd.hardState, 'hard state');
      this.savedTerm = hs.term;
      this.savedVote = hs.vote;
      const blob = encodeBlob({ incarnation: this.usedIncarnation, repairing: this.repairing });
      this.rec.stable.save({ term: this.savedTerm, vote: this.savedVote, blob }, partDone);
    }
    parts++;
    const appendAndFlush = (): void => {
      if (this.stopped) return;
      const records = rd.entries.map((e) => ({ type: WAL_RECORD_ENTRY, payload: encodeEntryRecord(e) }));
      if (hard) {
        this.savedCommit = logIndex(Math.max(this.savedCommit, this.knownCommit));
        records.push({
          type: WAL_RECORD_HARD,
          payload: encodeHardRecord(this.savedTerm, this.savedVote, this.savedCommit),
        });
      }
      if (records.length > 0) this.noteSeqs(rd.entries, this.wal.appendAll(records) - (hard ? 1 : 0));
      // Every part completes from a disk callback (a flush with nothing new still needs one),
      // so `finish` never runs inside `persist`.
      // The ack-before-fsync canary takes the entries as durable once issued: the flush still
      // runs (its failure still counts), but the Ready completes without waiting for it.
      const early = this.opts.canary === 'ack-before-fsync' && records.length > 0;
      const flushDone = (e: StorageError | null): void => {
        if (!early || e !== null) partDone(e);
      };
      if (records.length === 0 || this.wal.flush(flushDone) || early) {
        this.env.timers.after(0, () => {
          partDone(null);
        });
      }
    };
    if (rd.snapshot !== null) this.persistSnapshotThen(rd, appendAndFlush, partDone);
    else appendAndFlush();
    assert(parts > 1, 'every persist part completes asynchronously');
    parts--;
    return true;
  }

  /** Writes the leader's snapshot durably, resets the WAL, then runs `next`. */
  private persistSnapshotThen(rd: Ready, next: () => void, failed: (e: StorageError | null) => void): void {
    const snap = rd.snapshot;
    assert(snap !== null, 'persistSnapshotThen needs a snapshot');
    const writer = this.rec.snapshots.create(snap.metadata.index, snap.metadata.term);
    writer.write(
      encodeSnapshotFile(snap.metadata.confState, snap.data, snap.metadata.metadataOnly === true),
      (error) => {
        if (error !== null) {
          failed(error);
          return;
        }
        writer.commit((commitError) => {
          if (commitError !== null) {
            failed(commitError);
            return;
          }
          // The flush in `next` waits for the reset marker too (it takes a sequence number).
          this.wal.reset((resetError) => {
            if (resetError !== null) failed(resetError);
          });
          this.entrySeqs.length = 0;
          this.seqBase = logIndex(snap.metadata.index + 1);
          next();
        });
      },
    );
  }

  /** Records the WAL sequence numbers of `entries`, the last of which got `lastSeq`. */
  private noteSeqs(entries: readonly Entry[], lastSeq: number): void {
    if (entries.length === 0) return;
    const first = (entries[0] as Entry).index;
    const at = first - this.seqBase;
    assert(
      at >= 0 && at <= this.entrySeqs.length,
      `entries at ${first} do not follow the tracked log (base ${this.seqBase})`,
    );
    this.entrySeqs.length = at;
    const firstSeq = lastSeq - entries.length + 1;
    for (let i = 0; i < entries.length; i++) this.entrySeqs.push(firstSeq + i);
  }

  /** Steps 3-6 of the Ready contract, once `rd` is durable. */
  private finish(rd: Ready): void {
    const storage = this.rec.storage;
    if (rd.snapshot !== null) {
      const applied = storage.applySnapshot(rd.snapshot);
      assert(applied.ok, 'the core hands out only snapshots newer than the stored one');
      const metadataOnly = this.isMetadataOnly(rd.snapshot.metadata);
      this.metadataOnlyState = metadataOnly;
      if (!metadataOnly) {
        const restored = this.sm.restore(rd.snapshot.data);
        assert(restored.ok, 'a snapshot from the leader restores (it was validated by the leader)');
      }
      this.applied = rd.snapshot.metadata.index;
      this.snapshotIndex = rd.snapshot.metadata.index;
      this.requests.skipped(this.applied);
      this.opts.observer?.onRestore?.(rd.snapshot.metadata.index, rd.snapshot.metadata.term, metadataOnly);
    }
    storage.append(rd.entries);
    if (rd.entries.length > 0) this.opts.observer?.onPersist?.(rd.entries);
    if (rd.hardState !== null) storage.setHardState(rd.hardState);
    for (const e of rd.committedEntries) this.applyEntry(e);
    this.send(rd.messagesAfterPersist);
    for (const rs of rd.readStates) this.requests.readState(rs.context, rs.index);
    if (rd.softState !== null) this.onSoftState(rd.softState.role, rd.softState.lead);
    this.core.advance(rd);
    this.requests.answerReads(this.applied, () => this.witnessRefusal());
    this.checkRepair();
    this.maybeSnapshot();
  }

  private applyEntry(e: Entry): void {
    assert(e.index === this.applied + 1, `apply ${e.index} after ${this.applied}: entries apply in order`);
    this.applied = e.index;
    let result: ApplyResult<O> | null = null;
    if (e.type === 'normal' && e.metadataOnly === true) this.metadataOnlyState = true;
    if (e.type === 'normal' && e.data.length > 0) result = this.sm.apply(e.index, e.term, e.data);
    this.opts.observer?.onApply?.(e, result);
    this.requests.applied(e, result);
  }

  /**
   * True for a snapshot without state-machine data: a witness's copy (`metadataOnly`), or any
   * snapshot of a configuration in which this node is a witness (the snapshot file keeps the
   * mark of a copy received from the leader). A witness applies nothing, so its state machine is never restored from one.
   */
  private isMetadataOnly(meta: { readonly metadataOnly?: true; readonly confState: ConfState }): boolean {
    return meta.metadataOnly === true || (meta.confState.witnesses ?? []).includes(this.env.nodeId);
  }

  private onSoftState(role: RaftRole, lead: NodeId | null): void {
    this.leading = role === 'leader';
    this.opts.observer?.onRole?.(role, this.core.status().term, lead);
  }

  /** A witness's copy holds no data to read: its reads are refused (checked when they are due). */
  private witnessRefusal(): RaftNodeError | null {
    if (!this.core.holdsMetadataOnly()) return null;
    return new RaftNodeError(
      'NOT_LEADER',
      `node ${this.env.nodeId} is a witness (it holds a witness's copy of the log): it has no data to serve reads from; read from the leader or a data node`,
      this.core.status().lead,
    );
  }

  /** Leaves repair mode once the core says the log is whole again, and records it durably. */
  private checkRepair(): void {
    if (!this.repairing || this.core.repairing) return;
    this.repairing = false;
    this.env.trace('repair-done', { applied: this.applied });
    this.opts.observer?.onRepaired?.(this.applied);
    this.rec.stable.save(
      {
        term: this.savedTerm,
        vote: this.savedVote,
        blob: encodeBlob({ incarnation: this.usedIncarnation, repairing: false }),
      },
      (e) => {
        if (e !== null) this.fail(e);
      },
    );
  }

  /** Takes a snapshot when enough entries were applied since the last one. */
  private maybeSnapshot(): void {
    if (this.snapshotting || this.applied - this.snapshotIndex < this.opts.snapshotEntries) return;
    const index = this.applied;
    const t = this.rec.storage.term(index);
    if (!t.ok) return;
    const confState = this.core.confState();
    const data = this.sm.snapshot();
    this.snapshotting = true;
    const writer = this.rec.snapshots.create(index, t.value);
    const failed = (e: StorageError): void => {
      this.fail(e);
    };
    writer.write(encodeSnapshotFile(confState, data, this.metadataOnlyState), (error) => {
      if (error !== null) {
        failed(error);
        return;
      }
      writer.commit((commitError) => {
        if (commitError !== null) {
          failed(commitError);
          return;
        }
        if (this.stopped) return;
        this.compactTo(index, confState, data);
      });
    });
  }

  /** After a durable local snapshot at `index`: compact memory and drop old WAL segments. */
  private compactTo(index: LogIndex, confState: ConfState, data: Uint8Array): void {
    this.snapshotting = false;
    if (index <= this.snapshotIndex) return; // a leader's snapshot overtook this one
    const created = this.rec.storage.createSnapshot(index, confState, data);
    if (!created.ok) return;
    this.snapshotIndex = index;
    const keepFrom = Math.max(this.rec.storage.firstIndex(), index - this.opts.snapshotCatchUpEntries);
    if (keepFrom - 1 > this.rec.storage.firstIndex() - 1) {
      const compacted = this.rec.storage.compact(logIndex(keepFrom - 1));
      assert(compacted.ok, 'compaction below the new snapshot succeeds');
    }
    const at = index + 1 - this.seqBase;
    const seq = at >= 0 && at < this.entrySeqs.length ? (this.entrySeqs[at] as number) : this.wal.nextSeq;
    this.wal.truncateBefore(seq, (e) => {
      if (e !== null) {
        this.fail(e);
        return;
      }
      // The segment holding the newest HARD record may be gone: write it again.
      if (this.stopped) return;
      try {
        this.wal.append(WAL_RECORD_HARD, encodeHardRecord(this.savedTerm, this.savedVote, this.savedCommit));
      } catch (appendError) {
        if (!(appendError instanceof StorageError)) throw appendError;
        this.fail(appendError);
      }
    });
    const drop = Math.max(0, Math.min(at, this.entrySeqs.length));
    this.entrySeqs.splice(0, drop);
    this.seqBase = logIndex(this.seqBase + drop);
    this.env.trace('snapshot', { index, bytes: data.length });
  }

  private send(messages: readonly RaftMessage[]): void {
    for (const m of messages) this.env.transport.send(m.to, m);
  }

  /**
   * A storage failure is fatal for the whole node, not only this shell: it fail-stops (the
   * environment ends the incarnation) rather than guess what is durable. Stopping only the shell
   * would leave the rest of the node answering as healthy, with a frozen core still reporting a
   * valid lease.
   */
  private fail(error: StorageError): void {
    if (this.stopped) return;
    this.env.trace('storage-failed', { code: error.code, file: error.file, message: error.message });
    this.halt();
    this.env.failStop(`storage failure: ${describeStorageFailure(error)}`, error);
  }
}
