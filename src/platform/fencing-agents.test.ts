// The exec and process fence agents against real programs through ChildProcessRunner:
// - Debian's /usr/sbin/fence_dummy (fence-agents) for every action, its state kept in a status
//   file of our own (never the shared /tmp/fence_dummy.status): off then status says off, on then
//   status says on, reboot, monitor, list (fence_dummy has no plugs: it refuses list, exit 1) and
//   metadata (its parameters scanned);
// - fake agents: one that hangs (timed-out), one that exits 1 (failed) after echoing its stdin;
// - the process agent's /bin/sh script: a `sleep 60` child is killed (also one left a zombie by
//   its parent), an already-dead pid is success, a garbage or missing pid file is a failure
//   that says why.
// A missing fence_dummy FAILS these tests (CI installs it with scripts/install-test-deps.sh).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeId } from '../lib/ids.js';
import type { ProcessResult } from '../runtime/process-runner.js';
import type { ExecDevice, FenceAction, ProcessDevice } from '../fencing/fence-topology.js';
import {
  agentAttemptResult,
  agentProcessSpec,
  type AgentRequest,
  type AgentTarget,
  type AttemptResult,
} from '../fencing/fence-agent.js';
import { metadataParameterNames, unknownExecOptions } from '../fencing/exec-agent.js';
import { ChildProcessRunner } from './child-process-runner.js';

const FENCE_DUMMY = '/usr/sbin/fence_dummy';
const SHARED_STATUS = '/tmp/fence_dummy.status';
const TARGET: AgentTarget = { node: nodeId(2), name: 'node2', plug: 'node2' };

const runner = new ChildProcessRunner();
const dir = mkdtempSync(join(tmpdir(), 'cohort-fence-agents-'));
test.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function requireFenceDummy(): void {
  assert.ok(
    existsSync(FENCE_DUMMY),
    `${FENCE_DUMMY} is missing: run scripts/install-test-deps.sh (it installs Debian's fence-agents package)`,
  );
}

/** Runs one attempt; also returns the raw result (metadata needs all of stdout). */
function attempt(request: AgentRequest): Promise<{ attempt: AttemptResult; raw: ProcessResult }> {
  const spec = agentProcessSpec(request);
  assert.ok(spec !== null, 'the agent runs a program');
  return new Promise((resolve) => {
    runner.spawn(spec, (raw) => {
      resolve({ attempt: agentAttemptResult(request, raw), raw });
    });
  });
}

function execDevice(program: string, options: [string, string][], timeoutMs = 30_000): ExecDevice {
  return {
    name: 'dev',
    agent: 'exec',
    program,
    action: 'off',
    options: new Map(options),
    unfence: false,
    timeoutMs,
    retries: 0,
  };
}

function sharedStatusStamp(): string {
  return existsSync(SHARED_STATUS) ? `${statSync(SHARED_STATUS).mtimeMs}` : 'absent';
}

