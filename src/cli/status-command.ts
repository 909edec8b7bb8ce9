/**
 * `cohort status | nodes | quorum | groups`: read one node's view through its local API socket
 * (`--socket PATH` or `$COHORT_SOCKET`), print a readable table or, with `--json`, the API's
 * answer as one JSON object.
 *
 * Exit codes (docs/cli.md): 0 the node is quorate, 3 it answered but is not quorate (the output
 * says why), 4 the daemon cannot be reached (one line naming the socket), 7 the daemon is busy
 * (every API client slot has a request or stream open: retry later), 1 any other failure.
 */
import type { Command } from '@commander-js/extra-typings';
import { CohortClientError, connectLocal, type ApiData } from '../client/index.js';

/** Exit codes of these commands. */
export const STATUS_EXIT = { ok: 0, failure: 1, notQuorate: 3, unreachable: 4, busy: 7 } as const;

/** Where the commands write. */
export interface StatusIo {
  out(text: string): void;
  err(text: string): void;
}

/** Options shared by the three commands. */
export interface StatusOptions {
  readonly socket?: string;
  readonly json?: boolean;
  readonly timeoutMs?: number;
}

type Method = 'status' | 'nodes' | 'quorum' | 'groups';
type Row = readonly string[];
/** A decoded API map. */
export type Obj = Readonly<Record<string, ApiData>>;

/** `v` as a map (an empty one when it is not a map). */
export function apiObject(v: ApiData | undefined): Obj {
  return v !== null && v !== undefined && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array)
    ? (v as Obj)
    : {};
}

/** `v` as a list of maps (empty when it is not a list). */
export function apiList(v: ApiData | undefined): Obj[] {
  return Array.isArray(v) ? (v as readonly ApiData[]).map(apiObject) : [];
}

/** One table cell: `-` for null, strings as is, anything else as JSON. */
export function cellText(v: ApiData | undefined): string {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/** Formats rows as left-aligned columns separated by two spaces. */
export function table(rows: readonly Row[]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return (
    rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n') + '\n'
  );
}

function renderStatus(s: Obj): string {
  const lines: Row[] = [
    ['cluster', `${cellText(s['cluster'])} (config ${cellText(s['configFingerprint']).slice(0, 19)}…)`],
    [
      'node',
      `${cellText(s['nodeId'])} ${cellText(s['name'])}, incarnation ${cellText(s['incarnation'])}, ${cellText(s['role'])}`,
    ],
    ['leader', cellText(s['leaderId'])],
    ['term / commit', `${cellText(s['term'])} / ${cellText(s['commitIndex'])}`],
    ['raft', cellText(s['raftConfig'])],
    ['view', cellText(s['viewId'])],
    ['quorate', `${s['quorate'] === true ? 'yes' : 'NO'}: ${cellText(s['quorumExplanation'])}`],
    [
      'votes',
      `${cellText(s['totalVotes'])} present, quorum ${cellText(s['quorum'])}, expected ${cellText(s['expectedVotes'])}`,
    ],
  ];
  const members: Row[] = [
    ['NODE', 'NAME', 'INCARNATION', 'STATE'],
    ...apiList(s['members']).map((m) => [
      cellText(m['nodeId']),
      cellText(m['name']),
      cellText(m['incarnation']),
      cellText(m['state']),
    ]),
  ];
  return `${table(lines)}\nmembers of view ${cellText(s['viewId'])}:\n${table(members)}`;
}

/** The readable form of a `status` answer (also printed by `cohort demo`). */
export function renderStatusTable(value: ApiData): string {
  return renderStatus(apiObject(value));
}

function nodeState(n: Obj): string {
  const status = cellText(n['status']);
  if (n['fencePending'] !== true) return status;
  const waiting = typeof n['rejoin'] === 'number' && n['rejoin'] > 0 ? `, incarnation ${n['rejoin']} waiting` : '';
  return status === 'needs-fencing' ? `needs-fencing${waiting}` : `${status} (fence pending)`;
}

/** One hint line per node whose fence is pending: what the operator runs once it is fenced. */
export function fenceHints(nodes: readonly Obj[]): string {
  const lines = nodes
    .filter((n) => n['fencePending'] === true)
    .map(
      (n) =>
        `node ${cellText(n['nodeId'])} needs fencing (incarnation ${cellText(n['incarnation'])}); once it is powered off or otherwise fenced, confirm with: cohort fence confirm ${cellText(n['nodeId'])}\n`,
    );
  return lines.length === 0 ? '' : `\n${lines.join('')}`;
}

function renderNodes(r: Obj): string {
  const rows: Row[] = [['NODE', 'NAME', 'ADDRESS', 'VOTES', 'ROLE', 'STATE', 'INCARNATION', 'LINK']];
  const nodes = apiList(r['nodes']);
  for (const n of nodes) {
    rows.push([
      cellText(n['nodeId']),
      cellText(n['name']),
      cellText(n['address']),
      cellText(n['votes']),
      cellText(n['role']),
      nodeState(n),
      cellText(n['incarnation']),
      cellText(n['link']),
    ]);
  }
  return table(rows) + fenceHints(nodes);
}

function renderQuorum(q: Obj): string {
  return table([
    ['quorate', `${q['quorate'] === true ? 'yes' : 'NO'}: ${cellText(q['explanation'])}`],
    ['view', `${cellText(q['viewId'])}: ${cellText(q['summary'])}`],
    [
      'votes',
      `${cellText(q['totalVotes'])} present, quorum ${cellText(q['quorum'])}, expected ${cellText(q['expectedVotes'])}`,
    ],
    ['wait_for_all', cellText(apiObject(q['waitForAll'])['phase'])],
  ]);
}

function renderGroups(r: Obj): string {
  const groups = apiList(r['groups']);
  if (groups.length === 0) return 'no service groups (a group exists while it has members)\n';
  const rows: Row[] = [['GROUP', 'VIEW', 'MEMBERS (node.incarnation/level)']];
  for (const g of groups)
    rows.push([
      cellText(g['group']),
      cellText(g['groupViewId']),
      apiList(g['members'])
        .map((m) => `${cellText(m['node'])}.${cellText(m['incarnation'])}/${cellText(m['level'])}`)
        .join(' '),
    ]);
  return table(rows);
}

function render(method: Method, value: Obj): string {
  switch (method) {
    case 'groups':
      return renderGroups(value);
    case 'status':
      return renderStatus(value);
    case 'nodes':
      return renderNodes(value);
    case 'quorum':
      return renderQuorum(value);
  }
}

/** JSON for `--json`: bytes as arrays of numbers, everything else as is. */
export function toJsonLine(value: ApiData): string {
  return JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? Array.from(v) : v));
}

