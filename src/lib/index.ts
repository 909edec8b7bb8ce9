/** Foundation library shared by every layer: no I/O, no clocks, no globals. */
export { assert, assertInt, assertNever, defined, AssertionError } from './assert.js';
export { CohortError, DecodeError, ok, err, type Result } from './errors.js';
export { Prng } from './prng.js';
export {
  type Brand,
  type NodeId,
  type Incarnation,
  type Term,
  type LogIndex,
  type ViewId,
  type FencingToken,
  NODE_ID_MAX,
  nodeId,
  incarnation,
  term,
  logIndex,
  viewId,
  fencingToken,
} from './ids.js';
export { BoundedQueue, Ring } from './queue.js';
export { crc32c } from './checksum.js';
export { ByteReader, ByteWriter } from './bytes.js';