test('fence_dummy: status, off, on, reboot, monitor, list and metadata through the exec agent', async () => {
  requireFenceDummy();
  const before = sharedStatusStamp();
  const statusFile = join(dir, 'dummy.status');
  const device = execDevice(FENCE_DUMMY, [['status_file', statusFile]]);
  const run = async (action: FenceAction): Promise<AttemptResult> => {
    const target = action === 'off' || action === 'on' || action === 'reboot' || action === 'status' ? TARGET : null;
    return (await attempt({ device, action, target })).attempt;
  };
  const expectOk = async (action: FenceAction, excerpt: RegExp, status?: 'on' | 'off'): Promise<void> => {
    const r = await run(action);
    assert.equal(r.result, 'ok', `${action}: ${r.excerpt}`);
    assert.equal(r.exitCode, action === 'status' && status === 'off' ? 2 : 0, action);
    assert.equal(r.status, status, action);
    assert.match(r.excerpt, excerpt, action);
    assert.ok(r.durationMs >= 0);
  };

  // No status file yet: fence_dummy reports off (exit 2).
  await expectOk('status', /^Status: OFF/, 'off');
  await expectOk('on', /^Success: Powered ON/);
  assert.equal(readFileSync(statusFile, 'utf8'), 'on');
  await expectOk('status', /^Status: ON/, 'on');
  await expectOk('off', /^Success: Powered OFF/);
  assert.equal(readFileSync(statusFile, 'utf8'), 'off');
  await expectOk('status', /^Status: OFF/, 'off');
  await expectOk('off', /^Success: Already OFF/);
  await expectOk('reboot', /^Success: Rebooted/);
  await expectOk('status', /^Status: ON/, 'on');
  await expectOk('monitor', /^exit code 0$/);

  // fence_dummy declares no plugs, so it ignores the plug line (a warning) and refuses `list`.
  const list = await run('list');
  assert.equal(list.result, 'failed');
  assert.equal(list.exitCode, 1);
  assert.match(list.excerpt, /Unrecognised action 'list'/);

  const meta = await attempt({ device, action: 'metadata', target: null });
  assert.equal(meta.attempt.result, 'ok');
  assert.equal(meta.raw.kind, 'exited');
  const names = metadataParameterNames(new TextDecoder().decode(meta.raw.output.stdout));
  for (const name of ['action', 'status_file', 'type', 'random_sleep_range', 'delay', 'verbose']) {
    assert.ok(names.includes(name), `metadata declares ${name}: ${names.join(' ')}`);
  }
  assert.ok(!names.includes('plug') && !names.includes('port'), 'fence_dummy has no plug');
  assert.deepEqual(unknownExecOptions(device.options, names), []);
  assert.deepEqual(unknownExecOptions(new Map([['status-fiel', 'x']]), names), ['status-fiel']);

  assert.equal(sharedStatusStamp(), before, `${SHARED_STATUS} was not touched`);
});

test('fake agents: one that hangs is timed-out, one that exits 1 is failed and got the stdin lines', async () => {
  const hang = join(dir, 'fence_hang');
  writeFileSync(hang, '#!/bin/sh\nexec sleep 1000\n');
  chmodSync(hang, 0o755);
  const hung = await attempt({ device: execDevice(hang, [], 300), action: 'off', target: TARGET });
  assert.equal(hung.attempt.result, 'timed-out');
  assert.equal(hung.attempt.exitCode, undefined);
  assert.match(
    hung.attempt.excerpt,
    /^PROCESS_TIMED_OUT: .*fence_hang ran past its 300 ms timeout \(ended by SIGTERM\)/,
  );
  assert.ok(hung.attempt.durationMs >= 290, `${hung.attempt.durationMs} ms`); // timers run on the loop's cached clock

  const fail = join(dir, 'fence_fail');
  writeFileSync(
    fail,
    '#!/bin/sh\necho "ERROR: Failed: cannot reach device" >&2\ncat >&2\necho "some stdout"\nexit 1\n',
  );
  chmodSync(fail, 0o755);
  const failed = await attempt({
    device: execDevice(fail, [['ip', '192.0.2.1']]),
    action: 'reboot',
    target: { ...TARGET, plug: 'outlet 7' },
  });
  assert.equal(failed.attempt.result, 'failed');
  assert.equal(failed.attempt.exitCode, 1);
  assert.equal(
    failed.attempt.excerpt,
    'ERROR: Failed: cannot reach device\naction=reboot\nplug=outlet 7\nnodename=node2\nip=192.0.2.1\nsome stdout',
  );

  const missing = await attempt({ device: execDevice(join(dir, 'fence_none'), []), action: 'off', target: TARGET });
  assert.equal(missing.attempt.result, 'error');
  assert.match(missing.attempt.excerpt, /^PROCESS_NOT_FOUND: /);
});

function processDevice(pidFile: string): ProcessDevice {
  return { name: 'pids', agent: 'process', pidFiles: new Map([['node2', pidFile]]), timeoutMs: 5000, retries: 0 };
}

