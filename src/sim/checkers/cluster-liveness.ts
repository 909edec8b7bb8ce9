/**
 * Cluster liveness and failure-detector completeness, judged from trace events only.
 *
 * After the faults stop (the simulator heals everything and restarts every crashed node; the
 * driver's fence agent confirms fences, power-cycles evicted live incarnations and releases
 * quarantines):
 * 1. **Convergence**: every configured node runs (its process started and not crashed since),
 *    and all have applied the same view, that view is quorate, and it holds exactly these nodes,
 *    each with the incarnation its current process runs (`cluster-node-start`).
 * 2. **Completeness**: after convergence the driver crashes one non-leader member for good
 *    (`kill`), or says why it did not (`no-kill`). Every survivor must then apply a view without
 *    the killed incarnation, made by a `fail` (or a `quarantine`: the detector's verdict for a
 *    node that flapped, e.g. one the fence agent power-cycled twice lately), within `detectionBoundMs` of the kill. The time from
 *    the kill to the first survivor applying it is `detectionMs` (the stats report it). The bound
 *    is the promise of a stable leader; when a survivor becomes leader in between (the old leader
 *    lost its check-quorum lease under message loss, so a new detector had to take over after an
 *    election), `electionAllowanceMs` is added, and the run is counted (`detectionAcrossElection`); the same
 *    allowance applies on a network losing more than `LOSSY_NETWORK_PERCENT` of messages, and both
 *    add up when both hold (an election itself needs several vote rounds on such a network: seed
 *    1986805517, five nodes needing four of five live votes under 27 % loss, took 6.5 s).
 * The condition holds once both are done; a late detection is reported at once as a
 * `fd-completeness` violation.
 */
import type { NodeId } from '../../lib/ids.js';
import type { Checker, Liveness } from '../workload.js';
import type { SimEvent } from '../trace.js';
import {
  CLUSTER_CLIENT_EVENT,
  CLUSTER_EVENT,
  EVICTION_COMMANDS,
  parseView,
  type TracedView,
} from './cluster-events.js';

/** See the module comment. */
/**
 * Above this message loss (the liveness phase keeps the run's loss, up to 30 %), committing the
 * `fail` entry itself may take several retransmission rounds with a bare quorum: the completeness
 * bound then gets the election allowance too. The 3 s bound is the figure for a healthy network
 * (measured on real processes by bench/cluster-failover: p99 about 1.5 s).
 */
const LOSSY_NETWORK_PERCENT = 10;

export class ClusterLiveness implements Checker, Liveness {
  readonly name = 'cluster-liveness';
  /** Nodes whose process runs, with the membership incarnation once it reported one (0 before). */
  private readonly running = new Map<NodeId, number>();
  /** Each running node's latest traced view (cleared when its process ends). */
  private readonly latest = new Map<NodeId, TracedView>();
  private livenessUs: number | null = null;
  private convergedUs: number | null = null;
  /** The run's network loses more than `LOSSY_NETWORK_PERCENT` of messages (from the `begin` event's profile). */
  private lossyNetwork = false;
  private kill: { node: NodeId; incarnation: number; atUs: number } | null = null;
  /** Highest view id seen holding the killed incarnation (from the converged view on). */
  private lastWithKilled = -1;
  /** Highest view id seen. */
  private maxViewId = -1;
  private killSkipped: string | null = null;
  /** Survivors that applied the killed member's removal. */
  private readonly removedOn = new Set<NodeId>();
  private firstRemovalUs: number | null = null;
  private lateReported = false;
  /** The killed node's machine ran on (`host=up`): its peers got proof that it was gone. */
  killHostUp = false;
  /** A survivor became leader between the kill and the first removal. */
  detectionAcrossElection = false;
  private nowMs: () => number = () => 0;

  constructor(
    /** Configured nodes: all must run and be in the converged view. */
    private readonly nodeCount: number,
    readonly boundMs: number,
    private readonly detectionBoundMs: number,
    private readonly electionAllowanceMs: number,
    private readonly violation: (checker: string, message: string) => void,
  ) {}

  /** Gives the condition the simulator's true clock (the driver's `nowMs`). */
  attachClock(nowMs: () => number): void {
    this.nowMs = nowMs;
  }

  /** Kill to first survivor applying the removal, ms; null when there was none. */
  get detectionMs(): number | null {
    return this.kill === null || this.firstRemovalUs === null ? null : (this.firstRemovalUs - this.kill.atUs) / 1000;
  }

  /** Liveness phase start to convergence, ms; null when it never converged. */
  get convergedAfterMs(): number | null {
    return this.livenessUs === null || this.convergedUs === null ? null : (this.convergedUs - this.livenessUs) / 1000;
  }

  /** Whether the completeness probe ran (a node was killed). */
  get probed(): boolean {
    return this.kill !== null;
  }

  observe(e: SimEvent): void {
    if (e.source === 'sim') this.observeSim(e);
    else if (e.source === 'client') this.observeClient(e);
    else this.observeNode(e.source as NodeId, e);
  }

  private observeSim(e: SimEvent): void {
    const node = e.fields.node as NodeId;
    if (e.event === 'begin') {
      const loss = /loss=([0-9.]+)%/.exec(String(e.fields.profile ?? ''));
      this.lossyNetwork = loss !== null && Number(loss[1]) > LOSSY_NETWORK_PERCENT;
    }
    if (e.event === 'start') {
      this.running.set(node, 0);
      this.latest.delete(node);
    } else if (e.event === 'crash') {
      this.running.delete(node);
      this.latest.delete(node);
    } else if (e.event === 'phase' && e.fields.name === 'liveness') this.livenessUs = e.timeUs;
  }

