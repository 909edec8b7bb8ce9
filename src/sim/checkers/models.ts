/**
 * Sequential models for the linearizability checker: a register, a compare-and-set register, a
 * mutex (for the DLM), and a key-value store with the KV state machine's single-key semantics,
 * partitioned by key.
 *
 * Every model follows the `Model` contract: `step` is pure; an `undefined` output means the
 * outcome is unknown, so the model applies the input and accepts whatever happened; an output of
 * the wrong kind for its input is a bug in the history recorder and asserts.
 */
import { assert, assertNever } from '../../lib/assert.js';
import type { KvCommand, KvOutput } from '../../log/kv-state-machine.js';
import type { Model, Operation, StepResult } from './linearizability.js';

/** 32-bit FNV-1a of a string's UTF-16 code units (cheap; for memo-cache buckets only). */
function hashString(s: string, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

function show(v: string | number | null): string {
  return v === null ? 'nil' : JSON.stringify(v);
}

function sameKind(input: { readonly type: string }, output: { readonly type: string } | undefined): void {
  assert(
    output === undefined || output.type === input.type,
    `history recorder bug: a ${input.type} operation has a ${output?.type ?? ''} output`,
  );
}

// ------------------------------------------------------------------------------------------------
// Register and CAS register

/** A register value; `null` is the initial, never-written value. */
export type RegisterValue = string | number | null;

/** Register operations; `cas` exists only for the CAS register model. */
export type RegisterInput =
  | { readonly type: 'read' }
  | { readonly type: 'write'; readonly value: RegisterValue }
  | { readonly type: 'cas'; readonly expected: RegisterValue; readonly value: RegisterValue };

/** Register outputs, by input type. */
export type RegisterOutput =
  | { readonly type: 'read'; readonly value: RegisterValue }
  | { readonly type: 'write' }
  | { readonly type: 'cas'; readonly succeeded: boolean };

function describeRegisterOp(input: RegisterInput, output: RegisterOutput | undefined): string {
  const result = (text: string): string => (output === undefined ? `${text} -> ?` : text);
  switch (input.type) {
    case 'read':
      return result(output?.type === 'read' ? `read() -> ${show(output.value)}` : 'read()');
    case 'write':
      return result(`write(${show(input.value)})`);
    case 'cas':
      return result(
        `cas(${show(input.expected)} -> ${show(input.value)})${output?.type === 'cas' ? ` -> ${output.succeeded ? 'ok' : 'failed'}` : ''}`,
      );
    default:
      return assertNever(input, 'register input');
  }
}

function stepRegister(
  state: RegisterValue,
  input: RegisterInput,
  output: RegisterOutput | undefined,
  allowCas: boolean,
): StepResult<RegisterValue> {
  sameKind(input, output);
  switch (input.type) {
    case 'read':
      return { ok: output?.type !== 'read' || output.value === state, state };
    case 'write':
      return { ok: true, state: input.value };
    case 'cas': {
      assert(allowCas, 'the plain register model has no cas; use casRegisterModel');
      const holds = state === input.expected;
      const ok = output?.type !== 'cas' || output.succeeded === holds;
      return { ok, state: holds ? input.value : state };
    }
    default:
      return assertNever(input, 'register input');
  }
}

function registerModelOf(name: string, allowCas: boolean): Model<RegisterValue, RegisterInput, RegisterOutput> {
  return {
    name,
    init: () => null,
    step: (state, input, output) => stepRegister(state, input, output, allowCas),
    equal: (a, b) => a === b,
    hash: (s) => (s === null ? 0 : hashString(`${typeof s}:${s}`)),
    describeOperation: describeRegisterOp,
    describeState: (s) => `value=${show(s)}`,
  };
}

/** A single read/write register, initially `null`. */
export const registerModel: Model<RegisterValue, RegisterInput, RegisterOutput> = registerModelOf('register', false);

/** A register with compare-and-set: `cas` succeeds, and writes, exactly when the value equals `expected`. */
export const casRegisterModel: Model<RegisterValue, RegisterInput, RegisterOutput> = registerModelOf(
  'cas-register',
  true,
);

// ------------------------------------------------------------------------------------------------
// Mutex (Knossos' mutex, with owners and try-locks)

/** Who holds the mutex (`null`: free). */
export type MutexState = number | null;

/** Mutex operations; `owner` is the client (or lock owner) id. */
export type MutexInput =
  { readonly type: 'acquire'; readonly owner: number } | { readonly type: 'release'; readonly owner: number };

/**
 * Mutex outputs. `granted: false` is a try-lock refused because the mutex was held (legal only
 * while someone holds it); a blocking acquire that returned is `granted: true`.
 */
export type MutexOutput = { readonly type: 'acquire'; readonly granted: boolean } | { readonly type: 'release' };

function stepMutex(state: MutexState, input: MutexInput, output: MutexOutput | undefined): StepResult<MutexState> {
  sameKind(input, output);
  switch (input.type) {
    case 'acquire':
      if (output?.type === 'acquire' && !output.granted) return { ok: state !== null, state };
      // Granted (or unknown, which we may linearize only as a grant: a refusal changes nothing).
      return { ok: state === null, state: state === null ? input.owner : state };
    case 'release':
      return { ok: state === input.owner, state: null };
    default:
      return assertNever(input, 'mutex input');
  }
}

/**
 * A mutex: acquire when free holds it; acquire when held is illegal (unless it is a refused
 * try-lock); release by the holder frees it; release when free or by another owner is illegal.
 */
export const mutexModel: Model<MutexState, MutexInput, MutexOutput> = {
  name: 'mutex',
  init: () => null,
  step: stepMutex,
  equal: (a, b) => a === b,
  hash: (s) => (s === null ? 0 : (s + 1) >>> 0),
  describeOperation: (input, output) => {
    const outcome = output === undefined ? ' -> ?' : output.type === 'acquire' && !output.granted ? ' -> refused' : '';
    return `${input.type}(owner ${input.owner})${outcome}`;
  },
  describeState: (s) => (s === null ? 'free' : `held by ${s}`),
};

// ------------------------------------------------------------------------------------------------
// Key-value store

/**
 * KV operations with the KV state machine's single-key semantics (src/log/kv-state-machine.ts):
 * values are strings here (a recorder maps bytes to strings, e.g. hex); `cas` compares the value,
 * `expected: null` meaning "the key is absent". Revision-based compares and ranges are not
 * modelled: they depend on other keys and would defeat per-key partitioning.
 */
export type KvInput =
  | { readonly type: 'get'; readonly key: string }
  | { readonly type: 'put'; readonly key: string; readonly value: string }
  | { readonly type: 'cas'; readonly key: string; readonly expected: string | null; readonly value: string }
  | { readonly type: 'delete'; readonly key: string };

/** KV outputs, by input type. */
export type KvModelOutput =
  | { readonly type: 'get'; readonly value: string | null }
  | { readonly type: 'put' }
  | { readonly type: 'cas'; readonly succeeded: boolean }
  | { readonly type: 'delete'; readonly deleted: boolean };

/** The store's contents. Partitioned by key, a state holds at most one key; unpartitioned it holds all. */
export type KvModelState = ReadonlyMap<string, string>;

function withValue(state: KvModelState, key: string, value: string | null): KvModelState {
  const next = new Map(state);
  if (value === null) next.delete(key);
  else next.set(key, value);
  return next;
}

function stepKv(state: KvModelState, input: KvInput, output: KvModelOutput | undefined): StepResult<KvModelState> {
  sameKind(input, output);
  const current = state.get(input.key) ?? null;
  switch (input.type) {
    case 'get':
      return { ok: output?.type !== 'get' || output.value === current, state };
    case 'put':
      return { ok: true, state: withValue(state, input.key, input.value) };
    case 'cas': {
      const holds = current === input.expected;
      const ok = output?.type !== 'cas' || output.succeeded === holds;
      return { ok, state: holds ? withValue(state, input.key, input.value) : state };
    }
    case 'delete': {
      const ok = output?.type !== 'delete' || output.deleted === (current !== null);
      return { ok, state: current === null ? state : withValue(state, input.key, null) };
    }
    default:
      return assertNever(input, 'kv input');
  }
}

function kvEqual(a: KvModelState, b: KvModelState): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

function kvHash(s: KvModelState): number {
  let h = 0;
  // A sum of per-entry hashes: independent of Map insertion order, as `kvEqual` is.
  for (const [k, v] of s) h = (h + hashString(v, hashString(k))) >>> 0;
  return h;
}

function describeKvOp(input: KvInput, output: KvModelOutput | undefined): string {
  const k = JSON.stringify(input.key);
  const unknown = output === undefined ? ' -> ?' : '';
  switch (input.type) {
    case 'get':
      return `get(${k})${output?.type === 'get' ? ` -> ${show(output.value)}` : unknown}`;
    case 'put':
      return `put(${k}, ${show(input.value)})${unknown}`;
    case 'cas':
      return `cas(${k}, ${show(input.expected)} -> ${show(input.value)})${output?.type === 'cas' ? ` -> ${output.succeeded ? 'ok' : 'failed'}` : unknown}`;
    case 'delete':
      return `delete(${k})${output?.type === 'delete' ? ` -> ${output.deleted ? 'deleted' : 'absent'}` : unknown}`;
    default:
      return assertNever(input, 'kv input');
  }
}

function partitionByKey(history: readonly Operation<KvInput, KvModelOutput>[]): Operation<KvInput, KvModelOutput>[][] {
  const byKey = new Map<string, Operation<KvInput, KvModelOutput>[]>();
  for (const op of history) {
    const part = byKey.get(op.input.key);
    if (part === undefined) byKey.set(op.input.key, [op]);
    else part.push(op);
  }
  return [...byKey.values()];
}

/** A key-value store (get/put/cas/delete), checked key by key. */
export const kvModel: Model<KvModelState, KvInput, KvModelOutput> = {
  name: 'kv',
  init: () => new Map<string, string>(),
  step: stepKv,
  partition: partitionByKey,
  equal: kvEqual,
  hash: kvHash,
  describeOperation: describeKvOp,
  describeState: (s) => (s.size === 0 ? 'empty' : [...s].map(([k, v]) => `${JSON.stringify(k)}=${show(v)}`).join(', ')),
};

// ------------------------------------------------------------------------------------------------
// Recording KV state machine operations for `kvModel`

function toHex(b: Uint8Array): string {
  let s = '';
  for (const x of b) s += x.toString(16).padStart(2, '0');
  return s;
}

/**
 * The `kvModel` input for a KV state-machine command (values as lowercase hex), or `null` for a
 * command the model does not cover (`range`, and `cas` comparing a mod revision): record those
 * elsewhere or leave them out of the checked history. Leaving out a *write* is unsound (reads of
 * its value would look invented), so a workload checked with `kvModel` should not issue
 * revision-compare `cas` at all.
 */
export function kvModelInput(command: KvCommand): KvInput | null {
  switch (command.type) {
    case 'get':
    case 'delete':
      return { type: command.type, key: command.key };
    case 'put':
      return { type: 'put', key: command.key, value: toHex(command.value) };
    case 'cas':
      if (command.compare.kind !== 'value') return null;
      return {
        type: 'cas',
        key: command.key,
        expected: command.compare.value === null ? null : toHex(command.compare.value),
        value: toHex(command.value),
      };
    case 'range':
      return null;
    default:
      return assertNever(command, 'kv command');
  }
}

/** The `kvModel` output for a KV state-machine output, or `null` for a `range`. */
export function kvModelOutput(output: KvOutput): KvModelOutput | null {
  switch (output.type) {
    case 'get':
      return { type: 'get', value: output.entry === null ? null : toHex(output.entry.value) };
    case 'put':
      return { type: 'put' };
    case 'cas':
      return { type: 'cas', succeeded: output.succeeded };
    case 'delete':
      return { type: 'delete', deleted: output.deleted };
    case 'range':
      return null;
    default:
      return assertNever(output, 'kv output');
  }
}
