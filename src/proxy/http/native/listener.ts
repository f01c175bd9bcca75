import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Backend } from '../../../../strategies/index.js';
import { formatAddress } from '../../../config/address.js';
import type { HttpListenerConfig } from '../../../config/schema.js';
import type { Logger } from '../../../log.js';
import type { ListenerObserver } from '../../../metrics/observer.js';
import { listenOn, type Listener, type ServiceEntry } from '../../listener.js';
import { FailureLog } from '../delivery.js';
import { TrustedProxies } from '../headers.js';
import { ClientConnection } from './client.js';
import type { ClientHost, UpstreamHost } from './contracts.js';
import { ParserPool, type ParserBinding } from './parser.js';
import { Pool, UpstreamConnection } from './upstream.js';

/** Request parsers kept for reuse; past this many open connections, idle ones give theirs back at once. */
const PARSER_POOL = 1000;

/**
 * An HTTP listener on the native engine: raw `net` sockets on both sides,
 * Node's own llhttp parser for requests and responses, a keep-alive pool per
 * backend, and one timer per listener that sweeps every deadline (headers,
 * whole request, idle, connect, response, pooled keep-alive) instead of a
 * timer per request.
 */
export class NativeHttpListener implements Listener, ClientHost, UpstreamHost {
  readonly engine = 'native';
  private readonly server: Server;
  private readonly clients = new Set<ClientConnection>();
  private readonly pools = new Map<string, Pool>();
  readonly requestParsers: ParserPool;
  readonly responseParsers: ParserPool;
  readonly methods: readonly string[];
  readonly failures: FailureLog;
  trust: TrustedProxies;
  draining = false;
  private drained: Promise<void> | undefined;
  private sweeper: NodeJS.Timeout | undefined;
  observer: ListenerObserver | undefined;

  constructor(
    public config: HttpListenerConfig,
    readonly services: ReadonlyMap<string, ServiceEntry>,
    readonly log: Logger,
    parser: ParserBinding,
  ) {
    this.requestParsers = new ParserPool(parser, parser.REQUEST, ClientConnection.handlers, PARSER_POOL);
    this.responseParsers = new ParserPool(parser, parser.RESPONSE, UpstreamConnection.handlers);
    this.methods = parser.methods;
    this.failures = new FailureLog(log);
    this.trust = new TrustedProxies(config.trustForwardedFor);
    this.server = createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: false });
    this.server.maxConnections = config.maxConnections;
    this.server.on('connection', (socket: Socket) => {
      if (this.draining) return void socket.destroy();
      this.clients.add(new ClientConnection(socket, this));
    });
    this.server.on('drop', () => this.log.warn('connection refused: maxConnections reached', { listener: this.config.name }));
  }

  get connections(): number {
    return this.clients.size;
  }

  get crowded(): boolean {
    return this.clients.size > PARSER_POOL;
  }

  get address(): string {
    const a = this.server.address() as AddressInfo | null;
    return a ? formatAddress(a.address, a.port) : this.config.bind.id;
  }

  reconfigure(config: HttpListenerConfig): void {
    this.config = config;
    this.trust = new TrustedProxies(config.trustForwardedFor);
    this.server.maxConnections = config.maxConnections;
    this.startSweeper();
  }

  async listen(): Promise<AddressInfo> {
    const address = await listenOn(this.server, this.config, this.log);
    this.startSweeper();
    return address;
  }

  drain(timeoutMs: number): Promise<void> {
    this.drained ??= new Promise<void>((resolve) => {
      this.draining = true;
      const timer = setTimeout(() => this.destroyAll(), timeoutMs);
      timer.unref();
      const done = () => {
        clearTimeout(timer);
        clearInterval(this.sweeper);
        for (const pool of this.pools.values()) pool.closeIdle();
        resolve();
      };
      let waiting = 2;
      const one = () => --waiting === 0 && done();
      this.server.close(one);
      this.onIdle = one;
      for (const c of [...this.clients]) c.drain();
      if (this.clients.size === 0) this.onIdle();
    });
    return this.drained;
  }

  /** Called once when the last client connection of a draining listener closes. */
  private onIdle: (() => void) | undefined;

  destroyAll(): void {
    for (const c of [...this.clients]) c.destroy();
    for (const pool of this.pools.values()) pool.closeIdle();
  }

  closed(conn: ClientConnection): void {
    this.clients.delete(conn);
    if (this.draining && this.clients.size === 0 && this.onIdle) {
      const idle = this.onIdle;
      this.onIdle = undefined;
      idle();
    }
  }

  /** The keep-alive pool of `backend`'s address. */
  pool(backend: Backend): Pool {
    let pool = this.pools.get(backend.id);
    if (!pool) {
      pool = new Pool(backend, this);
      this.pools.set(backend.id, pool);
    }
    return pool;
  }

  now(): number {
    return performance.now();
  }

  slotFreed(): void {
    for (const s of this.services.values()) if (s.balancer.queue.length > 0) s.balancer.queue.wake();
  }

  /** One timer for every deadline of this listener: a quarter of the shortest one, between 20 ms and 250 ms. */
  private startSweeper(): void {
    clearInterval(this.sweeper);
    const t = this.config.timeouts;
    const shortest = Math.min(t.headers, t.idle, t.response, t.request, t.connect ?? Infinity, ...[...this.services.values()].map((s) => Math.min(s.config.timeouts.connect, s.config.timeouts.keepAlive)));
    const tick = Math.min(250, Math.max(20, Math.floor(shortest / 4)));
    this.sweeper = setInterval(() => this.sweep(), tick);
    this.sweeper.unref();
  }

  private sweep(): void {
    const now = this.now();
    for (const c of this.clients) c.check(now);
    let live: Set<string> | undefined;
    for (const [id, pool] of this.pools) {
      if (!pool.sweep(now)) continue;
      live ??= new Set([...this.services.values()].flatMap((s) => s.balancer.backends.map((b) => b.id)));
      if (!live.has(id)) this.pools.delete(id);
    }
  }
}
