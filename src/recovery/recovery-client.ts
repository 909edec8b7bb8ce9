/**
 * The recovery coordinator's client namespace (`client.recovery`, docs/recovery.md): what every
 * group's recovery waits for (`status`), and taking part in a group's recovery from an
 * application (`participate`): the group is joined at its level (default 3, applications), and
 * the application's `stop`, `start` and `finish` callbacks run as the rounds go; each `stop` and
 * `start` is answered when its promise settles (a rejected `start` reports `error`: this node
 * leaves the group and the round restarts without it). A `stop` that rejects is not answered: the
 * participation leaves the group (so the round goes on without this node) and `ended` rejects
 * with the error. An answer for a generation the daemon no longer waits for (the round moved on
 * while the callback ran) is dropped: the next generation's `stop` follows.
 *
 * Errors: every call rejects with `CohortClientError` only. Client code runs in the caller's
 * process, never inside a simulated run: it may use Promises.
 */
import {
  type ApiCaller,
  type ApiData,
  badAnswer,
  callDecoded,
  type CallOptions,
  CohortClientError,
  FieldReader,
} from '../api/index.js';
import type { NodeId } from '../lib/ids.js';
import { groupsClient, type GroupHandle } from '../groups/group-client.js';

/** A round's member and its report so far. */
export interface RecoveryMemberInfo {
  readonly node: NodeId;
  readonly incarnation: number;
  readonly report: 'stopped' | 'started' | 'error' | null;
}

/** A cluster member incarnation a round names. */
export interface RecoveryRef {
  readonly node: NodeId;
  readonly incarnation: number;
}

/** What a round waits for (`RecoveryWait` of the recovery table). */
export interface RecoveryWaitInfo {
  /** Fences not recorded yet, each awaited since a log index. */
  readonly fences: readonly (RecoveryRef & { readonly sinceIndex: number })[];
  /** Members that owe `stopped` (while stopping). */
  readonly notStopped: readonly RecoveryRef[];
  /** Members that owe `started` (while starting). */
  readonly notStarted: readonly RecoveryRef[];
  /** Members that reported an error or were evicted, leaving the group. */
  readonly evicting: readonly RecoveryRef[];
  /** Open rounds of lower levels it waits behind. */
  readonly lower: readonly {
    readonly group: string;
    readonly level: number;
    readonly generation: number;
    readonly phase: string;
  }[];
}

/** One group's recovery, as `recovery` reports it. */
export interface RecoveryRoundInfo {
  readonly group: string;
  readonly level: number;
  /** 0: the group never had a round. */
  readonly generation: number;
  /** `idle`, `stopping`, `waiting-fence`, `waiting-lower`, `starting` or `finished`. */
  readonly phase: string;
  /** The log index since which the round is in `phase`. */
  readonly sinceIndex: number;
  readonly members: readonly RecoveryMemberInfo[];
  /** What it waits for (null when the daemon has nothing for the group). */
  readonly waiting: RecoveryWaitInfo | null;
}

/** What `start` is told: the round's generation and members. */
export interface RecoveryStartInfo {
  readonly group: string;
  readonly generation: number;
  readonly members: readonly { readonly node: NodeId; readonly incarnation: number }[];
}

/** An application's part in a group's recovery. */
export interface RecoveryCallbacks {
  /** Stop using the group's shared state; resolve once stopped. */
  stop(generation: number): Promise<void> | void;
  /** Start again with the round's members; reject if this node cannot. */
  start(info: RecoveryStartInfo): Promise<void> | void;
  /** The round finished on every member: the group runs again. */
  finish?(generation: number): void;
}

/** Options of `participate`. */
export interface ParticipateOptions extends CallOptions {
  /** The group's level (default 3, applications). Lower levels recover first. */
  readonly level?: number;
}

/** A participation: `await using` (or `leave`) ends it and leaves the group. */
export interface Participation extends AsyncDisposable {
  readonly group: string;
  readonly handle: GroupHandle;
  /** Resolves when the watch ends (left, or the connection closed); rejects on a callback's unexpected error. */
  readonly ended: Promise<void>;
  leave(options?: CallOptions): Promise<void>;
}

/** The recovery coordinator's calls. */
export interface RecoveryClient {
  /** Every group's recovery round and what it waits for. */
  status(options?: CallOptions): Promise<RecoveryRoundInfo[]>;
  /** Joins `group` and takes part in its recovery with `callbacks`. */
  participate(group: string, callbacks: RecoveryCallbacks, options?: ParticipateOptions): Promise<Participation>;
}

