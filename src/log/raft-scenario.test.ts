// Proves the Raft core's behaviour in readable, reviewable scenarios: every script in
// testdata/raft drives a cluster of cores step by step (elections, partitions, configuration
// changes, snapshots, reads, transfers, and the votequorum options: weighted votes, expected
// votes, tie-breaker, wait_for_all, last_man_standing, witnesses) and compares every message and
// state change with the golden output. COHORT_REWRITE=1 regenerates the expected output; commit
// it only if you understand the diff.
import {
  boolArg,
  expectArgs,
  hasArg,
  intArg,
  intsArg,
  runScripts,
  stringArg,
  stringsArg,
  type ScriptCommand,
  type ScriptHandler,
} from '../testing/datadriven.js';
import { logIndex, nodeId, type NodeId } from '../lib/ids.js';
import { arbitrate, type TieBreakerMode } from '../quorum/index.js';
import { configFromConfState, jointQuorumConfig } from './cluster-config.js';
import { lastManStandingStep } from './quorum-options.js';
import { RaftHarness } from './raft-harness.js';
import type { ConfChangeSingle, QuorumSettings } from './raft-message.js';
import type { RaftTraceFields, ReadMode } from './raft-config.js';

const enc = new TextEncoder();
/** Scripts run with electionTicks 10 and heartbeatTicks 1; `tick-election` ticks 10 times. */
const ELECTION_TICKS = 10;

function nodeArg(cmd: ScriptCommand, i = 0): NodeId {
  const raw = cmd.positional[i];
  if (raw === undefined || !/^\d+$/.test(raw))
    throw new Error(`${cmd.pos}: ${cmd.name} needs a node id as argument ${i + 1}`);
  return nodeId(Number(raw));
}

/** `v4` add voter, `v4x2` with 2 votes, `w4` / `w4x2` add a witness voter, `l4` add learner, `r4` remove. */
function parseChange(token: string, pos: string): ConfChangeSingle {
  const m = /^([vwlr])(\d+)(?:x(\d+))?$/.exec(token);
  if (m === null) throw new Error(`${pos}: bad change ${token}; use v4, v4x2, w4, l4 or r4`);
  const node = nodeId(Number(m[2]));
  if (m[1] === 'v') return { type: 'add-voter', node, votes: Number(m[3] ?? 1) };
  if (m[1] === 'w') return { type: 'add-voter', node, votes: Number(m[3] ?? 1), role: 'witness' };
  if (m[1] === 'l') return { type: 'add-learner', node };
  return { type: 'remove-node', node };
}

/** `tie-breaker=off|lowest|highest`, or `tie-breaker=(3,1)`: a priority list. */
function tieBreakerArg(cmd: ScriptCommand): TieBreakerMode {
  const values = stringsArg(cmd, 'tie-breaker', ['off']);
  const [first] = values;
  if (values.length === 1 && (first === 'off' || first === 'lowest' || first === 'highest')) return { kind: first };
  if (values.every((v) => /^\d+$/.test(v))) return { kind: 'list', nodes: values.map((v) => nodeId(Number(v))) };
  throw new Error(`${cmd.pos}: tie-breaker must be off, lowest, highest or a list of node ids like (3,1)`);
}

/** Trace events a script with `explain=true` shows: why elections are not won, what a witness refuses. */
const EXPLAINED_EVENTS = new Set(['election-not-won', 'election-lost', 'campaign-ignored-witness']);

/** Shared state of one script: the harness and the explained trace lines not printed yet. */
interface Scenario {
  readonly h: RaftHarness;
  readonly explained: string[];
}

function traceHook(sc: Scenario): (event: string, fields: RaftTraceFields) => void {
  return (event, fields) => {
    if (!EXPLAINED_EVENTS.has(event)) return;
    const why = typeof fields['why'] === 'string' ? `: ${fields['why']}` : '';
    sc.explained.push(`${String(fields['node'])} ${event}${why}`);
  };
}

function addNodes(sc: Scenario, cmd: ScriptCommand): string {
  expectArgs(cmd, [
    'voters',
    'learners',
    'votes',
    'prevote',
    'checkquorum',
    'readmode',
    'expected',
    'tie-breaker',
    'witnesses',
    'wait-for-all',
    'explain',
  ]);
  const voters = intsArg(cmd, 'voters', []);
  const weights = intsArg(cmd, 'votes', []);
  const votes = new Map(voters.map((v, i) => [v, weights[i] ?? 1] as const));
  const readMode = stringArg(cmd, 'readmode', 'lease') as ReadMode;
  const quorum: QuorumSettings = { expectedVotes: intArg(cmd, 'expected', 0), tieBreaker: tieBreakerArg(cmd) };
  const witnesses = intsArg(cmd, 'witnesses', []).map(nodeId);
  const explain = boolArg(cmd, 'explain', false);
  const ids = sc.h.addNodes(Number(cmd.positional[0] ?? '1'), {
    voters,
    learners: intsArg(cmd, 'learners', []),
    votes,
    quorum: {
      ...(quorum.expectedVotes === 0 && quorum.tieBreaker.kind === 'off' ? {} : { quorum }),
      ...(witnesses.length === 0 ? {} : { witnesses }),
    },
    config: {
      preVote: boolArg(cmd, 'prevote', true),
      checkQuorum: boolArg(cmd, 'checkquorum', true),
      readMode,
      electionTicks: ELECTION_TICKS,
      heartbeatTicks: 1,
      waitForAll: boolArg(cmd, 'wait-for-all', false),
      ...(explain ? { trace: traceHook(sc) } : {}),
    },
  });
  return ids.flatMap((id) => sc.h.statusLines(id)).join('\n');
}

