// Proves, with real sockets on 127.0.0.1, when TcpTransport reports `onPeerGone`: a peer whose
// process ends (its transport closes its listener and sockets, as the kernel does for a killed
// process) is reported gone once, within a round trip of the loss, naming the incarnation its
// hello announced, and a restarted process is a new incarnation reported on its own; a
// connection cut while the peer's process lives (a proxy between us cuts it, then even refuses
// our reconnect) is never reported: the peer's own connection to us still stands; and with
// `reportPeerGone` off the proof is only logged. The SIGSTOP
// side (a stopped process is never reported) runs on real processes in src/node/fast-fail.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';
import { MitmProxy, closeAll, hasLog, ping, startNode, waitFor } from '../testing/tcp-support.js';
import { generateClusterKey } from './cluster-key.js';

test(
  'a peer whose process ends is reported gone once, naming its incarnation; a restart is a new one',
  {
    timeout: 20_000,
  },
  async () => {
    const key = generateClusterKey();
    const a = await startNode(1, { key, peers: [2], incarnation: 1 });
    let b = await startNode(2, { key, peers: [1], incarnation: 3 });
    try {
      a.t.setPeerAddress(b.id, b.address);
      b.t.setPeerAddress(a.id, a.address);
      await waitFor(() => a.ups.length === 1 && b.ups.length === 1, 'both control links up');
      a.t.send(b.id, ping(1));
      await waitFor(() => b.inbox.length === 1, 'a delivery');
      const closedAt = performance.now();
      await b.t.close();
      await waitFor(() => a.gones.length === 1, 'node 2 reported gone');
      const first = a.gones[0];
      assert.ok(first !== undefined);
      assert.deepEqual({ peer: first.peer, incarnation: first.incarnation }, { peer: 2, incarnation: 3 });
      const ms = first.atMs - closedAt;
      process.stderr.write(`# close -> onPeerGone: ${ms.toFixed(1)} ms\n`);
      assert.ok(ms < 1000, `reported within a second of the end (took ${ms.toFixed(0)} ms)`);
      assert.ok(hasLog(a, /node 2 \(incarnation 3\) is gone: its connections were closed by its host/));
      await sleep(300); // redials keep being refused: nothing more is reported for incarnation 3
      assert.equal(a.gones.length, 1, 'reported once per incarnation');

      b = await startNode(2, { key, peers: [1], incarnation: 4, port: b.address.port });
      b.t.setPeerAddress(a.id, a.address);
      await waitFor(() => a.ups.length === 2 && b.ups.length === 1, 'the restarted process is connected both ways');
      assert.equal(a.gones.length, 1, 'a live restarted process is not reported');
      await b.t.close();
      await waitFor(() => a.gones.length === 2, 'the restarted process reported gone');
      assert.equal(a.gones[1]?.incarnation, 4, 'the evidence names the process that ended');
    } finally {
      await closeAll(a.t, b.t);
    }
  },
);

test(
  'a connection cut while the peer lives is never reported gone, even when the reconnect is refused',
  {
    timeout: 20_000,
  },
  async () => {
    const key = generateClusterKey();
    const a = await startNode(1, { key, peers: [2], incarnation: 1 });
    const b = await startNode(2, { key, peers: [1], incarnation: 2 });
    // Node 1 reaches node 2 through a proxy that cuts the first connection after its first data
    // frame: to node 1 the cut looks exactly like the peer's side closing.
    const proxy = new MitmProxy(b.address, (index, frame) => ({ forward: [frame], thenCut: index === 2 }));
    const via = await proxy.start();
    try {
      a.t.setPeerAddress(b.id, via);
      b.t.setPeerAddress(a.id, a.address);
      await waitFor(() => a.ups.length === 1 && b.ups.length === 1, 'both control links up');
      a.t.send(b.id, ping(1));
      await waitFor(() => a.downs.length === 1, 'the cut seen as a loss');
      await waitFor(() => a.ups.length === 2, 'redialed through the proxy at once, and answered');
      // Now the proxy stops listening and cuts again: the loss is the peer side's, the reconnect
      // is refused, but node 2's own connection to node 1 stands: its process lives.
      await proxy.close();
      await waitFor(() => a.downs.length === 2, 'the second cut seen');
      await sleep(700); // several refused redials, past the evidence window
      assert.deepEqual(a.gones, [], 'no proof without the peer closing its own connection to us');
      await assert.rejects(
        new Promise<void>((resolve, reject) => {
          const probe = connect({ host: via.host, port: via.port });
          probe.once('connect', () => {
            probe.destroy();
            resolve();
          });
          probe.once('error', reject);
        }),
        /ECONNREFUSED/,
        'the reconnects are refused',
      );
    } finally {
      await closeAll(a.t, b.t);
    }
  },
);

test(
  'with reportPeerGone off the proof is only logged: the node waits out its timeouts',
  { timeout: 20_000 },
  async () => {
    const key = generateClusterKey();
    const a = await startNode(1, { key, peers: [2], incarnation: 1, reportPeerGone: false });
    const b = await startNode(2, { key, peers: [1], incarnation: 5 });
    try {
      a.t.setPeerAddress(b.id, b.address);
      b.t.setPeerAddress(a.id, a.address);
      await waitFor(() => a.ups.length === 1 && b.ups.length === 1, 'both control links up');
      await b.t.close();
      await waitFor(
        () => hasLog(a, /node 2 \(incarnation 5\) is gone: .* \(not acted on: timeouts\.processGoneProof is off/),
        'the proof logged',
      );
      assert.deepEqual(a.gones, [], 'not reported to the node');
    } finally {
      await closeAll(a.t, b.t);
    }
  },
);
