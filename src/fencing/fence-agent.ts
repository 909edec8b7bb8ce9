/**
 * Fence agents: how one attempt of one device becomes a program run, and how the run's end
 * becomes an attempt result (docs/design/fencing-and-recovery.md section 4, docs/fencing.md
 * "Agents"). Pure: the executor hands the `ProcessSpec` to `NodeEnv.processes` and the
 * `ProcessResult` back to `agentAttemptResult`; nothing here runs, waits or reads a clock.
 *
 * The agent kinds:
 * - `exec` (`exec-agent.ts`): a ClusterLabs fence agent, options as `key=value` lines on stdin.
 * - `process` (`process-agent.ts`): `/bin/sh` with a fixed script kills the pid in a pid file.
 * - `watchdog`: runs no program (`agentProcessSpec` returns null). The removed node self-fences
 *   within its lease (it stops serving and exits, or stops feeding `/dev/watchdog`); the attempt
 *   succeeds once the wait the scheduler computes (`nodeLeaseMs + driftMarginMs` after the
 *   executor saw the removal applied) has passed. The scheduler, not this module, decides that.
 * - `manual`: runs no program; the fence waits for `cohort fence confirm`.
 *
 * Both program agents follow the ClusterLabs exit convention (`exitOutcome`): 0 success; for
 * `status`, 0 means the target is on and 2 that it is off; anything else is a failure. A program
 * that died of a signal, or that the runner could not start or had to stop, is not a failure of
 * the fence device but of the run: `error`, or `timed-out` when it ran past the device's timeout.
 */
import { assert } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import { FENCE_EXCERPT_BYTES_MAX, FENCE_EXCERPT_SCAN_BYTES } from '../constants.js';
import type { ProcessOutput, ProcessResult, ProcessSpec } from '../runtime/process-runner.js';
import { plugFor, type FenceAction, type FenceAgentKind, type FenceDevice } from './fence-topology.js';
import { execProcessSpec } from './exec-agent.js';
import { processAgentSpec } from './process-agent.js';

/** The node an action is about. */
export interface AgentTarget {
  readonly node: NodeId;
  /** The node's name (ClusterLabs `nodename`; the key of `hosts` and `pidFiles`). */
  readonly name: string;
  /** The device's name for the node (`plugFor(device, name)`; ClusterLabs `plug`). */
  readonly plug: string;
}

/** One run of one device. */
export interface AgentRequest {
  readonly device: FenceDevice;
  readonly action: FenceAction;
  /**
   * The node acted on: required for `off`, `on`, `reboot` and `status`; null for the device-level
   * actions `monitor`, `list` and `metadata` (a target given with them is ignored).
   */
  readonly target: AgentTarget | null;
}

/** How an attempt ended: `failed` carries the exit code; `error` means the run itself failed. */
export type AttemptOutcome = 'ok' | 'failed' | 'timed-out' | 'error';

/** A target's power state as `status` reports it. */
export type PowerStatus = 'on' | 'off';

/** One attempt's result, as the ledger records it. */
export interface AttemptResult {
  readonly result: AttemptOutcome;
  /** The program's exit code, when it exited (also for `ok`). */
  readonly exitCode?: number;
  readonly durationMs: number;
  /** The first lines of the output (stdout first when ok, stderr first otherwise): `clipUtf8` to `FENCE_EXCERPT_BYTES_MAX`. */
  readonly excerpt: string;
  /** For a `status` that succeeded: what it reported. */
  readonly status?: PowerStatus;
}

/**
 * The target of `device` for node `node` named `name`: its plug is `plugFor(device, name)`. Null
 * when the device cannot fence that node: `hosts` does not list it, or (process devices) no pid
 * file is configured for it.
 */
export function targetFor(device: FenceDevice, node: NodeId, name: string): AgentTarget | null {
  const plug = plugFor(device, name);
  if (plug === null) return null;
  if (device.agent === 'process' && !device.pidFiles.has(name)) return null;
  return { node, name, plug };
}

