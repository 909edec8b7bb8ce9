// The simulator's scripted fence agents run through the same pure code as real ones
// (agentProcessSpec, agentAttemptResult) on a SimProcessRunner: the fence_dummy-like exec agent
// keeps plug states (off then status says off), reports power changes with the run's delay,
// fails, hangs (timed out by the runner) or crashes as its chooser says, and the PRNG's choices
// repeat for a seed; the process agent kills the simulated node its pid file names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId } from '../lib/ids.js';
import { Prng } from '../lib/prng.js';
import type { ExecDevice, FenceAction, ProcessDevice } from '../fencing/fence-topology.js';
import {
  agentAttemptResult,
  agentProcessSpec,
  type AgentRequest,
  type AgentTarget,
  type AttemptResult,
} from '../fencing/fence-agent.js';
import { metadataParameterNames } from '../fencing/exec-agent.js';
import { PROCESS_AGENT_SHELL } from '../fencing/process-agent.js';
import { msToUs, Scheduler } from './scheduler.js';
import { SimProcessRunner, type SimAgent } from './process-runner.js';
import {
  nodeOfPidFileName,
  outcomeByRates,
  parseAgentStdin,
  simExecAgent,
  simProcessAgent,
  type SimAgentOutcome,
} from './fence-agents.js';

const PROGRAM = '/usr/sbin/fence_sim';
const TARGET: AgentTarget = { node: nodeId(2), name: 'node2', plug: 'outlet-2' };

interface Harness {
  readonly runner: SimProcessRunner;
  readonly attempt: (request: AgentRequest) => AttemptResult;
  /** Runs the scheduler for `ms` of virtual time. */
  readonly drain: (ms: number) => void;
}

function harness(seed = 7): Harness {
  const scheduler = new Scheduler();
  const runner = new SimProcessRunner({
    schedule: (ms, fn) => scheduler.after(msToUs(ms), fn),
    nowMs: () => scheduler.nowUs / 1000,
    prng: new Prng(seed),
  });
  const attempt = (request: AgentRequest): AttemptResult => {
    const spec = agentProcessSpec(request);
    assert.ok(spec !== null);
    const box: { result: AttemptResult | null } = { result: null };
    runner.spawn(spec, (raw) => {
      box.result = agentAttemptResult(request, raw);
    });
    scheduler.runUntil(scheduler.nowUs + msToUs(120_000), () => box.result !== null);
    assert.ok(box.result !== null, 'the run ended');
    return box.result;
  };
  const drain = (ms: number): void => {
    scheduler.runUntil(scheduler.nowUs + msToUs(ms));
  };
  return { runner, attempt, drain };
}

function execDevice(timeoutMs = 10_000): ExecDevice {
  return {
    name: 'sim',
    agent: 'exec',
    program: PROGRAM,
    action: 'off',
    options: new Map([['ip', '192.0.2.9']]),
    unfence: false,
    timeoutMs,
    retries: 0,
  };
}

const targetOf = (action: FenceAction): AgentTarget | null =>
  action === 'off' || action === 'on' || action === 'reboot' || action === 'status' ? TARGET : null;

test('parseAgentStdin reads key=value lines as fencing.py does', () => {
  assert.deepEqual(
    [...parseAgentStdin('action=off\n# comment\n  plug = x\n\npassword="p=w"\nflag\naction=on\n')],
    [
      ['action', 'on'],
      ['plug ', ' x'],
      ['password', 'p=w'],
      ['flag', ''],
    ],
  );
});

test('sim exec agent: plug states, power changes with the run delay, list and metadata', () => {
  const { runner, attempt, drain } = harness();
  const powered: [string, string, number][] = [];
  runner.register(
    PROGRAM,
    simExecAgent({
      power: (plug, action, afterMs) => {
        powered.push([plug, action, afterMs]);
      },
    }),
  );
  const device = execDevice();
  const run = (action: FenceAction): AttemptResult => attempt({ device, action, target: targetOf(action) });
  assert.deepEqual([run('status').status, run('status').excerpt], ['on', 'Status: ON']);
  const off = run('off');
  assert.deepEqual([off.result, off.excerpt], ['ok', 'Success: Powered OFF']);
  assert.equal(run('status').status, 'off');
  assert.equal(run('off').excerpt, 'Success: Already OFF');
  assert.equal(run('on').excerpt, 'Success: Powered ON');
  assert.equal(run('reboot').excerpt, 'Success: Rebooted');
  assert.equal(run('status').status, 'on');
  assert.equal(run('monitor').result, 'ok');
  assert.deepEqual(
    powered.map(([plug, action]) => [plug, action]),
    [
      ['outlet-2', 'off'],
      ['outlet-2', 'on'],
      ['outlet-2', 'reboot'],
    ],
  );
  for (const [, , afterMs] of powered) assert.ok(afterMs >= 20 && afterMs <= 200);

  const spec = agentProcessSpec({ device, action: 'list', target: null });
  assert.ok(spec !== null);
  let stdout = '';
  runner.spawn(spec, (raw) => {
    stdout = new TextDecoder().decode(raw.output.stdout);
  });
  const meta = agentProcessSpec({ device, action: 'metadata', target: null });
  assert.ok(meta !== null);
  let xml = '';
  runner.spawn(meta, (raw) => {
    xml = new TextDecoder().decode(raw.output.stdout);
  });
  drain(1000);
  assert.equal(stdout, 'outlet-2,outlet-2\n');
  assert.deepEqual(metadataParameterNames(xml), ['action', 'plug', 'port']);
});

