/**
 * No lost wake-ups in the DLM, judged from the clients' trace through the reply checker's model
 * of the locks (`dlm-reply-checker.ts`):
 *
 * - **Every accepted operation gets its completion** (liveness, `satisfied`): once the liveness
 *   phase began (no faults; every client unlocks what it holds and cancels nothing), the run must
 *   reach a state with no operation in flight and no live lock. At the end of the run a
 *   `dlm-wakeup` violation lists what still waits (besides the simulator's `liveness` verdict).
 * - **A holder in the way is told** (research/dlm.md 1.7): while a queued request or conversion
 *   (without NOQUEUE) waits, every holder registered for blocking notifications whose mode
 *   blocks it (and which has no operation of its own in flight: a converting lock is not on the
 *   granted queue) must get a blocking notification since its last grant within `bastBoundMs`
 *   of the later of the two: the waiter's call and the holder's grant. "Since its last grant",
 *   not "for this waiter": the DLM sends a lock at most one notification per mode until it is
 *   granted again, so one notification may speak for several waiters. A holder that asked for
 *   notifications only with a conversion that failed (its choice stays) is owed one only for
 *   waiters that called after that conversion completed: the DLM sends notifications when a
 *   request queues or a pass grants, not when a conversion fails (nor does Linux).
 */
import { MODE_NAMES } from '../../dlm/lock-types.js';
import { compatible } from '../../dlm/lock-modes.js';
import { LKF } from '../../dlm/lock-types.js';
import type { Checker, Liveness } from '../workload.js';
import type { SimEvent } from '../trace.js';
import { isLivenessPhase } from './dlm-events.js';
import type { DlmReplyChecker, ModelLock } from './dlm-reply-checker.js';

/** How often the notification rule is evaluated, virtual µs. */
const BAST_CHECK_PERIOD_US = 100_000;

/** See the module comment. */
export class DlmWakeupChecker implements Checker, Liveness {
  readonly name = 'dlm-wakeup';
  private livenessStarted = false;
  private nextCheckUs = 0;
  private readonly reported = new Set<string>();
  /** Notification rule evaluations that found a waiter behind a holder (for the stats). */
  checks = 0;

  constructor(
    private readonly replies: DlmReplyChecker,
    private readonly options: { readonly boundMs: number; readonly bastBoundMs: number },
    private readonly violation: (message: string) => void,
  ) {}

  get boundMs(): number {
    return this.options.boundMs;
  }

  observe(e: SimEvent): void {
    if (isLivenessPhase(e)) this.livenessStarted = true;
    if (e.timeUs < this.nextCheckUs) return;
    this.nextCheckUs = e.timeUs + BAST_CHECK_PERIOD_US;
    this.checkBasts(e.timeUs);
  }

  /** Evaluates the notification rule at `nowUs`. */
  checkBasts(nowUs: number): void {
    const byRes = new Map<string, ModelLock[]>();
    for (const l of this.replies.locks()) {
      const list = byRes.get(l.res) ?? [];
      list.push(l);
      byRes.set(l.res, list);
    }
    const boundUs = this.options.bastBoundMs * 1000;
    for (const [res, locks] of byRes)
      for (const w of locks) {
        const op = w.ops[0];
        if (op === undefined || op.kind === 'unlock' || op.optional || (op.flags & LKF.NOQUEUE) !== 0) continue;
        for (const h of locks) {
          if (h === w || !h.bast || h.granted === null || h.ops.length > 0 || compatible(h.granted, op.mode)) continue;
          // A choice made by a later failed conversion binds the master only for waiters that came after it.
          if (h.bastSinceUs !== h.grantUs && op.callUs <= h.bastSinceUs) continue;
          this.checks++;
          if (h.bastUs >= h.grantUs) continue;
          const since = Math.max(op.callUs, h.grantUs);
          if (nowUs - since <= boundUs) continue;
          const tag = `${h.key}@${h.grantUs}`;
          if (this.reported.has(tag)) continue;
          this.reported.add(tag);
          this.violation(
            `resource ${res}: lock ${h.key} holds ${MODE_NAMES[h.granted] ?? '?'} and wants blocking notifications, ` +
              `lock ${w.key} has waited for ${MODE_NAMES[op.mode] ?? '?'} for ${Math.round((nowUs - op.callUs) / 1000)} ms, ` +
              `and the holder got no notification in ${Math.round((nowUs - since) / 1000)} ms since its grant`,
          );
        }
      }
  }

  satisfied(): boolean {
    if (!this.livenessStarted) return false;
    for (const _ of this.replies.locks()) return false;
    return true;
  }

  describe(): string {
    const waiting: string[] = [];
    for (const l of this.replies.locks()) {
      const op = l.ops[0];
      waiting.push(
        `${l.key} on ${l.res} (${l.granted === null ? 'not granted' : `holds ${MODE_NAMES[l.granted] ?? '?'}`}${
          op === undefined ? '' : `, ${op.kind} ${MODE_NAMES[op.mode] ?? '?'} in flight`
        })`,
      );
      if (waiting.length >= 8) break;
    }
    return `locks still live or waiting: ${waiting.join('; ')}`;
  }

  finish(): void {
    if (this.livenessStarted && !this.satisfied()) this.violation(this.describe());
  }
}
