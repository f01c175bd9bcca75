import { EventEmitter } from 'node:events';
import zookeeper from 'node-zookeeper-client';
import type { Logger } from '../log.js';

/** How to reach ZooKeeper: the `zookeeper:` config block. Durations in ms. */
export interface ZooKeeperOptions {
  /** `host:port[,host:port...][/chroot]`. */
  readonly connect: string;
  /** Requested session timeout; the server clamps it to its own bounds. Default 10 s. */
  readonly sessionTimeout: number;
  readonly auth: readonly { readonly scheme: string; readonly credentials: string }[];
}

/** A znode's data and version. */
export interface ZnodeData {
  readonly data: Buffer | null;
  readonly version: number;
}

/** Watch callback: ZooKeeper watches fire once; the caller re-reads to re-arm. */
export type Watcher = () => void;

/** ZooKeeper error codes Drover reacts to (node-zookeeper-client's Exception codes). */
export const ZK = {
  NO_NODE: zookeeper.Exception.NO_NODE,
  NODE_EXISTS: zookeeper.Exception.NODE_EXISTS,
  BAD_VERSION: zookeeper.Exception.BAD_VERSION,
  CONNECTION_LOSS: zookeeper.Exception.CONNECTION_LOSS,
  SESSION_EXPIRED: zookeeper.Exception.SESSION_EXPIRED,
  NOT_EMPTY: zookeeper.Exception.NOT_EMPTY,
  NO_AUTH: zookeeper.Exception.NO_AUTH,
  AUTH_FAILED: zookeeper.Exception.AUTH_FAILED,
  INVALID_ACL: zookeeper.Exception.INVALID_ACL,
} as const;

/** Thrown by operations on a connection that was closed on purpose. */
export class ConnectionClosedError extends Error {
  readonly code = 'DROVER_ZOOKEEPER_CLOSED';
  constructor() {
    super('the ZooKeeper connection is closed');
  }
}

/** The ZooKeeper error code of `err`, if it is a ZooKeeper exception. */
export function zkCode(err: unknown): number | undefined {
  const code = (err as { getCode?: () => number } | null)?.getCode?.();
  return typeof code === 'number' ? code : undefined;
}

/** Create modes, by name. */
export const CreateMode = zookeeper.CreateMode;

/**
 * A ZooKeeper connection that outlives sessions. node-zookeeper-client
 * restores watches after a reconnect within a session, but a session that
 * expires is dead for good: this wrapper then opens a new client (new
 * session) and emits `session`, on which watchers re-list and registrations
 * re-create their ephemeral nodes.
 *
 * Events: `session` (a session is established: the first, or one after an
 * expiry), `connected`, `disconnected`, `expired`.
 * Operations wait for a live connection before they are sent: the client
 * re-sends credentials on connecting, and an operation queued before that
 * would run unauthenticated. They fail with CONNECTION_LOSS if the
 * connection drops while they are in flight, and with ConnectionClosedError
 * after close().
 */
export class ZooKeeperConnection extends EventEmitter {
  private client: zookeeper.Client;
  private closed = false;
  /** Reopens a client that stays unconnected too long (see open()). */
  private watchdog: NodeJS.Timeout | undefined;
  private connectedNow = false;
  /** Counts session expirations (for the metrics issue). */
  expirations = 0;

  constructor(
    readonly options: ZooKeeperOptions,
    private readonly log?: Logger,
  ) {
    super();
    this.setMaxListeners(0);
    this.client = this.open();
  }

  /** Whether the client has a live connection to a server right now. */
  get connected(): boolean {
    return this.connectedNow;
  }

  /** The current session's id and password (tests expire it on purpose). */
  session(): { id: Buffer; password: Buffer } {
    return { id: this.client.getSessionId(), password: this.client.getSessionPassword() };
  }

