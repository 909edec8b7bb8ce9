/**
 * A node's configuration: one YAML or JSON file per node, validated as a whole (DESIGN.md
 * section 9). Every key and default is documented in docs/config.md.
 *
 * Validation happens in three passes, and each reports every problem it finds, one line each,
 * naming the key path (`nodes[2].address`), what is wrong and what to do:
 * 1. syntax: YAML/JSON errors with line and column; duplicate keys are errors (a silently
 *    overridden key is a classic configuration bug);
 * 2. shape: a strict zod schema: unknown keys rejected, types, ranges, formats;
 * 3. whole-file rules, once the shape is right: unique ids, names and addresses, this node
 *    present in `nodes`, the quorum options checked by `src/quorum`'s own `buildVotequorum`
 *    (not a copy of its rules), the timeouts checked by the timeout model, and path limits.
 *
 * Relative paths (`keyFile`, `dataDir`, `api.socket`) are resolved against the directory of the
 * config file, so a config and its key can move together.
 */
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { CohortError, err, ok, type Result } from '../lib/errors.js';
import { nodeId, type NodeId } from '../lib/ids.js';
import {
  CLUSTER_NODES_MAX,
  CONFIG_FILE_BYTES_MAX,
  RAFT_VOTES_PER_NODE_MAX,
  QUORUM_EXPECTED_VOTES_MAX,
  UNIX_SOCKET_PATH_BYTES_MAX,
} from '../constants.js';
import { describeValue } from '../transport/message-fields.js';
import { clusterNameProblem } from '../transport/handshake-record.js';
import {
  buildVotequorum,
  type NodeVoteSpec,
  type TieBreakerMode,
  type VotequorumOptions,
  type VotequorumSetup,
  type QuorumConfigErrorCode,
} from '../quorum/index.js';
import { TIMEOUT_DEFAULTS, deriveTimeouts, type TimeoutModel } from './timeouts.js';
import type { FenceTopology } from '../fencing/fence-topology.js';
import { fenceTopologyOf, fencingSchema, topologySettings } from './fencing-config.js';

/** One problem, reported as `path: message`. */
export interface ConfigProblem {
  /** Key path such as `nodes[1].id`; empty for the file as a whole. */
  readonly path: string;
  readonly message: string;
}

/** Error codes: the file could not be read, or it was read and is wrong. */
export type ConfigErrorCode = 'CONFIG_UNREADABLE' | 'CONFIG_INVALID';

/** Raised (or returned) for a bad config; `problems` lists every problem found. */
export class ConfigError extends CohortError {
  override readonly name = 'ConfigError';
  declare readonly code: ConfigErrorCode;
  readonly problems: readonly ConfigProblem[];

  constructor(code: ConfigErrorCode, source: string, problems: readonly ConfigProblem[]) {
    const lines = problems.map((p) => `  - ${p.path === '' ? '' : `${p.path}: `}${p.message}`);
    const head =
      code === 'CONFIG_UNREADABLE'
        ? `cannot read config ${source}`
        : `config ${source} has ${problems.length} problem${problems.length === 1 ? '' : 's'}`;
    super(code, `${head}:\n${lines.join('\n')}`);
    this.problems = problems;
  }
}

/** Log levels (pino's). */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
/** Log formats: `auto` is pretty on a terminal, JSON otherwise. */
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** The role of a configured node: a full member or a vote-only witness. */
export type ConfiguredRole = 'voter' | 'witness';

/** One entry of `nodes`, normalised. */
export interface ConfiguredNode {
  readonly id: NodeId;
  readonly name: string;
  /** `host:port` as written (IPv6 hosts in brackets). */
  readonly address: string;
  readonly host: string;
  readonly port: number;
  /** 0 = non-voting member (a Raft learner). */
  readonly votes: number;
  readonly role: ConfiguredRole;
}

