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
/**
 * Messages queued on one peer's control lane before `send` refuses (backpressure). Control
 * traffic is small (Raft, pings, membership), so its queue is short in bytes: a deep control
 * queue would only hide a dead peer behind latency.
 */
export const PEER_CONTROL_QUEUE_MESSAGES_MAX: number = 4096;
/** Bytes queued on one peer's control lane before `send` refuses (room for a few Raft snapshots). */
export const PEER_CONTROL_QUEUE_BYTES_MAX: number = 16 * 1024 * 1024;
/** Messages queued on one peer's bulk lane before `send` refuses (DLM bursts are many small messages). */
export const PEER_BULK_QUEUE_MESSAGES_MAX: number = 16_384;
/**
 * Bytes queued on one peer's bulk lane before `send` refuses (volume data moves in MiBs): 16 MiB
 * is over 100 ms of loopback throughput. Measured (`src/node/bulk-lane.test.ts`, an unpaced
 * producer on a loaded 2-core machine): with 64 MiB the producing node's own heartbeats went out
 * 30-50 % late (its event loop stalled on the queued bytes); with 16 MiB they kept their period.
 */
export const PEER_BULK_QUEUE_BYTES_MAX: number = 16 * 1024 * 1024;
/**
 * Plaintext bytes one bulk-lane flush seals and writes in one event-loop turn before it yields
 * (`setImmediate`), so control I/O and timers run between bulk batches.
 */
export const PEER_BULK_FLUSH_BYTES_PER_TURN: number = 1024 * 1024;
/** Largest node count in one cluster. */
export const CLUSTER_NODES_MAX: number = 64;
/** Reconnect backoff: first delay and ceiling, in milliseconds. */
export const RECONNECT_DELAY_MS_MIN: number = 50;
export const RECONNECT_DELAY_MS_MAX: number = 2000;
/** A connection that has not finished its handshake within this time is closed. */
export const HANDSHAKE_TIMEOUT_MS: number = 5000;
/**
 * Proof that a peer's process is gone (`onPeerGone`) needs its connections closed by its kernel
 * and a refused connect, all seen within this window: a refusal answered later than this after
 * its connect started, or a loss older than this, proves nothing about the process now (our own
 * event loop may have stalled in between). A refused connect takes one round trip.
 */
export const PEER_GONE_EVIDENCE_WINDOW_MS: number = 500;
/**
 * Unidentified inbound connections (accepted, no valid hello yet) held at once; under pressure
 * the oldest is evicted for a newcomer (see `src/platform/handshake-budget.ts`).
 */
export const PENDING_HANDSHAKES_MAX: number = 64;
/** Handshakes claiming one configured peer (a valid hello, no proof yet) held at once: two per lane. */
export const PENDING_HANDSHAKES_PER_PEER_MAX: number = 4;
/** Unidentified inbound connections held at once from one host that is no configured peer's. */
export const PENDING_HANDSHAKES_PER_SOURCE_MAX: number = 16;

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
/** Simulator: messages in flight on one directed link's control lane. */
export const SIM_LINK_IN_FLIGHT_MAX: number = 10_000;
/** Simulator: messages in flight on one directed link's bulk lane. */
export const SIM_BULK_LINK_IN_FLIGHT_MAX: number = 40_000;

assert(FRAME_WIRE_BYTES_MAX > FRAME_PAYLOAD_BYTES_MAX, 'wire frame limit must exceed payload limit');
assert(PEER_CONTROL_QUEUE_BYTES_MAX >= FRAME_WIRE_BYTES_MAX, 'a control queue must hold at least one full frame');
assert(PEER_BULK_QUEUE_BYTES_MAX >= FRAME_WIRE_BYTES_MAX, 'a bulk queue must hold at least one full frame');
assert(PEER_BULK_QUEUE_BYTES_MAX >= PEER_CONTROL_QUEUE_BYTES_MAX, 'the bulk lane holds as many bytes as control');
assert(RECONNECT_DELAY_MS_MIN < RECONNECT_DELAY_MS_MAX, 'reconnect backoff bounds must be ordered');
assert(
  PEER_GONE_EVIDENCE_WINDOW_MS > 0 && PEER_GONE_EVIDENCE_WINDOW_MS < HANDSHAKE_TIMEOUT_MS,
  'gone evidence is fresher than a handshake deadline',
);
assert(
  PENDING_HANDSHAKES_PER_SOURCE_MAX < PENDING_HANDSHAKES_MAX,
  'one unknown host cannot fill the unidentified tier alone',
);
assert(WAL_BATCH_BYTES_MAX >= WAL_RECORD_BYTES_MAX, 'a batch must hold at least one maximal record');
assert(WAL_SEGMENT_BYTES_TARGET >= WAL_RECORD_BYTES_MAX, 'a segment must hold at least one maximal record');
assert(SIM_NODES_MAX <= CLUSTER_NODES_MAX, 'simulated clusters are clusters');

