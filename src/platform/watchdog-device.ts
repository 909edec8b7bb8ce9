/**
 * The node-side self-fence helper for a Linux watchdog device (`/dev/watchdog`,
 * docs/design/fencing-and-recovery.md section 4, `watchdog` agent). While a node holds its lease
 * it feeds the device; when it loses the lease (or hangs, or the daemon dies) the feeding stops
 * and the driver resets the machine when its timeout expires. Survivors fence such a node by
 * waiting `nodeLeaseMs + driftMarginMs`, so the driver's timeout must be shorter than the lease
 * (less the feed interval): `readWatchdogTimeout` lets the daemon check that at start-up.
 *
 * Kernel interface (Documentation/watchdog/watchdog-api.rst):
 * - Opening the device arms it; only one process may hold it open (a second open is EBUSY).
 * - Any write pings it. Writing the magic character `V` before `close` disarms it ("magic
 *   close"); closing without it leaves it armed, so the machine resets after the timeout. A driver
 *   built or loaded with `nowayout` stays armed even after a magic close.
 * - The timeout is set with the `WDIOC_SETTIMEOUT` ioctl, which Node cannot issue. We rely on the
 *   driver's configured timeout instead: for `softdog`, the module parameter `soft_margin`
 *   (`modprobe softdog soft_margin=10`; default 60 s); for hardware drivers, their module
 *   parameter (often `timeout=`) or firmware. `/sys/class/watchdog/watchdogN/timeout` shows it.
 *
 * Never blocks the event loop: the descriptor is opened once with `fs.open` (no `O_CREAT`: a
 * missing device is an error, never a new file in /dev) and every write and the close are
 * `fs` callbacks. At most one write is in flight; feeds asked for during a write share the next
 * write. Every callback runs exactly once and never inside the call that asked for it. Errors are
 * `WatchdogError`s with a stable code.
 *
 * Tests use a plain file standing in for the device (the bytes written are observable) and never
 * open a real watchdog: opening one arms a reboot.
 */
import { close, constants, open, readFile, write } from 'node:fs';
import { join } from 'node:path';
import { CohortError } from '../lib/errors.js';

/** The usual device path. */
export const WATCHDOG_DEVICE_PATH = '/dev/watchdog';

/** The byte one feed writes (anything but `V`). */
export const WATCHDOG_FEED_BYTE = 0x00;

/** The magic-close character: written just before a clean close, it disarms the driver. */
export const WATCHDOG_MAGIC_CLOSE = 0x56; // 'V'

/** Stable codes of watchdog failures. */
export type WatchdogErrorCode =
  /** No such device (ENOENT: no driver loaded, or another path). */
  | 'WATCHDOG_NOT_FOUND'
  /** Another process holds the device open (EBUSY). */
  | 'WATCHDOG_BUSY'
  /** Not allowed to open it (EACCES, EPERM). */
  | 'WATCHDOG_NOT_PERMITTED'
  /** Any other open failure; `cause` says which. */
  | 'WATCHDOG_OPEN_FAILED'
  /** A feed or the magic close could not be written; the device may reset the machine. */
  | 'WATCHDOG_WRITE_FAILED'
  /** Closing the descriptor failed. */
  | 'WATCHDOG_CLOSE_FAILED'
  /** The helper is closed (or closing): no more feeds. */
  | 'WATCHDOG_CLOSED'
  /** The timeout file could not be read or holds no positive integer. */
  | 'WATCHDOG_TIMEOUT_UNKNOWN';

/** The one error type of the watchdog helper; switch on `code`. */
export class WatchdogError extends CohortError {
  override readonly name = 'WatchdogError';
  declare readonly code: WatchdogErrorCode;

  // eslint-disable-next-line @typescript-eslint/no-useless-constructor -- narrows `code` to the watchdog codes
  constructor(code: WatchdogErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
  }
}

/** A callback told once how an operation ended (null: it succeeded). */
export type WatchdogCallback = (error: WatchdogError | null) => void;

function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The helper's states: `open` feeds; `closing` runs its last write and close; `closed` is final. */
export type WatchdogState = 'open' | 'closing' | 'closed';

/** An open watchdog device; see the file comment. Obtain one with `WatchdogDevice.open`. */
export class WatchdogDevice {
  private stateValue: WatchdogState = 'open';
  private writing = false;
  /** Callbacks of feeds waiting for the next write (null: no feed waits). */
  private nextFeed: WatchdogCallback[] | null = null;
  /** A close asked for while a write runs: started when it ends. */
  private pendingClose: { magic: boolean; done: WatchdogCallback } | null = null;
  private feedsWritten = 0;

  private constructor(
    readonly path: string,
    private readonly fd: number,
  ) {}

  /**
   * Opens (and so arms) the device at `path` for writing, without creating it. `done` gets the
   * helper, or a `WatchdogError`: `WATCHDOG_NOT_FOUND`, `WATCHDOG_BUSY`, `WATCHDOG_NOT_PERMITTED`
   * or `WATCHDOG_OPEN_FAILED`.
   */
  static open(path: string, done: (error: WatchdogError | null, device: WatchdogDevice | null) => void): void {
    open(path, constants.O_WRONLY, (error, fd) => {
      if (error !== null) {
        done(openError(path, error), null);
        return;
      }
      done(null, new WatchdogDevice(path, fd));
    });
  }

  get state(): WatchdogState {
    return this.stateValue;
  }

  /** Feeds written so far. */
  get feeds(): number {
    return this.feedsWritten;
  }

