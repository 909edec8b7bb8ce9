// Proves the per-node gate and the network model: a paused node receives nothing (messages and
// timers are held) and gets everything in order on resume; a crash drops timers, held callbacks
// and in-flight deliveries, and a restart is a new incarnation on the same disk; clock drift
// scales both the clock and timer delays; partitions drop messages and produce peer events;
// messages are encoded and decoded (never shared), and a decode failure is reported; each lane
// of a link has its own in-flight bound (a full bulk lane never refuses control; the default
// lane is control).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DecodeError } from '../lib/errors.js';
import { nodeId, type NodeId } from '../lib/ids.js';
import { Prng } from '../lib/prng.js';
import type { NodeEnv } from '../runtime/env.js';
import type { Codec } from '../transport/transport.js';
import { SimDisk } from './disk.js';
import { SimNetwork, type NetworkParams } from './network.js';
import { SimNode } from './node-host.js';
import { makePartition } from './partition.js';
import { msToUs, Scheduler } from './scheduler.js';
import { SIM_BULK_LINK_IN_FLIGHT_MAX, SIM_LINK_IN_FLIGHT_MAX } from '../constants.js';

interface Msg {
  n: number;
  text: string;
}
const jsonCodec: Codec<Msg> = {
  encode: (m) => new TextEncoder().encode(JSON.stringify(m)),
  decode: (b) => {
    const v = JSON.parse(new TextDecoder().decode(b)) as Msg;
    if (v.n < 0) throw new DecodeError('DECODE_RANGE', 'negative n');
    return v;
  },
};
const perfectNet: NetworkParams = { latencyMinUs: 1000, latencyMeanUs: 0, lossProbability: 0, duplicateProbability: 0 };

/** A node program that logs what reaches it. */
class Recorder {
  readonly log: string[] = [];
  readonly messages: Msg[] = [];
  constructor(readonly env: NodeEnv<Msg>) {
    env.transport.setHandlers({
      onMessage: (from, m) => {
        this.messages.push(m);
        this.log.push(`msg ${from}:${m.n}`);
      },
      onPeerUp: (p) => this.log.push(`up ${p}`),
      onPeerDown: (p) => this.log.push(`down ${p}`),
    });
  }
}

function cluster(count: number, rates: number[] = []) {
  const scheduler = new Scheduler();
  const prng = new Prng(5);
  const nodes = new Map<NodeId, SimNode<Msg, Recorder>>();
  const codecErrors: string[] = [];
  const ids = Array.from({ length: count }, (_, i) => nodeId(i + 1));
  const host = {
    isUp: (n: NodeId) => (nodes.get(n)?.state ?? 'down') !== 'down',
    incarnationOf: (n: NodeId) => nodes.get(n)?.incarnation ?? 0,
    deliver: (n: NodeId, inc: number, fn: () => void) => {
      nodes.get(n)?.run(inc, fn, true);
    },
    codecError: (from: NodeId, to: NodeId, e: DecodeError) => {
      codecErrors.push(`${from}->${to} ${e.code}`);
    },
  };
  const network = new SimNetwork<Msg>(scheduler, prng.fork('net'), perfectNet, ids, jsonCodec, host);
  for (const id of ids) {
    const holder: { node?: SimNode<Msg, Recorder> } = {};
    const disk = new SimDisk({
      prng: prng.fork(`disk${id}`),
      schedule: (ms, fn) => {
        const n = holder.node!;
        const inc = n.incarnation;
        scheduler.after(msToUs(ms), () => {
          n.run(inc, fn);
        });
      },
    });
    const machine = { clockRate: rates[id - 1] ?? 1, clockOffsetMs: 1000 * id };
    holder.node = new SimNode<Msg, Recorder>(
      id,
      scheduler,
      network,
      disk,
      machine,
      prng.fork(id),
      { codec: jsonCodec, start: (env) => new Recorder(env) },
      () => undefined,
    );
    nodes.set(id, holder.node);
  }
  for (const n of nodes.values()) n.start();
  const node = (i: number) => nodes.get(nodeId(i))!;
  return { scheduler, network, node, codecErrors, ids };
}