/** The auto_tie_breaker node choice as configured. */
export type TieBreakerNodeSetting = 'lowest' | 'highest' | number | readonly number[];

/** Quorum options as the user wrote them, defaults filled in (times in milliseconds). */
export interface QuorumSettings {
  readonly expectedVotes: number | undefined;
  readonly expectedVotesTracking: boolean;
  readonly waitForAll: boolean;
  readonly autoTieBreaker: boolean;
  readonly tieBreakerNode: TieBreakerNodeSetting;
  readonly lastManStanding: boolean;
  readonly lastManStandingWindowMs: number;
  readonly twoNode: boolean;
}

/** A validated node configuration. Paths are absolute. */
export interface NodeConfig {
  /** The file it came from (absolute), or the source label for in-memory text. */
  readonly source: string;
  readonly cluster: { readonly name: string };
  readonly node: { readonly id: NodeId; readonly name: string };
  readonly listen: { readonly host: string; readonly port: number };
  /** Sorted by id. */
  readonly nodes: readonly ConfiguredNode[];
  readonly keyFile: string;
  readonly dataDir: string;
  readonly api: { readonly socket: string; readonly mode: number };
  readonly metrics: { readonly host: string; readonly port: number } | undefined;
  readonly quorum: QuorumSettings;
  /** The quorum setup built by `src/quorum` from `nodes` and `quorum`. */
  readonly votequorum: VotequorumSetup;
  readonly timeouts: TimeoutModel;
  /**
   * `timeouts.processGoneProof`: act on proof that a peer's process is gone (fail it at once,
   * stop following a dead leader). Node-local (not in the fingerprint): each node decides for
   * itself whether it trusts TCP resets and refusals.
   */
  readonly processGoneProof: boolean;
  readonly log: { readonly level: LogLevel; readonly format: LogFormat };
  /** The fence topology (`fencing` section; no section: every fence waits for a confirmation). */
  readonly fencing: FenceTopology;
  /**
   * This node's watchdog device (node-local), fed while the node is healthy; needs
   * `timeouts.watchdogMs`, the driver's timeout. Undefined: no device.
   */
  readonly watchdog: { readonly device: string } | undefined;
}

/** Default API socket file name inside `dataDir`. */
export const DEFAULT_API_SOCKET_NAME = 'cohort.sock';
/** Default API socket mode: owner and group read/write (the directory's mode restricts further). */
export const DEFAULT_API_SOCKET_MODE = 0o660;
/** Default key file name, beside the config file. */
export const DEFAULT_KEY_FILE = 'cluster.key';
/** corosync's default `last_man_standing_window`. */
export const DEFAULT_LMS_WINDOW_MS = 10_000;
/** Longest last-man-standing window. */
export const LMS_WINDOW_MS_MAX = 3_600_000;
/** Longest path string accepted in a config (before resolution). */
const PATH_CHARS_MAX = 1024;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const HOST_RE = /^[A-Za-z0-9._-]{1,253}$|^[0-9A-Fa-f:.]{2,45}$/;

// ---------------------------------------------------------------------------------------------
// Shape (pass 2)

const nameSchema = z
  .string()
  .regex(NAME_RE, { message: 'must be 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit' });
const portSchema = z.int().min(1).max(65_535);
const hostSchema = z
  .string()
  .regex(HOST_RE, { message: 'must be a host name or an IP address (no port, no brackets)' });
const pathSchema = z.string().min(1).max(PATH_CHARS_MAX);

/** A file mode as an integer (0o660 in YAML) or an octal string ("0660", "660", "0o660"). */
const modeSchema = z.union([z.int(), z.string()]).transform((raw, ctx) => {
  const mode =
    typeof raw === 'number'
      ? raw
      : /^(0o?)?[0-7]{3}$/.test(raw)
        ? Number.parseInt(raw.replace(/^0o?/, ''), 8)
        : Number.NaN;
  if (!Number.isInteger(mode) || mode < 0 || mode > 0o777) {
    ctx.issues.push({
      code: 'custom',
      input: raw,
      message: `${describeValue(raw)} is not a file mode: write it as the string "0660" (in YAML 0660 without quotes is the decimal 660) or as 0o660`,
    });
    return z.NEVER;
  }
  return mode;
});

