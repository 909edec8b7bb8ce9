/**
 * Scripted fence agents for the simulator (docs/processes.md "Scripted agents"), registered on a
 * machine's `SimProcessRunner` by the fencing workload:
 *
 * - `simExecAgent`: a `fence_dummy`-like ClusterLabs agent. It reads the `key=value` stdin the
 *   exec agent writes (parsed as fencing.py does: `parseAgentStdin`), keeps each plug's power
 *   state (every plug starts `on`), and answers with fence_dummy's lines and exit codes
 *   (`Status: ON` 0, `Status: OFF` 2, `Success: Powered OFF`, `Success: Already OFF`, ...).
 * - `simProcessAgent`: stands in for `/bin/sh` running the process agent's script
 *   (`PROCESS_AGENT_SCRIPT`): the pid file names a simulated node, and `off`/`reboot` kill it.
 *
 * Each run's outcome (`SimAgentOutcome`) is chosen by the agent's `choose` function (a script),
 * or by the runner's PRNG with the configured rates: `ok` (the device acts and reports success),
 * `fail` (exit 1, the device does nothing), `hang` (runs until the runner's timeout stops it; the
 * device does nothing), `crash` (dies of SIGSEGV; nothing done). The agent decides at spawn, so a
 * device's effect (a node powered off, a process killed) is handed to the workload's callback
 * with `afterMs`, the run's delay: the workload applies it that long after the spawn (when the
 * program "acts"), before the result reaches the executor (the runner adds its start latency). Callbacks
 * run inside `spawn`: they must only schedule, never crash a node on the spot.
 *
 * Deterministic: all randomness comes from the PRNG the runner hands to each run.
 */
import type { Prng } from '../lib/prng.js';
import { PROCESS_AGENT_SCRIPT } from '../fencing/process-agent.js';
import type { SimAgent, SimAgentBehaviour, SimAgentRequest } from './process-runner.js';

/** What one run of a scripted fence agent does; see the file comment. */
export type SimAgentOutcome = 'ok' | 'fail' | 'hang' | 'crash';

/** A run as the outcome chooser sees it. */
export interface SimFenceRun {
  /** The action (`action=` on stdin for the exec agent, `$1` of the script for the process agent). */
  readonly action: string;
  /** The exec agent's plug, or the process agent's node; null for device-level actions. */
  readonly target: string | null;
  /** The exec agent's stdin options (all lines, `action` and `plug` included); empty for the process agent. */
  readonly options: ReadonlyMap<string, string>;
}

/** Chooses a run's outcome; draw any randomness from `prng`. */
export type SimOutcomeChooser = (run: SimFenceRun, prng: Prng) => SimAgentOutcome;

/** Rates of the PRNG's default chooser (each in [0, 1], summing to at most 1; the rest is `ok`). */
export interface SimOutcomeRates {
  readonly fail?: number;
  readonly hang?: number;
  readonly crash?: number;
}

/** Virtual ms a run takes before it exits: uniform in [min, max]. */
export interface SimDelayRange {
  readonly min: number;
  readonly max: number;
}

/** The default chooser: one draw against the rates. */
export function outcomeByRates(rates: SimOutcomeRates): SimOutcomeChooser {
  const fail = rates.fail ?? 0;
  const hang = rates.hang ?? 0;
  const crash = rates.crash ?? 0;
  return (_run, prng) => {
    const x = prng.float();
    if (x < fail) return 'fail';
    if (x < fail + hang) return 'hang';
    if (x < fail + hang + crash) return 'crash';
    return 'ok';
  };
}

function delayOf(range: SimDelayRange, prng: Prng): number {
  return range.min >= range.max ? range.min : prng.int(range.min, range.max + 1);
}

/**
 * Parses stdin `key=value` lines as fencing.py does: each line stripped, blank and `#` lines
 * skipped, split at the first `=`, one pair of surrounding double quotes removed; a later key
 * replaces an earlier one. Keys are kept as written.
 */
