/**
 * The daemon's HTTP endpoint (only when `metrics` is configured): Prometheus `/metrics` from a
 * private prom-client registry (no global state, no default collectors and their timers), and
 * `/healthz`: 200 with `{"status":"ok",...}` while this node is quorate, 503 with the reason
 * otherwise, so a load balancer or a probe sees at once whether the node may serve.
 *
 * Gauges are computed at scrape time from `ClusterNode.services.membership.status()`; counters are bumped by the
 * daemon from the node's observer. Bounded: label values come from small fixed sets.
 *
 * The endpoint is capped like every listener (docs/daemon.md, "Listener caps"): at most
 * `connectionsMax` connections at once (the daemon passes its descriptor budget's cap, default
 * `HTTP_CONNECTIONS_MAX`); one more is accepted and closed at once, counted in
 * `cohort_connections_refused_total{listener="http"}` and logged rate-limited (`RefusalLog`). A
 * connection that sends nothing for `HTTP_IDLE_MS`, does not finish its request head within
 * `HTTP_HEADERS_TIMEOUT_MS` or its request within `HTTP_REQUEST_TIMEOUT_MS`, or idles between
 * keep-alive requests for `HTTP_KEEP_ALIVE_MS` is closed, so idle connections cannot hold the cap.
 */
import { readdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { Logger } from 'pino';
import { Counter, Gauge, Registry } from 'prom-client';
import {
  HTTP_CONNECTIONS_MAX,
  HTTP_HEADERS_TIMEOUT_MS,
  HTTP_IDLE_MS,
  HTTP_KEEP_ALIVE_MS,
  HTTP_REQUEST_TIMEOUT_MS,
} from '../constants.js';
import { assert } from '../lib/assert.js';
import { CohortError } from '../lib/errors.js';
import type { ApiServerStats } from '../platform/api-server.js';
import { RefusalLog } from '../platform/refusal-log.js';
import type { ClusterStatus, CohortNode } from '../services.js';
import type { FdBudget } from './fd-budget.js';

/** How often node:http looks for connections past their header or request deadline. */
const HTTP_TIMEOUT_CHECK_MS = 1000;

/** Optional parts of the endpoint; the daemon passes all of them. */
export interface MetricsOptions {
  readonly logger?: Logger;
  /** Connections at once (default `HTTP_CONNECTIONS_MAX`). */
  readonly connectionsMax?: number;
  /** The API server's counters, read at scrape time. */
  readonly api?: () => ApiServerStats;
  /** The descriptor budget the daemon started with: its limit and caps become gauges. */
  readonly budget?: FdBudget;
  /** Connections the peer port refused since start (past a handshake budget or its hard cap). */
  readonly peerRefused?: () => number;
}

/** The counters the daemon bumps. */
export interface DaemonCounters {
  readonly detectorDecisions: Counter<'type'>;
  readonly roleChanges: Counter;
  readonly backgroundFailures: Counter;
  /** Repairs recovery made to this node's storage at start (`StorageRepairKind`). */
  readonly storageRepairs: Counter<'kind'>;
  /** Fence device runs of this node's executor, by device and result. */
  readonly fenceAttempts: Counter<'device' | 'result'>;
  /** Unfence (`on`) runs of this node's executor, by device and result. */
  readonly unfenceAttempts: Counter<'device' | 'result'>;
}

/** A running metrics endpoint. */
export interface MetricsEndpoint {
  readonly url: string;
  readonly counters: DaemonCounters;
  /** Connections refused because the cap was reached, since start. */
  readonly refused: () => number;
  close(): Promise<void>;
}

/** Descriptors this process holds now (Linux), or -1 when they cannot be counted (not Linux, or none left to count with). */
function openFds(): number {
  try {
    return readdirSync('/proc/self/fd').length - 1; // minus the one the listing used
  } catch {
    return -1;
  }
}

/** A counter whose value is read at scrape time from `value` (per label set). */
function scrapedCounter<L extends string>(
  registry: Registry,
  name: string,
  help: string,
  labelNames: readonly L[],
  value: () => readonly (readonly [Partial<Record<L, string>>, number])[],
): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [registry],
    collect() {
      this.reset();
      for (const [labels, v] of value()) this.inc(labels, v);
    },
  });
}

