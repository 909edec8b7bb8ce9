/** Peer transport: the interface, message framing and codec (pure). */
export type { Codec, Transport, TransportHandlers } from './transport.js';
