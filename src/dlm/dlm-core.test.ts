// Proves the DLM node layer (DlmCore + Lockspace) over a direct in-order message harness (what
// the reliable links give: in order, exactly once per pair; pairs interleave in a seeded order):
// the directory picks the first node to ask as master and a locally mastered resource needs no
// message at all (research/dlm.md 2.2); a remote master grants, queues and wakes waiters across
// nodes with one completion per accepted call (1.7); a join rebuilds the directory without moving
// masters or losing locks; a stale master (one that dropped an idle resource) answers
// `not-master` and the requester looks the name up again (2.2 item 6); closing a session
// force-unlocks its locks and invalidates the value block of a PW/EX holder (1.8) while
// PERSISTENT locks become orphans adopted by ORPHAN (1.5); TIMEOUT cancels a waiting request
// with `timeout`; without quorum nothing is granted and waiters are told (paused), and granting
// resumes with quorum; a departed master's resources are remastered from the survivors' locks
// only once its fence is recorded (nothing new is granted before), a departed holder's locks are
// dropped only then, and the value block of a remastered resource is marked invalid
// (research/dlm.md 2.3); and refused calls (Linux's argument rules, BUSY, NOT_FOUND, NO_LOCKSPACE)
// change nothing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { incarnation, nodeId, type NodeId } from '../lib/ids.js';
import { Prng } from '../lib/prng.js';
import { DlmCore, type DlmEvent } from './dlm-core.js';
import { directoryNode } from './local-lock.js';
import type { DlmMessage } from './dlm-message.js';
import { LKF, MODE, MODE_NAMES, SBF } from './lock-types.js';

interface Rig {
  readonly cores: Map<NodeId, DlmCore>;
  /** Departed incarnations (`node@inc`) whose fence is not recorded yet. */
  readonly unfenced: Set<string>;
  readonly events: Map<NodeId, string[]>;
  /** Messages in flight, per (from, to) pair, in order. */
  readonly wires: Map<string, { readonly from: NodeId; readonly to: NodeId; readonly m: DlmMessage }[]>;
  sent: number;
  now: number;
}

function rig(
  nodes: number[],
  seed = 1,
  tossMs = 1000,
): Rig & {
  run(): void;
  tick(ms: number): void;
  core(n: number): DlmCore;
  view(gen: number, members: number[]): void;
  kill(n: number): void;
} {
  const r: Rig = { cores: new Map(), events: new Map(), wires: new Map(), sent: 0, now: 0, unfenced: new Set() };
  const prng = new Prng(seed);
  for (const id of nodes) {
    const self = nodeId(id);
    const events: string[] = [];
    r.events.set(self, events);
    const core = new DlmCore(
      self,
      incarnation(1),
      {
        send: (to, m) => {
          r.sent++;
          const key = `${self}>${to}`;
          const list = r.wires.get(key) ?? [];
          list.push({ from: self, to, m });
          r.wires.set(key, list);
        },
        pending: () => 0,
        event: (session, e) => events.push(describe(session, e)),
        trace: () => undefined,
        departedSafe: (node, inc) => !r.unfenced.has(`${node}@${inc}`),
      },
      tossMs,
    );
    core.open('ls');
    r.cores.set(self, core);
  }
  const kill = (n: number): void => {
    r.cores.delete(nodeId(n));
    for (const [key, list] of r.wires) if (key.startsWith(`${n}>`) || key.endsWith(`>${n}`)) list.length = 0;
  };
  const run = (): void => {
    for (let guard = 0; guard < 100_000; guard++) {
      const busy = [...r.wires.values()].filter((l) => l.length > 0);
      if (busy.length === 0) return;
      const wire = busy[prng.int(0, busy.length)];
      const msg = wire?.shift();
      if (msg !== undefined) r.cores.get(msg.to)?.onMessage(msg.from, msg.m);
    }
    assert.fail('messages kept flowing');
  };
  return {
    ...r,
    run,
    tick: (ms: number) => {
      r.now += ms;
      for (const c of r.cores.values()) c.onTick(r.now);
      run();
    },
    core: (n: number) => r.cores.get(nodeId(n)) as DlmCore,
    kill,
    view: (gen: number, members: number[]) => {
      for (const id of members)
        r.cores.get(nodeId(id))?.onView(
          'ls',
          gen,
          members.map((m) => ({ node: nodeId(m), incarnation: 1 })),
        );
      run();
    },
    get sent() {
      return r.sent;
    },
  };
}