test('a paused node gets nothing until resume, then everything in arrival order', () => {
  const c = cluster(2);
  c.scheduler.runUntil(100);
  const b = c.node(2);
  const before = b.instance!.log.length;
  b.pause();
  let fired = 0;
  b.instance!.env.timers.after(1, () => fired++);
  for (let i = 1; i <= 3; i++) c.node(1).instance!.env.transport.send(nodeId(2), { n: i, text: 'x' });
  c.scheduler.runUntil(50_000);
  assert.equal(b.instance!.log.length, before, 'nothing delivered while paused');
  assert.equal(fired, 0, 'no timer fired while paused');
  b.resume();
  c.scheduler.runUntil(60_000);
  assert.deepEqual(b.instance!.log.slice(before), ['msg 1:1', 'msg 1:2', 'msg 1:3']);
  assert.equal(fired, 1);
});

test('a crash drops timers and in-flight messages; a restart is a new incarnation', () => {
  const c = cluster(2);
  c.scheduler.runUntil(100);
  const b = c.node(2);
  const old = b.instance!;
  let fired = 0;
  old.env.timers.after(5, () => fired++);
  c.node(1).instance!.env.transport.send(nodeId(2), { n: 7, text: 'in flight' });
  b.crash();
  assert.equal(b.instance, undefined);
  assert.equal(
    c.node(1).instance!.env.transport.send(nodeId(2), { n: 8, text: 'to a dead node' }),
    true,
    'a send to a down peer is accepted and lost',
  );
  c.scheduler.runUntil(200);
  b.start();
  assert.equal(b.incarnation, 2);
  c.scheduler.runUntil(20_000);
  assert.equal(fired, 0, "the old incarnation's timer never fired");
  assert.ok(!old.log.some((l) => l.startsWith('msg')), 'the old incarnation received nothing after the crash');
  assert.ok(
    !b.instance!.log.some((l) => l.startsWith('msg')),
    'messages sent to the old incarnation are not delivered to the new one',
  );
  assert.ok(
    c.node(1).instance!.log.includes('down 2') && c.node(1).instance!.log.at(-1) === 'up 2',
    'the peer saw the node go down and come back',
  );
});

test('an ended process issues no I/O: a disk write or send reaching it outside the gate asserts (seed 2304086302)', () => {
  // The cluster driver once called a node it had just power-cycled: the dead instance's WAL
  // write went to the disk's fresh queue, its completion was dropped by the gate, and the next
  // incarnation's WAL waited behind it for good.
  const c = cluster(2);
  c.scheduler.runUntil(100);
  const b = c.node(2);
  const old = b.instance!;
  b.crash();
  const noop = (): void => undefined;
  assert.throws(() => {
    old.env.disk.write('wal', 0, new Uint8Array(4), noop);
  }, /incarnation 1 issued a disk write after its process ended/);
  assert.throws(() => {
    old.env.disk.syncDir(noop);
  }, /issued a disk syncDir/);
  assert.throws(
    () => old.env.transport.send(nodeId(1), { n: 1, text: 'zombie' }),
    /incarnation 1 issued a send after its process ended/,
  );
  assert.equal(old.env.disk.read('wal'), null, 'reads stay allowed and nothing was written');
  b.start();
  assert.throws(
    () => {
      old.env.disk.sync('wal', noop);
    },
    /incarnation 1 issued a disk sync/,
    'an older incarnation stays refused after a restart',
  );
  let done = 0;
  b.instance!.env.disk.write('wal', 0, new Uint8Array(4), (e) => {
    assert.equal(e, null);
    done++;
  });
  c.scheduler.runUntil(20_000);
  assert.equal(done, 1, "the new incarnation's write completes");
});

