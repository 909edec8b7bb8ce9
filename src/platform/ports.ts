/** Finding free loopback ports for local clusters (the demo and real-process tests). */
import { createServer } from 'node:net';

/**
 * Where real-process tests put their clusters: blocks of 100 ports between 10,000 and Linux's
 * default ephemeral range (32,768-60,999). A port inside that range may be taken at any moment
 * as the source port of an outgoing connection (a flood test opens thousands), and a node killed
 * and restarted by a test must find its port free again.
 */
export const TEST_PORT_BLOCKS = { from: 10_000, blocks: 220 } as const;

function portFree(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = createServer();
    s.once('error', () => {
      done(false);
    });
    s.listen({ host: '127.0.0.1', port }, () => {
      s.close(() => {
        done(true);
      });
    });
  });
}

/**
 * A base port B, a multiple of 100 in `[from, from + 100 * blocks)`, such that B+1..B+n (peers)
 * and B+101..B+100+n (metrics) are free right now, or null after `attempts` random tries. Only a
 * hint: another process may take a port before the caller binds it.
 */
export async function findFreePortBlock(
  n: number,
  options: { from: number; blocks: number; attempts: number },
): Promise<number | null> {
  for (let i = 0; i < options.attempts; i++) {
    const base = options.from + Math.floor(Math.random() * options.blocks) * 100;
    const ports = Array.from({ length: n }, (_, k) => [base + 1 + k, base + 101 + k]).flat();
    if ((await Promise.all(ports.map(portFree))).every(Boolean)) return base;
  }
  return null;
}
