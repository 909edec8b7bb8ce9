// Proves the DLM's reliable link delivers every message exactly once and in send order between two
// node incarnations, across many seeds of a simulated network that drops 30 % of frames,
// duplicates and reorders them and sometimes refuses to transmit, with three nodes all sending to
// each other (a safety phase under loss, then a liveness phase in which everything sent arrives);
// a canary variant that delivers duplicates is caught by the same checker on every seed, so the
// check bites. Also: backpressure (send refuses when the queue is full and recovers once acked),
// held out-of-order frames, a reset on a new incarnation (old messages dropped and counted, never
// delivered to the new epoch, a late frame of the old incarnation dropped), disconnect,
// retransmission and delayed-ack timing, and the frame validator rejecting malformed frames with
// DecodeError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Prng } from '../lib/prng.js';
import { nodeId, type NodeId } from '../lib/ids.js';
import { DecodeError } from '../lib/errors.js';
import { intValue } from '../transport/message-fields.js';
import { msgpackCodec } from '../transport/message-codec.js';
import { linkFrameValidator, linkOptions, ReliableLinks, type LinkFrame, type LinkOptions } from './reliable-link.js';

const A = nodeId(1);
const B = nodeId(2);
const C = nodeId(3);

const validateMsg = (value: unknown, path: string): number => intValue(value, path, 0, Number.MAX_SAFE_INTEGER);
const codec = msgpackCodec(linkFrameValidator(validateMsg));

// ---------------------------------------------------------------------------------------------
// The simulated network: one seed drives sends, loss, duplication, delay (reordering) and refusals.

interface WireFrame {
  readonly atMs: number;
  readonly order: number;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly bytes: Uint8Array;
}

interface SimResult {
  /** Ordering or exactly-once violations seen by the checker (empty when correct). */
  readonly violations: string[];
  readonly sent: number;
  readonly delivered: number;
  readonly resent: number;
  readonly duplicatesDropped: number;
}

const SIM_NODES: readonly NodeId[] = [A, B, C];
const DROP_P = 0.3;
const DUPLICATE_P = 0.15;
const REFUSE_P = 0.05;
const DELAY_MS_MAX = 30;
const TICK_MS = 10;
const SAFETY_MS = 2000;
const LIVENESS_MS_MAX = 3000;

