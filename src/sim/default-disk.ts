/** Wires the storage engineer's `SimDisk` in as the simulator's default machine disk. */
import { SimDisk } from './disk.js';
import type { DiskFactory } from './node-host.js';

/** Builds a `SimDisk` for one simulated machine. */
export const simDiskFactory: DiskFactory = (setup) => new SimDisk(setup);
