import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManualClock, assertShares, balancer, builtIn, id, ids, members, shares } from './helpers.js';

const agentLoad = (options: Record<string, unknown> = {}) => builtIn('agent-load', options);
const [a, b, c] = [id(9001), id(9002), id(9003)];

function setup(weights: number[], options: Record<string, unknown> = {}) {
  const clock = new ManualClock();
  const bal = balancer(agentLoad(options), members(weights), { clock });
  return { clock, bal };
}

describe('agent-load', () => {
  it('shares picks by reported weight, within 5 points', () => {
    const { bal } = setup([1, 1, 1]);
    bal.states.setReport(a, { weight: 6 });
    bal.states.setReport(b, { weight: 3 });
    bal.states.setReport(c, { weight: 1 });
    assertShares(shares(bal, 1000), { [a]: 60, [b]: 30, [c]: 10 }, 5);
  });

  it('scales the configured weight by a percent report', () => {
    const { bal } = setup([2, 2]);
    bal.states.setReport(a, { percent: 25 });
    assertShares(shares(bal, 1000), { [a]: 20, [b]: 80 }, 5);
  });

  it('uses the configured weight of a backend that sent no report', () => {
    const { bal } = setup([1, 1, 4]);
    bal.states.setReport(a, { weight: 3 });
    assertShares(shares(bal, 800), { [a]: 37.5, [b]: 12.5, [c]: 50 }, 5);
  });

  it('falls back to the configured weight once a report is older than 30 s', () => {
    const { clock, bal } = setup([1, 1, 2]);
    bal.states.setReport(a, { weight: 8 });
    bal.states.setReport(b, { weight: 1 });
    bal.states.setReport(c, { weight: 1 });
    assertShares(shares(bal, 1000), { [a]: 80, [b]: 10, [c]: 10 }, 5);
    clock.advance(30_000);
    assertShares(shares(bal, 1000), { [a]: 80, [b]: 10, [c]: 10 }, 5);
    clock.advance(1);
    assertShares(shares(bal, 1000), { [a]: 25, [b]: 25, [c]: 50 }, 5);
    // A fresh report counts again.
    bal.states.setReport(c, { weight: 6 });
    assertShares(shares(bal, 1000), { [a]: 12.5, [b]: 12.5, [c]: 75 }, 5);
  });

  it('honours a maxAge option', () => {
    const { clock, bal } = setup([1, 1], { maxAge: '5s' });
    bal.states.setReport(a, { weight: 9 });
    assertShares(shares(bal, 1000), { [a]: 90, [b]: 10 }, 5);
    clock.advance(5_001);
    assertShares(shares(bal, 1000), { [a]: 50, [b]: 50 }, 5);
  });

  it('sends nothing to a backend reporting 0 while others report more', () => {
    const { bal } = setup([1, 1, 1]);
    bal.retries = 2;
    bal.states.setReport(b, { weight: 0 });
    for (let i = 0; i < 50; i++) assert.ok(!ids(bal.candidates()).includes(b));
  });

  it('shares equally when every backend reports 0', () => {
    const { bal } = setup([1, 2, 3]);
    for (const backend of [a, b, c]) bal.states.setReport(backend, { weight: 0 });
    assertShares(shares(bal, 900), { [a]: 33.3, [b]: 33.3, [c]: 33.3 }, 5);
  });

  it('refuses an unknown option or a bad duration', () => {
    assert.throws(() => setup([1], { maxage: '5s' }), /maxage: unknown option/);
    assert.throws(() => setup([1], { maxAge: 30 }), /maxAge: expected a duration/);
  });
});
