/**
 * A `worker_threads` entry for `runBatch`: receives `{index, seed}` messages, runs each seed of
 * the job given in `workerData`, and replies with its summary. An exception that escapes a run
 * (a bug in the simulator itself) is reported as an error reply, never swallowed.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { assert } from '../lib/assert.js';
import { runSeed, type SeedJob, type WorkerReply } from './seed-runner.js';

const port = parentPort;
assert(port !== null, 'seed-worker must run in a worker thread');
const job = workerData as SeedJob;

port.on('message', (msg: { index: number; seed: number }) => {
  let reply: WorkerReply;
  try {
    reply = { type: 'summary', index: msg.index, summary: runSeed(job, msg.seed).summary };
  } catch (e) {
    reply = { type: 'error', index: msg.index, message: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
  }
  port.postMessage(reply);
});
