/**
 * The typed client library: `connect({socket})` returns a `CohortClient` whose methods return
 * typed, validated results instead of raw API data.
 *
 * `CohortClient` composes the services' client namespaces, each in its service's folder and
 * written against the pure `ApiCaller` (`src/api/api-caller.ts`): `kv` (`src/kv/kv-client.ts`),
 * `groups` (`src/groups/group-client.ts`), `recovery` (`src/recovery/recovery-client.ts`), `dlm`
 * (`src/dlm/dlm-client.ts`), and the
 * membership service's `quorum`, `events` and
 * `fenceConfirm` (`src/membership/membership-client.ts`); the daemon's own `status` and `nodes`
 * are here (`client-results.ts`). A new service adds its namespace in its folder and one field
 * here.
 *
 * `CohortClient` is an interface with one implementation, `ApiCohortClient`, over an
 * `ApiChannel`: the daemon's Unix socket (`ClientConnection`, from `connect`) or the in-process
 * dispatcher of embedded mode (`src/embedded`, which calls the very handlers the daemon
 * registers). So both modes decode, validate and fail identically, and a method added to a
 * namespace works in both.
 *
 * Errors: every call rejects with `CohortClientError` only; `code` is stable (docs/api.md,
 * docs/client.md). Every call takes `{signal}`; aborting it rejects with `ABORTED` (or `TIMEOUT`
 * for an `AbortSignal.timeout`) and tells the daemon to cancel. A client never reconnects by
 * itself: after `CONNECTION_LOST`, connect again.
 */
import { type ApiCaller, callDecoded, type CallOptions } from '../api/index.js';
import { groupsClient, type GroupsClient } from '../groups/group-client.js';
import { kvClient, type KvClient } from '../kv/kv-client.js';
import { recoveryClient, type RecoveryClient } from '../recovery/recovery-client.js';
import { fencingClient, type FencingClient } from '../fencing/fence-client.js';
import { dlmClient, type DlmClient } from '../dlm/dlm-client.js';
import {
  membershipClient,
  type EventsOptions,
  type EventStream,
  type FenceConfirmOptions,
  type FenceConfirmResult,
  type MembershipClient,
  type QuorumResult,
} from '../membership/membership-client.js';
import { connectLocal } from './client-connection.js';
import { decodeNodes, decodeStatus, type CohortStatus, type NodesResult } from './client-results.js';

/**
 * What the typed client needs from a connection: the services' `ApiCaller` (request, stream,
 * `open`) plus close. Implemented by `ClientConnection` (Unix socket) and by embedded mode's
 * in-process channel. Contract: errors are `CohortClientError`; a call after `close()` fails with
 * `CLOSED`; a lost peer fails every open and later call with `CONNECTION_LOST` (or the daemon's
 * `UNAVAILABLE`).
 */
export interface ApiChannel extends ApiCaller {
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

/**
 * A client of one node: over its Unix socket (`connect`) or in-process (`startCluster(...).client(id)`).
 * Errors are `CohortClientError` with a stable `code` (docs/client.md). `await using` closes it.
 * The membership service's methods (`quorum`, `events`, `fenceConfirm`) come from `MembershipClient`.
 */
export interface CohortClient extends MembershipClient, AsyncDisposable {
  /** True until closed or the connection is lost. */
  readonly open: boolean;
  /** This node's view of the cluster: leader, term, view, quorum, members. */
  status(options?: CallOptions): Promise<CohortStatus>;
  /** Every configured node with its membership state and this node's link to it. */
  nodes(options?: CallOptions): Promise<NodesResult>;
  readonly kv: KvClient;
  /** Service groups (docs/groups.md): list, and join returning a handle. */
  readonly groups: GroupsClient;
  /** Recovery rounds (docs/recovery.md): what each group's recovery waits for, and taking part in one. */
  readonly recovery: RecoveryClient;
  /** Fencing (docs/fencing.md): the fence history, and fencing a member now. */
  readonly fencing: FencingClient;
  /** The distributed lock manager (docs/dlm.md): lockspaces and locks owned by this client's session. */
  readonly dlm: DlmClient;
  /** Closes the connection; open calls reject with `CLOSED`. Idempotent. */
  close(): Promise<void>;
}

/** `CohortClient` over any `ApiChannel`. Owns the channel: `close` closes it. */
export class ApiCohortClient implements CohortClient {
  readonly kv: KvClient;
  readonly groups: GroupsClient;
  readonly recovery: RecoveryClient;
  readonly fencing: FencingClient;
  readonly dlm: DlmClient;
  private readonly membership: MembershipClient;

  constructor(private readonly channel: ApiChannel) {
    this.kv = kvClient(channel);
    this.groups = groupsClient(channel);
    this.recovery = recoveryClient(channel);
    this.fencing = fencingClient(channel);
    this.dlm = dlmClient(channel);
    this.membership = membershipClient(channel);
  }

  get open(): boolean {
    return this.channel.open;
  }

  status(options?: CallOptions): Promise<CohortStatus> {
    return callDecoded(this.channel, 'status', null, decodeStatus, options);
  }

  nodes(options?: CallOptions): Promise<NodesResult> {
    return callDecoded(this.channel, 'nodes', null, decodeNodes, options);
  }

  quorum(options?: CallOptions): Promise<QuorumResult> {
    return this.membership.quorum(options);
  }

  events(options?: EventsOptions): EventStream {
    return this.membership.events(options);
  }

  fenceConfirm(node: number, options?: FenceConfirmOptions): Promise<FenceConfirmResult> {
    return this.membership.fenceConfirm(node, options);
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
