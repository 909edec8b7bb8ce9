// Proves `cohort events` and `cohort fence confirm` against a real API socket served in-process:
// events print one readable line each (view, quorum, node, fence) or one JSON object per line with
// --json, in order; the stream's params carry --from and --follow; a GAP ends with one clear line
// naming the oldest sequence to rerun from and exit 1; a missing daemon is exit 4; a refused
// fence confirmation prints the daemon's reason in one line with exit 1, NOT_QUORATE is exit 3,
// and a confirmation that admitted a waiting incarnation says so.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiError, type ApiData } from '../api/index.js';
import { describeEvent, runEvents } from './events-command.js';
import { runFenceConfirm } from './fence-command.js';
import { withApiServer } from '../testing/api-support.js';

const VIEW: ApiData = {
  seq: 4,
  viewId: 3,
  index: 12,
  kind: 'view',
  payload: {
    members: [
      { node: 1, incarnation: 1 },
      { node: 2, incarnation: 2 },
    ],
    quorate: true,
    reason: 'majority',
    explanation: '2 of 3 votes',
    change: { node: 2, incarnation: 2, kind: 'admitted', cause: 'incarnation 1 was fenced' },
  },
};
const QUORUM: ApiData = {
  seq: 5,
  viewId: 3,
  index: 13,
  kind: 'quorum',
  payload: { quorate: false, reason: 'no-majority', explanation: '1 of 3 votes' },
};
const NODE: ApiData = {
  seq: 6,
  viewId: 3,
  index: 14,
  kind: 'node',
  payload: { node: 3, incarnation: 1, from: 'needs-fencing', to: 'out', cause: 'fenced' },
};

function capture(): { out: string[]; err: string[]; io: { out(t: string): void; err(t: string): void } } {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { out: (t) => out.push(t), err: (t) => err.push(t) } };
}

test('events print one line per event, JSON lines with --json, pass --from and --follow, and a GAP is one clear line with exit 1', async () => {
  const seen: ApiData[] = [];
  await withApiServer(
    (s) => {
      s.registerStream('events', (p, _ctx, sink) => {
        seen.push(p);
        const from = (p as { fromSeq?: number }).fromSeq;
        if (from === 1) {
          // The daemon's own wording (membership-event.ts and api-handlers.ts).
          sink.fail(
            'GAP',
            'events 1 to 3 were compacted away; the oldest available is 4: read the current membership, then follow from 4; re-read `cohort status` and follow from sequence 4',
          );
          return;
        }
        for (const e of [VIEW, QUORUM, NODE]) sink.push(e);
        sink.end();
      });
    },
    async (socket) => {
      const text = capture();
      assert.equal(await runEvents({ socket }, text.io), 0);
      assert.deepEqual(text.out, [
        '#4 view 3 index 12 view: node 2 incarnation 2 admitted (incarnation 1 was fenced); members [1:1 2:2], quorate\n',
        '#5 view 3 index 13 quorum: NOT quorate (no-majority: 1 of 3 votes)\n',
        '#6 view 3 index 14 node: node 3 incarnation 1 needs-fencing -> out (fenced)\n',
      ]);
      const json = capture();
      assert.equal(await runEvents({ socket, json: true, fromSeq: 4, follow: false }, json.io), 0);
      assert.deepEqual(
        json.out.map((l) => JSON.parse(l) as unknown),
        [VIEW, QUORUM, NODE],
      );
      assert.ok(
        json.out.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n')),
        'one line per event',
      );
      assert.deepEqual(seen.slice(0, 2), [{ follow: false }, { follow: false, fromSeq: 4 }]);

      const gap = capture();
      assert.equal(await runEvents({ socket, fromSeq: 1 }, gap.io), 1);
      assert.equal(gap.err.length, 1);
      assert.match(
        gap.err[0] ?? '',
        /^cohort events: GAP: the events asked for from sequence 1 were compacted away .*rerun with --from 4/,
      );
    },
  );
  const gone = capture();
  assert.equal(await runEvents({ socket: join(tmpdir(), 'cohort-no-such-daemon.sock') }, gone.io), 4);
  assert.equal(gone.err.length, 1);
});

