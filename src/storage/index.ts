/** Durable storage: the Disk contract, the WAL, the stable-state file and snapshot files (pure: no `node:`). */
export { type Disk, type DiskCallback, DISK_NAME_BYTES_MAX, isValidDiskName } from './disk.js';
export { MemoryDisk, type MemoryDiskOptions } from './memory-disk.js';
export {
  BlockStoreError,
  checkBlockCreate,
  checkBlockRange,
  isValidFragmentName,
  type BlockCallback,
  type BlockReadCallback,
  type BlockStore,
  type BlockStoreErrorCode,
} from './block-store.js';
export { MemoryBlockStore, type MemoryBlockStoreOptions } from './memory-block-store.js';
export { SparseBytes } from './sparse-bytes.js';
export { OpSequencer, type OpStart } from './op-sequencer.js';
export { ByteFile } from './byte-file.js';
export {
  StorageError,
  WalCorruptionError,
  CorruptFileError,
  describeStorageFailure,
  type StorageErrorCode,
  type StorageFailureSite,
} from './storage-error.js';
export {
  type WalRecord,
  type SegmentScan,
  scanSegment,
  segmentName,
  parseSegmentName,
  encodeSegmentHeader,
  encodeRecord,
  recordBytes,
  SEGMENT_HEADER_BYTES,
  RECORD_HEADER_BYTES,
  WAL_USER_TYPE_MAX,
} from './wal-segment.js';
export { Wal, discardedWalRepair, type WalOptions, type WalRecovery, type WalStats, type WalCallback } from './wal.js';
export {
  StableStore,
  type StableState,
  STABLE_STATE_FILE,
  encodeStableState,
  decodeStableState,
} from './stable-store.js';
export {
  SnapshotStore,
  SnapshotWriter,
  type SnapshotMeta,
  type SnapshotHandle,
  snapshotFileName,
  SNAPSHOT_HEADER_BYTES,
} from './snapshot-store.js';
export { describeRepair, STORAGE_REPAIR_KINDS, type StorageRepair, type StorageRepairKind } from './storage-repair.js';
