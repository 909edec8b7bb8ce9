/**
 * An in-memory cluster of Raft cores with a hand-driven network, for unit tests, property tests
 * and the data-driven scenario scripts (etcd's `rafttest` interaction environment).
 *
 * Each node has a `MemoryRaftStorage` that is its durable disk, and a tiny state machine (the
 * list of applied payloads) whose snapshot is that list as JSON. `processReady` follows the
 * `Ready` contract exactly (send, persist, apply, send-after-persist, advance), so the harness is
 * also an executable statement of that contract. Every message the cores emit is run through
 * `validateRaftMessage` before delivery. Deterministic: no clocks, randomness only from the
 * `Prng` given for election timeouts.
 */
import { assert, defined } from '../lib/assert.js';
import { logIndex, nodeId, type LogIndex, type NodeId } from '../lib/ids.js';
import { Prng } from '../lib/prng.js';
import { RaftCore } from './raft-core.js';
import { RAFT_CONFIG_DEFAULTS, type RaftConfig } from './raft-config.js';
import {
  validateRaftMessage,
  type ConfChangeSingle,
  type ConfState,
  type Entry,
  type RaftMessage,
  type VoterWeight,
} from './raft-message.js';
import { MemoryRaftStorage } from './raft-storage.js';
import type { ReadState, Ready } from './ready.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** One simulated node: its core, its durable storage and its state machine. */
export interface HarnessNode {
  readonly id: NodeId;
  core: RaftCore;
  readonly storage: MemoryRaftStorage;
  /** Applied normal payloads (the state machine), as strings; empty entries are skipped. */
  applied: string[];
  /** Index of the last applied entry (entry or snapshot). */
  appliedIndex: LogIndex;
  readStates: ReadState[];
}

/** Options for `addNodes`. */
export interface AddNodesOptions {
  /** Bootstrap voters (with 1 vote each unless `votes` says otherwise). Empty: join later. */
  readonly voters: readonly number[];
  readonly learners?: readonly number[];
  readonly votes?: ReadonlyMap<number, number>;
  /** Bootstrap quorum settings and witnesses (votequorum options); defaults when absent. */
  readonly quorum?: Pick<ConfState, 'quorum' | 'witnesses'>;
  readonly config?: Partial<Omit<RaftConfig, 'id' | 'storage' | 'prng'>>;
}

/** `v4`, `v4x2`, `w4` (witness), `l4`, `r4`, `e5` (expected votes), `tb=lowest` / `tb=list(3,1)`. */
function formatChange(c: ConfChangeSingle): string {
  switch (c.type) {
    case 'add-voter':
      return `${c.role === 'witness' ? 'w' : 'v'}${c.node}${c.votes === 1 ? '' : `x${c.votes}`}`;
    case 'add-learner':
      return `l${c.node}`;
    case 'remove-node':
      return `r${c.node}`;
    case 'set-expected-votes':
      return `e${c.expectedVotes}`;
    case 'set-tie-breaker':
      return `tb=${c.tieBreaker.kind === 'list' ? `list(${c.tieBreaker.nodes.join(',')})` : c.tieBreaker.kind}`;
  }
}

/** Formats an entry as `term/index EntryNormal "data"` or `term/index EntryConf ...`. */
export function formatEntry(e: Entry): string {
  switch (e.type) {
    case 'normal':
      if (e.metadataOnly === true) return `${e.term}/${e.index} EntryNormal (metadata only)`;
      return `${e.term}/${e.index} EntryNormal ${JSON.stringify(decoder.decode(e.data))}`;
    case 'conf': {
      const parts = e.change.changes.map(formatChange);
      if (parts.length === 0) return `${e.term}/${e.index} EntryConf leave-joint`;
      return `${e.term}/${e.index} EntryConf ${parts.join(' ')}${e.change.autoLeave ? '' : ' explicit'}`;
    }
  }
}

