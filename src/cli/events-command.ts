/**
 * `cohort events [--follow] [--from SEQ] [--json] [--socket PATH]`: the cluster's event stream
 * (view, quorum, node-status, group, barrier, fence and recovery events, numbered identically on
 * every node) over the daemon's
 * `events` API stream. One line per event: a readable summary, or with `--json` the event as one
 * JSON object (JSON lines). Without `--follow` it prints the retained events from SEQ (default:
 * the oldest retained) and exits; with `--follow` it then waits for new ones until Ctrl-C.
 *
 * Exit codes (docs/cli.md): 0 done (or stopped by Ctrl-C), 1 a gap (the events asked for were
 * compacted away: the message names the oldest sequence still available) or another failure,
 * 2 usage, 4 the daemon cannot be reached or went away while following, 7 the daemon is busy
 * (every API client slot in use; retry later).
 */
import type { Command } from '@commander-js/extra-typings';
import { CohortClientError, connectLocal, type ApiData } from '../client/index.js';
import { intOption } from './options.js';
import { apiList, apiObject, cellText, toJsonLine, type Obj, type StatusIo } from './status-command.js';

/** Exit codes of `cohort events`. */
export const EVENTS_EXIT = { ok: 0, failure: 1, unreachable: 4, busy: 7 } as const;
/** Deadline to connect to the daemon. */
const CONNECT_TIMEOUT_MS = 5000;

/** Options of `cohort events`. */
export interface EventsOptions {
  readonly socket?: string;
  readonly json?: boolean;
  readonly follow?: boolean;
  readonly fromSeq?: number;
  /** Stops a follow (default: SIGINT or SIGTERM). */
  readonly signal?: AbortSignal;
}

function members(v: ApiData | undefined): string {
  return apiList(v)
    .map((m) => `${cellText(m['node'])}:${cellText(m['incarnation'])}`)
    .join(' ');
}

/** What a fence event says (docs/fencing.md, "Ledger"). */
function fenceDetail(p: Obj): string {
  const what = cellText(p['what']);
  switch (what) {
    case 'requested':
      return `requested (${cellText(p['reason'])})`;
    case 'attempt': {
      const a = apiObject(p['attempt']);
      const exit = a['exitCode'] === undefined ? '' : ` exit ${cellText(a['exitCode'])}`;
      return `attempt: level ${cellText(a['level'])} ${cellText(a['device'])} ${cellText(a['action'])} ${cellText(a['result'])}${exit} in ${cellText(a['durationMs'])} ms (round ${cellText(a['round'])})`;
    }
    case 'fenced': {
      const proof = apiObject(p['proof']);
      const by = cellText(proof['by']);
      const how =
        by === 'confirm'
          ? proof['operator'] === undefined
            ? ''
            : ` ${cellText(proof['operator'])}`
          : ` (level ${cellText(proof['level'])} ${cellText(proof['device'])})`;
      return `fenced by ${by}${how}`;
    }
    case 'unfenced': {
      const u = apiObject(p['unfence']);
      return `unfenced: ${cellText(u['device'])} ${cellText(u['result'])}`;
    }
    default:
      return toJsonLine(p);
  }
}

/** What a recovery event says about its round (docs/recovery.md, "Events"). */
function recoveryDetail(p: Obj): string {
  const step = cellText(p['step']);
  const who = `node ${cellText(p['node'])} incarnation ${cellText(p['incarnation'])}`;
  switch (step) {
    case 'opened': {
      const previous = typeof p['previous'] === 'number' && p['previous'] > 0 ? `, replaces ${p['previous']}` : '';
      return `opened (${cellText(p['reason'])}${previous}); members [${members(p['members'])}], waits for fences [${members(p['fences'])}]`;
    }
    case 'aborted':
      return typeof p['next'] === 'number' && p['next'] > 0
        ? `aborted; generation ${p['next']} replaces it`
        : 'aborted (the group is no longer recovered)';
    case 'stopped':
      return `${who} stopped`;
    case 'fence-satisfied':
      return `fence of ${who} recorded`;
    case 'start-due':
      return `start due for [${members(p['members'])}]`;
    case 'member-started':
      return `${who} started`;
    case 'member-error':
      return `${who} reported an error; it leaves the group`;
    case 'member-evicted':
      return `${who} evicted (${cellText(p['reason'])}); it leaves the group`;
    case 'finished':
      return `finished; [${members(p['members'])}] resume`;
    default:
      return toJsonLine(p);
  }
}

