/**
 * The admin API's JSON documents, built from a running Drover. Every field
 * is always present (`null` where there is no value), so clients and the
 * status page can rely on the shape; the README documents it.
 */
import type { ServiceBalancer } from '../balancer/balancer.js';
import type { Drain } from '../balancer/state.js';
import type { ServiceConfig } from '../config/schema.js';
import type { Drover } from '../drover.js';
import type { Backend } from '../../strategies/index.js';

/** GET /healthz: the process is alive and serving the admin API. */
export interface HealthDoc {
  readonly status: 'ok';
}

/** GET /readyz: ready once every service had its first full member listing (and Drover is not stopping). */
export interface ReadyDoc {
  readonly ready: boolean;
  readonly stopping: boolean;
  /** Each service by name: whether it had its first listing. */
  readonly services: Readonly<Record<string, boolean>>;
}

/** A backend's agent or registry load report. */
export interface ReportDoc {
  /** An absolute weight the agent asked for, if any. */
  readonly weight: number | null;
  /** Spare capacity in percent (agent `N%`, ORCA, registry load), if any. */
  readonly percent: number | null;
  /** When it was received (ms since the epoch, Drover's clock). */
  readonly at: number;
}

/** One backend of a service in GET /api/services and the drain/undrain answers. */
export interface BackendDoc {
  /** `host:port` (IPv6 in brackets): the `:id` of the drain/undrain calls. */
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly zone: string | null;
  /** The znode it was read from (ZooKeeper services), else null. */
  readonly znode: string | null;
  /** `up`, `down` (failed checks, agent down or ejected), `panic` (unhealthy but used: panic mode) or `draining`. */
  readonly state: 'up' | 'down' | 'draining' | 'panic';
  /** Whether a new connection or request may go to it now. */
  readonly usable: boolean;
  readonly configuredWeight: number;
  /** The weight strategies use: overrides and slow start applied. */
  readonly weight: number;
  /** Slow-start factor, 0.1 to 1. */
  readonly ramp: number;
  /** Open connections (TCP) or requests in flight (HTTP). */
  readonly active: number;
  /** Connections or requests started since Drover started (or the backend came back); rates are deltas of this. */
  readonly total: number;
  /** Peak-EWMA latency in ms, or null before the first sample. */
  readonly latencyMs: number | null;
  readonly report: ReportDoc | null;
  /** Held down by failed active checks. */
  readonly checksDown: boolean;
  /** Held down by its agent (`down`, `fail`, `stopped`). */
  readonly agentDown: boolean;
  /** The agent's `maxconn:N`, or null. */
  readonly maxConn: number | null;
  /** The member's own `maxConnections` (config or registry), or null. */
  readonly maxConnections: number | null;
  /** Why it takes no new traffic: `api` (drain call), `registry`, `agent`, `maint`, `removed`. */
  readonly drains: readonly Drain[];
  /** When its passive-health ejection ends (ms since the epoch), or null. */
  readonly ejectedUntil: number | null;
  /** Recent ejections (the next one lasts this many times baseEjection). */
  readonly ejections: number;
}

/** Active health checks of a service, as configured. */
export interface HealthCheckDoc {
  readonly type: 'tcp' | 'http';
  /** HTTP checks only, else null. */
  readonly path: string | null;
  readonly interval: number;
  readonly rise: number;
  readonly fall: number;
  readonly shared: boolean;
}

/** One service in GET /api/services. */
export interface ServiceDoc {
  readonly name: string;
  /** Whether it had its first full member listing. */
  readonly ready: boolean;
  readonly strategy: string;
  /** Where the members come from. */
  readonly source: { readonly type: 'static' } | { readonly type: 'zookeeper'; readonly path: string; readonly format: string };
  readonly healthCheck: HealthCheckDoc | null;
  /** Agent checks are configured. */
  readonly agent: boolean;
  readonly outlierDetection: boolean;
  /** Too few healthy members: health is being ignored. */
  readonly panic: boolean;
  /** HTTP requests waiting in the service's queue for a backend slot now. */
  readonly queued: number;
  readonly backends: readonly BackendDoc[];
}

/** GET /api/services. */
export interface ServicesDoc {
  /** Server time (ms since the epoch) the snapshot was taken at: divide `total` deltas by deltas of this. */
  readonly time: number;
  readonly services: readonly ServiceDoc[];
}

