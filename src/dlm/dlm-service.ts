/**
 * `DlmService`: the distributed lock manager as a node service (docs/dlm.md). It owns the node's
 * `DlmCore` (lockspaces, sessions, the lock calls), the DLM peer channel with its reliable links
 * (ordered, exactly-once node-to-node delivery over the lossy transport: lock traffic never goes
 * through the cluster log), and the local API methods (`dlm-handlers.ts`).
 *
 * A lockspace is the service group `dlm:NAME` at level 1 (lockspaces recover first): opening one
 * joins the group; the group's views give the lockspace its members and generation. The node's
 * local quorum verdict gates granting: without quorum nothing is granted (waiters are told).
 */
import type { ApiHandlerRegistry } from '../api/index.js';
import { defined } from '../lib/assert.js';
import { err, ok, type Result } from '../lib/errors.js';
import type { NodeId } from '../lib/ids.js';
import type { LogIndex } from '../lib/ids.js';
import { DLM_LOCKSPACE_NAME_BYTES_MAX, DLM_LVB_BYTES_DEFAULT, LINK_QUEUE_MESSAGES_MAX } from '../constants.js';
import type { GroupService } from '../groups/group-service.js';
import type { MembershipService } from '../membership/membership-service.js';
import type { RecoveryService, RecoveryStart } from '../recovery/recovery-service.js';
import type { ChannelSpec, NodeService, PeerChannel, ServiceContext } from '../runtime/node-service.js';
import { msgpackCodec } from '../transport/message-codec.js';
import { DlmCore, DlmError, type DlmCanary, type DlmEvent } from './dlm-core.js';
import { validateDlmMessage, type DlmMessage } from './dlm-message.js';
import { registerDlmApi } from './dlm-handlers.js';
import { ReliableLinks, linkFrameValidator, linkOptions, type LinkFrame } from './reliable-link.js';

/** The DLM's peer channel id (stable forever). */
export const CHANNEL_DLM = 3;

/** The DLM's peer channel: link frames of DLM messages on the control lane (lock traffic is latency-critical). */
export const DLM_CHANNEL: ChannelSpec<LinkFrame<DlmMessage>> = {
  id: CHANNEL_DLM,
  name: 'dlm',
  codec: msgpackCodec(linkFrameValidator(validateDlmMessage)),
  lane: 'control',
};

/** The group of lockspace `name`. */
export function lockspaceGroup(name: string): string {
  return `dlm:${name}`;
}

/** The level of lockspace groups (lockspaces recover before volumes and applications). */
export const LOCKSPACE_LEVEL = 1;

const LOCKSPACE_NAME = /^[A-Za-z0-9._:/-]+$/;

/** Why `name` is not a lockspace name, or null. */
export function lockspaceNameProblem(name: string): string | null {
  if (name.length === 0 || name.length > DLM_LOCKSPACE_NAME_BYTES_MAX || !LOCKSPACE_NAME.test(name))
    return `a lockspace name is 1 to ${DLM_LOCKSPACE_NAME_BYTES_MAX} letters, digits and . _ : / - (got ${JSON.stringify(name.slice(0, 80))})`;
  return null;
}

/** Options of the DLM service. */
export interface DlmServiceOptions {
  /** How long a master keeps an unused resource, ms (default `DLM_TOSS_MS`). */
  readonly tossMs?: number;
  /** Resend unacknowledged link frames after this long, ms (default 50). */
  readonly retransmitMs?: number;
  /** A planted bug, for the simulator only (`DlmCanary`); never set outside the simulator. */
  readonly canary?: DlmCanary;
}

/** A session event listener (the API's session stream, or an embedded caller). */
export type DlmListener = (e: DlmEvent) => void;

/** See the file comment. */
export class DlmService implements NodeService {
  readonly name = 'dlm';
  readonly channels = [DLM_CHANNEL];
  private ctxRef: ServiceContext | null = null;
  private coreRef: DlmCore | null = null;
  private linksRef: ReliableLinks<DlmMessage> | null = null;
  private channel: PeerChannel<LinkFrame<DlmMessage>> | null = null;
  private readonly listeners = new Map<number, DlmListener>();
  /** Messages a full link queue could not take yet, per peer, in order (see `send`). */
  private readonly overflow = new Map<NodeId, DlmMessage[]>();
  /** The group view id each open lockspace last applied. */
  private readonly seenViews = new Map<string, number>();
  /** Callers waiting for this node to be a member of a lockspace. */
  private readonly joining = new Map<string, ((r: Result<undefined, DlmError>) => void)[]>();
  /** Recovery rounds of lockspace groups this node was asked to start, answered once the DLM recovered. */
  private starting: {
    readonly ls: string;
    readonly start: RecoveryStart;
    readonly done: (e: string | null) => void;
  }[] = [];

