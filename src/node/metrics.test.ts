// Proves the metrics endpoint's listener cap and timeouts over real loopback sockets: past
// `connectionsMax` a connection is closed at once, counted in
// cohort_connections_refused_total{listener="http"} and logged once however many follow; a
// connection that sends nothing, or only part of a request head, is closed by the daemon within
// its timeout; a normal scrape still answers once a slot is free.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { get } from 'node:http';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { Writable } from 'node:stream';
import { HTTP_HEADERS_TIMEOUT_MS, HTTP_IDLE_MS } from '../constants.js';
import type { CohortNode } from '../services.js';
import { startMetrics } from './metrics.js';

/** Just enough of a node for the gauges and /healthz. */
const NODE = {
  services: {
    membership: {
      status: () => ({
        nodeId: 1,
        quorate: true,
        quorumExplanation: 'test',
        role: 'leader',
        viewId: 1,
        members: [],
        term: 1,
        commitIndex: 1,
        appliedIndex: 1,
        totalVotes: 1,
        expectedVotes: 1,
        incarnation: 1,
      }),
      machine: { pendingFences: () => [{}, {}] },
    },
  },
} as unknown as CohortNode;

/** Longest wait for the endpoint to close a connection. */
const CLOSE_WAIT_MS = HTTP_IDLE_MS + 5000;

function open(port: number): Promise<{ socket: Socket; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const socket = connect({ host: '127.0.0.1', port });
    const closed = new Promise<number>((done, fail) => {
      // Bounded, so a listener that never closes fails the test instead of hanging it.
      const timer = setTimeout(() => {
        fail(new Error(`connection still open after ${CLOSE_WAIT_MS} ms`));
      }, CLOSE_WAIT_MS);
      socket.once('close', () => {
        clearTimeout(timer);
        done(performance.now() - started);
      });
    });
    closed.catch(() => undefined); // observed by the caller
    socket.on('error', () => undefined);
    socket.resume();
    socket.once('connect', () => {
      resolve({ socket, closed });
    });
    socket.once('error', reject);
  });
}

function scrape(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        resolve(body);
      });
    }).on('error', reject);
  });
}

test('past the cap a connection is closed at once, counted and logged once; idle and half-sent connections time out', async () => {
  const lines: string[] = [];
  const logger = pino(
    { level: 'warn' },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    }),
  );
  const endpoint = await startMetrics('127.0.0.1', 0, () => NODE, { logger, connectionsMax: 2 });
  const port = Number(new URL(endpoint.url).port);
  try {
    assert.ok(port > 0, endpoint.url);
    const idle = await open(port);
    const partial = await open(port);
    partial.socket.write('GET /metrics HTTP/1.1\r\nHost: x\r\n'); // never finishes its head
    const refused = await Promise.all([open(port), open(port), open(port)]);
    const refusedMs = await Promise.all(refused.map((r) => r.closed));
    assert.ok(
      refusedMs.every((ms) => ms < 2000),
      `refused connections closed at once: ${refusedMs.map(Math.round).join(', ')} ms`,
    );
    assert.equal(endpoint.refused(), 3);
    assert.equal(lines.filter((l) => /refused a connection \(at most 2 connections at once\)/.test(l)).length, 1);

    const partialMs = await partial.closed;
    const idleMs = await idle.closed;
    process.stderr.write(
      `# half-sent head closed after ${Math.round(partialMs)} ms, idle after ${Math.round(idleMs)} ms\n`,
    );
    assert.ok(
      partialMs >= HTTP_HEADERS_TIMEOUT_MS - 200 && partialMs < HTTP_IDLE_MS + 5000,
      `partial: ${partialMs} ms`,
    );
    assert.ok(idleMs >= HTTP_HEADERS_TIMEOUT_MS - 200 && idleMs < HTTP_IDLE_MS + 5000, `idle: ${idleMs} ms`);

    const text = await scrape(endpoint.url);
    assert.match(text, /cohort_connections_refused_total\{listener="http"\} 3/);
    assert.match(text, /cohort_fences_pending 2/);
  } finally {
    await endpoint.close();
  }
});
