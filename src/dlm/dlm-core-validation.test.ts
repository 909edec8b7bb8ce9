// Proves DlmCore's synchronous validation against the rules of research/dlm.md 1.4 on a
// one-node lockspace (the node masters everything, so completions come at once): a QUECVT
// conversion that is not upward is refused by the call (INVALID, as Linux's -EINVAL) and changes
// nothing, while an upward QUECVT conversion is accepted and granted. Regression: the node used
// to accept it and the master answered with an `again` completion, which is only legal for
// NOQUEUE (found by the simulator's dlm workload, seed 1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { incarnation, nodeId } from '../lib/ids.js';
import { DlmCore, type DlmEvent } from './dlm-core.js';
import { LKF, MODE } from './lock-types.js';

function oneNode(): { core: DlmCore; events: DlmEvent[]; session: number } {
  const events: DlmEvent[] = [];
  const core = new DlmCore(nodeId(1), incarnation(1), {
    send: () => {
      throw new Error('a one-node lockspace sends nothing');
    },
    pending: () => 0,
    event: (_s, e) => events.push(e),
    trace: () => undefined,
    departedSafe: () => true,
  });
  assert.ok(core.open('ls').ok);
  core.onView('ls', 1, [{ node: nodeId(1), incarnation: 1 }]);
  return { core, events, session: core.openSession() };
}

test('a QUECVT conversion that is not upward is refused by the call and changes nothing', () => {
  const { core, events, session } = oneNode();
  const lkid = core.lock(session, 'ls', 'r', MODE.PR, 0);
  assert.ok(lkid.ok);
  assert.equal(events.length, 1);
  const down = core.convert(session, 'ls', lkid.value, MODE.NL, LKF.QUECVT);
  assert.equal(down.ok ? 'ok' : down.error.code, 'INVALID');
  assert.equal(events.length, 1, 'no completion for a refused call');
  const up = core.convert(session, 'ls', lkid.value, MODE.EX, LKF.QUECVT);
  assert.ok(up.ok, 'an upward QUECVT conversion is accepted');
  const last = events.at(-1);
  assert.ok(last?.kind === 'completion' && last.status === 'granted' && last.mode === MODE.EX);
});