function describe(session: number, e: DlmEvent): string {
  switch (e.kind) {
    case 'completion':
      return `s${session} #${e.lkid % 2 ** 32} ${e.status}${e.mode === null ? '' : ` ${MODE_NAMES[e.mode]}`}${e.sbflags === 0 ? '' : ` sb${e.sbflags}`}`;
    case 'bast':
      return `s${session} #${e.lkid % 2 ** 32} bast ${MODE_NAMES[e.mode]}`;
    case 'paused':
      return `s${session} ${e.paused ? 'paused' : 'resumed'}`;
  }
}

function ok<T>(r: { ok: true; value: T } | { ok: false; error: { code: string; message: string } }): T {
  if (!r.ok) assert.fail(`${r.error.code}: ${r.error.message}`);
  return r.value;
}

function code(r: { ok: boolean; error?: { code: string } }): string {
  return r.ok ? 'ok' : (r.error?.code ?? '?');
}

/** Every event node `n` got since the last call. */
function drain(x: Rig, n: number): string[] {
  const list = x.events.get(nodeId(n)) ?? [];
  return list.splice(0, list.length);
}

test('first asker masters; a local master needs no message; a remote master grants, queues and wakes across nodes', () => {
  const x = rig([1, 2, 3]);
  x.view(1, [1, 2, 3]);
  const s1 = x.core(1).openSession();
  const s2 = x.core(2).openSession();
  // Find a name whose directory node is node 1, so node 1 masters it with no message at all.
  const before = x.sent;
  const l1 = ok(x.core(1).lock(s1, 'ls', 'r1', MODE.EX, 0, { bast: true }));
  x.run();
  assert.deepEqual(drain(x, 1), ['s1 #1 granted EX']);
  const lookedUp = x.sent - before;
  assert.ok(lookedUp <= 2, `a new name costs at most a lookup round trip (${lookedUp} messages)`);
  const again = x.sent;
  ok(x.core(1).unlock(s1, 'ls', l1, 0));
  const l1b = ok(x.core(1).lock(s1, 'ls', 'r1', MODE.PW, 0, { bast: true }));
  x.run();
  assert.equal(x.sent, again, 'a resource mastered here: lock and unlock send nothing');
  assert.deepEqual(drain(x, 1), ['s1 #1 unlocked', 's1 #2 granted PW']);
  // Node 2 asks: it waits behind node 1's PW, which is told (bast PR).
  ok(x.core(2).lock(s2, 'ls', 'r1', MODE.PR, 0));
  x.run();
  assert.deepEqual(drain(x, 2), []);
  assert.deepEqual(drain(x, 1), ['s1 #2 bast PR']);
  ok(x.core(1).unlock(s1, 'ls', l1b, 0));
  x.run();
  assert.deepEqual(drain(x, 1), ['s1 #2 unlocked']);
  assert.deepEqual(drain(x, 2), ['s1 #1 granted PR']);
  assert.equal(x.core(1).lockspace('ls')?.counts().mastered, 1, 'node 1 masters r1 (it asked first)');
});

test('a join rebuilds the directory: masters and locks stay, new nodes find the master', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const x = rig([1, 2, 3], seed);
    x.view(1, [1, 2]);
    const s1 = x.core(1).openSession();
    const names = ['a', 'b', 'c', 'd', 'e', 'f'];
    for (const n of names) ok(x.core(1).lock(s1, 'ls', n, MODE.EX, 0));
    x.run();
    assert.equal(drain(x, 1).length, names.length);
    x.view(2, [1, 2, 3]);
    const s3 = x.core(3).openSession();
    for (const n of names) ok(x.core(3).lock(s3, 'ls', n, MODE.EX, LKF.NOQUEUE));
    x.run();
    assert.deepEqual(
      drain(x, 3).sort(),
      names.map((_, i) => `s1 #${i + 1} again`),
      `seed ${seed}: every name is still mastered by node 1, which refuses NOQUEUE`,
    );
  }
});

