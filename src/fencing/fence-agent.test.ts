// The agents' pure parts: the exec agent's stdin (exact bytes) and its option validation
// (line-break injection, reserved keys, what fence agents would strip), the metadata scan, the
// exit-code mapping of every action, the mapping of runner failures, excerpt clipping at UTF-8
// character boundaries, and the process agent's spec (the pid-file path is an argument, never
// part of the script). Real programs run in src/platform/fence-agents-real.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId } from '../lib/ids.js';
import { FENCE_EXCERPT_BYTES_MAX, FENCE_EXCERPT_SCAN_BYTES } from '../constants.js';
import { NO_OUTPUT, ProcessError, type ProcessOutput, type ProcessResult } from '../runtime/process-runner.js';
import {
  FENCE_ACTIONS,
  type ExecDevice,
  type FenceAction,
  type FenceDevice,
  type ProcessDevice,
} from './fence-topology.js';
import {
  agentAttemptResult,
  agentProcessSpec,
  clipUtf8,
  exitOutcome,
  outputExcerpt,
  targetFor,
  type AgentRequest,
  type AgentTarget,
} from './fence-agent.js';
import {
  execOptionProblems,
  execStdinText,
  execValueProblem,
  metadataParameterNames,
  parseListOutput,
  unknownExecOptions,
} from './exec-agent.js';
import { PROCESS_AGENT_NAME, PROCESS_AGENT_SCRIPT, PROCESS_AGENT_SHELL, processAgentSteps } from './process-agent.js';

const TARGET: AgentTarget = { node: nodeId(2), name: 'node2', plug: 'vm-2' };

function execDevice(options: [string, string][] = []): ExecDevice {
  return {
    name: 'ipmi',
    agent: 'exec',
    program: '/usr/sbin/fence_dummy',
    action: 'off',
    options: new Map(options),
    unfence: false,
    timeoutMs: 30_000,
    retries: 2,
  };
}

const PROCESS_DEVICE: ProcessDevice = {
  name: 'pids',
  agent: 'process',
  pidFiles: new Map([['node2', '/run/cohort/node2.pid; rm -rf /']]),
  timeoutMs: 5000,
  retries: 0,
};

function output(stdout: string, stderr = ''): ProcessOutput {
  const e = new TextEncoder();
  return { stdout: e.encode(stdout), stdoutTruncated: false, stderr: e.encode(stderr), stderrTruncated: false };
}

function exited(exitCode: number, out: ProcessOutput = NO_OUTPUT): ProcessResult {
  return { kind: 'exited', exitCode, output: out, durationMs: 12 };
}

const decode = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

test('exec stdin: action, plug and nodename, then the options in order, each line ended by \\n (exact bytes)', () => {
  const device = execDevice([
    ['ip', '10.0.0.9'],
    ['username', 'admin'],
    ['password', 'p=ss w0rd'],
  ]);
  const spec = agentProcessSpec({ device, action: 'off', target: TARGET });
  assert.ok(spec !== null);
  assert.equal(spec.program, '/usr/sbin/fence_dummy');
  assert.deepEqual(spec.args, [], 'fencing.py reads stdin only when argv is empty');
  assert.equal(spec.timeoutMs, 30_000);
  const expected = 'action=off\nplug=vm-2\nnodename=node2\nip=10.0.0.9\nusername=admin\npassword=p=ss w0rd\n';
  assert.deepEqual(spec.stdin, new TextEncoder().encode(expected));
  assert.equal(decode(spec.stdin ?? new Uint8Array()), expected);
});

test('exec stdin: device-level actions send no target; metadata sends only the action', () => {
  const options = new Map([['status_file', '/tmp/x']]);
  assert.equal(execStdinText('monitor', null, options), 'action=monitor\nstatus_file=/tmp/x\n');
  assert.equal(execStdinText('list', TARGET, options), 'action=list\nstatus_file=/tmp/x\n', 'a target is ignored');
  assert.equal(execStdinText('metadata', null, options), 'action=metadata\n');
  for (const action of ['on', 'reboot', 'status'] as const) {
    assert.equal(
      execStdinText(action, TARGET, options),
      `action=${action}\nplug=vm-2\nnodename=node2\nstatus_file=/tmp/x\n`,
    );
  }
  assert.throws(() => execStdinText('off', null, options), /needs a target/);
  assert.throws(() => agentProcessSpec({ device: execDevice(), action: 'reboot', target: null }), /needs a target/);
  assert.throws(() => execStdinText('off', { ...TARGET, plug: 'a\nport=b' }, options), /line break/);
  assert.throws(() => execStdinText('off', TARGET, new Map([['ip', '1.2.3.4\nport=other']])), /line break/);
  assert.throws(() => execStdinText('off', TARGET, new Map([['port', 'x']])), /invalid fence option key/);
});

