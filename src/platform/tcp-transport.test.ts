// Proves, with real sockets on 127.0.0.1, that TcpTransport delivers in both directions with
// the sender's authenticated id; refuses a peer with the wrong key, cluster name or id before
// any message is decoded and logs why; rejects tampered, truncated, replayed and reordered
// frames (injected by a man-in-the-middle proxy) by closing the connection, then recovers by
// reconnecting; reconnects after a peer restarts; bounds its send queue (send returns false)
// under both an unreachable peer and socket backpressure; and bounds unauthenticated sockets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { nodeId } from '../lib/ids.js';
import { exampleCodec } from '../transport/example-message.js';
import {
  HOST,
  MitmProxy,
  closeAll,
  hasLog,
  ping,
  seqs,
  startNode,
  waitFor,
  type ProxyAction,
  type TestNode,
} from '../testing/tcp-support.js';
import { generateClusterKey } from './cluster-key.js';

test('messages flow both ways with the sender id; peers report up', { timeout: 20_000 }, async () => {
  const key = generateClusterKey();
  const a = await startNode(1, { key, peers: [2] });
  const b = await startNode(2, { key, peers: [1] });
  try {
    a.t.setPeerAddress(b.id, b.address);
    b.t.setPeerAddress(a.id, a.address);
    assert.equal(a.t.send(b.id, ping(1)), true);
    assert.equal(
      b.t.send(a.id, { type: 'gossip', from: b.id, mood: 'calm', note: 'hi', alive: [1, 2], urgent: false }),
      true,
    );
    await waitFor(() => a.inbox.length === 1 && b.inbox.length === 1, 'one message each way');
    assert.equal(b.inbox[0]?.from, 1);
    assert.deepEqual(seqs(b), [1]);
    assert.equal(a.inbox[0]?.from, 2);
    assert.equal(a.inbox[0].m.type, 'gossip');
    assert.deepEqual(a.ups, [2]);
    assert.deepEqual(b.ups, [1]);
    for (let i = 0; i < 2000; i++) assert.equal(a.t.send(b.id, ping(i + 2, i % 300)), true);
    await waitFor(() => b.inbox.length === 2001, '2000 pipelined messages');
    assert.deepEqual(
      seqs(b),
      Array.from({ length: 2001 }, (_, i) => i + 1),
      'in send order',
    );
    assert.equal(a.t.send(nodeId(9), ping(0)), false, 'unknown peer');
  } finally {
    await closeAll(a.t, b.t);
  }
  assert.equal(a.t.send(b.id, ping(0)), false, 'closed transports refuse');
});

test(
  'a peer with the wrong cluster key is refused before any message is decoded, with a clear log line',
  { timeout: 20_000 },
  async () => {
    const a = await startNode(1, { key: generateClusterKey(), peers: [2] });
    const b = await startNode(2, { key: generateClusterKey(), peers: [1] });
    try {
      a.t.setPeerAddress(b.id, b.address);
      b.t.setPeerAddress(a.id, a.address);
      a.t.send(b.id, ping(1));
      b.t.send(a.id, ping(2));
      const serverLine =
        /^WARN refused connection from 127\.0\.0\.1:\d+ claiming node 1: wrong cluster key \(HMAC mismatch\); check that every node uses the same key file/;
      await waitFor(() => hasLog(b, serverLine), 'the listener to log the refusal');
      await waitFor(
        () => hasLog(a, /wrong cluster key \(HMAC mismatch\); check that every node uses the same key file/),
        'the dialer to log it',
      );
      await sleep(400); // several reconnect attempts (backoff here is 10..80 ms)
      assert.equal(a.decodes.n + b.decodes.n, 0, 'no codec decode ran');
      assert.equal(b.logs.filter((l) => serverLine.test(l)).length, 1, 'repeats of the same refusal are throttled');
      assert.deepEqual([a.inbox.length, b.inbox.length, a.ups.length, b.ups.length], [0, 0, 0, 0]);
    } finally {
      await closeAll(a.t, b.t);
    }
  },
);