const clusterShape = { name: z.string() };
const nodeShape = { id: z.int().min(1).max(65_535), name: nameSchema.optional() };
const listenShape = { host: hostSchema.optional(), port: portSchema.optional() };
const nodeEntryShape = {
  id: z.int().min(1).max(65_535),
  name: nameSchema,
  address: z.string().max(300),
  votes: z.int().min(0).max(RAFT_VOTES_PER_NODE_MAX).default(1),
  role: z.enum(['voter', 'witness']).default('voter'),
};
const apiShape = { socket: pathSchema.optional(), mode: modeSchema.optional() };
const metricsShape = { host: hostSchema.default('127.0.0.1'), port: portSchema };
const quorumShape = {
  expectedVotes: z.int().min(1).max(QUORUM_EXPECTED_VOTES_MAX).optional(),
  expectedVotesTracking: z.boolean().default(false),
  waitForAll: z.boolean().default(false),
  autoTieBreaker: z.boolean().default(false),
  tieBreakerNode: z
    .union([
      z.enum(['lowest', 'highest']),
      z.int().min(1).max(65_535),
      z.array(z.int().min(1).max(65_535)).min(1).max(CLUSTER_NODES_MAX),
    ])
    .optional(),
  lastManStanding: z.boolean().default(false),
  lastManStandingWindowMs: z.int().min(1).max(LMS_WINDOW_MS_MAX).optional(),
  twoNode: z.boolean().default(false),
};
const timeoutsShape = {
  heartbeatMs: z.int().default(TIMEOUT_DEFAULTS.heartbeatMs),
  failureTimeoutMs: z.int().default(TIMEOUT_DEFAULTS.failureTimeoutMs),
  stallToleranceMs: z.int().default(TIMEOUT_DEFAULTS.stallToleranceMs),
  watchdogMs: z.int().optional(),
  processGoneProof: z.boolean().default(true),
};
const logShape = { level: z.enum(LOG_LEVELS).default('info'), format: z.enum(LOG_FORMATS).default('auto') };
const rootShape = {
  cluster: z.strictObject(clusterShape),
  node: z.strictObject(nodeShape),
  listen: z.strictObject(listenShape).optional(),
  nodes: z.array(z.strictObject(nodeEntryShape)).min(1).max(CLUSTER_NODES_MAX),
  keyFile: pathSchema.default(DEFAULT_KEY_FILE),
  dataDir: pathSchema,
  api: z.strictObject(apiShape).optional(),
  metrics: z.strictObject(metricsShape).optional(),
  quorum: z.strictObject(quorumShape).optional(),
  timeouts: z.strictObject(timeoutsShape).optional(),
  log: z.strictObject(logShape).optional(),
  fencing: fencingSchema.optional(),
  watchdog: z.strictObject({ device: pathSchema }).optional(),
};
const configSchema = z.strictObject(rootShape);
type RawConfig = z.output<typeof configSchema>;

/** Allowed keys per object path (array indices written `[]`), for "unknown key" messages. */
const ALLOWED_KEYS: ReadonlyMap<string, readonly string[]> = new Map([
  ['', Object.keys(rootShape)],
  ['cluster', Object.keys(clusterShape)],
  ['node', Object.keys(nodeShape)],
  ['listen', Object.keys(listenShape)],
  ['nodes[]', Object.keys(nodeEntryShape)],
  ['api', Object.keys(apiShape)],
  ['metrics', Object.keys(metricsShape)],
  ['quorum', Object.keys(quorumShape)],
  ['timeouts', Object.keys(timeoutsShape)],
  ['log', Object.keys(logShape)],
  ['fencing', ['devices', 'levels', 'delays']],
  ['watchdog', ['device']],
  [
    'fencing.devices[]',
    ['name', 'agent', 'hosts', 'timeoutMs', 'retries', 'program', 'action', 'options', 'unfence', 'pidFiles'],
  ],
]);

