/**
 * The local API (pure): the wire protocol (frames, validators, codecs, error codes; docs/api.md),
 * the handler registry services register their methods on, and the caller contract, answer reader
 * and client error their client namespaces (`*-client.ts`) are written against.
 */
export { API_ERROR_CODES, API_ERROR_CODE_RE, ApiError, type ApiErrorCode, isKnownApiErrorCode } from './api-error.js';
export {
  API_FRAME_LIMITS,
  API_ID_MAX,
  API_METHOD_CHARS_MAX,
  API_PEER_NAME_CHARS_MAX,
  API_ERROR_MESSAGE_CHARS_MAX,
  API_PROTOCOL,
  API_PROTOCOL_VERSION,
  type ApiData,
  type CancelFrame,
  type ClientFrame,
  type EndFrame,
  type ErrorFrame,
  type HelloFrame,
  type HelloOutcome,
  type ItemFrame,
  type RequestFrame,
  type ResponseFrame,
  type ServerFrame,
  type SubscribeFrame,
  type WelcomeFrame,
  apiDataValue,
  checkHello,
  clientFrameCodec,
  describeFrame,
  encodeApiFrame,
  serverFrameCodec,
  validateClientFrame,
  validateServerFrame,
} from './api-frame.js';
export type { ApiHandlerRegistry, HandlerContext, RequestHandler, StreamHandler, StreamSink } from './api-handler.js';
export {
  callDecoded,
  streamDecoded,
  type ApiCaller,
  type ApiStream,
  type CallOptions,
  type TypedStream,
} from './api-caller.js';
export { abortedError, CohortClientError, type ClientErrorCode, type ClientOwnErrorCode } from './client-error.js';
export { badAnswer, enumMembers, FieldReader } from './field-reader.js';
