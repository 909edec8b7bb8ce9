/**
 * A one-node rig for the Raft shell's tests: a scheduler of simulated time, a memory disk that
 * completes I/O 0.1 ms later, and a `NodeEnv` around them whose trace and fail-stop are recorded
 * as lines in `traces`. Node 1 with no peers (its transport drops everything).
 */
import { nodeId, type NodeId } from '../lib/ids.js';
import { Prng } from '../lib/prng.js';
import type { RaftMessage } from '../log/index.js';
import type { NodeEnv } from '../runtime/env.js';
import { RefusingProcessRunner } from '../runtime/process-runner.js';
import { Scheduler, msToUs } from '../sim/scheduler.js';
import type { Disk } from '../storage/disk.js';
import { MemoryBlockStore } from '../storage/memory-block-store.js';
import { MemoryDisk } from '../storage/memory-disk.js';

const ONE: NodeId = nodeId(1);

/** The scheduler, the disk (replaceable, to restart on another) and the recorded lines. */
export interface Rig {
  readonly scheduler: Scheduler;
  disk: MemoryDisk;
  readonly traces: string[];
}

/** A fresh rig with an empty disk. */
export function rig(): Rig {
  const scheduler = new Scheduler();
  return { scheduler, disk: newDisk(scheduler), traces: [] };
}

/** A memory disk on `scheduler`, holding `files`. */
export function newDisk(scheduler: Scheduler, files?: ReadonlyMap<string, Uint8Array>): MemoryDisk {
  return new MemoryDisk({
    schedule: (fn) => scheduler.after(msToUs(0.1), fn),
    ...(files === undefined ? {} : { files }),
  });
}

/** The environment of node 1 on `r`'s scheduler with `disk`. */
export function rigEnv(r: Rig, disk: Disk): NodeEnv<RaftMessage> {
  return {
    nodeId: ONE,
    clock: { nowMs: () => r.scheduler.nowUs / 1000 },
    timers: { after: (ms, fn) => r.scheduler.after(msToUs(ms), fn) },
    transport: { self: ONE, setHandlers: () => undefined, send: () => true, close: () => Promise.resolve() },
    disk,
    blocks: new MemoryBlockStore({ schedule: (fn) => r.scheduler.after(0, fn) }),
    processes: new RefusingProcessRunner((fn) => r.scheduler.after(0, fn)),
    prng: new Prng(7),
    trace: (event, fields) => {
      r.traces.push(`${event} ${JSON.stringify(fields ?? {})}`);
    },
    failStop: (reason) => {
      r.traces.push(`fail-stop ${reason}`);
    },
  };
}
