/**
 * The Raft workload's node program: the production Raft shell (`RaftNode`, the code the daemon
 * runs) over the simulator's `NodeEnv`, applying to a `KvStateMachine`, with an observer that
 * reports to the trace what the checkers need (vocabulary in `checkers/raft-events.ts`): entries
 * persisted, entries applied with the state hash after each, snapshot installs, the log a node
 * recovered at start, and the configuration each election was counted in.
 *
 * A node whose disk cannot give it a safe start (`RecoveryError`: both copies of its term and
 * vote destroyed) stays up as a process that refuses every request, as the daemon would exit and
 * stay down; the trace says so with `start-refused`.
 */
import { assert } from '../../lib/assert.js';
import { err, ok, type Result } from '../../lib/errors.js';
import { logIndex, type NodeId } from '../../lib/ids.js';
import {
  KvStateMachine,
  type ConfChange,
  type ConfState,
  type Entry,
  type KvCommand,
  type KvOutput,
  type RaftCanary,
  type RaftMessage,
  type RaftRole,
} from '../../log/index.js';
import type { NodeEnv, TraceFields } from '../../runtime/env.js';
import { RaftNode, RaftNodeError, type RaftShellCanary } from '../../runtime/raft-node.js';
import { RecoveryError } from '../../runtime/raft-persistence.js';
import { StorageError } from '../../storage/index.js';
import type { Transport } from '../../transport/transport.js';
import { encodeEntries, encodeVoters, entryDigest, NO_STATE_HASH, RAFT_EVENT } from '../checkers/raft-events.js';

/** Raft timing and snapshot knobs of one run. */
export interface RaftTiming {
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly requestTimeoutTicks: number;
  readonly snapshotEntries: number;
  readonly snapshotCatchUpEntries: number;
}

/** Figures gathered across the cluster's nodes during a run (deterministic). */
export class RaftMetrics {
  /** Raft messages handed to the transport by every node. */
  messagesSent = 0;
  /** Highest index applied by any node: the entries the cluster committed. */
  committedIndex = 0;
  /** Commit latency of client writes, in ticks of the proposing leader, one slot per tick. */
  readonly latencyTicks: number[] = [];
  latencySamples = 0;
  snapshotsInstalled = 0;
  snapshotsTaken = 0;
  refusedStarts = 0;
  repairs = 0;

  /** Records one write's latency (bucketed by whole ticks, the last bucket open-ended). */
  noteLatency(ticks: number): void {
    const bucket = Math.min(Math.max(0, Math.floor(ticks)), LATENCY_BUCKETS - 1);
    while (this.latencyTicks.length <= bucket) this.latencyTicks.push(0);
    this.latencyTicks[bucket] = (this.latencyTicks[bucket] ?? 0) + 1;
    this.latencySamples++;
  }

  /** The latency (ticks) at quantile `q` in [0, 1], or 0 without samples. */
  latencyQuantile(q: number): number {
    let seen = 0;
    const want = Math.ceil(q * this.latencySamples);
    for (let i = 0; i < this.latencyTicks.length; i++) {
      seen += this.latencyTicks[i] ?? 0;
      if (seen >= want && seen > 0) return i;
    }
    return 0;
  }

  /** Mean latency in ticks (bucket lower bounds). */
  latencyMean(): number {
    let sum = 0;
    for (let i = 0; i < this.latencyTicks.length; i++) sum += i * (this.latencyTicks[i] ?? 0);
    return this.latencySamples === 0 ? 0 : sum / this.latencySamples;
  }
}

/** Latency histogram buckets (ticks); a bound on the histogram's memory. */
const LATENCY_BUCKETS = 1000;

/** What a client gets back from a read: the value (decoded as text) or null when absent. */
export type ReadResult = Result<string | null, RaftNodeError>;

const textDecoder = new TextDecoder();

/** One incarnation of a simulated node, as the driver sees it. */
export class RaftSimNode {
  /** Node clock time this incarnation last reported a valid lease (for the `lease-overstay` canary). */
  private leaseSeenMs: number | null = null;