  constructor(
    private readonly groups: GroupService,
    private readonly membership: MembershipService,
    private readonly recovery: RecoveryService,
    private readonly opts: DlmServiceOptions = {},
  ) {}

  attach(ctx: ServiceContext): void {
    this.ctxRef = ctx;
    this.linksRef = new ReliableLinks<DlmMessage>(
      linkOptions(ctx.nodeId, ctx.incarnation, {
        retransmitMs: this.opts.retransmitMs ?? 50,
        ackDelayMs: 2,
        windowFrames: 256,
        batchMessages: 128,
        queueMessages: LINK_QUEUE_MESSAGES_MAX,
      }),
      (to, frame) => defined(this.channel, 'the DLM channel is open').send(to, frame),
    );
    this.channel = ctx.channel(DLM_CHANNEL, (from, frame) => {
      this.links.onFrame(from, frame, ctx.clock.nowMs(), (m) => {
        this.core.onMessage(from, m);
      });
      this.flush();
    });
    this.coreRef = new DlmCore(
      ctx.nodeId,
      ctx.incarnation,
      {
        send: (to, m) => {
          this.send(to, m);
        },
        pending: (to) => this.links.pending(to) + (this.overflow.get(to)?.length ?? 0),
        event: (session, e) => this.listeners.get(session)?.(e),
        trace: (event, fields) => {
          ctx.trace(event, fields);
        },
        departedSafe: (node, incarnation) => this.departedSafe(node, incarnation),
      },
      this.opts.tossMs,
      this.opts.canary ?? null,
    );
  }

  private get ctx(): ServiceContext {
    return defined(this.ctxRef, 'the DLM service is attached');
  }

  /** The node's DLM core (lock calls; tests and the simulator drive it directly). */
  get core(): DlmCore {
    return defined(this.coreRef, 'the DLM service is attached');
  }

  private get links(): ReliableLinks<DlmMessage> {
    return defined(this.linksRef, 'the DLM service is attached');
  }

  /**
   * Queues `m` for `to` on its link; when the link's queue is full (a burst of completions or
   * blocking notifications, which the protocol cannot refuse), keeps it in order in the peer's
   * overflow until the link takes it. Client operations are refused before that (`LIMIT`), so the
   * overflow holds only answers, bounded by the locks that await them.
   */
  private send(to: NodeId, m: DlmMessage): void {
    const waiting = this.overflow.get(to);
    if (waiting !== undefined) waiting.push(m);
    else if (!this.links.send(to, m)) this.overflow.set(to, [m]);
  }

  /** Answers the recovery rounds whose lockspace recovered with the round's members. */
  private checkStarts(): void {
    if (this.starting.length === 0) return;
    const still: typeof this.starting = [];
    for (const s of this.starting) {
      const ls = this.core.lockspace(s.ls);
      const want = s.start.members.map((m) => `${m.node}@${m.incarnation}`).join(',');
      const have = ls?.memberList.map((m) => `${m.node}@${m.incarnation}`).join(',');
      if (ls !== undefined && !ls.recovering && !ls.paused && have === want) s.done(null);
      else still.push(s);
    }
    this.starting = still;
  }

  /** Sends what the last calls queued (call after every batch of core calls). */
  flush(): void {
    this.checkStarts();
    for (const [to, list] of [...this.overflow]) {
      let i = 0;
      while (i < list.length && this.links.send(to, defined(list[i], 'message'))) i++;
      if (i === list.length) this.overflow.delete(to);
      else list.splice(0, i);
    }
    this.links.flush(this.ctx.clock.nowMs());
  }

  registerApi(registry: ApiHandlerRegistry): void {
    registerDlmApi(registry, this);
  }

  // ----------------------------------------------------------------------------------------------
  // Sessions

  /** Opens a session whose events go to `listener`; returns its id. */
  openSession(listener: DlmListener): number {
    const s = this.core.openSession();
    this.listeners.set(s, listener);
    return s;
  }

  /** Closes `session` (its locks are released, or orphaned when PERSISTENT). */
  closeSession(session: number): void {
    this.listeners.delete(session);
    this.core.closeSession(session);
    this.flush();
  }

  // ----------------------------------------------------------------------------------------------
  // Lockspaces

