/** Option parsers shared by the `cohort` subcommands. */
import { InvalidArgumentError } from '@commander-js/extra-typings';

/** A commander parser accepting a decimal integer in `[min, max]`, with a message naming `what`. */
export function intOption(what: string, min: number, max: number): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new InvalidArgumentError(`${what} must be an integer in [${min}, ${max}], got ${JSON.stringify(value)}`);
    }
    return n;
  };
}
