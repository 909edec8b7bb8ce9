/**
 * The `exec` agent: a ClusterLabs fence agent (`fence_ipmilan`, `fence_virsh`, `fence_dummy`, ...)
 * run the way pacemaker runs it. Pure: it builds the `ProcessSpec` and checks options; the
 * result mapping is `agentAttemptResult` (fence-agent.ts).
 *
 * Protocol (checked against Debian's fence-agents 4.12, `/usr/share/fence/fencing.py`):
 * - No arguments: fencing.py reads its options from stdin only when `argv` is empty
 *   (`process_input`). Stdin holds `key=value` lines, each ended by `\n`: `action=<action>`, then
 *   for an action on a node `plug=<plug>` and `nodename=<node name>`, then the device's options
 *   in their configured order. For `metadata` only the action is sent (metadata describes the
 *   program, not a device's configuration).
 * - `plug`, not `port`: fencing.py maps both to its `--plug` option (`port` is the option's
 *   internal name, `plug` its long name; the agents' metadata lists `port` as deprecated and
 *   `plug` as obsoleting it). Sending both is accepted (the later line wins) but pointless: we
 *   send `plug` only. An agent without plugs (`fence_dummy`) logs
 *   "Parse error: Ignoring unknown option 'plug=...'" on stderr and goes on.
 * - `nodename` is what pacemaker sends too; fencing.py drops it silently when the agent does not
 *   use it (fence_scsi and fence_mpath do: the key of the node).
 * - fencing.py reads each line with `strip()` (leading and trailing whitespace is lost), skips
 *   lines starting with `#`, splits at the first `=`, and removes one pair of double quotes
 *   around a value. An option value holding a line break would start a new option (injection:
 *   `ip=1.2.3.4\nport=other`). `execOptionProblems` refuses all of these at configuration time.
 * - Exit codes: 0 success; `status` 0 on, 2 off, 1 error (could not tell); others failures
 *   (fencing.py: 1 generic, 2 bad arguments, 3 login denied, 4 connection lost, 5 timed out,
 *   6/7 timed out waiting for on/off, 8 no status of the plug).
 */
import { assert } from '../lib/assert.js';
import { PROCESS_STDIN_BYTES_MAX } from '../constants.js';
import type { ProcessSpec } from '../runtime/process-runner.js';
import type { ExecDevice, FenceAction } from './fence-topology.js';
import type { AgentTarget } from './fence-agent.js';

/**
 * Option keys cohort sets itself (compared case-insensitively, `-` as `_`): the action and the
 * target (`option` is the action's old name in pre-fencing.py agents such as fence_virt).
 * `execOptionProblems` refuses them in any case and with `-` for `_`; `execStdinText` asserts only
 * the exact keys away (what fencing.py would take), so a configuration checked by a more lenient
 * validator never stops a fence.
 */
export const EXEC_RESERVED_OPTIONS: readonly string[] = ['action', 'option', 'plug', 'port', 'nodename'];

/** Bytes of stdin the device's options may take: the rest is room for the action, plug and node name lines. */
export const EXEC_OPTIONS_STDIN_BYTES_MAX: number = PROCESS_STDIN_BYTES_MAX - 4096;

/** An option key: no `=`, no `#` first (a comment line), no whitespace (src/node/fencing-config.ts accepts the same). */
const KEY = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$/;
/** Line breaks: `\n` ends a line for every agent, `\r` for some readers. */
const LINE_BREAK = /[\r\n]/;
/** Other control characters (C0, DEL, C1) and the Unicode line and paragraph separators. */
// eslint-disable-next-line no-control-regex -- control characters are what it matches
const CONTROL = /[\u0000-\u0009\u000b\u000c\u000e-\u001f\u007f-\u009f\u2028\u2029]/;

/**
 * Why `value` cannot be sent as a `key=value` line, or null when it can. Used for option values,
 * plugs and node names.
 */