test('a master that dropped an idle resource answers not-master; the asker looks it up again', () => {
  const x = rig([1, 2], 3, 100);
  x.view(1, [1, 2]);
  const s1 = x.core(1).openSession();
  const s2 = x.core(2).openSession();
  // Node 1 takes and releases many names, then they go idle and are dropped.
  const names = Array.from({ length: 8 }, (_, i) => `n${i}`);
  const ids = names.map((n) => ok(x.core(1).lock(s1, 'ls', n, MODE.PR, 0)));
  x.run();
  // Node 2 learns the masters (all node 1) by locking them too, then unlocks.
  const ids2 = names.map((n) => ok(x.core(2).lock(s2, 'ls', n, MODE.PR, 0)));
  x.run();
  for (const id of ids) ok(x.core(1).unlock(s1, 'ls', id, 0));
  for (const id of ids2) ok(x.core(2).unlock(s2, 'ls', id, 0));
  x.run();
  drain(x, 1);
  drain(x, 2);
  x.tick(50);
  x.tick(200); // idle past tossMs: node 1 drops its resources and tells their directory nodes
  assert.equal(x.core(1).lockspace('ls')?.counts().mastered, 0);
  // Node 2 still caches node 1 as master: its requests are refused not-master and looked up again.
  for (const n of names) ok(x.core(2).lock(s2, 'ls', n, MODE.EX, 0));
  x.run();
  assert.equal(
    drain(x, 2).filter((e) => e.endsWith('granted EX')).length,
    names.length,
    'every request granted after a fresh lookup',
  );
});

test('closing a session force-unlocks (invalidating a PW/EX value block) and orphans PERSISTENT locks', () => {
  const x = rig([1, 2]);
  x.view(1, [1, 2]);
  const s1 = x.core(1).openSession();
  const s2 = x.core(2).openSession();
  const held = ok(x.core(1).lock(s1, 'ls', 'v', MODE.EX, LKF.VALBLK));
  ok(x.core(1).lock(s1, 'ls', 'p', MODE.PR, LKF.PERSISTENT));
  x.run();
  ok(x.core(1).convert(s1, 'ls', held, MODE.NL, LKF.VALBLK, { lvb: new Uint8Array(32).fill(9) }));
  x.run();
  ok(x.core(1).convert(s1, 'ls', held, MODE.EX, LKF.VALBLK));
  x.run();
  ok(x.core(2).lock(s2, 'ls', 'v', MODE.PR, LKF.VALBLK));
  ok(x.core(2).lock(s2, 'ls', 'p', MODE.EX, LKF.NOQUEUE));
  x.run();
  drain(x, 1);
  assert.deepEqual(drain(x, 2), ['s1 #2 again'], 'p is held PR; v waits');
  x.core(1).closeSession(s1);
  x.run();
  assert.deepEqual(drain(x, 1), [], 'a closed session is told nothing');
  const got = drain(x, 2);
  assert.deepEqual(got, [`s1 #1 granted PR sb${SBF.VALNOTVALID}`], 'the EX holder vanished: value block invalid');
  // The orphan still blocks; ORPHAN adopts it on node 1 in the same mode only.
  ok(x.core(2).lock(s2, 'ls', 'p', MODE.EX, LKF.NOQUEUE));
  x.run();
  assert.deepEqual(drain(x, 2), ['s1 #3 again']);
  const s1b = x.core(1).openSession();
  assert.equal(code(x.core(1).lock(s1b, 'ls', 'p', MODE.EX, LKF.ORPHAN)), 'BUSY', 'another mode');
  assert.equal(code(x.core(1).lock(s1b, 'ls', 'nothing', MODE.PR, LKF.ORPHAN)), 'NOT_FOUND');
  const adopted = ok(x.core(1).lock(s1b, 'ls', 'p', MODE.PR, LKF.ORPHAN));
  assert.deepEqual(drain(x, 1), [`s${s1b} #${adopted % 2 ** 32} granted PR`]);
  ok(x.core(1).unlock(s1b, 'ls', adopted, 0));
  x.run();
  ok(x.core(2).lock(s2, 'ls', 'p', MODE.EX, LKF.NOQUEUE));
  x.run();
  assert.deepEqual(drain(x, 2), ['s1 #4 granted EX']);
});

