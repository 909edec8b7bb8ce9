// Proves the logger writes JSON lines when not on a terminal and readable lines when it is (or
// when asked), that the pretty formatter shows level, message, fields and error stacks on one
// line each without throwing on lines it cannot parse, and that the level filter applies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger, formatPrettyLine } from './logger.js';

function capture(options: Parameters<typeof createLogger>[0]): {
  lines: string[];
  log: ReturnType<typeof createLogger>;
} {
  const lines: string[] = [];
  const log = createLogger({ ...options, destination: { write: (t: string) => lines.push(t) } });
  return { lines, log };
}

test('auto format: JSON off a terminal, pretty on one', () => {
  const json = capture({ isTty: false, base: { node: 3 } });
  json.log.info({ peer: 2 }, 'peer up');
  const rec = JSON.parse(json.lines[0] ?? '') as Record<string, unknown>;
  assert.deepEqual([rec['msg'], rec['peer'], rec['node'], rec['level']], ['peer up', 2, 3, 30]);
  const pretty = capture({ isTty: true, colors: false });
  pretty.log.warn({ peer: 2, why: 'wrong key' }, 'peer refused');
  assert.match(pretty.lines[0] ?? '', /^\d\d:\d\d:\d\d\.\d{3} WARN {2}peer refused peer=2 why="wrong key"\n$/);
});

test('pretty lines show error stacks indented, and colour only when asked', () => {
  const p = capture({ format: 'pretty', colors: true });
  p.log.error({ err: Object.assign(new Error('disk full'), { code: 'ENOSPC' }) }, 'wal append failed');
  const text = p.lines.join('');
  const esc = String.fromCharCode(27);
  assert.ok(
    text.startsWith(
      `${text.slice(0, 13)}${esc}[31mERROR${esc}[0m wal append failed\n    Error: disk full\n        at `,
    ),
    text,
  );
  assert.match(text, /code=ENOSPC/);
});

test('the formatter passes through what it cannot parse, and levels filter records', () => {
  assert.equal(formatPrettyLine('not json'), 'not json\n');
  assert.equal(formatPrettyLine('[1,2]'), '[1,2]\n');
  const long = formatPrettyLine(JSON.stringify({ level: 30, time: 0, msg: 'm', blob: 'z'.repeat(500) }));
  assert.ok(long.length < 300, 'long field values are cut');
  const q = capture({ level: 'warn', format: 'json' });
  q.log.info('hidden');
  q.log.warn('shown');
  assert.equal(q.lines.length, 1);
});
