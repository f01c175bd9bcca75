import type { AddressInfo, Server } from 'node:net';
import type { ServiceBalancer } from '../balancer/balancer.js';
import type { ListenerConfig, ServiceConfig } from '../config/schema.js';
import { ListenError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ListenerObserver } from '../metrics/observer.js';

/**
 * What Drover asks of a listener of any mode. HTTP tests talk to a listener
 * through its socket, never to the engine inside, so a second HTTP engine can
 * replace this one and run the same tests.
 */
export interface Listener {
  readonly config: ListenerConfig;
  /**
   * Takes a reloaded config for the same bind and mode: routes, timeouts,
   * limits and the service apply to new connections and requests; open ones
   * keep what they started with.
   */
  reconfigure(config: ListenerConfig): void;
  /** Open client connections (keep-alive and upgraded ones included). */
  readonly connections: number;
  /** The bound address as `host:port` (the real port when bound to port 0). */
  readonly address: string;
  /** Binds; rejects with ListenError. */
  listen(): Promise<AddressInfo>;
  /** Stops accepting, lets open work finish for up to `timeoutMs`, then closes what is left. */
  drain(timeoutMs: number): Promise<void>;
  /** Closes every connection now. */
  destroyAll(): void;
  /** Metrics and access log; set by Drover only when it has either. */
  observer: ListenerObserver | undefined;
}

/**
 * A service as listeners see it. Drover replaces entries on reload, so
 * listeners look a service up per connection or request, never keep it.
 */
export interface ServiceEntry {
  readonly config: ServiceConfig;
  readonly balancer: ServiceBalancer;
}

/**
 * Binds `server` to the listener's address. A bind failure rejects with
 * ListenError; later server errors are logged, never thrown.
 */
export function listenOn(server: Server, config: ListenerConfig, log: Logger): Promise<AddressInfo> {
  const { host, port, id } = config.bind;
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(new ListenError(config.name, id, err));
    server.once('error', onError);
    server.listen({ host, port, backlog: 511 }, () => {
      server.off('error', onError);
      server.on('error', (err) => log.error('listener error', { listener: config.name, error: err }));
      resolve(server.address() as AddressInfo);
    });
  });
}
