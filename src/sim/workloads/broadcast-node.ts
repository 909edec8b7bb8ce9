/**
 * The proving workload's node: reliable broadcast with persistence, for crash-recovery nodes.
 *
 * Protocol (every node runs the same code; a client may hand a message to any subset of nodes
 * and die midway, which is why relaying matters):
 * 1. First receipt of message `id` (from a client or a peer): relay it to every other peer, with
 *    retransmission every `RETRANSMIT_MS` until each acknowledges; queue it for persistence.
 * 2. Persistence is a group commit to `delivered.log`: one write of every queued record, then
 *    one sync. Only when the sync completes are the records delivered (traced `deliver`) and
 *    the peers that sent them acknowledged. An ack therefore means "durable here".
 * 3. Later receipts: acknowledge if delivered (the sender lost our ack); never deliver twice.
 * 4. Start (every incarnation): reload the log (traced `recover` with the ids), retransmit every
 *    recovered message to every peer until acknowledged (retransmission duties are volatile,
 *    so a restart re-creates them), and send `hello` (retransmitted until answered), to which
 *    peers answer by sending everything they have delivered, then `welcome`.
 * 5. Corruption: a damaged record (see `readRecord`) cannot be trusted, so the node reformats:
 *    it discards its log and starts an empty one (traced `reformat`), then refills from peers.
 *
 * Canaries (planted bugs, selected only by the simulator): `no-forward` skips the relay of
 * step 1, `deliver-before-sync` delivers when the write completes instead of after the sync,
 * `no-dedup` delivers again on every later receipt.
 */
import { assert, assertNever } from '../../lib/assert.js';
import type { NodeId } from '../../lib/ids.js';
import type { NodeEnv } from '../../runtime/env.js';
import { SIM_BROADCASTS_MAX } from '../../constants.js';
import { encodeRecord, readRecord, RECORD_BYTES, type BroadcastMessage } from './broadcast-codec.js';

/** The planted bugs of this workload. */
export const BROADCAST_CANARIES = ['no-forward', 'deliver-before-sync', 'no-dedup'] as const;
/** One planted bug. */
export type BroadcastCanary = (typeof BROADCAST_CANARIES)[number];

/** Retransmission period on the node's own clock, ms. */
export const RETRANSMIT_MS = 150;
const LOG_FILE = 'delivered.log';

/** What the node read from its disk at start. */
interface Recovery {
  readonly records: Map<number, string>;
  /** Bytes of whole slots to keep (a torn partial slot beyond this is cut). */
  readonly keepBytes: number;
  readonly corrupt: string | undefined;
}

/** Reads `delivered.log` slot by slot; see the module comment, step 5. */
export function recoverLog(bytes: Uint8Array | null): Recovery {
  const records = new Map<number, string>();
  if (bytes === null) return { records, keepBytes: 0, corrupt: undefined };
  const slots = Math.floor(bytes.length / RECORD_BYTES);
  for (let i = 0; i < slots; i++) {
    const slot = readRecord(bytes.subarray(i * RECORD_BYTES, (i + 1) * RECORD_BYTES));
    if (slot.kind === 'corrupt') return { records: new Map(), keepBytes: 0, corrupt: `slot ${i}: ${slot.reason}` };
    if (slot.kind === 'record') records.set(slot.id, slot.payload);
  }
  return { records, keepBytes: slots * RECORD_BYTES, corrupt: undefined };
}

/** One incarnation of a broadcast node. The driver calls `submit`. */
export class BroadcastNode {
  private readonly delivered = new Map<number, string>();
  /** Received, queued or being persisted; value: peers to acknowledge once durable. */
  private readonly pending = new Map<number, { payload: string; ackTo: Set<NodeId> }>();
  private queue: number[] = [];
  /** Peers that have not acknowledged each message we relay. */
  private readonly unacked = new Map<number, Set<NodeId>>();
  private readonly peers: readonly NodeId[];
  /** Peers that have not answered our `hello` yet (it is retransmitted like data). */
  private readonly helloUnanswered: Set<NodeId>;
  private offset: number;
  private persisting = false;
  private failed = false;
  /** The log file's name is durable (a crash can drop an unsynced creation with its data). */
  private dirSynced = false;

  constructor(
    private readonly env: NodeEnv<BroadcastMessage>,
    nodes: readonly NodeId[],
    private readonly canary: BroadcastCanary | undefined,
  ) {
    this.peers = nodes.filter((n) => n !== env.nodeId);
    this.helloUnanswered = new Set(this.peers);
    const recovery = recoverLog(env.disk.read(LOG_FILE));
    this.offset = recovery.keepBytes;
    if (recovery.corrupt !== undefined) {
      env.trace('reformat', { reason: recovery.corrupt });
      this.queueTruncate(0);
    } else {
      const size = env.disk.size(LOG_FILE);
      if (size !== null && size > recovery.keepBytes) this.queueTruncate(recovery.keepBytes);
      for (const [id, payload] of recovery.records) this.delivered.set(id, payload);
    }
    env.trace('recover', {
      count: this.delivered.size,
      ids: [...this.delivered.keys()].sort((a, b) => a - b).join(','),
    });
    env.transport.setHandlers({
      onMessage: (from, m) => {
        this.onMessage(from, m);
      },
      onPeerUp: (peer) => {
        this.resendTo(peer);
      },
      onPeerDown: () => undefined,
    });
    for (const [id, payload] of this.delivered) this.relay(id, payload, undefined);
    for (const p of this.peers) env.transport.send(p, { type: 'hello' });
    this.scheduleRetransmit();
  }

