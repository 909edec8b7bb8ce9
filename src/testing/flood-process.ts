/**
 * Runs `port-flood.js` (idle connections to a port, reopened as fast as the server closes them)
 * as a child process for tests: as `nobody` when the test runs as root, so the flood comes from
 * an unprivileged local user, else as the current user. The caller stops (or kills) it.
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { exitOf } from '../node/process-cluster.js';
import type { FloodReport } from './port-flood.js';
import { spawnNodeScript } from './unprivileged.js';

const FLOOD = fileURLToPath(new URL('./port-flood.js', import.meta.url));
/** The flood's own deadline; tests stop it with SIGTERM long before. */
const FLOOD_MS = 120_000;

/** A running flood. */
export interface Flood {
  /** Resolves once the flood holds its first connection. */
  readonly started: Promise<void>;
  /** Stops the flood and resolves with its report. */
  stop(): Promise<FloodReport>;
  kill(): void;
}

/** Runs the flood as `nobody` when we are root (an unprivileged local user), else as ourselves. */
export function startFlood(port: number, connections: number): Flood {
  const args = ['127.0.0.1', String(port), String(connections), String(FLOOD_MS)];
  const child = spawnNodeScript(FLOOD, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  assert.ok(child.stdout !== null, 'the flood has a stdout pipe');
  let out = '';
  let onStart = (): void => undefined;
  const started = new Promise<void>((resolve) => (onStart = resolve));
  child.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('flooding\n')) onStart();
  });
  return {
    started,
    stop: async () => {
      child.kill('SIGTERM');
      assert.equal(await exitOf(child, 15_000), 0, `the flood exits cleanly: ${out}`);
      return JSON.parse(out.slice(out.indexOf('{'))) as FloodReport;
    },
    kill: () => {
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}
