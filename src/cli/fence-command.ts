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
import { apiObject, cellText, toJsonLine, type StatusIo } from './status-command.js';

/** Exit codes of `cohort fence confirm`. */
export const FENCE_EXIT = { ok: 0, refused: 1, notQuorate: 3, unreachable: 4, busy: 7 } as const;
/** Deadline of the whole command: the daemon's own proposal deadline (5 s) plus slack. */
const FENCE_TIMEOUT_MS = 8000;

/** Options of `cohort fence confirm`. */
export interface FenceConfirmOptions {
  readonly node: number;
  readonly incarnation?: number;
  readonly socket?: string;
  readonly json?: boolean;
}

/** The readable line for a `fence.confirm` answer. */
export function describeConfirmation(v: ApiData): string {
  const r = apiObject(v);
  const node = cellText(r['nodeId']);
  const inc = cellText(r['incarnation']);
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

/** Registers `cohort fence confirm` on `program`. */
export function registerFence(program: Command, setCode: (code: number) => void): void {
  const fence = program
    .command('fence')
    .description('fencing: confirm by hand that a failed node was fenced (the manual fence agent)');
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
        json: opts.json === true,
        ...(opts.incarnation === undefined ? {} : { incarnation: opts.incarnation }),
        ...(opts.socket === undefined ? {} : { socket: opts.socket }),
      };
      setCode(await runFenceConfirm(options, io));
    });
}
