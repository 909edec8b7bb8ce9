/**
 * The Raft workload's driver: key-value clients, a configuration-change operator, and the
 * liveness marker client. Everything a client sees goes to the trace in the format
 * `checkers/raft-history.ts` reads, so the linearizability checker builds its history from the
 * trace alone.
 *
 * - **KV clients** (fault phase only), one operation at a time each: get (a linearizable read:
 *   `RaftNode.read` then a local get), put, compare-and-set by value, delete, on a small key set,
 *   sent to the node the client believes leads. `NOT_LEADER` moves the client to the hinted
 *   leader (or a random node) after a short delay. A definite refusal is traced as `fail`; a
 *   `TIMEOUT`, an `OUTCOME_UNKNOWN`, or no answer within the client's own timeout (the node
 *   crashed, or the answer is stuck behind a pause) is traced as `lost`: the outcome is unknown.
 * - **Operator** (fault phase, some seeds): every few seconds asks the leader for its
 *   configuration and proposes one random change: add a learner or a voter (spare nodes start
 *   with an empty configuration), promote, demote, remove a voter or a learner, replace a voter,
 *   or remove the leader itself. Voter weights are drawn in 1..3 in weighted runs. In runs that
 *   start with a witness it may also add an outsider as a witness.
 * - **Marker client** (liveness phase): writes one marker value until it is acknowledged; the
 *   liveness condition waits for that acknowledgement and for every member to converge.
 */
import { assert, assertNever } from '../../lib/assert.js';
import type { Result } from '../../lib/errors.js';
import type { NodeId } from '../../lib/ids.js';
import type { ConfChange, ConfChangeSingle, ConfState, KvCommand, KvOutput } from '../../log/index.js';
import type { TraceFields } from '../../runtime/env.js';
import type { RaftNodeError } from '../../runtime/raft-node.js';
import type { EventHandle } from '../scheduler.js';
import type { Driver, DriverContext } from '../workload.js';
import { CLIENT_EVENT, describeSingleChange } from '../checkers/raft-events.js';
import type { RaftSimNode, ReadResult } from './raft-program.js';

/** Knobs of one run's driver, drawn by the workload. */
export interface RaftDriverOptions {
  readonly clients: number;
  readonly keys: readonly string[];
  /** Mean pause between a client's operations, ms. */
  readonly thinkMeanMs: number;
  /** A client gives up on an answer after this long (outcome unknown), ms. */
  readonly clientTimeoutMs: number;
  /** Delay before retrying elsewhere after a refusal, ms. */
  readonly retryDelayMs: number;
  /** Mean gap between configuration changes, ms; null: no changes in this run. */
  readonly confChangeMeanMs: number | null;
  /** Voter weights are drawn in 1..this. */
  readonly votesMax: number;
  /** Fewest voters the operator leaves (it never shrinks the cluster below this). */
  readonly votersMin: number;
  /** Most voters the operator creates. */
  readonly votersMax: number;
  /** The operator may also add outsiders as witnesses (one vote, metadata only). */
  readonly witnessChanges: boolean;
}

/** Errors after which the operation certainly did not take effect. */
const DEFINITE = new Set<string>(['NOT_LEADER', 'BUSY', 'PROPOSAL_DROPPED', 'STOPPED', 'REFUSED']);

type Op = { readonly kind: 'get'; readonly key: string } | { readonly kind: 'write'; readonly command: KvCommand };

/** Counters for the workload's stats. */
export interface DriverCounts {
  calls: number;
  returns: number;
  fails: number;
  lost: number;
  confProposed: number;
  confApplied: number;
}

/** See the module comment. */
export class RaftDriver implements Driver<RaftSimNode> {
  readonly counts: DriverCounts = { calls: 0, returns: 0, fails: 0, lost: 0, confProposed: 0, confApplied: 0 };
  private ctx: DriverContext<RaftSimNode> | undefined;
  private nextOpId = 1;
  private nextValue = 1;
  /** Values recently written per key (cas expectations are drawn from these). */
  private readonly written = new Map<string, string[]>();
  private leaderHint: NodeId | null = null;
  /** Nodes the operator has seen or made witnesses: never re-added as data members. */
  private readonly formerWitnesses = new Set<NodeId>();

