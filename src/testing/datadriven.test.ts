// Proves the scenario-script runner reads every form of the etcd-style format, runs commands in
// order against one handler, fails a wrong expectation with file:line and a readable diff,
// rewrites expected blocks in place on request (round-tripping blank-line output), and refuses
// malformed scripts and bad arguments with errors that point at the offending line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ScriptError,
  boolArg,
  checkScript,
  expectArgs,
  intArg,
  intsArg,
  lineDiff,
  parseScript,
  runScripts,
  stringArg,
  stringsArg,
  type ScriptCommand,
  type ScriptHandler,
} from './datadriven.js';

function echo(cmd: ScriptCommand): string {
  const out = [`name=${cmd.name}`];
  if (cmd.positional.length > 0) out.push(`positional=${cmd.positional.join(',')}`);
  for (const [k, v] of cmd.args) out.push(`arg ${k}=${v.join('|')}`);
  if (cmd.input !== '') out.push(`input=${cmd.input.split('\n').join('/')}`);
  return out.join('\n');
}

function statefulHandler(): ScriptHandler {
  let counter = 0;
  return (cmd) => {
    switch (cmd.name) {
      case 'echo':
        return echo(cmd);
      case 'incr':
        expectArgs(cmd, ['by']);
        counter += intArg(cmd, 'by');
        return `counter=${counter}`;
      case 'lines': {
        const n = intArg(cmd, 'n');
        return Array.from({ length: n }, (_, i) => `line ${i + 1}`).join('\n\n');
      }
      case 'quiet':
        return '';
      default:
        throw new Error(`unknown command ${cmd.name}`);
    }
  };
}

// The real files under testdata/datadriven, through the same entry point the quorum suite uses.
runScripts('testdata/datadriven', statefulHandler(), { handlerFactory: statefulHandler });

test('parseScript reads commands, arguments, input and both output forms', () => {
  const cases = parseScript(
    '# c\n\ncmd a k=v l=(x, y) e=()\nin1\nin2\n----\nout\n\ntwo\n----\n----\nx\n\ny\n----\n----\n',
    'f.txt',
  );
  assert.equal(cases.length, 2);
  const [a, b] = cases as [NonNullable<(typeof cases)[0]>, NonNullable<(typeof cases)[1]>];
  assert.equal(a.cmd.name, 'cmd');
  assert.equal(a.cmd.pos, 'f.txt:3');
  assert.deepEqual(a.cmd.positional, ['a']);
  assert.deepEqual(
    [...a.cmd.args],
    [
      ['k', ['v']],
      ['l', ['x', 'y']],
      ['e', []],
    ],
  );
  assert.equal(a.cmd.input, 'in1\nin2');
  assert.equal(a.expected, 'out\n');
  assert.equal(b.cmd.pos, 'f.txt:9');
  assert.equal(b.expected, 'x\n\ny\n');
});

test('a wrong expectation fails with file:line, the command and a diff', () => {
  const text = 'incr by=1\n----\ncounter=1\n\nincr by=1\n----\ncounter=3\nextra\n';
  const r = checkScript(text, 'testdata/x.txt', statefulHandler());
  assert.equal(r.ok, false);
  assert.ok(!r.ok);
  assert.equal(r.pos, 'testdata/x.txt:5');
  assert.match(r.message, /^testdata\/x\.txt:5: output of `incr by=1` differs/);
  assert.match(r.message, /-counter=3\n-extra\n\+counter=2\n/);
  assert.match(r.message, /COHORT_REWRITE=1/);
});

