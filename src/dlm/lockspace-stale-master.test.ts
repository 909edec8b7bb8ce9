// Proves what a node does when its cached master of a name has dropped the resource (the toss
// time passed with no lock) and an operation chases a request there, on two DlmCores whose
// messages are delivered by hand: a cancel, or a FORCEUNLOCK, sent after a request to the stale
// master ends that request with exactly one completion (`cancelled`, `unlocked`), and never an
// `again` (the refusal of a cancel is not its request's outcome); and a cancel issued after
// another lock's refusal cleared the cached master goes to the node its request went to instead
// of starting a lookup that sends the request a second time. Regressions found by the
// simulator's dlm workload (seeds 172, 374150725, 3449636879; docs/simulator.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { incarnation, nodeId, type NodeId } from '../lib/ids.js';
import { DlmCore, type DlmEvent } from './dlm-core.js';
import type { DlmMessage } from './dlm-message.js';
import { LKF, MODE } from './lock-types.js';

const TOSS_MS = 100;
const A = nodeId(1);
const B = nodeId(2);

interface Rig {
  readonly cores: Map<NodeId, DlmCore>;
  readonly events: Map<NodeId, string[]>;
  readonly sessions: Map<NodeId, number>;
  /** Delivers the first `n` queued messages from `from` to `to` (all when omitted). */
  deliver(from: NodeId, to: NodeId, n?: number): void;
  /** Delivers everything, repeatedly, until nothing is queued. */
  settle(): void;
  queued(from: NodeId, to: NodeId): string[];
}

function rig(): Rig {
  const queues = new Map<string, DlmMessage[]>();
  const cores = new Map<NodeId, DlmCore>();
  const events = new Map<NodeId, string[]>();
  const sessions = new Map<NodeId, number>();
  const q = (from: NodeId, to: NodeId): DlmMessage[] => {
    const k = `${from}>${to}`;
    let list = queues.get(k);
    if (list === undefined) {
      list = [];
      queues.set(k, list);
    }
    return list;
  };
  for (const self of [A, B]) {
    const log: string[] = [];
    events.set(self, log);
    const core = new DlmCore(
      self,
      incarnation(1),
      {
        send: (to, m) => q(self, to).push(m),
        pending: () => 0,
        departedSafe: () => true,
        event: (_s, e: DlmEvent) => {
          if (e.kind === 'completion') log.push(`${e.lkid % 2 ** 32}:${e.status}:${e.mode ?? '-'}`);
        },
        trace: () => undefined,
      },
      TOSS_MS,
    );
    assert.ok(core.open('ls').ok);
    cores.set(self, core);
  }
  const members = [
    { node: A, incarnation: 1 },
    { node: B, incarnation: 1 },
  ];
  const r: Rig = {
    cores,
    events,
    sessions,
    deliver: (from, to, n) => {
      const list = q(from, to);
      const batch = list.splice(0, n ?? list.length);
      for (const m of batch) cores.get(to)?.onMessage(from, m);
    },
    settle: () => {
      for (let round = 0; round < 100; round++) {
        let moved = false;
        for (const from of [A, B])
          for (const to of [A, B])
            if (from !== to && q(from, to).length > 0) {
              r.deliver(from, to);
              moved = true;
            }
        if (!moved) return;
      }
      assert.fail('messages kept flowing');
    },
    queued: (from, to) => q(from, to).map((m) => `${m.t}${m.t === 'op' ? `:${m.op}` : ''}`),
  };
  for (const core of cores.values()) core.onView('ls', 1, members);
  r.settle();
  for (const [self, core] of cores) sessions.set(self, core.openSession());
  return r;
}

function session(r: Rig, n: NodeId): number {
  const s = r.sessions.get(n);
  assert.ok(s !== undefined);
  return s;
}

/** B masters `r`, A caches that, both let go, and B drops the resource after the toss time. */
function staleMaster(r: Rig): void {
  const a = r.cores.get(A);
  const b = r.cores.get(B);
  assert.ok(a !== undefined && b !== undefined);
  const lb = b.lock(session(r, B), 'ls', 'r', MODE.PR, 0);
  r.settle();
  const la = a.lock(session(r, A), 'ls', 'r', MODE.PR, 0);
  r.settle();
  assert.ok(la.ok && lb.ok);
  assert.ok(a.unlock(session(r, A), 'ls', la.value, 0).ok);
  assert.ok(b.unlock(session(r, B), 'ls', lb.value, 0).ok);
  r.settle();
  for (const t of [0, 1, 2 * TOSS_MS]) for (const core of r.cores.values()) core.onTick(t);
  r.settle();
  assert.equal(b.lockspace('ls')?.counts().mastered, 0, 'B dropped r');
  r.events.get(A)?.splice(0);
}

test('a cancel chasing a request to a stale master ends it with one `cancelled`', () => {
  const r = rig();
  staleMaster(r);
  const a = r.cores.get(A);
  assert.ok(a !== undefined);
  const l = a.lock(session(r, A), 'ls', 'r', MODE.EX, 0);
  assert.ok(l.ok);
  assert.ok(a.cancel(session(r, A), 'ls', l.value).ok);
  assert.deepEqual(r.queued(A, B), ['op:request', 'op:cancel'], 'both went to the stale master');
  r.settle();
  assert.deepEqual(r.events.get(A), [`${l.value % 2 ** 32}:cancelled:-`]);
  assert.equal(a.heldLocks, 0);
});

test('a FORCEUNLOCK chasing a request to a stale master ends it with one `unlocked`', () => {
  const r = rig();
  staleMaster(r);
  const a = r.cores.get(A);
  assert.ok(a !== undefined);
  const l = a.lock(session(r, A), 'ls', 'r', MODE.EX, 0);
  assert.ok(l.ok);
  assert.ok(a.unlock(session(r, A), 'ls', l.value, LKF.FORCEUNLOCK).ok);
  r.settle();
  assert.deepEqual(r.events.get(A), [`${l.value % 2 ** 32}:unlocked:-`]);
  assert.equal(a.heldLocks, 0);
});

test('a cancel after the cached master was cleared follows its request, and the request is not sent twice', () => {
  const r = rig();
  staleMaster(r);
  const a = r.cores.get(A);
  assert.ok(a !== undefined);
  const first = a.lock(session(r, A), 'ls', 'r', MODE.EX, 0);
  const second = a.lock(session(r, A), 'ls', 'r', MODE.EX, 0);
  assert.ok(first.ok && second.ok);
  // B refuses both; only the first refusal reaches A: it clears the cached master.
  r.deliver(A, B);
  r.deliver(B, A, 1);
  assert.ok(a.cancel(session(r, A), 'ls', second.value).ok);
  assert.deepEqual(r.queued(A, B).at(-1), 'op:cancel', 'the cancel goes where its request went');
  r.settle();
  const id = (n: number): number => n % 2 ** 32;
  assert.deepEqual(r.events.get(A), [`${id(second.value)}:cancelled:-`, `${id(first.value)}:granted:5`]);
  assert.equal(a.heldLocks, 1);
});