test('sim exec agent: scripted fail, hang (timed out) and crash; PRNG choices repeat for a seed', () => {
  const script: SimAgentOutcome[] = ['fail', 'hang', 'crash', 'ok'];
  const { runner, attempt } = harness();
  runner.register(PROGRAM, simExecAgent({ choose: () => script.shift() ?? 'ok' }));
  const device = execDevice(500);
  const request: AgentRequest = { device, action: 'off', target: TARGET };
  const failed = attempt(request);
  assert.deepEqual([failed.result, failed.exitCode], ['failed', 1]);
  assert.match(failed.excerpt, /^ERROR: Failed: Unable to connect/);
  const hung = attempt(request);
  assert.equal(hung.result, 'timed-out');
  assert.match(
    hung.excerpt,
    /^PROCESS_TIMED_OUT: .*ran past its 500 ms timeout \(ended by SIGTERM\)\nDEBUG: off outlet-2/,
  );
  assert.equal(attempt(request).result, 'error');
  assert.equal(attempt(request).result, 'ok');

  const outcomes = (seed: number): string[] => {
    const h = harness(seed);
    h.runner.register(PROGRAM, simExecAgent({ rates: { fail: 0.3, hang: 0.1, crash: 0.1 } }));
    return Array.from({ length: 30 }, () => h.attempt({ device, action: 'status', target: TARGET }).result);
  };
  assert.deepEqual(outcomes(11), outcomes(11));
  const mix = new Set(outcomes(11));
  assert.ok(mix.has('ok') && mix.has('failed'), [...mix].join());
  const prng = new Prng(1);
  const chooser = outcomeByRates({ fail: 1 });
  assert.equal(chooser({ action: 'off', target: null, options: new Map() }, prng), 'fail');
});

test('sim process agent: kills the node its pid file names; already gone is success; unknown file fails', () => {
  const { runner, attempt } = harness();
  const alive = new Set(['node2', 'node3']);
  const kills: [string, number][] = [];
  const agent: SimAgent = simProcessAgent({
    alive: (node) => alive.has(node),
    kill: (node, afterMs) => {
      kills.push([node, afterMs]);
      alive.delete(node);
    },
    nodeOfPidFile: (path) => (path.startsWith('/run/cohort/') ? nodeOfPidFileName(path) : null),
  });
  runner.register(PROCESS_AGENT_SHELL, agent);
  const device: ProcessDevice = {
    name: 'pids',
    agent: 'process',
    pidFiles: new Map([
      ['node2', '/run/cohort/node2.pid'],
      ['node9', '/elsewhere/node9.pid'],
    ]),
    timeoutMs: 5000,
    retries: 0,
  };
  const status = attempt({ device, action: 'status', target: TARGET });
  assert.deepEqual([status.result, status.status], ['ok', 'on']);
  const off = attempt({ device, action: 'off', target: TARGET });
  assert.deepEqual([off.result, off.excerpt], ['ok', 'Success: killed process of node2']);
  assert.deepEqual(
    kills.map(([node]) => node),
    ['node2'],
  );
  assert.deepEqual([attempt({ device, action: 'status', target: TARGET }).status], ['off']);
  const again = attempt({ device, action: 'reboot', target: TARGET });
  assert.deepEqual([again.result, again.excerpt], ['ok', 'Success: process of node2 is already gone']);
  assert.equal(kills.length, 1);
  const unknown = attempt({ device, action: 'off', target: { ...TARGET, name: 'node9' } });
  assert.deepEqual([unknown.result, unknown.excerpt], ['failed', 'cannot read pid file /elsewhere/node9.pid']);
  const none = attempt({ device, action: 'off', target: { ...TARGET, name: 'node4' } });
  assert.deepEqual([none.result, none.excerpt], ['failed', 'no pid file is configured for this node']);
  assert.equal(attempt({ device, action: 'on', target: TARGET }).result, 'ok');
  assert.equal(nodeOfPidFileName('/run/x/.pid'), null);
  assert.equal(nodeOfPidFileName('/run/x/n1.pid'), 'n1');
});
