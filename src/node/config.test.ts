// Proves config loading accepts a valid YAML or JSON file with every default filled in, and that
// each way a config can be wrong (syntax, duplicate keys, unknown keys, types, ranges, duplicate
// ids/names/addresses, missing self, quorum rules, unsafe timeouts, paths, modes, unreadable
// files) is reported, all at once, as one line naming the key and what to do; and that the
// fingerprint covers exactly the cluster-wide settings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ConfigError, configFingerprint, loadConfig, parseConfig, validateConfig, type NodeConfig } from './config.js';

const BASE = `
cluster:
  name: demo
node:
  id: 1
nodes:
  - {id: 1, name: n1, address: "127.0.0.1:7401"}
  - {id: 2, name: n2, address: "127.0.0.1:7402"}
  - {id: 3, name: n3, address: "127.0.0.1:7403"}
dataDir: data/n1
`;

function base(): Record<string, unknown> {
  return {
    cluster: { name: 'demo' },
    node: { id: 1 },
    nodes: [
      { id: 1, name: 'n1', address: '127.0.0.1:7401' },
      { id: 2, name: 'n2', address: '127.0.0.1:7402' },
      { id: 3, name: 'n3', address: '127.0.0.1:7403' },
    ],
    dataDir: 'data/n1',
  };
}

function valid(value: unknown): NodeConfig {
  const r = validateConfig(value, 'test.yaml', '/etc/cohort');
  if (!r.ok) assert.fail(r.error.message);
  return r.value;
}

/** The problems of an invalid value, as `path: message` lines. */
function problems(value: unknown): string[] {
  const r = validateConfig(value, 'test.yaml', '/etc/cohort');
  if (r.ok) assert.fail('expected the config to be rejected');
  assert.equal(r.error.code, 'CONFIG_INVALID');
  for (const p of r.error.problems) assert.ok(!p.message.includes('\n'), `one line per problem: ${p.message}`);
  return r.error.problems.map((p) => `${p.path}: ${p.message}`);
}

function has(lines: string[], re: RegExp): void {
  assert.ok(
    lines.some((l) => re.test(l)),
    `no problem matches ${re}:\n${lines.join('\n')}`,
  );
}

test('a minimal YAML config gets every default, with paths resolved against the config directory', () => {
  const r = parseConfig(BASE, 'yaml', '/etc/cohort/n1.yaml', '/etc/cohort');
  if (!r.ok) assert.fail(r.error.message);
  const c = r.value;
  assert.equal(c.node.name, 'n1');
  assert.deepEqual(c.listen, { host: '127.0.0.1', port: 7401 });
  assert.equal(c.keyFile, '/etc/cohort/cluster.key');
  assert.equal(c.dataDir, '/etc/cohort/data/n1');
  assert.deepEqual(c.api, { socket: '/etc/cohort/data/n1/cohort.sock', mode: 0o660 });
  assert.equal(c.metrics, undefined);
  assert.deepEqual(
    c.nodes.map((n) => [n.id, n.votes, n.role]),
    [
      [1, 1, 'voter'],
      [2, 1, 'voter'],
      [3, 1, 'voter'],
    ],
  );
  assert.equal(c.timeouts.inputs.heartbeatMs, 100);
  assert.equal(c.processGoneProof, true, 'the fast path is on by default');
  assert.equal(c.votequorum.config.expectedVotes, 3);
  assert.equal(c.quorum.lastManStandingWindowMs, 10_000);
  assert.deepEqual(c.log, { level: 'info', format: 'auto' });
});

test('the same config as JSON is equivalent; JSON is parsed strictly', () => {
  const y = parseConfig(BASE, 'yaml', 'a', '/x');
  const j = parseConfig(JSON.stringify(base()), 'json', 'a', '/x');
  assert.ok(y.ok && j.ok);
  assert.equal(configFingerprint(y.value), configFingerprint(j.value));
  const bad = parseConfig('{"cluster": {"name": "x"}, dataDir: 1}', 'json', 'a.json', '/x');
  assert.ok(!bad.ok);
  assert.match(bad.error.message, /JSON syntax/);
});

test('syntax errors and duplicate keys are reported with their line', () => {
  const r = parseConfig(`${BASE}dataDir: other\n`, 'yaml', 'n1.yaml', '/x');
  assert.ok(!r.ok);
  assert.match(r.error.message, /YAML syntax: Map keys must be unique at line \d+/);
  const s = parseConfig('cluster: {name: [x\n', 'yaml', 'n1.yaml', '/x');
  assert.ok(!s.ok);
  assert.match(s.error.problems[0]?.message ?? '', /^YAML syntax: .*line \d+/);
});

