/**
 * A Porcupine-style linearizability checker (Wing & Gong's search with Lowe's memoisation, as in
 * Porcupine and Knossos' WGL checker), written for cohort's simulator and tests.
 *
 * Input: a history of operations, each with the client that issued it, its input, its output and
 * the real-time interval [call, return] in which it ran, plus a sequential model of the object.
 * Question: is there a total order of the operations that (1) respects real time (if A returned
 * before B was called, A comes first) and (2) is a legal sequential run of the model with the
 * recorded outputs? See docs/linearizability.md for the history format and how to read a report.
 *
 * The search, per partition:
 * - Operations are numbered in call order; calls and returns are events sorted by time into a
 *   doubly linked list.
 * - Walking from the head, a call may be linearized next if the model accepts its output from the
 *   current state; it is then lifted (its call and return leave the list) and the walk restarts.
 * - Meeting a return means the operation it closes cannot be linearized before it: undo the last
 *   choice (pop the explicit stack, put the entries back) and try the next candidate.
 * - A cache of (set of linearized operations as a bitset, model state) prunes configurations
 *   already explored: the rest of the search from there does not depend on how we got there.
 * There is no recursion: the stack is an array as deep as the partition has operations.
 *
 * Operations whose outcome is unknown (no return time, or `Infinity`) have no return event, so
 * nothing ever forces them: the search may linearize them at any point after their call, with the
 * model deciding their effect from its state (their output is not checked), or never.
 *
 * Budgets make it total: a step budget (deterministic, so a simulator seed replays to the same
 * verdict), a memo-cache byte budget and an optional deadline. Running out gives 'unknown', never
 * 'ok'. The checker is pure (no clock unless you pass one) and raises `LinearizabilityError` only
 * for a malformed history.
 */
import { assert } from '../../lib/assert.js';
import { CohortError } from '../../lib/errors.js';
import { LIN_CACHE_BYTES_DEFAULT, LIN_HISTORY_OPS_MAX, LIN_STEPS_DEFAULT } from '../../constants.js';

// ------------------------------------------------------------------------------------------------
// Public types

/**
 * One operation of a history. Times are numbers on one clock shared by all clients (simulator
 * ticks, or monotonic nanoseconds); only their order matters. `return` undefined or `Infinity`
 * means the outcome is unknown (the client timed out or crashed): `output` is then ignored.
 */
export interface Operation<I, O> {
  readonly clientId: number;
  readonly input: I;
  readonly output?: O;
  readonly call: number;
  readonly return?: number;
}

/** What a model's `step` returns: whether the output is legal from `state`, and the next state. */
export interface StepResult<S> {
  readonly ok: boolean;
  readonly state: S;
}

/**
 * A sequential specification of an object.
 * - `step` must be a pure function. `output` is `undefined` for an operation whose outcome is
 *   unknown: the model then applies the input and accepts any output, returning `ok: false` only
 *   when the input itself cannot happen in `state` (e.g. releasing a mutex that is free).
 * - `partition` (optional) splits a history into independent sub-histories (P-compositionality:
 *   e.g. one per key). It must return the same operation objects, each exactly once.
 * - `equal` decides when two states are the same for memoisation; `hash` (optional, 32-bit,
 *   consistent with `equal`) spreads them in the cache.
 */
export interface Model<S, I, O> {
  readonly name: string;
  init(): S;
  step(state: S, input: I, output: O | undefined): StepResult<S>;
  partition?(history: readonly Operation<I, O>[]): (readonly Operation<I, O>[])[];
  equal(a: S, b: S): boolean;
  hash?(state: S): number;
  describeOperation(input: I, output: O | undefined): string;
  describeState(state: S): string;
}

/** Limits of one check. Every limit reached gives verdict 'unknown'. */
export interface CheckOptions {
  /** Search steps (model steps plus backtracks) over the whole history. Default `LIN_STEPS_DEFAULT`. */
  readonly stepsMax?: number;
  /** Memo-cache size per partition, in estimated bytes. Default `LIN_CACHE_BYTES_DEFAULT`. */
  readonly cacheBytesMax?: number;
  /** Optional wall-clock limit: `now()` in ms is read every 1024 steps and compared with `atMs`. */
  readonly deadline?: { readonly now: () => number; readonly atMs: number };
}