test('exec options: injection through line breaks, reserved keys and what agents would strip are refused', () => {
  assert.deepEqual(
    execOptionProblems(
      new Map([
        ['ip', '10.0.0.9'],
        ['ssl-insecure', '1'],
        ['empty', ''],
      ]),
    ),
    [],
  );
  const problems = (key: string, value: string): string[] => execOptionProblems(new Map([[key, value]]));
  assert.match(problems('ip', '1.2.3.4\nport=other').join(), /line break.*injection/);
  assert.match(problems('ip', '1.2.3.4\rport=other').join(), /line break/);
  assert.match(problems('ip', 'a\u0000b').join(), /control character/);
  assert.match(problems('ip', 'a\u0085b').join(), /control character/);
  assert.match(problems('ip', 'a\u2028b').join(), /control character/);
  assert.match(problems('password', ' secret').join(), /whitespace/);
  assert.match(problems('password', 'secret\t').join(), /line break|control|whitespace/);
  assert.match(problems('password', '"secret"').join(), /double quotes/);
  assert.deepEqual(problems('password', 'se"cr"et'), []);
  for (const key of ['action', 'ACTION', 'option', 'plug', 'port', 'Port', 'nodename', 'NodeName']) {
    assert.match(problems(key, 'x').join(), /set by cohort/, key);
  }
  assert.match(problems('#comment', 'x').join(), /a key is/);
  assert.match(problems('a=b', 'x').join(), /a key is/);
  assert.match(problems('', 'x').join(), /a key is/);
  assert.match(problems('k'.repeat(65), 'x').join(), /a key is/);
  assert.match(problems('-x', 'x').join(), /a key is/);
  assert.deepEqual(problems('_x', 'x'), []);
  // At run time only the exact keys fencing.py takes are asserted away: a leniently validated
  // configuration never stops a fence.
  assert.equal(
    execStdinText('off', TARGET, new Map([['PORT', 'x']])),
    'action=off\nplug=vm-2\nnodename=node2\nPORT=x\n',
  );
  assert.match(
    execOptionProblems(
      new Map([
        ['power_wait', '1'],
        ['power-wait', '2'],
      ]),
    ).join(),
    /twice/,
  );
  assert.match(problems('big', 'x'.repeat(70_000)).join(), /bytes; at most/);
  assert.equal(execValueProblem('node-1'), null);
  assert.match(execValueProblem('a\nb') ?? '', /line break/);
});

test('metadata scan: parameter names of fence_dummy-like XML; comments, CDATA and other elements skipped', () => {
  const xml = `<?xml version="1.0" ?>
<resource-agent name="fence_x" shortdesc="X &amp; Y" >
<!-- <parameter name="commented"/> -->
<parameters>
\t<parameter name="action" unique="0" required="1">
\t\t<getopt mixed="-o, --action=[action]" />
\t\t<content type="string" default="reboot"  />
\t\t<shortdesc lang="en">Fencing action &lt;parameter name="fake"&gt;</shortdesc>
\t</parameter>
\t<parameter unique='0' name='status_file'>
\t\t<![CDATA[ <parameter name="cdata"/> ]]>
\t</parameter>
\t<parameter name="plug" obsoletes="port"/><parameter name="port" deprecated="1"/>
\t<parameter name="action"/>
</parameters>
<actions><action name="off" /></actions>
</resource-agent>`;
  assert.deepEqual(metadataParameterNames(xml), ['action', 'status_file', 'plug', 'port']);
  assert.deepEqual(metadataParameterNames('<parameters><parameter name="a"/><parameter name="b'), ['a']);
  assert.deepEqual(metadataParameterNames(''), []);
  assert.deepEqual(
    unknownExecOptions(
      new Map([
        ['status-file', 'x'],
        ['stauts_file', 'y'],
      ]),
      ['status_file'],
    ),
    ['stauts_file'],
  );
  assert.deepEqual(parseListOutput('1,web1\n\n2,db,x\nlonely\n'), [
    { plug: '1', alias: 'web1' },
    { plug: '2', alias: 'db,x' },
    { plug: 'lonely', alias: '' },
  ]);
});