/** Renders a zod path as `nodes[1].id`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

function joinPath(base: string, key: string): string {
  return base === '' ? key : `${base}.${key}`;
}

/** One zod issue as one or more problems (an unknown-keys issue names each key). */
function issueProblems(issue: z.core.$ZodIssue): ConfigProblem[] {
  const path = formatPath(issue.path);
  switch (issue.code) {
    case 'unrecognized_keys': {
      const allowed = ALLOWED_KEYS.get(path.replace(/\[\d+\]/g, '[]')) ?? [];
      return issue.keys.map((key) => ({
        path: joinPath(path, key),
        message: `unknown key; allowed here: ${allowed.join(', ')}`,
      }));
    }
    case 'invalid_type':
      if (issue.input === undefined) return [{ path, message: `is required (${expectedText(issue.expected)})` }];
      return [{ path, message: `expected ${expectedText(issue.expected)}, got ${describeValue(issue.input)}` }];
    case 'too_small':
      return [
        {
          path,
          message: `${boundSubject(issue.origin)} must be at least ${String(issue.minimum)}, got ${describeValue(issue.input)}`,
        },
      ];
    case 'too_big':
      return [
        {
          path,
          message: `${boundSubject(issue.origin)} must be at most ${String(issue.maximum)}, got ${describeValue(issue.input)}`,
        },
      ];
    case 'invalid_value':
      return [
        {
          path,
          message: `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, got ${describeValue(issue.input)}`,
        },
      ];
    case 'invalid_union':
      return [{ path, message: unionText(path, issue.input) }];
    case 'invalid_format':
    case 'custom':
    case 'not_multiple_of':
    case 'invalid_key':
    case 'invalid_element':
      return [
        {
          path,
          message: issue.code === 'invalid_format' ? `${describeValue(issue.input)} ${issue.message}` : issue.message,
        },
      ];
  }
}

function expectedText(expected: string): string {
  switch (expected) {
    case 'int':
      return 'an integer';
    case 'object':
      return 'a mapping of keys to values';
    case 'array':
      return 'a list';
    default:
      return `a ${expected}`;
  }
}

function boundSubject(origin: string): string {
  switch (origin) {
    case 'array':
    case 'set':
      return 'the number of items';
    case 'string':
      return 'the length';
    default:
      return 'the value';
  }
}

function unionText(path: string, input: unknown): string {
  if (path.endsWith('tieBreakerNode'))
    return `expected "lowest", "highest", a node id or a list of node ids, got ${describeValue(input)}`;
  if (path.endsWith('mode')) return `expected a file mode such as "0660", got ${describeValue(input)}`;
  return `unexpected value ${describeValue(input)}`;
}

// ---------------------------------------------------------------------------------------------
// Whole-file rules (pass 3)

/** Splits `host:port` (IPv6 as `[::1]:7400`); returns a problem text when malformed. */
export function parseAddress(address: string): { host: string; port: number } | string {
  const m = /^\[([0-9A-Fa-f:.]+)\]:(\d{1,5})$/.exec(address) ?? /^([A-Za-z0-9._-]+):(\d{1,5})$/.exec(address);
  if (m === null) return `${describeValue(address)} is not "host:port" (write IPv6 hosts in brackets: "[::1]:7400")`;
  const port = Number(m[2]);
  if (port < 1 || port > 65_535) return `port ${port} in ${JSON.stringify(address)} is outside 1-65535`;
  return { host: m[1] ?? '', port };
}

