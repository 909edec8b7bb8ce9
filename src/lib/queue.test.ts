// Proves BoundedQueue is a FIFO that refuses at capacity (never grows) and that Ring keeps
// exactly the newest items, by comparing both against a plain array model on random operations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BoundedQueue, Ring } from './queue.js';

test('BoundedQueue matches an array model and never exceeds capacity', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 8 }),
      fc.array(fc.oneof(fc.integer(), fc.constant(null)), { maxLength: 200 }),
      (cap, ops) => {
        const q = new BoundedQueue<number>(cap);
        const model: number[] = [];
        for (const op of ops) {
          if (op === null) {
            assert.equal(q.shift(), model.shift());
          } else {
            const accepted = q.push(op);
            assert.equal(accepted, model.length < cap);
            if (accepted) model.push(op);
          }
          assert.equal(q.length, model.length);
          assert.equal(q.full, model.length === cap);
          assert.equal(q.peek(), model[0]);
          assert.deepEqual([...q], model);
        }
      },
    ),
  );
});

test('BoundedQueue.clear empties it and capacity must be positive', () => {
  const q = new BoundedQueue<string>(2);
  q.push('a');
  q.push('b');
  q.clear();
  assert.equal(q.length, 0);
  assert.equal(q.shift(), undefined);
  assert.throws(() => new BoundedQueue(0));
});

test('Ring keeps the newest capacity items in order', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 6 }), fc.array(fc.integer(), { maxLength: 50 }), (cap, xs) => {
      const r = new Ring<number>(cap);
      for (const x of xs) r.push(x);
      assert.deepEqual([...r], xs.slice(Math.max(0, xs.length - cap)));
      assert.equal(r.length, Math.min(cap, xs.length));
    }),
  );
});