/** Raft: entries carried by one MsgApp (the decoder rejects more). */
export const RAFT_ENTRIES_PER_MESSAGE_MAX: number = 1024;
/** Raft: target size of the entries in one MsgApp, in bytes (one entry may exceed it alone). */
export const RAFT_MESSAGE_ENTRIES_BYTES_TARGET: number = 1024 * 1024;
/** Raft: largest payload of one proposed entry, in bytes. */
export const RAFT_ENTRY_BYTES_MAX: number = 1024 * 1024;
/** Raft: unacknowledged MsgApp messages in flight to one follower (flow control window). */
export const RAFT_INFLIGHT_MESSAGES_MAX: number = 256;
/** Raft: bytes of appended but uncommitted entries a leader accepts before refusing proposals. */
export const RAFT_UNCOMMITTED_BYTES_MAX: number = 64 * 1024 * 1024;
/** Raft: bytes of committed entries handed to the application in one Ready. */
export const RAFT_COMMITTED_BYTES_PER_READY_MAX: number = 16 * 1024 * 1024;
/** Raft: unstable (not yet persisted) entries a core holds; beyond this it refuses proposals. */
export const RAFT_UNSTABLE_ENTRIES_MAX: number = 65536;
/** Raft: outgoing messages buffered between two Ready batches; the excess is dropped (Raft tolerates loss). */
export const RAFT_OUTBOX_MESSAGES_MAX: number = 16384;
/** Raft: read-index requests waiting for a leadership confirmation (or a leader's answer). */
export const RAFT_READ_INDEX_PENDING_MAX: number = 4096;
/** Raft: bytes of the opaque context of one read-index request. */
export const RAFT_READ_CONTEXT_BYTES_MAX: number = 256;
/** Raft: heartbeat rounds whose send tick a leader remembers for its lease. */
export const RAFT_HEARTBEAT_ROUNDS_TRACKED_MAX: number = 1024;
/** Raft: largest snapshot sent in one MsgSnap, in bytes (chunked transfer is future work). */
export const RAFT_SNAPSHOT_BYTES_MAX: number = FRAME_PAYLOAD_BYTES_MAX - 256 * 1024;
/** Raft: votes one voter may hold (votequorum `votes`). */
export const RAFT_VOTES_PER_NODE_MAX: number = 255;
/** Raft: election timeout ceiling, in ticks (config validation). */
export const RAFT_ELECTION_TICKS_MAX: number = 10_000;

assert(
  RAFT_MESSAGE_ENTRIES_BYTES_TARGET + RAFT_ENTRY_BYTES_MAX < FRAME_PAYLOAD_BYTES_MAX,
  'a MsgApp at its target plus one maximal entry must fit a frame',
);
assert(RAFT_SNAPSHOT_BYTES_MAX > 0 && RAFT_SNAPSHOT_BYTES_MAX < FRAME_PAYLOAD_BYTES_MAX, 'a MsgSnap must fit a frame');
assert(RAFT_UNCOMMITTED_BYTES_MAX >= RAFT_ENTRY_BYTES_MAX, 'the uncommitted budget must admit one maximal entry');
assert(RAFT_COMMITTED_BYTES_PER_READY_MAX >= RAFT_ENTRY_BYTES_MAX, 'a Ready must carry at least one maximal entry');

/** KV state machine: longest key, in UTF-8 bytes (keys are non-empty, well-formed Unicode). */
export const KV_KEY_BYTES_MAX: number = 512;
/** KV state machine: largest value, in bytes. */
export const KV_VALUE_BYTES_MAX: number = 64 * 1024;
/** KV state machine: keys held at once; a put that would create one more returns `KV_TOO_MANY_KEYS`. */
export const KV_KEYS_MAX: number = 16_384;
/**
 * KV state machine: total key + value bytes held at once; a put past it returns `KV_STATE_TOO_LARGE`.
 * Small on purpose: a full KV snapshot must fit one Raft snapshot message (RAFT_SNAPSHOT_BYTES_MAX).
 */
export const KV_STATE_BYTES_MAX: number = 2 * 1024 * 1024;
/** KV state machine: most entries one range returns (a larger requested limit is clamped). */
export const KV_RANGE_ENTRIES_MAX: number = 1000;
/** KV state machine: a range stops adding entries once their key + value bytes pass this (it always returns at least one). */
export const KV_RANGE_BYTES_MAX: number = 1024 * 1024;

/** Linearizability checker: operations in one history (all partitions together). */
export const LIN_HISTORY_OPS_MAX: number = 1_000_000;
/** Linearizability checker: default search steps (model steps plus backtracks) before the verdict is 'unknown'. */
export const LIN_STEPS_DEFAULT: number = 20_000_000;
/** Linearizability checker: default memo-cache size (bitsets plus per-entry overhead), in bytes, before 'unknown'. */
export const LIN_CACHE_BYTES_DEFAULT: number = 256 * 1024 * 1024;

