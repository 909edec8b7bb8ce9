/**
 * Test support for code that talks to the local API: a throwaway API server on a socket in a
 * fresh temporary directory, and the client error a call fails with. For tests only.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CohortClientError } from '../client/index.js';
import { ApiServer, type ApiServerOptions } from '../platform/api-server.js';

/**
 * Runs `run(socket)` against an `ApiServer` that `setup` registered handlers on; closes it and
 * removes its directory afterwards, whatever happens.
 */
export async function withApiServer(
  setup: (server: ApiServer) => void,
  run: (socket: string) => Promise<void>,
  options: Partial<ApiServerOptions> = {},
): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'cohort-test-api-'));
  const socket = join(dir, 'api.sock');
  const server = new ApiServer({ socketPath: socket, ...options });
  setup(server);
  await server.listen();
  try {
    await run(socket);
  } finally {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** The `CohortClientError` that `p` rejects with; fails the test when it resolves or throws anything else. */
export async function clientFailure(p: Promise<unknown>): Promise<CohortClientError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof CohortClientError, String(e));
    return e;
  }
  assert.fail('expected a CohortClientError');
}
