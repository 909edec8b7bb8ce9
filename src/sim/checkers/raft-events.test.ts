// Proves the checkers read configurations exactly as the core writes and counts them: every
// `formatConfig` form (joint sides, learners, pending learners, auto-leave, expected votes,
// tie-breakers of each kind, outgoing settings, witnesses) parses back to the same configuration
// and the same quorum view, for hand-picked and randomly generated configuration changes; and
// malformed or invalid text is refused rather than guessed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId } from '../../lib/ids.js';
import { Prng } from '../../lib/prng.js';
import { hasQuorum } from '../../quorum/index.js';
import {
  applyConfChange,
  configFromConfState,
  formatConfig,
  jointQuorumConfig,
  type ClusterConfig,
  type ConfChangeSingle,
} from '../../log/index.js';
import { parseConfig, quorumConfigOf } from './raft-events.js';

const id = nodeId;

function roundTrip(config: ClusterConfig): void {
  const text = formatConfig(config);
  const parsed = parseConfig(text);
  assert.ok(parsed !== null, `parses: ${text}`);
  assert.equal(formatConfig(parsed.cluster), text);
  // Same quorum decisions for every subset of the members.
  const members = [...new Set([...config.voters.keys(), ...config.outgoing.keys()])];
  for (let mask = 0; mask < 1 << members.length; mask++) {
    const present = new Set(members.filter((_, i) => (mask & (1 << i)) !== 0));
    assert.equal(
      hasQuorum(quorumConfigOf(parsed), present),
      hasQuorum(jointQuorumConfig(config), present),
      `${text}: {${[...present].join(',')}}`,
    );
  }
}

const BASE = configFromConfState({
  voters: [
    [id(1), 1],
    [id(2), 1],
    [id(3), 1],
    [id(4), 1],
  ],
  outgoing: [],
  learners: [id(5)],
  learnersNext: [],
  autoLeave: false,
});

test('every formatConfig suffix parses back to the same configuration and quorum view', () => {
  const changes: ConfChangeSingle[][] = [
    [{ type: 'set-expected-votes', expectedVotes: 6 }],
    [{ type: 'set-tie-breaker', tieBreaker: { kind: 'lowest' } }],
    [
      { type: 'set-tie-breaker', tieBreaker: { kind: 'list', nodes: [id(3), id(1)] } },
      { type: 'add-learner', node: id(4) },
    ],
    [
      { type: 'add-voter', node: id(6), votes: 1, role: 'witness' },
      { type: 'add-voter', node: id(5), votes: 2 },
    ],
  ];
  roundTrip(BASE);
  for (const c of changes) {
    for (const autoLeave of [true, false]) {
      const joint = applyConfChange(BASE, { changes: c, autoLeave });
      assert.ok(joint.ok, joint.ok ? '' : joint.error.message);
      roundTrip(joint.value);
      const left = applyConfChange(joint.value, { changes: [], autoLeave: false });
      assert.ok(left.ok);
      roundTrip(left.value);
      // And back to defaults from a configuration with settings: `outgoing-default`'s mirror.
      const back = applyConfChange(left.value, {
        changes: [
          { type: 'set-expected-votes', expectedVotes: 0 },
          { type: 'set-tie-breaker', tieBreaker: { kind: 'off' } },
        ],
        autoLeave: true,
      });
      if (back.ok) roundTrip(back.value);
    }
  }
});

test('random configuration changes round-trip through the checkers parser', () => {
  const prng = new Prng(11);
  let config = BASE;
  for (let step = 0; step < 400; step++) {
    const node = id(prng.int(1, 8));
    const kinds: ConfChangeSingle[] = [
      { type: 'add-voter', node, votes: prng.int(1, 4) },
      { type: 'add-learner', node },
      { type: 'remove-node', node },
      { type: 'set-expected-votes', expectedVotes: prng.chance(0.5) ? 0 : prng.int(1, 20) },
      {
        type: 'set-tie-breaker',
        tieBreaker: prng.pick([
          { kind: 'off' },
          { kind: 'lowest' },
          { kind: 'highest' },
          { kind: 'list', nodes: [node] },
        ] as const),
      },
    ];
    const next = applyConfChange(config, { changes: [prng.pick(kinds)], autoLeave: prng.chance(0.5) });
    if (!next.ok) continue;
    config = next.value;
    roundTrip(config);
  }
});

test('malformed or invalid configuration text is refused', () => {
  for (const bad of [
    '',
    'voters=(1,2',
    'voters=(1) expected=x',
    'voters=(1,2) tie-breaker=sideways',
    'voters=(1x0)',
    'voters=(1) witnesses=(1)',
    'voters=(1,2) expected=1',
  ]) {
    assert.equal(parseConfig(bad), null, bad);
  }
});
