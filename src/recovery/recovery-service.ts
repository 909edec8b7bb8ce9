/**
 * `RecoveryService`: the recovery coordinator as a node service (docs/recovery.md,
 * docs/design/fencing-and-recovery.md section 5). The rounds themselves live in the recovery
 * table inside the membership machine (same log positions as the view changes that open them);
 * this service is what each node does about them:
 *
 * - **Participants.** Code on this node that takes part in a group's recovery registers a
 *   participant for the group (`participate`): the daemon's own services (a DLM lockspace at
 *   level 1, a volume at level 2) and applications through the client API (`recovery.watch`).
 *   A participant gets `stop`, `start` (with the generation and the members) and `finish`, and
 *   answers `stop` and `start` through its `done` callback (an error on `start` reports `error`:
 *   the node is removed from the group and the round restarts without it).
 * - **Reports.** For every open round this node's incarnation is a member of, it reports
 *   `stopped` once every local participant stopped, and `started` once every one started (or
 *   `error`). A group with no local participant is reported at once (nothing here to recover).
 *   Stops go top level first: a node stops its level-L groups only after its higher-level groups
 *   in a round have stopped here.
 * - **Timeouts, on the leader.** A member that owes a report for longer than `memberTimeoutMs`
 *   (by the leader's clock, since it saw the round in that phase) is evicted (`recovery-evict`).
 *
 * Every report is an idempotent proposal (the table answers a repeat `duplicate`), retried on the
 * next applied entry or tick until the table shows it. A participant's answer may come at once
 * (inside `stop`/`start`) or later; either way the service re-examines the rounds after the call
 * that delivered it, never inside it (no re-entrant pass). `finish` is told only to participants
 * that were asked to start that generation on this node. Pure: runs unchanged in the simulator.
 */
import type { ApiHandlerRegistry } from '../api/index.js';
import { defined } from '../lib/assert.js';
import type { Incarnation, NodeId } from '../lib/ids.js';
import type { RaftRole } from '../log/index.js';
import type { MembershipService } from '../membership/membership-service.js';
import type { NodeService, ServiceContext } from '../runtime/node-service.js';
import type { RecoveryRound, RecoveryWait } from './recovery-table.js';
import { registerRecoveryApi } from './recovery-handlers.js';
import type { RecoveryReport } from './recovery-command.js';

/** What a participant is told when a round starts. */
export interface RecoveryStart {
  readonly group: string;
  readonly generation: number;
  readonly members: readonly { readonly node: NodeId; readonly incarnation: Incarnation }[];
}

/**
 * One local participant of a group's recovery. Each `done` counts once (later calls are ignored),
 * and is ignored once its generation was replaced (the participant is asked again for the next).
 */
export interface RecoveryParticipant {
  /** Stop using the group's shared state; call `done` once stopped. */
  stop(group: string, generation: number, done: () => void): void;
  /** Start again with `start.members`; `done(null)` when started, `done(message)` on failure. */
  start(start: RecoveryStart, done: (error: string | null) => void): void;
  /** The round this participant started finished on every member: the group runs again. */
  finish?(group: string, generation: number): void;
}

/** One round as `recovery` reports it. */
export interface RecoveryStatus {
  readonly group: string;
  readonly level: number;
  readonly generation: number;
  readonly phase: string;
  readonly sinceIndex: number;
  readonly members: readonly {
    readonly node: NodeId;
    readonly incarnation: number;
    readonly report: RecoveryReport | null;
  }[];
  readonly waiting: RecoveryWait | null;
}

/** What the service is doing for one (group, generation) on this node. */
interface LocalRound {
  readonly group: string;
  readonly generation: number;
  /** Participants asked to stop / start that have not answered, with the answer to give for them if they go. */
  readonly stopping: Map<RecoveryParticipant, () => void>;
  readonly starting: Map<RecoveryParticipant, (error: string | null) => void>;
  /** Participants asked to start (they are told `finish`). */
  readonly started: Set<RecoveryParticipant>;
  startError: string | null;
  stopAsked: boolean;
  startAsked: boolean;
  finished: boolean;
  /** A report proposal is in flight. */
  proposing: boolean;
}

/** Options of the recovery service. */
export interface RecoveryServiceOptions {
  /** A member owing a report this long is evicted by the leader, ms. */
  readonly memberTimeoutMs: number;
}

