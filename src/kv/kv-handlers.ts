/**
 * The KV service's local API methods (docs/api.md): `kv.get {key}`, `kv.put {key, value}`,
 * `kv.cas {key, value, expected | expectedModRevision}`, `kv.delete {key}`. Values are bytes or
 * strings; answers carry the value as bytes and, when it is UTF-8, as `text`.
 */
import { ApiError, type ApiData, type ApiHandlerRegistry } from '../api/index.js';
import { assertNever } from '../lib/assert.js';
import type { KvCompare, KvOutput } from '../log/index.js';
import { callApi, params, toApiData } from '../runtime/shared-handlers.js';
import type { KvService } from './kv-service.js';

/** Largest key accepted in params (the KV store checks its own, smaller, byte limit). */
const KEY_CHARS_MAX = 4096;
const textDecoder = new TextDecoder('utf-8', { fatal: true });
const textEncoder = new TextEncoder();

/** Registers `kv.get`, `kv.put`, `kv.cas` and `kv.delete` for `kv`. */
export function registerKvApi(server: ApiHandlerRegistry, kv: KvService): void {
  server.register('kv.get', async (p) => {
    const key = keyParam(params(p, 'kv.get'), 'kv.get');
    const out = await callApi<Extract<KvOutput, { type: 'get' }>>((done) => {
      kv.get(key, done);
    });
    const e = out.entry;
    return e === null
      ? { key, found: false, revision: out.revision }
      : {
          key,
          found: true,
          value: e.value,
          text: asText(e.value),
          revision: out.revision,
          modRevision: e.modRevision,
          createRevision: e.createRevision,
          version: e.version,
        };
  });
  server.register('kv.put', async (p) => {
    const q = params(p, 'kv.put');
    const key = keyParam(q, 'kv.put');
    const value = bytesParam(q, 'value', 'kv.put');
    return kvResult(
      await callApi<KvOutput>((done) => {
        kv.put(key, value, done);
      }),
    );
  });
  server.register('kv.cas', async (p) => {
    const q = params(p, 'kv.cas');
    const key = keyParam(q, 'kv.cas');
    const value = bytesParam(q, 'value', 'kv.cas');
    const compare = compareParam(q);
    return kvResult(
      await callApi<KvOutput>((done) => {
        kv.cas(key, compare, value, done);
      }),
    );
  });
  server.register('kv.delete', async (p) => {
    const key = keyParam(params(p, 'kv.delete'), 'kv.delete');
    return kvResult(
      await callApi<KvOutput>((done) => {
        kv.delete(key, done);
      }),
    );
  });
}

function keyParam(p: Readonly<Record<string, ApiData>>, method: string): string {
  const key = p['key'];
  if (typeof key !== 'string' || key.length === 0 || key.length > KEY_CHARS_MAX)
    throw new ApiError('INVALID_ARGUMENT', `${method}: params.key must be a non-empty string`);
  return key;
}

function bytesParam(p: Readonly<Record<string, ApiData>>, name: string, method: string): Uint8Array {
  const v = p[name];
  if (typeof v === 'string') return textEncoder.encode(v);
  if (v instanceof Uint8Array) return v;
  throw new ApiError('INVALID_ARGUMENT', `${method}: params.${name} must be a string or bytes`);
}

function asText(bytes: Uint8Array): string | null {
  try {
    return textDecoder.decode(bytes);
  } catch {
    return null; // not UTF-8: the caller has the bytes in `value`
  }
}

function kvResult(out: KvOutput): ApiData {
  switch (out.type) {
    case 'put':
      return { revision: out.revision, modRevision: out.entry.modRevision, version: out.entry.version };
    case 'cas':
      return {
        succeeded: out.succeeded,
        revision: out.revision,
        text: out.entry === null ? null : asText(out.entry.value),
      };
    case 'delete':
      return { deleted: out.deleted, revision: out.revision };
    case 'get':
    case 'range':
      return toApiData(out);
    default:
      return assertNever(out, 'KV output');
  }
}

function compareParam(p: Readonly<Record<string, ApiData>>): KvCompare {
  const mod = p['expectedModRevision'];
  if (mod !== undefined && mod !== null) {
    if (typeof mod !== 'number' || !Number.isSafeInteger(mod) || mod < 0)
      throw new ApiError('INVALID_ARGUMENT', 'kv.cas: params.expectedModRevision must be a non-negative integer');
    return { kind: 'modRevision', modRevision: mod };
  }
  if (!Object.hasOwn(p, 'expected'))
    throw new ApiError(
      'INVALID_ARGUMENT',
      'kv.cas: give params.expected (the current value, or null for "absent") or params.expectedModRevision',
    );
  return { kind: 'value', value: p['expected'] === null ? null : bytesParam(p, 'expected', 'kv.cas') };
}
