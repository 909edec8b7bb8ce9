/**
 * A hostile client for tests, run as its own process (possibly as another, unprivileged user):
 * `node port-flood.js HOST PORT CONNECTIONS DURATION_MS` keeps up to CONNECTIONS idle TCP
 * connections open to HOST:PORT for DURATION_MS (or until SIGTERM), sending nothing and
 * reopening each one the server closes, then prints one JSON line of counts (`FloodReport`) and
 * exits 0. It prints `flooding` on stdout once its first connection is open. Bounded: at
 * most `FLOOD_CONNECTING_MAX` connection attempts in flight, so it floods at the rate the server
 * accepts rather than exhausting its own descriptors. For tests only.
 */
import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';

/** Connection attempts in flight at once. */
const FLOOD_CONNECTING_MAX = 256;

/** What the flood did (printed as one JSON line). */
export interface FloodReport {
  /** Connections that completed the TCP handshake. */
  readonly opened: number;
  /** Connections the server closed (or reset) while we held them. */
  readonly closedByServer: number;
  /** Connection attempts that failed. */
  readonly failed: number;
  /** Most connections open at once. */
  readonly peakOpen: number;
}

function flood(host: string, port: number, target: number, durationMs: number): Promise<FloodReport> {
  let stopNow = (): void => undefined;
  const open = new Set<Socket>();
  let connecting = 0;
  let opened = 0;
  let closedByServer = 0;
  let failed = 0;
  let peakOpen = 0;
  let stopping = false;
  const start = performance.now();
  const refill = (): void => {
    while (!stopping && connecting < FLOOD_CONNECTING_MAX && open.size + connecting < target) dial();
  };
  const dial = (): void => {
    connecting++;
    let connected = false;
    const s = connect({ host, port });
    s.on('connect', () => {
      connected = true;
      connecting--;
      if (opened === 0) process.stdout.write('flooding\n');
      opened++;
      open.add(s);
      peakOpen = Math.max(peakOpen, open.size);
      refill();
    });
    s.on('data', () => undefined); // read and drop whatever the server says
    s.on('error', () => undefined); // 'close' follows
    s.on('close', () => {
      if (connected) {
        open.delete(s);
        if (!stopping) closedByServer++;
      } else {
        connecting--;
        failed++;
      }
      // A failed attempt (refused, out of ports) backs off a little instead of spinning.
      if (!stopping) setTimeout(refill, connected ? 0 : 20);
    });
  };
  refill();
  return new Promise((resolve) => {
    const timer = setTimeout(
      () => {
        stopNow();
      },
      Math.max(0, durationMs - (performance.now() - start)),
    );
    stopNow = () => {
      clearTimeout(timer);
      stopping = true;
      for (const s of open) s.destroy();
      resolve({ opened, closedByServer, failed, peakOpen });
    };
    process.once('SIGTERM', stopNow);
  });
}

const [host, port, count, duration] = process.argv.slice(2);
if (host !== undefined && port !== undefined && count !== undefined && duration !== undefined) {
  const report = await flood(host, Number(port), Number(count), Number(duration));
  process.stdout.write(`${JSON.stringify(report)}\n`);
  process.exit(0);
}
