/**
 * The DLM's local API methods (docs/api.md, "DLM"), shared by the daemon's Unix socket and
 * embedded mode:
 *
 * - `dlm.session` (stream): opens a lock session. Its first item is `{kind: 'session', session}`;
 *   then every completion, blocking notification and pause of the session's locks, in order.
 *   Closing the stream (the client disconnects, or its process dies) closes the session: its locks
 *   are released at once, or orphaned when PERSISTENT.
 * - `dlm.open {lockspace}`: joins the lockspace on this node (answers once a member).
 * - `dlm.lock {session, lockspace, resource, mode, flags, bast, timeoutMs}` → `{lkid}`;
 *   `dlm.convert {session, lockspace, lkid, mode, flags, lvb, timeoutMs}`, `dlm.unlock {session,
 *   lockspace, lkid, flags, lvb}`, `dlm.cancel {session, lockspace, lkid}` → null. An accepted call
 *   is answered by exactly one completion on the session stream (none for a moot cancel).
 * - `dlm.lockspaces` and `dlm.dump {lockspace}`: what this node holds, masters and directs.
 *
 * Modes travel by name (`NL`..`EX`), flags as `LKF` bits, value blocks as bytes.
 */
import { ApiError, type ApiData, type ApiHandlerRegistry } from '../api/index.js';
import { assertNever } from '../lib/assert.js';
import type { Result } from '../lib/errors.js';
import { DLM_LVB_BYTES_MAX } from '../constants.js';
import { callApi, params, toApiData } from '../runtime/shared-handlers.js';
import type { DlmError, DlmEvent } from './dlm-core.js';
import type { DlmService } from './dlm-service.js';
import { parseMode } from './lock-modes.js';
import { LKF_ALL, MODE_NAMES, type LockMode } from './lock-types.js';

/** The API error of a refused lock call. */
export function dlmApiError(e: DlmError): ApiError {
  switch (e.code) {
    case 'INVALID':
      return new ApiError('INVALID_ARGUMENT', e.message);
    case 'BUSY':
      return new ApiError('BUSY', e.message);
    case 'NOT_FOUND':
    case 'NO_LOCKSPACE':
      return new ApiError('NOT_FOUND', e.message);
    case 'LIMIT':
      return new ApiError('OVERLOADED', e.message);
    default:
      return assertNever(e.code, 'DLM error code');
  }
}

function unwrap<T>(r: Result<T, DlmError>): T {
  if (!r.ok) throw dlmApiError(r.error);
  return r.value;
}

function str(q: Readonly<Record<string, ApiData>>, name: string, method: string): string {
  const v = q[name];
  if (typeof v !== 'string' || v.length === 0)
    throw new ApiError('INVALID_ARGUMENT', `${method}: params.${name} must be a non-empty string`);
  return v;
}

function int(
  q: Readonly<Record<string, ApiData>>,
  name: string,
  method: string,
  min: number,
  max: number,
  dflt?: number,
): number {
  const v = q[name] ?? dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    throw new ApiError('INVALID_ARGUMENT', `${method}: params.${name} must be an integer from ${min} to ${max}`);
  return v;
}

function mode(q: Readonly<Record<string, ApiData>>, method: string): LockMode {
  const v = q['mode'];
  const m = typeof v === 'string' ? parseMode(v) : null;
  if (m === null)
    throw new ApiError('INVALID_ARGUMENT', `${method}: params.mode must be one of ${MODE_NAMES.join(', ')}`);
  return m;
}

function lvb(q: Readonly<Record<string, ApiData>>, method: string): Uint8Array | null {
  const v = q['lvb'];
  if (v === undefined || v === null) return null;
  if (!(v instanceof Uint8Array) || v.length > DLM_LVB_BYTES_MAX)
    throw new ApiError('INVALID_ARGUMENT', `${method}: params.lvb must be at most ${DLM_LVB_BYTES_MAX} bytes`);
  return v;
}

function timeout(q: Readonly<Record<string, ApiData>>, method: string): { timeoutMs?: number } {
  return q['timeoutMs'] === undefined || q['timeoutMs'] === null
    ? {}
    : { timeoutMs: int(q, 'timeoutMs', method, 1, 2 ** 31) };
}

/** The API form of a session event. */
export function eventData(e: DlmEvent): ApiData {
  switch (e.kind) {
    case 'completion':
      return toApiData({
        kind: 'completion',
        lockspace: e.ls,
        lkid: e.lkid,
        status: e.status,
        mode: e.mode === null ? null : MODE_NAMES[e.mode],
        sbflags: e.sbflags,
        lvb: e.lvb,
      });
    case 'bast':
      return toApiData({ kind: 'bast', lockspace: e.ls, lkid: e.lkid, mode: MODE_NAMES[e.mode] });
    case 'paused':
      return toApiData({ kind: 'paused', lockspace: e.ls, paused: e.paused, why: e.why });
    default:
      return assertNever(e, 'DLM event');
  }
}

