/**
 * The node-services seam (design note section 3: "the dlm is just another service"). A cohort
 * node is a small host (`ClusterNode`) of services; everything above the cluster log is one:
 * the membership agent and failure detector, service groups, the KV store, and next fencing,
 * recovery, each DLM lockspace, each volume. A service is one folder holding its pure core and
 * this adapter, and is registered once, in `src/services.ts`.
 *
 * What a service owns, and how it gets it:
 * - **State machines on the cluster log**: `machines` (static specs; tags are never reused). The
 *   host plugs them into one `StateMachineMux`; the service reaches its machine through a typed
 *   `MachineHandle` (`ctx.machine(spec)`), so no `unknown` output is cast at a call site.
 * - **Peer channels**: `channels` (static specs: a channel id, a codec, a lane). The node's peer
 *   codec is built from every service's channels before the transport exists (`peerCodecOf`);
 *   the service opens each with `ctx.channel(spec, onMessage)` at `attach`.
 * - **Local API handlers**: `registerApi` (the daemon's Unix socket and embedded mode share them).
 * - **Leader-only duties**: `onLeaderTick`, called on every tick while this node leads.
 *
 * The host's notification order contract (every call synchronous, on the node's one event loop,
 * never re-entrant; services are called in registration order):
 * 1. `attach(ctx)` once, at construction, before anything runs.
 * 2. `onStart()` once, after the Raft shell recovered its state from disk; then `onView` with the
 *    view the recovered state holds, if the membership service announced one.
 * 3. For each entry the Raft shell applies: `onApplied(entry)`. Then, if the membership service
 *    announced a new cluster view while applying it, `onView(view)` to every service.
 * 4. After a snapshot from the leader replaced the state: `onRestored(index)`, then `onView`.
 * 5. When the Raft role or known leader changes: `onRole(role, term, lead)`.
 * 6. On every tick: `onTick(nowMs, lagMs)`, then, on the leader, `onLeaderTick(nowMs, lagMs)`.
 * 7. `onStop()` once; every callback a service still holds must complete (with `STOPPED`).
 *
 * Pure: services run unchanged in the simulator; only `ctx` reaches the environment.
 */
import type { NodeId, Incarnation, LogIndex, Term } from '../lib/ids.js';
import type { Result } from '../lib/errors.js';
import type { ApplyResult, AnyStateMachine, Entry, RaftRole, StateMachine } from '../log/index.js';
import type { Codec, Lane } from '../transport/transport.js';
import type { ApiHandlerRegistry } from '../api/index.js';
import type { Clock, Timers, TraceFields } from './env.js';
import type { ProcessRunner } from './process-runner.js';
import type { RaftNodeError } from './raft-node.js';

/** A state machine a service puts on the cluster log (one `StateMachineMux` member). */
export interface MachineSpec<C extends { readonly type: string }, O, SM extends StateMachine<C, O>> {
  /** The mux tag; stable forever (a retired tag is never reused). */
  readonly tag: number;
  readonly name: string;
  /** Makes an empty instance (at start, and to restore a snapshot all-or-nothing). */
  create(): SM;
  /** Whether an instance is this machine's type (checked once per access: a cheap `instanceof`). */
  is(machine: AnyStateMachine): machine is SM;
  /**
   * What the host keeps of an output for a forwarder to read later (bounded memory): e.g. a
   * group message's output without its payload. Default: the output itself.
   */
  retained?(output: O): O;
}

/** Proposal options (`MachineHandle.propose`). */
export interface ProposeOptions {
  /** From now; default the node's request timeout. */
  readonly timeoutMs?: number;
  /**
   * Whether proposing the command twice is harmless (membership commands are incarnation-checked).
   * An unanswered idempotent forward is re-sent; a non-idempotent one never is (its outcome is
   * then `TIMEOUT` or `OUTCOME_UNKNOWN`).
   */
  readonly idempotent: boolean;
}

