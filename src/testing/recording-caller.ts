/**
 * Test support for the services' client namespaces: an `ApiCaller` with no connection behind it,
 * which answers each method from a table and records every call, so a `*-client.ts` is tested
 * without a socket, a daemon or `src/client`. For tests only.
 */
import type { ApiCaller, ApiData, ApiStream, CallOptions } from '../api/index.js';

/** One call the caller saw: the method, its params and the options that crossed to it. */
export interface RecordedCall {
  readonly method: string;
  readonly params: ApiData;
  readonly options: CallOptions;
}

/** A canned stream: yields `items` in order, then ends; records whether it was cancelled. */
class CannedStream implements ApiStream {
  private next_ = 0;
  cancelled = false;

  constructor(private readonly items: readonly ApiData[]) {}

  next(): Promise<IteratorResult<ApiData>> {
    const item = this.items[this.next_];
    if (this.cancelled || item === undefined) return Promise.resolve({ done: true, value: undefined });
    this.next_++;
    return Promise.resolve({ done: false, value: item });
  }

  return(): Promise<IteratorResult<ApiData>> {
    this.cancel();
    return Promise.resolve({ done: true, value: undefined });
  }

  cancel(): void {
    this.cancelled = true;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/**
 * Answers `request(method)` with `answers[method]` (a method not in the table throws, failing the
 * test) and `stream(method)` with `streams[method]`; `calls` lists every call in order.
 */
export class RecordingCaller implements ApiCaller {
  open = true;
  readonly calls: RecordedCall[] = [];
  readonly opened: CannedStream[] = [];

  constructor(
    private readonly answers: Readonly<Record<string, ApiData>>,
    private readonly streams: Readonly<Record<string, readonly ApiData[]>> = {},
  ) {}

  request(method: string, params: ApiData = null, options: CallOptions = {}): Promise<ApiData> {
    this.calls.push({ method, params, options });
    const answer = Object.hasOwn(this.answers, method) ? this.answers[method] : undefined;
    if (answer === undefined) throw new Error(`RecordingCaller: no answer for ${method}`);
    return Promise.resolve(answer);
  }

  stream(method: string, params: ApiData = null, options: CallOptions = {}): ApiStream {
    this.calls.push({ method, params, options });
    const items = Object.hasOwn(this.streams, method) ? this.streams[method] : undefined;
    if (items === undefined) throw new Error(`RecordingCaller: no stream ${method}`);
    const s = new CannedStream(items);
    this.opened.push(s);
    return s;
  }
}
