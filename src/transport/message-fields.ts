/**
 * Terse, strict validators for decoded messages (pure: no I/O).
 *
 * A decoder hands untrusted `unknown` values to a protocol's validator; the validator reads each
 * field through these helpers, which check type and range and raise `DecodeError` with code
 * `MESSAGE_INVALID` and a message naming the exact path (`AppendEntries.entries[3].term`), what
 * was expected and what arrived. A validator therefore returns a fully typed message or throws,
 * and never lets a wrong-typed value into a protocol core.
 *
 * Only plain data passes: objects must be plain (prototype `Object.prototype` or `null`), bytes
 * must be `Uint8Array`, numbers must be finite and, for integers, safe. Exotic values a generic
 * decoder can produce (Map, Set, Date, RegExp, Error, BigInt) are rejected by type.
 *
 * Example:
 *
 *     const r = FieldReader.of(value, 'Vote');
 *     return { type: 'vote', term: r.int('term', 0, TERM_MAX), from: r.nodeId('from') };
 */
import { DecodeError } from '../lib/errors.js';
import { NODE_ID_MAX, nodeId, type NodeId } from '../lib/ids.js';

/** Longest rendering of a bad value quoted in an error message. */
const QUOTE_CHARS_MAX = 40;

/** A short, bounded description of `value` for error messages (never the whole value). */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') {
    const shown = value.length > QUOTE_CHARS_MAX ? `${value.slice(0, QUOTE_CHARS_MAX)}…` : value;
    return `string ${JSON.stringify(shown)} (${value.length} chars)`;
  }
  if (typeof value === 'number' || typeof value === 'boolean') return `${typeof value} ${String(value)}`;
  if (typeof value === 'bigint') return `bigint ${value > 10n ** 30n ? 'of more than 30 digits' : value.toString()}`;
  if (value instanceof Uint8Array) return `${value.length} bytes`;
  if (Array.isArray(value)) return `an array of ${value.length} items`;
  if (typeof value === 'object') {
    const ctor: unknown = Object.getPrototypeOf(value);
    if (ctor === Object.prototype || ctor === null) return 'an object';
    const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
    return typeof name === 'string' ? `a ${name.slice(0, QUOTE_CHARS_MAX)}` : 'an exotic object';
  }
  return typeof value;
}

/** The error every validator raises: `path: expected X, got Y`. */
export function invalidField(path: string, expected: string, got: unknown): DecodeError {
  return new DecodeError('MESSAGE_INVALID', `${path}: expected ${expected}, got ${describeValue(got)}`);
}

/** True when `value` is a plain object (not an array, class instance, Map, Date, ...). */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Checks that `value` is an integer in `[min, max]` (both safe integers). */
export function intValue(value: unknown, path: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw invalidField(path, `an integer in [${min}, ${max}]`, value);
  }
  return value;
}

/** Checks that `value` is a finite number in `[min, max]`. */
export function numberValue(value: unknown, path: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    throw invalidField(path, `a finite number in [${min}, ${max}]`, value);
  }
  return value;
}

/** Checks that `value` is a node id (1..NODE_ID_MAX) and brands it. */
export function nodeIdValue(value: unknown, path: string): NodeId {
  return nodeId(intValue(value, path, 1, NODE_ID_MAX));
}

/** Checks that `value` is a boolean. */
export function boolValue(value: unknown, path: string): boolean {
  if (typeof value !== 'boolean') throw invalidField(path, 'a boolean', value);
  return value;
}

/** Checks that `value` is a string of at most `maxLength` UTF-16 code units. */
export function stringValue(value: unknown, path: string, maxLength: number): string {
  if (typeof value !== 'string' || value.length > maxLength)
    throw invalidField(path, `a string of at most ${maxLength} chars`, value);
  return value;
}

/** Checks that `value` is a byte array of at most `maxBytes` bytes. */
export function bytesValue(value: unknown, path: string, maxBytes: number): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length > maxBytes)
    throw invalidField(path, `at most ${maxBytes} bytes`, value);
  return value;
}

/** Checks that `value` is one of `allowed` (a string enum). */
export function enumValue<T extends string>(value: unknown, path: string, allowed: readonly T[]): T {
  if (typeof value === 'string') {
    for (const candidate of allowed) if (candidate === value) return candidate;
  }
  throw invalidField(path, `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`, value);
}

