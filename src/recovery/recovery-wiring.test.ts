// Proves the wiring recipe of recovery-table.ts's file comment against the real group table,
// as the membership machine will follow it: group joins and leaves feed `onGroupChange` with the
// group's level and members; an unclean cluster removal reads each affected group's level before
// `removeNode` (so a group that loses its last member still opens its round); a fence recorded
// satisfies the rounds; an error report's eviction removes the member with
// `GroupTable.removeMember` and restarts the round without it. After every step the recovery
// table agrees with the group views (`checkAgainst`), and both tables survive their encodings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteReader, ByteWriter } from '../lib/bytes.js';
import { incarnation, logIndex, nodeId, type Incarnation, type LogIndex, type NodeId } from '../lib/ids.js';
import { GroupTable } from '../groups/group-table.js';
import { RecoveryTable, type RecoveryApply } from './recovery-table.js';
import type { RecoveryReport } from './recovery-command.js';

/** The membership machine's part, reduced to the group table and the recovery table. */
class Holder {
  groups = new GroupTable();
  recovery = new RecoveryTable();
  readonly steps: string[] = [];
  private index = 0;

  private next(): LogIndex {
    return logIndex(++this.index);
  }

  private note(r: RecoveryApply): void {
    for (const e of r.events) this.steps.push(`${e.group}:${e.step}`);
  }

  private check(): void {
    assert.equal(this.recovery.checkAgainst(this.groups.views()), null);
    const w = new ByteWriter(256);
    this.groups.encode(w);
    this.recovery.encode(w);
    const r = new ByteReader(w.finish().slice());
    this.groups = GroupTable.decode(r);
    this.recovery = RecoveryTable.decode(r);
    r.end('tables');
  }

  private changed(group: string, level: number, unclean: { node: NodeId; incarnation: Incarnation }[]): void {
    this.note(this.recovery.onGroupChange(group, level, this.groups.view(group)?.members ?? [], unclean, this.next()));
  }

  join(group: string, node: number, level: number): void {
    const c = { type: 'group-join' as const, group, node: nodeId(node), incarnation: incarnation(1), level };
    const r = this.groups.apply(c, () => true);
    if (r.outcome === 'applied') this.changed(group, r.level ?? level, []);
    this.check();
  }

  /** Node `node` (incarnation 1) leaves the cluster view, cleanly or not. */
  remove(node: number, unclean: boolean): void {
    const gone = { node: nodeId(node), incarnation: incarnation(1) };
    const affected = this.groups
      .groupsOf(gone.node, gone.incarnation)
      .map((g) => ({ g, level: this.groups.view(g)?.level ?? 0 }));
    this.groups.removeNode(gone.node, gone.incarnation, true);
    for (const { g, level } of affected) this.changed(g, level, unclean ? [gone] : []);
    this.check();
  }

  fenced(node: number): void {
    this.note(this.recovery.onFenced(nodeId(node), incarnation(1), this.next()));
    this.check();
  }

  report(group: string, node: number, what: RecoveryReport): void {
    const generation = this.recovery.round(group)?.generation ?? 0;
    const r = this.recovery.report(group, generation, nodeId(node), incarnation(1), what, this.next());
    this.note(r);
    for (const e of r.evict) {
      const level = this.groups.view(e.group)?.level ?? 0;
      assert.equal(this.groups.removeMember(e.group, e.node, e.incarnation).length, 1, 'one view change');
      this.changed(e.group, level, []);
    }
    this.check();
  }
}

test('the wiring recipe: levels in order, a fence gates the start, an error evicts and restarts', () => {
  const h = new Holder();
  for (const n of [1, 2, 3]) {
    h.join('ls', n, 1);
    h.join('fs', n, 2);
  }
  h.join('solo', 3, 3);
  h.join('zero', 3, 0);
  assert.deepEqual(h.steps, [], 'joins open nothing');
  h.remove(3, true);
  assert.deepEqual(h.steps.splice(0), ['fs:opened', 'ls:opened', 'solo:opened']);
  assert.equal(h.groups.view('solo'), null, 'the group is gone');
  assert.equal(h.recovery.round('solo')?.phase, 'waiting-fence', 'its round waits for the fence');
  assert.equal(h.recovery.round('zero'), null, 'level 0: no round');
  for (const n of [1, 2]) {
    h.report('fs', n, 'stopped');
    h.report('ls', n, 'stopped');
  }
  h.steps.length = 0;
  h.fenced(3);
  assert.deepEqual(h.steps.splice(0), [
    'fs:fence-satisfied',
    'ls:fence-satisfied',
    'solo:fence-satisfied',
    'ls:start-due',
  ]);
  assert.equal(h.recovery.round('fs')?.phase, 'waiting-lower');
  assert.equal(h.recovery.round('solo')?.phase, 'waiting-lower', 'level 3, even without members');
  h.report('ls', 1, 'started');
  h.report('ls', 2, 'started');
  assert.deepEqual(h.steps.splice(0), ['ls:member-started', 'ls:member-started', 'ls:finished', 'fs:start-due']);
  h.report('fs', 2, 'error');
  assert.deepEqual(h.steps.splice(0), ['fs:member-error', 'fs:aborted', 'fs:opened']);
  assert.deepEqual(
    h.groups.view('fs')?.members.map((m) => m.node),
    [1],
    'the erring member left the group',
  );
  h.report('fs', 1, 'stopped');
  h.report('fs', 1, 'started');
  assert.deepEqual(h.steps.splice(0), [
    'fs:stopped',
    'fs:start-due',
    'fs:member-started',
    'fs:finished',
    'solo:start-due',
    'solo:finished',
  ]);
  assert.equal(h.recovery.round('solo'), null, 'a finished round without members is forgotten');
  h.remove(2, false);
  assert.deepEqual(h.steps, [], 'a clean leave with no round open opens nothing');
});
