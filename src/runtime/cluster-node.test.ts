// Proves the cluster node program on a deterministic in-memory network of three nodes: the first
// leader bootstraps the membership configuration and every node joins with its incarnation, so
// all nodes agree on one quorate view; a KV write made on one follower is read linearizably on
// another; a crashed follower is failed by the leader's failure detector within the 3 s bound
// while the survivors stay quorate; a clean leave removes a node as `left`; and the peer codec
// rejects malformed node messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId, type NodeId } from '../lib/ids.js';
import { Prng } from '../lib/prng.js';
import { DecodeError } from '../lib/errors.js';
import { MemoryDisk } from '../storage/memory-disk.js';
import { DEFAULT_VOTEQUORUM_OPTIONS } from '../quorum/index.js';
import type { MemberNodeSpec } from '../membership/index.js';
import { Scheduler, msToUs } from '../sim/scheduler.js';
import type { TransportHandlers } from '../transport/transport.js';
import type { NodeEnv } from './env.js';
import { ClusterNode, type ClusterTiming } from './cluster-node.js';
import { peerCodec, type PeerMessage } from './peer-message.js';

const TIMING: ClusterTiming = {
  tickMs: 50,
  heartbeatTicks: 2,
  electionTicks: 10,
  leaseMarginTicks: 1,
  heartbeatMs: 100,
  followerLeaseMs: 900,
  detector: { heartbeatMs: 100, suspectAfterMs: 1000, suspicionMinMs: 500, suspicionMaxMs: 1000, localHealthExtensionMaxMs: 3000 },
  requestTimeoutMs: 3000,
};

const IDS = [1, 2, 3].map(nodeId);
const SPECS: MemberNodeSpec[] = IDS.map((id) => ({ nodeId: id, name: `n${id}`, address: `127.0.0.1:${7400 + id}`, votes: 1, role: 'voter' }));
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Three nodes on one scheduler; every message goes through the real codec. */
class Cluster {
  readonly scheduler = new Scheduler();
  readonly nodes = new Map<NodeId, ClusterNode>();
  private readonly handlers = new Map<NodeId, TransportHandlers<PeerMessage>>();
  private readonly down = new Set<NodeId>();
  private readonly codec = peerCodec();
  private readonly prng = new Prng(42);

  constructor() {
    for (const id of IDS) this.start(id);
  }

  private env(id: NodeId): NodeEnv<PeerMessage> {
    const s = this.scheduler;
    return {
      nodeId: id,
      clock: { nowMs: () => s.nowUs / 1000 },
      timers: { after: (ms, fn) => s.after(msToUs(ms), fn) },
      transport: {
        self: id,
        setHandlers: (h) => {
          this.handlers.set(id, h);
        },
        send: (to, m) => {
          if (this.down.has(id) || this.down.has(to)) return true;
          const bytes = this.codec.encode(m);
          s.after(msToUs(0.2 + this.prng.float() * 0.8), () => {
            if (this.down.has(to) || this.down.has(id)) return;
            this.handlers.get(to)?.onMessage(id, this.codec.decode(bytes));
          });
          return true;
        },
        close: () => Promise.resolve(),
      },
      disk: new MemoryDisk({ schedule: (fn) => s.after(msToUs(0.1), fn) }),
      prng: new Prng(1000 + id),
      trace: () => undefined,
    };
  }

  private start(id: NodeId): void {
    const node = new ClusterNode(this.env(id), { timing: TIMING, nodes: SPECS, quorum: DEFAULT_VOTEQUORUM_OPTIONS });
    this.nodes.set(id, node);
    node.start();
  }

  node(id: number): ClusterNode {
    const n = this.nodes.get(nodeId(id));
    assert.ok(n !== undefined);
    return n;
  }

  /** Crashes `id`: it stops and the network drops everything to and from it. */
  crash(id: number): void {
    this.down.add(nodeId(id));
    this.node(id).stop();
  }

  runMs(ms: number): void {
    this.scheduler.runUntil(this.scheduler.nowUs + msToUs(ms));
  }

  /** Runs until `cond` holds (checked every 10 ms) or `limitMs` passed; returns the time taken. */
  runUntil(cond: () => boolean, limitMs: number): number {
    const start = this.scheduler.nowUs;
    while (!cond()) {
      assert.ok(this.scheduler.nowUs - start < msToUs(limitMs), `condition not reached within ${limitMs} ms`);
      this.runMs(10);
    }
    return (this.scheduler.nowUs - start) / 1000;
  }

  leader(): ClusterNode {
    const leaders = [...this.nodes.values()].filter((n) => n.status().role === 'leader');
    assert.equal(leaders.length, 1);
    return leaders[0] as ClusterNode;
  }

  followers(): ClusterNode[] {
    return [...this.nodes.values()].filter((n) => n.status().role === 'follower');
  }
}

function allJoinedAndQuorate(c: Cluster, ids: readonly number[]): boolean {
  return ids.every((id) => {
    const s = c.node(id).status();
    return s.quorate && s.members.length === ids.length && s.joined;
  });
}

