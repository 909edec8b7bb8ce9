// Proves failover with real daemons on loopback (tier e), 3 and 5 processes: cold start to
// quorate; a 1 s SIGSTOP of a follower evicts nobody (the view stays the same); kill -9 of the
// leader (and, with 5 nodes, of a follower too) makes the survivors commit a view without it,
// elect a new leader among themselves and accept a KV write; `cohort nodes` shows the dead node
// as needs-fencing with the confirm hint; the restarted node is a new incarnation kept out until
// `cohort fence confirm` admits it (a confirmation for a node that needs no fencing is refused
// with a clear line); `cohort events` shows the failure and the admission and `--follow` prints
// them live; and a SIGSTOP of the leader for longer than the election timeout makes it step down
// on SIGCONT without split brain: no two nodes ever report a valid leader lease in the same term,
// no lease in an older term is reported after a newer leader's, and every read, the first one on
// the resumed old leader included, returns the newest acknowledged write.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import type { ApiData } from '../client/index.js';
import { ProcessCluster, exitOf, membersOf, runCohort, waitFor, type NodeStatusAnswer } from './process-cluster.js';

const BIN = fileURLToPath(new URL('../../../bin/cohort.js', import.meta.url));
/** Generous bounds: two shared cores run these processes next to other tests. */
const QUORATE_BOUND_MS = 15_000;
const VIEW_CHANGE_BOUND_MS = 8_000;
const ELECTION_BOUND_MS = 8_000;
/** Longer than the election timeout (500 ms drawn in [500, 1000) ms by default). */
const LEADER_STOP_MS = 1_500;

function log(line: string): void {
  process.stderr.write(`# ${line}\n`);
}

function num(s: NodeStatusAnswer | null, key: string): number {
  const v = s?.[key];
  assert.equal(typeof v, 'number', `status has a numeric ${key}`);
  return v as number;
}

/** Waits until every node of `ids` applied a view without `gone` and stays quorate. */
async function waitViewWithout(
  c: ProcessCluster,
  ids: readonly number[],
  gone: readonly number[],
  afterViewId: number,
): Promise<number> {
  const r = await waitFor(
    `a view without ${gone.join(',')} on nodes ${ids.join(',')}`,
    VIEW_CHANGE_BOUND_MS,
    async () => {
      const ss = await Promise.all(ids.map((i) => c.status(i)));
      const ok = ss.every(
        (s) =>
          s !== null &&
          s['quorate'] === true &&
          num(s, 'viewId') > afterViewId &&
          !membersOf(s).some(([n]) => gone.includes(n)),
      );
      return ok ? true : null;
    },
  );
  return r.ms;
}

async function getText(c: ProcessCluster, id: number, key: string): Promise<string | null> {
  const got = (await c.request(id, 'kv.get', { key }, 6000)) as Record<string, ApiData>;
  return got['found'] === true ? (got['text'] as string) : null;
}

async function nodeRecord(c: ProcessCluster, id: number, of: number): Promise<Record<string, ApiData> | null> {
  const r = (await c.request(id, 'nodes')) as { nodes: Record<string, ApiData>[] };
  return r.nodes.find((n) => n['nodeId'] === of) ?? null;
}

/** Restarts `id`, checks it is a new incarnation kept out as needs-fencing, then confirms its fence. */
async function restartAndConfirm(c: ProcessCluster, id: number, via: number, others: readonly number[]): Promise<void> {
  c.start(id);
  const waiting = await waitFor(`node ${id} restarted and waiting for a fence`, QUORATE_BOUND_MS, async () => {
    const rec = await nodeRecord(c, via, id).catch(() => null);
    const s = await c.status(id);
    return rec !== null &&
      s !== null &&
      rec['status'] === 'needs-fencing' &&
      (rec['rejoin'] as number) === num(s, 'incarnation')
      ? { rec, s }
      : null;
  });
  assert.equal(waiting.value.s['joined'], false, 'the new incarnation is kept out until the fence is confirmed');
  const inc = num(waiting.value.s, 'incarnation');
  assert.ok(inc >= 2, `a restart is a new incarnation (got ${inc})`);
  const nodes = await runCohort(['nodes', '--socket', c.socket(via)]);
  assert.match(nodes.stdout, new RegExp(`needs-fencing, incarnation ${inc} waiting`));
  assert.match(nodes.stdout, new RegExp(`confirm with: cohort fence confirm ${id}\\b`));
  const confirm = await runCohort(['fence', 'confirm', String(id), '--socket', c.socket(via)]);
  assert.equal(confirm.code, 0, confirm.stderr);
  assert.match(confirm.stdout, new RegExp(`incarnation ${inc} admitted as a member`));
  await c.waitQuorate([...others, id], QUORATE_BOUND_MS);
  const back = await c.status(via);
  assert.ok(
    back !== null && membersOf(back).some(([n, i]) => n === id && i === inc),
    'the new incarnation is in the view',
  );
}

