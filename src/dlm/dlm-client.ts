/**
 * The DLM's client namespace (`client.dlm`, docs/dlm.md): lockspaces and locks over any
 * `ApiCaller` (the daemon's socket or embedded mode's in-process channel).
 *
 * ```ts
 * const ls = await client.dlm.lockspace('app');
 * await using lock = await ls.lock('config', 'EX', { signal: AbortSignal.timeout(5000) });
 * // ... the lock is held here; leaving the block unlocks it
 * ```
 *
 * One lock session per client, opened with the first lock (the `dlm.session` stream): every lock
 * this client takes belongs to it, and when the client's connection closes or its process dies,
 * the daemon releases them at once (PERSISTENT ones stay as orphans).
 *
 * Errors (`CohortClientError`): `NOT_GRANTED` (NOQUEUE and held in a conflicting mode),
 * `DEADLOCK` (a conversion deadlock: the conversion was cancelled, the lock keeps its mode),
 * `TIMEOUT` (the `timeoutMs` of the request ran out), `ABORTED` (the caller's signal: the request
 * was cancelled), `BUSY`, `NOT_FOUND`, `INVALID_ARGUMENT`, `OVERLOADED`, and the connection's.
 *
 * Client code runs in the caller's process, never in the simulator: it may use Promises.
 */
import {
  abortedError,
  type ApiCaller,
  type ApiData,
  type ApiStream,
  type CallOptions,
  CohortClientError,
  FieldReader,
  enumMembers,
} from '../api/index.js';
import { LKF, LOCK_STATUSES, MODE_NAMES, type LockFlagName, type LockModeName, type LockStatus } from './lock-types.js';

/** Options of `LockspaceHandle.lock`. */
export interface LockRequestOptions extends CallOptions {
  /** `LKF` flag names (`NOQUEUE`, `PERSISTENT`, `VALBLK`, `QUECVT`, `ALTPR`, ...). */
  readonly flags?: readonly LockFlagName[];
  /** Give up after this many ms of waiting (rejects `TIMEOUT`; the request is cancelled on the master). */
  readonly timeoutMs?: number;
  /** Called with the blocking mode when another request waits for this lock (a blocking notification). */
  readonly onBlocking?: (mode: LockModeName) => void;
  /** Ask for blocking notifications without a callback: read them from `LockHandle.blocking()`. */
  readonly blocking?: boolean;
}

/** Options of `LockHandle.convert`. */
export interface ConvertOptions extends LockRequestOptions {
  /** The value block to write (down-conversion from PW/EX with VALBLK). */
  readonly lvb?: Uint8Array;
}

/** A held lock. `await using` unlocks it. */
export interface LockHandle extends AsyncDisposable {
  readonly lockspace: string;
  readonly resource: string;
  readonly lkid: number;
  /** The granted mode. */
  readonly mode: LockModeName;
  /** The value block read by the last grant (VALBLK), else null. */
  readonly lvb: Uint8Array | null;
  /** `SBF` bits of the last completion (DEMOTED 1, VALNOTVALID 2, ALTMODE 4). */
  readonly sbflags: number;
  /** Converts to `mode`; resolves when granted. */
  convert(mode: LockModeName, options?: ConvertOptions): Promise<void>;
  /**
   * The blocking notifications of this lock (the blocking mode of each request that waits behind
   * it), as an async iterator; it ends when the lock is unlocked. Needs `onBlocking` or
   * `blocking: true` on the request.
   */
  blocking(): AsyncIterableIterator<LockModeName>;
  /** Unlocks (with `lvb` written when held in PW/EX with VALBLK). Idempotent. */
  unlock(
    options?: CallOptions & { readonly lvb?: Uint8Array; readonly flags?: readonly LockFlagName[] },
  ): Promise<void>;
}

/** A lockspace this node joined. */
export interface LockspaceHandle {
  readonly name: string;
  /** Takes a lock on `resource` in `mode`; resolves once granted. */
  lock(resource: string, mode: LockModeName, options?: LockRequestOptions): Promise<LockHandle>;
}

