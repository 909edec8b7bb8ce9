/**
 * The DLM's peer messages (docs/dlm.md, "Distribution"): what one node's lockspace core says to
 * another's, carried in order and exactly once by `ReliableLinks` over the DLM channel (never
 * through the cluster log).
 *
 * - Directory traffic, tagged with the lockspace's generation (its group view id): `lookup` and
 *   `lookup-reply` (who masters a name; the first node to ask becomes its master), `remove` (a
 *   master dropped an unused resource), and the rebuild after a lockspace view change: `claim`
 *   (the names a node masters, sent to their new directory nodes) and `rebuilt` (sent last).
 * - Recovery after a member departed, also tagged: `remaster` (a lock whose master departed,
 *   resent to the resource's new master with its state) and `remastered` (sent to every member
 *   once a node resent all its locks).
 * - Lock traffic between a lock's node and the resource's master, not tagged (both ends stay the
 *   same incarnations while the link lives): `op` (request, convert, unlock, cancel), and back
 *   `done` (a completion), `bast` (a blocking notification), `moot` (a cancel found nothing to
 *   cancel: no completion comes from it) and `refused` (the master refused the operation).
 */
import { stringValue, unionValue, type FieldReader } from '../transport/message-fields.js';
import type { NodeId } from '../lib/ids.js';
import {
  DLM_CLAIM_NAMES_MAX,
  DLM_LOCKSPACE_NAME_BYTES_MAX,
  DLM_LVB_BYTES_MAX,
  DLM_RESOURCE_NAME_BYTES_MAX,
} from '../constants.js';
import { LKF_ALL, LOCK_STATUSES, type LockMode, type LockStatus } from './lock-types.js';

/** An operation a lock's node asks its master to run. */
export type DlmOpKind = 'request' | 'convert' | 'unlock' | 'cancel';

export const DLM_OP_KINDS: readonly DlmOpKind[] = ['request', 'convert', 'unlock', 'cancel'];

/** Why a master refused an operation (`refused`). */
export type DlmRefusal = 'not-master' | 'INVALID' | 'BUSY' | 'NOT_FOUND' | 'EXISTS';

export const DLM_REFUSALS: readonly DlmRefusal[] = ['not-master', 'INVALID', 'BUSY', 'NOT_FOUND', 'EXISTS'];

/** One DLM peer message; see the file comment. */
export type DlmMessage =
  | { readonly t: 'lookup'; readonly ls: string; readonly gen: number; readonly name: string }
  | {
      readonly t: 'lookup-reply';
      readonly ls: string;
      readonly gen: number;
      readonly name: string;
      readonly master: NodeId;
    }
  | { readonly t: 'remove'; readonly ls: string; readonly gen: number; readonly name: string }
  | { readonly t: 'claim'; readonly ls: string; readonly gen: number; readonly names: readonly string[] }
  | {
      readonly t: 'rebuilt';
      readonly ls: string;
      readonly gen: number;
      /** The sender recovers in this generation (a member departed): so does everyone (a joiner too). */
      readonly recovering: boolean;
    }
  | {
      readonly t: 'remaster';
      readonly ls: string;
      readonly gen: number;
      readonly name: string;
      readonly lkid: number;
      /** The lock's granted mode, -1 for none (a waiting request). */
      readonly granted: LockMode | -1;
      /** The mode it waits for, -1 for none (granted, nothing pending). */
      readonly requested: LockMode | -1;
      readonly flags: number;
      readonly bast: boolean;
    }
  | { readonly t: 'remastered'; readonly ls: string; readonly gen: number }
  | {
      readonly t: 'op';
      readonly ls: string;
      readonly op: DlmOpKind;
      readonly name: string;
      readonly lkid: number;
      /** The requested mode (request, convert); 0 otherwise. */
      readonly mode: LockMode;
      readonly flags: number;
      /** The lock's owner wants blocking notifications. */
      readonly bast: boolean;
      /** The caller's value block (convert, unlock with VALBLK), or null. */
      readonly lvb: Uint8Array | null;
      /** cancel: the status its completion carries (`cancelled`, or `timeout` for a TIMEOUT request). */
      readonly status: 'cancelled' | 'timeout';
    }
  | {
      readonly t: 'done';
      readonly ls: string;
      readonly lkid: number;
      readonly status: LockStatus;
      /** The granted mode after the operation; -1 when the lock ended. */
      readonly mode: LockMode | -1;
      readonly sbflags: number;
      readonly lvb: Uint8Array | null;
    }
  | { readonly t: 'bast'; readonly ls: string; readonly lkid: number; readonly mode: LockMode }
  | { readonly t: 'moot'; readonly ls: string; readonly lkid: number }
  | {
      readonly t: 'refused';
      readonly ls: string;
      readonly lkid: number;
      /** The refused operation (a cancel's refusal must not be taken for its request's). */
      readonly op: DlmOpKind;
      readonly code: DlmRefusal;
      readonly message: string;
    };

