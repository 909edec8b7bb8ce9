/**
 * The command interpreter of the cluster scenario scripts (testdata/cluster, run by
 * `cluster-scenario.test.ts`; the language is described in testdata/cluster/README.md).
 *
 * A `ClusterScript` drives one `ClusterHarness` (production `CohortNode`s on virtual time) and
 * prints state, never wall-clock times: views, quorum verdicts, node records, the event stream,
 * and what each node's observer saw of the service groups. Requests that take time (group
 * operations, writes, leaves, fence confirmations) are operations: a command waits for its own
 * operation unless told `wait=false`, and a barrier never waits (it needs the other members'
 * arrivals). An operation that completes while a later command runs prints after that command's
 * own output as `#N what: result`, so outcomes appear at the step where they happened.
 *
 * Deterministic: one seed drives the harness; nothing here reads a clock or iterates object keys.
 */
import { assert } from '../lib/assert.js';
import type { Result } from '../lib/errors.js';
import { nodeId } from '../lib/ids.js';
import { DEFAULT_VOTEQUORUM_OPTIONS, type TieBreakerMode } from '../quorum/index.js';
import type { FencePayload, MembershipEvent } from '../membership/index.js';
import type { GroupMember } from '../groups/index.js';
import { describeRecoveryEvent } from '../recovery/index.js';
import { CLUSTER_CANARIES, type ClusterCanary, type NodeObserver } from '../services.js';
import { expectArgs, hasArg, intArg, stringArg, stringsArg, type ScriptCommand } from '../testing/datadriven.js';
import { ClusterHarness } from './cluster-harness.js';

/** Most operations a script may have in flight at once. */
export const SCRIPT_OPS_PENDING_MAX = 64;
/** Default limit of `run-until` and of a waiting command, in virtual ms. */
const WAIT_LIMIT_MS_DEFAULT = 10_000;
/** Most events one `events` command prints. */
const EVENTS_PRINTED_MAX = 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Anything with a stable code and a one-line message (RaftNodeError, GroupError, ...). */
interface CodedError {
  readonly code: string;
  readonly message: string;
}

/** An operation in flight: its label and, once it completed, its result line. */
interface Operation {
  readonly id: number;
  readonly label: string;
  /** The command that started it waits for it: its result is that command's output. */
  readonly waited: boolean;
  result: string | null;
}

function fail(cmd: ScriptCommand, message: string): Error {
  return new Error(`${cmd.pos}: ${cmd.name}: ${message}`);
}

/** `1,2,3` (or `(1,2,3)`) as node ids. */
function parseIds(cmd: ScriptCommand, raw: readonly string[]): number[] {
  const ids = raw.flatMap((r) => r.split(',')).filter((s) => s !== '');
  return ids.map((s) => {
    if (!/^\d+$/.test(s)) throw fail(cmd, `expected node ids like 1,2,3, got ${s}`);
    return Number(s);
  });
}

function member(m: { readonly node: number; readonly incarnation: number }): string {
  return `${m.node}@${m.incarnation}`;
}

function groupMembers(members: readonly GroupMember[]): string {
  return `(${members.map((m) => `${member(m)}${m.level === 0 ? '' : `/l${m.level}`}`).join(',')})`;
}

function errorLine(e: CodedError): string {
  return `error ${e.code}: ${e.message}`;
}

function tieBreaker(cmd: ScriptCommand): TieBreakerMode {
  const raw = stringArg(cmd, 'tie-breaker', 'off');
  if (raw === 'off' || raw === 'lowest' || raw === 'highest') return { kind: raw };
  return { kind: 'list', nodes: parseIds(cmd, [raw]).map(nodeId) };
}

/**
 * One event of the stream on one line: `#seq v<viewId> kind: what`. A node event always shows
 * its cause (it is the only thing that tells `needs-fencing -> needs-fencing` apart); a view
 * event's cause only with `causes` (a detector's cause holds measured silences, which change
 * with any timing tweak).
 */
