// Proves the cluster layer's behaviour in readable scenarios: every script in testdata/cluster
// drives production ClusterNodes on virtual time (src/sim/cluster-harness.ts) through crashes,
// restarts, pauses, partitions, leaves and fence confirmations, and compares the views, quorum
// verdicts, event streams and group deliveries with the golden output (the language is in
// testdata/cluster/README.md). The scripts can fail: each planted cluster bug (a canary) makes
// the script that shows the property it breaks fail. COHORT_REWRITE=1 regenerates the expected
// output; commit it only if you understand the diff.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkScript, repoRoot, runScripts, type ScriptHandler } from '../testing/datadriven.js';
import { CLUSTER_CANARIES, type ClusterCanary } from '../services.js';
import { ClusterScript } from './cluster-script.js';

function handlerFactory(canary?: ClusterCanary): ScriptHandler {
  const script = new ClusterScript(canary);
  return (cmd) => script.run(cmd);
}

runScripts('testdata/cluster', handlerFactory(), { handlerFactory: () => handlerFactory() });

/** The script that must catch each planted bug, because it shows the property the bug breaks. */
const CAUGHT_BY: ReadonlyMap<ClusterCanary, string> = new Map<ClusterCanary, string>([
  ['evict-on-missed-heartbeat', 'group-messages-view-change.txt'], // a 500 ms pause evicts node 1
  ['never-fail', 'view-crash-rejoin-leave.txt'], // the crashed node is never failed
  ['pause-is-gone', 'fast-fail-pause.txt'], // a 5 s pause is failed as process-gone
  ['diverge-views', 'view-crash-rejoin-leave.txt'], // node 1 keeps the view id on a failure
  ['quorate-without-quorum', 'partition-quorum.txt'], // a one-member view counts as quorate
  ['deliver-to-newcomer', 'group-messages-view-change.txt'], // the stale send is delivered
  ['barrier-without-all', 'barrier-view-change.txt'], // b1 completes before node 3 arrives
  ['start-before-fence', 'recovery-fence-levels.txt'], // the lockspace starts before node 3's fence
  ['start-before-lower', 'recovery-fence-levels.txt'], // the volume starts beside the lockspace
  ['skip-abort', 'recovery-abort-newer-view.txt'], // generation 1 goes on without node 3
  ['fence-twice', 'view-crash-rejoin-leave.txt'], // the confirmation closes 3@1 twice
  ['admit-before-fence', 'view-crash-rejoin-leave.txt'], // 3@2 is admitted before 3@1 is fenced
  ['fence-clean-leave', 'view-crash-rejoin-leave.txt'], // node 1's clean leave opens a fence
]);

/** Canaries no script shows, each caught by a random workload instead (named in its test). */
const CAUGHT_BY_WORKLOAD: ReadonlySet<ClusterCanary> = new Set<ClusterCanary>([
  'two-node-unfenced', // needs a two_node cluster split while both fence: src/sim/workloads/two-node.test.ts
]);

test('every cluster canary makes the script that shows its property fail', () => {
  assert.deepEqual(
    [...CAUGHT_BY.keys(), ...CAUGHT_BY_WORKLOAD].sort(),
    [...CLUSTER_CANARIES].sort(),
    'a script (or a workload) for every canary',
  );
  for (const [canary, file] of CAUGHT_BY) {
    const text = readFileSync(join(repoRoot(), 'testdata/cluster', file), 'utf8');
    let failure: string;
    try {
      const r = checkScript(text, file, handlerFactory(canary));
      failure = r.ok ? '' : r.message;
    } catch (e) {
      failure = e instanceof Error ? e.message : String(e);
    }
    assert.notEqual(failure, '', `${file} passed with canary ${canary}`);
  }
});

test('a script that uses a command before `cluster`, or an unknown argument, fails with its position', () => {
  assert.throws(
    () => checkScript('status\n----\n', 'x.txt', handlerFactory()),
    /x\.txt:1: .*no cluster yet: start the script with `cluster nodes=N`/,
  );
  assert.throws(
    () => checkScript('cluster nodes=1\n----\n1: votes=1\n\nrun-until done limt=5\n----\n', 'y.txt', handlerFactory()),
    /y\.txt:5: .*unknown argument limt=/,
  );
});