function duplicates<T>(
  items: readonly T[],
  key: (item: T) => string | number,
  path: (i: number) => string,
  what: string,
): ConfigProblem[] {
  const first = new Map<string | number, number>();
  const out: ConfigProblem[] = [];
  items.forEach((item, i) => {
    const k = key(item);
    const at = first.get(k);
    if (at === undefined) first.set(k, i);
    else
      out.push({
        path: path(i),
        message: `${what} ${JSON.stringify(k)} is also used by nodes[${at}]; every node needs its own ${what}`,
      });
  });
  return out;
}

function nodeProblems(raw: RawConfig, nodes: readonly ConfiguredNode[]): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  out.push(
    ...duplicates(
      raw.nodes,
      (n) => n.id,
      (i) => `nodes[${i}].id`,
      'id',
    ),
  );
  out.push(
    ...duplicates(
      raw.nodes,
      (n) => n.name,
      (i) => `nodes[${i}].name`,
      'name',
    ),
  );
  out.push(
    ...duplicates(
      nodes,
      (n) => `${n.host.toLowerCase()}:${n.port}`,
      (i) => `nodes[${i}].address`,
      'address',
    ),
  );
  const self = raw.nodes.find((n) => n.id === raw.node.id);
  if (self === undefined) {
    out.push({
      path: 'node.id',
      message: `node ${raw.node.id} is not in nodes (ids: ${raw.nodes.map((n) => n.id).join(', ')}); add this node to nodes or fix node.id`,
    });
  } else if (raw.node.name !== undefined && raw.node.name !== self.name) {
    out.push({
      path: 'node.name',
      message: `${JSON.stringify(raw.node.name)} differs from the name of node ${self.id} in nodes (${JSON.stringify(self.name)}); make them equal or drop node.name`,
    });
  }
  return out;
}

function tieBreakerMode(q: QuorumSettings): TieBreakerMode {
  if (!q.autoTieBreaker) return { kind: 'off' };
  const t = q.tieBreakerNode;
  if (t === 'lowest' || t === 'highest') return { kind: t };
  return { kind: 'list', nodes: (typeof t === 'number' ? [t] : t).map(nodeId) };
}

function quorumSettings(raw: RawConfig): QuorumSettings {
  const q = raw.quorum;
  return {
    expectedVotes: q?.expectedVotes,
    expectedVotesTracking: q?.expectedVotesTracking ?? false,
    waitForAll: q?.waitForAll ?? false,
    autoTieBreaker: q?.autoTieBreaker ?? false,
    tieBreakerNode: q?.tieBreakerNode ?? 'lowest',
    lastManStanding: q?.lastManStanding ?? false,
    lastManStandingWindowMs: q?.lastManStandingWindowMs ?? DEFAULT_LMS_WINDOW_MS,
    twoNode: q?.twoNode ?? false,
  };
}

/** Where a quorum error belongs in the file. */
function quorumErrorPath(code: QuorumConfigErrorCode): string {
  switch (code) {
    case 'QUORUM_TOO_MANY_VOTERS':
    case 'QUORUM_BAD_VOTES':
    case 'QUORUM_BAD_WITNESS':
      return 'nodes';
    case 'QUORUM_BAD_EXPECTED_VOTES':
    case 'QUORUM_EXPECTED_BELOW_TOTAL':
      return 'quorum.expectedVotes';
    case 'QUORUM_TIE_BREAKER_NOT_VOTER':
    case 'QUORUM_BAD_TIE_BREAKER':
      return 'quorum.tieBreakerNode';
    case 'QUORUM_BAD_OPTION':
      return 'quorum';
  }
}

