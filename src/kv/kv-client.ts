/**
 * The KV service's client namespace (`client.kv`): typed calls of the methods `kv-handlers.ts`
 * registers (`kv.get`, `kv.put`, `kv.cas`, `kv.delete`), over any `ApiCaller` (the daemon's socket
 * or embedded mode's in-process channel), and the decoders of their answers.
 *
 * Errors: every call rejects with `CohortClientError` only: `INVALID_ARGUMENT` before sending when
 * a key breaks the key rules (`src/log/kv-key.ts`: a put or cas writes only printable keys) or a
 * value is over `KV_VALUE_BYTES_MAX`, the daemon's code (`NOT_QUORATE`, ...), the connection's (`CLOSED`, `CONNECTION_LOST`, `ABORTED`), or
 * `PROTOCOL_ERROR` naming the field of an answer that is not what it claims (`FieldReader`).
 *
 * Client code runs in the caller's process, never inside a simulated run: it may use Promises.
 */
import {
  type ApiCaller,
  type ApiData,
  callDecoded,
  type CallOptions,
  CohortClientError,
  FieldReader,
} from '../api/index.js';
import { KV_VALUE_BYTES_MAX } from '../constants.js';
import { kvKeyProblem, kvStoredKeyProblem } from '../log/kv-key.js';

/** `kv.get`: the entry with its revisions, or `found: false` (the store's revision either way). */
export type KvGetResult =
  | {
      readonly key: string;
      readonly found: true;
      readonly value: Uint8Array;
      /** The value as UTF-8 text, or null when it is not valid UTF-8. */
      readonly text: string | null;
      /** The store's revision when read. */
      readonly revision: number;
      readonly modRevision: number;
      readonly createRevision: number;
      /** Writes since the key was created (1 after the first put). */
      readonly version: number;
    }
  | { readonly key: string; readonly found: false; readonly revision: number };

/** `kv.put`. */
export interface KvPutResult {
  readonly revision: number;
  readonly modRevision: number;
  readonly version: number;
}

/** `kv.cas`: `succeeded` false means the compare failed; `text` is the value now (null: absent or not UTF-8). */
export interface KvCasResult {
  readonly succeeded: boolean;
  readonly revision: number;
  readonly text: string | null;
}

/** `kv.delete`: `deleted` false when the key was absent. */
export interface KvDeleteResult {
  readonly deleted: boolean;
  readonly revision: number;
}

/** The condition of `kv.cas`: the current value (null: the key is absent) or its mod revision. */
export type KvCasCondition =
  { readonly expected: string | Uint8Array | null } | { readonly expectedModRevision: number };

/** The replicated key-value store. Reads are linearizable on any node; writes go through the leader. */
export interface KvClient {
  /** Reads `key`; `found: false` when absent (not an error). */
  get(key: string, options?: CallOptions): Promise<KvGetResult>;
  /** Writes `value` (a string is stored as UTF-8). */
  put(key: string, value: string | Uint8Array, options?: CallOptions): Promise<KvPutResult>;
  /** Writes `value` only if `condition` holds; `succeeded: false` (not an error) when it does not. */
  cas(key: string, value: string | Uint8Array, condition: KvCasCondition, options?: CallOptions): Promise<KvCasResult>;
  /** Deletes `key`; `deleted: false` when it was absent. */
  delete(key: string, options?: CallOptions): Promise<KvDeleteResult>;
}

/** The `KvClient` over `caller`; holds no state of its own (closing is the caller's). */
export function kvClient(caller: ApiCaller): KvClient {
  return {
    get: (key, options) =>
      checked(kvStoredKeyProblem(key)) ?? callDecoded(caller, 'kv.get', { key }, decodeKvGet, options),
    put: (key, value, options) =>
      checked(kvKeyProblem(key) ?? valueProblem(value, 'value')) ??
      callDecoded(caller, 'kv.put', { key, value }, decodeKvPut, options),
    cas: (key, value, condition, options) => {
      const compare: ApiData =
        'expectedModRevision' in condition
          ? { expectedModRevision: condition.expectedModRevision }
          : { expected: condition.expected };
      const expected = 'expected' in condition ? condition.expected : null;
      const problem =
        kvKeyProblem(key) ??
        valueProblem(value, 'value') ??
        (expected === null ? null : valueProblem(expected, 'expected value'));
      return checked(problem) ?? callDecoded(caller, 'kv.cas', { key, value, ...compare }, decodeKvCas, options);
    },
    delete: (key, options) =>
      checked(kvStoredKeyProblem(key)) ?? callDecoded(caller, 'kv.delete', { key }, decodeKvDelete, options),
  };
}

const textEncoder = new TextEncoder();

/** Why `value` cannot be stored (over `KV_VALUE_BYTES_MAX` bytes), or null. */
function valueProblem(value: string | Uint8Array, what: string): string | null {
  // A string's UTF-8 length is at most 3 bytes per UTF-16 code unit: encode only near the limit.
  const bytes =
    typeof value === 'string'
      ? value.length * 3 <= KV_VALUE_BYTES_MAX
        ? 0
        : textEncoder.encode(value).length
      : value.length;
  return bytes <= KV_VALUE_BYTES_MAX
    ? null
    : `${what} is ${bytes} bytes; the limit is ${KV_VALUE_BYTES_MAX} bytes (${KV_VALUE_BYTES_MAX / 1024} KiB): store large data elsewhere and keep a reference here`;
}

/** A rejected call for `problem`, or null to make the call. */
function checked(problem: string | null): Promise<never> | null {
  return problem === null ? null : Promise.reject(new CohortClientError('INVALID_ARGUMENT', problem));
}

/** Decodes a `kv.get` answer. */
function decodeKvGet(v: ApiData): KvGetResult {
  const r = FieldReader.of(v, 'result', 'kv.get');
  if (!r.bool('found')) return { key: r.str('key'), found: false, revision: r.int('revision') };
  return {
    key: r.str('key'),
    found: true,
    value: r.bytes('value'),
    text: r.nullableStr('text'),
    revision: r.int('revision'),
    modRevision: r.int('modRevision'),
    createRevision: r.int('createRevision'),
    version: r.int('version'),
  };
}

/** Decodes a `kv.put` answer. */
function decodeKvPut(v: ApiData): KvPutResult {
  const r = FieldReader.of(v, 'result', 'kv.put');
  return { revision: r.int('revision'), modRevision: r.int('modRevision'), version: r.int('version') };
}

/** Decodes a `kv.cas` answer. */
function decodeKvCas(v: ApiData): KvCasResult {
  const r = FieldReader.of(v, 'result', 'kv.cas');
  return { succeeded: r.bool('succeeded'), revision: r.int('revision'), text: r.nullableStr('text') };
}

/** Decodes a `kv.delete` answer. */
function decodeKvDelete(v: ApiData): KvDeleteResult {
  const r = FieldReader.of(v, 'result', 'kv.delete');
  return { deleted: r.bool('deleted'), revision: r.int('revision') };
}
