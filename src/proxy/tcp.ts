import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Backend } from '../../strategies/index.js';
import { formatAddress } from '../config/address.js';
import type { ServiceConfig, TcpListenerConfig } from '../config/schema.js';
import { NoBackendError, UpstreamError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ConnectionObservation, ListenerObserver } from '../metrics/observer.js';
import { listenOn, type Listener, type ServiceEntry } from './listener.js';
import { proxyHeader } from './proxy-protocol.js';

/**
 * A layer-4 listener: per client connection it asks the service's balancer
 * for candidates, connects to the first that answers within the connect
 * timeout (trying up to `retries` more), then pipes bytes both ways.
 *
 * - Backpressure: `pipe` pauses the reader while the other side's buffer is
 *   full, so a slow reader slows the writer and nothing buffers without bound.
 * - Half-close: both sockets allow half-open, so a client that shuts its
 *   write side still receives the whole response.
 * - The client is paused from accept until a backend is connected, so no
 *   early bytes are lost and a PROXY header always goes first.
 * - Any error destroys both sockets; nothing here throws into the event loop.
 */
export class TcpListener implements Listener {
  private readonly server: Server;
  /** Client sockets, each with its backend socket once connected. */
  private readonly open = new Map<Socket, Socket | undefined>();
  private closed: Promise<void> | undefined;
  /** Metrics and access log; set by Drover only when it has either. */
  observer: ListenerObserver | undefined;