test('TIMEOUT cancels a waiting request with timeout; a moot cancel yields nothing more', () => {
  const x = rig([1, 2]);
  x.view(1, [1, 2]);
  const s1 = x.core(1).openSession();
  const s2 = x.core(2).openSession();
  const h = ok(x.core(1).lock(s1, 'ls', 't', MODE.EX, 0));
  x.run();
  ok(x.core(2).lock(s2, 'ls', 't', MODE.EX, LKF.TIMEOUT, { timeoutMs: 100 }));
  x.run();
  x.tick(50);
  assert.deepEqual(drain(x, 2), []);
  x.tick(60);
  assert.deepEqual(drain(x, 2), ['s1 #1 timeout']);
  // A cancel after the grant is moot: only the grant's completion.
  const w = ok(x.core(2).lock(s2, 'ls', 't', MODE.EX, 0));
  x.run();
  ok(x.core(1).unlock(s1, 'ls', h, 0));
  x.run();
  ok(x.core(2).cancel(s2, 'ls', w));
  x.run();
  assert.deepEqual(drain(x, 2), ['s1 #2 granted EX']);
  assert.equal(code(x.core(2).cancel(s2, 'ls', w)), 'ok', 'nothing to cancel: ok, no completion');
  x.run();
  assert.deepEqual(drain(x, 2), []);
});

test('without quorum nothing is granted and waiters are told; granting resumes with quorum', () => {
  const x = rig([1, 2]);
  x.view(1, [1, 2]);
  const s1 = x.core(1).openSession();
  const s2 = x.core(2).openSession();
  const h = ok(x.core(1).lock(s1, 'ls', 'q', MODE.EX, 0));
  x.run();
  ok(x.core(2).lock(s2, 'ls', 'q', MODE.EX, 0));
  x.run();
  drain(x, 1);
  x.core(1).setQuorate(false);
  x.core(2).setQuorate(false);
  ok(x.core(1).unlock(s1, 'ls', h, 0));
  x.run();
  assert.deepEqual(drain(x, 2), ['s1 paused'], 'the waiter is told and not granted');
  assert.deepEqual(drain(x, 1), [], 'the unlock waits too');
  x.core(1).setQuorate(true);
  x.core(2).setQuorate(true);
  x.run();
  assert.deepEqual(drain(x, 1), ['s1 #1 unlocked']);
  assert.deepEqual(drain(x, 2), ['s1 resumed', 's1 #1 granted EX']);
});

test('refused calls change nothing: Linux argument rules, BUSY, NOT_FOUND, NO_LOCKSPACE', () => {
  const x = rig([1, 2]);
  const s = x.core(1).openSession();
  assert.equal(code(x.core(1).lock(s, 'ls', 'a', MODE.EX, 0)), 'NO_LOCKSPACE', 'not joined yet');
  x.view(1, [1, 2]);
  assert.equal(code(x.core(1).lock(s, 'ls', 'a', MODE.EX, LKF.EXPEDITE)), 'INVALID', 'EXPEDITE is NL only');
  assert.equal(code(x.core(1).lock(s, 'ls', 'a', MODE.EX, LKF.CONVERT)), 'INVALID');
  assert.equal(code(x.core(1).lock(s, 'ls', 'x'.repeat(65), MODE.EX, 0)), 'INVALID', 'names up to 64 bytes');
  assert.equal(code(x.core(1).lock(s, 'ls', 'a', MODE.EX, LKF.TIMEOUT)), 'INVALID', 'TIMEOUT needs timeoutMs');
  const id = ok(x.core(1).lock(s, 'ls', 'a', MODE.EX, 0));
  x.run();
  const s2 = x.core(2).openSession();
  const waiting = ok(x.core(2).lock(s2, 'ls', 'a', MODE.EX, 0));
  x.run();
  assert.equal(code(x.core(2).convert(s2, 'ls', waiting, MODE.PR, 0)), 'BUSY', 'its request still waits');
  assert.equal(code(x.core(2).unlock(s2, 'ls', waiting, 0)), 'BUSY', 'not granted: cancel or FORCEUNLOCK');
  assert.equal(code(x.core(1).unlock(s, 'ls', id + 99, 0)), 'NOT_FOUND');
  const other = x.core(1).openSession();
  assert.equal(code(x.core(1).unlock(other, 'ls', id, 0)), 'NOT_FOUND', "another session's lock");
  assert.deepEqual(drain(x, 1), ['s1 #1 granted EX'], 'one completion: the refusals added none');
});

