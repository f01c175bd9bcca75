import type { Backend, Strategy, StrategyEnv } from '../../strategies/index.js';
import type { Member, StrategyConfig } from '../config/schema.js';
import { formatAddress } from '../config/address.js';
import { buildBackendSet, sameBackendSet } from './backend-set.js';
import { BackendStates } from './state.js';

/** Injectable sources of time and chance; defaults are Date.now and Math.random. */
export interface BalancerClock {
  now?: () => number;
  random?: () => number;
}

/**
 * One service's balancer: the current immutable snapshot, the strategy built
 * from it, and the live state that outlives both. A member change builds a
 * new snapshot and strategy and swaps them in one assignment, so a pick in
 * flight never sees a half-built state.
 */
export class ServiceBalancer {
  readonly states: BackendStates;
  private current: { backends: readonly Backend[]; members: ReadonlySet<Backend>; strategy: Strategy };
  private readonly memory = new Map<string, Map<string, unknown>>();
  private readonly now: () => number;
  private readonly random: () => number;
  private listed = false;

  constructor(
    readonly name: string,
    private strategyConfig: StrategyConfig,
    /** Further candidates to try after the first fails. */
    public retries: number,
    clock: BalancerClock = {},
  ) {
    this.now = clock.now ?? Date.now;
    this.random = clock.random ?? Math.random;
    this.states = new BackendStates(this.now);
    this.current = this.build(Object.freeze([]));
  }

  /** The backends of the current snapshot. */
  get backends(): readonly Backend[] {
    return this.current.backends;
  }

  /** True once discovery delivered a first full member list. */
  get ready(): boolean {
    return this.listed;
  }

  /** The strategy's label, for logs and `drover check`. */
  get strategyLabel(): string {
    return this.strategyConfig.label;
  }

  /**
   * Takes a full member list from discovery. Returns false (and changes
   * nothing) when it equals the current snapshot.
   */
  update(members: readonly Member[]): boolean {
    this.listed = true;
    for (const m of members) this.states.setRegistryDrain(formatAddress(m.host, m.port), m.drain === true);
    const backends = buildBackendSet(members);
    if (sameBackendSet(backends, this.current.backends)) return false;
    this.current = this.build(backends);
    this.states.retain(new Set(backends.map((b) => b.id)));
    return true;
  }

  /** Replaces the strategy (config reload); live state and rotation memory stay. */
  setStrategy(config: StrategyConfig): void {
    this.strategyConfig = config;
    this.current = this.build(this.current.backends);
  }

  /** Called when a strategy throws or returns something it must not; defaults to nothing. */
  onStrategyError: (err: Error) => void = () => {};

  /**
   * Up to 1 + retries usable backends for one connection, best first. A
   * strategy that throws, or returns backends foreign to its snapshot,
   * duplicates or too many, is reported through onStrategyError and its
   * answer cut to what is valid: a buggy custom strategy must not crash the
   * proxy or send traffic to an unknown address.
   */
  candidates(clientAddress?: string): Backend[] {
    const limit = 1 + this.retries;
    const { strategy, members } = this.current;
    let picked: Backend[];
    try {
      picked = strategy.candidates({ clientAddress, limit });
    } catch (err) {
      this.onStrategyError(err instanceof Error ? err : new Error(String(err)));
      return [];
    }
    if (Array.isArray(picked) && picked.length <= limit && picked.every((b, i) => members.has(b) && picked.indexOf(b) === i)) {
      return picked;
    }
    this.onStrategyError(new Error(`strategy ${this.strategyConfig.label} returned backends that are not distinct members of its snapshot, or more than ${limit}`));
    const valid = Array.isArray(picked) ? picked.filter((b, i) => members.has(b) && picked.indexOf(b) === i) : [];
    return valid.slice(0, limit);
  }

  private build(backends: readonly Backend[]): { backends: readonly Backend[]; members: ReadonlySet<Backend>; strategy: Strategy } {
    const { label, factory, options } = this.strategyConfig;
    let scoped = this.memory.get(label);
    if (!scoped) this.memory.set(label, (scoped = new Map()));
    const memory = scoped;
    const env: StrategyEnv = {
      backends,
      state: this.states,
      options,
      random: this.random,
      now: this.now,
      keep<T>(key: string, init: () => T): T {
        if (!memory.has(key)) memory.set(key, init());
        return memory.get(key) as T;
      },
    };
    return { backends, members: new Set(backends), strategy: factory(env) };
  }
}
