/**
 * Registration: keeping one ephemeral znode for a service instance, the other
 * side of discovery. Used by `drover register` and by Node services
 * (`import { register } from 'drover'`).
 *
 * The node is `<path>/member_<random id>_NNNNNNNNNN`, EPHEMERAL_SEQUENTIAL.
 * The random id makes the create "protected", as in Apache Curator: a create
 * that fails with connection loss may still have happened on the server, so
 * before creating again the children are listed and a node carrying the id is
 * adopted instead of leaving a duplicate behind. (Our ZooKeeper client also
 * re-sends a create once by itself after a connection loss, so every create is
 * followed by a sweep that removes other nodes with the same id.)
 *
 * One loop does all ZooKeeper work, one operation at a time, reconciling what
 * the caller wants (registered or paused, the latest data) with what exists:
 * no two operations of one registration ever race each other, and every
 * request (pause, resume, setData, close, a session expiry) just changes the
 * wanted state and wakes the loop.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import zookeeper from 'node-zookeeper-client';
import { formatAddress, parseAddress, type Address } from '../config/address.js';
import { zkPathProblem } from '../config/zookeeper.js';
import { CreateMode, ZK, ZooKeeperConnection, zkCode } from '../discovery/zk.js';
import { DroverError } from '../errors.js';
import type { Logger } from '../log.js';

/** The data formats a registration can write; discovery reads all of them (`format: auto`). */
export const REGISTRATION_FORMATS = ['drover', 'curator', 'plain'] as const;

/** One of {@link REGISTRATION_FORMATS}. */
export type RegistrationFormat = (typeof REGISTRATION_FORMATS)[number];

/** How to reach ZooKeeper when register() should open (and own) its own connection. Durations in ms. */
export interface RegisterZooKeeperOptions {
  /** `host:port[,host:port...][/chroot]`. */
  readonly connect: string;
  /** Requested session timeout in ms; default 10000. */
  readonly sessionTimeout?: number;
  readonly auth?: readonly { readonly scheme: string; readonly credentials: string }[];
}

export interface RegisterOptions {
  /** A connection to share (left open by close()), or how to open one (closed by close()). */
  readonly zookeeper: ZooKeeperConnection | RegisterZooKeeperOptions;
  /** The service's parent znode, e.g. `/services/web`; created (persistent) when missing. */
  readonly path: string;
  /** This instance's `host:port`. */
  readonly address: string;
  /** Drover format only: whole number 0-1000, default 1. */
  readonly weight?: number;
  /** Default `drover`. */
  readonly format?: RegistrationFormat;
  /** Drover format only. */
  readonly zone?: string;
  /** Drover format only. */
  readonly meta?: Readonly<Record<string, string>>;
  /** Curator format only: the service name; default the last segment of `path`. */
  readonly name?: string;
  readonly log?: Logger;
  /**
   * Start paused: connect and make sure the parent exists, but create no node
   * until resume(). (`drover register` uses it when the first check fails.)
   */
  readonly paused?: boolean;
  /**
   * Aborts register() itself: it then rejects with the signal's reason and
   * leaves nothing behind. Ignored once register() has resolved.
   */
  readonly signal?: AbortSignal;
}

/**
 * DROVER_REGISTER_FAILED: a registration cannot be made as asked, and
 * retrying will not help (a bad address or path, an ACL that refuses us).
 * Connection problems are never this error: they are retried.
 */
export class RegisterError extends DroverError {
  declare readonly code: 'DROVER_REGISTER_FAILED';

  constructor(message: string, options?: { cause?: unknown }) {
    super('DROVER_REGISTER_FAILED', message, options);
  }
}

/** Retry delays for connection loss: 100 ms doubling to 5 s. */
const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5000;
const DEFAULT_SESSION_TIMEOUT_MS = 10_000;
const MAX_WEIGHT = 1000;

/** ZooKeeper errors that retrying cannot fix. */
const UNRECOVERABLE = new Set<number>([
  zookeeper.Exception.NO_AUTH,
  zookeeper.Exception.AUTH_FAILED,
  zookeeper.Exception.INVALID_ACL,
  zookeeper.Exception.BAD_ARGUMENTS,
  zookeeper.Exception.NO_CHILDREN_FOR_EPHEMERALS,
  zookeeper.Exception.UNIMPLEMENTED,
  zookeeper.Exception.MARSHALLING_ERROR,
]);

