/**
 * `GroupService`: service groups on a node (docs/groups.md): join with a level, leave, totally
 * ordered messages delivered to exactly the members of the view they were sent in, barriers that
 * complete when every member of the view reached them or fail with `VIEW_CHANGED`.
 *
 * The group table lives in the membership state machine (a member leaving the cluster view
 * leaves its groups in the same log entry), so this service proposes through the membership
 * service's machine handle and reads the group events it applies. It delivers messages and
 * reports group views and barrier ends to its observer, and settles local barrier waiters; after
 * a snapshot it replays what the snapshot skipped from what the group table retains, reporting a
 * gap for what it no longer holds.
 */
import { assertNever, defined } from '../lib/assert.js';
import { err, ok, type Result } from '../lib/errors.js';
import { GroupError, type GroupErrorCode } from './group-error.js';
import type { LogIndex, NodeId } from '../lib/ids.js';
import { GROUP_BARRIERS_PENDING_MAX, GROUPS_MAX, MEMBERSHIP_EVENTS_READ_MAX } from '../constants.js';
import type { MembershipOutput, MembershipService, MembershipStateMachine } from '../membership/index.js';
import type { ApiHandlerRegistry } from '../api/index.js';
import type { AppliedEntry, NodeService, ServiceContext } from '../runtime/node-service.js';
import { registerGroupApi } from './group-handlers.js';
import { RaftNodeError } from '../runtime/raft-node.js';
import { validateGroupCommand, type GroupCommand } from './group-command.js';
import type { BarrierOutcome, GroupApply, GroupOutcome, GroupView, GroupViewPayload } from './group-table.js';

/** What a group message stream carries: this node's deliveries and the group's view changes, in apply order. */
export type GroupStreamItem =
  | {
      readonly kind: 'message';
      readonly groupViewId: number;
      readonly seq: number;
      readonly from: number;
      readonly payload: Uint8Array;
    }
  | { readonly kind: 'view'; readonly view: GroupViewPayload };

/** Group events worth observing from outside (the API's streams, logs, tests), called synchronously. */
export interface GroupObserver {
  /** A service group's view changed (applied here; every node sees every group's views). */
  onGroupView?(group: string, view: GroupViewPayload): void;
  /**
   * A group message was delivered here: this node's incarnation is a member of the group view
   * `groupViewId` the message was sent in. Messages of one view arrive in `seq` order.
   */
  onGroupDeliver?(group: string, groupViewId: number, seq: number, from: NodeId, payload: Uint8Array): void;
  /**
   * This member missed messages `fromSeq..toSeq` of group view `groupViewId`: it caught up through
   * a snapshot and they were no longer retained. Treat the group as rejoined (re-read its state).
   */
  onGroupGap?(group: string, groupViewId: number, fromSeq: number, toSeq: number): void;
  /** A barrier of a group ended (applied here; every node sees every barrier's end). */
  onBarrier?(group: string, name: string, groupViewId: number, outcome: BarrierOutcome): void;
}

/** See the file comment. */
export class GroupService implements NodeService {
  readonly name = 'groups';
  private ctxRef: ServiceContext | null = null;
  /** Per group, the last message this incarnation delivered (for catching up after a snapshot). */
  private readonly deliveredUpTo = new Map<string, { readonly groupViewId: number; readonly seq: number }>();
  /** Per group, the last view this incarnation saw applied and whether it is a member of it. */
  private readonly groupViews = new Map<string, { readonly groupViewId: number; readonly member: boolean }>();
  /** The newest membership event this node reported to its observer (groups, barriers). */
  private eventsSeen = 0;
  /** Open `group.messages` streams by group. */
  private readonly streams = new Map<string, Set<(item: GroupStreamItem) => void>>();
  /** Local barrier waiters by group and barrier name. */
  private readonly barrierWaiters = new Map<string, BarrierWaiter[]>();

  constructor(
    /** The membership service: the group table lives in its machine. */
    private readonly members: MembershipService,
    private readonly opts: { readonly observer?: GroupObserver } = {},
  ) {}

  attach(ctx: ServiceContext): void {
    this.ctxRef = ctx;
    this.eventsSeen = this.membership.nextEventSeq - 1;
  }

