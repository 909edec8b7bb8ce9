// Proves TcpTransport's lanes keep the Transport lane contract with real sockets: `send` without
// a lane uses the control lane; each lane has its own bounded queue (messages and bytes), so a
// full bulk lane never refuses a control message; order holds within each lane; the bulk lane
// dials only when first used and reports no peer events; a stalled bulk connection (its reader
// never reads, so its socket and queue fill) does not delay control messages; a bulk flush
// yields the event loop after its per-turn byte budget while a control flush does not; each lane
// reconnects after a peer restarts; and a hello naming an unknown lane is refused and logged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { nodeId } from '../lib/ids.js';
import { exampleCodec, type ExampleMessage } from '../transport/example-message.js';
import { FrameDecoder, FRAME_HEADER_BYTES, encodeFrame } from '../transport/frame-decoder.js';
import { HANDSHAKE_NONCE_BYTES, decodeHandshakeRecord, encodeHandshakeRecord } from '../transport/handshake-record.js';
import type { Lane } from '../transport/transport.js';
import { HOST, MitmProxy, closeAll, hasLog, ping, startNode, waitFor, type TestNode } from '../testing/tcp-support.js';
import { generateClusterKey } from './cluster-key.js';

const BULK_BASE = 1_000_000;

/** The seqs `n` received on each lane, told apart by range (bulk seqs start at `BULK_BASE`). */
function byLane(n: TestNode): Record<Lane, number[]> {
  const out: Record<Lane, number[]> = { control: [], bulk: [] };
  for (const { m } of n.inbox) {
    if (m.type !== 'ping') continue;
    if (m.seq >= BULK_BASE) out.bulk.push(m.seq - BULK_BASE);
    else out.control.push(m.seq);
  }
  return out;
}

function bulkPing(seq: number, bytes = 8): ExampleMessage {
  return ping(BULK_BASE + seq, bytes);
}

test(
  'send defaults to the control lane; each lane has its own bounds; queued messages leave on connect',
  { timeout: 20_000 },
  async () => {
    const key = generateClusterKey();
    const size = exampleCodec().encode(bulkPing(0, 1000)).length;
    const a = await startNode(1, {
      key,
      peers: [2],
      limits: { controlQueueMessagesMax: 4, bulkQueueMessagesMax: 6 },
    });
    const b = await startNode(2, { key, peers: [1] });
    const c = await startNode(3, { key, peers: [2], limits: { bulkQueueBytesMax: 3 * size + 1 } });
    try {
      const control = Array.from({ length: 5 }, (_, i) => a.t.send(b.id, ping(i)));
      assert.deepEqual(control, [true, true, true, true, false], 'the control lane holds 4');
      const bulk = Array.from({ length: 7 }, (_, i) => a.t.send(b.id, bulkPing(i), 'bulk'));
      assert.deepEqual(bulk, [true, true, true, true, true, true, false], 'the bulk lane holds 6 more');
      assert.equal(a.t.send(b.id, ping(99), 'control'), false, 'control is still full');
      const status = a.t.status()[0];
      assert.ok(status !== undefined);
      assert.deepEqual([status.queuedMessages, status.refusedMessages], [4, 2]);
      assert.deepEqual([status.bulk.queuedMessages, status.bulk.refusedMessages], [6, 1]);
      assert.deepEqual(
        Array.from({ length: 4 }, (_, i) => c.t.send(b.id, bulkPing(i, 1000), 'bulk')),
        [true, true, true, false],
        'the bulk byte bound',
      );
      assert.equal(c.t.send(b.id, ping(0, 1000)), true, 'a full bulk lane does not refuse control');

      a.t.setPeerAddress(b.id, b.address);
      await waitFor(() => b.inbox.length === 10, 'both lanes delivered once connected');
      assert.deepEqual(byLane(b), { control: [0, 1, 2, 3], bulk: [0, 1, 2, 3, 4, 5] });
      await waitFor(() => b.t.status()[0]?.bulk.inboundConnected === true, 'b sees the bulk connection');
      assert.equal(a.t.status()[0]?.bulk.state, 'open');
      assert.deepEqual(a.ups, [2], 'only the control lane reports the peer up');
    } finally {
      await closeAll(a.t, b.t, c.t);
    }
  },
);

