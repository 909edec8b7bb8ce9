// WAL benchmark on FileDisk in a temporary directory: durable appends/s and MB/s of 128-byte
// records, every append acknowledged only after its group commit's fsync, at several numbers of
// outstanding appends; plus raw fdatasync latency for reference. Not a timed test.
//
//   node dist/bench/wal.js [--seconds S] [--json]
import { mkdtempSync, rmSync, openSync, writeSync, fdatasyncSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileDisk } from '../src/platform/file-disk.js';
import { Wal } from '../src/storage/wal.js';
import { runBench, benchArgs } from './bench-args.js';

const RECORD_BYTES = 128;
const CONCURRENCY = [1, 16, 256];

interface Row {
  outstanding: number;
  appendsPerSec: number;
  mbPerSec: number;
  fsyncs: number;
  recordsPerFsync: number;
}

/** Keeps `outstanding` appends in flight for `seconds`; each completes when durable. */
function runLevel(dir: string, outstanding: number, seconds: number): Promise<Row> {
  const disk = new FileDisk(join(dir, `c${outstanding}`));
  const payload = new Uint8Array(RECORD_BYTES).fill(0xab);
  return new Promise((resolve, reject) => {
    let inFlight = 0;
    let completed = 0;
    let stopping = false;
    const started = performance.now();
    const { wal } = Wal.open(disk, {
      onFailed: reject,
      onDurable: (seq) => {
        const done = seq - completed;
        completed = seq;
        inFlight -= done;
        if (performance.now() - started >= seconds * 1000) stopping = true;
        if (!stopping) top();
        else if (inFlight === 0) finish();
      },
    });
    const top = (): void => {
      const items = [];
      while (inFlight + items.length < outstanding) items.push({ type: 1, payload });
      if (items.length === 0) return;
      inFlight += items.length;
      wal.appendAll(items);
    };
    const finish = (): void => {
      const elapsed = (performance.now() - started) / 1000;
      const row: Row = {
        outstanding,
        appendsPerSec: Math.round(completed / elapsed),
        mbPerSec: Number(((completed * RECORD_BYTES) / elapsed / 1e6).toFixed(2)),
        fsyncs: wal.stats.syncs,
        recordsPerFsync: Number((completed / Math.max(1, wal.stats.syncs)).toFixed(1)),
      };
      wal.close();
      disk.close(() => {
        resolve(row);
      });
    };
    // With one outstanding append, appendAll carries one record: no batching by construction.
    top();
  });
}

function fsyncLatency(dir: string, seconds: number): { p50Ms: number; p99Ms: number; count: number } {
  const fd = openSync(join(dir, 'fsync-probe'), 'w');
  const block = new Uint8Array(RECORD_BYTES);
  const samples: number[] = [];
  const end = performance.now() + Math.min(1000, seconds * 1000);
  let offset = 0;
  try {
    while (performance.now() < end) {
      writeSync(fd, block, 0, block.length, offset);
      offset += block.length;
      const t = performance.now();
      fdatasyncSync(fd);
      samples.push(performance.now() - t);
    }
  } finally {
    closeSync(fd);
  }
  samples.sort((a, b) => a - b);
  const at = (q: number): number =>
    Number((samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? 0).toFixed(3));
  return { p50Ms: at(0.5), p99Ms: at(0.99), count: samples.length };
}

async function main(): Promise<void> {
  const { seconds, json } = benchArgs(
    {
      name: 'wal',
      summary: `Durable appends/s and MB/s of ${RECORD_BYTES}-byte records on FileDisk in a temporary directory (each
acknowledged after its group commit's fsync), at ${CONCURRENCY.join(', ')} outstanding appends; plus raw
fdatasync latency. Not a timed test: take figures on an idle machine.`,
    },
    {
      seconds: { kind: 'number', default: 3, min: 0.1, max: 600, value: 'S', help: 'seconds per level' },
      json: { kind: 'boolean', help: 'print one JSON object instead of the table' },
    },
  );
  const dir = mkdtempSync(join(tmpdir(), 'cohort-wal-bench-'));
  try {
    const fsync = fsyncLatency(dir, seconds);
    const rows: Row[] = [];
    for (const outstanding of CONCURRENCY) rows.push(await runLevel(dir, outstanding, seconds));
    if (json) {
      process.stdout.write(`${JSON.stringify({ recordBytes: RECORD_BYTES, seconds, fsync, rows })}\n`);
      return;
    }
    process.stdout.write(
      `raw append+fdatasync latency: p50 ${fsync.p50Ms} ms, p99 ${fsync.p99Ms} ms (${fsync.count} samples)\n`,
    );
    process.stdout.write(
      `durable appends of ${RECORD_BYTES}-byte records (FileDisk, group commit), ${seconds}s per level\n`,
    );
    process.stdout.write('outstanding  appends/s      MB/s   fsyncs  records/fsync\n');
    for (const r of rows) {
      process.stdout.write(
        `${String(r.outstanding).padStart(11)}  ${String(r.appendsPerSec).padStart(9)}  ${r.mbPerSec.toFixed(2).padStart(8)}  ${String(r.fsyncs).padStart(7)}  ${r.recordsPerFsync.toFixed(1).padStart(13)}\n`,
      );
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await runBench('wal', main);
