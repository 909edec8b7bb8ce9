// Proves each named partition shape has the reachability it promises, for every cluster size
// and many seeds: isolate-one cuts exactly one node off both ways; halves makes two non-empty
// sides with no traffic across; asymmetric cuts one direction only; majorities-ring lets every
// node reach a majority while no two nodes reach the same set.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { nodeId, type NodeId } from '../lib/ids.js';
import { Prng } from '../lib/prng.js';
import { makePartition, shapeApplies, type Partition } from './partition.js';

function ids(n: number): NodeId[] {
  return Array.from({ length: n }, (_, i) => nodeId(i + 1));
}

/** The nodes `a` can exchange messages with in both directions, itself included. */
function reach(p: Partition, nodes: readonly NodeId[], a: NodeId): string {
  return nodes.filter((b) => !p.cut(a, b) && !p.cut(b, a)).join(',');
}

const sizes = fc.integer({ min: 2, max: 16 });
const seeds = fc.integer({ min: 0, max: 2 ** 32 - 1 });

test('no shape cuts a node off from itself', () => {
  fc.assert(
    fc.property(
      sizes,
      seeds,
      fc.constantFrom('isolate-one', 'halves', 'asymmetric', 'majorities-ring' as const),
      (n, seed, shape) => {
        if (!shapeApplies(shape, n)) return;
        const nodes = ids(n);
        const p = makePartition(shape, nodes, new Prng(seed));
        for (const a of nodes) assert.equal(p.cut(a, a), false);
      },
    ),
  );
});

test('isolate-one: exactly one node is cut off, in both directions', () => {
  fc.assert(
    fc.property(sizes, seeds, (n, seed) => {
      const nodes = ids(n);
      const p = makePartition('isolate-one', nodes, new Prng(seed));
      const lonely = nodes.filter((a) => nodes.every((b) => a === b || (p.cut(a, b) && p.cut(b, a))));
      assert.equal(lonely.length, n === 2 ? 2 : 1);
      const rest = nodes.filter((a) => !lonely.includes(a));
      for (const a of rest) for (const b of rest) assert.equal(p.cut(a, b), false);
    }),
  );
});

test('halves: two non-empty sides, symmetric, nothing crosses', () => {
  fc.assert(
    fc.property(sizes, seeds, (n, seed) => {
      const nodes = ids(n);
      const p = makePartition('halves', nodes, new Prng(seed));
      const side = nodes.filter((b) => !p.cut(nodes[0]!, b));
      assert.ok(side.length >= 1 && side.length < n, 'both sides are non-empty');
      for (const a of nodes) {
        for (const b of nodes) {
          assert.equal(p.cut(a, b), p.cut(b, a), 'symmetric');
          assert.equal(p.cut(a, b), side.includes(a) !== side.includes(b), 'cut exactly across sides');
        }
      }
    }),
  );
});

test('asymmetric: one direction between the sides is cut, the other is open', () => {
  fc.assert(
    fc.property(sizes, seeds, (n, seed) => {
      const nodes = ids(n);
      const p = makePartition('asymmetric', nodes, new Prng(seed));
      let oneWay = 0;
      for (const a of nodes) {
        for (const b of nodes) {
          assert.ok(!(p.cut(a, b) && p.cut(b, a)), `link ${a}<->${b} is cut both ways`);
          if (p.cut(a, b)) oneWay++;
        }
      }
      assert.ok(oneWay > 0, 'some link is cut');
    }),
  );
});

test('majorities-ring: every node reaches a majority and no two reach the same nodes', () => {
  fc.assert(
    fc.property(fc.integer({ min: 3, max: 16 }), seeds, (n, seed) => {
      const nodes = ids(n);
      const p = makePartition('majorities-ring', nodes, new Prng(seed));
      const majority = Math.floor(n / 2) + 1;
      const views = new Set<string>();
      for (const a of nodes) {
        const r = reach(p, nodes, a);
        assert.ok(r.split(',').length >= majority, `node ${a} reaches ${r}, less than a majority of ${n}`);
        views.add(r);
      }
      assert.equal(views.size, n, 'every node sees a different majority');
    }),
    { numRuns: 300 },
  );
});

test('majorities-ring needs three nodes; shapes are a function of the seed', () => {
  assert.equal(shapeApplies('majorities-ring', 2), false);
  assert.throws(() => makePartition('majorities-ring', ids(2), new Prng(1)));
  const a = makePartition('halves', ids(7), new Prng(9)).description;
  const b = makePartition('halves', ids(7), new Prng(9)).description;
  assert.equal(a, b);
});