function listenerMetrics(registry: Registry, options: MetricsOptions, httpRefused: () => number): void {
  const api = options.api;
  scrapedCounter(
    registry,
    'cohort_connections_refused_total',
    'connections a listener refused: past its cap (api: every slot busy, answered OVERLOADED; peer: past a handshake budget), or a failed accept (EMFILE)',
    ['listener'],
    () => [
      [{ listener: 'http' }, httpRefused()],
      ...(api === undefined ? [] : [[{ listener: 'api' }, api().connectionsRefused] as const]),
      ...(options.peerRefused === undefined ? [] : [[{ listener: 'peer' }, options.peerRefused()] as const]),
    ],
  );
  if (api !== undefined) {
    scrapedCounter(
      registry,
      'cohort_api_clients_closed_total',
      'API clients the daemon closed: idle past the idle timeout, or evicted (idle longest) to give a new client a slot',
      ['reason'],
      () => [
        [{ reason: 'idle' }, api().idleClosures],
        [{ reason: 'evicted' }, api().evictions],
      ],
    );
    new Gauge({
      name: 'cohort_api_clients',
      help: 'API clients connected (slots in use)',
      registers: [registry],
      collect() {
        this.set(api().clients);
      },
    });
  }
  const budget = options.budget;
  if (budget !== undefined) {
    const caps = new Gauge({
      name: 'cohort_listener_connections_max',
      help: 'connections each listener accepts at once (its cap from the descriptor budget)',
      labelNames: ['listener'] as const,
      registers: [registry],
    });
    caps.set({ listener: 'http' }, budget.caps.http);
    caps.set({ listener: 'api' }, budget.caps.apiConnections);
    caps.set({ listener: 'peer' }, budget.caps.peerConnections);
    new Gauge({
      name: 'cohort_open_fds_limit',
      help: 'the open-file limit the daemon started with (the descriptor budget is sized from it)',
      registers: [registry],
    }).set(Number.isFinite(budget.limit) ? budget.limit : -1);
  }
  new Gauge({
    name: 'cohort_open_fds',
    help: 'descriptors the daemon holds now (-1 when they cannot be counted)',
    registers: [registry],
    collect() {
      this.set(openFds());
    },
  });
}

function gauges(registry: Registry, node: () => CohortNode | null): void {
  const status = (): ClusterStatus | null => node()?.services.membership.status() ?? null;
  const gauge = (name: string, help: string, value: (s: ClusterStatus) => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const s = status();
        if (s !== null) this.set(value(s));
      },
    });
  };
  gauge(
    'cohort_quorate',
    '1 when this node is quorate (local verdict: lease or recent leader contact, and a quorate view)',
    (s) => (s.quorate ? 1 : 0),
  );
  gauge('cohort_is_leader', '1 when this node leads the cluster log', (s) => (s.role === 'leader' ? 1 : 0));
  gauge('cohort_view_id', 'id of the membership view applied on this node', (s) => s.viewId);
  gauge('cohort_view_members', 'members of the applied view', (s) => s.members.length);
  gauge('cohort_raft_term', 'current Raft term', (s) => s.term);
  gauge('cohort_raft_commit_index', 'highest log index known committed', (s) => s.commitIndex);
  gauge('cohort_raft_applied_index', 'highest log index applied on this node', (s) => s.appliedIndex);
  gauge('cohort_votes_present', 'votes of the view members (corosync: total votes)', (s) => s.totalVotes);
  gauge('cohort_votes_expected', 'expected votes', (s) => s.expectedVotes);
  gauge('cohort_incarnation', "this run's incarnation", (s) => s.incarnation);
  const pendingFences = (): number => node()?.services.membership.machine.pendingFences().length ?? 0;
  new Gauge({
    name: 'cohort_fences_pending',
    help: 'fences not recorded yet (nodes removed uncleanly whose state may not be recovered before)',
    registers: [registry],
    collect() {
      this.set(pendingFences());
    },
  });
}

/**
 * Starts the endpoint on `host:port`. `node` is read at each request: while it is null (the
 * daemon binds the port before its node starts) `/healthz` answers 503 `starting` and `/metrics`
 * shows the node's gauges at 0. Rejects with `CohortError` `METRICS_LISTEN` (e.g. the port is
 * taken) whose `cause` is the system error.
 */
