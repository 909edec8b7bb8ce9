/**
 * `cohort recovery [--json] [--socket PATH]`: what every service group's recovery waits for
 * ("why is my cluster stuck?", docs/recovery.md). One row per open round: group, level,
 * generation, phase, the log index since which it is in that phase, and in words what it waits
 * for (fences not recorded, members that did not stop or start, lower-level groups). "no recovery
 * in progress" when no round is open. `--json` prints the daemon's answer (every group, open or
 * not) as one JSON object.
 *
 * `cohort recovery participate GROUP [--level N] [--socket PATH] -- COMMAND [ARG...]`: a shell
 * participant. It joins GROUP (level N, default 3) and runs COMMAND once per step of each round,
 * with `COHORT_RECOVERY_STEP` = `stop`, `start` or `finish`, `COHORT_RECOVERY_GROUP`,
 * `COHORT_RECOVERY_GENERATION` and `COHORT_RECOVERY_MEMBERS` (the round's members as
 * `node@incarnation` joined by commas, e.g. `1@3,2@1`; empty for `stop`, which comes before the
 * members are final). Exit status 0 answers the step; a non-zero `start` reports an error (this
 * node leaves the group and the round goes on without it); a non-zero `stop` leaves the group and
 * ends the command (exit 1); `finish` is only told. It runs until SIGINT or SIGTERM, then leaves
 * the group (exit 0).
 *
 * Exit codes (docs/cli.md): 0 ok, 1 failure, 2 usage, 4 the daemon cannot be reached (or went
 * away while participating), 7 the daemon is busy (every API client slot in use; retry later).
 */
import { spawn } from 'node:child_process';
import type { Command } from '@commander-js/extra-typings';
import {
  CohortClientError,
  connect,
  type RecoveryRef,
  type RecoveryRoundInfo,
  type RecoveryStartInfo,
} from '../client/index.js';
import { GROUP_LEVEL_MAX } from '../constants.js';
import { intOption } from './options.js';
import { table, type StatusIo } from './status-command.js';

/** Exit codes of `cohort recovery`. */
export const RECOVERY_EXIT = { ok: 0, failure: 1, unreachable: 4, busy: 7 } as const;
/** Deadline to connect and read. */
const RECOVERY_TIMEOUT_MS = 5000;
/** Applications recover last (`APPLICATION_LEVEL` of the client). */
const DEFAULT_LEVEL = 3;

/** Options of `cohort recovery`. */
export interface RecoveryOptions {
  readonly socket?: string;
  readonly json?: boolean;
}

const ref = (m: RecoveryRef): string => `node ${m.node} (incarnation ${m.incarnation})`;

/** In words, what an open round waits for (empty when nothing: it is about to move on). */
export function describeWait(r: RecoveryRoundInfo): string {
  const w = r.waiting;
  if (w === null) return '';
  const parts: string[] = [];
  if (w.notStopped.length > 0) parts.push(`members not stopped: ${w.notStopped.map(ref).join(', ')}`);
  if (w.notStarted.length > 0) parts.push(`members not started: ${w.notStarted.map(ref).join(', ')}`);
  for (const f of w.fences)
    parts.push(`fence of node ${f.node} (incarnation ${f.incarnation}) not recorded since index ${f.sinceIndex}`);
  if (w.lower.length > 0)
    parts.push(
      `lower-level groups: ${w.lower.map((l) => `${l.group} (level ${l.level}, gen ${l.generation}, ${l.phase})`).join(', ')}`,
    );
  if (w.evicting.length > 0) parts.push(`leaving the group (error or evicted): ${w.evicting.map(ref).join(', ')}`);
  return parts.join('; ');
}

const isOpen = (phase: string): boolean => phase !== 'idle' && phase !== 'finished';

