// Proves a daemon survives running out of file descriptors and recovers by itself once they are
// free again (issue 11, the node that stayed stuck): three real daemons on loopback; a follower's
// nofile limit is lowered below what it holds (`prlimit --pid`, so no new descriptor can be had:
// pressure that does not depend on which listener or leak holds them); the leader is stopped long
// enough for an election, so the follower must save a new term while it has no descriptor; writes
// are acknowledged meanwhile; then the limit is restored. The follower must still be the same
// process and incarnation, be back in the current term with the current leader, quorate and a
// member on every node within 10 s, hold every acknowledged write, and its log must name EMFILE
// and what failed (and the end of the episode), with no fatal line. Before the fix its
// stable-state save failed with EMFILE and the node fail-stopped (exit 3); earlier still it
// halted its Raft shell and stayed "not running" at the old term.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ApiData } from '../client/index.js';
import { ProcessCluster, membersOf, waitFor, type NodeStatusAnswer } from './process-cluster.js';

/** Generous bounds: two shared cores run these processes next to other tests. */
const QUORATE_BOUND_MS = 15_000;
const ELECTION_BOUND_MS = 10_000;
/** The promise under test: back in the cluster this soon after descriptors are free again. */
const RECOVERY_BOUND_MS = 10_000;
/** Longer than the election timeout (drawn in [500, 1000) ms by default). */
const LEADER_STOP_MS = 1_500;
/** How long the pressure lasts after the election, with writes acknowledged meanwhile. */
const PRESSURE_AFTER_ELECTION_MS = 1_500;
/** A nofile limit no process can be under: 0, 1, 2 are always open, so every new descriptor fails. */
const NOFILE_EXHAUSTED = 3;

function log(line: string): void {
  process.stderr.write(`# ${line}\n`);
}

