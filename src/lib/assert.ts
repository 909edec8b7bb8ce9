/**
 * Assertions that stay on in production (TigerBeetle style).
 *
 * An assertion failure is a programmer error: the process must stop rather than carry on with
 * state it no longer understands. Operating errors (bad input, a peer that went away, a full
 * queue) are never asserted; they are typed values or typed errors (see `errors.ts`).
 */

/** Thrown when an invariant is broken. Never caught by cohort code except at a crash boundary. */
export class AssertionError extends Error {
  override readonly name = 'AssertionError';
}

/** Asserts that `condition` holds. `message` should name the invariant, not restate the code. */
export function assert(condition: unknown, message = 'assertion failed'): asserts condition {
  if (!condition) throw new AssertionError(message);
}

/** Asserts that `value` is neither `undefined` nor `null` and returns it. */
export function defined<T>(value: T | undefined | null, what = 'value'): T {
  if (value === undefined || value === null) throw new AssertionError(`${what} must be defined`);
  return value;
}

/** Exhaustiveness guard for discriminated unions: unreachable when every case is handled. */
export function assertNever(value: never, what = 'value'): never {
  throw new AssertionError(`unexpected ${what}: ${JSON.stringify(value)}`);
}

/** Asserts that `n` is an integer in `[min, max]`. */
export function assertInt(n: number, min: number, max: number, what = 'integer'): void {
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new AssertionError(`${what} must be an integer in [${min}, ${max}], got ${n}`);
  }
}