/** Formats a message on one line, etcd-style. */
export function formatMessage(m: RaftMessage): string {
  const head = `${m.from}->${m.to} ${m.type} Term:${m.term}`;
  switch (m.type) {
    case 'MsgApp':
      return `${head} Log:${m.logTerm}/${m.index} Commit:${m.commit}${m.entries.length > 0 ? ` Entries:[${m.entries.map(formatEntry).join(', ')}]` : ''}`;
    case 'MsgAppResp':
      return `${head} Index:${m.index}${m.reject ? ` Rejected (Hint: ${m.rejectHint}/${m.logTerm})` : ''}`;
    case 'MsgVote':
    case 'MsgPreVote':
      return `${head} Log:${m.logTerm}/${m.index}${m.transfer ? ' Transfer' : ''}`;
    case 'MsgVoteResp':
    case 'MsgPreVoteResp':
      return `${head}${m.reject ? ' Rejected' : ''}${m.commitHint === undefined ? '' : ` Commit:${m.commitHint.term}/${m.commitHint.index}`}`;
    case 'MsgHeartbeat':
      return `${head} Commit:${m.commit} Round:${m.round}`;
    case 'MsgHeartbeatResp':
      return `${head} Round:${m.round}`;
    case 'MsgSnap':
      return `${head} Snapshot: Index:${m.snapshot.metadata.index} Term:${m.snapshot.metadata.term}`;
    case 'MsgTimeoutNow':
      return head;
    case 'MsgReadIndex':
      return `${head} Context:${decoder.decode(m.context)}`;
    case 'MsgReadIndexResp':
      return `${head} Index:${m.index} Context:${decoder.decode(m.context)}${m.reject ? ' Rejected' : ''}`;
  }
}

/** A cluster of cores and a network of queued messages. */
export class RaftHarness {
  readonly nodes = new Map<NodeId, HarnessNode>();
  /** Messages sent and not yet delivered, in send order. */
  network: RaftMessage[] = [];
  private readonly isolated = new Set<NodeId>();
  /** Partition groups (node -> group number); nodes in different groups cannot talk. */
  private readonly groupOf = new Map<NodeId, number>();
  private readonly prng: Prng;
  /** Lines describing what happened (role changes, applied entries); drained by `takeLog`. */
  private lines: string[] = [];
  /** Every (term, leader) pair ever observed, for the election-safety check. */
  readonly leaders = new Map<number, Set<NodeId>>();
  private readonly nodeConfig = new Map<NodeId, AddNodesOptions['config']>();

  constructor(seed = 1) {
    this.prng = new Prng(seed);
  }

  /** Creates `count` nodes with the next free ids, bootstrapped with `opts`. */
  addNodes(count: number, opts: AddNodesOptions): NodeId[] {
    const ids: NodeId[] = [];
    for (let i = 0; i < count; i++) {
      const id = nodeId(this.nodes.size + 1);
      const voters: VoterWeight[] = opts.voters.map((v) => [nodeId(v), opts.votes?.get(v) ?? 1] as const);
      const confState: ConfState = {
        voters,
        outgoing: [],
        learners: (opts.learners ?? []).map(nodeId),
        learnersNext: [],
        autoLeave: false,
        ...opts.quorum,
      };
      const storage = new MemoryRaftStorage(confState);
      this.nodeConfig.set(id, opts.config);
      const node: HarnessNode = {
        id,
        core: this.makeCore(id, storage),
        storage,
        applied: [],
        appliedIndex: logIndex(0),
        readStates: [],
      };
      this.nodes.set(id, node);
      ids.push(id);
    }
    return ids;
  }

  private makeCore(id: NodeId, storage: MemoryRaftStorage, applied?: number): RaftCore {
    const cfg: RaftConfig = {
      ...RAFT_CONFIG_DEFAULTS,
      ...this.nodeConfig.get(id),
      id,
      storage,
      prng: this.prng.fork(`node-${id}-${this.prng.nextU32()}`),
      ...(applied === undefined ? {} : { applied }),
    };
    return new RaftCore(cfg);
  }

  /** The node with id `id` (asserts it exists). */
  node(id: number): HarnessNode {
    return defined(this.nodes.get(nodeId(id)), `node ${id}`);
  }

  /** Drains the event lines accumulated since the last call. */
  takeLog(): string[] {
    const out = this.lines;
    this.lines = [];
    return out;
  }

