// Proves the in-memory transport keeps the Transport contract the way the TCP path does: every
// message goes through the codec (encoded at send, so later mutation cannot leak; undecodable
// bytes dropped and counted), delivery is never inside `send` and runs in FIFO order, each link
// is bounded (send returns false past it), a message to a detached node or over a cut link is
// lost, a restarted endpoint never gets what was addressed to its previous attachment's
// sender epoch, and peers hear onPeerUp/onPeerDown as endpoints attach, detach and links change.
// Lanes: `send` without a lane uses control; each lane of a link has its own bounds (messages,
// bytes), order holds within a lane, and control deliveries overtake a bulk backlog.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DecodeError } from '../lib/errors.js';
import { nodeId, type NodeId } from '../lib/ids.js';
import { MemoryNetwork, type MemoryNetworkOptions } from './memory-transport.js';
import type { Codec, TransportHandlers } from './transport.js';

interface Msg {
  n: number;
  text: string;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function jsonCodec(counts: { encoded: number; decoded: number }): Codec<Msg> {
  return {
    encode: (m) => {
      counts.encoded++;
      return encoder.encode(JSON.stringify(m));
    },
    decode: (b) => {
      counts.decoded++;
      const v = JSON.parse(decoder.decode(b)) as Msg;
      if (v.text === 'poison') throw new DecodeError('MESSAGE_INVALID', 'poison');
      return v;
    },
  };
}

/** A manual scheduler: nothing runs until `run()`. */
function manual(): { schedule: (fn: () => void) => void; run: () => number } {
  const queue: (() => void)[] = [];
  return {
    schedule: (fn) => queue.push(fn),
    run: () => {
      let n = 0;
      for (let fn = queue.shift(); fn !== undefined; fn = queue.shift()) {
        fn();
        n++;
      }
      return n;
    },
  };
}

function recorder(log: string[], self: number): TransportHandlers<Msg> {
  return {
    onMessage: (from, m) => log.push(`${self}<-${from} ${m.n} ${m.text}`),
    onPeerUp: (p) => log.push(`${self} up ${p}`),
    onPeerDown: (p) => log.push(`${self} down ${p}`),
  };
}

const A = nodeId(1);
const B = nodeId(2);
const C = nodeId(3);

function setup(laneLimits?: MemoryNetworkOptions<Msg>['laneLimits']) {
  const counts = { encoded: 0, decoded: 0 };
  const sched = manual();
  const net = new MemoryNetwork<Msg>({
    codec: jsonCodec(counts),
    schedule: sched.schedule,
    ...(laneLimits === undefined ? {} : { laneLimits }),
  });
  const log: string[] = [];
  const attach = (id: NodeId, peers: NodeId[]) => {
    const t = net.endpoint(id, peers);
    t.setHandlers(recorder(log, id));
    return t;
  };
  return { counts, sched, net, log, attach };
}

test('messages are encoded at send, delivered later in order through the codec, never inside send', () => {
  const { counts, sched, net, log, attach } = setup();
  const a = attach(A, [B]);
  attach(B, [A]);
  sched.run();
  log.length = 0;
  const m: Msg = { n: 1, text: 'first' };
  assert.equal(a.send(B, m), true);
  m.text = 'mutated after send';
  assert.equal(a.send(B, { n: 2, text: 'second' }), true);
  assert.deepEqual(log, [], 'nothing is delivered inside send');
  assert.equal(counts.encoded, 2);
  sched.run();
  assert.deepEqual(log, ['2<-1 1 first', '2<-1 2 second']);
  assert.equal(counts.decoded, 2);
  assert.equal(net.stats.delivered, 2);
});

test('each directed link is bounded: send returns false past it and counts the refusal', () => {
  const { sched, net, log, attach } = setup({ control: { messagesMax: 2 } });
  const a = attach(A, [B]);
  attach(B, [A]);
  assert.equal(a.send(B, { n: 1, text: 'x' }), true);
  assert.equal(a.send(B, { n: 2, text: 'x' }), true);
  assert.equal(a.send(B, { n: 3, text: 'x' }), false);
  assert.equal(net.stats.refused, 1);
  assert.equal(a.status()[0]?.queuedMessages, 2);
  assert.equal(a.status()[0]?.refusedMessages, 1);
  sched.run();
  assert.equal(log.filter((l) => l.startsWith('2<-1')).length, 2);
  assert.equal(a.send(B, { n: 4, text: 'x' }), true, 'room again once delivered');
  assert.equal(a.send(C, { n: 5, text: 'x' }), false, 'not a peer');
});

test('undecodable bytes are dropped and counted, as a TCP link drops a bad frame', () => {
  const { sched, net, log, attach } = setup();
  const a = attach(A, [B]);
  attach(B, [A]);
  sched.run();
  log.length = 0;
  a.send(B, { n: 1, text: 'poison' });
  a.send(B, { n: 2, text: 'fine' });
  sched.run();
  assert.deepEqual(log, ['2<-1 2 fine']);
  assert.equal(net.stats.undecodable, 1);
});

test('peers hear up and down; messages to a detached node or over a cut link are lost; a restart starts a new epoch', async () => {
  const { sched, net, log, attach } = setup();
  const a = attach(A, [B, C]);
  const b = attach(B, [A, C]);
  attach(C, [A, B]);
  sched.run();
  assert.deepEqual(log.filter((l) => l.startsWith('1 ')).sort(), ['1 up 2', '1 up 3']);
  log.length = 0;

  // In flight from B when B crashes: lost (its connection is gone), even if B restarts at once.
  b.send(A, { n: 1, text: 'from the old B' });
  await b.close();
  const b2 = attach(B, [A, C]);
  sched.run();
  assert.ok(!log.some((l) => l.includes('from the old B')), log.join('\n'));
  assert.ok(log.includes('1 down 2') && log.includes('1 up 2'), log.join('\n'));
  assert.equal(b.send(A, { n: 2, text: 'closed' }), false, 'a closed endpoint refuses');

  log.length = 0;
  net.setLink(A, B, false);
  assert.equal(net.linked(A, B), false);
  a.send(B, { n: 3, text: 'over a cut link' });
  a.send(C, { n: 4, text: 'to C' });
  sched.run();
  assert.deepEqual(log.sort(), ['1 down 2', '3<-1 4 to C', '2 down 1'].sort());
  net.setLink(A, B, true);
  b2.send(A, { n: 5, text: 'healed' });
  sched.run();
  assert.ok(log.includes('1 up 2') && log.includes('2 up 1') && log.includes('1<-2 5 healed'), log.join('\n'));
  assert.ok(net.stats.lost >= 2);
  assert.deepEqual(
    a.status().map((s) => [s.peer, s.state]),
    [
      [2, 'open'],
      [3, 'open'],
    ],
  );
});

test('lanes: the default is control; each lane has its own bounds; a full bulk lane never refuses control', () => {
  const size = new TextEncoder().encode(JSON.stringify({ n: 1, text: 'x' })).length;
  const { sched, log, attach } = setup({ control: { messagesMax: 2 }, bulk: { messagesMax: 10, bytesMax: 3 * size } });
  const a = attach(A, [B]);
  attach(B, [A]);
  sched.run();
  log.length = 0;
  assert.deepEqual(
    [1, 2, 3].map((n) => a.send(B, { n, text: 'x' })),
    [true, true, false],
  );
  assert.deepEqual(
    [4, 5, 6, 7].map((n) => a.send(B, { n, text: 'x' }, 'bulk')),
    [true, true, true, false],
    'the bulk byte bound',
  );
  assert.equal(a.send(B, { n: 8, text: 'x' }, 'control'), false, 'control stays full');
  const st = a.status()[0];
  assert.ok(st !== undefined);
  assert.deepEqual(
    [st.queuedMessages, st.refusedMessages, st.bulk.queuedMessages, st.bulk.refusedMessages],
    [2, 2, 3, 1],
  );
  sched.run();
  assert.equal(log.length, 5);
});

test('lanes: order holds within each lane and control overtakes a bulk backlog', () => {
  const { sched, log, attach } = setup();
  const a = attach(A, [B]);
  attach(B, [A]);
  sched.run();
  log.length = 0;
  for (let n = 0; n < 5; n++) a.send(B, { n, text: 'bulk' }, 'bulk');
  a.send(B, { n: 0, text: 'control' });
  a.send(B, { n: 1, text: 'control' }, 'control');
  sched.run();
  assert.deepEqual(log, [
    '2<-1 0 control',
    '2<-1 1 control',
    '2<-1 0 bulk',
    '2<-1 1 bulk',
    '2<-1 2 bulk',
    '2<-1 3 bulk',
    '2<-1 4 bulk',
  ]);
});
