// Proves the `fencing` config section becomes the fence topology the executor runs (devices with
// defaults filled in, levels in order, per-node delays by node id), that every way it can be
// wrong is one line naming the key (unknown node names, undefined or unused devices, option
// injection through a line break, reserved options, relative paths, unknown keys), and that it
// enters the settings fingerprint (every node must run the same fences).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configFingerprint, validateConfig, type NodeConfig } from './config.js';
import { FENCE_PROCESS_TIMEOUT_MS_DEFAULT, FENCE_RETRIES_DEFAULT, FENCE_TIMEOUT_MS_DEFAULT } from '../constants.js';

function base(fencing?: unknown): Record<string, unknown> {
  return {
    cluster: { name: 'demo' },
    node: { id: 1 },
    nodes: [
      { id: 1, name: 'n1', address: '127.0.0.1:7401' },
      { id: 2, name: 'n2', address: '127.0.0.1:7402' },
      { id: 3, name: 'n3', address: '127.0.0.1:7403' },
    ],
    dataDir: 'data/n1',
    ...(fencing === undefined ? {} : { fencing }),
  };
}

function valid(value: unknown): NodeConfig {
  const r = validateConfig(value, 'test.yaml', '/etc/cohort');
  if (!r.ok) assert.fail(r.error.message);
  return r.value;
}

function problems(value: unknown): string[] {
  const r = validateConfig(value, 'test.yaml', '/etc/cohort');
  if (r.ok) assert.fail('expected the config to be rejected');
  for (const p of r.error.problems) assert.ok(!p.message.includes('\n'), `one line per problem: ${p.message}`);
  return r.error.problems.map((p) => `${p.path}: ${p.message}`);
}

function has(lines: string[], re: RegExp): void {
  assert.ok(
    lines.some((l) => re.test(l)),
    `no problem matches ${re}:\n${lines.join('\n')}`,
  );
}

const DUMMY = { name: 'dummy', agent: 'exec', program: '/usr/sbin/fence_dummy', options: { status_file: '/run/x' } };

test('no fencing section: no devices, every fence waits for a confirmation', () => {
  const t = valid(base()).fencing;
  assert.equal(t.devices.size, 0);
  assert.deepEqual(t.levels, []);
});

test('devices get their defaults; levels keep their order; delays are keyed by node id', () => {
  const c = valid(
    base({
      devices: [DUMMY, { name: 'kill', agent: 'process', pidFiles: { n1: '/a/1.pid', n2: '/a/2.pid' } }],
      levels: [['dummy'], ['kill']],
      delays: { n2: 5000 },
    }),
  );
  const dummy = c.fencing.devices.get('dummy');
  assert.ok(dummy?.agent === 'exec');
  assert.equal(dummy.action, 'off');
  assert.equal(dummy.timeoutMs, FENCE_TIMEOUT_MS_DEFAULT);
  assert.equal(dummy.retries, FENCE_RETRIES_DEFAULT);
  assert.equal(dummy.unfence, false);
  assert.deepEqual([...dummy.options], [['status_file', '/run/x']]);
  const kill = c.fencing.devices.get('kill');
  assert.ok(kill?.agent === 'process');
  assert.equal(kill.timeoutMs, FENCE_PROCESS_TIMEOUT_MS_DEFAULT);
  assert.deepEqual(
    c.fencing.levels.map((l) => l.devices),
    [['dummy'], ['kill']],
  );
  assert.deepEqual([...c.fencing.fenceDelayMs], [[2, 5000]]);
});

test('each mistake in the section is reported on its key', () => {
  const lines = problems(
    base({
      devices: [
        { ...DUMMY, options: { action: 'on', ip: '1.2.3.4\nport=other' }, hosts: { n9: 'x' } },
        { name: 'dummy', agent: 'process', pidFiles: { n1: 'relative.pid' } },
        { name: 'spare', agent: 'manual' },
      ],
      levels: [['dummy', 'ghost']],
      delays: { nobody: 10 },
    }),
  );
  has(lines, /^fencing\.devices\[0\]\.options: option "action" is set by cohort/);
  has(lines, /^fencing\.devices\[0\]\.options: option "ip": the value holds a line break/);
  has(lines, /^fencing\.devices\[0\]\.hosts\.n9: "n9" is not a configured node name/);
  has(lines, /^fencing\.devices\[1\]\.name: device "dummy" is defined twice/);
  has(lines, /^fencing\.devices\[1\]\.pidFiles\.n1: relative\.pid must be an absolute path/);
  has(lines, /^fencing\.delays\.nobody: /);
});

test('a bad device name is a shape problem, reported before the whole-file rules', () => {
  has(
    problems(base({ devices: [{ name: 'Bad Name', agent: 'watchdog' }], levels: [['x']] })),
    /^fencing\.devices\[0\]\.name: /,
  );
});

test('a level naming an undefined device, and a device in no level, are refused', () => {
  const lines = problems(base({ devices: [DUMMY, { name: 'spare', agent: 'manual' }], levels: [['dummy', 'ghost']] }));
  has(lines, /^fencing: fencing level 1 names device "ghost", which is not defined/);
  has(lines, /^fencing: fence device "spare" is in no level/);
});

test('values fence agents would read differently are refused (quotes, outer whitespace)', () => {
  const lines = problems(
    base({ devices: [{ ...DUMMY, options: { login: ' admin', passwd: '"x"' } }], levels: [['dummy']] }),
  );
  has(lines, /option "login": the value starts or ends with whitespace/);
  has(lines, /option "passwd": the value is enclosed in double quotes/);
});

test('unknown keys in a device are refused', () => {
  const lines = problems(base({ devices: [{ ...DUMMY, pasword: 'x' }], levels: [['dummy']] }));
  has(lines, /pasword/);
});

test('the fencing section enters the settings fingerprint', () => {
  const plain = configFingerprint(valid(base()));
  const fenced = configFingerprint(valid(base({ devices: [DUMMY], levels: [['dummy']] })));
  const other = configFingerprint(
    valid(base({ devices: [{ ...DUMMY, options: { status_file: '/run/y' } }], levels: [['dummy']] })),
  );
  assert.notEqual(plain, fenced);
  assert.notEqual(fenced, other);
  assert.equal(fenced, configFingerprint(valid(base({ devices: [DUMMY], levels: [['dummy']] }))));
});
