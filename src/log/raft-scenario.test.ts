// Proves the Raft core's behaviour in readable, reviewable scenarios: every script in
// testdata/raft drives a cluster of cores step by step (elections, partitions, configuration
// changes, snapshots, reads, transfers) and compares every message and state change with the
// golden output. COHORT_REWRITE=1 regenerates the expected output; commit it only if you
// understand the diff.
import {
  boolArg,
  expectArgs,
  intsArg,
  runScripts,
  stringArg,
  type ScriptCommand,
  type ScriptHandler,
} from '../testing/datadriven.js';
import { logIndex, nodeId, type NodeId } from '../lib/ids.js';
import { RaftHarness } from './raft-harness.js';
import type { ConfChangeSingle } from './raft-message.js';
import type { ReadMode } from './raft-config.js';

const enc = new TextEncoder();
/** Scripts run with electionTicks 10 and heartbeatTicks 1; `tick-election` ticks 10 times. */
const ELECTION_TICKS = 10;

function nodeArg(cmd: ScriptCommand, i = 0): NodeId {
  const raw = cmd.positional[i];
  if (raw === undefined || !/^\d+$/.test(raw)) throw new Error(`${cmd.pos}: ${cmd.name} needs a node id as argument ${i + 1}`);
  return nodeId(Number(raw));
}

/** `v4` add voter, `v4x2` with 2 votes, `l4` add learner, `r4` remove. */
function parseChange(token: string, pos: string): ConfChangeSingle {
  const m = /^([vlr])(\d+)(?:x(\d+))?$/.exec(token);
  if (m === null) throw new Error(`${pos}: bad change ${token}; use v4, v4x2, l4 or r4`);
  const node = nodeId(Number(m[2]));
  if (m[1] === 'v') return { type: 'add-voter', node, votes: Number(m[3] ?? 1) };
  if (m[1] === 'l') return { type: 'add-learner', node };
  return { type: 'remove-node', node };
}

function addNodes(h: RaftHarness, cmd: ScriptCommand): string {
  expectArgs(cmd, ['voters', 'learners', 'votes', 'prevote', 'checkquorum', 'readmode']);
  const voters = intsArg(cmd, 'voters', []);
  const weights = intsArg(cmd, 'votes', []);
  const votes = new Map(voters.map((v, i) => [v, weights[i] ?? 1] as const));
  const readMode = stringArg(cmd, 'readmode', 'lease') as ReadMode;
  const ids = h.addNodes(Number(cmd.positional[0] ?? '1'), {
    voters,
    learners: intsArg(cmd, 'learners', []),
    votes,
    config: {
      preVote: boolArg(cmd, 'prevote', true),
      checkQuorum: boolArg(cmd, 'checkquorum', true),
      readMode,
      electionTicks: ELECTION_TICKS,
      heartbeatTicks: 1,
    },
  });
  return ids.flatMap((id) => h.statusLines(id)).join('\n');
}

function tickN(h: RaftHarness, id: NodeId, n: number): string {
  h.tick(id, n);
  return h.takeLog().join('\n');
}

function errOr(code: string | null, fallback = 'ok'): string {
  return code === null ? fallback : `error: ${code}`;
}

function dispatch(h: RaftHarness, cmd: ScriptCommand): string {
  switch (cmd.name) {
    case 'add-nodes':
      return addNodes(h, cmd);
    case 'campaign':
      h.node(nodeArg(cmd)).core.campaign();
      return 'ok';
    case 'stabilize':
      return h.stabilize().join('\n');
    case 'process-ready':
      h.processReady(nodeArg(cmd));
      return h.takeLog().join('\n');
    case 'deliver-msgs':
      return h.deliverAll(cmd.positional.length > 0 ? nodeArg(cmd) : undefined).join('\n');
    case 'tick':
      return tickN(h, nodeArg(cmd), Number(cmd.positional[1] ?? '1'));
    case 'tick-election':
      return tickN(h, nodeArg(cmd), ELECTION_TICKS);
    case 'tick-all':
      for (let i = 0; i < Number(cmd.positional[0] ?? '1'); i++) h.tickAll();
      return 'ok';
    case 'propose':
      return errOr(h.propose(nodeArg(cmd), cmd.positional[1] ?? ''));
    case 'propose-conf-change': {
      const changes = cmd.positional.slice(1).filter((t) => t !== 'explicit').map((t) => parseChange(t, cmd.pos));
      const r = h.node(nodeArg(cmd)).core.proposeConfChange({ changes, autoLeave: !cmd.positional.includes('explicit') });
      return r.ok ? `ok index=${r.value.index}` : `error: ${r.error.code}`;
    }
    case 'transfer-leadership': {
      const r = h.node(nodeArg(cmd)).core.transferLeadership(nodeArg(cmd, 1));
      return r.ok ? 'ok' : `error: ${r.error.code}`;
    }
    case 'read-index': {
      const r = h.node(nodeArg(cmd)).core.readIndex(enc.encode(cmd.positional[1] ?? ''));
      return r.ok ? 'ok' : `error: ${r.error.code}`;
    }
    case 'isolate':
      h.isolate(nodeArg(cmd));
      return 'ok';
    case 'recover':
      h.recover();
      return 'ok';
    case 'compact':
      h.compact(nodeArg(cmd), cmd.positional[1] === undefined ? undefined : logIndex(Number(cmd.positional[1])));
      return h.raftLog(nodeArg(cmd)).join('\n');
    case 'restart':
      h.restart(nodeArg(cmd));
      return h.statusLines(nodeArg(cmd)).join('\n');
    case 'raft-log':
      return h.raftLog(nodeArg(cmd)).join('\n');
    case 'status':
      return h.statusLines(nodeArg(cmd)).join('\n');
    case 'applied':
      return `${nodeArg(cmd)}: [${h.node(nodeArg(cmd)).applied.join(' ')}] lease=${h.node(nodeArg(cmd)).core.status().leaseValid}`;
    default:
      throw new Error(`${cmd.pos}: unknown command ${cmd.name}`);
  }
}

function handlerFactory(): ScriptHandler {
  const h = new RaftHarness(1);
  return (cmd) => dispatch(h, cmd);
}

runScripts('testdata/raft', handlerFactory(), { handlerFactory });