function runSim(seed: number, canary = false): SimResult {
  const prng = new Prng(seed);
  const net = prng.fork('network');
  const load = prng.fork('load');
  const knobs = prng.fork('knobs');
  const overrides: Partial<LinkOptions> = {
    // Mostly tiny bounds (windows and queues fill, frames split), sometimes the defaults.
    ...(knobs.chance(0.25)
      ? {}
      : { windowFrames: knobs.int(1, 9), batchMessages: knobs.int(1, 5), queueMessages: knobs.int(1, 33) }),
    retransmitMs: knobs.int(20, 80),
    ackDelayMs: knobs.int(0, 10),
    ...(canary ? { canary: 'deliver-duplicates' as const } : {}),
  };
  const wire: WireFrame[] = [];
  let order = 0;
  let nowMs = 0;
  let lossy = true;
  const links = new Map<NodeId, ReliableLinks<number>>();
  for (const self of SIM_NODES) {
    const transmit = (to: NodeId, frame: LinkFrame<number>): boolean => {
      if (lossy && net.chance(REFUSE_P)) return false;
      const bytes = codec.encode(frame);
      const copies = !lossy ? 1 : net.chance(DROP_P) ? 0 : net.chance(DUPLICATE_P) ? 2 : 1;
      for (let i = 0; i < copies; i++) {
        const atMs = nowMs + net.int(lossy ? 0 : 1, DELAY_MS_MAX + 1);
        wire.push({ atMs, order: order++, from: self, to, bytes });
      }
      return true;
    };
    const l = new ReliableLinks<number>(linkOptions(self, 1, overrides), transmit);
    for (const peer of SIM_NODES) if (peer !== self) l.connect(peer, 1);
    links.set(self, l);
  }
  const key = (from: NodeId, to: NodeId): string => `${from}->${to}`;
  const nextToSend = new Map<string, number>();
  const nextExpected = new Map<string, number>();
  const violations: string[] = [];
  let sent = 0;
  let delivered = 0;
  const deliverTo =
    (to: NodeId, from: NodeId) =>
    (m: number): void => {
      const k = key(from, to);
      const want = nextExpected.get(k) ?? 0;
      if (m !== want) violations.push(`t=${nowMs} ${k}: delivered ${m}, expected ${want}`);
      nextExpected.set(k, Math.max(want, m + 1));
      delivered++;
    };
  const step = (sending: boolean): void => {
    if (sending) {
      for (const self of SIM_NODES) {
        const l = links.get(self)!;
        for (const peer of SIM_NODES) {
          if (peer === self || !load.chance(0.3)) continue;
          const k = key(self, peer);
          for (let burst = load.int(1, 6); burst > 0; burst--) {
            const n = nextToSend.get(k) ?? 0;
            if (!l.send(peer, n)) break;
            nextToSend.set(k, n + 1);
            sent++;
          }
        }
        l.flush(nowMs);
      }
    }
    wire.sort((x, y) => x.atMs - y.atMs || x.order - y.order);
    while (wire.length > 0 && wire[0]!.atMs <= nowMs) {
      const w = wire.shift()!;
      links.get(w.to)!.onFrame(w.from, codec.decode(w.bytes), nowMs, deliverTo(w.to, w.from));
    }
    if (nowMs % TICK_MS === 0) for (const l of links.values()) l.onTick(nowMs);
  };
  for (; nowMs < SAFETY_MS; nowMs++) step(true);
  lossy = false;
  const idle = (): boolean =>
    wire.length === 0 && SIM_NODES.every((s) => SIM_NODES.every((p) => links.get(s)!.pending(p) === 0));
  for (const end = nowMs + LIVENESS_MS_MAX; nowMs < end && !idle(); nowMs++) step(false);
  for (const [k, n] of nextToSend) {
    const got = nextExpected.get(k) ?? 0;
    if (got !== n) violations.push(`${k}: sent ${n}, delivered up to ${got}`);
  }
  const stats = SIM_NODES.map((s) => links.get(s)!.stats());
  return {
    violations,
    sent,
    delivered,
    resent: stats.reduce((a, s) => a + s.framesResent, 0),
    duplicatesDropped: stats.reduce((a, s) => a + s.duplicatesDropped, 0),
  };
}

const SEEDS = Array.from({ length: 40 }, (_, i) => 1000 + i);

test('in order and exactly once under loss, duplication and reordering, every direction, many seeds', () => {
  let resent = 0;
  let duplicates = 0;
  for (const seed of SEEDS) {
    const r = runSim(seed);
    assert.deepEqual(r.violations, [], `seed ${seed}`);
    assert.equal(r.delivered, r.sent, `seed ${seed}: every message sent arrives once`);
    assert.ok(r.sent > 100, `seed ${seed}: the load is real (${r.sent} sent)`);
    resent += r.resent;
    duplicates += r.duplicatesDropped;
  }
  assert.ok(resent > 0 && duplicates > 0, 'the network did lose and duplicate');
});

test('canary: a link that delivers duplicates is caught by the exactly-once check on every seed', () => {
  for (const seed of SEEDS.slice(0, 10)) {
    const r = runSim(seed, true);
    assert.ok(r.violations.length > 0, `seed ${seed}: the broken variant must be caught`);
  }
});

// ---------------------------------------------------------------------------------------------
// Hand-driven links: frames are captured and handed over (or not) by the test.

interface Endpoint {
  readonly links: ReliableLinks<number>;
  readonly out: [NodeId, LinkFrame<number>][];
  readonly got: number[];
}

