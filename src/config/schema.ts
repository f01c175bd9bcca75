import type { StrategyFactory } from '../../strategies/index.js';
import type { Address } from './address.js';

/** Log levels, least to most severe. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Defaults for every key; the README's table is written from these. */
export const DEFAULTS = {
  drainTimeout: 30_000,
  logLevel: 'info' as LogLevel,
  service: {
    strategy: 'round-robin',
    retries: 2,
    timeouts: { connect: 5_000, idle: 300_000 },
  },
  member: { weight: 1 },
  listener: { proxyProtocol: 'off' as ProxyProtocol, maxConnections: 10_000 },
};

/** One member of a service, as discovery reports it. */
export interface Member {
  readonly host: string;
  readonly port: number;
  /** Integer 0-1000, default 1; 0 takes no new traffic. */
  readonly weight: number;
  readonly zone?: string;
  readonly meta?: Readonly<Record<string, string>>;
}

/** A resolved `strategy:`: the factory, its options, and a label for logs. */
export interface StrategyConfig {
  /** The built-in name, or the module path as written. */
  readonly label: string;
  readonly factory: StrategyFactory;
  readonly options: Readonly<Record<string, unknown>>;
}

/** One `services.NAME` entry. Durations are in milliseconds. */
export interface ServiceConfig {
  readonly name: string;
  readonly static: readonly Member[];
  readonly strategy: StrategyConfig;
  /** Further backends to try when a connect fails. Default 2. */
  readonly retries: number;
  readonly timeouts: { readonly connect: number; readonly idle: number };
}

export type ProxyProtocol = 'off' | 'v1' | 'v2';

/** One `listeners[]` entry. */
export interface ListenerConfig {
  readonly name: string;
  readonly mode: 'tcp';
  readonly bind: Address;
  readonly service: string;
  readonly proxyProtocol: ProxyProtocol;
  readonly maxConnections: number;
}

/** A whole validated config file. */
export interface DroverConfig {
  /** Absolute path of the file it came from. */
  readonly file: string;
  readonly drainTimeout: number;
  readonly logLevel: LogLevel;
  readonly services: ReadonlyMap<string, ServiceConfig>;
  readonly listeners: readonly ListenerConfig[];
}
