/**
 * The local API wire protocol (pure: no I/O). Spoken over a node's Unix socket between the
 * daemon and clients (the `cohort` CLI, the client library). docs/api.md is the reference.
 *
 * Framing: the shared stream framing of `src/transport/frame-decoder.ts` (a u32 little-endian
 * length, then the body), with the body one MessagePack-encoded frame of at most
 * `API_FRAME_BYTES_MAX` bytes. No encryption: the socket's file permissions are the access
 * control, and only local processes can connect.
 *
 * Conversation:
 * 1. client → `hello {protocol: "cohort-api", version, client}`; the server answers `welcome`
 *    or, for another version, an `error` with `VERSION_MISMATCH` naming both versions, then
 *    closes the connection. Nothing else is accepted before the hello.
 * 2. client → `request {id, method, params}`; server → exactly one `response {id, result}` or
 *    `error {id, code, message}`.
 * 3. client → `subscribe {id, method, params}`; server → any number of `item {id, value}`,
 *    then exactly one `end {id}` or `error {id, ...}`. client → `cancel {id}` stops it (the
 *    server answers with `error {id, code: CANCELLED}` unless it had already ended).
 * Ids are chosen by the client, unique among its open requests and streams. `error` with id 0
 * is about the connection itself and is followed by closing it.
 *
 * Every frame is validated by the `FieldReader` helpers, which raise `DecodeError` naming the
 * field; params, results and items are plain data only (null, booleans, finite numbers, strings,
 * byte arrays, arrays and plain objects, nested at most `API_DATA_DEPTH_MAX` deep), so exotic
 * values MessagePack could produce (dates, extension types) never reach a handler.
 */
import { assertNever } from '../lib/assert.js';
import { API_DATA_DEPTH_MAX, API_FRAME_BYTES_MAX } from '../constants.js';
import { FieldReader, invalidField, isPlainObject, unionValue } from '../transport/message-fields.js';
import { msgpackCodec } from '../transport/message-codec.js';
import { encodeFrame, type FrameLimits } from '../transport/frame-decoder.js';
import type { Codec } from '../transport/transport.js';
import { API_ERROR_CODE_RE } from './api-error.js';

/** The protocol name every hello carries (so a stray client of another protocol is told so). */
export const API_PROTOCOL = 'cohort-api';
/** The protocol version of this release. Bump on any incompatible change. */
export const API_PROTOCOL_VERSION = 1;
/** Largest request or stream id. */
export const API_ID_MAX: number = Number.MAX_SAFE_INTEGER;
/** Longest method name. */
export const API_METHOD_CHARS_MAX = 64;
/** Longest client or server description in hello/welcome. */
export const API_PEER_NAME_CHARS_MAX = 128;
/** Longest error message. */
export const API_ERROR_MESSAGE_CHARS_MAX = 2048;
/** Frame limits for the shared `FrameDecoder`. */
export const API_FRAME_LIMITS: FrameLimits = { bodyBytesMin: 1, bodyBytesMax: API_FRAME_BYTES_MAX };

const METHOD_RE = /^[a-z][a-zA-Z0-9]*(\.[a-z][a-zA-Z0-9]*)*$/;

/** Plain data carried in params, results and items. */
export type ApiData =
  null | boolean | number | string | Uint8Array | readonly ApiData[] | { readonly [key: string]: ApiData };

/** client → server: the first frame. */
export interface HelloFrame {
  readonly type: 'hello';
  readonly protocol: string;
  readonly version: number;
  readonly client: string;
}
/** client → server: a one-shot call. */
export interface RequestFrame {
  readonly type: 'request';
  readonly id: number;
  readonly method: string;
  readonly params: ApiData;
}
/** client → server: open a stream. */
export interface SubscribeFrame {
  readonly type: 'subscribe';
  readonly id: number;
  readonly method: string;
  readonly params: ApiData;
}
/** client → server: stop a stream (or abandon a request). */
export interface CancelFrame {
  readonly type: 'cancel';
  readonly id: number;
}
/** Every frame a client sends. */
export type ClientFrame = HelloFrame | RequestFrame | SubscribeFrame | CancelFrame;

/** server → client: the hello was accepted. */
export interface WelcomeFrame {
  readonly type: 'welcome';
  readonly version: number;
  readonly server: string;
}
/** server → client: the result of a request. */
export interface ResponseFrame {
  readonly type: 'response';
  readonly id: number;
  readonly result: ApiData;
}
/** server → client: one stream item. */
export interface ItemFrame {
  readonly type: 'item';
  readonly id: number;
  readonly value: ApiData;
}
/** server → client: the stream finished normally. */
export interface EndFrame {
  readonly type: 'end';
  readonly id: number;
}
/** server → client: a request or stream failed (id > 0) or the connection is closing (id 0). */
export interface ErrorFrame {
  readonly type: 'error';
  readonly id: number;
  readonly code: string;
  readonly message: string;
}
/** Every frame a server sends. */
export type ServerFrame = WelcomeFrame | ResponseFrame | ItemFrame | EndFrame | ErrorFrame;

/** Checks that `value` is plain data at most `API_DATA_DEPTH_MAX` deep (iterative: no recursion on hostile input). */
export function apiDataValue(value: unknown, path: string): ApiData {
  const stack: { v: unknown; path: string; depth: number }[] = [{ v: value, path, depth: 0 }];
  while (stack.length > 0) {
    const top = stack.pop();
    if (top === undefined) break;
    const { v, depth } = top;
    if (v === null || typeof v === 'boolean' || typeof v === 'string' || v instanceof Uint8Array) continue;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) throw invalidField(top.path, 'a finite number', v);
      continue;
    }
    if (depth >= API_DATA_DEPTH_MAX) throw invalidField(top.path, `data nested at most ${API_DATA_DEPTH_MAX} deep`, v);
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++)
        stack.push({ v: v[i] as unknown, path: `${top.path}[${i}]`, depth: depth + 1 });
      continue;
    }
    if (isPlainObject(v)) {
      for (const key of Object.keys(v))
        stack.push({ v: v[key], path: `${top.path}.${key.slice(0, 40)}`, depth: depth + 1 });
      continue;
    }
    throw invalidField(top.path, 'plain data (null, boolean, number, string, bytes, array or object)', v);
  }
  return value as ApiData;
}

