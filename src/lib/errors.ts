/**
 * Typed operating errors. Every error a user or a peer can cause carries a stable `code`
 * (upper snake case) that callers switch on; the message is for humans and may change.
 */

/** Base class of every operating error cohort raises. */
export class CohortError extends Error {
  override readonly name: string = 'CohortError';
  /** A stable machine-readable code, e.g. `DECODE_TRUNCATED`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** Raised by every decoder on malformed input. Decoders raise nothing else on bad bytes. */
export class DecodeError extends CohortError {
  override readonly name = 'DecodeError';
}

/** A value-or-error union for hot paths where throwing is too costly or too implicit. */
export type Result<T, E = CohortError> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: E };

/** Builds a successful `Result`. */
export function ok<T>(value: T): { readonly ok: true; readonly value: T } {
  return { ok: true, value };
}

/** Builds a failed `Result`. */
export function err<E>(error: E): { readonly ok: false; readonly error: E } {
  return { ok: false, error };
}
