/**
 * The `fencing` section of a node config (docs/config.md, docs/fencing.md): fence devices and the
 * levels they are tried in, validated into a `FenceTopology` (`src/fencing/fence-topology.ts`).
 * It is cluster-wide (every node holds the same section, and it enters the settings fingerprint)
 * because whichever node leads runs the fences.
 *
 * ```yaml
 * fencing:
 *   devices:
 *     - {name: ipmi, agent: exec, program: /usr/sbin/fence_ipmilan,
 *        options: {ip: 10.0.0.9, username: admin, password: secret}, hosts: {node2: "2"}}
 *     - {name: kill, agent: process, pidFiles: {node1: /var/lib/cohort/n1/cohort.lock}}
 *   levels: [[ipmi], [kill]]
 *   delays: {node1: 0, node2: 5000}
 * ```
 */
import { isAbsolute } from 'node:path';
import { z } from 'zod';
import type { NodeId } from '../lib/ids.js';
import {
  FENCE_DEVICE_RETRIES_MAX,
  FENCE_DEVICES_MAX,
  FENCE_LEVELS_MAX,
  FENCE_OPTION_BYTES_MAX,
  FENCE_OPTIONS_MAX,
  FENCE_TIMEOUT_MS_DEFAULT,
  FENCE_PROCESS_TIMEOUT_MS_DEFAULT,
  FENCE_RETRIES_DEFAULT,
  FENCE_DELAY_MS_MAX,
  PROCESS_TIMEOUT_MS_MAX,
} from '../constants.js';
import { execOptionProblems, execValueProblem } from '../fencing/exec-agent.js';
import {
  MANUAL_ONLY_TOPOLOGY,
  topologyProblems,
  type FenceDevice,
  type FenceTopology,
} from '../fencing/fence-topology.js';

const DEVICE_NAME_RE = /^[a-z0-9][a-z0-9_.-]{0,63}$/;

const deviceName = z
  .string()
  .regex(DEVICE_NAME_RE, { message: 'must be 1-64 of a-z, 0-9, "_", "." or "-", starting with a letter or digit' });
const nodeNameMap = z.record(z.string(), z.string().min(1).max(FENCE_OPTION_BYTES_MAX));
const timeoutMs = z.int().min(1).max(PROCESS_TIMEOUT_MS_MAX);
const retries = z.int().min(0).max(FENCE_DEVICE_RETRIES_MAX);

const common = {
  name: deviceName,
  hosts: nodeNameMap.optional(),
  timeoutMs: timeoutMs.optional(),
  retries: retries.optional(),
};

/** The shape of one device; unknown keys are refused per agent. */
export const fenceDeviceSchema = z.discriminatedUnion('agent', [
  z.strictObject({
    ...common,
    agent: z.literal('exec'),
    program: z.string().min(1).max(1024),
    action: z.enum(['off', 'reboot']).default('off'),
    options: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({}),
    unfence: z.boolean().default(false),
  }),
  z.strictObject({ ...common, agent: z.literal('process'), pidFiles: nodeNameMap }),
  z.strictObject({ ...common, agent: z.literal('watchdog') }),
  z.strictObject({ ...common, agent: z.literal('manual') }),
]);

/** The `fencing` section's shape. */
export const fencingSchema = z.strictObject({
  devices: z.array(fenceDeviceSchema).max(FENCE_DEVICES_MAX).default([]),
  /** Each level: the device names that must all succeed. Tried in order. */
  levels: z.array(z.array(deviceName).min(1).max(FENCE_DEVICES_MAX)).max(FENCE_LEVELS_MAX).default([]),
  /** Node name to the delay before fencing that node, ms. */
  delays: z.record(z.string(), z.int().min(0).max(FENCE_DELAY_MS_MAX)).default({}),
});

/** The section as parsed by zod. */
export type RawFencing = z.output<typeof fencingSchema>;

/** One problem, `path` relative to the config root. */
interface Problem {
  readonly path: string;
  readonly message: string;
}

/**
 * The topology from a parsed section, or every problem found. `nodes` maps each configured node
 * name to its id (every name the section uses must be a configured node).
 */