export function formatEvent(e: MembershipEvent, causes: boolean): string {
  const head = `#${e.seq} v${e.viewId}`;
  switch (e.kind) {
    case 'view': {
      const p = e.payload;
      const cause = causes ? ` (${p.change.cause})` : '';
      return `${head} view: ${member(p.change)} ${p.change.kind}${cause} -> members=(${p.members.map(member).join(',')}) ${p.quorate ? 'quorate' : `not-quorate(${p.reason})`}`;
    }
    case 'quorum':
      return `${head} quorum: ${e.payload.quorate ? 'quorate' : 'not-quorate'} (${e.payload.reason})`;
    case 'node': {
      const p = e.payload;
      return `${head} node: ${p.node}@${p.incarnation} ${p.from} -> ${p.to} (${p.cause})`;
    }
    case 'group': {
      const p = e.payload;
      return `${head} group ${p.group}: view ${p.groupViewId} ${groupMembers(p.members)} after ${member(p.change)} ${p.change.kind}`;
    }
    case 'barrier':
      return `${head} barrier ${e.payload.group}/${e.payload.name}: ${e.payload.outcome} in group view ${e.payload.groupViewId}`;
    case 'fence':
      return `${head} fence: ${member(e.payload)} ${fenceDetail(e.payload, causes)}`;
    case 'recovery':
      return `${head} ${describeRecoveryEvent(e.payload)}`;
  }
}

/** What a fence event says, briefly (a request's reason only with `causes`: it may hold measured silences). */
function fenceDetail(p: FencePayload, causes: boolean): string {
  switch (p.what) {
    case 'requested':
      return causes ? `requested (${p.reason})` : 'requested';
    case 'attempt':
      return `attempt level ${p.attempt.level} ${p.attempt.device} ${p.attempt.action}: ${p.attempt.result} (round ${p.attempt.round})`;
    case 'fenced':
      return `fenced by ${p.proof.by}${p.proof.by === 'confirm' ? '' : ` (level ${p.proof.level} ${p.proof.device})`}`;
    case 'unfenced':
      return `unfenced ${p.unfence.device}: ${p.unfence.result}`;
  }
}

/** See the module comment. One instance per script file. */
export class ClusterScript {
  private harness: ClusterHarness | null = null;
  /** What each node's observer saw of the groups since the last `deliveries`. */
  private readonly seen = new Map<number, string[]>();
  /** The next event seq `events N` prints for node N. */
  private readonly eventCursor = new Map<number, number>();
  private readonly ops = new Map<number, Operation>();
  /** Result lines of operations nobody waited for, in completion order, not printed yet. */
  private readonly completed: string[] = [];
  private nextOp = 1;

  /** `canary` plants a bug in every cluster the script builds (to prove a script can fail). */
  constructor(private readonly canary?: ClusterCanary) {}

  /** Runs one command; returns its output followed by the operations completed meanwhile. */
  run(cmd: ScriptCommand): string {
    const out = this.dispatch(cmd);
    return [out, ...this.completed.splice(0)].filter((l) => l !== '').join('\n');
  }

  private get h(): ClusterHarness {
    if (this.harness === null) throw new Error('no cluster yet: start the script with `cluster nodes=N`');
    return this.harness;
  }

