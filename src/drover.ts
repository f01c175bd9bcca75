import { ServiceBalancer, type BalancerClock } from './balancer/balancer.js';
import type { DroverConfig } from './config/schema.js';
import type { MemberSource } from './discovery/source.js';
import { StaticSource } from './discovery/static.js';
import { ZooKeeperConnection } from './discovery/zk.js';
import { ZooKeeperSource } from './discovery/zookeeper.js';
import { Logger } from './log.js';
import { HttpListener, type HttpService } from './proxy/http.js';
import type { Listener } from './proxy/listener.js';
import { TcpListener } from './proxy/tcp.js';

/** Options for starting Drover from a validated config. */
export interface DroverOptions {
  /** Defaults to a JSON-lines logger on stdout at the config's `logLevel`. */
  log?: Logger;
  /** Injected time and chance for every balancer (tests). */
  clock?: BalancerClock;
}

/**
 * A running Drover: one balancer per service, fed by its member source, and
 * one listener per `listeners[]` entry. Discovery and balancing do not know
 * about listeners, so they can later run in a primary process and feed
 * workers.
 */
export class Drover {
  readonly services = new Map<string, ServiceBalancer>();
  readonly listeners: Listener[] = [];
  private readonly sources: MemberSource[] = [];
  readonly log: Logger;
  /** The shared ZooKeeper connection, when any service uses ZooKeeper. */
  readonly zookeeper: ZooKeeperConnection | undefined;

  private constructor(
    readonly config: DroverConfig,
    options: DroverOptions,
  ) {
    this.log = options.log ?? new Logger(config.logLevel);
    const usesZk = [...config.services.values()].some((s) => s.zookeeper);
    this.zookeeper = usesZk && config.zookeeper ? new ZooKeeperConnection(config.zookeeper, this.log) : undefined;
    for (const s of config.services.values()) {
      const balancer = new ServiceBalancer(s.name, s.strategy, s.retries, options.clock);
      balancer.onStrategyError = (error) => this.log.error('strategy failed', { service: s.name, error });
      this.services.set(s.name, balancer);
    }
  }

  /**
   * Starts discovery, then binds every listener. If one cannot bind, the ones
   * already bound are closed and the ListenError is thrown: a half-started
   * proxy would hide the problem.
   */
  static async start(config: DroverConfig, options: DroverOptions = {}): Promise<Drover> {
    const d = new Drover(config, options);
    for (const s of config.services.values()) {
      const balancer = d.services.get(s.name)!;
      const source: MemberSource =
        s.zookeeper && d.zookeeper ? new ZooKeeperSource(d.zookeeper, s.zookeeper, d.log, s.name) : new StaticSource(s.static);
      d.sources.push(source);
      source.start((members) => {
        const first = !balancer.ready;
        try {
          if (balancer.update(members)) d.log.info('service members', { service: s.name, members: balancer.backends.length });
        } catch (err) {
          d.log.error('strategy rebuild failed; keeping the previous members', { service: s.name, error: err });
        }
        if (first) d.log.info('service ready', { service: s.name, members: balancer.backends.length });
        if (first && balancer.backends.length === 0) d.log.warn('service has no members: its clients will be refused', { service: s.name });
        if (first && d.ready) d.log.info('all services ready');
      });
    }
    const httpServices = new Map<string, HttpService>();
    for (const s of config.services.values()) httpServices.set(s.name, { config: s, balancer: d.services.get(s.name)! });
    for (const l of config.listeners) {
      const listener: Listener =
        l.mode === 'tcp'
          ? new TcpListener(l, config.services.get(l.service)!, d.services.get(l.service)!, d.log)
          : new HttpListener(l, httpServices, d.log);
      try {
        await listener.listen();
      } catch (err) {
        await Promise.all(d.listeners.map((x) => x.drain(0)));
        await Promise.all(d.sources.map((x) => x.stop()));
        d.zookeeper?.close();
        throw err;
      }
      d.listeners.push(listener);
      d.log.info('listener started', {
        listener: l.name,
        mode: l.mode,
        bind: listener.address,
        ...(l.mode === 'tcp'
          ? { service: l.service, strategy: config.services.get(l.service)!.strategy.label }
          : { routes: l.routes.map((r) => r.service) }),
      });
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

  /** The listener named `name` (tests and the admin API). */
  listener(name: string): Listener | undefined {
    return this.listeners.find((l) => l.config.name === name);
  }

  /**
   * Graceful stop: stop accepting everywhere, let open connections finish for
   * up to `drainTimeout` (default: the config's), then close what is left.
   */
  async stop(drainTimeout = this.config.drainTimeout): Promise<void> {
    const open = this.listeners.reduce((n, l) => n + l.connections, 0);
    // drain() stops accepting synchronously: once "stopping" is logged, new clients are refused.
    const drained = Promise.all(this.listeners.map((l) => l.drain(drainTimeout)));
    this.log.info('stopping', { connections: open, drainTimeout });
    await drained;
    await Promise.all(this.sources.map((s) => s.stop()));
    this.zookeeper?.close();
    this.log.info('stopped');
  }

  /** Closes every connection now, for a second signal during a drain. */
  destroyConnections(): void {
    for (const l of this.listeners) l.destroyAll();
  }
}
