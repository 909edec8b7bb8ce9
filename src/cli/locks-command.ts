/**
 * `cohort lockspaces [--json]` and `cohort locks dump LS [--json]`: what one node's DLM holds,
 * through its API socket (`--socket PATH` or `$COHORT_SOCKET`).
 *
 * - `lockspaces`: one row per lockspace this node opened: name, members, generation, this node's
 *   locks, the resources it masters, its directory entries, and whether it is paused (recovering).
 * - `locks dump LS`: the resources this node masters in LS, each with its granted, converting and
 *   waiting queues (`node/lkid MODE`, a conversion as `GRANTED->REQUESTED`), then this node's own
 *   locks (resource, granted mode, the operation in flight, the master, orphan).
 *
 * `--json` prints the daemon's answer (`dlm.lockspaces`, `dlm.dump`) as one JSON object.
 *
 * Exit codes (docs/cli.md): 0 ok, 1 failure, 2 usage, 4 the daemon cannot be reached, 5 this node
 * has not opened the lockspace (`locks dump`), 7 the daemon is busy.
 */
import type { Command } from '@commander-js/extra-typings';
import { CohortClientError, connect, type ApiData } from '../client/index.js';
import type { LockspaceInfo } from '../dlm/dlm-client.js';
import { apiList, apiObject, cellText, table, toJsonLine, type Obj, type StatusIo } from './status-command.js';

/** Exit codes of these commands. */
export const LOCKS_EXIT = { ok: 0, failure: 1, unreachable: 4, notFound: 5, busy: 7 } as const;
/** Deadline to connect and read. */
const LOCKS_TIMEOUT_MS = 5000;

/** Options of the two commands. */
export interface LocksOptions {
  readonly socket?: string;
  readonly json?: boolean;
}

/** The readable form of `dlm.lockspaces`. */
export function renderLockspaces(list: readonly LockspaceInfo[]): string {
  if (list.length === 0) return 'no lockspaces open on this node (cohort lock opens one)\n';
  return table([
    ['LOCKSPACE', 'MEMBERS', 'GEN', 'LOCKS', 'MASTERED', 'DIRECTORY', 'STATE'],
    ...list.map((ls) => [
      ls.name,
      ls.members.join(' '),
      String(ls.generation),
      String(ls.locks),
      String(ls.mastered),
      String(ls.directory),
      !ls.joined ? 'joining' : ls.paused ? 'paused (recovering)' : 'running',
    ]),
  ]);
}

/** One lock of a master queue: `node/lkid MODE`, a conversion `node/lkid GRANTED->REQUESTED`. */
function queued(l: Obj): string {
  const granted = l['granted'] ?? null;
  const requested = l['requested'] ?? null;
  const mode =
    granted !== null && requested !== null
      ? `${cellText(granted)}->${cellText(requested)}`
      : cellText(granted ?? requested);
  return `${cellText(l['node'])}/${cellText(l['lkid'])} ${mode}`;
}

function queueText(v: ApiData | undefined): string {
  const list = apiList(v);
  return list.length === 0 ? '-' : list.map(queued).join(', ');
}

/** The readable form of `dlm.dump`. */
export function renderDump(value: ApiData): string {
  const d = apiObject(value);
  const members = Array.isArray(d['members']) ? (d['members'] as readonly ApiData[]).map(cellText).join(' ') : '-';
  const out = [`lockspace ${cellText(d['lockspace'])}: generation ${cellText(d['generation'])}, members ${members}\n`];
  const mastered = apiList(d['mastered']);
  out.push(`\nmastered here: ${mastered.length} resource${mastered.length === 1 ? '' : 's'}\n`);
  if (mastered.length > 0)
    out.push(
      table([
        ['RESOURCE', 'GRANTED', 'CONVERTING', 'WAITING'],
        ...mastered.map((r) => [
          cellText(r['resource']),
          queueText(r['granted']),
          queueText(r['converting']),
          queueText(r['waiting']),
        ]),
      ]),
    );
  const locks = apiList(d['locks']);
  out.push(`\nthis node's locks: ${locks.length}\n`);
  if (locks.length > 0)
    out.push(
      table([
        ['LKID', 'RESOURCE', 'GRANTED', 'IN FLIGHT', 'MASTER', 'ORPHAN'],
        ...locks.map((l) => {
          const op = l['op'] === null || l['op'] === undefined ? null : apiObject(l['op']);
          return [
            cellText(l['lkid']),
            cellText(l['resource']),
            cellText(l['granted']),
            op === null ? '-' : `${cellText(op['kind'])} ${cellText(op['mode'])}`,
            cellText(l['master']),
            l['orphan'] === true ? 'yes' : 'no',
          ];
        }),
      ]),
    );
  return out.join('');
}