test("fence confirm: the daemon's refusal is one line with exit 1, no quorum is exit 3, an admission is said plainly", async () => {
  const calls: ApiData[] = [];
  await withApiServer(
    (s) => {
      s.register('fence.confirm', (p) => {
        calls.push(p);
        const node = (p as { node: number }).node;
        if (node === 1)
          throw new ApiError(
            'INVALID_ARGUMENT',
            'node 1 does not need fencing: it is a member (incarnation 1); fencing a live member is not a confirmation',
          );
        if (node === 2) throw new ApiError('NOT_QUORATE', 'no leader accepted the request');
        return { nodeId: 3, incarnation: 1, outcome: 'applied', status: 'member', admitted: 2, viewId: 7 };
      });
    },
    async (socket) => {
      const refused = capture();
      assert.equal(await runFenceConfirm({ socket, node: 1 }, refused.io), 1);
      assert.deepEqual(refused.err, [
        'cohort fence confirm: node 1 does not need fencing: it is a member (incarnation 1); fencing a live member is not a confirmation\n',
      ]);
      const noQuorum = capture();
      assert.equal(await runFenceConfirm({ socket, node: 2 }, noQuorum.io), 3);
      const done = capture();
      assert.equal(await runFenceConfirm({ socket, node: 3, incarnation: 1 }, done.io), 0);
      assert.deepEqual(done.out, [
        'node 3: incarnation 1 confirmed fenced; incarnation 2 admitted as a member (view 7)\n',
      ]);
      assert.deepEqual(calls, [{ node: 1 }, { node: 2 }, { node: 3, incarnation: 1 }]);
    },
  );
});

test('fence events print one line each: the request, an attempt, the proof, an unfence', () => {
  const fence = (seq: number, payload: ApiData): ApiData => ({
    seq,
    viewId: 4,
    index: 20 + seq,
    kind: 'fence',
    payload,
  });
  const key = { node: 3, incarnation: 1 };
  const lines = [
    fence(1, { ...key, what: 'requested', reason: 'declared failed by an operator; needs fencing' }),
    fence(2, {
      ...key,
      what: 'attempt',
      attempt: {
        executor: 1,
        level: 1,
        device: 'ipmi',
        agent: 'exec',
        action: 'off',
        result: 'failed',
        exitCode: 1,
        durationMs: 900,
        excerpt: 'x',
        atMs: 5,
        round: 1,
      },
    }),
    fence(3, { ...key, what: 'fenced', proof: { by: 'agent', level: 2, device: 'pdu', atMs: 6 } }),
    fence(4, { ...key, what: 'fenced', proof: { by: 'confirm', operator: 'alice', atMs: 7 } }),
    fence(5, { ...key, what: 'unfenced', unfence: { device: 'scsi', result: 'ok', atMs: 8 } }),
  ].map(describeEvent);
  assert.deepEqual(lines, [
    '#1 view 4 index 21 fence: node 3 incarnation 1 requested (declared failed by an operator; needs fencing)',
    '#2 view 4 index 22 fence: node 3 incarnation 1 attempt: level 1 ipmi off failed exit 1 in 900 ms (round 1)',
    '#3 view 4 index 23 fence: node 3 incarnation 1 fenced by agent (level 2 pdu)',
    '#4 view 4 index 24 fence: node 3 incarnation 1 fenced by confirm alice',
    '#5 view 4 index 25 fence: node 3 incarnation 1 unfenced: scsi ok',
  ]);
});

test('recovery events print one line each: a round from its opening to its finish', () => {
  const ev = (seq: number, payload: ApiData): ApiData => ({
    seq,
    viewId: 5,
    index: 40 + seq,
    kind: 'recovery',
    payload: { group: 'g1', level: 1, generation: 4, ...(payload as Record<string, ApiData>) },
  });
  const lines = [
    ev(1, {
      step: 'opened',
      reason: 'unclean-removal',
      previous: 3,
      members: [
        { node: 1, incarnation: 1 },
        { node: 2, incarnation: 1 },
      ],
      fences: [{ node: 3, incarnation: 1 }],
    }),
    ev(2, { step: 'stopped', node: 1, incarnation: 1 }),
    ev(3, { step: 'fence-satisfied', node: 3, incarnation: 1 }),
    ev(4, { step: 'start-due', members: [{ node: 1, incarnation: 1 }] }),
    ev(5, { step: 'member-evicted', node: 2, incarnation: 1, reason: 'no started report within 30000 ms' }),
    ev(6, { step: 'aborted', next: 5 }),
    ev(7, { step: 'finished', members: [{ node: 1, incarnation: 1 }] }),
  ].map(describeEvent);
  const head = (seq: number): string => `#${seq} view 5 index ${40 + seq} recovery g1 (level 1) generation 4:`;
  assert.deepEqual(lines, [
    `${head(1)} opened (unclean-removal, replaces 3); members [1:1 2:1], waits for fences [3:1]`,
    `${head(2)} node 1 incarnation 1 stopped`,
    `${head(3)} fence of node 3 incarnation 1 recorded`,
    `${head(4)} start due for [1:1]`,
    `${head(5)} node 2 incarnation 1 evicted (no started report within 30000 ms); it leaves the group`,
    `${head(6)} aborted; generation 5 replaces it`,
    `${head(7)} finished; [1:1] resume`,
  ]);
});
