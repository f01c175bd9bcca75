import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import { ServiceBalancer } from '../../src/balancer/balancer.js';
import type { StateEvent, StateSettings } from '../../src/balancer/state.js';
import { builtIn, clientAddresses, id, ManualClock, members, mulberry32 } from '../strategies/helpers.js';

const OUTLIER = { consecutiveFailures: 3, baseEjection: 10_000, maxEjection: 25_000, maxEjectedPercent: 50 };

function setup(settings: Partial<StateSettings>, weights = [1, 1, 1, 1], strategy = 'round-robin') {
  const clock = new ManualClock();
  const b = new ServiceBalancer('s', builtIn(strategy), 0, { now: clock.now, random: mulberry32(7) }, {
    slowStart: 0,
    drainTimeout: 30_000,
    panicThreshold: 0,
    startDown: false,
    ...settings,
  });
  const events: StateEvent[] = [];
  b.states.onEvent = (e) => events.push(e);
  b.update(members(weights));
  return { b, clock, events, picked: (n: number) => new Set(Array.from({ length: n }, () => b.candidates()[0]?.id)) };
}

describe('passive ejection', () => {
  it('ejects after exactly consecutiveFailures failures in a row, and a success resets the count', () => {
    const { b, events } = setup({ outlier: OUTLIER });
    const s = b.states;
    s.outcome(id(9001), false);
    s.outcome(id(9001), false);
    s.outcome(id(9001), true);
    s.outcome(id(9001), false);
    s.outcome(id(9001), false);
    assert.equal(s.usable(id(9001)), true, 'two failures after a success do not eject');
    s.outcome(id(9001), false);
    assert.equal(s.usable(id(9001)), false);
    assert.deepEqual(events.map((e) => [e.event, e.backend, e['for']]), [['ejected', id(9001), 10_000]]);
  });

  it('brings an ejected backend back after its ejection time', () => {
    const { b, clock, picked } = setup({ outlier: OUTLIER });
    for (let i = 0; i < 3; i++) b.states.outcome(id(9002), false);
    assert.equal(picked(12).has(id(9002)), false);
    clock.advance(9_999);
    assert.equal(b.states.usable(id(9002)), false);
    clock.advance(1);
    assert.equal(b.states.usable(id(9002)), true);
    assert.equal(picked(12).has(id(9002)), true);
  });

  it('ejects a repeat offender for longer each time, up to maxEjection, and forgives after quiet periods', () => {
    const { b, clock } = setup({ outlier: OUTLIER });
    const eject = () => {
      for (let i = 0; i < 3; i++) b.states.outcome(id(9001), false);
      return b.states.ejectedUntil(id(9001))! - clock.now();
    };
    assert.equal(eject(), 10_000);
    clock.advance(10_000);
    assert.equal(eject(), 20_000);
    clock.advance(20_000);
    assert.equal(eject(), 25_000, 'capped at maxEjection');
    clock.advance(25_000 + 3 * 10_000); // three quiet baseEjection periods
    assert.equal(eject(), 10_000);
  });

  it('counts repeat ejections no higher than maxEjection needs, so quiet periods forgive at once', () => {
    const { b, clock } = setup({ outlier: OUTLIER });
    const eject = () => {
      for (let i = 0; i < 3; i++) b.states.outcome(id(9001), false);
      const left = b.states.ejectedUntil(id(9001))! - clock.now();
      clock.advance(left);
      return left;
    };
    for (let i = 0; i < 10; i++) eject();
    clock.advance(2 * 10_000);
    // 25 s needs a count of 3; two quiet periods bring it to 1, and this ejection makes 2.
    assert.equal(eject(), 20_000);
  });

  it('forgets a backend that left if a late pick from an older candidate list used it', () => {
    const { b } = setup({});
    b.update(members([1, 1], 9002));
    b.states.acquire(id(9001));
    assert.deepEqual(b.states.drains(id(9001)), ['removed']);
    b.states.outcome(id(9001), false);
    b.states.release(id(9001));
    assert.equal(b.states.ids().includes(id(9001)), false);
  });

  it('refuses an ejection that would take out more than maxEjectedPercent of the members', () => {
    const { b, events } = setup({ outlier: OUTLIER });
    for (const port of [9001, 9002, 9003]) for (let i = 0; i < 3; i++) b.states.outcome(id(port), false);
    assert.deepEqual(
      [9001, 9002, 9003].map((p) => b.states.usable(id(p))),
      [false, false, true],
    );
    assert.equal(events.at(-1)!.event, 'ejection-refused');
  });

  it('does nothing without an outlier block', () => {
    const { b } = setup({});
    for (let i = 0; i < 100; i++) b.states.outcome(id(9001), false);
    assert.equal(b.states.usable(id(9001)), true);
  });
});

