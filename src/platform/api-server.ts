/**
 * The local API server: the daemon's Unix socket speaking the protocol of `src/api`.
 *
 * Access control is the socket file's mode (`api.mode`, default 0660) and its directory's
 * mode (a missing directory is created 0700, so the default is owner-only); the socket is bound under a temporary name, given its mode, then renamed into place, so
 * it is never reachable with the umask's looser mode. A socket file left by a crashed daemon is
 * removed only after a connection attempt proves nothing listens there; a live socket or a
 * non-socket file at the path is an error, never removed.
 *
 * Everything is bounded: clients (`API_CLIENTS_MAX`), requests in flight and open streams per
 * client, frame size, and bytes queued for a client. A client that reads too slowly has its
 * streams closed with `SLOW_CONSUMER` rather than the daemon buffering without bound: a pushed
 * stream is closed as soon as the client's queue passes the bound; a pulled stream (an async
 * iterable) stops pulling and waits up to `API_STREAM_STALL_MS` for the queue to drain first.
 * A client that does not even read responses is disconnected once its queue passes the bound
 * plus one frame.
 *
 * Client slots (docs/api.md, "Limits"): at most `clientsMax` clients at once. A client is idle
 * while it has no request in flight and no stream open (an open subscription is never idle); an
 * idle client is closed after `idleMs` with an `IDLE` error, and when every slot is taken a new
 * client gets the slot of the client idle longest (at least `evictIdleMs`), closed the same way.
 * So idle clients never lock the CLI out; only when every slot is busy is a new client refused
 * with `OVERLOADED` (the CLI's exit 7). Beyond `connectionsMax` connections (slots plus refusals
 * still flushing) a connection is closed at once without a frame. Every refusal is counted
 * (`connectionsRefused`) and logged rate-limited (`RefusalLog`).
 *
 * Handlers: `register(method, handler)` for requests; `registerStream(method, handler)` for
 * streams, where the handler returns an async iterable (pulled) or uses a `StreamSink` (pushed).
 * Every handler gets an `AbortSignal` that fires when the client cancels or disconnects or the
 * server closes. A handler that throws `ApiError` answers with its code; anything else is
 * answered `INTERNAL` and logged.
 */
