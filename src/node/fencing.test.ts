// Proves automatic fencing with real daemons on loopback (issue 12): with the `process` agent,
// kill -9 of a follower makes the leader fence it through the agent (the ledger records the
// attempt and the proof, `cohort fence history` prints them), the survivors' level-1 group stops,
// starts (only once the fence is recorded) and finishes, and the restarted node joins as a
// new incarnation with no operator; an agent that hangs times out, is retried, and the next level
// fences; an agent that fails everywhere leaves the fence pending (the history says so) until
// `cohort fence confirm` closes it; `cohort fence NODE` fences a live member on request.
import { test } from 'node:test';
import { performance } from 'node:perf_hooks';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type ApiData, type CohortClient } from '../client/index.js';
import { ProcessCluster, membersOf, runCohort, waitFor } from './process-cluster.js';

const QUORATE_BOUND_MS = 15_000;
/** Detection (up to ~2 s), the agent, and two commits, on two shared cores. */
const FENCED_BOUND_MS = 10_000;

function log(line: string): void {
  process.stderr.write(`# ${line}\n`);
}

type Obj = Readonly<Record<string, ApiData>>;

async function history(c: ProcessCluster, id: number, node: number): Promise<{ pending: Obj[]; finished: Obj[] }> {
  const v = (await c.request(id, 'fence.history', { node })) as { pending: Obj[]; finished: Obj[] };
  return v;
}

