import { performance } from 'node:perf_hooks';
import type { Member } from '../config/schema.js';
import type { Logger } from '../log.js';
import { MemberFormatError, parseMember, type ZnodeFormat } from './formats.js';
import type { MemberSource } from './source.js';
import { ZK, zkCode, type ZooKeeperConnection } from './zk.js';

/** Where a service's members live in ZooKeeper: the service's `zookeeper:` block. */
export interface ZooKeeperServiceOptions {
  /** The parent znode; each child is a member. */
  readonly path: string;
  readonly format: ZnodeFormat;
  /** Finagle: the additionalEndpoints entry to use instead of serviceEndpoint. */
  readonly endpoint?: string;
}

/** Delay that lets a burst of watch events (a deploy) collapse into one re-list. */
const COALESCE_MS = 20;
const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 5_000;

interface Cached {
  version: number;
  member: Member | null;
  /** Set when the data watch fired: fetch again on the next listing. */
  stale: boolean;
}

/**
 * Follows one service path in ZooKeeper and delivers the FULL member list on
 * every change (design.md: never deltas).
 *
 * - Every read re-arms its watch; a child-list watch triggers a re-list and a
 *   data watch marks that child stale. Bursts of events within 20 ms become
 *   one re-list, and only new or stale children are read again.
 * - A read that fails (connection loss, a server restarting) is retried with
 *   backoff from 100 ms to 5 s, so the service never silently stops
 *   updating. Meanwhile the last members keep serving (fail static).
 * - A path that does not exist yet is watched with exists() and delivers no
 *   members; a deleted path delivers no members.
 * - After a session expiry (the connection emits `session`), every watch is
 *   gone: everything is listed and read again.
 * - A child whose data cannot be read is skipped with one warning per version.
 */
export class ZooKeeperSource implements MemberSource {
  private readonly cache = new Map<string, Cached>();
  /**
   * Bumped by each child's data watch. The library can run a watch callback
   * before the read that armed it resumes (reply and event in one TCP
   * chunk); comparing generations catches that, so the change is not lost.
   */
  private readonly generations = new Map<string, number>();
  private onMembers: ((members: readonly Member[], since?: number) => void) | undefined;
  /** performance.now() of the first event (watch, new session) not yet answered by a delivered listing. */
  private trigger: number | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private again = false;
  private stopped = false;
  private retryDelay = RETRY_MIN_MS;
  /**
   * Whether a child (or exists) watch is armed. Each watched read adds a
   * callback to the client until the watch fires, so re-arming on every
   * listing would pile them up; one armed watch is enough.
   */
  private childWatch = false;
  private existsWatch = false;
  /** Members skipped because their data could not be read (for the metrics issue). */
  invalidMembers = 0;
  /** Completed listings (for the metrics issue and tests). */
  listings = 0;

  constructor(
    private readonly zk: ZooKeeperConnection,
    readonly options: ZooKeeperServiceOptions,
    private readonly log: Logger,
    readonly service: string,
  ) {}

