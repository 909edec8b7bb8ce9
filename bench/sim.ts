// Simulator throughput: simulated seconds per wall second for 3- and 5-node clusters of the
// proving workload (reliable broadcast with persistence) under the full fault mix, in this
// thread. Not a timed test: run it on an idle machine for real figures.
//
//   node dist/bench/sim.js [--seeds N] [--json]
import { performance } from 'node:perf_hooks';
import { runSeed } from '../src/sim/index.js';
import { benchArgs } from './bench-args.js';

interface Row {
  nodes: number;
  seeds: number;
  simulatedSeconds: number;
  wallSeconds: number;
  simSecondsPerWallSecond: number;
  eventsPerWallSecond: number;
  violations: number;
}

function measure(nodes: number, seeds: number): Row {
  let simulatedMs = 0;
  let events = 0;
  let violations = 0;
  const t0 = performance.now();
  for (let seed = 1; seed <= seeds; seed++) {
    const { result } = runSeed({ workload: 'broadcast', nodeCount: nodes }, seed);
    simulatedMs += result.simulatedMs;
    events += result.events;
    violations += result.violations.length;
  }
  const wallMs = performance.now() - t0;
  return {
    nodes,
    seeds,
    simulatedSeconds: simulatedMs / 1000,
    wallSeconds: wallMs / 1000,
    simSecondsPerWallSecond: simulatedMs / wallMs,
    eventsPerWallSecond: (events * 1000) / wallMs,
    violations,
  };
}

const args = benchArgs(
  {
    name: 'sim',
    summary: `Simulator throughput: simulated seconds per wall second for 3- and 5-node clusters of the
broadcast workload under the full fault mix, in this thread. Not a timed test.`,
  },
  {
    seeds: { kind: 'int', default: 50, min: 1, max: 100_000, value: 'N', help: 'seeds per row' },
    json: { kind: 'boolean', help: 'print one JSON array instead of the table' },
  },
);
const seeds = args.seeds;
runSeed({ workload: 'broadcast', nodeCount: 3 }, 0); // warm-up (JIT), not measured
const rows = [measure(3, seeds), measure(5, seeds)];
if (args.json) {
  process.stdout.write(`${JSON.stringify(rows)}\n`);
} else {
  const header = ['nodes', 'seeds', 'simulated s', 'wall s', 'sim s / wall s', 'events / wall s', 'violations'];
  const lines = rows.map((r) =>
    [
      r.nodes,
      r.seeds,
      r.simulatedSeconds.toFixed(1),
      r.wallSeconds.toFixed(2),
      r.simSecondsPerWallSecond.toFixed(0),
      r.eventsPerWallSecond.toFixed(0),
      r.violations,
    ].map(String),
  );
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cells: string[]): string => cells.map((c, i) => c.padStart(widths[i]!)).join('  ');
  process.stdout.write(
    `simulator throughput, broadcast workload, one thread, ${seeds} seeds per row\n${fmt(header)}\n${lines.map(fmt).join('\n')}\n`,
  );
}