  /**
   * Pings the device: writes `WATCHDOG_FEED_BYTE`. During a write, the feed joins the next write.
   * Fails with `WATCHDOG_CLOSED` once `close` or `abandon` was called, `WATCHDOG_WRITE_FAILED`
   * when the write fails (the helper stays open: the caller decides whether to stop).
   */
  feed(done: WatchdogCallback = () => undefined): void {
    if (this.stateValue !== 'open') {
      setImmediate(() => {
        done(new WatchdogError('WATCHDOG_CLOSED', `${this.path}: the watchdog helper is ${this.stateValue}`));
      });
      return;
    }
    if (this.nextFeed !== null) {
      this.nextFeed.push(done);
      return;
    }
    this.nextFeed = [done];
    if (!this.writing) this.writeNextFeed();
  }

  /**
   * A clean stop: writes the magic character `V`, then closes, which disarms the driver (unless
   * it runs with `nowayout`). Feeds waiting for a write are written first. Errors:
   * `WATCHDOG_CLOSED` (already closing or closed), `WATCHDOG_WRITE_FAILED` (the descriptor is
   * closed anyway; the driver stays armed), `WATCHDOG_CLOSE_FAILED`.
   */
  close(done: WatchdogCallback): void {
    this.stop(true, done);
  }

  /**
   * Closes without the magic character: the driver stays armed and resets the machine after its
   * timeout unless another process opens and feeds it. For a stop that must still fence this
   * node (a fatal error while it may hold resources).
   */
  abandon(done: WatchdogCallback): void {
    this.stop(false, done);
  }

  private stop(magic: boolean, done: WatchdogCallback): void {
    if (this.stateValue !== 'open') {
      setImmediate(() => {
        done(new WatchdogError('WATCHDOG_CLOSED', `${this.path}: the watchdog helper is already ${this.stateValue}`));
      });
      return;
    }
    this.stateValue = 'closing';
    if (this.writing) {
      this.pendingClose = { magic, done };
      return;
    }
    this.finish(magic, done);
  }

  private writeNextFeed(): void {
    const waiters = this.nextFeed;
    if (waiters === null) return;
    this.nextFeed = null;
    this.writeByte(WATCHDOG_FEED_BYTE, (error) => {
      if (error === null) this.feedsWritten++;
      for (const w of waiters) w(error);
      this.afterWrite();
    });
  }

  /** After a write: the next feed, or the close that waited. */
  private afterWrite(): void {
    if (this.nextFeed !== null) {
      this.writeNextFeed();
      return;
    }
    const pending = this.pendingClose;
    if (pending !== null) {
      this.pendingClose = null;
      this.finish(pending.magic, pending.done);
    }
  }

  private finish(magic: boolean, done: WatchdogCallback): void {
    if (this.nextFeed !== null) {
      // Feeds asked for before the close are written first.
      this.pendingClose = { magic, done };
      this.writeNextFeed();
      return;
    }
    const closeFd = (writeError: WatchdogError | null): void => {
      close(this.fd, (error) => {
        this.stateValue = 'closed';
        if (writeError !== null) {
          done(writeError);
          return;
        }
        done(
          error === null
            ? null
            : new WatchdogError('WATCHDOG_CLOSE_FAILED', `${this.path}: close failed: ${String(error)}`, {
                cause: error,
              }),
        );
      });
    };
    if (!magic) {
      closeFd(null);
      return;
    }
    this.writeByte(WATCHDOG_MAGIC_CLOSE, closeFd);
  }

  private writeByte(byte: number, done: WatchdogCallback): void {
    this.writing = true;
    write(this.fd, Uint8Array.of(byte), 0, 1, null, (error, written) => {
      this.writing = false;
      if (error !== null || written !== 1) {
        const why = error === null ? `wrote ${written} bytes of 1` : String(error);
        done(
          new WatchdogError('WATCHDOG_WRITE_FAILED', `${this.path}: write failed: ${why}`, {
            cause: error ?? undefined,
          }),
        );
        return;
      }
      done(null);
    });
  }
}

function openError(path: string, error: unknown): WatchdogError {
  const errno = errnoOf(error);
  const message = `${path}: cannot open the watchdog: ${String(error)}`;
  if (errno === 'ENOENT') return new WatchdogError('WATCHDOG_NOT_FOUND', message, { cause: error });
  if (errno === 'EBUSY') {
    return new WatchdogError('WATCHDOG_BUSY', `${message} (another process holds it open)`, { cause: error });
  }
  if (errno === 'EACCES' || errno === 'EPERM')
    return new WatchdogError('WATCHDOG_NOT_PERMITTED', message, { cause: error });
  return new WatchdogError('WATCHDOG_OPEN_FAILED', message, { cause: error });
}

/**
 * The driver's timeout in seconds, read from `<sysfsDir>/timeout` (for example
 * `/sys/class/watchdog/watchdog0`): reading sysfs does not open, so does not arm, the device.
 * `WATCHDOG_TIMEOUT_UNKNOWN` when the file is missing (an old kernel) or holds no positive integer.
 */
export function readWatchdogTimeout(
  sysfsDir: string,
  done: (error: WatchdogError | null, timeoutSeconds: number | null) => void,
): void {
  const file = join(sysfsDir, 'timeout');
  readFile(file, 'utf8', (error, text) => {
    if (error !== null) {
      done(new WatchdogError('WATCHDOG_TIMEOUT_UNKNOWN', `${file}: ${String(error)}`, { cause: error }), null);
      return;
    }
    const trimmed = text.trim();
    const seconds = /^[0-9]{1,9}$/.test(trimmed) ? Number(trimmed) : 0;
    if (seconds <= 0) {
      done(
        new WatchdogError(
          'WATCHDOG_TIMEOUT_UNKNOWN',
          `${file} holds no positive timeout: ${JSON.stringify(trimmed.slice(0, 40))}`,
        ),
        null,
      );
      return;
    }
    done(null, seconds);
  });
}