  constructor(
    private readonly options: RaftDriverOptions,
    private readonly onStart: (ctx: DriverContext<RaftSimNode>) => void,
  ) {
    assert(options.keys.length > 0 && options.clients > 0, 'a driver needs keys and clients');
  }

  start(ctx: DriverContext<RaftSimNode>): void {
    this.ctx = ctx;
    this.onStart(ctx);
    for (let c = 1; c <= this.options.clients; c++) {
      const client = c;
      ctx.after(ctx.prng.int(0, 200), () => {
        this.clientStep(client, ctx.prng.pick(ctx.nodes));
      });
    }
    if (this.options.confChangeMeanMs !== null) this.scheduleConfChange(ctx, this.options.confChangeMeanMs);
  }

  onLiveness(): void {
    const ctx = this.ctx;
    assert(ctx !== undefined, 'liveness after start');
    this.markerStep(ctx, this.leaderHint ?? ctx.prng.pick(ctx.nodes));
  }

  // ---------------------------------------------------------------------------------------------
  // KV clients

  private pickOp(ctx: DriverContext<RaftSimNode>): Op {
    const key = ctx.prng.pick(this.options.keys);
    const roll = ctx.prng.int(0, 100);
    if (roll < 40) return { kind: 'get', key };
    const value = new TextEncoder().encode(`v${this.nextValue++}`);
    if (roll < 70) return { kind: 'write', command: { type: 'put', key, value } };
    if (roll < 90) {
      const seen = this.written.get(key) ?? [];
      const expected = seen.length === 0 || ctx.prng.chance(0.2) ? null : ctx.prng.pick(seen);
      return {
        kind: 'write',
        command: {
          type: 'cas',
          key,
          compare: { kind: 'value', value: expected === null ? null : new TextEncoder().encode(expected) },
          value,
        },
      };
    }
    return { kind: 'write', command: { type: 'delete', key } };
  }

  private noteWritten(key: string, value: string): void {
    const list = this.written.get(key) ?? [];
    list.push(value);
    if (list.length > 4) list.shift();
    this.written.set(key, list);
  }

  private clientStep(client: number, target: NodeId): void {
    const ctx = this.ctx;
    if (ctx === undefined || ctx.phase() !== 'fault') return;
    const op = this.pickOp(ctx);
    this.issue(ctx, client, target, op, false, (next, delayMs) => {
      ctx.after(delayMs ?? Math.max(1, Math.round(ctx.prng.exponential(this.options.thinkMeanMs))), () => {
        this.clientStep(client, next);
      });
    });
  }

  private markerStep(ctx: DriverContext<RaftSimNode>, target: NodeId): void {
    const op: Op = {
      kind: 'write',
      command: { type: 'put', key: 'live', value: new TextEncoder().encode(`m${this.nextValue++}`) },
    };
    this.issue(ctx, 0, target, op, true, (next, delayMs, succeeded) => {
      if (succeeded !== true)
        ctx.after(delayMs ?? this.options.retryDelayMs, () => {
          this.markerStep(ctx, next);
        });
    });
  }

