import type { AddressInfo } from 'node:net';
import type { ListenerConfig } from '../config/schema.js';

/**
 * What Drover asks of a listener of any mode. HTTP tests talk to a listener
 * through its socket, never to the engine inside, so a second HTTP engine can
 * replace this one and run the same tests.
 */
export interface Listener {
  readonly config: ListenerConfig;
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
}