  /** Carries out one Ready of node `id` per the contract; false when it had nothing to do. */
  processReady(id: NodeId): boolean {
    const n = defined(this.nodes.get(id), `node ${id}`);
    if (!n.core.hasReady()) return false;
    const rd = n.core.ready();
    this.enqueue(rd.messages);
    this.persist(n, rd);
    this.apply(n, rd);
    this.enqueue(rd.messagesAfterPersist);
    n.readStates.push(...rd.readStates);
    for (const rs of rd.readStates)
      this.lines.push(`${id} read-state index=${rs.index} ctx=${decoder.decode(rs.context)}`);
    if (rd.softState !== null) {
      this.lines.push(`${id} becomes ${rd.softState.role} lead=${rd.softState.lead ?? 0} term=${n.core.status().term}`);
      if (rd.softState.role === 'leader') this.recordLeader(n.core.status().term, id);
    }
    n.core.advance(rd);
    return true;
  }

  private recordLeader(t: number, id: NodeId): void {
    const set = this.leaders.get(t) ?? new Set<NodeId>();
    set.add(id);
    this.leaders.set(t, set);
  }

  private persist(n: HarnessNode, rd: Ready): void {
    if (rd.snapshot !== null) {
      const r = n.storage.applySnapshot(rd.snapshot);
      assert(r.ok, 'a snapshot handed out by the core is newer than the stored one');
    }
    n.storage.append(rd.entries);
    if (rd.hardState !== null) n.storage.setHardState(rd.hardState);
  }

  private apply(n: HarnessNode, rd: Ready): void {
    if (rd.snapshot !== null) {
      // A witness's copy of a snapshot has no data: it applies nothing.
      n.applied =
        rd.snapshot.metadata.metadataOnly === true ? [] : (JSON.parse(decoder.decode(rd.snapshot.data)) as string[]);
      n.appliedIndex = rd.snapshot.metadata.index;
      this.lines.push(`${n.id} applies snapshot index=${n.appliedIndex}`);
    }
    for (const e of rd.committedEntries) {
      assert(
        e.index === n.appliedIndex + 1,
        `node ${n.id} applies ${e.index} after ${n.appliedIndex}: entries must be applied in order`,
      );
      n.appliedIndex = e.index;
      if (e.type === 'normal' && e.data.length > 0) n.applied.push(decoder.decode(e.data));
      if (e.type === 'conf' || e.data.length > 0) this.lines.push(`${n.id} applies ${formatEntry(e)}`);
    }
  }

  private enqueue(messages: readonly RaftMessage[]): void {
    for (const m of messages) this.network.push(validateRaftMessage(m));
  }

  /** True when a message from `from` to `to` would be dropped by the current partition. */
  blocked(from: NodeId, to: NodeId): boolean {
    if (this.isolated.has(from) || this.isolated.has(to)) return true;
    const a = this.groupOf.get(from);
    const b = this.groupOf.get(to);
    return a !== undefined && b !== undefined && a !== b;
  }

  /** Delivers one queued message by position (reordering); dropped if partitioned. Returns its line. */
  deliverAt(position: number): string {
    const [m] = this.network.splice(position, 1);
    return this.deliver(defined(m, 'queued message'));
  }

  private deliver(m: RaftMessage): string {
    if (this.blocked(m.from, m.to) || !this.nodes.has(m.to)) return `${formatMessage(m)} (dropped)`;
    this.node(m.to).core.step(m);
    return formatMessage(m);
  }

  /** Delivers every message queued now (optionally only those to `to`), in order. */
  deliverAll(to?: NodeId): string[] {
    const out: string[] = [];
    const kept: RaftMessage[] = [];
    const pending = this.network;
    this.network = [];
    for (const m of pending) {
      if (to !== undefined && m.to !== to) kept.push(m);
      else out.push(this.deliver(m));
    }
    this.network = kept.concat(this.network);
    return out;
  }

  /** Processes Readies and delivers messages until nothing changes (bounded). Returns the lines. */
  stabilize(maxRounds = 1000): string[] {
    const out: string[] = [];
    for (let round = 0; round < maxRounds; round++) {
      let busy = false;
      for (const id of this.nodes.keys()) while (this.processReady(id)) busy = true;
      out.push(...this.takeLog());
      if (this.network.length > 0) busy = true;
      out.push(...this.deliverAll());
      if (!busy) return out;
    }
    assert(false, `stabilize did not converge within ${maxRounds} rounds`);
  }

