/**
 * Peer lanes benchmark (issue 10): what lanes buy. Two `TcpTransport` endpoints on loopback in
 * this process (`src/testing/lane-isolation.ts`); node 1 streams bulk data to node 2 (256 KiB
 * messages, as fast as backpressure allows) while each sends the other a control heartbeat
 * every 100 ms. Prints bulk throughput (MiB/s) and heartbeat interval and one-way delay
 * p50/p99/max, with lanes (stream on bulk, heartbeats on control) and without (both on one
 * lane, one deep queue per peer as before lanes), plus how late the event loop ran timers.
 *
 * Usage: node dist/bench/peer-lanes.js [--seconds S] [--mib N] [--message-kib K] [--plain] [--json]
 * Not a timed test: take figures on an idle machine; anything else on the cores skews them (the
 * event-loop line says how much).
 */
import { formatSummary } from '../src/testing/interval-meter.js';
import {
  measureLaneIsolation,
  type LaneIsolationMode,
  type LaneIsolationResult,
} from '../src/testing/lane-isolation.js';
import { runBench, benchArgs } from './bench-args.js';

const MIB = 1024 * 1024;
const PERIOD_MS = 100;
const MODES: readonly LaneIsolationMode[] = ['lanes', 'one-lane'];

function print(r: LaneIsolationResult): void {
  const out = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  out(
    `${r.mode}: bulk ${(r.bulkBytes / MIB).toFixed(0)} MiB in ${(r.streamMs / 1000).toFixed(1)} s = ${r.throughputMiBps.toFixed(0)} MiB/s`,
  );
  out(`  heartbeat 1->2 (on the stream's path) interval ${formatSummary(r.aToB.intervals)}`);
  out(`                                          delay ${formatSummary(r.aToB.delays)} refused ${r.aToB.refused}`);
  out(`  heartbeat 2->1 (reverse direction)     interval ${formatSummary(r.bToA.intervals)}`);
  out(`                                          delay ${formatSummary(r.bToA.delays)} refused ${r.bToA.refused}`);
  out(`  event-loop timer delay ${formatSummary(r.loopDelay)}`);
}

async function main(): Promise<void> {
  const values = benchArgs(
    {
      name: 'peer-lanes',
      summary: `What peer lanes buy: two TcpTransport endpoints on loopback in this process; node 1 streams bulk
data to node 2 while each sends the other a control heartbeat every ${PERIOD_MS} ms. Prints bulk throughput and
heartbeat interval and delay, with lanes and on one lane. Not a timed test: take figures on an idle machine.`,
    },
    {
      seconds: {
        kind: 'number',
        default: 5,
        min: 0.1,
        max: 600,
        value: 'S',
        help: 'least seconds of streaming per mode',
      },
      mib: { kind: 'int', default: 64, min: 1, max: 65_536, value: 'N', help: 'least MiB streamed per mode' },
      'message-kib': { kind: 'int', default: 256, min: 1, max: 1024, value: 'K', help: 'bulk message size in KiB' },
      plain: { kind: 'boolean', help: 'insecure plaintext instead of AES-256-GCM' },
      json: { kind: 'boolean', help: 'print one JSON object instead of the lines' },
    },
  );
  const { seconds, mib } = values;
  const messageKib = values['message-kib'];
  const results: LaneIsolationResult[] = [];
  for (const mode of MODES) {
    const r = await measureLaneIsolation({
      mode,
      bulkBytesMin: mib * MIB,
      durationMsMin: seconds * 1000,
      bulkMessageBytes: messageKib * 1024,
      heartbeatPeriodMs: PERIOD_MS,
      timeoutMs: seconds * 1000 + 120_000,
      plain: values.plain,
    });
    results.push(r);
    if (!values.json) print(r);
  }
  if (values.json) process.stdout.write(`${JSON.stringify({ periodMs: PERIOD_MS, plain: values.plain, results })}\n`);
}

await runBench('peer-lanes', main);
