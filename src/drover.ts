import { performance } from 'node:perf_hooks';
import { isDeepStrictEqual } from 'node:util';
import { AdminServer } from './admin/server.js';
import { ServiceBalancer, type BalancerClock } from './balancer/balancer.js';
import type { StateSettings } from './balancer/state.js';
import { bindsOverlap } from './config/address.js';
import type { AdminConfig, DroverConfig, HttpListenerConfig, ListenerConfig, ServiceConfig, StrategyConfig } from './config/schema.js';
import type { MemberSource } from './discovery/source.js';
import { StaticSource } from './discovery/static.js';
import { ZooKeeperConnection } from './discovery/zk.js';
import { ZooKeeperSource } from './discovery/zookeeper.js';
import { loadConfig } from './config/load.js';
import { ConfigInvalidError, formatProblem, ReloadError } from './errors.js';
import { ServiceHealth } from './health/service-health.js';
import { Logger } from './log.js';
import { AccessLog } from './metrics/access-log.js';
import { Metrics } from './metrics/metrics.js';
import { ListenerObserver } from './metrics/observer.js';
import { HttpEngines } from './proxy/http/engine.js';
import type { ParserSource } from './proxy/http/native/parser.js';
import type { Listener, ServiceEntry } from './proxy/listener.js';
import { TcpListener } from './proxy/tcp.js';

/** Options for starting Drover from a validated config. */
export interface DroverOptions {
  /** Defaults to a JSON-lines logger on stdout at the config's `logLevel`. */
  log?: Logger;
  /** Injected time and chance for every balancer and check timer (tests). */
  clock?: BalancerClock;
  /** Where the native HTTP engine gets Node's parser (`node:_http_common`); tests replace it to force the fallback. */
  httpParser?: ParserSource;
}

/** What a reload from the config file did. */
export type ReloadResult = { readonly ok: true } | { readonly ok: false; readonly error: Error; readonly problems?: readonly string[] };

/** One running service: its balancer, where its members come from, and what checks them. */
interface ServiceRuntime extends ServiceEntry {
  readonly source: MemberSource;
  readonly health: ServiceHealth;
}

/**
 * A running Drover: one balancer per service, fed by its member source and
 * watched by its checks, and one listener per `listeners[]` entry.
 * Discovery and balancing do not know about listeners, so they can later
 * run in a primary process and feed workers.
 */
export class Drover {
  /** Each service's balancer, by name; a reload keeps the balancers of services that stay. */
  readonly services = new Map<string, ServiceBalancer>();
  readonly listeners: Listener[] = [];
  readonly log: Logger;
  /** The shared ZooKeeper connection, when any service uses ZooKeeper. */
  zookeeper: ZooKeeperConnection | undefined;
  /** Prometheus metrics: created when the config has `admin:` (at start, or by the reload that adds it), then kept; served at the admin server's /metrics. */
  metrics: Metrics | undefined;
  /** The admin server (API, status page, metrics) while the config has `admin:`. */
  admin: AdminServer | undefined;
  private accessLog: AccessLog | undefined;
  /** An admin server a reload replaced, while it finishes its requests (stop waits for it). */
  private closingAdmin: Promise<void> | undefined;
  /** Unreadable members each ZooKeeper source had reported at its last listing. */
  private readonly invalidSeen = new WeakMap<MemberSource, number>();
  private readonly runtimes = new Map<string, ServiceRuntime>();
  /** What listeners read: replaced per service on reload. */
  private readonly entries = new Map<string, ServiceEntry>();
  /** Listeners removed by a reload, still finishing their connections, and when they are done. */
  private readonly leaving = new Map<Listener, Promise<void>>();
  private reloading: Promise<void> = Promise.resolve();
  private stopping = false;
  private queuedReload: Promise<ReloadResult> | undefined;

  private constructor(
    public config: DroverConfig,
    private readonly options: DroverOptions,
  ) {
    this.log = options.log ?? new Logger(config.logLevel);
    this.engines = new HttpEngines(this.log, options.httpParser);
  }

  private readonly engines: HttpEngines;

  /**
   * Starts discovery and checks, then binds every listener, then the admin
   * server. If one cannot bind, the ones already bound are closed and the
   * ListenError is thrown: a half-started proxy would hide the problem.
   */
  static async start(config: DroverConfig, options: DroverOptions = {}): Promise<Drover> {
    const d = new Drover(config, options);
    d.connectZooKeeper(config);
    d.startMetrics(config);
    d.observe(config);
    for (const s of config.services.values()) d.addService(s, config);
    try {
      for (const l of config.listeners) await d.addListener(l);
      if (config.admin) d.admin = await d.startAdmin(config.admin);
    } catch (err) {
      await Promise.all(d.listeners.map((x) => x.drain(0)));
      await Promise.all([...d.runtimes.keys()].map((name) => d.removeService(name)));
      d.zookeeper?.close();
      await d.accessLog?.close();
      throw err;
    }
    return d;
  }