  private get ctx(): ServiceContext {
    return defined(this.ctxRef, 'the groups service is attached');
  }

  private get membership(): MembershipStateMachine {
    return this.members.machine;
  }

  /**
   * Calls `fn` with every message this node delivers for `group` and every view change of it, in
   * apply order (the API's `group.messages` stream); returns the function that unsubscribes.
   */
  subscribe(group: string, fn: (item: GroupStreamItem) => void): () => void {
    const set = this.streams.get(group) ?? new Set();
    set.add(fn);
    this.streams.set(group, set);
    return () => {
      set.delete(fn);
      if (set.size === 0) this.streams.delete(group);
    };
  }

  /** Registers the group methods of the local API (`group-handlers.ts`). */
  registerApi(registry: ApiHandlerRegistry): void {
    registerGroupApi(registry, this);
  }

  /** Every group's current view, as applied here. */
  list(): GroupView[] {
    return this.membership.groups();
  }

  /** One group's view as applied here, or null when it has no members. */
  group(name: string): GroupView | null {
    return this.membership.group(name);
  }

  /**
   * Joins `group` with `level` (0..GROUP_LEVEL_MAX; lower levels recover first) as this node's
   * incarnation (`GROUP_LEVEL_MISMATCH` when the group exists with another level); `done` gets the group view the join created (or the current one when this
   * incarnation already was a member). Needs this incarnation in the cluster view.
   */
  join(group: string, level: number, done: (r: Result<GroupView, RaftNodeError | GroupError>) => void): void {
    this.groupCommand(
      { type: 'group-join', group, node: this.members.nodeId, incarnation: this.ctx.incarnation, level },
      true,
      (r) => {
        done(
          r.ok
            ? ok(this.membership.group(group) ?? { group, groupViewId: r.value.groupViewId, level, members: [] })
            : r,
        );
      },
    );
  }

  /** Leaves `group`; `done` runs once this node applied the leave (a no-op when not a member). */
  leave(group: string, done: (r: Result<void, RaftNodeError | GroupError>) => void): void {
    this.groupCommand(
      { type: 'group-leave', group, node: this.members.nodeId, incarnation: this.ctx.incarnation },
      true,
      (r) => {
        done(r.ok ? ok(undefined) : r);
      },
    );
  }

  /**
   * Sends `payload` to `group` in the group view this node has applied. It is delivered, in one
   * total order, to exactly the members of that view (`onGroupDeliver`), this node included; or
   * refused `VIEW_CHANGED` when the view changed before it was ordered (nothing is delivered: read
   * the new view, then send again if still wanted). `OUTCOME_UNKNOWN`/`TIMEOUT` mean it may or
   * may not have been delivered (it is never delivered twice).
   */
  send(
    group: string,
    payload: Uint8Array,
    done: (r: Result<{ readonly groupViewId: number; readonly seq: number }, RaftNodeError | GroupError>) => void,
  ): void {
    const member = this.memberView(group);
    if (!member.ok) {
      done(member);
      return;
    }
    const view = member.value;
    this.groupCommand(
      {
        type: 'group-send',
        group,
        node: this.members.nodeId,
        incarnation: this.ctx.incarnation,
        groupViewId: view.groupViewId,
        payload,
      },
      false,
      (r) => {
        if (!r.ok) done(r);
        else
          done(
            ok({
              groupViewId: r.value.groupViewId,
              seq: defined(r.value.delivery, 'an applied send has a delivery').seq,
            }),
          );
      },
    );
  }