  /**
   * Sends one operation and traces it; `then(nextTarget, delayMs?, succeeded?)` runs exactly once
   * when the operation returned, failed or was given up.
   */
  private issue(
    ctx: DriverContext<RaftSimNode>,
    client: number,
    target: NodeId,
    op: Op,
    marker: boolean,
    then: (next: NodeId, delayMs?: number, succeeded?: boolean) => void,
  ): void {
    const id = this.nextOpId++;
    const state = { done: false, timer: null as EventHandle | null };
    const finish = (event: string, fields: TraceFields, next: NodeId, delayMs?: number, succeeded?: boolean): void => {
      if (state.done) return;
      state.done = true;
      state.timer?.cancel();
      ctx.trace(event, { id, ...fields });
      then(next, delayMs, succeeded);
    };
    this.counts.calls++;
    ctx.trace(CLIENT_EVENT.call, { id, client, node: target, ...describeOp(op), ...(marker ? { marker } : {}) });
    state.timer = ctx.after(this.options.clientTimeoutMs, () => {
      this.counts.lost++;
      finish(CLIENT_EVENT.lost, { reason: 'client-timeout' }, ctx.prng.pick(ctx.nodes));
    });
    const onError = (e: RaftNodeError): void => {
      if (e.code === 'NOT_LEADER' && e.leader !== null) this.leaderHint = e.leader;
      const next = e.code === 'NOT_LEADER' && e.leader !== null ? e.leader : ctx.prng.pick(ctx.nodes);
      if (DEFINITE.has(e.code)) {
        this.counts.fails++;
        finish(CLIENT_EVENT.fail, { code: e.code }, next, this.options.retryDelayMs);
      } else {
        this.counts.lost++;
        finish(CLIENT_EVENT.lost, { reason: e.code }, next);
      }
    };
    const onResult = (fields: TraceFields): void => {
      this.counts.returns++;
      this.leaderHint = target;
      finish(CLIENT_EVENT.return, { ...fields, ...(marker ? { marker } : {}) }, target, undefined, true);
    };
    const accepted = ctx.call(target, (node) => {
      if (op.kind === 'get') {
        node.read(op.key, (r: ReadResult) => {
          if (r.ok) onResult({ value: r.value ?? 'nil' });
          else onError(r.error);
        });
        return;
      }
      node.propose(op.command, (r: Result<KvOutput, RaftNodeError>) => {
        if (!r.ok) {
          onError(r.error);
          return;
        }
        if (op.command.type === 'put' || op.command.type === 'cas') this.noteWrittenOf(op.command, r.value);
        onResult(outputFields(r.value));
      });
    });
    if (!accepted) {
      this.counts.fails++;
      finish(CLIENT_EVENT.fail, { code: 'DOWN' }, ctx.prng.pick(ctx.nodes), this.options.retryDelayMs);
    }
  }

  private noteWrittenOf(command: KvCommand, out: KvOutput): void {
    if (command.type === 'put' || (command.type === 'cas' && out.type === 'cas' && out.succeeded))
      this.noteWritten(command.key, decoder.decode(command.value));
  }

  // ---------------------------------------------------------------------------------------------
  // Configuration changes

  private scheduleConfChange(ctx: DriverContext<RaftSimNode>, meanMs: number): void {
    ctx.after(Math.max(1, Math.round(ctx.prng.exponential(meanMs))), () => {
      if (ctx.phase() !== 'fault') return;
      this.confChange(ctx);
      this.scheduleConfChange(ctx, meanMs);
    });
  }

  private confChange(ctx: DriverContext<RaftSimNode>): void {
    const target = this.leaderHint ?? ctx.prng.pick(ctx.nodes);
    ctx.call(target, (node) => {
      const s = node.status();
      if (s === null || s.role !== 'leader') {
        this.leaderHint = s?.lead ?? null;
        return;
      }
      const change = this.chooseChange(ctx, s.confState, target);
      if (change === null) return;
      this.counts.confProposed++;
      const text = describeChange(change);
      ctx.trace('conf-propose', { node: target, change: text });
      node.proposeConfChange(change, (r) => {
        if (r.ok) this.counts.confApplied++;
        ctx.trace('conf-result', { node: target, change: text, result: r.ok ? 'applied' : r.error.code });
      });
    });
  }