/** What `dlm.lockspaces` says of one lockspace on this node. */
export interface LockspaceInfo {
  readonly name: string;
  readonly joined: boolean;
  readonly generation: number;
  readonly members: readonly number[];
  readonly paused: boolean;
  /** A member departed and the lockspace recovers (operations wait until it ends). */
  readonly recovering: boolean;
  readonly mastered: number;
  readonly directory: number;
  readonly locks: number;
}

/** The DLM's client namespace. */
export interface DlmClient {
  /** Joins lockspace `name` on this node (if not yet) and returns its handle. */
  lockspace(name: string, options?: CallOptions): Promise<LockspaceHandle>;
  /** The lockspaces this node opened. */
  lockspaces(options?: CallOptions): Promise<LockspaceInfo[]>;
  /** What this node holds, masters and directs in `lockspace` (raw API data, as `cohort locks dump --json`). */
  dump(lockspace: string, options?: CallOptions): Promise<ApiData>;
}

const STATUS_VALUES = enumMembers<LockStatus>()(LOCK_STATUSES);
/** Blocking notifications a session keeps for locks whose handle is not registered yet. */
const UNCLAIMED_BASTS_MAX = 1024;
const MODE_VALUES = enumMembers<LockModeName>()(MODE_NAMES);

interface Completion {
  readonly lkid: number;
  readonly status: LockStatus;
  readonly mode: LockModeName | null;
  readonly sbflags: number;
  readonly lvb: Uint8Array | null;
}

interface Waiter {
  resolve(c: Completion): void;
}

/** One lock session over `caller` (the `dlm.session` stream), opened on first use. */
class Session {
  private stream: ApiStream | null = null;
  private id: Promise<number> | null = null;
  private readonly waiters = new Map<string, Waiter>();
  /** Completions that arrived before their call's answer (a lock granted at once). */
  private readonly early = new Map<string, Completion>();
  private readonly blocking = new Map<string, (mode: LockModeName) => void>();
  /** Blocking notifications that arrived before their lock's handle registered (the newest per lock, bounded). */
  private readonly unclaimedBasts = new Map<string, LockModeName>();
  private failure: CohortClientError | null = null;

  constructor(private readonly caller: ApiCaller) {}

  session(): Promise<number> {
    this.id ??= this.open();
    return this.id;
  }

  private async open(): Promise<number> {
    const stream = this.caller.stream('dlm.session', null);
    this.stream = stream;
    const first = await stream.next();
    if (first.done === true) throw new CohortClientError('CONNECTION_LOST', 'the lock session stream ended at once');
    const id = FieldReader.of(first.value, 'item', 'dlm.session').int('session', 1);
    void this.pump(stream);
    return id;
  }

  private async pump(stream: ApiStream): Promise<void> {
    try {
      for await (const item of stream) this.onItem(item);
      this.fail(new CohortClientError('CONNECTION_LOST', 'the lock session ended: its locks were released'));
    } catch (e) {
      this.fail(
        e instanceof CohortClientError
          ? e
          : new CohortClientError('CONNECTION_LOST', `the lock session failed: ${String(e)}`),
      );
    }
  }

  private fail(e: CohortClientError): void {
    this.failure = e;
    const waiters = [...this.waiters.values()];
    this.waiters.clear();
    // Fail every waiter: its lock is gone with the session.
    for (const w of waiters) w.resolve({ lkid: 0, status: 'unlocked', mode: null, sbflags: -1, lvb: null });
  }

  get error(): CohortClientError | null {
    return this.failure;
  }