/** An operation as it appears in a report: its index in the input history and a readable line. */
export interface ReportedOperation {
  /** Index in the history passed to `checkLinearizability`. */
  readonly index: number;
  readonly clientId: number;
  readonly call: number;
  /** `null` for an unknown outcome. */
  readonly return: number | null;
  /** e.g. `#12 client 3 [100, 140] get(k) -> "v1"` */
  readonly text: string;
}

/** Why a history is not linearizable, as far as the search got. */
export interface IllegalReport {
  /** Which partition (0-based, in the model's partition order) failed, and how many ops it has. */
  readonly partitionIndex: number;
  readonly partitionSize: number;
  /** The longest linearizable prefix found: operations in linearization order, with the state after each. */
  readonly prefix: readonly { readonly op: ReportedOperation; readonly stateAfter: string }[];
  /** The model state after the prefix. */
  readonly stateAfterPrefix: string;
  /** The first operation whose response could not be explained after that prefix. */
  readonly stuck: ReportedOperation;
  /** Operations still pending (called, not linearized) at that point; none of them could go next. */
  readonly candidates: readonly ReportedOperation[];
  /** The whole report as readable lines. */
  readonly text: string;
}

/** Counters of one check, for logs and tuning. */
export interface CheckStats {
  readonly partitions: number;
  readonly operations: number;
  readonly steps: number;
  readonly cacheEntries: number;
}

/** The verdict. 'unknown' means a budget ran out: nothing was proven either way. */
export type CheckResult =
  | { readonly verdict: 'ok'; readonly stats: CheckStats }
  | { readonly verdict: 'illegal'; readonly stats: CheckStats; readonly report: IllegalReport }
  | {
      readonly verdict: 'unknown';
      readonly stats: CheckStats;
      readonly reason: 'steps' | 'cache' | 'deadline';
      readonly message: string;
    };

/** Raised for a malformed history (code `LIN_BAD_HISTORY`): a harness bug, not a verdict. */
export class LinearizabilityError extends CohortError {
  override readonly name = 'LinearizabilityError';
}

// ------------------------------------------------------------------------------------------------
// History validation and events

function badHistory(index: number, why: string): LinearizabilityError {
  return new LinearizabilityError(
    'LIN_BAD_HISTORY',
    `history operation #${index} is malformed: ${why}; fix the recorder that built the history`,
  );
}

function isUnknown(op: Operation<unknown, unknown>): boolean {
  return op.return === undefined || op.return === Infinity;
}

function validateHistory<I, O>(history: readonly Operation<I, O>[]): void {
  if (history.length > LIN_HISTORY_OPS_MAX) {
    throw new LinearizabilityError(
      'LIN_BAD_HISTORY',
      `history has ${history.length} operations, more than LIN_HISTORY_OPS_MAX (${LIN_HISTORY_OPS_MAX}); check a shorter run`,
    );
  }
  history.forEach((op, i) => {
    if (!Number.isFinite(op.call)) throw badHistory(i, `call time ${op.call} is not a finite number`);
    if (!Number.isSafeInteger(op.clientId)) throw badHistory(i, `clientId ${op.clientId} is not an integer`);
    if (isUnknown(op)) return;
    const ret = op.return ?? NaN;
    if (!Number.isFinite(ret)) throw badHistory(i, `return time ${ret} is neither finite, undefined nor Infinity`);
    if (ret < op.call) throw badHistory(i, `return time ${ret} is before call time ${op.call}`);
    if (op.output === undefined)
      throw badHistory(i, 'it returned but has no output (record an unknown outcome with return: undefined)');
  });
}

/**
 * The event list of one partition as parallel arrays. Node 0 is the head sentinel; nodes
 * 1..events are calls and returns in time order; -1 is "none".
 */
interface EventList {
  readonly next: Int32Array;
  readonly prev: Int32Array;
  /** Local operation id of each node. */
  readonly opOf: Int32Array;
  /** For a call node, its return node (-1 when the outcome is unknown); -1 for a return node. */
  readonly matchOf: Int32Array;
  readonly isCall: Uint8Array;
}