/** See the file comment. */
export class RecoveryService implements NodeService {
  readonly name = 'recovery';
  private ctxRef: ServiceContext | null = null;
  private readonly participants = new Map<string, Set<RecoveryParticipant>>();
  private readonly local = new Map<string, LocalRound>();
  /** Leader only: when this leader first saw each owed report, by `group/generation/phase/node/incarnation`. */
  private readonly owedSince = new Map<string, number>();
  /** A pass over the rounds is running; `again` asks it for one more (answers that came during it). */
  private reconciling = false;
  private again = false;

  constructor(
    private readonly membership: MembershipService,
    private readonly options: RecoveryServiceOptions,
  ) {}

  attach(ctx: ServiceContext): void {
    this.ctxRef = ctx;
  }

  private get ctx(): ServiceContext {
    return defined(this.ctxRef, 'the recovery service is attached');
  }

  /**
   * Registers `p` for `group` on this node; returns the function that removes it (idempotent). A
   * participant removed while it owes an answer counts as having answered (stop: it no longer
   * uses the group) or failed (start: this node reports `error` and leaves the group).
   */
  participate(group: string, p: RecoveryParticipant): () => void {
    let set = this.participants.get(group);
    if (set === undefined) {
      set = new Set();
      this.participants.set(group, set);
    }
    set.add(p);
    return () => {
      const mine = this.participants.get(group);
      if (mine?.delete(p) !== true) return;
      if (mine.size === 0) this.participants.delete(group);
      for (const lr of this.local.values()) {
        if (lr.group !== group) continue;
        lr.started.delete(p);
        lr.stopping.get(p)?.();
        lr.starting.get(p)?.('the participant went away during the start');
      }
    };
  }

  onStart(): void {
    this.reconcile();
  }

  onApplied(): void {
    this.reconcile();
  }

  onRestored(): void {
    this.reconcile();
  }

  onTick(): void {
    this.reconcile();
  }

  onRole(role: RaftRole): void {
    // A new leadership times every owed report afresh (by its own clock).
    if (role !== 'leader') this.owedSince.clear();
  }

  onLeaderTick(nowMs: number): void {
    this.evictLate(nowMs);
  }

  /** Registers `recovery`, `recovery.watch` and `recovery.ack` (`recovery-handlers.ts`). */
  registerApi(registry: ApiHandlerRegistry): void {
    registerRecoveryApi(registry, this);
  }

  /** The rounds now (from the applied state), ascending by group. */
  rounds(): readonly RecoveryRound[] {
    return this.membership.machine.recoveryRounds();
  }

  /** Every round with what it waits for (`cohort recovery`). */
  status(): RecoveryStatus[] {
    return this.rounds().map((r) => ({
      group: r.group,
      level: r.level,
      generation: r.generation,
      phase: r.phase,
      sinceIndex: r.phaseSinceIndex,
      members: r.members.map((m) => ({ node: m.node, incarnation: m.incarnation, report: m.report })),
      waiting: this.membership.machine.recoveryWaitingFor(r.group),
    }));
  }

  // -------------------------------------------------------------------------------------------

  private mine(round: RecoveryRound): { report: RecoveryReport | null } | null {
    const inc = this.ctx.incarnation;
    const m = round.members.find((x) => x.node === this.ctx.nodeId && x.incarnation === inc);
    return m === undefined ? null : { report: m.report };
  }

  /** Runs `pass` until no answer arrived during it (answers never re-enter a pass). */
  private reconcile(): void {
    if (this.reconciling) {
      this.again = true;
      return;
    }
    this.reconciling = true;
    try {
      do {
        this.again = false;
        if (this.ctx.running()) this.pass();
        // `pass` sets `again` through the answers it triggers; the type checker cannot see that.
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition
      } while (this.again);
    } finally {
      this.reconciling = false;
    }
  }