/** Actions about one node (they need a target). */
const TARGET_ACTIONS: ReadonlySet<FenceAction> = new Set<FenceAction>(['off', 'on', 'reboot', 'status']);

/** True for `off`, `on`, `reboot` and `status`, which act on a target node. */
export function isTargetAction(action: FenceAction): boolean {
  return TARGET_ACTIONS.has(action);
}

/** True for the agents that run a program (`exec`, `process`); `watchdog` and `manual` run none. */
export function agentRunsProgram(agent: FenceAgentKind): boolean {
  return agent === 'exec' || agent === 'process';
}

/**
 * What to run for `request`, or null when the device's agent runs no program (`watchdog`,
 * `manual`: see the file comment). Asserts a target is given for a target action. The spec's
 * timeout is the device's `timeoutMs`.
 */
export function agentProcessSpec(request: AgentRequest): ProcessSpec | null {
  assert(request.target !== null || !isTargetAction(request.action), `fence action ${request.action} needs a target`);
  const target = isTargetAction(request.action) ? request.target : null;
  const device = request.device;
  switch (device.agent) {
    case 'exec':
      return execProcessSpec(device, request.action, target);
    case 'process':
      return processAgentSpec(device, request.action, target);
    case 'watchdog':
    case 'manual':
      return null;
  }
}

/** What an exit code means for `action` (the ClusterLabs convention, shared by both program agents). */
export function exitOutcome(action: FenceAction, exitCode: number): { result: 'ok' | 'failed'; status?: PowerStatus } {
  if (action === 'status') {
    if (exitCode === 0) return { result: 'ok', status: 'on' };
    if (exitCode === 2) return { result: 'ok', status: 'off' };
    // 1 is ClusterLabs' "error": the agent could not tell. It is a failed attempt of the device
    // (exit code kept), not a run that could not happen (`error`).
    return { result: 'failed' };
  }
  return exitCode === 0 ? { result: 'ok' } : { result: 'failed' };
}

/**
 * The attempt result of a finished run of `request` (one whose `agentProcessSpec` was not null).
 * - `exited`: `exitOutcome`; the excerpt is the output's first lines, or `exit code N` when the
 *   program wrote nothing.
 * - `signalled` (a death the runner did not cause): `error`, the excerpt names the signal.
 * - `failed` with `PROCESS_TIMED_OUT`: `timed-out`; any other runner failure (not found, not
 *   permitted, the running limit, killed because this node stopped leading, no programs here):
 *   `error`; the excerpt starts with the runner's code and message, then the output.
 */
export function agentAttemptResult(request: AgentRequest, result: ProcessResult): AttemptResult {
  assert(agentRunsProgram(request.device.agent), `a ${request.device.agent} device runs no program`);
  const durationMs = result.durationMs;
  switch (result.kind) {
    case 'exited': {
      const outcome = exitOutcome(request.action, result.exitCode);
      const excerpt = outputExcerpt(result.output, outcome.result === 'ok' ? 'stdout' : 'stderr');
      return {
        result: outcome.result,
        exitCode: result.exitCode,
        durationMs,
        excerpt: excerpt === '' ? `exit code ${result.exitCode}` : excerpt,
        ...(outcome.status === undefined ? {} : { status: outcome.status }),
      };
    }
    case 'signalled':
      return {
        result: 'error',
        durationMs,
        excerpt: outputExcerpt(result.output, 'stderr', `died of ${result.signal}`),
      };
    case 'failed': {
      const how = result.ending === null ? '' : ` (ended by ${endingText(result.ending)})`;
      return {
        result: result.error.code === 'PROCESS_TIMED_OUT' ? 'timed-out' : 'error',
        durationMs,
        excerpt: outputExcerpt(result.output, 'stderr', `${result.error.code}: ${result.error.message}${how}`),
      };
    }
  }
}