test('utf8Length counts as TextEncoder does (surrogate pairs, lone surrogates)', async () => {
  const { utf8Length } = await import('./dlm-core.js');
  const enc = new TextEncoder();
  for (const s of ['', 'abc', 'é', '€', '😀', 'a😀b', '\ud800', '\udc00x', '\ud800\ud800', 'x'.repeat(64)])
    assert.equal(utf8Length(s), enc.encode(s).length, JSON.stringify(s));
});

/** A name whose directory node among [1, 2, 3] is `dir` (so the first asker there masters it). */
function nameDirectedTo(dir: number): string {
  for (let i = 0; ; i++) {
    const name = `n${i}`;
    if (
      directoryNode(
        name,
        [1, 2, 3].map((m) => ({ node: nodeId(m), incarnation: 1 })),
      ) === nodeId(dir)
    )
      return name;
  }
}

test('a departed master: its resources are rebuilt from the survivors only after its fence; no second EX', () => {
  for (let seed = 1; seed <= 10; seed++) {
    const x = rig([1, 2, 3], seed);
    x.view(1, [1, 2, 3]);
    const [s1, s2, s3] = [1, 2, 3].map((n) => x.core(n).openSession());
    const name = nameDirectedTo(3);
    // Node 3 asks first: it masters `name`. Then node 1 holds EX, node 2 waits for EX.
    ok(x.core(3).lock(s3!, 'ls', name, MODE.NL, 0));
    x.run();
    ok(x.core(1).lock(s1!, 'ls', name, MODE.EX, LKF.VALBLK));
    x.run();
    ok(x.core(2).lock(s2!, 'ls', name, MODE.EX, 0));
    x.run();
    assert.deepEqual(drain(x, 1), ['s1 #1 granted EX'], `seed ${seed}`);
    assert.deepEqual(drain(x, 2), []);
    // Node 3 dies; the view drops it before its fence is recorded.
    x.kill(3);
    x.unfenced.add('3@1');
    x.view(2, [1, 2]);
    x.tick(10);
    ok(x.core(2).lock(s2!, 'ls', name, MODE.EX, LKF.NOQUEUE));
    ok(x.core(2).lock(s2!, 'ls', `${name}-other`, MODE.EX, 0));
    x.tick(10);
    assert.deepEqual(
      drain(x, 2).filter((e) => !e.endsWith('paused')),
      [],
      `seed ${seed}: nothing granted before the fence`,
    );
    // The fence is recorded: recovery runs; node 1 still holds EX, node 2 still waits.
    x.unfenced.clear();
    x.tick(10);
    assert.deepEqual(
      drain(x, 2)
        .filter((e) => !e.endsWith('paused') && !e.endsWith('resumed'))
        .sort(),
      ['s1 #2 again', 's1 #3 granted EX'],
      `seed ${seed}: NOQUEUE refused (node 1 holds EX), the other name granted`,
    );
    assert.deepEqual(
      drain(x, 1).filter((e) => !e.endsWith('paused') && !e.endsWith('resumed')),
      [],
    );
    // Node 1 unlocks: node 2's waiting request (resent to the new master) is granted.
    ok(x.core(1).unlock(s1!, 'ls', 2 ** 32 + 1, 0));
    x.run();
    assert.deepEqual(drain(x, 1), ['s1 #1 unlocked']);
    assert.deepEqual(drain(x, 2), ['s1 #1 granted EX']);
    // The value block of the remastered resource is marked invalid.
    const s1b = x.core(1).openSession();
    ok(x.core(1).lock(s1b, 'ls', name, MODE.NL, LKF.VALBLK));
    x.run();
    assert.deepEqual(drain(x, 1), [`s${s1b} #2 granted NL sb${SBF.VALNOTVALID}`]);
  }
});

