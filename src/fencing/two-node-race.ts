/**
 * The two_node fence race (docs/fencing.md "two_node"; docs/design/fencing-and-recovery.md
 * section 6). With two voters every commit needs both, so the survivor of a split cannot commit
 * its peer's failure, let alone the fence result: the fence runs outside the log, on each node,
 * and the node whose devices succeed first wins.
 *
 * Contract (`TwoNodeRace.tick`, called on every tick of every node of a two_node cluster):
 * - **When.** This incarnation has been a member of a quorate view, it does not lead with a valid
 *   lease, its peer is a member of its applied view and has been silent (pings and Raft alike, as
 *   `reachability` measures) for at least `suspectAfterMs`; or the transport proved that the
 *   peer's member incarnation is gone (`peerGone`: its host reset the connections and refused a
 *   reconnect, never silence or a pause), which makes the silence and the lease moot (not the
 *   fence: the devices still run). The race starts then and is called
 *   off (its running agent killed) as soon as the peer is heard again or any of that stops being
 *   true before it is won.
 * - **How.** The fence scheduler (`nextFenceStep`) over the topology, with the attempts kept in
 *   memory, counted from the race's start: first the topology's delay for the peer
 *   (`fencing.delays`: give the two nodes different delays and the one whose peer has the shorter
 *   delay shoots first; the other is off before its own delay ends), then the levels in order.
 *   Only program devices (`exec`, `process`) can win: a watchdog proves nothing here (the peer's
 *   self-fence needs a quorum rule that two_node turns off), so its attempt is recorded as an
 *   error; a manual device stops the race (`cohort fence confirm` cannot be committed in a split
 *   two_node cluster: not supported yet).
 * - **Win.** When a level succeeds: `ServiceContext.peerFenced(peer)` (the Raft core counts the
 *   peer until it is demoted, `RaftCore.peerFenced`), and the win (its attempts, its proof, the
 *   newest incarnation the devices ended) is kept, so that while the peer's fence record is open
 *   the leader's executor records the win instead of running the devices again (`winFor`).
 *
 * Pure: agents run through `ctx.processes`; the simulator runs it unchanged.
 */
import { assertNever, defined } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import type { ServiceContext } from '../runtime/node-service.js';
import type { ProcessHandle } from '../runtime/process-runner.js';
import { agentAttemptResult, agentProcessSpec, clipUtf8, targetFor } from './fence-agent.js';
import type { FenceAttempt, FenceProof } from './fence-attempt.js';
import { endedThrough, nextFenceStep, type FenceStep } from './fence-scheduler.js';
import type { FenceTopology } from './fence-topology.js';

/**
 * What the race reads of the applied membership (the fencing service passes its membership
 * service: the race sits below membership, so it names only what it needs).
 */
export interface RaceMembership {
  nodes(): readonly {
    readonly nodeId: NodeId;
    readonly status: string;
    readonly incarnation: number;
    readonly seen: number;
  }[];
  /** How long this node has not heard each peer, ms (null: not since this incarnation started). */
  reachability(nowMs: number): readonly { readonly node: NodeId; readonly silentMs: number | null }[];
}

/** Options of the race. */
export interface TwoNodeRaceOptions {
  readonly topology: FenceTopology;
  readonly nodeNames: ReadonlyMap<NodeId, string>;
  /** How long the peer must be silent before the race starts: the failure detector's suspicion threshold. */
  readonly suspectAfterMs: number;
  /** Something worth a log line (the race started, was called off, ran a device, was won). */
  readonly onEvent?: (what: string, fields: Record<string, string | number>) => void;
  /** SIMULATOR ONLY (the `two-node-unfenced` canary): count the peer fenced without running anything. */
  readonly skipFence?: boolean;
}

/** A won race, waiting to be recorded in the ledger by the leader's executor. */
export interface TwoNodeWin {
  readonly peer: NodeId;
  /** The peer's incarnation the race fenced. */
  readonly incarnation: number;
  /** Every incarnation of the peer up to this one has ended (the devices' `covers`). */
  readonly endedThrough: number;
  readonly attempts: readonly FenceAttempt[];
  readonly level: number;
  readonly device: string;
  /** Won by an operator's confirmation (`cohort fence confirm` in a split): the proof to record. */
  readonly confirm: FenceProof | null;
}

interface Race {
  readonly peer: NodeId;
  readonly incarnation: number;
  readonly beganAtMs: number;
  attempts: FenceAttempt[];
  running: ProcessHandle | null;
  stopped: boolean;
}