test('exit codes: 0 is success for every action; status 0 is on, 2 is off, anything else fails', () => {
  for (const action of FENCE_ACTIONS) {
    const ok = exitOutcome(action, 0);
    assert.equal(ok.result, 'ok', action);
    assert.equal(ok.status, action === 'status' ? 'on' : undefined, action);
    for (const code of [1, 3, 4, 5, 6, 7, 8, 125, 255])
      assert.deepEqual(exitOutcome(action, code), { result: 'failed' }, `${action} ${code}`);
    assert.deepEqual(
      exitOutcome(action, 2),
      action === 'status' ? { result: 'ok', status: 'off' } : { result: 'failed' },
    );
  }
  const request: AgentRequest = { device: execDevice(), action: 'status', target: TARGET };
  assert.deepEqual(
    agentAttemptResult(request, exited(2, output('Status: OFF\n', "WARNING: Ignoring unknown option 'plug=vm-2'\n"))),
    {
      result: 'ok',
      exitCode: 2,
      durationMs: 12,
      excerpt: "Status: OFF\nWARNING: Ignoring unknown option 'plug=vm-2'",
      status: 'off',
    },
  );
  assert.deepEqual(agentAttemptResult(request, exited(0, output('Status: ON\n'))), {
    result: 'ok',
    exitCode: 0,
    durationMs: 12,
    excerpt: 'Status: ON',
    status: 'on',
  });
  assert.deepEqual(
    agentAttemptResult(request, exited(1, output('', 'ERROR: Failed: Unable to obtain correct plug status\n'))),
    {
      result: 'failed',
      exitCode: 1,
      durationMs: 12,
      excerpt: 'ERROR: Failed: Unable to obtain correct plug status',
    },
  );
  const off: AgentRequest = { device: execDevice(), action: 'off', target: TARGET };
  assert.deepEqual(
    agentAttemptResult(off, exited(0, output('Success: Powered OFF\n'))).excerpt,
    'Success: Powered OFF',
  );
  assert.deepEqual(agentAttemptResult(off, exited(7)), {
    result: 'failed',
    exitCode: 7,
    durationMs: 12,
    excerpt: 'exit code 7',
  });
  // A failure puts stderr first; success stdout first.
  assert.equal(agentAttemptResult(off, exited(1, output('out\n', 'err\n'))).excerpt, 'err\nout');
  assert.equal(agentAttemptResult(off, exited(0, output('out\n', 'err\n'))).excerpt, 'out\nerr');
});

test('runner failures: a signal or a start failure is error, a timeout timed-out, each with a telling excerpt', () => {
  const off: AgentRequest = { device: execDevice(), action: 'off', target: TARGET };
  assert.deepEqual(
    agentAttemptResult(off, { kind: 'signalled', signal: 'SIGSEGV', output: output('', 'half a line'), durationMs: 3 }),
    { result: 'error', durationMs: 3, excerpt: 'died of SIGSEGV\nhalf a line' },
  );
  const timedOut = new ProcessError('PROCESS_TIMED_OUT', '/usr/sbin/fence_dummy ran past its 30000 ms timeout');
  assert.deepEqual(
    agentAttemptResult(off, {
      kind: 'failed',
      error: timedOut,
      ending: { kind: 'signal', signal: 'SIGTERM' },
      output: output('connecting\n'),
      durationMs: 30_001,
    }),
    {
      result: 'timed-out',
      durationMs: 30_001,
      excerpt: 'PROCESS_TIMED_OUT: /usr/sbin/fence_dummy ran past its 30000 ms timeout (ended by SIGTERM)\nconnecting',
    },
  );
  for (const code of [
    'PROCESS_NOT_FOUND',
    'PROCESS_NOT_PERMITTED',
    'PROCESS_LIMIT',
    'PROCESS_KILLED',
    'PROCESS_UNAVAILABLE',
  ] as const) {
    const r = agentAttemptResult(off, {
      kind: 'failed',
      error: new ProcessError(code, 'why'),
      ending: null,
      output: NO_OUTPUT,
      durationMs: 0,
    });
    assert.deepEqual(r, { result: 'error', durationMs: 0, excerpt: `${code}: why` });
  }
});