  /**
   * True once every service has had its first full member listing. Drover
   * starts and binds even while ZooKeeper is unreachable; until then it is
   * not ready (the admin API's /readyz reports this).
   */
  get ready(): boolean {
    return [...this.services.values()].every((b) => b.ready);
  }

  /** True once stop() was called (the admin API's /readyz then answers 503). */
  get isStopping(): boolean {
    return this.stopping;
  }

  /** The listener named `name` (tests and the admin API). */
  listener(name: string): Listener | undefined {
    return this.listeners.find((l) => l.config.name === name);
  }

  /** A service's health checks (tests and the admin API). */
  health(service: string): ServiceHealth | undefined {
    return this.runtimes.get(service)?.health;
  }

  /**
   * Applies a new validated config without dropping a connection: new
   * listeners are bound first (if one cannot bind, nothing changes and the
   * ListenError is thrown); listeners with the same mode and bind are
   * reconfigured in place; removed listeners drain for `drainTimeout`.
   * Services that stay keep their balancer and live state (connections,
   * latency, health), and get the new strategy, checks and settings; their
   * discovery restarts only when its config changed. Reloads run one at a time.
   */
  reload(config: DroverConfig): Promise<void> {
    const run = this.reloading.then(() => this.apply(config));
    this.reloading = run.then(
      () => this.metrics?.reloaded(true),
      () => this.metrics?.reloaded(false),
    );
    return run;
  }

  /**
   * Re-reads the config file and applies it (SIGHUP, the admin API). An
   * invalid file or a refused change is logged, every problem with its
   * file:line:column, and the running config stays. Resolves with what
   * happened; never rejects. Calls queue, and each reads the file when its
   * turn comes, so the last call applies the newest file.
   */
  reloadFile(): Promise<ReloadResult> {
    // Calls that arrive while one is waiting its turn share it: it reads the file when it runs.
    if (this.queuedReload) return this.queuedReload;
    const run = this.reloading.then(() => {
      this.queuedReload = undefined;
      return this.reloadFromDisk();
    });
    this.queuedReload = run;
    this.reloading = run.then(() => {});
    return run;
  }

  private async reloadFromDisk(): Promise<ReloadResult> {
    const file = this.config.file;
    this.log.info('reloading config', { config: file });
    try {
      const config = await loadConfig(file);
      await this.apply(config);
      this.log.info('config reloaded', { config: file, listeners: config.listeners.length, services: config.services.size });
      this.metrics?.reloaded(true);
      return { ok: true };
    } catch (err) {
      const problems = err instanceof ConfigInvalidError ? err.problems.map(formatProblem) : undefined;
      this.log.error('config reload failed: keeping the running config', { config: file, error: err, ...(problems ? { problems } : {}) });
      this.metrics?.reloaded(false);
      return { ok: false, error: err instanceof Error ? err : new Error(String(err)), ...(problems ? { problems } : {}) };
    }
  }

  /**
   * Graceful stop: stop accepting everywhere, let open connections finish for
   * up to `drainTimeout` (default: the config's), then close what is left.
   */
  async stop(drainTimeout = this.config.drainTimeout): Promise<void> {
    this.stopping = true;
    await this.reloading;
    const all = [...this.listeners, ...this.leaving.keys()];
    const open = all.reduce((n, l) => n + l.connections, 0);
    // drain() stops accepting synchronously: once "stopping" is logged, new clients are refused.
    const drained = Promise.all(this.listeners.map((l) => l.drain(drainTimeout)));
    // Listeners a reload removed drain on their own deadline; this one may be shorter.
    const cut = setTimeout(() => {
      for (const l of this.leaving.keys()) l.destroyAll();
    }, drainTimeout);
    this.log.info('stopping', { connections: open, drainTimeout });
    await drained;
    await Promise.all(this.leaving.values());
    clearTimeout(cut);
    await Promise.all([...this.runtimes.keys()].map((name) => this.removeService(name)));
    this.zookeeper?.close();
    await this.stopAdmin();
    await this.closingAdmin;
    await this.accessLog?.close();
    this.log.info('stopped');
  }

  /** Closes every connection now, for a second signal during a drain. */
  destroyConnections(): void {
    for (const l of [...this.listeners, ...this.leaving.keys()]) l.destroyAll();
  }