  private dispatch(cmd: ScriptCommand): string {
    expectArgs(cmd, argsOf(cmd.name));
    switch (cmd.name) {
      case 'cluster':
        return this.cluster(cmd);
      case 'run':
        this.h.runMs(this.int(cmd, 0));
        return this.pendingCount() === 0
          ? this.completed.length === 0
            ? 'ok'
            : ''
          : `still pending: ${[...this.ops.keys()].map((id) => `#${id}`).join(' ')}`;
      case 'run-until':
        return this.runUntil(cmd);
      case 'wait':
        this.waitFor(cmd, () => this.pendingCount() === 0);
        return this.completed.length === 0 ? 'ok' : '';
      case 'crash':
      case 'restart':
      case 'pause':
      case 'resume':
        return this.lifecycle(cmd);
      case 'partition':
        this.h.partition(cmd.positional.flatMap((p) => p.split('|')).map((side) => parseIds(cmd, [side])));
        return 'ok';
      case 'heal':
        this.h.heal();
        return 'ok';
      case 'status':
        return this.nodesArg(cmd)
          .map((id) => this.statusLine(id))
          .join('\n');
      case 'events':
        return this.events(cmd);
      case 'group':
        return this.groupViews(cmd);
      case 'deliveries':
        return this.deliveries(cmd);
      default:
        return this.request(cmd);
    }
  }

  /** `cluster nodes=N [votes=1,1,2] [tie-breaker=off|lowest|highest|3,1] [seed=N] [canary=NAME]`. */
  private cluster(cmd: ScriptCommand): string {
    if (this.harness !== null) throw fail(cmd, 'a script builds one cluster');
    const votes = parseIds(cmd, stringsArg(cmd, 'votes', []));
    const named = hasArg(cmd, 'canary') ? stringArg(cmd, 'canary') : undefined;
    const canary = named === undefined ? this.canary : CLUSTER_CANARIES.find((c) => c === named);
    if (named !== undefined && canary === undefined)
      throw fail(cmd, `unknown canary ${named}; one of ${CLUSTER_CANARIES.join(', ')}`);
    this.harness = new ClusterHarness({
      nodes: intArg(cmd, 'nodes', 3),
      votes,
      quorum: { ...DEFAULT_VOTEQUORUM_OPTIONS, autoTieBreaker: tieBreaker(cmd) },
      seed: intArg(cmd, 'seed', 42),
      ...(canary === undefined ? {} : { canary }),
      observerOf: (id) => this.observer(id),
    });
    return this.h.ids.map((id) => `${id}: votes=${this.h.specs[id - 1]?.votes ?? 0}`).join('\n');
  }

  private observer(id: number): NodeObserver {
    const out = this.seen.get(id) ?? [];
    this.seen.set(id, out);
    return {
      onGroupView: (g, v) =>
        out.push(`view ${g} ${v.groupViewId} ${groupMembers(v.members)} after ${member(v.change)} ${v.change.kind}`),
      onGroupDeliver: (g, view, seq, from, payload) =>
        out.push(`msg ${g} ${view}#${seq} from ${from}: ${decoder.decode(payload)}`),
      onBarrier: (g, name, view, outcome) => out.push(`barrier ${g}/${name} in view ${view}: ${outcome}`),
    };
  }

  private int(cmd: ScriptCommand, i: number): number {
    const raw = cmd.positional[i];
    if (raw === undefined || !/^\d+$/.test(raw)) throw fail(cmd, `argument ${i + 1} must be a number`);
    return Number(raw);
  }

  /** The node id at positional `i`, checked against the cluster. */
  private node(cmd: ScriptCommand, i = 0): number {
    const id = this.int(cmd, i);
    if (!this.h.ids.includes(nodeId(id))) throw fail(cmd, `no node ${id} (the cluster has ${this.h.ids.length})`);
    return id;
  }

  /** Node ids at positional 0, or every node. */
  private nodesArg(cmd: ScriptCommand): number[] {
    return cmd.positional.length === 0 ? this.h.ids.map(Number) : parseIds(cmd, cmd.positional);
  }

  private pendingCount(): number {
    return this.ops.size;
  }

  private waitFor(cmd: ScriptCommand, cond: () => boolean): void {
    this.h.runUntil(cond, intArg(cmd, 'limit', WAIT_LIMIT_MS_DEFAULT));
  }