  private observeClient(e: SimEvent): void {
    if (e.event === CLUSTER_CLIENT_EVENT.kill && this.kill === null) {
      // The driver kills once it saw convergence; judge it at that instant too (a poll may not
      // have run since the last view was traced).
      if (this.livenessUs !== null && this.convergedUs === null && this.converged()) this.convergedUs = e.timeUs;
      this.kill = { node: e.fields.node as NodeId, incarnation: Number(e.fields.incarnation), atUs: e.timeUs };
      this.killHostUp = e.fields.host === 'up';
      this.lastWithKilled = this.maxViewId;
    } else if (e.event === CLUSTER_CLIENT_EVENT.noKill) this.killSkipped = String(e.fields.reason);
  }

  private observeNode(node: NodeId, e: SimEvent): void {
    // An election during detection (a survivor campaigns or takes over: the leader died, or lost
    // its lease under loss before the removal committed) earns the election allowance.
    const electing = e.fields.role === 'leader' || e.fields.role === 'candidate' || e.fields.role === 'pre-candidate';
    if (
      e.event === CLUSTER_EVENT.role &&
      electing &&
      this.kill !== null &&
      node !== this.kill.node &&
      this.firstRemovalUs === null
    )
      this.detectionAcrossElection = true;
    if (e.event === CLUSTER_EVENT.nodeStart && this.running.has(node)) {
      this.running.set(node, Number(e.fields.incarnation));
      return;
    }
    if (e.event !== CLUSTER_EVENT.view) return;
    const v = parseView(e.fields);
    if (v === null) return;
    this.latest.set(node, v);
    this.maxViewId = Math.max(this.maxViewId, v.viewId);
    const k = this.kill;
    if (k !== null && v.members.some((m) => m.node === k.node && m.incarnation === k.incarnation))
      this.lastWithKilled = Math.max(this.lastWithKilled, v.viewId);
    // A removal is a newer view than every view that held the killed incarnation (a restarted
    // node re-applying old views does not count).
    if (
      k !== null &&
      node !== k.node &&
      EVICTION_COMMANDS.has(v.cmd) &&
      v.viewId > this.lastWithKilled &&
      !v.members.some((m) => m.node === k.node && m.incarnation === k.incarnation)
    ) {
      this.removedOn.add(node);
      this.firstRemovalUs ??= e.timeUs;
      this.checkLate(e.timeUs);
    } else if (this.livenessUs !== null && this.convergedUs === null && this.converged()) this.convergedUs = e.timeUs;
  }

  private checkLate(nowUs: number): void {
    const k = this.kill;
    if (k === null || this.lateReported) return;
    const first = this.firstRemovalUs;
    const boundMs =
      this.detectionBoundMs +
      (this.detectionAcrossElection ? this.electionAllowanceMs : 0) +
      (this.lossyNetwork ? this.electionAllowanceMs : 0);
    const late = (first ?? nowUs) - k.atUs > boundMs * 1000;
    if (!late) return;
    this.lateReported = true;
    const what =
      first === null
        ? 'no survivor has applied its removal yet'
        : `the first survivor applied its removal after ${((first - k.atUs) / 1000).toFixed(1)} ms`;
    const why = [
      ...(this.detectionAcrossElection ? [', a new leader was elected meanwhile'] : []),
      ...(this.lossyNetwork ? [`, allowance for more than ${LOSSY_NETWORK_PERCENT} % message loss included`] : []),
    ].join('');
    this.violation(
      'fd-completeness',
      `fd completeness: node ${k.node} incarnation ${k.incarnation} was killed at ${(k.atUs / 1e6).toFixed(6)} s and ${what} (bound ${boundMs} ms${why})`,
    );
  }

  /** Every running node applied one quorate view holding exactly the running nodes' incarnations. */
  private converged(): boolean {
    if (this.running.size !== this.nodeCount) return false;
    let first: TracedView | undefined;
    for (const [node, inc] of this.running) {
      const v = this.latest.get(node);
      if (v === undefined || inc === 0) return false;
      first ??= v;
      if (v.viewId !== first.viewId || !v.quorate) return false;
    }
    if (first === undefined || first.members.length !== this.running.size) return false;
    return first.members.every((m) => this.running.get(m.node) === m.incarnation);
  }

  satisfied(): boolean {
    if (this.livenessUs === null) return false;
    if (this.convergedUs === null && this.converged()) this.convergedUs = Math.round(this.nowMs() * 1000);
    if (this.convergedUs === null) return false;
    if (this.killSkipped !== null && this.kill === null) return true;
    const k = this.kill;
    if (k === null) return false;
    this.checkLate(Math.round(this.nowMs() * 1000));
    for (const node of this.running.keys()) if (node !== k.node && !this.removedOn.has(node)) return false;
    return this.firstRemovalUs !== null;
  }

  describe(): string {
    if (this.convergedUs === null) {
      const views = [...this.running].map(([node, inc]) => {
        const v = this.latest.get(node);
        return `n${node}@${inc}: ${v === undefined ? 'no view' : `view ${v.viewId} {${v.membersText}} quorate=${v.quorate}`}`;
      });
      return `the running nodes never agreed on one quorate view holding all of them (${views.join('; ')})`;
    }
    const k = this.kill;
    if (k === null) return 'the driver neither killed a node nor said why not';
    const missing = [...this.running.keys()].filter((n) => n !== k.node && !this.removedOn.has(n));
    return `survivors ${missing.join(',')} never applied the removal of killed node ${k.node} incarnation ${k.incarnation}`;
  }
}