function endpoint(self: NodeId, inc: number, overrides: Partial<LinkOptions> = {}): Endpoint {
  const out: [NodeId, LinkFrame<number>][] = [];
  const links = new ReliableLinks<number>(linkOptions(self, inc, overrides), (to, f) => {
    out.push([to, f]);
    return true;
  });
  return { links, out, got: [] };
}

/** Hands every frame `src` transmitted to `dst` (as `src.self`), then clears `src`'s outbox. */
function carry(src: Endpoint, srcId: NodeId, dst: Endpoint, nowMs: number): void {
  const frames = src.out.splice(0);
  for (const [, f] of frames) dst.links.onFrame(srcId, f, nowMs, (m) => dst.got.push(m));
}

test('backpressure: send refuses when the queue is full and recovers once acked', () => {
  const a = endpoint(A, 1, { windowFrames: 2, batchMessages: 2, queueMessages: 4 });
  const b = endpoint(B, 1, { ackDelayMs: 0 });
  a.links.connect(B, 1);
  b.links.connect(A, 1);
  for (let i = 0; i < 4; i++) assert.ok(a.links.send(B, i));
  assert.equal(a.links.send(B, 99), false, 'the queue holds queueMessages');
  assert.equal(a.links.pending(B), 4);
  a.links.flush(0);
  assert.equal(a.out.length, 2, 'two frames of two messages fill the window');
  for (let i = 4; i < 8; i++) assert.ok(a.links.send(B, i), 'the queue drained into the window');
  assert.equal(a.links.send(B, 99), false);
  assert.equal(a.links.pending(B), 8);
  a.links.flush(1);
  assert.equal(a.out.length, 2, 'nothing more goes while the window is full');
  carry(a, A, b, 2);
  assert.deepEqual(b.got, [0, 1, 2, 3]);
  assert.equal(b.out.length, 2, 'with no ack delay each frame is acked at once');
  carry(b, B, a, 3);
  assert.equal(a.out.length, 2, 'the ack opened the window: the queued frames go');
  assert.equal(a.links.pending(B), 4);
  assert.ok(a.links.send(B, 8), 'send accepts again');
  a.links.flush(3);
  carry(a, A, b, 4);
  carry(b, B, a, 5);
  a.links.flush(5);
  carry(a, A, b, 6);
  carry(b, B, a, 7);
  assert.deepEqual(b.got, [0, 1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(a.links.pending(B), 0);
  assert.equal(a.links.send(C, 1), false, 'not connected: refused');
});

test('out-of-order frames are held and delivered in order once the gap fills; duplicates dropped', () => {
  const a = endpoint(A, 1, { batchMessages: 1 });
  const b = endpoint(B, 1);
  a.links.connect(B, 1);
  b.links.connect(A, 1);
  for (let i = 0; i < 4; i++) a.links.send(B, i);
  a.links.flush(0);
  const frames = a.out.splice(0).map(([, f]) => f);
  assert.equal(frames.length, 4);
  const deliver = (m: number): void => {
    b.got.push(m);
  };
  for (const i of [3, 2, 3, 1]) b.links.onFrame(A, frames[i]!, 1, deliver);
  assert.deepEqual(b.got, [], 'nothing before the first frame');
  b.links.onFrame(A, frames[0]!, 2, deliver);
  assert.deepEqual(b.got, [0, 1, 2, 3]);
  for (const f of frames) b.links.onFrame(A, f, 3, deliver);
  assert.deepEqual(b.got, [0, 1, 2, 3]);
  const s = b.links.stats();
  assert.equal(s.framesHeld, 3);
  assert.equal(s.duplicatesDropped, 5);
  assert.equal(s.messagesDelivered, 4);
});

test('reset on a new incarnation drops the old messages; no old-epoch frame reaches the new epoch', () => {
  const a = endpoint(A, 1);
  const b1 = endpoint(B, 1);
  a.links.connect(B, 1);
  b1.links.connect(A, 1);
  a.links.send(B, 10);
  a.links.send(B, 11);
  a.links.flush(0);
  const oldToB = a.out.splice(0);
  b1.links.send(A, 70);
  b1.links.flush(0);
  const oldFromB = b1.out.splice(0);
  // B restarts as incarnation 2; its first frames reach A before A's view says so.
  const b2 = endpoint(B, 2);
  b2.links.connect(A, 1);
  b2.links.send(A, 80);
  b2.links.flush(1);
  carry(b2, B, a, 2);
  assert.deepEqual(a.got, [], 'a frame from a newer incarnation than connected is dropped');
  assert.equal(a.links.stats().staleDropped, 1);
  // The view moves A to B's incarnation 2.
  a.links.connect(B, 2);
  assert.equal(a.links.pending(B), 0);
  assert.equal(a.links.stats().messagesDroppedByReset, 2);
  a.links.connect(B, 2);
  assert.equal(a.links.stats().messagesDroppedByReset, 2, 'the same incarnation again changes nothing');
  a.links.send(B, 20);
  a.links.flush(3);
  const newToB = a.out.splice(0);
  assert.equal(newToB[0]![1].kind === 'data' && newToB[0]![1].seq, 1, 'sequences restart at 1');
  // Old frames (also seq 1) reach the new incarnation late: dropped, never delivered.
  for (const [, f] of oldToB) b2.links.onFrame(A, f, 4, (m) => b2.got.push(m));
  assert.deepEqual(b2.got, []);
  assert.equal(b2.links.stats().staleDropped, oldToB.length);
  for (const [, f] of newToB) b2.links.onFrame(A, f, 5, (m) => b2.got.push(m));
  assert.deepEqual(b2.got, [20]);
  // A late frame of B's old incarnation reaches A: dropped.
  for (const [, f] of oldFromB) a.links.onFrame(B, f, 6, (m) => a.got.push(m));
  assert.deepEqual(a.got, []);
  // B2's message, refused while A was behind, is resent and now delivered.
  b2.out.splice(0);
  b2.links.onTick(200);
  carry(b2, B, a, 201);
  assert.deepEqual(a.got, [80]);
});

test('disconnect drops the link and its queue; nothing more goes, frames from the peer are dropped', () => {
  const a = endpoint(A, 1);
  const b = endpoint(B, 1);
  a.links.connect(B, 1);
  b.links.connect(A, 1);
  a.links.send(B, 1);
  a.links.flush(0);
  a.links.send(B, 2);
  b.links.send(A, 3);
  b.links.flush(0);
  a.out.splice(0);
  a.links.disconnect(B);
  assert.equal(a.links.pending(B), 0);
  assert.equal(a.links.incarnationOf(B), null);
  assert.equal(a.links.stats().messagesDroppedByReset, 2);
  assert.equal(a.links.send(B, 4), false);
  a.links.onTick(1000);
  assert.equal(a.out.length, 0, 'no retransmission to a disconnected peer');
  carry(b, B, a, 1001);
  assert.deepEqual(a.got, []);
  assert.equal(a.links.stats().staleDropped, 1);
});

test('retransmission after retransmitMs, delayed and piggybacked acks', () => {
  const a = endpoint(A, 1, { retransmitMs: 50, ackDelayMs: 5 });
  const b = endpoint(B, 1, { retransmitMs: 50, ackDelayMs: 5 });
  a.links.connect(B, 1);
  b.links.connect(A, 1);
  a.links.send(B, 1);
  a.links.flush(0);
  assert.equal(a.out.length, 1);
  a.out.splice(0); // lost
  a.links.onTick(49);
  assert.equal(a.out.length, 0, 'not before retransmitMs');
  a.links.onTick(50);
  assert.equal(a.out.length, 1, 'resent at retransmitMs');
  assert.equal(a.out[0]![1].kind === 'data' && a.out[0]![1].seq, 1, 'the same frame');
  a.out.splice(0); // lost again
  a.links.onTick(99);
  assert.equal(a.out.length, 0);
  a.links.onTick(100);
  assert.equal(a.links.stats().framesResent, 2);
  carry(a, A, b, 100);
  assert.deepEqual(b.got, [1]);
  b.links.onTick(104);
  assert.equal(b.out.length, 0, 'the ack waits ackDelayMs');
  b.links.onTick(105);
  assert.deepEqual(
    b.out.map(([, f]) => f),
    [{ kind: 'ack', from: 1, to: 1, ack: 1 }],
  );
  carry(b, B, a, 106);
  assert.equal(a.links.pending(B), 0);
  a.links.onTick(1000);
  assert.equal(a.out.length, 0, 'nothing is resent once acked');
  // A data frame within the delay carries the ack: no bare ack follows.
  a.links.send(B, 2);
  a.links.flush(1001);
  carry(a, A, b, 1001);
  b.links.send(A, 3);
  b.links.flush(1002);
  const f = b.out[0]![1];
  assert.ok(f.kind === 'data' && f.ack === 2, 'the data frame carries the ack');
  carry(b, B, a, 1003);
  b.links.onTick(1010);
  assert.equal(b.out.length, 0, 'no bare ack after a piggybacked one');
  assert.equal(a.links.pending(B), 0);
  // A duplicate makes an ack owed again (the first ack may have been lost).
  b.links.onFrame(A, { kind: 'data', from: 1, to: 1, seq: 2, ack: 1, messages: [2] }, 1020, () => {
    assert.fail('a duplicate is not delivered');
  });
  b.links.onTick(1025);
  assert.equal(b.out.length, 1);
  assert.equal(b.out[0]![1].kind, 'ack');
});

test('a transmit refusal counts as a loss and the frame is resent', () => {
  let refuse = true;
  const frames: LinkFrame<number>[] = [];
  const a = new ReliableLinks<number>(linkOptions(A, 1), (_to, f) => {
    if (refuse) return false;
    frames.push(f);
    return true;
  });
  a.connect(B, 1);
  a.send(B, 1);
  a.flush(0);
  assert.equal(a.stats().transmitRefused, 1);
  refuse = false;
  a.onTick(50);
  assert.equal(frames.length, 1);
});

test('an ack of a frame never sent is rejected', () => {
  const a = endpoint(A, 1);
  a.links.connect(B, 1);
  a.links.onFrame(B, { kind: 'ack', from: 1, to: 1, ack: 1 }, 0, () => undefined);
  assert.equal(a.links.stats().framesRejected, 1);
});

test('the frame validator accepts good frames and rejects malformed ones with DecodeError', () => {
  const validate = linkFrameValidator(validateMsg, 4);
  const good: LinkFrame<number>[] = [
    { kind: 'data', from: 1, to: 2, seq: 1, ack: 0, messages: [5] },
    { kind: 'ack', from: 3, to: 4, ack: 9 },
  ];
  for (const f of good) {
    assert.deepEqual(validate(f), f);
    assert.deepEqual(codec.decode(codec.encode(f)), f);
  }
  const data = { kind: 'data', from: 1, to: 2, seq: 1, ack: 0, messages: [5] };
  const bad: unknown[] = [
    null,
    [],
    'data',
    { ...data, kind: 'nak' },
    { ...data, kind: undefined },
    { ...data, from: 0 },
    { ...data, from: 1.5 },
    { ...data, to: '2' },
    { ...data, seq: 0 },
    { ...data, seq: undefined },
    { ...data, ack: -1 },
    { ...data, ack: 2 ** 53 },
    { ...data, messages: [] },
    { ...data, messages: [1, 2, 3, 4, 5] },
    { ...data, messages: ['x'] },
    { ...data, messages: 7 },
    { kind: 'ack', from: 1, to: 1 },
    { kind: 'ack', from: 1, to: 1, ack: true },
  ];
  for (const value of bad) {
    assert.throws(
      () => validate(value),
      (e: unknown) => e instanceof DecodeError && e.code === 'MESSAGE_INVALID',
      JSON.stringify(value),
    );
  }
  assert.throws(() => codec.decode(new Uint8Array([0xc1, 0xff])), DecodeError);
});
