// Proves that ChildProcessRunner (real programs: tiny /bin/sh scripts in a temp directory) and
// SimProcessRunner (scripted agents on virtual time) honour one ProcessRunner contract: stdin is
// delivered, arguments and environment additions arrive, stdout and stderr are captured apart and
// truncated with a flag, exit codes and deaths by signal are reported, a timeout stops a hung
// program with SIGTERM, kill() stops it and escalates to SIGKILL when SIGTERM is ignored, a
// missing or non-executable program is a typed start failure, spawns beyond the running bound
// fail with PROCESS_LIMIT, and every spawn completes exactly once and never synchronously.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Prng } from '../lib/prng.js';
import { PROCESS_OUTPUT_BYTES_MAX } from '../constants.js';
import { ChildProcessRunner } from '../platform/child-process-runner.js';
import { SimProcessRunner, type SimAgent } from '../sim/process-runner.js';
import { msToUs, Scheduler } from '../sim/scheduler.js';
import type { ProcessHandle, ProcessResult, ProcessRunner, ProcessSpec } from './process-runner.js';

/** Programs the suite needs, described once and built per implementation. */
type Behaviour =
  /** Copies stdin to stdout, exits 0. */
  | 'cat'
  /** Prints its arguments and $COHORT_PROBE on stdout, "oops" on stderr, exits 3. */
  | 'report'
  /** Writes more than PROCESS_OUTPUT_BYTES_MAX bytes of 'x' to stdout, exits 0. */
  | 'flood'
  /** Never exits; dies of SIGTERM. */
  | 'hang'
  /** Never exits; ignores SIGTERM. */
  | 'stubborn'
  /** Kills itself with SIGKILL. */
  | 'suicide'
  /** Exists but may not be executed. */
  | 'not-executable';

const RUNNING_MAX = 3;
const FLOOD_BYTES = PROCESS_OUTPUT_BYTES_MAX * 3;

interface Fixture {
  readonly runner: ProcessRunner;
  /** The program path of `behaviour`. */
  program(behaviour: Behaviour): string;
  /** Resolves once a started `stubborn` program has installed its SIGTERM handler. */
  stubbornReady(): Promise<void>;
  /** A path where no program exists. */
  readonly missing: string;
  /** Lets time pass (a virtual event, or a few real milliseconds). */
  step(): Promise<void>;
  dispose(): void;
}

const SCRIPTS: Record<Behaviour, string> = {
  cat: 'exec cat',
  report: 'printf "%s " "$@"; printf "%s" "$COHORT_PROBE"; printf oops >&2; exit 3',
  flood: `head -c ${FLOOD_BYTES} /dev/zero | tr '\\0' x`,
  hang: 'exec sleep 1000',
  // The marker file says the trap is installed: a SIGTERM before that would still kill the shell.
  stubborn: 'trap \'\' TERM; : > "$0.ready"; sleep 1000; sleep 1000',
  suicide: 'kill -KILL $$',
  'not-executable': 'exit 0',
};

const AGENTS: Record<Behaviour, SimAgent> = {
  cat: (r) => ({ kind: 'exit', code: 0, delayMs: 2, stdout: r.stdin }),
  report: (r) => ({
    kind: 'exit',
    code: 3,
    delayMs: 2,
    stdout: `${r.args.map((a) => `${a} `).join('')}${r.env.get('COHORT_PROBE') ?? ''}`,
    stderr: 'oops',
  }),
  flood: () => ({ kind: 'exit', code: 0, delayMs: 5, stdout: 'x'.repeat(FLOOD_BYTES) }),
  hang: () => ({ kind: 'hang' }),
  stubborn: () => ({ kind: 'hang', ignoresTerm: true }),
  suicide: () => ({ kind: 'signal', signal: 'SIGKILL', delayMs: 1 }),
  'not-executable': () => ({ kind: 'start-failure', errno: 'EACCES' }),
};

