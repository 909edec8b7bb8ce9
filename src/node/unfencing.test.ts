// Proves unfencing with real daemons on loopback and the real ClusterLabs fence_dummy (issue 12,
// item 2): a storage-style device (`unfence: true`, its state in a status file of our own) fences
// a killed follower with `off` (the status file says off and stays off while the node is out),
// and once the restarted node has joined as a newer incarnation the leader runs the device with
// `on`: the status file says on again, the fenced incarnation's record holds an `ok` unfence entry
// for the device, `cohort fence history` prints it, and the leader's log has the unfence line
// with fence_dummy's own answer. A missing fence_dummy FAILS this test
// (scripts/install-test-deps.sh installs it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiData } from '../client/index.js';
import { ProcessCluster, membersOf, runCohort, waitFor } from './process-cluster.js';

const FENCE_DUMMY = '/usr/sbin/fence_dummy';
const QUORATE_BOUND_MS = 15_000;
/** Detection (up to ~2 s), fence_dummy (a Python start, ~1 s on a loaded machine), two commits. */
const FENCED_BOUND_MS = 12_000;

type Obj = Readonly<Record<string, ApiData>>;

async function records(c: ProcessCluster, id: number, node: number): Promise<Obj[]> {
  const v = (await c.request(id, 'fence.history', { node })) as { finished: Obj[] };
  return v.finished;
}

test('a fenced node that joins again is unfenced: fence_dummy is told on, the ledger records it ok', async () => {
  assert.ok(existsSync(FENCE_DUMMY), `${FENCE_DUMMY} is missing: run scripts/install-test-deps.sh`);
  const dir = await mkdtemp(join(tmpdir(), 'cohort-unfence-'));
  const statusFile = join(dir, 'scsi.status');
  const status = async (): Promise<string> => (await readFile(statusFile, 'utf8')).trim();
  const c = await ProcessCluster.create(3);
  try {
    // Every node has access to the storage at first.
    await writeFile(statusFile, 'on');
    await c.appendConfig(
      [
        'fencing:',
        '  devices:',
        `    - {name: scsi, agent: exec, program: ${FENCE_DUMMY}, unfence: true, retries: 1, timeoutMs: 10000, options: {status_file: ${JSON.stringify(statusFile)}}}`,
        '  levels: [[scsi]]',
      ].join('\n'),
    );
    c.startAll();
    await c.waitQuorate(c.ids, QUORATE_BOUND_MS);
    const lead = (await c.waitLeader(c.ids, QUORATE_BOUND_MS)).leader;
    const victim = c.ids.find((i) => i !== lead) ?? 3;
    const via = c.ids.find((i) => i !== victim) ?? 1;
    const before = Number((await c.status(victim))?.['incarnation']);
    await c.kill(victim);
    await waitFor(`node ${victim} fenced by fence_dummy`, FENCED_BOUND_MS, async () => {
      const rec = (await records(c, via, victim).catch(() => [])).find((r) => r['incarnation'] === before);
      return rec ?? null;
    });
    assert.equal(await status(), 'off', 'the fence revoked the access (fence_dummy off)');
    const fencedRec = (await records(c, via, victim)).find((r) => r['incarnation'] === before);
    assert.deepEqual(fencedRec?.['unfence'], [], 'nothing is unfenced while the node is out');

    c.start(victim);
    await waitFor(`node ${victim} back as a member with a newer incarnation`, QUORATE_BOUND_MS, async () => {
      const s = await c.status(via);
      return s !== null && membersOf(s).some(([n, inc]) => n === victim && inc > before) ? true : null;
    });
    const unfenced = await waitFor(`an ok unfence entry for node ${victim}`, FENCED_BOUND_MS, async () => {
      const rec = (await records(c, via, victim).catch(() => [])).find((r) => r['incarnation'] === before);
      const entries = (rec?.['unfence'] as Obj[] | undefined) ?? [];
      return entries.some((u) => u['result'] === 'ok') ? entries : null;
    });
    const ok = unfenced.value.find((u) => u['result'] === 'ok');
    assert.equal(ok?.['device'], 'scsi');
    assert.equal(typeof ok['atMs'], 'number');
    assert.equal(await status(), 'on', 'fence_dummy on ran: the status file says on again');

    const text = await runCohort(['fence', 'history', '--node', String(victim), '--socket', c.socket(via)]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /unfenced: scsi ok at \d{4}-\d\d-\d\dT/);
    // The executor's log line carries fence_dummy's own answer to `on`.
    const logs = await Promise.all(c.ids.map((id) => readFile(c.log(id), 'utf8').catch(() => '')));
    assert.ok(
      logs.some((l) =>
        new RegExp(
          `unfence of node ${victim} \\(after the fence of incarnation ${before}\\): device scsi on \\S+ ok \\(exit 0\\) in \\d+ ms, try 1 of 2: Success: Powered ON`,
        ).test(l),
      ),
      'a daemon logged the unfence with fence_dummy\'s "Success: Powered ON"',
    );
  } finally {
    await c.close();
    await rm(dir, { recursive: true, force: true });
  }
});