  /** Ticks node `id` `n` times. */
  tick(id: NodeId, n = 1): void {
    for (let i = 0; i < n; i++) this.node(id).core.tick();
  }

  /** Ticks every node once. */
  tickAll(): void {
    for (const n of this.nodes.values()) n.core.tick();
  }

  /** Cuts `id` off from every other node (messages both ways are dropped). */
  isolate(id: NodeId): void {
    this.isolated.add(id);
  }

  /**
   * Splits the listed nodes into groups that cannot reach each other (a node listed in no group
   * is not affected); replaces the previous split. `recover` heals it.
   */
  partition(groups: readonly (readonly NodeId[])[]): void {
    this.groupOf.clear();
    groups.forEach((group, i) => {
      for (const id of group) {
        assert(!this.groupOf.has(id), `node ${id} is listed in two partition groups`);
        this.groupOf.set(id, i);
      }
    });
  }

  /** Heals every partition. */
  recover(): void {
    this.isolated.clear();
    this.groupOf.clear();
  }

  /** Proposes `text` on node `id`; returns the error code or null. */
  propose(id: NodeId, text: string): string | null {
    const r = this.node(id).core.propose(encoder.encode(text));
    return r.ok ? null : r.error.code;
  }

  /**
   * Takes a snapshot of node `id`'s state machine at its applied index and compacts the log up to
   * `compactTo` (default: the applied index).
   */
  compact(id: NodeId, compactTo?: number): void {
    const n = this.node(id);
    const data = encoder.encode(JSON.stringify(n.applied));
    const snap = n.storage.createSnapshot(n.appliedIndex, n.core.confState(), data);
    assert(snap.ok, `snapshot at ${n.appliedIndex}: ${snap.ok ? '' : snap.error.message}`);
    const r = n.storage.compact(logIndex(compactTo ?? n.appliedIndex));
    assert(r.ok, 'compaction inside the snapshot succeeds');
  }

  /**
   * Crashes node `id` and restarts it from its durable storage; the state machine is rebuilt.
   * `commit` models a shell that lost commit-only hard-state changes: the durable commit index is
   * set back to it (never below the snapshot) before the restart.
   */
  restart(id: NodeId, commit?: number): void {
    const n = this.node(id);
    if (commit !== undefined) {
      const hs = n.storage.initialState().hardState;
      const floor = n.storage.firstIndex() - 1;
      n.storage.setHardState({ ...hs, commit: logIndex(Math.max(floor, Math.min(commit, hs.commit))) });
    }
    const snap = n.storage.snapshot();
    assert(snap.ok, 'memory storage always has a snapshot');
    const base = snap.value;
    n.applied =
      base.metadata.index > 0 && base.data.length > 0 ? (JSON.parse(decoder.decode(base.data)) as string[]) : [];
    n.appliedIndex = base.metadata.index;
    n.readStates = [];
    n.core = this.makeCore(id, n.storage);
  }

  /** The durable + unstable log of `id` as lines. */
  raftLog(id: NodeId): string[] {
    const st = this.node(id).core.status();
    const r = this.node(id).core.logEntries(st.firstIndex, logIndex(st.lastIndex + 1));
    assert(r.ok, 'the log from its first index is available');
    if (r.value.length === 0) return [`log is empty: first index=${st.firstIndex}, last index=${st.lastIndex}`];
    return r.value.map(formatEntry);
  }

  /** A status line per node, e.g. `1: leader term=2 commit=5 applied=5 lead=1 voters=(1,2,3)`. */
  statusLines(id: NodeId): string[] {
    const st = this.node(id).core.status();
    const lines = [
      `${id}: ${st.role} term=${st.term} commit=${st.commit} applied=${st.applied} lead=${st.lead ?? 0} ${st.config}`,
    ];
    for (const [peer, pr] of st.progress) lines.push(`  ${peer}: ${pr}`);
    return lines;
  }
}