const FACTORIES: Record<string, () => Fixture> = {
  real: () => {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-proc-'));
    for (const [name, body] of Object.entries(SCRIPTS)) {
      const path = join(dir, name);
      writeFileSync(path, `#!/bin/sh\n${body}\n`);
      chmodSync(path, name === 'not-executable' ? 0o644 : 0o755);
    }
    return {
      runner: new ChildProcessRunner({ runningMax: RUNNING_MAX }),
      program: (b) => join(dir, b),
      stubbornReady: async () => {
        const deadline = Date.now() + 10_000;
        while (!existsSync(join(dir, 'stubborn.ready'))) {
          assert.ok(Date.now() < deadline, 'the stubborn script never got ready');
          await new Promise((resolve) => setTimeout(resolve, 5));
        }
      },
      missing: join(dir, 'no-such-program'),
      step: () => new Promise((resolve) => setTimeout(resolve, 5)),
      dispose: () => {
        rmSync(dir, { recursive: true, force: true });
      },
    };
  },
  sim: () => {
    const scheduler = new Scheduler();
    const runner = new SimProcessRunner({
      schedule: (ms, fn) => scheduler.after(msToUs(ms), fn),
      nowMs: () => scheduler.nowUs / 1000,
      prng: new Prng(9),
      runningMax: RUNNING_MAX,
    });
    for (const [name, agent] of Object.entries(AGENTS)) runner.register(`/agents/${name}`, agent);
    return {
      runner,
      program: (b) => `/agents/${b}`,
      stubbornReady: () => Promise.resolve(),
      missing: '/agents/no-such-program',
      step: () => {
        const next = scheduler.nowUs + msToUs(5);
        scheduler.runUntil(next);
        return Promise.resolve();
      },
      dispose: () => undefined,
    };
  },
};

/** Spawns, waits for the one completion, and checks it was asynchronous and single. */
async function run(
  fx: Fixture,
  spec: ProcessSpec,
  whileRunning?: (handle: ProcessHandle) => Promise<void>,
): Promise<ProcessResult> {
  const results: ProcessResult[] = [];
  let synchronous = true;
  const handle = fx.runner.spawn(spec, (r) => {
    assert.equal(synchronous, false, 'the completion ran inside spawn');
    results.push(r);
  });
  synchronous = false;
  await whileRunning?.(handle);
  const deadline = Date.now() + 20_000;
  while (results.length === 0) {
    assert.ok(Date.now() < deadline, `${spec.program} did not complete`);
    await fx.step();
  }
  handle.kill(); // after the end: no effect, and no second completion
  for (let i = 0; i < 5; i++) await fx.step();
  assert.equal(results.length, 1, 'exactly one completion');
  return results[0] as ProcessResult;
}

const text = (b: Uint8Array): string => new TextDecoder().decode(b);
const spec = (program: string, extra: Partial<ProcessSpec> = {}): ProcessSpec => ({
  program,
  args: [],
  timeoutMs: 10_000,
  ...extra,
});

