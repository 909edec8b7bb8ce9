/**
 * `cohort fence confirm NODE [--incarnation N] [--json] [--socket PATH]`: the manual fence agent
 * (DESIGN.md section 6). The operator states that NODE's incarnation was fenced (powered off,
 * cut from storage); the daemon proposes `fenced(NODE, incarnation)` to the cluster log, and a
 * newer incarnation of NODE waiting for that fence is admitted into the view.
 *
 * The default incarnation is the one that needs fencing now (`cohort nodes` shows it). Give
 * `--incarnation` only to confirm a later incarnation fenced as well (the node restarted and was
 * fenced again): the waiting incarnation is then not admitted.
 *
 * Exit codes (docs/cli.md): 0 confirmed (or already settled), 1 refused (the message says why:
 * the node does not need fencing, an unknown node or incarnation), 2 usage, 3 no quorum to
 * commit the confirmation, 4 the daemon cannot be reached, 7 the daemon is busy (every API
 * client slot in use; retry later).
 */
import type { Command } from '@commander-js/extra-typings';
import { CohortClientError, connectLocal, type ApiData } from '../client/index.js';
import { NODE_ID_MAX } from '../lib/ids.js';
import { intOption } from './options.js';
import { apiList, apiObject, cellText, toJsonLine, type Obj, type StatusIo } from './status-command.js';

/** Exit codes of `cohort fence confirm`. */
export const FENCE_EXIT = { ok: 0, refused: 1, notQuorate: 3, unreachable: 4, busy: 7 } as const;
/** Deadline of the whole command: the daemon's own proposal deadline (5 s) plus slack. */
const FENCE_TIMEOUT_MS = 8000;

/** Options of `cohort fence confirm`. */
export interface FenceConfirmOptions {
  readonly node: number;
  readonly incarnation?: number;
  readonly socket?: string | undefined;
  readonly json?: boolean;
}

/** The readable line for a `fence.confirm` answer. */
export function describeConfirmation(v: ApiData): string {
  const r = apiObject(v);
  const node = cellText(r['nodeId']);
  const inc = cellText(r['incarnation']);
  if (r['local'] === true)
    return `node ${node}: incarnation ${inc} confirmed fenced on this node (two_node split: no commit is possible, so this node counts its peer as fenced and runs alone; the confirmation goes into the fence ledger once it leads)\n`;
  if (r['outcome'] !== 'applied')
    return `node ${node}: nothing to do, the fence of incarnation ${inc} was already settled (${cellText(r['outcome'])}); node ${node} is ${cellText(r['status'])}\n`;
  if (r['admitted'] !== null && r['admitted'] !== undefined)
    return `node ${node}: incarnation ${inc} confirmed fenced; incarnation ${cellText(r['admitted'])} admitted as a member (view ${cellText(r['viewId'])})\n`;
  return `node ${node}: incarnation ${inc} confirmed fenced; node ${node} is now ${cellText(r['status'])} (no newer incarnation was waiting; it joins when it starts)\n`;
}

function exitFor(e: CohortClientError): number {
  if (e.code === 'DAEMON_UNREACHABLE' || e.code === 'CONNECTION_LOST') return FENCE_EXIT.unreachable;
  if (e.code === 'NOT_QUORATE') return FENCE_EXIT.notQuorate;
  if (e.code === 'OVERLOADED') return FENCE_EXIT.busy;
  return FENCE_EXIT.refused;
}

/** Runs `cohort fence confirm`; resolves to the exit code. Never throws. */
export async function runFenceConfirm(opts: FenceConfirmOptions, io: StatusIo): Promise<number> {
  try {
    await using conn = await connectLocal({
      ...(opts.socket === undefined ? {} : { socket: opts.socket }),
      timeoutMs: FENCE_TIMEOUT_MS,
      clientName: 'cohort fence confirm',
    });
    const params = { node: opts.node, ...(opts.incarnation === undefined ? {} : { incarnation: opts.incarnation }) };
    const value = await conn.request('fence.confirm', params, { signal: AbortSignal.timeout(FENCE_TIMEOUT_MS) });
    io.out(opts.json === true ? `${toJsonLine(value)}\n` : describeConfirmation(value));
    return FENCE_EXIT.ok;
  } catch (e) {
    if (e instanceof CohortClientError) {
      io.err(`cohort fence confirm: ${e.message}\n`);
      return exitFor(e);
    }
    io.err(`cohort fence confirm: ${e instanceof Error ? e.message : String(e)}\n`);
    return FENCE_EXIT.refused;
  }
}

