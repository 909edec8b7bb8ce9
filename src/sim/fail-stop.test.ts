// Proves fail-stop on storage faults in the simulator (issue 10, item 3): when the leader's next
// fsync fails, its whole incarnation crashes (not only its Raft shell), the others fail it out of
// the view and elect a new leader, and at no sampled instant (every 5 ms of true virtual time for
// 15 s) do two nodes report `leaseValid: true` from `ClusterNode.status()`.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { DecodeError } from '../lib/errors.js';
import { nodeId, type NodeId } from '../lib/ids.js';
import { Prng } from '../lib/prng.js';
import type { MemberNodeSpec } from '../membership/index.js';
import { DEFAULT_VOTEQUORUM_OPTIONS } from '../quorum/index.js';
import { nodePeerCodec, type ChannelMessage } from '../services.js';
import { SimBlockStore } from './block-store.js';
import { SimDisk } from './disk.js';
import { SimProcessRunner } from './process-runner.js';
import { SimNetwork } from './network.js';
import { SimNode } from './node-host.js';
import { msToUs, Scheduler } from './scheduler.js';
import { CLUSTER_TIMING } from './workloads/cluster.js';
import { startClusterNode, type ClusterSimNode } from './workloads/cluster-program.js';

const SAMPLE_MS = 5;

function cluster(count: number, seed: number) {
  const scheduler = new Scheduler();
  const prng = new Prng(seed);
  const nodes = new Map<NodeId, SimNode<ChannelMessage, ClusterSimNode>>();
  const ids = Array.from({ length: count }, (_, i) => nodeId(i + 1));
  const specs: MemberNodeSpec[] = ids.map((id) => ({
    nodeId: id,
    name: `n${id}`,
    address: `10.0.0.${id}:7400`,
    votes: 1,
    role: 'voter',
  }));
  const events: string[] = [];
  const host = {
    isUp: (n: NodeId) => (nodes.get(n)?.state ?? 'down') !== 'down',
    incarnationOf: (n: NodeId) => nodes.get(n)?.incarnation ?? 0,
    deliver: (n: NodeId, inc: number, fn: () => void) => {
      nodes.get(n)?.run(inc, fn, true);
    },
    codecError: (from: NodeId, to: NodeId, e: DecodeError) => {
      assert.fail(`codec error ${from}->${to}: ${e.message}`);
    },
  };
  const net = { latencyMinUs: 500, latencyMeanUs: 500, lossProbability: 0, duplicateProbability: 0 };
  const network = new SimNetwork<ChannelMessage>(scheduler, prng.fork('net'), net, ids, nodePeerCodec(), host);
  const disks = new Map<NodeId, SimDisk>();
  for (const id of ids) {
    const holder: { node?: SimNode<ChannelMessage, ClusterSimNode> } = {};
    const gated = (ms: number, fn: () => void): void => {
      const n = holder.node;
      assert.ok(n !== undefined);
      const inc = n.incarnation;
      scheduler.after(msToUs(ms), () => {
        n.run(inc, fn);
      });
    };
    const disk = new SimDisk({ prng: prng.fork(`disk-${id}`), schedule: gated });
    disks.set(id, disk);
    holder.node = new SimNode<ChannelMessage, ClusterSimNode>(
      id,
      scheduler,
      network,
      disk,
      { clockRate: 1, clockOffsetMs: 1000 * id },
      prng.fork(`node-${id}`),
      {
        codec: nodePeerCodec(),
        start: (env) =>
          startClusterNode(env, {
            timing: CLUSTER_TIMING,
            nodes: specs,
            quorum: DEFAULT_VOTEQUORUM_OPTIONS,
            snapshotEntries: 10_000,
            canary: undefined,
          }),
      },
      (node, event, fields) => {
        if (event === 'storage-failed' || event === 'fail-stop') events.push(`${node} ${event} ${fields.message}`);
      },
      {
        blocks: new SimBlockStore({ schedule: gated, prng: prng.fork(`blocks-${id}`) }),
        processes: new SimProcessRunner({
          schedule: gated,
          nowMs: () => scheduler.nowUs / 1000,
          prng: prng.fork(`processes-${id}`),
        }),
      },
    );
    nodes.set(id, holder.node);
  }
  for (const n of nodes.values()) n.start();
  const node = (id: NodeId) => {
    const n = nodes.get(id);
    assert.ok(n !== undefined);
    return n;
  };
  const statusOf = (id: NodeId) => {
    const n = node(id);
    return n.state === 'running' ? (n.instance?.status() ?? null) : null;
  };
  return { scheduler, ids, node, disks, statusOf, events };
}

test('a leader whose fsync fails crashes; the others fail it and elect; never two valid leases', () => {
  const c = cluster(3, 7);
  c.scheduler.runUntil(msToUs(5_000));
  const leaders = c.ids.filter((id) => c.statusOf(id)?.role === 'leader');
  assert.equal(leaders.length, 1, 'one leader after 5 s');
  const old = leaders[0] as NodeId;
  const others = c.ids.filter((id) => id !== old);
  assert.ok(
    c.ids.every((id) => c.statusOf(id)?.members.length === 3),
    'every node sees the three-node view before the fault',
  );
  c.disks.get(old)?.failNext('sync');
  // A write, so the leader has something to fsync (an idle log writes nothing).
  c.node(old).instance?.put('k', new TextEncoder().encode('v'), () => undefined);
  let worst = 0;
  let worstAt = 0;
  const sample = (): void => {
    const holders = c.ids.filter((id) => c.statusOf(id)?.leaseValid === true);
    if (holders.length > worst) {
      worst = holders.length;
      worstAt = c.scheduler.nowUs / 1000;
    }
    c.scheduler.after(msToUs(SAMPLE_MS), sample);
  };
  sample();
  const end = c.scheduler.nowUs + msToUs(15_000);
  c.scheduler.runUntil(end);
  assert.ok(c.events.length > 0, 'the injected fsync error was hit');
  assert.ok(worst <= 1, `two nodes reported a valid lease at once (${worst} at ${worstAt} ms)`);
  assert.equal(c.node(old).state, 'down', `the old leader ${old} crashed (fail-stop): ${c.events.join('; ')}`);
  for (const id of others) {
    const s = c.statusOf(id);
    assert.ok(s !== null, `node ${id} runs`);
    assert.ok(
      s.members.every((m) => m.nodeId !== old),
      `node ${id} failed ${old} out of its view: ${JSON.stringify(s.members)}`,
    );
    assert.ok(s.leaderId !== null && s.leaderId !== old, `node ${id} follows a new leader (${s.leaderId})`);
  }
});
