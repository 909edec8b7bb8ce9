/**
 * `cohort status | nodes | quorum`: read one node's view through its local API socket
 * (`--socket PATH` or `$COHORT_SOCKET`), print a readable table or, with `--json`, the API's
 * answer as one JSON object.
 *
 * Exit codes (docs/cli.md): 0 the node is quorate, 3 it answered but is not quorate (the output
 * says why), 4 the daemon cannot be reached (one line naming the socket), 1 any other failure.
 */
import type { Command } from '@commander-js/extra-typings';
import { CohortClientError, connectLocal, type ApiData } from '../client/index.js';

/** Exit codes of these commands. */
export const STATUS_EXIT = { ok: 0, failure: 1, notQuorate: 3, unreachable: 4 } as const;

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

type Method = 'status' | 'nodes' | 'quorum';
type Row = readonly string[];
type Obj = Readonly<Record<string, ApiData>>;

function obj(v: ApiData | undefined): Obj {
  return v !== null && v !== undefined && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array) ? (v as Obj) : {};
}

function list(v: ApiData | undefined): Obj[] {
  return Array.isArray(v) ? (v as readonly ApiData[]).map(obj) : [];
}

function text(v: ApiData | undefined): string {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'string') return v;
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

/** Formats rows as left-aligned columns separated by two spaces. */
export function table(rows: readonly Row[]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ')).join('\n') + '\n';
}

function renderStatus(s: Obj): string {
  const lines: Row[] = [
    ['cluster', `${text(s['cluster'])} (config ${text(s['configFingerprint']).slice(0, 19)}…)`],
    ['node', `${text(s['nodeId'])} ${text(s['name'])}, incarnation ${text(s['incarnation'])}, ${text(s['role'])}`],
    ['leader', text(s['leaderId'])],
    ['term / commit', `${text(s['term'])} / ${text(s['commitIndex'])}`],
    ['view', text(s['viewId'])],
    ['quorate', `${s['quorate'] === true ? 'yes' : 'NO'}: ${text(s['quorumExplanation'])}`],
    ['votes', `${text(s['totalVotes'])} present, quorum ${text(s['quorum'])}, expected ${text(s['expectedVotes'])}`],
  ];
  const members: Row[] = [['NODE', 'NAME', 'INCARNATION', 'STATE'], ...list(s['members']).map((m) => [text(m['nodeId']), text(m['name']), text(m['incarnation']), text(m['state'])])];
  return `${table(lines)}\nmembers of view ${text(s['viewId'])}:\n${table(members)}`;
}

/** The readable form of a `status` answer (also printed by `cohort demo`). */
export function renderStatusTable(value: ApiData): string {
  return renderStatus(obj(value));
}

function renderNodes(r: Obj): string {
  const rows: Row[] = [['NODE', 'NAME', 'ADDRESS', 'VOTES', 'ROLE', 'STATE', 'INCARNATION', 'LINK']];
  for (const n of list(r['nodes'])) {
    const state = n['fencePending'] === true ? `${text(n['status'])} (fence pending)` : text(n['status']);
    rows.push([text(n['nodeId']), text(n['name']), text(n['address']), text(n['votes']), text(n['role']), state, text(n['incarnation']), text(n['link'])]);
  }
  return table(rows);
}

function renderQuorum(q: Obj): string {
  return table([
    ['quorate', `${q['quorate'] === true ? 'yes' : 'NO'}: ${text(q['explanation'])}`],
    ['view', `${text(q['viewId'])}: ${text(q['summary'])}`],
    ['votes', `${text(q['totalVotes'])} present, quorum ${text(q['quorum'])}, expected ${text(q['expectedVotes'])}`],
    ['wait_for_all', text(obj(q['waitForAll'])['phase'])],
  ]);
}

function render(method: Method, value: Obj): string {
  switch (method) {
    case 'status':
      return renderStatus(value);
    case 'nodes':
      return renderNodes(value);
    case 'quorum':
      return renderQuorum(value);
  }
}

/** JSON for `--json`: bytes as arrays of numbers, everything else as is. */
function json(value: ApiData): string {
  return JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? Array.from(v) : v));
}

async function fetchQuorate(conn: Awaited<ReturnType<typeof connectLocal>>, method: Method, value: Obj, signal: AbortSignal): Promise<boolean> {
  if (method !== 'nodes') return value['quorate'] === true;
  return obj(await conn.request('status', null, { signal }))['quorate'] === true;
}

/** Runs one of the commands; resolves to the exit code. Never throws. */
export async function runStatus(method: Method, opts: StatusOptions, io: StatusIo): Promise<number> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  try {
    await using conn = await connectLocal({ ...(opts.socket === undefined ? {} : { socket: opts.socket }), timeoutMs, clientName: `cohort ${method}` });
    const signal = AbortSignal.timeout(timeoutMs);
    const value = obj(await conn.request(method, null, { signal }));
    const quorate = await fetchQuorate(conn, method, value, signal);
    io.out(opts.json === true ? `${json(value)}\n` : render(method, value));
    return quorate ? STATUS_EXIT.ok : STATUS_EXIT.notQuorate;
  } catch (e) {
    if (e instanceof CohortClientError) {
      const unreachable = e.code === 'DAEMON_UNREACHABLE' || e.code === 'CONNECTION_LOST' || e.code === 'TIMEOUT';
      io.err(`cohort ${method}: ${e.message}\n`);
      return unreachable ? STATUS_EXIT.unreachable : STATUS_EXIT.failure;
    }
    io.err(`cohort ${method}: ${e instanceof Error ? e.message : String(e)}\n`);
    return STATUS_EXIT.failure;
  }
}

/** Registers `cohort status`, `cohort nodes` and `cohort quorum` on `program`. */
export function registerStatus(program: Command, setCode: (code: number) => void): void {
  const what: Record<Method, string> = {
    status: 'this node\'s view of the cluster: leader, view, quorum, members',
    nodes: 'every configured node with its membership state and link',
    quorum: 'the quorum verdict and the votes behind it',
  };
  for (const method of ['status', 'nodes', 'quorum'] as const) {
    program
      .command(method)
      .description(`${what[method]} (exit 3 when not quorate, 4 when the daemon is unreachable)`)
      .option('--socket <path>', 'the node\'s API socket (default $COHORT_SOCKET)')
      .option('--json', 'print the answer as one JSON object')
      .action(async (opts) => {
        const io: StatusIo = { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) };
        setCode(await runStatus(method, { ...(opts.socket === undefined ? {} : { socket: opts.socket }), json: opts.json === true }, io));
      });
  }
}
