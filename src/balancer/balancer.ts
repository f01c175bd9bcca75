import type { Backend, Strategy, StrategyEnv } from '../../strategies/index.js';
import type { Member, StrategyConfig } from '../config/schema.js';
import { idlePercent } from '../health/orca.js';
import { formatAddress } from '../config/address.js';
import { buildBackendSet, sameBackendSet } from './backend-set.js';
import { SlotQueue } from './queue.js';
import { BackendStates, type StateSettings } from './state.js';

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
  /** HTTP requests waiting for a backend slot; woken when one is released. */
  readonly queue = new SlotQueue();
  private current: { backends: readonly Backend[]; members: ReadonlySet<Backend>; strategy: Strategy };
  private readonly memory = new Map<string, Map<string, unknown>>();
  private readonly now: () => number;
  private readonly random: () => number;
  private listed = false;
  private readonly agentPorts = new Map<string, number>();
  private readonly znodes = new Map<string, string>();
  /** Member objects whose `load` has been taken as a report. */
  private readonly reported = new WeakSet<Member>();

  constructor(
    readonly name: string,
    private strategyConfig: StrategyConfig,
    /** Further candidates to try after the first fails. */
    public retries: number,
    clock: BalancerClock = {},
    settings?: StateSettings,
  ) {
    this.now = clock.now ?? Date.now;
    this.random = clock.random ?? Math.random;
    this.states = new BackendStates(this.now);
    if (settings) this.states.configure(settings);
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
    const first = !this.listed;
    this.listed = true;
    this.agentPorts.clear();
    this.znodes.clear();
    for (const m of members) {
      const id = formatAddress(m.host, m.port);
      this.states.setRegistryDrain(id, m.drain === true);
      this.states.setMemberLimit(id, m.maxConnections);
      if (m.agentPort !== undefined) this.agentPorts.set(id, m.agentPort);
      if (m.znode !== undefined) this.znodes.set(id, m.znode);
      // Registry load is utilization (0 idle, 1 saturated), as ORCA's: the
      // idle share scales the weight. Discovery makes a new member object
      // only when the znode was written, so a report is stamped when it was
      // written, not whenever another member changed.
      if (m.load !== undefined && !this.reported.has(m)) {
        this.reported.add(m);
        this.states.setReport(id, { percent: idlePercent(m.load) });
      }
    }
    const backends = buildBackendSet(members);
    if (sameBackendSet(backends, this.current.backends)) return false;
    const before = new Set(this.current.backends.map((b) => b.id));
    const after = new Set(backends.map((b) => b.id));
    // Arrivals are marked before the swap, so a `startUnhealthy` member is never picked unchecked.
    for (const id of after) if (!before.has(id)) {
      this.states.setRemoved(id, false);
      this.states.arrived(id, first);
    }
    this.states.setMembers(backends);
    this.current = this.build(backends);
    for (const id of before) if (!after.has(id)) this.states.setRemoved(id, true);
    return true;
  }

  /** The znode a member was read from, for ZooKeeper services (admin API). */
  znode(id: string): string | undefined {
    return this.znodes.get(id);
  }

  /** A member's own agent port from the registry or config, if it gave one. */
  agentPort(id: string): number | undefined {
    return this.agentPorts.get(id);
  }

  /**
   * Builds `config`'s strategy over the current snapshot now (it may throw:
   * nothing changes then) and returns the call that swaps it in. A reload
   * prepares every service first, so it applies all of them or none.
   * Live state and rotation memory stay.
   */
  prepareStrategy(config: StrategyConfig): () => void {
    const built = this.build(this.current.backends, config);
    return () => {
      this.strategyConfig = config;
      this.current = built;
    };
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

  private build(
    backends: readonly Backend[],
    config: StrategyConfig = this.strategyConfig,
  ): { backends: readonly Backend[]; members: ReadonlySet<Backend>; strategy: Strategy } {
    const { label, factory, options } = config;
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
