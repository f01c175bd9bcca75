import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { balancer, builtIn, firstIds, id, ids, member, members, tally } from './helpers.js';

const rr = builtIn('round-robin');
const [a, b, c, d] = [id(9001), id(9002), id(9003), id(9004)];

describe('round-robin', () => {
  it('hands each of three backends exactly 1000 of 3000 picks, in turn', () => {
    const bal = balancer(rr, members([1, 1, 1]));
    const picks = firstIds(bal, 3000);
    assert.deepEqual(picks.slice(0, 6), [a, b, c, a, b, c]);
    assert.deepEqual(tally(picks), new Map([[a, 1000], [b, 1000], [c, 1000]]));
  });

  it('ignores weights', () => {
    const bal = balancer(rr, members([5, 1, 2]));
    assert.deepEqual(tally(firstIds(bal, 300)), new Map([[a, 100], [b, 100], [c, 100]]));
  });

  it('skips an unusable backend and keeps the turn of the others', () => {
    const bal = balancer(rr, members([1, 1, 1, 1]));
    assert.deepEqual(firstIds(bal, 2), [a, b]);
    bal.states.setDown(c, true);
    assert.deepEqual(firstIds(bal, 4), [d, a, b, d]);
    bal.states.setDown(c, false);
    assert.deepEqual(firstIds(bal, 4), [a, b, c, d]);
  });

  it('continues after the last handed-out backend when a backend joins', () => {
    const bal = balancer(rr, members([1, 1, 1]));
    assert.deepEqual(firstIds(bal, 2), [a, b]);
    assert.equal(bal.update(members([1, 1, 1, 1])), true);
    assert.deepEqual(firstIds(bal, 5), [c, d, a, b, c]);
  });

  it('continues after the last handed-out backend even when that backend left', () => {
    const bal = balancer(rr, members([1, 1, 1, 1]));
    assert.deepEqual(firstIds(bal, 2), [a, b]);
    bal.update([member(9001), member(9003), member(9004)]);
    assert.deepEqual(firstIds(bal, 4), [c, d, a, c]);
  });

  it('wraps to the first backend when the last handed-out one sorted last', () => {
    const bal = balancer(rr, members([1, 1, 1]));
    assert.deepEqual(firstIds(bal, 3), [a, b, c]);
    bal.update(members([1, 1, 1, 1]));
    assert.deepEqual(firstIds(bal, 2), [d, a]);
    bal.update(members([1, 1]));
    assert.deepEqual(firstIds(bal, 3), [b, a, b]);
  });

  it('stays exactly even after a member change', () => {
    const bal = balancer(rr, members([1, 1, 1]));
    firstIds(bal, 1001);
    bal.update(members([1, 1, 1, 1]));
    assert.deepEqual(tally(firstIds(bal, 4000)), new Map([[a, 1000], [b, 1000], [c, 1000], [d, 1000]]));
  });

  it('keeps its place when the strategy is reloaded', () => {
    const bal = balancer(rr, members([1, 1, 1]));
    assert.deepEqual(firstIds(bal, 2), [a, b]);
    bal.prepareStrategy(builtIn('round-robin'))();
    assert.deepEqual(firstIds(bal, 2), [c, a]);
  });

  it('offers the next usable backends in turn as retry candidates', () => {
    const bal = balancer(rr, members([1, 1, 1]), { retries: 2 });
    assert.deepEqual(ids(bal.candidates()), [a, b, c]);
    assert.deepEqual(ids(bal.candidates()), [b, c, a]);
    bal.states.setDraining(a, true);
    assert.deepEqual(ids(bal.candidates()), [c, b]);
  });
});