test(
  'a wrong cluster name, an unknown node id or a duplicate id is refused and logged',
  { timeout: 20_000 },
  async () => {
    const key = generateClusterKey();
    const b = await startNode(2, { key, peers: [1, 3] });
    const wrongName = await startNode(1, { key, peers: [2], clusterName: 'other-cluster' });
    const unknown = await startNode(4, { key, peers: [2] });
    const impostor = await startNode(2, { key, peers: [5] });
    try {
      wrongName.t.setPeerAddress(b.id, b.address);
      unknown.t.setPeerAddress(b.id, b.address);
      impostor.t.setPeerAddress(nodeId(5), b.address); // dials b as if it were node 5
      await waitFor(
        () =>
          hasLog(
            b,
            /claiming node 1: wrong cluster name; check that every node is configured with the same cluster name/,
          ),
        'cluster name refusal',
      );
      await waitFor(() => hasLog(b, /claiming node 4: node id not in the peer list/), 'unknown node refusal');
      await waitFor(
        () => hasLog(b, /claiming node 2: the peer claims our own node id; two nodes are configured with the same id/),
        'duplicate id refusal',
      );
      await waitFor(
        () => hasLog(impostor, /node 5 at 127\.0\.0\.1:\d+ refused our connection: the peer claims our own node id/),
        'the impostor hears why',
      );
      await waitFor(
        () => hasLog(wrongName, /node 2 at 127\.0\.0\.1:\d+ refused our connection: wrong cluster name/),
        'the dialer hears why',
      );
      assert.equal(b.decodes.n, 0);
      assert.equal(b.ups.length, 0);
    } finally {
      await closeAll(b.t, wrongName.t, unknown.t, impostor.t);
    }
  },
);

/**
 * Runs one MITM scenario: node 1 sends pings 0..count-1 to node 2 through the proxy, one per
 * task so that each becomes its own data frame (frame index = seq + 2). Returns both nodes
 * after the connection was attacked and one more ping went through the redialed connection.
 */
async function mitmScenario(
  tamper: (frameIndex: number, frame: Uint8Array) => ProxyAction,
  count: number,
  check: (receiver: TestNode, sender: TestNode) => Promise<void>,
): Promise<void> {
  const key = generateClusterKey();
  const receiver = await startNode(2, { key, peers: [1] });
  const proxy = new MitmProxy(receiver.address, tamper);
  const sender = await startNode(1, { key, peers: [2] });
  try {
    sender.t.setPeerAddress(receiver.id, await proxy.start());
    await waitFor(() => sender.ups.length === 1, 'first connection up');
    for (let seq = 0; seq < count; seq++) {
      sender.t.send(receiver.id, ping(seq));
      await sleep(20); // let each message leave in its own frame
    }
    await waitFor(() => sender.downs.length >= 1, 'the attacked connection to close');
    await waitFor(() => sender.ups.length >= 2, 'the sender to reconnect');
    sender.t.send(receiver.id, ping(100));
    await waitFor(() => seqs(receiver).includes(100), 'delivery after reconnecting');
    assert.ok(proxy.connections >= 2);
    await check(receiver, sender);
  } finally {
    await closeAll(sender.t, receiver.t, proxy);
  }
}

