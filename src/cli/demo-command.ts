/** `cohort demo`: placeholder until the simulator lands (being built in this session). */
import type { Command } from '@commander-js/extra-typings';

export function registerDemo(program: Command, setCode: (code: number) => void): void {
  program.command('demo').description('run a local demo cluster (not built yet)').action(() => {
    process.stderr.write('cohort demo: not built yet\n');
    setCode(1);
  });
}
