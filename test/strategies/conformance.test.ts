/**
 * The contract every strategy must keep (strategies/types.ts, Strategy):
 * up to `limit` distinct usable backends, empty only when none is usable,
 * deterministic under the injected random source, and working across
 * rebuilds with live state carried over. Runs against the six built-ins and
 * the example custom strategy loaded from config/strategies/.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ServiceBalancer } from '../../src/balancer/balancer.js';
import type { Backend } from '../../strategies/index.js';
import { ManualClock, allStrategies, balancer, id, ids, member, members, mulberry32 } from './helpers.js';

const all = await allStrategies();

/** The seven strategies under test, by label. */
const EXPECTED = [
  'round-robin',
  'weighted-round-robin',
  'ip-hash',
  'least-connections',
  'response-time',
  'agent-load',
  './strategies/weighted-random.js',
];

it('covers every built-in strategy and the example custom strategy', () => {
  assert.deepEqual(all.map((s) => s.label).sort(), [...EXPECTED].sort());
});

/** Whether the balancer's live state lets a strategy hand out `b`. */
function eligible(bal: ServiceBalancer, b: Backend): boolean {
  return bal.states.usable(b.id) && bal.states.weight(b) > 0;
}

/**
 * Checks one candidate list against the contract; returns it for further checks.
 * With `fill`, also checks that it holds min(limit, usable) backends: true for
 * every strategy as long as no load report asks to spare a backend.
 */
function checkCandidates(bal: ServiceBalancer, got: Backend[], where: string, fill = true): Backend[] {
  const limit = 1 + bal.retries;
  const snapshot = new Set(bal.backends);
  const usable = bal.backends.filter((b) => eligible(bal, b));
  assert.ok(got.length <= limit, `${where}: ${got.length} candidates for limit ${limit}`);
  assert.equal(new Set(ids(got)).size, got.length, `${where}: duplicate candidates ${ids(got).join(', ')}`);
  for (const b of got) {
    assert.ok(snapshot.has(b), `${where}: ${b.id} is not a backend of the current snapshot`);
    assert.ok(eligible(bal, b), `${where}: returned unusable backend ${b.id}`);
  }
  if (fill) {
    assert.equal(
      got.length,
      Math.min(limit, usable.length),
      `${where}: ${got.length} candidates while ${usable.length} usable backends and limit ${limit}`,
    );
  } else {
    // agent-load spares a backend that reports weight 0 while others report more.
    assert.equal(got.length > 0, usable.length > 0, `${where}: ${got.length} candidates, ${usable.length} usable`);
  }
  return got;
}

/**
 * One step of made-up traffic: flips drain/down flags, sends load reports,
 * opens and closes connections with latency samples, moves the clock, varies
 * the retry count and the client address, then picks. Everything it does is
 * drawn from `rng`, so two runs with the same seed do the same things.
 */
function trafficStep(bal: ServiceBalancer, rng: () => number, clock: ManualClock, held: string[]): Backend[] {
  const list = bal.backends;
  const any = () => list[Math.floor(rng() * list.length)]!;
  if (list.length > 0) {
    const r = rng();
    if (r < 0.04) bal.states.setDraining(any().id, rng() < 0.5);
    else if (r < 0.08) bal.states.setDown(any().id, rng() < 0.6);
    else if (r < 0.12) bal.states.setReport(any().id, { weight: Math.floor(rng() * 4) });
    else if (r < 0.14) bal.states.setReport(any().id, { percent: Math.floor(rng() * 150) });
  }
  clock.advance(Math.floor(rng() * 3000));
  bal.retries = Math.floor(rng() * 4);
  const address = rng() < 0.5 ? undefined : `192.168.${Math.floor(rng() * 256)}.${Math.floor(rng() * 256)}`;
  const got = bal.candidates(address);
  const first = got[0];
  if (first) {
    bal.states.acquire(first.id);
    held.push(first.id);
  }
  while (held.length > 0 && rng() < 0.5) {
    const [gone] = held.splice(Math.floor(rng() * held.length), 1);
    bal.states.sample(gone!, 1 + rng() * 80);
    bal.states.release(gone!);
  }
  return got;
}