  private lifecycle(cmd: ScriptCommand): string {
    const id = this.node(cmd);
    switch (cmd.name) {
      case 'crash': {
        const host = stringArg(cmd, 'host', 'down');
        if (host !== 'up' && host !== 'down') throw new Error(`crash host=${host}: expected up or down`);
        this.h.crash(id, host === 'up');
        break;
      }
      case 'restart':
        this.h.restart(id);
        this.seen.get(id)?.push(`-- restarted as incarnation ${this.h.node(id).incarnation}`);
        return `${id}@${this.h.node(id).incarnation} started`;
      case 'pause':
        this.h.pause(id);
        break;
      default:
        this.h.resume(id, intArg(cmd, 'delay', 0));
    }
    return 'ok';
  }

  /**
   * `run-until quorate 1,2,3`: those nodes joined, are quorate, and agree on a view of exactly
   * them; `not-quorate 4,5`: those nodes report not quorate; `done`: no operation is in flight.
   * Fails the script after `limit` ms (default 10 000).
   */
  private runUntil(cmd: ScriptCommand): string {
    const what = cmd.positional[0] ?? '(none)';
    const cond = ((): (() => boolean) => {
      switch (what) {
        case 'quorate':
          return this.quorateCond(parseIds(cmd, cmd.positional.slice(1)));
        case 'not-quorate': {
          const ids = parseIds(cmd, cmd.positional.slice(1));
          return () => ids.every((id) => !this.h.node(id).services.membership.status().quorate);
        }
        case 'done':
          return () => this.pendingCount() === 0;
        default:
          throw fail(cmd, `unknown condition ${what}; use quorate, not-quorate or done`);
      }
    })();
    this.waitFor(cmd, cond);
    return this.completed.length === 0 ? 'ok' : '';
  }

  private quorateCond(ids: readonly number[]): () => boolean {
    const want = ids.join(',');
    return () => {
      const views = new Set<number>();
      for (const id of ids) {
        const s = this.h.node(id).services.membership.status();
        if (!s.quorate || !s.joined || s.members.map((m) => m.nodeId).join(',') !== want) return false;
        views.add(s.viewId);
      }
      return views.size === 1;
    };
  }

  /** `N@inc: role lead=L view=V quorate|not-quorate(reason) members=(..) others=(..)`. */
  private statusLine(id: number): string {
    if (this.h.isDown(id)) return `${id}: down`;
    const n = this.h.node(id);
    const s = n.services.membership.status();
    const q = s.quorate ? 'quorate' : `not-quorate(${s.quorumReason})`;
    const others = n.services.membership
      .nodes()
      .filter((r) => r.status !== 'member')
      .map(
        (r) =>
          `${r.nodeId}:${r.status}${r.incarnation === 0 ? '' : `@${r.incarnation}`}${r.rejoin === 0 ? '' : `+rejoin@${r.rejoin}`}`,
      );
    const lead = s.leaderId === null ? '-' : String(s.leaderId);
    return `${id}@${s.incarnation}: ${s.role} lead=${lead} view=${s.viewId} ${q} ${s.joined ? 'joined' : 'not-joined'} members=(${s.members.map((m) => member({ node: m.nodeId, incarnation: m.incarnation })).join(',')}) others=(${others.join(',')})`;
  }

  /** `events N [from=SEQ] [causes=true]`: node N's events from SEQ (default: where the last `events N` stopped). */
  private events(cmd: ScriptCommand): string {
    const id = this.node(cmd);
    const causes = stringArg(cmd, 'causes', 'false') === 'true';
    let seq = intArg(cmd, 'from', this.eventCursor.get(id) ?? 1);
    const lines: string[] = [];
    for (;;) {
      const page = this.h.node(id).services.membership.eventsFrom(seq, EVENTS_PRINTED_MAX);
      if (!page.ok) return [...lines, errorLine(page.error)].join('\n');
      for (const e of page.value.events) lines.push(formatEvent(e, causes));
      if (page.value.events.length === 0 || page.value.next === seq) break;
      assert(lines.length <= EVENTS_PRINTED_MAX, `more than ${EVENTS_PRINTED_MAX} events to print; use from=`);
      seq = page.value.next;
    }
    this.eventCursor.set(id, seq);
    return lines.length === 0 ? 'no new events' : lines.join('\n');
  }

