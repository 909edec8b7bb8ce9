// Proves the resource engine follows the Linux DLM semantics of research/dlm.md 1.4-1.9, one
// table-driven scenario per rule: each step is an operation and the exact effects it must
// produce (outcome, completions in order, basts in order), plus queue and value-block snapshots.
//
// Step language (one string per step; `-> ...` is optional, without it only acceptance is checked):
//   <ref> req <MODE> [FLAG..] [nobast]          new request; <ref> = node[.lkid] (lkid 1 if left out)
//   <ref> cvt <MODE> [FLAG..] [nobast] [lvb=N]  conversion; lvb=N is 8 bytes of N (lvb=N/len: len bytes)
//   <ref> unlock [FLAG..] [lvb=N]               unlock
//   <ref> cancel | <ref> timeout                cancel with status cancelled / timeout
//   purge <node> | regrant [recovery]
//   state G <ref:MODE..> | C <ref:GR>RQ..> | W <ref:MODE..>     ('-' for an empty queue)
//   lvb <N|none> seq=<n> <valid|invalid>
// Effects render as: outcome (granted | queued | failed | ok | moot | purged N | error CODE);
// `cast <ref> <status> <MODE|-> [+SBF..] [lvb=N]`; `bast <ref> <MODE>`; all joined by '; '.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { nodeId } from '../lib/ids.js';
import { MODE_NAMES, SBF, newEffects, type LockMode, type LockRef, type ResourceEffects } from './lock-types.js';
import { parseMode } from './lock-modes.js';
import { parseFlags } from './lock-flags.js';
import { Resource, type LockView, type ResourceOptions } from './resource.js';

const LVB_LEN = 8;

function refOf(token: string): LockRef {
  const [node, lkid] = token.split('.');
  return { node: nodeId(Number(node)), lkid: lkid === undefined ? 1 : Number(lkid) };
}

function refName(ref: LockRef): string {
  return ref.lkid === 1 ? String(ref.node) : `${String(ref.node)}.${String(ref.lkid)}`;
}

function modeName(m: LockMode | null): string {
  return m === null ? '-' : (MODE_NAMES[m] ?? '?');
}

function lvbName(lvb: Uint8Array | null): string {
  if (lvb === null) return 'none';
  const first = lvb[0] ?? 0;
  if (lvb.every((b) => b === first)) return String(first);
  return [...lvb].map((b) => b.toString(16).padStart(2, '0')).join('');
}

function renderEffects(outcome: string, out: ResourceEffects): string {
  const parts = [outcome];
  for (const c of out.completions) {
    let s = `cast ${refName(c.ref)} ${c.status} ${modeName(c.mode)}`;
    for (const [name, bit] of Object.entries(SBF)) if ((c.sbflags & bit) !== 0) s += ` +${name}`;
    if (c.lvb !== null) s += ` lvb=${lvbName(c.lvb)}`;
    parts.push(s);
  }
  for (const b of out.basts) parts.push(`bast ${refName(b.ref)} ${modeName(b.mode)}`);
  return parts.join('; ');
}

function renderState(r: Resource): string {
  const d = r.dump();
  const section = (tag: string, locks: LockView[], f: (l: LockView) => string): string =>
    `${tag} ${locks.length === 0 ? '-' : locks.map(f).join(' ')}`;
  return [
    section('G', d.granted, (l) => `${refName(l.ref)}:${modeName(l.granted)}`),
    section('C', d.converting, (l) => `${refName(l.ref)}:${modeName(l.granted)}>${modeName(l.requested)}`),
    section('W', d.waiting, (l) => `${refName(l.ref)}:${modeName(l.requested)}`),
  ].join(' | ');
}

interface Parsed {
  mode: LockMode | null;
  flags: number;
  bast: boolean;
  lvb: Uint8Array | null;
}