function buildEventList(ops: readonly Operation<unknown, unknown>[]): EventList {
  const events: { time: number; call: boolean; op: number }[] = [];
  ops.forEach((op, i) => {
    events.push({ time: op.call, call: true, op: i });
    if (!isUnknown(op)) events.push({ time: op.return ?? 0, call: false, op: i });
  });
  // Ties: calls before returns, so operations that merely touch count as concurrent (the
  // permissive reading: the checker never calls a history illegal because of a clock tie).
  events.sort((a, b) => a.time - b.time || Number(b.call) - Number(a.call) || a.op - b.op);
  const size = events.length + 1;
  const list: EventList = {
    next: new Int32Array(size),
    prev: new Int32Array(size),
    opOf: new Int32Array(size).fill(-1),
    matchOf: new Int32Array(size).fill(-1),
    isCall: new Uint8Array(size),
  };
  const callNode = new Int32Array(ops.length);
  events.forEach((e, i) => {
    const node = i + 1;
    list.prev[node] = node - 1;
    list.next[node - 1] = node;
    list.opOf[node] = e.op;
    list.isCall[node] = e.call ? 1 : 0;
    if (e.call) callNode[e.op] = node;
    else list.matchOf[callNode[e.op] ?? 0] = node;
  });
  list.next[size - 1] = -1;
  return list;
}

function unlink(l: EventList, node: number): void {
  const p = l.prev[node] ?? -1;
  const n = l.next[node] ?? -1;
  l.next[p] = n;
  if (n !== -1) l.prev[n] = p;
}

function relink(l: EventList, node: number): void {
  const p = l.prev[node] ?? -1;
  const n = l.next[node] ?? -1;
  l.next[p] = node;
  if (n !== -1) l.prev[n] = node;
}

/** Removes a call and its return (dancing links: `unlift` in reverse order restores exactly). */
function lift(l: EventList, call: number): void {
  unlink(l, call);
  const ret = l.matchOf[call] ?? -1;
  if (ret !== -1) unlink(l, ret);
}

function unlift(l: EventList, call: number): void {
  const ret = l.matchOf[call] ?? -1;
  if (ret !== -1) relink(l, ret);
  relink(l, call);
}

// ------------------------------------------------------------------------------------------------
// The set of linearized operations, and the memo cache of (set, state), bounded in bytes.

/** Estimated bytes per cache entry besides its bitset words: the entry object, array slot and a small state. */
const CACHE_ENTRY_OVERHEAD_BYTES = 128;
const FULL_WORD = 0xffffffff;

