// Proves the recovery coordinator end to end on real cohort nodes (src/sim/cluster-harness.ts,
// virtual time): three nodes in a level-1 group, a participant registered on each; a crashed
// member makes the survivors' participants stop, and they start (with the survivors, under a
// newer generation) only after the crashed incarnation's fence is confirmed, then finish. A
// participant that never answers its start is evicted by the leader after the member timeout,
// and the round restarts and finishes without it; one that goes away while it owes its start
// counts as failed at once. With the planted `start-before-fence` bug the
// survivors start before the fence, which the first test's assertion catches (the control).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId } from '../lib/ids.js';
import { ClusterHarness } from '../sim/cluster-harness.js';
import type { ClusterCanary } from '../services.js';
import type { RecoveryParticipant } from './recovery-service.js';

const GROUP = 'lockspace';
/** The member timeout of these tests (the default is 30 s). */
const TIMEOUT_MS = 2000;

/** A participant that logs what it is told as `n<id> stop|start|finish g<generation> [members]`. */
function participant(id: number, log: string[], answerStart = true): RecoveryParticipant {
  return {
    stop: (_group, generation, done) => {
      log.push(`n${id} stop g${generation}`);
      done();
    },
    start: (start, done) => {
      log.push(
        `n${id} start g${start.generation} [${start.members.map((m) => `${m.node}@${m.incarnation}`).join(',')}]`,
      );
      if (answerStart) done(null);
    },
    finish: (_group, generation) => {
      log.push(`n${id} finish g${generation}`);
    },
  };
}

/** Three joined nodes, each in GROUP at level 1 with a participant (node 2's answering start only when told). */
function setUp(
  log: string[],
  options: { canary?: ClusterCanary; node2AnswersStart?: boolean } = {},
  removers: (() => void)[] = [],
): ClusterHarness {
  const c = new ClusterHarness({
    recoveryMemberTimeoutMs: TIMEOUT_MS,
    ...(options.canary === undefined ? {} : { canary: options.canary }),
  });
  c.runUntil(() => c.allJoinedAndQuorate([1, 2, 3]), 5000);
  const joined: boolean[] = [];
  for (const id of [1, 2, 3]) {
    removers.push(
      c
        .node(id)
        .services.recovery.participate(GROUP, participant(id, log, id !== 2 || options.node2AnswersStart !== false)),
    );
    c.node(id).services.groups.join(GROUP, 1, (r) => joined.push(r.ok));
  }
  c.runUntil(() => joined.length === 3, 5000);
  assert.deepEqual(joined, [true, true, true]);
  c.runMs(500);
  return c;
}

function round(c: ClusterHarness, id: number): string {
  const r = c
    .node(id)
    .services.recovery.rounds()
    .find((x) => x.group === GROUP);
  return r === undefined ? 'none' : `${r.phase} g${r.generation}`;
}

/** Crashes node 3 (a follower under the harness's seed) and waits until node 1 sees it awaiting its fence. */
function crashThree(c: ClusterHarness): void {
  assert.notEqual(c.leader().nodeId, nodeId(3), 'node 3 is a follower (the harness is deterministic)');
  c.crash(3);
  c.runUntil(
    () =>
      c
        .node(1)
        .services.membership.nodes()
        .find((n) => n.nodeId === 3)?.status === 'needs-fencing',
    10_000,
  );
}

function confirmFence(c: ClusterHarness): void {
  const done: boolean[] = [];
  c.node(1).services.membership.fenceConfirm(nodeId(3), null, (r) => done.push(r.ok));
  c.runUntil(() => done.length === 1, 5000);
  assert.deepEqual(done, [true]);
}

