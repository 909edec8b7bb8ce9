/**
 * `HandshakeBudget`: which unauthenticated inbound connections `TcpTransport` holds, so that a
 * flood of idle or hostile connections to the peer port can neither exhaust the process's file
 * descriptors nor keep a configured peer from connecting.
 *
 * An inbound connection is, until authenticated, in one of two tiers:
 *
 * - **unidentified**: accepted, no valid hello yet. At most `pendingHandshakesMax` at once. When
 *   the tier is full, a new connection evicts the oldest unidentified one that has already had a
 *   full event-loop poll phase to deliver its hello (a real peer sends its hello the moment it
 *   connects, so by then it has left this tier); when every held one is that new, the newcomer
 *   is refused instead. So an idle flood churns through the tier while a peer that speaks at once
 *   gets through, and a listener's accept batch (up to the listen backlog in one turn) can never
 *   evict a connection before its first bytes were read.
 * - **claimed**: sent a hello that names a configured peer, this node's id, our cluster name and
 *   a known lane, and waits for the proof. At most `pendingHandshakesPerPeerMax` per claimed
 *   peer; a further claim evicts that peer's oldest claim. Flooding the unidentified tier never
 *   touches this tier, and claims for one peer never crowd out another's.
 *
 * Known-address priority: a connection from a configured peer's host (a "known source") is never
 * evicted to make room for one from an unknown source, and a claim from the claimed peer's own
 * configured host is never evicted by a claim from elsewhere. Per-source limit: one unknown
 * source holds at most `pendingHandshakesPerSourceMax` unidentified connections; beyond that its
 * newcomer evicts its own oldest one (same age rule), never another source's. (On one host,
 * as in a loopback cluster, every source is known: the age rule above is what protects peers.)
 *
 * Every connection is also bounded in time by the handshake deadline (`handshakeTimeoutMs`).
 * The budget only decides; the transport closes what it evicts or refuses.
 */
import { isIP } from 'node:net';
import { assert } from '../lib/assert.js';
import type { NodeId } from '../lib/ids.js';

/** The budget's bounds (from `TcpTransportLimits`). */
export interface HandshakeBudgetLimits {
  readonly pendingHandshakesMax: number;
  readonly pendingHandshakesPerPeerMax: number;
  readonly pendingHandshakesPerSourceMax: number;
}

/** What `admit` and `claim` decided. An `evicted` connection must be closed by the caller. */
export type BudgetVerdict<C> =
  { readonly kind: 'admitted'; readonly evicted: C | null } | { readonly kind: 'refused'; readonly why: string };

interface Slot {
  readonly source: string;
  readonly known: boolean;
  /** The budget's turn when the connection was accepted. */
  readonly turn: number;
  claimed: NodeId | null;
}

/** The host part of an address as the listener reports it (`::ffff:10.0.0.1` is `10.0.0.1`). */
export function sourceOf(remoteAddress: string | undefined): string {
  const host = remoteAddress ?? '?';
  return host.startsWith('::ffff:') && isIP(host.slice(7)) === 4 ? host.slice(7) : host;
}

/** See the module comment. `C` is the connection type; the budget never touches one. */
export class HandshakeBudget<C> {
  private readonly slots = new Map<C, Slot>();
  /** Unidentified connections, oldest first (a `Set` keeps insertion order). */
  private readonly unidentified = new Set<C>();
  private readonly perSource = new Map<string, number>();
  private readonly claims = new Map<NodeId, Set<C>>();
  /**
   * Counts event-loop turns (one per check phase) while a young connection is held: a connection
   * accepted in turn t has had a full poll phase, where its hello would have been read, once the
   * turn is t + 2.
   */
  private turn = 0;
  private ticking = false;

  constructor(
    private readonly limits: HandshakeBudgetLimits,
    /** True for the host of a configured peer (as `sourceOf` gives it). */
    private readonly knownSource: (source: string) => boolean,
    /** The configured host of a peer, when known. */
    private readonly peerHost: (peer: NodeId) => string | undefined,
  ) {}

  /** Unauthenticated connections held (both tiers). */
  get size(): number {
    return this.slots.size;
  }

