/**
 * Peer channels: every service's peer messages travel in their own channel, a one-byte id in
 * front of the bytes of that channel's own codec. The node's transport carries `ChannelMessage`s
 * with the codec `peerCodecOf(channels)` builds from every registered channel; the host hands
 * each arriving message to the service that opened the channel.
 *
 * Channel ids are wire format: stable across versions, never reused. A frame naming a channel the
 * node does not know is refused by the codec (`DecodeError`), like any other malformed frame.
 */
import { assert, assertInt } from '../lib/assert.js';
import { DecodeError } from '../lib/errors.js';
import type { Codec } from '../transport/transport.js';
import type { ChannelSpec } from './node-service.js';

/** One message on the peer transport: its channel and the channel's own message. */
export interface ChannelMessage {
  readonly channel: number;
  readonly message: unknown;
}

/** Channel of the Raft messages of the cluster log (the host's). */
export const CHANNEL_RAFT = 0;
/** Channel of the request router's forwards (the host's). */
export const CHANNEL_ROUTER = 1;

/** The node's peer codec over `channels` (ids unique, 0..255). */
export function peerCodecOf(channels: readonly ChannelSpec<unknown>[]): Codec<ChannelMessage> {
  const byId = new Map<number, ChannelSpec<unknown>>();
  for (const c of channels) {
    assertInt(c.id, 0, 255, `id of channel ${c.name}`);
    assert(!byId.has(c.id), `channel id ${c.id} is registered twice (${c.name}, ${byId.get(c.id)?.name})`);
    byId.set(c.id, c);
  }
  return {
    encode(m: ChannelMessage): Uint8Array {
      const spec = byId.get(m.channel);
      assert(spec !== undefined, `no channel has id ${m.channel}`);
      const body = spec.codec.encode(m.message);
      const out = new Uint8Array(body.length + 1);
      out[0] = m.channel;
      out.set(body, 1);
      return out;
    },
    decode(bytes: Uint8Array): ChannelMessage {
      const id = bytes[0];
      if (id === undefined) throw new DecodeError('DECODE_TRUNCATED', 'an empty peer message names no channel');
      const spec = byId.get(id);
      if (spec === undefined)
        throw new DecodeError('DECODE_INVALID', `no channel has id ${id} (a newer node sent it, or it is corrupt)`);
      return { channel: id, message: spec.codec.decode(bytes.subarray(1)) };
    },
  };
}
