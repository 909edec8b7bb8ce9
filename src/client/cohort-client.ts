/**
 * The typed client library: `connect({socket})` returns a `CohortClient` whose methods return
 * typed, validated results (`client-results.ts`) instead of raw API data.
 *
 * `CohortClient` is an interface with one implementation, `ApiCohortClient`, over an
 * `ApiChannel`: the daemon's Unix socket (`ClientConnection`, from `connect`) or the in-process
 * dispatcher of embedded mode (`src/embedded`, which calls the very handlers the daemon
 * registers). So both modes decode, validate and fail identically, and a method added here (the
 * groups API: see `CohortClient`) works in both.
 *
 * Errors: every call rejects with `CohortClientError` only; `code` is stable (docs/api.md,
 * docs/client.md). Every call takes `{signal}`; aborting it rejects with `ABORTED` (or `TIMEOUT`
 * for an `AbortSignal.timeout`) and tells the daemon to cancel. A client never reconnects by
 * itself: after `CONNECTION_LOST`, connect again.
 */
import type { ApiData } from '../api/index.js';
import { connectLocal, type CallOptions } from './client-connection.js';
import { CohortClientError } from './client-error.js';
import {
  decodeGroupBarrier,
  decodeGroupItem,
  decodeGroupJoin,
  decodeGroups,
  decodeGroupSend,
  type GroupItem,
  type GroupSendResult,
  type GroupViewInfo,
  decodeEvent,
  decodeFenceConfirm,
  decodeKvCas,
  decodeKvDelete,
  decodeKvGet,
  decodeKvPut,
  decodeNodes,
  decodeQuorum,
  decodeStatus,
  type ClusterEvent,
  type CohortStatus,
  type FenceConfirmResult,
  type KvCasResult,
  type KvDeleteResult,
  type KvGetResult,
  type KvPutResult,
  type NodesResult,
  type QuorumResult,
} from './client-results.js';

/** An open stream of raw API items (`ClientStream` on a socket). */
export interface ApiStream extends AsyncIterableIterator<ApiData> {
  /** Stops the stream (the daemon is told); buffered items are dropped. Idempotent. */
  cancel(): void;
}

/**
 * What the typed client needs from a connection: a request, a stream, close. Implemented by
 * `ClientConnection` (Unix socket) and by embedded mode's in-process channel. Contract: errors
 * are `CohortClientError`; a call after `close()` fails with `CLOSED`; a lost peer fails every
 * open and later call with `CONNECTION_LOST` (or the daemon's `UNAVAILABLE`).
 */
export interface ApiChannel {
  readonly open: boolean;
  request(method: string, params?: ApiData, options?: CallOptions): Promise<ApiData>;
  stream(method: string, params?: ApiData, options?: CallOptions): ApiStream;
  close(): Promise<void>;
}

/** Options of `connect`. */
export interface ConnectClientOptions {
  /** The daemon's API socket (`api.socket` of its config); default `$COHORT_SOCKET`. */
  readonly socket?: string;
  /** Aborts connecting (and only connecting: each call takes its own signal). */
  readonly signal?: AbortSignal;
  /** Deadline to connect and complete the hello (default 5000 ms). */
  readonly timeoutMs?: number;
  /** Shown in the daemon's logs. */
  readonly clientName?: string;
}

/** Options of `events()`. */
export interface EventsOptions extends CallOptions {
  /** The first sequence number wanted (default: the oldest retained). */
  readonly fromSeq?: number;
  /** Keep waiting for new events (default true); false ends after the retained ones. */
  readonly follow?: boolean;
}