assert(KV_RANGE_BYTES_MAX >= KV_KEY_BYTES_MAX + KV_VALUE_BYTES_MAX, 'a range must fit at least one maximal entry');
// Per-entry snapshot overhead is a key length, a value length and three revisions: 4 + 4 + 3 * 8 bytes.
assert(
  KV_STATE_BYTES_MAX + KV_KEYS_MAX * 32 + 4096 <= RAFT_SNAPSHOT_BYTES_MAX,
  'a full KV state must fit one Raft snapshot',
);
assert(
  KV_VALUE_BYTES_MAX + KV_KEY_BYTES_MAX + 64 <= RAFT_ENTRY_BYTES_MAX,
  'a maximal KV command must fit one Raft entry',
);

/** Quorum: largest `expectedVotes` of one configuration side (every node at the vote ceiling). */
export const QUORUM_EXPECTED_VOTES_MAX: number = CLUSTER_NODES_MAX * RAFT_VOTES_PER_NODE_MAX;
/** Quorum: node ids in an `auto_tie_breaker` priority list. */
export const QUORUM_TIE_BREAKER_LIST_MAX: number = CLUSTER_NODES_MAX;
/** Quorum: longest last-man-standing window, in ticks (config validation). */
export const QUORUM_LMS_WINDOW_TICKS_MAX: number = 1_000_000;
/** Quorum: last-man-standing never proposes expected votes below this (two_node is the fencing layer's business). */
export const QUORUM_LMS_EXPECTED_VOTES_FLOOR: number = 2;

assert(
  QUORUM_LMS_EXPECTED_VOTES_FLOOR >= 2,
  'last-man-standing alone must never shrink a cluster to one vote (that is two_node plus fencing)',
);

/** Storage: disk operations submitted and not yet completed on one `Disk` (callers are bounded well below). */
export const DISK_OPS_PENDING_MAX: number = 1_000_000;
/** Storage: file descriptors a `FileDisk` keeps open; clean ones beyond this are closed (dirty ones never are). */
export const FILE_DISK_OPEN_FILES_MAX: number = 64;
/** Storage: the opaque blob in the stable-state file (beside term and vote), in bytes. */
export const STABLE_BLOB_BYTES_MAX: number = 64 * 1024;
/** Highest incarnation: the stable-state blob stores it as a u32 (a start adds one to the stored one). */
export const INCARNATION_MAX: number = 0xffff_ffff;
/** Storage: callers waiting on one WAL `flush` or one stable-state save before they are refused. */
export const STORAGE_WAITERS_MAX: number = 65536;
/** Storage: largest chunk a snapshot is written or read in, in bytes. */
export const SNAPSHOT_CHUNK_BYTES_MAX: number = 16 * 1024 * 1024;
/** Storage: payload bytes appended to the WAL and not yet durable before `append` refuses (backpressure). */
export const WAL_PENDING_BYTES_MAX: number = 64 * 1024 * 1024;

/** Block store: the unit of block addressing and of atomic (untorn) writes, in bytes. */
export const BLOCK_SECTOR_BYTES: number = 512;
/** Block store: largest fragment one block store holds, in bytes (a multiple of the sector). */
export const BLOCK_FRAGMENT_BYTES_MAX: number = 2 ** 40;
/** Block store: largest single read or write, in bytes (a multiple of the sector). */
export const BLOCK_IO_BYTES_MAX: number = 16 * 1024 * 1024;
/** Block store: fragments one block store holds (the file store keeps a descriptor open per fragment in use). */
export const BLOCK_FRAGMENTS_MAX: number = 256;
/** Block store: operations submitted and not yet completed on one block store (callers are bounded well below). */
export const BLOCK_OPS_PENDING_MAX: number = 65_536;

assert(BLOCK_SECTOR_BYTES > 0 && (BLOCK_SECTOR_BYTES & (BLOCK_SECTOR_BYTES - 1)) === 0, 'the sector is a power of two');
assert(BLOCK_IO_BYTES_MAX % BLOCK_SECTOR_BYTES === 0, 'the largest I/O is whole sectors');
assert(BLOCK_FRAGMENT_BYTES_MAX % BLOCK_SECTOR_BYTES === 0, 'the largest fragment is whole sectors');
assert(Number.isSafeInteger(BLOCK_FRAGMENT_BYTES_MAX), 'fragment offsets are safe integers');

