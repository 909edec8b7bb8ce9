/** Peer transport: the interface, message framing and codec (pure). */
export type { Codec, Lane, Transport, TransportHandlers } from './transport.js';
export { DEFAULT_LANE, LANES } from './transport.js';
export {
  FRAME_HEADER_BYTES,
  FRAME_BODY_BYTES_MAX,
  FrameDecoder,
  type FrameLimits,
  encodeFrame,
  readFrameHeader,
  writeFrameHeader,
} from './frame-decoder.js';
export {
  BATCH_BYTES_MAX,
  BATCH_ENTRY_HEADER_BYTES,
  batchEntryBytes,
  checkBatch,
  encodeBatch,
  readBatch,
  writeBatch,
} from './message-batch.js';
export { MessageTooLargeError, msgpackCodec, type MsgpackCodecOptions } from './message-codec.js';
export {
  FieldReader,
  arrayValue,
  boolValue,
  bytesValue,
  describeValue,
  enumValue,
  intValue,
  invalidField,
  isPlainObject,
  nodeIdValue,
  numberValue,
  stringValue,
  unionValue,
} from './message-fields.js';
export {
  CLUSTER_NAME_BYTES_MAX,
  HANDSHAKE_LABELS,
  HANDSHAKE_MAGIC,
  HANDSHAKE_NONCE_BYTES,
  HANDSHAKE_PROOF_BYTES,
  HANDSHAKE_RECORD_BYTES_MAX,
  type ChallengeRecord,
  type FrameMode,
  type HandshakeRecord,
  type HelloRecord,
  type RefusalReason,
  type RefusalRecord,
  type ResponseRecord,
  type TranscriptFields,
  clusterNameProblem,
  decodeHandshakeRecord,
  encodeHandshakeRecord,
  explainRefusal,
  handshakeTranscript,
  laneCode,
  laneOfCode,
} from './handshake-record.js';
export {
  type ExampleGossip,
  type ExampleMessage,
  type ExamplePing,
  type ExamplePong,
  describeExampleMessage,
  exampleCodec,
  validateExampleMessage,
} from './example-message.js';