/** Runs `runScripts` on `dir` in a child node process, as node:test would in CI. */
function runChild(dir: string, env: Record<string, string> = {}): { status: number | null; output: string } {
  const script = join(dir, 'child.mjs');
  const module = new URL('./datadriven.js', import.meta.url).href;
  writeFileSync(
    script,
    `import { runScripts } from ${JSON.stringify(module)};\nrunScripts(process.argv[2], (cmd) => cmd.name === 'one' ? 'counter=1' : '');\n`,
  );
  const r = spawnSync(process.execPath, [script, join(dir, 'scripts')], {
    encoding: 'utf8',
    env: { ...process.env, COHORT_REWRITE: '', ...env },
  });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

test('the real runner fails a test on a wrong expectation, passes a right one, rewrites on request', () => {
  // End to end in a child process: a test that cannot fail is a defect.
  const dir = mkdtempSync(join(tmpdir(), 'cohort-dd-'));
  try {
    mkdirSync(join(dir, 'scripts'));
    const file = join(dir, 'scripts', 'wrong.txt');
    writeFileSync(file, '# header\none\n----\ncounter=42\n');
    const failed = runChild(dir);
    assert.notEqual(failed.status, 0, failed.output);
    assert.match(failed.output, /wrong\.txt:2: output of `one` differs/);
    assert.match(failed.output, /-counter=42/);
    const rewritten = runChild(dir, { COHORT_REWRITE: '1' });
    assert.equal(rewritten.status, 0, rewritten.output);
    assert.equal(readFileSync(file, 'utf8'), '# header\none\n----\ncounter=1\n');
    const passed = runChild(dir);
    assert.equal(passed.status, 0, passed.output);
    rmSync(file);
    const empty = runChild(dir);
    assert.notEqual(empty.status, 0, 'a directory without scripts must fail, not pass vacuously');
    assert.match(empty.output, /no \.txt scripts found/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('rewrite replaces expected blocks, switching to the doubled separator when needed', () => {
  const text = '# keep me\nincr by=2\n----\nstale\n\nlines n=2\n----\nstale\n\nincr by=1\n----\ncounter=3\n';
  const r = checkScript(text, 'r.txt', statefulHandler(), true);
  assert.ok(r.ok);
  assert.equal(
    r.rewritten,
    '# keep me\nincr by=2\n----\ncounter=2\n\nlines n=2\n----\n----\nline 1\n\nline 2\n----\n----\n\nincr by=1\n----\ncounter=3\n',
  );
  // The rewritten text passes as is, and rewriting it again changes nothing.
  const again = checkScript(r.rewritten, 'r.txt', statefulHandler(), true);
  assert.ok(again.ok && again.rewritten === undefined);
  assert.ok(checkScript(r.rewritten, 'r.txt', statefulHandler()).ok);
});

test('rewrite of a real file on disk through COHORT_REWRITE semantics', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-dd-'));
  try {
    const file = join(dir, 'a.txt');
    writeFileSync(file, 'incr by=4\n----\nwrong\n');
    const r = checkScript(readFileSync(file, 'utf8'), 'a.txt', statefulHandler(), true);
    assert.ok(r.ok && r.rewritten !== undefined);
    writeFileSync(file, r.rewritten);
    assert.equal(readFileSync(file, 'utf8'), 'incr by=4\n----\ncounter=4\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('malformed scripts are refused with the line of the command', () => {
  const codeAndMessage = (text: string): string => {
    try {
      parseScript(text, 's.txt');
      return 'parsed';
    } catch (e) {
      assert.ok(e instanceof ScriptError);
      return `${e.code} ${e.message}`;
    }
  };
  assert.match(codeAndMessage('\ncmd\nno separator\n'), /^SCRIPT_PARSE s\.txt:2: command has no '----'/);
  assert.match(codeAndMessage('cmd k=(a\n----\n'), /^SCRIPT_PARSE s\.txt:1: unclosed '\('/);
  assert.match(codeAndMessage('cmd k=1 k=2\n----\n'), /given twice/);
  assert.match(codeAndMessage('cmd\n----\n----\nnever closed\n'), /never closed/);
  assert.match(codeAndMessage('k=1\n----\n'), /must start with its name/);
});

test('typed argument helpers convert values and explain bad ones', () => {
  const [c] = parseScript('cmd n=5 xs=(1,2) s=hi b=true bad=x1 many=(a,b)\n----\n', 't.txt');
  const cmd = c!.cmd;
  assert.equal(intArg(cmd, 'n'), 5);
  assert.equal(intArg(cmd, 'absent', 7), 7);
  assert.deepEqual(intsArg(cmd, 'xs'), [1, 2]);
  assert.equal(stringArg(cmd, 's'), 'hi');
  assert.deepEqual(stringsArg(cmd, 'many'), ['a', 'b']);
  assert.equal(boolArg(cmd, 'b'), true);
  assert.throws(() => intArg(cmd, 'bad'), /t\.txt:1: cmd: argument bad=x1 must be an integer/);
  assert.throws(() => intArg(cmd, 'missing'), /missing argument missing=/);
  assert.throws(() => stringArg(cmd, 'many'), /exactly one value/);
  assert.throws(() => boolArg(cmd, 's'), /must be true or false/);
  assert.throws(() => {
    expectArgs(cmd, ['n']);
  }, /unknown argument xs=/);
});

test('a handler that throws fails with the command position', () => {
  assert.throws(
    () => checkScript('nope\n----\n', 'h.txt', statefulHandler()),
    /h\.txt:1: command `nope` threw: unknown command nope/,
  );
});

test('lineDiff marks removed and added lines around common ones', () => {
  assert.equal(lineDiff('a\nb\nc\n', 'a\nx\nc\n'), ' a\n-b\n+x\n c\n');
  assert.equal(lineDiff('', 'new\n'), '+new\n');
});
