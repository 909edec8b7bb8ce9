/**
 * The membership service's peer message (channel `CHANNEL_MEMBERSHIP`, control lane): `Ping`,
 * sent to every peer once per heartbeat, carrying the sender's reachability row, so every node
 * learns who hears whom and the leader's failure detector can corroborate.
 */
import { msgpackCodec } from '../transport/message-codec.js';
import { FieldReader, invalidField, unionValue } from '../transport/message-fields.js';
import type { Codec } from '../transport/transport.js';
import { CLUSTER_NODES_MAX } from '../constants.js';
import type { ReachabilityEntry, ReachabilityRow } from './reachability-tracker.js';

/** Largest silence a reachability row reports, in ms (about 49 days; longer is clamped by the sender). */
export const ROW_SILENCE_MS_MAX = 0xffff_ffff;

/** A heartbeat to every peer with the sender's reachability row. */
export interface PingMessage {
  readonly type: 'Ping';
  readonly row: ReachabilityRow;
  /** The sender's monotonic clock when sent, whole ms (lets the leader date a late row back). */
  readonly sentMs?: number;
  /** The sender's incarnation (a late copy from an older one is ignored). */
  readonly inc?: number;
}

function readRowEntry(value: unknown, path: string): ReachabilityEntry {
  const r = FieldReader.of(value, path);
  const node = r.nodeId('node');
  const silentMs = r.has('silentMs') ? r.number('silentMs', 0, ROW_SILENCE_MS_MAX) : null;
  return { node, silentMs };
}

function readPing(r: FieldReader): PingMessage {
  const row = r.array('row', CLUSTER_NODES_MAX, readRowEntry);
  for (let i = 1; i < row.length; i++) {
    const prev = row[i - 1];
    const cur = row[i];
    if (prev !== undefined && cur !== undefined && prev.node >= cur.node)
      throw invalidField(`${r.path}.row[${i}].node`, 'node ids strictly ascending', cur.node);
  }
  const sentMs = r.has('sentMs') ? r.number('sentMs', 0, Number.MAX_SAFE_INTEGER) : undefined;
  const inc = r.has('inc') ? r.int('inc', 1, Number.MAX_SAFE_INTEGER) : undefined;
  return { type: 'Ping', row, ...(sentMs === undefined ? {} : { sentMs }), ...(inc === undefined ? {} : { inc }) };
}

/** Validates a decoded value as a `PingMessage`. Throws `DecodeError` only. */
export function validatePingMessage(value: unknown): PingMessage {
  return unionValue<PingMessage>(value, 'PingMessage', 'type', { Ping: readPing });
}

/** The membership channel's codec. */
export function pingCodec(): Codec<PingMessage> {
  return msgpackCodec(validatePingMessage);
}