export function execValueProblem(value: string): string | null {
  if (LINE_BREAK.test(value)) return 'holds a line break: it would start another option line (option injection)';
  if (CONTROL.test(value)) return 'holds a control character';
  if (/^\s|\s$/u.test(value)) return 'starts or ends with whitespace, which fence agents strip';
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) {
    return 'is enclosed in double quotes, which fence agents remove';
  }
  return null;
}

/** The device options' problems, one message each (empty: they can be sent). */
export function execOptionProblems(options: ReadonlyMap<string, string>): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const [key, value] of options) {
    const normal = key.toLowerCase().replace(/-/g, '_');
    if (!KEY.test(key)) {
      out.push(`option "${key}": a key is 1-64 letters, digits, "_" or "-", not starting with "-"`);
    } else if (EXEC_RESERVED_OPTIONS.includes(normal)) {
      out.push(
        `option "${key}" is set by cohort for each run (the action and the target); map nodes to plugs with hosts`,
      );
    } else if (seen.has(normal)) {
      out.push(`option "${key}" is given twice (fence agents treat "-" and "_" alike)`);
    }
    seen.add(normal);
    const problem = execValueProblem(value);
    if (problem !== null) out.push(`option "${key}": the value ${problem}`);
  }
  const bytes = new TextEncoder().encode(optionLines(options)).length;
  if (bytes > EXEC_OPTIONS_STDIN_BYTES_MAX) {
    out.push(`the options take ${bytes} bytes; at most ${EXEC_OPTIONS_STDIN_BYTES_MAX}`);
  }
  return out;
}

function optionLines(options: ReadonlyMap<string, string>): string {
  let text = '';
  for (const [key, value] of options) text += `${key}=${value}\n`;
  return text;
}

/**
 * The stdin text of one run (see the file comment). `target` is required for the target actions
 * and ignored for the others. Asserts no line holds a line break (config validation refuses
 * them: a failure here is a programmer error, never an injected option).
 */
export function execStdinText(
  action: FenceAction,
  target: AgentTarget | null,
  options: ReadonlyMap<string, string>,
): string {
  let text = `action=${action}\n`;
  if (action === 'metadata') return text;
  if (action === 'off' || action === 'on' || action === 'reboot' || action === 'status') {
    assert(target !== null, `fence action ${action} needs a target`);
    assert(!LINE_BREAK.test(target.plug) && !LINE_BREAK.test(target.name), 'a plug or node name holds a line break');
    text += `plug=${target.plug}\nnodename=${target.name}\n`;
  }
  for (const [key, value] of options) {
    // Exactly the keys fencing.py would take for the action or the target (it compares case-sensitively).
    assert(KEY.test(key) && !EXEC_RESERVED_OPTIONS.includes(key), `invalid fence option key ${JSON.stringify(key)}`);
    assert(!LINE_BREAK.test(value), `fence option ${key} holds a line break`);
  }
  return text + optionLines(options);
}

/** `execStdinText` as UTF-8 bytes. */
export function execStdin(
  action: FenceAction,
  target: AgentTarget | null,
  options: ReadonlyMap<string, string>,
): Uint8Array {
  return new TextEncoder().encode(execStdinText(action, target, options));
}

/** The run of `device`'s program for `action` on `target`: no arguments, the options on stdin, the device's timeout. */
export function execProcessSpec(device: ExecDevice, action: FenceAction, target: AgentTarget | null): ProcessSpec {
  return {
    program: device.program,
    args: [],
    stdin: execStdin(action, target, device.options),
    timeoutMs: device.timeoutMs,
  };
}

/**
 * The parameter names an agent's `metadata` declares (`<parameter name="...">` inside
 * `<parameters>`), in document order, without duplicates. A small scanner, not an XML parser:
 * it skips comments, CDATA sections and processing instructions, reads the `name` attribute
 * (double or single quotes, the five predefined entities decoded) of every `parameter` element,
 * and ignores anything else. Malformed input gives the names found before the damage.
 */