  start(onMembers: (members: readonly Member[], since?: number) => void): void {
    this.onMembers = onMembers;
    this.zk.on('session', this.onSession);
    this.schedule(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.zk.off('session', this.onSession);
  }

  private readonly onSession = () => {
    // A new session has none of our watches: read everything again, now,
    // not after a pending backoff.
    clearTimeout(this.timer);
    this.timer = undefined;
    this.retryDelay = RETRY_MIN_MS;
    this.cache.clear();
    this.generations.clear();
    this.childWatch = false;
    this.existsWatch = false;
    this.trigger ??= performance.now();
    this.schedule(0);
  };

  private readonly onChildWatch = () => {
    this.childWatch = false;
    this.trigger ??= performance.now();
    this.schedule();
  };

  private readonly onExistsWatch = () => {
    this.existsWatch = false;
    this.trigger ??= performance.now();
    this.schedule();
  };

  private schedule(delay = COALESCE_MS): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.run();
    }, delay);
  }

  private async run(): Promise<void> {
    this.running = true;
    this.again = false;
    // Events from here on are answered by the next listing, not this one.
    const since = this.trigger;
    this.trigger = undefined;
    try {
      const members = await this.list();
      this.retryDelay = RETRY_MIN_MS;
      this.listings++;
      if (!this.stopped) this.onMembers?.(members, since);
    } catch (err) {
      if (this.stopped) return;
      // The retry answers the same event: its time keeps counting.
      if (since !== undefined) this.trigger = Math.min(since, this.trigger ?? since);
      this.log.warn('zookeeper listing failed: retrying, serving the last known members', {
        service: this.service,
        path: this.options.path,
        retryInMs: this.retryDelay,
        error: describeError(err),
      });
      this.running = false;
      const delay = this.retryDelay;
      this.retryDelay = Math.min(RETRY_MAX_MS, this.retryDelay * 2);
      this.schedule(delay);
      return;
    }
    this.running = false;
    if (this.again) this.schedule();
  }

  private async list(): Promise<Member[]> {
    const { path } = this.options;
    let children: string[];
    const arm = !this.childWatch;
    this.childWatch = true;
    try {
      children = await this.zk.getChildren(path, arm ? this.onChildWatch : undefined);
    } catch (err) {
      // ZooKeeper registers a watch only when the read succeeds.
      if (arm) this.childWatch = false;
      if (zkCode(err) !== ZK.NO_NODE) throw err;
      // Watch for the path to appear; if it appeared meanwhile, list again.
      const armExists = !this.existsWatch;
      this.existsWatch = true;
      let exists: boolean;
      try {
        exists = await this.zk.exists(path, armExists ? this.onExistsWatch : undefined);
      } catch (e) {
        if (armExists) this.existsWatch = false;
        throw e;
      }
      if (exists) return this.list();
      if (this.cache.size) this.log.warn('service path does not exist: no members', { service: this.service, path });
      this.cache.clear();
      return [];
    }
    const names = new Set(children);
    for (const name of this.cache.keys()) if (!names.has(name)) this.cache.delete(name);
    for (const name of this.generations.keys()) if (!names.has(name)) this.generations.delete(name);
    const toRead = children.filter((name) => this.cache.get(name)?.stale !== false);
    await Promise.all(toRead.map((name) => this.read(name)));
    const members: Member[] = [];
    for (const name of children.sort()) {
      const member = this.cache.get(name)?.member;
      if (member) members.push(member);
    }
    return members;
  }

  private async read(name: string): Promise<void> {
    const full = `${this.options.path === '/' ? '' : this.options.path}/${name}`;
    const generation = this.generations.get(name) ?? 0;
    let znode;
    try {
      znode = await this.zk.getData(full, () => {
        this.trigger ??= performance.now();
        this.generations.set(name, (this.generations.get(name) ?? 0) + 1);
        const cached = this.cache.get(name);
        if (cached) cached.stale = true;
        this.schedule();
      });
    } catch (err) {
      // Deleted between the listing and the read: the child watch re-lists.
      if (zkCode(err) === ZK.NO_NODE) return void this.cache.delete(name);
      throw err;
    }
    const previous = this.cache.get(name);
    if (previous && previous.version === znode.version && !previous.stale) return;
    let member: Member | null = null;
    try {
      const parsed = parseMember(znode.data, { format: this.options.format, ...(this.options.endpoint ? { endpoint: this.options.endpoint } : {}) });
      member = parsed && { ...parsed, znode: full };
    } catch (err) {
      if (!(err instanceof MemberFormatError)) throw err;
      if (previous?.version !== znode.version) {
        this.invalidMembers++;
        this.log.warn('skipping a member whose data cannot be read', { service: this.service, znode: full, error: err });
      }
    }
    // A watch that fired while this read was in flight means newer data.
    const changed = (this.generations.get(name) ?? 0) !== generation;
    this.cache.set(name, { version: znode.version, member, stale: changed });
    if (changed) this.schedule();
  }
}

function describeError(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
