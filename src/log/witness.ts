/**
 * The witness role on the wire: what a leader sends a witness instead of the real entries.
 *
 * A witness is a voter that stores no entry data (a `cohort witness` process, like corosync-qnetd,
 * giving an even-sized cluster an odd vote). It needs, and gets, exactly what voting and
 * acknowledging need: every entry's index, term and type. A normal entry reaches it with empty
 * `data` and `metadataOnly: true`, so nobody can mistake the copy for the real entry; a
 * configuration entry reaches it whole (the witness must know the configuration to count and
 * to vote); a snapshot reaches it without its data, also marked.
 *
 * Why this is safe (the full argument is in docs/raft.md, "Witness"): the witness persists and
 * acknowledges the copies, so it counts toward commit exactly like a data voter, and its log
 * has the true (index, term) of every entry, so its up-to-date check when voting is the same as a
 * data voter's. It can never lead (it never campaigns and is never a transfer target), so its
 * copies are never sent to anyone. Every entry a data node holds therefore came from a data
 * leader, whole. And since the witnesses alone are never a quorum (`cluster-config.ts`), every
 * commit is held by at least one data node.
 */
import { assert } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';
import { isWitness, type ClusterConfig } from './cluster-config.js';
import type { Entry, Snapshot } from './raft-message.js';

const NO_DATA = new Uint8Array(0);

/** The witness's copy of `entry`: a normal entry loses its data and is marked; a conf entry is kept. */
export function metadataOnlyEntry(entry: Entry): Entry {
  switch (entry.type) {
    case 'normal':
      return { type: 'normal', term: entry.term, index: entry.index, data: NO_DATA, metadataOnly: true };
    case 'conf':
      return entry;
  }
}

/**
 * The entries a leader sends to `to`: the witness copies when `to` is a witness in `config`, the
 * entries themselves otherwise. Asserts that a copy never goes to a data node: a leader holding
 * one would be a former witness that rejoined as a data node without wiping its storage (refused
 * by `applyConfChange` while it is a member, but not detectable once it left and came back).
 */
export function entriesForFollower(config: ClusterConfig, to: NodeId, entries: readonly Entry[]): readonly Entry[] {
  if (isWitness(config, to)) return entries.map(metadataOnlyEntry);
  for (const e of entries) {
    assert(
      e.type !== 'normal' || e.metadataOnly !== true,
      `entry ${e.index} in the leader's log is a witness copy without data: this node was a witness and rejoined as a data node without wiping its storage`,
    );
  }
  return entries;
}

/** The snapshot a leader sends to `to`: without its data (marked) when `to` is a witness. */
export function snapshotForFollower(config: ClusterConfig, to: NodeId, snapshot: Snapshot): Snapshot {
  if (!isWitness(config, to)) return snapshot;
  return { metadata: { ...snapshot.metadata, metadataOnly: true }, data: NO_DATA };
}
