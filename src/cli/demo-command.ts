/**
 * `cohort demo`. Until the node daemon exists, it runs a simulated 3-node cluster of the
 * proving workload for a fixed seed and prints a readable trace summary; it says so plainly.
 * The real-process demo (N daemons on loopback, `--dir`, `demo.json`) replaces it with issue 5.
 */
import { InvalidArgumentError, type Command } from '@commander-js/extra-typings';
// The simulator is reached through the sim command: only it may import src/sim (layering test).
import { runDemo } from './sim-command.js';

/** The demo's fixed seed: the same summary every time. */
const DEMO_SEED = 20_260_425;

function seedOption(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError(`--seed must be a non-negative integer, got ${JSON.stringify(value)}`);
  return n;
}

/** Registers `cohort demo` on `program`. */
export function registerDemo(program: Command, setCode: (code: number) => void): void {
  program
    .command('demo')
    .description('run a demo cluster (for now: a simulated 3-node cluster; real processes come with the daemon)')
    .option('--seed <n>', 'seed of the simulated run', seedOption, DEMO_SEED)
    .option('--json', 'print the run summary as one JSON object')
    .action((opts) => {
      setCode(runDemo({ seed: opts.seed, json: opts.json === true }));
    });
}
