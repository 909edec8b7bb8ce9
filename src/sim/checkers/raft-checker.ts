/**
 * Raft safety checkers, judged from trace events only (see `raft-events.ts` for the vocabulary).
 * They never read node state, so a bug in the node cannot hide itself from them.
 *
 * Properties (Raft paper, figure 3, plus the weighted-quorum rule):
 * - **Election safety**: at most one node becomes leader in a term.
 * - **Election quorum**: the nodes that granted a winner their vote in its term (plus itself)
 *   hold a quorum of the configuration the winner had applied and of the latest one its log
 *   implies, on both sides of a joint configuration, with expected votes and tie-breakers
 *   (`jointQuorumConfig`). Learners are not voters, so their grants never count. This is
 *   the direct check that no two disjoint quorums decide across a configuration change.
 * - **Log matching**: entries persisted anywhere with the same index and term have the same
 *   content *and the same predecessor term*; by induction, the logs agree up to that entry. A
 *   witness's copy (`metadataOnly`: no data) matches by term and predecessor term only.
 * - **Leader completeness** (§5.4: an entry committed in term C is in the log of every leader of
 *   a term after C): when a new leader of term T first persists an entry of its term at index k,
 *   its log holds, at the same index and below k, every entry applied anywhere so far that was
 *   surely committed before T, i.e. applied by some node whose current term was below T (a node
 *   learns a commit from a leader of its own term or an older one). An entry of an older term
 *   first committed in term T or later is not a T-leader's business: it may be elected before
 *   that entry even exists. Each node's log is followed from `persist` (with Raft's truncation), from
 *   `recovered` at every start and from `restore` when a snapshot replaces it.
 * - **State machine safety**: every node applies the same entry at each index, only entries it
 *   holds, and has the same state hash at the same applied index (after applies, restores and
 *   restarts alike).
 *
 * Every map here grows with the run (entries, terms), which the simulator bounds by its run
 * length; nothing grows per message.
 */
import type { NodeId } from '../../lib/ids.js';
import { hasQuorum } from '../../quorum/index.js';
import type { TraceFields } from '../../runtime/env.js';
import type { Checker } from '../workload.js';
import type { SimEvent } from '../trace.js';
import {
  NO_STATE_HASH,
  parseConfig,
  parseEntries,
  quorumConfigOf,
  RAFT_EVENT,
  WITNESS_COPY_DIGEST,
  type EntryMark,
} from './raft-events.js';

/** A node's log as the checker follows it: a snapshot covering 1..base, then `marks`. */
interface TrackedLog {
  base: number;
  /** Term of the entry at `base`, when known (0 for the empty start). */
  baseTerm: number | null;
  marks: EntryMark[];
}

/** What the cluster agreed on at one index. */
interface AppliedMark {
  readonly term: number;
  readonly digest: string;
  readonly node: NodeId;
  /** The lowest current term of a node applying it: an upper bound of its commit term. */
  committedBy: number;
}

function num(fields: TraceFields, key: string): number {
  const v = fields[key];
  return typeof v === 'number' ? v : Number.NaN;
}

function str(fields: TraceFields, key: string): string {
  const v = fields[key];
  return typeof v === 'string' ? v : v === undefined || v === null ? '' : String(v);
}

/** See the module comment. `violation` is called once per finding. */
export class RaftSafetyChecker implements Checker {
  readonly name = 'raft-safety';
  private readonly logs = new Map<NodeId, TrackedLog>();
  /** `index:term` → the content and predecessor term first seen for that entry. */
  private readonly entries = new Map<string, { digest: string; prevTerm: number | null; node: NodeId }>();
  private readonly applied = new Map<number, AppliedMark>();
  private readonly hashes = new Map<number, { hash: string; node: NodeId }>();
  private maxApplied = 0;
  private readonly leaders = new Map<number, NodeId>();
  /** `term:candidate` → nodes that granted that candidate their vote in that term. */
  private readonly grants = new Map<string, Set<NodeId>>();
  /** New leaders whose completeness is checked at their first persist of an own-term entry. */
  private readonly pendingLeaders = new Map<NodeId, number>();
  /** Checks done (so a test can tell a checker that saw nothing from one that passed). */
  checks = 0;

