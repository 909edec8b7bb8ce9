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
 * `StateMachineMux` plugs several machines into one log: a tag byte on each entry routes it.
 *
 * Also here: a small pure-TS 64-bit hash (FNV-1a with a bijective finaliser) and an additive
 * multiset accumulator over it, so state machines can keep `stateHash()` O(1) by updating a sum of
 * per-item digests on every mutation instead of rehashing their whole state.
 */
import { assert, assertInt, defined } from '../lib/assert.js';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { crc32c } from '../lib/checksum.js';
import { DecodeError, err, ok, type Result } from '../lib/errors.js';
import { logIndex, term as makeTerm, type Brand, type LogIndex, type Term } from '../lib/ids.js';
import { RAFT_SNAPSHOT_BYTES_MAX } from '../constants.js';

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
  assert(
    Number.isSafeInteger(index) && index > appliedIndex,
    `apply index ${index} must exceed the applied index ${appliedIndex}`,
  );
  assert(
    Number.isSafeInteger(term) && term >= appliedTerm,
    `apply term ${term} must not be below the applied term ${appliedTerm}`,
  );
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
    return this.u8(v)
      .u8(v >>> 8)
      .u8(v >>> 16)
      .u8(v >>> 24);
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

// ------------------------------------------------------------------------------------------------
// Several state machines on one log

/** A state machine of any command and output type, as the multiplexer holds them. */
export type AnyStateMachine = StateMachine<{ readonly type: string }, unknown>;

/** One machine plugged into a `StateMachineMux`: a stable tag byte, a name, and a factory. */
export interface MuxMember {
  /** Routes commands and names the machine inside mux snapshots; never reuse a retired tag. */
  readonly tag: number;
  /** For messages and traces, e.g. 'membership', 'kv'. */
  readonly name: string;
  /** Makes an empty instance (at start, and to restore a snapshot all-or-nothing). */
  create(): AnyStateMachine;
}

/** A command for one member, already decoded (what `StateMachineMux.apply` also accepts). */
export interface MuxCommand {
  readonly type: 'mux';
  readonly tag: number;
  readonly command: { readonly type: string };
}

/** What a mux apply returns: the member that ran the command and its output. */
export interface MuxOutput {
  readonly tag: number;
  readonly output: unknown;
}

const MUX_SNAPSHOT_MAGIC = 0x584d4f43; // 'COMX' read as a little-endian u32
const MUX_SNAPSHOT_FORMAT = 1;
const MUX_MEMBERS_MAX = 255;

/**
 * Several state machines (membership, groups, fence ledger, KV, ...) sharing one cluster log.
 * A log entry's bytes are one tag byte naming the member, then that member's command bytes. Each
 * member sees only its own entries, with their log indexes (so it sees gaps). Snapshots hold every
 * member's snapshot; restore is all-or-nothing across members; the state hash covers them all.
 */
export class StateMachineMux implements StateMachine<MuxCommand, MuxOutput> {
  readonly codec: CommandCodec<MuxCommand>;
  private readonly members: readonly MuxMember[];
  private machines: Map<number, AnyStateMachine>;
  private index: LogIndex;
  private term: Term;

  constructor(members: readonly MuxMember[]) {
    assert(members.length > 0 && members.length <= MUX_MEMBERS_MAX, `a mux holds 1..${MUX_MEMBERS_MAX} machines`);
    const tags = new Set(members.map((m) => m.tag));
    assert(tags.size === members.length, 'mux member tags must be unique');
    for (const m of members) assertInt(m.tag, 0, 255, `tag of mux member ${m.name}`);
    this.members = [...members].sort((a, b) => a.tag - b.tag);
    this.machines = this.createAll();
    const first = defined(this.machines.get(defined(this.members[0]).tag));
    this.index = first.appliedIndex;
    this.term = first.appliedTerm;
    this.codec = { encode: (c) => this.encode(c), decode: (b) => this.decode(b) };
  }

  get appliedIndex(): LogIndex {
    return this.index;
  }

  get appliedTerm(): Term {
    return this.term;
  }

  /** The member with `tag` (for its local reads, e.g. `KvStateMachine.get`). */
  machine(tag: number): AnyStateMachine {
    return defined(this.machines.get(tag), `mux member with tag ${tag}`);
  }

  private createAll(): Map<number, AnyStateMachine> {
    return new Map(this.members.map((m) => [m.tag, m.create()]));
  }

  private encode(c: MuxCommand): Uint8Array {
    const body = this.machine(c.tag).codec.encode(c.command);
    const out = new Uint8Array(body.length + 1);
    out[0] = c.tag;
    out.set(body, 1);
    return out;
  }

  private decode(bytes: Uint8Array): MuxCommand {
    const r = new ByteReader(bytes);
    const tag = r.u8('mux tag');
    const m = this.machines.get(tag);
    if (m === undefined) throw new DecodeError('DECODE_INVALID', `no state machine has mux tag ${tag}`);
    return { type: 'mux', tag, command: m.codec.decode(bytes.subarray(1)) };
  }

