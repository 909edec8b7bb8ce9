/**
 * Storage repairs as values: what recovery found damaged and what it did about it (cut a torn
 * WAL tail, discarded a corrupt WAL, skipped a damaged snapshot, rebuilt a lost stable state).
 *
 * Storage is pure (no logger): recovery returns these, and the node's owner (the daemon) logs
 * each one at warn and counts it (`cohort_storage_repairs_total{kind}`). A repair is never
 * silent: every place that drops or rewrites durable bytes at start reports one.
 */

/**
 * What was repaired:
 * - `wal-torn-tail`: the newest WAL segment ended in a partial or unverifiable batch; it was cut.
 * - `wal-discarded`: the WAL was corrupt mid-log; every segment was discarded and the entries
 *   it held are rebuilt from peers (repair mode).
 * - `snapshot-skipped`: a snapshot file failed its checks; an older one (or none) was used.
 * - `stable-state-damaged`: the stable-state file failed its checks; term and vote were taken
 *   from the WAL and the incarnation counter restarted.
 * - `stable-state-missing`: the stable-state file was absent beside an existing log; as above.
 */
export type StorageRepairKind =
  'wal-torn-tail' | 'wal-discarded' | 'snapshot-skipped' | 'stable-state-damaged' | 'stable-state-missing';

/** Every repair kind (the metric's label values). */
export const STORAGE_REPAIR_KINDS: readonly StorageRepairKind[] = [
  'wal-torn-tail',
  'wal-discarded',
  'snapshot-skipped',
  'stable-state-damaged',
  'stable-state-missing',
];

/** One repair recovery made. */
export interface StorageRepair {
  readonly kind: StorageRepairKind;
  /** The file the damage is in (for a discarded WAL: the segment where it was found). */
  readonly file: string;
  /** Byte offset in `file` where the damage starts (0 when the whole file is concerned). */
  readonly offset: number;
  /** Bytes dropped or ignored (the cut tail, the discarded segments, the skipped file). */
  readonly bytesLost: number;
  /** Why: the check that failed, in words. */
  readonly cause: string;
  /** What was lost and what replaces it, in words (e.g. "records after sequence number 41"). */
  readonly lost: string;
}

/** One line for an operator: kind, file, offset, bytes, cause and what was lost. */
export function describeRepair(r: StorageRepair): string {
  return `storage repair (${r.kind}): ${r.file} at byte ${r.offset}: ${r.cause}; dropped ${r.bytesLost} bytes: ${r.lost}`;
}
