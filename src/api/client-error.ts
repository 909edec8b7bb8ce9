/**
 * The one error type the client library raises. `code` is stable: either one of the client's
 * own codes below or an error code the daemon sent (`NOT_QUORATE`, `NOT_FOUND`, ... see
 * `src/api/api-error.ts`); `message` says what happened and what to do.
 *
 * Pure, so the services' client namespaces (`src/<service>/*-client.ts`) and the answer decoders
 * raise it too; `src/client` re-exports it unchanged.
 */
import { CohortError } from '../lib/errors.js';
import type { ApiErrorCode } from './api-error.js';

/** Codes the client raises itself. */
export type ClientOwnErrorCode =
  /** No daemon answers at the socket (missing, refused, permission denied). */
  | 'DAEMON_UNREACHABLE'
  /** The connection broke while the call was open, or was already broken. */
  | 'CONNECTION_LOST'
  /** The caller's AbortSignal fired. */
  | 'ABORTED'
  /** The connection was closed by this client (`close()` or `await using`). */
  | 'CLOSED'
  /** A lock request that may not wait (NOQUEUE, `cohort lock --nonblock`) found the lock held in a conflicting mode. */
  | 'NOT_GRANTED'
  /** A lock conversion would deadlock with one queued before it; it was cancelled (docs/dlm.md). */
  | 'DEADLOCK';

/** Every code a `CohortClientError` may carry (a newer daemon may add codes: compare strings). */
export type ClientErrorCode = ClientOwnErrorCode | ApiErrorCode;

/**
 * Raised by every client call. `code` is typed `string` because a newer daemon may send a code
 * this release does not know; compare it with the `ClientErrorCode` values.
 */
export class CohortClientError extends CohortError {
  override readonly name = 'CohortClientError';

  /** True when `code` is `expected` (a typed comparison). */
  is(expected: ClientErrorCode): boolean {
    return this.code === expected;
  }
}

/** Converts an `AbortSignal`'s firing into the client's error (`TIMEOUT` for `AbortSignal.timeout`, else `ABORTED`). */
export function abortedError(signal: AbortSignal, what: string): CohortClientError {
  const reason: unknown = signal.reason;
  const timeout = reason instanceof Error && reason.name === 'TimeoutError';
  return new CohortClientError(timeout ? 'TIMEOUT' : 'ABORTED', timeout ? `${what} timed out` : `${what} was aborted`, {
    cause: reason,
  });
}