  /**
   * Reaches barrier `name` of `group` in the group view this node has applied. `done` runs when
   * every member of that view has reached it, or with `VIEW_CHANGED` when the view changes first
   * (every member gets the same verdict at the same log position).
   */
  barrier(
    group: string,
    name: string,
    done: (r: Result<{ readonly groupViewId: number }, RaftNodeError | GroupError>) => void,
  ): void {
    const member = this.memberView(group);
    if (!member.ok) {
      done(member);
      return;
    }
    const view = member.value;
    // The waiter is registered before proposing: the barrier's end is an event that may be
    // applied here before the answer to a forwarded arrival arrives, and it settles the waiter.
    const key = barrierKey(group, name);
    let settled = false;
    const waiter: BarrierWaiter = {
      groupViewId: view.groupViewId,
      caller: done,
      done: (r) => {
        if (settled) return;
        settled = true;
        this.removeBarrierWaiter(key, waiter);
        done(r);
      },
    };
    const list = this.barrierWaiters.get(key) ?? [];
    list.push(waiter);
    this.barrierWaiters.set(key, list);
    this.groupCommand(
      {
        type: 'barrier',
        group,
        name,
        node: this.members.nodeId,
        incarnation: this.ctx.incarnation,
        groupViewId: view.groupViewId,
      },
      true,
      (r) => {
        if (!r.ok) waiter.done(r);
        else if (r.value.barrierReached === true) waiter.done(ok({ groupViewId: view.groupViewId }));
        // Otherwise the end event settles it (it may have already).
      },
    );
  }

  private removeBarrierWaiter(key: string, waiter: BarrierWaiter): void {
    const rest = (this.barrierWaiters.get(key) ?? []).filter((w) => w !== waiter);
    if (rest.length === 0) this.barrierWaiters.delete(key);
    else this.barrierWaiters.set(key, rest);
  }

  /** The group's view if this incarnation is a member of it, else the refusal to give the caller. */
  private memberView(group: string): Result<GroupView, GroupError> {
    const view = this.membership.group(group);
    if (view !== null && this.members.isMe(view.members)) return ok(view);
    return err(
      new GroupError(
        view === null ? 'NO_SUCH_GROUP' : 'NOT_MEMBER',
        `node ${this.members.nodeId} (incarnation ${this.ctx.incarnation}) is not a member of group ${group}; join it first`,
        view?.groupViewId ?? 0,
      ),
    );
  }

  private groupCommand(
    command: GroupCommand,
    idempotent: boolean,
    done: (r: Result<GroupApply, RaftNodeError | GroupError>) => void,
  ): void {
    const invalid = validateGroupCommand(command);
    if (invalid !== null) {
      done(err(new GroupError('INVALID', invalid.message, 0)));
      return;
    }
    this.members.handle.propose(command, { idempotent }, (r) => {
      if (!r.ok) {
        done(r);
        return;
      }
      const g = defined(r.value.group, 'a group command yields a group result');
      const code = groupErrorCode(g.outcome, command.type);
      if (code === null) done(ok(g));
      else done(err(new GroupError(code, groupRefusal(code, command, g.level), g.groupViewId)));
    });
  }

  /** Stops waiting for barrier `name` of `group` here (the arrival stays recorded); for cancellation. */
  cancelBarrierWait(
    group: string,
    name: string,
    done: (r: Result<{ readonly groupViewId: number }, RaftNodeError | GroupError>) => void,
  ): void {
    const key = barrierKey(group, name);
    const rest = (this.barrierWaiters.get(key) ?? []).filter((w) => w.caller !== done);
    if (rest.length === 0) this.barrierWaiters.delete(key);
    else this.barrierWaiters.set(key, rest);
  }

  onApplied(applied: AppliedEntry): void {
    const result = this.members.handle.outputOf(applied);
    if (result?.ok === true) this.noteGroups(result.value);
  }

  /** Every local barrier waiter completes with `STOPPED`. */
  onStop(): void {
    const waiters = [...this.barrierWaiters.values()].flat();
    this.barrierWaiters.clear();
    const stopped = new RaftNodeError('STOPPED', 'the node is stopping');
    for (const w of waiters) w.done(err(stopped));
  }

  onRestored(_index: LogIndex): void {
    this.catchUpGroups();
    // A snapshot may skip a barrier's end beyond the retained events: settle the waiters whose
    // barrier the restored state shows reached in their view (ok) or whose view ended
    // (VIEW_CHANGED); the others still wait (their arrival may not even be applied yet).
    for (const [key, list] of [...this.barrierWaiters]) {
      const [group = '', name = ''] = key.split('\u0000');
      const view = this.membership.group(group);
      for (const w of [...list]) {
        if (view?.groupViewId !== w.groupViewId) w.done(err(viewChanged(group, w.groupViewId)));
        else if (this.membership.barrierReached(group, name)) w.done(ok({ groupViewId: w.groupViewId }));
      }
    }
  }