interface Sample {
  readonly node: number;
  readonly sentMs: number;
  readonly recvMs: number;
  readonly term: number;
}

/**
 * Polls every node's status on its own loop and keeps the samples where the node claims a valid
 * leader lease, then checks them: one lease holder per term, and no lease of an older term
 * reported after a newer term's lease was seen to end.
 */
class LeaseMonitor {
  private readonly samples: Sample[] = [];
  private running = true;
  private readonly loops: Promise<void>[];

  constructor(private readonly c: ProcessCluster) {
    this.loops = c.ids.map((id) => this.loop(id));
  }

  private async loop(id: number): Promise<void> {
    while (this.running) {
      const sentMs = performance.now();
      const s = await this.c.status(id);
      const recvMs = performance.now();
      if (s?.['role'] === 'leader' && s['leaseValid'] === true)
        this.samples.push({ node: id, sentMs, recvMs, term: num(s, 'term') });
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  async stop(): Promise<readonly Sample[]> {
    this.running = false;
    await Promise.all(this.loops);
    return this.samples;
  }

  static violations(samples: readonly Sample[]): string[] {
    const out: string[] = [];
    for (const a of samples) {
      for (const b of samples) {
        if (a.term === b.term && a.node !== b.node)
          out.push(`nodes ${a.node} and ${b.node} both held a lease in term ${a.term}`);
        if (a.term < b.term && a.sentMs > b.recvMs)
          out.push(`node ${a.node} claimed a lease in term ${a.term} after node ${b.node} held one in term ${b.term}`);
      }
    }
    return out;
  }
}

test('three daemons: a 1 s follower stop evicts nobody; kill -9 of the leader fails over; restart + fence confirm readmits; a stopped leader steps down without split brain', async () => {
  const c = await ProcessCluster.create(3);
  try {
    c.startAll();
    log(`cold start to quorate (3 processes): ${Math.round(await c.waitQuorate(c.ids, QUORATE_BOUND_MS))} ms`);
    const first = await c.waitLeader(c.ids, ELECTION_BOUND_MS);
    const follower = c.ids.find((i) => i !== first.leader) ?? 0;

    // SIGSTOP of a follower for 1 s: below the stall tolerance, so the view must not change.
    const view0 = num(await c.status(first.leader), 'viewId');
    c.signal(follower, 'SIGSTOP');
    await new Promise((r) => setTimeout(r, 1000));
    c.signal(follower, 'SIGCONT');
    await new Promise((r) => setTimeout(r, 2500)); // past the longest eviction bound (2 s)
    const after = await c.status(first.leader);
    assert.equal(num(after, 'viewId'), view0, 'a 1 s stop of a follower evicted nobody');
    assert.equal(membersOf(after ?? {}).length, 3);

    // kill -9 of the leader: the survivors commit the view change, elect a new leader, take a write.
    const killed = first.leader;
    const survivors = c.ids.filter((i) => i !== killed);
    await c.kill(killed);
    log(
      `kill -9 of the leader to a committed view on both survivors: ${Math.round(await waitViewWithout(c, survivors, [killed], view0))} ms`,
    );
    const second = await c.waitLeader(survivors, ELECTION_BOUND_MS);
    assert.ok(second.term > first.term, 'the new leader has a newer term');
    await c.put(survivors, 'after-failover', 'yes', 5000);
    assert.equal(await getText(c, survivors[0] ?? 0, 'after-failover'), 'yes');

    // A confirmation for a node that needs no fencing is refused, one clear line, exit 1.
    const refused = await runCohort(['fence', 'confirm', String(second.leader), '--socket', c.socket(second.leader)]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, new RegExp(`node ${second.leader} does not need fencing: it is a member`));
    assert.equal(refused.stderr.trim().split('\n').length, 1);

    await restartAndConfirm(c, killed, survivors[0] ?? 0, survivors);
    const events = await runCohort(['events', '--json', '--socket', c.socket(killed)]);
    assert.equal(events.code, 0, events.stderr);
    const changes = events.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { kind: string; payload: { change?: { node: number; kind: string } } });
    const mine = changes.flatMap((e) =>
      e.kind === 'view' && e.payload.change?.node === killed ? [e.payload.change.kind] : [],
    );
    assert.deepEqual(mine.slice(-2), ['failed', 'admitted'], 'the event stream shows the failure and the admission');

    // SIGSTOP of the leader for longer than the election timeout, with writes meanwhile.
    const lead = await c.waitLeader(c.ids, ELECTION_BOUND_MS);
    const rest = c.ids.filter((i) => i !== lead.leader);
    await c.put([lead.leader], 'counter', '0', 5000);
    const monitor = new LeaseMonitor(c);
    c.signal(lead.leader, 'SIGSTOP');
    const stoppedAt = performance.now();
    let acked = 0;
    while (performance.now() - stoppedAt < LEADER_STOP_MS || acked < 3) {
      await c.put(rest, 'counter', String(acked + 1), 5000);
      acked++;
    }
    const newer = await c.waitLeader(rest, ELECTION_BOUND_MS);
    c.signal(lead.leader, 'SIGCONT');
    const firstRead = await getText(c, lead.leader, 'counter').catch(() => null); // an error is safe; a stale value is not
    assert.ok(
      firstRead === null || Number(firstRead) >= acked,
      `the resumed old leader served ${firstRead ?? ''} after ${acked} was acknowledged`,
    );
    await waitFor('the old leader stepped down to a newer term', ELECTION_BOUND_MS, async () => {
      const s = await c.status(lead.leader);
      return s !== null && s['role'] !== 'leader' && num(s, 'term') > lead.term ? true : null;
    });
    for (const id of c.ids)
      assert.equal(await getText(c, id, 'counter'), String(acked), `node ${id} reads the newest acknowledged write`);
    await c.put([lead.leader], 'counter', 'final', 5000);
    for (const id of c.ids) assert.equal(await getText(c, id, 'counter'), 'final');
    const samples = await monitor.stop();
    assert.deepEqual(LeaseMonitor.violations(samples), []);
    assert.ok(
      samples.some((s) => s.term >= newer.term),
      'the monitor saw the new leader hold its lease (it can fail)',
    );
    log(
      `leader stop: ${acked} writes acknowledged by the others while it was stopped; ${samples.length} lease samples, no split brain`,
    );
  } finally {
    await c.close();
  }
});

test('five daemons: kill -9 of a follower and of the leader, the three survivors fail over; both restart and rejoin after fence confirm, seen live by cohort events --follow', async () => {
  const c = await ProcessCluster.create(5);
  try {
    c.startAll();
    log(`cold start to quorate (5 processes): ${Math.round(await c.waitQuorate(c.ids, QUORATE_BOUND_MS))} ms`);
    const first = await c.waitLeader(c.ids, ELECTION_BOUND_MS);
    const view0 = num(await c.status(first.leader), 'viewId');
    const follower = c.ids.find((i) => i !== first.leader) ?? 0;
    const gone = [follower, first.leader];
    const survivors = c.ids.filter((i) => !gone.includes(i));
    await c.kill(follower);
    await c.kill(first.leader);
    log(
      `kill -9 of a follower and the leader to a committed view on the 3 survivors: ${Math.round(await waitViewWithout(c, survivors, gone, view0))} ms`,
    );
    const second = await c.waitLeader(survivors, ELECTION_BOUND_MS);
    assert.ok(survivors.includes(second.leader) && second.term > first.term);
    await c.put(survivors, 'five', 'ok', 5000);
    for (const id of survivors) assert.equal(await getText(c, id, 'five'), 'ok');

    const via = survivors[0] ?? 0;
    const next = num(await c.status(via), 'viewId');
    const follow = spawn(process.execPath, [BIN, 'events', '--follow', '--json', '--socket', c.socket(via)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let lines = '';
    follow.stdout.on('data', (d: Buffer) => (lines += d.toString()));
    try {
      await restartAndConfirm(c, follower, via, survivors);
      await restartAndConfirm(c, first.leader, via, [...survivors, follower]);
      const admitted = await waitFor('both admissions printed by events --follow', 5000, () => {
        const seen = lines
          .trim()
          .split('\n')
          .filter((l) => l !== '')
          .map(
            (l) =>
              JSON.parse(l) as { viewId: number; kind: string; payload: { change?: { node: number; kind: string } } },
          );
        const ok = gone.every((n) =>
          seen.some(
            (e) =>
              e.viewId > next &&
              e.kind === 'view' &&
              e.payload.change?.kind === 'admitted' &&
              e.payload.change.node === n,
          ),
        );
        return Promise.resolve(ok ? true : null);
      });
      assert.ok(admitted.value);
    } finally {
      follow.kill('SIGTERM');
      assert.equal(await exitOf(follow, 5000), 0, 'events --follow exits 0 on SIGTERM');
    }
    const s = await c.status(via);
    assert.equal(membersOf(s ?? {}).length, 5);
  } finally {
    await c.close();
  }
});
