/** `cohort sim`: placeholder until the simulator lands (being built in this session). */
import type { Command } from '@commander-js/extra-typings';

export function registerSim(program: Command, setCode: (code: number) => void): void {
  program.command('sim').description('run the deterministic simulator (not built yet)').action(() => {
    process.stderr.write('cohort sim: the simulator is not built yet\n');
    setCode(1);
  });
}
