/**
 * Reading the daemon's answers (pure): `FieldReader` checks the shape a decoder claims (types,
 * integer ranges, enum members) instead of casting, and fails with one
 * `CohortClientError('PROTOCOL_ERROR')` naming the method and the field path, so a mismatched
 * daemon is a clear error, never a wrong value deep in the caller's code. Unknown extra fields are
 * ignored (docs/api.md: a newer daemon may add optional fields).
 *
 * Shared by every answer decoder: the services' (`src/<service>/*-client.ts`) and the daemon's own
 * (`src/client/client-results.ts`).
 */
import { NODE_ID_MAX, type NodeId } from '../lib/ids.js';
import type { ApiData } from './api-frame.js';
import { CohortClientError } from './client-error.js';

/** A list of `T`'s members that fails to compile when one is missing. */
type Complete<T, L extends readonly T[]> = [Exclude<T, L[number]>] extends [never] ? L : never;

/**
 * The members of the string union `T`, for `FieldReader.oneOf`: `enumMembers<T>()([...])` fails
 * to compile when the list misses one (a union grown without its decoder).
 */
export function enumMembers<T>() {
  return <const L extends readonly T[]>(list: Complete<T, L>): readonly T[] => list;
}

type Obj = Readonly<Record<string, ApiData>>;

function isObj(v: ApiData | undefined): v is Obj {
  return v !== null && v !== undefined && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function show(v: ApiData | undefined): string {
  if (v === undefined) return 'nothing';
  if (v instanceof Uint8Array) return `${v.length} bytes`;
  const text = JSON.stringify(v);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Reads the fields of one map; every failure names the method and the field path. */
export class FieldReader {
  constructor(
    private readonly o: Obj,
    readonly path: string,
    private readonly method: string,
  ) {}

  /** Reads `v` as a map; throws `PROTOCOL_ERROR` when it is not one. */
  static of(v: ApiData | undefined, path: string, method: string): FieldReader {
    if (!isObj(v)) throw badAnswer(method, path, 'a map', v);
    return new FieldReader(v, path, method);
  }

  private fail(name: string, expected: string): never {
    throw badAnswer(this.method, `${this.path}.${name}`, expected, this.o[name]);
  }

  raw(name: string): ApiData | undefined {
    return this.o[name];
  }

  int(name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
    const v = this.o[name];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
      this.fail(name, `an integer in [${min}, ${max}]`);
    return v;
  }

  nodeId(name: string): NodeId {
    return this.int(name, 1, NODE_ID_MAX) as NodeId;
  }

  nullableNodeId(name: string): NodeId | null {
    return this.o[name] === null || this.o[name] === undefined ? null : this.nodeId(name);
  }

  nullableInt(name: string): number | null {
    return this.o[name] === null || this.o[name] === undefined ? null : this.int(name);
  }

  str(name: string): string {
    const v = this.o[name];
    if (typeof v !== 'string') this.fail(name, 'a string');
    return v;
  }

  nullableStr(name: string): string | null {
    return this.o[name] === null || this.o[name] === undefined ? null : this.str(name);
  }

  bool(name: string): boolean {
    const v = this.o[name];
    if (typeof v !== 'boolean') this.fail(name, 'true or false');
    return v;
  }

  bytes(name: string): Uint8Array {
    const v = this.o[name];
    if (!(v instanceof Uint8Array)) this.fail(name, 'bytes');
    return v;
  }

  oneOf<T extends string>(name: string, allowed: readonly T[]): T {
    const v = this.o[name];
    const hit = allowed.find((a) => a === v);
    if (hit === undefined) this.fail(name, `one of ${allowed.join(', ')}`);
    return hit;
  }

  obj(name: string): FieldReader {
    return FieldReader.of(this.o[name], `${this.path}.${name}`, this.method);
  }

  list<T>(name: string, item: (r: FieldReader) => T): T[] {
    const v = this.o[name];
    if (!Array.isArray(v)) this.fail(name, 'a list');
    return (v as readonly ApiData[]).map((x, i) => item(FieldReader.of(x, `${this.path}.${name}[${i}]`, this.method)));
  }

  intList(name: string, min: number, max: number): number[] {
    const v = this.o[name];
    if (
      !Array.isArray(v) ||
      !(v as readonly ApiData[]).every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= min && x <= max)
    )
      this.fail(name, `a list of integers in [${min}, ${max}]`);
    return [...(v as readonly number[])];
  }
}

/** The `PROTOCOL_ERROR` of an answer whose `path` is not what `method` promises. */
export function badAnswer(method: string, path: string, expected: string, got: ApiData | undefined): CohortClientError {
  return new CohortClientError(
    'PROTOCOL_ERROR',
    `${method}: the daemon's answer has ${path} = ${show(got)}, expected ${expected}; is the client of the same release as the daemon?`,
  );
}
