/**
 * CRC32C (Castagnoli), the checksum on every WAL record, snapshot and frame that needs one.
 * Backed by `@node-rs/crc32` (hardware CRC, about 5 GB/s); a pure function of its input.
 */
import { crc32c as nativeCrc32c } from '@node-rs/crc32';

/** CRC32C of `data`, continuing from `initial` (pass a previous result to checksum in pieces). */
export function crc32c(data: Uint8Array, initial = 0): number {
  return nativeCrc32c(data, initial) >>> 0;
}