/** Why this test cannot run here, or null (it needs Linux's /proc and util-linux's prlimit). */
function unsupported(): string | null {
  if (process.platform !== 'linux') return 'needs Linux (/proc, prlimit)';
  const r = spawnSync('prlimit', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? null : 'needs the prlimit command (util-linux)';
}

/** The soft and hard nofile limits of process `pid`, from /proc. */
function nofileOf(pid: number): { readonly soft: string; readonly hard: string } {
  const line = readFileSync(`/proc/${pid}/limits`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const m = line === undefined ? null : /^Max open files\s+(\S+)\s+(\S+)/.exec(line);
  assert.ok(m?.[1] !== undefined && m[2] !== undefined, `process ${pid} lists its nofile limit`);
  return { soft: m[1], hard: m[2] };
}

/** Sets process `pid`'s nofile limits (lowering needs no privilege; raising back to the old hard limit neither). */
function setNofile(pid: number, soft: string, hard: string): void {
  const r = spawnSync('prlimit', ['--pid', String(pid), `--nofile=${soft}:${hard}`], { encoding: 'utf8' });
  assert.equal(r.status, 0, `prlimit --pid ${pid} --nofile=${soft}:${hard}: ${r.stderr}`);
}

function num(s: NodeStatusAnswer | null, key: string): number {
  const v = s?.[key];
  assert.equal(typeof v, 'number', `status has a numeric ${key}`);
  return v as number;
}

async function getText(c: ProcessCluster, id: number, key: string): Promise<string | null> {
  const got = (await c.request(id, 'kv.get', { key }, 6000)) as Record<string, ApiData>;
  return got['found'] === true ? (got['text'] as string) : null;
}

function tail(c: ProcessCluster, id: number): string {
  return readFileSync(c.log(id), 'utf8').split('\n').slice(-15).join('\n');
}

test(
  'three daemons: a follower with no descriptor free through an election rejoins the current term by itself once they are free',
  { skip: unsupported() ?? false },
  async () => {
    const c = await ProcessCluster.create(3);
    try {
      c.startAll();
      await c.waitQuorate(c.ids, QUORATE_BOUND_MS);
      const first = await c.waitLeader(c.ids, ELECTION_BOUND_MS);
      const victim = c.ids.find((i) => i !== first.leader) ?? 0;
      const other = c.ids.find((i) => i !== first.leader && i !== victim) ?? 0;
      const incarnation = num(await c.status(victim), 'incarnation');
      const acked = new Map<string, string>();
      const write = async (ids: readonly number[], key: string, value: string): Promise<void> => {
        await c.put(ids, key, value, ELECTION_BOUND_MS);
        acked.set(key, value);
      };
      await write([first.leader], 'before', 'v0');
      log(`leader ${first.leader} in term ${first.term}; node ${victim} runs out of descriptors`);

      const pid = c.pid(victim);
      const limits = nofileOf(pid);
      setNofile(pid, String(NOFILE_EXHAUSTED), limits.hard);
      let restored = false;
      try {
        c.signal(first.leader, 'SIGSTOP');
        await sleep(LEADER_STOP_MS);
        c.signal(first.leader, 'SIGCONT');
        const pair = [first.leader, other];
        const elected = await waitFor(
          `a leader among ${pair.join(',')} in a term after ${first.term}`,
          ELECTION_BOUND_MS,
          async () => {
            const ss = await Promise.all(pair.map((i) => c.status(i)));
            const leads = new Set(ss.map((s) => s?.['leaderId']));
            const [lead] = [...leads];
            const t = ss[0]?.['term'];
            return leads.size === 1 &&
              typeof lead === 'number' &&
              pair.includes(lead) &&
              typeof t === 'number' &&
              t > first.term
              ? { leader: lead, term: t }
              : null;
          },
        );
        log(`elected ${elected.value.leader} in term ${elected.value.term} during the pressure`);
        await write(pair, 'during', 'v1');
        await sleep(PRESSURE_AFTER_ELECTION_MS);
        assert.ok(
          c.running(victim),
          `node ${victim} must ride out descriptor exhaustion, not exit; its log ends:\n${tail(c, victim)}`,
        );
        setNofile(pid, limits.soft, limits.hard);
        restored = true;
      } finally {
        if (!restored && c.running(victim)) setNofile(pid, limits.soft, limits.hard);
      }

      const back = await waitFor(
        `node ${victim} back in the current term with the leader`,
        RECOVERY_BOUND_MS,
        async () => {
          const ss = await Promise.all(c.ids.map((i) => c.status(i)));
          const v = ss[victim - 1] ?? null;
          const lead = v?.['leaderId'];
          const ok =
            v !== null &&
            typeof lead === 'number' &&
            ss.every(
              (s) =>
                s !== null &&
                s['quorate'] === true &&
                s['joined'] === true &&
                s['leaderId'] === lead &&
                s['term'] === v['term'] &&
                membersOf(s).some(([n, inc]) => n === victim && inc === incarnation),
            );
          return ok ? { leader: lead, term: num(v, 'term') } : null;
        },
      );
      log(
        `node ${victim} rejoined term ${back.value.term} (leader ${back.value.leader}) ${Math.round(back.ms)} ms after the limit was restored`,
      );
      assert.ok(back.value.term > first.term, 'the cluster moved on to a newer term meanwhile');
      assert.equal(c.pid(victim), pid, 'the same process recovered: no restart');
      assert.equal(num(await c.status(victim), 'incarnation'), incarnation, 'the same incarnation: no fence needed');

      await write([victim], 'after', 'v2');
      for (const [key, value] of acked) {
        assert.equal(await getText(c, victim, key), value, `node ${victim} reads the acknowledged ${key}`);
        assert.equal(await getText(c, other, key), value, `node ${other} reads the acknowledged ${key}`);
      }

      const text = readFileSync(c.log(victim), 'utf8');
      assert.match(
        text,
        /out of file descriptors: opening \S+ in .* failed \(EMFILE/,
        'the exhaustion is logged, naming EMFILE and what failed',
      );
      assert.match(text, /file descriptors available again after \d+ ms/, 'the end of the episode is logged');
      assert.doesNotMatch(text, /"level":60|FATAL/, 'nothing fatal was logged');
    } finally {
      await c.close();
    }
  },
);