/** Process runner: bytes of stdout, and separately of stderr, kept per process; the rest is dropped and flagged. */
export const PROCESS_OUTPUT_BYTES_MAX: number = 64 * 1024;
/** Process runner: largest stdin a process is given, in bytes (fence agents read a few key=value lines). */
export const PROCESS_STDIN_BYTES_MAX: number = 64 * 1024;
/** Fence configuration: devices in one topology. */
export const FENCE_DEVICES_MAX: number = 32;
/** Fence configuration: levels in one topology. */
export const FENCE_LEVELS_MAX: number = 8;
/** Fence configuration: options of one exec device. */
export const FENCE_OPTIONS_MAX: number = 64;
/** Fence configuration: bytes of one option value, plug or pid-file path. */
export const FENCE_OPTION_BYTES_MAX: number = 1024;
/** Fence configuration: extra tries per device per round. */
export const FENCE_DEVICE_RETRIES_MAX: number = 10;
/** Default extra tries per device per round (pacemaker's pcmk_off_retries is 2). */
export const FENCE_RETRIES_DEFAULT: number = 2;
/** Default bound of one exec agent run, ms (pacemaker's stonith-timeout is 60 s). */
export const FENCE_TIMEOUT_MS_DEFAULT: number = 60_000;
/** Default bound of one process agent run, ms (a local kill). */
export const FENCE_PROCESS_TIMEOUT_MS_DEFAULT: number = 5_000;
/** Longest per-node fence delay, ms. */
export const FENCE_DELAY_MS_MAX: number = 600_000;
/** Process runner: processes running at once on one node; a spawn beyond it fails with `PROCESS_LIMIT`. */
export const PROCESSES_RUNNING_MAX: number = 32;
/** Process runner: arguments one process is given. */
export const PROCESS_ARGS_MAX: number = 256;
/** Process runner: environment additions one process is given. */
export const PROCESS_ENV_ADDITIONS_MAX: number = 64;
/** Process runner: default wait between SIGTERM and SIGKILL when a process is timed out or killed, ms. */
export const PROCESS_KILL_GRACE_MS: number = 2000;
/** Process runner: longest timeout a spawn may ask for, ms (a day: fence agents take seconds to minutes). */
export const PROCESS_TIMEOUT_MS_MAX: number = 24 * 60 * 60 * 1000;

assert(PROCESS_KILL_GRACE_MS <= PROCESS_TIMEOUT_MS_MAX, 'the kill grace fits a timeout');

/**
 * Fence agents: bytes of an attempt's excerpt (the first lines of the agent's output), UTF-8,
 * whole characters. The fence ledger keeps it with every attempt: 128 (was 256) so that the
 * ledger's worst case (FENCE_LEDGER_BYTES_MAX) fits the membership snapshot.
 */
export const FENCE_EXCERPT_BYTES_MAX: number = 128;
/** Fence agents: bytes of each output stream read to build an excerpt (the rest of the capture is not decoded). */
export const FENCE_EXCERPT_SCAN_BYTES: number = 4096;

assert(
  FENCE_EXCERPT_BYTES_MAX >= 16 && FENCE_EXCERPT_SCAN_BYTES >= FENCE_EXCERPT_BYTES_MAX,
  'an excerpt scans at least what it keeps',
);

assert(WAL_PENDING_BYTES_MAX >= WAL_BATCH_BYTES_MAX, 'pending WAL bytes must hold at least one full batch');
assert(WAL_PENDING_RECORDS_MAX >= WAL_BATCH_RECORDS_MAX, 'pending WAL records must hold at least one full batch');

/** Simulator: trace lines kept in memory (the newest) for failure reports; the rest are hashed. */
export const SIM_TRACE_TAIL_LINES: number = 400;
/** Simulator: callbacks held for one paused node before further messages to it are dropped. */
export const SIM_PAUSE_HELD_MAX: number = 100_000;
/** Simulator: seeds in one `cohort sim --seeds` batch. */
export const SIM_BATCH_SEEDS_MAX: number = 1_000_000;
/** Simulator: worker threads in one batch. */
export const SIM_WORKERS_MAX: number = 64;
/** Simulator: violations recorded per run (the first one stops the run; a few more may follow). */
export const SIM_VIOLATIONS_MAX: number = 32;
/** Simulator: messages the proving (broadcast) workload broadcasts in one run. */
export const SIM_BROADCASTS_MAX: number = 256;

assert(SIM_PAUSE_HELD_MAX <= SIM_EVENTS_PENDING_MAX, 'held callbacks are a subset of pending events');

/**
 * Transport: a sender seals queued messages into AEAD records of about this many plaintext bytes
 * (one message always fits alone). Bigger records amortise cipher set-up; smaller ones let the
 * receiver start on a burst sooner.
 */
export const PEER_BATCH_BYTES_TARGET: number = 64 * 1024;
assert(PEER_BULK_FLUSH_BYTES_PER_TURN >= PEER_BATCH_BYTES_TARGET, 'a bulk turn writes at least one full batch');
/** Transport: how long a refused connection may linger to flush its refusal before it is destroyed. */
export const REFUSAL_LINGER_MS: number = 1000;

/** Requests (proposals and reads) waiting on one Raft node before it answers `BUSY`. */
export const RAFT_NODE_PENDING_REQUESTS_MAX: number = 65_536;

