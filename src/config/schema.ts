import type { StrategyFactory } from '../../strategies/index.js';
import type { Address } from './address.js';

/** Log levels, least to most severe. */
export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Defaults for every key; the README's table is written from these. */
export const DEFAULTS = {
  drainTimeout: 30_000,
  admin: { listen: { host: '127.0.0.1', port: 9900, id: '127.0.0.1:9900' } as Address },
  zookeeper: { sessionTimeout: 10_000 },
  logLevel: 'info' as LogLevel,
  service: {
    strategy: 'round-robin',
    retries: 2,
    timeouts: { connect: 5_000, idle: 300_000, keepAlive: 4_000 },
    idempotentMethods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE'],
    maxSockets: 256,
    queue: { size: 1000, timeout: 5_000 },
    slowStart: 0,
    panicThreshold: 0,
    healthCheck: {
      type: 'tcp' as 'tcp' | 'http',
      path: '/',
      expect: [[200, 399]] as ReadonlyArray<readonly [number, number]>,
      interval: 2_000,
      timeout: 1_000,
      rise: 2,
      fall: 3,
      startUnhealthy: false,
      shared: false,
    },
    outlier: { consecutiveFailures: 5, baseEjection: 30_000, maxEjection: 300_000, maxEjectedPercent: 50 },
    agent: { interval: 2_000, timeout: 1_000, send: '' },
  },
  member: { weight: 1 },
  listener: {
    proxyProtocol: 'off' as ProxyProtocol,
    maxConnections: 10_000,
    http: { engine: 'native' as HttpEngineName, timeouts: { response: 30_000, idle: 60_000, headers: 10_000, request: 60_000 } },
  },
};

/** One member of a service, as discovery reports it. */
export interface Member {
  readonly host: string;
  readonly port: number;
  /** Integer 0-1000, default 1; 0 takes no new traffic. */
  readonly weight: number;
  readonly zone?: string;
  readonly meta?: Readonly<Record<string, string>>;
  /** Set by the registry: keep open connections, take no new ones. */
  readonly drain?: boolean;
  /** This member's agent-check port, overriding the service's `agent.port`. */
  readonly agentPort?: number;
  /** Utilization 0-1 the member reported in its registry data (`drover register --report-load`). */
  readonly load?: number;
  /** The znode it was read from (ZooKeeper discovery). */
  readonly znode?: string;
  /** At most this many connections or requests at once (HAProxy's server `maxconn`); absent: no limit. */
  readonly maxConnections?: number;
}

/**
 * A service's `healthCheck:` block: active probes of every member. Durations
 * in milliseconds; `expect` is a list of inclusive status ranges (http only).
 */
export interface HealthCheckConfig {
  readonly type: 'tcp' | 'http';
  readonly path: string;
  readonly expect: ReadonlyArray<readonly [number, number]>;
  /** The Host header; default the member's `host:port`. */
  readonly host?: string;
  readonly interval: number;
  readonly timeout: number;
  readonly rise: number;
  readonly fall: number;
  /** New members start down until they pass `rise` checks. */
  readonly startUnhealthy: boolean;
  /** One Drover per service checks (elected in ZooKeeper) and the others apply its results. */
  readonly shared: boolean;
}

/** A service's `outlier:` block: passive ejection on consecutive failures. */
export interface OutlierConfig {
  readonly consecutiveFailures: number;
  /** The first ejection's length; the n-th lasts n times as long, up to maxEjection. */
  readonly baseEjection: number;
  readonly maxEjection: number;
  /** Never eject when more than this share of members would be ejected. */
  readonly maxEjectedPercent: number;
}

/** A service's `agent:` block: HAProxy's agent-check protocol. */
export interface AgentConfig {
  /** Default port; a member's `agentPort` overrides it. */
  readonly port?: number;
  readonly interval: number;
  readonly timeout: number;
  /** Sent to the agent after connecting (HAProxy's agent-send), `\n` added when missing; empty sends nothing. */
  readonly send: string;
}

/** A resolved `strategy:`: the factory, its options, and a label for logs. */
export interface StrategyConfig {
  /** The built-in name, or the module path as written. */
  readonly label: string;
  readonly factory: StrategyFactory;
  readonly options: Readonly<Record<string, unknown>>;
}

/** A service's `zookeeper:` block. */
export interface ServiceZooKeeperConfig {
  /** The parent znode whose children are the members. */
  readonly path: string;
  readonly format: 'auto' | 'drover' | 'curator' | 'finagle' | 'nerve' | 'plain';
  /** Finagle: the additionalEndpoints entry to use. */
  readonly endpoint?: string;
}