  /** Drives this node's part of every open round; see the file comment. */
  private pass(): void {
    const rounds = [...this.rounds()].sort((a, b) => b.level - a.level || (a.group < b.group ? -1 : 1));
    const live = new Set<string>();
    let higherStopping = false;
    let levelOfStop = Number.POSITIVE_INFINITY;
    for (const round of rounds) {
      const me = this.mine(round);
      if (me === null) continue;
      const key = `${round.group}/${round.generation}`;
      live.add(key);
      let lr = this.local.get(key);
      if (lr === undefined) {
        lr = {
          group: round.group,
          generation: round.generation,
          stopping: new Map(),
          starting: new Map(),
          started: new Set(),
          startError: null,
          stopAsked: false,
          startAsked: false,
          finished: false,
          proposing: false,
        };
        this.local.set(key, lr);
      }
      // Stops top level first: a lower level waits while a higher one still stops here.
      if (round.level < levelOfStop && higherStopping) continue;
      if (round.phase === 'stopping' && me.report === null) {
        if (!lr.stopAsked) this.askStop(lr);
        if (lr.stopping.size > 0) {
          higherStopping = true;
          levelOfStop = round.level;
          continue;
        }
        this.report(lr, 'stopped');
        continue;
      }
      if (round.phase === 'starting' && me.report === 'stopped') {
        if (!lr.startAsked) this.askStart(lr, round);
        if (lr.starting.size > 0) continue;
        this.report(lr, lr.startError === null ? 'started' : 'error');
        continue;
      }
      if (round.phase === 'finished' && !lr.finished) {
        lr.finished = true;
        for (const p of lr.started) p.finish?.(round.group, round.generation);
      }
    }
    for (const key of [...this.local.keys()]) if (!live.has(key)) this.local.delete(key);
  }

  /** Asks every participant of the group to stop; each answer counts once. */
  private askStop(lr: LocalRound): void {
    lr.stopAsked = true;
    const ps = [...(this.participants.get(lr.group) ?? [])];
    for (const p of ps) {
      lr.stopping.set(p, () => {
        if (lr.stopping.delete(p)) this.reconcile();
      });
    }
    for (const p of ps) p.stop(lr.group, lr.generation, () => lr.stopping.get(p)?.());
  }

  /** Asks every participant of the group to start with the round's members; each answer counts once. */
  private askStart(lr: LocalRound, round: RecoveryRound): void {
    lr.startAsked = true;
    const ps = [...(this.participants.get(lr.group) ?? [])];
    const start: RecoveryStart = {
      group: round.group,
      generation: round.generation,
      members: round.members.map((m) => ({ node: m.node, incarnation: m.incarnation })),
    };
    for (const p of ps) {
      lr.started.add(p);
      lr.starting.set(p, (error) => {
        if (!lr.starting.delete(p)) return;
        if (error !== null) {
          lr.started.delete(p);
          lr.startError ??= error;
          this.ctx.trace('recovery.start-error', { group: lr.group, generation: lr.generation, error });
        }
        this.reconcile();
      });
    }
    for (const p of ps) p.start(start, (error) => lr.starting.get(p)?.(error));
  }

  private report(lr: LocalRound, what: RecoveryReport): void {
    if (lr.proposing) return;
    lr.proposing = true;
    this.membership.handle.propose(
      {
        type: 'recovery-report',
        group: lr.group,
        generation: lr.generation,
        node: this.ctx.nodeId,
        incarnation: this.ctx.incarnation,
        what,
      },
      { idempotent: true },
      () => {
        lr.proposing = false;
        // Applied (or failed: the next apply or tick retries while the table still owes it).
      },
    );
  }

  /** Leader: evicts members that owe a report for longer than the timeout. */
  private evictLate(nowMs: number): void {
    const owed = new Set<string>();
    for (const round of this.rounds()) {
      const phase = round.phase;
      if (phase !== 'stopping' && phase !== 'starting') continue;
      for (const m of round.members) {
        const owes = phase === 'stopping' ? m.report === null : m.report === 'stopped';
        if (!owes) continue;
        const key = `${round.group}/${round.generation}/${phase}/${m.node}/${m.incarnation}`;
        owed.add(key);
        const since = this.owedSince.get(key);
        if (since === undefined) {
          this.owedSince.set(key, nowMs);
          continue;
        }
        if (nowMs - since < this.options.memberTimeoutMs) continue;
        this.owedSince.set(key, Number.POSITIVE_INFINITY); // one proposal in flight
        this.membership.handle.propose(
          {
            type: 'recovery-evict',
            group: round.group,
            generation: round.generation,
            node: m.node,
            incarnation: m.incarnation,
            reason: `no ${phase === 'stopping' ? 'stopped' : 'started'} report within ${this.options.memberTimeoutMs} ms`,
          },
          { idempotent: true },
          (r) => {
            // Not applied (no leader, a timeout): time it again from now, so it is retried.
            if (!r.ok && this.owedSince.get(key) === Number.POSITIVE_INFINITY)
              this.owedSince.set(key, this.ctx.clock.nowMs());
          },
        );
      }
    }
    for (const key of [...this.owedSince.keys()]) if (!owed.has(key)) this.owedSince.delete(key);
  }
}