/** Config: largest config file read, in bytes. */
export const CONFIG_FILE_BYTES_MAX: number = 1024 * 1024;
/** Longest Unix socket path Linux accepts (sun_path is 108 bytes including the terminating NUL). */
export const UNIX_SOCKET_PATH_BYTES_MAX: number = 107;

/** Local API: largest frame body (one encoded API frame), in bytes. */
export const API_FRAME_BYTES_MAX: number = 1024 * 1024;
/** Local API: clients connected at once; more are refused with `OVERLOADED`. */
export const API_CLIENTS_MAX: number = 64;
/** Local API: requests one client may have in flight; more are answered `OVERLOADED`. */
export const API_CLIENT_REQUESTS_MAX: number = 64;
/** Local API: streams one client may have open; more are answered `OVERLOADED`. */
export const API_CLIENT_STREAMS_MAX: number = 16;
/** Local API: bytes queued for one client before its streams are closed with `SLOW_CONSUMER`. */
export const API_CLIENT_QUEUE_BYTES_MAX: number = 4 * 1024 * 1024;
/**
 * Local API: a client with no request in flight and no stream open for this long is closed (an
 * `IDLE` error, then the connection ends); subscriptions are never idle. When every slot is taken,
 * the client idle longest (at least `API_CLIENT_EVICT_IDLE_MS`) is closed the same way to make room.
 */
export const API_CLIENT_IDLE_MS: number = 60_000;
/** Local API: a client idle at least this long may lose its slot to a new client when all are taken. */
export const API_CLIENT_EVICT_IDLE_MS: number = 1000;
/** Local API: a client that sends no hello within this time is disconnected. */
export const API_HELLO_TIMEOUT_MS: number = 5000;
/** Local API: a pulled stream waits at most this long for a slow client to drain before it is closed. */
export const API_STREAM_STALL_MS: number = 5000;
/** Local API: nesting depth of params, results and stream items. */
export const API_DATA_DEPTH_MAX: number = 32;
/** Local API: stream items a client buffers before it stops reading the socket (backpressure). */
export const API_CLIENT_STREAM_ITEMS_MAX: number = 1024;

assert(API_CLIENT_EVICT_IDLE_MS < API_CLIENT_IDLE_MS, 'eviction takes clients that are not yet timed out');

/** Metrics HTTP: connections at once (scrapers and probes); more are closed at once and counted. */
export const HTTP_CONNECTIONS_MAX: number = 64;
/** Metrics HTTP: a connection sending nothing (no request, or idle between requests) is closed after this. */
export const HTTP_IDLE_MS: number = 10_000;
/** Metrics HTTP: the whole request head must arrive within this (node:http `headersTimeout`). */
export const HTTP_HEADERS_TIMEOUT_MS: number = 5000;
/** Metrics HTTP: a whole request must arrive within this (node:http `requestTimeout`). */
export const HTTP_REQUEST_TIMEOUT_MS: number = 10_000;
/** Metrics HTTP: an idle keep-alive connection is closed after this (node:http `keepAliveTimeout`). */
export const HTTP_KEEP_ALIVE_MS: number = 5000;
assert(
  HTTP_HEADERS_TIMEOUT_MS <= HTTP_REQUEST_TIMEOUT_MS && HTTP_KEEP_ALIVE_MS <= HTTP_IDLE_MS,
  'node:http needs headersTimeout <= requestTimeout; keep-alive ends before the idle timeout',
);
/** Listeners: a refused connection is logged at most once per this window, with the count of the others. */
export const REFUSAL_LOG_WINDOW_MS: number = 10_000;

assert(
  API_CLIENT_QUEUE_BYTES_MAX >= 2 * API_FRAME_BYTES_MAX,
  'a client queue must hold a full frame plus the error that closes a stream',
);
assert(API_FRAME_BYTES_MAX <= FRAME_PAYLOAD_BYTES_MAX, 'API frames use the shared frame decoder');

/** Membership: longest configured node name, in UTF-8 bytes (the config accepts 63 characters). */
export const MEMBERSHIP_NODE_NAME_BYTES_MAX: number = 63;
/** Membership: longest configured node address (`host:port`), in UTF-8 bytes. */
export const MEMBERSHIP_NODE_ADDRESS_BYTES_MAX: number = 300;
/** Membership: longest free-text note in an operator's fail or quarantine command, in UTF-8 bytes. */
export const MEMBERSHIP_NOTE_BYTES_MAX: number = 256;
/** Membership: events kept for readers (the newest); older ones answer `GAP`. */
export const MEMBERSHIP_EVENTS_RETAINED_MAX: number = 1024;
/** Membership: encoded bytes of the retained events; the oldest go first once past it. */
export const MEMBERSHIP_EVENTS_RETAINED_BYTES_MAX: number = 184 * 1024;
/** Membership: largest encoded event, in bytes (a view of every node plus a change of each). */
export const MEMBERSHIP_EVENT_BYTES_MAX: number = 8 * 1024;
/** Membership: most events one `eventsFrom` call returns (a larger limit is clamped). */
export const MEMBERSHIP_EVENTS_READ_MAX: number = 256;
/**
 * Membership: largest snapshot of the membership state machine, in bytes. It shares one Raft
 * snapshot message with the other machines of the mux (the KV store takes about 2.6 MB at most).
 * 1270 KiB (what the Raft snapshot leaves beside the KV store) since the fence ledger (finished records keep 8 attempts) and the recovery table joined it (was 1 MiB).
 */