for (const config of all) {
  describe(`strategy conformance: ${config.label}`, () => {
    it('returns no candidates when the service has no backends', () => {
      for (const retries of [0, 2]) {
        const bal = balancer(config, [], { retries });
        assert.deepEqual(bal.candidates(), []);
        assert.deepEqual(bal.candidates('10.0.0.1'), []);
      }
    });

    it('returns the only backend of a one-backend service, for any limit', () => {
      for (const retries of [0, 1, 4]) {
        const bal = balancer(config, [member(9001, 3)], { retries });
        for (let i = 0; i < 20; i++) {
          assert.deepEqual(ids(bal.candidates(i % 2 ? undefined : `10.0.0.${i}`)), [id(9001)]);
        }
      }
    });

    it('returns distinct backends of the snapshot, as many as the limit allows and no more', () => {
      const list = members([1, 2, 3, 1, 5, 1, 2]);
      for (let retries = 0; retries <= 8; retries++) {
        const bal = balancer(config, list, { retries, seed: 7 + retries });
        for (let i = 0; i < 40; i++) {
          const got = checkCandidates(bal, bal.candidates(i % 2 ? undefined : `10.1.${retries}.${i}`), `limit ${retries + 1}, pick ${i}`);
          assert.equal(got.length, Math.min(retries + 1, list.length));
        }
      }
    });

    /** 9003 has weight 0, 9002 is draining, 9005 is down: 9001, 9004 and 9006 remain. */
    const mixed = (retries: number) => {
      const bal = balancer(config, members([1, 2, 0, 1, 3, 1]), { retries, seed: 3 });
      bal.states.setDraining(id(9002), true);
      bal.states.setDown(id(9005), true);
      return bal;
    };
    const usableOfMixed = [id(9001), id(9004), id(9006)];

    it('never picks a draining, down or zero-weight backend while a usable one exists', () => {
      const bal = mixed(0);
      const picked = new Set<string>();
      for (let i = 0; i < 300; i++) {
        const got = ids(bal.candidates(i % 3 ? `10.3.${i >> 8}.${i & 255}` : undefined));
        assert.equal(got.length, 1);
        assert.ok(usableOfMixed.includes(got[0]!), `pick ${i} went to ${got[0]}`);
        picked.add(got[0]!);
      }
      // Put back into service, the draining one is picked again.
      bal.states.setDraining(id(9002), false);
      for (let i = 0; i < 300 && !picked.has(id(9002)); i++) picked.add(bal.candidates(`10.9.${i >> 8}.${i & 255}`)[0]!.id);
      assert.ok(picked.has(id(9002)), 'a backend that stopped draining is picked again');
      assert.ok(!picked.has(id(9003)) && !picked.has(id(9005)));
    });

    it('fills retry candidates with usable backends only', () => {
      const bal = mixed(5);
      for (let i = 0; i < 300; i++) {
        const got = ids(bal.candidates(i % 3 ? `10.2.${i >> 8}.${i & 255}` : undefined));
        assert.deepEqual([...got].sort(), usableOfMixed, `pick ${i}: ${got.join(', ')}`);
      }
    });

    it('returns only the last usable backend when all the others are unusable', () => {
      const bal = balancer(config, members([1, 1, 0, 1]), { retries: 3 });
      bal.states.setDraining(id(9001), true);
      bal.states.setDown(id(9002), true);
      for (let i = 0; i < 50; i++) assert.deepEqual(ids(bal.candidates(`10.4.0.${i}`)), [id(9004)]);
    });

    it('returns no candidates when every backend is unusable, and serves again once one recovers', () => {
      const bal = balancer(config, members([1, 2, 0, 4]), { retries: 3 });
      bal.states.setDraining(id(9001), true);
      bal.states.setDown(id(9002), true);
      bal.states.setDown(id(9004), true);
      bal.states.setDraining(id(9004), true);
      for (let i = 0; i < 20; i++) assert.deepEqual(bal.candidates(i % 2 ? undefined : `10.5.0.${i}`), []);
      bal.states.setDown(id(9002), false);
      for (let i = 0; i < 20; i++) assert.deepEqual(ids(bal.candidates(i % 2 ? undefined : `10.5.1.${i}`)), [id(9002)]);
    });

    it('returns no candidates when every backend has weight 0', () => {
      const bal = balancer(config, members([0, 0, 0]), { retries: 2 });
      for (let i = 0; i < 20; i++) assert.deepEqual(bal.candidates(i % 2 ? undefined : `10.6.0.${i}`), []);
    });

    it('keeps the contract under random traffic while backends go up and down', () => {
      const clock = new ManualClock();
      const bal = balancer(config, members([1, 3, 0, 2, 1, 1, 5, 2]), { seed: 11, clock });
      const rng = mulberry32(99);
      const held: string[] = [];
      let empties = 0;
      for (let step = 0; step < 1500; step++) {
        const got = checkCandidates(bal, trafficStep(bal, rng, clock, held), `step ${step}`, false);
        if (got.length === 0) empties++;
      }
      // The run must actually have visited the "nothing usable" corner and left it again.
      assert.ok(empties > 0 && empties < 1500, `${empties} empty picks`);
    });

    it('makes the same picks from the same random seed', () => {
      const run = () => {
        const clock = new ManualClock();
        const bal = balancer(config, members([1, 3, 2, 1, 4]), { seed: 2024, clock });
        const rng = mulberry32(5);
        const held: string[] = [];
        const seen: string[] = [];
        for (let step = 0; step < 600; step++) seen.push(ids(trafficStep(bal, rng, clock, held)).join(' '));
        return seen;
      };
      const a = run();
      const b = run();
      assert.deepEqual(a, b);
      assert.ok(new Set(a).size > 5, 'the traffic should produce varied picks');
    });

    it('keeps working across a rebuild, with live state carried over', () => {
      const bal = balancer(config, members([1, 2, 1, 1]), { retries: 0, seed: 17 });
      for (let i = 0; i < 10; i++) bal.candidates(`10.7.0.${i}`);
      bal.states.acquire(id(9001));
      bal.states.acquire(id(9002));
      bal.states.acquire(id(9002));
      bal.states.setDown(id(9003), true);
      // 9001 leaves (with one connection still open), 9005 joins.
      const changed = bal.update([member(9002, 2), member(9003), member(9004), member(9005)]);
      assert.equal(changed, true);
      assert.deepEqual(ids(bal.backends), [id(9002), id(9003), id(9004), id(9005)]);
      assert.equal(bal.states.active(id(9002)), 2);
      assert.equal(bal.states.active(id(9001)), 1, 'a removed backend keeps counting its open connection');
      assert.equal(bal.states.usable(id(9003)), false);
      const picked = new Set<string>();
      for (let i = 0; i < 400; i++) {
        const got = ids(bal.candidates(i % 2 ? undefined : `10.8.${i >> 8}.${i & 255}`));
        assert.equal(got.length, 1);
        assert.ok([id(9002), id(9004), id(9005)].includes(got[0]!), `pick ${i} went to ${got[0]}`);
        picked.add(got[0]!);
      }
      assert.ok(picked.has(id(9005)), 'the backend that joined is picked');
      // Widen the limit: the rebuilt strategy still fills it from the usable three.
      bal.retries = 4;
      assert.deepEqual([...ids(bal.candidates())].sort(), [id(9002), id(9004), id(9005)]);
      bal.states.release(id(9001));
      bal.update([member(9002, 2), member(9003), member(9004)]);
      assert.ok(!bal.states.ids().includes(id(9001)), 'state of a removed idle backend is dropped');
    });
  });
}