/** One listener in GET /api/listeners. */
export interface ListenerDoc {
  readonly name: string;
  readonly mode: 'tcp' | 'http';
  /** The configured bind, as written (port 0 stays 0). */
  readonly bind: string;
  /** The bound address (the real port). */
  readonly address: string;
  /** Open client connections. */
  readonly connections: number;
  readonly maxConnections: number;
  /** The services it sends to: one for TCP, one per route for HTTP (in route order, without repeats). */
  readonly services: readonly string[];
}

/** GET /api/listeners. */
export interface ListenersDoc {
  readonly time: number;
  readonly listeners: readonly ListenerDoc[];
}

/** The body of every error answer. */
export interface ErrorDoc {
  /** A stable code (README): DROVER_NOT_FOUND, DROVER_UNAUTHORIZED, ... */
  readonly error: string;
  readonly message: string;
  /** POST /api/reload: each problem of an invalid file as `file:line:column: key: message`. */
  readonly problems?: readonly string[];
}

/** GET /healthz. */
export function healthDoc(): HealthDoc {
  return { status: 'ok' };
}

/** GET /readyz. */
export function readyDoc(drover: Drover): ReadyDoc {
  const services: Record<string, boolean> = {};
  for (const [name, b] of drover.services) services[name] = b.ready;
  const stopping = drover.isStopping;
  return { ready: drover.ready && !stopping, stopping, services };
}

/** One backend as plain data. */
export function backendDoc(balancer: ServiceBalancer, backend: Backend): BackendDoc {
  const s = balancer.states.snapshot(backend);
  return {
    id: s.id,
    host: backend.host,
    port: backend.port,
    zone: backend.zone ?? null,
    znode: balancer.znode(backend.id) ?? null,
    state: s.state,
    usable: s.usable,
    configuredWeight: s.configuredWeight,
    weight: s.weight,
    ramp: s.ramp,
    active: s.active,
    total: s.total,
    latencyMs: s.latencyMs ?? null,
    report: s.report ? { weight: s.report.weight ?? null, percent: s.report.percent ?? null, at: s.report.at } : null,
    checksDown: s.checksDown,
    agentDown: s.agentDown,
    maxConn: s.maxConn ?? null,
    maxConnections: s.maxConnections ?? null,
    drains: s.drains,
    ejectedUntil: s.ejectedUntil ?? null,
    ejections: s.ejections,
  };
}

/** One service; `config` is absent for a service a reload just removed. */
export function serviceDoc(balancer: ServiceBalancer, config: ServiceConfig | undefined): ServiceDoc {
  const hc = config?.healthCheck;
  const zk = config?.zookeeper;
  return {
    name: balancer.name,
    ready: balancer.ready,
    strategy: balancer.strategyLabel,
    source: zk ? { type: 'zookeeper', path: zk.path, format: zk.format } : { type: 'static' },
    healthCheck: hc
      ? { type: hc.type, path: hc.type === 'http' ? hc.path : null, interval: hc.interval, rise: hc.rise, fall: hc.fall, shared: hc.shared }
      : null,
    agent: config?.agent !== undefined,
    outlierDetection: config?.outlier !== undefined,
    panic: balancer.states.inPanic(),
    queued: balancer.queue.length,
    backends: balancer.backends.map((b) => backendDoc(balancer, b)),
  };
}

/** GET /api/services: every service, in config order. */
export function servicesDoc(drover: Drover): ServicesDoc {
  return {
    time: Date.now(),
    services: [...drover.services.values()].map((b) => serviceDoc(b, drover.config.services.get(b.name))),
  };
}

/** GET /api/listeners: every listener that accepts, in config order. */
export function listenersDoc(drover: Drover): ListenersDoc {
  return {
    time: Date.now(),
    listeners: drover.listeners.map((l) => {
      const c = l.config;
      return {
        name: c.name,
        mode: c.mode,
        bind: c.bind.id,
        address: l.address,
        connections: l.connections,
        maxConnections: c.maxConnections,
        services: c.mode === 'tcp' ? [c.service] : [...new Set(c.routes.map((r) => r.service))],
      };
    }),
  };
}