export const MEMBERSHIP_SNAPSHOT_BYTES_MAX: number = 1272 * 1024;
/** Groups: most service groups at once (a group exists while it has members). */
export const GROUPS_MAX: number = 32;
/**
 * Groups: groups that lost their last member whose retained messages the table keeps (the oldest
 * emptied goes first), for members a snapshot carries past the group's end (docs/groups.md).
 */
export const GROUPS_EMPTIED_MAX: number = 8;
/** Groups: message bytes the emptied groups keep together (one group's worth; the oldest emptied goes first). */
export const GROUPS_EMPTIED_BYTES_MAX: number = 8 * 1024;
/** Groups: messages the emptied groups keep together (one group's worth). */
export const GROUPS_EMPTIED_MESSAGES_MAX: number = 128;
/** Groups: longest group name, in UTF-8 bytes. */
export const GROUP_NAME_BYTES_MAX: number = 64;
/** Groups: largest group message payload, in bytes (a message is one log entry). */
export const GROUP_MESSAGE_BYTES_MAX: number = 64 * 1024;
/** Groups: highest level a member may give (levels order recovery: lower levels go first). */
export const GROUP_LEVEL_MAX: number = 255;
/** Groups: longest barrier name, in UTF-8 bytes. */
export const BARRIER_NAME_BYTES_MAX: number = 64;
/** Groups: barriers one group may have pending at once; more are refused. */
export const GROUP_BARRIERS_PENDING_MAX: number = 8;
/**
 * Groups: message bytes a group keeps in the state (and snapshots), newest first across views, so
 * a member that catches up through a snapshot still delivers what it missed (docs/groups.md).
 */
export const GROUP_RETAINED_BYTES_MAX: number = 8 * 1024;
/** Groups: messages a group keeps (see `GROUP_RETAINED_BYTES_MAX`). */
export const GROUP_RETAINED_MESSAGES_MAX: number = 128;
/** Groups: names of barriers reached in the current view that a group remembers (late arrivals stay duplicates). */
export const GROUP_BARRIERS_REACHED_KEPT: number = 32;
/**
 * Groups: bound of the encoded group table (every group full: name, view, members with
 * incarnation and level, pending barriers with their arrivals).
 */
export const GROUP_TABLE_BYTES_MAX: number =
  GROUPS_MAX *
    (4 +
      GROUP_NAME_BYTES_MAX +
      8 +
      8 +
      1 +
      CLUSTER_NODES_MAX * 11 +
      1 +
      GROUP_BARRIERS_PENDING_MAX * (4 + BARRIER_NAME_BYTES_MAX + 1 + CLUSTER_NODES_MAX * 2) +
      1 +
      GROUP_BARRIERS_REACHED_KEPT * (1 + BARRIER_NAME_BYTES_MAX) +
      2 +
      GROUP_RETAINED_BYTES_MAX +
      GROUP_RETAINED_MESSAGES_MAX * 18) +
  1 +
  GROUPS_EMPTIED_MAX * (4 + GROUP_NAME_BYTES_MAX + 2) +
  GROUPS_EMPTIED_BYTES_MAX +
  GROUPS_EMPTIED_MESSAGES_MAX * 18 +
  16;
