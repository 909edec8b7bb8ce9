/**
 * The recovery coordinator's local API methods (docs/recovery.md, docs/api.md):
 *
 * - `recovery` -> `{rounds: [{group, level, generation, phase, sinceIndex, members: [{node,
 *   incarnation, report}], waiting: {fences, notStopped, notStarted, evicting, lower}}]}`: what
 *   every group's recovery waits for now (`cohort recovery`: "why is my cluster stuck?").
 * - stream `recovery.watch {group}` -> makes the caller a participant of `group`'s recovery on
 *   this node while the stream is open. First item `{kind: 'registered', watch}`; then
 *   `{kind: 'stop', group, generation}`, `{kind: 'start', group, generation, members}` and
 *   `{kind: 'finish', group, generation}`. The caller answers `stop` and `start` with
 *   `recovery.ack`. Closing the stream while an answer is owed answers it: a stop counts as
 *   done (the participant is gone, so it no longer uses the group), a start as an error.
 * - `recovery.ack {watch, generation, what: 'stopped'|'started'|'error', message?}` -> null;
 *   `NOT_FOUND` when the watch is closed, `INVALID_ARGUMENT` when nothing of that kind is owed
 *   for that generation.
 */
import { ApiError, type ApiData, type ApiHandlerRegistry } from '../api/index.js';
import { GROUP_NAME_BYTES_MAX } from '../constants.js';
import { params, toApiData } from '../runtime/shared-handlers.js';
import type { RecoveryService } from './recovery-service.js';

/** Watches open at once on one node (each is a participant). */
const WATCHES_MAX = 1024;
/** Bytes of an error message a participant may report. */
const ACK_MESSAGE_BYTES_MAX = 512;

interface Watch {
  readonly group: string;
  /** The owed stop answer for `generation`, if any. */
  stop: { readonly generation: number; readonly done: () => void } | null;
  start: { readonly generation: number; readonly done: (error: string | null) => void } | null;
}

const textEncoder = new TextEncoder();

function stringParam(p: Readonly<Record<string, ApiData>>, name: string, method: string, maxBytes: number): string {
  const v = p[name];
  if (typeof v !== 'string' || v.length === 0 || textEncoder.encode(v).length > maxBytes)
    throw new ApiError('INVALID_ARGUMENT', `${method}: params.${name} must be a string of 1 to ${maxBytes} bytes`);
  return v;
}

function intParam(p: Readonly<Record<string, ApiData>>, name: string, method: string): number {
  const v = p[name];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0)
    throw new ApiError('INVALID_ARGUMENT', `${method}: params.${name} must be a non-negative integer`);
  return v;
}

/** Registers `recovery`, `recovery.watch` and `recovery.ack` for `recovery`. */
export function registerRecoveryApi(server: ApiHandlerRegistry, recovery: RecoveryService): void {
  const watches = new Map<number, Watch>();
  let nextWatch = 1;

  server.register('recovery', () => toApiData({ rounds: recovery.status() }));

  server.registerStream('recovery.watch', (p, _ctx, sink) => {
    const group = stringParam(params(p, 'recovery.watch'), 'group', 'recovery.watch', GROUP_NAME_BYTES_MAX);
    if (watches.size >= WATCHES_MAX) {
      sink.fail('OVERLOADED', `recovery.watch: ${WATCHES_MAX} participants already watch on this node`);
      return undefined;
    }
    const id = nextWatch++;
    const w: Watch = { group, stop: null, start: null };
    watches.set(id, w);
    const remove = recovery.participate(group, {
      stop: (g, generation, done) => {
        w.stop = { generation, done };
        sink.push({ kind: 'stop', group: g, generation });
      },
      start: (start, done) => {
        w.start = { generation: start.generation, done };
        sink.push(
          toApiData({ kind: 'start', group: start.group, generation: start.generation, members: start.members }),
        );
      },
      finish: (g, generation) => {
        sink.push({ kind: 'finish', group: g, generation });
      },
    });
    sink.push({ kind: 'registered', watch: id, group });
    return () => {
      watches.delete(id);
      remove();
      // The participant is gone: it no longer uses the group (stop done), and it cannot start.
      w.stop?.done();
      w.start?.done('the participant closed its recovery.watch stream during the start');
    };
  });

  server.register('recovery.ack', (p) => {
    const q = params(p, 'recovery.ack');
    const id = intParam(q, 'watch', 'recovery.ack');
    const generation = intParam(q, 'generation', 'recovery.ack');
    const what = q['what'];
    const w = watches.get(id);
    if (w === undefined) throw new ApiError('NOT_FOUND', `recovery.ack: watch ${id} is not open on this node`);
    if (what === 'stopped') {
      if (w.stop?.generation !== generation)
        throw new ApiError(
          'INVALID_ARGUMENT',
          `recovery.ack: no stop of generation ${generation} is owed on watch ${id}`,
        );
      const done = w.stop.done;
      w.stop = null;
      done();
      return null;
    }
    if (what === 'started' || what === 'error') {
      if (w.start?.generation !== generation)
        throw new ApiError(
          'INVALID_ARGUMENT',
          `recovery.ack: no start of generation ${generation} is owed on watch ${id}`,
        );
      const message = q['message'];
      const text =
        typeof message === 'string' && message !== ''
          ? message.slice(0, ACK_MESSAGE_BYTES_MAX)
          : 'the participant reported an error';
      const done = w.start.done;
      w.start = null;
      done(what === 'started' ? null : text);
      return null;
    }
    throw new ApiError('INVALID_ARGUMENT', "recovery.ack: params.what must be 'stopped', 'started' or 'error'");
  });
}
