/**
 * `cohort kv get|put|cas|delete`: the replicated key-value store through one node's API socket
 * (`--socket PATH` or `$COHORT_SOCKET`), over the typed client (`connect`). Reads are
 * linearizable on any node; writes are forwarded to the leader and return once this node
 * reflects them.
 *
 * Input: `put` takes VALUE from the command line, all of stdin (`-`) or a file (`--file PATH`),
 * as bytes (`value-input.ts`). Keys follow the key rules of `src/log/kv-key.ts` (printable text,
 * at most 512 UTF-8 bytes), checked by the client library before sending and by the daemon.
 *
 * Output: `get` prints the value (UTF-8 text and a newline; a value that is not UTF-8 is written
 * as its raw bytes), writes print one line; `--json` prints the API's answer as one JSON object
 * (bytes as arrays of numbers).
 *
 * Exit codes (docs/cli.md): 0 ok, 1 failure (refused, timed out, outcome unknown: the message
 * says which), 2 usage, 3 not quorate, 4 the daemon cannot be reached, 5 key not found (`get`,
 * `delete`), 6 compare failed (`cas`), 7 the daemon is busy (every API client slot in use). Errors
 * are one line; `--debug` adds the stack.
 */
import { InvalidArgumentError, type Command } from '@commander-js/extra-typings';
import { CohortClientError, connect, type CohortClient, type KvCasCondition } from '../client/index.js';
import { KV_VALUE_BYTES_MAX } from '../constants.js';
import { kvKeyProblem, kvStoredKeyProblem } from '../log/kv-key.js';
import { loadValue, valueSource, ValueInputError } from './value-input.js';

/** Exit codes of the kv commands. */
export const KV_EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  notQuorate: 3,
  unreachable: 4,
  notFound: 5,
  compareFailed: 6,
  busy: 7,
} as const;
/** Deadline of one command: the daemon's own request deadline (5 s) plus slack. */
const KV_TIMEOUT_MS = 8000;

/** Where the kv commands write; `out` also takes raw bytes (a binary value). */
export interface KvIo {
  out(data: string | Uint8Array): void;
  err(text: string): void;
}

/** Options shared by the kv commands. */
export interface KvOptions {
  readonly socket?: string;
  readonly json?: boolean;
  readonly debug?: boolean;
  readonly timeoutMs?: number;
}

/** One kv command, parsed. */
export type KvCommand =
  | { readonly op: 'get'; readonly key: string }
  | { readonly op: 'put'; readonly key: string; readonly value: string | Uint8Array }
  | { readonly op: 'cas'; readonly key: string; readonly value: string; readonly condition: KvCasCondition }
  | { readonly op: 'delete'; readonly key: string };

/**
 * One JSON line, bytes as arrays of numbers. The replacer looks at the holder's raw value:
 * `v` is already the result of `toJSON`, which turns a `Buffer` into `{type, data}`.
 */
function jsonLine(value: unknown): string {
  return JSON.stringify(value, function (this: Readonly<Record<string, unknown>>, k: string, v: unknown) {
    const raw = this[k];
    return raw instanceof Uint8Array ? Array.from(raw) : v;
  });
}

function quoted(text: string | null): string {
  return text === null ? 'absent (or not UTF-8 text)' : JSON.stringify(text);
}

