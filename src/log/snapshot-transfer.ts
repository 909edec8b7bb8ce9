/**
 * Sending and receiving snapshots, for a follower whose next entries were compacted away.
 *
 * Rules: the leader ships the storage's latest snapshot (witnesses get it without data, see
 * `witness.ts`) only to a follower heard from recently (never into a partition) and only below
 * `RAFT_SNAPSHOT_BYTES_MAX`; it sends nothing else to that follower until the snapshot is
 * acknowledged, reported failed, or an election timeout passes without an answer (then it probes
 * again). A follower ignores a snapshot at or below its commit index, learns only the commit when
 * it already holds the snapshot's last entry, and otherwise replaces its log and configuration
 * with the snapshot's, even one that predates its own admission to the cluster.
 */
import { assert } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import { RAFT_SNAPSHOT_BYTES_MAX } from '../constants.js';
import { configFromConfState } from './cluster-config.js';
import { Progress } from './progress.js';
import { snapshotForFollower } from './witness.js';
import type { MsgSnap } from './raft-message.js';
import type { RaftState } from './raft-state.js';
import { sendAppendResponse } from './replication.js';
import { setConfig } from './conf-change.js';
import { roleConfig } from './quorum-configs.js';

/** Leader: sends the latest snapshot to `to` (recently active only, bounded in size); true if it went out. */
export function sendSnapshot(s: RaftState, to: NodeId, pr: Progress): boolean {
  if (!pr.recentActive) return false; // do not ship a snapshot into a partition
  const snap = s.cfg.storage.snapshot();
  if (!snap.ok) {
    s.traceEvent('snapshot-unavailable', { to });
    return false;
  }
  if (snap.value.data.length > RAFT_SNAPSHOT_BYTES_MAX) {
    s.traceEvent('snapshot-too-large', { to, bytes: snap.value.data.length });
    return false;
  }
  const index = snap.value.metadata.index;
  assert(index > 0, 'entries were compacted, so a snapshot must exist');
  pr.becomeSnapshot(index);
  s.send({
    type: 'MsgSnap',
    from: s.id,
    to,
    term: s.term,
    snapshot: snapshotForFollower(roleConfig(s, to), to, snap.value),
  });
  s.traceEvent('snapshot-sent', { to, index });
  return true;
}

/**
 * Follower: restores a snapshot beyond its commit index (or learns only the commit when it holds
 * its last entry) and acknowledges.
 */
export function handleSnapshot(s: RaftState, m: MsgSnap): void {
  const meta = m.snapshot.metadata;
  if (meta.metadataOnly === true || (meta.confState.witnesses ?? []).includes(s.id)) s.mayHoldWitnessCopy = true;
  if (meta.index <= s.log.committed) {
    sendAppendResponse(s, m.from, s.log.committed, false);
    return;
  }
  // Unlike etcd, a snapshot whose configuration predates this node's admission is accepted:
  // the node learns of its membership by applying the later entries, instead of stalling until
  // the leader happens to take a newer snapshot.
  const cfg = configFromConfState(meta.confState);
  if (s.log.matchTerm(meta.index, meta.term)) {
    // We already hold the snapshot's last entry: just learn that it is committed.
    s.log.commitTo(meta.index);
  } else {
    s.log.restore(m.snapshot);
    setConfig(s, cfg);
    s.traceEvent('snapshot-restored', { index: meta.index, snapTerm: meta.term });
  }
  sendAppendResponse(s, m.from, s.log.lastIndex(), false);
}

/** A MsgSnap may have been lost: after an election timeout without an answer, probe again. */
export function retryStaleSnapshots(s: RaftState): void {
  for (const pr of s.progress.values())
    if (pr.state === 'snapshot' && pr.stateTicks >= s.cfg.electionTicks) pr.becomeProbe();
}
