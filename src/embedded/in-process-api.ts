/**
 * The local API without a socket: embedded mode registers the daemon's own handlers
 * (`registerApiHandlers` from `src/node/api-handlers.ts`) on an `InProcessApi` and talks to them
 * through `InProcessChannel`, an `ApiChannel` with the semantics of the socket connection:
 *
 * - params, results and items are encoded and decoded with the API's frame codecs, so values
 *   arrive exactly as over the socket (bytes as `Uint8Array`, `undefined` fields dropped, the
 *   same plain-data and size checks);
 * - the same errors: `UNKNOWN_METHOD`, `INVALID_ARGUMENT` for a stream called as a request (or
 *   the reverse), a handler's `ApiError` code, `INTERNAL` for anything else it throws,
 *   `OVERLOADED` past the per-connection limits, `ABORTED`/`TIMEOUT` from the caller's signal
 *   (the handler's signal fires too), `CLOSED` after `close()`, `CONNECTION_LOST` once the node
 *   is stopped;
 * - pushed streams are bounded by the same queued-bytes limit (`SLOW_CONSUMER` past it); pulled
 *   streams are pulled only when the consumer asks for the next item.
 */
import { API_CLIENT_QUEUE_BYTES_MAX, API_CLIENT_REQUESTS_MAX, API_CLIENT_STREAMS_MAX } from '../constants.js';
import { ApiError, clientFrameCodec, serverFrameCodec, type ApiData } from '../api/index.js';
import { abortedError, CohortClientError, type ApiChannel, type ApiStream, type CallOptions } from '../client/index.js';
import { assert } from '../lib/assert.js';
import type { ApiHandlerRegistry } from '../api/index.js';
import type { HandlerContext, RequestHandler, StreamHandler, StreamSink } from '../platform/api-server.js';

const clientCodec = clientFrameCodec();
const serverCodec = serverFrameCodec();

/** `params` as the daemon would decode them from a request frame. */
function wireParams(method: string, params: ApiData): ApiData {
  try {
    const f = clientCodec.decode(clientCodec.encode({ type: 'request', id: 1, method, params }));
    assert(f.type === 'request', 'a request frame decodes as a request');
    return f.params;
  } catch (e) {
    throw new CohortClientError(
      'INVALID_ARGUMENT',
      `${method}: the params cannot be sent (${e instanceof Error ? e.message : String(e)})`,
      { cause: e },
    );
  }
}

/** `value` as a client would decode it from an item or response frame; the encoded size too. */
function wireValue(method: string, value: ApiData): { value: ApiData; bytes: number } {
  try {
    const bytes = serverCodec.encode({ type: 'item', id: 1, value });
    const f = serverCodec.decode(bytes);
    assert(f.type === 'item', 'an item frame decodes as an item');
    return { value: f.value, bytes: bytes.length };
  } catch (e) {
    throw new CohortClientError(
      'INTERNAL',
      `${method} produced a value that cannot be sent (${e instanceof Error ? e.message : String(e)})`,
      { cause: e },
    );
  }
}

/** What a handler's failure looks like to the client (as `ApiServer.errorFrame` answers it). */
function clientError(method: string, e: unknown): CohortClientError {
  if (e instanceof CohortClientError) return e;
  if (e instanceof ApiError) return new CohortClientError(e.code, e.message);
  return new CohortClientError(
    'INTERNAL',
    `${method} failed inside the embedded node: ${e instanceof Error ? e.message : String(e)}`,
    { cause: e },
  );
}

/** A node's handler table; `connect()` opens channels to it, `shutdown()` fails them all. */
export class InProcessApi implements ApiHandlerRegistry {
  private readonly handlers = new Map<string, RequestHandler>();
  private readonly streamHandlers = new Map<string, StreamHandler>();
  private readonly channels = new Set<InProcessChannel>();
  private nextClientId = 1;
  private down: CohortClientError | undefined;

  register(method: string, handler: RequestHandler): void {
    assert(!this.handlers.has(method) && !this.streamHandlers.has(method), `method ${method} registered twice`);
    this.handlers.set(method, handler);
  }

  registerStream(method: string, handler: StreamHandler): void {
    assert(!this.handlers.has(method) && !this.streamHandlers.has(method), `method ${method} registered twice`);
    this.streamHandlers.set(method, handler);
  }

  /** @internal */
  requestHandler(method: string): RequestHandler | undefined {
    return this.handlers.get(method);
  }

  /** @internal */
  streamHandler(method: string): StreamHandler | undefined {
    return this.streamHandlers.get(method);
  }

  /** Opens a channel (like a socket connection). Throws `error` of `shutdown` once shut down. */
  connect(): InProcessChannel {
    if (this.down !== undefined) throw this.down;
    const c = new InProcessChannel(this, this.nextClientId++);
    this.channels.add(c);
    return c;
  }