/** A typed event stream: `for await`, `break` or `cancel()` stops it on the daemon. */
export interface EventStream extends AsyncIterableIterator<ClusterEvent> {
  cancel(): void;
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

/** Options of `fenceConfirm`. */
export interface FenceConfirmOptions extends CallOptions {
  /** The incarnation fenced (default: the one that needs fencing). */
  readonly incarnation?: number;
}

/**
 * A client of one node: over its Unix socket (`connect`) or in-process (`startCluster(...).client(id)`).
 * Errors are `CohortClientError` with a stable `code` (docs/client.md). `await using` closes it.
 */
export interface CohortClient extends AsyncDisposable {
  /** True until closed or the connection is lost. */
  readonly open: boolean;
  /** This node's view of the cluster: leader, term, view, quorum, members. */
  status(options?: CallOptions): Promise<CohortStatus>;
  /** Every configured node with its membership state and this node's link to it. */
  nodes(options?: CallOptions): Promise<NodesResult>;
  /** The local quorum verdict and the view's arbitration. */
  quorum(options?: CallOptions): Promise<QuorumResult>;
  /**
   * The cluster event stream from `fromSeq` (default: the oldest retained), following new events
   * unless `follow: false`. Throws `GAP` when `fromSeq` was compacted away.
   */
  events(options?: EventsOptions): EventStream;
  /** The manual fence agent: confirms `node`'s crashed incarnation was fenced (docs/daemon.md). */
  fenceConfirm(node: number, options?: FenceConfirmOptions): Promise<FenceConfirmResult>;
  readonly kv: KvClient;
  /** Service groups (docs/groups.md): list, and join returning a handle. */
  readonly groups: GroupsClient;
  /** Closes the connection; open calls reject with `CLOSED`. Idempotent. */
  close(): Promise<void>;
}

/** Options of `groups.join`. */
export interface GroupJoinOptions extends CallOptions {
  /** 0..255; lower levels recover first (default 0). */
  readonly level?: number;
}

/** Service groups of the cluster (docs/groups.md). */
export interface GroupsClient {
  /** Every group's current view, as this node applied it. */
  list(options?: CallOptions): Promise<GroupViewInfo[]>;
  /**
   * Joins `name` as this node's incarnation (every client of the node shares the membership) and
   * returns a handle. Open `messages()` right after joining to see every message of the new view.
   */
  join(name: string, options?: GroupJoinOptions): Promise<GroupHandle>;
}

/**
 * A joined group. `send` delivers to exactly the members of the view this node has applied, or
 * rejects `VIEW_CHANGED` (nothing delivered); `barrier` resolves once every member of the view
 * reached it, or rejects `VIEW_CHANGED`. `await using` leaves the group.
 */
export interface GroupHandle extends AsyncDisposable {
  readonly name: string;
  /** The group view right after the join. */
  readonly view: GroupViewInfo;
  send(payload: Uint8Array | string, options?: CallOptions): Promise<GroupSendResult>;
  /** This node's deliveries and the group's view changes, in order, starting with the current view. */
  messages(options?: CallOptions): AsyncIterableIterator<GroupItem> & { cancel(): void };
  barrier(name: string, options?: CallOptions): Promise<{ readonly groupViewId: number }>;
  /** Leaves the group (for every client of this node). Idempotent. */
  leave(options?: CallOptions): Promise<void>;
}

/** Converts an `AbortSignal`'s firing into the client's error (`TIMEOUT` for `AbortSignal.timeout`, else `ABORTED`). */
export function abortedError(signal: AbortSignal, what: string): CohortClientError {
  const reason: unknown = signal.reason;
  const timeout = reason instanceof Error && reason.name === 'TimeoutError';
  return new CohortClientError(timeout ? 'TIMEOUT' : 'ABORTED', timeout ? `${what} timed out` : `${what} was aborted`, {
    cause: reason,
  });
}

function callOptions(options: CallOptions | undefined): CallOptions {
  return options?.signal === undefined ? {} : { signal: options.signal };
}

/** Maps an `ApiStream` through `decode`; a decode failure cancels the stream and is thrown. */
class DecodedStream<T> implements AsyncIterableIterator<T> {
  constructor(
    private readonly raw: ApiStream,
    private readonly decode: (v: ApiData) => T,
  ) {}

  async next(): Promise<IteratorResult<T>> {
    const r = await this.raw.next();
    if (r.done === true) return { done: true, value: undefined };
    try {
      return { done: false, value: this.decode(r.value) };
    } catch (e) {
      this.raw.cancel();
      throw e;
    }
  }

  return(): Promise<IteratorResult<T>> {
    this.raw.cancel();
    return Promise.resolve({ done: true, value: undefined });
  }