function parseArgs(tokens: readonly string[]): Parsed {
  let mode: LockMode | null = null;
  const names: string[] = [];
  let bast = true;
  let lvb: Uint8Array | null = null;
  for (const t of tokens) {
    const m = parseMode(t);
    if (m !== null && mode === null) mode = m;
    else if (t === 'nobast') bast = false;
    else if (t.startsWith('lvb=')) {
      const [value, len] = t.slice(4).split('/');
      lvb = new Uint8Array(len === undefined ? LVB_LEN : Number(len)).fill(Number(value));
    } else names.push(t);
  }
  const flags = parseFlags(names);
  assert.equal(typeof flags, 'number', `flags in ${tokens.join(' ')}`);
  return { mode, flags: flags as number, bast, lvb };
}

/** Runs one step; returns the rendered effects (or null for a snapshot step that passed). */
function step(r: Resource, text: string): string {
  const tokens = text.trim().split(/\s+/);
  const out = newEffects();
  const [head = '', verb = '', ...rest] = tokens;
  const outcomeOf = <T>(
    res: { ok: true; value: T } | { ok: false; error: { code: string } },
    f: (v: T) => string,
  ): string => (res.ok ? f(res.value) : `error ${res.error.code}`);
  if (head === 'state') return renderState(r);
  if (head === 'lvb') {
    const d = r.dump();
    return `${lvbName(d.lvb)} seq=${String(d.lvbSeq)} ${d.lvbValid ? 'valid' : 'invalid'}`;
  }
  if (head === 'purge') return renderEffects(`purged ${String(r.purgeNode(nodeId(Number(verb)), out))}`, out);
  if (head === 'regrant') {
    r.regrant(verb === 'recovery', out);
    return renderEffects('ok', out);
  }
  const ref = refOf(head);
  const a = parseArgs(rest);
  let outcome: string;
  switch (verb) {
    case 'req':
      outcome = outcomeOf(r.request(ref, a.mode ?? 0, a.flags, a.bast, out), (v) => v);
      break;
    case 'cvt':
      outcome = outcomeOf(r.convert(ref, a.mode ?? 0, a.flags, a.bast, a.lvb, out), (v) => v);
      break;
    case 'unlock':
      outcome = outcomeOf(r.unlock(ref, a.flags, a.lvb, out), () => 'ok');
      break;
    case 'cancel':
    case 'timeout':
      outcome = outcomeOf(r.cancel(ref, verb === 'cancel' ? 'cancelled' : 'timeout', out), (v) => (v ? 'ok' : 'moot'));
      break;
    default:
      throw new Error(`unknown step ${text}`);
  }
  return renderEffects(outcome, out);
}

const norm = (s: string): string =>
  s
    .trim()
    .split(/\s*;\s*/)
    .join('; ')
    .replace(/\s+/g, ' ');

function run(steps: readonly string[], options: ResourceOptions = {}): void {
  const r = new Resource('res', LVB_LEN, options);
  for (const [i, s] of steps.entries()) {
    const [cmd = '', expected] = s.split('->');
    const got = step(r, cmd);
    const snapshot = cmd.trim().startsWith('state') || cmd.trim().startsWith('lvb');
    if (snapshot) {
      const want = cmd.trim().replace(/^(state|lvb)\s+/, '');
      assert.equal(norm(got), norm(want), `step ${String(i + 1)}: ${s}`);
    } else if (expected !== undefined) {
      assert.equal(norm(got), norm(expected), `step ${String(i + 1)}: ${s}`);
    } else {
      assert.ok(!got.startsWith('error'), `step ${String(i + 1)}: ${s}: ${got}`);
    }
  }
}

interface Scenario {
  /** The research/dlm.md section the scenario proves. */
  readonly cites: string;
  readonly name: string;
  readonly steps: readonly string[];
}

