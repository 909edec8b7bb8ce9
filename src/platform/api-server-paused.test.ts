// Proves `ApiServerOptions.startsPaused` over a real Unix socket with the real client: the socket
// is bound and clients connect, but every request and stream is answered `UNAVAILABLE` ("the
// daemon is starting") and no handler runs until `serve()`; from then on they are served.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiData } from '../api/index.js';
import { CohortClientError, connectLocal } from '../client/index.js';
import { ApiServer } from './api-server.js';

async function failure(p: Promise<unknown>): Promise<CohortClientError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CohortClientError, `expected CohortClientError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a rejection');
}

test('a paused server answers UNAVAILABLE without running handlers until serve()', { timeout: 10_000 }, async () => {
  const dir = await mkdtemp(join(tmpdir(), 'cohort-api-paused-'));
  const socket = join(dir, 'api.sock');
  const server = new ApiServer({ socketPath: socket, startsPaused: true });
  let calls = 0;
  server.register('echo', (params) => {
    calls++;
    return params;
  });
  server.registerStream('count', (_params, _ctx, sink) => {
    calls++;
    sink.push(1);
    sink.end();
    return undefined;
  });
  try {
    await server.listen();
    await using c = await connectLocal({ socket, timeoutMs: 2000 });
    for (const call of [c.request('echo', 'hi'), c.request('nope'), collectAll(c.stream('count'))]) {
      const e = await failure(call);
      assert.equal(e.code, 'UNAVAILABLE', e.message);
      assert.match(e.message, /the daemon is starting/);
    }
    assert.equal(calls, 0, 'no handler ran while paused');
    server.serve();
    assert.equal(await c.request('echo', 'hi'), 'hi');
    assert.deepEqual(await collectAll(c.stream('count')), [1]);
    assert.equal(calls, 2);
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
});

async function collectAll(it: AsyncIterable<ApiData>): Promise<ApiData[]> {
  const out: ApiData[] = [];
  for await (const v of it) out.push(v);
  return out;
}
