import { EventEmitter } from 'node:events';
import type { ServiceBalancer } from '../balancer/balancer.js';
import type { HealthCheckConfig } from '../config/schema.js';
import { zkPathProblem } from '../config/zookeeper.js';
import { ConnectionClosedError, CreateMode, ZK, zkCode, type ZooKeeperConnection } from '../discovery/zk.js';
import type { Logger } from '../log.js';
import { ActiveChecks, type CheckResult } from './active.js';
import { LeaderElection, electionPath } from './election.js';

/** The znode where a service's shared-check leader publishes its results. */
export function healthPath(service: string): string {
  return `/drover/health/${service}`;
}

/**
 * What the leader writes to `/drover/health/<service>`: its name, when
 * (ms since the epoch), and its current members, down or up. A member in
 * neither list (one a follower discovered first) keeps the state it started
 * with, so `startUnhealthy` holds until the leader has a view of it. Data
 * without `up` (older writers) means every member not down is up.
 */
export interface PublishedHealth {
  readonly leader: string;
  readonly at: number;
  readonly down: readonly string[];
  readonly up?: readonly string[];
}

/** Reads published health; throws with the reason when the data is not one. */
export function parsePublishedHealth(data: Buffer): PublishedHealth {
  let value: unknown;
  try {
    value = JSON.parse(data.toString('utf8'));
  } catch (err) {
    throw new Error(`not JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error('not a JSON object');
  const { leader, at, down, up } = value as Record<string, unknown>;
  if (typeof leader !== 'string') throw new Error('"leader" must be a string');
  if (typeof at !== 'number' || !Number.isFinite(at)) throw new Error('"at" must be a number');
  if (!Array.isArray(down) || down.some((d) => typeof d !== 'string')) throw new Error('"down" must be an array of "host:port" strings');
  if (up !== undefined && (!Array.isArray(up) || up.some((d) => typeof d !== 'string'))) throw new Error('"up" must be an array of "host:port" strings');
  return { leader, at, down: down as string[], ...(up ? { up: up as string[] } : {}) };
}

/** What `applied` reports: the publication and the members whose state it changed. */
export interface AppliedHealth {
  readonly leader: string;
  readonly down: readonly string[];
  readonly changed: readonly string[];
}

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;

/**
 * Shared health checks of one service (`healthCheck.shared`): the Drover
 * instances on one ZooKeeper elect a checker under
 * `/drover/election/<service>`; the leader runs ActiveChecks and publishes
 * each member's state under `/drover/health/<service>`; followers apply
 * what it publishes.
 *
 * - The leader's flips go to its own balancer states and are published as
 *   the full down-list (also once when it becomes leader, from the states it
 *   applied as a follower: checking continues where the last leader stopped).
 *   It writes only while it leads and is connected; a session expiry steps it
 *   down (and stops its probes) before its connection can write again.
 * - Every instance watches the health znode (exists() while it is missing);
 *   followers set listed members down and every other current member up. The
 *   leader ignores publications: its own checks are fresher.
 * - Unreadable data is logged (once per version) and ignored.
 *
 * Events: `role` ('leader' | 'follower'), `applied` (AppliedHealth),
 * `published` (PublishedHealth), and `check` (CheckResult) forwarded from the
 * leader's checks.
 */
export class SharedChecks extends EventEmitter {
  /** The election (tests, admin API); undefined before start(). */
  election: LeaderElection | undefined;
  private checks: ActiveChecks | undefined;
  private leading = false;
  private role: 'leader' | 'follower' | undefined;
  /** Bumped on every change of leadership; a write of an older term is not sent. */
  private term = 0;
  private stopped = false;
  private readonly path: string;

  /** The last readable publication. */
  private last: PublishedHealth | undefined;
  /** The data version last warned about (unreadable). */
  private warnedVersion = -1;

  // Reading (every instance)
  private readTimer: NodeJS.Timeout | undefined;
  private reading = false;
  private readAgain = false;
  private readRetry = RETRY_MIN_MS;
  private dataWatch = false;
  private existsWatch = false;

  // Publishing (the leader)
  private publishing = false;
  private publishWanted = false;
  private lastWritten: string | undefined;
  private publishWake: (() => void) | undefined;
  private publishRetry = RETRY_MIN_MS;

  constructor(
    readonly service: string,
    private config: HealthCheckConfig,
    private readonly balancer: ServiceBalancer,
    private readonly zk: ZooKeeperConnection,
    private readonly log: Logger,
    /** This instance's name in the election (host:pid by default). */
    readonly instance: string,
  ) {
    super();
    this.path = healthPath(service);
  }

  /** Whether this instance is the checker now. */
  get isLeader(): boolean {
    return this.leading;
  }

  /** Joins the election. */
  start(): void {
    if (this.election || this.stopped) return;
    const problem = zkPathProblem(electionPath(this.service));
    if (problem) {
      this.log.error('shared checks: the service name cannot be a znode name: no checks', { service: this.service, problem });
      return;
    }
    const election = new LeaderElection(this.zk, this.service, this.instance, this.log);
    this.election = election;
    election.on('leader', () => this.lead());
    election.on('follower', () => this.follow());
    election.on('lost', () => this.follow());
    this.zk.on('session', this.onSession);
    this.scheduleRead(0);
    election.start();
  }

  /** Member change: the leader checks the new members; a follower applies the last publication to them. */
  sync(): void {
    if (this.stopped) return;
    if (this.leading) {
      this.checks?.sync();
      this.publish(false);
    } else if (this.last) this.apply(this.last);
  }

  /** New settings (reload). */
  reconfigure(config: HealthCheckConfig): void {
    this.config = config;
    this.checks?.reconfigure(config);
  }

  /** Leaves the election (deleting its candidate node) and stops checking. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.leading = false;
    this.term++;
    this.checks?.stop();
    this.checks = undefined;
    clearTimeout(this.readTimer);
    this.readTimer = undefined;
    this.publishWake?.();
    this.zk.off('session', this.onSession);
    await this.election?.stop();
  }

  // -------------------------------------------------------------------------
  // Roles

  private lead(): void {
    if (this.stopped || this.leading) return;
    this.leading = true;
    this.term++;
    this.role = 'leader';
    this.log.info('shared checks: leading: checking for every instance', { service: this.service, instance: this.instance });
    const checks = new ActiveChecks(this.service, this.config, this.balancer, this.log);
    checks.onFlip = (id, up) => {
      if (this.checks !== checks) return;
      this.balancer.states.setDown(id, !up);
      this.publish(true);
    };
    checks.on('check', (result: CheckResult) => this.emit('check', result));
    this.checks = checks;
    checks.start();
    this.lastWritten = undefined;
    this.publish(true);
    this.emit('role', 'leader');
  }

  private follow(): void {
    if (this.stopped) return;
    if (this.leading) {
      this.leading = false;
      this.term++;
      this.checks?.stop();
      this.checks = undefined;
      this.publishWake?.();
      this.log.info('shared checks: no longer leading: stopped checking', { service: this.service });
      // Reads were not applied while leading; the next leader's publication replaces this one.
      if (this.last) this.apply(this.last);
    }
    if (this.role !== 'follower') {
      this.role = 'follower';
      this.emit('role', 'follower');
    }
  }

  // -------------------------------------------------------------------------
  // Publishing (leader)

  /** The leader's view of the current members: those down and those up. */
  private view(): { down: string[]; up: string[] } {
    const ids = this.balancer.backends.map((b) => b.id).sort();
    return { down: ids.filter((id) => this.balancer.states.isDown(id)), up: ids.filter((id) => !this.balancer.states.isDown(id)) };
  }

  /** Writes the down-list soon; `force` writes even when it equals the last one written. */
  private publish(force: boolean): void {
    // Before discovery's first listing there are no members: an empty list
    // would bring every member up everywhere. sync() publishes after it.
    if (!this.leading || this.stopped || !this.balancer.ready) return;
    if (!force && !this.publishWanted && this.lastWritten === JSON.stringify(this.view())) return;
    this.publishWanted = true;
    this.publishWake?.();
    if (!this.publishing) void this.runPublisher();
  }

  private async runPublisher(): Promise<void> {
    this.publishing = true;
    try {
      while (this.publishWanted && this.leading && !this.stopped) {
        // Only on a live connection: after an expiry the election has stepped
        // us down before the new session connects, so a stale leader never writes.
        if (!this.zk.connected) {
          await this.waitPublish((wake) => {
            this.zk.once('connected', wake);
            return () => this.zk.off('connected', wake);
          });
          continue;
        }
        this.publishWanted = false;
        const term = this.term;
        const view = this.view();
        const body: PublishedHealth = { leader: this.instance, at: Date.now(), ...view };
        try {
          if (await this.write(Buffer.from(JSON.stringify(body)), term)) {
            this.lastWritten = JSON.stringify(view);
            this.publishRetry = RETRY_MIN_MS;
            this.log.debug('shared checks: published', { service: this.service, down: view.down });
            this.emit('published', body);
          }
        } catch (err) {
          if (err instanceof ConnectionClosedError || this.stopped) return;
          this.publishWanted = true;
          this.log.warn('shared checks: publishing failed: retrying', { service: this.service, path: this.path, error: describeError(err), retryInMs: this.publishRetry });
          const delay = this.publishRetry;
          this.publishRetry = Math.min(RETRY_MAX_MS, this.publishRetry * 2);
          await this.waitPublish((wake) => {
            const timer = setTimeout(wake, delay).unref();
            return () => clearTimeout(timer);
          });
        }
      }
    } finally {
      this.publishing = false;
    }
  }

  /** Waits for what `arm` sets up, or for publishWake (stop, step-down, a new flip). */
  private waitPublish(arm: (wake: () => void) => () => void): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        disarm();
        if (this.publishWake === done) this.publishWake = undefined;
        resolve();
      };
      const disarm = arm(done);
      this.publishWake = done;
    });
  }

  /** setData, or create the znode (and its parents) when missing; false when leadership changed meanwhile. */
  private async write(data: Buffer, term: number): Promise<boolean> {
    const current = () => this.term === term && this.leading && !this.stopped;
    try {
      await this.zk.setData(this.path, data);
      return true;
    } catch (err) {
      if (zkCode(err) !== ZK.NO_NODE) throw err;
    }
    const parent = this.path.slice(0, this.path.lastIndexOf('/'));
    if (!current()) return false;
    await this.zk.mkdirp(parent);
    if (!current()) return false;
    try {
      await this.zk.create(this.path, data, CreateMode.PERSISTENT);
      return true;
    } catch (err) {
      if (zkCode(err) !== ZK.NODE_EXISTS) throw err;
    }
    if (!current()) return false;
    await this.zk.setData(this.path, data);
    return true;
  }

  // -------------------------------------------------------------------------
  // Reading (every instance; applied by followers)

  private readonly onSession = () => {
    // A new session has none of our watches.
    this.dataWatch = false;
    this.existsWatch = false;
    this.readRetry = RETRY_MIN_MS;
    clearTimeout(this.readTimer);
    this.readTimer = undefined;
    this.scheduleRead(0);
  };

  private readonly onDataWatch = () => {
    this.dataWatch = false;
    this.scheduleRead(0);
  };

  private readonly onExistsWatch = () => {
    this.existsWatch = false;
    this.scheduleRead(0);
  };

  private scheduleRead(delay: number): void {
    if (this.stopped) return;
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    if (this.readTimer) return;
    this.readTimer = setTimeout(() => {
      this.readTimer = undefined;
      void this.read();
    }, delay);
  }

  private async read(): Promise<void> {
    this.reading = true;
    this.readAgain = false;
    try {
      await this.readOnce();
      this.readRetry = RETRY_MIN_MS;
    } catch (err) {
      this.reading = false;
      if (this.stopped || err instanceof ConnectionClosedError) return;
      this.log.warn('shared checks: reading the published health failed: retrying', {
        service: this.service,
        path: this.path,
        error: describeError(err),
        retryInMs: this.readRetry,
      });
      const delay = this.readRetry;
      this.readRetry = Math.min(RETRY_MAX_MS, this.readRetry * 2);
      this.scheduleRead(delay);
      return;
    }
    this.reading = false;
    if (this.readAgain) this.scheduleRead(0);
  }

  private async readOnce(): Promise<void> {
    const arm = !this.dataWatch;
    this.dataWatch = true;
    let znode;
    try {
      znode = await this.zk.getData(this.path, arm ? this.onDataWatch : undefined);
    } catch (err) {
      // ZooKeeper registers a watch only when the read succeeds.
      if (arm) this.dataWatch = false;
      if (zkCode(err) !== ZK.NO_NODE) throw err;
      const armExists = !this.existsWatch;
      this.existsWatch = true;
      let exists: boolean;
      try {
        exists = await this.zk.exists(this.path, armExists ? this.onExistsWatch : undefined);
      } catch (e) {
        if (armExists) this.existsWatch = false;
        throw e;
      }
      if (exists && !this.stopped) return this.readOnce();
      return; // nothing published yet
    }
    if (this.stopped) return;
    if (!znode.data || znode.data.length === 0) return; // created, nothing written yet
    let published: PublishedHealth;
    try {
      published = parsePublishedHealth(znode.data);
    } catch (err) {
      if (this.warnedVersion !== znode.version) {
        this.warnedVersion = znode.version;
        this.log.warn('shared checks: ignoring unreadable published health', {
          service: this.service,
          path: this.path,
          version: znode.version,
          error: (err as Error).message,
        });
      }
      if (this.leading) this.publish(true);
      return;
    }
    this.last = published;
    if (!this.leading) return this.apply(published);
    // Someone else wrote over the leader's view (a deposed leader's late
    // write, a hand edit): followers would keep it until the next flip, so
    // the leader writes its own view again.
    if (JSON.stringify({ down: published.down, up: published.up }) !== this.lastWritten) {
      this.log.warn('shared checks: published health was overwritten: publishing ours again', { service: this.service, by: published.leader });
      this.publish(true);
    }
  }

  /** Sets listed current members down or up; an unlisted one keeps its state (every one is up without an `up` list). */
  private apply(published: PublishedHealth): void {
    const down = new Set(published.down);
    const up = published.up ? new Set(published.up) : undefined;
    const changed: string[] = [];
    for (const b of this.balancer.backends) {
      if (up && !down.has(b.id) && !up.has(b.id)) continue;
      const isDown = down.has(b.id);
      if (this.balancer.states.isDown(b.id) === isDown) continue;
      this.balancer.states.setDown(b.id, isDown);
      changed.push(b.id);
    }
    if (changed.length) {
      this.log.info('shared checks: applied', { service: this.service, leader: published.leader, down: published.down.length, changed });
    }
    this.emit('applied', { leader: published.leader, down: published.down, changed } satisfies AppliedHealth);
  }
}

function describeError(err: unknown): string {
  const e = err as { name?: string; message?: string } | null;
  if (zkCode(err) !== undefined && e?.name) return e.name;
  return e?.message ?? String(err);
}