/** The readable form of a `recovery` answer: a table of the open rounds, or "no recovery in progress". */
export function renderRecovery(rounds: readonly RecoveryRoundInfo[]): string {
  const open = rounds.filter((r) => isOpen(r.phase));
  if (open.length === 0) {
    const finished = rounds.filter((r) => r.phase === 'finished').length;
    return `no recovery in progress${finished > 0 ? ` (${finished} group${finished === 1 ? '' : 's'} recovered, last rounds finished)` : ''}\n`;
  }
  return table([
    ['GROUP', 'LEVEL', 'GEN', 'PHASE', 'SINCE', 'WAITING FOR'],
    ...open.map((r) => [
      r.group,
      String(r.level),
      String(r.generation),
      r.phase,
      `index ${r.sinceIndex}`,
      describeWait(r) || '-',
    ]),
  ]);
}

function exitFor(e: CohortClientError): number {
  switch (e.code) {
    case 'DAEMON_UNREACHABLE':
    case 'CONNECTION_LOST':
      return RECOVERY_EXIT.unreachable;
    case 'OVERLOADED':
      return RECOVERY_EXIT.busy;
    case 'TIMEOUT':
      return /connecting/.test(e.message) ? RECOVERY_EXIT.unreachable : RECOVERY_EXIT.failure;
    default:
      return RECOVERY_EXIT.failure;
  }
}

function failed(what: string, e: unknown, io: StatusIo): number {
  io.err(`${what}: ${e instanceof Error ? e.message : String(e)}\n`);
  return e instanceof CohortClientError ? exitFor(e) : RECOVERY_EXIT.failure;
}

/** Runs `cohort recovery`; resolves to the exit code. Never throws. */
export async function runRecovery(opts: RecoveryOptions, io: StatusIo): Promise<number> {
  try {
    await using client = await connect({
      ...(opts.socket === undefined ? {} : { socket: opts.socket }),
      timeoutMs: RECOVERY_TIMEOUT_MS,
      clientName: 'cohort recovery',
    });
    const rounds = await client.recovery.status({ signal: AbortSignal.timeout(RECOVERY_TIMEOUT_MS) });
    io.out(opts.json === true ? `${JSON.stringify({ rounds })}\n` : renderRecovery(rounds));
    return RECOVERY_EXIT.ok;
  } catch (e) {
    return failed('cohort recovery', e, io);
  }
}

/** A step of the shell participant. */
export type ParticipantStep = 'stop' | 'start' | 'finish';

/** The environment COMMAND runs with for one step (added to the CLI's own). */
export function stepEnv(
  step: ParticipantStep,
  group: string,
  generation: number,
  members: readonly RecoveryRef[],
): Record<string, string> {
  return {
    COHORT_RECOVERY_STEP: step,
    COHORT_RECOVERY_GROUP: group,
    COHORT_RECOVERY_GENERATION: String(generation),
    COHORT_RECOVERY_MEMBERS: members.map((m) => `${m.node}@${m.incarnation}`).join(','),
  };
}

/** Runs `command` with `env` added, output to the CLI's; resolves to its exit status (1 when killed or unstartable). */
function runStep(command: readonly string[], env: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const [file, ...args] = command;
    if (file === undefined) {
      resolve(1);
      return;
    }
    const child = spawn(file, args, { stdio: 'inherit', env: { ...process.env, ...env } });
    child.on('error', () => {
      resolve(127);
    });
    child.on('close', (code) => {
      resolve(code ?? 1);
    });
  });
}

/** Options of `cohort recovery participate`. */
export interface ParticipateCliOptions {
  readonly group: string;
  readonly command: readonly string[];
  readonly level?: number;
  readonly socket?: string;
  /** Ends the participation (default: SIGINT or SIGTERM). */
  readonly signal?: AbortSignal;
  /** Runs one step (default: spawn COMMAND); for tests. */
  readonly run?: (command: readonly string[], env: Record<string, string>) => Promise<number>;
}