import { lstat, chmod, mkdir, rename, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { assert } from '../lib/assert.js';
import { CohortError, DecodeError } from '../lib/errors.js';
import {
  API_CLIENT_QUEUE_BYTES_MAX,
  API_CLIENT_REQUESTS_MAX,
  API_CLIENT_STREAMS_MAX,
  API_CLIENT_EVICT_IDLE_MS,
  API_CLIENT_IDLE_MS,
  API_CLIENTS_MAX,
  API_FRAME_BYTES_MAX,
  API_HELLO_TIMEOUT_MS,
  API_STREAM_STALL_MS,
  REFUSAL_LINGER_MS,
  UNIX_SOCKET_PATH_BYTES_MAX,
} from '../constants.js';
import { RefusalLog } from './refusal-log.js';
import { FrameDecoder } from '../transport/frame-decoder.js';
import type { Codec } from '../transport/transport.js';
import {
  API_FRAME_LIMITS,
  API_PROTOCOL_VERSION,
  ApiError,
  checkHello,
  clientFrameCodec,
  encodeApiFrame,
  serverFrameCodec,
  type ApiData,
  type ApiErrorCode,
  type ClientFrame,
  type ServerFrame,
} from '../api/index.js';
import type { HandlerContext, RequestHandler, StreamHandler, StreamSink } from '../api/index.js';
export type { HandlerContext, RequestHandler, StreamHandler, StreamSink } from '../api/index.js';

/**
 * Options of `ApiServer`. Limits default to the constants; the daemon passes `clientsMax` and
 * `connectionsMax` from its descriptor budget (`src/node/fd-budget.ts`); the others are for tests only.
 */
export interface ApiServerOptions {
  readonly socketPath: string;
  /** File mode of the socket (default 0o660). */
  readonly mode?: number;
  /** Shown to clients in `welcome`. */
  readonly serverName?: string;
  readonly logger?: Logger;
  readonly clientsMax?: number;
  /** Connections at once, refusals still flushing included (default: `clientsMax` plus a quarter, at least 2 more). */
  readonly connectionsMax?: number;
  /** An idle client is closed after this (default `API_CLIENT_IDLE_MS`). */
  readonly idleMs?: number;
  /** A client idle this long may be evicted for a new one when every slot is taken (default `API_CLIENT_EVICT_IDLE_MS`). */
  readonly evictIdleMs?: number;
  readonly queueBytesMax?: number;
  readonly helloTimeoutMs?: number;
  readonly streamStallMs?: number;
  /**
   * Answer every request and stream `UNAVAILABLE` ("the daemon is starting") until `serve()`:
   * the daemon binds its socket before its node runs. Default false: serving from `listen()`.
   */
  readonly startsPaused?: boolean;
  /** TESTS ONLY: the protocol version this server speaks. */
  readonly protocolVersion?: number;
}

/** Errors of `listen`: `SOCKET_IN_USE` (a live listener or a non-socket file at the path), `SOCKET_LISTEN` (bind failed). */
export class ApiServerError extends CohortError {
  override readonly name = 'ApiServerError';
}

/** Counters for tests and metrics. */
export interface ApiServerStats {
  readonly clients: number;
  /** Connections refused (`OVERLOADED`, or closed at once past `connectionsMax`). */
  readonly connectionsRefused: number;
  /** Clients closed after `idleMs` idle. */
  readonly idleClosures: number;
  /** Idle clients closed to give their slot to a new client. */
  readonly evictions: number;
  readonly slowConsumerClosures: number;
  /** Largest number of bytes ever queued for one client. */
  readonly queuedBytesPeak: number;
}

interface Limits {
  readonly clientsMax: number;
  readonly connectionsMax: number;
  readonly idleMs: number;
  readonly evictIdleMs: number;
  readonly queueBytesMax: number;
  readonly helloTimeoutMs: number;
  readonly streamStallMs: number;
  readonly protocolVersion: number;
}

/** The server. `listen()` once, `close()` once. */
export class ApiServer {
  private readonly handlers = new Map<string, RequestHandler>();
  private readonly streamHandlers = new Map<string, StreamHandler>();
  private readonly clients = new Set<ApiConnection>();
  private server: Server | undefined;
  private socketIno: number | undefined;
  private nextClientId = 1;
  private closed = false;
  /** False until `serve()` when `startsPaused` (see `ApiServerOptions`). */
  private servingNow: boolean;
  private readonly limits: Limits;
  private readonly mode: number;
  private readonly name: string;
  readonly stats = {
    clients: 0,
    connectionsRefused: 0,
    idleClosures: 0,
    evictions: 0,
    slowConsumerClosures: 0,
    queuedBytesPeak: 0,
  };
  private readonly refusals: RefusalLog;

  constructor(private readonly options: ApiServerOptions) {
    this.mode = options.mode ?? 0o660;
    assert(Number.isInteger(this.mode) && this.mode >= 0 && this.mode <= 0o777, 'socket mode must be a file mode');
    this.name = options.serverName ?? 'cohort';
    this.servingNow = options.startsPaused !== true;
    const clientsMax = options.clientsMax ?? API_CLIENTS_MAX;
    this.limits = {
      clientsMax,
      connectionsMax: options.connectionsMax ?? clientsMax + Math.max(2, Math.floor(clientsMax / 4)),
      idleMs: options.idleMs ?? API_CLIENT_IDLE_MS,
      evictIdleMs: options.evictIdleMs ?? API_CLIENT_EVICT_IDLE_MS,
      queueBytesMax: options.queueBytesMax ?? API_CLIENT_QUEUE_BYTES_MAX,
      helloTimeoutMs: options.helloTimeoutMs ?? API_HELLO_TIMEOUT_MS,
      streamStallMs: options.streamStallMs ?? API_STREAM_STALL_MS,
      protocolVersion: options.protocolVersion ?? API_PROTOCOL_VERSION,
    };
    assert(clientsMax >= 1 && this.limits.connectionsMax > clientsMax, 'room for a refusal beside the client slots');
    assert(this.limits.evictIdleMs < this.limits.idleMs, 'eviction takes clients not yet timed out');
    this.refusals = new RefusalLog(`api socket ${options.socketPath}`, options.logger);
  }

  /** Ends the pause of `startsPaused`: requests and streams reach their handlers from now on. */
  serve(): void {
    this.servingNow = true;
  }

  /** @internal */ get serving(): boolean {
    return this.servingNow;
  }

  /** Registers the handler of request `method` (once per method, before or after listen). */
  register(method: string, handler: RequestHandler): void {
    assert(!this.handlers.has(method) && !this.streamHandlers.has(method), `method ${method} registered twice`);
    this.handlers.set(method, handler);
  }

  /** Registers the handler of stream `method`. */
  registerStream(method: string, handler: StreamHandler): void {
    assert(!this.handlers.has(method) && !this.streamHandlers.has(method), `method ${method} registered twice`);
    this.streamHandlers.set(method, handler);
  }

  /** @internal */ requestHandler(method: string): RequestHandler | undefined {
    return this.handlers.get(method);
  }

  /** @internal */ streamHandler(method: string): StreamHandler | undefined {
    return this.streamHandlers.get(method);
  }

  /** @internal */ get log(): Logger | undefined {
    return this.options.logger;
  }

  private configCache: (Limits & { readonly name: string }) | null = null;

  /** @internal */ get config(): Limits & { readonly name: string } {
    this.configCache ??= { ...this.limits, name: this.name };
    return this.configCache;
  }

  /** @internal */ noteQueued(bytes: number): void {
    if (bytes > this.stats.queuedBytesPeak) this.stats.queuedBytesPeak = bytes;
  }

  /** @internal */ forget(connection: ApiConnection): void {
    this.clients.delete(connection);
    this.stats.clients = this.clients.size;
  }

  /** Current counters. */
  snapshot(): ApiServerStats {
    return { ...this.stats };
  }

  /**
   * Binds the socket. Throws `ApiServerError` `SOCKET_IN_USE` when a process listens at the
   * path or a non-socket file is there, `SOCKET_LISTEN` when binding fails.
   */
  async listen(): Promise<void> {
    assert(this.server === undefined && !this.closed, 'listen is called once');
    const path = this.options.socketPath;
    // A missing directory is created owner-only: the default keeps the socket private until an
    // administrator deliberately places it in a group-accessible directory.
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    await removeStaleSocket(path, this.options.logger);
    const server = createServer({ allowHalfOpen: false }, (socket) => {
      this.accept(socket);
    });
    // Past the cap node:net accepts and closes at once: a flood costs no descriptor kept.
    server.maxConnections = this.limits.connectionsMax;
    server.on('drop', () => {
      this.stats.connectionsRefused++;
      this.refusals.note(`at most ${this.limits.connectionsMax} connections at once, refusals included`);
    });
    this.server = server;
    const temp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
    const direct = Buffer.byteLength(temp) > UNIX_SOCKET_PATH_BYTES_MAX;
    const bindPath = direct ? path : temp;
    if (!direct) await unlink(temp).catch(() => undefined);
    await new Promise<void>((resolve, reject) => {
      const onError = (e: Error): void => {
        reject(new ApiServerError('SOCKET_LISTEN', `cannot listen on ${path}: ${e.message}`, { cause: e }));
      };
      server.once('error', onError);
      server.listen(bindPath, () => {
        server.off('error', onError);
        resolve();
      });
    });
    // After listening, an error is a failed accept (e.g. EMFILE): that connection is refused.
    server.on('error', (e: NodeJS.ErrnoException) => {
      this.stats.connectionsRefused++;
      this.refusals.note(`accept failed: ${e.code ?? e.message}`);
    });
    // Give the socket its mode before it is reachable at the configured path.
    await chmod(bindPath, this.mode);
    if (!direct) await rename(temp, path);
    this.socketIno = (await lstat(path)).ino;
    this.options.logger?.info({ socket: path, mode: `0${this.mode.toString(8)}` }, 'api listening');
  }

  private accept(socket: Socket): void {
    if (!this.closed && this.clients.size >= this.limits.clientsMax) this.evictLongestIdle();
    if (this.closed || this.clients.size >= this.limits.clientsMax) {
      this.stats.connectionsRefused++;
      const why = this.closed
        ? 'the daemon is shutting down'
        : `every one of the ${this.limits.clientsMax} API client slots is busy (a request in flight, a stream open, or active within the last ${this.limits.evictIdleMs} ms); retry later`;
      if (!this.closed) this.refusals.note(`every one of the ${this.limits.clientsMax} client slots is busy`);
      const frame = encodeApiFrame(serverFrameCodec(), {
        type: 'error',
        id: 0,
        code: this.closed ? 'UNAVAILABLE' : 'OVERLOADED',
        message: why,
      } satisfies ServerFrame);
      socket.on('error', () => undefined);
      // Read (and drop) so the client's close is seen; bound how long a refused client lingers.
      socket.resume();
      socket.end(frame);
      setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS).unref();
      return;
    }
    const connection = new ApiConnection(this, socket, this.nextClientId++);
    this.clients.add(connection);
    this.stats.clients = this.clients.size;
  }

  /** Frees the slot of the client idle longest, if one was idle at least `evictIdleMs`. */
  private evictLongestIdle(): void {
    const now = performance.now();
    let victim: ApiConnection | undefined;
    for (const c of this.clients) {
      const since = c.idleSinceMs;
      if (since !== undefined && now - since >= this.limits.evictIdleMs && (victim?.idleSinceMs ?? Infinity) > since)
        victim = c;
    }
    if (victim === undefined) return;
    const idleMs = Math.round(now - (victim.idleSinceMs ?? now));
    this.stats.evictions++;
    this.options.logger?.debug(
      { client: victim.clientId, idleMs },
      'api client evicted: its slot went to a new client',
    );
    victim.shutdown(
      'IDLE',
      `closed after ${idleMs} ms idle to give its slot to a new client (the daemon serves at most ${this.limits.clientsMax} API clients); connect again`,
    );
    this.forget(victim);
  }

  /**
   * Stops accepting, tells every client the daemon is going away (`UNAVAILABLE`), aborts every
   * handler, and removes the socket file if it is still ours. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of [...this.clients]) c.shutdown('UNAVAILABLE', 'the daemon is shutting down');
    const server = this.server;
    if (server !== undefined)
      await new Promise<void>((resolve) =>
        server.close(() => {
          resolve();
        }),
      );
    await this.removeOwnSocket();
  }

  private async removeOwnSocket(): Promise<void> {
    const path = this.options.socketPath;
    try {
      if (this.socketIno !== undefined && (await lstat(path)).ino === this.socketIno) await unlink(path);
    } catch (e) {
      if ((e as { code?: unknown }).code !== 'ENOENT')
        this.options.logger?.warn({ err: e, socket: path }, 'could not remove the api socket');
    }
  }
}

/** Removes a socket file nobody listens on; refuses to touch a live socket or a non-socket. */
async function removeStaleSocket(path: string, logger: Logger | undefined): Promise<void> {
  let info;
  try {
    info = await lstat(path);
  } catch (e) {
    if ((e as { code?: unknown }).code === 'ENOENT') return;
    throw new ApiServerError('SOCKET_LISTEN', `cannot inspect ${path}: ${e instanceof Error ? e.message : String(e)}`, {
      cause: e,
    });
  }
  if (!info.isSocket())
    throw new ApiServerError(
      'SOCKET_IN_USE',
      `${path} exists and is not a socket; refusing to remove it: move it away or choose another api.socket`,
    );
  const live = await new Promise<boolean>((resolve) => {
    const probe = createConnection(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => {
      resolve(false);
    });
  });
  if (live)
    throw new ApiServerError(
      'SOCKET_IN_USE',
      `another process is listening on ${path}; is a cohort daemon already running with this config?`,
    );
  await unlink(path).catch((e: unknown) => {
    if ((e as { code?: unknown }).code !== 'ENOENT') throw e;
  });
  logger?.info({ socket: path }, 'removed a stale api socket left by an earlier run');
}

type StreamState = { readonly controller: AbortController; closed: boolean; cleanup: (() => void) | undefined };

/** Read through a call: the stream may close while its pull loop awaits. */
function isClosed(state: StreamState): boolean {
  return state.closed;
}

/** One client connection: hello, then requests and streams until either side closes. */
class ApiConnection {
  /** A cork is on the socket until the end of this event-loop turn (see `send`/`write`). */
  private corked = false;
  private readonly decoder = new FrameDecoder(API_FRAME_LIMITS);
  private readonly reader: Codec<ClientFrame> = clientFrameCodec();
  private readonly writer: Codec<ServerFrame> = serverFrameCodec();
  private readonly requests = new Map<number, AbortController>();
  private readonly streams = new Map<number, StreamState>();
  private greeted = false;
  private closing = false;
  private readonly helloTimer: NodeJS.Timeout;
  private idleTimer: NodeJS.Timeout | undefined;
  /** Since when this client has had no request in flight and no stream open (`performance.now()`); undefined while busy or closing. */
  idleSinceMs: number | undefined = performance.now();

  constructor(
    private readonly server: ApiServer,
    private readonly socket: Socket,
    readonly clientId: number,
  ) {
    this.helloTimer = setTimeout(() => {
      this.shutdown('PROTOCOL_ERROR', `no hello within ${server.config.helloTimeoutMs} ms`);
    }, server.config.helloTimeoutMs);
    socket.on('data', (chunk: Buffer) => {
      this.onData(chunk);
    });
    socket.on('error', (e) => server.log?.debug({ err: e, client: clientId }, 'api client socket error'));
    socket.on('close', () => {
      this.onClose();
    });
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    try {
      this.decoder.push(chunk);
      for (let frame = this.decoder.next(); frame !== undefined && !this.isClosing(); frame = this.decoder.next()) {
        this.handle(this.reader.decode(frame.subarray(4)));
      }
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      this.shutdown('PROTOCOL_ERROR', `bad frame from the client: ${e.message}`);
    }
  }

  private handle(frame: ClientFrame): void {
    if (!this.greeted) {
      if (frame.type !== 'hello') {
        this.shutdown('PROTOCOL_ERROR', `the first frame must be a hello, got ${frame.type}`);
        return;
      }
      clearTimeout(this.helloTimer);
      const outcome = checkHello(frame, this.server.config.protocolVersion);
      if (!outcome.ok) {
        this.shutdown(outcome.error.code as ApiErrorCode, outcome.error.message);
        return;
      }
      this.greeted = true;
      this.send({ type: 'welcome', version: this.server.config.protocolVersion, server: this.server.config.name });
      this.idleSinceMs = undefined;
      this.noteLoad();
      return;
    }
    switch (frame.type) {
      case 'hello':
        this.shutdown('PROTOCOL_ERROR', 'a second hello on one connection');
        return;
      case 'request':
        this.startRequest(frame.id, frame.method, frame.params);
        return;
      case 'subscribe':
        this.startStream(frame.id, frame.method, frame.params);
        return;
      case 'cancel':
        this.cancel(frame.id);
        return;
    }
  }

  /**
   * Called after every change of the requests and streams: an idle client (none of either) is
   * closed after `idleMs`; a busy one never is.
   */
  private noteLoad(): void {
    if (this.closing || !this.greeted) return;
    if (this.requests.size > 0 || this.streams.size > 0) {
      this.idleSinceMs = undefined;
      clearTimeout(this.idleTimer);
      return;
    }
    if (this.idleSinceMs !== undefined) return;
    this.idleSinceMs = performance.now();
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      this.server.stats.idleClosures++;
      this.shutdown('IDLE', `closed after ${this.server.config.idleMs} ms without a request or stream; connect again`);
    }, this.server.config.idleMs).unref();
  }

  private idInUse(id: number): boolean {
    if (!this.requests.has(id) && !this.streams.has(id)) return false;
    this.shutdown('PROTOCOL_ERROR', `id ${id} is already in use by an open request or stream`);
    return true;
  }

  private startRequest(id: number, method: string, params: ApiData): void {
    if (this.idInUse(id)) return;
    if (!this.server.serving) {
      this.sendError(id, 'UNAVAILABLE', 'the daemon is starting; retry shortly');
      return;
    }
    const handler = this.server.requestHandler(method);
    if (handler === undefined) {
      this.sendError(
        id,
        this.server.streamHandler(method) !== undefined ? 'INVALID_ARGUMENT' : 'UNKNOWN_METHOD',
        this.server.streamHandler(method) !== undefined
          ? `${method} is a stream; subscribe to it`
          : `no method ${JSON.stringify(method)}`,
      );
      return;
    }
    if (this.requests.size >= API_CLIENT_REQUESTS_MAX) {
      this.sendError(
        id,
        'OVERLOADED',
        `at most ${API_CLIENT_REQUESTS_MAX} requests may be in flight on one connection`,
      );
      return;
    }
    // The signal is made only when a handler reads it: most answers come at once (a lock call, a
    // status read), and such a request is answered here, in this turn, with no cancel to expect.
    let controller: AbortController | null = null;
    const ctx: HandlerContext = {
      get signal(): AbortSignal {
        controller ??= new AbortController();
        return controller.signal;
      },
      clientId: this.clientId,
    };
    let answer: ApiData | Promise<ApiData>;
    try {
      answer = handler(params, ctx);
    } catch (e) {
      this.send(this.errorFrame(id, method, e));
      return;
    }
    if (!(answer instanceof Promise)) {
      this.send({ type: 'response', id, result: answer });
      return;
    }
    const pending = answer;
    controller ??= new AbortController();
    const own = controller;
    this.requests.set(id, own);
    this.noteLoad();
    void (async () => {
      let reply: ServerFrame;
      try {
        reply = { type: 'response', id, result: await pending };
      } catch (e) {
        reply = this.errorFrame(id, method, e);
      }
      // A cancelled request was already answered CANCELLED; a closed connection needs nothing.
      if (this.requests.get(id) !== own) return;
      this.requests.delete(id);
      this.send(reply);
      this.noteLoad();
    })();
  }

  private errorFrame(id: number, method: string, e: unknown): ServerFrame {
    if (e instanceof ApiError) return { type: 'error', id, code: e.code, message: e.message };
    this.server.log?.error({ err: e, method, client: this.clientId }, 'api handler failed');
    return { type: 'error', id, code: 'INTERNAL', message: `${method} failed inside the daemon; see the daemon's log` };
  }

  private startStream(id: number, method: string, params: ApiData): void {
    if (this.idInUse(id)) return;
    if (!this.server.serving) {
      this.sendError(id, 'UNAVAILABLE', 'the daemon is starting; retry shortly');
      return;
    }
    const handler = this.server.streamHandler(method);
    if (handler === undefined) {
      this.sendError(
        id,
        this.server.requestHandler(method) !== undefined ? 'INVALID_ARGUMENT' : 'UNKNOWN_METHOD',
        this.server.requestHandler(method) !== undefined
          ? `${method} is a request, not a stream`
          : `no stream ${JSON.stringify(method)}`,
      );
      return;
    }
    if (this.streams.size >= API_CLIENT_STREAMS_MAX) {
      this.sendError(id, 'OVERLOADED', `at most ${API_CLIENT_STREAMS_MAX} streams may be open on one connection`);
      return;
    }
    const state: StreamState = { controller: new AbortController(), closed: false, cleanup: undefined };
    this.streams.set(id, state);
    this.noteLoad();
    const sink: StreamSink = {
      push: (value) => this.pushItem(id, state, value),
      end: () => {
        this.closeStream(id, state, { type: 'end', id });
      },
      fail: (code, message) => {
        this.closeStream(id, state, { type: 'error', id, code, message });
      },
    };
    let source: ReturnType<StreamHandler>;
    try {
      source = handler(params, { signal: state.controller.signal, clientId: this.clientId }, sink);
    } catch (e) {
      this.closeStream(id, state, this.errorFrame(id, method, e));
      return;
    }
    if (typeof source === 'function') {
      if (state.closed) source();
      else state.cleanup = source;
    } else if (source !== undefined) {
      void this.pull(id, method, state, source);
    }
  }

  /** Pushed item: closes the stream with SLOW_CONSUMER when the client's queue is over the bound. */
  private pushItem(id: number, state: StreamState, value: ApiData): boolean {
    if (state.closed || this.closing) return false;
    if (this.socket.writableLength >= this.server.config.queueBytesMax) {
      this.slowConsumer(id, state);
      return false;
    }
    this.send({ type: 'item', id, value });
    return !state.closed;
  }

  private slowConsumer(id: number, state: StreamState): void {
    this.server.stats.slowConsumerClosures++;
    const queued = this.socket.writableLength;
    this.closeStream(id, state, {
      type: 'error',
      id,
      code: 'SLOW_CONSUMER',
      message: `the client fell ${queued} bytes behind this stream (limit ${this.server.config.queueBytesMax}); read faster or resubscribe from the last item seen`,
    });
  }

  /** Pulls an iterable at the client's pace: never more than the queue bound outstanding. */
  private async pull(id: number, method: string, state: StreamState, source: AsyncIterable<ApiData>): Promise<void> {
    const iterator = source[Symbol.asyncIterator]();
    try {
      while (!isClosed(state)) {
        if (this.socket.writableLength >= this.server.config.queueBytesMax && !(await this.drained(state))) {
          if (!isClosed(state)) this.slowConsumer(id, state);
          break;
        }
        const next = await iterator.next();
        if (isClosed(state)) break;
        if (next.done === true) {
          this.closeStream(id, state, { type: 'end', id });
          break;
        }
        this.send({ type: 'item', id, value: next.value });
      }
    } catch (e) {
      if (!state.closed) this.closeStream(id, state, this.errorFrame(id, method, e));
    } finally {
      // Let the producer release what it holds (a generator's finally blocks run).
      await iterator.return?.().catch(() => undefined);
    }
  }

  /** Resolves true once the socket drains, false on timeout, close or cancel. */
  private drained(state: StreamState): Promise<boolean> {
    return new Promise((resolve) => {
      const done = (value: boolean): void => {
        clearTimeout(timer);
        this.socket.off('drain', onDrain);
        this.socket.off('close', onClose);
        state.controller.signal.removeEventListener('abort', onClose);
        resolve(value);
      };
      const onDrain = (): void => {
        done(true);
      };
      const onClose = (): void => {
        done(false);
      };
      const timer = setTimeout(() => {
        done(false);
      }, this.server.config.streamStallMs);
      this.socket.on('drain', onDrain);
      this.socket.on('close', onClose);
      state.controller.signal.addEventListener('abort', onClose);
    });
  }

  private closeStream(id: number, state: StreamState, final: ServerFrame | undefined): void {
    if (state.closed) return;
    state.closed = true;
    if (this.streams.get(id) === state) this.streams.delete(id);
    state.controller.abort();
    if (final !== undefined) this.send(final);
    this.noteLoad();
    const cleanup = state.cleanup;
    state.cleanup = undefined;
    if (cleanup !== undefined) {
      try {
        cleanup();
      } catch (e) {
        this.server.log?.error({ err: e, client: this.clientId }, 'api stream cleanup failed');
      }
    }
  }

  private cancel(id: number): void {
    const request = this.requests.get(id);
    if (request !== undefined) {
      this.requests.delete(id);
      request.abort();
      this.sendError(id, 'CANCELLED', 'cancelled by the client');
      this.noteLoad();
      return;
    }
    const stream = this.streams.get(id);
    if (stream !== undefined)
      this.closeStream(id, stream, { type: 'error', id, code: 'CANCELLED', message: 'cancelled by the client' });
    // An unknown id finished already: the final frame crossed the cancel on the wire.
  }

  private sendError(id: number, code: ApiErrorCode, message: string): void {
    this.send({ type: 'error', id, code, message });
  }

  /** Writes a frame; a client whose queue passes the bound plus one frame is disconnected. */
  private send(frame: ServerFrame): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    const bytes = encodeApiFrame(this.writer, frame);
    const queued = this.socket.writableLength + bytes.length;
    if (queued > this.server.config.queueBytesMax + API_FRAME_BYTES_MAX + 4096) {
      this.server.log?.warn(
        { client: this.clientId, queued },
        'api client does not read its replies; disconnecting it',
      );
      this.socket.destroy();
      return;
    }
    this.server.noteQueued(queued);
    // Frames of one event-loop turn (a burst of answers and stream items) go out in one write.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(bytes);
  }

  /** Sends a connection-level error (id 0), then closes after it is flushed. */
  shutdown(code: ApiErrorCode, message: string): void {
    if (this.closing) return;
    this.send({ type: 'error', id: 0, code, message });
    this.closing = true;
    this.abortAll();
    this.socket.end();
    // A client that never reads would keep the socket half-open: bound how long we wait.
    setTimeout(() => this.socket.destroy(), REFUSAL_LINGER_MS).unref();
  }

  /** Read through a call: handlers may close the connection while a loop runs. */
  private isClosing(): boolean {
    return this.closing;
  }

  private abortAll(): void {
    clearTimeout(this.helloTimer);
    clearTimeout(this.idleTimer);
    this.idleSinceMs = undefined;
    for (const c of this.requests.values()) c.abort();
    this.requests.clear();
    for (const [id, s] of [...this.streams]) this.closeStream(id, s, undefined);
  }

  private onClose(): void {
    this.closing = true;
    this.abortAll();
    this.server.forget(this);
  }
}