async function execute(
  client: CohortClient,
  cmd: KvCommand,
  opts: KvOptions,
  io: KvIo,
  signal: AbortSignal,
): Promise<number> {
  const json = opts.json === true;
  switch (cmd.op) {
    case 'get': {
      const r = await client.kv.get(cmd.key, { signal });
      if (json) io.out(`${jsonLine(r)}\n`);
      if (!r.found) {
        io.err(`cohort kv get: key ${JSON.stringify(cmd.key)} not found\n`);
        return KV_EXIT.notFound;
      }
      if (!json) io.out(r.text === null ? r.value : `${r.text}\n`);
      return KV_EXIT.ok;
    }
    case 'put': {
      const r = await client.kv.put(cmd.key, cmd.value, { signal });
      io.out(
        json
          ? `${jsonLine(r)}\n`
          : `OK: ${JSON.stringify(cmd.key)} at revision ${r.modRevision} (version ${r.version})\n`,
      );
      return KV_EXIT.ok;
    }
    case 'cas': {
      const r = await client.kv.cas(cmd.key, cmd.value, cmd.condition, { signal });
      if (json) io.out(`${jsonLine(r)}\n`);
      if (!r.succeeded) {
        io.err(
          `cohort kv cas: compare failed: ${JSON.stringify(cmd.key)} is ${quoted(r.text)}; nothing written (revision ${r.revision})\n`,
        );
        return KV_EXIT.compareFailed;
      }
      if (!json) io.out(`OK: ${JSON.stringify(cmd.key)} written at revision ${r.revision}\n`);
      return KV_EXIT.ok;
    }
    case 'delete': {
      const r = await client.kv.delete(cmd.key, { signal });
      if (json) io.out(`${jsonLine(r)}\n`);
      if (!r.deleted) {
        io.err(`cohort kv delete: key ${JSON.stringify(cmd.key)} not found; nothing deleted\n`);
        return KV_EXIT.notFound;
      }
      if (!json) io.out(`OK: ${JSON.stringify(cmd.key)} deleted at revision ${r.revision}\n`);
      return KV_EXIT.ok;
    }
  }
}

function exitFor(e: CohortClientError): number {
  switch (e.code) {
    case 'DAEMON_UNREACHABLE':
    case 'CONNECTION_LOST':
      return KV_EXIT.unreachable;
    case 'NOT_QUORATE':
      return KV_EXIT.notQuorate;
    case 'OVERLOADED':
      return KV_EXIT.busy;
    default:
      return KV_EXIT.failure;
  }
}

/** Runs one kv command; resolves to the exit code. Never throws. */
export async function runKv(cmd: KvCommand, opts: KvOptions, io: KvIo): Promise<number> {
  const timeoutMs = opts.timeoutMs ?? KV_TIMEOUT_MS;
  // The key rules (src/log/kv-key.ts) before connecting: a bad key is named even when no daemon
  // runs. The library and the daemon check the same rules again.
  const keyProblem = cmd.op === 'put' || cmd.op === 'cas' ? kvKeyProblem(cmd.key) : kvStoredKeyProblem(cmd.key);
  if (keyProblem !== null) {
    io.err(`cohort kv ${cmd.op}: ${keyProblem}\n`);
    return KV_EXIT.failure;
  }
  try {
    await using client = await connect({
      ...(opts.socket === undefined ? {} : { socket: opts.socket }),
      timeoutMs,
      clientName: `cohort kv ${cmd.op}`,
    });
    return await execute(client, cmd, opts, io, AbortSignal.timeout(timeoutMs));
  } catch (e) {
    const code = e instanceof CohortClientError ? exitFor(e) : KV_EXIT.failure;
    const unreachableTimeout = e instanceof CohortClientError && e.code === 'TIMEOUT' && /connecting/.test(e.message);
    io.err(`cohort kv ${cmd.op}: ${e instanceof Error ? e.message : String(e)}\n`);
    if (opts.debug === true && e instanceof Error && e.stack !== undefined) io.err(`${e.stack}\n`);
    return unreachableTimeout ? KV_EXIT.unreachable : code;
  }
}

/** The `cas` condition from its three mutually exclusive options, or a usage message. */
export function casCondition(o: {
  readonly expected?: string;
  readonly absent?: boolean;
  readonly modRevision?: number;
}): KvCasCondition | string {
  const given = [o.expected !== undefined, o.absent === true, o.modRevision !== undefined].filter(Boolean).length;
  if (given !== 1) return 'give exactly one of --expected VALUE, --absent or --mod-revision N';
  if (o.expected !== undefined) return { expected: o.expected };
  if (o.modRevision !== undefined) return { expectedModRevision: o.modRevision };
  return { expected: null };
}

