import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ServiceBalancer } from '../balancer/balancer.js';

/** drover_request_duration_seconds buckets: 0.5 ms to 10 s. */
export const REQUEST_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** drover_discovery_update_seconds buckets: 5 ms (the 20 ms coalescing window is included) to 60 s (outages). */
export const DISCOVERY_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * Why an attempt on a backend failed (the `reason` label of
 * drover_upstream_errors_total): a fixed set, so the label stays small.
 */
export type UpstreamReason = 'refused' | 'timeout' | 'reset' | 'invalid_response' | '5xx' | 'other';

/** Every UpstreamReason, in a fixed order (index into per-backend error counts). */
export const UPSTREAM_REASONS: readonly UpstreamReason[] = ['refused', 'timeout', 'reset', 'invalid_response', '5xx', 'other'];

/** The reason an error from a connect or an upstream socket counts as. */
export function upstreamReason(err: unknown): UpstreamReason {
  const code = (err as { code?: unknown } | null)?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'ETIMEDOUT':
      return 'timeout';
    case 'ECONNRESET':
    case 'EPIPE':
    case 'ECONNABORTED':
      return 'reset';
    default:
      // Node's HTTP parser refusing what the backend sent (HPE_INVALID_HEADER_TOKEN, ...).
      return typeof code === 'string' && code.startsWith('HPE_') ? 'invalid_response' : 'other';
  }
}

/**
 * What Metrics reads at scrape time: Drover's live state. Backend gauges,
 * member counts and ZooKeeper state come from here when scraped, so no
 * request pays for them.
 */
export interface MetricsView {
  /** The balancer of every configured service, by name. */
  readonly services: ReadonlyMap<string, ServiceBalancer>;
  /** The shared ZooKeeper connection, when there is one. */
  zookeeper(): { readonly connected: boolean; readonly expirations: number } | undefined;
  /** Names of the listeners that exist, draining ones included. */
  listeners(): Iterable<string>;
}

const NOTHING: MetricsView = { services: new Map(), zookeeper: () => undefined, listeners: () => [] };

/**
 * Traffic counts of one listener, service and backend: plain numbers bumped
 * by the listeners, turned into Prometheus series only when scraped. An
 * empty `backend` holds requests no backend answered or was picked for
 * (no route, no usable backend); an empty `service` holds unrouted ones.
 */
export class TrafficSeries {
  /** Responses by status class: index 1 is 1xx ... 5 is 5xx (0 is unused). */
  readonly responses = [0, 0, 0, 0, 0, 0];
  /** Connections established to the backend (TCP; WebSocket tunnels on HTTP listeners). */
  connections = 0;
  /** Connections and requests open on the backend now. */
  active = 0;
  /** Bytes from the client towards the backend. */
  bytesIn = 0;
  /** Bytes from the backend towards the client. */
  bytesOut = 0;

  constructor(
    readonly listener: string,
    readonly service: string,
    readonly backend: string,
  ) {}
}

/** One label set of a BucketHistogram: counts per bucket (the last is +Inf), sum and count. */
export class HistogramSeries {
  /** Observations per bucket, not cumulative; one more than the bounds, for +Inf. */
  readonly counts: number[];
  sum = 0;
  count = 0;

  constructor(
    readonly labels: Readonly<Record<string, string>>,
    private readonly bounds: readonly number[],
  ) {
    this.counts = new Array<number>(bounds.length + 1).fill(0);
  }

  /** Counts one observation. */
  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

/** The shape prom-client's registry reads from a metric when it writes the exposition. */
interface CollectedMetric {
  name: string;
  help: string;
  type: 'histogram';
  aggregator: 'sum';
  values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }>;
}

/**
 * A Prometheus histogram whose observations are array increments.
 * prom-client's Histogram finds a bucket by a float-valued property name on
 * every observe (a number-to-string conversion each time): profiled under
 * load, it was the largest per-request cost of the metrics. This one is
 * registered as a custom metric: prom-client's registry asks a metric only
 * for its name, type, get() and reset().
 */
