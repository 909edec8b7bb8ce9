// Proves the rules of `GoneEvidence`: the three marks (the peer's connection closed by its side,
// ours closed by its side, a refused connect started after that) prove the incarnation gone in
// any order, once; a loss we caused, a refusal of a connect started before the loss, a mark
// older than the window, or any sign of life in between (a handshake, a new inbound connection)
// proves nothing; a restarted process is named by its own incarnation only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GoneEvidence } from './gone-evidence.js';

const WINDOW = 500;

function connected(inc = 3): GoneEvidence {
  const e = new GoneEvidence(WINDOW);
  e.inboundOpened(inc);
  e.outboundOpened();
  return e;
}

test('the three marks prove the incarnation gone, in either order, once', () => {
  const a = connected();
  a.outboundClosed(true, 100);
  assert.equal(a.connectRefused(101, 102), null, 'no proof while the connection of the peer to us stands');
  assert.equal(a.inboundClosed(3, true, 103), 3);
  assert.equal(a.connectRefused(104, 105), null, 'reported once per incarnation');

  const b = connected();
  assert.equal(b.inboundClosed(3, true, 100), null);
  b.outboundClosed(true, 101);
  assert.equal(b.connectRefused(101, 102), 3);
});

test('a loss we caused, an early connect, a stale mark or a sign of life proves nothing', () => {
  const ours = connected();
  ours.outboundClosed(false, 100); // we closed it (a handshake timeout, a bad frame)
  ours.inboundClosed(3, true, 100);
  assert.equal(ours.connectRefused(101, 102), null);

  const early = connected();
  early.inboundClosed(3, true, 100);
  early.outboundClosed(true, 100);
  assert.equal(early.connectRefused(99, 102), null, 'a connect started before the loss says nothing of after');

  const slow = connected();
  slow.inboundClosed(3, true, 100);
  slow.outboundClosed(true, 100);
  assert.equal(slow.connectRefused(101, 101 + WINDOW + 1), null, 'a refusal answered after the window');

  const stale = connected();
  stale.inboundClosed(3, true, 100);
  stale.outboundClosed(true, 100 + WINDOW + 50);
  assert.equal(stale.connectRefused(100 + WINDOW + 51, 100 + WINDOW + 52), null, 'the inbound loss is too old');

  const alive = connected();
  alive.inboundClosed(3, true, 100);
  alive.outboundClosed(true, 100);
  alive.outboundOpened(); // the redial was answered: the process lives
  assert.equal(alive.connectRefused(102, 103), null);

  const inboundByUs = connected();
  inboundByUs.inboundClosed(3, false, 100);
  inboundByUs.outboundClosed(true, 100);
  assert.equal(inboundByUs.connectRefused(101, 102), null);
});

test('a restarted process is a new incarnation: evidence about the old one never names it', () => {
  const e = connected(3);
  e.inboundClosed(3, true, 100);
  e.inboundOpened(4); // the new process connected before our redial
  e.outboundClosed(true, 101);
  assert.equal(e.inboundClosed(3, true, 101), null, 'a late close of the old connection is ignored');
  assert.equal(e.connectRefused(102, 103), null, 'incarnation 4 still has its connection to us');
  assert.equal(e.inboundClosed(4, true, 104), 4, 'and once it ends too, the proof names 4');
});