  private onItem(v: ApiData): void {
    const r = FieldReader.of(v, 'item', 'dlm.session');
    const kind = r.str('kind');
    if (kind !== 'completion' && kind !== 'bast') return; // `paused`: informational
    const key = `${r.str('lockspace')}/${r.int('lkid', 1)}`;
    if (kind === 'completion') {
      const mode = r.raw('mode');
      const c: Completion = {
        lkid: r.int('lkid', 1),
        status: r.oneOf('status', STATUS_VALUES),
        mode: mode === null ? null : r.oneOf('mode', MODE_VALUES),
        sbflags: r.int('sbflags', 0, 7),
        lvb: r.raw('lvb') === null || r.raw('lvb') === undefined ? null : r.bytes('lvb'),
      };
      const w = this.waiters.get(key);
      if (w === undefined) this.early.set(key, c);
      else {
        this.waiters.delete(key);
        w.resolve(c);
      }
    } else {
      const mode = r.oneOf('mode', MODE_VALUES);
      const fn = this.blocking.get(key);
      if (fn !== undefined) fn(mode);
      else {
        this.unclaimedBasts.set(key, mode);
        if (this.unclaimedBasts.size > UNCLAIMED_BASTS_MAX) {
          const oldest = this.unclaimedBasts.keys().next();
          if (oldest.done !== true) this.unclaimedBasts.delete(oldest.value);
        }
      }
    }
  }

  /** Waits for the completion of `lkid` in `ls` (it may already be here). */
  completion(ls: string, lkid: number): Promise<Completion> {
    const key = `${ls}/${lkid}`;
    const early = this.early.get(key);
    if (early !== undefined) {
      this.early.delete(key);
      return Promise.resolve(early);
    }
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise((resolve) => this.waiters.set(key, { resolve }));
  }

  onBlocking(ls: string, lkid: number, fn: ((mode: LockModeName) => void) | undefined): void {
    const key = `${ls}/${lkid}`;
    if (fn === undefined) {
      this.blocking.delete(key);
      this.unclaimedBasts.delete(key);
      return;
    }
    this.blocking.set(key, fn);
    const early = this.unclaimedBasts.get(key);
    if (early !== undefined) {
      this.unclaimedBasts.delete(key);
      fn(early);
    }
  }

  close(): void {
    this.stream?.cancel();
  }
}

function flagBits(names: readonly LockFlagName[] | undefined): number {
  let bits = 0;
  for (const n of names ?? []) {
    const b = LKF[n] as number | undefined;
    if (b === undefined) throw new CohortClientError('INVALID_ARGUMENT', `unknown lock flag ${n}`);
    bits |= b;
  }
  return bits;
}

/** The outcome of a completion that is not a grant, as the error the caller sees. */
function notGranted(c: Completion, what: string, session: Session, signal: AbortSignal | undefined): CohortClientError {
  if (c.sbflags === -1) return session.error ?? new CohortClientError('CONNECTION_LOST', `${what}: the session ended`);
  switch (c.status) {
    case 'again':
      return new CohortClientError('NOT_GRANTED', `${what}: held in a conflicting mode (NOQUEUE: not waiting)`);
    case 'deadlock':
      return new CohortClientError(
        'DEADLOCK',
        `${what}: the conversion would deadlock with one queued before it; it was cancelled and the lock keeps its mode`,
      );
    case 'timeout':
      return new CohortClientError('TIMEOUT', `${what}: not granted within its timeout`);
    case 'cancelled':
      return signal?.aborted === true
        ? abortedError(signal, what)
        : new CohortClientError('ABORTED', `${what} was cancelled`);
    case 'granted':
    case 'unlocked':
      return new CohortClientError('NOT_GRANTED', `${what}: ended with status ${c.status}`);
  }
}

