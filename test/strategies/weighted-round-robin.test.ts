import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { balancer, builtIn, firstIds, id, members, tally } from './helpers.js';

const wrr = builtIn('weighted-round-robin');
const [a, b, c, d] = [id(9001), id(9002), id(9003), id(9004)];
const CYCLE = [a, a, b, a, c, a, a];

describe('weighted-round-robin', () => {
  it('gives weights 5, 1, 1 the sequence a a b a c a a, repeated', () => {
    const bal = balancer(wrr, members([5, 1, 1]));
    assert.deepEqual(firstIds(bal, 21), [...CYCLE, ...CYCLE, ...CYCLE]);
  });

  it('splits picks exactly by weight over whole cycles', () => {
    const bal = balancer(wrr, members([3, 2, 1]));
    assert.deepEqual(tally(firstIds(bal, 600)), new Map([[a, 300], [b, 200], [c, 100]]));
  });

  it('shares among the remaining backends by weight while one is down', () => {
    const bal = balancer(wrr, members([5, 1, 4]));
    bal.states.setDown(c, true);
    assert.deepEqual(tally(firstIds(bal, 60)), new Map([[a, 50], [b, 10]]));
  });

  it('continues its sequence across a rebuild instead of starting over', () => {
    const bal = balancer(wrr, members([5, 1, 1]));
    assert.deepEqual(firstIds(bal, 3), CYCLE.slice(0, 3));
    // A weight-0 member joins: a rebuild that must not change the sequence.
    assert.equal(bal.update(members([5, 1, 1, 0])), true);
    assert.deepEqual(firstIds(bal, 4 + 7), [...CYCLE.slice(3), ...CYCLE]);
    assert.ok(!firstIds(bal, 70).includes(d));
  });

  it('follows a weight override, keeps it across a rebuild, and drops it when cleared', () => {
    const bal = balancer(wrr, members([1, 1, 1]));
    bal.states.setWeight(a, 4);
    assert.deepEqual(tally(firstIds(bal, 60)), new Map([[a, 40], [b, 10], [c, 10]]));
    bal.update(members([1, 1, 1, 1]));
    assert.equal(tally(firstIds(bal, 70)).get(a), 40);
    bal.states.setWeight(a, undefined);
    assert.equal(tally(firstIds(bal, 40)).get(a), 10);
  });
});
