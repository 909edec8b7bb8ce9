// Proves the typed client: against three real daemons, `connect` gives typed status, nodes,
// quorum, KV results with revisions (a write on one node read on another, a failed CAS showing
// the current value), typed events, the daemon's refusal codes, AbortSignal on calls and
// `await using`; against a stub daemon, every answer is validated instead of cast (a wrong field
// is one PROTOCOL_ERROR naming it, unknown extra fields are ignored, an event kind from a newer
// daemon arrives as `unknown`); and, at compile time, `CohortStatus` has every `ClusterStatus` field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiData } from '../api/index.js';
import { ProcessCluster } from '../node/process-cluster.js';
import type { ClusterStatus } from '../services.js';
import { connect, type CohortStatus } from './index.js';
import { clientFailure, withApiServer } from '../testing/api-support.js';

// Compile-time: a field added to ClusterStatus but not to the client's CohortStatus fails the build.
type Missing = Exclude<keyof ClusterStatus, keyof CohortStatus>;
export const noneMissing: [Missing] extends [never] ? true : Missing = true;

test('against real daemons: typed status, nodes, quorum, KV with revisions, events, refusals, AbortSignal, await using', async () => {
  const cluster = await ProcessCluster.create(3);
  try {
    cluster.startAll();
    await cluster.waitQuorate(cluster.ids, 15_000);
    let escaped;
    {
      await using c1 = await connect({ socket: cluster.socket(1) });
      await using c2 = await connect({ socket: cluster.socket(2), timeoutMs: 2000 });
      escaped = c1;
      const s = await c1.status({ signal: AbortSignal.timeout(2000) });
      assert.equal(s.nodeId, 1);
      assert.equal(s.quorate, true);
      assert.equal(typeof s.configFingerprint, 'string');
      assert.deepEqual(
        s.members.map((m) => m.nodeId),
        [1, 2, 3],
      );
      const n = await c2.nodes();
      assert.deepEqual(
        n.nodes.map((x) => [x.nodeId, x.self]),
        [
          [1, false],
          [2, true],
          [3, false],
        ],
      );
      assert.equal(n.nodes.find((x) => x.nodeId === 1)?.link, 'open');
      assert.equal((await c2.quorum()).viewQuorate, true);

      const put = await c1.kv.put('k', 'v1');
      const got = await c2.kv.get('k');
      assert.ok(got.found);
      assert.equal(got.text, 'v1');
      assert.equal(got.modRevision, put.modRevision);
      const cas = await c2.kv.cas('k', 'v2', { expected: 'nope' });
      assert.deepEqual([cas.succeeded, cas.text], [false, 'v1']);
      assert.equal((await c2.kv.cas('k', 'v2', { expectedModRevision: put.modRevision })).succeeded, true);
      assert.deepEqual(await c1.kv.delete('k'), { deleted: true, revision: put.revision + 2 });

      const kinds = [];
      for await (const e of c2.events({ follow: false })) kinds.push(e.kind);
      assert.ok(kinds.includes('view'), kinds.join(','));

      assert.equal((await clientFailure(c1.fenceConfirm(2))).code, 'INVALID_ARGUMENT', 'a live member is not fenced');
      assert.equal((await clientFailure(c1.kv.get(''))).code, 'INVALID_ARGUMENT');
      const ac = new AbortController();
      ac.abort();
      assert.equal((await clientFailure(c1.status({ signal: ac.signal }))).code, 'ABORTED');
      assert.equal(c1.open, true, 'an aborted call leaves the connection usable');
    }
    assert.equal(escaped.open, false, 'await using closed it');
    assert.equal((await clientFailure(escaped.status())).code, 'CLOSED');
  } finally {
    await cluster.close();
  }
  const gone = await clientFailure(connect({ socket: join(tmpdir(), 'cohort-no-such.sock') }));
  assert.equal(gone.code, 'DAEMON_UNREACHABLE');
});

async function withStub(
  answers: Record<string, ApiData>,
  events: readonly ApiData[],
  run: (socket: string) => Promise<void>,
): Promise<void> {
  await withApiServer((server) => {
    for (const [method, answer] of Object.entries(answers)) server.register(method, () => answer);
    server.registerStream('events', (_p, _ctx, sink) => {
      for (const e of events) sink.push(e);
      sink.end();
    });
  }, run);
}

test('answers are validated, not cast: a wrong field is PROTOCOL_ERROR naming it; extra fields and new event kinds pass', async () => {
  const put = { revision: 4, modRevision: 4, version: 1, addedByANewerDaemon: 'ignored' };
  const badNodes = { nodes: [{ nodeId: 0, name: 'x' }] };
  const badQuorum = { quorate: 'yes' };
  const view = {
    seq: 1,
    viewId: 1,
    index: 3,
    kind: 'view',
    payload: {
      members: [{ node: 1, incarnation: 1 }],
      quorate: true,
      reason: 'majority',
      explanation: 'e',
      change: { node: 1, incarnation: 1, kind: 'joined', cause: 'c' },
    },
  };
  const future = { seq: 2, viewId: 1, index: 4, kind: 'hologram', payload: { x: 1 } };
  const broken = {
    seq: 3,
    viewId: 1,
    index: 5,
    kind: 'node',
    payload: { node: 1, incarnation: 1, from: 'out', to: 'teleported', cause: 'c' },
  };
  await withStub({ 'kv.put': put, nodes: badNodes, quorum: badQuorum }, [view, future, broken], async (socket) => {
    await using c = await connect({ socket });
    assert.deepEqual(await c.kv.put('k', 'v'), { revision: 4, modRevision: 4, version: 1 });
    const n = await clientFailure(c.nodes());
    assert.equal(n.code, 'PROTOCOL_ERROR');
    assert.match(
      n.message,
      /^nodes: the daemon's answer has result\.nodes\[0\]\.nodeId = 0, expected an integer in \[1, 65535\]/,
    );
    assert.match((await clientFailure(c.quorum())).message, /result\.quorate = "yes", expected true or false/);
    const seen: string[] = [];
    const stream = c.events({ follow: false });
    const err = await clientFailure(
      (async () => {
        for await (const e of stream) seen.push(e.kind === 'unknown' ? `unknown:${e.rawKind}` : e.kind);
      })(),
    );
    assert.deepEqual(seen, ['view', 'unknown:hologram']);
    assert.match(
      err.message,
      /item\.payload\.to = "teleported", expected one of out, member, needs-fencing, quarantined/,
    );
    assert.equal(c.open, true, 'a bad answer fails that call only');
  });
});