function quorumProblems(
  raw: RawConfig,
  nodes: readonly ConfiguredNode[],
  q: QuorumSettings,
  tickMs: number,
): Result<VotequorumSetup, ConfigProblem[]> {
  const out: ConfigProblem[] = [];
  if (raw.quorum?.tieBreakerNode !== undefined && !q.autoTieBreaker) {
    out.push({
      path: 'quorum.tieBreakerNode',
      message: 'has no effect unless quorum.autoTieBreaker is true; set autoTieBreaker: true or remove it',
    });
  }
  if (raw.quorum?.lastManStandingWindowMs !== undefined && !q.lastManStanding) {
    out.push({
      path: 'quorum.lastManStandingWindowMs',
      message: 'has no effect unless quorum.lastManStanding is true; set lastManStanding: true or remove it',
    });
  }
  const specs: NodeVoteSpec[] = nodes.map((n) => ({
    nodeId: n.id,
    votes: n.votes,
    role: n.role === 'witness' ? 'witness' : 'data',
  }));
  const options: VotequorumOptions = {
    expectedVotes: q.expectedVotes,
    expectedVotesTracking: q.expectedVotesTracking,
    waitForAll: q.waitForAll,
    autoTieBreaker: tieBreakerMode(q),
    lastManStanding: q.lastManStanding,
    lastManStandingWindowTicks: Math.max(1, Math.ceil(q.lastManStandingWindowMs / tickMs)),
    twoNode: q.twoNode,
  };
  const built = buildVotequorum(specs, options);
  if (!built.ok) out.push({ path: quorumErrorPath(built.error.code), message: built.error.message });
  if (out.length > 0 || !built.ok) return err(out);
  return ok(built.value);
}

function resolvePath(baseDir: string, p: string): string {
  return isAbsolute(p) ? resolve(p) : resolve(baseDir, p);
}

function socketProblems(socket: string): ConfigProblem[] {
  const bytes = Buffer.byteLength(socket, 'utf8');
  if (bytes <= UNIX_SOCKET_PATH_BYTES_MAX) return [];
  return [
    {
      path: 'api.socket',
      message: `${socket} is ${bytes} bytes long; Unix socket paths are limited to ${UNIX_SOCKET_PATH_BYTES_MAX} bytes: choose a shorter path`,
    },
  ];
}

function apiModeProblems(mode: number): ConfigProblem[] {
  if ((mode & 0o600) !== 0o600)
    return [{ path: 'api.mode', message: `mode ${octal(mode)} must give the owner read and write (0600 at least)` }];
  if ((mode & 0o002) !== 0)
    return [
      {
        path: 'api.mode',
        message: `mode ${octal(mode)} lets every local user control the cluster; use 0660 and add administrators to the socket's group`,
      },
    ];
  return [];
}