export const SCENARIOS: readonly Scenario[] = [
  // ---- research/dlm.md 1.4 rules ----
  {
    cites: '1.4 rule 1',
    name: 'EXPEDITE grants a new NL request at once, ignoring the queues',
    steps: [
      '1 req EX',
      '2 req CR -> queued; bast 1 CR',
      '3 req NL -> queued',
      '4 req NL EXPEDITE -> granted; cast 4 granted NL',
      'state G 1:EX 4:NL | C - | W 2:CR 3:NL',
    ],
  },
  {
    cites: '1.4 rule 2',
    name: "a request must be compatible with the converting locks' granted modes too",
    steps: [
      '1 req CR',
      '2 req PR',
      '2 cvt EX -> queued; bast 1 EX',
      // CW is compatible with 1's CR but not with 2's granted PR (2 is converting).
      '3 req CW NOORDER -> queued',
      '4 req CR NOORDER -> granted; cast 4 granted CR',
      'state G 1:CR 4:CR | C 2:PR>EX | W 3:CW',
    ],
  },
  {
    cites: '1.4 rules 3, 5, 7',
    name: 'QUECVT queues behind a conversion; only a recovery pass grants it out of order',
    steps: [
      '1 req PR',
      '2 req PR',
      '3 req NL',
      '2 cvt EX -> queued; bast 1 EX',
      '3 cvt PR QUECVT -> queued',
      'state G 1:PR | C 2:PR>EX 3:NL>PR | W -',
      // rule 7: 3 passes rule 2 but is not first on the convert queue.
      'regrant -> ok', // nothing to grant; high EX, and 1 has had its EX bast
      'state G 1:PR | C 2:PR>EX 3:NL>PR | W -',
      'regrant recovery -> ok; cast 3 granted PR; bast 3 EX',
      'state G 1:PR 3:PR | C 2:PR>EX | W -',
    ],
  },
  {
    cites: '1.4 rule 4',
    name: 'a compatible conversion is granted in place, ahead of waiting requests',
    steps: [
      '1 req PR',
      '2 req NL',
      '3 req EX -> queued; bast 1 EX',
      '2 cvt PR -> granted; cast 2 granted PR; bast 2 EX',
      'state G 1:PR 2:PR | C - | W 3:EX',
    ],
  },
  {
    cites: '1.4 rule 5',
    name: 'QUECVT with an empty convert queue is granted in place; not on a downward conversion',
    steps: [
      '1 req PR',
      '2 req NL',
      '3 req EX -> queued; bast 1 EX',
      '2 cvt PR QUECVT -> granted; cast 2 granted PR; bast 2 EX',
      '2 cvt NL QUECVT -> error INVALID',
      '2 cvt PR QUECVT -> error INVALID',
      '1 cvt CW QUECVT -> queued; bast 2 CW', // PR->CW is allowed (middle), blocked by 2's PR
    ],
  },
  {
    cites: '1.4 rule 6',
    name: 'NOORDER grants a queued conversion that passes rule 2 whatever its position',
    steps: [
      '1 req PR',
      '2 req PR',
      '3 req NL',
      '2 cvt EX -> queued; bast 1 EX',
      '3 cvt PR QUECVT NOORDER -> queued', // rule 5 comes first at request time
      '4 req NL EXPEDITE',
      '4 unlock -> ok; cast 4 unlocked -; cast 3 granted PR; bast 3 EX',
      'state G 1:PR 3:PR | C 2:PR>EX | W -',
    ],
  },
  {
    cites: '1.4 rule 7',
    name: 'queued conversions are granted first-in-queue, in order',
    steps: [
      '1 req EX',
      '2 req NL',
      '3 req NL',
      '2 cvt PR -> queued; bast 1 PR',
      '3 cvt PW -> queued; bast 1 PW',
      '1 unlock -> ok; cast 1 unlocked -; cast 2 granted PR; bast 2 PW',
      '2 unlock -> ok; cast 2 unlocked -; cast 3 granted PW',
    ],
  },
  {
    cites: '1.4 rule 8',
    name: 'a new request is granted only when both convert and wait queues are empty',
    steps: [
      '1 req PR',
      '2 req EX -> queued; bast 1 EX',
      '3 req PR -> queued', // compatible with 1, but 2 waits ahead
      '4 req PR',
      '4 cvt EX -> error BUSY', // 4 waits; not granted
      'state G 1:PR | C - | W 2:EX 3:PR 4:PR',
      '5 req NL EXPEDITE',
      '5 cancel -> moot',
      '2 cancel -> ok; cast 2 cancelled -; cast 3 granted PR; cast 4 granted PR',
      '6 req PR',
      '6 cvt EX -> queued; bast 3 EX; bast 4 EX', // 1 has had EX (for 2) and was not re-granted
      '7 req CR -> queued', // compatible with every granted mode, behind a conversion
    ],
  },
  {
    cites: '1.4 rule 9',
    name: 'a queued request is granted when the convert queue is empty and it is first',
    steps: [
      '1 req PR',
      '2 req NL',
      '2 cvt EX -> queued; bast 1 EX',
      '3 req CR -> queued',
      '4 req PW -> queued',
      '1 unlock -> ok; cast 1 unlocked -; cast 2 granted EX; bast 2 PW',
      '2 unlock -> ok; cast 2 unlocked -; cast 3 granted CR; cast 4 granted PW',
    ],
  },
  {
    cites: '1.4 rule 10',
    name: 'ALTPR / ALTCW grant in the alternate mode with SBF.ALTMODE, else queue as asked',
    steps: [
      '1 req PR',
      '2 req CW ALTPR -> granted; cast 2 granted PR +ALTMODE',
      '2 unlock -> ok; cast 2 unlocked -',
      '1 unlock -> ok; cast 1 unlocked -',
      '4 req CW',
      '5 req PR ALTCW -> granted; cast 5 granted CW +ALTMODE',
      '6 req EX ALTCW -> granted; cast 6 granted CW +ALTMODE',
      '7 req NL',
      '7 cvt PR ALTCW -> granted; cast 7 granted CW +ALTMODE',
      '8 req PW ALTPR -> queued; bast 4 PW; bast 5 PW; bast 6 PW; bast 7 PW',
      'state G 4:CW 5:CW 6:CW 7:CW | C - | W 8:PW',
    ],
  },
  {
    cites: '1.4 rule 10',
    name: 'the alternate mode is tried in a re-grant pass too',
    steps: [
      '1 req PR',
      '2 req EX -> queued; bast 1 EX',
      '3 req CW ALTPR -> queued; bast 1 CW',
      '2 cancel -> ok; cast 2 cancelled -; cast 3 granted PR +ALTMODE',
    ],
  },
  {
    cites: '1.4 rule 11, 1.5 NOQUEUE',
    name: 'NOQUEUE fails with again and no bast; the lock is gone',
    steps: [
      '1 req EX',
      '2 req PR NOQUEUE -> failed; cast 2 again -',
      'state G 1:EX | C - | W -',
      '2 req PR -> queued; bast 1 PR',
      '3 req NL EXPEDITE',
      '3 cvt EX NOQUEUE -> failed; cast 3 again NL',
      'state G 1:EX 3:NL | C - | W 2:PR',
      '4 req NL NOQUEUE -> failed; cast 4 again -', // compatible, but 2 waits (rule 8)
    ],
  },
  {
    cites: '1.5 NOQUEUEBAST',
    name: 'NOQUEUEBAST basts the granted and converting holders in the way, then fails',
    steps: [
      '1 req CR',
      '4 req PR',
      '5 req NL',
      '5 cvt EX NOQUEUE NOQUEUEBAST -> failed; cast 5 again NL; bast 4 EX; bast 1 EX',
      '5 cvt PW NOQUEUE -> failed; cast 5 again NL', // without NOQUEUEBAST: no bast
      '2 req PR',
      '2 cvt EX -> queued', // 4 and 1 have had EX
      // 4 (granted PR) gets CW after EX (the PR/CW exception); 2 (converting, granted PR) too.
      '3 req CW NOQUEUE NOQUEUEBAST -> failed; cast 3 again -; bast 4 CW; bast 2 CW',
    ],
  },
  {
    cites: '1.5 HEADQUE',
    name: 'HEADQUE puts a request at the head of the wait queue',
    steps: [
      '1 req EX',
      '2 req PW -> queued; bast 1 PW',
      '3 req PR HEADQUE -> queued', // 1 has had PW, higher than PR
      'state G 1:EX | C - | W 3:PR 2:PW',
      '1 unlock -> ok; cast 1 unlocked -; cast 3 granted PR; bast 3 PW',
    ],
  },
  {
    cites: '1.5 HEADQUE',
    name: 'HEADQUE puts a conversion at the head of the convert queue',
    steps: [
      '1 req PR',
      '2 req NL',
      '3 req NL',
      '2 cvt EX -> queued; bast 1 EX',
      '3 cvt PW HEADQUE -> queued',
      'state G 1:PR | C 3:NL>PW 2:NL>EX | W -',
      '1 unlock -> ok; cast 1 unlocked -; cast 3 granted PW; bast 3 EX',
    ],
  },
  {
    cites: '1.4 rule 6, 1.5 NOORDER',
    name: 'NOORDER grants a new request past the queues',
    steps: ['1 req PR', '2 req EX -> queued; bast 1 EX', '3 req PR NOORDER -> granted; cast 3 granted PR'],
  },
  // ---- research/dlm.md 1.9 conversion deadlock ----
  {
    cites: '1.9',
    name: 'default: the new conversion is cancelled with deadlock and keeps its granted mode',
    steps: [
      '1 req PR',
      '2 req PR',
      '1 cvt EX -> queued; bast 2 EX',
      '2 cvt EX -> failed; cast 2 deadlock PR',
      'state G 2:PR | C 1:PR>EX | W -',
      '2 unlock -> ok; cast 2 unlocked -; cast 1 granted EX',
    ],
  },
  {
    cites: '1.9, 1.4 rule 11',
    name: 'a NOQUEUE conversion is not queueable: again, not deadlock',
    steps: ['1 req PR', '2 req PR', '1 cvt EX -> queued; bast 2 EX', '2 cvt EX NOQUEUE -> failed; cast 2 again PR'],
  },
  {
    cites: '1.9, 1.5 CONVDEADLK',
    name: 'CONVDEADLK demotes the granted mode to NL; the other conversion goes first',
    steps: [
      '1 req PR',
      '2 req PR',
      '1 cvt EX -> queued; bast 2 EX',
      '2 cvt EX CONVDEADLK -> queued; cast 1 granted EX; bast 1 EX',
      'state G 1:EX | C 2:NL>EX | W -',
      '1 unlock -> ok; cast 1 unlocked -; cast 2 granted EX +DEMOTED',
    ],
  },
  {
    cites: '1.9, 1.5 CONVDEADLK',
    name: 'CONVDEADLK: after the demotion the conversion itself may be granted in place',
    steps: [
      '1 req PR',
      '2 req PR',
      '1 cvt CW -> queued; bast 2 CW',
      // 2's PR blocks 1's CW ahead: 2 is demoted to NL; 1 gets CW; then 2's CW fits in place.
      '2 cvt CW CONVDEADLK -> granted; cast 1 granted CW; cast 2 granted CW +DEMOTED',
      'state G 1:CW 2:CW | C - | W -',
    ],
  },
  {
    cites: '1.9, 1.5 NODLCKWT',
    name: 'NODLCKWT waits in the deadlock and basts the lock itself',
    steps: [
      '1 req PR',
      '2 req PR',
      '1 cvt PW -> queued; bast 2 PW',
      '2 cvt EX NODLCKWT -> queued; bast 2 EX',
      'state G - | C 1:PR>PW 2:PR>EX | W -',
      '2 cancel -> ok; cast 2 cancelled PR',
      '2 unlock -> ok; cast 2 unlocked -; cast 1 granted PW',
    ],
  },
  {
    cites: '1.9, 1.5 NODLCKWT, 1.4 re-grant pass',
    name: 'a re-grant pass basts a NODLCKWT conversion caught in a deadlock behind it',
    steps: [
      '1 req PR',
      '2 req PR',
      '1 cvt PW NODLCKWT -> queued; bast 2 PW',
      '2 cvt EX NODLCKWT -> queued; bast 2 EX',
      '3 req NL EXPEDITE',
      '3 unlock -> ok; cast 3 unlocked -; bast 1 PW',
    ],
  },
  {
    cites: '1.9, 1.5 CONVDEADLK, 1.4 re-grant pass',
    name: 'a re-grant pass demotes a CONVDEADLK conversion caught in a deadlock; DEMOTED on its grant',
    steps: [
      '1 req PR',
      '2 req PR',
      '1 cvt PW CONVDEADLK -> queued; bast 2 PW',
      '2 cvt EX NODLCKWT -> queued; bast 2 EX',
      '3 req NL EXPEDITE',
      '3 unlock -> ok; cast 3 unlocked -',
      'state G - | C 1:NL>PW 2:PR>EX | W -',
      '2 cancel -> ok; cast 2 cancelled PR',
      '2 unlock -> ok; cast 2 unlocked -; cast 1 granted PW +DEMOTED',
    ],
  },
  // ---- research/dlm.md 1.6 unlock and cancel ----
  {
    cites: '1.6',
    name: 'cancel: a waiting request ends, a conversion reverts, a granted lock is moot',
    steps: [
      '1 req PR',
      '2 req EX -> queued; bast 1 EX',
      '2 cancel -> ok; cast 2 cancelled -',
      'state G 1:PR | C - | W -',
      '3 req CR',
      '3 cvt EX -> queued',
      '3 timeout -> ok; cast 3 timeout CR',
      'state G 1:PR 3:CR | C - | W -',
      '3 cancel -> moot',
      '9 cancel -> error NOT_FOUND',
    ],
  },
  {
    cites: '1.6, 1.5 FORCEUNLOCK',
    name: 'unlock needs a granted lock with nothing pending, unless FORCEUNLOCK',
    steps: [
      '1 req EX',
      '2 req PR -> queued; bast 1 PR',
      '2 unlock -> error BUSY',
      '3 req NL EXPEDITE',
      '3 cvt PW -> queued; bast 1 PW',
      '3 unlock -> error BUSY',
      '3 cvt CR -> error BUSY',
      '2 unlock FORCEUNLOCK -> ok; cast 2 unlocked -',
      '3 unlock FORCEUNLOCK -> ok; cast 3 unlocked -',
      'state G 1:EX | C - | W -',
      '1 unlock -> ok; cast 1 unlocked -',
      '1 unlock -> error NOT_FOUND',
    ],
  },
  {
    cites: '1.6, 1.4 argument validation',
    name: 'refused calls: EXISTS, NOT_FOUND, INVALID flags and value blocks',
    steps: [
      '1 req PR',
      '1 req PR -> error EXISTS',
      '9 cvt PR -> error NOT_FOUND',
      '2 req PR CANCEL -> error INVALID',
      '2 req PR CONVERT -> error INVALID',
      '1 cvt EX EXPEDITE -> error INVALID',
      '1 cvt EX lvb=1/4 -> error INVALID',
      '1 unlock NOQUEUE -> error INVALID',
      '1 unlock CANCEL -> error INVALID',
      '1 unlock lvb=1/16 -> error INVALID',
      'state G 1:PR | C - | W -',
    ],
  },
  // ---- research/dlm.md 1.8 value blocks ----
  {
    cites: '1.8',
    name: 'written by a down-conversion from PW/EX with VALBLK, read on grants and up-conversions',
    steps: [
      '1 req EX VALBLK -> granted; cast 1 granted EX', // no value block yet
      'lvb none seq=0 valid',
      '1 cvt PW VALBLK lvb=7 -> granted; cast 1 granted PW',
      'lvb 7 seq=1 valid',
      '1 cvt PW VALBLK lvb=8 -> granted; cast 1 granted PW', // PW->PW writes too
      '1 cvt NL lvb=9 -> granted; cast 1 granted NL', // no VALBLK: untouched
      'lvb 8 seq=2 valid',
      '2 req PR VALBLK -> granted; cast 2 granted PR lvb=8',
      '3 req PR -> granted; cast 3 granted PR', // no VALBLK: nothing copied out
      '2 cvt NL VALBLK lvb=5 -> granted; cast 2 granted NL', // PR->NL: untouched
      '1 cvt CR VALBLK -> granted; cast 1 granted CR lvb=8',
      '1 cvt PR VALBLK -> granted; cast 1 granted PR lvb=8',
      'lvb 8 seq=2 valid',
    ],
  },
  {
    cites: '1.8, 1.6',
    name: 'unlock from PW/EX with VALBLK writes; from lower modes it does nothing',
    steps: [
      '1 req PW VALBLK',
      '1 unlock VALBLK lvb=3 -> ok; cast 1 unlocked -',
      'lvb 3 seq=1 valid',
      '2 req PR VALBLK -> granted; cast 2 granted PR lvb=3',
      '2 unlock VALBLK lvb=4 -> ok; cast 2 unlocked -',
      '3 req EX VALBLK', // the lock's own VALBLK counts at unlock
      '3 unlock lvb=6 -> ok; cast 3 unlocked -',
      'lvb 6 seq=2 valid',
      '4 req EX',
      '4 unlock lvb=9 -> ok; cast 4 unlocked -', // no VALBLK anywhere: untouched
      'lvb 6 seq=2 valid',
    ],
  },
  {
    cites: '1.8, 1.5 IVVALBLK',
    name: 'IVVALBLK invalidates; readers see VALNOTVALID and the old bytes until a write',
    steps: [
      '1 req EX VALBLK',
      '1 cvt PW VALBLK lvb=7',
      '1 cvt NL VALBLK IVVALBLK -> granted; cast 1 granted NL +VALNOTVALID',
      'lvb 7 seq=1 invalid',
      '2 req PR VALBLK -> granted; cast 2 granted PR +VALNOTVALID lvb=7',
      '3 req PR -> granted; cast 3 granted PR', // no VALBLK: no status flag
      '3 unlock',
      '2 cvt EX VALBLK -> granted; cast 2 granted EX +VALNOTVALID lvb=7',
      '2 cvt PW VALBLK lvb=2 -> granted; cast 2 granted PW',
      'lvb 2 seq=2 valid',
      '2 unlock IVVALBLK -> ok; cast 2 unlocked - +VALNOTVALID', // 2 has VALBLK
      'lvb 2 seq=2 invalid',
      '1 cvt CR VALBLK -> granted; cast 1 granted CR +VALNOTVALID lvb=2',
    ],
  },
  {
    cites: '1.8 invalidation by failure',
    name: 'purging a PW/EX holder with VALBLK invalidates; a PR holder or no VALBLK does not',
    steps: [
      '1 req PW VALBLK',
      '1 cvt PW VALBLK lvb=4',
      '2 req CR VALBLK -> granted; cast 2 granted CR lvb=4',
      '3 req EX -> queued; bast 1 EX; bast 2 EX',
      'purge 4 -> purged 0',
      'purge 2 -> purged 1',
      'lvb 4 seq=1 valid',
      'purge 1 -> purged 1; cast 3 granted EX',
      'lvb 4 seq=1 invalid',
      '3 unlock',
      '5 req PR VALBLK -> granted; cast 5 granted PR +VALNOTVALID lvb=4',
      '5.2 req PR VALBLK',
      '6 req EX -> queued; bast 5 EX; bast 5.2 EX',
      'purge 5 -> purged 2; cast 6 granted EX',
      '7 req NL VALBLK -> granted; cast 7 granted NL +VALNOTVALID lvb=4',
      'purge 6 -> purged 1',
      'lvb 4 seq=1 invalid',
    ],
  },
  {
    cites: '1.8, 1.5 FORCEUNLOCK',
    name: 'a forced unlock of a conversion from PW with VALBLK writes the value block',
    steps: [
      '3 req CR',
      '1 req PW VALBLK',
      '1 cvt EX VALBLK -> queued; bast 3 EX',
      '1 unlock FORCEUNLOCK lvb=5 -> ok; cast 1 unlocked -',
      'lvb 5 seq=1 valid',
      '4 req EX -> queued', // 3 has had EX (for 1) since its grant
      '4 timeout -> ok; cast 4 timeout -',
      'state G 3:CR | C - | W -',
    ],
  },
  // ---- research/dlm.md 1.7 blocking notifications ----
  {
    cites: '1.7',
    name: 'one bast per mode until re-granted; a higher mode gets a new one',
    steps: [
      '1 req PR',
      '2 req PW -> queued; bast 1 PW',
      '3 req EX -> queued; bast 1 EX',
      '4 req PW -> queued',
      '4 cancel -> ok; cast 4 cancelled -',
      // 1 is re-granted (CR): its bast record starts again, so EX goes to it once more.
      '1 cvt CR -> granted; cast 1 granted CR; cast 2 granted PW; bast 2 EX; bast 1 EX',
      '5 req NL EXPEDITE',
      '5 unlock -> ok; cast 5 unlocked -', // 2 and 1 have had EX since their grants
    ],
  },
  {
    cites: '1.7',
    name: 'a PR holder blocking a CW request gets a CW bast after a higher one, once',
    steps: [
      '1 req PR',
      '2 req EX -> queued; bast 1 EX',
      '3 req CW -> queued; bast 1 CW',
      '4 req CW -> queued',
      '2 cancel -> ok; cast 2 cancelled -',
    ],
  },
  {
    cites: '1.7',
    name: 'after a re-grant pass a PR holder gets a CW bast when a CW request is still blocked',
    steps: [
      '1 req PR nobast',
      '2 req NL',
      '3 req CW -> queued', // 1 wants no basts
      '4 req PR -> queued',
      '2 cvt PR -> granted; cast 2 granted PR; bast 2 CW',
    ],
  },
  {
    cites: '1.7',
    name: 'basts go only to holders registered for them whose mode blocks, never to the blocked lock',
    steps: [
      '1 req CR',
      '2 req PR nobast',
      '4 req CW -> queued', // 2 (PR) blocks CW but wants no basts; 1 (CR) does not block
      '6 req NL EXPEDITE',
      '6 cvt CW -> queued', // 2's PR blocks; 6 itself gets nothing
    ],
  },
];