/** The `DlmClient` over `caller`. */
export function dlmClient(caller: ApiCaller): DlmClient {
  let sessionRef: Session | null = null;
  const session = (): Session => (sessionRef ??= new Session(caller));

  /** Runs one lock or convert call and waits for its completion; the signal cancels it. */
  const run = async (
    ls: string,
    what: string,
    call: (s: number) => Promise<number>,
    signal: AbortSignal | undefined,
  ): Promise<Completion> => {
    const s = session();
    const id = await s.session();
    signal?.throwIfAborted();
    const lkid = await call(id);
    const onAbort = (): void => {
      void caller.request('dlm.cancel', { session: id, lockspace: ls, lkid }).catch(() => undefined);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted === true) onAbort();
    try {
      const c = await s.completion(ls, lkid);
      if (c.status !== 'granted') throw notGranted(c, what, s, signal);
      return c;
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  };

  const handle = (
    ls: string,
    resource: string,
    first: Completion,
    onBlocking: LockRequestOptions['onBlocking'],
    wantsBlocking: boolean,
  ): LockHandle => {
    let state = first;
    let ended = false;
    const queued: LockModeName[] = [];
    let wake: (() => void) | null = null;
    if (wantsBlocking)
      session().onBlocking(ls, first.lkid, (mode) => {
        onBlocking?.(mode);
        queued.push(mode);
        if (queued.length > 64) queued.shift(); // a reader that does not read keeps the newest
        wake?.();
      });
    const blocking = async function* (): AsyncGenerator<LockModeName> {
      for (;;) {
        const next = queued.shift();
        if (next !== undefined) {
          yield next;
          continue;
        }
        if (ended) return;
        await new Promise<void>((resolve) => {
          wake = () => {
            wake = null;
            resolve();
          };
        });
      }
    };
    const h: LockHandle = {
      lockspace: ls,
      resource,
      lkid: first.lkid,
      get mode(): LockModeName {
        return state.mode ?? 'NL';
      },
      get lvb(): Uint8Array | null {
        return state.lvb;
      },
      get sbflags(): number {
        return state.sbflags;
      },
      blocking: () => blocking(),
      convert: async (mode, options = {}) => {
        const c = await run(
          ls,
          `convert ${resource} to ${mode}`,
          async (s) => {
            await caller.request('dlm.convert', {
              session: s,
              lockspace: ls,
              lkid: first.lkid,
              mode,
              flags: flagBits(options.flags) | (options.timeoutMs === undefined ? 0 : LKF.TIMEOUT),
              ...(options.lvb === undefined ? {} : { lvb: options.lvb }),
              ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
            });
            return first.lkid;
          },
          options.signal,
        );
        state = c;
      },
      unlock: async (options = {}) => {
        if (ended) return;
        const s = session();
        const id = await s.session();
        await caller.request('dlm.unlock', {
          session: id,
          lockspace: ls,
          lkid: first.lkid,
          flags: flagBits(options.flags),
          ...(options.lvb === undefined ? {} : { lvb: options.lvb }),
        });
        await s.completion(ls, first.lkid);
        ended = true;
        if (wantsBlocking) s.onBlocking(ls, first.lkid, undefined);
        wake?.();
      },
      [Symbol.asyncDispose]: async () => {
        if (!ended && caller.open) await h.unlock();
      },
    };
    return h;
  };

  return {
    lockspace: async (name, options = {}) => {
      await caller.request('dlm.open', { lockspace: name }, options);
      return {
        name,
        lock: async (resource, mode, options2 = {}) => {
          const flags = flagBits(options2.flags) | (options2.timeoutMs === undefined ? 0 : LKF.TIMEOUT);
          const c = await run(
            name,
            `lock ${resource} ${mode}`,
            async (s) => {
              const r = await caller.request('dlm.lock', {
                session: s,
                lockspace: name,
                resource,
                mode,
                flags,
                bast: options2.onBlocking !== undefined || options2.blocking === true,
                ...(options2.timeoutMs === undefined ? {} : { timeoutMs: options2.timeoutMs }),
              });
              return FieldReader.of(r, 'answer', 'dlm.lock').int('lkid', 1);
            },
            options2.signal,
          );
          return handle(
            name,
            resource,
            c,
            options2.onBlocking,
            options2.onBlocking !== undefined || options2.blocking === true,
          );
        },
      };
    },
    lockspaces: async (options) => {
      const v = await caller.request('dlm.lockspaces', null, options);
      if (!Array.isArray(v)) throw new CohortClientError('PROTOCOL_ERROR', 'dlm.lockspaces: the answer is not a list');
      return (v as readonly ApiData[]).map((x, i) => {
        const r = FieldReader.of(x, `answer[${i}]`, 'dlm.lockspaces');
        return {
          name: r.str('name'),
          joined: r.bool('joined'),
          generation: r.int('generation'),
          members: r.intList('members', 1, 65535),
          paused: r.bool('paused'),
          recovering: r.raw('recovering') === true,
          mastered: r.int('mastered'),
          directory: r.int('directory'),
          locks: r.int('locks'),
        };
      });
    },
    dump: (lockspace, options) => caller.request('dlm.dump', { lockspace }, options),
  };
}