function octal(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

/** Normalises the node list (addresses parsed, sorted by id), collecting malformed addresses. */
function configuredNodes(raw: RawConfig): { nodes: ConfiguredNode[]; problems: ConfigProblem[] } {
  const nodes: ConfiguredNode[] = [];
  const problems: ConfigProblem[] = [];
  raw.nodes.forEach((n, i) => {
    const a = parseAddress(n.address);
    if (typeof a === 'string') problems.push({ path: `nodes[${i}].address`, message: a });
    else
      nodes.push({
        id: nodeId(n.id),
        name: n.name,
        address: n.address,
        host: a.host,
        port: a.port,
        votes: n.votes,
        role: n.role,
      });
  });
  return { nodes, problems };
}

function buildConfig(raw: RawConfig, source: string, baseDir: string): Result<NodeConfig, ConfigProblem[]> {
  const { nodes, problems } = configuredNodes(raw);
  if (problems.length === 0) problems.push(...nodeProblems(raw, nodes));
  const nameProblem = clusterNameProblem(raw.cluster.name);
  if (nameProblem !== undefined) problems.push({ path: 'cluster.name', message: nameProblem });
  const { processGoneProof = true, ...timeoutInputs } = raw.timeouts ?? {};
  const timeouts = deriveTimeouts({ ...TIMEOUT_DEFAULTS, ...timeoutInputs });
  if (!timeouts.ok)
    problems.push(...timeouts.error.problems.map((p) => ({ path: `timeouts.${p.key}`, message: p.message })));
  const q = quorumSettings(raw);
  const tickMs = timeouts.ok ? timeouts.value.tickMs : TIMEOUT_DEFAULTS.heartbeatMs / 2;
  const votequorum = problems.length === 0 ? quorumProblems(raw, nodes, q, tickMs) : err([]);
  if (!votequorum.ok) problems.push(...votequorum.error);
  const dataDir = resolvePath(baseDir, raw.dataDir);
  const socket = resolvePath(baseDir, raw.api?.socket ?? resolve(dataDir, DEFAULT_API_SOCKET_NAME));
  const mode = raw.api?.mode ?? DEFAULT_API_SOCKET_MODE;
  problems.push(...socketProblems(socket), ...apiModeProblems(mode));
  const self = nodes.find((n) => n.id === raw.node.id);
  const listen = { host: raw.listen?.host ?? self?.host ?? '0.0.0.0', port: raw.listen?.port ?? self?.port ?? 0 };
  if (raw.metrics !== undefined && raw.metrics.port === listen.port) {
    problems.push({
      path: 'metrics.port',
      message: `port ${raw.metrics.port} is also the peer port (listen.port); choose another port for metrics`,
    });
  }
  const fencing = fenceTopologyOf(raw.fencing, new Map(nodes.map((n) => [n.name, n.id])));
  problems.push(...fencing.problems);
  if (raw.watchdog !== undefined && raw.timeouts?.watchdogMs === undefined)
    problems.push({
      path: 'watchdog.device',
      message:
        'needs timeouts.watchdogMs, the timeout the watchdog driver resets the machine after (e.g. softdog soft_margin); set both',
    });
  if (problems.length > 0 || !timeouts.ok || !votequorum.ok || self === undefined) return err(problems);
  return ok({
    source,
    cluster: { name: raw.cluster.name },
    node: { id: self.id, name: self.name },
    listen,
    nodes: [...nodes].sort((a, b) => a.id - b.id),
    keyFile: resolvePath(baseDir, raw.keyFile),
    dataDir,
    api: { socket, mode },
    metrics: raw.metrics,
    quorum: q,
    votequorum: votequorum.value,
    timeouts: timeouts.value,
    processGoneProof,
    log: { level: raw.log?.level ?? 'info', format: raw.log?.format ?? 'auto' },
    fencing: fencing.topology,
    watchdog: raw.watchdog === undefined ? undefined : { device: resolvePath(baseDir, raw.watchdog.device) },
  });
}

// ---------------------------------------------------------------------------------------------
// Entry points

/** The syntax of a config text. */
export type ConfigFormat = 'yaml' | 'json';

/** The format implied by a file name: `.json` is JSON, anything else YAML. */
export function formatOf(path: string): ConfigFormat {
  return path.toLowerCase().endsWith('.json') ? 'json' : 'yaml';
}

/** Parses text into a plain value (pass 1), collecting every syntax error with its position. */
export function parseConfigText(text: string, format: ConfigFormat): Result<unknown, ConfigProblem[]> {
  // The json schema makes YAML's parser a strict JSON parser that also rejects duplicate keys.
  const doc = parseDocument(text, {
    uniqueKeys: true,
    prettyErrors: true,
    schema: format === 'json' ? 'json' : 'core',
    strict: true,
  });
  if (doc.errors.length > 0) {
    return err(
      doc.errors.map((e) => ({
        path: '',
        message: `${format === 'json' ? 'JSON' : 'YAML'} syntax: ${(e.message.split('\n')[0] ?? '').replace(/:$/, '')}`,
      })),
    );
  }
  return ok(doc.toJS({ maxAliasCount: 100 }) as unknown);
}

/**
 * Validates a parsed value as a node config. `baseDir` anchors relative paths; `source` names
 * the file in errors. Returns every problem found.
 */
export function validateConfig(value: unknown, source: string, baseDir: string): Result<NodeConfig, ConfigError> {
  const parsed = configSchema.safeParse(value, { reportInput: true });
  if (!parsed.success)
    return err(new ConfigError('CONFIG_INVALID', source, parsed.error.issues.flatMap(issueProblems)));
  const built = buildConfig(parsed.data, source, baseDir);
  if (!built.ok) return err(new ConfigError('CONFIG_INVALID', source, built.error));
  return built;
}

/** Parses and validates config text (pass 1 to 3). */
export function parseConfig(
  text: string,
  format: ConfigFormat,
  source: string,
  baseDir: string,
): Result<NodeConfig, ConfigError> {
  const value = parseConfigText(text, format);
  if (!value.ok) return err(new ConfigError('CONFIG_INVALID', source, value.error));
  return validateConfig(value.value, source, baseDir);
}

/**
 * Reads and validates the config file at `path`. Errors: `CONFIG_UNREADABLE` (missing,
 * unreadable, not a regular file, larger than `CONFIG_FILE_BYTES_MAX`, not UTF-8) and
 * `CONFIG_INVALID` (every syntax, shape and whole-file problem).
 */
export async function loadConfig(path: string): Promise<Result<NodeConfig, ConfigError>> {
  const absolute = resolve(path);
  const text = await readConfigText(absolute);
  if (!text.ok) return text;
  return parseConfig(text.value, formatOf(absolute), absolute, dirname(absolute));
}

async function readConfigText(path: string): Promise<Result<string, ConfigError>> {
  const unreadable = (message: string): Result<never, ConfigError> =>
    err(new ConfigError('CONFIG_UNREADABLE', path, [{ path: '', message }]));
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ENOENT')
      return unreadable('the file does not exist; create one with `cohort init` or pass the right --config');
    if (code === 'EACCES') return unreadable('permission denied; run as the user that owns the file or fix its mode');
    return unreadable(e instanceof Error ? e.message : String(e));
  }
  try {
    const info = await handle.stat();
    if (!info.isFile()) return unreadable('not a regular file');
    if (info.size > CONFIG_FILE_BYTES_MAX)
      return unreadable(`the file is ${info.size} bytes; a config is at most ${CONFIG_FILE_BYTES_MAX} bytes`);
    const bytes = await handle.readFile();
    try {
      return ok(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
    } catch {
      return unreadable('the file is not valid UTF-8 text');
    }
  } catch (e) {
    return unreadable(e instanceof Error ? e.message : String(e));
  } finally {
    await handle.close();
  }
}

/** The cluster-wide part of a config, in a canonical form (what every node must agree on). */
export function clusterWideSettings(config: NodeConfig): Record<string, unknown> {
  const i = config.timeouts.inputs;
  return {
    cluster: config.cluster.name,
    nodes: config.nodes.map((n) => ({ id: n.id, name: n.name, address: n.address, votes: n.votes, role: n.role })),
    quorum: {
      ...config.quorum,
      expectedVotes: config.quorum.expectedVotes ?? null,
      tieBreakerNode: config.quorum.tieBreakerNode,
    },
    timeouts: {
      heartbeatMs: i.heartbeatMs,
      failureTimeoutMs: i.failureTimeoutMs,
      stallToleranceMs: i.stallToleranceMs,
      watchdogMs: i.watchdogMs ?? null,
    },
    fencing: topologySettings(config.fencing),
  };
}

/** JSON with object keys sorted at every level, so equal settings give equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * A fingerprint of the cluster-wide settings (cluster name, node list, quorum options,
 * timeout inputs): `sha256:` and 64 hex digits. Nodes compare it at join and refuse a peer
 * whose settings differ (a node with other timeouts would disagree on who is dead). Node-local
 * settings (paths, listen address, metrics, logging) do not enter it.
 */
export function configFingerprint(config: NodeConfig): string {
  return `sha256:${createHash('sha256')
    .update(canonicalJson(clusterWideSettings(config)))
    .digest('hex')}`;
}