  /** Group events and deliveries of one applied membership entry. */
  private noteGroups(output: MembershipOutput): void {
    const g = output.group;
    if (g?.delivery !== undefined && this.members.isMe(g.delivery.members)) {
      this.deliver(g.delivery.group, g.groupViewId, g.delivery.seq, g.delivery.from, g.delivery.payload);
    }
    if (output.events > 0) this.reportGroupEvents(false);
  }

  /**
   * Reports the group and barrier events applied since the last report (`eventsSeen`), in order:
   * the events of the entry just applied, or (`catchUp`) those a snapshot skipped, from the
   * retained event window.
   */
  private reportGroupEvents(catchUp: boolean): void {
    for (
      let page = this.membership.eventsFrom(this.eventsSeen + 1, MEMBERSHIP_EVENTS_READ_MAX);
      page.ok;
      page = this.membership.eventsFrom(page.value.next, MEMBERSHIP_EVENTS_READ_MAX)
    ) {
      for (const e of page.value.events) {
        if (e.kind === 'group') this.noteGroupView(e.payload, catchUp);
        else if (e.kind === 'barrier') {
          const p = e.payload;
          this.opts.observer?.onBarrier?.(p.group, p.name, p.groupViewId, p.outcome);
          this.endBarrier(p.group, p.name, p.groupViewId, p.outcome);
        }
      }
      if (page.value.events.length < MEMBERSHIP_EVENTS_READ_MAX) break;
    }
    this.eventsSeen = this.membership.nextEventSeq - 1;
  }

  private deliver(group: string, groupViewId: number, seq: number, from: NodeId, payload: Uint8Array): void {
    this.deliveredUpTo.set(group, { groupViewId, seq });
    this.opts.observer?.onGroupDeliver?.(group, groupViewId, seq, from, payload);
    this.publish(group, { kind: 'message', groupViewId, seq, from, payload });
  }

  /**
   * After a snapshot replaced the state: report the group and barrier events the snapshot
   * skipped (from the retained event window) in order and, before each group view change, deliver
   * the messages of the view that ended which this member missed; then those of each current
   * view. The messages come from what the group retains (docs/groups.md, "Catching up"); any
   * that are no longer retained are reported as a gap (`onGroupGap`): the application must treat
   * the group as rejoined.
   */
  private catchUpGroups(): void {
    this.reportGroupEvents(true);
    for (const view of this.membership.groups()) {
      if (!this.members.isMe(view.members)) continue;
      this.groupViews.set(view.group, { groupViewId: view.groupViewId, member: true });
      this.fillGroup(view.group, view.groupViewId, this.membership.groupSeq(view.group));
    }
  }

  /**
   * A group view change applied (or replayed after a snapshot, `catchUp`): first the messages
   * this member missed in the view that ended, then the observer's `onGroupView`.
   */
  private noteGroupView(v: GroupViewPayload, catchUp: boolean): void {
    const prev = this.groupViews.get(v.group);
    if (catchUp && prev?.member === true) this.fillGroup(v.group, prev.groupViewId, v.prevSeq);
    this.groupViews.set(v.group, { groupViewId: v.groupViewId, member: this.members.isMe(v.members) });
    this.opts.observer?.onGroupView?.(v.group, v);
    this.publish(v.group, { kind: 'view', view: v });
  }

  private publish(group: string, item: GroupStreamItem): void {
    const set = this.streams.get(group);
    if (set !== undefined) for (const fn of [...set]) fn(item);
  }

  /** Delivers the retained messages of `groupViewId` after the last one delivered here, up to `upTo`; reports what is missing. */
  private fillGroup(group: string, groupViewId: number, upTo: number): void {
    const last = this.deliveredUpTo.get(group);
    const after = last?.groupViewId === groupViewId ? last.seq : 0;
    if (upTo <= after) return;
    let next = after + 1;
    for (const m of this.membership.retainedMessages(group)) {
      if (m.groupViewId !== groupViewId || m.seq < next || m.seq > upTo) continue;
      if (m.seq > next) this.groupGap(group, groupViewId, next, m.seq - 1);
      this.deliver(group, groupViewId, m.seq, m.from, m.payload);
      next = m.seq + 1;
    }
    if (next <= upTo) this.groupGap(group, groupViewId, next, upTo);
  }