/** One attempt as one line: `level 1 kill off ok in 12 ms (round 1, by node 2): excerpt`. */
function attemptLine(a: Obj): string {
  const exit = a['exitCode'] === undefined ? '' : ` exit ${cellText(a['exitCode'])}`;
  const excerpt = typeof a['excerpt'] === 'string' && a['excerpt'] !== '' ? `: ${a['excerpt']}` : '';
  return `level ${cellText(a['level'])} ${cellText(a['device'])} ${cellText(a['action'])} ${cellText(a['result'])}${exit} in ${cellText(a['durationMs'])} ms (round ${cellText(a['round'])}, by node ${cellText(a['executor'])}, ${isoTime(a['atMs'])})${excerpt}`;
}

function isoTime(v: ApiData | undefined): string {
  return typeof v === 'number' && Number.isFinite(v) ? new Date(v).toISOString() : '-';
}

function proofText(p: Obj): string {
  const by = cellText(p['by']);
  if (by === 'confirm')
    return `confirmed by ${typeof p['operator'] === 'string' && p['operator'] !== '' ? p['operator'] : 'an operator'}${p['atMs'] === undefined ? '' : ` at ${isoTime(p['atMs'])}`}`;
  return `${by === 'watchdog' ? 'self-fenced (watchdog: lease and margin waited out)' : 'fenced by agent'}, level ${cellText(p['level'])} device ${cellText(p['device'])} at ${isoTime(p['atMs'])}`;
}

function activityText(a: Obj): string {
  switch (cellText(a['kind'])) {
    case 'running':
      return `running device ${cellText(a['device'])}`;
    case 'resuming':
      return `a new leader waits until ${isoTime(a['untilMs'])} for the old leader's agents to end`;
    case 'run':
      return `next: device ${cellText(a['device'])} (level ${cellText(a['level'])})`;
    case 'wait':
      return `waiting (${cellText(a['why'])}) until ${isoTime(a['untilMs'])}`;
    case 'exhausted':
      return `every level failed in round ${cellText(a['round'])}; next round at ${isoTime(a['nextRoundAtMs'])}`;
    case 'manual':
      return `only an operator can close it: cohort fence confirm (${cellText(a['why'])})`;
    case 'succeeded':
      return 'recording the success';
    default:
      return cellText(a['kind']);
  }
}

/** The readable form of a `fence.history` answer. */
export function renderFenceHistory(v: ApiData): string {
  const r = apiObject(v);
  const pending = apiList(r['pending']);
  const finished = apiList(r['finished']);
  const out: string[] = [];
  const head = (x: Obj): string =>
    `node ${cellText(x['node'])} (${cellText(x['name'])}) incarnation ${cellText(x['incarnation'])}: ${cellText(apiObject(x['request'])['reason'])} (log index ${cellText(apiObject(x['request'])['index'])})`;
  const attempts = (x: Obj): string[] => {
    const lines = apiList(x['attempts']).map((a) => `    ${attemptLine(a)}`);
    const dropped = x['attemptsDropped'];
    if (typeof dropped === 'number' && dropped > 0) lines.unshift(`    (${dropped} earlier attempts not kept)`);
    return lines;
  };
  if (pending.length === 0) out.push('no fence pending');
  else {
    out.push(`pending (${pending.length}):`);
    for (const x of pending) {
      out.push(`  ${head(x)}`);
      out.push(...attempts(x));
      if (x['activity'] !== undefined) out.push(`    now: ${activityText(apiObject(x['activity']))}`);
      else if (apiList(x['attempts']).length === 0)
        out.push(
          '    no attempt yet (the leader runs the fence devices; `cohort fence history` on the leader shows its next step)',
        );
    }
  }
  if (finished.length > 0) {
    out.push(`finished (${finished.length}, newest first):`);
    for (const x of finished) {
      out.push(`  ${head(x)}`);
      out.push(`    ${proofText(apiObject(apiObject(x['outcome'])['proof']))}`);
      out.push(...attempts(x));
      for (const u of apiList(x['unfence']))
        out.push(`    unfenced: ${cellText(u['device'])} ${cellText(u['result'])} at ${isoTime(u['atMs'])}`);
    }
  }
  return `${out.join('\n')}\n`;
}

/** Options of `cohort fence history`. */
export interface FenceHistoryOptions {
  readonly node?: number;
  readonly limit?: number;
  readonly socket?: string | undefined;
  readonly json?: boolean;
}

async function requestFence(
  what: string,
  method: string,
  params: ApiData,
  socket: string | undefined,
  io: StatusIo,
  render: (v: ApiData) => string,
  json: boolean,
): Promise<number> {
  try {
    await using conn = await connectLocal({
      ...(socket === undefined ? {} : { socket }),
      timeoutMs: FENCE_TIMEOUT_MS,
      clientName: `cohort fence ${what}`,
    });
    const value = await conn.request(method, params, { signal: AbortSignal.timeout(FENCE_TIMEOUT_MS) });
    io.out(json ? `${toJsonLine(value)}\n` : render(value));
    return FENCE_EXIT.ok;
  } catch (e) {
    if (e instanceof CohortClientError) {
      io.err(`cohort fence ${what}: ${e.message}\n`);
      return exitFor(e);
    }
    io.err(`cohort fence ${what}: ${e instanceof Error ? e.message : String(e)}\n`);
    return FENCE_EXIT.refused;
  }
}