  constructor(
    readonly id: NodeId,
    private readonly raft: RaftNode<KvCommand, KvOutput> | null,
    private readonly kv: KvStateMachine,
    private readonly env: NodeEnv<RaftMessage>,
    private readonly timing: RaftTiming,
    private readonly metrics: RaftMetrics,
    /** `lease-overstay` canary: a lapsed lease is still reported valid this long (ms), else 0. */
    private readonly leaseOverstayMs = 0,
  ) {}

  /**
   * Whether this node reports a valid leader lease now (`RaftNode.status().leaseValid`), or null
   * when it refused to start. For the lease checker.
   */
  leaseValid(): boolean | null {
    if (this.raft === null) return null;
    const now = this.env.clock.nowMs();
    if (this.raft.leaseValid()) {
      this.leaseSeenMs = now;
      return true;
    }
    return this.leaseSeenMs !== null && now - this.leaseSeenMs < this.leaseOverstayMs;
  }

  private refused(): RaftNodeError {
    return new RaftNodeError('STOPPED', `node ${this.id} refused to start (its disk is unusable)`);
  }

  /** Proposes `command`; `done` runs once with the output or a `RaftNodeError` (see `RaftNode.propose`). */
  propose(command: KvCommand, done: (r: Result<KvOutput, RaftNodeError>) => void): void {
    if (this.raft === null) {
      done(err(this.refused()));
      return;
    }
    const t0 = this.env.clock.nowMs();
    this.raft.propose(command, (r) => {
      if (r.ok) this.metrics.noteLatency((this.env.clock.nowMs() - t0) / this.timing.tickMs);
      done(r);
    });
  }

  /** A linearizable read of `key`: waits for `RaftNode.read`, then reads the local store. */
  read(key: string, done: (r: ReadResult) => void): void {
    if (this.raft === null) {
      done(err(this.refused()));
      return;
    }
    this.raft.read((r) => {
      if (!r.ok) {
        done(r);
        return;
      }
      const entry = this.kv.get(key).entry;
      done(ok(entry === null ? null : textDecoder.decode(entry.value)));
    });
  }

  /** Proposes a configuration change (see `RaftNode.proposeConfChange`). */
  proposeConfChange(change: ConfChange, done: (r: Result<void, RaftNodeError>) => void): void {
    if (this.raft === null) {
      done(err(this.refused()));
      return;
    }
    this.raft.proposeConfChange(change, done);
  }

  /** Role, leader and configuration as this node sees them, or null when it refused to start. */
  status(): { readonly role: RaftRole; readonly lead: NodeId | null; readonly confState: ConfState } | null {
    if (this.raft === null) return null;
    const s = this.raft.status();
    return { role: s.role, lead: s.lead, confState: s.confState };
  }
}

/** Everything the program needs besides the environment. */
export interface RaftProgramSetup {
  readonly timing: RaftTiming;
  /** The configuration a node starts with on an empty disk (empty for spare nodes). */
  bootstrap(node: NodeId): ConfState;
  readonly canary: RaftCanary | undefined;
  /** A planted bug of the shell (`RaftNodeOptions.canary`), or undefined. */
  readonly shellCanary: RaftShellCanary | undefined;
  /** `lease-overstay` canary: a lapsed lease is still reported valid this long (ms), else 0. */
  readonly leaseOverstayMs: number;
  readonly metrics: RaftMetrics;
}

/** A transport that counts what the node sends. */
function countingTransport(inner: Transport<RaftMessage>, metrics: RaftMetrics): Transport<RaftMessage> {
  return {
    self: inner.self,
    setHandlers: (h) => {
      inner.setHandlers(h);
    },
    send: (to, m, lane) => {
      metrics.messagesSent++;
      return inner.send(to, m, lane);
    },
    close: () => inner.close(),
  };
}