const HINTS = new Map<number, string>([
  [zookeeper.Exception.NO_AUTH, "the znode's ACL does not allow this client (check the zookeeper auth)"],
  [zookeeper.Exception.AUTH_FAILED, 'ZooKeeper refused the credentials'],
  [zookeeper.Exception.NO_CHILDREN_FOR_EPHEMERALS, 'the parent znode is ephemeral and cannot have children'],
]);

/** Keys that carry the instance's identity; setData() may not change them. */
const RESERVED: Record<RegistrationFormat, readonly string[]> = {
  drover: ['host', 'port'],
  curator: ['name', 'id', 'address', 'port'],
  plain: [],
};

type Waiter = {
  /** true: done; false: keep waiting; an Error: give up with it. */
  readonly check: () => boolean | Error;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
};

/**
 * Registers `options.address` under `options.path` and keeps it registered:
 * resolves once the node exists (once the parent exists, when `paused`).
 * Rejects with RegisterError for problems retrying cannot fix; waits through
 * connection problems (while ZooKeeper is unreachable it keeps waiting).
 */
export async function register(options: RegisterOptions): Promise<Registration> {
  const registration = new Registration(options);
  try {
    await registration.started;
  } catch (err) {
    await registration.close();
    throw err;
  }
  return registration;
}

/**
 * The handle register() returns. Events: `registered` (path) when a node is
 * created or adopted, `deregistered` (path) when it is removed or lost with
 * an expired session, `error` (RegisterError) on a failure retrying cannot
 * fix (emitted only when someone listens; always logged).
 */
export class Registration extends EventEmitter {
  readonly format: RegistrationFormat;
  readonly address: Address;
  /** The parent znode. */
  readonly parent: string;
  /** The ZooKeeper connection in use (opened by register() unless one was passed in). */
  readonly connection: ZooKeeperConnection;
  /** @internal Settles when register() may resolve. */
  readonly started: Promise<void>;

  private readonly owned: boolean;
  private readonly log: Logger | undefined;
  /** The JSON object the node holds (JSON formats). */
  private fields: Record<string, unknown>;
  /** Bumped on every data change; `written` is the version the current node holds. */
  private dataVersion = 0;
  private written = -1;

  private current: string | undefined;
  /** Nodes with this id may exist in session `gen` besides `current` (a create that may have happened twice). */
  private cleanup: { readonly id: string; readonly gen: number } | undefined;
  private verify = false;
  private parentReady = false;
  /** Session generation: bumped on expiry, so results of a dead session are ignored. */
  private gen = 0;
  private paused: boolean;
  private closed = false;
  private stopped = false;

  private running = false;
  private dirty = false;
  private wake: (() => void) | undefined;
  private backoff = BACKOFF_MIN_MS;
  private readonly waiters = new Set<Waiter>();
  private closing: Promise<void> | undefined;

  private readonly onExpired = () => {
    this.gen++;
    const lost = this.current;
    this.current = undefined;
    this.cleanup = undefined;
    this.verify = false;
    if (lost) {
      this.log?.warn('zookeeper session expired: the registration node went with it; re-creating it', { path: lost, address: this.address.id });
      this.emit('deregistered', lost);
    }
    this.backoff = BACKOFF_MIN_MS;
    this.kick();
  };

  private readonly onSession = () => {
    this.backoff = BACKOFF_MIN_MS;
    this.kick();
  };

