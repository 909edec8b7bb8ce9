/**
 * The server side of the local API as handlers see it (pure): what a method handler receives and
 * returns, and the registry services register their methods on. The daemon's `ApiServer`
 * (src/platform) and embedded mode's in-process dispatcher (src/embedded) both implement the
 * registry, so one handler serves both.
 */
import type { ApiData } from './api-frame.js';
import type { ApiErrorCode } from './api-error.js';

/** What every handler receives besides its params. */
export interface HandlerContext {
  /** Fires when the client cancels, disconnects, or the server closes. */
  readonly signal: AbortSignal;
  /** A number identifying the connection in logs. */
  readonly clientId: number;
}

/** Answers one request. */
export type RequestHandler = (params: ApiData, ctx: HandlerContext) => ApiData | Promise<ApiData>;

/** Where a pushed stream sends items. */
export interface StreamSink {
  /** Sends one item; false when the stream is already closed (cancelled, slow client, ended). */
  push(value: ApiData): boolean;
  /** Ends the stream normally. */
  end(): void;
  /** Ends the stream with a typed error. */
  fail(code: ApiErrorCode, message: string): void;
}

/**
 * Serves one stream: either returns an async iterable the server pulls from (respecting the
 * client's pace), or pushes into `sink` (and may return a cleanup function, called once when
 * the stream closes for any reason).
 */
export type StreamHandler = (
  params: ApiData,
  ctx: HandlerContext,
  sink: StreamSink,
) => AsyncIterable<ApiData> | (() => void) | undefined;

/** Where handlers are registered (the daemon's socket server, or embedded mode's dispatcher). */
export interface ApiHandlerRegistry {
  register(method: string, handler: RequestHandler): void;
  registerStream(method: string, handler: StreamHandler): void;
}
