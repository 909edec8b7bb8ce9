/**
 * The fencing service's client namespace (`client.fencing`, docs/fencing.md): the fence history
 * (`history`: every pending fence with its attempts and, on the leader, what its executor does
 * now; the newest finished ones with their proof) and fencing a member now (`fence`). The manual
 * confirmation stays `client.fenceConfirm` (the membership service's method).
 *
 * Errors: every call rejects with `CohortClientError` only. Client code runs in the caller's
 * process, never inside a simulated run: it may use Promises.
 */
import { type ApiCaller, type ApiData, callDecoded, type CallOptions, FieldReader } from '../api/index.js';
import type { NodeId } from '../lib/ids.js';

/** One attempt of one device, as the ledger holds it. */
export interface FenceAttemptInfo {
  readonly executor: NodeId;
  readonly level: number;
  readonly device: string;
  readonly agent: string;
  readonly action: string;
  readonly result: string;
  readonly exitCode: number | null;
  readonly durationMs: number;
  readonly excerpt: string;
  readonly atMs: number;
  readonly round: number;
}

/** One fence record. */
export interface FenceRecordInfo {
  readonly node: NodeId;
  readonly name: string;
  readonly incarnation: number;
  readonly reason: string;
  readonly requestIndex: number;
  readonly attempts: readonly FenceAttemptInfo[];
  readonly attemptsDropped: number;
  readonly round: number;
  /** `pending`, or `fenced` with the proof (`agent`, `watchdog` or `confirm`) as the daemon sent it. */
  readonly state: 'pending' | 'fenced';
  readonly proof: ApiData;
  /** On the leader, for a pending fence: what its executor does now (kind and details). */
  readonly activity: ApiData;
}

/** `history`: pending fences and the newest finished ones (newest first). */
export interface FenceHistory {
  readonly pending: readonly FenceRecordInfo[];
  readonly finished: readonly FenceRecordInfo[];
}

/** Options of `history`. */
export interface FenceHistoryOptions extends CallOptions {
  readonly node?: number;
  readonly limit?: number;
}

/** The fencing service's calls. */
export interface FencingClient {
  history(options?: FenceHistoryOptions): Promise<FenceHistory>;
  /** Fences member `node` now through the configured devices (removes its incarnation first). */
  fence(node: number, options?: CallOptions & { readonly note?: string }): Promise<{ readonly incarnation: number }>;
}

/** The `FencingClient` over `caller`. */
export function fencingClient(caller: ApiCaller): FencingClient {
  return {
    history: (options = {}) =>
      callDecoded(
        caller,
        'fence.history',
        {
          ...(options.node === undefined ? {} : { node: options.node }),
          ...(options.limit === undefined ? {} : { limit: options.limit }),
        },
        decodeHistory,
        options,
      ),
    fence: (node, options = {}) =>
      callDecoded(
        caller,
        'fence.now',
        { node, ...(options.note === undefined ? {} : { note: options.note }) },
        (v) => ({ incarnation: FieldReader.of(v, 'answer', 'fence.now').int('incarnation', 1) }),
        options,
      ),
  };
}

function record(r: FieldReader): FenceRecordInfo {
  const request = r.obj('request');
  const outcome = r.obj('outcome');
  const state = outcome.str('state');
  return {
    node: r.nodeId('node'),
    name: r.str('name'),
    incarnation: r.int('incarnation', 1),
    reason: request.str('reason'),
    requestIndex: request.int('index'),
    attempts: r.list('attempts', (a) => ({
      executor: a.nodeId('executor'),
      level: a.int('level', 1),
      device: a.str('device'),
      agent: a.str('agent'),
      action: a.str('action'),
      result: a.str('result'),
      exitCode: a.raw('exitCode') === undefined ? null : a.int('exitCode', 0, 255),
      durationMs: a.int('durationMs'),
      excerpt: a.str('excerpt'),
      atMs: a.int('atMs'),
      round: a.int('round', 1),
    })),
    attemptsDropped: r.int('attemptsDropped'),
    round: r.int('round', 1),
    state: state === 'fenced' ? 'fenced' : 'pending',
    proof: outcome.raw('proof') ?? null,
    activity: r.raw('activity') ?? null,
  };
}

function decodeHistory(v: ApiData): FenceHistory {
  const r = FieldReader.of(v, 'answer', 'fence.history');
  return { pending: r.list('pending', record), finished: r.list('finished', record) };
}
