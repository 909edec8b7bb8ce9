/**
 * The `cohort` command line. Each subcommand lives in its own module and registers itself here.
 * Exit codes (documented in docs/cli.md): 0 ok, 1 failure/violation, 2 usage error.
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

/** Exit codes shared by every subcommand. */
export const EXIT = { ok: 0, failure: 1, usage: 2, notQuorate: 3, unreachable: 4 } as const;

/** Runs the CLI with `argv` (as `process.argv`) and resolves to the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const program = new Command('cohort')
    .description('cohort: cluster membership, quorum, groups, fencing, locks and ddraid volumes')
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
  try {
    await program.parseAsync([...argv]);
  } catch (e) {
    if (e instanceof CommanderError) {
      if (e.code === 'commander.helpDisplayed' || e.code === 'commander.version' || e.code === 'commander.help')
        return EXIT.ok;
      return EXIT.usage;
    }
    const message = e instanceof Error ? e.message : String(e);
    process.stderr.write(`cohort: ${message}\n`);
    if (argv.includes('--debug') && e instanceof Error && e.stack !== undefined) process.stderr.write(`${e.stack}\n`);
    return EXIT.failure;
  }
  return code;
}
