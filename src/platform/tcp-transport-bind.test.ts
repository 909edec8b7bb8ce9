// Proves `TcpTransport.bind` on 127.0.0.1: a bound transport listens but closes whatever connects
// and dials nobody until `start`, after which the same listener accepts and a peer that was
// turned away reconnects and delivers; and a port in use rejects `bind` with `LISTEN_FAILED`
// carrying the system error (EADDRINUSE) as its cause, nothing left open.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Server } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { CohortError } from '../lib/errors.js';
import { nodeId } from '../lib/ids.js';
import { Prng } from '../lib/prng.js';
import { exampleCodec, type ExampleMessage } from '../transport/example-message.js';
import { closeAll, FAST, HOST, ping, startNode, waitFor } from '../testing/tcp-support.js';
import { generateClusterKey, type ClusterKey } from './cluster-key.js';
import { TcpTransport } from './tcp-transport.js';

function transport(id: number, peer: number, key: ClusterKey, port = 0): TcpTransport<ExampleMessage> {
  return new TcpTransport<ExampleMessage>({
    self: nodeId(id),
    clusterName: 'test-cluster',
    listen: { host: HOST, port },
    peers: new Map([[nodeId(peer), null]]),
    key,
    codec: exampleCodec(),
    logger: { warn: () => undefined, info: () => undefined },
    prng: new Prng(id),
    limits: FAST,
  });
}

/** Resolves true once a raw connection to `port` is closed by the other end, false if it stays open `ms`. */
function closedWithin(port: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: HOST, port });
    socket.on('error', () => undefined);
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(false);
    }, ms);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

test(
  'a bound transport closes connections and dials nobody until start; then it accepts',
  { timeout: 20_000 },
  async () => {
    const key = generateClusterKey();
    const a = await startNode(1, { key, peers: [2] });
    const b = transport(2, 1, key);
    try {
      const bound = await b.bind();
      assert.ok(bound.port > 0);
      assert.equal(await closedWithin(bound.port, 2000), true, 'a connection before start is closed');
      b.setPeerAddress(nodeId(1), a.address);
      a.t.setPeerAddress(nodeId(2), bound);
      await sleep(200);
      assert.deepEqual(a.ups, [], 'nobody is connected to a bound transport');
      assert.equal(b.status()[0]?.state, 'idle', 'a bound transport does not dial');
      const inbox: ExampleMessage[] = [];
      b.setHandlers({ onMessage: (_from, m) => inbox.push(m), onPeerUp: () => undefined, onPeerDown: () => undefined });
      assert.deepEqual(await b.start(), bound, 'start keeps the bound listener');
      assert.equal(a.t.send(nodeId(2), ping(7)), true);
      await waitFor(() => inbox.length === 1, 'the turned-away peer to reconnect and deliver');
      await waitFor(() => a.ups.length === 1, 'the peer to see the link up');
    } finally {
      await closeAll(a.t, b);
    }
  },
);

test('bind on a port in use rejects LISTEN_FAILED with EADDRINUSE as its cause', { timeout: 10_000 }, async () => {
  const blocker: Server = createServer();
  await new Promise<void>((resolve) => blocker.listen({ host: HOST, port: 0 }, resolve));
  const address = blocker.address();
  assert.ok(address !== null && typeof address === 'object');
  const t = transport(1, 2, generateClusterKey(), address.port);
  try {
    const error = await t.bind().then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(error instanceof CohortError, String(error));
    assert.equal(error.code, 'LISTEN_FAILED');
    assert.equal((error.cause as { code?: unknown } | undefined)?.code, 'EADDRINUSE');
  } finally {
    await t.close();
    await new Promise<void>((resolve) => {
      blocker.close(() => {
        resolve();
      });
    });
  }
});