test('three fresh nodes bootstrap the configuration, join, and agree on one quorate view', () => {
  const c = new Cluster();
  const took = c.runUntil(() => allJoinedAndQuorate(c, [1, 2, 3]), 5000);
  assert.ok(took < 3000, `cold start to quorate took ${took} ms of simulated time`);
  const statuses = IDS.map((id) => c.node(id).status());
  const first = statuses[0];
  assert.ok(first !== undefined);
  for (const s of statuses) {
    assert.equal(s.viewId, first.viewId, 'every node applied the same view');
    assert.deepEqual(s.members, first.members);
    assert.equal(s.leaderId, first.leaderId);
    assert.deepEqual([s.expectedVotes, s.totalVotes, s.quorum], [3, 3, 2]);
  }
  assert.deepEqual(first.members.map((m) => [m.nodeId, m.incarnation, m.state]), [[1, 1, 'member'], [2, 1, 'member'], [3, 1, 'member']]);
  const page = c.node(3).eventsFrom(1, 100);
  assert.ok(page.ok);
  const joins = page.value.events.flatMap((e) => (e.kind === 'view' && e.payload.change.kind === 'joined' ? [e.payload.change.node] : []));
  assert.deepEqual([...joins].sort(), [1, 2, 3], 'one joined view event per node, on every node');
});

test('a write on one follower is read linearizably on another, and a refused command says why', () => {
  const c = new Cluster();
  c.runUntil(() => allJoinedAndQuorate(c, [1, 2, 3]), 5000);
  const [a, b] = c.followers();
  assert.ok(a !== undefined && b !== undefined);
  const put: unknown[] = [];
  a.put('greeting', encoder.encode('hello'), (r) => put.push(r));
  c.runUntil(() => put.length === 1, 2000);
  assert.equal((put[0] as { ok: boolean }).ok, true);
  const got: string[] = [];
  b.get('greeting', (r) => {
    assert.ok(r.ok);
    got.push(r.value.entry === null ? '<absent>' : decoder.decode(r.value.entry.value));
  });
  c.runUntil(() => got.length === 1, 2000);
  assert.deepEqual(got, ['hello']);
  const bad: { ok: boolean; code?: string; message?: string }[] = [];
  a.put('', encoder.encode('x'), (r) => bad.push(r.ok ? { ok: true } : { ok: false, code: r.error.code, message: r.error.message }));
  c.runUntil(() => bad.length === 1, 2000);
  assert.equal(bad[0]?.ok, false);
  assert.equal(bad[0].code, 'REFUSED');
  assert.match(bad[0].message ?? '', /KV_INVALID_KEY/);
});

test('a crashed follower is failed by the leader within 3 s and the survivors stay quorate', () => {
  const c = new Cluster();
  c.runUntil(() => allJoinedAndQuorate(c, [1, 2, 3]), 5000);
  const leader = c.leader();
  const victim = c.followers()[0];
  assert.ok(victim !== undefined);
  const before = leader.status().viewId;
  c.crash(victim.nodeId);
  const survivors = IDS.filter((id) => id !== victim.nodeId);
  const took = c.runUntil(() => survivors.every((id) => {
    const s = c.node(id).status();
    return s.viewId > before && !s.members.some((m) => m.nodeId === victim.nodeId) && s.quorate;
  }), 5000);
  assert.ok(took <= 3000, `detection and commit took ${took} ms`);
  assert.ok(took >= 1000, `a crash must not be declared before the suspicion timeout (${took} ms)`);
  const record = leader.nodes().find((n) => n.nodeId === victim.nodeId);
  assert.equal(record?.status, 'needs-fencing');
  const s = leader.status();
  assert.deepEqual([s.totalVotes, s.quorum, s.quorate], [2, 2, true]);
});

test('a clean leave removes the node from the view as left, and nobody suspects it', () => {
  const c = new Cluster();
  c.runUntil(() => allJoinedAndQuorate(c, [1, 2, 3]), 5000);
  const leaver = c.followers()[0];
  assert.ok(leaver !== undefined);
  const done: (string | null)[] = [];
  leaver.leave(2000, (e) => done.push(e === null ? null : e.code));
  c.runUntil(() => done.length === 1, 3000);
  assert.deepEqual(done, [null]);
  leaver.stop();
  const other = c.leader();
  const record = other.nodes().find((n) => n.nodeId === leaver.nodeId);
  assert.equal(record?.status, 'out');
  const page = other.eventsFrom(1, 100);
  assert.ok(page.ok);
  const last = page.value.events.filter((e) => e.kind === 'view').at(-1);
  assert.equal(last?.kind === 'view' ? last.payload.change.kind : undefined, 'left');
});

test('the peer codec round-trips node messages and rejects malformed ones with a DecodeError', () => {
  const codec = peerCodec();
  const ping: PeerMessage = { type: 'Ping', row: [{ node: nodeId(2), silentMs: 12 }, { node: nodeId(3), silentMs: null }] };
  assert.deepEqual(codec.decode(codec.encode(ping)), ping);
  const fwd: PeerMessage = { type: 'Forward', id: 7, command: new Uint8Array([1, 2, 3]) };
  const back = codec.decode(codec.encode(fwd));
  assert.ok(back.type === 'Forward');
  assert.deepEqual({ ...back, command: new Uint8Array(back.command) }, fwd);
  const refused: PeerMessage = { type: 'ForwardRefused', id: 7, code: 'NOT_LEADER', message: 'node 2 leads', leader: nodeId(2) };
  assert.deepEqual(codec.decode(codec.encode(refused)), refused);
  const bad: unknown[] = [
    { type: 'Ping', row: [{ node: 3, silentMs: 1 }, { node: 2, silentMs: 1 }] },
    { type: 'Forward', id: 0, command: new Uint8Array(1) },
    { type: 'ForwardRefused', id: 1, code: 'SOMETHING', message: '', leader: null },
    { type: 'Gossip' },
  ];
  const raw = peerCodec() as unknown as { encode(v: unknown): Uint8Array };
  for (const v of bad) assert.throws(() => codec.decode(raw.encode(v)), DecodeError);
});