/** Checks that `value` is an array of at most `maxItems` and validates each item with `item`. */
export function arrayValue<T>(
  value: unknown,
  path: string,
  maxItems: number,
  item: (value: unknown, path: string) => T,
): T[] {
  if (!Array.isArray(value) || value.length > maxItems)
    throw invalidField(path, `an array of at most ${maxItems} items`, value);
  const out: T[] = new Array<T>(value.length);
  for (let i = 0; i < value.length; i++) out[i] = item(value[i] as unknown, `${path}[${i}]`);
  return out;
}

/**
 * Reads the fields of one plain object. Each accessor validates one field and names it in the
 * error; a missing field is reported as "got nothing". Unknown extra fields are ignored (a newer
 * peer may add optional fields); the values returned never include them.
 */
export class FieldReader {
  private constructor(
    private readonly record: Record<string, unknown>,
    /** The path of this object, e.g. `Append.entries[2]`. */
    readonly path: string,
  ) {}

  /** Starts reading `value`, which must be a plain object; `path` names it in errors. */
  static of(value: unknown, path: string): FieldReader {
    if (!isPlainObject(value)) throw invalidField(path, 'an object', value);
    return new FieldReader(value, path);
  }

  /** The raw value of an own field, `undefined` when absent (never an inherited property). */
  raw(name: string): unknown {
    return Object.hasOwn(this.record, name) ? this.record[name] : undefined;
  }

  /** True when the field is present and not null. */
  has(name: string): boolean {
    const v = this.raw(name);
    return v !== undefined && v !== null;
  }

  private at(name: string): string {
    return `${this.path}.${name}`;
  }

  int(name: string, min: number, max: number): number {
    return intValue(this.raw(name), this.at(name), min, max);
  }

  number(name: string, min: number, max: number): number {
    return numberValue(this.raw(name), this.at(name), min, max);
  }

  nodeId(name: string): NodeId {
    return nodeIdValue(this.raw(name), this.at(name));
  }

  bool(name: string): boolean {
    return boolValue(this.raw(name), this.at(name));
  }

  string(name: string, maxLength: number): string {
    return stringValue(this.raw(name), this.at(name), maxLength);
  }

  bytes(name: string, maxBytes: number): Uint8Array {
    return bytesValue(this.raw(name), this.at(name), maxBytes);
  }

  enum<T extends string>(name: string, allowed: readonly T[]): T {
    return enumValue(this.raw(name), this.at(name), allowed);
  }

  /** Checks the field equals `expected` exactly (for discriminants). */
  literal<T extends string | number | boolean>(name: string, expected: T): T {
    const v = this.raw(name);
    if (v !== expected) throw invalidField(this.at(name), JSON.stringify(expected), v);
    return expected;
  }

  array<T>(name: string, maxItems: number, item: (value: unknown, path: string) => T): T[] {
    return arrayValue(this.raw(name), this.at(name), maxItems, item);
  }

  /** A nested object read by `read`. */
  object<T>(name: string, read: (reader: FieldReader) => T): T {
    return read(FieldReader.of(this.raw(name), this.at(name)));
  }

  /** `read(this, name)` when the field is present and not null, else `undefined`. */
  optional<T>(name: string, read: (reader: FieldReader, name: string) => T): T | undefined {
    return this.has(name) ? read(this, name) : undefined;
  }
}

/**
 * Validates a discriminated union: reads the string field `tag` of `value` and dispatches to the
 * case of that name; an unknown tag is `MESSAGE_INVALID` naming the allowed ones.
 */
export function unionValue<T>(
  value: unknown,
  path: string,
  tag: string,
  cases: Readonly<Record<string, (reader: FieldReader) => T>>,
): T {
  const reader = FieldReader.of(value, path);
  const kind = reader.raw(tag);
  if (typeof kind === 'string' && Object.hasOwn(cases, kind)) {
    const read = cases[kind];
    if (read !== undefined) return read(FieldReader.of(value, `${path}(${kind})`));
  }
  throw invalidField(
    `${path}.${tag}`,
    `one of ${Object.keys(cases)
      .map((k) => JSON.stringify(k))
      .join(', ')}`,
    kind,
  );
}
