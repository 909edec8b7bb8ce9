/**
 * The descriptor budget: how many connections each listening socket may hold so that a flood on
 * one of them can never take the descriptors the node needs to stay in its cluster.
 *
 * The daemon learns its open-file limit once at start (`readOpenFileLimit`: the soft "Max open
 * files" of /proc/self/limits on Linux, after Node raised it to the hard limit; elsewhere
 * `FD_LIMIT_FALLBACK`) and calls `fdBudget`. The budget reserves, before any listener gets a
 * descriptor:
 *
 * - `runtime`: Node's own (stdio, epoll, eventfds, the libuv pipes, the log) and the lock file;
 * - `storage`: the WAL, stable-state and snapshot files (`FILE_DISK_OPEN_FILES_MAX`), every
 *   block-store fragment (`BLOCK_FRAGMENTS_MAX`), and the short-lived ones (a directory opened
 *   for fsync, a fragment being created, a snapshot being written);
 * - `peerOutbound`: the connections this node dials, one per lane (control, bulk) per peer;
 * - `margin`: whatever else opens briefly (a fence agent's pipes, a DNS lookup, a config read).
 *
 * What is left is split between the listeners. Each has a wanted cap (used when the limit is
 * ample) and a minimum (what it needs to do its job at all); when the limit lies between, every
 * cap gets its minimum plus the same share of the rest. The peer listener's cap
 * (`peerConnectionsMax` of the transport) always holds the inbound lanes of every peer (twice, for
 * a restarted peer replacing its old ones), the handshakes claiming each peer and `peerPending`
 * unidentified connections, so with the outbound lanes the node's own peers have descriptors no
 * client can take. Below the sum of the reserves and the minimum caps the daemon must not
 * start: `fdBudget` answers `ok: false` with the one line naming the limit to raise.
 *
 * Pure except `readOpenFileLimit`, which reads a file once.
 */
import { readFileSync } from 'node:fs';
import { assert } from '../lib/assert.js';
import {
  API_CLIENTS_MAX,
  BLOCK_FRAGMENTS_MAX,
  FILE_DISK_OPEN_FILES_MAX,
  HTTP_CONNECTIONS_MAX,
  PENDING_HANDSHAKES_MAX,
  PENDING_HANDSHAKES_PER_PEER_MAX,
} from '../constants.js';
import { peerConnectionsMax } from '../platform/tcp-transport-config.js';

/** Descriptors of the Node runtime itself (a running 3-node daemon holds about 30 in all). */
export const FD_RUNTIME_RESERVE = 32;
/** Short-lived storage descriptors beside the cached ones: directory fsyncs, a fragment being created, a snapshot temp. */
export const FD_STORAGE_TRANSIENT = 8;
/** Descriptors kept free for anything else that opens briefly. */
export const FD_MARGIN = 64;
/** Lanes per peer (control and bulk); each is one connection in and one out. */
export const PEER_LANES = 2;
/** The limit assumed where /proc/self/limits cannot be read (not Linux): the common default soft limit. */
export const FD_LIMIT_FALLBACK = 1024;

/** Fewest connections the HTTP endpoint may be capped at: a scraper and a probe, twice over. */
export const HTTP_CONNECTIONS_MIN = 4;
/** Fewest API client slots: the CLI and a few tools. */
export const API_CLIENTS_MIN = 8;
/** Unidentified peer connections (no valid hello yet), wanted and at least (the handshake budget's silent tier). */
export const PEER_PENDING_MAX = PENDING_HANDSHAKES_MAX;
export const PEER_PENDING_MIN = 4;

/** Connections each listening socket may hold at once (`server.maxConnections`). */
export interface ListenerCaps {
  /** The metrics/healthz HTTP port. */
  readonly http: number;
  /** API client slots (hello done or pending): the `ApiServer`'s `clientsMax`. */
  readonly apiClients: number;
  /**
   * Connections on the API socket: the slots plus refusals still flushing their `OVERLOADED`
   * frame (`ApiServer`'s `connectionsMax`); beyond it a connection is closed at once.
   */
  readonly apiConnections: number;
  /** Peer connections still in their handshake (unauthenticated), at most. */
  readonly peerPending: number;
  /** The peer port in all (`server.maxConnections` of the peer listener; see the file comment). */
  readonly peerConnections: number;
}

/** Where the descriptors go. `total` never exceeds `limit`. */
export interface FdBudget {
  readonly limit: number;
  readonly peers: number;
  readonly reserved: {
    readonly runtime: number;
    readonly storage: number;
    readonly peerOutbound: number;
    readonly margin: number;
  };
  readonly caps: ListenerCaps;
  /** Reserves plus caps: the most descriptors the node holds. */
  readonly total: number;
}

