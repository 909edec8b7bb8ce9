/**
 * What every service's local-API handlers share (pure): plain data to `ApiData`, the params map,
 * the mapping of the node's typed failures to the API's error codes (docs/api.md), and a promise
 * over a node callback. Services register their methods with `NodeService.registerApi`.
 */
import { ApiError, type ApiData } from '../api/index.js';
import { assertNever } from '../lib/assert.js';
import type { Result } from '../lib/errors.js';
import type { RaftNodeError } from './raft-node.js';

/** Converts plain data (objects, arrays, strings, finite numbers, booleans, null, bytes) to `ApiData`. */
export function toApiData(value: unknown): ApiData {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || typeof value === 'boolean') return value;
  if (typeof value === 'number') return Number.isFinite(value) ? value : null;
  if (value instanceof Uint8Array) return value;
  if (Array.isArray(value)) return value.map((v: unknown) => toApiData(v));
  if (typeof value === 'object') {
    const out: Record<string, ApiData> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = toApiData(v);
    return out;
  }
  return null; // functions, symbols, bigints: not plain data, never sent
}

/** `p` as a map of params (null: none); anything else is `INVALID_ARGUMENT` naming `method`. */
export function params(p: ApiData, method: string): Readonly<Record<string, ApiData>> {
  if (p === null) return {};
  if (typeof p !== 'object' || Array.isArray(p) || p instanceof Uint8Array)
    throw new ApiError('INVALID_ARGUMENT', `${method}: params must be a map`);
  return p as Readonly<Record<string, ApiData>>;
}

/** Maps a node failure to the API's codes (docs/api.md), keeping the node's explanation. */
export function apiErrorOf(e: RaftNodeError): ApiError {
  switch (e.code) {
    case 'NOT_LEADER':
      return new ApiError(
        'NOT_QUORATE',
        `no leader accepted the request (${e.message}); this node's partition may not have quorum: check \`cohort status\``,
      );
    case 'TIMEOUT':
      return new ApiError('TIMEOUT', e.message);
    case 'BUSY':
      return new ApiError('OVERLOADED', e.message);
    case 'STOPPED':
      return new ApiError('UNAVAILABLE', `the node is not running (${e.message}); retry once it has started`);
    case 'PROPOSAL_DROPPED':
    case 'OUTCOME_UNKNOWN':
      return new ApiError('UNAVAILABLE', `${e.message}; read the key to see whether the write took effect`);
    case 'REFUSED':
      return new ApiError('INVALID_ARGUMENT', e.message);
    default:
      return assertNever(e.code, 'Raft node error code');
  }
}

/**
 * Runs a node call and settles with its value, or rejects with the `ApiError` `mapError` makes of
 * its typed failure (default: `apiErrorOf`).
 */
export function callApi<T, E = RaftNodeError>(
  run: (done: (r: Result<T, E>) => void) => void,
  mapError: (e: E) => ApiError = apiErrorOf as (e: E) => ApiError,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    run((r) => {
      if (r.ok) resolve(r.value);
      else reject(mapError(r.error));
    });
  });
}
