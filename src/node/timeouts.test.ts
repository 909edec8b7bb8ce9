// Proves the one timeout model derives consistent figures (the defaults meet issue 6's targets,
// the Raft core accepts the derived settings) and rejects each unsafe combination with a message
// that says why, for every rule, and that every accepted input keeps the safety relations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Prng } from '../lib/prng.js';
import { nodeId } from '../lib/ids.js';
import { MemoryRaftStorage, RAFT_CONFIG_DEFAULTS, validateRaftConfig } from '../log/index.js';
import {
  TIMEOUT_DEFAULTS,
  deriveTimeouts,
  explainTimeouts,
  timeoutInputsWithDefaults,
  type TimeoutInputs,
  type TimeoutModel,
} from './timeouts.js';

function derive(inputs: Partial<TimeoutInputs>): TimeoutModel {
  const r = deriveTimeouts(timeoutInputsWithDefaults(inputs));
  if (!r.ok) throw r.error;
  return r.value;
}

function problems(inputs: Partial<TimeoutInputs>): string[] {
  const r = deriveTimeouts(timeoutInputsWithDefaults(inputs));
  if (r.ok) assert.fail(`expected ${JSON.stringify(inputs)} to be rejected`);
  return r.error.problems.map((p) => `${p.key}: ${p.message}`);
}

test('defaults: 50 ms ticks, 500 ms election, eviction between 1.5 s and 2 s, no watchdog', () => {
  const m = derive({});
  assert.equal(m.tickMs, 50);
  assert.equal(m.raft.heartbeatTicks, 2);
  assert.equal(m.raft.electionTicks, 10);
  assert.equal(m.raft.leaseMarginTicks, 1);
  assert.equal(m.raft.leaseMs, 450);
  assert.equal(m.detector.evictAfterMinMs, 1500);
  assert.equal(m.detector.evictAfterMaxMs, 2000);
  assert.equal(m.nodeLeaseMs, 1000);
  assert.equal(m.driftMarginMs, 100);
  assert.equal(m.watchdog, undefined);
  assert.equal(m.fenceWaitMs, undefined);
  // Issue 6: a 1 s stall must not evict, and a killed node must be removed within 3 s p99
  // (eviction plus a commit of a few heartbeats at most).
  assert.ok(m.detector.evictAfterMinMs > TIMEOUT_DEFAULTS.stallToleranceMs + 2 * TIMEOUT_DEFAULTS.heartbeatMs);
  assert.ok(m.detector.evictAfterMaxMs + 5 * TIMEOUT_DEFAULTS.heartbeatMs <= 3000);
});

test('the Raft core accepts the derived settings for defaults and a spread of inputs', () => {
  for (const inputs of [
    {},
    { heartbeatMs: 10, failureTimeoutMs: 700, stallToleranceMs: 0 },
    { heartbeatMs: 1000, failureTimeoutMs: 5000 },
    { heartbeatMs: 50, failureTimeoutMs: 2000, watchdogMs: 1500 },
  ]) {
    const m = derive(inputs);
    const r = validateRaftConfig({
      ...RAFT_CONFIG_DEFAULTS,
      id: nodeId(1),
      storage: new MemoryRaftStorage(),
      prng: new Prng(1),
      electionTicks: m.raft.electionTicks,
      heartbeatTicks: m.raft.heartbeatTicks,
      leaseMarginTicks: m.raft.leaseMarginTicks,
    });
    assert.ok(r.ok, `raft rejected ${JSON.stringify(inputs)}: ${r.ok ? '' : r.error.message}`);
  }
});

test('a failure timeout below three heartbeats is rejected, saying a delayed heartbeat would evict', () => {
  const p = problems({ heartbeatMs: 200, failureTimeoutMs: 300, stallToleranceMs: 0 });
  assert.ok(
    p.some((m) =>
      m.includes('failureTimeoutMs 300 is below 3 x heartbeatMs 200: a single delayed heartbeat would evict a node'),
    ),
    p.join('\n'),
  );
});

test('an eviction bound not above the stall tolerance is rejected with the minimum that works', () => {
  const p = problems({ failureTimeoutMs: 800, stallToleranceMs: 1000 });
  const line = p.find((m) => m.includes('a 1000 ms stall would evict a healthy node'));
  assert.ok(line !== undefined, p.join('\n'));
  assert.match(line, /raise failureTimeoutMs to at least 801/);
  // And the suggested figure really is accepted.
  derive({ failureTimeoutMs: 801, stallToleranceMs: 1000 });
});