  private groupGap(group: string, groupViewId: number, from: number, to: number): void {
    this.ctx.trace('group-gap', { group, view: groupViewId, from, to });
    this.opts.observer?.onGroupGap?.(group, groupViewId, from, to);
  }

  /** Completes the local waiters of a barrier that ended. */
  private endBarrier(group: string, name: string, groupViewId: number, outcome: BarrierOutcome): void {
    const key = barrierKey(group, name);
    const list = this.barrierWaiters.get(key);
    if (list === undefined) return;
    const rest = list.filter((w) => w.groupViewId !== groupViewId);
    for (const w of list)
      if (w.groupViewId === groupViewId)
        w.done(outcome === 'reached' ? ok({ groupViewId }) : err(viewChanged(group, groupViewId)));
    if (rest.length === 0) this.barrierWaiters.delete(key);
    else this.barrierWaiters.set(key, rest);
  }
}

/** A local caller waiting for a barrier's end; `done` settles once (then the entry is removed). */
interface BarrierWaiter {
  readonly groupViewId: number;
  /** The caller's callback (to find the waiter when the caller cancels). */
  readonly caller: (r: Result<{ readonly groupViewId: number }, RaftNodeError | GroupError>) => void;
  readonly done: (r: Result<{ readonly groupViewId: number }, RaftNodeError | GroupError>) => void;
}

function barrierKey(group: string, name: string): string {
  return `${group}\u0000${name}`;
}

function viewChanged(group: string, groupViewId: number): GroupError {
  return new GroupError(
    'VIEW_CHANGED',
    `the view of group ${group} changed (view ${groupViewId} ended) before every member reached the barrier; read the new view and run the barrier again`,
    groupViewId,
  );
}

function groupErrorCode(outcome: GroupOutcome, type: GroupCommand['type']): GroupErrorCode | null {
  switch (outcome) {
    case 'applied':
      return null;
    case 'duplicate':
      return null;
    case 'not-in-view':
      return 'NOT_IN_VIEW';
    case 'not-member':
      return 'NOT_MEMBER';
    case 'no-such-group':
      return type === 'group-leave' ? null : 'NO_SUCH_GROUP';
    case 'view-changed':
      return 'VIEW_CHANGED';
    case 'level-mismatch':
      return 'GROUP_LEVEL_MISMATCH';
    case 'too-many-groups':
    case 'too-many-barriers':
      return 'LIMIT';
    default:
      return assertNever(outcome, 'group outcome');
  }
}

/** The refusal's message; `level` is the group's level (absent when the group does not exist). */
function groupRefusal(code: GroupErrorCode, c: GroupCommand, level: number | undefined): string {
  switch (code) {
    case 'VIEW_CHANGED':
      return `the view of group ${c.group} changed before the ${c.type === 'barrier' ? 'barrier arrival' : 'message'} was ordered; nothing was delivered: read the new view, then retry if still wanted`;
    case 'NOT_MEMBER':
      return `node ${c.node} (incarnation ${c.incarnation}) is not a member of group ${c.group}; join it first`;
    case 'NOT_IN_VIEW':
      return `node ${c.node} (incarnation ${c.incarnation}) is not in the cluster view yet; wait until it has joined the cluster`;
    case 'NO_SUCH_GROUP':
      return `group ${c.group} has no members`;
    case 'GROUP_LEVEL_MISMATCH':
      return `group ${c.group} has level ${level ?? '?'}, set by the join that created it; join it with level ${level ?? '?'}${c.type === 'group-join' ? ` (not ${c.level})` : ''}, or use another group`;
    case 'LIMIT':
      return `group ${c.group}: a group table bound was reached (at most ${GROUPS_MAX} groups, ${GROUP_BARRIERS_PENDING_MAX} pending barriers per group)`;
    case 'INVALID':
      return `group ${c.group}: malformed request`;
    default:
      return assertNever(code, 'group error code');
  }
}

export { GroupError, type GroupErrorCode } from './group-error.js';