export async function startMetrics(
  host: string,
  port: number,
  node: () => CohortNode | null,
  options: MetricsOptions = {},
): Promise<MetricsEndpoint> {
  const connectionsMax = options.connectionsMax ?? HTTP_CONNECTIONS_MAX;
  assert(Number.isInteger(connectionsMax) && connectionsMax >= 1, 'the HTTP cap is a positive count');
  const shownHost = host.includes(':') ? `[${host}]` : host;
  const refusals = new RefusalLog(`metrics http ${shownHost}:${port}`, options.logger);
  const registry = new Registry();
  gauges(registry, node);
  listenerMetrics(registry, options, () => refusals.refused);
  const counters: DaemonCounters = {
    detectorDecisions: new Counter({
      name: 'cohort_detector_decisions_total',
      help: 'failure detector decisions made while leading, by type',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    roleChanges: new Counter({
      name: 'cohort_role_changes_total',
      help: 'Raft role or leader changes seen',
      registers: [registry],
    }),
    backgroundFailures: new Counter({
      name: 'cohort_background_proposal_failures_total',
      help: 'failed join/configure/detector proposals (each is retried)',
      registers: [registry],
    }),
    storageRepairs: new Counter({
      name: 'cohort_storage_repairs_total',
      help: "repairs made to this node's storage at start (cut torn WAL tail, discarded WAL, skipped snapshot, lost stable state), by kind",
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    fenceAttempts: new Counter({
      name: 'cohort_fence_attempts_total',
      help: "fence device runs by this node's executor (while leading), by device and result (ok, failed, timed-out, error)",
      labelNames: ['device', 'result'] as const,
      registers: [registry],
    }),
    unfenceAttempts: new Counter({
      name: 'cohort_unfence_attempts_total',
      help: "unfence (on) runs of storage fence devices by this node's executor (while leading), by device and result (ok, failed, timed-out, error)",
      labelNames: ['device', 'result'] as const,
      registers: [registry],
    }),
  };
  const server: Server = createServer(
    {
      headersTimeout: HTTP_HEADERS_TIMEOUT_MS,
      requestTimeout: HTTP_REQUEST_TIMEOUT_MS,
      keepAliveTimeout: HTTP_KEEP_ALIVE_MS,
      connectionsCheckingInterval: HTTP_TIMEOUT_CHECK_MS,
    },
    (req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method !== 'GET') {
        res.writeHead(405, { allow: 'GET' }).end('only GET\n');
        return;
      }
      if (path === '/metrics') {
        registry.metrics().then(
          (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
          (e: unknown) => res.writeHead(500).end(`metrics failed: ${e instanceof Error ? e.message : String(e)}\n`),
        );
        return;
      }
      if (path === '/healthz') {
        const s = node()?.services.membership.status();
        if (s === undefined) {
          res.writeHead(503, { 'content-type': 'application/json' }).end('{"status":"starting"}\n');
          return;
        }
        const body = JSON.stringify({
          status: s.quorate ? 'ok' : 'not-quorate',
          nodeId: s.nodeId,
          quorate: s.quorate,
          reason: s.quorumExplanation,
        });
        res.writeHead(s.quorate ? 200 : 503, { 'content-type': 'application/json' }).end(`${body}\n`);
        return;
      }
      res.writeHead(404).end('try /metrics or /healthz\n');
    },
  );
  // Idle sockets (nothing received, e.g. a flood of bare connects) are destroyed after this.
  server.timeout = HTTP_IDLE_MS;
  // node:net accepts and closes at once past the cap, then emits 'drop'.
  server.maxConnections = connectionsMax;
  server.on('drop', () => {
    refusals.note(`at most ${connectionsMax} connections at once`);
  });
  await new Promise<void>((resolve, reject) => {
    const onError = (e: Error): void => {
      reject(
        new CohortError(
          'METRICS_LISTEN',
          `cannot serve metrics on ${host}:${port}: ${e.message}; pick another metrics.port or stop what uses it`,
          { cause: e },
        ),
      );
    };
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  // After listening, an error is a failed accept (e.g. EMFILE): that connection is refused.
  server.on('error', (e: NodeJS.ErrnoException) => {
    refusals.note(`accept failed: ${e.code ?? e.message}`);
  });
  const bound = server.address();
  return {
    // The bound port: `port` 0 (tests) picks a free one.
    url: `http://${shownHost}:${typeof bound === 'object' && bound !== null ? bound.port : port}/metrics`,
    counters,
    refused: () => refusals.refused,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}