  constructor(private readonly violation: (message: string) => void) {}

  observe(e: SimEvent): void {
    if (e.source === 'client') return;
    if (e.source === 'sim') {
      if (e.event === 'crash') this.pendingLeaders.delete(num(e.fields, 'node') as NodeId);
      return;
    }
    const node = e.source as NodeId;
    const f = e.fields;
    switch (e.event) {
      case RAFT_EVENT.persist:
        this.onPersist(node, num(f, 'from'), str(f, 'ents'));
        return;
      case RAFT_EVENT.recovered:
        this.onRecovered(node, num(f, 'snap'), str(f, 'ents'), num(f, 'applied'), str(f, 'hash'));
        return;
      case RAFT_EVENT.restore:
        this.onRestore(node, num(f, 'index'), num(f, 'term'), str(f, 'hash'));
        return;
      case RAFT_EVENT.apply:
        this.onApply(node, num(f, 'index'), num(f, 'term'), str(f, 'd'), str(f, 'hash'), num(f, 'nodeTerm'));
        return;
      case RAFT_EVENT.becomeLeader:
        this.onBecomeLeader(node, num(f, 'term'));
        return;
      case RAFT_EVENT.elected:
        this.onElected(node, num(f, 'term'), str(f, 'config'), str(f, 'latest'));
        return;
      case RAFT_EVENT.voteGranted:
        if (f.type === 'MsgVote') this.onGrant(node, num(f, 'to') as NodeId, num(f, 'msgTerm'));
        return;
      default:
        return;
    }
  }

  private fail(message: string): void {
    this.violation(message);
  }

  private log(node: NodeId): TrackedLog {
    let l = this.logs.get(node);
    if (l === undefined) {
      l = { base: 0, baseTerm: 0, marks: [] };
      this.logs.set(node, l);
    }
    return l;
  }

  /** The mark at `index` in `l`, or undefined (covered by the snapshot, or absent). */
  private markAt(l: TrackedLog, index: number): EntryMark | undefined {
    return index > l.base ? l.marks[index - l.base - 1] : undefined;
  }

  private termAt(l: TrackedLog, index: number): number | null {
    if (index === l.base) return l.baseTerm;
    return this.markAt(l, index)?.term ?? null;
  }

  // ---------------------------------------------------------------------------------------------
  // Logs

  private onPersist(node: NodeId, from: number, ents: string): void {
    const marks = parseEntries(ents);
    if (marks === null || !Number.isSafeInteger(from) || from < 1) {
      this.fail(`node ${node}: malformed persist event (from=${from} ents=${ents})`);
      return;
    }
    const l = this.log(node);
    const last = l.base + l.marks.length;
    if (from > last + 1) {
      this.fail(`node ${node}: persisted entries from ${from} but its log ends at ${last}: a gap in the log`);
      return;
    }
    let index = from;
    for (const m of marks) {
      if (index > l.base) this.place(node, l, index, m);
      index++;
    }
    this.checkPendingLeader(node, l, from, marks);
  }

  /** Puts `m` at `index` of `l`, truncating what follows (Raft's conflict rule), after the matching checks. */
  private place(node: NodeId, l: TrackedLog, index: number, m: EntryMark): void {
    l.marks.length = index - l.base - 1;
    const prevTerm = this.termAt(l, index - 1);
    l.marks.push(m);
    this.matchEntry(node, index, m, prevTerm);
  }