/** `propose-conf-change ID v4 r2 ... [explicit] [expected=N] [tie-breaker=..]`. */
function proposeConfChange(h: RaftHarness, cmd: ScriptCommand): string {
  expectArgs(cmd, ['expected', 'tie-breaker']);
  const changes = cmd.positional
    .slice(1)
    .filter((t) => t !== 'explicit')
    .map((t) => parseChange(t, cmd.pos));
  if (hasArg(cmd, 'expected')) changes.push({ type: 'set-expected-votes', expectedVotes: intArg(cmd, 'expected') });
  if (hasArg(cmd, 'tie-breaker')) changes.push({ type: 'set-tie-breaker', tieBreaker: tieBreakerArg(cmd) });
  const r = h.node(nodeArg(cmd)).core.proposeConfChange({ changes, autoLeave: !cmd.positional.includes('explicit') });
  return r.ok ? `ok index=${r.value.index}` : `error: ${r.error.code}: ${r.error.message}`;
}

/** `partition 1,2 3,4`: nodes in different groups cannot talk (replaces the previous split). */
function partition(h: RaftHarness, cmd: ScriptCommand): string {
  const groups = cmd.positional.map((g) =>
    g.split(',').map((id) => {
      if (!/^\d+$/.test(id))
        throw new Error(`${cmd.pos}: partition groups are comma-separated node ids, e.g. partition 1,2 3,4`);
      return nodeId(Number(id));
    }),
  );
  h.partition(groups);
  return 'ok';
}

/** `quorum ID present=(..)`: would `present` be quorate under node ID's configuration, and why. */
function quorumOf(h: RaftHarness, cmd: ScriptCommand): string {
  expectArgs(cmd, ['present']);
  const config = configFromConfState(h.node(nodeArg(cmd)).core.confState());
  const present = new Set(intsArg(cmd, 'present').map(nodeId));
  return arbitrate({ config: jointQuorumConfig(config), present, waitForAll: { phase: 'off' } }).summary;
}

/**
 * `lms ID present=(..) stable=N [window=N] [configured=(..)]`: asks the last_man_standing policy
 * for a step under node ID's configuration (as the membership layer will) and, when it decides
 * one, proposes the configuration change on node ID. `configured` lists the votes every node had
 * in the node configuration file, by node id (default 1 each).
 */
function lastManStanding(h: RaftHarness, cmd: ScriptCommand): string {
  expectArgs(cmd, ['present', 'stable', 'window', 'configured']);
  const id = nodeArg(cmd);
  const config = configFromConfState(h.node(id).core.confState());
  const configured = intsArg(
    cmd,
    'configured',
    [...h.nodes.keys()].map(() => 1),
  );
  const configuredVotes = new Map([...h.nodes.keys()].map((n, i) => [n, configured[i] ?? 1] as const));
  const view = {
    enabled: true,
    windowTicks: intArg(cmd, 'window', 10),
    stableTicks: intArg(cmd, 'stable'),
    present: new Set(intsArg(cmd, 'present').map(nodeId)),
    configuredVotes,
  };
  const { decision, change } = lastManStandingStep(config, view);
  if (decision.kind === 'hold')
    return `hold ${decision.reason} expected=${decision.expectedVotes}${decision.ticksRemaining > 0 ? ` ticks-remaining=${decision.ticksRemaining}` : ''}`;
  const what = `${decision.kind} expected ${decision.expectedVotesBefore} -> ${decision.expectedVotesAfter}${decision.node === undefined ? '' : ` node ${decision.node}`}`;
  if (change === null) return what;
  const r = h.node(id).core.proposeConfChange(change);
  return `${what}\n${r.ok ? `proposed index=${r.value.index}` : `error: ${r.error.code}: ${r.error.message}`}`;
}

function tickN(h: RaftHarness, id: NodeId, n: number): string {
  h.tick(id, n);
  return h.takeLog().join('\n');
}

function errOr(code: string | null, fallback = 'ok'): string {
  return code === null ? fallback : `error: ${code}`;
}

function dispatch(sc: Scenario, cmd: ScriptCommand): string {
  const h = sc.h;
  switch (cmd.name) {
    case 'add-nodes':
      return addNodes(sc, cmd);
    case 'campaign':
      h.node(nodeArg(cmd)).core.campaign();
      return 'ok';
    case 'peer-gone':
      h.node(nodeArg(cmd)).core.peerGone(nodeArg(cmd, 1));
      return h.takeLog().join('\n') || 'ok';
    case 'peer-fenced': {
      const r = h.node(nodeArg(cmd)).core.peerFenced(nodeArg(cmd, 1));
      return r.ok ? h.takeLog().join('\n') || 'ok' : `error: ${r.error.code}: ${r.error.message}`;
    }
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
    case 'propose-conf-change':
      return proposeConfChange(h, cmd);
    case 'transfer-leadership': {
      const r = h.node(nodeArg(cmd)).core.transferLeadership(nodeArg(cmd, 1));
      return r.ok ? 'ok' : `error: ${r.error.code}`;
    }
    case 'partition':
      return partition(h, cmd);
    case 'quorum':
      return quorumOf(h, cmd);
    case 'lms':
      return lastManStanding(h, cmd);
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
      h.restart(nodeArg(cmd), hasArg(cmd, 'commit') ? intArg(cmd, 'commit', 0) : undefined);
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
  const sc: Scenario = { h: new RaftHarness(1), explained: [] };
  return (cmd) => {
    const out = dispatch(sc, cmd);
    // Explanations traced while the command ran come after its own output.
    const lines = sc.explained.splice(0);
    return lines.length === 0 ? out : [out, ...lines].filter((l) => l !== '').join('\n');
  };
}

runScripts('testdata/raft', handlerFactory(), { handlerFactory });
