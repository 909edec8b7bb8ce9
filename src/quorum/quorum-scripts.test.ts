// Proves the votequorum policies behave as documented in whole scenarios, through the scripts
// in testdata/quorum: a tie-breaker settling a 2-2 split, wait_for_all on a cold start,
// last-man-standing shrinking expected votes 5 -> 4 -> 3 -> 2 one stable window at a time,
// weighted votes, a witness in a 2+1 cluster, and the two_node fencing hook.
import { nodeId, type NodeId } from '../lib/ids.js';
import {
  boolArg,
  expectArgs,
  hasArg,
  intArg,
  intsArg,
  runScripts,
  stringArg,
  type ScriptCommand,
  type ScriptHandler,
} from '../testing/datadriven.js';
import {
  arbitrate,
  buildVotequorum,
  decideLastManStanding,
  initialWaitForAll,
  stepWaitForAll,
  DEFAULT_VOTEQUORUM_OPTIONS,
  type Arbitration,
  type LastManStandingDecision,
  type NodeVoteSpec,
  type QuorumConfig,
  type TieBreakerMode,
  type VotequorumOptions,
  type WaitForAllState,
} from './index.js';

interface Scenario {
  nodes: NodeVoteSpec[];
  options: VotequorumOptions;
  config: QuorumConfig;
  present: Set<NodeId>;
  waitForAll: WaitForAllState;
  stableTicks: number;
  fenced: Set<NodeId>;
}

const ids = (xs: readonly number[]): NodeId[] => xs.map((x) => nodeId(x));

function tieBreakerMode(cmd: ScriptCommand): TieBreakerMode {
  const kind = stringArg(cmd, 'tie-breaker', 'off');
  switch (kind) {
    case 'off':
    case 'lowest':
    case 'highest':
      return { kind };
    case 'list':
      return { kind: 'list', nodes: ids(intsArg(cmd, 'tie-breaker-list')) };
    default:
      throw new Error(`${cmd.pos}: tie-breaker=${kind} must be off, lowest, highest or list`);
  }
}

const CONFIG_ARGS = [
  'voters',
  'votes',
  'witnesses',
  'expected',
  'tie-breaker',
  'tie-breaker-list',
  'wait-for-all',
  'lms',
  'lms-window',
  'tracking',
  'two-node',
];

function configure(cmd: ScriptCommand): { scenario?: Scenario; out: string } {
  expectArgs(cmd, CONFIG_ARGS);
  const voters = intsArg(cmd, 'voters');
  const votes = intsArg(
    cmd,
    'votes',
    voters.map(() => 1),
  );
  if (votes.length !== voters.length) throw new Error(`${cmd.pos}: votes= needs one entry per voter`);
  const witnesses = new Set(intsArg(cmd, 'witnesses', []));
  const nodes: NodeVoteSpec[] = voters.map((id, i) => ({
    nodeId: nodeId(id),
    votes: votes[i] ?? 1,
    role: witnesses.has(id) ? 'witness' : 'data',
  }));
  const options: VotequorumOptions = {
    ...DEFAULT_VOTEQUORUM_OPTIONS,
    expectedVotes: hasArg(cmd, 'expected') ? intArg(cmd, 'expected') : undefined,
    expectedVotesTracking: boolArg(cmd, 'tracking', false),
    waitForAll: boolArg(cmd, 'wait-for-all', false),
    autoTieBreaker: tieBreakerMode(cmd),
    lastManStanding: boolArg(cmd, 'lms', false),
    lastManStandingWindowTicks: intArg(cmd, 'lms-window', DEFAULT_VOTEQUORUM_OPTIONS.lastManStandingWindowTicks),
    twoNode: boolArg(cmd, 'two-node', false),
  };
  const built = buildVotequorum(nodes, options);
  if (!built.ok) return { out: `error ${built.error.code}: ${built.error.message}` };
  const scenario: Scenario = {
    nodes,
    options,
    config: built.value.config,
    present: new Set(),
    waitForAll: initialWaitForAll(options.waitForAll || options.twoNode),
    stableTicks: 0,
    fenced: new Set(),
  };
  return { scenario, out: `${describeConfig(scenario.config)} (expected votes from ${built.value.expected.source})` };
}

function describeConfig(c: QuorumConfig): string {
  const voters = [...c.voters].map(([id, v]) => (v === 1 ? `${id}` : `${id}x${v}`)).join(',');
  const tb = c.tieBreaker === undefined ? '' : ` tie-breaker=${c.tieBreaker}`;
  return `config voters=(${voters}) expected=${c.expectedVotes} quorum=${Math.floor(c.expectedVotes / 2) + 1}${tb}`;
}