async function fetchQuorate(
  conn: Awaited<ReturnType<typeof connectLocal>>,
  method: Method,
  value: Obj,
  signal: AbortSignal,
): Promise<boolean> {
  if (method !== 'nodes' && method !== 'groups') return value['quorate'] === true;
  return apiObject(await conn.request('status', null, { signal }))['quorate'] === true;
}

/** Runs one of the commands; resolves to the exit code. Never throws. */
export async function runStatus(method: Method, opts: StatusOptions, io: StatusIo): Promise<number> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  try {
    await using conn = await connectLocal({
      ...(opts.socket === undefined ? {} : { socket: opts.socket }),
      timeoutMs,
      clientName: `cohort ${method}`,
    });
    const signal = AbortSignal.timeout(timeoutMs);
    const raw = await conn.request(method, null, { signal });
    const value = method === 'groups' ? { groups: raw } : apiObject(raw);
    const quorate = await fetchQuorate(conn, method, value, signal);
    io.out(opts.json === true ? `${toJsonLine(method === 'groups' ? raw : value)}\n` : render(method, value));
    return quorate ? STATUS_EXIT.ok : STATUS_EXIT.notQuorate;
  } catch (e) {
    if (e instanceof CohortClientError) {
      const unreachable = e.code === 'DAEMON_UNREACHABLE' || e.code === 'CONNECTION_LOST' || e.code === 'TIMEOUT';
      io.err(`cohort ${method}: ${e.message}\n`);
      return unreachable ? STATUS_EXIT.unreachable : e.code === 'OVERLOADED' ? STATUS_EXIT.busy : STATUS_EXIT.failure;
    }
    io.err(`cohort ${method}: ${e instanceof Error ? e.message : String(e)}\n`);
    return STATUS_EXIT.failure;
  }
}

/** Registers `cohort status`, `cohort nodes`, `cohort quorum` and `cohort groups` on `program`. */
export function registerStatus(program: Command, setCode: (code: number) => void): void {
  const what: Record<Method, string> = {
    status: "this node's view of the cluster: leader, view, quorum, members",
    nodes: 'every configured node with its membership state and link',
    quorum: 'the quorum verdict and the votes behind it',
    groups: 'the service groups with their current views',
  };
  for (const method of ['status', 'nodes', 'quorum', 'groups'] as const) {
    program
      .command(method)
      .description(`${what[method]} (exit 3 when not quorate, 4 when the daemon is unreachable, 7 when it is busy)`)
      .option('--socket <path>', "the node's API socket (default $COHORT_SOCKET)")
      .option('--json', 'print the answer as one JSON object')
      .action(async (opts) => {
        const io: StatusIo = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };
        setCode(
          await runStatus(
            method,
            { ...(opts.socket === undefined ? {} : { socket: opts.socket }), json: opts.json === true },
            io,
          ),
        );
      });
  }
}
