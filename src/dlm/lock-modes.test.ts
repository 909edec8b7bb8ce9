// Proves the mode tables of lock-modes.ts equal the research tables cell by cell: the 6x6
// compatibility matrix (and its symmetry), conversion kinds, the QUECVT "upward" table and the
// value-block direction table (research/dlm.md 1.3, 1.4, 1.8), plus mode-name parsing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MODE_NAMES, type LockMode } from './lock-types.js';
import {
  compatible,
  conversionKind,
  isLockMode,
  lvbAction,
  parseMode,
  quecvtAllowed,
  type LvbAction,
} from './lock-modes.js';

const MODES: readonly LockMode[] = [0, 1, 2, 3, 4, 5];

// research/dlm.md 1.3, copied from the research table (row granted, column requested).
const COMPAT_TABLE = `
      NL CR CW PR PW EX
  NL  Y  Y  Y  Y  Y  Y
  CR  Y  Y  Y  Y  Y  n
  CW  Y  Y  Y  n  n  n
  PR  Y  Y  n  Y  n  n
  PW  Y  Y  n  n  n  n
  EX  Y  n  n  n  n  n
`;

function parseTable(text: string): Map<string, string[]> {
  const rows = new Map<string, string[]>();
  const lines = text.trim().split('\n').slice(1);
  for (const line of lines) {
    const [name, ...cells] = line.trim().split(/\s+/);
    assert.ok(name !== undefined && cells.length === 6, line);
    rows.set(name, cells);
  }
  return rows;
}

test('research/dlm.md 1.3: the compatibility matrix, cell by cell, and symmetric', () => {
  const table = parseTable(COMPAT_TABLE);
  let cells = 0;
  for (const g of MODES) {
    const row = table.get(MODE_NAMES[g] ?? '?');
    assert.ok(row !== undefined);
    for (const r of MODES) {
      assert.equal(compatible(g, r), row[r] === 'Y', `${String(MODE_NAMES[g])} vs ${String(MODE_NAMES[r])}`);
      assert.equal(compatible(g, r), compatible(r, g), 'symmetric');
      cells += 1;
    }
  }
  assert.equal(cells, 36);
});

test('research/dlm.md 1.3: conversion kinds (PR<->CW are middle)', () => {
  assert.equal(conversionKind(3, 2), 'middle');
  assert.equal(conversionKind(2, 3), 'middle');
  assert.equal(conversionKind(0, 5), 'up');
  assert.equal(conversionKind(2, 4), 'up');
  assert.equal(conversionKind(5, 0), 'down');
  assert.equal(conversionKind(4, 3), 'down');
  assert.equal(conversionKind(3, 1), 'down');
  for (const m of MODES) assert.equal(conversionKind(m, m), 'same');
  for (const a of MODES) {
    for (const b of MODES) {
      if (a === b || (a === 2 && b === 3) || (a === 3 && b === 2)) continue;
      assert.equal(conversionKind(a, b), b > a ? 'up' : 'down');
    }
  }
});

test('research/dlm.md 1.4: QUECVT is allowed exactly on the listed upward transitions', () => {
  const allowed: Record<string, readonly string[]> = {
    NL: ['CR', 'CW', 'PR', 'PW', 'EX'],
    CR: ['CW', 'PR', 'PW', 'EX'],
    CW: ['PR', 'PW', 'EX'],
    PR: ['CW', 'PW', 'EX'],
    PW: ['EX'],
    EX: [],
  };
  for (const a of MODES) {
    for (const b of MODES) {
      const from = MODE_NAMES[a] ?? '?';
      const to = MODE_NAMES[b] ?? '?';
      assert.equal(quecvtAllowed(a, b), (allowed[from] ?? []).includes(to), `${from}->${to}`);
    }
  }
});

test('research/dlm.md 1.8: the value-block direction table, cell by cell', () => {
  const table = `
        NL CR CW PR PW EX
    new r  r  r  r  r  r
    NL  r  r  r  r  r  r
    CR  -  r  r  r  r  r
    CW  -  -  r  r  r  r
    PR  -  -  -  r  r  r
    PW  w  w  w  w  w  r
    EX  w  w  w  w  w  w
  `;
  const rows = parseTable(table);
  const decode = (c: string | undefined): LvbAction => (c === 'r' ? 'read' : c === 'w' ? 'write' : 'none');
  for (const b of MODES) assert.equal(lvbAction(null, b), decode(rows.get('new')?.[b]));
  for (const a of MODES) {
    for (const b of MODES) {
      assert.equal(lvbAction(a, b), decode(rows.get(MODE_NAMES[a] ?? '?')?.[b]), `${String(a)}->${String(b)}`);
    }
  }
});

test('parseMode reads the six names in any case and nothing else', () => {
  assert.equal(parseMode('NL'), 0);
  assert.equal(parseMode('cr'), 1);
  assert.equal(parseMode('Cw'), 2);
  assert.equal(parseMode('pr'), 3);
  assert.equal(parseMode('PW'), 4);
  assert.equal(parseMode('ex'), 5);
  assert.equal(parseMode('IV'), null);
  assert.equal(parseMode(''), null);
  assert.equal(parseMode('EXX'), null);
  assert.equal(isLockMode(5), true);
  assert.equal(isLockMode(6), false);
  assert.equal(isLockMode(-1), false);
  assert.equal(isLockMode(1.5), false);
});
