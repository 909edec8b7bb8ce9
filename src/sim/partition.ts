/**
 * Named partition shapes (after Jepsen's nemeses and TigerBeetle's packet simulator). A shape is
 * a pure function of the node list and a PRNG; it returns which directed links are cut. Nodes
 * always reach themselves.
 *
 * - `isolate-one`: one node can neither send nor receive.
 * - `halves`: the nodes are split in two sides of a size drawn uniformly from [1, n-1]; no
 *   traffic crosses (VOPR's "uniform-size").
 * - `majorities-ring`: every node reaches a majority (itself included), and no two nodes reach
 *   the same majority, so every node believes it is in the majority and no two agree on which.
 * - `asymmetric`: two sides as in `halves`, but only one direction is cut (from side A to B),
 *   a one-way link failure.
 */
import { assert, assertNever } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import type { Prng } from '../lib/prng.js';

/** The shapes the nemesis can inject. */
export const PARTITION_SHAPES = ['isolate-one', 'halves', 'majorities-ring', 'asymmetric'] as const;
/** One named partition shape. */
export type PartitionShape = (typeof PARTITION_SHAPES)[number];

/** A computed partition: `cut(from, to)` is true when messages from `from` to `to` are dropped. */
export interface Partition {
  readonly shape: PartitionShape;
  /** A short readable description for the trace, e.g. `{1,3}|{2}`. */
  readonly description: string;
  cut(from: NodeId, to: NodeId): boolean;
}

/** The smallest cluster a shape makes sense for (`majorities-ring` needs 3 nodes). */
export function shapeApplies(shape: PartitionShape, nodeCount: number): boolean {
  switch (shape) {
    case 'isolate-one':
    case 'halves':
    case 'asymmetric':
      return nodeCount >= 2;
    case 'majorities-ring':
      return nodeCount >= 3;
    default:
      return assertNever(shape, 'partition shape');
  }
}

/** Builds a partition of `shape` over `nodes` (sorted ids), drawing choices from `prng`. */
export function makePartition(shape: PartitionShape, nodes: readonly NodeId[], prng: Prng): Partition {
  assert(shapeApplies(shape, nodes.length), `partition ${shape} needs more than ${nodes.length} nodes`);
  switch (shape) {
    case 'isolate-one': {
      const lone = prng.pick(nodes);
      return twoSides(shape, [lone], nodes, false);
    }
    case 'halves':
    case 'asymmetric': {
      const shuffled = prng.shuffle([...nodes]);
      const size = prng.int(1, nodes.length);
      return twoSides(shape, shuffled.slice(0, size), nodes, shape === 'asymmetric');
    }
    case 'majorities-ring':
      return majoritiesRing(nodes, prng);
    default:
      return assertNever(shape, 'partition shape');
  }
}

function formatSet(ids: Iterable<NodeId>): string {
  return `{${[...ids].sort((a, b) => a - b).join(',')}}`;
}

function twoSides(
  shape: PartitionShape,
  sideA: readonly NodeId[],
  nodes: readonly NodeId[],
  oneWay: boolean,
): Partition {
  const a = new Set(sideA);
  const b = nodes.filter((n) => !a.has(n));
  assert(a.size > 0 && b.length > 0, 'both sides of a partition must be non-empty');
  const arrow = oneWay ? '-/->' : '|';
  return {
    shape,
    description: `${formatSet(a)}${arrow}${formatSet(b)}`,
    cut: (from, to) => {
      if (from === to) return false;
      const fromA = a.has(from);
      const toA = a.has(to);
      if (fromA === toA) return false;
      return oneWay ? fromA : true;
    },
  };
}

/**
 * Places the nodes on a random ring; a node reaches the nodes within ring distance `h`, where
 * `2h + 1` is the smallest odd window holding a majority. Windows are distinct as long as
 * `2h + 1 < n`; for n = 3 that fails (a window of 3 is everyone), so three nodes use a line
 * (a-b-c: a sees {a,b}, b sees all, c sees {b,c}), which meets the same promise.
 */
function majoritiesRing(nodes: readonly NodeId[], prng: Prng): Partition {
  const order = prng.shuffle([...nodes]);
  const n = order.length;
  const position = new Map<NodeId, number>();
  order.forEach((id, i) => position.set(id, i));
  const majority = Math.floor(n / 2) + 1;
  const h = Math.ceil((majority - 1) / 2);
  const line = n === 3;
  const distance = (p: number, q: number): number => {
    const d = Math.abs(p - q);
    return line ? d : Math.min(d, n - d);
  };
  const at = (id: NodeId): number => {
    const p = position.get(id);
    assert(p !== undefined, `node ${id} is not in the partitioned cluster`);
    return p;
  };
  return {
    shape: 'majorities-ring',
    description: `${line ? 'line' : 'ring'}(${order.join('-')})`,
    cut: (from, to) => from !== to && distance(at(from), at(to)) > h,
  };
}