/** Starts one incarnation of a Raft node; see the module comment. */
export function startRaftNode(env: NodeEnv<RaftMessage>, setup: RaftProgramSetup): RaftSimNode {
  const kv = new KvStateMachine();
  const metrics = setup.metrics;
  const holder: { raft: RaftNode<KvCommand, KvOutput> | null } = { raft: null };
  // A witness applies nothing: once it is known to be one (it received a metadata-only copy, or its
  // configuration says so), it reports no state hash (a member never changes role).
  const role = { witness: (setup.bootstrap(env.nodeId).witnesses ?? []).includes(env.nodeId) };
  const hashOf = (): string => (role.witness ? NO_STATE_HASH : kv.stateHash());
  const trace = (event: string, fields: TraceFields): void => {
    env.trace(event, fields);
    if (event === RAFT_EVENT.becomeLeader && holder.raft !== null) {
      const st = holder.raft.status();
      env.trace(RAFT_EVENT.elected, {
        term: fields.term,
        voters: encodeVoters(st.confState.voters),
        outgoing: encodeVoters(st.confState.outgoing),
        config: st.config,
        latest: st.latestConfig,
      });
    } else if (event === 'snapshot') metrics.snapshotsTaken++;
    else if (event === 'repair-start') metrics.repairs++;
  };
  const wrapped: NodeEnv<RaftMessage> = {
    ...env,
    transport: countingTransport(env.transport, metrics),
    trace: (event, fields) => {
      trace(event, fields ?? {});
    },
  };
  const t = setup.timing;
  let raft: RaftNode<KvCommand, KvOutput>;
  try {
    raft = new RaftNode<KvCommand, KvOutput>(wrapped, {
      tickMs: t.tickMs,
      raft: {
        electionTicks: t.electionTicks,
        heartbeatTicks: t.heartbeatTicks,
        bootstrapEntry: true,
        ...(setup.canary === undefined ? {} : { canary: setup.canary }),
      },
      bootstrap: setup.bootstrap(env.nodeId),
      stateMachine: kv,
      snapshotEntries: t.snapshotEntries,
      snapshotCatchUpEntries: t.snapshotCatchUpEntries,
      requestTimeoutTicks: t.requestTimeoutTicks,
      ...(setup.shellCanary === undefined ? {} : { canary: setup.shellCanary }),
      observer: {
        onPersist: (entries) => {
          const first = entries[0];
          if (first !== undefined) env.trace(RAFT_EVENT.persist, { from: first.index, ents: encodeEntries(entries) });
        },
        onApply: (entry) => {
          if (entry.type === 'normal' && entry.metadataOnly === true) role.witness = true;
          if (entry.index > metrics.committedIndex) metrics.committedIndex = entry.index;
          env.trace(RAFT_EVENT.apply, {
            index: entry.index,
            term: entry.term,
            d: entryDigest(entry),
            hash: hashOf(),
            nodeTerm: holder.raft?.currentTerm ?? 0,
          });
        },
        onRestore: (index, term, metadataOnly) => {
          if (metadataOnly) role.witness = true;
          metrics.snapshotsInstalled++;
          env.trace(RAFT_EVENT.restore, { index, term, hash: hashOf() });
        },
      },
    });
  } catch (e) {
    // A read error at start fail-stopped the incarnation: the simulator already crashed it.
    if (e instanceof StorageError && e.code === 'READ_FAILED')
      return new RaftSimNode(env.nodeId, null, kv, env, t, metrics);
    if (!(e instanceof RecoveryError)) throw e;
    metrics.refusedStarts++;
    env.trace(RAFT_EVENT.startRefused, { code: e.code, reason: e.message });
    return new RaftSimNode(env.nodeId, null, kv, env, t, metrics);
  }
  holder.raft = raft;
  if (raft.holdsMetadataOnly()) role.witness = true;
  traceRecovered(env, raft, hashOf());
  raft.start();
  return new RaftSimNode(env.nodeId, raft, kv, env, t, metrics, setup.leaseOverstayMs);
}

/** Reports the log and state a node recovered, so checkers follow its log across restarts. */
function traceRecovered(env: NodeEnv<RaftMessage>, raft: RaftNode<KvCommand, KvOutput>, hash: string): void {
  const s = raft.status();
  const snap = s.snapshotIndex;
  let entries: Entry[] = [];
  if (s.lastIndex > snap) {
    const r = raft.logEntries(logIndex(snap + 1), logIndex(s.lastIndex + 1));
    assert(r.ok, `a recovered log holds its entries after the snapshot (${snap + 1}..${s.lastIndex})`);
    entries = r.value;
  }
  const snapTerm = raft.termOf(logIndex(snap)) ?? 0;
  env.trace(RAFT_EVENT.recovered, {
    snap,
    snapTerm,
    ents: encodeEntries(entries),
    applied: s.applied,
    hash,
    repairing: s.repairing,
  });
}
