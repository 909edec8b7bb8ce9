/**
 * The daemon's local API methods (docs/api.md, docs/daemon.md): `status`, `nodes`, `quorum`,
 * `kv.get`, `kv.put`, `kv.cas`, `kv.delete`, `fence.confirm` (requests) and `events` (a stream). Each handler
 * checks its params, calls the `CohortNode`, and maps the node's typed failures to API error
 * codes with a message that says what to do.
 */
import { ApiError, type ApiData } from '../api/index.js';
import { MEMBERSHIP_EVENTS_READ_MAX } from '../constants.js';
import type { Result } from '../lib/errors.js';
import { NODE_ID_MAX, nodeId } from '../lib/ids.js';
import type { KvCompare, KvOutput } from '../log/index.js';
import type { MembershipEvent } from '../membership/index.js';
import type { RequestHandler, StreamHandler, StreamSink } from '../platform/api-server.js';
import type { PeerLinkStatus } from '../platform/tcp-transport.js';
import { FenceConfirmError, type CohortNode, type NodeObserver } from '../services.js';
import type { GroupViewPayload } from '../groups/index.js';
import { registerGroupHandlers } from './group-handlers.js';
import type { RaftNodeError } from '../runtime/raft-node.js';

/** Largest key accepted in params (the KV store checks its own, smaller, byte limit). */
const KEY_CHARS_MAX = 4096;
const textDecoder = new TextDecoder('utf-8', { fatal: true });
const textEncoder = new TextEncoder();

/** What a group message stream carries: this node's deliveries and the group's view changes, in apply order. */
export type GroupStreamItem =
  | {
      readonly kind: 'message';
      readonly groupViewId: number;
      readonly seq: number;
      readonly from: number;
      readonly payload: Uint8Array;
    }
  | { readonly kind: 'view'; readonly view: GroupViewPayload };

/**
 * Tells open event streams that new membership events were applied, and fans group deliveries
 * and group views out to the open group message streams. `observer()` gives the hooks to pass to
 * `CohortNode` (the daemon and embedded mode both use it).
 */
export class EventHub {
  private readonly listeners = new Set<() => void>();
  private readonly groupListeners = new Map<string, Set<(item: GroupStreamItem) => void>>();

  /** Registers `fn`; returns the function that unregisters it. */
  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
    };
  }

  /** Called after every applied membership command. */
  notify(): void {
    for (const fn of [...this.listeners]) fn();
  }

  /** Registers `fn` for `group`'s items; returns the function that unregisters it. */
  subscribeGroup(group: string, fn: (item: GroupStreamItem) => void): () => void {
    const set = this.groupListeners.get(group) ?? new Set();
    set.add(fn);
    this.groupListeners.set(group, set);
    return () => {
      set.delete(fn);
      if (set.size === 0) this.groupListeners.delete(group);
    };
  }

  private group(group: string, item: GroupStreamItem): void {
    const set = this.groupListeners.get(group);
    if (set !== undefined) for (const fn of [...set]) fn(item);
  }

  /** The `NodeObserver` hooks that feed this hub. */
  observer(): Pick<NodeObserver, 'onMembershipApplied' | 'onGroupDeliver' | 'onGroupView'> {
    return {
      onMembershipApplied: () => {
        this.notify();
      },
      onGroupDeliver: (group, groupViewId, seq, from, payload) => {
        this.group(group, { kind: 'message', groupViewId, seq, from, payload });
      },
      onGroupView: (group, view) => {
        this.group(group, { kind: 'view', view });
      },
    };
  }
}

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
      return new ApiError('INTERNAL', e.message);
  }
}

function call<T>(run: (done: (r: Result<T, RaftNodeError>) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    run((r) => {
      if (r.ok) resolve(r.value);
      else reject(apiErrorOf(r.error));
    });
  });
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
      return null;
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

/** Extra daemon facts the handlers show. */
export interface DaemonFacts {
  readonly clusterName: string;
  readonly fingerprint: string;
  readonly startedAtMs: number;
  readonly links: () => readonly PeerLinkStatus[];
}

/**
 * Where handlers are registered: the daemon's `ApiServer` (Unix socket), or embedded mode's
 * in-process dispatcher (`src/embedded`), which calls the same handlers without a socket.
 */
export interface ApiHandlerRegistry {
  register(method: string, handler: RequestHandler): void;
  registerStream(method: string, handler: StreamHandler): void;
}

/** Registers every method on `server`. */
export function registerApiHandlers(
  server: ApiHandlerRegistry,
  node: CohortNode,
  hub: EventHub,
  facts: DaemonFacts,
): void {
  server.register('status', () =>
    toApiData({
      ...node.services.membership.status(),
      cluster: facts.clusterName,
      configFingerprint: facts.fingerprint,
      uptimeMs: Math.round(performance.now() - facts.startedAtMs),
    }),
  );
  server.register('nodes', () => {
    const links = new Map(facts.links().map((l) => [l.peer, l]));
    const nodes = node.services.membership.nodes().map((n) => ({
      ...n,
      self: n.nodeId === node.nodeId,
      link: n.nodeId === node.nodeId ? 'self' : (links.get(n.nodeId)?.state ?? 'unknown'),
    }));
    return toApiData({ nodes });
  });
  server.register('quorum', () => {
    const s = node.services.membership.status();
    const a = node.services.membership.arbitration();
    return toApiData({
      quorate: s.quorate,
      reason: s.quorumReason,
      explanation: s.quorumExplanation,
      viewId: s.viewId,
      viewQuorate: a?.quorate ?? false,
      viewReason: a?.reason ?? null,
      summary: a?.summary ?? 'not configured yet',
      expectedVotes: s.expectedVotes,
      totalVotes: s.totalVotes,
      quorum: s.quorum,
      waitForAll: a?.waitForAll ?? null,
    });
  });
  registerKv(server, node);
  server.register('fence.confirm', (p) => fenceConfirm(params(p, 'fence.confirm'), node));
  server.registerStream('events', (p, _ctx, sink) => eventStream(params(p, 'events'), node, hub, sink));
  registerGroupHandlers(server, node, hub);
}