  /** `group NAME [1,2,3]`: each node's current view of group NAME. */
  private groupViews(cmd: ScriptCommand): string {
    const [name, ...rest] = cmd.positional;
    if (name === undefined) throw fail(cmd, 'missing group name');
    const ids = rest.length === 0 ? this.h.ids.map(Number) : parseIds(cmd, rest);
    return ids
      .map((id) => {
        if (this.h.isDown(id)) return `${id}: down`;
        const g = this.h.node(id).services.groups.group(name);
        return `${id}: ${g === null ? 'no such group' : `view ${g.groupViewId} ${groupMembers(g.members)}`}`;
      })
      .join('\n');
  }

  /** `deliveries [1,2,3]`: what each node saw of the groups since the last call (identical lists collapse). */
  private deliveries(cmd: ScriptCommand): string {
    const out: string[] = [];
    const printed = new Map<number, string>();
    for (const id of this.nodesArg(cmd)) {
      const lines = (this.seen.get(id) ?? []).splice(0);
      const key = lines.join('\n');
      let same: number | undefined;
      for (const [other, k] of printed) if (same === undefined && k === key) same = other;
      if (lines.length === 0) out.push(`${id}: nothing`);
      else if (same !== undefined) out.push(`${id}: same as ${same}`);
      else out.push(...lines.map((l) => `${id}: ${l}`));
      if (lines.length > 0) printed.set(id, key);
    }
    return out.join('\n');
  }

  /** Starts operation `label`; `start` calls its completion callback with the result line. */
  private operation(
    cmd: ScriptCommand,
    label: string,
    waited: boolean,
    start: (done: (line: string) => void) => void,
  ): string {
    assert(this.pendingCount() < SCRIPT_OPS_PENDING_MAX, `more than ${SCRIPT_OPS_PENDING_MAX} operations in flight`);
    // Only operations nobody waits for are numbered: their results print later, under the number.
    const op: Operation = { id: waited ? 0 : this.nextOp++, label, waited, result: null };
    this.ops.set(op.id, op);
    start((line) => {
      assert(op.result === null, `operation #${op.id} completed twice`);
      op.result = line;
      this.ops.delete(op.id);
      if (!op.waited) this.completed.push(`#${op.id} ${op.label}: ${line}`);
    });
    if (!waited) return op.result === null ? `#${op.id} ${label}: pending` : '';
    this.waitFor(cmd, () => op.result !== null);
    return op.result ?? '';
  }

  /** The operations: group-join, group-leave, send, barrier, put, leave, fence-confirm. */
  private request(cmd: ScriptCommand): string {
    const waited = stringArg(cmd, 'wait', cmd.name === 'barrier' ? 'false' : 'true') === 'true';
    const id = this.node(cmd);
    const n = this.h.node(id);
    const label = `${cmd.name} ${cmd.positional.join(' ')}`;
    const arg = (i: number, what: string): string => {
      const v = cmd.positional[i];
      if (v === undefined) throw fail(cmd, `missing ${what}`);
      return v;
    };
    switch (cmd.name) {
      case 'group-join':
        return this.operation(cmd, label, waited, (done) => {
          n.services.groups.join(arg(1, 'group'), intArg(cmd, 'level', 0), (r) => {
            done(
              r.ok
                ? `ok: ${r.value.group} view ${r.value.groupViewId} ${groupMembers(r.value.members)}`
                : errorLine(r.error),
            );
          });
        });
      case 'group-leave':
        return this.operation(cmd, label, waited, (done) => {
          n.services.groups.leave(arg(1, 'group'), (r) => {
            done(resultLine(r, () => 'ok'));
          });
        });
      case 'send':
        return this.operation(cmd, label, waited, (done) => {
          n.services.groups.send(arg(1, 'group'), encoder.encode(arg(2, 'text')), (r) => {
            done(resultLine(r, (v) => `ok: delivered as ${v.groupViewId}#${v.seq}`));
          });
        });
      case 'barrier':
        return this.operation(cmd, label, waited, (done) => {
          n.services.groups.barrier(arg(1, 'group'), arg(2, 'barrier name'), (r) => {
            done(resultLine(r, (v) => `reached in view ${v.groupViewId}`));
          });
        });
      case 'put':
        return this.operation(cmd, label, waited, (done) => {
          n.services.kv.put(arg(1, 'key'), encoder.encode(arg(2, 'value')), (r) => {
            done(resultLine(r, () => 'ok'));
          });
        });
      case 'leave':
        return this.leave(cmd, id, label, waited);
      case 'fence-confirm':
        return this.fenceConfirm(cmd, id, label, waited);
      default:
        throw fail(cmd, 'unknown command (see testdata/cluster/README.md)');
    }
  }