  apply(index: LogIndex, term: Term, command: Uint8Array | MuxCommand): ApplyResult<MuxOutput> {
    assertApplyOrder(this.index, this.term, index, term);
    this.index = index;
    this.term = term;
    const tag = command instanceof Uint8Array ? command[0] : command.tag;
    const m = tag === undefined ? undefined : this.machines.get(tag);
    if (tag === undefined || m === undefined) {
      return err({
        code: 'BAD_COMMAND',
        message: `the committed entry names no known state machine (tag ${tag ?? 'missing'}); a newer node proposed it or it was corrupted`,
      });
    }
    const r = m.apply(index, term, command instanceof Uint8Array ? command.subarray(1) : command.command);
    return r.ok ? ok({ tag, output: r.value }) : r;
  }

  stateHash(): StateHash {
    const h = new Fnv64().u64(this.index).u64(this.term);
    for (const m of this.members) h.u8(m.tag).string(this.machine(m.tag).stateHash());
    return stateHashOf(h.digest());
  }

  /**
   * Format: magic u32 | format u8 | index u64 | term u64 | count u8 | count × (tag u8, u32 len +
   * member snapshot) | crc32c u32. The members' own limits must keep the sum within one Raft
   * snapshot message (`RAFT_SNAPSHOT_BYTES_MAX`); the writer asserts it.
   */
  snapshot(): Uint8Array {
    const w = new ByteWriter(1024, RAFT_SNAPSHOT_BYTES_MAX);
    w.u32(MUX_SNAPSHOT_MAGIC).u8(MUX_SNAPSHOT_FORMAT).u64(this.index).u64(this.term).u8(this.members.length);
    for (const m of this.members) w.u8(m.tag).lenBytes(this.machine(m.tag).snapshot());
    w.u32(crc32c(w.finish()));
    return w.finish().slice();
  }

  restore(bytes: Uint8Array): Result<void, DecodeError> {
    try {
      const { index, term, parts } = this.readSnapshot(bytes);
      const fresh = this.createAll();
      for (const [tag, part] of parts) {
        const r = defined(fresh.get(tag)).restore(part);
        if (!r.ok)
          return err(
            new DecodeError(r.error.code, `mux member with tag ${tag}: ${r.error.message}`, { cause: r.error }),
          );
      }
      for (const [tag, m] of fresh) {
        // A member ahead of the mux would later be asked to apply an index it has already passed.
        if (m.appliedIndex > index || m.appliedTerm > term) {
          return err(
            new DecodeError(
              'SNAPSHOT_INVALID',
              `mux snapshot is inconsistent: member ${tag} applied ${m.appliedIndex}@${m.appliedTerm}, past the mux's ${index}@${term}`,
            ),
          );
        }
      }
      this.machines = fresh;
      this.index = index;
      this.term = term;
      return ok(undefined);
    } catch (e) {
      if (e instanceof DecodeError) return err(e);
      throw e;
    }
  }

  private readSnapshot(bytes: Uint8Array): { index: LogIndex; term: Term; parts: Map<number, Uint8Array> } {
    if (bytes.length < 4) throw new DecodeError('SNAPSHOT_INVALID', 'mux snapshot is shorter than its checksum');
    const body = bytes.subarray(0, bytes.length - 4);
    if (crc32c(body) !== new ByteReader(bytes.subarray(bytes.length - 4)).u32('checksum')) {
      throw new DecodeError(
        'SNAPSHOT_CHECKSUM',
        'mux snapshot checksum mismatch: the bytes were corrupted in storage or transfer; fetch the snapshot again',
      );
    }
    const r = new ByteReader(body);
    if (r.u32('magic') !== MUX_SNAPSHOT_MAGIC)
      throw new DecodeError('SNAPSHOT_MAGIC', 'not a state-machine mux snapshot (bad magic)');
    const format = r.u8('format');
    if (format !== MUX_SNAPSHOT_FORMAT)
      throw new DecodeError('SNAPSHOT_VERSION', `mux snapshot format ${format} is not supported; upgrade this node`);
    const index = logIndex(r.u64('appliedIndex'));
    const term = makeTerm(r.u64('appliedTerm'));
    const count = r.u8('member count');
    const parts = new Map<number, Uint8Array>();
    for (let i = 0; i < count; i++) {
      const tag = r.u8('member tag');
      if (!this.machines.has(tag) || parts.has(tag))
        throw new DecodeError('SNAPSHOT_INVALID', `mux snapshot has an unknown or repeated member tag ${tag}`);
      parts.set(tag, r.lenBytes(RAFT_SNAPSHOT_BYTES_MAX, `member ${tag} snapshot`));
    }
    r.end('mux snapshot');
    if (parts.size !== this.members.length)
      throw new DecodeError(
        'SNAPSHOT_INVALID',
        `mux snapshot holds ${parts.size} machines, this node runs ${this.members.length}: it comes from a node with other state machines`,
      );
    return { index, term, parts };
  }
}
