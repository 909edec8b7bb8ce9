// Proves, with real sockets on 127.0.0.1, that TcpTransport delivers in both directions with
// the sender's authenticated id; refuses a peer with the wrong key, cluster name or id before
// any message is decoded and logs why; rejects tampered, truncated, replayed and reordered
// frames (injected by a man-in-the-middle proxy) by closing the connection, then recovers by
// reconnecting; reconnects after a peer restarts; bounds its send queue (send returns false)
// under both an unreachable peer and socket backpressure; bounds unauthenticated sockets, and
// under a flood of idle connections from another (unprivileged) process admits a peer at once
// with bounded descriptors and log lines; and
// keeps one process per node id: a second process of a connected id with an incarnation no
// higher is refused with an authenticated notice (nothing it sends is delivered, the running
// one keeps its connection), while a higher incarnation (a restart) replaces the old process.
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
import { readdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { startFlood, type Flood } from '../testing/flood-process.js';

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

test(
  'one process per node id: an equal or lower incarnation is told it is a duplicate, a higher one replaces the old process',
  { timeout: 30_000 },
  async () => {
    const key = generateClusterKey();
    const a = await startNode(1, { key, peers: [2] });
    const running = await startNode(2, { key, peers: [1], incarnation: 3 });
    const copies: TestNode[] = [];
    try {
      running.t.setPeerAddress(a.id, a.address);
      await waitFor(() => running.ups.length === 1, 'the running process connected');
      running.t.send(a.id, ping(1));
      await waitFor(() => seqs(a).includes(1), 'a delivery from the running process');
      for (const incarnation of [3, 2]) {
        const copy = await startNode(2, { key, peers: [1], incarnation });
        copies.push(copy);
        copy.t.setPeerAddress(a.id, a.address);
        copy.t.send(a.id, ping(100 + incarnation));
        await waitFor(
          () => copy.duplicates.length >= 1,
          `the copy of incarnation ${incarnation} hears it is a duplicate`,
        );
        assert.deepEqual(
          { ...copy.duplicates[0], byAddress: '' },
          { by: 1, byAddress: '', runningIncarnation: 3, runningHost: HOST, ourIncarnation: incarnation },
        );
        assert.ok(
          hasLog(copy, /another process already runs our node id 2 \(incarnation 3, connected from 127\.0\.0\.1/),
        );
      }
      await closeAll(...copies.map((c) => c.t));
      assert.equal(
        a.logs.filter((l) =>
          /two processes share node id 2 \(a copied configuration\?\); told the newcomer to stop/.test(l),
        ).length,
        1,
        'one warning per window',
      );
      running.t.send(a.id, ping(2));
      await waitFor(() => seqs(a).includes(2), 'the running process still delivers');
      assert.deepEqual(seqs(a), [1, 2], 'nothing from the copies was delivered');
      assert.deepEqual(
        [running.downs.length, running.duplicates.length],
        [0, 0],
        'the running process was undisturbed',
      );

      // A new process with a higher incarnation is a restart: it takes over, the old one is cut off.
      const restarted = await startNode(2, { key, peers: [1], incarnation: 4 });
      copies.push(restarted);
      restarted.t.setPeerAddress(a.id, a.address);
      restarted.t.send(a.id, ping(3));
      await waitFor(() => seqs(a).includes(3), 'a delivery from the restarted process');
      assert.ok(hasLog(a, /node 2 restarted as incarnation 4 \(was 3\); closing the old process's connections/));
      await waitFor(() => running.downs.length >= 1, 'the old process lost its connection');
      await waitFor(() => running.duplicates.length >= 1, 'the old process, redialing, hears it is now the duplicate');
    } finally {
      await closeAll(a.t, running.t, ...copies.map((c) => c.t));
    }
  },
);

test(
  'an idle flood of the peer port neither keeps a peer out nor exhausts descriptors nor floods the log',
  { timeout: 60_000 },
  async () => {
    const key = generateClusterKey();
    // A long handshake deadline: held connections would shut a peer out for 10 s at a time.
    const a = await startNode(1, { key, peers: [2], limits: { handshakeTimeoutMs: 10_000 } });
    const fds = (): number => readdirSync('/proc/self/fd').length;
    const before = fds();
    let flood: Flood | null = startFlood(a.address.port, 3000);
    try {
      await flood.started;
      await sleep(1500); // the flood fills the listener's budget and the accept queue
      let fdsMax = 0;
      const sampler = setInterval(() => (fdsMax = Math.max(fdsMax, fds())), 50);
      const b = await startNode(2, { key, peers: [1] });
      try {
        const t0 = performance.now();
        b.t.setPeerAddress(a.id, a.address);
        b.t.send(a.id, ping(1));
        await waitFor(() => seqs(a).includes(1), 'a delivery from the peer under the flood', 5000);
        const ms = performance.now() - t0;
        await sleep(1000);
        const report = await flood.stop();
        flood = null;
        clearInterval(sampler);
        process.stderr.write(
          `# peer admitted under an idle flood in ${Math.round(ms)} ms; flood ${JSON.stringify(report)}; descriptors ${before} before, at most ${fdsMax}\n`,
        );
        assert.ok(report.closedByServer > 100, `the flood churned (${report.closedByServer} closed by the listener)`);
        // The budget holds 64 unidentified connections; the rest is this process's own (and b's).
        assert.ok(fdsMax - before < 64 + 40, `descriptors grew by ${fdsMax - before}`);
        const floodLines = a.logs.filter((l) => /flooding the (peer|cluster) port|handshake timed out/.test(l));
        assert.ok(floodLines.length <= 5, `${floodLines.length} flood lines:\n${floodLines.slice(0, 5).join('\n')}`);
      } finally {
        clearInterval(sampler);
        await b.t.close();
      }
    } finally {
      flood?.kill();
      await a.t.close();
    }
  },
);
