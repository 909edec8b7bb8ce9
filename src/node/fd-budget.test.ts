// Proves the descriptor budget: an ample limit gives every listener its wanted cap; a tighter one
// shrinks the caps (never below their minimums) so that reserves plus caps always fit the limit,
// the peers' lanes always included; caps never shrink as the limit grows; a limit below the
// minimum is refused with one line naming the limit, what is needed and how to raise it; and the
// soft "Max open files" is parsed from /proc/self/limits text (numbers and "unlimited").
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { API_CLIENTS_MAX, HTTP_CONNECTIONS_MAX, PENDING_HANDSHAKES_PER_PEER_MAX } from '../constants.js';
import {
  API_CLIENTS_MIN,
  HTTP_CONNECTIONS_MIN,
  PEER_LANES,
  PEER_PENDING_MAX,
  PEER_PENDING_MIN,
  fdBudget,
  parseOpenFileLimit,
  readOpenFileLimit,
  type FdBudget,
} from './fd-budget.js';

/** What each peer holds on our peer port whatever the caps: its inbound lanes twice (a restart) and its claims. */
const PEER_INBOUND = 2 * PEER_LANES + PENDING_HANDSHAKES_PER_PEER_MAX;

function ok(limit: number, peers: number): FdBudget {
  const r = fdBudget(limit, peers);
  assert.ok(r.ok, r.ok ? '' : r.message);
  return r.budget;
}

test('an ample limit gives every listener its wanted cap', () => {
  for (const limit of [65_536, 1_048_576, Infinity]) {
    const b = ok(limit, 2);
    assert.deepEqual(b.caps, {
      http: HTTP_CONNECTIONS_MAX,
      apiClients: API_CLIENTS_MAX,
      apiConnections: API_CLIENTS_MAX + API_CLIENTS_MAX / 4,
      peerPending: PEER_PENDING_MAX,
      peerConnections: PEER_INBOUND * 2 + PEER_PENDING_MAX,
    });
  }
  // The common soft limit fits a 9-node cluster's full caps.
  const nine = ok(1024, 8);
  assert.equal(nine.caps.http, HTTP_CONNECTIONS_MAX);
  assert.ok(nine.total <= 1024);
});

test('reserves plus caps fit every limit; caps stay within their bounds and never shrink as the limit grows', () => {
  for (const peers of [0, 1, 2, 4, 8, 31]) {
    const low = fdBudget(1, peers);
    assert.ok(!low.ok);
    let previous: FdBudget | undefined;
    for (let limit = low.needed; limit <= low.wanted + 50; limit++) {
      const b = ok(limit, peers);
      const c = b.caps;
      assert.ok(b.total <= limit, `total ${b.total} within limit ${limit}`);
      assert.equal(
        b.total,
        b.reserved.runtime +
          b.reserved.storage +
          b.reserved.peerOutbound +
          b.reserved.margin +
          c.http +
          c.apiConnections +
          c.peerConnections,
      );
      assert.ok(c.http >= HTTP_CONNECTIONS_MIN && c.http <= HTTP_CONNECTIONS_MAX);
      assert.ok(c.apiClients >= API_CLIENTS_MIN && c.apiClients <= API_CLIENTS_MAX);
      assert.ok(c.apiConnections > c.apiClients, 'room for a refusal frame');
      assert.ok(c.peerPending >= PEER_PENDING_MIN && c.peerPending <= PEER_PENDING_MAX);
      // The peers' own lanes are reserved: every lane in and out and their claims, beside the unidentified handshakes.
      assert.equal(b.reserved.peerOutbound, PEER_LANES * peers);
      assert.equal(c.peerConnections, PEER_INBOUND * peers + c.peerPending);
      if (previous !== undefined)
        for (const k of ['http', 'apiClients', 'apiConnections', 'peerPending', 'peerConnections'] as const)
          assert.ok(c[k] >= previous.caps[k], `${k} shrank from ${previous.caps[k]} at limit ${limit}`);
      previous = b;
    }
    assert.equal(previous?.total, low.wanted, 'full caps at the wanted limit');
  }
});

test('a limit below the minimum is refused with one line naming the limit and what to raise it to', () => {
  const r = fdBudget(256, 2);
  assert.ok(!r.ok);
  assert.ok(r.needed > 256 && r.wanted > r.needed);
  assert.equal(r.message.split('\n').length, 1);
  assert.match(r.message, /open-file limit \(RLIMIT_NOFILE\) is 256/);
  assert.match(r.message, new RegExp(`ulimit -n, LimitNOFILE= .* to at least ${r.needed}, ${r.wanted} for full caps`));
  assert.ok(fdBudget(r.needed, 2).ok, 'the minimum itself is enough');
  assert.ok(!fdBudget(r.needed - 1, 2).ok);
  // More peers need more descriptors.
  const bigger = fdBudget(1, 8);
  assert.ok(!bigger.ok && bigger.needed === r.needed + 6 * (PEER_LANES + PEER_INBOUND));
});

test('the soft open-file limit is read from /proc/self/limits text', () => {
  const text = [
    'Limit                     Soft Limit           Hard Limit           Units     ',
    'Max cpu time              unlimited            unlimited            seconds   ',
    'Max open files            1024                 524288               files     ',
    'Max locked memory         8388608              8388608              bytes     ',
  ].join('\n');
  assert.equal(parseOpenFileLimit(text), 1024);
  assert.equal(parseOpenFileLimit(text.replace('1024     ', 'unlimited')), Infinity);
  assert.equal(parseOpenFileLimit('Max cpu time  unlimited  unlimited  seconds'), undefined);
  assert.equal(parseOpenFileLimit('Max open files  -3  5  files'), undefined);
  const own = readOpenFileLimit();
  assert.ok(own.limit > 0);
  if (process.platform === 'linux') assert.equal(own.source, '/proc/self/limits');
});
