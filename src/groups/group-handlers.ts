/**
 * The local API's service-group methods (docs/groups.md, docs/api.md):
 *
 * - `groups` -> every group's view `[{group, groupViewId, level, members: [{node, incarnation, level}]}]`.
 * - `group.join {group, level?}` -> the group view after the join; `GROUP_LEVEL_MISMATCH` when the
 *   group exists with another level (its level is set by the join that created it). Membership is per node
 *   incarnation: every client of this daemon shares it, and `group.leave` leaves for all of them.
 * - `group.leave {group}` -> null.
 * - `group.send {group, payload}` (bytes or a string) -> `{groupViewId, seq}`; `VIEW_CHANGED` when
 *   the view changed before the message was ordered (nothing was delivered).
 * - `group.barrier {group, name}` -> `{groupViewId}` once every member of the view reached it;
 *   `VIEW_CHANGED` when the view changed first. Cancelling the call stops waiting (the arrival
 *   stays recorded).
 * - stream `group.messages {group}` -> first `{kind: 'view', ...}` with the current view (or
 *   `{kind: 'view', members: []}` when the group has none), then, in apply order, every message
 *   this node delivers for the group (`{kind: 'message', groupViewId, seq, from, payload}`) and
 *   every view change (`{kind: 'view', groupViewId, members, change}`).
 */
import { ApiError, type ApiData, type ApiHandlerRegistry } from '../api/index.js';
import { assertNever } from '../lib/assert.js';
import type { Result } from '../lib/errors.js';
import { GROUP_LEVEL_MAX } from '../constants.js';
import type { RaftNodeError } from '../runtime/raft-node.js';
import { apiErrorOf, callApi, params, toApiData } from '../runtime/shared-handlers.js';
import { GroupError } from './group-error.js';
import type { GroupService, GroupStreamItem } from './group-service.js';

const textEncoder = new TextEncoder();

function stringParam(p: Readonly<Record<string, ApiData>>, name: string, method: string): string {
  const v = p[name];
  if (typeof v !== 'string') throw new ApiError('INVALID_ARGUMENT', `${method}: params.${name} must be a string`);
  return v;
}

/** Maps a group request's failure to the API's codes, keeping the explanation. */
export function groupApiError(e: RaftNodeError | GroupError): ApiError {
  if (!(e instanceof GroupError)) return apiErrorOf(e);
  const code = e.code;
  switch (code) {
    case 'VIEW_CHANGED':
      return new ApiError('VIEW_CHANGED', e.message);
    case 'NOT_MEMBER':
      return new ApiError('NOT_MEMBER', e.message);
    case 'NO_SUCH_GROUP':
      return new ApiError('NOT_FOUND', e.message);
    case 'GROUP_LEVEL_MISMATCH':
      return new ApiError('GROUP_LEVEL_MISMATCH', e.message);
    case 'NOT_IN_VIEW':
      return new ApiError('UNAVAILABLE', e.message);
    case 'LIMIT':
      return new ApiError('OVERLOADED', e.message);
    case 'INVALID':
      return new ApiError('INVALID_ARGUMENT', e.message);
    default:
      return assertNever(code, 'group error code');
  }
}

function call<T>(run: (done: (r: Result<T, RaftNodeError | GroupError>) => void) => void): Promise<T> {
  return callApi(run, groupApiError);
}

function itemData(item: GroupStreamItem): ApiData {
  if (item.kind === 'message')
    return { kind: 'message', groupViewId: item.groupViewId, seq: item.seq, from: item.from, payload: item.payload };
  return toApiData({
    kind: 'view',
    groupViewId: item.view.groupViewId,
    members: item.view.members,
    change: item.view.change,
  });
}

/** Registers the group methods on `server` for `groups`. */
export function registerGroupApi(server: ApiHandlerRegistry, groups: GroupService): void {
  server.register('groups', () => toApiData(groups.list()));
  server.register('group.join', async (p) => {
    const q = params(p, 'group.join');
    const group = stringParam(q, 'group', 'group.join');
    const level = q['level'] ?? 0;
    if (typeof level !== 'number' || !Number.isInteger(level) || level < 0 || level > GROUP_LEVEL_MAX)
      throw new ApiError(
        'INVALID_ARGUMENT',
        `group.join: params.level must be an integer from 0 to ${GROUP_LEVEL_MAX}`,
      );
    return toApiData(
      await call((done) => {
        groups.join(group, level, done);
      }),
    );
  });
  server.register('group.leave', async (p) => {
    const group = stringParam(params(p, 'group.leave'), 'group', 'group.leave');
    await call((done) => {
      groups.leave(group, done);
    });
    return null;
  });
  server.register('group.send', async (p) => {
    const q = params(p, 'group.send');
    const group = stringParam(q, 'group', 'group.send');
    const raw = q['payload'];
    const payload = typeof raw === 'string' ? textEncoder.encode(raw) : raw instanceof Uint8Array ? raw : null;
    if (payload === null)
      throw new ApiError('INVALID_ARGUMENT', 'group.send: params.payload must be bytes or a string');
    return toApiData(
      await call((done) => {
        groups.send(group, payload, done);
      }),
    );
  });
  server.register('group.barrier', (p, ctx) => {
    const q = params(p, 'group.barrier');
    const group = stringParam(q, 'group', 'group.barrier');
    const name = stringParam(q, 'name', 'group.barrier');
    return new Promise<ApiData>((resolve, reject) => {
      const done = (r: Result<{ readonly groupViewId: number }, RaftNodeError | GroupError>): void => {
        ctx.signal.removeEventListener('abort', onAbort);
        if (r.ok) resolve(toApiData(r.value));
        else reject(groupApiError(r.error));
      };
      const onAbort = (): void => {
        groups.cancelBarrierWait(group, name, done);
        reject(
          new ApiError(
            'CANCELLED',
            `group.barrier ${group}/${name}: the caller stopped waiting (its arrival stays recorded)`,
          ),
        );
      };
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      groups.barrier(group, name, done);
    });
  });
  server.registerStream('group.messages', (p, _ctx, sink) => {
    const group = stringParam(params(p, 'group.messages'), 'group', 'group.messages');
    const view = groups.group(group);
    sink.push(toApiData({ kind: 'view', groupViewId: view?.groupViewId ?? 0, members: view?.members ?? [] }));
    return groups.subscribe(group, (item) => {
      sink.push(itemData(item));
    });
  });
}
