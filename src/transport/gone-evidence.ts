/**
 * `GoneEvidence`: decides, from one peer's control-lane connection events, when the transport
 * holds proof that the peer's process (one incarnation) is gone, so `onPeerGone` may be
 * reported. Pure: the caller passes its monotonic milliseconds.
 *
 * Proof, all within `windowMs` of each other and of now:
 * 1. the inbound control connection of incarnation `i` (the latest the peer authenticated with;
 *    its hello names `i`) was closed by the peer's side: a FIN or RST we did not ask for;
 * 2. our open control connection to the peer was closed by the peer's side too;
 * 3. a connect to the peer's address, started after (2), was refused (ECONNREFUSED): the peer's
 *    host answered that nothing listens on the port any more.
 *
 * Why this is proof and a pause, a stall or a partition never gives it: a SIGSTOPped process
 * keeps its sockets and its listener, so its kernel closes nothing and accepts a connect (or the
 * accept queue is full and the SYN is dropped: a timeout); a partition drops packets, which
 * gives timeouts, never a refusal; a connection closed by us (a handshake timeout, a bad frame)
 * is not the peer's doing. Only the end of the process (its kernel closes its sockets and its
 * listener) gives all three. Any sign of life clears the evidence: a handshake that completes
 * either way, or a new inbound connection.
 *
 * Incarnations: the proof names `i`, the incarnation the closed connection announced, so a
 * restarted process (a newer incarnation, which authenticates a new connection first) is never
 * named by evidence about the old one. Reported at most once per incarnation.
 */
import { assert } from '../lib/assert.js';

/** One peer's evidence; see the file comment. */
export class GoneEvidence {
  /** The incarnation of the peer's latest authenticated inbound control connection. */
  private incarnation: number | null = null;
  /** When that connection was closed by the peer's side (null: open, or closed by us). */
  private inboundLostMs: number | null = null;
  /** When our open control connection was closed by the peer's side. */
  private outboundLostMs: number | null = null;
  /** When a connect started after that loss was refused. */
  private refusedMs: number | null = null;
  /** The incarnation last reported gone. */
  private reported: number | null = null;

  constructor(private readonly windowMs: number) {
    assert(Number.isFinite(windowMs) && windowMs > 0, 'the evidence window is positive');
  }

  /** The peer authenticated an inbound control connection as `incarnation`: it is alive. */
  inboundOpened(incarnation: number): void {
    this.incarnation = incarnation;
    this.clear();
  }

  /**
   * The inbound control connection of `incarnation` closed, `byPeer` when the peer's side
   * closed it. Returns the incarnation to report gone, or null.
   */
  inboundClosed(incarnation: number, byPeer: boolean, nowMs: number): number | null {
    if (incarnation !== this.incarnation) return null; // an older connection, replaced already
    this.inboundLostMs = byPeer ? nowMs : null;
    return this.verdict(nowMs);
  }

  /** Our control connection completed its handshake: the peer's process answers. */
  outboundOpened(): void {
    this.clear();
  }

  /** Our open control connection closed, `byPeer` when the peer's side closed it. */
  outboundClosed(byPeer: boolean, nowMs: number): void {
    this.outboundLostMs = byPeer ? nowMs : null;
    this.refusedMs = null;
  }

  /**
   * A connect started at `startedMs` was refused at `nowMs`. Returns the incarnation to report
   * gone, or null.
   */
  connectRefused(startedMs: number, nowMs: number): number | null {
    assert(startedMs <= nowMs, 'a connect is refused after it started');
    const lost = this.outboundLostMs;
    if (lost === null || startedMs < lost || nowMs - startedMs > this.windowMs) return null;
    this.refusedMs = nowMs;
    return this.verdict(nowMs);
  }

  private verdict(nowMs: number): number | null {
    const inc = this.incarnation;
    const marks = [this.inboundLostMs, this.outboundLostMs, this.refusedMs];
    if (inc === null || inc === this.reported) return null;
    if (!marks.every((t) => t !== null && nowMs - t <= this.windowMs)) return null;
    this.reported = inc;
    return inc;
  }

  private clear(): void {
    this.inboundLostMs = null;
    this.outboundLostMs = null;
    this.refusedMs = null;
  }
}