/** One `services.NAME` entry. Durations are in milliseconds. */
export interface ServiceConfig {
  readonly name: string;
  /** Members listed in the config; empty when `zookeeper` is set. */
  readonly static: readonly Member[];
  /** Where discovery finds the members; absent for static services. */
  readonly zookeeper?: ServiceZooKeeperConfig;
  readonly strategy: StrategyConfig;
  /** Further backends to try when a connect fails. Default 2. */
  readonly retries: number;
  /**
   * connect: per attempt; idle: TCP connections without traffic; keepAlive:
   * how long an idle upstream HTTP connection is kept for reuse (shorter than
   * the backends' own keep-alive, so Drover never reuses a socket the
   * backend is closing).
   */
  readonly timeouts: { readonly connect: number; readonly idle: number; readonly keepAlive: number };
  /** HTTP methods that may be sent again after a backend may have seen them (upper case). */
  readonly idempotentMethods: readonly string[];
  /** HTTP: at most this many upstream connections per backend. */
  readonly maxSockets: number;
  /**
   * HTTP: requests that find every usable backend at its limit (`maxSockets`,
   * a member's `maxConnections`, the agent's `maxconn`) wait here, at most
   * `size` of them, each for at most `timeout` ms; then 503.
   */
  readonly queue: { readonly size: number; readonly timeout: number };
  /** Ramp a new or recovered member's weight from 10% to 100% over this long; 0 is off. */
  readonly slowStart: number;
  /** Percent 0-100: with fewer healthy members than this share, route to all of them (Envoy's panic mode); 0 is off. */
  readonly panicThreshold: number;
  readonly healthCheck?: HealthCheckConfig;
  readonly outlier?: OutlierConfig;
  readonly agent?: AgentConfig;
}

export type ProxyProtocol = 'off' | 'v1' | 'v2';

/** A `listeners[]` entry in `mode: tcp`. */
export interface TcpListenerConfig {
  readonly name: string;
  readonly mode: 'tcp';
  readonly bind: Address;
  readonly service: string;
  readonly proxyProtocol: ProxyProtocol;
  readonly maxConnections: number;
}

/** What a route matches; every given field must match. Absent fields match anything. */
export interface RouteMatch {
  /** Lower case; `*.example.com` matches any subdomain (not example.com itself). */
  readonly host?: string;
  readonly pathPrefix?: string;
  /** Upper case. */
  readonly methods?: readonly string[];
  /** Lower-case names to exact values. */
  readonly headers?: Readonly<Record<string, string>>;
}

/** One route of an HTTP listener. */
export interface RouteConfig {
  readonly match: RouteMatch;
  readonly service: string;
}

/** The HTTP engines: `native` (raw sockets and Node's llhttp parser, the default) or `http-proxy` (node:http and the http-proxy package). */
export type HttpEngineName = 'native' | 'http-proxy';

/** A `listeners[]` entry in `mode: http`. Durations in milliseconds. */
export interface HttpListenerConfig {
  readonly name: string;
  readonly mode: 'http';
  readonly bind: Address;
  /** Which engine moves the bytes; the HTTP semantics are the same in both. */
  readonly engine: HttpEngineName;
  /** First match wins; a route without `match` matches everything. */
  readonly routes: readonly RouteConfig[];
  readonly maxConnections: number;
  readonly timeouts: {
    /** Overrides the service's connect timeout for this listener. */
    readonly connect?: number;
    readonly response: number;
    readonly idle: number;
    readonly headers: number;
    /** A whole request (headers and body) must arrive within this long of its first byte. */
    readonly request: number;
  };
  /** Peers (addresses or CIDRs) whose X-Forwarded-For is believed; empty: none. */
  readonly trustForwardedFor: readonly string[];
}

/** One `listeners[]` entry. */
export type ListenerConfig = TcpListenerConfig | HttpListenerConfig;

/** The `admin:` block: the admin HTTP server (metrics, API, status page). */
export interface AdminConfig {
  readonly listen: Address;
  /** Bearer token mutating calls must carry; without one they are refused on a non-loopback bind. */
  readonly token?: string;
}

/** A whole validated config file. */
export interface DroverConfig {
  /** Absolute path of the file it came from. */
  readonly file: string;
  readonly drainTimeout: number;
  readonly logLevel: LogLevel;
  /** The `zookeeper:` block; required when a service uses ZooKeeper. */
  readonly zookeeper?: {
    readonly connect: string;
    readonly sessionTimeout: number;
    readonly auth: readonly { readonly scheme: string; readonly credentials: string }[];
  };
  readonly services: ReadonlyMap<string, ServiceConfig>;
  readonly listeners: readonly ListenerConfig[];
  /** The admin server; absent: none. */
  readonly admin?: AdminConfig;
  /** `stdout`, or an absolute file path; absent: no access log. */
  readonly accessLog?: string;
}