test('order holds within each lane; the bulk lane dials only when first used', { timeout: 20_000 }, async () => {
  const key = generateClusterKey();
  const a = await startNode(1, { key, peers: [2] });
  const b = await startNode(2, { key, peers: [1] });
  try {
    a.t.setPeerAddress(b.id, b.address);
    a.t.send(b.id, ping(0));
    await waitFor(() => b.inbox.length === 1, 'first control message');
    assert.equal(a.t.status()[0]?.bulk.state, 'idle', 'no bulk connection before bulk traffic');
    const sent: Record<Lane, number> = { control: 1, bulk: 0 };
    for (let i = 0; i < 3000; i++) {
      const lane: Lane = (i * 7919) % 3 === 0 ? 'control' : 'bulk';
      const seq = sent[lane]++;
      const message = lane === 'bulk' ? bulkPing(seq, (i * 31) % 5000) : ping(seq, i % 40);
      assert.equal(a.t.send(b.id, message, lane), true);
    }
    await waitFor(() => b.inbox.length === 3001, 'every message');
    const got = byLane(b);
    assert.deepEqual(
      got.control,
      Array.from({ length: sent.control }, (_, i) => i),
    );
    assert.deepEqual(
      got.bulk,
      Array.from({ length: sent.bulk }, (_, i) => i),
    );
  } finally {
    await closeAll(a.t, b.t);
  }
});

test(
  'a stalled bulk connection fills its own queue and never holds up control messages',
  { timeout: 30_000 },
  async () => {
    const key = generateClusterKey();
    const receiver = await startNode(2, { key, peers: [1] });
    const proxy = new MitmProxy(receiver.address, (_i, f) => ({ forward: [f] }));
    const sender = await startNode(1, { key, peers: [2], limits: { bulkQueueMessagesMax: 32 } });
    try {
      proxy.stallLane('bulk');
      sender.t.setPeerAddress(receiver.id, await proxy.start());
      await waitFor(() => sender.ups.length === 1, 'control connected');
      let accepted = 0;
      // 64 KiB messages: the kernel buffers a few MiB of the stalled socket, then the queue fills.
      for (let i = 0; i < 2000 && sender.t.send(receiver.id, bulkPing(i, 64 * 1024), 'bulk'); i++) {
        accepted++;
        if (i % 8 === 0) await new Promise((resolve) => setTimeout(resolve, 1));
      }
      assert.ok(accepted < 2000, 'the stalled bulk lane pushed back');
      assert.equal(sender.t.status()[0]?.bulk.queuedMessages, 32, 'the bulk queue is at its bound');
      for (let i = 0; i < 50; i++) assert.equal(sender.t.send(receiver.id, ping(i)), true, 'control still accepted');
      await waitFor(() => byLane(receiver).control.length === 50, 'control messages delivered past the stall');
      assert.deepEqual(
        byLane(receiver).control,
        Array.from({ length: 50 }, (_, i) => i),
      );
      assert.deepEqual(sender.downs, [], 'a stalled bulk lane is not a peer down');
    } finally {
      await closeAll(sender.t, receiver.t, proxy);
    }
  },
);