  private async apply(config: DroverConfig): Promise<void> {
    if (this.stopping) throw new ReloadError('Drover is stopping');
    const old = this.config;
    if (old.zookeeper && !isDeepStrictEqual(old.zookeeper, config.zookeeper)) {
      throw new ReloadError('the `zookeeper:` block changed: that needs a restart (the session, its watches and registrations live on it)');
    }
    // Another engine is another listener: it takes over the address like a mode change.
    const sameBind = (a: ListenerConfig, b: ListenerConfig) => a.mode === b.mode && a.bind.id === b.bind.id && (a.mode === 'tcp' || a.engine === (b as HttpListenerConfig).engine);
    const kept = new Map<Listener, ListenerConfig>();
    const added: ListenerConfig[] = [];
    for (const l of config.listeners) {
      const current = this.listeners.find((x) => sameBind(x.config, l));
      if (current) kept.set(current, l);
      else added.push(l);
    }
    const removed = this.listeners.filter((l) => !kept.has(l));
    // A new listener on the address of a removed one (its mode changed) can
    // only bind once that one stops accepting; every other one binds first.
    const blocked = added.filter((l) => removed.some((r) => bindsOverlap(r.config.bind, l.bind)));
    const free = added.filter((l) => !blocked.includes(l));

    // Strategies of services that stay are built first: one that fails
    // refuses the whole reload before anything changed.
    const swaps: Array<() => void> = [];
    for (const s of config.services.values()) {
      const runtime = this.runtimes.get(s.name);
      if (!runtime || sameStrategy(runtime.config.strategy, s.strategy)) continue;
      try {
        swaps.push(runtime.balancer.prepareStrategy(s.strategy));
      } catch (err) {
        throw new ReloadError(`service ${s.name}: strategy ${s.strategy.label} failed to build over the current members: ${(err as Error | null)?.message ?? String(err)}`);
      }
    }

    this.connectZooKeeper(config);
    this.startMetrics(config);
    const newServices = [...config.services.values()].filter((s) => !this.runtimes.has(s.name));
    for (const s of newServices) this.addService(s, config);
    const bound: Listener[] = [];
    let admin: AdminServer | undefined;
    try {
      for (const l of free) bound.push(await this.addListener(l));
      admin = await this.prepareAdmin(config, removed);
    } catch (err) {
      for (const l of bound) this.listeners.splice(this.listeners.indexOf(l), 1);
      await Promise.all(bound.map((l) => l.drain(0)));
      await Promise.all(newServices.map((s) => this.removeService(s.name)));
      for (const s of newServices) {
        this.services.delete(s.name);
        this.entries.delete(s.name);
      }
      throw err;
    }

    this.config = config;
    this.log.level = config.logLevel;
    for (const swap of swaps) swap();
    for (const s of config.services.values()) if (!newServices.includes(s)) this.updateService(s);
    for (const [listener, l] of kept) {
      if (!isDeepStrictEqual(listener.config, l)) this.log.info('listener reconfigured', { listener: l.name, bind: listener.address });
      listener.reconfigure(l);
    }
    for (const listener of removed) {
      this.listeners.splice(this.listeners.indexOf(listener), 1);
      this.log.info('listener removed: draining', { listener: listener.config.name, bind: listener.address, connections: listener.connections });
      this.leaving.set(
        listener,
        listener.drain(config.drainTimeout).then(() => {
          this.leaving.delete(listener);
          this.log.info('listener closed', { listener: listener.config.name });
          this.pruneEntries();
        }),
      );
    }
    for (const l of blocked) {
      try {
        await this.addListener(l);
      } catch (err) {
        this.log.error('listener could not take over its address', { listener: l.name, error: err });
      }
    }
    await this.switchAdmin(config.admin, admin);
    for (const name of [...this.runtimes.keys()]) if (!config.services.has(name)) await this.removeService(name, true);
    this.pruneEntries();
    this.metrics?.prune();
    this.observe(config);
  }

  /** Binds an admin server on `config.listen` (the metrics exist by then: startMetrics); rejects with ListenError. */
  private async startAdmin(config: AdminConfig): Promise<AdminServer> {
    const admin = new AdminServer(this.log);
    await admin.start(this, config);
    this.log.info('admin server started', { bind: admin.address, token: config.token !== undefined });
    return admin;
  }