test('watchdog rules: below lease minus drift, above the stall tolerance, at least two heartbeats', () => {
  const tooLong = problems({ watchdogMs: 950 });
  assert.ok(
    tooLong.some((m) =>
      m.includes('watchdogMs 950 must be below the node lease minus the drift margin (1000 - 100 = 900 ms)'),
    ),
    tooLong.join('\n'),
  );
  const resetOnStall = problems({ failureTimeoutMs: 2000, watchdogMs: 900 });
  assert.ok(
    resetOnStall.some((m) => m.includes('a 1000 ms stall would reset a healthy machine')),
    resetOnStall.join('\n'),
  );
  const tooShort = problems({ heartbeatMs: 100, stallToleranceMs: 0, watchdogMs: 150 });
  assert.ok(
    tooShort.some((m) => m.includes('watchdogMs 150 is below 2 x heartbeatMs 100')),
    tooShort.join('\n'),
  );
  const ok = derive({ failureTimeoutMs: 2000, watchdogMs: 1500 });
  assert.deepEqual(ok.watchdog, { timeoutMs: 1500, feedIntervalMs: 375 });
  assert.equal(ok.fenceWaitMs, 0);
});

test('out-of-range and non-integer inputs are rejected by name, all at once', () => {
  const p = problems({ heartbeatMs: 5, failureTimeoutMs: 1.5, stallToleranceMs: -1, watchdogMs: 0 });
  assert.equal(p.length, 4, p.join('\n'));
  assert.ok(p[0]?.startsWith('heartbeatMs: heartbeatMs 5 must be an integer from 10'));
  assert.ok(p.some((m) => m.startsWith('watchdogMs:')));
});

test('an election timeout beyond the Raft ceiling is rejected (raise the heartbeat)', () => {
  const p = problems({ heartbeatMs: 10, failureTimeoutMs: 600_000 });
  assert.ok(
    p.some((m) => m.includes('election ticks')),
    p.join('\n'),
  );
});

test('explanation table names every figure once, with values matching the model', () => {
  const m = derive({ failureTimeoutMs: 2000, watchdogMs: 1500 });
  const rows = explainTimeouts(m);
  const names = rows.map((r) => r.name);
  assert.equal(new Set(names).size, names.length);
  const byName = new Map(rows.map((r) => [r.name, r]));
  assert.equal(byName.get('raft.election')?.ms, m.raft.electionTicks * m.tickMs);
  assert.equal(byName.get('detector.evictAfterMin')?.ms, m.detector.evictAfterMinMs);
  assert.equal(byName.get('watchdogMs')?.source, 'input');
  assert.equal(byName.get('fenceWait')?.ms, 0);
  for (const r of rows) assert.ok(r.rule.length > 0);
});

test('property: any accepted input keeps every safety relation; any rejected one names a problem', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 12_000 }),
      fc.integer({ min: 1, max: 700_000 }),
      fc.integer({ min: 0, max: 5000 }),
      fc.option(fc.integer({ min: 1, max: 10_000 }), { nil: undefined }),
      (heartbeatMs, failureTimeoutMs, stallToleranceMs, watchdogMs) => {
        const r = deriveTimeouts({ heartbeatMs, failureTimeoutMs, stallToleranceMs, watchdogMs });
        if (!r.ok) {
          assert.ok(r.error.problems.length > 0);
          return;
        }
        const m = r.value;
        assert.ok(m.detector.evictAfterMinMs > stallToleranceMs + 2 * heartbeatMs, 'a tolerated stall never evicts');
        assert.ok(failureTimeoutMs >= 3 * heartbeatMs, 'two late heartbeats never evict');
        assert.ok(m.raft.electionTicks > m.raft.heartbeatTicks, 'heartbeats outpace elections');
        assert.ok(
          m.raft.leaseMarginTicks >= 1 && m.raft.leaseMarginTicks < m.raft.electionTicks,
          'a lease exists and has a margin',
        );
        assert.ok(
          m.detector.evictAfterMinMs >= m.nodeLeaseMs + m.driftMarginMs + heartbeatMs,
          'a node stops granting before it can be evicted',
        );
        if (watchdogMs !== undefined) {
          assert.ok(
            watchdogMs <= m.nodeLeaseMs - m.driftMarginMs && watchdogMs > stallToleranceMs,
            'watchdog fires before take-over, not on a tolerated stall',
          );
        }
      },
    ),
    { numRuns: 5000 },
  );
});
