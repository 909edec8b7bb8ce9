/**
 * The membership service's local API methods (docs/api.md): `quorum` (the local verdict and the
 * view's arbitration), `fence.confirm {node, incarnation?}` (the manual fence agent), and the
 * `events {fromSeq?, follow?}` stream of membership, quorum, group and barrier events.
 */
import { ApiError, type ApiData, type ApiHandlerRegistry, type StreamSink } from '../api/index.js';
import { MEMBERSHIP_EVENTS_READ_MAX } from '../constants.js';
import { NODE_ID_MAX, nodeId } from '../lib/ids.js';
import { apiErrorOf, params, toApiData } from '../runtime/shared-handlers.js';
import type { MembershipEvent } from './membership-event.js';
import type { MembershipService } from './membership-service.js';
import { FenceConfirmError } from './membership-status.js';

/** Registers `quorum`, `fence.confirm` and `events` for `membership`. */
export function registerMembershipApi(server: ApiHandlerRegistry, membership: MembershipService): void {
  server.register('quorum', () => {
    const s = membership.status();
    const a = membership.arbitration();
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
  server.register('fence.confirm', (p) => fenceConfirm(params(p, 'fence.confirm'), membership));
  server.registerStream('events', (p, _ctx, sink) => eventStream(params(p, 'events'), membership, sink));
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
function fenceConfirm(p: Readonly<Record<string, ApiData>>, membership: MembershipService): Promise<ApiData> {
  const id = integerParam(p, 'node', 1, NODE_ID_MAX, 'fence.confirm');
  if (id === null)
    throw new ApiError('INVALID_ARGUMENT', 'fence.confirm: params.node (the node id to confirm fenced) is required');
  const inc = integerParam(p, 'incarnation', 1, Number.MAX_SAFE_INTEGER, 'fence.confirm');
  return new Promise<ApiData>((resolve, reject) => {
    membership.fenceConfirm(nodeId(id), inc, (r) => {
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
  membership: MembershipService,
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
        const oldest = membership.eventsFrom(1, 1);
        next = oldest.ok ? 1 : oldest.error.oldestSeq;
      }
      const page = membership.eventsFrom(next, MEMBERSHIP_EVENTS_READ_MAX);
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
  return membership.subscribe(() => {
    pump();
  });
}
