import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ServiceBalancer } from '../../src/balancer/balancer.js';
import type { Member } from '../../src/config/schema.js';
import { balancer, builtIn, clientAddresses, id, ids, members, tally } from './helpers.js';

const ipHash = builtIn('ip-hash');
const ADDRESSES = clientAddresses(10_000);
const FIVE = members([1, 1, 1, 1, 1]);

/** The backend each address maps to. */
function mapping(bal: ServiceBalancer): Array<string | undefined> {
  return ADDRESSES.map((addr) => bal.candidates(addr)[0]?.id);
}

/** Addresses whose backend differs between two mappings, with where they went. */
function moves(before: Array<string | undefined>, after: Array<string | undefined>) {
  const out: Array<{ from: string | undefined; to: string | undefined }> = [];
  before.forEach((from, i) => {
    if (after[i] !== from) out.push({ from, to: after[i] });
  });
  return out;
}

const fresh = (list: readonly Member[], seed = 1) => balancer(ipHash, list, { seed });

describe('ip-hash', () => {
  const base = mapping(fresh(FIVE));

  it('maps the same address to the same backend every time', () => {
    // Another balancer with another random seed, asked in reverse order.
    const other = fresh(FIVE, 42);
    const again = [...ADDRESSES].reverse().map((addr) => other.candidates(addr)[0]?.id).reverse();
    assert.deepEqual(again, base);
    const bal = fresh(FIVE);
    for (const addr of ADDRESSES.slice(0, 50)) {
      const first = bal.candidates(addr)[0]?.id;
      for (let i = 0; i < 5; i++) assert.equal(bal.candidates(addr)[0]?.id, first);
    }
  });

  it('spreads 10,000 addresses roughly evenly over five backends', () => {
    const counts = tally(base);
    assert.equal(counts.size, 5);
    for (const [backend, n] of counts) assert.ok(n > 1800 && n < 2200, `${backend} holds ${n} of 10000 addresses`);
  });

  it('moves at most 22% of the addresses when any one of five backends is removed', () => {
    for (const gone of FIVE) {
      const removed = id(gone.port);
      const moved = moves(base, mapping(fresh(FIVE.filter((m) => m !== gone))));
      assert.ok(moved.length > 0);
      assert.ok(moved.length <= 2200, `removing ${removed} moved ${moved.length} of 10000 addresses`);
      assert.ok(moved.every((m) => m.from === removed));
    }
  });

  it('moves only the addresses of the removed backend, whichever it is', () => {
    for (const gone of FIVE) {
      const removed = id(gone.port);
      const after = mapping(fresh(FIVE.filter((m) => m !== gone)));
      const moved = moves(base, after);
      const held = base.filter((x) => x === removed).length;
      const strays = moved.filter((m) => m.from !== removed);
      assert.equal(strays.length, 0, `removing ${removed} moved ${strays.length} addresses of other backends`);
      assert.equal(moved.length, held, `removing ${removed} must move all ${held} of its addresses`);
    }
  });

  it('moves only the addresses of the removed backend when weights differ', () => {
    const list = members([3, 1, 2, 1, 1]);
    const before = mapping(fresh(list));
    const after = mapping(fresh(list.filter((m) => m.port !== 9002)));
    assert.ok(moves(before, after).every((m) => m.from === id(9002)));
  });

  it('moves only the addresses of the removed backend when it was the only light one', () => {
    const list = members([2, 2, 2, 2, 1]);
    const before = mapping(fresh(list));
    const after = mapping(fresh(list.filter((m) => m.port !== 9005)));
    const strays = moves(before, after).filter((m) => m.from !== id(9005));
    assert.equal(strays.length, 0, `${strays.length} addresses moved between surviving backends`);
  });

  it('gives a heavier backend proportionally more addresses', () => {
    const counts = tally(mapping(fresh(members([3, 1, 1, 1, 1]))));
    const share = (100 * (counts.get(id(9001)) ?? 0)) / ADDRESSES.length;
    assert.ok(share > 36 && share < 50, `weight 3 of 7 holds ${share}% of addresses`);
  });

  it('sends the addresses of a down backend to the next backends on the ring, and back when it recovers', () => {
    const bal = fresh(FIVE);
    const down = id(9002);
    bal.states.setDown(down, true);
    const moved = moves(base, mapping(bal));
    const held = base.filter((x) => x === down).length;
    assert.equal(moved.length, held, 'exactly the down backend\'s addresses move');
    assert.ok(moved.every((m) => m.from === down && m.to !== undefined && m.to !== down));
    // Falling through the ring spreads them: no single backend inherits them all.
    const heirs = tally(moved.map((m) => m.to));
    assert.equal(heirs.size, 4, `heirs: ${[...heirs.keys()].join(', ')}`);
    bal.states.setDown(down, false);
    assert.deepEqual(mapping(bal), base);
  });

  it('treats a draining backend like a down one', () => {
    const bal = fresh(FIVE);
    bal.states.setDraining(id(9004), true);
    const moved = moves(base, mapping(bal));
    assert.ok(moved.length > 0 && moved.every((m) => m.from === id(9004)));
  });

  it('offers as retry candidates the backends a client would move to if its own went down', () => {
    const bal = balancer(ipHash, FIVE, { retries: 2 });
    const probe = fresh(FIVE);
    for (const addr of ADDRESSES.slice(0, 300)) {
      const [first, second, third] = ids(bal.candidates(addr));
      probe.states.setDown(first!, true);
      assert.equal(probe.candidates(addr)[0]?.id, second, addr);
      probe.states.setDown(second!, true);
      assert.equal(probe.candidates(addr)[0]?.id, third, addr);
      probe.states.setDown(first!, false);
      probe.states.setDown(second!, false);
    }
  });
});
