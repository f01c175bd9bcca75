import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { assertShares, balancer, id, loadCustomStrategy, members, shares } from './helpers.js';

const factory = await loadCustomStrategy();
const custom = (options: Record<string, unknown>) => ({ label: './strategies/weighted-random.js', factory, options });
const [a, b] = [id(9001), id(9002)];

describe('weighted-random (example custom strategy)', () => {
  it('shares picks by configured weight, within 5 points', () => {
    assertShares(shares(balancer(custom({}), members([3, 1]), { seed: 4 }), 4000), { [a]: 75, [b]: 25 }, 5);
  });

  it('raises weights to the power of skew', () => {
    assertShares(shares(balancer(custom({ skew: 2 }), members([3, 1]), { seed: 4 }), 4000), { [a]: 90, [b]: 10 }, 5);
  });

  it('refuses an unknown option or a bad skew', () => {
    assert.throws(() => balancer(custom({ skews: 1 }), []), /skews: unknown option/);
    assert.throws(() => balancer(custom({ skew: 0 }), []), /skew: expected a number above 0/);
  });
});
