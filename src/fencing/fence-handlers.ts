/**
 * The fencing service's local API methods (docs/fencing.md, docs/api.md):
 *
 * - `fence.history {limit?, node?}` -> `{pending: [record], finished: [record]}`: every open fence
 *   (what it waits for, every attempt so far) and the newest finished ones (newest first), from
 *   this node's applied ledger. A record: `{node, name, incarnation, request: {reason, index},
 *   attempts: [{executor, level, device, agent, action, result, exitCode?, durationMs, excerpt,
 *   atMs, round}], attemptsDropped, round, outcome: {state: 'pending'} | {state: 'fenced', proof,
 *   index}, unfence, activity?}`; `activity` (on the leader only) says what its executor does now.
 * - `fence.now {node, note?}` -> `{node, incarnation, outcome}`: fence a member now (`cohort fence
 *   NODE`): the leader fails its incarnation (reason: an operator), which opens its fence record,
 *   and the executor runs the topology. `INVALID_ARGUMENT` when the node is not a member (a node
 *   waiting for a fence is being fenced already: see `fence.history`).
 */
import { ApiError, type ApiData, type ApiHandlerRegistry } from '../api/index.js';
import { NODE_ID_MAX, nodeId } from '../lib/ids.js';
import { callApi, params, toApiData } from '../runtime/shared-handlers.js';
import type { FenceRecord } from './fence-ledger.js';
import type { FenceActivity, FenceService } from './fence-service.js';
import { FENCE_HISTORY_KEPT } from '../constants.js';

/** Bytes of the operator's note kept with a `fence.now` failure. */
const NOTE_BYTES_MAX = 200;

function recordData(r: FenceRecord, name: string, activity: FenceActivity | undefined): ApiData {
  return toApiData({
    node: r.node,
    name,
    incarnation: r.incarnation,
    request: r.request,
    attempts: r.attempts,
    attemptsDropped: r.attemptsDropped,
    round: r.round,
    outcome: r.outcome,
    unfence: r.unfence,
    ...(activity === undefined ? {} : { activity: activity.step }),
  });
}

function intParam(p: Readonly<Record<string, ApiData>>, name: string, method: string, max: number): number | undefined {
  const v = p[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > max)
    throw new ApiError('INVALID_ARGUMENT', `${method}: params.${name} must be an integer from 1 to ${max}`);
  return v;
}

/** Registers `fence.history` and `fence.now`. */
export function registerFenceApi(server: ApiHandlerRegistry, fencing: FenceService): void {
  const nameOf = (node: number): string => fencing.nodeName(nodeId(node));

  server.register('fence.history', (p) => {
    const q = p === null ? {} : params(p, 'fence.history');
    const limit = intParam(q, 'limit', 'fence.history', FENCE_HISTORY_KEPT) ?? FENCE_HISTORY_KEPT;
    const node = intParam(q, 'node', 'fence.history', NODE_ID_MAX);
    const activity = new Map(fencing.activity().map((a) => [`${a.node}/${a.incarnation}`, a]));
    const keep = (r: FenceRecord): boolean => node === undefined || r.node === node;
    return {
      pending: fencing
        .pendingFences()
        .filter(keep)
        .map((r) => recordData(r, nameOf(r.node), activity.get(`${r.node}/${r.incarnation}`))),
      finished: fencing
        .fenceHistory(limit)
        .filter((r) => r.outcome.state !== 'pending' && keep(r))
        .map((r) => recordData(r, nameOf(r.node), undefined)),
    };
  });

  server.register('fence.now', async (p) => {
    const q = params(p, 'fence.now');
    const id = intParam(q, 'node', 'fence.now', NODE_ID_MAX);
    if (id === undefined)
      throw new ApiError('INVALID_ARGUMENT', 'fence.now: params.node (the node id to fence) is required');
    const note = typeof q['note'] === 'string' ? q['note'].slice(0, NOTE_BYTES_MAX) : '';
    const incarnation = fencing.memberIncarnation(nodeId(id));
    if (incarnation === null) {
      const pending = fencing.pendingFences().find((r) => r.node === id);
      throw new ApiError(
        'INVALID_ARGUMENT',
        pending === undefined
          ? `fence.now: node ${id} is not a member of the view, so there is nothing to fence (see \`cohort nodes\`)`
          : `fence.now: node ${id} is being fenced already (incarnation ${pending.incarnation}, round ${pending.round}); see \`cohort fence history\`, or \`cohort fence confirm ${id}\` once it is off`,
      );
    }
    const out = await callApi<{ readonly outcome: string }>((done) => {
      fencing.fenceNow(nodeId(id), incarnation, note === '' ? 'fenced on request (cohort fence)' : note, done);
    });
    return { node: id, incarnation, outcome: out.outcome };
  });
}