describe('panic threshold', () => {
  it('answers no candidate when every member is down and there is no threshold', () => {
    const { b } = setup({});
    for (const p of [9001, 9002, 9003, 9004]) b.states.setDown(id(p), true);
    assert.deepEqual(b.candidates(), []);
  });

  it('routes to every member, down ones included, when fewer than the threshold are healthy', () => {
    const { b, events, picked } = setup({ panicThreshold: 50 });
    b.states.setDown(id(9001), true);
    b.states.setDown(id(9002), true);
    assert.deepEqual([...picked(8)].sort(), [id(9003), id(9004)], 'half healthy is not below 50%');
    b.states.setDown(id(9003), true);
    assert.deepEqual([...picked(8)].sort(), [id(9001), id(9002), id(9003), id(9004)]);
    assert.equal(events.some((e) => e.event === 'panic'), true);
    b.states.setDown(id(9001), false);
    assert.deepEqual([...picked(8)].sort(), [id(9001), id(9004)]);
    assert.equal(events.at(-1)!.event, 'calm');
  });

  it('counts ejections as unhealthy and notices when they end', () => {
    const { b, clock } = setup({ panicThreshold: 50, outlier: { ...OUTLIER, maxEjectedPercent: 100 } });
    for (const p of [9001, 9002, 9003]) for (let i = 0; i < 3; i++) b.states.outcome(id(p), false);
    assert.equal(b.states.inPanic(), true);
    clock.advance(10_000);
    assert.equal(b.states.inPanic(), false);
  });

  it('never routes to a drained member, even in panic', () => {
    const { b, picked } = setup({ panicThreshold: 100 });
    b.states.setDraining(id(9001), true);
    b.states.setDown(id(9002), true);
    assert.equal(picked(12).has(id(9001)), false);
    assert.equal(picked(12).has(id(9002)), true);
  });
});

describe('slow start', () => {
  const WEIGHTED = ['weighted-round-robin', 'least-connections', 'response-time', 'agent-load'];

  for (const strategy of WEIGHTED) {
    it(`ramps a new member's share from 10% to 100% of its weight linearly (${strategy})`, () => {
      const { b, clock } = setup({ slowStart: 30_000 }, [1], strategy);
      b.update(members([1, 1]));
      // Picks hold their connection while counting, so least-connections and
      // response-time spread by weight as they do under real concurrency.
      const share = () => {
        const picks = Array.from({ length: 2000 }, () => {
          const pick = b.candidates()[0]!.id;
          b.states.acquire(pick);
          return pick;
        });
        for (const pick of picks) b.states.release(pick);
        return (100 * picks.filter((p) => p === id(9002)).length) / picks.length;
      };
      // effective weights 0.1 : 1, then 0.55 : 1, then 1 : 1.
      assert.ok(Math.abs(share() - (100 * 0.1) / 1.1) < 3, `at 0 s: ${share()}`);
      clock.advance(15_000);
      assert.ok(Math.abs(share() - (100 * 0.55) / 1.55) < 3, `at 15 s: ${share()}`);
      clock.advance(15_000);
      assert.ok(Math.abs(share() - 50) < 3, `at 30 s: ${share()}`);
    });
  }

  it('ramps a member that recovers from failed checks, an ejection or a drain', () => {
    const { b, clock } = setup({ slowStart: 10_000, outlier: OUTLIER }, [2, 2]);
    const w = () => b.states.weight(b.backends[0]!);
    b.states.setDown(id(9001), true);
    b.states.setDown(id(9001), false);
    assert.equal(w(), 0.2);
    clock.advance(10_000);
    assert.equal(w(), 2);
    for (let i = 0; i < 3; i++) b.states.outcome(id(9001), false);
    clock.advance(10_000 + 5_000); // back after 10 s, then half way up
    assert.equal(w(), 2 * 0.55);
    clock.advance(5_000);
    b.states.setDraining(id(9001), true);
    b.states.setDraining(id(9001), false);
    assert.equal(w(), 0.2);
  });

  it('does not ramp the members of the first listing', () => {
    const { b } = setup({ slowStart: 30_000 }, [1, 1]);
    assert.equal(b.states.weight(b.backends[0]!), 1);
  });

  it('hands a ramping backend a growing, stable part of its ip-hash clients', () => {
    const { b, clock } = setup({ slowStart: 30_000 }, [1, 1, 1], 'ip-hash');
    const clients = clientAddresses(3000);
    const before = new Map(clients.map((c) => [c, b.candidates(c)[0]!.id]));
    b.update(members([1, 1, 1, 1]));
    const owned = () => clients.filter((c) => b.candidates(c)[0]!.id === id(9004));
    const early = owned();
    clock.advance(15_000);
    const middle = owned();
    clock.advance(15_000);
    const full = owned();
    assert.ok(early.length < middle.length && middle.length < full.length, `${early.length} < ${middle.length} < ${full.length}`);
    assert.ok(early.every((c) => middle.includes(c)) && middle.every((c) => full.includes(c)), 'a client that moved never moves back');
    // Only clients that now belong to the new member moved.
    const moved = clients.filter((c) => b.candidates(c)[0]!.id !== before.get(c));
    assert.deepEqual(new Set(moved.map((c) => b.candidates(c)[0]!.id)), new Set([id(9004)]));
  });
});