function exitFor(e: CohortClientError): number {
  switch (e.code) {
    case 'DAEMON_UNREACHABLE':
    case 'CONNECTION_LOST':
      return LOCKS_EXIT.unreachable;
    case 'OVERLOADED':
      return LOCKS_EXIT.busy;
    case 'NOT_FOUND':
      return LOCKS_EXIT.notFound;
    case 'TIMEOUT':
      return /connecting/.test(e.message) ? LOCKS_EXIT.unreachable : LOCKS_EXIT.failure;
    default:
      return LOCKS_EXIT.failure;
  }
}

/** Runs `cohort lockspaces` (`lockspace` null) or `cohort locks dump LS`; resolves to the exit code. Never throws. */
export async function runLocks(lockspace: string | null, opts: LocksOptions, io: StatusIo): Promise<number> {
  const what = lockspace === null ? 'cohort lockspaces' : 'cohort locks dump';
  try {
    await using client = await connect({
      ...(opts.socket === undefined ? {} : { socket: opts.socket }),
      timeoutMs: LOCKS_TIMEOUT_MS,
      clientName: what,
    });
    const signal = AbortSignal.timeout(LOCKS_TIMEOUT_MS);
    if (lockspace === null) {
      const list = await client.dlm.lockspaces({ signal });
      io.out(opts.json === true ? `${JSON.stringify(list)}\n` : renderLockspaces(list));
    } else {
      const dump = await client.dlm.dump(lockspace, { signal });
      io.out(opts.json === true ? `${toJsonLine(dump)}\n` : renderDump(dump));
    }
    return LOCKS_EXIT.ok;
  } catch (e) {
    io.err(`${what}: ${e instanceof Error ? e.message : String(e)}\n`);
    return e instanceof CohortClientError ? exitFor(e) : LOCKS_EXIT.failure;
  }
}

/** Registers `cohort lockspaces` and `cohort locks dump` on `program`. */
export function registerLocks(program: Command, setCode: (code: number) => void): void {
  const io: StatusIo = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };
  const common = (o: { socket?: string; json?: true }): LocksOptions => ({
    ...(o.socket === undefined ? {} : { socket: o.socket }),
    json: o.json === true,
  });
  program
    .command('lockspaces')
    .description(
      "this node's DLM lockspaces: members, generation, locks, mastered resources (exit 4 daemon unreachable)",
    )
    .option('--socket <path>', "the node's API socket (default $COHORT_SOCKET)")
    .option('--json', 'print the answer as one JSON object')
    .action(async (opts) => {
      setCode(await runLocks(null, common(opts), io));
    });
  const locks = program.command('locks').description("what this node's DLM masters and holds");
  locks
    .command('dump')
    .description(
      'the resources this node masters in LS (granted, converting, waiting) and its own locks (exit 5 lockspace not open here)',
    )
    .argument('<lockspace>')
    .option('--socket <path>', "the node's API socket (default $COHORT_SOCKET)")
    .option('--json', 'print the answer as one JSON object')
    .action(async (ls, opts) => {
      setCode(await runLocks(ls, common(opts), io));
    });
}
