/**
 * Unfencing (issue 12, docs/fencing.md "Unfencing"): storage-style fence devices (ClusterLabs
 * `fence_scsi`, `fence_mpath`) fence a node by *revoking* its access to shared storage, and the
 * node may use that storage again only once the device was told `on` for it. Such a device is an
 * `exec` device with `unfence: true`. This module holds the pure rule (`nextUnfenceStep`) and the
 * small driver (`Unfencer`) the leader's fence executor (`fence-service.ts`) runs on every leader
 * tick.
 *
 * The rule, for one node:
 * - Its newest finished fence record (the ledger's history) is closed, the node has no pending
 *   fence, and a NEWER incarnation of it is a member of the applied view. Unfencing happens
 *   after the admission (the membership machine admits the node once its old incarnation is
 *   fenced; it does not wait for the storage): the node's storage is re-enabled shortly after it
 *   joins.
 * - Then every `exec` device with `unfence: true` named in any level that can fence the node
 *   (`plugFor(device, name) !== null`) and that has no `ok` unfence entry in that record yet is
 *   run with action `on`, in level order, one device at a time. Each result is proposed as an
 *   `unfence` command (`{device, result, atMs}`), which the machine appends to the record.
 * - Tries: up to `1 + device.retries` per device per record, `FENCE_RETRY_DELAY_MS` after the
 *   previous try of this executor ended; then the device is given up (the failed entries in the
 *   ledger show it, `cohort fence history` prints them, the daemon logs it once per leadership).
 *   Tries are counted as the larger of the failed entries the record holds for the device and
 *   the tries this executor made itself (the record keeps only the newest FENCE_UNFENCE_KEPT
 *   entries, so it may under-count; the executor's own count keeps one leader from looping). A
 *   new leader counts from the record only: it may make a few more tries than `1 + retries` when
 *   entries were dropped. `on` is idempotent for these agents, so a repeat is harmless.
 * - Never against the node running the executor (the same reason as fencing: a later leader does
 *   it), never two runs at once for one node, and none before `notBeforeMs` (the resume delay of
 *   a new leadership, so a deposed leader's `on`, which it kills when it steps down, has ended).
 *   While a node's unfence runs (or may still run under a deposed leader), a fence of that node
 *   waits (`holdsFence`): an `off` never races an `on` on this executor.
 *
 * Pure: no clock and no I/O but through the host (the runner is the environment's, so the
 * simulator can run it on virtual time).
 */
import type { Incarnation, NodeId } from '../lib/ids.js';
import { FENCE_RETRY_DELAY_MS } from '../constants.js';
import type { TraceFields } from '../runtime/env.js';
import type { ProcessHandle, ProcessRunner } from '../runtime/process-runner.js';
import { agentAttemptResult, agentProcessSpec, clipUtf8, targetFor, type AttemptResult } from './fence-agent.js';
import type { FenceUnfence } from './fence-attempt.js';
import type { FenceRecord } from './fence-ledger.js';
import { plugFor, type ExecDevice, type FenceTopology } from './fence-topology.js';

// ------------------------------------------------------------------------------------------------
// The rule

/** The tries this executor made with one device for one record. */
export interface UnfenceTries {
  /** Tries whose run ended. */
  readonly count: number;
  /** When the last one ended, this executor's wall clock, ms (meaningless while `count` is 0). */
  readonly lastEndMs: number;
  /** One of them succeeded and its entry was committed. */
  readonly ok: boolean;
}

/** What `nextUnfenceStep` looks at, for one node. */
export interface UnfenceInput {
  readonly topology: FenceTopology;
  /** The node running the executor. */
  readonly self: NodeId;
  /** The node to unfence: its id and configured name (the devices' `hosts` key). */
  readonly target: { readonly id: NodeId; readonly name: string };
  /** The node's newest finished fence record (null: none kept). */
  readonly record: FenceRecord | null;
  /** The node has a pending fence (a new failure): nothing is turned back on. */
  readonly fencePending: boolean;
  /** The node's incarnation in the applied view, null when it is not a member. */
  readonly memberIncarnation: number | null;
  /** This executor's tries for `record`, by device (absent: none). */
  readonly tries: ReadonlyMap<string, UnfenceTries>;
  /** Wall-clock ms now (this executor's clock). */
  readonly nowMs: number;
}

