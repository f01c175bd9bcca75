import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ServiceBalancer } from '../../src/balancer/balancer.js';
import { ManualClock, balancer, builtIn, firstIds, id, members, tally } from './helpers.js';

const rt = builtIn('response-time');
const [a, b, c] = [id(9001), id(9002), id(9003)];
/** 9001 answers in 50 ms, the others in 1 ms. */
const latencyOf = (backend: string): number => (backend === a ? 50 : 1);

/**
 * Serves `n` requests one after another: pick, acquire, let the clock run
 * for the backend's latency, feed the sample, release. Returns the picks.
 */
function serve(bal: ServiceBalancer, clock: ManualClock, n: number): string[] {
  const picks: string[] = [];
  for (let i = 0; i < n; i++) {
    const pick = bal.candidates()[0]!.id;
    bal.states.acquire(pick);
    const ms = latencyOf(pick);
    clock.advance(ms);
    bal.states.sample(pick, ms);
    bal.states.release(pick);
    picks.push(pick);
  }
  return picks;
}

function warmedUp(seed = 1) {
  const clock = new ManualClock();
  const bal = balancer(rt, members([1, 1, 1]), { clock, seed });
  for (const backend of [a, b, c]) bal.states.sample(backend, latencyOf(backend));
  return { clock, bal };
}

describe('response-time', () => {
  it('sends under 10% of 1000 requests to a backend 50 times slower than its peers', () => {
    const { clock, bal } = warmedUp();
    const counts = tally(serve(bal, clock, 1000));
    const slow = counts.get(a) ?? 0;
    assert.ok(slow < 100, `slow backend got ${slow} of 1000`);
    // The two fast backends share the rest about evenly (random pairs, not a fixed favourite).
    for (const fast of [b, c]) assert.ok((counts.get(fast) ?? 0) > 350, `${fast} got ${counts.get(fast)}`);
  });

  it('tries a slow backend again after a long idle period', () => {
    const { clock, bal } = warmedUp(7);
    const busy = serve(bal, clock, 1000);
    assert.ok(!busy.slice(-200).includes(a), 'while busy, the slow backend is left alone');
    const before = bal.states.latency(a)!;
    clock.advance(60_000);
    const after = bal.states.latency(a)!;
    assert.ok(after < before / 100, `latency decays while idle: ${before} ms -> ${after} ms`);
    assert.ok(serve(bal, clock, 20).includes(a), 'the slow backend is tried again within 20 requests');
  });

  it('avoids a backend with many requests in flight at equal latency', () => {
    const clock = new ManualClock();
    const bal = balancer(rt, members([1, 1, 1]), { clock, seed: 3 });
    for (const backend of [a, b, c]) bal.states.sample(backend, 5);
    for (let i = 0; i < 10; i++) bal.states.acquire(b);
    const counts = tally(firstIds(bal, 300));
    assert.equal(counts.get(b) ?? 0, 0);
    assert.ok((counts.get(a) ?? 0) > 100 && (counts.get(c) ?? 0) > 100, `a ${counts.get(a)}, c ${counts.get(c)}`);
  });

  it('treats a backend without samples as the mean of its sampled peers', () => {
    const clock = new ManualClock();
    const bal = balancer(rt, members([1, 1, 1]), { clock, seed: 5 });
    bal.states.sample(a, 1);
    bal.states.sample(b, 3);
    // c counts as 2 ms: it beats b and loses to a, so it takes the (b, c) pairs, about a third.
    const counts = tally(firstIds(bal, 900));
    assert.equal(counts.get(b) ?? 0, 0);
    const unsampled = counts.get(c) ?? 0;
    assert.ok(unsampled > 200 && unsampled < 400, `unsampled backend got ${unsampled} of 900`);
  });

  it('spreads picks over all backends while none has a sample', () => {
    const bal = balancer(rt, members([1, 1, 1]), { seed: 9 });
    const counts = tally(firstIds(bal, 900));
    for (const backend of [a, b, c]) assert.ok((counts.get(backend) ?? 0) > 200, `${backend} got ${counts.get(backend)}`);
  });
});
