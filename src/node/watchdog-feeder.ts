/**
 * The daemon's watchdog feeder (`watchdog.device` in the config, docs/fencing.md "Self-fencing"):
 * while the node is healthy it feeds the device every `timeouts.watchdog.feedIntervalMs`; when it
 * is not (the self-fence rule says it may be cut off, or it ended itself), or when the event loop
 * stalls, or the process dies, the feeding stops and the driver resets the machine after its own
 * timeout. A clean stop writes the magic close (`V`) so the driver disarms; a fail-stop or
 * self-fence exits without it, so the machine resets: the node's end is then final even if a
 * part of the process were still running.
 *
 * The device is opened before the node starts (all-or-nothing start: a configured watchdog that
 * cannot be opened stops the start with one line). Opening arms it.
 */
import type { Logger } from 'pino';
import { WatchdogDevice, type WatchdogError } from '../platform/watchdog-device.js';

/** A running feeder. */
export interface WatchdogFeeder {
  /** Starts feeding (every `intervalMs` while `healthy()`). */
  start(healthy: () => boolean): void;
  /** Stops feeding and disarms the device (magic close). Never rejects. */
  close(): Promise<void>;
  /** Feeds written so far. */
  readonly feeds: number;
}

/** Opens `path` (arming it) and returns the feeder, or the device's error. */
export function openWatchdogFeeder(path: string, intervalMs: number, logger: Logger): Promise<WatchdogFeeder> {
  return new Promise((resolve, reject) => {
    WatchdogDevice.open(path, (error, device) => {
      if (error !== null || device === null) {
        reject(error ?? new Error(`cannot open ${path}`));
        return;
      }
      let timer: NodeJS.Timeout | null = null;
      let warned = false;
      const feeder: WatchdogFeeder = {
        start(healthy) {
          const tick = (): void => {
            if (!healthy()) {
              if (!warned)
                logger.warn(`watchdog: no longer fed (this node may be cut off): ${path} resets the machine`);
              warned = true;
              return;
            }
            device.feed((e: WatchdogError | null) => {
              if (e !== null) logger.error({ code: e.code }, `watchdog: feeding ${path} failed: ${e.message}`);
            });
          };
          tick();
          timer = setInterval(tick, intervalMs);
        },
        close() {
          if (timer !== null) clearInterval(timer);
          timer = null;
          return new Promise((done) => {
            device.close((e) => {
              if (e !== null) logger.warn({ code: e.code }, `watchdog: closing ${path} failed: ${e.message}`);
              done();
            });
          });
        },
        get feeds() {
          return device.feeds;
        },
      };
      logger.info(
        { path, intervalMs },
        `watchdog: ${path} armed; fed every ${intervalMs} ms while this node is healthy`,
      );
      resolve(feeder);
    });
  });
}