  /** Decides on a just-accepted connection from `source`. */
  admit(conn: C, source: string): BudgetVerdict<C> {
    assert(!this.slots.has(conn), 'a connection is admitted once');
    const known = this.knownSource(source);
    const fromSource = this.perSource.get(source) ?? 0;
    let evicted: C | null = null;
    if (!known && fromSource >= this.limits.pendingHandshakesPerSourceMax) {
      // The source is at its share: its own oldest connection makes room, or the newcomer waits.
      evicted = this.oldestEvictable((slot) => slot.source === source);
      if (evicted === null)
        return {
          kind: 'refused',
          why: `${fromSource} unauthenticated connections from ${source} already (limit ${this.limits.pendingHandshakesPerSourceMax} per unknown source), none old enough to evict`,
        };
    } else if (this.unidentified.size >= this.limits.pendingHandshakesMax) {
      // Known-address priority: unknown sources' connections go first; a known source's only
      // for a newcomer from a known source.
      evicted = this.oldestEvictable((slot) => !slot.known) ?? (known ? this.oldestEvictable(() => true) : null);
      if (evicted === null)
        return {
          kind: 'refused',
          why: `${this.unidentified.size} unidentified connections pending (limit ${this.limits.pendingHandshakesMax}), none old enough to evict`,
        };
    }
    if (evicted !== null) this.release(evicted);
    this.slots.set(conn, { source, known, turn: this.turn, claimed: null });
    this.unidentified.add(conn);
    this.perSource.set(source, (this.perSource.get(source) ?? 0) + 1);
    this.tick();
    return { kind: 'admitted', evicted };
  }

  /** Moves an unidentified connection to `peer`'s claims (its hello named `peer`). */
  claim(conn: C, peer: NodeId): BudgetVerdict<C> {
    const slot = this.slots.get(conn);
    assert(slot !== undefined && slot.claimed === null, 'only an unidentified connection claims a peer');
    const claims = this.claims.get(peer) ?? new Set<C>();
    let evicted: C | null = null;
    if (claims.size >= this.limits.pendingHandshakesPerPeerMax) {
      const home = this.peerHost(peer);
      const stranger = [...claims].find((c) => this.slots.get(c)?.source !== home);
      const victim = stranger ?? (slot.source === home ? [...claims][0] : undefined);
      if (victim === undefined)
        return {
          kind: 'refused',
          why: `${claims.size} handshakes claiming node ${peer} already pending from its configured host (limit ${this.limits.pendingHandshakesPerPeerMax})`,
        };
      this.release(victim);
      evicted = victim;
    }
    this.dropUnidentified(conn, slot);
    slot.claimed = peer;
    claims.add(conn);
    this.claims.set(peer, claims);
    return { kind: 'admitted', evicted };
  }

  /** Forgets `conn` (authenticated or closed); idempotent. */
  release(conn: C): void {
    const slot = this.slots.get(conn);
    if (slot === undefined) return;
    this.slots.delete(conn);
    if (slot.claimed === null) {
      this.dropUnidentified(conn, slot);
      return;
    }
    const claims = this.claims.get(slot.claimed);
    claims?.delete(conn);
    if (claims?.size === 0) this.claims.delete(slot.claimed);
  }

  private dropUnidentified(conn: C, slot: Slot): void {
    if (!this.unidentified.delete(conn)) return;
    const n = (this.perSource.get(slot.source) ?? 1) - 1;
    if (n === 0) this.perSource.delete(slot.source);
    else this.perSource.set(slot.source, n);
  }

  /** The oldest unidentified connection matching `which` that had a full poll phase since accept. */
  private oldestEvictable(which: (slot: Slot) => boolean): C | null {
    for (const c of this.unidentified) {
      const slot = this.slots.get(c);
      assert(slot !== undefined, 'every unidentified connection has a slot');
      if (slot.turn > this.turn - 2) return null; // oldest first: the rest are younger
      if (which(slot)) return c;
    }
    return null;
  }

  /** Advances the turn once per check phase until the youngest held connection is evictable. */
  private tick(): void {
    if (this.ticking) return;
    this.ticking = true;
    setImmediate(() => {
      this.ticking = false;
      this.turn++;
      let youngest = -Infinity;
      for (const slot of this.slots.values()) youngest = Math.max(youngest, slot.turn);
      if (youngest > this.turn - 2) this.tick();
    });
  }
}
