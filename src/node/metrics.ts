/**
 * The daemon's HTTP endpoint (only when `metrics` is configured): Prometheus `/metrics` from a
 * private prom-client registry (no global state, no default collectors and their timers), and
 * `/healthz`: 200 with `{"status":"ok",...}` while this node is quorate, 503 with the reason
 * otherwise, so a load balancer or a probe sees at once whether the node may serve.
 *
 * Gauges are computed at scrape time from `ClusterNode.services.membership.status()`; counters are bumped by the
 * daemon from the node's observer. Bounded: label values come from small fixed sets.
 */
import { createServer, type Server } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import { CohortError } from '../lib/errors.js';
import type { ClusterStatus, CohortNode } from '../services.js';

/** The counters the daemon bumps. */
export interface DaemonCounters {
  readonly detectorDecisions: Counter<'type'>;
  readonly roleChanges: Counter;
  readonly backgroundFailures: Counter;
  /** Repairs recovery made to this node's storage at start (`StorageRepairKind`). */
  readonly storageRepairs: Counter<'kind'>;
}

/** A running metrics endpoint. */
export interface MetricsEndpoint {
  readonly url: string;
  readonly counters: DaemonCounters;
  close(): Promise<void>;
}

function gauges(registry: Registry, node: CohortNode): void {
  const status = (): ClusterStatus => node.services.membership.status();
  const gauge = (name: string, help: string, value: () => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(value());
      },
    });
  };
  gauge(
    'cohort_quorate',
    '1 when this node is quorate (local verdict: lease or recent leader contact, and a quorate view)',
    () => (status().quorate ? 1 : 0),
  );
  gauge('cohort_is_leader', '1 when this node leads the cluster log', () => (status().role === 'leader' ? 1 : 0));
  gauge('cohort_view_id', 'id of the membership view applied on this node', () => status().viewId);
  gauge('cohort_view_members', 'members of the applied view', () => status().members.length);
  gauge('cohort_raft_term', 'current Raft term', () => status().term);
  gauge('cohort_raft_commit_index', 'highest log index known committed', () => status().commitIndex);
  gauge('cohort_raft_applied_index', 'highest log index applied on this node', () => status().appliedIndex);
  gauge('cohort_votes_present', 'votes of the view members (corosync: total votes)', () => status().totalVotes);
  gauge('cohort_votes_expected', 'expected votes', () => status().expectedVotes);
  gauge('cohort_incarnation', "this run's incarnation", () => status().incarnation);
}

/** Starts the endpoint on `host:port`. Rejects with `CohortError` `METRICS_LISTEN` (e.g. the port is taken). */
export async function startMetrics(host: string, port: number, node: CohortNode): Promise<MetricsEndpoint> {
  const registry = new Registry();
  gauges(registry, node);
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
  };
  const server: Server = createServer((req, res) => {
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
      const s = node.services.membership.status();
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
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e) => {
      reject(
        new CohortError(
          'METRICS_LISTEN',
          `cannot serve metrics on ${host}:${port}: ${e.message}; pick another metrics.port or stop what uses it`,
          { cause: e },
        ),
      );
    });
    server.listen({ host, port }, resolve);
  });
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${port}/metrics`,
    counters,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}