/** DLM: longest lockspace name, in UTF-8 bytes (its group is `dlm:NAME`, within the group name bound). */
export const DLM_LOCKSPACE_NAME_BYTES_MAX: number = 56;
/** DLM: longest resource name, in UTF-8 bytes (Linux `DLM_RESNAME_MAXLEN`). */
export const DLM_RESOURCE_NAME_BYTES_MAX: number = 64;
/** DLM: value block bytes of a lockspace (Linux userspace lockspaces use 32). */
export const DLM_LVB_BYTES_DEFAULT: number = 32;
/** DLM: largest value block a lockspace may choose (a multiple of 8). */
export const DLM_LVB_BYTES_MAX: number = 256;
/** DLM: resource names in one directory `claim` message (a rebuild sends more messages for more). */
export const DLM_CLAIM_NAMES_MAX: number = 1024;
/** DLM: locks (process copies) one node holds in one lockspace; a request beyond it is refused `LIMIT`. */
export const DLM_LOCKS_PER_NODE_MAX: number = 2_000_000;
/** DLM: resources one node masters in one lockspace; a new resource beyond it (after dropping unused ones) is refused `LIMIT`. */
export const DLM_RESOURCES_PER_NODE_MAX: number = 2_000_000;
/** DLM: operations one node may have in flight to one peer; more are refused `LIMIT` (backpressure). */
export const DLM_OPS_IN_FLIGHT_PER_PEER_MAX: number = 16_384;
/** DLM: how long a master keeps an unused resource (and its directory entry) before dropping it, ms (Linux `toss_secs` 10 s). */
export const DLM_TOSS_MS: number = 10_000;
/** DLM: master lookups a node caches per lockspace (oldest dropped first). */
export const DLM_MASTER_CACHE_MAX: number = 1_000_000;
/** DLM: directory messages from a newer lockspace generation held until this node applies it. */
export const DLM_FUTURE_MESSAGES_MAX: number = 65_536;
/** DLM: lockspaces one node may join. */
export const DLM_LOCKSPACES_MAX: number = 16;
/** Fencing: longest fence device name, in UTF-8 bytes. */
export const FENCE_DEVICE_NAME_BYTES_MAX: number = 64;
/** Fencing: longest request reason kept in a fence record, in UTF-8 bytes (clipped deterministically). */
export const FENCE_REASON_BYTES_MAX: number = 256;
/** Fencing: longest operator name in a fence confirmation, in UTF-8 bytes. */
export const FENCE_OPERATOR_BYTES_MAX: number = 64;
/**
 * Fencing: attempts a pending fence record keeps (the newest; older ones are counted as dropped).
 * One round of the topology must fit (`topologyProblems` checks it), so the scheduler always sees
 * every attempt of the current round.
 */
export const FENCE_ATTEMPTS_KEPT: number = 16;
/** Fencing: attempts a finished record keeps in the history (the newest: the success and what failed before it). */
export const FENCE_HISTORY_ATTEMPTS_KEPT: number = 8;
/** Fencing: finished fence records kept (the oldest finished is dropped first); pending ones are always kept. */
export const FENCE_HISTORY_KEPT: number = 64;
/** Fencing: unfence entries a finished record keeps (the newest). */
export const FENCE_UNFENCE_KEPT: number = 4;
/** Fencing: first pause before a new round once every level failed, in ms (doubles per round). */
export const FENCE_ROUND_BACKOFF_MS: number = 5000;
/** Fencing: longest pause between rounds, in ms. */
export const FENCE_ROUND_BACKOFF_MS_MAX: number = 60_000;
/** Fencing: pause before retrying a device whose attempt did not succeed, in ms. */
export const FENCE_RETRY_DELAY_MS: number = 1000;
/** Fencing: bound of one encoded attempt (executor, level, device, agent, action, result, exit code, duration, excerpt, time, round). */
export const FENCE_ATTEMPT_BYTES_MAX: number =
  2 + 1 + (1 + FENCE_DEVICE_NAME_BYTES_MAX) + 3 + 2 + 4 + (2 + FENCE_EXCERPT_BYTES_MAX) + 8 + 4;
/** Fencing: bound of one encoded fence record without its attempts (key, request, round, outcome, unfence entries). */
export const FENCE_RECORD_FIXED_BYTES_MAX: number =
  2 +
  8 +
  (2 + FENCE_REASON_BYTES_MAX) +
  8 +
  4 +
  4 +
  1 +
  (1 + 1 + 1 + (1 + FENCE_DEVICE_NAME_BYTES_MAX) + 1 + (1 + FENCE_OPERATOR_BYTES_MAX) + 9 + 8) +
  1 +
  FENCE_UNFENCE_KEPT * (1 + FENCE_DEVICE_NAME_BYTES_MAX + 1 + 8);
/** Fencing: bound of the encoded fence ledger (one pending record per configured node, plus the history). */
export const FENCE_LEDGER_BYTES_MAX: number =
  16 +
  CLUSTER_NODES_MAX * (FENCE_RECORD_FIXED_BYTES_MAX + FENCE_ATTEMPTS_KEPT * FENCE_ATTEMPT_BYTES_MAX) +
  FENCE_HISTORY_KEPT * (FENCE_RECORD_FIXED_BYTES_MAX + FENCE_HISTORY_ATTEMPTS_KEPT * FENCE_ATTEMPT_BYTES_MAX);

assert(
  FENCE_HISTORY_ATTEMPTS_KEPT >= 1 && FENCE_HISTORY_ATTEMPTS_KEPT <= FENCE_ATTEMPTS_KEPT,
  'a finished record keeps its last attempt',
);
assert(FENCE_ROUND_BACKOFF_MS <= FENCE_ROUND_BACKOFF_MS_MAX, 'fence round backoff bounds are ordered');
assert(FENCE_ATTEMPTS_KEPT <= 255 && FENCE_UNFENCE_KEPT <= 255 && FENCE_LEVELS_MAX <= 255, 'fence counts fit a byte');
assert(FENCE_HISTORY_KEPT <= 0xffff, 'the fence history count fits a u16');