test(
  'a bulk flush yields the event loop after its byte budget; a control flush does not',
  { timeout: 20_000 },
  async () => {
    const key = generateClusterKey();
    // Tiny batches and a 1 KiB budget; 400 small messages stay below the socket's high-water
    // mark, so only the budget can stop a flush before the queue is empty.
    const limits = { batchBytesTarget: 256, bulkFlushBytesPerTurn: 1024 };
    const a = await startNode(1, { key, peers: [2], limits });
    const b = await startNode(2, { key, peers: [1] });
    try {
      a.t.setPeerAddress(b.id, b.address);
      a.t.send(b.id, bulkPing(0), 'bulk');
      await waitFor(() => b.inbox.length === 1, 'both lanes connected');
      for (const lane of ['control', 'bulk'] as const) {
        for (let i = 1; i <= 400; i++) a.t.send(b.id, lane === 'bulk' ? bulkPing(i) : ping(i), lane);
        await nextTurn(); // the flush microtask ran; a bulk continuation has not
        const st = a.t.status()[0];
        assert.ok(st !== undefined);
        const left = lane === 'bulk' ? st.bulk.queuedMessages : st.queuedMessages;
        if (lane === 'bulk') assert.ok(left > 300, `the bulk flush yielded after about 1 KiB (${left} left)`);
        else assert.equal(left, 0, 'the control flush wrote everything in one turn');
      }
      await waitFor(() => b.inbox.length === 801, 'everything delivered');
      assert.deepEqual(
        byLane(b).bulk,
        Array.from({ length: 401 }, (_, i) => i),
      );
    } finally {
      await closeAll(a.t, b.t);
    }
  },
);

test('both lanes reconnect after the peer restarts; peer events stay about control', { timeout: 20_000 }, async () => {
  const key = generateClusterKey();
  const a = await startNode(1, { key, peers: [2] });
  let b = await startNode(2, { key, peers: [1] });
  try {
    a.t.setPeerAddress(b.id, b.address);
    a.t.send(b.id, bulkPing(0), 'bulk');
    await waitFor(() => b.inbox.length === 1, 'first bulk delivery');
    await b.t.close();
    await waitFor(() => a.downs.length === 1, 'peer down');
    b = await startNode(2, { key, peers: [1], port: b.address.port });
    await waitFor(() => a.ups.length === 2, 'peer up again');
    a.t.send(b.id, bulkPing(1), 'bulk');
    a.t.send(b.id, ping(1));
    await waitFor(() => b.inbox.length === 2, 'delivery on both lanes to the restarted peer');
    assert.deepEqual(byLane(b), { control: [1], bulk: [1] });
    assert.deepEqual([a.ups.length, a.downs.length], [2, 1], 'one up and one down per control connection');
  } finally {
    await closeAll(a.t, b.t);
  }
});

test('a hello naming an unknown lane is refused with its reason and logged', { timeout: 20_000 }, async () => {
  const key = generateClusterKey();
  const b = await startNode(2, { key, peers: [1] });
  const socket = connect({ host: HOST, port: b.address.port });
  try {
    const hello = encodeHandshakeRecord({
      kind: 'hello',
      mode: 'aes-256-gcm',
      clusterName: 'test-cluster',
      clientId: nodeId(1),
      dialedId: nodeId(2),
      laneCode: 9,
      incarnation: 1,
      instance: randomBytes(8),
      clientNonce: randomBytes(HANDSHAKE_NONCE_BYTES),
    });
    const answer = new Promise<Uint8Array>((resolve, reject) => {
      const decoder = new FrameDecoder({ bodyBytesMin: 5, bodyBytesMax: 256 });
      socket.on('data', (d: Buffer) => {
        decoder.push(d);
        const frame = decoder.next();
        if (frame !== undefined) resolve(frame);
      });
      socket.on('error', reject);
    });
    socket.write(encodeFrame(hello));
    const record = decodeHandshakeRecord((await answer).subarray(FRAME_HEADER_BYTES));
    assert.deepEqual(record, { kind: 'refusal', reason: 'unknown-lane' });
    await waitFor(
      () => hasLog(b, /claiming node 1: the connection names a lane this node does not know.*lane code 9/),
      'the refusal log line',
    );
    assert.equal(b.decodes.n, 0);
  } finally {
    socket.destroy();
    await b.t.close();
  }
});
