/**
 * The fence topology: which devices can fence which node, grouped in levels tried in order
 * (docs/design/fencing-and-recovery.md section 3). It is cluster-wide configuration: every node
 * holds the same topology (it is part of the settings fingerprint), because whichever node leads
 * executes the fences. Pure data; the config loader (`src/node/config.ts`) validates the user's
 * file into this shape, and `topologyProblems` checks the rules the types cannot say.
 *
 * Semantics:
 * - Levels are tried in order; a level succeeds when **every** device in it succeeds for the
 *   target (several devices in one level: both power feeds of a host).
 * - A device is tried up to `1 + retries` times per round, each try bounded by `timeoutMs`.
 * - A device fences the nodes in its `hosts` map (node name to the agent's plug/port name), or
 *   every node when `hosts` is absent (the plug is then the node's name).
 * - A node's `fenceDelayMs` delays every fence *of that node*: in a two-node split the two halves
 *   fence each other with different delays, so they do not shoot each other at once.
 */
import type { NodeId } from '../lib/ids.js';
import { FENCE_ATTEMPTS_KEPT, FENCE_DEVICE_NAME_BYTES_MAX, FENCE_LEVELS_MAX } from '../constants.js';

/** The fence-agents actions (ClusterLabs protocol). */
export type FenceAction = 'off' | 'on' | 'reboot' | 'status' | 'monitor' | 'list' | 'metadata';

/** Every action, in encoding order. */
export const FENCE_ACTIONS: readonly FenceAction[] = ['off', 'on', 'reboot', 'status', 'monitor', 'list', 'metadata'];

/** The agent kinds. */
export type FenceAgentKind = 'exec' | 'process' | 'watchdog' | 'manual';

/** Every agent kind, in encoding order. */
export const FENCE_AGENT_KINDS: readonly FenceAgentKind[] = ['exec', 'process', 'watchdog', 'manual'];

/** What every device has. */
interface DeviceBase {
  /** The device's name (unique in the topology; `[a-z0-9][a-z0-9_.-]*`, at most 64 bytes). */
  readonly name: string;
  /** Node name to plug (the agent's `plug`/`port`); absent: every node, plug = node name. */
  readonly hosts?: ReadonlyMap<string, string>;
  /** One try's bound, ms. */
  readonly timeoutMs: number;
  /** Extra tries per round after a failed one. */
  readonly retries: number;
}

/** A ClusterLabs fence agent run as a program (`fence_ipmilan`, `fence_dummy`, ...). */
export interface ExecDevice extends DeviceBase {
  readonly agent: 'exec';
  /** Absolute path of the agent. */
  readonly program: string;
  /** The fencing action: `off` (default) or `reboot`. */
  readonly action: 'off' | 'reboot';
  /** Options written to the agent's stdin as `key=value` lines (never `action`, `plug`, `port`). */
  readonly options: ReadonlyMap<string, string>;
  /** Tell the device `on` for a node joining cleanly after a fence (storage fencing: fence_scsi). */
  readonly unfence: boolean;
}

/** Kills a local process by the pid in a file (demos and tests: every node on one host). */
export interface ProcessDevice extends DeviceBase {
  readonly agent: 'process';
  /** Node name to the absolute path of its pid file. */
  readonly pidFiles: ReadonlyMap<string, string>;
}

/** Lease-based self-fencing: the removed node kills itself within its lease; survivors wait it out. */
export interface WatchdogDevice extends DeviceBase {
  readonly agent: 'watchdog';
}

/** An operator confirms by hand (`cohort fence confirm NODE`). */
export interface ManualDevice extends DeviceBase {
  readonly agent: 'manual';
}

/** One fence device. */
export type FenceDevice = ExecDevice | ProcessDevice | WatchdogDevice | ManualDevice;

/** One level: devices that must all succeed. */
export interface FenceLevel {
  readonly devices: readonly string[];
}

/** The cluster's fence topology. */
export interface FenceTopology {
  readonly devices: ReadonlyMap<string, FenceDevice>;
  /** Tried in order. Empty: no automatic fencing (every fence waits for a confirmation). */
  readonly levels: readonly FenceLevel[];
  /** Per-node delay before fencing that node, ms (absent: 0). */
  readonly fenceDelayMs: ReadonlyMap<NodeId, number>;
}

/** The topology with no devices: every fence waits for `cohort fence confirm`. */
export const MANUAL_ONLY_TOPOLOGY: FenceTopology = { devices: new Map(), levels: [], fenceDelayMs: new Map() };

/** The plug a device uses for node `nodeName`, or null when the device cannot fence that node. */
export function plugFor(device: FenceDevice, nodeName: string): string | null {
  // A process device fences only the nodes it has a pid file for.
  if (device.agent === 'process' && !device.pidFiles.has(nodeName)) return null;
  if (device.hosts === undefined) return nodeName;
  return device.hosts.get(nodeName) ?? null;
}

const DEVICE_NAME = /^[a-z0-9][a-z0-9_.-]*$/;

/** Why `name` is not a fence device name (`[a-z0-9][a-z0-9_.-]*`, at most 64 bytes), or null. */
export function deviceNameProblem(name: string): string | null {
  if (name.length === 0 || name.length > FENCE_DEVICE_NAME_BYTES_MAX || !DEVICE_NAME.test(name))
    return `fence device name "${name}" must match [a-z0-9][a-z0-9_.-]* and be 1 to ${FENCE_DEVICE_NAME_BYTES_MAX} bytes`;
  return null;
}

/** Rules the types cannot say, as one message each (empty: valid). */
export function topologyProblems(t: FenceTopology): string[] {
  const out: string[] = [];
  const used = new Set<string>();
  t.levels.forEach((level, i) => {
    if (level.devices.length === 0) out.push(`fencing level ${i + 1} names no device`);
    const seen = new Set<string>();
    for (const d of level.devices) {
      if (!t.devices.has(d)) out.push(`fencing level ${i + 1} names device "${d}", which is not defined`);
      if (seen.has(d)) out.push(`fencing level ${i + 1} names device "${d}" twice`);
      seen.add(d);
      used.add(d);
    }
  });
  for (const name of t.devices.keys()) {
    if (!used.has(name)) out.push(`fence device "${name}" is in no level: add it to a level or remove it`);
    const bad = deviceNameProblem(name);
    if (bad !== null) out.push(bad);
  }
  if (t.levels.length > FENCE_LEVELS_MAX)
    out.push(`the fence topology has ${t.levels.length} levels; at most ${FENCE_LEVELS_MAX}`);
  // The ledger keeps FENCE_ATTEMPTS_KEPT attempts of a pending fence: one round must fit, so the
  // scheduler always sees every attempt of the current round.
  let tries = 0;
  for (const level of t.levels) for (const d of level.devices) tries += 1 + (t.devices.get(d)?.retries ?? 0);
  if (tries > FENCE_ATTEMPTS_KEPT)
    out.push(
      `one fencing round may make ${tries} attempts (every device of every level, 1 + retries each); at most ${FENCE_ATTEMPTS_KEPT}: lower retries or remove devices`,
    );
  return out;
}