/** See the file comment. */
export class TwoNodeRace {
  private race: Race | null = null;
  private win: TwoNodeWin | null = null;
  /** The newest proof that a peer's process is gone. */
  private gone: { readonly node: NodeId; readonly incarnation: number } | null = null;
  /** When the won fence was last given to the Raft core (this node's monotonic clock). */
  private assertedAtMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly ctx: () => ServiceContext,
    private readonly membership: RaceMembership,
    private readonly options: TwoNodeRaceOptions,
  ) {}

  /** One step; `wasQuorateMember`: this incarnation has been a member of a quorate view. */
  tick(nowMs: number, wasQuorateMember: boolean): void {
    const ctx = this.ctx();
    const peer = this.peerToRace(nowMs, wasQuorateMember);
    if (peer === null) {
      this.callOff('the peer is heard, or not a member any more, or this node leads');
      return;
    }
    const win = this.win;
    if (win !== null && win.peer === peer.node && win.endedThrough >= peer.incarnation) {
      // Won already: assert it again now and then while the peer stays silent (the Raft core
      // stops counting it when any message of it arrives, a late one of the fenced incarnation too).
      if (nowMs - this.assertedAtMs >= this.options.suspectAfterMs) {
        this.assertedAtMs = nowMs;
        ctx.peerFenced(peer.node);
      }
      return;
    }
    if (this.race !== null && (this.race.peer !== peer.node || this.race.incarnation !== peer.incarnation))
      this.callOff('the peer changed');
    if (this.race === null) {
      this.race = {
        peer: peer.node,
        incarnation: peer.incarnation,
        beganAtMs: ctx.wallMs(),
        attempts: [],
        running: null,
        stopped: false,
      };
      this.event('two-node-race', { peer: peer.node, incarnation: peer.incarnation, silentMs: peer.silentMs });
    }
    this.advance(this.race);
  }

  /** The won race that fenced `node` at `incarnation`, if it is not recorded yet. */
  winFor(node: NodeId, incarnation: number): TwoNodeWin | null {
    const w = this.win;
    return w !== null && w.peer === node && incarnation <= w.endedThrough ? w : null;
  }

  /**
   * `cohort fence confirm` in a split (the local path): when `node` is the peer this node would
   * race against now (the contract's "When") and `incarnation` is null or the peer's, the
   * operator's word wins the race: the Raft core counts the peer as fenced and the executor
   * records the confirmation once this node leads. Null when that is not the case (the normal
   * path, through the log, runs).
   */
  confirmLocally(
    node: NodeId,
    incarnation: number | null,
    nowMs: number,
    wasQuorateMember: boolean,
  ): { readonly node: NodeId; readonly incarnation: number } | null {
    const peer = this.peerToRace(nowMs, wasQuorateMember);
    if (peer === null || peer.node !== node || (incarnation !== null && incarnation !== peer.incarnation)) return null;
    const ctx = this.ctx();
    this.callOff('an operator confirmed the fence');
    const proof: FenceProof = { by: 'confirm', atMs: ctx.wallMs() };
    this.win = {
      peer: peer.node,
      incarnation: peer.incarnation,
      endedThrough: peer.incarnation,
      attempts: [],
      level: 1,
      device: 'confirm',
      confirm: proof,
    };
    this.assertedAtMs = nowMs;
    const r = ctx.peerFenced(peer.node);
    this.event('two-node-race-won', {
      peer: peer.node,
      incarnation: peer.incarnation,
      by: 'confirm',
      ...(r === null ? {} : { raft: r }),
    });
    return { node: peer.node, incarnation: peer.incarnation };
  }

  /** The transport proved that process `incarnation` of `peer` is gone (`NodeService.onPeerGone`). */
  peerGone(peer: NodeId, incarnation: number): void {
    this.gone = { node: peer, incarnation };
  }

  /** Kills a running agent (the node stops). */
  stop(): void {
    this.callOff('the node stops');
  }

  /** The peer to race against now, or null (see the contract's "When"). */
  private peerToRace(
    nowMs: number,
    wasQuorateMember: boolean,
  ): { node: NodeId; incarnation: number; silentMs: number } | null {
    const ctx = this.ctx();
    if (!wasQuorateMember || !ctx.running()) return null;
    const self = ctx.nodeId;
    const rec = this.membership.nodes().find((n) => n.nodeId !== self && n.status === 'member');
    if (rec === undefined) return null;
    // Proof that the peer's process is gone makes both the silence and this leader's lease moot.
    const gone = this.gone !== null && this.gone.node === rec.nodeId && this.gone.incarnation === rec.incarnation;
    const raft = ctx.raft();
    if (!gone && raft.role === 'leader' && raft.leaseValid) return null;
    const silence = this.membership.reachability(nowMs).find((r) => r.node === rec.nodeId);
    const silentMs = silence?.silentMs ?? null;
    if (!gone && (silentMs === null || silentMs < this.options.suspectAfterMs)) return null;
    return { node: rec.nodeId, incarnation: rec.incarnation, silentMs: Math.round(silentMs ?? 0) };
  }

  private callOff(why: string): void {
    const race = this.race;
    if (race === null) return;
    this.race = null;
    race.stopped = true;
    race.running?.kill();
    this.event('two-node-race-off', { peer: race.peer, incarnation: race.incarnation, why });
  }

  private advance(race: Race): void {
    if (race.running !== null) return;
    if (this.options.skipFence === true) {
      this.won(race, { kind: 'succeeded', round: 1, level: 1, device: 'none', by: 'agent' });
      return;
    }
    const name = this.nameOf(race.peer);
    const step = nextFenceStep({
      topology: this.options.topology,
      target: { id: race.peer, name },
      attempts: race.attempts,
      round: Math.max(1, ...race.attempts.map((a) => a.round)),
      nowMs: this.ctx().wallMs(),
      beganAtMs: race.beganAtMs,
      watchdogWaitMs: 0,
    });
    switch (step.kind) {
      case 'wait':
      case 'exhausted':
      case 'manual':
        return;
      case 'succeeded':
        this.won(race, step);
        return;
      case 'run':
        this.run(race, step);
        return;
      default:
        assertNever(step, 'fence step');
    }
  }

  private run(race: Race, step: Extract<FenceStep, { kind: 'run' }>): void {
    const ctx = this.ctx();
    const device = defined(this.options.topology.devices.get(step.device), 'a scheduled device is configured');
    const atMs = ctx.wallMs();
    const base = {
      executor: ctx.nodeId,
      level: step.level,
      device: step.device,
      agent: step.agent,
      action: step.action,
      atMs,
      round: step.round,
    };
    const target = targetFor(device, race.peer, this.nameOf(race.peer));
    const spec = target === null ? null : agentProcessSpec({ device, action: step.action, target });
    if (target === null || spec === null) {
      race.attempts.push({
        ...base,
        result: 'error',
        durationMs: 0,
        excerpt: `device ${step.device} cannot settle a two_node fence race (only exec and process devices can)`,
      });
      return;
    }
    const covers = Math.max(race.incarnation, this.newestIncarnation(race.peer));
    this.event('two-node-race-run', { peer: race.peer, device: step.device, level: step.level, round: step.round });
    race.running = ctx.processes.spawn(spec, (result) => {
      race.running = null;
      if (race.stopped) return;
      const r = agentAttemptResult({ device, action: step.action, target }, result);
      race.attempts.push({
        ...base,
        result: r.result,
        ...(r.exitCode === undefined ? {} : { exitCode: r.exitCode }),
        durationMs: Math.max(0, Math.round(r.durationMs)),
        excerpt: clipUtf8(r.excerpt),
        covers,
      });
      this.event('two-node-race-attempt', { peer: race.peer, device: step.device, result: r.result });
    });
  }

  private won(race: Race, step: Extract<FenceStep, { kind: 'succeeded' }>): void {
    const ctx = this.ctx();
    const ended = endedThrough(
      this.options.topology,
      { id: race.peer, name: this.nameOf(race.peer) },
      race.incarnation,
      race.attempts,
    );
    this.race = null;
    this.win = {
      peer: race.peer,
      incarnation: race.incarnation,
      endedThrough: Math.max(race.incarnation, ended?.incarnation ?? 0),
      attempts: race.attempts,
      level: step.level,
      device: step.device,
      confirm: null,
    };
    this.assertedAtMs = ctx.clock.nowMs();
    const r = ctx.peerFenced(race.peer);
    this.event('two-node-race-won', {
      peer: race.peer,
      incarnation: race.incarnation,
      level: step.level,
      device: step.device,
      ...(r === null ? {} : { raft: r }),
    });
  }

  private newestIncarnation(node: NodeId): number {
    return this.membership.nodes().find((n) => n.nodeId === node)?.seen ?? 0;
  }

  private nameOf(node: NodeId): string {
    return this.options.nodeNames.get(node) ?? `node${node}`;
  }

  private event(what: string, fields: Record<string, string | number>): void {
    this.ctx().trace(what, fields);
    this.options.onEvent?.(what, fields);
  }
}