  /**
   * Reload, before anything changes: the admin server the new config will
   * use. The running one when `admin.listen` stays; a new one bound now when
   * it moved (a bind failure refuses the reload); undefined when there is
   * none, or when the new address is held by the old server or a removed
   * listener, so it can only be bound once they stop accepting (switchAdmin).
   */
  private async prepareAdmin(config: DroverConfig, removed: readonly Listener[]): Promise<AdminServer | undefined> {
    const want = config.admin;
    const running = this.admin?.settings;
    if (!want) return undefined;
    if (this.admin && running?.listen.id === want.listen.id) return this.admin;
    const held = (running && bindsOverlap(running.listen, want.listen)) || removed.some((l) => bindsOverlap(l.config.bind, want.listen));
    return held ? undefined : this.startAdmin(want);
  }

  /**
   * Reload, once the new config applies: the token takes effect at once; an
   * old server that was replaced or removed stops accepting and closes once
   * its requests (the reload call itself, maybe) are answered.
   */
  private async switchAdmin(config: AdminConfig | undefined, next: AdminServer | undefined): Promise<void> {
    const old = this.admin;
    this.admin = next;
    if (old && old === next) return old.configure(config!);
    if (old) {
      this.log.info('admin server closing', { bind: old.address });
      this.closingAdmin = old.close();
    }
    if (config && !next) {
      try {
        this.admin = await this.startAdmin(config);
      } catch (err) {
        this.log.error('admin server could not take over its address', { bind: config.listen.id, error: err });
      }
    }
  }

  /** Closes the admin server (stop). */
  private async stopAdmin(): Promise<void> {
    const admin = this.admin;
    this.admin = undefined;
    await admin?.close();
  }

  /** Forgets removed services once no draining listener can still route to them. */
  private pruneEntries(): void {
    if (this.leaving.size > 0) return;
    for (const name of [...this.entries.keys()]) if (!this.config.services.has(name)) this.entries.delete(name);
  }

  /** Opens the ZooKeeper connection the first time a config needs one. */
  private connectZooKeeper(config: DroverConfig): void {
    const needs = [...config.services.values()].some((s) => s.zookeeper || s.healthCheck?.shared);
    if (needs && config.zookeeper && !this.zookeeper) this.zookeeper = new ZooKeeperConnection(config.zookeeper, this.log);
  }

  private addService(s: ServiceConfig, config: DroverConfig): void {
    const balancer = new ServiceBalancer(s.name, s.strategy, s.retries, this.options.clock, settings(s, config));
    balancer.onStrategyError = (error) => this.log.error('strategy failed', { service: s.name, error });
    balancer.states.onEvent = ({ event, ...fields }) => {
      const level = event === 'drain-timeout' || event === 'panic' ? 'warn' : 'info';
      this.log[level](`backend ${event}`, { service: s.name, ...fields });
    };
    const health = new ServiceHealth(s, balancer, this.log, () => this.zookeeper, this.options.clock?.random);
    const source = this.sourceFor(s);
    const runtime: ServiceRuntime = { config: s, balancer, source, health };
    this.runtimes.set(s.name, runtime);
    this.entries.set(s.name, { config: s, balancer });
    this.services.set(s.name, balancer);
    this.startSource(s.name, source);
    health.start();
  }

  private updateService(s: ServiceConfig): void {
    const runtime = this.runtimes.get(s.name)!;
    const { balancer, health } = runtime;
    const was = runtime.config;
    balancer.retries = s.retries;
    balancer.states.configure(settings(s, this.config));
    if (!sameStrategy(was.strategy, s.strategy)) this.log.info('service strategy changed', { service: s.name, from: was.strategy.label, to: s.strategy.label });
    let source = runtime.source;
    if (!isDeepStrictEqual(was.static, s.static) || !isDeepStrictEqual(was.zookeeper, s.zookeeper)) {
      void runtime.source.stop();
      source = this.sourceFor(s);
      this.log.info('service discovery changed', { service: s.name });
    }
    this.runtimes.set(s.name, { config: s, balancer, source, health });
    this.entries.set(s.name, { config: s, balancer });
    if (source !== runtime.source) this.startSource(s.name, source);
    health.reconfigure(s);
  }

  /**
   * Stops a service's feeds. Removed by a reload (`drain`), its backends
   * drain like any removed member: connections still open on them are closed
   * at drainTimeout. Its entry stays while a draining listener may use it.
   */
  private async removeService(name: string, drain = false): Promise<void> {
    const runtime = this.runtimes.get(name);
    if (!runtime) return;
    this.runtimes.delete(name);
    // After a stop the balancers stay readable (final counts).
    if (drain) this.services.delete(name);
    await runtime.health.stop();
    await runtime.source.stop();
    if (drain) for (const b of runtime.balancer.backends) runtime.balancer.states.setRemoved(b.id, true);
    else runtime.balancer.states.close();
  }