test(
  'a tampered frame fails authentication, is not delivered, and the connection is closed',
  { timeout: 20_000 },
  async () => {
    await mitmScenario(
      (i, f) => {
        if (i === 3) f[f.length - 20] = (f[f.length - 20] ?? 0) ^ 0x80; // one ciphertext bit of ping 1
        return { forward: [f] };
      },
      2,
      async (receiver) => {
        assert.deepEqual(seqs(receiver), [0, 100], 'ping 1 and everything after it on that connection are gone');
        assert.ok(
          hasLog(receiver, /closing connection from node 1 \(127\.0\.0\.1:\d+\): frame #1 failed authentication/),
          receiver.logs.join('\n'),
        );
        return Promise.resolve();
      },
    );
  },
);

test('a replayed frame is rejected and closes the connection', { timeout: 20_000 }, async () => {
  await mitmScenario(
    (i, f) => ({ forward: i === 3 ? [f, f] : [f] }),
    2,
    async (receiver) => {
      assert.deepEqual(seqs(receiver), [0, 1, 100], 'the replay delivered nothing');
      assert.ok(hasLog(receiver, /frame #2 failed authentication/), receiver.logs.join('\n'));
      return Promise.resolve();
    },
  );
});

test('reordered frames are rejected', { timeout: 20_000 }, async () => {
  let held: Uint8Array | undefined;
  await mitmScenario(
    (i, f) => {
      if (i === 2) {
        held = f;
        return { forward: [] };
      }
      if (i === 3 && held !== undefined) return { forward: [f, held] };
      return { forward: [f] };
    },
    2,
    async (receiver) => {
      assert.deepEqual(seqs(receiver), [100]);
      assert.ok(hasLog(receiver, /frame #0 failed authentication/), receiver.logs.join('\n'));
      return Promise.resolve();
    },
  );
});

test('a truncated frame is rejected and nothing of it is delivered', { timeout: 20_000 }, async () => {
  await mitmScenario(
    (i, f) => (i === 3 ? { forward: [f.subarray(0, f.length - 5)], thenCut: true } : { forward: [f] }),
    2,
    async (receiver) => {
      assert.deepEqual(seqs(receiver), [0, 100]);
      assert.ok(hasLog(receiver, /stream ended inside a frame .*FRAME_TRUNCATED/), receiver.logs.join('\n'));
      return Promise.resolve();
    },
  );
});

test('a peer that restarts is reconnected to, with down and up events', { timeout: 20_000 }, async () => {
  const key = generateClusterKey();
  const a = await startNode(1, { key, peers: [2] });
  let b = await startNode(2, { key, peers: [1] });
  try {
    a.t.setPeerAddress(b.id, b.address);
    a.t.send(b.id, ping(1));
    await waitFor(() => b.inbox.length === 1, 'first delivery');
    await b.t.close();
    await waitFor(() => a.downs.length === 1, 'peer down');
    b = await startNode(2, { key, peers: [1], port: b.address.port });
    await waitFor(() => a.ups.length === 2, 'peer up again');
    a.t.send(b.id, ping(2));
    await waitFor(() => b.inbox.length === 1, 'delivery to the restarted peer');
    assert.deepEqual(seqs(b), [2]);
  } finally {
    await closeAll(a.t, b.t);
  }
});

test('reconnect attempts back off exponentially while a peer keeps failing', { timeout: 20_000 }, async () => {
  const key = generateClusterKey();
  let attempts = 0;
  const slammer = createServer((s) => {
    attempts++;
    s.destroy();
  });
  await new Promise<void>((resolve) => slammer.listen(0, HOST, resolve));
  const bound = slammer.address();
  assert.ok(bound !== null && typeof bound === 'object');
  const a = await startNode(1, { key, peers: [2], limits: { reconnectDelayMsMin: 20, reconnectDelayMsMax: 160 } });
  try {
    a.t.setPeerAddress(nodeId(2), { host: HOST, port: bound.port });
    await sleep(700);
    // Without backoff (10..20 ms apart) there would be 35 or more attempts; with doubling
    // delays (10-20, 20-40, 40-80, then 80-160 ms) there are at most about 11.
    assert.ok(attempts >= 3 && attempts <= 12, `attempts ${attempts}`);
    assert.ok(['backoff', 'connecting', 'handshaking'].includes(a.t.status()[0]?.state ?? ''), 'still trying');
  } finally {
    await a.t.close();
    await new Promise<void>((resolve) => {
      slammer.close(() => {
        resolve();
      });
    });
  }
});

test(
  'a peer that accepts but never answers the handshake is dropped after the deadline',
  { timeout: 20_000 },
  async () => {
    const key = generateClusterKey();
    const held: Socket[] = [];
    const silent = createServer((s) => {
      held.push(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => silent.listen(0, HOST, resolve));
    const bound = silent.address();
    assert.ok(bound !== null && typeof bound === 'object');
    const a = await startNode(1, { key, peers: [2], limits: { handshakeTimeoutMs: 200 } });
    try {
      a.t.setPeerAddress(nodeId(2), { host: HOST, port: bound.port });
      await waitFor(
        () => hasLog(a, /could not connect to and authenticate node 2 at 127\.0\.0\.1:\d+ within 200 ms/),
        'the dialer to give up on the silent peer',
      );
      assert.equal(a.ups.length, 0);
    } finally {
      await a.t.close();
      for (const s of held) s.destroy();
      await new Promise<void>((resolve) => {
        silent.close(() => {
          resolve();
        });
      });
    }
  },
);

test(
  'the send queue is bounded by messages and bytes; queued messages go out on connect',
  { timeout: 20_000 },
  async () => {
    const key = generateClusterKey();
    const codec = exampleCodec();
    const a = await startNode(1, { key, peers: [2], limits: { controlQueueMessagesMax: 8 } });
    const b = await startNode(2, { key, peers: [1] });
    const size = codec.encode(ping(0, 1000)).length;
    const c = await startNode(3, { key, peers: [2], limits: { controlQueueBytesMax: 3 * size + 1 } });
    try {
      const accepted = Array.from({ length: 10 }, (_, i) => a.t.send(b.id, ping(i)));
      assert.deepEqual(accepted, [...Array<boolean>(8).fill(true), false, false]);
      assert.deepEqual(a.t.status()[0], {
        peer: 2,
        state: 'idle',
        queuedMessages: 8,
        queuedBytes: 8 * codec.encode(ping(0)).length,
        refusedMessages: 2,
        inboundConnected: false,
        bulk: { state: 'idle', queuedMessages: 0, queuedBytes: 0, refusedMessages: 0, inboundConnected: false },
      });
      assert.deepEqual(
        Array.from({ length: 4 }, (_, i) => c.t.send(b.id, ping(i, 1000))),
        [true, true, true, false],
      );
      a.t.setPeerAddress(b.id, b.address);
      await waitFor(() => b.inbox.length === 8, 'queued messages delivered once connected');
      assert.deepEqual(seqs(b), [0, 1, 2, 3, 4, 5, 6, 7]);
      assert.equal(a.t.status()[0]?.queuedMessages, 0);
    } finally {
      await closeAll(a.t, b.t, c.t);
    }
  },
);

test(
  'socket backpressure stops flushing, fills the bounded queue, and loses nothing accepted',
  { timeout: 30_000 },
  async () => {
    const key = generateClusterKey();
    const receiver = await startNode(2, { key, peers: [1] });
    const proxy = new MitmProxy(receiver.address, (_i, f) => ({ forward: [f] }));
    const sender = await startNode(1, { key, peers: [2], limits: { controlQueueMessagesMax: 64 } });
    try {
      sender.t.setPeerAddress(receiver.id, await proxy.start());
      await waitFor(() => sender.ups.length === 1, 'connected');
      proxy.pause();
      let accepted = 0;
      // 16 KiB messages; the kernel buffers a few MiB, so the queue must fill well before 4,000.
      for (let i = 0; i < 4000; i++) {
        if (!sender.t.send(receiver.id, ping(i, 16 * 1024))) break;
        accepted++;
        if (i % 16 === 0) await sleep(1);
      }
      assert.ok(accepted < 4000, 'send refused once the socket and the queue were full');
      assert.equal(sender.t.status()[0]?.queuedMessages, 64, 'the queue is exactly at its bound');
      proxy.resume();
      await waitFor(() => receiver.inbox.length === accepted, `all ${accepted} accepted messages delivered`, 20_000);
      assert.deepEqual(
        seqs(receiver),
        Array.from({ length: accepted }, (_, i) => i),
      );
    } finally {
      await closeAll(sender.t, receiver.t, proxy);
    }
  },
);

test(
  'unauthenticated sockets are bounded: oversized frames, stalls and floods are cut off',
  { timeout: 20_000 },
  async () => {
    const key = generateClusterKey();
    const b = await startNode(2, { key, peers: [1], limits: { pendingHandshakesMax: 2, handshakeTimeoutMs: 300 } });
    const raw: Socket[] = [];
    const open = async (): Promise<Socket> => {
      const s = connect({ host: HOST, port: b.address.port });
      s.on('error', () => undefined);
      raw.push(s);
      await new Promise<void>((resolve) => s.once('connect', resolve));
      return s;
    };
    const closed = (s: Socket): Promise<void> =>
      new Promise<void>((resolve) => {
        if (s.destroyed) resolve();
        else
          s.once('close', () => {
            resolve();
          });
      });
    try {
      const big = await open();
      big.write(Uint8Array.from([0x00, 0x00, 0x10, 0x00])); // declares a 1 MiB handshake record
      await closed(big);
      assert.ok(
        hasLog(b, /frame declares a body of 1048576 bytes; the limit is 256 \(FRAME_TOO_LARGE\)/),
        b.logs.join('\n'),
      );
      const s1 = await open();
      const s2 = await open();
      await sleep(50); // let the listener accept both (and read nothing) before the third arrives
      const s3 = await open();
      await closed(s1); // the oldest silent connection makes room for the newcomer
      assert.ok(
        hasLog(b, /sent no valid hello and its slot went to a newer connection \(limit 2 unidentified\)/),
        b.logs.join('\n'),
      );
      assert.equal(s3.destroyed, false, 'the newcomer was admitted');
      await Promise.all([closed(s2), closed(s3)]);
      assert.equal(
        b.logs.filter((l) => /handshake timed out after 300 ms/.test(l)).length,
        1,
        'timeouts are throttled',
      );
      assert.equal(b.decodes.n, 0);
    } finally {
      for (const s of raw) s.destroy();
      await b.t.close();
    }
  },
);