const LKID_MAX = Number.MAX_SAFE_INTEGER;
const GEN_MAX = Number.MAX_SAFE_INTEGER;
const REFUSAL_MESSAGE_MAX = 512;

function mode(r: FieldReader, name: string): LockMode {
  return r.int(name, 0, 5) as LockMode;
}

function lvb(r: FieldReader): Uint8Array | null {
  return r.has('lvb') ? r.bytes('lvb', DLM_LVB_BYTES_MAX) : null;
}

const ls = (r: FieldReader): string => r.string('ls', DLM_LOCKSPACE_NAME_BYTES_MAX);
const resName = (r: FieldReader): string => r.string('name', DLM_RESOURCE_NAME_BYTES_MAX);

/** Validates a decoded value as a `DlmMessage`; throws `DecodeError` only. */
export function validateDlmMessage(value: unknown, path = 'DlmMessage'): DlmMessage {
  return unionValue<DlmMessage>(value, path, 't', {
    lookup: (r) => ({ t: 'lookup', ls: ls(r), gen: r.int('gen', 0, GEN_MAX), name: resName(r) }),
    'lookup-reply': (r) => ({
      t: 'lookup-reply',
      ls: ls(r),
      gen: r.int('gen', 0, GEN_MAX),
      name: resName(r),
      master: r.nodeId('master'),
    }),
    remove: (r) => ({ t: 'remove', ls: ls(r), gen: r.int('gen', 0, GEN_MAX), name: resName(r) }),
    claim: (r) => ({
      t: 'claim',
      ls: ls(r),
      gen: r.int('gen', 0, GEN_MAX),
      names: r.array('names', DLM_CLAIM_NAMES_MAX, (v, p) => stringValue(v, p, DLM_RESOURCE_NAME_BYTES_MAX)),
    }),
    rebuilt: (r) => ({
      t: 'rebuilt',
      ls: ls(r),
      gen: r.int('gen', 0, GEN_MAX),
      recovering: r.has('recovering') ? r.bool('recovering') : false,
    }),
    remaster: (r) => ({
      t: 'remaster',
      ls: ls(r),
      gen: r.int('gen', 0, GEN_MAX),
      name: resName(r),
      lkid: r.int('lkid', 1, LKID_MAX),
      granted: r.int('granted', -1, 5) as LockMode | -1,
      requested: r.int('requested', -1, 5) as LockMode | -1,
      flags: r.int('flags', 0, LKF_ALL),
      bast: r.bool('bast'),
    }),
    remastered: (r) => ({ t: 'remastered', ls: ls(r), gen: r.int('gen', 0, GEN_MAX) }),
    op: (r) => ({
      t: 'op',
      ls: ls(r),
      op: r.enum('op', DLM_OP_KINDS),
      name: resName(r),
      lkid: r.int('lkid', 1, LKID_MAX),
      mode: mode(r, 'mode'),
      flags: r.int('flags', 0, LKF_ALL),
      bast: r.bool('bast'),
      lvb: lvb(r),
      status: r.enum('status', ['cancelled', 'timeout'] as const),
    }),
    done: (r) => ({
      t: 'done',
      ls: ls(r),
      lkid: r.int('lkid', 1, LKID_MAX),
      status: r.enum('status', LOCK_STATUSES),
      mode: r.int('mode', -1, 5) as LockMode | -1,
      sbflags: r.int('sbflags', 0, 7),
      lvb: lvb(r),
    }),
    bast: (r) => ({ t: 'bast', ls: ls(r), lkid: r.int('lkid', 1, LKID_MAX), mode: mode(r, 'mode') }),
    moot: (r) => ({ t: 'moot', ls: ls(r), lkid: r.int('lkid', 1, LKID_MAX) }),
    refused: (r) => ({
      t: 'refused',
      ls: ls(r),
      lkid: r.int('lkid', 1, LKID_MAX),
      op: r.enum('op', DLM_OP_KINDS),
      code: r.enum('code', DLM_REFUSALS),
      message: r.string('message', REFUSAL_MESSAGE_MAX),
    }),
  });
}