test('unknown keys are rejected at every level, naming the allowed keys', () => {
  const v = base();
  v['clsuter'] = { name: 'x' };
  (v['nodes'] as Record<string, unknown>[])[1]!['weight'] = 2;
  v['timeouts'] = { heartbeat: 100 };
  const p = problems(v);
  has(p, /^clsuter: unknown key; allowed here: cluster, node, listen, nodes/);
  has(p, /^nodes\[1\]\.weight: unknown key; allowed here: id, name, address, votes, role$/);
  has(p, /^timeouts\.heartbeat: unknown key; allowed here: heartbeatMs, failureTimeoutMs/);
});

test('type, range and format errors name the key, the expectation and what arrived, all at once', () => {
  const v = base();
  delete v['dataDir'];
  v['node'] = { id: 'one' };
  v['nodes'] = [{ id: 1, name: 'n 1', address: '127.0.0.1:7401', votes: 300, role: 'boss' }];
  v['api'] = { mode: 660 };
  const p = problems(v);
  has(p, /^dataDir: is required \(a string\)$/);
  has(p, /^node\.id: expected a number, got string "one"/);
  has(p, /^nodes\[0\]\.name: string "n 1" \(3 chars\) must be 1-63 letters/);
  has(p, /^nodes\[0\]\.votes: the value must be at most 255, got number 300$/);
  has(p, /^nodes\[0\]\.role: expected one of "voter", "witness", got string "boss"/);
  has(p, /^api\.mode: number 660 is not a file mode: write it as the string "0660"/);
  assert.ok(p.length >= 6);
});

test('duplicate ids, names and addresses, and a missing self, are each reported', () => {
  const v = base();
  v['node'] = { id: 9 };
  v['nodes'] = [
    { id: 1, name: 'n1', address: '127.0.0.1:7401' },
    { id: 1, name: 'n1', address: '127.0.0.1:7401' },
  ];
  const p = problems(v);
  has(p, /^nodes\[1\]\.id: id 1 is also used by nodes\[0\]; every node needs its own id$/);
  has(p, /^nodes\[1\]\.name: name "n1" is also used by nodes\[0\]/);
  has(p, /^nodes\[1\]\.address: address "127\.0\.0\.1:7401" is also used by nodes\[0\]/);
  has(p, /^node\.id: node 9 is not in nodes \(ids: 1, 1\); add this node to nodes or fix node\.id$/);
});

test('a node name that contradicts the node list and a malformed address are reported', () => {
  const v = base();
  v['node'] = { id: 1, name: 'other' };
  const p = problems(v);
  has(p, /^node\.name: "other" differs from the name of node 1 in nodes \("n1"\)/);
  const w = base();
  (w['nodes'] as Record<string, unknown>[])[2]!['address'] = 'localhost';
  has(problems(w), /^nodes\[2\]\.address: string "localhost" .* is not "host:port"/);
  const x = base();
  (x['nodes'] as Record<string, unknown>[])[2]!['address'] = '[::1]:7403';
  assert.equal(valid(x).nodes[2]?.host, '::1');
});

test('quorum rules come from src/quorum and land on the right key', () => {
  const v = base();
  v['quorum'] = { expectedVotes: 2 };
  has(problems(v), /^quorum\.expectedVotes: expected_votes 2 must be an integer from the configured total 3/);
  const w = base();
  w['quorum'] = { twoNode: true };
  has(problems(w), /^quorum: two_node needs exactly two voters/);
  const x = base();
  x['quorum'] = { autoTieBreaker: true, tieBreakerNode: [7] };
  has(problems(x), /^quorum\.tieBreakerNode: auto_tie_breaker list 7 names no voting node/);
  const y = base();
  y['quorum'] = { tieBreakerNode: 'highest', lastManStandingWindowMs: 5000 };
  const p = problems(y);
  has(p, /^quorum\.tieBreakerNode: has no effect unless quorum\.autoTieBreaker is true/);
  has(p, /^quorum\.lastManStandingWindowMs: has no effect unless quorum\.lastManStanding is true/);
  const z = base();
  (z['nodes'] as Record<string, unknown>[])[2]!['role'] = 'witness';
  (z['nodes'] as Record<string, unknown>[])[2]!['votes'] = 0;
  has(problems(z), /^nodes: witness node 3 has no votes/);
  const ok = base();
  ok['quorum'] = {
    autoTieBreaker: true,
    tieBreakerNode: 'highest',
    lastManStanding: true,
    lastManStandingWindowMs: 2000,
  };
  const c = valid(ok);
  assert.equal(c.votequorum.config.tieBreaker, 3);
  assert.equal(c.votequorum.options.lastManStandingWindowTicks, 40);
});

