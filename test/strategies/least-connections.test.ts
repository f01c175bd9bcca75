import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ServiceBalancer } from '../../src/balancer/balancer.js';
import { balancer, builtIn, firstIds, id, members, tally } from './helpers.js';

const lc = builtIn('least-connections');
const [a, b, c, d] = [id(9001), id(9002), id(9003), id(9004)];

function hold(bal: ServiceBalancer, backend: string, count: number): void {
  for (let i = 0; i < count; i++) bal.states.acquire(backend);
}

/** Picks `n` times, keeping every connection open. */
function openConnections(bal: ServiceBalancer, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const pick = bal.candidates()[0]!.id;
    bal.states.acquire(pick);
    out.push(pick);
  }
  return out;
}

describe('least-connections', () => {
  it('picks the backend holding the fewest connections', () => {
    const bal = balancer(lc, members([1, 1, 1]));
    hold(bal, a, 3);
    hold(bal, b, 1);
    hold(bal, c, 2);
    for (let i = 0; i < 10; i++) assert.equal(bal.candidates()[0]?.id, b);
    hold(bal, b, 2);
    assert.equal(bal.candidates()[0]?.id, c);
    bal.states.release(a);
    bal.states.release(a);
    assert.equal(bal.candidates()[0]?.id, a);
  });

  it('weighs connections by weight, (active + 1) / weight', () => {
    const bal = balancer(lc, members([4, 1]));
    hold(bal, a, 2); // (2 + 1) / 4 = 0.75
    // b holds none: (0 + 1) / 1 = 1, more loaded than a by weight.
    for (let i = 0; i < 5; i++) assert.equal(bal.candidates()[0]?.id, a);
    hold(bal, a, 1); // 4 / 4 = 1: a tie with b
    hold(bal, a, 1); // 5 / 4 > 1
    assert.equal(bal.candidates()[0]?.id, b);
  });

  it('ends up holding connections in proportion to weight', () => {
    const bal = balancer(lc, members([3, 1, 2]));
    const counts = tally(openConnections(bal, 600));
    assert.ok(Math.abs(counts.get(a)! - 300) <= 1, `a holds ${counts.get(a)}`);
    assert.ok(Math.abs(counts.get(b)! - 100) <= 1, `b holds ${counts.get(b)}`);
    assert.ok(Math.abs(counts.get(c)! - 200) <= 1, `c holds ${counts.get(c)}`);
  });

  it('rotates ties instead of always picking the same backend', () => {
    const bal = balancer(lc, members([1, 1, 1]));
    const picks = firstIds(bal, 6);
    assert.equal(new Set(picks).size, 3, `picks: ${picks.join(', ')}`);
    for (let i = 1; i < picks.length; i++) assert.notEqual(picks[i], picks[i - 1]);
  });

  it('spreads a burst of new connections evenly', () => {
    const bal = balancer(lc, members([1, 1, 1]));
    const counts = tally(openConnections(bal, 30));
    for (const backend of [a, b, c]) assert.equal(counts.get(backend), 10, `${backend} got ${counts.get(backend)}`);
  });

  it('keeps counting connections across a rebuild', () => {
    const bal = balancer(lc, members([1, 1, 1]));
    hold(bal, a, 5);
    hold(bal, b, 5);
    bal.update(members([1, 1, 1, 1]));
    assert.deepEqual(new Set(openConnections(bal, 2)), new Set([c, d]));
    assert.equal(bal.states.active(a), 5);
  });
});
