// Proves the CLI's process-level edges as real `node bin/cohort.js` processes (issue 11 item 8):
// a bare `cohort` (or `cohort kv`) prints the usage and exits 2, and the top-level help claims
// nothing that does not exist yet; `cohort events | head` ends quietly (exit 0, empty stderr)
// when the reader closes stdout; a --socket that is a regular file is named as such; `kv put`
// takes its value from --file or all of stdin (`-`), byte for byte, and refuses a value over the
// store's limit (a 10 MB file or stdin) with one line naming the limit; keys with control
// characters are refused by the CLI and by the daemon for a client that skips the library; and a
// data directory that cannot be created on a read-only mount names EROFS, not ENOENT.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { connectLocal, connect } from '../client/index.js';
import { KV_VALUE_BYTES_MAX } from '../constants.js';
import { startCluster } from '../embedded/index.js';
import { registerApiHandlers } from '../node/api-handlers.js';
import { clientFailure, withApiServer } from '../testing/api-support.js';

const BIN = fileURLToPath(new URL('../../../bin/cohort.js', import.meta.url));

interface Run {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `cohort args` with `stdin` (or none); `closeAfterFirstOutput` closes our end of its stdout. */
function cohort(
  args: readonly string[],
  opts: { stdin?: Uint8Array; closeAfterFirstOutput?: boolean } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      stdio: [opts.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1', COHORT_SOCKET: '' },
    });
    let stdout = '';
    let stderr = '';
    const out = child.stdout;
    const err = child.stderr;
    assert.ok(out !== null && err !== null);
    out.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (opts.closeAfterFirstOutput === true) out.destroy();
    });
    err.on('data', (d: Buffer) => (stderr += d.toString()));
    if (opts.stdin !== undefined && child.stdin !== null) {
      child.stdin.on('error', () => undefined); // the CLI may stop reading once the value is over the limit
      child.stdin.end(opts.stdin);
    }
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`cohort ${args.join(' ')} did not finish within 20 s; stderr: ${stderr}`));
    }, 20_000);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function oneLine(text: string): void {
  assert.match(text, /^[^\n]+\n$/, `one line: ${JSON.stringify(text)}`);
  assert.doesNotMatch(text, /\n\s+at /, 'no stack trace');
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'cohort-cli-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

test('a bare cohort or cohort kv prints the usage and exits 2; --help exits 0, lists the lock commands and promises no volumes', async () => {
  for (const args of [[], ['kv'], ['fence'], ['locks']]) {
    const r = await cohort(args);
    assert.equal(r.code, 2, `cohort ${args.join(' ')}`);
    assert.match(r.stderr, /^Usage: cohort/);
  }
  const help = await cohort(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: cohort/);
  assert.doesNotMatch(help.stdout, /ddraid|volume/i);
  for (const command of ['lock', 'lockspaces', 'locks']) assert.match(help.stdout, new RegExp(`\\n  ${command} `));
  assert.equal((await cohort(['help', 'kv'])).code, 0);
});

test('cohort events into a reader that closes after the first line ends quietly: exit 0, nothing on stderr', async () => {
  await withApiServer(
    (s) => {
      s.registerStream('events', async function* () {
        for (let seq = 1; ; seq++) {
          yield {
            seq,
            viewId: 1,
            index: seq,
            kind: 'quorum',
            payload: { quorate: true, reason: 'r', explanation: 'e' },
          };
          if (seq % 50 === 0) await sleep(1);
        }
      });
    },
    async (socket) => {
      const r = await cohort(['events', '--follow', '--socket', socket], { closeAfterFirstOutput: true });
      assert.match(r.stdout, /^#1 view 1 index 1 quorum: quorate/);
      assert.deepEqual([r.code, r.signal, r.stderr], [0, null, '']);
    },
  );
});

test('a --socket that is a regular file is named as such, not as a stale socket', async () => {
  await withDir(async (dir) => {
    const file = join(dir, 'not-a-socket');
    await writeFile(file, 'x');
    for (const args of [
      ['kv', 'get', 'k', '--socket', file],
      ['events', '--socket', file],
    ]) {
      const r = await cohort(args);
      assert.equal(r.code, 4, r.stderr);
      oneLine(r.stderr);
      assert.match(r.stderr, /it is a regular file, not a socket/);
      assert.doesNotMatch(r.stderr, /stale/);
    }
  });
});

test('kv put takes --file and stdin byte for byte, refuses values over the limit and control-character keys', async () => {
  await using cluster = await startCluster({ nodes: 3 });
  const node = cluster.nodes[0]?.clusterNode;
  assert.ok(node);
  await withDir(async (dir) => {
    await withApiServer(
      (s) => {
        registerApiHandlers(s, node, { clusterName: 'test', fingerprint: 'f', startedAtMs: 0, links: () => [] });
      },
      async (socket) => {
        // A binary value just under the limit, from a file and from stdin.
        const value = new Uint8Array(KV_VALUE_BYTES_MAX - 1).map((_, i) => (i * 7) % 256);
        const file = join(dir, 'value.bin');
        await writeFile(file, value);
        const put = await cohort(['kv', 'put', 'from-file', '--file', file, '--socket', socket]);
        assert.equal(put.code, 0, put.stderr);
        assert.match(put.stdout, /^OK: "from-file" at revision \d+ \(version 1\)\n$/);
        const piped = await cohort(['kv', 'put', 'from-stdin', '-', '--socket', socket], { stdin: value });
        assert.equal(piped.code, 0, piped.stderr);
        await using client = await connect({ socket });
        for (const key of ['from-file', 'from-stdin']) {
          const got = await client.kv.get(key);
          assert.ok(got.found, key);
          assert.deepEqual(got.value, value, `${key} holds the bytes given`);
        }
        const empty = await cohort(['kv', 'put', 'empty', '-', '--socket', socket], { stdin: new Uint8Array() });
        assert.equal(empty.code, 0, `all of an empty stdin is an empty value: ${empty.stderr}`);

        // 10 MB: refused with one line naming the limit, before anything is sent.
        const big = new Uint8Array(10_000_000);
        const bigFile = join(dir, 'big.bin');
        await writeFile(bigFile, big);
        for (const r of [
          await cohort(['kv', 'put', 'big', '--file', bigFile, '--socket', socket]),
          await cohort(['kv', 'put', 'big', '-', '--socket', socket], { stdin: big }),
        ]) {
          assert.equal(r.code, 1, r.stderr);
          oneLine(r.stderr);
          assert.match(
            r.stderr,
            new RegExp(`^cohort kv put: the value from .* bytes; the limit is ${KV_VALUE_BYTES_MAX} bytes`),
          );
        }
        assert.equal((await client.kv.get('big')).found, false);
        const both = await cohort(['kv', 'put', 'k', 'v', '--file', file, '--socket', socket]);
        assert.equal(both.code, 2, 'VALUE and --file together are a usage error');

        // Control characters in keys: the CLI refuses, and so does the daemon for a raw client.
        const bad = await cohort(['kv', 'put', 'line\nbreak', 'v', '--socket', socket]);
        assert.equal(bad.code, 1);
        oneLine(bad.stderr);
        assert.match(bad.stderr, /^cohort kv put: key holds the control character U\+000A at character 5/);
        await using raw = await connectLocal({ socket });
        for (const key of ['a\0b', 'esc\u001b[2J']) {
          const e = await clientFailure(raw.request('kv.put', { key, value: 'v' }));
          assert.equal(e.code, 'INVALID_ARGUMENT', e.message);
          assert.match(e.message, /control character/);
        }
      },
    );
  });
});

/** True when this process may make a private read-only mount (root with unshare): else the test skips. */
function canMountReadOnly(dir: string): boolean {
  const r = spawnSync('unshare', ['-m', 'sh', '-c', 'mount -t tmpfs -o ro,size=1m tmpfs "$1"', 'sh', dir], {
    stdio: 'ignore',
  });
  return r.status === 0;
}

test('a data directory that cannot be created on a read-only mount names EROFS, not ENOENT', async (t) => {
  await withDir(async (dir) => {
    const ro = join(dir, 'ro');
    await mkdir(ro);
    if (!canMountReadOnly(ro)) {
      t.skip('needs root and unshare(1) to make a read-only mount');
      return;
    }
    const config = join(dir, 'node.yaml');
    const init = await cohort(['init', '--config', config, '--data-dir', join(ro, 'data')]);
    assert.equal(init.code, 0, init.stderr);
    const run = spawnSync(
      'unshare',
      [
        '-m',
        'sh',
        '-c',
        'mount -t tmpfs -o ro,size=1m tmpfs "$1" && exec "$2" "$3" start --config "$4"',
        'sh',
        ro,
        process.execPath,
        BIN,
        config,
      ],
      { encoding: 'utf8', timeout: 20_000 },
    );
    assert.equal(run.status, 1, run.stderr);
    const line = run.stderr.split('\n').find((l) => l.startsWith('cohort start:')) ?? '';
    assert.match(
      line,
      new RegExp(
        `^cohort start: cannot start: cannot use the data directory ${join(ro, 'data')}: EROFS: read-only file system`,
      ),
    );
    assert.doesNotMatch(run.stderr, /ENOENT/);
  });
});
