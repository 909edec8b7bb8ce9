/**
 * The `cohort` command line. Each subcommand lives in its own module and registers itself here.
 * Exit codes (documented in docs/cli.md): 0 ok, 1 failure/violation, 2 usage error (a bare
 * `cohort` or `cohort kv` prints the usage and exits 2); the commands that talk to a daemon add 3 not
 * quorate, 4 unreachable and 7 busy (every API client slot in use); `cohort lock` adds 8 not granted
 * and otherwise passes its COMMAND's code through. A reader that closes stdout early
 * (`cohort events | head`) ends the command quietly with 0, as `git log | head` ends quietly.
 */
import { Command, CommanderError } from '@commander-js/extra-typings';
import { registerSim } from './sim-command.js';
import { registerDemo } from './demo-command.js';
import { registerInit } from './init-command.js';
import { registerStart } from './start-command.js';
import { registerStatus } from './status-command.js';
import { registerFence } from './fence-command.js';
import { registerEvents } from './events-command.js';
import { registerKv } from './kv-command.js';
import { registerRecovery } from './recovery-command.js';
import { registerLock } from './lock-command.js';
import { registerLocks } from './locks-command.js';

/** Exit codes shared by every subcommand. */
export const EXIT = { ok: 0, failure: 1, usage: 2, notQuorate: 3, unreachable: 4, busy: 7 } as const;

let stdoutGuarded = false;

/**
 * Ends the process quietly (exit 0, nothing on stderr) when the reader of stdout went away
 * (EPIPE: `cohort events | head`); any other stdout failure is one line and exit 1. Installed
 * once per process: tests call `main` many times.
 */
function guardStdout(): void {
  if (stdoutGuarded) return;
  stdoutGuarded = true;
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(EXIT.ok);
    process.stderr.write(`cohort: cannot write the output: ${e.message}\n`);
    process.exit(EXIT.failure);
  });
}

/** Runs the CLI with `argv` (as `process.argv`) and resolves to the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  guardStdout();
  const program = new Command('cohort')
    .description(
      'cohort: cluster membership, quorum, service groups, fencing, a replicated key-value store, distributed locks and the event stream',
    )
    .version('0.1.0')
    .exitOverride()
    .configureOutput({
      outputError: (text, write) => {
        write(text);
      },
    });
  let code: number = EXIT.ok;
  const setCode = (c: number): void => {
    code = c;
  };
  registerSim(program, setCode);
  registerDemo(program, setCode);
  registerInit(program, setCode);
  registerStart(program, setCode);
  registerStatus(program, setCode);
  registerFence(program, setCode);
  registerEvents(program, setCode);
  registerKv(program, setCode);
  registerRecovery(program, setCode);
  registerLock(program, setCode);
  registerLocks(program, setCode);
  try {
    await program.parseAsync([...argv]);
  } catch (e) {
    // --help, --version and `cohort help` exit 0; a usage error, or a bare `cohort` or
    // `cohort kv` (commander prints the usage to stderr with exit code 1), is a usage error.
    if (e instanceof CommanderError) return e.exitCode === 0 ? EXIT.ok : EXIT.usage;
    const message = e instanceof Error ? e.message : String(e);
    process.stderr.write(`cohort: ${message}\n`);
    if (argv.includes('--debug') && e instanceof Error && e.stack !== undefined) process.stderr.write(`${e.stack}\n`);
    return EXIT.failure;
  }
  return code;
}