/** Runs `cohort recovery participate`; resolves to the exit code when stopped or failed. Never throws. */
export async function runParticipate(opts: ParticipateCliOptions, io: StatusIo): Promise<number> {
  const what = 'cohort recovery participate';
  const run = opts.run ?? runStep;
  const step = async (s: ParticipantStep, generation: number, members: readonly RecoveryRef[]): Promise<number> => {
    const code = await run(opts.command, stepEnv(s, opts.group, generation, members));
    if (code !== 0) io.err(`${what}: ${s} of ${opts.group} generation ${generation}: COMMAND exited ${code}\n`);
    return code;
  };
  const signal = opts.signal ?? stopSignal();
  try {
    await using client = await connect({
      ...(opts.socket === undefined ? {} : { socket: opts.socket }),
      timeoutMs: RECOVERY_TIMEOUT_MS,
      clientName: what,
    });
    const started = new Map<number, readonly RecoveryRef[]>();
    const p = await client.recovery.participate(
      opts.group,
      {
        stop: async (generation) => {
          const code = await step('stop', generation, []);
          if (code !== 0) throw new Error(`COMMAND could not stop (exit ${code}); leaving ${opts.group}`);
        },
        start: async (info: RecoveryStartInfo) => {
          started.set(info.generation, info.members);
          const code = await step('start', info.generation, info.members);
          if (code !== 0) throw new Error(`COMMAND could not start (exit ${code})`);
        },
        finish: (generation) => {
          void step('finish', generation, started.get(generation) ?? []);
          started.delete(generation);
        },
      },
      { level: opts.level ?? DEFAULT_LEVEL },
    );
    io.err(`${what}: joined ${opts.group} (level ${opts.level ?? DEFAULT_LEVEL}); Ctrl-C leaves\n`);
    const stopped = new Promise<'stopped'>((resolve) => {
      if (signal.aborted) resolve('stopped');
      else
        signal.addEventListener(
          'abort',
          () => {
            resolve('stopped');
          },
          { once: true },
        );
    });
    const outcome = await Promise.race([stopped, p.ended.then(() => 'ended' as const)]);
    if (outcome === 'stopped') {
      await p.leave();
      return RECOVERY_EXIT.ok;
    }
    io.err(`${what}: the daemon closed the participation\n`);
    return RECOVERY_EXIT.unreachable;
  } catch (e) {
    return failed(what, e, io);
  }
}

/** An AbortSignal that fires on SIGINT or SIGTERM. */
function stopSignal(): AbortSignal {
  const ac = new AbortController();
  const stop = (): void => {
    ac.abort();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  return ac.signal;
}

/** Registers `cohort recovery` and `cohort recovery participate` on `program`. */
export function registerRecovery(program: Command, setCode: (code: number) => void): void {
  const io: StatusIo = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };
  const recovery = program
    .command('recovery')
    .description(
      "what every service group's recovery waits for: fences, members, lower levels (exit 4 daemon unreachable, 7 daemon busy)",
    )
    .option('--socket <path>', 'the API socket of any node (default $COHORT_SOCKET)')
    .option('--json', 'print the answer as one JSON object')
    .action(async (opts) => {
      setCode(
        await runRecovery(
          { json: opts.json === true, ...(opts.socket === undefined ? {} : { socket: opts.socket }) },
          io,
        ),
      );
    });
  recovery
    .command('participate')
    .description(
      'join GROUP and run COMMAND for each recovery step (env COHORT_RECOVERY_STEP=stop|start|finish, _GROUP, _GENERATION, _MEMBERS) until Ctrl-C',
    )
    .argument('<group>', 'the service group')
    .argument('<command...>', 'the command to run per step (after --)')
    .option('--level <n>', 'the group level (default 3, applications)', intOption('--level', 1, GROUP_LEVEL_MAX))
    .option('--socket <path>', 'the API socket of this node (default $COHORT_SOCKET)')
    .action(async (group, command, own) => {
      // `--socket` after `participate` may have been taken by `cohort recovery` itself.
      const opts = { ...own, socket: own.socket ?? recovery.opts().socket };
      setCode(
        await runParticipate(
          {
            group,
            command,
            ...(opts.level === undefined ? {} : { level: opts.level }),
            ...(opts.socket === undefined ? {} : { socket: opts.socket }),
          },
          io,
        ),
      );
    });
}