/** Applications recover last (DESIGN.md section 5: 0 fence domain, 1 lockspaces, 2 volumes, 3 applications). */
export const APPLICATION_LEVEL = 3;

/** The `RecoveryClient` over `caller`. */
export function recoveryClient(caller: ApiCaller): RecoveryClient {
  return {
    status: (options) => callDecoded(caller, 'recovery', null, decodeStatus, options),
    participate: async (group, callbacks, options = {}) => {
      const stream = caller.stream(
        'recovery.watch',
        { group },
        options.signal === undefined ? {} : { signal: options.signal },
      );
      const first = await stream.next();
      if (first.done === true) throw badAnswer('recovery.watch', 'first item', 'a registration', null);
      const watch = FieldReader.of(first.value, 'first item', 'recovery.watch').int('watch', 1);
      let handle: GroupHandle;
      try {
        handle = await groupsClient(caller).join(group, { ...options, level: options.level ?? APPLICATION_LEVEL });
      } catch (e) {
        stream.cancel();
        throw e;
      }
      const ack = async (generation: number, what: string, message?: string): Promise<void> => {
        try {
          await callDecoded(
            caller,
            'recovery.ack',
            { watch, generation, what, ...(message === undefined ? {} : { message }) },
            () => null,
            {},
          );
        } catch (e) {
          // The round moved on while the callback ran: the daemon asks again for the next one.
          if (e instanceof CohortClientError && e.is('INVALID_ARGUMENT')) return;
          throw e;
        }
      };
      const ended = (async () => {
        for await (const item of stream) {
          const r = FieldReader.of(item, 'item', 'recovery.watch');
          const kind = r.str('kind');
          const generation = r.int('generation', 0);
          if (kind === 'stop') {
            try {
              await callbacks.stop(generation);
            } catch (e) {
              // It may still use the group: leave it, so the round goes on without this node.
              await handle.leave().catch(() => undefined);
              stream.cancel();
              throw e;
            }
            await ack(generation, 'stopped');
          } else if (kind === 'start') {
            const members = r.list('members', (m) => ({
              node: m.nodeId('node'),
              incarnation: m.int('incarnation', 1),
            }));
            try {
              await callbacks.start({ group, generation, members });
              await ack(generation, 'started');
            } catch (e) {
              await ack(generation, 'error', e instanceof Error ? e.message : String(e));
            }
          } else if (kind === 'finish') {
            callbacks.finish?.(generation);
          }
        }
      })();
      // `ended` is for the caller to await; its rejection must not go unhandled when it does not.
      ended.catch(() => undefined);
      const leave = async (o?: CallOptions): Promise<void> => {
        await handle.leave(o);
        stream.cancel();
        await ended.catch(() => undefined);
      };
      return {
        group,
        handle,
        ended,
        leave,
        [Symbol.asyncDispose]: async () => {
          if (caller.open) await leave();
          else stream.cancel();
        },
      };
    },
  };
}

function decodeRef(m: FieldReader): RecoveryRef {
  return { node: m.nodeId('node'), incarnation: m.int('incarnation', 1) };
}

function decodeWait(v: ApiData | undefined): RecoveryWaitInfo | null {
  if (v === null || v === undefined) return null;
  const w = FieldReader.of(v, 'rounds[].waiting', 'recovery');
  return {
    fences: w.list('fences', (f) => ({ ...decodeRef(f), sinceIndex: f.int('sinceIndex', 0) })),
    notStopped: w.list('notStopped', decodeRef),
    notStarted: w.list('notStarted', decodeRef),
    evicting: w.list('evicting', decodeRef),
    lower: w.list('lower', (l) => ({
      group: l.str('group'),
      level: l.int('level', 0, 255),
      generation: l.int('generation', 0),
      phase: l.str('phase'),
    })),
  };
}

function decodeStatus(v: ApiData): RecoveryRoundInfo[] {
  const r = FieldReader.of(v, 'answer', 'recovery');
  return r.list('rounds', (x) => ({
    group: x.str('group'),
    level: x.int('level', 0, 255),
    generation: x.int('generation', 0),
    phase: x.str('phase'),
    sinceIndex: x.int('sinceIndex', 0),
    members: x.list('members', (m) => {
      const report = m.raw('report');
      if (report !== null && report !== 'stopped' && report !== 'started' && report !== 'error')
        throw badAnswer('recovery', 'members[].report', "null, 'stopped', 'started' or 'error'", report);
      return { node: m.nodeId('node'), incarnation: m.int('incarnation', 1), report };
    }),
    waiting: decodeWait(x.raw('waiting')),
  }));
}