  /** A random change that keeps between `votersMin` and `votersMax` voters, or null. */
  private chooseChange(ctx: DriverContext<RaftSimNode>, cs: ConfState, leader: NodeId): ConfChange | null {
    if (cs.outgoing.length > 0) return null; // joint: the leader leaves it by itself (auto-leave)
    const o = this.options;
    const voters = cs.voters.map(([id]) => id);
    const members = new Set<NodeId>([...voters, ...cs.learners]);
    for (const id of cs.witnesses ?? []) this.formerWitnesses.add(id);
    const outsiders = ctx.nodes.filter((id) => !members.has(id));
    // A former witness holds no entry data, so it may come back only as a witness (docs/raft.md,
    // "Witnesses": it must be wiped to become a data node; the core refuses it leadership and reads).
    const dataOutsiders = outsiders.filter((id) => !this.formerWitnesses.has(id));
    const votes = (): number => ctx.prng.int(1, o.votesMax + 1);
    const canShrink = voters.length > o.votersMin;
    const canGrow = voters.length < o.votersMax;
    const options: (() => ConfChangeSingle[])[] = [];
    if (dataOutsiders.length > 0) options.push(() => [{ type: 'add-learner', node: ctx.prng.pick(dataOutsiders) }]);
    if (dataOutsiders.length > 0 && canGrow)
      options.push(() => [{ type: 'add-voter', node: ctx.prng.pick(dataOutsiders), votes: votes() }]);
    if (cs.learners.length > 0 && canGrow)
      options.push(() => [{ type: 'add-voter', node: ctx.prng.pick(cs.learners), votes: votes() }]);
    if (cs.learners.length > 0) options.push(() => [{ type: 'remove-node', node: ctx.prng.pick(cs.learners) }]);
    if (canShrink && voters.some((id) => !this.formerWitnesses.has(id))) {
      options.push(() => [
        { type: 'add-learner', node: ctx.prng.pick(voters.filter((id) => !this.formerWitnesses.has(id))) },
      ]);
      options.push(() => [{ type: 'remove-node', node: ctx.prng.pick(voters) }]);
      options.push(() => [{ type: 'remove-node', node: leader }]);
    }
    if (dataOutsiders.length > 0) {
      options.push(() => [
        { type: 'remove-node', node: ctx.prng.pick(voters) },
        { type: 'add-voter', node: ctx.prng.pick(dataOutsiders), votes: votes() },
      ]);
    }
    // Runs without witnesses never draw this option, so their operator keeps its earlier stream.
    if (o.witnessChanges && outsiders.length > 0 && canGrow)
      options.push(() => {
        const node = ctx.prng.pick(outsiders);
        this.formerWitnesses.add(node);
        return [{ type: 'add-voter', node, votes: 1, role: 'witness' }];
      });
    if (options.length === 0) return null;
    return { changes: ctx.prng.pick(options)(), autoLeave: true };
  }
}

function describeChange(change: ConfChange): string {
  return change.changes.map(describeSingleChange).join(',');
}

const decoder = new TextDecoder();

/** The trace fields of an operation's call (the history checker's input format). */
function describeOp(op: Op): TraceFields {
  if (op.kind === 'get') return { op: 'get', key: op.key };
  const c = op.command;
  switch (c.type) {
    case 'put':
      return { op: 'put', key: c.key, value: decoder.decode(c.value) };
    case 'cas':
      assert(c.compare.kind === 'value', 'the workload compares values only (the model does not cover revisions)');
      return {
        op: 'cas',
        key: c.key,
        value: decoder.decode(c.value),
        expected: c.compare.value === null ? 'nil' : decoder.decode(c.compare.value),
      };
    case 'delete':
      return { op: 'delete', key: c.key };
    case 'get':
    case 'range':
      assert(false, `the workload does not propose ${c.type}`);
      return {};
    default:
      return assertNever(c, 'kv command');
  }
}

/** The trace fields of an operation's result. */
function outputFields(out: KvOutput): TraceFields {
  switch (out.type) {
    case 'put':
      return {};
    case 'cas':
      return { ok: out.succeeded };
    case 'delete':
      return { deleted: out.deleted };
    case 'get':
      return { value: out.entry === null ? 'nil' : decoder.decode(out.entry.value) };
    case 'range':
      return {};
    default:
      return assertNever(out, 'kv output');
  }
}