function registerKv(server: ApiHandlerRegistry, node: CohortNode): void {
  server.register('kv.get', async (p) => {
    const key = keyParam(params(p, 'kv.get'), 'kv.get');
    const out = await call<Extract<KvOutput, { type: 'get' }>>((done) => {
      node.services.kv.get(key, done);
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
      await call<KvOutput>((done) => {
        node.services.kv.put(key, value, done);
      }),
    );
  });
  server.register('kv.cas', async (p) => {
    const q = params(p, 'kv.cas');
    const key = keyParam(q, 'kv.cas');
    const value = bytesParam(q, 'value', 'kv.cas');
    const compare = compareParam(q);
    return kvResult(
      await call<KvOutput>((done) => {
        node.services.kv.cas(key, compare, value, done);
      }),
    );
  });
  server.register('kv.delete', async (p) => {
    const key = keyParam(params(p, 'kv.delete'), 'kv.delete');
    return kvResult(
      await call<KvOutput>((done) => {
        node.services.kv.delete(key, done);
      }),
    );
  });
}

function integerParam(
  p: Readonly<Record<string, ApiData>>,
  name: string,
  min: number,
  max: number,
  method: string,
): number | null {
  const v = p[name];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
    throw new ApiError('INVALID_ARGUMENT', `${method}: params.${name} must be an integer in [${min}, ${max}]`);
  return v;
}

/**
 * `fence.confirm {node, incarnation?}`: the manual fence agent. Refusals found in the local
 * state (no pending fence, a stale or unknown incarnation) are `INVALID_ARGUMENT`, an unknown
 * node `NOT_FOUND`, with the node's explanation; proposal failures map as for KV writes.
 */
function fenceConfirm(p: Readonly<Record<string, ApiData>>, node: CohortNode): Promise<ApiData> {
  const id = integerParam(p, 'node', 1, NODE_ID_MAX, 'fence.confirm');
  if (id === null)
    throw new ApiError('INVALID_ARGUMENT', 'fence.confirm: params.node (the node id to confirm fenced) is required');
  const inc = integerParam(p, 'incarnation', 1, Number.MAX_SAFE_INTEGER, 'fence.confirm');
  return new Promise<ApiData>((resolve, reject) => {
    node.services.membership.fenceConfirm(nodeId(id), inc, (r) => {
      if (r.ok) resolve(toApiData(r.value));
      else if (r.error instanceof FenceConfirmError)
        reject(
          new ApiError(
            r.error.code === 'UNKNOWN_NODE'
              ? 'NOT_FOUND'
              : r.error.code === 'NOT_CONFIGURED'
                ? 'UNAVAILABLE'
                : 'INVALID_ARGUMENT',
            r.error.message,
          ),
        );
      else reject(apiErrorOf(r.error));
    });
  });
}

function eventData(e: MembershipEvent): ApiData {
  return toApiData(e);
}

/**
 * Pushes events from `fromSeq` (default: the oldest retained) and, with `follow`, every later
 * one as it is applied. A reader behind the retained window gets `GAP`.
 */
function eventStream(
  p: Readonly<Record<string, ApiData>>,
  node: CohortNode,
  hub: EventHub,
  sink: StreamSink,
): () => void {
  const from = p['fromSeq'];
  if (from !== undefined && from !== null && (typeof from !== 'number' || !Number.isSafeInteger(from) || from < 0)) {
    sink.fail('INVALID_ARGUMENT', 'events: params.fromSeq must be a non-negative integer');
    return () => undefined;
  }
  const follow = p['follow'] === true;
  let next = typeof from === 'number' ? Math.max(1, from) : 0;
  const pump = (): boolean => {
    for (;;) {
      if (next === 0) {
        const oldest = node.services.membership.eventsFrom(1, 1);
        next = oldest.ok ? 1 : oldest.error.oldestSeq;
      }
      const page = node.services.membership.eventsFrom(next, MEMBERSHIP_EVENTS_READ_MAX);
      if (!page.ok) {
        sink.fail(
          'GAP',
          `${page.error.message}; re-read \`cohort status\` and follow from sequence ${page.error.oldestSeq}`,
        );
        return false;
      }
      for (const e of page.value.events) if (!sink.push(eventData(e))) return false;
      next = page.value.next;
      if (page.value.events.length < MEMBERSHIP_EVENTS_READ_MAX) return true;
    }
  };
  if (!pump()) return () => undefined;
  if (!follow) {
    sink.end();
    return () => undefined;
  }
  return hub.subscribe(() => {
    pump();
  });
}