/** Runs `cohort fence history`; resolves to the exit code. Never throws. */
export function runFenceHistory(opts: FenceHistoryOptions, io: StatusIo): Promise<number> {
  const params = {
    ...(opts.node === undefined ? {} : { node: opts.node }),
    ...(opts.limit === undefined ? {} : { limit: opts.limit }),
  };
  return requestFence('history', 'fence.history', params, opts.socket, io, renderFenceHistory, opts.json === true);
}

/** Runs `cohort fence NODE`; resolves to the exit code. Never throws. */
export function runFenceNow(
  opts: { readonly node: number; readonly note?: string; readonly socket?: string; readonly json?: boolean },
  io: StatusIo,
): Promise<number> {
  const params = { node: opts.node, ...(opts.note === undefined ? {} : { note: opts.note }) };
  return requestFence(
    'NODE',
    'fence.now',
    params,
    opts.socket,
    io,
    (v) => {
      const r = apiObject(v);
      return `node ${cellText(r['node'])}: incarnation ${cellText(r['incarnation'])} removed from the view (${cellText(r['outcome'])}); the leader fences it through the configured devices: follow with cohort fence history --node ${cellText(r['node'])}\n`;
    },
    opts.json === true,
  );
}

/** Registers `cohort fence NODE`, `cohort fence confirm` and `cohort fence history` on `program`. */
export function registerFence(program: Command, setCode: (code: number) => void): void {
  const stdio: StatusIo = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };
  // `--socket` and `--json` may come before or after a subcommand: the parent parses them first.
  const sharedSocket = (own: string | undefined): string | undefined => own ?? fence.opts().socket;
  const fence = program
    .command('fence')
    .description(
      'fencing: fence a node now through the configured devices (cohort fence NODE), confirm a fence by hand, or show the fence history',
    )
    .argument(
      '[node]',
      'fence this node now: remove it from the view and run the fence devices',
      intOption('NODE', 1, NODE_ID_MAX),
    )
    .option('--note <text>', 'with NODE: why (kept in the ledger)')
    .option('--socket <path>', 'the API socket of any node (default $COHORT_SOCKET)')
    .option('--json', 'print the answer as one JSON object')
    .action(async (node, opts) => {
      if (node === undefined) {
        fence.outputHelp({ error: true });
        setCode(2);
        return;
      }
      setCode(
        await runFenceNow(
          {
            node,
            json: opts.json === true,
            ...(opts.note === undefined ? {} : { note: opts.note }),
            ...(opts.socket === undefined ? {} : { socket: opts.socket }),
          },
          stdio,
        ),
      );
    });
  fence
    .command('history')
    .description('every pending fence (attempts, what the executor does now) and the newest finished ones')
    .option('--node <id>', 'only this node', intOption('--node', 1, NODE_ID_MAX))
    .option('--limit <n>', 'finished fences shown (newest first)', intOption('--limit', 1, 64))
    .option('--socket <path>', 'the API socket of any node (default $COHORT_SOCKET)')
    .option('--json', 'print the answer as one JSON object')
    .action(async (opts) => {
      setCode(
        await runFenceHistory(
          {
            json: opts.json === true || fence.opts().json === true,
            ...(opts.node === undefined ? {} : { node: opts.node }),
            ...(opts.limit === undefined ? {} : { limit: opts.limit }),
            ...(sharedSocket(opts.socket) === undefined ? {} : { socket: sharedSocket(opts.socket) }),
          },
          stdio,
        ),
      );
    });
  fence
    .command('confirm')
    .description(
      'confirm NODE was fenced so its newer incarnation may join (exit 1 refused, 3 no quorum, 4 daemon unreachable, 7 daemon busy)',
    )
    .argument('<node>', 'the node id', intOption('NODE', 1, NODE_ID_MAX))
    .option(
      '--incarnation <n>',
      'the incarnation fenced (default: the one that needs fencing)',
      intOption('--incarnation', 1, Number.MAX_SAFE_INTEGER),
    )
    .option('--socket <path>', 'the API socket of any node (default $COHORT_SOCKET)')
    .option('--json', 'print the answer as one JSON object')
    .action(async (node, opts) => {
      const io: StatusIo = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };
      const options: FenceConfirmOptions = {
        node,
        json: opts.json === true || fence.opts().json === true,
        ...(opts.incarnation === undefined ? {} : { incarnation: opts.incarnation }),
        ...(sharedSocket(opts.socket) === undefined ? {} : { socket: sharedSocket(opts.socket) }),
      };
      setCode(await runFenceConfirm(options, io));
    });
}
