/**
 * Shared fixtures for the strategy tests: a seeded random source, an
 * injectable clock, member lists, and balancers built through the real
 * ServiceBalancer (so snapshots, live state and rebuild memory are the
 * production ones).
 */
import { ServiceBalancer } from '../../src/balancer/balancer.js';
import type { Member, StrategyConfig } from '../../src/config/schema.js';
import { strategies, type Backend, type StrategyFactory } from '../../strategies/index.js';

import { mulberry32 } from '../fixtures/random.js';

export { mulberry32 };

/** A hand-driven clock: `now()` returns `t`, tests move it with `advance`. */
export class ManualClock {
  t: number;
  constructor(start = 1_000_000) {
    this.t = start;
  }
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

/** The backend id of a member built by `member(port)`. */
export const id = (port: number): string => `127.0.0.1:${port}`;

/** One member on 127.0.0.1; ports of equal length keep ids sorted by port. */
export function member(port: number, weight = 1): Member {
  return { host: '127.0.0.1', port, weight };
}

/** Members on ports 9001.. with the given weights (ids sort in list order). */
export function members(weights: readonly number[], firstPort = 9001): Member[] {
  return weights.map((w, i) => member(firstPort + i, w));
}

/** The example custom strategy, loaded from its file as a user's config would. */
export async function loadCustomStrategy(): Promise<StrategyFactory> {
  // Compiled to dist/test/strategies/, so the repo root is three folders up.
  const url = new URL('../../../config/strategies/weighted-random.js', import.meta.url);
  const mod = (await import(url.href)) as { create?: StrategyFactory; default?: StrategyFactory };
  const factory = mod.create ?? mod.default;
  if (typeof factory !== 'function') throw new Error(`${url.href} exports no strategy factory`);
  return factory;
}

/** Every strategy under test: the six built-ins plus the example custom one. */
export async function allStrategies(): Promise<StrategyConfig[]> {
  const builtIn = Object.entries(strategies).map(([label, factory]) => ({ label, factory, options: {} }));
  const custom = {
    label: './strategies/weighted-random.js',
    factory: await loadCustomStrategy(),
    options: { skew: 1 },
  };
  return [...builtIn, custom];
}

/** A built-in strategy's config by name. */
export function builtIn(name: string, options: Record<string, unknown> = {}): StrategyConfig {
  const factory = strategies[name];
  if (!factory) throw new Error(`no built-in strategy ${name}`);
  return { label: name, factory, options };
}

export interface BalancerSetup {
  retries?: number;
  seed?: number;
  clock?: ManualClock;
}

/** A ServiceBalancer with a seeded random source and a manual clock, already given `list`. */
export function balancer(
  config: StrategyConfig,
  list: readonly Member[],
  { retries = 0, seed = 1, clock = new ManualClock() }: BalancerSetup = {},
): ServiceBalancer {
  const b = new ServiceBalancer('test', config, retries, { now: clock.now, random: mulberry32(seed) });
  b.update(list);
  return b;
}

/** The first candidate's id of `n` successive picks. */
export function firstIds(b: ServiceBalancer, n: number, clientAddress?: string): Array<string | undefined> {
  const out: Array<string | undefined> = [];
  for (let i = 0; i < n; i++) out.push(b.candidates(clientAddress)[0]?.id);
  return out;
}

/** How many times each id occurs. */
export function tally(ids: Iterable<string | undefined>): Map<string | undefined, number> {
  const counts = new Map<string | undefined, number>();
  for (const x of ids) counts.set(x, (counts.get(x) ?? 0) + 1);
  return counts;
}

/** `count` distinct IPv4 client addresses in 10.0.0.0/8. */
export function clientAddresses(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
}

/** Ids of a candidate list. */
export const ids = (list: readonly Backend[]): string[] => list.map((b) => b.id);

/** Each id's share of `picks` first picks, in percent. */
export function shares(b: ServiceBalancer, picks: number, clientAddress?: string): Map<string | undefined, number> {
  const counts = tally(firstIds(b, picks, clientAddress));
  return new Map([...counts].map(([k, v]) => [k, (100 * v) / picks]));
}

/** Asserts each id's share is within `tolerance` percentage points of `expected`. */
export function assertShares(
  got: Map<string | undefined, number>,
  expected: Readonly<Record<string, number>>,
  tolerance: number,
): void {
  const unexpected = [...got.keys()].filter((k) => k === undefined || !(k in expected));
  if (unexpected.length) throw new Error(`picks went to unexpected backends: ${unexpected.join(', ')}`);
  for (const [key, want] of Object.entries(expected)) {
    const have = got.get(key) ?? 0;
    if (Math.abs(have - want) > tolerance) {
      const all = [...got].map(([k, v]) => `${k}=${v.toFixed(1)}%`).join(' ');
      throw new Error(`${key} got ${have.toFixed(1)}% of picks, expected ${want}% ± ${tolerance} (${all})`);
    }
  }
}
