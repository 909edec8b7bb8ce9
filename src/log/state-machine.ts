/**
 * The replicated state-machine interface: what the upper layers (membership, groups, the fence
 * ledger, the key-value store) plug into the cluster log.
 *
 * The Raft core decides *which* entries are committed and in what order; a state machine decides
 * what they *mean*. Every node applies the same committed entries in the same order, so every
 * state machine must be a deterministic function of that sequence: the simulator's
 * state-machine-safety checker compares `stateHash()` across nodes at equal applied indexes, and a
 * lagging node restored from another node's `snapshot()` must continue exactly as that node would.
 *
 * Also here: a small pure-TS 64-bit hash (FNV-1a with a bijective finaliser) and an additive
 * multiset accumulator over it, so state machines can keep `stateHash()` O(1) by updating a sum of
 * per-item digests on every mutation instead of rehashing their whole state.
 */
import { assert } from '../lib/assert.js';
import type { DecodeError, Result } from '../lib/errors.js';
import type { Brand, LogIndex, Term } from '../lib/ids.js';

/** A 64-bit state digest as 16 lowercase hex digits: cheap to compare, print and put in traces. */
export type StateHash = Brand<string, 'StateHash'>;

/**
 * A command that a state machine could not execute. This is a *result*, not an exception: a
 * committed command is applied on every node, so rejecting it must be just as deterministic as
 * executing it. `code` is stable (upper snake case) and callers switch on it; `message` says what
 * was wrong and what to do, for humans.
 */
export interface ApplyError {
  readonly code: string;
  readonly message: string;
}

/** What `apply` returns: the command's output, or the deterministic reason it was refused. */
export type ApplyResult<O> = Result<O, ApplyError>;

/**
 * Encodes and decodes one state machine's commands. `decode` raises only `DecodeError` on bad
 * bytes (never reads out of bounds, never allocates more than its input suggests) and is the exact
 * inverse of `encode` on every value `encode` accepts.
 */
export interface CommandCodec<C> {
  encode(command: C): Uint8Array;
  /** @throws DecodeError on malformed input, and nothing else. */
  decode(bytes: Uint8Array): C;
}

/**
 * A deterministic replicated state machine.
 *
 * Contract (every implementation, tested for the KV machine in kv-state-machine.test.ts):
 * - **Deterministic.** `apply` depends only on the current state and its arguments: no clock, no
 *   randomness, no iteration over unordered containers. Two instances that apply the same
 *   sequence return equal results and reach equal `stateHash()` and byte-equal `snapshot()`.
 * - **Total on committed input.** `apply` never throws for anything that can be committed: bytes
 *   that do not decode, or a decoded command that breaks a limit, give an `ApplyError` result and
 *   leave the state unchanged. It throws only `AssertionError`, on a caller bug (see below).
 * - **Ordered.** Indexes passed to `apply` strictly increase and terms never decrease; gaps are
 *   allowed (the log also holds entries that never reach this machine, e.g. configuration changes).
 *   Re-applying an index is a caller bug and asserts, because it would double-apply a mutation.
 *   An error result still consumes the index.
 * - **Bounded.** Every collection it holds has a named limit in `src/constants.ts`; exceeding one
 *   is an `ApplyError`, never unbounded growth.
 * - **Snapshots.** `snapshot()` is a pure function of the state (same state, same bytes), carries
 *   its own checksum, and includes `appliedIndex`/`appliedTerm`. `restore(bytes)` either replaces
 *   the whole state (and then `stateHash()` equals the hash of the machine that took the
 *   snapshot) or returns a `DecodeError` and leaves the state untouched: a corrupt or foreign
 *   snapshot never half-installs.
 * - **Reads.** Outputs never alias the machine's internal buffers, so a caller may keep them.
 *
 * @typeParam C the decoded command type: a discriminated union on `type`.
 * @typeParam O the output type of a successful command.
 */
export interface StateMachine<C extends { readonly type: string }, O> {
  /** Encoder/decoder for this machine's commands (what the proposer puts into the log). */
  readonly codec: CommandCodec<C>;
  /** Index of the last entry applied (0 before any). */
  readonly appliedIndex: LogIndex;
  /** Term of the last entry applied (0 before any). */
  readonly appliedTerm: Term;

  /**
   * Applies the committed entry at `index` in `term`. `command` is the entry's raw bytes (decoded
   * here; undecodable bytes give `ApplyError` code `BAD_COMMAND`) or an already decoded command,
   * so a caller that decoded once, e.g. to route it, need not decode again.
   */
  apply(index: LogIndex, term: Term, command: Uint8Array | C): ApplyResult<O>;

  /** The whole state, checksummed and canonical (same state, same bytes). */
  snapshot(): Uint8Array;

  /** Replaces the whole state with a snapshot's, or returns why it cannot and changes nothing. */
  restore(bytes: Uint8Array): Result<void, DecodeError>;

  /** A cheap digest of the whole state, including `appliedIndex` and `appliedTerm`. */
  stateHash(): StateHash;
}

/** The standard `ApplyError` for command bytes that did not decode. */
export function badCommand(error: DecodeError): ApplyError {
  return {
    code: 'BAD_COMMAND',
    message: `the committed command could not be decoded (${error.code}: ${error.message}); the proposer encoded it wrongly or it was corrupted before it was proposed`,
  };
}