function revisionOption(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n))
    throw new InvalidArgumentError(`--mod-revision must be a non-negative integer, got ${JSON.stringify(value)}`);
  return n;
}

const processIo: KvIo = { out: (d) => process.stdout.write(d), err: (t) => process.stderr.write(t) };

function common(opts: { socket?: string; json?: true; debug?: true }): KvOptions {
  return {
    ...(opts.socket === undefined ? {} : { socket: opts.socket }),
    json: opts.json === true,
    debug: opts.debug === true,
  };
}

/** Registers `cohort kv get|put|cas|delete` on `program`. */
export function registerKv(program: Command, setCode: (code: number) => void): void {
  const kv = program
    .command('kv')
    .description(
      'the replicated key-value store (exit 3 not quorate, 4 daemon unreachable, 5 key not found, 6 compare failed, 7 daemon busy)',
    );
  kv.command('get')
    .description('print the value of KEY (exit 5 when absent)')
    .argument('<key>')
    .option('--socket <path>', "the node's API socket (default $COHORT_SOCKET)")
    .option('--json', 'print the answer as one JSON object (value, revisions)')
    .option('--debug', 'print the stack trace of an error')
    .action(async (key, opts) => {
      setCode(await runKv({ op: 'get', key }, common(opts), processIo));
    });
  kv.command('put')
    .description(
      `write VALUE at KEY; VALUE "-" reads all of stdin; values are at most ${KV_VALUE_BYTES_MAX / 1024} KiB (exit 1 when larger)`,
    )
    .argument('<key>')
    .argument('[value]')
    .option('--file <path>', 'write the bytes of this file ("-": stdin) instead of VALUE')
    .option('--socket <path>', "the node's API socket (default $COHORT_SOCKET)")
    .option('--json', 'print the answer as one JSON object')
    .option('--debug', 'print the stack trace of an error')
    .action(async (key, value, opts) => {
      const source = valueSource(value, opts.file);
      if (typeof source === 'string') {
        processIo.err(`cohort kv put: ${source}\n`);
        setCode(KV_EXIT.usage);
        return;
      }
      let bytes: string | Uint8Array;
      try {
        bytes = await loadValue(source);
      } catch (e) {
        if (!(e instanceof ValueInputError)) throw e;
        processIo.err(`cohort kv put: ${e.message}\n`);
        setCode(KV_EXIT.failure);
        return;
      }
      setCode(await runKv({ op: 'put', key, value: bytes }, common(opts), processIo));
    });
  kv.command('cas')
    .description(
      'write VALUE at KEY only if it holds --expected V, is --absent, or was last written at --mod-revision N (exit 6 when not)',
    )
    .argument('<key>')
    .argument('<value>')
    .option('--expected <value>', 'the value KEY must hold now')
    .option('--absent', 'KEY must not exist')
    .option('--mod-revision <n>', 'KEY must have been last written at revision N', revisionOption)
    .option('--socket <path>', "the node's API socket (default $COHORT_SOCKET)")
    .option('--json', 'print the answer as one JSON object')
    .option('--debug', 'print the stack trace of an error')
    .action(async (key, value, opts) => {
      const condition = casCondition(opts);
      if (typeof condition === 'string') {
        processIo.err(`cohort kv cas: ${condition}\n`);
        setCode(KV_EXIT.usage);
        return;
      }
      setCode(await runKv({ op: 'cas', key, value, condition }, common(opts), processIo));
    });
  kv.command('delete')
    .description('delete KEY (exit 5 when absent)')
    .argument('<key>')
    .option('--socket <path>', "the node's API socket (default $COHORT_SOCKET)")
    .option('--json', 'print the answer as one JSON object')
    .option('--debug', 'print the stack trace of an error')
    .action(async (key, opts) => {
      setCode(await runKv({ op: 'delete', key }, common(opts), processIo));
    });
}