test("unsafe timeouts are rejected under timeouts.<key> with the model's reason", () => {
  const v = base();
  v['timeouts'] = { heartbeatMs: 200, failureTimeoutMs: 300, watchdogMs: 5000 };
  const p = problems(v);
  has(
    p,
    /^timeouts\.failureTimeoutMs: failureTimeoutMs 300 is below 3 x heartbeatMs 200: a single delayed heartbeat would evict a node/,
  );
  has(p, /^timeouts\.watchdogMs: watchdogMs 5000 must be below the node lease minus the drift margin/);
});

test('socket path length, socket mode and a metrics port clash are checked', () => {
  const v = base();
  v['api'] = { socket: `/run/${'s'.repeat(120)}.sock`, mode: '0666' };
  v['metrics'] = { port: 7401 };
  const p = problems(v);
  has(p, /^api\.socket: .* bytes long; Unix socket paths are limited to 107 bytes/);
  has(p, /^api\.mode: mode 0666 lets every local user control the cluster/);
  has(p, /^metrics\.port: port 7401 is also the peer port/);
  const w = base();
  w['api'] = { mode: '0o600' };
  w['metrics'] = { port: 9400 };
  const c = valid(w);
  assert.equal(c.api.mode, 0o600);
  assert.deepEqual(c.metrics, { host: '127.0.0.1', port: 9400 });
});

test('the fingerprint changes with cluster-wide settings and ignores node-local ones', () => {
  const a = valid(base());
  const local = base();
  local['node'] = { id: 2 };
  local['dataDir'] = '/elsewhere';
  local['metrics'] = { port: 9999 };
  local['log'] = { level: 'debug' };
  assert.equal(configFingerprint(valid(local)), configFingerprint(a));
  const reordered = base();
  (reordered['nodes'] as unknown[]).reverse();
  assert.equal(configFingerprint(valid(reordered)), configFingerprint(a));
  const t = base();
  t['timeouts'] = { failureTimeoutMs: 1200 };
  assert.notEqual(configFingerprint(valid(t)), configFingerprint(a));
  const off = base();
  off['timeouts'] = { processGoneProof: false };
  assert.equal(valid(off).processGoneProof, false);
  assert.equal(configFingerprint(valid(off)), configFingerprint(a), 'processGoneProof is node-local');
  const q = base();
  q['quorum'] = { waitForAll: true };
  assert.notEqual(configFingerprint(valid(q)), configFingerprint(a));
  const n = base();
  (n['nodes'] as Record<string, unknown>[])[2]!['votes'] = 2;
  assert.notEqual(configFingerprint(valid(n)), configFingerprint(a));
  assert.match(configFingerprint(a), /^sha256:[0-9a-f]{64}$/);
});

test('loadConfig reads YAML and JSON files and reports unreadable ones as CONFIG_UNREADABLE', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cohort-config-'));
  try {
    await writeFile(join(dir, 'n1.yaml'), BASE);
    await writeFile(join(dir, 'n1.json'), JSON.stringify(base()));
    const y = await loadConfig(join(dir, 'n1.yaml'));
    assert.ok(y.ok);
    assert.equal(y.value.dataDir, join(dir, 'data/n1'));
    assert.ok((await loadConfig(join(dir, 'n1.json'))).ok);
    await writeFile(join(dir, 'bad.yaml'), stringify({ ...base(), nodes: 'all' }));
    const bad = await loadConfig(join(dir, 'bad.yaml'));
    assert.ok(!bad.ok);
    assert.ok(bad.error instanceof ConfigError);
    assert.match(
      bad.error.message,
      /^config .*bad\.yaml has 1 problem:\n {2}- nodes: expected a list, got string "all"/,
    );
    const missing = await loadConfig(join(dir, 'nope.yaml'));
    assert.ok(!missing.ok);
    assert.equal(missing.error.code, 'CONFIG_UNREADABLE');
    assert.match(missing.error.message, /does not exist; create one with `cohort init`/);
    await mkdir(join(dir, 'adir.yaml'));
    const notFile = await loadConfig(join(dir, 'adir.yaml'));
    assert.ok(!notFile.ok);
    assert.equal(notFile.error.code, 'CONFIG_UNREADABLE');
    await writeFile(join(dir, 'bin.yaml'), Buffer.from([0xff, 0xfe, 0x00]));
    const binary = await loadConfig(join(dir, 'bin.yaml'));
    assert.ok(!binary.ok);
    assert.match(binary.error.message, /not valid UTF-8/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