function id(r: FieldReader, min = 1): number {
  return r.int('id', min, API_ID_MAX);
}

function method(r: FieldReader): string {
  const m = r.string('method', API_METHOD_CHARS_MAX);
  if (!METHOD_RE.test(m)) throw invalidField(`${r.path}.method`, 'a method name such as "status" or "groups.join"', m);
  return m;
}

function data(r: FieldReader, name: string): ApiData {
  return apiDataValue(r.raw(name) ?? null, `${r.path}.${name}`);
}

/** Validates a decoded value as a `ClientFrame`; throws `DecodeError` (`MESSAGE_INVALID`). */
export function validateClientFrame(value: unknown): ClientFrame {
  return unionValue<ClientFrame>(value, 'ClientFrame', 'type', {
    hello: (r) => ({
      type: 'hello',
      protocol: r.string('protocol', API_PEER_NAME_CHARS_MAX),
      version: r.int('version', 0, 0xffff),
      client: r.string('client', API_PEER_NAME_CHARS_MAX),
    }),
    request: (r) => ({ type: 'request', id: id(r), method: method(r), params: data(r, 'params') }),
    subscribe: (r) => ({ type: 'subscribe', id: id(r), method: method(r), params: data(r, 'params') }),
    cancel: (r) => ({ type: 'cancel', id: id(r) }),
  });
}

function errorCode(r: FieldReader): string {
  const code = r.string('code', 64);
  if (!API_ERROR_CODE_RE.test(code)) throw invalidField(`${r.path}.code`, 'an UPPER_SNAKE_CASE error code', code);
  return code;
}

/** Validates a decoded value as a `ServerFrame`; throws `DecodeError` (`MESSAGE_INVALID`). */
export function validateServerFrame(value: unknown): ServerFrame {
  return unionValue<ServerFrame>(value, 'ServerFrame', 'type', {
    welcome: (r) => ({
      type: 'welcome',
      version: r.int('version', 0, 0xffff),
      server: r.string('server', API_PEER_NAME_CHARS_MAX),
    }),
    response: (r) => ({ type: 'response', id: id(r), result: data(r, 'result') }),
    item: (r) => ({ type: 'item', id: id(r), value: data(r, 'value') }),
    end: (r) => ({ type: 'end', id: id(r) }),
    error: (r) => ({
      type: 'error',
      id: id(r, 0),
      code: errorCode(r),
      message: r.string('message', API_ERROR_MESSAGE_CHARS_MAX),
    }),
  });
}

/** A codec for frames a server reads. */
export function clientFrameCodec(): Codec<ClientFrame> {
  return msgpackCodec(validateClientFrame, { payloadBytesMax: API_FRAME_BYTES_MAX });
}

/** A codec for frames a client reads. */
export function serverFrameCodec(): Codec<ServerFrame> {
  return msgpackCodec(validateServerFrame, { payloadBytesMax: API_FRAME_BYTES_MAX });
}

/** Encodes `frame` with `codec` and adds the length prefix. Throws `MessageTooLargeError` past the limit. */
export function encodeApiFrame<F>(codec: Codec<F>, frame: F): Uint8Array {
  return encodeFrame(codec.encode(frame));
}

/** The outcome of a hello: accepted, or the error frame to send before closing. */
export type HelloOutcome = { readonly ok: true } | { readonly ok: false; readonly error: ErrorFrame };

/**
 * Decides a hello. Another protocol is `PROTOCOL_ERROR`; another version is `VERSION_MISMATCH`
 * with a message naming both versions and what to do.
 */
export function checkHello(hello: HelloFrame, serverVersion: number = API_PROTOCOL_VERSION): HelloOutcome {
  if (hello.protocol !== API_PROTOCOL) {
    return {
      ok: false,
      error: {
        type: 'error',
        id: 0,
        code: 'PROTOCOL_ERROR',
        message: `this is a cohort API socket; the client speaks ${JSON.stringify(hello.protocol.slice(0, 40))}, not ${JSON.stringify(API_PROTOCOL)}`,
      },
    };
  }
  if (hello.version !== serverVersion) {
    return {
      ok: false,
      error: {
        type: 'error',
        id: 0,
        code: 'VERSION_MISMATCH',
        message: `the client speaks cohort API version ${hello.version} but this daemon speaks version ${serverVersion}; use the cohort client of the same release as the daemon`,
      },
    };
  }
  return { ok: true };
}

/** A one-line description of a frame for logs and traces (never the payload). */
export function describeFrame(frame: ClientFrame | ServerFrame): string {
  switch (frame.type) {
    case 'hello':
      return `hello ${frame.protocol} v${frame.version} from ${frame.client}`;
    case 'welcome':
      return `welcome v${frame.version} from ${frame.server}`;
    case 'request':
    case 'subscribe':
      return `${frame.type} #${frame.id} ${frame.method}`;
    case 'cancel':
    case 'end':
      return `${frame.type} #${frame.id}`;
    case 'response':
    case 'item':
      return `${frame.type} #${frame.id}`;
    case 'error':
      return `error #${frame.id} ${frame.code}`;
    default:
      return assertNever(frame, 'api frame');
  }
}