export function metadataParameterNames(xml: string): string[] {
  const names: string[] = [];
  let at = 0;
  while (at < xml.length) {
    const lt = xml.indexOf('<', at);
    if (lt < 0) break;
    if (xml.startsWith('<!--', lt)) {
      const end = xml.indexOf('-->', lt + 4);
      if (end < 0) break;
      at = end + 3;
      continue;
    }
    if (xml.startsWith('<![CDATA[', lt)) {
      const end = xml.indexOf(']]>', lt + 9);
      if (end < 0) break;
      at = end + 3;
      continue;
    }
    const tag = readTag(xml, lt);
    if (tag === null) break;
    at = tag.end;
    if (tag.name === 'parameter') {
      const name = tag.attributes.get('name');
      if (name !== undefined && name !== '' && !names.includes(name)) names.push(name);
    }
  }
  return names;
}

interface Tag {
  readonly name: string;
  readonly attributes: ReadonlyMap<string, string>;
  /** Index just past the tag's `>`. */
  readonly end: number;
}

/** Reads the tag starting at `xml[lt] === '<'`; null when it is not closed. Closing tags and `<?..?>`, `<!..>` have no attributes. */
function readTag(xml: string, lt: number): Tag | null {
  const attributes = new Map<string, string>();
  let i = lt + 1;
  const isSpace = (c: string | undefined): boolean => c === ' ' || c === '\t' || c === '\n' || c === '\r';
  const nameStart = i;
  while (i < xml.length && !isSpace(xml[i]) && xml[i] !== '>' && xml[i] !== '/') i++;
  const name = xml.slice(nameStart, i);
  if (name === '' && xml[i] === '/') {
    // A closing tag.
    const gt = xml.indexOf('>', i);
    return gt < 0 ? null : { name: '', attributes, end: gt + 1 };
  }
  if (name.startsWith('?') || name.startsWith('!')) {
    const gt = xml.indexOf('>', i);
    return gt < 0 ? null : { name: '', attributes, end: gt + 1 };
  }
  for (;;) {
    while (isSpace(xml[i])) i++;
    if (i >= xml.length) return null;
    if (xml[i] === '>') return { name, attributes, end: i + 1 };
    if (xml[i] === '/') {
      i++;
      continue;
    }
    const keyStart = i;
    while (i < xml.length && !isSpace(xml[i]) && xml[i] !== '=' && xml[i] !== '>' && xml[i] !== '/') i++;
    const key = xml.slice(keyStart, i);
    while (isSpace(xml[i])) i++;
    if (xml[i] !== '=') {
      if (key === '') return null;
      attributes.set(key, '');
      continue;
    }
    i++;
    while (isSpace(xml[i])) i++;
    const quote = xml[i];
    if (quote !== '"' && quote !== "'") return null;
    const close = xml.indexOf(quote, i + 1);
    if (close < 0) return null;
    attributes.set(key, decodeEntities(xml.slice(i + 1, close)));
    i = close + 1;
  }
}

function decodeEntities(text: string): string {
  return text
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, '&');
}

/**
 * The device options an agent's metadata does not declare (fencing.py ignores them with a
 * warning: a typo in the configuration would go unnoticed). Compared as fencing.py does, `-` as `_`.
 */
export function unknownExecOptions(options: ReadonlyMap<string, string>, parameterNames: readonly string[]): string[] {
  const known = new Set(parameterNames.map((n) => n.replace(/-/g, '_')));
  const out: string[] = [];
  for (const key of options.keys()) if (!known.has(key.replace(/-/g, '_'))) out.push(key);
  return out;
}

/** One line of a `list` answer: `plug,alias` (fencing.py's default separator). */
export interface ListedPlug {
  readonly plug: string;
  readonly alias: string;
}

/** The plugs of a `list` answer: one per non-blank line, split at the first `separator`. */
export function parseListOutput(stdout: string, separator = ','): ListedPlug[] {
  const out: ListedPlug[] = [];
  for (const raw of stdout.split('\n')) {
    const line = raw.trim();
    if (line === '') continue;
    const cut = line.indexOf(separator);
    out.push(
      cut < 0 ? { plug: line, alias: '' } : { plug: line.slice(0, cut), alias: line.slice(cut + separator.length) },
    );
  }
  return out;
}