  constructor(
    public config: TcpListenerConfig,
    private readonly services: ReadonlyMap<string, ServiceEntry>,
    private readonly log: Logger,
  ) {
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (client) =>
      this.accept(client),
    );
    this.server.maxConnections = config.maxConnections;
    this.server.on('drop', (info) => {
      this.log.warn('connection refused: maxConnections reached', {
        listener: config.name,
        maxConnections: config.maxConnections,
        client: info?.remoteAddress,
      });
    });
  }

  reconfigure(config: TcpListenerConfig): void {
    this.config = config;
    this.server.maxConnections = config.maxConnections;
  }

  /** Open client connections. */
  get connections(): number {
    return this.open.size;
  }

  /** Binds the listener; resolves with the bound address (port 0 picks a free port). */
  listen(): Promise<AddressInfo> {
    return listenOn(this.server, this.config, this.log);
  }

  /** The bound address as `host:port`. */
  get address(): string {
    const a = this.server.address() as AddressInfo | null;
    return a ? formatAddress(a.address, a.port) : this.config.bind.id;
  }

  /**
   * Stops accepting, lets open connections finish for up to `timeoutMs`, then
   * destroys what is left. Resolves when every connection is closed.
   */
  drain(timeoutMs: number): Promise<void> {
    if (!this.closed) {
      this.closed = new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          if (this.open.size) this.log.info('drain timeout: closing connections', { listener: this.config.name, connections: this.open.size });
          this.destroyAll();
        }, timeoutMs);
        timer.unref();
        this.server.close(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.closed;
  }

  /** Destroys every open connection, both sides, now (drain timeout, a second signal). */
  destroyAll(): void {
    for (const [client, upstream] of this.open) {
      upstream?.destroy();
      client.destroy();
    }
  }

  private accept(client: Socket): void {
    this.open.set(client, undefined);
    client.on('close', () => this.open.delete(client));
    // An error before piping (reset while we connect) must not crash the process.
    client.on('error', () => client.destroy());
    const clientAddress = client.remoteAddress;
    const service = this.services.get(this.config.service)!;
    const seen = this.observer?.connection(client, service.balancer.name);
    const candidates = service.balancer.candidates(clientAddress);
    if (candidates.length === 0) {
      this.log.debug('no usable backend', { listener: this.config.name, error: new NoBackendError(service.balancer.name) });
      this.observer?.noBackend(service.balancer.name);
      client.destroy();
      return;
    }
    this.tryConnect(client, service, candidates, 0, seen);
  }

  private tryConnect(client: Socket, service: ServiceEntry, candidates: Backend[], index: number, seen: ConnectionObservation | undefined, lastError?: Error): void {
    if (client.destroyed) return;
    const backend = candidates[index];
    const { balancer, config: serviceConfig } = service;
    if (!backend) {
      const err = new UpstreamError(balancer.name, index, lastError);
      this.log.warn('all backends failed', { listener: this.config.name, service: balancer.name, error: err });
      client.destroy();
      return;
    }
    if (index > 0) this.observer?.retry(balancer.name);
    const states = balancer.states;
    const started = performance.now();
    const upstream = connect({ host: backend.host, port: backend.port, allowHalfOpen: true, noDelay: true });
    // A drain deadline on this backend ends the connection, both sides.
    const close = () => {
      upstream.destroy();
      client.destroy();
    };
    states.acquire(backend.id, close);
    const series = this.observer?.acquire(balancer.name, backend.id);
    let released = false;
    const release = () => {
      if (!released) {
        states.release(backend.id, close);
        this.observer?.release(series);
      }
      released = true;
    };
    upstream.on('close', release);
    const timer = setTimeout(
      () => upstream.destroy(Object.assign(new Error(`connect timeout after ${serviceConfig.timeouts.connect}ms`), { code: 'ETIMEDOUT' })),
      serviceConfig.timeouts.connect,
    );
    const abandon = () => {
      clearTimeout(timer);
      upstream.destroy();
    };
    client.once('close', abandon);
    const onConnectError = (err: Error) => {
      clearTimeout(timer);
      client.off('close', abandon);
      upstream.destroy();
      // A failed connect counts as the slowest possible one: otherwise a dead
      // backend, never sampled, would decay to "fastest" for response-time.
      states.sample(backend.id, serviceConfig.timeouts.connect);
      states.outcome(backend.id, false);
      this.observer?.upstreamError(balancer.name, backend.id, err);
      this.log.debug('backend connect failed', { listener: this.config.name, backend: backend.id, error: err });
      this.tryConnect(client, service, candidates, index + 1, seen, err);
    };
    upstream.once('error', onConnectError);
    upstream.once('connect', () => {
      clearTimeout(timer);
      upstream.off('error', onConnectError);
      client.off('close', abandon);
      states.sample(backend.id, performance.now() - started);
      states.outcome(backend.id, true);
      seen?.connected(backend.id, series);
      this.pipe(client, upstream, backend, serviceConfig);
    });
  }

  private pipe(client: Socket, upstream: Socket, backend: Backend, serviceConfig: ServiceConfig): void {
    if (client.destroyed) {
      upstream.destroy();
      return;
    }
    if (this.open.has(client)) this.open.set(client, upstream);
    const fail = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', fail);
    upstream.on('error', fail);
    if (this.observer) upstream.on('error', (err) => this.observer?.upstreamError(serviceConfig.name, backend.id, err));
    // A side that closed because of an error takes the other with it; a clean
    // close after both FINs needs nothing, and must not cut buffered bytes.
    client.on('close', (hadError) => hadError && upstream.destroy());
    upstream.on('close', (hadError) => hadError && client.destroy());
    const idle = serviceConfig.timeouts.idle;
    const onIdle = () => {
      this.log.debug('idle timeout', { listener: this.config.name, backend: backend.id });
      fail();
    };
    client.setTimeout(idle, onIdle);
    upstream.setTimeout(idle, onIdle);
    if (this.config.proxyProtocol !== 'off') {
      upstream.write(
        proxyHeader(this.config.proxyProtocol, {
          sourceAddress: client.remoteAddress,
          sourcePort: client.remotePort,
          destinationAddress: client.localAddress,
          destinationPort: client.localPort,
        }),
      );
    }
    client.pipe(upstream);
    upstream.pipe(client);
    client.resume();
  }
}