test('a crashed member: the survivors stop, start with each other only after the fence, then finish', () => {
  const log: string[] = [];
  const c = setUp(log);
  assert.equal(log.length, 0, 'joins open no round');
  crashThree(c);
  c.runMs(3000);
  const gen = c.node(1).services.recovery.rounds()[0]?.generation ?? 0;
  assert.ok(gen > 0);
  assert.deepEqual(log.slice().sort(), [`n1 stop g${gen}`, `n2 stop g${gen}`]);
  assert.equal(round(c, 1), `waiting-fence g${gen}`, 'no start before the fence');
  assert.equal(round(c, 2), `waiting-fence g${gen}`);
  const status = c.node(2).services.recovery.status()[0];
  assert.deepEqual(
    status?.waiting?.fences.map((f) => `${f.node}@${f.incarnation}`),
    ['3@1'],
  );
  log.length = 0;
  confirmFence(c);
  c.runUntil(() => round(c, 1) === `finished g${gen}` && round(c, 2) === `finished g${gen}`, 5000);
  c.runMs(200);
  for (const id of [1, 2])
    assert.deepEqual(
      log.filter((l) => l.startsWith(`n${id} `)),
      [`n${id} start g${gen} [1@1,2@1]`, `n${id} finish g${gen}`],
    );
  // The whole story is in the event stream, at the same positions on every node.
  const steps = (id: number): string[] => {
    const page = c.node(id).services.membership.machine.eventsFrom(1, 256);
    assert.ok(page.ok);
    return page.value.events.flatMap((e) => (e.kind === 'recovery' ? [`${e.index} ${e.payload.step}`] : []));
  };
  assert.deepEqual(
    steps(1).map((s) => s.split(' ')[1]),
    ['opened', 'stopped', 'stopped', 'fence-satisfied', 'start-due', 'member-started', 'member-started', 'finished'],
  );
  assert.deepEqual(steps(2), steps(1));
});

test('with the planted start-before-fence bug the survivors start before the fence (the control)', () => {
  const log: string[] = [];
  const c = setUp(log, { canary: 'start-before-fence' });
  crashThree(c);
  c.runMs(3000);
  assert.ok(
    log.some((l) => l.includes(' start ')),
    `a start came before the fence: ${log.join('; ')}`,
  );
});

test('a participant that never answers its start is evicted after the member timeout; the round finishes without it', () => {
  const log: string[] = [];
  const c = setUp(log, { node2AnswersStart: false });
  crashThree(c);
  c.runMs(1000);
  const first = c.node(1).services.recovery.rounds()[0]?.generation ?? 0;
  confirmFence(c);
  c.runUntil(() => log.includes(`n2 start g${first} [1@1,2@1]`), 5000);
  const startedAt = c.nowMs();
  c.runUntil(() => c.node(1).services.groups.group(GROUP)?.members.length === 1, 4 * TIMEOUT_MS);
  const took = c.nowMs() - startedAt;
  assert.ok(took >= TIMEOUT_MS - 100 && took < 2 * TIMEOUT_MS + 1000, `evicted after ${took} ms`);
  assert.deepEqual(
    c
      .node(1)
      .services.groups.group(GROUP)
      ?.members.map((m) => m.node),
    [1],
  );
  c.runUntil(() => round(c, 1).startsWith('finished'), 5000);
  const r = c.node(1).services.recovery.rounds()[0];
  assert.ok(r !== undefined && r.generation > first, 'a newer generation without node 2');
  assert.deepEqual(
    r.members.map((m) => m.node),
    [1],
  );
  assert.ok(log.includes(`n1 start g${r.generation} [1@1]`));
  assert.ok(log.includes(`n1 finish g${r.generation}`));
  assert.ok(!log.some((l) => l.startsWith('n2 finish')), 'node 2 never finishes: it is out of the group');
  const page = c.node(2).services.membership.machine.eventsFrom(1, 256);
  assert.ok(page.ok);
  const evicted = page.value.events.find((e) => e.kind === 'recovery' && e.payload.step === 'member-evicted');
  assert.ok(evicted?.kind === 'recovery' && evicted.payload.step === 'member-evicted');
  assert.equal(evicted.payload.node, 2);
  assert.match(evicted.payload.reason, /no started report within 2000 ms/);
});

test('a participant that goes away while it owes its start counts as failed: the node leaves at once, no timeout', () => {
  const log: string[] = [];
  const removers: (() => void)[] = [];
  const c = setUp(log, { node2AnswersStart: false }, removers);
  crashThree(c);
  c.runMs(1000);
  const first = c.node(1).services.recovery.rounds()[0]?.generation ?? 0;
  confirmFence(c);
  c.runUntil(() => log.includes(`n2 start g${first} [1@1,2@1]`), 5000);
  const at = c.nowMs();
  removers[1]?.(); // node 2's participant goes away while it owes the start
  c.runUntil(() => c.node(1).services.groups.group(GROUP)?.members.length === 1, 4 * TIMEOUT_MS);
  assert.ok(c.nowMs() - at < TIMEOUT_MS / 2, `left after ${c.nowMs() - at} ms, not by the timeout`);
  const page = c.node(1).services.membership.machine.eventsFrom(1, 256);
  assert.ok(page.ok);
  assert.ok(page.value.events.some((e) => e.kind === 'recovery' && e.payload.step === 'member-error'));
  c.runUntil(() => round(c, 1).startsWith('finished'), 5000);
});