/** Why nothing is to be done for a node. */
export type UnfenceIdleReason =
  'no-record' | 'fence-pending' | 'not-rejoined' | 'own-node' | 'no-unfence-device' | 'done';

/** What the executor does next for one node. */
export type UnfenceStep =
  | { readonly kind: 'idle'; readonly why: UnfenceIdleReason }
  /** Run `device` with action `on` for the node (its `attemptNo`-th try of `tries` allowed). */
  | {
      readonly kind: 'run';
      readonly device: string;
      readonly plug: string;
      readonly attemptNo: number;
      readonly tries: number;
    }
  /** `device` failed; its next try may start at `untilMs`. */
  | { readonly kind: 'wait'; readonly device: string; readonly untilMs: number }
  /** Every device that still lacks an `ok` has used its tries. */
  | { readonly kind: 'gave-up'; readonly devices: readonly string[] };

/**
 * The unfence devices for node `name`: `exec` devices with `unfence: true`, named in some level,
 * that can fence the node; in level order, each once.
 */
export function unfenceDevices(topology: FenceTopology, name: string): ExecDevice[] {
  const out: ExecDevice[] = [];
  for (const level of topology.levels)
    for (const d of level.devices) {
      const device = topology.devices.get(d);
      if (device === undefined || device.agent !== 'exec' || !device.unfence) continue;
      if (plugFor(device, name) === null || out.includes(device)) continue;
      out.push(device);
    }
  return out;
}

/** The step for one node (see the file comment). Pure. */
export function nextUnfenceStep(input: UnfenceInput): UnfenceStep {
  const rec = input.record;
  if (rec === null || rec.outcome.state !== 'fenced') return { kind: 'idle', why: 'no-record' };
  if (input.fencePending) return { kind: 'idle', why: 'fence-pending' };
  if (input.memberIncarnation === null || input.memberIncarnation <= rec.incarnation)
    return { kind: 'idle', why: 'not-rejoined' };
  if (input.target.id === input.self) return { kind: 'idle', why: 'own-node' };
  const devices = unfenceDevices(input.topology, input.target.name);
  if (devices.length === 0) return { kind: 'idle', why: 'no-unfence-device' };
  const exhausted: string[] = [];
  for (const device of devices) {
    const entries = rec.unfence.filter((u) => u.device === device.name);
    const mine = input.tries.get(device.name);
    if (entries.some((u) => u.result === 'ok') || mine?.ok === true) continue;
    const allowed = 1 + device.retries;
    const count = Math.max(mine?.count ?? 0, entries.length);
    if (count >= allowed) {
      exhausted.push(device.name);
      continue;
    }
    if (mine !== undefined && mine.count > 0 && input.nowMs < mine.lastEndMs + FENCE_RETRY_DELAY_MS)
      return { kind: 'wait', device: device.name, untilMs: mine.lastEndMs + FENCE_RETRY_DELAY_MS };
    const plug = plugFor(device, input.target.name) ?? input.target.name;
    return { kind: 'run', device: device.name, plug, attemptNo: count + 1, tries: allowed };
  }
  return exhausted.length === 0 ? { kind: 'idle', why: 'done' } : { kind: 'gave-up', devices: exhausted };
}

// ------------------------------------------------------------------------------------------------
// The driver

/** One finished `on` run, as the observer sees it (the ledger keeps only `device`, `result`, `atMs`). */
export interface UnfenceRun extends FenceUnfence {
  readonly plug: string;
  readonly attemptNo: number;
  readonly tries: number;
  readonly exitCode?: number;
  readonly durationMs: number;
  /** The agent's first output lines, clipped. */
  readonly excerpt: string;
}