test('a departed holder: its locks are dropped only once its fence is recorded', () => {
  const x = rig([1, 2, 3], 5);
  x.view(1, [1, 2, 3]);
  const [s1, s2, s3] = [1, 2, 3].map((n) => x.core(n).openSession());
  const name = nameDirectedTo(1);
  ok(x.core(1).lock(s1!, 'ls', name, MODE.NL, 0)); // node 1 masters it
  x.run();
  ok(x.core(3).lock(s3!, 'ls', name, MODE.EX, 0));
  x.run();
  ok(x.core(2).lock(s2!, 'ls', name, MODE.PR, 0));
  x.run();
  drain(x, 1);
  assert.deepEqual(drain(x, 2), []);
  x.kill(3);
  x.unfenced.add('3@1');
  x.view(2, [1, 2]);
  x.tick(10);
  assert.deepEqual(
    drain(x, 2).filter((e) => !e.endsWith('paused')),
    [],
    'node 3 may still hold EX: nothing granted',
  );
  x.unfenced.clear();
  x.tick(10);
  assert.deepEqual(
    drain(x, 2).filter((e) => !e.endsWith('paused') && !e.endsWith('resumed')),
    ['s1 #1 granted PR'],
  );
});

test('a node that joins while the others recover takes part: the recovery ends and it can lock', () => {
  const x = rig([1, 2, 3, 4], 7);
  x.view(1, [1, 2, 3]);
  const [s1, s3] = [1, 3].map((n) => x.core(n).openSession());
  const name = nameDirectedTo(3);
  ok(x.core(3).lock(s3!, 'ls', name, MODE.NL, 0));
  x.run();
  ok(x.core(1).lock(s1!, 'ls', name, MODE.EX, 0));
  x.run();
  drain(x, 1);
  x.kill(3);
  x.view(2, [1, 2, 4]);
  x.tick(10);
  x.tick(10);
  for (const n of [1, 2, 4]) assert.equal(x.core(n).lockspace('ls')?.recovering, false, `node ${n} recovered`);
  const s4 = x.core(4).openSession();
  ok(x.core(4).lock(s4, 'ls', name, MODE.EX, LKF.NOQUEUE));
  ok(x.core(4).lock(s4, 'ls', 'fresh', MODE.EX, 0));
  x.run();
  assert.deepEqual(drain(x, 4).sort(), ['s1 #1 again', 's1 #2 granted EX'], "node 1's EX survived the recovery");
});

test('operations in flight to a master that departs: resent after the recovery (NOQUEUE still refuses), a cancel ends here', () => {
  const x = rig([1, 2, 3], 11);
  x.view(1, [1, 2, 3]);
  const [s1, s2, s3] = [1, 2, 3].map((n) => x.core(n).openSession());
  const name = nameDirectedTo(3);
  ok(x.core(3).lock(s3!, 'ls', name, MODE.NL, 0));
  x.run();
  ok(x.core(1).lock(s1!, 'ls', name, MODE.EX, 0));
  const waiting = ok(x.core(2).lock(s2!, 'ls', name, MODE.PR, 0));
  x.run();
  assert.deepEqual(drain(x, 1), ['s1 #1 granted EX']);
  // In flight when node 3 dies: node 2's NOQUEUE request and the cancel of its waiting request.
  ok(x.core(2).lock(s2!, 'ls', name, MODE.EX, LKF.NOQUEUE));
  ok(x.core(2).cancel(s2!, 'ls', waiting));
  x.kill(3);
  x.view(2, [1, 2]);
  x.tick(10);
  x.tick(10);
  assert.deepEqual(
    drain(x, 2)
      .filter((e) => !e.endsWith('paused') && !e.endsWith('resumed'))
      .sort(),
    ['s1 #1 cancelled', 's1 #2 again'],
    'the cancel ends here; the NOQUEUE request, sent again, finds node 1 holding EX',
  );
  assert.equal(x.core(2).heldLocks, 0);
});