for (const [kind, make] of Object.entries(FACTORIES)) {
  const suite = (name: string, body: (fx: Fixture) => Promise<void>): void => {
    test(`${kind}: ${name}`, async () => {
      const fx = make();
      try {
        await body(fx);
        assert.equal(fx.runner.running, 0, 'nothing left running');
      } finally {
        fx.dispose();
      }
    });
  };

  suite('stdin is delivered and stdout captured; exit code 0', async (fx) => {
    const stdin = new TextEncoder().encode('action=off\nplug=3\n');
    const r = await run(fx, spec(fx.program('cat'), { stdin }));
    assert.equal(r.kind, 'exited');
    assert.equal(r.exitCode, 0);
    assert.equal(text(r.output.stdout), 'action=off\nplug=3\n');
    assert.equal(r.output.stdoutTruncated, false);
  });

  suite('arguments and environment additions arrive; stderr apart; a non-zero exit code', async (fx) => {
    const r = await run(
      fx,
      spec(fx.program('report'), { args: ['-o', 'status'], env: new Map([['COHORT_PROBE', 'probe-value']]) }),
    );
    assert.equal(r.kind === 'exited' ? r.exitCode : r.kind, 3);
    assert.equal(text(r.output.stdout), '-o status probe-value');
    assert.equal(text(r.output.stderr), 'oops');
  });

  suite('output beyond the bound is dropped and flagged', async (fx) => {
    const r = await run(fx, spec(fx.program('flood')));
    assert.equal(r.kind === 'exited' ? r.exitCode : r.kind, 0, 'the program is not blocked by a full pipe');
    assert.equal(r.output.stdout.length, PROCESS_OUTPUT_BYTES_MAX);
    assert.equal(r.output.stdoutTruncated, true);
    assert.ok(r.output.stdout.every((b) => b === 0x78));
    assert.equal(r.output.stderrTruncated, false);
  });

  suite('a death by a signal the runner did not send is reported as signalled', async (fx) => {
    const r = await run(fx, spec(fx.program('suicide')));
    assert.equal(r.kind === 'signalled' ? r.signal : r.kind, 'SIGKILL');
  });

  suite('a hung program is stopped with SIGTERM at its timeout: PROCESS_TIMED_OUT', async (fx) => {
    const r = await run(fx, spec(fx.program('hang'), { timeoutMs: 150, killGraceMs: 5000 }));
    assert.equal(r.kind, 'failed');
    assert.equal(r.error.code, 'PROCESS_TIMED_OUT');
    assert.deepEqual(r.ending, { kind: 'signal', signal: 'SIGTERM' });
    assert.ok(r.durationMs >= 140 && r.durationMs < 4000, `ended after ${r.durationMs} ms`);
  });

  suite('kill() escalates to SIGKILL after the grace when SIGTERM is ignored: PROCESS_KILLED', async (fx) => {
    const r = await run(fx, spec(fx.program('stubborn'), { killGraceMs: 200 }), async (handle) => {
      await fx.stubbornReady();
      handle.kill();
      handle.kill(); // idempotent
    });
    assert.equal(r.kind, 'failed');
    assert.equal(r.error.code, 'PROCESS_KILLED');
    assert.deepEqual(r.ending, { kind: 'signal', signal: 'SIGKILL' });
    assert.ok(r.durationMs >= 190, `SIGKILL came after the grace (${r.durationMs} ms)`);
  });

  suite('a missing program is PROCESS_NOT_FOUND; a non-executable one PROCESS_NOT_PERMITTED', async (fx) => {
    const missing = await run(fx, spec(fx.missing));
    assert.equal(missing.kind === 'failed' ? missing.error.code : missing.kind, 'PROCESS_NOT_FOUND');
    assert.equal(missing.kind === 'failed' ? missing.ending : 'ran', null);
    const denied = await run(fx, spec(fx.program('not-executable')));
    assert.equal(denied.kind === 'failed' ? denied.error.code : denied.kind, 'PROCESS_NOT_PERMITTED');
  });

  suite('spawns beyond the running bound fail with PROCESS_LIMIT; the running ones still complete', async (fx) => {
    const results: ProcessResult[] = [];
    const handles = Array.from({ length: RUNNING_MAX }, () =>
      fx.runner.spawn(spec(fx.program('hang'), { killGraceMs: 1000 }), (r) => results.push(r)),
    );
    assert.equal(fx.runner.running, RUNNING_MAX);
    const over = await run(fx, spec(fx.program('cat')));
    assert.equal(over.kind === 'failed' ? over.error.code : over.kind, 'PROCESS_LIMIT');
    for (const h of handles) h.kill();
    const deadline = Date.now() + 10_000;
    while (results.length < RUNNING_MAX) {
      assert.ok(Date.now() < deadline, 'killed programs complete');
      await fx.step();
    }
    assert.deepEqual(
      results.map((r) => (r.kind === 'failed' ? r.error.code : r.kind)),
      Array<string>(RUNNING_MAX).fill('PROCESS_KILLED'),
    );
  });
}
