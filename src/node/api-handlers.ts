/**
 * The daemon's own local API methods (docs/api.md, docs/daemon.md): `status` and `nodes`, which
 * add what only the daemon knows (cluster name, settings fingerprint, uptime, peer links) to the
 * membership service's view; then every service registers its own methods (`NodeService.registerApi`:
 * `kv.*` in src/kv, `group.*` in src/groups, `quorum`, `fence.confirm` and `events` in
 * src/membership).
 */
import type { ApiHandlerRegistry } from '../api/index.js';
import type { PeerLinkStatus } from '../platform/tcp-transport.js';
import { toApiData } from '../runtime/shared-handlers.js';
import type { CohortNode } from '../services.js';

/** Extra daemon facts the handlers show. */
export interface DaemonFacts {
  readonly clusterName: string;
  readonly fingerprint: string;
  readonly startedAtMs: number;
  readonly links: () => readonly PeerLinkStatus[];
}

/** Registers the daemon's own methods (`status`, `nodes`), then every service's, on `server`. */
export function registerApiHandlers(server: ApiHandlerRegistry, node: CohortNode, facts: DaemonFacts): void {
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
  for (const service of node.serviceList) service.registerApi?.(server);
}