function describeArbitration(a: Arbitration): string {
  return `quorate=${a.quorate} reason=${a.reason} wait-for-all=${a.waitForAll.phase}\n${a.summary}`;
}

function judge(s: Scenario, present: ReadonlySet<NodeId>): Arbitration {
  return arbitrate({
    config: { incoming: s.config },
    present,
    waitForAll: s.waitForAll,
    twoNode: { enabled: s.options.twoNode, fencedPeers: s.fenced },
  });
}

function describeLms(d: LastManStandingDecision): string {
  if (d.kind === 'hold')
    return `lms: hold (${d.reason})${d.reason === 'window-pending' ? ` ${d.ticksRemaining} ticks left` : ''}, expected stays ${d.expectedVotes}`;
  const what = d.node === undefined ? 'trim excess' : `${d.kind === 'lower' ? 'remove' : 'restore'} node ${d.node}`;
  return `lms: ${d.kind} expected ${d.expectedVotesBefore} -> ${d.expectedVotesAfter} (${what}); committed ${describeConfig(d.proposed)}`;
}

function lmsTick(s: Scenario, cmd: ScriptCommand): string {
  s.stableTicks += intArg(cmd, 'n');
  const decision = decideLastManStanding({
    enabled: s.options.lastManStanding,
    windowTicks: s.options.lastManStandingWindowTicks,
    stableTicks: s.stableTicks,
    config: s.config,
    jointInFlight: false,
    present: s.present,
    configuredVotes: new Map(s.nodes.map((n) => [n.nodeId, n.votes])),
    tieBreaker: s.options.autoTieBreaker,
    witnesses: new Set(s.nodes.filter((n) => n.role === 'witness').map((n) => n.nodeId)),
  });
  if (decision.kind === 'hold') return describeLms(decision);
  // The leader proposes the step as a joint change; here it commits at once and the window restarts.
  s.config = decision.proposed;
  s.stableTicks = 0;
  return `${describeLms(decision)}\n${describeArbitration(judge(s, s.present))}`;
}

function members(s: Scenario, cmd: ScriptCommand): string {
  const next = new Set(ids(cmd.positional.map(Number)));
  const changed = next.size !== s.present.size || [...next].some((id) => !s.present.has(id));
  if (changed) s.stableTicks = 0;
  s.present = next;
  s.waitForAll = stepWaitForAll(s.waitForAll, { type: 'membership', present: next, config: { incoming: s.config } });
  return describeArbitration(judge(s, next));
}

function split(s: Scenario, cmd: ScriptCommand): string {
  expectArgs(cmd, []);
  return cmd.positional
    .map((part) => {
      const set = new Set(ids(part.split(',').map(Number)));
      const a = judge(s, set);
      return `partition (${part}): quorate=${a.quorate} reason=${a.reason}`;
    })
    .join('\n');
}

function step(s: Scenario, cmd: ScriptCommand): string {
  switch (cmd.name) {
    case 'members':
      return members(s, cmd);
    case 'split':
      return split(s, cmd);
    case 'tick':
      return lmsTick(s, cmd);
    case 'fenced':
      for (const id of ids(cmd.positional.map(Number))) s.fenced.add(id);
      return describeArbitration(judge(s, s.present));
    case 'restart':
      s.waitForAll = initialWaitForAll(s.options.waitForAll || s.options.twoNode);
      s.present = new Set();
      return `wait-for-all=${s.waitForAll.phase}`;
    case 'joined-quorate-cluster':
    case 'cancel-wait':
      s.waitForAll = stepWaitForAll(
        s.waitForAll,
        cmd.name === 'cancel-wait' ? { type: 'cancel' } : { type: 'joined-quorate-cluster' },
      );
      return describeArbitration(judge(s, s.present));
    default:
      throw new Error(`unknown command ${cmd.name}`);
  }
}

function handler(): ScriptHandler {
  let scenario: Scenario | undefined;
  return (cmd) => {
    if (cmd.name === 'config') {
      const r = configure(cmd);
      if (r.scenario !== undefined) scenario = r.scenario;
      return r.out;
    }
    if (scenario === undefined) throw new Error(`${cmd.pos}: run \`config\` first`);
    return step(scenario, cmd);
  };
}

runScripts('testdata/quorum', handler(), { handlerFactory: handler });