for (const s of SCENARIOS) {
  test(`research/dlm.md ${s.cites}: ${s.name}`, () => {
    run(s.steps);
  });
}

test('research/dlm.md 1.4 rule 2 canary: skipping the convert queue check grants an incompatible lock', () => {
  const steps = SCENARIOS.find((s) => s.cites === '1.4 rule 2')?.steps ?? [];
  assert.ok(steps.length > 0);
  assert.throws(() => {
    run(steps, { canary: 'grant-incompatible' });
  }, /3 req CW NOORDER/);
});

test('get, dump, lockCount and isEmpty describe the queues', () => {
  const r = new Resource('res', LVB_LEN);
  const out = newEffects();
  const a = { node: nodeId(1), lkid: 1 };
  assert.equal(r.isEmpty(), true);
  assert.ok(r.request(a, 3, 0, true, out).ok);
  assert.deepEqual(r.get(a), { ref: a, granted: 3, requested: null, queue: 'granted', flags: 0, bast: true });
  assert.equal(r.get({ node: nodeId(1), lkid: 2 }), null);
  assert.equal(r.lockCount, 1);
  assert.equal(r.dump().name, 'res');
  assert.ok(r.unlock(a, 0, null, out).ok);
  assert.equal(r.isEmpty(), true);
});