/** What is worth observing (daemon logs, metrics, tests), called synchronously. */
export interface UnfenceObserver {
  /** An `on` run ended; its entry is being proposed for the record of `incarnation` (the fenced one). */
  onUnfence?(node: NodeId, incarnation: Incarnation, run: UnfenceRun): void;
  /** Every remaining unfence device of the node used its tries (once per record and leadership). */
  onUnfenceGaveUp?(node: NodeId, incarnation: Incarnation, devices: readonly string[]): void;
}

/** What the driver needs from the fencing service. */
export interface UnfenceHost {
  readonly topology: FenceTopology;
  readonly observer?: UnfenceObserver;
  processes(): ProcessRunner;
  self(): NodeId;
  nameOf(node: NodeId): string;
  wallMs(): number;
  /** Finished fence records, the latest finished first. */
  history(): readonly FenceRecord[];
  /** Whether `node` has a pending fence. */
  fencePending(node: NodeId): boolean;
  /** `node`'s incarnation in the applied view, or null. */
  memberIncarnation(node: NodeId): number | null;
  /** Proposes the `unfence` command; `done(true)` once it was applied to the record. */
  propose(node: NodeId, incarnation: Incarnation, entry: FenceUnfence, done: (applied: boolean) => void): void;
  trace(event: string, fields: TraceFields): void;
}

/** The driver's state for one node's newest record. */
interface NodeUnfence {
  readonly incarnation: Incarnation;
  readonly tries: Map<string, UnfenceTries>;
  running: ProcessHandle | null;
  proposing: boolean;
  gaveUp: boolean;
}

/**
 * Runs the rule for every node on the leader (see the file comment). `drive` after every leader
 * tick and every committed proposal; `stopAll` when leadership is lost or the node stops (kills
 * the running agents; their results are dropped).
 */
export class Unfencer {
  private readonly nodes = new Map<NodeId, NodeUnfence>();
  /** `on` runs not ended yet, by node, including killed ones whose state was forgotten. */
  private readonly inFlight = new Map<NodeId, number>();

  constructor(private readonly host: UnfenceHost) {}

  /** One pass over every node with a finished fence record. Runs nothing before `notBeforeMs`. */
  drive(notBeforeMs: number): void {
    const wall = this.host.wallMs();
    const seen = new Set<NodeId>();
    for (const rec of this.host.history()) {
      if (seen.has(rec.node)) continue; // only the newest finished record of each node
      seen.add(rec.node);
      let st = this.nodes.get(rec.node);
      if (st !== undefined && st.incarnation !== rec.incarnation) {
        st.running?.kill();
        st = undefined;
      }
      if (st === undefined) {
        st = { incarnation: rec.incarnation, tries: new Map(), running: null, proposing: false, gaveUp: false };
        this.nodes.set(rec.node, st);
      }
      const step = this.stepOf(rec, st, wall, this.host.fencePending(rec.node));
      if (step.kind === 'idle' && st.running !== null) {
        // Fenced again (or left) while `on` runs: stop it; a fence of the node waits for its end.
        st.running.kill();
        continue;
      }
      if (this.busy(rec.node) || st.proposing || wall < notBeforeMs) continue;
      if (step.kind === 'gave-up' && !st.gaveUp) {
        st.gaveUp = true;
        this.host.trace('unfence-gave-up', { node: rec.node, incarnation: rec.incarnation });
        this.host.observer?.onUnfenceGaveUp?.(rec.node, rec.incarnation, step.devices);
      }
      if (step.kind === 'run') this.run(rec, st, step);
    }
    for (const [node, st] of this.nodes) {
      if (seen.has(node)) continue;
      st.running?.kill();
      this.nodes.delete(node);
    }
  }