describe('startUnhealthy', () => {
  it('keeps a new member out until something marks it up', () => {
    const { b, picked } = setup({ startDown: true }, [1]);
    assert.deepEqual(b.candidates(), []);
    b.states.setDown(id(9001), false);
    b.update(members([1, 1]));
    assert.deepEqual([...picked(6)], [id(9001)]);
  });
});

describe('drain deadlines', () => {
  // Drain deadlines run on real (unref'd) timers: the mock clock steps them.
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
  afterEach(() => mock.timers.reset());

  it('closes a drained backend’s open connections at drainTimeout, and not before', () => {
    const { b, events } = setup({ drainTimeout: 5_000 });
    let closed = 0;
    const close = () => {
      closed++;
      b.states.release(id(9001), close);
    };
    b.states.acquire(id(9001), close);
    b.states.acquire(id(9002), () => closed++);
    b.states.setDraining(id(9001), true);
    mock.timers.tick(4_999);
    assert.equal(closed, 0);
    mock.timers.tick(1);
    assert.equal(closed, 1, 'only the drained backend’s connection');
    assert.deepEqual([events.at(-1)!.event, events.at(-1)!.connections], ['drain-timeout', 1]);
  });

  it('cancels the deadline when the drain is lifted', () => {
    const { b } = setup({ drainTimeout: 5_000 });
    let closed = 0;
    b.states.acquire(id(9001), () => closed++);
    b.states.setDraining(id(9001), true);
    mock.timers.tick(4_000);
    b.states.setDraining(id(9001), false);
    mock.timers.tick(10_000);
    assert.equal(closed, 0);
  });

  it('keeps one deadline from the first of several drain reasons', () => {
    const { b } = setup({ drainTimeout: 5_000 });
    let closed = 0;
    b.states.acquire(id(9001), () => closed++);
    b.states.setRegistryDrain(id(9001), true);
    mock.timers.tick(3_000);
    b.states.setDraining(id(9001), true);
    b.states.setRegistryDrain(id(9001), false);
    mock.timers.tick(2_000);
    assert.equal(closed, 1);
  });

  it('drains a member that left the registry until drainTimeout, and forgets it once its last connection closes', () => {
    const { b } = setup({ drainTimeout: 5_000 });
    let closed = 0;
    const close = () => {
      closed++;
      b.states.release(id(9001), close);
    };
    b.states.acquire(id(9001), close);
    b.update(members([1, 1], 9002));
    assert.deepEqual(b.states.drains(id(9001)), ['removed']);
    mock.timers.tick(5_000);
    assert.equal(closed, 1);
    assert.equal(b.states.ids().includes(id(9001)), false);
  });
});

describe('registry load', () => {
  it('stamps a member’s load when its data was written, not whenever the list is delivered again', () => {
    const { b, clock } = setup({});
    const x = { host: '127.0.0.1', port: 9101, weight: 1, load: 0.75 };
    const y = { host: '127.0.0.1', port: 9102, weight: 1, load: 0.1 };
    b.update([x, y]);
    assert.deepEqual(b.states.report(id(9101)), { percent: 25, at: clock.now() });
    const first = clock.now();
    clock.advance(40_000);
    b.update([x, { ...y, load: 0.2 }]); // only y was written again
    assert.equal(b.states.report(id(9101))!.at, first);
    assert.equal(b.states.report(id(9102))!.at, clock.now());
  });
});
