// Proves `ArrivalLateness`: messages on time have lateness 0 whatever the clock offset; a message
// held back in the network (a burst after a clog) is late by exactly how long it was held, and the
// rows of a burst grow fresher in order; the baseline survives a clog longer than the window; and
// the failure detector dates a late row back, so a node that died meanwhile is not kept alive by
// it (with a control: the same row taken as on time does keep it alive).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { incarnation, nodeId } from '../lib/ids.js';
import { ArrivalLateness } from './arrival-lateness.js';
import { FailureDetector, detectorOptions } from './failure-detector.js';

const n = nodeId;

test('on-time messages are not late; held-back ones are late by how long they were held, less drift allowance', () => {
  const a = new ArrivalLateness(0.1);
  // The sender's clock is 5000 ms behind ours; transit is 1 ms.
  for (let t = 0; t < 1000; t += 100) assert.equal(a.lateness(n(2), 5001 + t, t), 0);
  // A clog holds the Pings sent at 1000..2400 until 2501 (our 7501); they arrive in a burst.
  // The baseline may rise 10 % of the 1600 ms since the last on-time Ping: 160 ms.
  const burst = [1000, 1100, 1500, 2400].map((sent) => a.lateness(n(2), 7501, sent));
  assert.deepEqual(burst, [1340, 1240, 840, 0]);
  // On time again afterwards.
  assert.equal(a.lateness(n(2), 7601, 2600), 0);
  // A long clog: held 3000 ms, arriving 6000 ms after the last on-time Ping: dated back by 3000 - 600.
  assert.equal(a.lateness(n(2), 13_601, 5600), 2400);
  // A copy of an old Ping delivered late (its send time is older than one already seen) is late.
  assert.equal(Math.round(a.lateness(n(2), 13_700, 1000) ?? 0), 7089); // held 7100 ms, less 10 % of the 99 ms since the last Ping
  // A restart (a newer incarnation, a new clock) starts afresh; an older incarnation's copy is stale.
  assert.equal(a.lateness(n(2), 20_000, 10, 2), 0);
  assert.equal(a.lateness(n(2), 20_001, 5700, 0), null);
  assert.equal(a.lateness(n(3), 100, 50), 0, 'peers are independent');
});

test('the detector dates a late row back: a dead node is not kept alive by an old row', () => {
  for (const control of [false, true]) {
    const times = {
      heartbeatMs: 100,
      suspectAfterMs: 1000,
      suspicionMinMs: 500,
      suspicionMaxMs: 1000,
      localHealthExtensionMaxMs: 0,
    };
    const d = new FailureDetector(detectorOptions(n(1), times), 0);
    d.setMembers(
      [
        { node: n(1), incarnation: incarnation(1) },
        { node: n(2), incarnation: incarnation(1) },
        { node: n(3), incarnation: incarnation(1) },
      ],
      0,
    );
    let failedAt: number | null = null;
    for (let t = 0; t <= 6000 && failedAt === null; t += 50) {
      // Node 3 dies at 1000 ms; node 2 stays alive and reports a row every 100 ms.
      if (t < 1000) d.observe(n(3), t);
      if (t % 100 === 0) {
        // Node 2's rows are held back by 1500 ms from 1500 ms on: each claims node 3 was heard
        // recently because it was sent while node 3 was still alive (silence 1000 ms at most).
        const late = t >= 1500 ? 1500 : 0;
        const sentAt = t - late;
        const silent = Math.max(0, sentAt - 1000);
        d.reachabilityRow(
          n(2),
          [
            { node: n(1), silentMs: 0 },
            { node: n(3), silentMs: silent },
          ],
          t,
          control ? 0 : late,
        );
      }
      for (const decision of d.tick(t)) if (decision.type === 'fail' && decision.node === n(3)) failedAt = t;
    }
    if (control)
      assert.ok(
        failedAt === null || failedAt > 3500,
        `control: taken as on time the rows keep node 3 alive longer (failed at ${failedAt})`,
      );
    else
      assert.ok(
        failedAt !== null && failedAt <= 3000,
        `dated back, node 3 is failed within the bound (failed at ${failedAt})`,
      );
  }
});

test("a silence that began after the leader's stall ended gets no lag extension", () => {
  for (const heardAfterStall of [true, false]) {
    const times = {
      heartbeatMs: 100,
      suspectAfterMs: 1000,
      suspicionMinMs: 500,
      suspicionMaxMs: 1000,
      localHealthExtensionMaxMs: 3000,
    };
    const d = new FailureDetector(detectorOptions(n(1), times), 0);
    d.setMembers(
      [
        { node: n(1), incarnation: incarnation(1) },
        { node: n(2), incarnation: incarnation(1) },
      ],
      0,
    );
    let failedAt: number | null = null;
    for (let t = 0; t <= 8000 && failedAt === null; t += 50) {
      // The leader stalls 1400 ms (its tick at 2000 ms is that late); node 2 dies at 2400 ms,
      // or (control) at 1900 ms, during the stall.
      const dies = heardAfterStall ? 2400 : 1900;
      if (t < dies && (t <= 600 || t >= 2000)) d.observe(n(2), t);
      if (t > 600 && t < 2000) continue; // stalled: no tick runs
      if (t === 2000) d.localLag(1400);
      for (const decision of d.tick(t)) if (decision.type === 'fail') failedAt = t;
    }
    const silence = (failedAt ?? Infinity) - (heardAfterStall ? 2400 : 600);
    if (heardAfterStall)
      assert.ok(
        failedAt !== null && silence <= 2100,
        `healthy-loop silence judged without extension (failed ${silence} ms after last heard)`,
      );
    else
      assert.ok(
        failedAt === null || silence > 3500,
        `control: a silence overlapping the stall is extended (failed ${silence} ms after last heard)`,
      );
  }
});
