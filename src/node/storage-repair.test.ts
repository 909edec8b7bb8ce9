// Proves, with real daemons on loopback (tier e), that storage damage is repaired loudly and a lost
// stable state costs one restart: (issue 11 item 7) a WAL with bytes flipped mid-segment is
// discarded and rebuilt from peers, and a tail cut mid-record is truncated, each with a warn line
// naming the file, the offset and what was lost, counted in `cohort_storage_repairs_total` on the
// metrics endpoint, and the node rejoins with every acknowledged write; (item 6) a node restarted
// up to incarnation 4 whose stable-state file is then deleted learns from the cluster that it
// was at 4, says so at warn, ends that run and joins as incarnation 5 in the same process: one
// start is enough.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ApiData } from '../client/index.js';
import { ProcessCluster, membersOf, waitFor, type NodeStatusAnswer } from './process-cluster.js';

/** Generous bounds: two shared cores run these processes next to other tests. */
const QUORATE_BOUND_MS = 20_000;
const STOP_BOUND_MS = 8_000;

function log(line: string): void {
  process.stderr.write(`# ${line}\n`);
}

/** The pino records of node `id`'s log (JSON lines). */
async function logRecords(c: ProcessCluster, id: number): Promise<Record<string, unknown>[]> {
  const text = await readFile(c.log(id), 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

/** The messages of node `id`'s warn records. */
async function warnings(c: ProcessCluster, id: number): Promise<string[]> {
  return (await logRecords(c, id)).filter((r) => r['level'] === 40).map((r) => String(r['msg']));
}

function num(s: NodeStatusAnswer | null, key: string): number {
  const v = s?.[key];
  assert.equal(typeof v, 'number', `status has a numeric ${key}`);
  return v as number;
}

/** SIGTERM of node `id` (a clean leave), waiting for exit 0. */
async function stopCleanly(c: ProcessCluster, id: number): Promise<void> {
  c.signal(id, 'SIGTERM');
  await waitFor(`node ${id} exited`, STOP_BOUND_MS, () => Promise.resolve(c.running(id) ? null : true));
}

/** Checks every acknowledged write reads back (linearizably) on node `id`. */
async function assertAllRead(c: ProcessCluster, id: number, acked: ReadonlyMap<string, string>): Promise<void> {
  for (const [key, value] of acked) {
    const got = await waitFor(`kv.get ${key} on node ${id}`, QUORATE_BOUND_MS, async () => {
      try {
        return (await c.request(id, 'kv.get', { key }, 3000)) as Record<string, ApiData>;
      } catch {
        return null;
      }
    });
    assert.equal(got.value['text'], value, `node ${id} reads the acknowledged ${key}`);
  }
}

/** The metrics port of node `id` (from its config). */
async function metricsPort(c: ProcessCluster, id: number): Promise<number> {
  const yaml = await readFile(join(c.dir, `node-${id}.yaml`), 'utf8');
  const m = /metrics:\n\s+host: \S+\n\s+port: (\d+)/.exec(yaml);
  assert.ok(m !== null, 'cohort init configures a metrics port');
  return Number(m[1]);
}

async function metricsText(c: ProcessCluster, id: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${await metricsPort(c, id)}/metrics`, {
    signal: AbortSignal.timeout(3000),
  });
  return await res.text();
}

/** The WAL segments of node `id`, oldest first. */
async function segments(c: ProcessCluster, id: number): Promise<string[]> {
  return (await readdir(join(c.dir, `node-${id}`))).filter((n) => /^wal-[0-9a-f]{16}\.log$/.test(n)).sort();
}

/** Node `of`'s membership record as node `via` has it. */
async function nodeRecord(c: ProcessCluster, via: number, of: number): Promise<Record<string, ApiData> | null> {
  const r = (await c.request(via, 'nodes')) as { nodes: Record<string, ApiData>[] };
  return r.nodes.find((x) => x['nodeId'] === of) ?? null;
}

/**
 * Waits until every node is quorate with all in its view, after node `n` restarted. On a loaded
 * machine its clean leave may not have committed within the daemon's 2 s bound: its old
 * incarnation then needs fencing, and since that process is gone this confirms the fence.
 */
async function rejoined(c: ProcessCluster, n: number): Promise<void> {
  const other = c.ids.find((i) => i !== n) ?? 1;
  await waitFor(`node ${n} back in every view`, QUORATE_BOUND_MS, async () => {
    const ss = await Promise.all(c.ids.map((i) => c.status(i)));
    const all = ss.every(
      (s) =>
        s !== null &&
        s['quorate'] === true &&
        s['joined'] === true &&
        c.ids.every((i) => membersOf(s).some(([m]) => m === i)),
    );
    if (all) return true;
    const rec = await nodeRecord(c, other, n).catch(() => null);
    const inc = ss[n - 1]?.['incarnation'];
    if (rec?.['status'] === 'needs-fencing' && rec['rejoin'] === inc)
      await c.request(other, 'fence.confirm', { node: n }).catch(() => undefined);
    return null;
  });
}

/** A node of `ids` that is not the leader now. */
async function follower(c: ProcessCluster, ids: readonly number[]): Promise<number> {
  const { leader } = await c.waitLeader(ids, QUORATE_BOUND_MS);
  return ids.find((i) => i !== leader) ?? 1;
}

test('a WAL flipped mid-segment and a tail cut mid-record: warn lines, counted, rejoined, nothing lost', async () => {
  const c = await ProcessCluster.create(3);
  try {
    c.startAll();
    await c.waitQuorate(c.ids, QUORATE_BOUND_MS);
    const acked = new Map<string, string>();
    for (let i = 0; i < 30; i++) {
      await c.put(c.ids, `k${i}`, `v${i}`, QUORATE_BOUND_MS);
      acked.set(`k${i}`, `v${i}`);
    }
    const f = await follower(c, c.ids);
    const others = c.ids.filter((i) => i !== f);
    await stopCleanly(c, f);

    // Flip 8 bytes in the middle of the newest segment: a damaged record followed by later synced
    // ones is mid-log corruption, so the whole WAL is discarded and rebuilt from the peers.
    const segs = await segments(c, f);
    const seg = segs.at(-1) ?? '';
    const path = join(c.dir, `node-${f}`, seg);
    const bytes = await readFile(path);
    const at = Math.floor(bytes.length / 2);
    for (let i = at; i < at + 8; i++) bytes[i] = (bytes[i] ?? 0) ^ 0xff;
    await writeFile(path, bytes);
    await c.put(others, 'while-down', 'yes', QUORATE_BOUND_MS);
    acked.set('while-down', 'yes');
    c.start(f);
    await rejoined(c, f);
    const discarded = await waitFor('the discarded WAL logged at warn', QUORATE_BOUND_MS, async () => {
      const w = await warnings(c, f);
      return w.find((m) => m.startsWith('storage repair (wal-discarded)')) ?? null;
    });
    assert.match(
      discarded.value,
      new RegExp(
        `^storage repair \\(wal-discarded\\): ${seg.replace('.', '\\.')} at byte \\d+: mid-log corruption: .*; dropped \\d+ bytes: all \\d+ WAL segment\\(s\\)`,
      ),
    );
    await waitFor('the rebuild logged at warn', QUORATE_BOUND_MS, async () =>
      (await warnings(c, f)).some((m) => m.startsWith('storage repair complete: the log was rebuilt from peers'))
        ? true
        : null,
    );
    log(discarded.value);
    assert.match(await metricsText(c, f), /cohort_storage_repairs_total\{kind="wal-discarded"\} 1/);
    await assertAllRead(c, f, acked);

    // Cut the newest segment mid-record: a torn tail, cut and reported.
    await stopCleanly(c, f);
    const tailSeg = (await segments(c, f)).at(-1) ?? '';
    const tailPath = join(c.dir, `node-${f}`, tailSeg);
    const size = (await readFile(tailPath)).length;
    await truncate(tailPath, size - 5);
    c.start(f);
    await rejoined(c, f);
    const torn = (await warnings(c, f)).find((m) => m.startsWith('storage repair (wal-torn-tail)'));
    assert.ok(torn !== undefined, 'the cut torn tail is logged at warn');
    assert.match(
      torn,
      new RegExp(
        `^storage repair \\(wal-torn-tail\\): ${tailSeg.replace('.', '\\.')} at byte \\d+: an interrupted write .*; dropped \\d+ bytes: the cut bytes held the record\\(s\\) after sequence number \\d+`,
      ),
    );
    log(torn);
    const cutAt = Number(/ at byte (\d+):/.exec(torn)?.[1]);
    assert.ok(cutAt < size - 5 && cutAt > 0, `the cut starts inside the last record (byte ${cutAt} of ${size - 5})`);
    assert.match(await metricsText(c, f), /cohort_storage_repairs_total\{kind="wal-torn-tail"\} 1/);
    await c.put(c.ids, 'after', 'done', QUORATE_BOUND_MS);
    acked.set('after', 'done');
    await assertAllRead(c, f, acked);
  } finally {
    await c.close();
  }
});

test('a deleted stable state: the node learns its incarnation from the cluster and joins on its one start', async () => {
  const c = await ProcessCluster.create(3);
  try {
    c.startAll();
    await c.waitQuorate(c.ids, QUORATE_BOUND_MS);
    const n = await follower(c, c.ids);
    // Clean restarts (each leaves, so the next incarnation joins at once) up to incarnation 4.
    for (let i = 0; i < 3; i++) {
      await stopCleanly(c, n);
      c.start(n);
      await rejoined(c, n);
    }
    assert.equal(num(await c.status(n), 'incarnation'), 4);
    await c.put(c.ids, 'before', 'kept', QUORATE_BOUND_MS);
    await stopCleanly(c, n);
    await rm(join(c.dir, `node-${n}`, 'stable-state'));

    c.start(n);
    // It catches up, sees that the cluster knows incarnation 4 of it, records it, ends that run
    // and starts again in the same process as incarnation 5: one start is enough.
    const pid = c.pid(n);
    await rejoined(c, n);
    assert.equal(c.exitCode(n), null, 'the daemon did not exit');
    assert.equal(c.pid(n), pid, 'the same process');
    const w = await warnings(c, n);
    assert.ok(
      w.some((m) => m.startsWith('storage repair (stable-state-missing): stable-state at byte 0')),
      `the missing stable state is logged at warn:\n${w.join('\n')}`,
    );
    assert.ok(
      w.some((m) =>
        m.startsWith(
          'incarnation 1 was already used: the cluster saw incarnation 4 of this node (the stable state was lost); learned it from the cluster and saved it: this run ends and the daemon starts again as incarnation 5',
        ),
      ),
      `the learned incarnation is logged at warn:\n${w.join('\n')}`,
    );

    for (const m of w.filter((x) => /stable state|incarnation/.test(x))) log(m);
    const s = await c.status(n);
    assert.equal(num(s, 'incarnation'), 5);
    const others = c.ids.filter((i) => i !== n);
    const seen = await c.status(others[0] ?? 1);
    assert.ok(
      seen !== null && membersOf(seen).some(([node, inc]) => node === n && inc === 5),
      'the others see incarnation 5 in the view',
    );
    const got = (await c.request(n, 'kv.get', { key: 'before' })) as Record<string, ApiData>;
    assert.equal(got['text'], 'kept');
  } finally {
    await c.close();
  }
});