  /**
   * Opens lockspace `name` on this node: joins its group (level 1) and calls `done` once this
   * node is a member of a view of it (at once when it already is).
   */
  openLockspace(name: string, done: (r: Result<undefined, DlmError>) => void, lvbLen = DLM_LVB_BYTES_DEFAULT): void {
    const bad = lockspaceNameProblem(name);
    if (bad !== null) {
      done(err(new DlmError('INVALID', bad)));
      return;
    }
    const opened = this.core.open(name, lvbLen);
    if (!opened.ok) {
      done(opened);
      return;
    }
    if (opened.value.joined) {
      done(ok(undefined));
      return;
    }
    const waiting = this.joining.get(name) ?? [];
    waiting.push(done);
    this.joining.set(name, waiting);
    if (waiting.length > 1) return;
    // The lockspace takes part in its group's recovery rounds (level 1): this node reports
    // `started` only once the DLM's own recovery for the round's members ended here, so level-2
    // groups (volumes) start on a lock manager that runs again.
    this.recovery.participate(lockspaceGroup(name), {
      stop: (_group, _generation, stopped) => {
        stopped(); // the lockspace stops itself on the view change that removed the member
      },
      start: (start, started) => {
        // A newer round replaces an older one's start (the recovery service ignores the older answer).
        this.starting = this.starting.filter((x) => x.ls !== name);
        this.starting.push({ ls: name, start, done: started });
        this.checkStarts();
      },
    });
    this.groups.join(lockspaceGroup(name), LOCKSPACE_LEVEL, (r) => {
      if (!r.ok) {
        const list = this.joining.get(name) ?? [];
        this.joining.delete(name);
        const e = new DlmError('NO_LOCKSPACE', `could not join lockspace ${name}: ${r.error.message}`);
        for (const d of list) d(err(e));
        return;
      }
      this.noteViews();
    });
  }

  /** Applies the lockspaces' group views this node has not seen yet. */
  private noteViews(): void {
    for (const ls of this.core.lockspaces()) {
      const view = this.groups.group(lockspaceGroup(ls.name));
      if (view === null || this.seenViews.get(ls.name) === view.groupViewId) continue;
      this.seenViews.set(ls.name, view.groupViewId);
      // Links first: the view change sends the directory rebuild to the members.
      for (const m of view.members) {
        if (m.node === this.ctx.nodeId || this.links.incarnationOf(m.node) === m.incarnation) continue;
        this.overflow.delete(m.node); // what waited was for an older incarnation (or nobody)
        this.links.connect(m.node, m.incarnation);
      }
      this.core.onView(
        ls.name,
        view.groupViewId,
        view.members.map((m) => ({ node: m.node, incarnation: m.incarnation })),
      );
      if (ls.joined) {
        const list = this.joining.get(ls.name) ?? [];
        this.joining.delete(ls.name);
        for (const d of list) d(ok(undefined));
      }
    }
    this.flush();
  }

  // ----------------------------------------------------------------------------------------------
  // Host notifications

  onApplied(): void {
    if (this.core.lockspaces().length === 0) return;
    this.noteViews();
    this.core.checkRecoveries();
    this.flush();
  }

  /**
   * Whether incarnation `incarnation` of `node`, gone from a lockspace, can hold nothing any more:
   * no fence of it is pending (it left cleanly, or its fence is recorded). Until then it may still
   * be running and holding its locks, so its resources wait.
   */
  private departedSafe(node: NodeId, incarnation: number): boolean {
    return !this.membership.machine.pendingFences().some((f) => f.node === node && f.incarnation <= incarnation);
  }

  onRestored(_index: LogIndex): void {
    this.noteViews();
  }

  onTick(nowMs: number): void {
    // Nothing to do on a node that opened no lockspace (no links either: they follow lockspaces).
    if (this.core.lockspaces().length === 0) return;
    // Every lockspace hears the verdict each tick (a no-op when unchanged), so one opened since
    // the last change learns it too.
    this.core.setQuorate(this.membership.localQuorum().quorate);
    this.core.onTick(nowMs);
    this.links.onTick(nowMs);
    this.flush();
  }

  onPeerGone(peer: NodeId, _incarnation: number): void {
    this.ctx.trace('dlm-peer-gone', { peer });
  }

  onStop(): void {
    const waiting = [...this.joining.values()].flat();
    this.joining.clear();
    for (const d of waiting) d(err(new DlmError('NO_LOCKSPACE', 'the node is stopping')));
    for (const s of [...this.listeners.keys()]) this.closeSession(s);
  }
}