  /** `leave N [stop=false]`: node N leaves cleanly, then stops as the daemon does on SIGTERM. */
  private leave(cmd: ScriptCommand, id: number, label: string, waited: boolean): string {
    const stop = stringArg(cmd, 'stop', 'true') === 'true';
    return this.operation(cmd, label, waited, (done) => {
      this.h.node(id).services.membership.leave(intArg(cmd, 'timeout', 3000), (e) => {
        // Stopped after the node's callback returns, as a daemon exits after its leave call.
        if (stop)
          this.h.scheduler.after(0, () => {
            if (!this.h.isDown(id)) this.h.crash(id);
          });
        done(`${e === null ? 'ok' : errorLine(e)}${stop ? '; stopping' : ''}`);
      });
    });
  }

  /** `fence-confirm N [on=M] [inc=I]`: the operator confirms N's incarnation I (default: the pending one) fenced, at node M. */
  private fenceConfirm(cmd: ScriptCommand, id: number, label: string, waited: boolean): string {
    const on = hasArg(cmd, 'on')
      ? intArg(cmd, 'on')
      : this.h.ids.map(Number).find((x) => x !== id && !this.h.isDown(x));
    if (on === undefined) throw fail(cmd, 'no running node to confirm the fence at');
    return this.operation(cmd, label, waited, (done) => {
      this.h
        .node(on)
        .services.membership.fenceConfirm(nodeId(id), hasArg(cmd, 'inc') ? intArg(cmd, 'inc') : null, (r) => {
          done(
            resultLine(
              r,
              (v) =>
                `ok at ${on}: ${v.nodeId}@${v.incarnation} fenced (${v.outcome}); now ${v.status}${v.admitted === null ? '' : `, admitted @${v.admitted}`}, view ${v.viewId}`,
            ),
          );
        });
    });
  }
}

function resultLine<T>(r: Result<T, CodedError>, ok: (v: T) => string): string {
  return r.ok ? ok(r.value) : errorLine(r.error);
}

/** The `key=` arguments each command takes (checked so a typo fails the script). */
function argsOf(name: string): string[] {
  switch (name) {
    case 'cluster':
      return ['nodes', 'votes', 'tie-breaker', 'seed', 'canary'];
    case 'events':
      return ['from', 'causes'];
    case 'run-until':
    case 'wait':
      return ['limit'];
    case 'resume':
      return ['delay'];
    case 'crash':
      return ['host'];
    case 'group-join':
      return ['level', 'wait', 'limit'];
    case 'leave':
      return ['stop', 'timeout', 'wait', 'limit'];
    case 'fence-confirm':
      return ['on', 'inc', 'wait', 'limit'];
    case 'group-leave':
    case 'send':
    case 'barrier':
    case 'put':
      return ['wait', 'limit'];
    default:
      return [];
  }
}
