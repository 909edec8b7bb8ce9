/**
 * A client connection to the local daemon over its Unix socket (protocol: `src/api`,
 * docs/api.md). The `cohort` CLI and the client library sit on this.
 *
 *     await using conn = await connectLocal({ socket: '/var/lib/cohort/cohort.sock' });
 *     const status = await conn.request('status', null, { signal: AbortSignal.timeout(2000) });
 *     for await (const event of conn.stream('events', { fromSeq: 0 }, { signal })) { ... }
 *
 * Contract:
 * - Every wait takes an `AbortSignal`; an aborted call rejects with `ABORTED` (a request or
 *   stream is also cancelled on the daemon).
 * - Every failure is a `CohortClientError` with a stable code: the daemon's error code, or
 *   `DAEMON_UNREACHABLE` (naming the socket and how to select another one), `CONNECTION_LOST`,
 *   `ABORTED`, `CLOSED`.
 * - A lost connection fails every open call at once and every later call immediately; the
 *   connection does not reconnect by itself (a restarted daemon is a new session: streams
 *   resume from the last sequence number the caller saw).
 * - Bounded: requests in flight (`API_CLIENT_REQUESTS_MAX`), open streams, and items buffered
 *   per stream (`API_CLIENT_STREAM_ITEMS_MAX`): when a consumer falls behind, the client stops
 *   reading the socket, which pushes back on the daemon (which may then end the stream with
 *   `SLOW_CONSUMER`).
 * - `close()` and `[Symbol.asyncDispose]` (`await using`) end the connection; open calls
 *   reject with `CLOSED`.
 */
import { statSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { assert } from '../lib/assert.js';
import { DecodeError } from '../lib/errors.js';
import { API_CLIENT_REQUESTS_MAX, API_CLIENT_STREAM_ITEMS_MAX, API_CLIENT_STREAMS_MAX } from '../constants.js';
import { FrameDecoder } from '../transport/frame-decoder.js';
import type { Codec } from '../transport/transport.js';
import {
  API_FRAME_LIMITS,
  API_PROTOCOL,
  API_PROTOCOL_VERSION,
  abortedError,
  clientFrameCodec,
  CohortClientError,
  encodeApiFrame,
  serverFrameCodec,
  type ApiData,
  type CallOptions,
  type ClientFrame,
  type ServerFrame,
} from '../api/index.js';

/** Default time allowed to connect and complete the hello. */
export const CONNECT_TIMEOUT_MS_DEFAULT = 5000;
/** The environment variable naming the default socket. */
export const SOCKET_ENV = 'COHORT_SOCKET';

/** Options of `connectLocal`. */
export interface ConnectOptions {
  /** The daemon's socket; defaults to `$COHORT_SOCKET`. */
  readonly socket?: string;
  readonly signal?: AbortSignal;
  /** Connect and hello deadline (default 5 s). */
  readonly timeoutMs?: number;
  /** Shown in the daemon's logs. */
  readonly clientName?: string;
  /** TESTS ONLY: the protocol version to announce. */
  readonly protocolVersion?: number;
}

/**
 * What is at `path` when it is not a socket (connecting to a regular file or a directory also
 * fails with ECONNREFUSED), or null when it is a socket or cannot be examined.
 */
function notASocket(path: string): string | null {
  try {
    const st = statSync(path);
    if (st.isSocket()) return null;
    return `it is ${st.isDirectory() ? 'a directory' : st.isFile() ? 'a regular file' : 'some other file'}, not a socket`;
  } catch {
    return null; // gone or unreadable since the attempt: the connect error says enough
  }
}

function unreachable(socket: string, e: unknown): CohortClientError {
  const code = (e as { code?: unknown }).code;
  const why =
    code === 'ENOENT'
      ? 'no socket there'
      : code === 'ECONNREFUSED' || code === 'ENOTSOCK'
        ? (notASocket(socket) ?? 'nothing listens there (a stale socket?)')
        : code === 'EACCES'
          ? "permission denied: run as a user in the socket's group"
          : e instanceof Error
            ? e.message
            : String(e);
  return new CohortClientError(
    'DAEMON_UNREACHABLE',
    `cannot reach the cohort daemon at ${socket} (${why}); is it running? Select another node with \`cohort status --socket PATH\` or ${SOCKET_ENV}=PATH`,
    { cause: e },
  );
}

/**
 * Connects to the daemon at `options.socket` (or `$COHORT_SOCKET`) and completes the hello.
 * Rejects with `DAEMON_UNREACHABLE`, `VERSION_MISMATCH` (naming both versions), `TIMEOUT`,
 * `ABORTED`, or the daemon's refusal (`OVERLOADED`, `UNAVAILABLE`).
 */
export async function connectLocal(options: ConnectOptions = {}): Promise<ClientConnection> {
  const path = options.socket ?? process.env[SOCKET_ENV];
  if (path === undefined || path === '') {
    throw new CohortClientError(
      'DAEMON_UNREACHABLE',
      `no daemon socket given; pass --socket PATH or set ${SOCKET_ENV}=PATH (the path is api.socket in the node's config)`,
    );
  }
  const timeout = AbortSignal.timeout(options.timeoutMs ?? CONNECT_TIMEOUT_MS_DEFAULT);
  const signal = options.signal === undefined ? timeout : AbortSignal.any([options.signal, timeout]);
  if (signal.aborted) throw abortedError(signal, `connecting to ${path}`);
  const socket = createConnection(path);
  const connection = new ClientConnection(socket, path);
  try {
    await connection.handshake(
      options.clientName ?? `cohort-client pid ${process.pid}`,
      options.protocolVersion ?? API_PROTOCOL_VERSION,
      signal,
    );
  } catch (e) {
    socket.destroy();
    throw e;
  }
  return connection;
}

interface Pending {
  resolve(value: ApiData): void;
  reject(error: CohortClientError): void;
}

/** One open connection. Create it with `connectLocal`. */
export class ClientConnection {
  /** A cork is on the socket until the end of this event-loop turn (see `send`/`write`). */
  private corked = false;
  private readonly decoder = new FrameDecoder(API_FRAME_LIMITS);
  private readonly reader: Codec<ServerFrame> = serverFrameCodec();
  private readonly writer: Codec<ClientFrame> = clientFrameCodec();
  private readonly pending = new Map<number, Pending>();
  private readonly streams = new Map<number, ClientStream>();
  private nextId = 1;
  /** Set once the connection is unusable; every later call fails with it. */
  private failure: CohortClientError | undefined;
  private welcome: ((error: CohortClientError | undefined) => void) | undefined;
  private readonly closedPromise: Promise<void>;
  private paused = 0;
  /** The daemon's name from its welcome. */
  server = '';

  /** @internal use `connectLocal`. */
  constructor(
    private readonly socket: Socket,
    /** The socket path, for messages. */
    readonly path: string,
  ) {
    this.closedPromise = new Promise((resolve) =>
      socket.once('close', () => {
        resolve();
      }),
    );
    socket.on('data', (chunk: Buffer) => {
      this.onData(chunk);
    });
    socket.on('error', (e) => {
      this.fail(
        this.welcome !== undefined
          ? unreachable(path, e)
          : new CohortClientError(
              'CONNECTION_LOST',
              `connection to the cohort daemon at ${path} failed: ${e.message}`,
              { cause: e },
            ),
      );
    });
    socket.on('close', () => {
      this.fail(
        new CohortClientError(
          'CONNECTION_LOST',
          `the cohort daemon at ${path} closed the connection (stopped or restarted?); connect again`,
        ),
      );
    });
  }

  /** @internal Sends the hello and waits for the welcome. */
  handshake(clientName: string, version: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        this.welcome = undefined;
        reject(abortedError(signal, `connecting to ${this.path}`));
      };
      this.welcome = (error) => {
        signal.removeEventListener('abort', onAbort);
        this.welcome = undefined;
        if (error === undefined) resolve();
        else reject(error);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.write({ type: 'hello', protocol: API_PROTOCOL, version, client: clientName.slice(0, 128) });
    });
  }

  /** True until the connection breaks or is closed. */
  get open(): boolean {
    return this.failure === undefined;
  }

  /**
   * Calls `method` and resolves to its result. Rejects with the daemon's error code, or
   * `ABORTED`/`TIMEOUT` (the daemon is told to cancel), `CONNECTION_LOST`, `CLOSED`,
   * `OVERLOADED` (too many requests in flight on this connection).
   */
  request(method: string, params: ApiData = null, options: CallOptions = {}): Promise<ApiData> {
    const { signal } = options;
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (signal?.aborted === true) return Promise.reject(abortedError(signal, method));
    if (this.pending.size >= API_CLIENT_REQUESTS_MAX) {
      return Promise.reject(
        new CohortClientError(
          'OVERLOADED',
          `${API_CLIENT_REQUESTS_MAX} requests are already in flight on this connection; wait for some to finish`,
        ),
      );
    }
    const id = this.nextId++;
    return new Promise<ApiData>((resolve, reject) => {
      const onAbort = (): void => {
        if (!this.pending.delete(id)) return;
        this.write({ type: 'cancel', id });
        reject(abortedError(signal ?? AbortSignal.abort(), method));
      };
      this.pending.set(id, {
        resolve: (v) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(v);
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.write({ type: 'request', id, method, params });
    });
  }

  /**
   * Opens stream `method` and returns it as an async iterator of items. Breaking out of a
   * `for await` loop, or aborting `signal`, cancels it on the daemon. The iterator throws the
   * daemon's error code (`SLOW_CONSUMER`, `GAP`, ...) or `ABORTED`, `CONNECTION_LOST`, `CLOSED`.
   */
  stream(method: string, params: ApiData = null, options: CallOptions = {}): ClientStream {
    const id = this.nextId++;
    const stream = new ClientStream(this, id, method, options.signal);
    if (this.failure !== undefined) {
      stream.finish(this.failure);
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
    this.streams.set(id, stream);
    this.write({ type: 'subscribe', id, method, params });
    return stream;
  }

  /** Closes the connection; open calls reject with `CLOSED`. Resolves once the socket is closed. Idempotent. */
  async close(): Promise<void> {
    this.fail(new CohortClientError('CLOSED', 'the connection was closed by this client'));
    this.socket.end();
    const timer = setTimeout(() => this.socket.destroy(), 1000);
    await this.closedPromise;
    clearTimeout(timer);
  }

  /** `await using conn = await connectLocal(...)` closes it at the end of the scope. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** @internal A stream was closed by its consumer. */
  cancelStream(id: number): void {
    if (this.streams.delete(id) && this.failure === undefined) this.write({ type: 'cancel', id });
  }

  /** @internal Flow control: a stream's buffer filled (pause reading) or drained (resume). */
  backpressure(paused: boolean): void {
    this.paused += paused ? 1 : -1;
    assert(this.paused >= 0, 'pause count never goes negative');
    if (this.paused > 0) this.socket.pause();
    else this.socket.resume();
  }

  private write(frame: ClientFrame): void {
    if (this.socket.destroyed) return;
    // Frames of one event-loop turn (many concurrent calls) go out in one write.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    this.socket.write(encodeApiFrame(this.writer, frame));
  }

  private onData(chunk: Buffer): void {
    try {
      this.decoder.push(chunk);
      for (let frame = this.decoder.next(); frame !== undefined; frame = this.decoder.next())
        this.handle(this.reader.decode(frame.subarray(4)));
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      this.fail(
        new CohortClientError(
          'PROTOCOL_ERROR',
          `the daemon at ${this.path} sent a bad frame (${e.message}); is the client of the same release?`,
          { cause: e },
        ),
      );
      this.socket.destroy();
    }
  }

  private handle(frame: ServerFrame): void {
    switch (frame.type) {
      case 'welcome':
        this.server = frame.server;
        this.welcome?.(undefined);
        return;
      case 'response':
        this.settle(frame.id, frame.result, undefined);
        return;
      case 'item':
        this.streams.get(frame.id)?.deliver(frame.value);
        return;
      case 'end':
        this.streams.get(frame.id)?.finish(undefined);
        this.streams.delete(frame.id);
        return;
      case 'error':
        this.onError(frame.id, frame.code, frame.message);
        return;
    }
  }

  private onError(id: number, code: string, message: string): void {
    const error = new CohortClientError(code, message);
    if (id === 0) {
      this.fail(error);
      return;
    }
    this.settle(id, null, error);
    const stream = this.streams.get(id);
    if (stream !== undefined) {
      this.streams.delete(id);
      stream.finish(error);
    }
  }

  private settle(id: number, value: ApiData, error: CohortClientError | undefined): void {
    const p = this.pending.get(id);
    if (p === undefined) return; // cancelled by the caller already
    this.pending.delete(id);
    if (error === undefined) p.resolve(value);
    else p.reject(error);
  }

  /** Marks the connection broken with `error` (the first reason wins) and fails every open call. */
  private fail(error: CohortClientError): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.welcome?.(error);
    for (const p of this.pending.values()) p.reject(error);
    this.pending.clear();
    for (const s of this.streams.values()) s.finish(error);
    this.streams.clear();
  }
}

/** One open stream: an async iterator of items with a bounded buffer. */
export class ClientStream implements AsyncIterableIterator<ApiData> {
  private readonly buffer: ApiData[] = [];
  private head = 0;
  private done = false;
  private error: CohortClientError | undefined;
  private waiter: { resolve(r: IteratorResult<ApiData>): void; reject(e: CohortClientError): void } | undefined;
  private pausedReading = false;
  private readonly onAbort: () => void;

  constructor(
    private readonly connection: ClientConnection,
    readonly id: number,
    readonly method: string,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.onAbort = () => {
      this.connection.cancelStream(this.id);
      this.finish(abortedError(signal ?? AbortSignal.abort(), method));
    };
    if (signal?.aborted === true) this.finish(abortedError(signal, method));
    else signal?.addEventListener('abort', this.onAbort, { once: true });
  }

  /** Items received and not yet consumed. */
  get buffered(): number {
    return this.buffer.length - this.head;
  }

  /** @internal An item arrived. */
  deliver(value: ApiData): void {
    if (this.done) return;
    if (this.waiter !== undefined) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve({ done: false, value });
      return;
    }
    this.buffer.push(value);
    if (!this.pausedReading && this.buffered >= API_CLIENT_STREAM_ITEMS_MAX) {
      this.pausedReading = true;
      this.connection.backpressure(true);
    }
  }

  /** @internal The stream ended (`error` undefined) or failed. Buffered items are still delivered first. */
  finish(error: CohortClientError | undefined): void {
    if (this.done) return;
    this.done = true;
    this.error = error;
    this.signal?.removeEventListener('abort', this.onAbort);
    this.releaseReading();
    if (this.waiter !== undefined && this.buffered === 0) {
      const w = this.waiter;
      this.waiter = undefined;
      if (error === undefined) w.resolve({ done: true, value: undefined });
      else w.reject(error);
    }
  }

  private releaseReading(): void {
    if (!this.pausedReading) return;
    this.pausedReading = false;
    this.connection.backpressure(false);
  }

  next(): Promise<IteratorResult<ApiData>> {
    assert(this.waiter === undefined, 'a stream is consumed by one reader at a time');
    if (this.buffered > 0) {
      const value = this.buffer[this.head] as ApiData;
      this.head++;
      if (this.head === this.buffer.length) {
        this.buffer.length = 0;
        this.head = 0;
      } else if (this.head >= 1024 && this.head * 2 >= this.buffer.length) {
        this.buffer.splice(0, this.head);
        this.head = 0;
      }
      if (this.pausedReading && this.buffered <= API_CLIENT_STREAM_ITEMS_MAX / 2) this.releaseReading();
      return Promise.resolve({ done: false, value });
    }
    if (this.done)
      return this.error === undefined ? Promise.resolve({ done: true, value: undefined }) : Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** Called by `break` in `for await`: cancels the stream on the daemon. */
  return(): Promise<IteratorResult<ApiData>> {
    this.cancel();
    return Promise.resolve({ done: true, value: undefined });
  }

  /** Cancels the stream; buffered items are dropped. Idempotent. */
  cancel(): void {
    this.buffer.length = 0;
    this.head = 0;
    if (!this.done) {
      this.connection.cancelStream(this.id);
      this.finish(undefined);
    }
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