export function parseAgentStdin(stdin: Uint8Array | string): Map<string, string> {
  const text = typeof stdin === 'string' ? stdin : new TextDecoder().decode(stdin);
  const out = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    const key = eq < 0 ? line : line.slice(0, eq);
    let value = eq < 0 ? '' : line.slice(eq + 1);
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    out.set(key, value);
  }
  return out;
}

/** Options of `simExecAgent`. */
export interface SimExecAgentOptions {
  /** Chooses each run's outcome (a script); default `outcomeByRates(rates)`. */
  readonly choose?: SimOutcomeChooser;
  /** Rates of the default chooser; default all 0 (every run `ok`). */
  readonly rates?: SimOutcomeRates;
  /** How long a run takes; default 20 to 200 virtual ms (a power switch answers in a few tenths). */
  readonly delayMs?: SimDelayRange;
  /** The device switched `plug` (on a successful `off`, `on` or `reboot`); apply it `afterMs` after the spawn. */
  readonly power?: (plug: string, action: 'off' | 'on' | 'reboot', afterMs: number) => void;
  /** Plugs `list` reports (default: the plugs seen so far). */
  readonly plugs?: readonly string[];
}

/** A scripted exec agent: see the file comment. Its plug states are its own (one per registration). */
export function simExecAgent(options: SimExecAgentOptions = {}): SimAgent {
  const choose = options.choose ?? outcomeByRates(options.rates ?? {});
  const range = options.delayMs ?? { min: 20, max: 200 };
  const power = new Map<string, 'on' | 'off'>();
  return (request: SimAgentRequest, prng: Prng): SimAgentBehaviour => {
    const stdin = parseAgentStdin(request.stdin);
    const action = (stdin.get('action') ?? stdin.get('option') ?? 'reboot').toLowerCase();
    const plug = stdin.get('plug') ?? stdin.get('port') ?? null;
    const delayMs = delayOf(range, prng);
    const exit = (code: number, stdout: string, stderr = ''): SimAgentBehaviour => ({
      kind: 'exit',
      code,
      delayMs,
      stdout,
      stderr,
    });
    if (request.args.length > 0) return exit(2, '', 'ERROR: this simulated agent reads its options from stdin only\n');
    if (action === 'metadata') return exit(0, simMetadata([...stdin.keys()]));
    const outcome = choose({ action, target: plug, options: stdin }, prng);
    switch (outcome) {
      case 'hang':
        return { kind: 'hang', stderr: `DEBUG: ${action} ${plug ?? ''}: waiting for the device\n` };
      case 'crash':
        return { kind: 'signal', signal: 'SIGSEGV', delayMs };
      case 'fail':
        return exit(1, '', `ERROR: Failed: Unable to connect/login to fencing device (${action})\n`);
      case 'ok':
        break;
    }
    if (action === 'monitor') return exit(0, '');
    if (action === 'list') {
      const listed = options.plugs ?? [...power.keys()];
      return exit(0, listed.map((p) => `${p},${p}\n`).join(''));
    }
    if (action !== 'off' && action !== 'on' && action !== 'reboot' && action !== 'status') {
      return exit(1, '', `ERROR: Failed: Unrecognised action '${action}'\n`);
    }
    if (plug === null || plug === '')
      return exit(1, '', 'ERROR: Failed: You have to enter plug number or machine identification\n');
    const state = power.get(plug) ?? 'on';
    switch (action) {
      case 'status':
        return state === 'on' ? exit(0, 'Status: ON\n') : exit(2, 'Status: OFF\n');
      case 'off':
      case 'on':
        if (state === action) return exit(0, `Success: Already ${action.toUpperCase()}\n`);
        power.set(plug, action);
        options.power?.(plug, action, delayMs);
        return exit(0, action === 'off' ? 'Success: Powered OFF\n' : 'Success: Powered ON\n');
      case 'reboot':
        power.set(plug, 'on');
        options.power?.(plug, 'reboot', delayMs);
        return exit(0, 'Success: Rebooted\n');
    }
  };
}

