/**
 * Branded identifier and counter types (STYLE.md rule 4): a `Term` is not a `LogIndex`, and
 * neither is a plain number. Constructors check the range and brand the value; they assert,
 * because an out-of-range id inside cohort is a programmer error. Decoders check ranges
 * themselves and raise `DecodeError` before calling these.
 */
import { assert } from './assert.js';

declare const brand: unique symbol;
/** `T` tagged with the compile-time-only brand `B`. */
export type Brand<T, B extends string> = T & { readonly [brand]: B };

/** A configured node's stable id: an integer in [1, NODE_ID_MAX]. */
export type NodeId = Brand<number, 'NodeId'>;
/** A node's start counter; bumped on every start. */
export type Incarnation = Brand<number, 'Incarnation'>;
/** A Raft term. */
export type Term = Brand<number, 'Term'>;
/** A position in the cluster log (1-based; 0 means "before the first entry"). */
export type LogIndex = Brand<number, 'LogIndex'>;
/** A committed membership view's id; only grows. */
export type ViewId = Brand<number, 'ViewId'>;
/** A fencing token; strictly increases per resource. */
export type FencingToken = Brand<bigint, 'FencingToken'>;

/** Largest node id; ids are small so they fit bitsets and compact encodings. */
export const NODE_ID_MAX = 65_535;

function counter<B extends string>(what: B): (n: number) => Brand<number, B> {
  return (n: number) => {
    assert(Number.isSafeInteger(n) && n >= 0, `${what} must be a non-negative safe integer, got ${n}`);
    return n as Brand<number, B>;
  };
}

/** Brands `n` as a `NodeId` (1..NODE_ID_MAX). */
export function nodeId(n: number): NodeId {
  assert(
    Number.isInteger(n) && n >= 1 && n <= NODE_ID_MAX,
    `node id must be an integer in [1, ${NODE_ID_MAX}], got ${n}`,
  );
  return n as NodeId;
}

/** Brands `n` as an `Incarnation`. */
export const incarnation = counter('Incarnation');
/** Brands `n` as a `Term`. */
export const term = counter('Term');
/** Brands `n` as a `LogIndex`. */
export const logIndex = counter('LogIndex');
/** Brands `n` as a `ViewId`. */
export const viewId = counter('ViewId');

/** Brands `n` as a `FencingToken` (non-negative, below 2^64). */
export function fencingToken(n: bigint): FencingToken {
  assert(n >= 0n && n < 1n << 64n, 'fencing token must fit in an unsigned 64-bit integer');
  return n as FencingToken;
}