  /** Log matching: one content and one predecessor term per (index, term), cluster-wide. */
  private matchEntry(node: NodeId, index: number, m: EntryMark, prevTerm: number | null): void {
    this.checks++;
    const key = `${index}:${m.term}`;
    const seen = this.entries.get(key);
    if (seen === undefined) {
      this.entries.set(key, { digest: m.digest, prevTerm, node });
      return;
    }
    if (seen.digest === WITNESS_COPY_DIGEST && m.digest !== WITNESS_COPY_DIGEST)
      seen.digest = m.digest; // the content, once seen
    else if (seen.digest !== m.digest && m.digest !== WITNESS_COPY_DIGEST) {
      this.fail(
        `log matching: entry ${index} of term ${m.term} is ${m.digest} on node ${node} but ${seen.digest} on node ${seen.node}`,
      );
      return;
    }
    if (seen.prevTerm === null) seen.prevTerm = prevTerm;
    else if (prevTerm !== null && prevTerm !== seen.prevTerm) {
      this.fail(
        `log matching: entry ${index} of term ${m.term} follows an entry of term ${prevTerm} on node ${node} but of term ${seen.prevTerm} on node ${seen.node}: the logs differ before it`,
      );
    }
  }

  private onRecovered(node: NodeId, snap: number, ents: string, applied: number, hash: string): void {
    const marks = parseEntries(ents);
    if (marks === null || !Number.isSafeInteger(snap) || snap < 0) {
      this.fail(`node ${node}: malformed recovered event (snap=${snap} ents=${ents})`);
      return;
    }
    this.pendingLeaders.delete(node);
    const l: TrackedLog = { base: snap, baseTerm: snap === 0 ? 0 : null, marks: [] };
    this.logs.set(node, l);
    let index = snap + 1;
    for (const m of marks) this.place(node, l, index++, m);
    if (Number.isSafeInteger(applied) && applied > 0) this.checkHash(node, applied, hash, 'after restart');
  }

  private onRestore(node: NodeId, index: number, term: number, hash: string): void {
    this.logs.set(node, { base: index, baseTerm: term, marks: [] });
    const a = this.applied.get(index);
    if (a !== undefined && a.term !== term) {
      this.fail(
        `state machine safety: node ${node} installed a snapshot ending at ${index} in term ${term}, but node ${a.node} applied an entry of term ${a.term} there`,
      );
      return;
    }
    this.checkHash(node, index, hash, 'after installing a snapshot');
  }

  // ---------------------------------------------------------------------------------------------
  // Applies

  private onApply(node: NodeId, index: number, term: number, digest: string, hash: string, nodeTerm: number): void {
    // Without a node term (older traces), assume the entry's own term: the strictest bound.
    const committedBy = Number.isSafeInteger(nodeTerm) && nodeTerm >= term ? nodeTerm : term;
    this.checks++;
    const l = this.log(node);
    const held = this.markAt(l, index);
    if (index > l.base && (held === undefined || held.term !== term || held.digest !== digest)) {
      this.fail(
        `state machine safety: node ${node} applied entry ${index} (term ${term}, ${digest}) that its durable log does not hold (it holds ${held === undefined ? 'nothing' : `term ${held.term}, ${held.digest}`})`,
      );
      return;
    }
    const a = this.applied.get(index);
    if (digest === WITNESS_COPY_DIGEST) {
      // A witness "applies" its copy (it applies nothing): only the term can be compared.
      if (a !== undefined && a.term !== term)
        this.fail(
          `state machine safety: witness ${node} applied entry ${index} of term ${term} but node ${a.node} applied term ${a.term} there`,
        );
      return;
    }
    if (a === undefined) {
      this.applied.set(index, { term, digest, node, committedBy });
      if (index > this.maxApplied) this.maxApplied = index;
    } else if (a.term !== term || a.digest !== digest) {
      this.fail(
        `state machine safety: node ${node} applied entry ${index} of term ${term} (${digest}) but node ${a.node} applied term ${a.term} (${a.digest}) there`,
      );
      return;
    } else a.committedBy = Math.min(a.committedBy, committedBy);
    this.checkHash(node, index, hash, 'after applying');
  }