test('process agent: kills a sleep 60 child by its pid file; status says on, then off', async () => {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  const exited = new Promise<NodeJS.Signals | null>((resolve) =>
    child.on('exit', (_code, signal) => {
      resolve(signal);
    }),
  );
  try {
    assert.ok(child.pid !== undefined);
    const pidFile = join(dir, 'node2.pid');
    writeFileSync(pidFile, `${child.pid}\n`);
    const device = processDevice(pidFile);
    const on = await attempt({ device, action: 'status', target: TARGET });
    assert.deepEqual([on.attempt.result, on.attempt.status, on.attempt.excerpt], ['ok', 'on', 'Status: ON']);

    const off = await attempt({ device, action: 'off', target: TARGET });
    assert.equal(off.attempt.result, 'ok', off.attempt.excerpt);
    assert.equal(off.attempt.excerpt, `Success: killed process ${child.pid}`);
    assert.equal(await exited, 'SIGKILL', 'the child died of SIGKILL');

    const gone = await attempt({ device, action: 'status', target: TARGET });
    assert.deepEqual([gone.attempt.result, gone.attempt.status, gone.attempt.exitCode], ['ok', 'off', 2]);
    const again = await attempt({ device, action: 'reboot', target: TARGET });
    assert.equal(again.attempt.result, 'ok');
    assert.equal(again.attempt.excerpt, `Success: process ${child.pid} is already gone`);
    const start = await attempt({ device, action: 'on', target: TARGET });
    assert.equal(start.attempt.result, 'ok');
  } finally {
    child.kill('SIGKILL');
  }
});

test('process agent: a killed process whose parent does not reap it (a zombie) counts as gone', async () => {
  const pidFile = join(dir, 'zombie.pid');
  // The shell starts `sleep 60`, writes its pid, then becomes `sleep 30`, which never reaps it.
  const parent = spawn(
    '/bin/sh',
    ['-c', 'sleep 60 & echo $! > "$1.tmp"; mv "$1.tmp" "$1"; exec sleep 30', 'sh', pidFile],
    {
      stdio: 'ignore',
    },
  );
  try {
    for (let i = 0; i < 200 && !existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 10));
    const pid = readFileSync(pidFile, 'utf8').trim();
    const device = processDevice(pidFile);
    const started = Date.now();
    const off = await attempt({ device, action: 'off', target: TARGET });
    assert.equal(off.attempt.result, 'ok', off.attempt.excerpt);
    assert.equal(off.attempt.excerpt, `Success: killed process ${pid}`);
    assert.ok(Date.now() - started < 3000, 'no wait for a reaper');
    assert.match(readFileSync(`/proc/${pid}/status`, 'utf8'), /^State:\s+Z/m, 'still a zombie');
    const status = await attempt({ device, action: 'status', target: TARGET });
    assert.deepEqual([status.attempt.result, status.attempt.status], ['ok', 'off']);
  } finally {
    parent.kill('SIGKILL');
  }
});

test('process agent: an already-dead pid is success; a garbage or missing pid file is an error that says why', async () => {
  const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim());
  const deadPid = Number.isInteger(pidMax) && pidMax > 0 ? pidMax + 1 : 99_999_999;
  const dead = join(dir, 'dead.pid');
  writeFileSync(dead, `${deadPid}\n`);
  const r = await attempt({ device: processDevice(dead), action: 'off', target: TARGET });
  assert.deepEqual(
    [r.attempt.result, r.attempt.exitCode, r.attempt.excerpt],
    ['ok', 0, `Success: process ${deadPid} is already gone`],
  );

  const garbage = join(dir, 'garbage.pid');
  writeFileSync(garbage, 'not-a-pid\n');
  const g = await attempt({ device: processDevice(garbage), action: 'off', target: TARGET });
  assert.equal(g.attempt.result, 'failed');
  assert.equal(g.attempt.exitCode, 1);
  assert.equal(g.attempt.excerpt, `pid file ${garbage} holds no process id: not-a-pid`);

  const injected = join(dir, 'x; touch pwned');
  const m = await attempt({ device: processDevice(injected), action: 'off', target: TARGET });
  assert.equal(m.attempt.result, 'failed');
  assert.equal(m.attempt.excerpt, `cannot read pid file ${injected}`);
  assert.ok(!existsSync(join(dir, 'pwned')) && !existsSync('pwned'), 'the path is data, not shell code');

  const init = join(dir, 'init.pid');
  writeFileSync(init, '1\n');
  const i = await attempt({ device: processDevice(init), action: 'off', target: TARGET });
  assert.equal(i.attempt.result, 'failed');
  assert.match(i.attempt.excerpt, /names process 1: refused/);

  const self = join(dir, 'self.pid');
  writeFileSync(self, `${process.pid}\n`);
  const s = await attempt({ device: processDevice(self), action: 'off', target: TARGET });
  assert.equal(s.attempt.result, 'failed');
  assert.match(s.attempt.excerpt, /names the fencing node itself: refused/);
});
