// Proves the simulator's end-to-end promises on the proving workload: the same seed gives the
// same trace hash (ten seeds, each run twice) and different seeds give different hashes; the
// correct protocol passes a batch of seeds with zero violations and converges in the liveness
// phase; every planted canary is caught within a bounded number of seeds; the trace file holds
// exactly the hashed lines; an exception inside a run becomes a reported violation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { simDiskFactory } from './default-disk.js';
import { runSimulation } from './simulation.js';
import { broadcastWorkload } from './workloads/broadcast.js';
import { BROADCAST_CANARIES } from './workloads/broadcast-node.js';
import type { Workload } from './workload.js';

const run = (seed: number, canary?: string, tracePath?: string) =>
  runSimulation(broadcastWorkload, { seed, canary, tracePath, diskFactory: simDiskFactory });

/** Seeds within which each canary must be caught (measured: all are caught far sooner). */
const CANARY_SEED_BUDGET = 60;

test('same seed, same trace hash: ten seeds replayed twice', () => {
  for (let i = 0; i < 10; i++) {
    const seed = 1000 + i * 7919;
    const a = run(seed);
    const b = run(seed);
    assert.equal(a.traceHash, b.traceHash, `seed ${seed} replayed differently`);
    assert.equal(a.events, b.events);
    assert.match(a.traceHash, /^[0-9a-f]{64}$/);
  }
});

test('different seeds give different hashes', () => {
  const hashes = new Set<string>();
  for (let seed = 1; seed <= 10; seed++) hashes.add(run(seed).traceHash);
  assert.equal(hashes.size, 10);
});

test('the correct protocol passes a batch of seeds with zero violations and converges', () => {
  let faults = 0;
  for (let seed = 1; seed <= 40; seed++) {
    const r = run(seed);
    assert.deepEqual(r.violations, [], `seed ${seed}: ${r.violations.map((v) => v.message).join('; ')}`);
    assert.notEqual(r.convergedAfterMs, null, `seed ${seed} did not converge`);
    faults += r.faults.crashes + r.faults.partitions + r.faults.pauses;
    const deliveries = r.workloadStats.find(([k]) => k === 'deliveries')?.[1] ?? 0;
    assert.ok(deliveries > 0, `seed ${seed} delivered nothing: the run proves nothing`);
  }
  assert.ok(faults > 100, `only ${faults} faults injected over 40 seeds`);
});

for (const canary of BROADCAST_CANARIES) {
  test(`canary ${canary} is caught within ${CANARY_SEED_BUDGET} seeds`, () => {
    for (let seed = 1; seed <= CANARY_SEED_BUDGET; seed++) {
      const r = run(seed, canary);
      if (r.violations.length > 0) {
        assert.ok(r.traceTail.length > 0, 'a failing run keeps its trace tail');
        assert.equal(r.canary, canary);
        return;
      }
    }
    assert.fail(`canary ${canary} survived ${CANARY_SEED_BUDGET} seeds: the checker does not bite`);
  });
}

test('the trace file holds exactly the hashed lines', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-sim-'));
  try {
    const path = join(dir, 'trace.txt');
    const r = run(77, undefined, path);
    const text = readFileSync(path, 'utf8');
    assert.equal(createHash('sha256').update(text).digest('hex'), r.traceHash);
    const lines = text.trimEnd().split('\n');
    assert.equal(lines.length, r.traceLines);
    assert.match(lines[0] ?? '', /^0\.000000 sim begin /);
    assert.match(lines.at(-1) ?? '', / sim end .*violations=0/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an exception inside a run is reported as a violation, not thrown', () => {
  const exploding: Workload<unknown, unknown> = {
    ...(broadcastWorkload as unknown as Workload<unknown, unknown>),
    name: 'exploding',
    create: (setup) => {
      const inner = broadcastWorkload.create(setup);
      return {
        ...inner,
        program: {
          codec: inner.program.codec,
          start: (env) => {
            env.timers.after(10, () => {
              throw new Error('planted assertion');
            });
            return undefined;
          },
        },
        driver: { start: () => undefined },
      };
    },
  };
  const r = runSimulation(exploding, { seed: 3, diskFactory: simDiskFactory });
  assert.equal(r.violations.length, 1);
  const v = r.violations[0]!;
  assert.equal(v.checker, 'exception');
  assert.match(v.message, /planted assertion/);
});

test('over a batch, the nemesis injects every fault class and shape, and bit flips hit only a minority', () => {
  const seen = new Set<string>();
  const watching: typeof broadcastWorkload = {
    ...broadcastWorkload,
    create: (setup) => {
      const inner = broadcastWorkload.create(setup);
      const flipped = new Set<unknown>();
      const watcher = {
        name: 'watcher',
        observe: (e: { source: unknown; event: string; fields: { readonly [k: string]: unknown } }) => {
          if (e.source !== 'sim') return;
          seen.add(e.event);
          if (e.event === 'partition') seen.add(`shape:${String(e.fields.shape)}`);
          if (e.event === 'bitflip') flipped.add(e.fields.node);
          assert.ok(
            flipped.size * 2 < setup.nodes.length,
            `bit flips on ${flipped.size} of ${setup.nodes.length} nodes: not a minority`,
          );
        },
      };
      return { ...inner, checkers: [...inner.checkers, watcher] };
    },
  };
  for (let seed = 1; seed <= 30; seed++) {
    // A failed assertion inside the watcher surfaces as an `exception` violation of the run.
    const r = runSimulation(watching, { seed, diskFactory: simDiskFactory });
    assert.deepEqual(r.violations, [], `seed ${seed}`);
  }
  for (const e of [
    'partition',
    'heal',
    'crash',
    'start',
    'pause',
    'resume',
    'clog',
    'swizzle',
    'bitflip',
    'powercut',
    'phase',
    'converged',
  ]) {
    assert.ok(seen.has(e), `no ${e} event in 30 seeds`);
  }
  for (const shape of ['isolate-one', 'halves', 'majorities-ring', 'asymmetric'])
    assert.ok(seen.has(`shape:${shape}`), `no ${shape} partition in 30 seeds`);
});