  /** @internal Use register(). */
  constructor(options: RegisterOptions) {
    super();
    this.log = options.log;
    this.format = options.format ?? 'drover';
    this.paused = options.paused ?? false;
    // Validate everything before touching the network: these errors are the caller's.
    if (!(REGISTRATION_FORMATS as readonly string[]).includes(this.format)) {
      throw new RegisterError(`unknown format "${String(this.format)}" (expected ${REGISTRATION_FORMATS.join(', ')})`);
    }
    const address = parseAddress(String(options.address ?? ''));
    if (typeof address === 'string') throw new RegisterError(`bad address: ${address}`);
    this.address = address;
    const problem = typeof options.path === 'string' ? zkPathProblem(options.path) : 'must be a string';
    if (problem || options.path === '/') throw new RegisterError(`bad path "${String(options.path)}": ${problem ?? 'must name the service znode, not /'}`);
    this.parent = options.path;
    this.fields = this.initialFields(options);

    const zk = options.zookeeper;
    if (isConnection(zk)) {
      this.connection = zk;
      this.owned = false;
    } else {
      if (!zk || typeof zk.connect !== 'string' || !zk.connect) throw new RegisterError('zookeeper.connect is required (host:port[,host:port...][/chroot])');
      if (zk.sessionTimeout !== undefined && !(Number.isFinite(zk.sessionTimeout) && zk.sessionTimeout > 0)) {
        throw new RegisterError(`zookeeper.sessionTimeout must be a positive number of milliseconds, got ${String(zk.sessionTimeout)}`);
      }
      try {
        this.connection = new ZooKeeperConnection(
          { connect: zk.connect, sessionTimeout: zk.sessionTimeout ?? DEFAULT_SESSION_TIMEOUT_MS, auth: zk.auth ?? [] },
          this.log,
        );
      } catch (err) {
        throw new RegisterError(`bad zookeeper.connect "${zk.connect}": ${(err as Error).message}`, { cause: err });
      }
      this.owned = true;
    }
    this.connection.on('expired', this.onExpired);
    this.connection.on('session', this.onSession);

    const signal = options.signal;
    this.started = new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = () => {
        this.waiters.delete(waiter);
        reject(signal!.reason);
      };
      const waiter: Waiter = {
        check: () => (this.closed ? new RegisterError('closed before the registration was made') : this.paused ? this.parentReady : this.current !== undefined),
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.add(waiter);
    });
    // register() observes it; keep an unobserved rejection from being reported twice.
    this.started.catch(() => {});
    this.kick();
  }

  /** The registration's znode path, or undefined while there is none (paused, closed, being re-created). */
  get path(): string | undefined {
    return this.current;
  }

  /** Whether the registration is paused (no node, by request). */
  get isPaused(): boolean {
    return this.paused;
  }

  /** The data the node holds (or will hold), as written: JSON text or `host:port`. */
  get data(): string {
    return this.encode().toString('utf8');
  }

  /** Sets the weight (Drover format); resolves once the node holds it (at once while paused). */
  async setWeight(weight: number): Promise<void> {
    this.assertOpen();
    if (this.format !== 'drover') throw this.noFields('setWeight()', 'a weight');
    this.fields = { ...this.fields, weight: checkWeight(weight) };
    await this.changed();
  }

  /**
   * Merges `fields` into the node's JSON (e.g. `{ drain: true }`, `{ load: 0.5 }`);
   * a field set to undefined is removed. Resolves once the node holds it (at once while paused).
   */
  async setData(fields: Readonly<Record<string, unknown>>): Promise<void> {
    this.assertOpen();
    if (this.format === 'plain') throw this.noFields('setData()', 'extra fields');
    if (typeof fields !== 'object' || fields === null || Array.isArray(fields)) throw new RegisterError('setData() takes an object of fields');
    const next = { ...this.fields };
    for (const [key, value] of Object.entries(fields)) {
      if (RESERVED[this.format].includes(key)) throw new RegisterError(`setData(): "${key}" identifies the instance and cannot be changed`);
      if (key === 'weight' && this.format === 'drover' && value !== undefined) checkWeight(value);
      if (value === undefined) delete next[key];
      else next[key] = value;
    }
    try {
      JSON.stringify(next);
    } catch (err) {
      throw new RegisterError(`setData(): fields must be JSON values: ${(err as Error).message}`, { cause: err });
    }
    this.fields = next;
    await this.changed();
  }

  /** Removes the node but stays connected (a failing health check); resolves once it is gone. */
  async pause(): Promise<void> {
    this.assertOpen();
    this.paused = true;
    this.kick();
    await this.until(() => !this.paused || (this.current === undefined && this.cleanup === undefined));
  }

  /** Creates the node again after pause(); resolves once it exists. */
  async resume(): Promise<void> {
    this.assertOpen();
    this.paused = false;
    this.kick();
    await this.until(() => this.paused || this.closed || this.current !== undefined);
  }

  /**
   * Removes the node, then closes the connection if register() opened it.
   * Idempotent. Gives up on the removal after the session timeout (ZooKeeper
   * unreachable): the node then goes when the session ends.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.closed = true;
    this.kick();
    const limit = this.connection.options.sessionTimeout || DEFAULT_SESSION_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        this.until(() => this.current === undefined && this.cleanup === undefined),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`not removed within ${limit} ms`)), limit);
        }),
      ]);
    } catch (err) {
      const path = this.current;
      if (path) this.log?.warn('could not remove the registration node; it goes when the session ends', { path, error: err });
    } finally {
      clearTimeout(timer);
    }
    this.stopped = true;
    this.wake?.();
    this.connection.off('expired', this.onExpired);
    this.connection.off('session', this.onSession);
    for (const w of this.waiters) w.resolve();
    this.waiters.clear();
    if (this.owned) this.connection.close();
  }

  private assertOpen(): void {
    if (this.closed) throw new RegisterError('the registration is closed');
  }

  private noFields(method: string, what: string): RegisterError {
    const why = this.format === 'plain' ? 'its data is just host:port' : "Curator's ServiceInstance has no weight";
    return new RegisterError(`${method}: the ${this.format} format cannot carry ${what} (${why}); register with format "drover"`);
  }

  private async changed(): Promise<void> {
    const version = ++this.dataVersion;
    this.kick();
    await this.until(() => this.closed || this.paused || (this.current !== undefined && this.written >= version));
  }

  private until(check: () => boolean | Error): Promise<void> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = { check, resolve, reject };
      this.waiters.add(waiter);
      this.settle();
    });
  }

  private settle(): void {
    for (const w of this.waiters) {
      const state = w.check();
      if (state === false) continue;
      this.waiters.delete(w);
      if (state === true) w.resolve();
      else w.reject(state);
    }
  }

  private initialFields(options: RegisterOptions): Record<string, unknown> {
    const { host, port } = this.address;
    const notFor = (key: string) => new RegisterError(`${key} is not part of the ${this.format} format; register with format "drover"`);
    if (this.format !== 'drover') {
      if (options.weight !== undefined) throw notFor('weight');
      if (options.zone !== undefined) throw notFor('zone');
      if (options.meta !== undefined) throw notFor('meta');
    }
    if (this.format !== 'curator' && options.name !== undefined) throw new RegisterError('name is for the curator format only');
    if (this.format === 'plain') return {};
    if (this.format === 'curator') {
      const name = options.name ?? this.parent.slice(this.parent.lastIndexOf('/') + 1);
      if (typeof name !== 'string' || !name) throw new RegisterError('name must be a non-empty string');
      return {
        name,
        id: randomUUID(),
        address: host,
        port,
        sslPort: null,
        payload: null,
        registrationTimeUTC: Date.now(),
        serviceType: 'DYNAMIC',
        uriSpec: null,
      };
    }
    const data: Record<string, unknown> = { host, port, weight: checkWeight(options.weight ?? 1) };
    if (options.zone !== undefined) {
      if (typeof options.zone !== 'string' || !options.zone) throw new RegisterError('zone must be a non-empty string');
      data.zone = options.zone;
    }
    if (options.meta !== undefined) {
      const meta = options.meta as unknown;
      if (typeof meta !== 'object' || meta === null || Array.isArray(meta) || Object.values(meta).some((v) => typeof v !== 'string')) {
        throw new RegisterError('meta must be an object of strings');
      }
      data.meta = { ...options.meta };
    }
    return data;
  }

  private encode(): Buffer {
    if (this.format === 'plain') return Buffer.from(formatAddress(this.address.host, this.address.port));
    return Buffer.from(JSON.stringify(this.fields));
  }

  // -------------------------------------------------------------------------
  // The loop

  private kick(): void {
    this.dirty = true;
    this.wake?.();
    if (this.running || this.stopped) return;
    this.running = true;
    // Never from inside an event handler: after an expiry the connection
    // switches to its new client only once its 'expired' handlers return.
    setImmediate(() => void this.run());
  }

  private async run(): Promise<void> {
    try {
      while (!this.stopped) {
        // Only issue operations on a live connection: node-zookeeper-client
        // sends requests queued while disconnected ahead of the credentials it
        // re-sends on connecting, so they would run unauthenticated (NO_AUTH).
        if (!this.connection.connected) {
          await this.connectedOrWoken();
          continue;
        }
        this.dirty = false;
        let progressed: boolean;
        try {
          progressed = await this.step();
          this.backoff = BACKOFF_MIN_MS;
        } catch (err) {
          if (this.stopped) break;
          if (zkCode(err) === ZK.NO_NODE) this.parentReady = false;
          const failure = this.unrecoverable(err);
          if (failure) {
            this.fail(failure);
            await this.sleep(BACKOFF_MAX_MS);
          } else {
            this.log?.warn('zookeeper operation failed: retrying', { path: this.parent, error: describeError(err), retryInMs: this.backoff });
            const delay = this.backoff;
            this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
            await this.sleep(delay);
          }
          this.settle();
          continue;
        }
        this.settle();
        if (!progressed && !this.dirty) break;
      }
    } finally {
      this.running = false;
    }
  }

  /** Waits for the connection, or until kicked or stopped. */
  private connectedOrWoken(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.connection.off('connected', done);
        if (this.wake === done) this.wake = undefined;
        resolve();
      };
      this.connection.on('connected', done);
      this.wake = done;
    });
  }

  /** Sleeps `ms`, or less when kicked or stopped. */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        if (this.wake === done) this.wake = undefined;
        resolve();
      };
      // Unref'd: a registration left retrying (its shared connection closed
      // under it) must not keep the process alive.
      const timer = setTimeout(done, ms).unref();
      this.wake = done;
    });
  }

  /** One ZooKeeper operation (or a short sequence) towards the wanted state; false when there is nothing to do. */
  private async step(): Promise<boolean> {
    const gen = this.gen;
    if (this.cleanup && this.cleanup.gen !== gen) this.cleanup = undefined;
    const want = !this.paused && !this.closed;

    if (!want && this.current) {
      const path = this.current;
      await ignoreNoNode(this.connection.remove(path));
      if (gen === this.gen && this.current === path) {
        this.current = undefined;
        this.log?.info(this.closed ? 'deregistered' : 'registration paused: node removed', { path, address: this.address.id });
        this.emit('deregistered', path);
      }
      return true;
    }
    if (!want && this.cleanup) {
      await this.sweep(gen, undefined);
      return true;
    }
    if (this.closed) return false;

    // Also while paused: register({ paused: true }) resolves once the parent is known to exist.
    if (!this.parentReady) {
      // exists() first: creating an existing node needs CREATE rights on its parent.
      if (!(await this.connection.exists(this.parent))) await this.connection.mkdirp(this.parent);
      this.parentReady = true;
      return true;
    }
    if (!want) return false;

    if (this.cleanup) {
      await this.sweep(gen, this.current);
      return true;
    }

    if (!this.current) {
      const id = randomBytes(8).toString('hex');
      const version = this.dataVersion;
      // Until we know better, a node with this id may exist.
      this.cleanup = { id, gen };
      const created = await this.connection.create(`${this.parent}/member_${id}_`, this.encode(), CreateMode.EPHEMERAL_SEQUENTIAL);
      // Made by a session that has since expired: it went with it.
      if (gen !== this.gen) return true;
      this.adopt(created, version);
      return true;
    }

    if (this.verify) {
      this.verify = false;
      const path = this.current;
      const exists = await this.connection.exists(path, () => {
        if (this.current === path && !this.stopped) {
          this.verify = true;
          this.kick();
        }
      });
      if (!exists && gen === this.gen && this.current === path) {
        this.log?.warn('registration node deleted by someone else: re-creating it', { path, address: this.address.id });
        this.current = undefined;
        this.emit('deregistered', path);
      }
      return true;
    }

    if (this.written < this.dataVersion) {
      const path = this.current;
      const version = this.dataVersion;
      try {
        await this.connection.setData(path, this.encode());
      } catch (err) {
        if (zkCode(err) !== ZK.NO_NODE) throw err;
        if (gen === this.gen && this.current === path) {
          this.log?.warn('registration node vanished: re-creating it', { path, address: this.address.id });
          this.current = undefined;
          this.emit('deregistered', path);
        }
        return true;
      }
      if (gen === this.gen && this.current === path) this.written = version;
      return true;
    }
    return false;
  }

  private adopt(path: string, version: number): void {
    this.current = path;
    this.written = version;
    this.verify = true;
    this.log?.info('registered', { path, address: this.address.id, format: this.format });
    this.emit('registered', path);
  }

  /**
   * Lists the parent and removes every node carrying the cleanup id except
   * `keep`. With no `keep` while registered is wanted, the oldest such node
   * is adopted instead: the create we thought failed did happen.
   */
  private async sweep(gen: number, keep: string | undefined): Promise<void> {
    const { id } = this.cleanup!;
    const prefix = `member_${id}_`;
    const children = await this.connection.getChildren(this.parent);
    if (gen !== this.gen) return;
    const mine = children.filter((c) => c.startsWith(prefix) && /^\d{10}$/.test(c.slice(prefix.length))).sort();
    const wantNode = !this.paused && !this.closed;
    let keepName = keep === undefined ? undefined : keep.slice(keep.lastIndexOf('/') + 1);
    let adopted: string | undefined;
    if (keepName === undefined && wantNode && mine.length) {
      keepName = mine[0];
      adopted = `${this.parent}/${keepName}`;
    }
    for (const child of mine) {
      if (child === keepName) continue;
      this.log?.info('removing a duplicate registration node left by a retried create', { path: `${this.parent}/${child}` });
      await ignoreNoNode(this.connection.remove(`${this.parent}/${child}`));
      if (gen !== this.gen) return;
    }
    if (this.cleanup?.id !== id) return;
    this.cleanup = undefined;
    if (adopted && this.current === undefined) {
      // Its data may be older than ours: -1 makes the loop write the current data.
      this.adopt(adopted, -1);
    }
  }

  private unrecoverable(err: unknown): RegisterError | undefined {
    const code = zkCode(err);
    if (code !== undefined && !UNRECOVERABLE.has(code)) return undefined;
    if (err instanceof RegisterError) return err;
    const hint = code === undefined ? undefined : HINTS.get(code);
    return new RegisterError(`cannot register ${this.address.id} under ${this.parent}: ${describeError(err)}${hint ? `: ${hint}` : ''}`, {
      cause: err,
    });
  }

  private fail(err: RegisterError): void {
    this.log?.error('registration failed', { path: this.parent, address: this.address.id, error: err });
    if (this.listenerCount('error') > 0) this.emit('error', err);
    for (const w of this.waiters) w.reject(err);
    this.waiters.clear();
  }
}

function isConnection(z: RegisterOptions['zookeeper']): z is ZooKeeperConnection {
  return z instanceof ZooKeeperConnection || typeof (z as { getChildren?: unknown } | null)?.getChildren === 'function';
}

function checkWeight(weight: unknown): number {
  if (typeof weight !== 'number' || !Number.isInteger(weight) || weight < 0 || weight > MAX_WEIGHT) {
    throw new RegisterError(`weight must be a whole number 0-${MAX_WEIGHT}, got ${JSON.stringify(weight) ?? String(weight)}`);
  }
  return weight;
}

async function ignoreNoNode(p: Promise<void>): Promise<void> {
  try {
    await p;
  } catch (err) {
    if (zkCode(err) !== ZK.NO_NODE) throw err;
  }
}

/** `NO_AUTH` for ZooKeeper exceptions, the message for anything else. */
function describeError(err: unknown): string {
  const e = err as { name?: string; message?: string } | null;
  if (zkCode(err) !== undefined && e?.name) return e.name;
  return e?.message ?? String(err);
}