/** One readable line for an event (seq, view, log index, kind, what changed and why). */
export function describeEvent(v: ApiData): string {
  const e = apiObject(v);
  const p = apiObject(e['payload']);
  const head = `#${cellText(e['seq'])} view ${cellText(e['viewId'])} index ${cellText(e['index'])}`;
  const quorate = p['quorate'] === true ? 'quorate' : 'NOT quorate';
  const kind = cellText(e['kind']);
  switch (kind) {
    case 'view': {
      const c = apiObject(p['change']);
      return `${head} view: node ${cellText(c['node'])} incarnation ${cellText(c['incarnation'])} ${cellText(c['kind'])} (${cellText(c['cause'])}); members [${members(p['members'])}], ${quorate}`;
    }
    case 'quorum':
      return `${head} quorum: ${quorate} (${cellText(p['reason'])}: ${cellText(p['explanation'])})`;
    case 'node':
      return `${head} node: node ${cellText(p['node'])} incarnation ${cellText(p['incarnation'])} ${cellText(p['from'])} -> ${cellText(p['to'])} (${cellText(p['cause'])})`;
    case 'group': {
      const c = apiObject(p['change']);
      return `${head} group ${cellText(p['group'])}: node ${cellText(c['node'])} incarnation ${cellText(c['incarnation'])} ${cellText(c['kind'])}; group view ${cellText(p['groupViewId'])} members [${members(p['members'])}]`;
    }
    case 'barrier':
      return `${head} barrier ${cellText(p['group'])}/${cellText(p['name'])}: ${cellText(p['outcome'])} (group view ${cellText(p['groupViewId'])})`;
    case 'fence':
      return `${head} fence: node ${cellText(p['node'])} incarnation ${cellText(p['incarnation'])} ${fenceDetail(p)}`;
    case 'recovery':
      return `${head} recovery ${cellText(p['group'])} (level ${cellText(p['level'])}) generation ${cellText(p['generation'])}: ${recoveryDetail(p)}`;
    default:
      return `${head} ${kind}: ${toJsonLine(e['payload'] ?? null)}`; // a kind from a newer daemon
  }
}

function gapMessage(e: CohortClientError, fromSeq: number | undefined): string {
  const oldest = /sequence (\d+)/.exec(e.message)?.[1];
  const asked = fromSeq === undefined ? '' : ` from sequence ${fromSeq}`;
  const retry = oldest === undefined ? 'rerun without --from' : `rerun with --from ${oldest}`;
  return `GAP: the events asked for${asked} were compacted away and can no longer be read (${e.message}); ${retry} after reading the current state with \`cohort status\``;
}

function exitFor(e: CohortClientError): number {
  if (e.code === 'OVERLOADED') return EVENTS_EXIT.busy;
  return e.code === 'DAEMON_UNREACHABLE' || e.code === 'CONNECTION_LOST' || e.code === 'TIMEOUT'
    ? EVENTS_EXIT.unreachable
    : EVENTS_EXIT.failure;
}

/** Runs `cohort events`; resolves to the exit code. Never throws. */
export async function runEvents(opts: EventsOptions, io: StatusIo): Promise<number> {
  try {
    await using conn = await connectLocal({
      ...(opts.socket === undefined ? {} : { socket: opts.socket }),
      timeoutMs: CONNECT_TIMEOUT_MS,
      clientName: 'cohort events',
    });
    const params: Obj = {
      follow: opts.follow === true,
      ...(opts.fromSeq === undefined ? {} : { fromSeq: opts.fromSeq }),
    };
    const stream = conn.stream('events', params, opts.signal === undefined ? {} : { signal: opts.signal });
    for await (const event of stream)
      io.out(opts.json === true ? `${toJsonLine(event)}\n` : `${describeEvent(event)}\n`);
    return EVENTS_EXIT.ok;
  } catch (e) {
    if (e instanceof CohortClientError) {
      if (e.code === 'ABORTED' || e.code === 'CANCELLED') return EVENTS_EXIT.ok; // Ctrl-C while following
      io.err(`cohort events: ${e.code === 'GAP' ? gapMessage(e, opts.fromSeq) : e.message}\n`);
      return exitFor(e);
    }
    io.err(`cohort events: ${e instanceof Error ? e.message : String(e)}\n`);
    return EVENTS_EXIT.failure;
  }
}

function untilSignal(): AbortSignal {
  const controller = new AbortController();
  const stop = (): void => {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    controller.abort();
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  return controller.signal;
}

/** Registers `cohort events` on `program`. */
export function registerEvents(program: Command, setCode: (code: number) => void): void {
  program
    .command('events')
    .description(
      'the cluster event stream, one line per event (exit 1 on a gap, 4 when the daemon is unreachable, 7 when it is busy)',
    )
    .option('--follow', 'keep printing new events until Ctrl-C')
    .option(
      '--from <seq>',
      'start at this sequence number (default: the oldest retained)',
      intOption('--from', 0, Number.MAX_SAFE_INTEGER),
    )
    .option('--json', 'print each event as one JSON object (JSON lines)')
    .option('--socket <path>', "the node's API socket (default $COHORT_SOCKET)")
    .action(async (opts) => {
      const io: StatusIo = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };
      const options: EventsOptions = {
        json: opts.json === true,
        follow: opts.follow === true,
        ...(opts.from === undefined ? {} : { fromSeq: opts.from }),
        ...(opts.socket === undefined ? {} : { socket: opts.socket }),
        ...(opts.follow === true ? { signal: untilSignal() } : {}),
      };
      setCode(await runEvents(options, io));
    });
}
