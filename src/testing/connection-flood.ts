/**
 * A hostile local user, as a child program for real-process tests: it opens many idle
 * connections to the given listening endpoints (TCP `host:port` or a Unix socket path), holds
 * whatever the servers let it hold, and closes them all when told to.
 *
 * Usage: `node connection-flood.js '<json spec>'` where the spec lists how many connections to open
 * to each endpoint: `{ "dials": [{ "host": "127.0.0.1", "port": 7401, "count": 9000 } |
 * { "path": "/run/x.sock", "count": 9000 }] }`. The caller keeps the total below the process's
 * descriptor limit (`ulimit -n`).
 *
 * Protocol (one JSON object per stdout line):
 * - `{"event":"dialed","targets":[TargetStats…]}` once every connection of every target has been
 *   attempted and has either connected or failed (closed ones are counted as they close);
 * - a stdin line `close` makes it close every socket, print `{"event":"closed","targets":[…]}`
 *   and exit 0. End of stdin counts as `close` (the parent died).
 *
 * It never sends a byte: an idle connection is the cheapest way to hold a server's descriptor.
 * Dialling is windowed per target (`WINDOW` connects in flight) so a listener's accept backlog
 * is not overrun, which would only slow the flood down with SYN retries.
 */
import { connect, type Socket } from 'node:net';
import { createInterface } from 'node:readline';

/** One endpoint to flood. */
type Target = { readonly host: string; readonly port: number } | { readonly path: string };
/** An endpoint and how many connections to open to it. */
type Dial = Target & { readonly count: number };

/** What happened to the connections of one target. */
interface TargetStats {
  readonly target: string;
  attempted: number;
  connected: number;
  /** Connected and still open now. */
  open: number;
  /** Connected, then closed by the server. */
  closedByServer: number;
  /** Failed before connecting, by error code. */
  failed: Record<string, number>;
}

/** Connects in flight per target. */
const WINDOW = 128;
/**
 * A connect not answered within this is given up (counted as `TIMEOUT`): a server that stopped
 * accepting leaves connects in its full backlog, where the kernel retries SYNs for minutes.
 */
const CONNECT_TIMEOUT_MS = 3000;
/** Interval of the progress lines on stderr. */
const PROGRESS_MS = 5000;

function describe(t: Target): string {
  return 'path' in t ? t.path : `${t.host}:${t.port}`;
}

function flood(t: Target, count: number, stats: TargetStats, sockets: Set<Socket>): Promise<void> {
  return new Promise((resolve) => {
    let next = 0;
    let settled = 0;
    const dialOne = (): void => {
      if (next >= count) return;
      next++;
      stats.attempted++;
      const s = 'path' in t ? connect({ path: t.path }) : connect({ host: t.host, port: t.port });
      let connected = false;
      let done = false;
      const timer = setTimeout(() => {
        stats.failed['TIMEOUT'] = (stats.failed['TIMEOUT'] ?? 0) + 1;
        s.destroy();
      }, CONNECT_TIMEOUT_MS);
      const settle = (): void => {
        if (done) return;
        done = true;
        settled++;
        if (settled === count) resolve();
        else dialOne();
      };
      s.once('connect', () => {
        clearTimeout(timer);
        connected = true;
        stats.connected++;
        stats.open++;
        sockets.add(s);
        settle();
      });
      s.on('error', (e: NodeJS.ErrnoException) => {
        if (!connected) stats.failed[e.code ?? 'ERROR'] = (stats.failed[e.code ?? 'ERROR'] ?? 0) + 1;
      });
      s.once('close', () => {
        clearTimeout(timer);
        if (connected) {
          sockets.delete(s);
          stats.open--;
          stats.closedByServer++;
        }
        settle();
      });
    };
    if (count === 0) resolve();
    for (let i = 0; i < Math.min(WINDOW, count); i++) dialOne();
  });
}

function main(): void {
  const spec = JSON.parse(process.argv[2] ?? '{}') as { dials?: Dial[] };
  const targets = spec.dials ?? [];
  const sockets = new Set<Socket>();
  const stats: TargetStats[] = targets.map((t) => ({
    target: describe(t),
    attempted: 0,
    connected: 0,
    open: 0,
    closedByServer: 0,
    failed: {},
  }));
  let closing = false;
  const closeAll = (): void => {
    if (closing) return;
    closing = true;
    for (const s of sockets) s.removeAllListeners('close').destroy();
    process.stdout.write(`${JSON.stringify({ event: 'closed', targets: stats })}\n`, () => process.exit(0));
  };
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (l) => {
    if (l.trim() === 'close') closeAll();
  });
  lines.on('close', closeAll);
  const progress = setInterval(() => {
    const sum = (k: 'attempted' | 'connected' | 'open'): number => stats.reduce((a, t) => a + t[k], 0);
    process.stderr.write(
      `progress: attempted ${sum('attempted')}, connected ${sum('connected')}, open ${sum('open')}\n`,
    );
  }, PROGRESS_MS);
  progress.unref();
  void Promise.all(targets.map((t, i) => flood(t, t.count, stats[i] as TargetStats, sockets))).then(() => {
    if (!closing) process.stdout.write(`${JSON.stringify({ event: 'dialed', targets: stats })}\n`);
  });
}

main();
