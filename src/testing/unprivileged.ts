/**
 * Running a test's child program as an unprivileged local user (`nobody`, uid and gid 65534)
 * when the tests run as root, to play a hostile local user; as the current user otherwise.
 *
 * `nobody` may not be able to read the checkout (a CI clone under a private directory), so the
 * program is copied into a world-readable temporary directory first and run from there. The
 * program must therefore be one self-contained file importing only `node:` modules.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

/** The uid and gid of `nobody`. */
export const NOBODY = 65_534;

/** True when children can be dropped to `nobody` (we are root). */
export function canDropToNobody(): boolean {
  return process.getuid?.() === 0;
}

const copies = new Map<string, string>();
let copyDir: string | null = null;

/** A copy of `script` that `nobody` can read (one per script per process, removed at exit). */
function readableCopy(script: string): string {
  const known = copies.get(script);
  if (known !== undefined) return known;
  if (copyDir === null) {
    const dir = mkdtempSync(join(tmpdir(), 'cohort-unprivileged-'));
    chmodSync(dir, 0o755);
    copyDir = dir;
    process.once('exit', () => {
      rmSync(dir, { recursive: true, force: true });
    });
  }
  const copy = join(copyDir, basename(script));
  copyFileSync(script, copy);
  chmodSync(copy, 0o644);
  copies.set(script, copy);
  return copy;
}

/**
 * Spawns `node script ...args`, as `nobody` when we are root and `unprivileged` is true, else as
 * the current user. `options.cwd` defaults to the copy's directory (readable by `nobody`).
 */
export function spawnNodeScript(
  script: string,
  args: readonly string[],
  options: SpawnOptions & { readonly unprivileged?: boolean } = {},
): ChildProcess {
  const { unprivileged = true, ...rest } = options;
  if (!(unprivileged && canDropToNobody())) return spawn(process.execPath, [script, ...args], rest);
  const copy = readableCopy(script);
  return spawn(process.execPath, [copy, ...args], {
    cwd: join(copy, '..'),
    ...rest,
    uid: NOBODY,
    gid: NOBODY,
  });
}