test('watchdog and manual run no program; the process agent passes the pid file as an argument', () => {
  const base = { timeoutMs: 1000, retries: 0 };
  const watchdog: FenceDevice = { name: 'wd', agent: 'watchdog', ...base };
  const manual: FenceDevice = { name: 'm', agent: 'manual', ...base };
  for (const device of [watchdog, manual]) {
    for (const action of FENCE_ACTIONS) {
      const target = action === 'off' || action === 'on' || action === 'reboot' || action === 'status' ? TARGET : null;
      assert.equal(agentProcessSpec({ device, action, target }), null);
    }
    assert.throws(() => agentAttemptResult({ device, action: 'off', target: TARGET }, exited(0)), /runs no program/);
  }
  const actions: FenceAction[] = ['off', 'reboot', 'status', 'on'];
  for (const action of actions) {
    const spec = agentProcessSpec({ device: PROCESS_DEVICE, action, target: TARGET });
    assert.ok(spec !== null);
    assert.equal(spec.program, PROCESS_AGENT_SHELL);
    assert.deepEqual(spec.args, [
      '-c',
      PROCESS_AGENT_SCRIPT,
      PROCESS_AGENT_NAME,
      action,
      '/run/cohort/node2.pid; rm -rf /',
      '40',
    ]);
    assert.equal(spec.stdin, undefined);
    assert.equal(spec.timeoutMs, 5000);
  }
  assert.ok(!PROCESS_AGENT_SCRIPT.includes('node2'), 'the script is fixed');
  const unknown = agentProcessSpec({ device: PROCESS_DEVICE, action: 'off', target: { ...TARGET, name: 'node9' } });
  assert.equal(unknown?.args[4], '', 'a node without a pid file gets an empty path (the script fails)');
  assert.equal(processAgentSteps(100), 1);
  assert.equal(processAgentSteps(5000), 40);
});

test('excerpts: first lines, control characters blanked, clipped to whole UTF-8 characters', () => {
  const enc = new TextEncoder();
  const bytes = (s: string): number => enc.encode(s).length;
  assert.equal(clipUtf8('short'), 'short');
  const exact = 'a'.repeat(FENCE_EXCERPT_BYTES_MAX);
  assert.equal(clipUtf8(exact), exact, 'a text of exactly the limit is kept whole');
  for (const unit of ['é', '€', '😀', 'aé', 'a€', 'ab😀']) {
    const long = unit.repeat(200);
    for (const max of [FENCE_EXCERPT_BYTES_MAX, 10, 11, 12, 13]) {
      const clipped = clipUtf8(long, max);
      assert.ok(bytes(clipped) <= max, `${unit} ${max}`);
      assert.ok(bytes(clipped) > max - 4 - 3, `${unit} ${max}: no more than one character lost besides the mark`);
      assert.ok(clipped.endsWith('…'));
      assert.ok(!clipped.includes('\uFFFD'), 'no character cut in two');
      assert.equal(new TextDecoder().decode(enc.encode(clipped)), clipped, 'valid UTF-8 round trip');
      assert.ok(long.startsWith(clipped.slice(0, -1)));
    }
  }
  // Output bytes cut inside a character (the runner keeps the first 64 KiB) decode without a cut character.
  const euro = enc.encode('€€€');
  const cut: ProcessOutput = { ...NO_OUTPUT, stdout: euro.subarray(0, 7), stdoutTruncated: true };
  assert.equal(outputExcerpt(cut, 'stdout'), '€€');
  assert.equal(
    outputExcerpt({ ...cut, stdoutTruncated: false }, 'stdout'),
    '€€\uFFFD',
    'invalid UTF-8 shows as U+FFFD',
  );
  const scanCut = enc.encode(`${'a'.repeat(FENCE_EXCERPT_SCAN_BYTES - 1)}€`);
  assert.ok(!outputExcerpt({ ...NO_OUTPUT, stdout: scanCut }, 'stdout', undefined, 8192).includes('\uFFFD'));
  assert.equal(outputExcerpt(output('a\u0007b\r\n\r\n  c  \n\u001b[31mred\n'), 'stdout'), 'a b\nc\n[31mred');
  const long = outputExcerpt(output('é'.repeat(500)), 'stdout');
  assert.ok(bytes(long) <= FENCE_EXCERPT_BYTES_MAX && long.endsWith('…'));
  assert.equal(outputExcerpt(output('x'.repeat(10_000)), 'stdout').length, FENCE_EXCERPT_BYTES_MAX - 3 + 1);
});

test('targetFor: the plug from hosts (or the node name); null when the device cannot fence the node', () => {
  assert.deepEqual(targetFor(execDevice(), nodeId(3), 'node3'), { node: nodeId(3), name: 'node3', plug: 'node3' });
  const mapped: ExecDevice = { ...execDevice(), hosts: new Map([['node2', 'vm-2']]) };
  assert.deepEqual(targetFor(mapped, nodeId(2), 'node2'), TARGET);
  assert.equal(targetFor(mapped, nodeId(3), 'node3'), null);
  assert.deepEqual(targetFor(PROCESS_DEVICE, nodeId(2), 'node2'), { node: nodeId(2), name: 'node2', plug: 'node2' });
  assert.equal(targetFor(PROCESS_DEVICE, nodeId(3), 'node3'), null, 'no pid file');
});