  cancel(): void {
    this.raw.cancel();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** `CohortClient` over any `ApiChannel`. Owns the channel: `close` closes it. */
export class ApiCohortClient implements CohortClient {
  readonly kv: KvClient;
  readonly groups: GroupsClient;

  constructor(private readonly channel: ApiChannel) {
    const call = <T>(
      method: string,
      params: ApiData,
      decode: (v: ApiData) => T,
      options: CallOptions | undefined,
    ): Promise<T> => this.call(method, params, decode, options);
    this.kv = {
      get: (key, options) => call('kv.get', { key }, decodeKvGet, options),
      put: (key, value, options) => call('kv.put', { key, value }, decodeKvPut, options),
      cas: (key, value, condition, options) => {
        const compare: ApiData =
          'expectedModRevision' in condition
            ? { expectedModRevision: condition.expectedModRevision }
            : { expected: condition.expected };
        return call('kv.cas', { key, value, ...compare }, decodeKvCas, options);
      },
      delete: (key, options) => call('kv.delete', { key }, decodeKvDelete, options),
    };
    this.groups = {
      list: (options) => call('groups', null, decodeGroups, options),
      join: async (name, options = {}) => {
        const view = await call('group.join', { group: name, level: options.level ?? 0 }, decodeGroupJoin, options);
        return this.groupHandle(name, view);
      },
    };
  }

  private groupHandle(name: string, view: GroupViewInfo): GroupHandle {
    const call = <T>(
      method: string,
      params: ApiData,
      decode: (v: ApiData) => T,
      options: CallOptions | undefined,
    ): Promise<T> => this.call(method, params, decode, options);
    let left = false;
    const leave = async (options?: CallOptions): Promise<void> => {
      if (left) return;
      await call('group.leave', { group: name }, () => null, options);
      left = true;
    };
    return {
      name,
      view,
      send: (payload, options) => call('group.send', { group: name, payload }, decodeGroupSend, options),
      messages: (options) =>
        new DecodedStream(
          this.channel.stream('group.messages', { group: name }, callOptions(options)),
          decodeGroupItem,
        ),
      barrier: (barrier, options) => call('group.barrier', { group: name, name: barrier }, decodeGroupBarrier, options),
      leave,
      [Symbol.asyncDispose]: async () => {
        if (this.channel.open) await leave();
      },
    };
  }

  get open(): boolean {
    return this.channel.open;
  }

  private async call<T>(
    method: string,
    params: ApiData,
    decode: (v: ApiData) => T,
    options: CallOptions | undefined,
  ): Promise<T> {
    return decode(await this.channel.request(method, params, callOptions(options)));
  }

  status(options?: CallOptions): Promise<CohortStatus> {
    return this.call('status', null, decodeStatus, options);
  }

  nodes(options?: CallOptions): Promise<NodesResult> {
    return this.call('nodes', null, decodeNodes, options);
  }

  quorum(options?: CallOptions): Promise<QuorumResult> {
    return this.call('quorum', null, decodeQuorum, options);
  }

  events(options: EventsOptions = {}): EventStream {
    const params: ApiData = {
      follow: options.follow ?? true,
      ...(options.fromSeq === undefined ? {} : { fromSeq: options.fromSeq }),
    };
    return new DecodedStream(this.channel.stream('events', params, callOptions(options)), decodeEvent);
  }

  fenceConfirm(node: number, options: FenceConfirmOptions = {}): Promise<FenceConfirmResult> {
    const params: ApiData = {
      node,
      ...(options.incarnation === undefined ? {} : { incarnation: options.incarnation }),
    };
    return this.call('fence.confirm', params, decodeFenceConfirm, options);
  }

  close(): Promise<void> {
    return this.channel.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Connects to the daemon at `options.socket` (or `$COHORT_SOCKET`). Rejects with
 * `DAEMON_UNREACHABLE` (the message names the socket and how to pick another), `TIMEOUT`,
 * `ABORTED`, `VERSION_MISMATCH`, or the daemon's refusal (`OVERLOADED`, `UNAVAILABLE`).
 *
 * ```ts
 * await using client = await connect({ socket: '/run/cohort/cohort.sock' });
 * const { quorate, leaderId } = await client.status({ signal: AbortSignal.timeout(2000) });
 * ```
 */
export async function connect(options: ConnectClientOptions = {}): Promise<CohortClient> {
  const conn = await connectLocal({
    clientName: options.clientName ?? `cohort-client pid ${process.pid}`,
    ...(options.socket === undefined ? {} : { socket: options.socket }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  });
  return new ApiCohortClient(conn);
}
