// Proves `cohort recovery` renders what each open round waits for in words (fences with the index
// since which they are awaited, members that did not stop or start, lower-level groups, members
// leaving), says "no recovery in progress" when no round is open, and that the shell participant
// gives COMMAND the step, group, generation and members in its environment; and that the
// command reports an unreachable daemon with exit code 4.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { RecoveryRoundInfo } from '../client/index.js';
import { nodeId } from '../lib/ids.js';
import { RECOVERY_EXIT, describeWait, renderRecovery, runRecovery, stepEnv } from './recovery-command.js';

const m = (node: number, incarnation: number): { node: ReturnType<typeof nodeId>; incarnation: number } => ({
  node: nodeId(node),
  incarnation,
});

function round(over: Partial<RecoveryRoundInfo>): RecoveryRoundInfo {
  return {
    group: 'g1',
    level: 1,
    generation: 4,
    phase: 'waiting-fence',
    sinceIndex: 812,
    members: [],
    waiting: { fences: [], notStopped: [], notStarted: [], evicting: [], lower: [] },
    ...over,
  };
}

test('cohort recovery names what each open round waits for, one row per group', () => {
  const rounds: RecoveryRoundInfo[] = [
    round({
      waiting: {
        fences: [{ ...m(3, 2), sinceIndex: 812 }],
        notStopped: [],
        notStarted: [],
        evicting: [],
        lower: [],
      },
    }),
    round({
      group: 'vol',
      level: 2,
      generation: 5,
      phase: 'stopping',
      sinceIndex: 815,
      waiting: {
        fences: [{ ...m(3, 2), sinceIndex: 812 }],
        notStopped: [m(1, 3)],
        notStarted: [],
        evicting: [m(2, 1)],
        lower: [{ group: 'g1', level: 1, generation: 4, phase: 'waiting-fence' }],
      },
    }),
    round({ group: 'done', phase: 'finished', generation: 2 }),
    round({
      group: 'web',
      level: 3,
      generation: 9,
      phase: 'starting',
      sinceIndex: 900,
      waiting: { fences: [], notStopped: [], notStarted: [m(4, 1)], evicting: [], lower: [] },
    }),
  ];
  const text = renderRecovery(rounds);
  assert.equal(
    text,
    [
      'GROUP  LEVEL  GEN  PHASE          SINCE      WAITING FOR',
      'g1     1      4    waiting-fence  index 812  fence of node 3 (incarnation 2) not recorded since index 812',
      'vol    2      5    stopping       index 815  members not stopped: node 1 (incarnation 3); fence of node 3 (incarnation 2) not recorded since index 812; lower-level groups: g1 (level 1, gen 4, waiting-fence); leaving the group (error or evicted): node 2 (incarnation 1)',
      'web    3      9    starting       index 900  members not started: node 4 (incarnation 1)',
      '',
    ].join('\n'),
  );
  assert.ok(!text.includes('done'), 'a finished round is not in progress');
});

test('cohort recovery says when nothing is in progress', () => {
  assert.equal(renderRecovery([]), 'no recovery in progress\n');
  assert.equal(
    renderRecovery([round({ phase: 'finished' }), round({ group: 'x', phase: 'idle', generation: 0 })]),
    'no recovery in progress (1 group recovered, last rounds finished)\n',
  );
  assert.equal(describeWait(round({ waiting: null })), '');
});

test('the shell participant gives COMMAND its step in the environment', () => {
  assert.deepEqual(stepEnv('start', 'g1', 7, [m(1, 3), m(2, 1)]), {
    COHORT_RECOVERY_STEP: 'start',
    COHORT_RECOVERY_GROUP: 'g1',
    COHORT_RECOVERY_GENERATION: '7',
    COHORT_RECOVERY_MEMBERS: '1@3,2@1',
  });
  assert.equal(stepEnv('stop', 'g1', 7, []).COHORT_RECOVERY_MEMBERS, '');
});

test('cohort recovery without a daemon exits 4 and says so', async () => {
  const err: string[] = [];
  const code = await runRecovery(
    { socket: '/nonexistent/cohort-recovery-test.sock' },
    { out: () => assert.fail('no output'), err: (t) => err.push(t) },
  );
  assert.equal(code, RECOVERY_EXIT.unreachable);
  assert.match(err.join(''), /^cohort recovery: cannot reach the cohort daemon/);
});