test('kill -9 of a follower: the survivors fence it with the process agent, recover their group, and the restarted node joins by itself', async () => {
  const c = await ProcessCluster.create(3);
  const clients: CohortClient[] = [];
  try {
    await c.appendConfig(['fencing:', '  devices:', c.processDevice('kill'), '  levels: [[kill]]'].join('\n'));
    c.startAll();
    await c.waitQuorate(c.ids, QUORATE_BOUND_MS);
    const lead = (await c.waitLeader(c.ids, QUORATE_BOUND_MS)).leader;
    const victim = c.ids.find((i) => i !== lead) ?? 3;
    const via = c.ids.find((i) => i !== victim) ?? 1;
    const before = Number((await c.status(victim))?.['incarnation']);
    // Every node takes part in a level-1 group's recovery; the survivors must start only after the fence.
    const steps = new Map<number, string[]>();
    for (const id of c.ids) {
      const client = await connect({ socket: c.socket(id), clientName: 'fencing test' });
      clients.push(client);
      const seen: string[] = [];
      steps.set(id, seen);
      const p = await client.recovery.participate(
        'app',
        {
          stop: (g) => {
            seen.push(`stop ${g}`);
          },
          start: async (info) => {
            const h = await history(c, via, victim);
            const fencedNow = h.finished.some((r) => r['incarnation'] === before);
            seen.push(`start ${info.generation} [${info.members.map((m) => m.node).join(',')}] fenced=${fencedNow}`);
          },
          finish: (g) => {
            seen.push(`finish ${g}`);
          },
        },
        { level: 1 },
      );
      p.ended.catch(() => undefined);
    }
    const t0 = performance.now();
    await c.kill(victim);
    const fenced = await waitFor(`node ${victim} fenced by the process agent`, FENCED_BOUND_MS, async () => {
      const h = await history(c, via, victim).catch(() => null);
      const rec = h?.finished.find((r) => r['incarnation'] === before);
      return rec ?? null;
    });
    log(`kill -9 of node ${victim} to fence recorded: ${Math.round(performance.now() - t0)} ms`);
    const survivors = c.ids.filter((i) => i !== victim);
    await waitFor('recovery finished on both survivors', FENCED_BOUND_MS, () =>
      Promise.resolve(
        survivors.every((id) => steps.get(id)?.some((x) => x.startsWith('finish')) === true) ? true : null,
      ),
    );
    log(`kill -9 of node ${victim} to recovery finished: ${Math.round(performance.now() - t0)} ms`);
    for (const id of survivors) {
      const seen = steps.get(id) ?? [];
      const start = seen.find((x) => x.startsWith('start'));
      assert.ok(seen[0]?.startsWith('stop'), `node ${id} stopped first: ${seen.join('; ')}`);
      assert.match(
        start ?? '',
        new RegExp(`^start \\d+ \\[${survivors.join(',')}\\] fenced=true$`),
        `node ${id}: ${seen.join('; ')}`,
      );
    }
    const outcome = fenced.value['outcome'] as Obj;
    const proof = outcome['proof'] as Obj;
    assert.equal(outcome['state'], 'fenced');
    assert.equal(proof['by'], 'agent');
    assert.equal(proof['device'], 'kill');
    const attempts = fenced.value['attempts'] as Obj[];
    assert.ok(
      attempts.length >= 1 && attempts.at(-1)?.['result'] === 'ok',
      `the last attempt is ok: ${JSON.stringify(attempts)}`,
    );
    const text = await runCohort(['fence', 'history', '--socket', c.socket(via)]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, new RegExp(`node ${victim} \\(node-${victim}\\) incarnation ${before}`));
    assert.match(text.stdout, /fenced by agent, level 1 device kill/);
    assert.match(text.stdout, /level 1 kill off ok exit 0 in \d+ ms \(round 1, by node \d\b/);
    // The restarted node is admitted with no operator: its old incarnation's fence is recorded.
    c.start(victim);
    await waitFor(`node ${victim} back as a member with a newer incarnation`, QUORATE_BOUND_MS, async () => {
      const s = await c.status(via);
      const m = s === null ? [] : membersOf(s);
      return m.some(([n, inc]) => n === victim && inc > before) ? true : null;
    });
  } finally {
    for (const client of clients) await client.close().catch(() => undefined);
    await c.close();
  }
});

test('a hanging agent times out and is retried, then the next level fences; a failing one leaves the fence to an operator', async () => {
  const scripts = await mkdtemp(join(tmpdir(), 'cohort-agents-'));
  try {
    const hang = join(scripts, 'fence_hang');
    await writeFile(hang, '#!/bin/sh\ncat >/dev/null\nsleep 30\n');
    await chmod(hang, 0o755);
    const c = await ProcessCluster.create(3);
    try {
      await c.appendConfig(
        [
          'fencing:',
          '  devices:',
          `    - {name: hang, agent: exec, program: ${JSON.stringify(hang)}, timeoutMs: 300, retries: 1}`,
          c.processDevice('kill'),
          '  levels: [[hang], [kill]]',
        ].join('\n'),
      );
      c.startAll();
      await c.waitQuorate(c.ids, QUORATE_BOUND_MS);
      const lead = (await c.waitLeader(c.ids, QUORATE_BOUND_MS)).leader;
      const victim = c.ids.find((i) => i !== lead) ?? 3;
      const before = (await c.status(victim))?.['incarnation'];
      await c.kill(victim);
      const fenced = await waitFor(`node ${victim} fenced by level 2`, FENCED_BOUND_MS + 5_000, async () => {
        const h = await history(c, lead, victim).catch(() => null);
        return h?.finished.find((r) => r['incarnation'] === before) ?? null;
      });
      const attempts = (fenced.value['attempts'] as Obj[]).map(
        (a) => `${a['device'] as string}:${a['result'] as string}`,
      );
      assert.deepEqual(attempts, ['hang:timed-out', 'hang:timed-out', 'kill:ok']);
      assert.equal(((fenced.value['outcome'] as Obj)['proof'] as Obj)['level'], 2);
    } finally {
      await c.close();
    }
  } finally {
    await rm(scripts, { recursive: true, force: true });
  }
});

test('an agent that fails everywhere: the fence stays pending, recovery waits and cohort recovery says why; cohort fence confirm lets it go on', async () => {
  const c = await ProcessCluster.create(3);
  const clients: CohortClient[] = [];
  try {
    await c.appendConfig(
      [
        'fencing:',
        '  devices:',
        '    - {name: broken, agent: exec, program: /bin/false, retries: 0}',
        '  levels: [[broken]]',
      ].join('\n'),
    );
    c.startAll();
    await c.waitQuorate(c.ids, QUORATE_BOUND_MS);
    const lead = (await c.waitLeader(c.ids, QUORATE_BOUND_MS)).leader;
    const victim = c.ids.find((i) => i !== lead) ?? 3;
    const finished = new Set<number>();
    for (const id of c.ids) {
      const client = await connect({ socket: c.socket(id), clientName: 'fencing test' });
      clients.push(client);
      const p = await client.recovery.participate(
        'app',
        { stop: () => undefined, start: () => undefined, finish: () => finished.add(id) },
        { level: 1 },
      );
      p.ended.catch(() => undefined);
    }
    await c.kill(victim);
    await waitFor(`node ${victim}'s fence failed a round`, FENCED_BOUND_MS, async () => {
      const h = await history(c, lead, victim).catch(() => null);
      const rec = h?.pending[0];
      const attempts = (rec?.['attempts'] as Obj[] | undefined) ?? [];
      return attempts.some((a) => a['result'] === 'failed') &&
        (rec?.['activity'] as Obj | undefined)?.['kind'] === 'exhausted'
        ? true
        : null;
    });
    const text = await runCohort(['fence', 'history', '--socket', c.socket(lead)]);
    assert.match(text.stdout, /pending \(1\):/);
    assert.match(text.stdout, /level 1 broken off failed exit 1/);
    assert.match(text.stdout, /now: every level failed in round \d+; next round at/);
    // The group stays stopped, and `cohort recovery` says it waits for that fence.
    const stuck = await runCohort(['recovery', '--socket', c.socket(lead)]);
    assert.equal(stuck.code, 0, stuck.stderr);
    assert.match(
      stuck.stdout,
      new RegExp(`fence of node ${victim} \\(incarnation \\d+\\) not recorded since index \\d+`),
    );
    assert.equal(finished.size, 0, 'no survivor finished recovery before the fence');
    const confirm = await runCohort(['fence', 'confirm', String(victim), '--socket', c.socket(lead)]);
    assert.equal(confirm.code, 0, confirm.stderr);
    const after = await history(c, lead, victim);
    assert.equal(after.pending.length, 0);
    assert.equal(((after.finished[0]?.['outcome'] as Obj)['proof'] as Obj)['by'], 'confirm');
    const survivors = c.ids.filter((i) => i !== victim);
    await waitFor('recovery finished after the confirmation', FENCED_BOUND_MS, () =>
      Promise.resolve(survivors.every((id) => finished.has(id)) ? true : null),
    );
  } finally {
    for (const client of clients) await client.close().catch(() => undefined);
    await c.close();
  }
});

test('cohort fence NODE fences a live member on request', async () => {
  const c = await ProcessCluster.create(3);
  try {
    await c.appendConfig(['fencing:', '  devices:', c.processDevice('kill'), '  levels: [[kill]]'].join('\n'));
    c.startAll();
    await c.waitQuorate(c.ids, QUORATE_BOUND_MS);
    const lead = (await c.waitLeader(c.ids, QUORATE_BOUND_MS)).leader;
    const victim = c.ids.find((i) => i !== lead) ?? 3;
    const out = await runCohort(['fence', String(victim), '--note', 'maintenance test', '--socket', c.socket(lead)]);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /removed from the view/);
    const rec = await waitFor(`node ${victim} fenced on request`, FENCED_BOUND_MS, async () => {
      const h = await history(c, lead, victim).catch(() => null);
      return h?.finished[0] ?? null;
    });
    assert.equal(c.running(victim), false, 'the process agent killed the fenced node');
    assert.match((rec.value['request'] as Obj)['reason'] as string, /maintenance test/);
    const again = await runCohort(['fence', '99', '--socket', c.socket(lead)]);
    assert.notEqual(again.code, 0);
  } finally {
    await c.close();
  }
});