/** Registers the DLM methods on `server`. */
export function registerDlmApi(server: ApiHandlerRegistry, dlm: DlmService): void {
  /** Session -> the connection that opened it (a session is used only by its own connection). */
  const owners = new Map<number, number>();
  const session = (q: Readonly<Record<string, ApiData>>, method: string, clientId: number): number => {
    const s = int(q, 'session', method, 1, Number.MAX_SAFE_INTEGER);
    if (owners.get(s) !== clientId)
      throw new ApiError(
        'NOT_FOUND',
        `${method}: session ${s} is not open on this connection (open dlm.session first)`,
      );
    return s;
  };
  const done = <T>(r: Result<T, DlmError>): T => {
    dlm.flush();
    return unwrap(r);
  };

  server.registerStream('dlm.session', (_p, ctx, sink) => {
    const s = dlm.openSession((e) => {
      sink.push(eventData(e));
    });
    owners.set(s, ctx.clientId);
    sink.push(toApiData({ kind: 'session', session: s }));
    return () => {
      owners.delete(s);
      dlm.closeSession(s);
    };
  });
  server.register('dlm.open', async (p) => {
    const q = params(p, 'dlm.open');
    const name = str(q, 'lockspace', 'dlm.open');
    await callApi<undefined, DlmError>((d) => {
      dlm.openLockspace(name, d);
    }, dlmApiError);
    return null;
  });
  server.register('dlm.lock', (p, ctx) => {
    const m = 'dlm.lock';
    const q = params(p, m);
    const s = session(q, m, ctx.clientId);
    const lkid = done(
      dlm.core.lock(s, str(q, 'lockspace', m), str(q, 'resource', m), mode(q, m), int(q, 'flags', m, 0, LKF_ALL, 0), {
        bast: q['bast'] === true,
        ...timeout(q, m),
      }),
    );
    return toApiData({ lkid });
  });
  server.register('dlm.convert', (p, ctx) => {
    const m = 'dlm.convert';
    const q = params(p, m);
    const s = session(q, m, ctx.clientId);
    done(
      dlm.core.convert(
        s,
        str(q, 'lockspace', m),
        int(q, 'lkid', m, 1, Number.MAX_SAFE_INTEGER),
        mode(q, m),
        int(q, 'flags', m, 0, LKF_ALL, 0),
        { lvb: lvb(q, m), ...timeout(q, m), ...(typeof q['bast'] === 'boolean' ? { bast: q['bast'] } : {}) },
      ),
    );
    return null;
  });
  server.register('dlm.unlock', (p, ctx) => {
    const m = 'dlm.unlock';
    const q = params(p, m);
    const s = session(q, m, ctx.clientId);
    done(
      dlm.core.unlock(
        s,
        str(q, 'lockspace', m),
        int(q, 'lkid', m, 1, Number.MAX_SAFE_INTEGER),
        int(q, 'flags', m, 0, LKF_ALL, 0),
        lvb(q, m),
      ),
    );
    return null;
  });
  server.register('dlm.cancel', (p, ctx) => {
    const m = 'dlm.cancel';
    const q = params(p, m);
    const s = session(q, m, ctx.clientId);
    done(dlm.core.cancel(s, str(q, 'lockspace', m), int(q, 'lkid', m, 1, Number.MAX_SAFE_INTEGER)));
    return null;
  });
  server.register('dlm.lockspaces', () =>
    toApiData(
      dlm.core.lockspaces().map((ls) => ({
        name: ls.name,
        joined: ls.joined,
        generation: ls.generation,
        members: ls.memberList.map((x) => x.node),
        paused: ls.paused,
        recovering: ls.recovering,
        ...ls.counts(),
      })),
    ),
  );
  server.register('dlm.dump', (p) => {
    const q = params(p, 'dlm.dump');
    const name = str(q, 'lockspace', 'dlm.dump');
    const ls = dlm.core.lockspace(name);
    if (ls === undefined) throw new ApiError('NOT_FOUND', `dlm.dump: this node has not opened lockspace ${name}`);
    const lock = (v: {
      ref: { node: number; lkid: number };
      granted: LockMode | null;
      requested: LockMode | null;
    }): ApiData =>
      toApiData({
        node: v.ref.node,
        lkid: v.ref.lkid,
        granted: v.granted === null ? null : MODE_NAMES[v.granted],
        requested: v.requested === null ? null : MODE_NAMES[v.requested],
      });
    return toApiData({
      lockspace: name,
      generation: ls.generation,
      members: ls.memberList.map((x) => x.node),
      mastered: ls.dumpMastered().map((r) => ({
        resource: r.name,
        lvbSeq: r.lvbSeq,
        lvbValid: r.lvbValid,
        granted: r.granted.map(lock),
        converting: r.converting.map(lock),
        waiting: r.waiting.map(lock),
      })),
      locks: [...ls.locks.values()].map((l) => ({
        lkid: l.lkid,
        resource: l.name,
        granted: l.granted === null ? null : MODE_NAMES[l.granted],
        op: l.op === null ? null : { kind: l.op.kind, mode: MODE_NAMES[l.op.mode] },
        master: l.master,
        orphan: l.session === null,
      })),
    });
  });
}