  /**
   * node-zookeeper-client waits forever for a server's answer to its connect
   * request, and a server that is still loading its data can accept the
   * connection and never answer (seen here in about 1 of 15 restarts). A
   * client unconnected for longer than max(sessionTimeout, 10 s) is replaced
   * by a new one: a new session, on which watchers re-list and registrations
   * re-create their nodes.
   */
  private arm(): void {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      if (this.closed || this.connectedNow) return;
      this.log?.warn('zookeeper connection stuck: opening a new client (a new session)', { connect: this.options.connect });
      const old = this.client;
      old.close();
      // close() queues a request on a socket that may never answer: cut it.
      (old as unknown as { connectionManager?: { socket?: { destroy(): void } } }).connectionManager?.socket?.destroy();
      this.client = this.open();
      // The old session is as good as expired: its watches and ephemeral
      // nodes are gone for us. Listeners treat this exactly like an expiry.
      this.expirations++;
      this.emit('expired');
    }, Math.max(this.options.sessionTimeout, 10_000));
    this.watchdog.unref();
  }

  private open(): zookeeper.Client {
    this.arm();
    const client = zookeeper.createClient(this.options.connect, {
      sessionTimeout: this.options.sessionTimeout,
      spinDelay: 200,
      // The library's own retry re-sends a create after a connection loss,
      // which can duplicate a sequential node; callers retry what is safe.
      retries: 0,
    });
    for (const a of this.options.auth) client.addAuthInfo(a.scheme, Buffer.from(a.credentials));
    client.on('state', (state: zookeeper.State) => {
      if (client !== this.client || this.closed) return;
      const S = zookeeper.State;
      if (state === S.SYNC_CONNECTED || state === S.CONNECTED_READ_ONLY) {
        const first = !this.everConnected.has(client);
        this.everConnected.add(client);
        this.connectedNow = true;
        clearTimeout(this.watchdog);
        this.log?.info('zookeeper connected', { connect: this.options.connect });
        this.emit('connected');
        if (first) this.emit('session');
      } else if (state === S.DISCONNECTED) {
        this.connectedNow = false;
        this.arm();
        this.log?.warn('zookeeper disconnected: reconnecting', { connect: this.options.connect });
        this.emit('disconnected');
      } else if (state === S.EXPIRED) {
        this.connectedNow = false;
        this.expirations++;
        this.log?.warn('zookeeper session expired: opening a new session', { connect: this.options.connect });
        client.close();
        this.client = this.open();
        this.emit('expired');
      } else if (state === S.AUTH_FAILED) {
        this.log?.error('zookeeper authentication failed', { connect: this.options.connect });
        this.emit('authFailed');
      }
    });
    client.connect();
    return client;
  }

  private readonly everConnected = new WeakSet<zookeeper.Client>();

  /** Resolves once connected (at once when connected); rejects after close(). */
  private live(): Promise<zookeeper.Client> {
    if (this.closed) return Promise.reject(new ConnectionClosedError());
    if (this.connectedNow) return Promise.resolve(this.client);
    return new Promise((resolve, reject) => {
      const onConnected = () => {
        this.off('closed', onClosed);
        resolve(this.client);
      };
      const onClosed = () => {
        this.off('connected', onConnected);
        reject(new ConnectionClosedError());
      };
      this.once('connected', onConnected);
      this.once('closed', onClosed);
    });
  }

  /** Children of `path`; `watch` fires once on the next change of the list. */
  async getChildren(path: string, watch?: Watcher): Promise<string[]> {
    const client = await this.live();
    return new Promise((resolve, reject) => {
      const cb = (err: unknown, children: string[]) => (err ? reject(err) : resolve(children));
      if (watch) client.getChildren(path, () => watch(), cb);
      else client.getChildren(path, cb);
    });
  }

  /** Data and version of `path`; `watch` fires once on its next change or deletion. */
  async getData(path: string, watch?: Watcher): Promise<ZnodeData> {
    const client = await this.live();
    return new Promise((resolve, reject) => {
      const cb = (err: unknown, data: Buffer, stat: zookeeper.Stat) => (err ? reject(err) : resolve({ data: data ?? null, version: stat.version }));
      if (watch) client.getData(path, () => watch(), cb);
      else client.getData(path, cb);
    });
  }

  /** Whether `path` exists; `watch` fires once when it is created, changed or deleted. */
  async exists(path: string, watch?: Watcher): Promise<boolean> {
    const client = await this.live();
    return new Promise((resolve, reject) => {
      const cb = (err: unknown, stat: zookeeper.Stat | null) => (err ? reject(err) : resolve(Boolean(stat)));
      if (watch) client.exists(path, () => watch(), cb);
      else client.exists(path, cb);
    });
  }

  /** Creates `path` (its parents must exist); resolves with the created path (sequential names differ). */
  async create(path: string, data: Buffer | null, mode: number): Promise<string> {
    const client = await this.live();
    return new Promise((resolve, reject) => client.create(path, data ?? Buffer.alloc(0), mode, (err, created) => (err ? reject(err) : resolve(created))));
  }

  /**
   * Creates the persistent parents of `path` and `path` itself when missing.
   * An existing path is left alone: mkdirp would fail with NO_AUTH under a
   * parent this client may read but not write.
   */
  async mkdirp(path: string): Promise<void> {
    if (await this.exists(path)) return;
    const client = await this.live();
    return new Promise((resolve, reject) => client.mkdirp(path, (err) => (err ? reject(err) : resolve())));
  }

  /** Replaces the data of `path` (any version when `version` is -1). */
  async setData(path: string, data: Buffer, version = -1): Promise<void> {
    const client = await this.live();
    return new Promise((resolve, reject) => client.setData(path, data, version, (err) => (err ? reject(err) : resolve())));
  }

  /** Deletes `path` (any version when `version` is -1). */
  async remove(path: string, version = -1): Promise<void> {
    const client = await this.live();
    return new Promise((resolve, reject) => client.remove(path, version, (err) => (err ? reject(err) : resolve())));
  }

  /** Closes the session: its ephemeral nodes go away at once. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.watchdog);
    this.connectedNow = false;
    const client = this.client;
    try {
      client.close();
    } catch {
      // node-zookeeper-client throws when closed before its first socket
      // exists (it opens it on the next tick). The close request is queued
      // by then; cut the socket once it exists so nothing reconnects.
      setImmediate(() => {
        const manager = (client as unknown as { connectionManager?: { socket?: { destroy(): void }; connectTimeoutHandler?: NodeJS.Timeout } }).connectionManager;
        clearTimeout(manager?.connectTimeoutHandler);
        manager?.socket?.destroy();
      });
    }
    this.emit('closed');
  }
}
