/**
 * Error codes of the local API (pure). A code is stable: clients switch on it; the message is
 * for humans and may change. Codes travel in `error` frames; a newer daemon may send a code an
 * older client does not know, so the wire carries any upper-snake-case string and the known
 * ones are listed here.
 */
import { CohortError } from '../lib/errors.js';

/** Every code this release sends, with what it means. */
export const API_ERROR_CODES = {
  /** The client speaks another protocol version; the connection closes after this error. */
  VERSION_MISMATCH: 'the client and the daemon speak different API versions',
  /** The request needs quorum and this node's partition does not have it. */
  NOT_QUORATE: 'this node is not in a quorate partition',
  /** The named thing (group, key, lockspace, event sequence) does not exist. */
  NOT_FOUND: 'not found',
  /** A parameter is missing, of the wrong type or out of range. */
  INVALID_ARGUMENT: 'invalid argument',
  /** The daemon cannot serve this now (starting, stopping, a subsystem down); retry later. */
  UNAVAILABLE: 'temporarily unavailable',
  /** The request did not complete within its deadline. */
  TIMEOUT: 'timed out',
  /** The request or stream was cancelled by the client. */
  CANCELLED: 'cancelled',
  /** A per-client or per-daemon limit was reached (clients, requests in flight, streams). */
  OVERLOADED: 'too many clients, requests or streams',
  /**
   * The daemon closed this idle connection (no request in flight, no stream open): after the idle
   * timeout, or to give its slot to a new client when every slot was taken. Connect again.
   */
  IDLE: 'the connection was closed for being idle',
  /** The client read a stream too slowly; the stream was closed instead of buffering without bound. */
  SLOW_CONSUMER: 'the client did not keep up with the stream',
  /** No handler is registered for the method. */
  UNKNOWN_METHOD: 'unknown method',
  /** A frame was malformed or out of order; the connection closes after this error. */
  PROTOCOL_ERROR: 'protocol error',
  /** A conditional update found another value (compare-and-set). */
  CONFLICT: 'conflict',
  /** A reader asked for events compacted away. */
  GAP: 'requested history is no longer retained',
  /** A group's view changed before the message or barrier arrival was ordered (docs/groups.md). */
  VIEW_CHANGED: 'the group view changed first',
  /** This node is not a member of the group (join it first). */
  NOT_MEMBER: 'not a member of the group',
  /** A group join named a level other than the group's (set by the join that created it; docs/groups.md). */
  GROUP_LEVEL_MISMATCH: 'the group exists with another level',
  /** A lock already has an operation in flight (docs/dlm.md): wait for its completion, or cancel it. */
  BUSY: 'an operation is already in flight on this lock',
  /** The handler failed unexpectedly; the daemon logged the cause. */
  INTERNAL: 'internal error',
} as const;

/** A code this release knows. */
export type ApiErrorCode = keyof typeof API_ERROR_CODES;

/** Shape of any code on the wire. */
export const API_ERROR_CODE_RE = /^[A-Z][A-Z0-9_]{0,63}$/;

/** True when `code` is one this release knows. */
export function isKnownApiErrorCode(code: string): code is ApiErrorCode {
  return Object.hasOwn(API_ERROR_CODES, code);
}

/**
 * An error a handler throws to answer with a typed error frame. Anything else a handler throws
 * is answered as `INTERNAL` (and logged by the server), so a handler bug never leaks internals.
 */
export class ApiError extends CohortError {
  override readonly name = 'ApiError';
  declare readonly code: ApiErrorCode;

  // Narrows `code` to the API codes at every construction site.
  // eslint-disable-next-line @typescript-eslint/no-useless-constructor
  constructor(code: ApiErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}
