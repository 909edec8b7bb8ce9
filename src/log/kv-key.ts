/**
 * The rules for KV keys, in one place: the CLI, the client library (`src/kv/kv-client.ts`), the
 * daemon's KV service (`src/kv/kv-service.ts`, whatever client sent the request) and the state
 * machine (`kv-state-machine.ts`) all call these two pure functions.
 *
 * A key is text, unlike etcd's keys (any non-empty byte string): it appears in one-line CLI
 * output, error messages, logs and the event stream, so a key that holds a newline or a terminal
 * escape would forge or garble those lines. The rules:
 * 1. non-empty;
 * 2. well-formed Unicode (no unpaired UTF-16 surrogate: UTF-8 cannot encode one);
 * 3. at most `KV_KEY_BYTES_MAX` (512) UTF-8 bytes;
 * 4. no control character: C0 (U+0000-U+001F: NUL, tab, newline, escape...), DEL (U+007F), C1
 *    (U+0080-U+009F), and no line or paragraph separator (U+2028, U+2029). Everything else is
 *    allowed, spaces and any printable script included; keys are compared code unit by code
 *    unit, without normalisation.
 *
 * Rules 1-3 are the stored-key rule (`kvStoredKeyProblem`), which the state machine checks when
 * it applies a command. Rule 4 was added later and is checked only where a key is admitted into
 * the store (a put or a cas, `kvKeyProblem`): a command already in a log must apply the same way
 * on every version of every node, so `apply` never learns a new refusal; and a key written before
 * rule 4 can still be read and deleted.
 */
import { KV_KEY_BYTES_MAX } from '../constants.js';

const textEncoder = new TextEncoder();
// With the `u` flag a surrogate class matches only unpaired surrogates, which UTF-8 cannot encode.
const LONE_SURROGATE = /[\uD800-\uDFFF]/u;
/** Control characters (general category Cc: C0, DEL, C1) and the line and paragraph separators. */
const UNPRINTABLE = /[\p{Cc}\u2028\u2029]/u;

/** UTF-8 length of `s`, or -1 when `s` holds an unpaired surrogate (not encodable). */
export function utf8Length(s: string): number {
  if (LONE_SURROGATE.test(s)) return -1;
  return textEncoder.encode(s).length;
}

/**
 * Why `key` can not be stored (rules 1-3 of the file comment), or null when it can. `what` names
 * the string in the message (a range checks its prefix, which may be empty).
 */
export function kvStoredKeyProblem(key: string, what: 'key' | 'prefix' = 'key'): string | null {
  const n = utf8Length(key);
  if (n < 0) return `${what} holds an unpaired UTF-16 surrogate; use well-formed Unicode`;
  if (what === 'key' && n === 0) return 'key is empty; keys must have at least one character';
  if (n > KV_KEY_BYTES_MAX) return `${what} is ${n} UTF-8 bytes; the limit is ${KV_KEY_BYTES_MAX}`;
  return null;
}

/**
 * Why `key` can not be written by a put or a cas (every rule of the file comment), or null when
 * it can. The message names the first offending character by code point and position.
 */
export function kvKeyProblem(key: string): string | null {
  const stored = kvStoredKeyProblem(key);
  if (stored !== null) return stored;
  const bad = UNPRINTABLE.exec(key);
  if (bad === null) return null;
  const code = (bad[0].codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0');
  return `key holds the control character U+${code} at character ${bad.index + 1}; keys are printable text: no C0 or C1 control characters, DEL, or line separators`;
}