/**
 * Asserts the ordering contract of `StateMachine.apply`: indexes strictly increase, terms never
 * decrease. Breaking it is a bug in the caller (the log layer), never an operating condition.
 */
export function assertApplyOrder(appliedIndex: LogIndex, appliedTerm: Term, index: LogIndex, term: Term): void {
  assert(Number.isSafeInteger(index) && index > appliedIndex, `apply index ${index} must exceed the applied index ${appliedIndex}`);
  assert(Number.isSafeInteger(term) && term >= appliedTerm, `apply term ${term} must not be below the applied term ${appliedTerm}`);
}

// ------------------------------------------------------------------------------------------------
// 64-bit hashing in pure TypeScript (two 32-bit halves; no BigInt on the hot path).

const TWO_32 = 0x1_0000_0000;
const FNV_OFFSET_HI = 0xcbf29ce4;
const FNV_OFFSET_LO = 0x84222325;
// The 64-bit FNV prime is 2^40 + 0x1b3: multiplying by it is `x * 0x1b3 + (x << 40)`.
const FNV_PRIME_LO = 0x1b3;

const textEncoder = new TextEncoder();

/** A 64-bit digest as two unsigned 32-bit halves. */
export interface Digest64 {
  readonly hi: number;
  readonly lo: number;
}

function fmix32(h: number): number {
  let x = h ^ (h >>> 16);
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

/** Formats a digest as a `StateHash` (16 lowercase hex digits). */
export function stateHashOf(d: Digest64): StateHash {
  return (d.hi.toString(16).padStart(8, '0') + d.lo.toString(16).padStart(8, '0')) as StateHash;
}

/**
 * Incremental FNV-1a (64-bit) with a bijective finaliser (a three-round Feistel network over
 * murmur3's fmix32), so digests of inputs that differ only in their last bytes still differ in
 * every bit. Not cryptographic: it guards against bugs, not adversaries.
 */
export class Fnv64 {
  private hi = FNV_OFFSET_HI;
  private lo = FNV_OFFSET_LO;

  /** Mixes one byte (0..255). */
  u8(b: number): this {
    const lo = (this.lo ^ (b & 0xff)) >>> 0;
    const loProduct = lo * FNV_PRIME_LO; // < 2^41: exact in a double
    const carry = Math.floor(loProduct / TWO_32);
    this.hi = (this.hi * FNV_PRIME_LO + ((lo << 8) >>> 0) + carry) >>> 0;
    this.lo = loProduct >>> 0;
    return this;
  }

  /** Mixes a 32-bit unsigned integer, little-endian. */
  u32(v: number): this {
    return this.u8(v).u8(v >>> 8).u8(v >>> 16).u8(v >>> 24);
  }

  /** Mixes a non-negative safe integer as 8 bytes, little-endian. */
  u64(v: number): this {
    assert(Number.isSafeInteger(v) && v >= 0, 'hashed u64 must be a non-negative safe integer');
    return this.u32(v >>> 0).u32(Math.floor(v / TWO_32));
  }

  /** Mixes a length prefix then the bytes, so `("ab","c")` and `("a","bc")` differ. */
  bytes(b: Uint8Array): this {
    this.u32(b.length);
    for (const x of b) this.u8(x);
    return this;
  }

  /** Mixes a string as length-prefixed UTF-8. */
  string(s: string): this {
    return this.bytes(textEncoder.encode(s));
  }

  /** Mixes another digest (e.g. a sub-machine's). */
  digest64(d: Digest64): this {
    return this.u32(d.hi).u32(d.lo);
  }

  /** The plain FNV-1a 64 state, before finalising (for known-answer tests against FNV vectors). */
  raw(): Digest64 {
    return { hi: this.hi, lo: this.lo };
  }

  /** The finalised digest; the hasher may keep absorbing afterwards. */
  digest(): Digest64 {
    let hi = this.hi;
    let lo = this.lo;
    lo = (lo ^ fmix32(hi)) >>> 0;
    hi = (hi ^ fmix32(lo)) >>> 0;
    lo = (lo ^ fmix32(hi)) >>> 0;
    return { hi, lo };
  }
}

/**
 * An order-independent digest of a set of items: the sum modulo 2^64 of their digests. Adding an
 * item's digest when it appears and subtracting it when it goes keeps the digest of a large map
 * current in O(item size) per mutation, and it equals the digest recomputed from scratch, which
 * is what `restore` does.
 */
export class MultisetHash64 {
  private hi = 0;
  private lo = 0;

  add(d: Digest64): void {
    const lo = this.lo + d.lo;
    this.lo = lo >>> 0;
    this.hi = (this.hi + d.hi + (lo >= TWO_32 ? 1 : 0)) >>> 0;
  }

  remove(d: Digest64): void {
    const lo = this.lo - d.lo;
    this.lo = lo >>> 0;
    this.hi = (this.hi - d.hi - (lo < 0 ? 1 : 0)) >>> 0;
  }

  /** The current sum (not finalised: mix it into an `Fnv64` with other fields). */
  value(): Digest64 {
    return { hi: this.hi, lo: this.lo };
  }
}