  /** Fails every open channel with `error` (the node stopped); later `connect` throws it. Idempotent. */
  shutdown(error: CohortClientError): void {
    if (this.down !== undefined) return;
    this.down = error;
    for (const c of [...this.channels]) c.fail(error);
    this.channels.clear();
  }

  /** @internal */
  forget(c: InProcessChannel): void {
    this.channels.delete(c);
  }
}

interface PendingCall {
  readonly controller: AbortController;
  fail(error: CohortClientError): void;
}

/** One in-process "connection". See the file comment for its contract. */
export class InProcessChannel implements ApiChannel {
  private readonly pending = new Map<number, PendingCall>();
  private readonly streams = new Map<number, InProcessStream>();
  private nextId = 1;
  private failure: CohortClientError | undefined;

  /** @internal use `InProcessApi.connect`. */
  constructor(
    private readonly api: InProcessApi,
    readonly clientId: number,
  ) {}

  get open(): boolean {
    return this.failure === undefined;
  }

  request(method: string, params: ApiData = null, options: CallOptions = {}): Promise<ApiData> {
    const { signal } = options;
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (signal?.aborted === true) return Promise.reject(abortedError(signal, method));
    const handler = this.api.requestHandler(method);
    if (handler === undefined) {
      const isStream = this.api.streamHandler(method) !== undefined;
      return Promise.reject(
        new CohortClientError(
          isStream ? 'INVALID_ARGUMENT' : 'UNKNOWN_METHOD',
          isStream ? `${method} is a stream; subscribe to it` : `no method ${JSON.stringify(method)}`,
        ),
      );
    }
    if (this.pending.size >= API_CLIENT_REQUESTS_MAX) {
      return Promise.reject(
        new CohortClientError(
          'OVERLOADED',
          `${API_CLIENT_REQUESTS_MAX} requests are already in flight on this connection; wait for some to finish`,
        ),
      );
    }
    let sent: ApiData;
    try {
      sent = wireParams(method, params);
    } catch (e) {
      return Promise.reject(clientError(method, e));
    }
    const id = this.nextId++;
    const controller = new AbortController();
    return new Promise<ApiData>((resolve, reject) => {
      const settle = (error: CohortClientError | undefined, value: ApiData): void => {
        if (this.pending.get(id) !== call) return;
        this.pending.delete(id);
        signal?.removeEventListener('abort', onAbort);
        if (error === undefined) resolve(value);
        else reject(error);
      };
      const call: PendingCall = {
        controller,
        fail: (error) => {
          controller.abort(error);
          settle(error, null);
        },
      };
      const onAbort = (): void => {
        call.fail(abortedError(signal ?? AbortSignal.abort(), method));
      };
      this.pending.set(id, call);
      signal?.addEventListener('abort', onAbort, { once: true });
      const ctx: HandlerContext = { signal: controller.signal, clientId: this.clientId };
      void (async () => {
        try {
          const result = await handler(sent, ctx);
          settle(undefined, wireValue(method, result).value);
        } catch (e) {
          settle(clientError(method, e), null);
        }
      })();
    });
  }

  stream(method: string, params: ApiData = null, options: CallOptions = {}): ApiStream {
    const id = this.nextId++;
    const stream = new InProcessStream(method, options.signal, () => this.streams.delete(id));
    if (this.failure !== undefined) {
      stream.finish(this.failure);
      return stream;
    }
    const handler = this.api.streamHandler(method);
    if (handler === undefined) {
      const isRequest = this.api.requestHandler(method) !== undefined;
      stream.finish(
        new CohortClientError(
          isRequest ? 'INVALID_ARGUMENT' : 'UNKNOWN_METHOD',
          isRequest ? `${method} is a request, not a stream` : `no stream ${JSON.stringify(method)}`,
        ),
      );
      return stream;
    }
    if (this.streams.size >= API_CLIENT_STREAMS_MAX) {
      stream.finish(
        new CohortClientError(
          'OVERLOADED',
          `${API_CLIENT_STREAMS_MAX} streams are already open on this connection; close one first`,
        ),
      );
      return stream;
    }
    let sent: ApiData;
    try {
      sent = wireParams(method, params);
    } catch (e) {
      stream.finish(clientError(method, e));
      return stream;
    }
    if (stream.done) return stream; // the caller's signal had already fired
    this.streams.set(id, stream);
    stream.run(handler, sent, { signal: stream.handlerSignal, clientId: this.clientId });
    return stream;
  }

  /** Closes the channel: open calls reject with `CLOSED`, open streams end with it. Idempotent. */
  close(): Promise<void> {
    this.fail(new CohortClientError('CLOSED', 'the connection was closed by this client'));
    this.api.forget(this);
    return Promise.resolve();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** @internal Marks the channel broken (the first reason wins) and fails every open call. */
  fail(error: CohortClientError): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    for (const p of [...this.pending.values()]) p.fail(error);
    for (const s of [...this.streams.values()]) s.finish(error);
    this.streams.clear();
  }
}