function endingText(ending: { kind: 'exit'; code: number } | { kind: 'signal'; signal: string }): string {
  return ending.kind === 'exit' ? `exit code ${ending.code}` : ending.signal;
}

/**
 * The excerpt of a program's output: `first` stream's lines, then the other's, each line's
 * control characters made spaces and its ends trimmed, blank lines dropped, joined by `\n`,
 * after `prefix` when given; then `clipUtf8` to `maxBytes`. Only the first
 * `FENCE_EXCERPT_SCAN_BYTES` of each stream are decoded (an incomplete character at that cut or
 * at the runner's truncation is dropped; other invalid UTF-8 becomes U+FFFD).
 */
export function outputExcerpt(
  output: ProcessOutput,
  first: 'stdout' | 'stderr',
  prefix?: string,
  maxBytes: number = FENCE_EXCERPT_BYTES_MAX,
): string {
  const stdout = { bytes: output.stdout, truncated: output.stdoutTruncated };
  const stderr = { bytes: output.stderr, truncated: output.stderrTruncated };
  const streams = first === 'stdout' ? [stdout, stderr] : [stderr, stdout];
  const lines: string[] = prefix === undefined ? [] : [...excerptLines(prefix)];
  for (const s of streams) lines.push(...excerptLines(decodeHead(s.bytes, s.truncated)));
  return clipUtf8(lines.join('\n'), maxBytes);
}

/** The first `FENCE_EXCERPT_SCAN_BYTES` of `bytes` as text, without a character cut in two by that cut or the runner's. */
function decodeHead(bytes: Uint8Array, truncated: boolean): string {
  const head = bytes.subarray(0, FENCE_EXCERPT_SCAN_BYTES);
  // `stream: true` keeps an incomplete trailing sequence back instead of emitting U+FFFD for it.
  const cut = truncated || head.length < bytes.length;
  return new TextDecoder('utf-8', { fatal: false, ignoreBOM: true }).decode(head, { stream: cut });
}

/** Control characters (C0 but the line breaks, DEL, C1) and the Unicode line and paragraph separators. */
// eslint-disable-next-line no-control-regex -- control characters are what it matches
const CONTROL = /[\u0000-\u0009\u000b\u000c\u000e-\u001f\u007f-\u009f\u2028\u2029]/g;

function excerptLines(text: string): string[] {
  return text
    .split(/\r\n|\r|\n/)
    .map((line) => line.replace(CONTROL, ' ').trim())
    .filter((line) => line !== '');
}

/** UTF-8 length of one code point (a lone surrogate encodes as U+FFFD: 3 bytes). */
function utf8Length(codePoint: number): number {
  if (codePoint < 0x80) return 1;
  if (codePoint < 0x800) return 2;
  if (codePoint < 0x10000) return 3;
  return 4;
}

/** The marker that ends a clipped text. */
export const CLIP_MARK = '…';

/**
 * `text` if its UTF-8 encoding fits `maxBytes`, else its longest prefix of whole characters
 * (never half of a surrogate pair) that fits with `CLIP_MARK` (3 bytes) appended, and the mark.
 */
export function clipUtf8(text: string, maxBytes: number = FENCE_EXCERPT_BYTES_MAX): string {
  assert(Number.isInteger(maxBytes) && maxBytes >= 3, 'a clip keeps at least the mark');
  let total = 0;
  for (const ch of text) {
    total += utf8Length(ch.codePointAt(0) ?? 0);
    if (total > maxBytes) break;
  }
  if (total <= maxBytes) return text;
  const room = maxBytes - utf8Length(CLIP_MARK.codePointAt(0) ?? 0);
  let used = 0;
  let end = 0;
  for (const ch of text) {
    const n = utf8Length(ch.codePointAt(0) ?? 0);
    if (used + n > room) break;
    used += n;
    end += ch.length;
  }
  return text.slice(0, end) + CLIP_MARK;
}