  /** A client hands the node a message to broadcast. */
  submit(id: number, payload: string): void {
    this.receive(id, payload, undefined);
  }

  private onMessage(from: NodeId, m: BroadcastMessage): void {
    switch (m.type) {
      case 'data':
        this.receive(m.id, m.payload, from);
        break;
      case 'ack':
        this.onAck(from, m.id);
        break;
      case 'hello':
        this.onHello(from);
        break;
      case 'welcome':
        this.helloUnanswered.delete(from);
        break;
      default:
        assertNever(m, 'broadcast message');
    }
  }

  private receive(id: number, payload: string, from: NodeId | undefined): void {
    if (this.failed) return;
    const delivered = this.delivered.get(id);
    if (delivered !== undefined) {
      if (from !== undefined) this.env.transport.send(from, { type: 'ack', id });
      if (this.canary === 'no-dedup') this.env.trace('deliver', { id, payload });
      return;
    }
    const pending = this.pending.get(id);
    if (pending !== undefined) {
      if (from !== undefined) pending.ackTo.add(from);
      return;
    }
    assert(this.pending.size + this.delivered.size < SIM_BROADCASTS_MAX * 2, 'broadcast ids are bounded by the driver');
    this.pending.set(id, { payload, ackTo: new Set(from === undefined ? [] : [from]) });
    this.queue.push(id);
    if (this.canary !== 'no-forward') this.relay(id, payload, from);
    this.persist();
  }

  /** Sends `id` to every peer but `from`, and keeps retransmitting until each acknowledges. */
  private relay(id: number, payload: string, from: NodeId | undefined): void {
    const waiting = this.unacked.get(id) ?? new Set<NodeId>();
    for (const p of this.peers) {
      if (p === from) continue;
      waiting.add(p);
      this.env.transport.send(p, { type: 'data', id, payload });
    }
    if (waiting.size > 0) this.unacked.set(id, waiting);
  }

  private onAck(from: NodeId, id: number): void {
    const waiting = this.unacked.get(id);
    if (waiting === undefined) return;
    waiting.delete(from);
    if (waiting.size === 0) this.unacked.delete(id);
  }

  private onHello(from: NodeId): void {
    for (const [id, payload] of this.delivered) {
      const waiting = this.unacked.get(id) ?? new Set<NodeId>();
      waiting.add(from);
      this.unacked.set(id, waiting);
      this.env.transport.send(from, { type: 'data', id, payload });
    }
    this.env.transport.send(from, { type: 'welcome' });
  }

  private resendTo(peer: NodeId): void {
    if (this.helloUnanswered.has(peer)) this.env.transport.send(peer, { type: 'hello' });
    for (const [id, waiting] of this.unacked) {
      if (!waiting.has(peer)) continue;
      const payload = this.delivered.get(id) ?? this.pending.get(id)?.payload;
      if (payload !== undefined) this.env.transport.send(peer, { type: 'data', id, payload });
    }
  }

  private scheduleRetransmit(): void {
    this.env.timers.after(RETRANSMIT_MS, () => {
      for (const p of this.peers) this.resendTo(p);
      this.scheduleRetransmit();
    });
  }

  private queueTruncate(size: number): void {
    this.persisting = true;
    this.env.disk.truncate(LOG_FILE, size, (error) => {
      this.persisting = false;
      if (error !== null) this.fail('truncate', error);
      else this.persist();
    });
  }

  /** Group commit: write every queued record at once, sync, then deliver them. */
  private persist(): void {
    if (this.persisting || this.failed || this.queue.length === 0) return;
    const batch = this.queue;
    this.queue = [];
    const bytes = new Uint8Array(batch.length * RECORD_BYTES);
    batch.forEach((id, i) => {
      bytes.set(encodeRecord(id, this.pendingPayload(id)), i * RECORD_BYTES);
    });
    this.persisting = true;
    this.env.disk.write(LOG_FILE, this.offset, bytes, (error) => {
      if (error !== null) {
        this.fail('write', error);
        return;
      }
      this.offset += bytes.length;
      if (this.canary === 'deliver-before-sync') this.deliver(batch);
      this.env.disk.sync(LOG_FILE, (syncError) => {
        if (syncError !== null) {
          this.fail('sync', syncError);
          return;
        }
        this.afterSync(batch);
      });
    });
  }

  /** Makes the file's name durable once per incarnation, then delivers the batch. */
  private afterSync(batch: readonly number[]): void {
    const complete = (): void => {
      if (this.canary !== 'deliver-before-sync') this.deliver(batch);
      this.persisting = false;
      this.persist();
    };
    if (this.dirSynced) {
      complete();
      return;
    }
    this.env.disk.syncDir((error) => {
      if (error !== null) {
        this.fail('syncDir', error);
        return;
      }
      this.dirSynced = true;
      complete();
    });
  }

  private pendingPayload(id: number): string {
    const p = this.pending.get(id);
    assert(p !== undefined, `queued id ${id} must be pending`);
    return p.payload;
  }

  private deliver(batch: readonly number[]): void {
    for (const id of batch) {
      const p = this.pending.get(id);
      assert(p !== undefined, `persisted id ${id} must be pending`);
      this.pending.delete(id);
      this.delivered.set(id, p.payload);
      this.env.trace('deliver', { id, payload: p.payload });
      for (const peer of p.ackTo) this.env.transport.send(peer, { type: 'ack', id });
    }
  }

  /** A failed disk operation is fatal for the log (fsync failures are not retryable). */
  private fail(op: string, error: Error): void {
    this.failed = true;
    this.env.trace('disk-failed', { op, error: error.message });
  }
}
