// Proves `cohort kv` end to end over a real API socket served by the daemon's own handlers on a
// node of an embedded cluster: put/get/cas/delete print one line (get prints the value), --json
// prints the typed answer, a missing key exits 5, a failed compare exits 6 with the current
// value, cas takes exactly one condition (else usage, exit 2, like a bad option); a node that is
// not quorate exits 3 and an unreachable daemon 4, each with one line and no stack unless --debug.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiError } from '../api/index.js';
import { startCluster } from '../embedded/index.js';
import { registerApiHandlers } from '../node/api-handlers.js';
import { KV_EXIT, casCondition, runKv, type KvIo } from './kv-command.js';
import { main } from './main.js';
import { withApiServer } from '../testing/api-support.js';

function capture(): { out: string[]; err: string[]; io: KvIo } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: { out: (d) => out.push(typeof d === 'string' ? d : `<${d.length} bytes>`), err: (t) => err.push(t) },
  };
}

test('kv put/get/cas/delete against the daemon handlers of a live node: output, --json, exit 5 and 6', async () => {
  await using cluster = await startCluster({ nodes: 3 });
  const node = cluster.nodes[1]?.clusterNode;
  assert.ok(node);
  await withApiServer(
    (s) => {
      registerApiHandlers(s, node, {
        clusterName: 'test',
        fingerprint: 'f',
        startedAtMs: 0,
        links: () => [],
      });
    },
    async (socket) => {
      const put = capture();
      assert.equal(await runKv({ op: 'put', key: 'color', value: 'blue' }, { socket }, put.io), KV_EXIT.ok);
      assert.match(put.out.join(''), /^OK: "color" at revision \d+ \(version 1\)\n$/);
      const get = capture();
      assert.equal(await runKv({ op: 'get', key: 'color' }, { socket }, get.io), KV_EXIT.ok);
      assert.deepEqual(get.out, ['blue\n']);
      const json = capture();
      assert.equal(await runKv({ op: 'get', key: 'color' }, { socket, json: true }, json.io), KV_EXIT.ok);
      const answer = JSON.parse(json.out.join('')) as {
        found: boolean;
        text: string;
        version: number;
        value: number[];
      };
      assert.deepEqual([answer.found, answer.text, answer.version, answer.value.length], [true, 'blue', 1, 4]);

      const lost = capture();
      assert.equal(
        await runKv({ op: 'cas', key: 'color', value: 'red', condition: { expected: 'green' } }, { socket }, lost.io),
        KV_EXIT.compareFailed,
      );
      assert.deepEqual(lost.out, []);
      assert.match(lost.err.join(''), /^cohort kv cas: compare failed: "color" is "blue"; nothing written/);
      const won = capture();
      assert.equal(
        await runKv({ op: 'cas', key: 'color', value: 'red', condition: { expected: 'blue' } }, { socket }, won.io),
        KV_EXIT.ok,
      );
      assert.equal(
        await runKv({ op: 'cas', key: 'color', value: 'x', condition: { expected: null } }, { socket }, capture().io),
        KV_EXIT.compareFailed,
        '--absent on a present key',
      );

      const del = capture();
      assert.equal(await runKv({ op: 'delete', key: 'color' }, { socket }, del.io), KV_EXIT.ok);
      assert.match(del.out.join(''), /^OK: "color" deleted at revision \d+\n$/);
      const missing = capture();
      assert.equal(await runKv({ op: 'get', key: 'color' }, { socket }, missing.io), KV_EXIT.notFound);
      assert.deepEqual([missing.out, missing.err], [[], ['cohort kv get: key "color" not found\n']]);
      assert.equal(await runKv({ op: 'delete', key: 'color' }, { socket }, capture().io), KV_EXIT.notFound);
      const badKey = capture();
      assert.equal(await runKv({ op: 'get', key: '' }, { socket }, badKey.io), KV_EXIT.failure);
      assert.equal(badKey.err.length, 1, 'one line');
    },
  );
});

test('not quorate exits 3, unreachable exits 4, one line each; --debug adds the stack', async () => {
  await withApiServer(
    (s) => {
      s.register('kv.put', () => {
        throw new ApiError('NOT_QUORATE', "no leader accepted the request; this node's partition may not have quorum");
      });
    },
    async (socket) => {
      const nq = capture();
      assert.equal(await runKv({ op: 'put', key: 'k', value: 'v' }, { socket }, nq.io), KV_EXIT.notQuorate);
      assert.deepEqual(nq.err, [
        "cohort kv put: no leader accepted the request; this node's partition may not have quorum\n",
      ]);
    },
  );
  const gone = capture();
  const nowhere = join(tmpdir(), 'cohort-kv-none.sock');
  assert.equal(await runKv({ op: 'get', key: 'k' }, { socket: nowhere }, gone.io), KV_EXIT.unreachable);
  assert.equal(gone.err.length, 1);
  assert.ok(gone.err[0]?.includes(nowhere));
  const debug = capture();
  assert.equal(await runKv({ op: 'get', key: 'k' }, { socket: nowhere, debug: true }, debug.io), KV_EXIT.unreachable);
  assert.match(debug.err[1] ?? '', /at /, 'the stack follows the line');
});

test('cas takes exactly one condition; usage errors exit 2 through the real command line', async () => {
  assert.deepEqual(casCondition({ expected: 'a' }), { expected: 'a' });
  assert.deepEqual(casCondition({ absent: true }), { expected: null });
  assert.deepEqual(casCondition({ modRevision: 7 }), { expectedModRevision: 7 });
  for (const bad of [
    casCondition({}),
    casCondition({ expected: 'a', absent: true }),
    casCondition({ absent: true, modRevision: 1 }),
  ]) {
    assert.equal(typeof bad, 'string');
    assert.match(bad as string, /exactly one of/);
  }
  const stderr = process.stderr.write.bind(process.stderr);
  const lines: string[] = [];
  process.stderr.write = (chunk: string | Uint8Array): boolean => {
    lines.push(typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk));
    return true;
  };
  try {
    assert.equal(await main(['node', 'cohort', 'kv', 'cas', 'k', 'v', '--socket', '/nonexistent']), 2);
    assert.equal(await main(['node', 'cohort', 'kv', 'cas', 'k', 'v', '--mod-revision', 'x']), 2);
    assert.equal(await main(['node', 'cohort', 'kv', 'put', 'k']), 2, 'missing VALUE');
  } finally {
    process.stderr.write = stderr;
  }
  assert.ok(
    lines.some((l) => l.includes('exactly one of')),
    lines.join(''),
  );
});