export class BucketHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly children = new Map<string, HistogramSeries>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
    readonly buckets: readonly number[],
    private readonly beforeCollect: () => void = () => {},
  ) {}

  /** The series of `values` (in labelNames order), created on first use. */
  child(...values: string[]): HistogramSeries {
    const key = values.join('\u0000');
    let c = this.children.get(key);
    if (!c) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((n, i) => (labels[n] = values[i] ?? ''));
      this.children.set(key, (c = new HistogramSeries(labels, this.buckets)));
    }
    return c;
  }

  /** Drops the series of `values`. */
  remove(...values: string[]): void {
    this.children.delete(values.join('\u0000'));
  }

  /** Drops every series (registry.resetMetrics()). */
  reset(): void {
    this.children.clear();
  }

  /** The samples, as prom-client's registry formats them. */
  async get(): Promise<CollectedMetric> {
    this.beforeCollect();
    const values: CollectedMetric['values'] = [];
    const bucket = `${this.name}_bucket`;
    for (const c of this.children.values()) {
      let cumulative = 0;
      this.buckets.forEach((le, i) => {
        cumulative += c.counts[i]!;
        values.push({ labels: { ...c.labels, le }, value: cumulative, metricName: bucket });
      });
      values.push({ labels: { ...c.labels, le: '+Inf' }, value: c.count, metricName: bucket });
      values.push({ labels: { ...c.labels }, value: c.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...c.labels }, value: c.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}

/** One listener's traffic series, by service and backend, and its duration histogram children. */
export class ListenerSeries {
  /** Series by service, then backend id. */
  readonly byService = new Map<string, Map<string, TrafficSeries>>();
  /** drover_request_duration_seconds series, by service. */
  readonly durations = new Map<string, HistogramSeries>();

  constructor(
    readonly name: string,
    private readonly histogram: BucketHistogram,
  ) {}

  /** The series of `service` and `backend` ('' for none), created on first use. */
  series(service: string, backend: string): TrafficSeries {
    let backends = this.byService.get(service);
    if (!backends) this.byService.set(service, (backends = new Map()));
    let s = backends.get(backend);
    if (!s) backends.set(backend, (s = new TrafficSeries(this.name, service, backend)));
    return s;
  }

  /** Observes one request's duration in seconds. */
  duration(service: string, seconds: number): void {
    let h = this.durations.get(service);
    if (!h) this.durations.set(service, (h = this.histogram.child(this.name, service)));
    h.observe(seconds);
  }
}

/** Counts kept per service. */
export interface ServiceCounts {
  noBackend: number;
  retries: number;
  discoveryUpdates: number;
  invalidMembers: number;
  /** Upstream errors by backend id, indexed like UPSTREAM_REASONS. */
  readonly errors: Map<string, number[]>;
}

/**
 * Every Prometheus metric Drover exports, in one registry of its own (not
 * prom-client's global one, so two Drovers in one process do not mix).
 * Created only when the config has an `admin:` block: without it, nothing is
 * counted and requests pay nothing.
 *
 * Requests and connections bump plain numbers (see ListenerObserver); every
 * series is built from them, and from the balancers' live state, in
 * collect() callbacks when scraped. A backend that left its service loses
 * its series once its last connection or request is done.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly listenerSeries = new Map<string, ListenerSeries>();
  private readonly serviceCounts = new Map<string, ServiceCounts>();
  private readonly requestDuration: BucketHistogram;
  private readonly discoveryUpdate: Histogram<'service'>;
  private readonly reloads = { success: 0, failure: 0 };
  private lastReloadOk = true;
  private zookeeperRegistered = false;
  /** Set while one scrape's collect() calls run, so pruning runs once per scrape. */
  private refreshed = false;

  /** What collect() reads; see attach(). */
  private view: MetricsView;

  constructor(view: MetricsView = NOTHING) {
    this.view = view;
    const registers = [this.registry];
    const refresh = () => this.refresh();

    const requests: Counter<'listener' | 'service' | 'backend' | 'code'> = new Counter({
      name: 'drover_requests_total',
      help: 'HTTP requests answered, by status class (code: 1xx..5xx). backend: the one that answered or was tried last, empty when none was (no route, no usable backend); service: empty when no route matched. A client that left before the response counts as 499 (4xx).',
      labelNames: ['listener', 'service', 'backend', 'code'],
      registers,
      collect: () => {
        refresh();
        requests.reset();
        for (const s of this.allSeries()) {
          for (let k = 1; k <= 5; k++) {
            const n = s.responses[k]!;
            if (n > 0) requests.inc({ listener: s.listener, service: s.service, backend: s.backend, code: `${k}xx` }, n);
          }
        }
      },
    });
    this.requestDuration = new BucketHistogram(
      'drover_request_duration_seconds',
      'HTTP request duration, from the request headers read to the response sent (or the client gone). service: empty when no route matched.',
      ['listener', 'service'],
      REQUEST_BUCKETS,
      refresh,
    );
    // The registry reads name, type, get() and reset(), which BucketHistogram has.
    this.registry.registerMetric(this.requestDuration as unknown as Histogram);
    const connections: Counter<'listener' | 'service' | 'backend'> = new Counter({
      name: 'drover_connections_total',
      help: 'Connections established to a backend: TCP connections, and WebSocket tunnels on HTTP listeners (HTTP requests are counted in drover_requests_total).',
      labelNames: ['listener', 'service', 'backend'],
      registers,
      collect: () => {
        refresh();
        connections.reset();
        for (const s of this.allSeries()) {
          if (s.connections > 0) connections.inc({ listener: s.listener, service: s.service, backend: s.backend }, s.connections);
        }
      },
    });
    const active: Gauge<'listener' | 'service' | 'backend'> = new Gauge({
      name: 'drover_active_connections',
      help: 'Connections and requests open on a backend now: TCP connections (from the connect attempt), HTTP requests in flight, WebSocket tunnels.',
      labelNames: ['listener', 'service', 'backend'],
      registers,
      collect: () => {
        refresh();
        active.reset();
        for (const s of this.allSeries()) if (s.backend) active.set({ listener: s.listener, service: s.service, backend: s.backend }, s.active);
      },
    });
    const bytes: Counter<'listener' | 'service' | 'backend' | 'direction'> = new Counter({
      name: 'drover_bytes_total',
      help: 'Bytes proxied. direction="in": from the client towards the backend; "out": from the backend towards the client. TCP: bytes read from and written to the client socket (a PROXY header is not counted). HTTP: body bytes of requests a backend answered and of its responses (headers not counted).',
      labelNames: ['listener', 'service', 'backend', 'direction'],
      registers,
      collect: () => {
        refresh();
        bytes.reset();
        for (const s of this.allSeries()) {
          if (!s.backend) continue;
          bytes.inc({ listener: s.listener, service: s.service, backend: s.backend, direction: 'in' }, s.bytesIn);
          bytes.inc({ listener: s.listener, service: s.service, backend: s.backend, direction: 'out' }, s.bytesOut);
        }
      },
    });

    const eachBackend = (set: (service: string, id: string, balancer: ServiceBalancer) => void) => {
      for (const [name, balancer] of this.view.services) for (const b of balancer.backends) set(name, b.id, balancer);
    };
    const up: Gauge<'service' | 'backend'> = new Gauge({
      name: 'drover_backend_up',
      help: '1 when the backend takes new connections (healthy or in panic mode, not drained, ejected or at its agent maxconn), else 0.',
      labelNames: ['service', 'backend'],
      registers,
      collect: () => {
        up.reset();
        eachBackend((service, backend, b) => up.set({ service, backend }, b.states.usable(backend) ? 1 : 0));
      },
    });
    const weight: Gauge<'service' | 'backend'> = new Gauge({
      name: 'drover_backend_weight',
      help: 'Effective weight: the configured weight, or an API or agent override, times the slow-start ramp.',
      labelNames: ['service', 'backend'],
      registers,
      collect: () => {
        weight.reset();
        for (const [service, balancer] of this.view.services) {
          for (const b of balancer.backends) weight.set({ service, backend: b.id }, balancer.states.weight(b));
        }
      },
    });
    const ewma: Gauge<'service' | 'backend'> = new Gauge({
      name: 'drover_backend_ewma_seconds',
      help: 'Peak-EWMA latency (connect time for TCP, time to response headers for HTTP; a failure counts as the timeout), decayed to now. Absent until the first sample.',
      labelNames: ['service', 'backend'],
      registers,
      collect: () => {
        ewma.reset();
        eachBackend((service, backend, b) => {
          const ms = b.states.latency(backend);
          if (ms !== undefined) ewma.set({ service, backend }, ms / 1000);
        });
      },
    });
    const agentLoad: Gauge<'service' | 'backend'> = new Gauge({
      name: 'drover_backend_agent_load',
      help: "The backend's latest own load report, as the share of its configured weight it asks for (agent N%/100; ORCA or registry load: the idle share, 1 - utilization). Absent until a report, or when the agent sent an absolute weight.",
      labelNames: ['service', 'backend'],
      registers,
      collect: () => {
        agentLoad.reset();
        eachBackend((service, backend, b) => {
          const percent = b.states.report(backend)?.percent;
          if (percent !== undefined) agentLoad.set({ service, backend }, percent / 100);
        });
      },
    });
    const retries: Counter<'service'> = new Counter({
      name: 'drover_retries_total',
      help: 'Further backends tried for one connection or request after the first attempt failed (each one counts).',
      labelNames: ['service'],
      registers,
      collect: () => {
        refresh();
        retries.reset();
        for (const [service, c] of this.serviceCounts) if (c.retries > 0) retries.inc({ service }, c.retries);
      },
    });
    const upstreamErrors: Counter<'service' | 'backend' | 'reason'> = new Counter({
      name: 'drover_upstream_errors_total',
      help: 'Failed attempts on a backend. reason: refused (connection refused), timeout (connect, or HTTP response headers), reset (connection reset or closed before a response), invalid_response (unparsable HTTP status or headers), 5xx (the backend answered 5xx), other.',
      labelNames: ['service', 'backend', 'reason'],
      registers,
      collect: () => {
        refresh();
        upstreamErrors.reset();
        for (const [service, c] of this.serviceCounts) {
          for (const [backend, counts] of c.errors) {
            counts.forEach((n, i) => n > 0 && upstreamErrors.inc({ service, backend, reason: UPSTREAM_REASONS[i]! }, n));
          }
        }
      },
    });
    const noBackend: Counter<'service'> = new Counter({
      name: 'drover_no_backend_total',
      help: 'Connections and requests refused because the service had no usable backend (HTTP 503; TCP: closed).',
      labelNames: ['service'],
      registers,
      collect: () => {
        refresh();
        noBackend.reset();
        for (const [service, c] of this.serviceCounts) if (c.noBackend > 0) noBackend.inc({ service }, c.noBackend);
      },
    });

    const members: Gauge<'service'> = new Gauge({
      name: 'drover_discovery_members',
      help: "Members in the service's current snapshot (static or from ZooKeeper).",
      labelNames: ['service'],
      registers,
      collect: () => {
        members.reset();
        for (const [service, balancer] of this.view.services) members.set({ service }, balancer.backends.length);
      },
    });
    const updates: Counter<'service'> = new Counter({
      name: 'drover_discovery_updates_total',
      help: 'Member lists delivered by discovery: every ZooKeeper listing (the first, and one per change after a watch event, bursts coalesced); a static list counts once.',
      labelNames: ['service'],
      registers,
      collect: () => {
        refresh();
        updates.reset();
        for (const [service, c] of this.serviceCounts) if (c.discoveryUpdates > 0) updates.inc({ service }, c.discoveryUpdates);
      },
    });
    const invalid: Counter<'service'> = new Counter({
      name: 'drover_discovery_invalid_members_total',
      help: 'ZooKeeper member znodes skipped because their data could not be read (counted once per znode version).',
      labelNames: ['service'],
      registers,
      collect: () => {
        refresh();
        invalid.reset();
        for (const [service, c] of this.serviceCounts) if (c.discoveryUpdates > 0) invalid.inc({ service }, c.invalidMembers);
      },
    });
    this.discoveryUpdate = new Histogram({
      name: 'drover_discovery_update_seconds',
      help: 'From the ZooKeeper event that triggered a re-list (a watch firing, or a new session) to the balancer rebuilt with the result; includes the 20 ms coalescing window and any retries of a failed read. The listing made at start, caused by no event, is not observed.',
      labelNames: ['service'],
      buckets: [...DISCOVERY_BUCKETS],
      registers,
      collect: refresh,
    });

    const reloads: Counter<'result'> = new Counter({
      name: 'drover_config_reloads_total',
      help: 'Config reloads (SIGHUP, the admin API, Drover.reload), by result: success or failure (the running config stayed).',
      labelNames: ['result'],
      registers,
      collect: () => {
        reloads.reset();
        reloads.inc({ result: 'success' }, this.reloads.success);
        reloads.inc({ result: 'failure' }, this.reloads.failure);
      },
    });
    const lastReload: Gauge = new Gauge({
      name: 'drover_config_last_reload_success',
      help: '1 when the last config reload succeeded (or none was tried yet), 0 when it failed.',
      registers,
      collect: () => lastReload.set(this.lastReloadOk ? 1 : 0),
    });
    this.sync();
  }

  /** Sets what collect() reads (Drover does, whoever created the metrics), and registers what it makes available. */
  attach(view: MetricsView): void {
    this.view = view;
    this.sync();
  }

  /** The exposition text for GET /metrics: Drover's metrics and Node's process metrics. */
  text(): Promise<string> {
    this.sync();
    return Registry.merge([processRegistry(), this.registry]).metrics();
  }

  /**
   * Drops the series of backends and services that are gone now, not only at
   * the next scrape: with nobody scraping, a fleet whose addresses change on
   * every deploy would otherwise pile up series. Called on member changes.
   */
  prune(): void {
    this.refreshed = false;
    this.refresh();
  }

  /** The Content-Type of text(). */
  get contentType(): string {
    return this.registry.contentType;
  }

  /**
   * Registers what depends on the view having appeared since: the ZooKeeper
   * metrics exist only once there is a ZooKeeper connection (a static-only
   * Drover has none, and a 0 would read as "disconnected"). attach() and
   * text() call it.
   */
  sync(): void {
    if (this.zookeeperRegistered || !this.view.zookeeper()) return;
    this.zookeeperRegistered = true;
    const registers = [this.registry];
    const connected: Gauge = new Gauge({
      name: 'drover_zookeeper_connected',
      help: '1 while the ZooKeeper client has a live connection to a server, else 0.',
      registers,
      collect: () => connected.set(this.view.zookeeper()?.connected ? 1 : 0),
    });
    const expirations: Counter = new Counter({
      name: 'drover_zookeeper_session_expirations_total',
      help: 'ZooKeeper sessions that expired (or were given up after a connection stuck too long); each is followed by a new session and a full re-list.',
      registers,
      collect: () => {
        expirations.reset();
        expirations.inc(this.view.zookeeper()?.expirations ?? 0);
      },
    });
  }

  /** A listener's series (created on first use); ListenerObserver keeps it. */
  listener(name: string): ListenerSeries {
    let s = this.listenerSeries.get(name);
    if (!s) this.listenerSeries.set(name, (s = new ListenerSeries(name, this.requestDuration)));
    return s;
  }

  /** A service's counts (created on first use). */
  service(name: string): ServiceCounts {
    let c = this.serviceCounts.get(name);
    if (!c) this.serviceCounts.set(name, (c = { noBackend: 0, retries: 0, discoveryUpdates: 0, invalidMembers: 0, errors: new Map() }));
    return c;
  }

  /** Counts one failed attempt on a backend. */
  upstreamError(service: string, backend: string, reason: UpstreamReason): void {
    const errors = this.service(service).errors;
    let counts = errors.get(backend);
    if (!counts) errors.set(backend, (counts = UPSTREAM_REASONS.map(() => 0)));
    counts[UPSTREAM_REASONS.indexOf(reason)]!++;
  }

  /** Counts one config reload. */
  reloaded(ok: boolean): void {
    if (ok) this.reloads.success++;
    else this.reloads.failure++;
    this.lastReloadOk = ok;
  }

  /**
   * Counts one member list from discovery, applied to the balancer.
   * `seconds` is the time since the event that caused it, when known;
   * `invalid` the members skipped as unreadable since the last list.
   */
  discovered(service: string, seconds: number | undefined, invalid: number): void {
    const c = this.service(service);
    c.discoveryUpdates++;
    c.invalidMembers += invalid;
    if (seconds !== undefined) this.discoveryUpdate.observe({ service }, seconds);
    this.prune();
  }

  private *allSeries(): Iterable<TrafficSeries> {
    for (const l of this.listenerSeries.values()) for (const backends of l.byService.values()) yield* backends.values();
  }

  /**
   * Drops the series of what is gone, once per scrape (every collect() asks;
   * the first one of a scrape runs it): a backend that left its service (or
   * whose service was removed), and every series of a listener that was
   * removed, as soon as nothing is open on it any more.
   */
  private refresh(): void {
    if (this.refreshed) return;
    this.refreshed = true;
    queueMicrotask(() => (this.refreshed = false));
    const { services } = this.view;
    const listeners = new Set(this.view.listeners());
    const memberSets = new Map<string, Set<string>>();
    const isMember = (service: string, id: string): boolean => {
      let ids = memberSets.get(service);
      if (!ids) memberSets.set(service, (ids = new Set(services.get(service)?.backends.map((b) => b.id) ?? [])));
      return ids.has(id);
    };
    const busy = new Set<string>();
    for (const [name, l] of this.listenerSeries) {
      const gone = !listeners.has(name);
      for (const [service, backends] of l.byService) {
        for (const [id, s] of backends) {
          if (s.active > 0) {
            busy.add(`${service}\n${id}`);
            continue;
          }
          const keep = !gone && (id === '' ? service === '' || services.has(service) : isMember(service, id));
          if (!keep) backends.delete(id);
        }
        if (backends.size === 0) l.byService.delete(service);
      }
      for (const service of l.durations.keys()) {
        if (gone || (service !== '' && !services.has(service))) {
          this.requestDuration.remove(name, service);
          l.durations.delete(service);
        }
      }
      if (gone && l.byService.size === 0) this.listenerSeries.delete(name);
    }
    for (const [service, c] of this.serviceCounts) {
      if (!services.has(service)) {
        this.serviceCounts.delete(service);
        this.discoveryUpdate.remove(service);
        continue;
      }
      for (const id of c.errors.keys()) if (!isMember(service, id) && !busy.has(`${service}\n${id}`)) c.errors.delete(id);
    }
  }
}

let processMetrics: Registry | undefined;

/**
 * Node's default process metrics, in one registry for the whole process:
 * prom-client starts an event-loop monitor and a GC observer per call and
 * cannot stop them, so a library user starting many Drovers must not get
 * one set each.
 */
function processRegistry(): Registry {
  if (!processMetrics) {
    processMetrics = new Registry();
    collectDefaultMetrics({ register: processMetrics, prefix: 'drover_' });
  }
  return processMetrics;
}