/** `fdBudget`'s answer: the budget, or why the limit is too low (one line) and what it needs. */
export type FdBudgetResult =
  | { readonly ok: true; readonly budget: FdBudget }
  | { readonly ok: false; readonly needed: number; readonly wanted: number; readonly message: string };

/** Refusals flushing an `OVERLOADED` frame beside `clients` API slots. */
function apiRefusing(clients: number): number {
  return Math.max(2, Math.floor(clients / 4));
}

function capsOf(http: number, apiClients: number, peerPending: number, peers: number): ListenerCaps {
  return {
    http,
    apiClients,
    apiConnections: apiClients + apiRefusing(apiClients),
    peerPending,
    peerConnections: peerConnectionsMax(peers, {
      pendingHandshakesMax: peerPending,
      pendingHandshakesPerPeerMax: PENDING_HANDSHAKES_PER_PEER_MAX,
    }),
  };
}

function capsTotal(c: ListenerCaps): number {
  return c.http + c.apiConnections + c.peerConnections;
}

/**
 * The budget for an open-file `limit` (`Infinity` when unlimited) and a cluster of `peers` other
 * nodes. Monotone: a larger limit never gives a smaller cap.
 */
export function fdBudget(limit: number, peers: number): FdBudgetResult {
  assert(limit > 0, 'the open-file limit is positive');
  assert(Number.isInteger(peers) && peers >= 0, 'peers is a count');
  const reserved = {
    runtime: FD_RUNTIME_RESERVE,
    storage: FILE_DISK_OPEN_FILES_MAX + BLOCK_FRAGMENTS_MAX + FD_STORAGE_TRANSIENT,
    peerOutbound: PEER_LANES * peers,
    margin: FD_MARGIN,
  };
  const fixed = reserved.runtime + reserved.storage + reserved.peerOutbound + reserved.margin;
  const least = capsOf(HTTP_CONNECTIONS_MIN, API_CLIENTS_MIN, PEER_PENDING_MIN, peers);
  const most = capsOf(HTTP_CONNECTIONS_MAX, API_CLIENTS_MAX, PEER_PENDING_MAX, peers);
  const needed = fixed + capsTotal(least);
  // What the node's own peers hold whatever the caps: outbound lanes, inbound lanes and their claims.
  const peerShare = reserved.peerOutbound + least.peerConnections - least.peerPending;
  const wanted = fixed + capsTotal(most);
  if (limit < needed)
    return {
      ok: false,
      needed,
      wanted,
      message:
        `the open-file limit (RLIMIT_NOFILE) is ${limit}, too low for this node: it needs at least ${needed} descriptors ` +
        `(${reserved.storage} storage, ${peerShare} for its ${peers} peers' lanes and handshakes, ${reserved.runtime + reserved.margin} runtime and margin, ` +
        `${capsTotal(least) - peerShare + reserved.peerOutbound} for the smallest listener caps); raise the limit (ulimit -n, LimitNOFILE= in a systemd unit) to at least ${needed}, ${wanted} for full caps`,
    };
  // Each cap gets its minimum plus the same fraction of what it wants beyond it.
  const fraction = Math.min(1, (limit - needed) / (wanted - needed));
  const scale = (lo: number, hi: number): number => lo + Math.floor((hi - lo) * fraction);
  const caps = capsOf(
    scale(HTTP_CONNECTIONS_MIN, HTTP_CONNECTIONS_MAX),
    scale(API_CLIENTS_MIN, API_CLIENTS_MAX),
    scale(PEER_PENDING_MIN, PEER_PENDING_MAX),
    peers,
  );
  const total = fixed + capsTotal(caps);
  assert(total <= limit && total >= needed, 'the budget fits the limit');
  return { ok: true, budget: { limit, peers, reserved, caps, total } };
}

/**
 * The soft "Max open files" limit in the text of /proc/<pid>/limits: a count, `Infinity` for
 * "unlimited", or undefined when the line is missing or unreadable.
 */
export function parseOpenFileLimit(text: string): number | undefined {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
  const soft = m?.[1];
  if (soft === undefined) return undefined;
  if (soft === 'unlimited') return Infinity;
  const n = Number(soft);
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** This process's open-file limit and where it came from (`FD_LIMIT_FALLBACK` when not on Linux or unreadable). */
export function readOpenFileLimit(): { readonly limit: number; readonly source: string } {
  try {
    const limit = parseOpenFileLimit(readFileSync('/proc/self/limits', 'utf8'));
    if (limit !== undefined) return { limit, source: '/proc/self/limits' };
  } catch {
    // Not Linux (or no /proc): fall through to the conservative default.
  }
  return { limit: FD_LIMIT_FALLBACK, source: 'default' };
}
