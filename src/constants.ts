/**
 * Named limits and defaults (STYLE.md rule 5). Every bounded collection, frame and window in
 * cohort takes its bound from here; relationships between limits are asserted at load so a bad
 * edit fails at start-up, not in production.
 */
import { assert } from './lib/assert.js';

/** Largest encoded peer message (one frame's plaintext), in bytes. */
export const FRAME_PAYLOAD_BYTES_MAX: number = 4 * 1024 * 1024;
/** Largest frame on the wire: payload plus header and authentication tag. */
export const FRAME_WIRE_BYTES_MAX: number = FRAME_PAYLOAD_BYTES_MAX + 64;
/** Messages queued for one peer before `send` refuses (backpressure). */
export const PEER_SEND_QUEUE_MESSAGES_MAX: number = 4096;
/** Bytes queued for one peer before `send` refuses. */
export const PEER_SEND_QUEUE_BYTES_MAX: number = 64 * 1024 * 1024;
/** Largest node count in one cluster. */
export const CLUSTER_NODES_MAX: number = 64;
/** Reconnect backoff: first delay and ceiling, in milliseconds. */
export const RECONNECT_DELAY_MS_MIN: number = 50;
export const RECONNECT_DELAY_MS_MAX: number = 2000;
/** A connection that has not finished its handshake within this time is closed. */
export const HANDSHAKE_TIMEOUT_MS: number = 5000;
/** Unauthenticated inbound connections held at once (the rest are refused). */
export const PENDING_HANDSHAKES_MAX: number = 64;

/** Largest single WAL record payload, in bytes. */
export const WAL_RECORD_BYTES_MAX: number = 8 * 1024 * 1024;
/** A WAL segment is closed and a new one started beyond this size, in bytes. */
export const WAL_SEGMENT_BYTES_TARGET: number = 64 * 1024 * 1024;
/** Records accepted into one group commit before the batch is cut. */
export const WAL_BATCH_RECORDS_MAX: number = 16384;
/** Bytes accepted into one group commit before the batch is cut. */
export const WAL_BATCH_BYTES_MAX: number = 16 * 1024 * 1024;
/** Records waiting for a group commit before `append` refuses (backpressure). */
export const WAL_PENDING_RECORDS_MAX: number = 65536;
/** Largest snapshot file, in bytes. */
export const SNAPSHOT_BYTES_MAX: number = 1024 * 1024 * 1024;

/** Simulator: nodes in one simulated cluster. */
export const SIM_NODES_MAX: number = 16;
/** Simulator: events in the scheduler queue before the run aborts as runaway. */
export const SIM_EVENTS_PENDING_MAX: number = 1_000_000;
/** Simulator: messages in flight on one directed link. */
export const SIM_LINK_IN_FLIGHT_MAX: number = 10_000;

assert(FRAME_WIRE_BYTES_MAX > FRAME_PAYLOAD_BYTES_MAX, 'wire frame limit must exceed payload limit');
assert(PEER_SEND_QUEUE_BYTES_MAX >= FRAME_WIRE_BYTES_MAX, 'a peer queue must hold at least one full frame');
assert(RECONNECT_DELAY_MS_MIN < RECONNECT_DELAY_MS_MAX, 'reconnect backoff bounds must be ordered');
assert(WAL_BATCH_BYTES_MAX >= WAL_RECORD_BYTES_MAX, 'a batch must hold at least one maximal record');
assert(WAL_SEGMENT_BYTES_TARGET >= WAL_RECORD_BYTES_MAX, 'a segment must hold at least one maximal record');
assert(SIM_NODES_MAX <= CLUSTER_NODES_MAX, 'simulated clusters are clusters');