  private sourceFor(s: ServiceConfig): MemberSource {
    return s.zookeeper && this.zookeeper ? new ZooKeeperSource(this.zookeeper, s.zookeeper, this.log, s.name) : new StaticSource(s.static);
  }

  private startSource(name: string, source: MemberSource): void {
    source.start((members, since) => {
      const runtime = this.runtimes.get(name);
      if (!runtime || runtime.source !== source) return; // replaced by a reload
      const { balancer, health } = runtime;
      const first = !balancer.ready;
      try {
        if (balancer.update(members)) {
          this.log.info('service members', { service: name, members: balancer.backends.length });
          health.sync();
        }
      } catch (err) {
        this.log.error('strategy rebuild failed; keeping the previous members', { service: name, error: err });
      }
      if (first) this.log.info('service ready', { service: name, members: balancer.backends.length });
      if (first && balancer.backends.length === 0) this.log.warn('service has no members: its clients will be refused', { service: name });
      if (first && this.ready) this.log.info('all services ready');
      this.countDiscovery(name, source, since);
    });
  }

  private async addListener(l: ListenerConfig): Promise<Listener> {
    const listener: Listener = l.mode === 'tcp' ? new TcpListener(l, this.entries, this.log) : this.engines.listener(l, this.entries);
    this.attach(listener);
    await listener.listen();
    this.listeners.push(listener);
    this.log.info('listener started', {
      listener: l.name,
      mode: l.mode,
      ...(l.mode === 'http' ? { engine: (listener as Listener & { engine?: string }).engine } : {}),
      bind: listener.address,
      ...(l.mode === 'tcp'
        ? { service: l.service, strategy: this.entries.get(l.service)!.config.strategy.label }
        : { routes: l.routes.map((r) => r.service) }),
    });
    return listener;
  }

  // Metrics and the access log (src/metrics/) -------------------------------

  /**
   * Creates the metrics when the config has `admin:` (at start, or on the
   * reload that adds it); they are kept after. Attaches Drover's live state
   * to them whoever created them, and registers the ZooKeeper metrics once
   * there is a connection.
   */
  private startMetrics(config: DroverConfig): void {
    if (config.admin) this.metrics ??= new Metrics();
    this.metrics?.attach({
      services: this.services,
      zookeeper: () => this.zookeeper,
      listeners: () => [...this.listeners, ...this.leaving.keys()].map((l) => l.config.name),
    });
  }

  /**
   * Opens, swaps or closes the access log for `config` (start, each reload),
   * and gives every listener its observer. A reload reopens a file even when
   * its path is unchanged, so rotation is: move the file, then SIGHUP.
   */
  private observe(config: DroverConfig): void {
    if (config.accessLog !== this.accessLog?.target || config.accessLog !== 'stdout') {
      void this.accessLog?.close();
      this.accessLog = config.accessLog ? AccessLog.open(config.accessLog, this.log) : undefined;
    }
    for (const l of [...this.listeners, ...this.leaving.keys()]) this.attach(l);
  }

  /** Gives a listener its observer, or none when there are neither metrics nor an access log (then it pays nothing). */
  private attach(l: Listener): void {
    if (!this.metrics && !this.accessLog) l.observer = undefined;
    else if (l.observer) l.observer.update(l.config.name, this.metrics, this.accessLog);
    else l.observer = new ListenerObserver(l.config.name, this.metrics, this.accessLog);
  }

  /** Counts one member list applied to a balancer: its delay since the event that caused it, and new unreadable members. */
  private countDiscovery(service: string, source: MemberSource, since: number | undefined): void {
    if (!this.metrics) return;
    const invalid = source instanceof ZooKeeperSource ? source.invalidMembers : 0;
    this.metrics.discovered(service, since === undefined ? undefined : (performance.now() - since) / 1000, invalid - (this.invalidSeen.get(source) ?? 0));
    this.invalidSeen.set(source, invalid);
  }
}

/** The live-state settings of one service under one config. */
function settings(s: ServiceConfig, config: DroverConfig): StateSettings {
  return {
    slowStart: s.slowStart,
    drainTimeout: config.drainTimeout,
    panicThreshold: s.panicThreshold,
    startDown: s.healthCheck?.startUnhealthy ?? false,
    ...(s.outlier ? { outlier: s.outlier } : {}),
  };
}

/** Whether two strategy configs build the same strategy. */
function sameStrategy(a: StrategyConfig, b: StrategyConfig): boolean {
  return a.factory === b.factory && a.label === b.label && isDeepStrictEqual(a.options, b.options);
}