test('clock drift scales the clock and timer delays', () => {
  const c = cluster(2, [1.05, 0.95]);
  const fast = c.node(1).instance!.env;
  const slow = c.node(2).instance!.env;
  const t0 = [fast.clock.nowMs(), slow.clock.nowMs()];
  const firedAt: number[] = [];
  fast.timers.after(1000, () => firedAt.push(c.scheduler.nowUs));
  slow.timers.after(1000, () => firedAt.push(c.scheduler.nowUs));
  c.scheduler.runUntil(2_000_000);
  assert.deepEqual(firedAt, [msToUs(1000 / 1.05), msToUs(1000 / 0.95)]);
  assert.ok(Math.abs(fast.clock.nowMs() - t0[0]! - 2100) < 1e-6);
  assert.ok(Math.abs(slow.clock.nowMs() - t0[1]! - 1900) < 1e-6);
});

test('a partition drops messages and raises peer events; heal restores both', () => {
  const c = cluster(3);
  c.scheduler.runUntil(100);
  const p = makePartition('isolate-one', c.ids, new Prng(1));
  const lone = c.ids.find(
    (a) =>
      p.cut(
        a,
        c.ids.find((b) => b !== a)!,
      ) && c.ids.every((b) => b === a || p.cut(a, b)),
  )!;
  const other = c.ids.find((x) => x !== lone)!;
  c.network.setPartition(p);
  c.scheduler.runUntil(1000);
  assert.ok(c.node(other).instance!.log.includes(`down ${lone}`));
  c.node(other).instance!.env.transport.send(lone, { n: 1, text: 'cut' });
  c.scheduler.runUntil(10_000);
  assert.ok(!c.node(lone).instance!.log.includes(`msg ${other}:1`));
  c.network.setPartition(undefined);
  c.node(other).instance!.env.transport.send(lone, { n: 2, text: 'healed' });
  c.scheduler.runUntil(20_000);
  assert.ok(c.node(lone).instance!.log.includes(`up ${other}`));
  assert.ok(c.node(lone).instance!.log.includes(`msg ${other}:2`));
  assert.equal(c.network.stats.cut, 1);
});

test('messages are decoded per delivery (no shared objects) and decode errors are reported', () => {
  const c = cluster(2);
  c.scheduler.runUntil(100);
  const b = c.node(2).instance!;
  const sent: Msg = { n: 1, text: 'original' };
  c.node(1).instance!.env.transport.send(nodeId(2), sent);
  sent.text = 'mutated after send';
  c.node(1).instance!.env.transport.send(nodeId(2), { n: -1, text: 'undecodable' });
  c.scheduler.runUntil(20_000);
  assert.deepEqual(b.messages, [{ n: 1, text: 'original' }], 'the receiver got its own decoded copy');
  assert.notEqual(b.messages[0], sent);
  assert.deepEqual(c.codecErrors, ['1->2 DECODE_RANGE']);
  assert.equal(c.node(1).instance!.env.transport.send(nodeId(9), { n: 1, text: 'unknown peer' }), false);
});

test('each lane of a link has its own in-flight bound; the default lane is control', () => {
  const c = cluster(2);
  c.scheduler.runUntil(100);
  const t = c.node(1).instance!.env.transport;
  const to = nodeId(2);
  let bulk = 0;
  while (t.send(to, { n: bulk, text: 'b' }, 'bulk')) bulk++;
  assert.equal(bulk, SIM_BULK_LINK_IN_FLIGHT_MAX, 'the bulk lane is full at its bound');
  let control = 0;
  while (t.send(to, { n: control, text: 'c' })) control++;
  assert.equal(control, SIM_LINK_IN_FLIGHT_MAX, 'a full bulk lane refuses no control message');
  assert.equal(t.send(to, { n: 0, text: 'c' }, 'control'), false, 'the default lane was control');
  c.scheduler.runUntil(50_000);
  const got = c.node(2).instance!.messages;
  assert.equal(got.length, SIM_BULK_LINK_IN_FLIGHT_MAX + SIM_LINK_IN_FLIGHT_MAX);
  assert.equal(t.send(to, { n: 0, text: 'b' }, 'bulk'), true, 'room again once delivered');
});