/** A minimal ClusterLabs metadata document declaring `action`, `plug`, `port` and `extra` parameters. */
export function simMetadata(extra: readonly string[]): string {
  const names = ['action', 'plug', 'port', ...extra.filter((n) => n !== 'action' && n !== 'plug' && n !== 'port')];
  const params = names.map((n) => `\t<parameter name="${n}" unique="0" required="0">\n\t</parameter>\n`).join('');
  return `<?xml version="1.0" ?>\n<resource-agent name="fence_sim" shortdesc="Simulated fence agent" >\n<parameters>\n${params}</parameters>\n</resource-agent>\n`;
}

/** Options of `simProcessAgent`. */
export interface SimProcessAgentOptions {
  /** The node whose pid file `path` is, or null when no such file exists. Default: the base name without `.pid`. */
  readonly nodeOfPidFile?: (path: string) => string | null;
  /** Whether the node's process runs now (for `status` and "already gone"). */
  readonly alive: (nodeName: string) => boolean;
  /** Kill the node's process `afterMs` after the spawn (SIGKILL: a crash, no clean shutdown). */
  readonly kill: (nodeName: string, afterMs: number) => void;
  /** Chooses each run's outcome; default `outcomeByRates(rates)`. A `fail` is a process that survives SIGKILL (D state). */
  readonly choose?: SimOutcomeChooser;
  readonly rates?: SimOutcomeRates;
  /** How long a run takes; default 1 to 10 virtual ms (a local kill and a poll). */
  readonly delayMs?: SimDelayRange;
}

/** The default `nodeOfPidFile`: `/run/cohort/node2.pid` is node `node2`. */
export function nodeOfPidFileName(path: string): string | null {
  const base = path.slice(path.lastIndexOf('/') + 1);
  if (!base.endsWith('.pid') || base.length <= 4) return null;
  return base.slice(0, -4);
}

/**
 * The process agent's script as a scripted `/bin/sh` (register it on `PROCESS_AGENT_SHELL`): it
 * answers only `sh -c PROCESS_AGENT_SCRIPT fence_process ACTION PIDFILE STEPS` (anything else
 * exits 2), with the real script's lines and exit codes.
 */
export function simProcessAgent(options: SimProcessAgentOptions): SimAgent {
  const nodeOf = options.nodeOfPidFile ?? nodeOfPidFileName;
  const choose = options.choose ?? outcomeByRates(options.rates ?? {});
  const range = options.delayMs ?? { min: 1, max: 10 };
  return (request: SimAgentRequest, prng: Prng): SimAgentBehaviour => {
    const delayMs = delayOf(range, prng);
    const exit = (code: number, stdout: string, stderr = ''): SimAgentBehaviour => ({
      kind: 'exit',
      code,
      delayMs,
      stdout,
      stderr,
    });
    const [flag, script, , action = '', file = ''] = request.args;
    if (flag !== '-c' || script !== PROCESS_AGENT_SCRIPT) {
      return exit(2, '', 'sh: the simulated /bin/sh runs only the process agent script\n');
    }
    if (action === 'on') return exit(0, 'Success: nothing to do (the supervisor restarts the process)\n');
    if (action === 'monitor' || action === 'list' || action === 'metadata') return exit(0, '');
    if (action !== 'off' && action !== 'reboot' && action !== 'status')
      return exit(1, '', `unknown action: ${action}\n`);
    if (file === '') return exit(1, '', 'no pid file is configured for this node\n');
    const node = nodeOf(file);
    if (node === null) return exit(1, '', `cannot read pid file ${file}\n`);
    const outcome = choose({ action, target: node, options: new Map() }, prng);
    switch (outcome) {
      case 'hang':
        return { kind: 'hang' };
      case 'crash':
        return { kind: 'signal', signal: 'SIGSEGV', delayMs };
      case 'fail':
        return exit(1, '', `process of ${node} still runs after SIGKILL\n`);
      case 'ok':
        break;
    }
    const running = options.alive(node);
    if (action === 'status') return running ? exit(0, 'Status: ON\n') : exit(2, 'Status: OFF\n');
    if (!running) return exit(0, `Success: process of ${node} is already gone\n`);
    options.kill(node, delayMs);
    return exit(0, `Success: killed process of ${node}\n`);
  };
}