/** A service's typed handle on its machine in the mux. */
export interface MachineHandle<C extends { readonly type: string }, O, SM extends StateMachine<C, O>> {
  readonly tag: number;
  /** The current instance (a snapshot restore replaces it: never keep it across callbacks). */
  machine(): SM;
  /**
   * Proposes `command` at the leader (here, or forwarded by the request router); `done` runs
   * exactly once, after this node applied it, with the machine's output, or a `RaftNodeError`
   * (`REFUSED` carries the machine's refusal code in `refusal`).
   */
  propose(command: C, options: ProposeOptions, done: (r: Result<O, RaftNodeError>) => void): void;
  /** This machine's output of an applied entry, or undefined when the entry is another machine's. */
  outputOf(applied: AppliedEntry): ApplyResult<O> | undefined;
}

/** An entry the Raft shell applied on this node (`result` null: a configuration entry or empty). */
export interface AppliedEntry {
  readonly entry: Entry;
  /** The mux member's tag and its result, or null for entries that are not commands. */
  readonly tag: number | null;
  readonly result: ApplyResult<unknown> | null;
}

/** A peer channel: one service's messages, their codec and their lane. */
export interface ChannelSpec<M> {
  /** 0..255, unique on the node; stable across versions (a node refuses unknown channel ids). */
  readonly id: number;
  readonly name: string;
  readonly codec: Codec<M>;
  /** `control` (Raft, pings, membership: small and urgent) or `bulk` (DLM bursts, volume data). */
  readonly lane: Lane;
}

/** A service's sending end of its channel. */
export interface PeerChannel<M> {
  /** Sends `message` to `to` on the channel's lane; false when refused (queue full, closed). */
  send(to: NodeId, message: M): boolean;
}

/** The cluster view as the host passes it around (the membership service's view satisfies it). */
export interface ClusterView {
  readonly viewId: number;
  readonly members: readonly { readonly node: NodeId; readonly incarnation: number }[];
  readonly quorate: boolean;
}

/** What the Raft shell and the host say about this node now. */
export interface RaftFacts {
  readonly role: RaftRole;
  readonly term: Term;
  readonly lead: NodeId | null;
  readonly commit: LogIndex;
  readonly applied: LogIndex;
  /** The last index in this node's log (committed or not). */
  readonly lastIndex: LogIndex;
  /** Leader only: reads are served from the lease now (false while reads are held after a stall). */
  readonly leaseValid: boolean;
  /** Reads wait because this node's event loop stalled recently. */
  readonly readsHeld: boolean;
  /** Ms since a Raft message from the known leader arrived (null: none, or no leader). */
  readonly sinceLeaderMs: number | null;
  /** The applied Raft configuration, formatted (`voters=(1,2) learners=(3)`). */
  readonly config: string;
  /** The voters of the applied configuration (both sides while joint), ascending. */
  readonly voters: readonly NodeId[];
  /** Its learners (and voters being demoted while joint), ascending. */
  readonly learners: readonly NodeId[];
  /** A configuration change is in progress (joint, or proposed and not applied yet). */
  readonly changing: boolean;
}

