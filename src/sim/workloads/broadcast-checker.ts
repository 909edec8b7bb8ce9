/**
 * The oracle of the broadcast workload. It reads only trace events: the client's `broadcast`
 * and `submit` records, the nodes' `deliver`, `recover` and `reformat` events, and the
 * simulator's `crash` and `bitflip` events. It never looks inside a node.
 *
 * Safety (checked as events arrive):
 * - integrity: a node delivers only ids the client broadcast, with the broadcast payload;
 * - no duplicates: within one durable history of a node (its incarnations since its last
 *   reformat) an id is delivered at most once;
 * - durability: after a restart, a node recovers every id it delivered before (an id may also
 *   reappear that was written but whose sync never completed: it counts as delivered then);
 * - honest reformat: a node may discard its log only if the simulator flipped bits on its disk.
 *
 * Liveness (once faults stop): every node has delivered every id that some node still holds,
 * and every id accepted by a node that did not crash afterwards. (An id held only by nodes
 * that then lost it to corruption is excused: no protocol can repair its only copy.)
 */
import type { NodeId } from '../../lib/ids.js';
import type { SimEvent } from '../trace.js';
import type { Checker, Liveness } from '../workload.js';

/** How many missing ids a liveness report lists. */
const MISSING_LISTED_MAX = 8;

function field(e: SimEvent, key: string): string | number | boolean | null | undefined {
  return e.fields[key];
}

function num(e: SimEvent, key: string): number {
  const v = field(e, key);
  return typeof v === 'number' ? v : -1;
}

/** Safety checker and liveness condition; see the module comment. */
export class BroadcastChecker implements Checker, Liveness {
  readonly name = 'broadcast';
  private readonly payloads = new Map<number, string>();
  /** Per node, ids delivered in its current durable history. */
  private readonly history = new Map<NodeId, Set<number>>();
  /** Per node, ids accepted and not yet excused by a crash of that node. */
  private readonly accepted = new Map<NodeId, Set<number>>();
  /** Nodes whose disks received bit flips (the only ones allowed to reformat). */
  private readonly flipped = new Set<NodeId>();

  constructor(
    private readonly nodes: readonly NodeId[],
    readonly boundMs: number,
    private readonly violation: (message: string) => void,
  ) {
    for (const n of nodes) {
      this.history.set(n, new Set());
      this.accepted.set(n, new Set());
    }
  }

  observe(e: SimEvent): void {
    if (e.source === 'client') this.onClient(e);
    else if (e.source === 'sim') this.onSim(e);
    else this.onNode(e.source as NodeId, e);
  }

  private onClient(e: SimEvent): void {
    if (e.event === 'broadcast') {
      const payload = field(e, 'payload');
      this.payloads.set(num(e, 'id'), typeof payload === 'string' ? payload : '');
    } else if (e.event === 'submit') {
      this.accepted.get(num(e, 'node') as NodeId)?.add(num(e, 'id'));
    } else if (e.event === 'refused') {
      this.accepted.get(num(e, 'node') as NodeId)?.delete(num(e, 'id'));
    }
  }

  private onSim(e: SimEvent): void {
    const node = num(e, 'node') as NodeId;
    if (e.event === 'crash') this.accepted.get(node)?.clear();
    else if (e.event === 'bitflip' && num(e, 'bits') > 0) this.flipped.add(node);
  }

  private onNode(node: NodeId, e: SimEvent): void {
    switch (e.event) {
      case 'deliver':
        this.onDeliver(node, num(e, 'id'), field(e, 'payload'));
        break;
      case 'recover':
        this.onRecover(node, String(field(e, 'ids') ?? ''));
        break;
      case 'reformat':
        if (!this.flipped.has(node))
          this.violation(
            `node ${node} discarded its log (${String(field(e, 'reason'))}) but no bit was ever flipped on its disk`,
          );
        this.history.get(node)?.clear();
        break;
      default:
        break;
    }
  }

  private onDeliver(node: NodeId, id: number, payload: unknown): void {
    const expected = this.payloads.get(id);
    if (expected === undefined) this.violation(`integrity: node ${node} delivered id ${id}, which no client broadcast`);
    else if (payload !== expected)
      this.violation(
        `integrity: node ${node} delivered id ${id} with payload ${JSON.stringify(payload)}, broadcast as ${JSON.stringify(expected)}`,
      );
    const h = this.history.get(node);
    if (h === undefined) return;
    if (h.has(id)) this.violation(`duplicate: node ${node} delivered id ${id} a second time`);
    h.add(id);
  }

  private onRecover(node: NodeId, ids: string): void {
    const recovered = new Set(ids === '' ? [] : ids.split(',').map(Number));
    const h = this.history.get(node);
    if (h === undefined) return;
    const lost = [...h].filter((id) => !recovered.has(id)).sort((a, b) => a - b);
    if (lost.length > 0)
      this.violation(
        `durability: node ${node} delivered ${lost.slice(0, MISSING_LISTED_MAX).join(',')} before it crashed but did not recover ${lost.length === 1 ? 'it' : 'them'}`,
      );
    for (const id of recovered) {
      if (!this.payloads.has(id))
        this.violation(`integrity: node ${node} recovered id ${id}, which no client broadcast`);
      h.add(id);
    }
  }

  /**
   * Ids every node must have delivered: those some node holds in its current durable history,
   * and those accepted by a node that has not crashed since. An id whose every holder lost it
   * to a reformat is excused: corruption of the only copy cannot be repaired by anyone.
   */
  private required(): Set<number> {
    const all = new Set<number>();
    for (const h of this.history.values()) for (const id of h) all.add(id);
    for (const ids of this.accepted.values()) for (const id of ids) all.add(id);
    return all;
  }

  satisfied(): boolean {
    return this.missing().length === 0;
  }

  describe(): string {
    const missing = this.missing();
    return missing.length === 0 ? 'nothing missing' : missing.join('; ');
  }

  private missing(): string[] {
    const required = [...this.required()].sort((a, b) => a - b);
    const out: string[] = [];
    for (const n of this.nodes) {
      const h = this.history.get(n) ?? new Set<number>();
      const lacking = required.filter((id) => !h.has(id));
      if (lacking.length > 0)
        out.push(
          `node ${n} lacks ${lacking.slice(0, MISSING_LISTED_MAX).join(',')}${lacking.length > MISSING_LISTED_MAX ? ` (+${lacking.length - MISSING_LISTED_MAX})` : ''}`,
        );
    }
    return out;
  }
}
