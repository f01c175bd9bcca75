import type { Backend } from '../../../../strategies/index.js';
import type { HttpListenerConfig } from '../../../config/schema.js';
import type { Logger } from '../../../log.js';
import type { ListenerObserver } from '../../../metrics/observer.js';
import type { ServiceEntry } from '../../listener.js';
import type { FailureLog } from '../delivery.js';
import type { TrustedProxies } from '../headers.js';
import type { ClientConnection } from './client.js';
import type { ParserPool } from './parser.js';
import type { Pool, UpstreamConnection } from './upstream.js';

/**
 * What the parts of the native engine need from one another: the listener
 * (NativeHttpListener) hosts client connections and upstream pools; a client
 * connection (ClientConnection) carries one exchange at a time.
 */

/** What an exchange needs from its listener. */
export interface ExchangeHost {
  readonly config: HttpListenerConfig;
  readonly services: ReadonlyMap<string, ServiceEntry>;
  readonly log: Logger;
  readonly observer: ListenerObserver | undefined;
  readonly trust: TrustedProxies;
  readonly failures: FailureLog;
  /** True once the listener drains: every answer closes its connection. */
  readonly draining: boolean;
  pool(backend: Backend): Pool;
  now(): number;
}

/** What an exchange needs from its client connection. */
export interface ExchangeClient {
  readonly host: ExchangeHost;
  readonly peer: string | undefined;
  /** When the current request's first byte arrived. */
  readonly requestStarted: number;
  /** Queues bytes for the client; they are written together at flush(). */
  push(piece: string | Buffer): void;
  /** How many pieces are queued (a mark to take back a response not yet flushed). */
  readonly queued: number;
  /** Drops pieces queued after `mark`. */
  unpush(mark: number): void;
  flush(): void;
  /** Stops (true) or resumes (false) reading the client for a reason bit. */
  hold(bit: number, on: boolean): void;
  /** The exchange is over; `close` ends the connection after what was pushed. */
  exchangeDone(close: boolean): void;
  /** Switches the connection to a raw tunnel with `up` (an accepted upgrade). */
  tunnel(up: UpstreamConnection): void;
  destroy(): void;
}


/** A client connection needs these of its listener besides what exchanges need. */
export interface ClientHost extends ExchangeHost {
  readonly requestParsers: ParserPool;
  readonly methods: readonly string[];
  /** The connection closed: forget it. */
  closed(conn: ClientConnection): void;
  /** More connections are open than parsers are pooled: idle ones give theirs back at once. */
  readonly crowded: boolean;
}


/** What upstream connections need from their listener. */
export interface UpstreamHost {
  readonly responseParsers: ParserPool;
  /** A draining listener keeps no idle connections. */
  readonly draining: boolean;
  /** A pool slot freed: requests queued on any service may take it (pools are per backend address, shared by services). */
  slotFreed(): void;
  now(): number;
}

/**
 * Why a client connection is not being read, as bits: the body held for a
 * retry is full, the upstream socket is full, a pipelined request waits, an
 * upgrade waits for the backend's yes or no, the client is not reading what
 * Drover writes. It reads while no bit is set.
 */
export const HOLD_BODY = 1;
export const HOLD_UPSTREAM = 2;
export const HOLD_PIPELINE = 4;
export const HOLD_UPGRADE = 8;
export const HOLD_DOWNSTREAM = 16;