  private checkHash(node: NodeId, index: number, hash: string, when: string): void {
    if (hash === NO_STATE_HASH) return; // a witness holds no state
    const h = this.hashes.get(index);
    if (h === undefined) {
      this.hashes.set(index, { hash, node });
      return;
    }
    if (h.hash !== hash)
      this.fail(
        `state machine safety: node ${node} has state hash ${hash} at applied index ${index} ${when}, node ${h.node} had ${h.hash}`,
      );
  }

  // ---------------------------------------------------------------------------------------------
  // Elections

  private onBecomeLeader(node: NodeId, term: number): void {
    this.checks++;
    const other = this.leaders.get(term);
    if (other !== undefined && other !== node) {
      this.fail(`election safety: nodes ${other} and ${node} both became leader in term ${term}`);
      return;
    }
    this.leaders.set(term, node);
    this.pendingLeaders.set(node, term);
  }

  private onGrant(voter: NodeId, candidate: NodeId, term: number): void {
    const key = `${term}:${candidate}`;
    let set = this.grants.get(key);
    if (set === undefined) {
      set = new Set();
      this.grants.set(key, set);
    }
    set.add(voter);
  }

  /**
   * Election quorum: the winner's grants (plus itself) hold a quorum, by the core's own counting
   * (expected votes, tie-breaker, joint sides), of the configuration it had applied and of the
   * latest one its log implies: it must have counted with both.
   */
  private onElected(node: NodeId, term: number, configText: string, latestText: string): void {
    const applied = parseConfig(configText);
    const latest = parseConfig(latestText);
    if (applied === null || latest === null) {
      this.fail(`node ${node}: malformed elected event (config=${configText} latest=${latestText})`);
      return;
    }
    const granted = new Set<NodeId>(this.grants.get(`${term}:${node}`) ?? []);
    granted.add(node);
    this.checks++;
    for (const [what, c, text] of [
      ['applied', applied, configText],
      ['latest', latest, latestText],
    ] as const) {
      if (hasQuorum(quorumConfigOf(c), granted)) continue;
      const who = [...granted].sort((a, b) => a - b).join(',');
      this.fail(
        `election quorum: node ${node} became leader of term ${term} with votes from {${who}}, not a quorum of its ${what} configuration ${text}`,
      );
      break;
    }
    // Grants of finished elections are no longer needed.
    for (const key of [...this.grants.keys()]) if (Number(key.split(':')[0]) <= term - 64) this.grants.delete(key);
  }

  /**
   * Leader completeness at the new leader's first persisted entry of its own term (index k): every
   * entry of an earlier term applied anywhere so far is in its log at the same index, below k. Entries of later terms are not
   * its business: a newer leader may already have committed them.
   */
  private checkPendingLeader(node: NodeId, l: TrackedLog, from: number, marks: readonly EntryMark[]): void {
    const term = this.pendingLeaders.get(node);
    if (term === undefined) return;
    const at = marks.findIndex((m) => m.term === term);
    if (at < 0) return;
    this.pendingLeaders.delete(node);
    const k = from + at;
    this.checks++;
    for (let i = l.base + 1; i <= this.maxApplied; i++) {
      const a = this.applied.get(i);
      if (a === undefined || a.term >= term || a.committedBy >= term) continue;
      if (i >= k) {
        this.fail(
          `leader completeness: node ${node}, leader of term ${term}, appends its first entry at ${k}, but node ${a.node} applied entry ${i} of the earlier term ${a.term}, committed by term ${a.committedBy}`,
        );
        return;
      }
      const m = this.markAt(l, i);
      if (m === undefined || m.term !== a.term || m.digest !== a.digest) {
        this.fail(
          `leader completeness: node ${node}, leader of term ${term}, lacks applied entry ${i} (term ${a.term}, ${a.digest}; applied by node ${a.node}); it holds ${m === undefined ? 'nothing' : `term ${m.term}, ${m.digest}`}`,
        );
        return;
      }
    }
  }
}
