/**
 * The caller side of the local API as the services' client namespaces see it (pure): call a
 * method, open a stream. Each service's `*-client.ts` (`src/kv`, `src/groups`, `src/membership`)
 * is written against `ApiCaller` only, so it runs over the daemon's Unix socket
 * (`ClientConnection`, src/client) and over embedded mode's in-process channel (src/embedded)
 * alike, and a service folder needs no `node:` module and no import of `src/client`.
 *
 * Contract of every implementation: every failure is a `CohortClientError` with a stable code;
 * a call after the caller closed fails with `CLOSED`; a lost peer fails every open and later call
 * with `CONNECTION_LOST` (or the daemon's `UNAVAILABLE`); an aborted `signal` fails the call with
 * `ABORTED` (`TIMEOUT` for `AbortSignal.timeout`) and cancels it on the daemon.
 */
import type { ApiData } from './api-frame.js';

/** Options of one call. A deadline is a signal too: `{ signal: AbortSignal.timeout(ms) }`. */
export interface CallOptions {
  readonly signal?: AbortSignal;
}

/** An open stream of raw API items (`ClientStream` on a socket). */
export interface ApiStream extends AsyncIterableIterator<ApiData> {
  /** Stops the stream (the daemon is told); buffered items are dropped. Idempotent. */
  cancel(): void;
}

/** A typed stream: `for await`, `break` or `cancel()` stops it on the daemon. */
export interface TypedStream<T> extends AsyncIterableIterator<T> {
  cancel(): void;
}

/** What a service's client namespace needs from a connection: a request and a stream. */
export interface ApiCaller {
  /** True until the connection is closed or lost. */
  readonly open: boolean;
  /** Calls `method` once; resolves with the daemon's answer, undecoded. */
  request(method: string, params?: ApiData, options?: CallOptions): Promise<ApiData>;
  /** Opens the stream `method`; items arrive in the daemon's order. */
  stream(method: string, params?: ApiData, options?: CallOptions): ApiStream;
}

/** `options` reduced to what crosses to the caller (a subtype's own fields stay behind). */
function callOptions(options: CallOptions | undefined): CallOptions {
  return options?.signal === undefined ? {} : { signal: options.signal };
}

/**
 * Calls `method` and decodes its answer with `decode` (which throws `PROTOCOL_ERROR` on a
 * malformed answer: that call fails, the connection stays usable).
 */
export async function callDecoded<T>(
  caller: ApiCaller,
  method: string,
  params: ApiData,
  decode: (v: ApiData) => T,
  options: CallOptions | undefined,
): Promise<T> {
  return decode(await caller.request(method, params, callOptions(options)));
}

/** Maps an `ApiStream` through `decode`; a decode failure cancels the stream and is thrown. */
class DecodedStream<T> implements TypedStream<T> {
  constructor(
    private readonly raw: ApiStream,
    private readonly decode: (v: ApiData) => T,
  ) {}

  async next(): Promise<IteratorResult<T>> {
    const r = await this.raw.next();
    if (r.done === true) return { done: true, value: undefined };
    try {
      return { done: false, value: this.decode(r.value) };
    } catch (e) {
      this.raw.cancel();
      throw e;
    }
  }

  return(): Promise<IteratorResult<T>> {
    this.raw.cancel();
    return Promise.resolve({ done: true, value: undefined });
  }

  cancel(): void {
    this.raw.cancel();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/** Opens the stream `method` and decodes each item with `decode`. */
export function streamDecoded<T>(
  caller: ApiCaller,
  method: string,
  params: ApiData,
  decode: (v: ApiData) => T,
  options: CallOptions | undefined,
): TypedStream<T> {
  return new DecodedStream(caller.stream(method, params, callOptions(options)), decode);
}