  /**
   * Whether a fence of `node` must wait: an `on` runs for it here, or, before `notBeforeMs`, one
   * may still run under a deposed leader (the node's unfence was due and not done).
   */
  holdsFence(node: NodeId, notBeforeMs: number): boolean {
    const wall = this.host.wallMs();
    if (this.busy(node)) return true;
    if (wall >= notBeforeMs) return false;
    const st = this.nodes.get(node);
    const rec = this.host.history().find((r) => r.node === node);
    if (rec === undefined) return false;
    const kind = this.stepOf(rec, st?.incarnation === rec.incarnation ? st : null, wall, false).kind;
    return kind === 'run' || kind === 'wait';
  }

  /** Whether an `on` for `node` has not ended yet (a killed one ends within the runner's grace). */
  private busy(node: NodeId): boolean {
    return (this.inFlight.get(node) ?? 0) > 0;
  }

  /** Kills every running `on` and forgets this executor's tries (leadership lost, or stopping). */
  stopAll(): void {
    for (const st of this.nodes.values()) st.running?.kill();
    this.nodes.clear();
  }

  private stepOf(rec: FenceRecord, st: NodeUnfence | null, wall: number, fencePending: boolean): UnfenceStep {
    return nextUnfenceStep({
      topology: this.host.topology,
      self: this.host.self(),
      target: { id: rec.node, name: this.host.nameOf(rec.node) },
      record: rec,
      fencePending,
      memberIncarnation: this.host.memberIncarnation(rec.node),
      tries: st?.tries ?? new Map(),
      nowMs: wall,
    });
  }

  private run(rec: FenceRecord, st: NodeUnfence, step: Extract<UnfenceStep, { kind: 'run' }>): void {
    const device = this.host.topology.devices.get(step.device);
    const target = device === undefined ? null : targetFor(device, rec.node, this.host.nameOf(rec.node));
    const atMs = this.host.wallMs();
    if (device === undefined || target === null) return; // the rule names only devices that fence the node
    const request = { device, action: 'on' as const, target };
    const spec = agentProcessSpec(request);
    if (spec === null) return; // exec devices always run a program
    this.host.trace('unfence-run', { node: rec.node, device: step.device, attempt: step.attemptNo });
    this.inFlight.set(rec.node, (this.inFlight.get(rec.node) ?? 0) + 1);
    st.running = this.host.processes().spawn(spec, (result) => {
      st.running = null;
      const left = (this.inFlight.get(rec.node) ?? 1) - 1;
      if (left > 0) this.inFlight.set(rec.node, left);
      else this.inFlight.delete(rec.node);
      if (this.nodes.get(rec.node) !== st) return; // no longer ours (leadership lost, a newer record)
      this.finished(rec, st, step, atMs, agentAttemptResult(request, result));
    });
  }

  private finished(
    rec: FenceRecord,
    st: NodeUnfence,
    step: Extract<UnfenceStep, { kind: 'run' }>,
    atMs: number,
    r: AttemptResult,
  ): void {
    const before = st.tries.get(step.device);
    st.tries.set(step.device, {
      count: Math.max(before?.count ?? 0, step.attemptNo - 1) + 1,
      lastEndMs: this.host.wallMs(),
      ok: before?.ok === true,
    });
    const entry: FenceUnfence = { device: step.device, result: r.result, atMs };
    this.host.observer?.onUnfence?.(rec.node, rec.incarnation, {
      ...entry,
      plug: step.plug,
      attemptNo: step.attemptNo,
      tries: step.tries,
      ...(r.exitCode === undefined ? {} : { exitCode: r.exitCode }),
      durationMs: Math.max(0, Math.round(r.durationMs)),
      excerpt: clipUtf8(r.excerpt),
    });
    st.proposing = true;
    this.host.propose(rec.node, rec.incarnation, entry, (applied) => {
      st.proposing = false;
      const t = st.tries.get(step.device);
      // An `ok` counts once its entry is in the record; a lost proposal leaves the try counted, not done.
      if (applied && r.result === 'ok' && t !== undefined) st.tries.set(step.device, { ...t, ok: true });
    });
  }
}
