/**
 * The types every strategy shares. Strategies import only this file (and the
 * helpers under `strategies/shared/`), so a user's own strategy module can be
 * written against the same contract as the built-in ones.
 */

/** One backend in an immutable snapshot. `id` is `host:port` and keys all live state. */
export interface Backend {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  /** Configured weight, an integer >= 0 (default 1). */
  readonly weight: number;
  readonly zone?: string;
  readonly meta: Readonly<Record<string, string>>;
}

/**
 * Read-only view of live per-backend state. It outlives snapshots, so a
 * strategy rebuilt after a registry change sees the same counts and latencies.
 */
export interface BackendStateView {
  /** False while a backend is draining, down or ejected: a strategy must skip it. */
  usable(id: string): boolean;
  /** Open connections (TCP) or requests in flight (HTTP). */
  active(id: string): number;
  /** Configured weight after overrides and slow start; 0 means "send nothing". */
  weight(backend: Backend): number;
  /**
   * The slow-start factor, from 0.1 for a backend that just arrived or
   * recovered up to 1 (not ramping). weight() already includes it; a strategy
   * that weighs by something else (agent reports, ring points) applies it itself.
   */
  ramp(id: string): number;
  /**
   * Peak-EWMA latency in milliseconds, decayed toward 0 while no samples
   * arrive; undefined before the first sample.
   */
  latency(id: string): number | undefined;
  /** The backend's latest own load report, however old: the strategy judges freshness. */
  report(id: string): LoadReport | undefined;
}

/**
 * What a backend said about its own load (HAProxy agent-check words, ORCA
 * headers, znode data). `weight` is absolute (`weight:N`); `percent` scales
 * the configured weight (`75%`). `at` is when it arrived (ms, same clock as `now`).
 */
export interface LoadReport {
  readonly weight?: number;
  readonly percent?: number;
  readonly at: number;
}

/** What a strategy is built from. Defaults: `random` is Math.random, `now` is Date.now. */
export interface StrategyEnv {
  /** Sorted by id, frozen; never mutated after the strategy is built. */
  readonly backends: readonly Backend[];
  readonly state: BackendStateView;
  /** The `options:` map from the config, unvalidated: the factory checks it. */
  readonly options: Readonly<Record<string, unknown>>;
  /** Random number in [0, 1); injected so tests are deterministic. */
  random(): number;
  /** Milliseconds, monotonic in practice; injected so tests control time. */
  now(): number;
  /**
   * Memory that survives rebuilds of this service's strategy: returns the
   * value stored under `key`, creating it with `init` the first time.
   */
  keep<T>(key: string, init: () => T): T;
}

/** Per-pick input. */
export interface PickContext {
  /** The client's IP address (ip-hash keys on it). */
  readonly clientAddress?: string;
  /** How many candidates the caller can use (1 + retries). Always >= 1. */
  readonly limit: number;
}

/** A strategy built for one snapshot. */
export interface Strategy {
  /**
   * Up to `ctx.limit` distinct usable backends, best first. Empty only when no
   * backend is usable. Must not mutate `env.backends`.
   */
  candidates(ctx: PickContext): Backend[];
}

/** The one factory shape every strategy module exports (as `create` or `default`). */
export type StrategyFactory = (env: StrategyEnv) => Strategy;

/** Thrown by a factory whose `options` are wrong; `path` is relative to `options`. */
export class StrategyOptionsError extends Error {
  readonly code = 'DROVER_STRATEGY_OPTIONS';
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(path ? `${path}: ${message}` : message);
    this.name = 'StrategyOptionsError';
  }
}
