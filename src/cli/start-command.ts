/**
 * `cohort start --config FILE`: runs one node in the foreground until SIGTERM or SIGINT
 * (src/node/daemon.ts). Exit codes (`DAEMON_EXIT`): 0 after a clean stop (or a start-up ended by
 * a signal), 1 when the node cannot start (key, data directory, a port or socket in use,
 * recovery; one line, nothing left behind: src/node/daemon-start.ts), 2 for a bad config or
 * usage, 3 for a fail-stop on a storage fault.
 */
import type { Command } from '@commander-js/extra-typings';
import { runDaemon } from '../node/daemon.js';

/** Registers `cohort start` on `program`. */
export function registerStart(program: Command, setCode: (code: number) => void): void {
  program
    .command('start')
    .description('run a cohort node in the foreground (stop it with SIGTERM or Ctrl-C for a clean leave)')
    .requiredOption('--config <file>', 'the node config (written by `cohort init`; see docs/config.md)')
    .action(async (opts) => {
      setCode(await runDaemon(opts.config, { err: (t) => process.stderr.write(t) }));
    });
}