function zobrist(op: number): number {
  // A fixed pseudo-random 32-bit value per operation (murmur3's fmix32 of op + 1).
  let h = (op + 1) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/**
 * The linearized operations as a bitset with an incremental (Zobrist) hash. Operations are
 * numbered in call order, so in a long history the set is "everything up to about now, plus a few
 * concurrent operations": `fullWords` leading words are all ones and nothing is set past
 * `highWord`. The cache stores only the words in between, which keeps an entry's size
 * proportional to the concurrency, not to the history length.
 */
class LinearizedSet {
  readonly words: Uint32Array;
  hash = 0;
  /** Leading words that are all ones. */
  fullWords = 0;
  /** Highest word with a bit set (-1 when empty). */
  highWord = -1;

  constructor(size: number) {
    this.words = new Uint32Array(Math.ceil(size / 32));
  }

  add(op: number): void {
    const w = op >>> 5;
    this.words[w] = ((this.words[w] ?? 0) | (1 << (op & 31))) >>> 0;
    this.hash = (this.hash ^ zobrist(op)) >>> 0;
    if (w > this.highWord) this.highWord = w;
    while (this.fullWords < this.words.length && this.words[this.fullWords] === FULL_WORD) this.fullWords++;
  }

  remove(op: number): void {
    const w = op >>> 5;
    this.words[w] = ((this.words[w] ?? 0) & ~(1 << (op & 31))) >>> 0;
    this.hash = (this.hash ^ zobrist(op)) >>> 0;
    if (w < this.fullWords) this.fullWords = w;
    while (this.highWord >= 0 && this.words[this.highWord] === 0) this.highWord--;
  }

  /** Number of words between the full prefix and the highest set word. */
  get tailLength(): number {
    return Math.max(0, this.highWord + 1 - this.fullWords);
  }

  /** True when `tail` (stored with `fullWords`) describes this set. */
  matches(fullWords: number, tail: Uint32Array): boolean {
    if (fullWords !== this.fullWords || tail.length !== this.tailLength) return false;
    for (let i = 0; i < tail.length; i++) if (tail[i] !== this.words[fullWords + i]) return false;
    return true;
  }

  tail(): Uint32Array {
    return this.words.slice(this.fullWords, this.fullWords + this.tailLength);
  }
}

class MemoCache<S> {
  private readonly buckets = new Map<number, { fullWords: number; tail: Uint32Array; state: S }[]>();
  entries = 0;
  bytes = 0;

  constructor(
    private readonly equal: (a: S, b: S) => boolean,
    private readonly bytesMax: number,
  ) {}

  /** Adds (set, state) unless present. Returns 'added', 'seen', or 'full' (the budget ran out). */
  add(key: number, set: LinearizedSet, state: S): 'added' | 'seen' | 'full' {
    const bucket = this.buckets.get(key);
    if (bucket !== undefined) {
      for (const e of bucket) if (set.matches(e.fullWords, e.tail) && this.equal(e.state, state)) return 'seen';
    }
    const cost = set.tailLength * 4 + CACHE_ENTRY_OVERHEAD_BYTES;
    if (this.bytes + cost > this.bytesMax) return 'full';
    const entry = { fullWords: set.fullWords, tail: set.tail(), state };
    if (bucket === undefined) this.buckets.set(key, [entry]);
    else bucket.push(entry);
    this.entries++;
    this.bytes += cost;
    return 'added';
  }
}

// ------------------------------------------------------------------------------------------------
// The search over one partition

type PartitionOutcome =
  | { readonly kind: 'ok' }
  | {
      readonly kind: 'illegal';
      readonly prefix: readonly number[];
      readonly stuck: number;
      readonly candidates: readonly number[];
    }
  | { readonly kind: 'unknown'; readonly reason: 'steps' | 'cache' | 'deadline' };

interface Budget {
  stepsLeft: number;
  steps: number;
  cacheEntries: number;
  readonly cacheBytesMax: number;
  readonly deadline: CheckOptions['deadline'];
}

/** The linearized operations as a persistent list (newest first): recording a prefix is O(1). */
interface Chain {
  readonly op: number;
  readonly parent: Chain | null;
}

function chainToArray(chain: Chain | null): number[] {
  const out: number[] = [];
  for (let c = chain; c !== null; c = c.parent) out.push(c.op);
  return out.reverse();
}

/** Where the deepest configuration got stuck: filled the first time a return is met after a new deepest point. */
interface Deepest {
  depth: number;
  chain: Chain | null;
  stuck: number;
  candidates: number[];
}

/** Operations called and not linearized before `stopNode` in the list: the ones tried and refused. */
function pendingBefore(l: EventList, stopNode: number): number[] {
  const out: number[] = [];
  for (let n = l.next[0] ?? -1; n !== -1 && n !== stopNode; n = l.next[n] ?? -1)
    if (l.isCall[n] === 1) out.push(l.opOf[n] ?? -1);
  return out;
}

function outOfTime(budget: Budget): boolean {
  return budget.deadline !== undefined && (budget.steps & 1023) === 0 && budget.deadline.now() >= budget.deadline.atMs;
}

/**
 * The search over one partition: one object per partition, driven by `run`. Fields are the
 * search's whole state, so each method is a small step of the loop; there is no recursion.
 */
class PartitionSearch<S, I, O> {
  private readonly l: EventList;
  private readonly outputs: readonly (O | undefined)[];
  private readonly linearized: LinearizedSet;
  private readonly cache: MemoCache<S>;
  private readonly stackNode: Int32Array;
  private readonly stackState: S[] = [];
  private readonly deepest: Deepest = { depth: 0, chain: null, stuck: -1, candidates: [] };
  private chain: Chain | null = null;
  private depth = 0;
  private state: S;

  constructor(
    private readonly model: Model<S, I, O>,
    private readonly ops: readonly Operation<I, O>[],
    private readonly budget: Budget,
  ) {
    this.l = buildEventList(ops);
    this.outputs = ops.map((op) => (isUnknown(op) ? undefined : op.output));
    this.linearized = new LinearizedSet(ops.length);
    this.cache = new MemoCache<S>((a, b) => model.equal(a, b), budget.cacheBytesMax);
    this.stackNode = new Int32Array(ops.length);
    this.state = model.init();
  }

  /** Runs to a verdict. Deterministic for a given input and budget. */
  run(): PartitionOutcome {
    const l = this.l;
    let node = l.next[0] ?? -1;
    try {
      // Reaching the end of the list means every operation that returned has been linearized
      // (only calls of operations with unknown outcomes can remain, and they are optional).
      while (node !== -1) {
        this.budget.steps++;
        if (--this.budget.stepsLeft < 0) return { kind: 'unknown', reason: 'steps' };
        if (outOfTime(this.budget)) return { kind: 'unknown', reason: 'deadline' };
        if (l.isCall[node] === 1) {
          const next = this.tryLinearize(node);
          if (next === 'full') return { kind: 'unknown', reason: 'cache' };
          node = next;
          continue;
        }
        // A return: the operation it closes cannot be linearized before it from here.
        this.noteStuck(node);
        if (this.depth === 0)
          return {
            kind: 'illegal',
            prefix: chainToArray(this.deepest.chain),
            stuck: this.deepest.stuck,
            candidates: this.deepest.candidates,
          };
        node = this.backtrack();
      }
      return { kind: 'ok' };
    } finally {
      this.budget.cacheEntries += this.cache.entries;
    }
  }

  /** Tries to linearize the call at `node` next. Returns the node to visit next, or 'full'. */
  private tryLinearize(node: number): number | 'full' {
    const l = this.l;
    const op = l.opOf[node] ?? -1;
    const r = this.model.step(this.state, (this.ops[op] as Operation<I, O>).input, this.outputs[op]);
    if (!r.ok) return l.next[node] ?? -1;
    const set = this.linearized;
    set.add(op);
    const added = this.cache.add(
      (set.hash ^ Math.imul(this.model.hash?.(r.state) ?? 0, 0x9e3779b1)) >>> 0,
      set,
      r.state,
    );
    if (added !== 'added') {
      set.remove(op);
      return added === 'full' ? 'full' : (l.next[node] ?? -1);
    }
    this.stackNode[this.depth] = node;
    this.stackState[this.depth] = this.state;
    this.depth++;
    this.state = r.state;
    this.chain = { op, parent: this.chain };
    lift(l, node);
    if (this.depth > this.deepest.depth) {
      this.deepest.depth = this.depth;
      this.deepest.chain = this.chain;
      this.deepest.stuck = -1;
    }
    return l.next[0] ?? -1;
  }

  /** Records what blocked the deepest configuration, the first time a return is met there. */
  private noteStuck(returnNode: number): void {
    if (this.deepest.stuck !== -1) return;
    assert(this.depth === this.deepest.depth, 'the first return after a new deepest point is met at that point');
    const op = this.l.opOf[returnNode] ?? -1;
    this.deepest.stuck = op;
    this.deepest.candidates = pendingBefore(this.l, returnNode).filter((c) => c !== op);
  }

  /** Undoes the last linearization and returns the node after it (the next candidate). */
  private backtrack(): number {
    this.depth--;
    const node = this.stackNode[this.depth] ?? -1;
    this.state = this.stackState[this.depth] as S;
    const undone = this.l.opOf[node] ?? -1;
    this.linearized.remove(undone);
    this.chain = this.chain?.parent ?? null;
    unlift(this.l, node);
    return this.l.next[node] ?? -1;
  }
}

// ------------------------------------------------------------------------------------------------
// Reports

function describeOp<S, I, O>(model: Model<S, I, O>, op: Operation<I, O>, index: number): ReportedOperation {
  const unknown = isUnknown(op);
  const ret = unknown ? null : (op.return ?? null);
  const text = `#${index} client ${op.clientId} [${op.call}, ${ret ?? '?'}] ${model.describeOperation(op.input, unknown ? undefined : op.output)}`;
  return { index, clientId: op.clientId, call: op.call, return: ret, text };
}

function buildReport<S, I, O>(
  model: Model<S, I, O>,
  part: readonly Operation<I, O>[],
  indexOf: (op: Operation<I, O>) => number,
  partitionIndex: number,
  outcome: Extract<PartitionOutcome, { kind: 'illegal' }>,
): IllegalReport {
  const opAt = (local: number): Operation<I, O> => part[local] as Operation<I, O>;
  const reported = (local: number): ReportedOperation => describeOp(model, opAt(local), indexOf(opAt(local)));
  let state = model.init();
  const prefix = outcome.prefix.map((local) => {
    const op = opAt(local);
    const r = model.step(state, op.input, isUnknown(op) ? undefined : op.output);
    assert(r.ok, 'a prefix the search accepted replays');
    state = r.state;
    return { op: reported(local), stateAfter: model.describeState(state) };
  });
  const stuck = reported(outcome.stuck);
  const candidates = outcome.candidates.map(reported);
  const lines = [
    `not linearizable (model ${model.name}, partition ${partitionIndex}, ${part.length} operations)`,
    `longest linearizable prefix: ${prefix.length} of ${part.length} operations (the deepest order the search found; no order gets further)`,
    ...prefix.map((p, i) => `  ${i + 1}. ${p.op.text}    => ${p.stateAfter}`),
    `state after the prefix: ${model.describeState(state)}`,
    `cannot linearize: ${stuck.text}`,
    `  no order found places it (or anything it depends on) before it returned at ${stuck.return ?? '?'}`,
    candidates.length === 0
      ? '  no other operation was pending at that point'
      : '  the other pending operations could not go next either:',
    ...candidates.map((c) => `  - ${c.text}`),
  ];
  return {
    partitionIndex,
    partitionSize: part.length,
    prefix,
    stateAfterPrefix: model.describeState(state),
    stuck,
    candidates,
    text: lines.join('\n'),
  };
}

// ------------------------------------------------------------------------------------------------
// Entry point

function partitionsOf<S, I, O>(
  model: Model<S, I, O>,
  history: readonly Operation<I, O>[],
): (readonly Operation<I, O>[])[] {
  if (model.partition === undefined) return [history];
  const parts = model.partition(history);
  const total = parts.reduce((n, p) => n + p.length, 0);
  assert(total === history.length, `model ${model.name}: partition must return every operation exactly once`);
  return parts;
}

/**
 * Checks `history` against `model`. Partitions are checked in order; the first illegal one is
 * reported. A budget that runs out stops the check with 'unknown' (a partition not checked is not
 * assumed linearizable). Throws `LinearizabilityError` only for a malformed history.
 */
export function checkLinearizability<S, I, O>(
  model: Model<S, I, O>,
  history: readonly Operation<I, O>[],
  options: CheckOptions = {},
): CheckResult {
  validateHistory(history);
  const stepsMax = options.stepsMax ?? LIN_STEPS_DEFAULT;
  const cacheBytesMax = options.cacheBytesMax ?? LIN_CACHE_BYTES_DEFAULT;
  assert(Number.isSafeInteger(stepsMax) && stepsMax >= 0, 'stepsMax must be a non-negative integer');
  assert(cacheBytesMax > 0, 'cacheBytesMax must be positive');
  const indexes = new Map<Operation<I, O>, number>();
  history.forEach((op, i) => indexes.set(op, i));
  const indexOf = (op: Operation<I, O>): number => {
    const i = indexes.get(op);
    assert(i !== undefined, `model ${model.name}: partition must return the history's own operation objects`);
    return i;
  };
  const parts = partitionsOf(model, history);
  const budget: Budget = { stepsLeft: stepsMax, steps: 0, cacheEntries: 0, cacheBytesMax, deadline: options.deadline };
  const stats = (): CheckStats => ({
    partitions: parts.length,
    operations: history.length,
    steps: budget.steps,
    cacheEntries: budget.cacheEntries,
  });
  for (const [p, unordered] of parts.entries()) {
    // Number operations in call order (stable), which keeps the cache's bitsets short (LinearizedSet).
    const part = [...unordered].sort((a, b) => a.call - b.call);
    const outcome = new PartitionSearch(model, part, budget).run();
    switch (outcome.kind) {
      case 'ok':
        continue;
      case 'illegal':
        return { verdict: 'illegal', stats: stats(), report: buildReport(model, part, indexOf, p, outcome) };
      case 'unknown':
        return {
          verdict: 'unknown',
          stats: stats(),
          reason: outcome.reason,
          message: unknownMessage(outcome.reason, p, parts.length, { stepsMax, cacheBytesMax }),
        };
    }
  }
  return { verdict: 'ok', stats: stats() };
}

function unknownMessage(
  reason: 'steps' | 'cache' | 'deadline',
  partition: number,
  partitions: number,
  limits: { stepsMax: number; cacheBytesMax: number },
): string {
  const where = `while checking partition ${partition} of ${partitions}`;
  switch (reason) {
    case 'steps':
      return `search budget of ${limits.stepsMax} steps ran out ${where}: nothing was proven; raise stepsMax, or shorten or partition the history`;
    case 'cache':
      return `memo cache reached ${limits.cacheBytesMax} bytes ${where}: nothing was proven; raise cacheBytesMax, or reduce concurrency in the workload`;
    case 'deadline':
      return `deadline passed ${where}: nothing was proven; allow more time or check a shorter history`;
  }
}