export function fenceTopologyOf(
  raw: RawFencing | undefined,
  nodes: ReadonlyMap<string, NodeId>,
): { topology: FenceTopology; problems: Problem[] } {
  if (raw === undefined) return { topology: MANUAL_ONLY_TOPOLOGY, problems: [] };
  const problems: Problem[] = [];
  const unknownNode = (path: string, name: string): void => {
    problems.push({
      path,
      message: `"${name}" is not a configured node name (known: ${[...nodes.keys()].join(', ')})`,
    });
  };
  const devices = new Map<string, FenceDevice>();
  raw.devices.forEach((d, i) => {
    const at = `fencing.devices[${i}]`;
    if (devices.has(d.name)) problems.push({ path: `${at}.name`, message: `device "${d.name}" is defined twice` });
    let hosts: Map<string, string> | undefined;
    if (d.hosts !== undefined) {
      hosts = new Map();
      for (const [name, plug] of Object.entries(d.hosts)) {
        if (!nodes.has(name)) unknownNode(`${at}.hosts.${name}`, name);
        const bad = execValueProblem(plug);
        if (bad !== null) problems.push({ path: `${at}.hosts.${name}`, message: `the plug ${bad}` });
        hosts.set(name, plug);
      }
    }
    const base = {
      name: d.name,
      ...(hosts === undefined ? {} : { hosts }),
      timeoutMs: d.timeoutMs ?? (d.agent === 'process' ? FENCE_PROCESS_TIMEOUT_MS_DEFAULT : FENCE_TIMEOUT_MS_DEFAULT),
      retries: d.retries ?? FENCE_RETRIES_DEFAULT,
    };
    switch (d.agent) {
      case 'exec': {
        if (!isAbsolute(d.program))
          problems.push({ path: `${at}.program`, message: `${d.program} must be an absolute path` });
        const options = new Map<string, string>();
        const entries = Object.entries(d.options);
        if (entries.length > FENCE_OPTIONS_MAX)
          problems.push({ path: `${at}.options`, message: `at most ${FENCE_OPTIONS_MAX} options` });
        for (const [key, value] of entries) {
          const text = String(value);
          if (Buffer.byteLength(text, 'utf8') > FENCE_OPTION_BYTES_MAX)
            problems.push({
              path: `${at}.options.${key}`,
              message: `a value is at most ${FENCE_OPTION_BYTES_MAX} bytes`,
            });
          options.set(key, text);
        }
        // The exec agent's own rules (src/fencing/exec-agent.ts): what fencing.py would read
        // differently from what was written (line breaks inject options, quotes and outer
        // whitespace are stripped), and the keys cohort sets itself.
        for (const message of execOptionProblems(options)) problems.push({ path: `${at}.options`, message });
        devices.set(d.name, {
          ...base,
          agent: 'exec',
          program: d.program,
          action: d.action,
          options,
          unfence: d.unfence,
        });
        break;
      }
      case 'process': {
        const pidFiles = new Map<string, string>();
        for (const [name, path] of Object.entries(d.pidFiles)) {
          if (!nodes.has(name)) unknownNode(`${at}.pidFiles.${name}`, name);
          if (!isAbsolute(path))
            problems.push({ path: `${at}.pidFiles.${name}`, message: `${path} must be an absolute path` });
          pidFiles.set(name, path);
        }
        devices.set(d.name, { ...base, agent: 'process', pidFiles });
        break;
      }
      case 'watchdog':
        devices.set(d.name, { ...base, agent: 'watchdog' });
        break;
      case 'manual':
        devices.set(d.name, { ...base, agent: 'manual' });
        break;
    }
  });
  const fenceDelayMs = new Map<NodeId, number>();
  for (const [name, ms] of Object.entries(raw.delays)) {
    const id = nodes.get(name);
    if (id === undefined) unknownNode(`fencing.delays.${name}`, name);
    else fenceDelayMs.set(id, ms);
  }
  const topology: FenceTopology = { devices, levels: raw.levels.map((l) => ({ devices: l })), fenceDelayMs };
  for (const message of topologyProblems(topology)) problems.push({ path: 'fencing', message });
  return { topology, problems };
}

/** The topology in a canonical plain form (for the settings fingerprint). */
export function topologySettings(t: FenceTopology): Record<string, unknown> {
  const sorted = <V>(m: ReadonlyMap<string | number, V> | undefined): [string | number, V][] | null =>
    m === undefined ? null : [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    devices: [...t.devices.values()]
      .sort((a, b) => (a.name < b.name ? -1 : 1))
      .map((d) => {
        const out: Record<string, unknown> = {
          name: d.name,
          agent: d.agent,
          hosts: sorted(d.hosts),
          timeoutMs: d.timeoutMs,
          retries: d.retries,
        };
        if (d.agent === 'exec')
          Object.assign(out, { program: d.program, action: d.action, options: sorted(d.options), unfence: d.unfence });
        if (d.agent === 'process') out['pidFiles'] = sorted(d.pidFiles);
        return out;
      }),
    levels: t.levels.map((l) => l.devices),
    delays: sorted(t.fenceDelayMs),
  };
}