/**
 * Recovery: rounds the recovery table holds at once: one per group with members (`GROUPS_MAX`),
 * plus groups whose members all left while their round still waits for a fence (the round stays,
 * so a group created again under that name cannot start before the fence). The membership machine
 * refuses a join that would create a group while the table is full (`RecoveryTable.admitsNewGroup`).
 */
export const RECOVERY_ROUNDS_MAX: number = 2 * GROUPS_MAX;
/**
 * Recovery: fences one round may wait for. One per node: a newer incarnation is admitted only in
 * the entry that records the older one's fence, so a node has at most one fence pending.
 */
export const RECOVERY_FENCES_PER_ROUND_MAX: number = CLUSTER_NODES_MAX;
/** Recovery: longest reason of a `recovery-evict` (the leader's timeout decision), in UTF-8 bytes. */
export const RECOVERY_REASON_BYTES_MAX: number = 256;
/** Recovery: how long the leader waits for a member's `stopped` or `started` before proposing `recovery-evict`. */
export const RECOVERY_MEMBER_TIMEOUT_MS: number = 30_000;
/**
 * Recovery: bound of the encoded recovery table (every round full: name, level, generation,
 * phase, indexes, members with incarnation and report, awaited fences with their index).
 */
export const RECOVERY_TABLE_BYTES_MAX: number =
  8 +
  1 +
  RECOVERY_ROUNDS_MAX *
    (1 +
      GROUP_NAME_BYTES_MAX +
      1 +
      8 +
      1 +
      8 +
      8 +
      1 +
      CLUSTER_NODES_MAX * 11 +
      1 +
      RECOVERY_FENCES_PER_ROUND_MAX * 18);
/** Failure detector: failure decisions per node remembered to recognise a fail/rejoin cycle. */
export const DETECTOR_FAILURES_REMEMBERED_MAX: number = 8;
/** Failure detector: consecutive ticks in which the leader's own lag holds back accusations. */
export const DETECTOR_SUPPRESSED_TICKS_MAX: number = 4;

assert(
  MEMBERSHIP_EVENT_BYTES_MAX * 2 <= MEMBERSHIP_EVENTS_RETAINED_BYTES_MAX,
  'the event ring must hold at least two maximal events',
);
assert(
  MEMBERSHIP_EVENTS_RETAINED_BYTES_MAX + 64 * 1024 + GROUP_TABLE_BYTES_MAX + FENCE_LEDGER_BYTES_MAX <=
    MEMBERSHIP_SNAPSHOT_BYTES_MAX,
  'retained events, the node table, the group table and the fence ledger must fit a membership snapshot',
);
assert(
  MEMBERSHIP_EVENTS_RETAINED_BYTES_MAX +
    64 * 1024 +
    GROUP_TABLE_BYTES_MAX +
    FENCE_LEDGER_BYTES_MAX +
    RECOVERY_TABLE_BYTES_MAX <=
    MEMBERSHIP_SNAPSHOT_BYTES_MAX,
  'retained events, the node table, the group table, the fence ledger and the recovery table fit one membership snapshot (format 5 holds them all)',
);
assert(RECOVERY_ROUNDS_MAX <= 255 && RECOVERY_FENCES_PER_ROUND_MAX <= 255, 'recovery counts are encoded as u8');
assert(
  MEMBERSHIP_SNAPSHOT_BYTES_MAX + KV_STATE_BYTES_MAX + KV_KEYS_MAX * 32 + 8192 <= RAFT_SNAPSHOT_BYTES_MAX,
  'membership and KV snapshots must fit one Raft snapshot together',
);
assert(MEMBERSHIP_EVENTS_READ_MAX <= MEMBERSHIP_EVENTS_RETAINED_MAX, 'a read never asks for more than is kept');

/** Cluster node: proposals (local and forwarded) one node keeps waiting at once; more are refused `BUSY`. */
export const CLUSTER_REQUESTS_PENDING_MAX: number = 4096;
/** Cluster node: results of the newest applied entries kept so a forwarder can collect its own. */
export const CLUSTER_APPLY_RESULTS_RETAINED: number = 1024;

/**
 * DLM reliable link (`src/dlm/reliable-link.ts`): largest window, in unacknowledged frames per
 * peer; also the bound of the receiver's hold-back buffer of out-of-order frames.
 */
export const LINK_WINDOW_FRAMES_MAX: number = 1024;
/** DLM reliable link: most messages packed into one frame (the frame validator's array bound). */
export const LINK_BATCH_MESSAGES_MAX: number = 256;
/** DLM reliable link: most messages queued per peer beyond the window before `send` refuses. */
export const LINK_QUEUE_MESSAGES_MAX: number = 65_536;