/** What the host gives a service at `attach`. */
export interface ServiceContext {
  readonly nodeId: NodeId;
  readonly incarnation: Incarnation;
  readonly clock: Clock;
  readonly timers: Timers;
  /**
   * Wall-clock time, ms since the Unix epoch: for records people read (the fence ledger's times);
   * never for timing decisions (use `clock`). The simulator gives virtual time from a fixed epoch.
   */
  wallMs(): number;
  /** Runs external programs (fence agents) without blocking: `src/runtime/process-runner.ts`. */
  readonly processes: ProcessRunner;
  /** The node's request timeout, ms (the default proposal and read deadline). */
  readonly requestTimeoutMs: number;
  trace(event: string, fields?: TraceFields): void;
  /** The typed handle on a machine this service declared in `machines`. */
  machine<C extends { readonly type: string }, O, SM extends StateMachine<C, O>>(
    spec: MachineSpec<C, O, SM>,
  ): MachineHandle<C, O, SM>;
  /**
   * Opens a channel this service declared in `channels`: messages arriving on it (decoded and
   * validated by its codec) go to `onMessage` while the node runs; returns the sending end.
   */
  channel<M>(spec: ChannelSpec<M>, onMessage: (from: NodeId, message: M) => void): PeerChannel<M>;
  /** Role, term, leader, lease and read-hold facts now. */
  raft(): RaftFacts;
  /** Waits until this node's state reflects every write committed before the call (linearizable). */
  read(deadlineMs: number, done: (r: Result<void, RaftNodeError>) => void): void;
  /** Whether the node is running (inputs are handled). */
  running(): boolean;
  /** Tells every service about a new cluster view (the membership service calls it). */
  announceView(view: ClusterView): void;
  /**
   * Ends this run because its incarnation is not new: the cluster already saw incarnation
   * `highestSeen` of this node (its stable state was lost or restored from an old copy). Records
   * durably that incarnations up to `highestSeen` are used, then fail-stops the node with `why`
   * and the error code `INCARNATION_RETIRED` (the daemon stops this run without a leave and
   * starts again in the same process), so the next start runs as `max(highestSeen, incarnation)
   * + 1`. Returns that incarnation. Call at most once.
   */
  retire(highestSeen: number, why: string): Incarnation;
  /**
   * Ends this incarnation because it may have been cut off from the cluster (the self-fence of
   * the watchdog agent, `src/fencing/self-fence.ts`): a fail-stop with the error code
   * `SELF_FENCED` and `why` as the operator's line. The daemon exits (a supervisor restarts it as
   * a new incarnation, which joins after its fence is recorded); embedded mode stops the node; the
   * simulator crashes it. Idempotent.
   */
  selfFence(why: string): void;
  /**
   * Leader only: hands leadership to the most up-to-date other data voter (`RaftCore.handOver`),
   * because `why` says this node must not lead (its own incarnation awaits a fence, and a leader
   * never fences itself). Traces `hand-over`; returns the voter it goes to, or null when this
   * node does not lead or no other voter can. Proposals are refused until the transfer completes
   * or times out (an election timeout); calling again while it runs changes nothing.
   */
  handOver(why: string): NodeId | null;
  /**
   * two_node: this node won the fence race against `peer`, the other voter (`RaftCore.peerFenced`:
   * the core counts the peer's grants and acknowledgements until its demotion is applied, and
   * campaigns). Returns null when the core took it, else why not (the configuration is not the
   * two voters). Call only with a proof that the peer is off.
   */
  peerFenced(peer: NodeId): string | null;
  /**
   * two_node, leader only: makes `node` a learner (`voter` false; expected votes back to the
   * voters' total) or a voter with one vote again (`voter` true), through a joint configuration
   * that leaves itself. `done` gets null once the change is applied here, else why it failed.
   */
  changeVoter(node: NodeId, voter: boolean, done: (error: string | null) => void): void;
}

/** One service on a node; see the file comment for the order of calls. */
export interface NodeService {
  readonly name: string;
  // `any` here is the erased element type of a heterogeneous list; each spec is typed where declared.
  readonly machines?: readonly MachineSpec<any, any, any>[]; // eslint-disable-line @typescript-eslint/no-explicit-any
  readonly channels?: readonly ChannelSpec<any>[]; // eslint-disable-line @typescript-eslint/no-explicit-any
  attach(ctx: ServiceContext): void;
  onStart?(): void;
  onApplied?(applied: AppliedEntry): void;
  onRestored?(index: LogIndex): void;
  onView?(view: ClusterView): void;
  onRole?(role: RaftRole, term: Term, lead: NodeId | null): void;
  onTick?(nowMs: number, lagMs: number): void;
  onLeaderTick?(nowMs: number, lagMs: number): void;
  /**
   * The transport proved that process `incarnation` of `peer` is gone (`onPeerGone`: its host
   * closed its connections and refused a reconnect; never a timeout, a pause or silence). Called
   * after Raft heard it, on every node that holds the proof, leader or not.
   */
  onPeerGone?(peer: NodeId, incarnation: number): void;
  onStop?(): void;
  /** Registers this service's local API methods (the daemon socket and embedded mode). */
  registerApi?(registry: ApiHandlerRegistry): void;
}
