/**
 * Network namespaces for partition tests (root only): one namespace per node, each with a veth
 * pair whose outer end is on one bridge in the root namespace, addresses `10.<net>.0.<i>/24`.
 * Cutting a node off takes its outer veth end down: its packets are dropped, never refused, as a
 * pulled cable or a dead switch port would. Every name is derived from a random tag, so parallel
 * tests never meet, and `destroy` removes everything it made (also after a failed `create`).
 *
 * Traffic stays inside the namespaces the test created: nothing is routed to the outside.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';

function ip(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('ip', [...args], (error, stdout, stderr) => {
      if (error !== null) reject(new Error(`ip ${args.join(' ')}: ${stderr.trim() || error.message}`));
      else resolve(stdout);
    });
  });
}

/** Whether this process may create namespaces (root with the `ip` tool). */
export function netnsAvailable(): boolean {
  return process.getuid?.() === 0;
}

/** A set of namespaces on one bridge. */
export class NetnsLab {
  private made: string[] = [];

  private constructor(
    readonly tag: string,
    readonly net: number,
    readonly size: number,
  ) {}

  /** The namespace of node `i` (1-based). */
  ns(i: number): string {
    return `coh-${this.tag}-${i}`;
  }

  /** Node `i`'s address. */
  address(i: number): string {
    return `10.${this.net}.0.${i}`;
  }

  private outer(i: number): string {
    return `cv${this.tag}${i}`;
  }

  private get bridge(): string {
    return `cb${this.tag}`;
  }

  /** Creates `size` namespaces on a fresh bridge. */
  static async create(size: number): Promise<NetnsLab> {
    const tag = randomBytes(3).toString('hex');
    const lab = new NetnsLab(tag, 100 + ((randomBytes(1)[0] ?? 0) % 100), size);
    try {
      await ip(['link', 'add', lab.bridge, 'type', 'bridge']);
      lab.made.push(`link:${lab.bridge}`);
      await ip(['link', 'set', lab.bridge, 'up']);
      for (let i = 1; i <= size; i++) {
        const ns = lab.ns(i);
        await ip(['netns', 'add', ns]);
        lab.made.push(`ns:${ns}`);
        await ip(['link', 'add', lab.outer(i), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
        lab.made.push(`link:${lab.outer(i)}`);
        await ip(['link', 'set', lab.outer(i), 'master', lab.bridge, 'up']);
        await ip(['-n', ns, 'addr', 'add', `${lab.address(i)}/24`, 'dev', 'eth0']);
        await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
        await ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      }
      return lab;
    } catch (e) {
      await lab.destroy();
      throw e;
    }
  }

  /** The command prefix that runs a program inside node `i`'s namespace. */
  exec(i: number): string[] {
    return ['ip', 'netns', 'exec', this.ns(i)];
  }

  /** Cuts node `i` off (its cable pulled): packets to and from it are dropped. */
  async cut(i: number): Promise<void> {
    await ip(['link', 'set', this.outer(i), 'down']);
  }

  /** Reconnects node `i`. */
  async heal(i: number): Promise<void> {
    await ip(['link', 'set', this.outer(i), 'up']);
  }

  /** Removes everything this lab made; never throws. */
  async destroy(): Promise<void> {
    for (const item of this.made.reverse()) {
      const [kind, name] = item.split(':') as [string, string];
      await ip(kind === 'ns' ? ['netns', 'del', name] : ['link', 'del', name]).catch(() => undefined);
    }
    this.made = [];
  }
}