/** One in-process stream: buffered pushed items (bounded in encoded bytes) or a pulled iterable. */
class InProcessStream implements ApiStream {
  private readonly buffer: { value: ApiData; bytes: number }[] = [];
  private head = 0;
  private queuedBytes = 0;
  private error: CohortClientError | undefined;
  private waiter: { resolve(r: IteratorResult<ApiData>): void; reject(e: CohortClientError): void } | undefined;
  private readonly controller = new AbortController();
  private cleanup: (() => void) | undefined;
  private source: AsyncIterator<ApiData> | undefined;
  private pulling = false;
  private readonly onAbort: () => void;
  done = false;

  constructor(
    readonly method: string,
    private readonly signal: AbortSignal | undefined,
    private readonly onClosed: () => void,
  ) {
    this.onAbort = () => {
      this.finish(abortedError(signal ?? AbortSignal.abort(), method));
    };
    if (signal?.aborted === true) this.finish(abortedError(signal, method));
    else signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** Fires when the stream closes for any reason (what `HandlerContext.signal` promises). */
  get handlerSignal(): AbortSignal {
    return this.controller.signal;
  }

  /** @internal Starts the handler; it pushes into the sink or returns an iterable to pull. */
  run(handler: StreamHandler, params: ApiData, ctx: HandlerContext): void {
    const sink: StreamSink = {
      push: (value) => this.push(value),
      end: () => {
        this.finish(undefined);
      },
      fail: (code, message) => {
        this.finish(new CohortClientError(code, message));
      },
    };
    let source: ReturnType<StreamHandler>;
    try {
      source = handler(params, ctx, sink);
    } catch (e) {
      this.finish(clientError(this.method, e));
      return;
    }
    if (typeof source === 'function') {
      if (this.done) source();
      else this.cleanup = source;
    } else if (source !== undefined) {
      this.source = source[Symbol.asyncIterator]();
      if (this.done) void this.source.return?.().catch(() => undefined);
      else if (this.waiter !== undefined) this.pull();
    }
  }

  private push(value: ApiData): boolean {
    if (this.done) return false;
    let item: { value: ApiData; bytes: number };
    try {
      item = wireValue(this.method, value);
    } catch (e) {
      this.finish(clientError(this.method, e));
      return false;
    }
    if (this.waiter !== undefined) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve({ done: false, value: item.value });
      return true;
    }
    if (this.queuedBytes + item.bytes > API_CLIENT_QUEUE_BYTES_MAX) {
      this.finish(
        new CohortClientError(
          'SLOW_CONSUMER',
          `the client fell ${this.queuedBytes} bytes behind this stream (limit ${API_CLIENT_QUEUE_BYTES_MAX}); read faster or resubscribe from the last item seen`,
        ),
      );
      return false;
    }
    this.buffer.push(item);
    this.queuedBytes += item.bytes;
    return true;
  }

  private pull(): void {
    const source = this.source;
    if (source === undefined || this.pulling || this.done) return;
    this.pulling = true;
    source.next().then(
      (r) => {
        this.pulling = false;
        if (r.done === true) this.finish(undefined);
        else this.push(r.value);
      },
      (e: unknown) => {
        this.pulling = false;
        this.finish(clientError(this.method, e));
      },
    );
  }

  /** @internal Ends the stream (`error` undefined: normally). Buffered items are still delivered first. */
  finish(error: CohortClientError | undefined): void {
    if (this.done) return;
    this.done = true;
    this.error = error;
    this.signal?.removeEventListener('abort', this.onAbort);
    this.controller.abort();
    this.onClosed();
    const cleanup = this.cleanup;
    this.cleanup = undefined;
    cleanup?.();
    if (this.source !== undefined) void this.source.return?.().catch(() => undefined);
    if (this.waiter !== undefined && this.head === this.buffer.length) {
      const w = this.waiter;
      this.waiter = undefined;
      if (error === undefined) w.resolve({ done: true, value: undefined });
      else w.reject(error);
    }
  }

  next(): Promise<IteratorResult<ApiData>> {
    assert(this.waiter === undefined, 'a stream is consumed by one reader at a time');
    const item = this.buffer[this.head];
    if (item !== undefined) {
      this.head++;
      this.queuedBytes -= item.bytes;
      if (this.head === this.buffer.length) {
        this.buffer.length = 0;
        this.head = 0;
      } else if (this.head >= 1024 && this.head * 2 >= this.buffer.length) {
        this.buffer.splice(0, this.head);
        this.head = 0;
      }
      return Promise.resolve({ done: false, value: item.value });
    }
    if (this.done)
      return this.error === undefined ? Promise.resolve({ done: true, value: undefined }) : Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.pull();
    });
  }

  return(): Promise<IteratorResult<ApiData>> {
    this.cancel();
    return Promise.resolve({ done: true, value: undefined });
  }

  cancel(): void {
    this.buffer.length = 0;
    this.head = 0;
    this.queuedBytes = 0;
    this.finish(undefined);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
