/**
 * Leader election in ZooKeeper, the classic recipe without the herd effect
 * (design.md): each candidate creates an EPHEMERAL_SEQUENTIAL znode under
 * `/drover/election/<service>`; the lowest sequence number leads, and every
 * other candidate watches (exists) only its immediate predecessor, so a
 * candidate's death wakes exactly one other: its successor, which then leads
 * (it was second) or re-links to the dead one's predecessor.
 *
 * Nodes are named `n_<attempt id>_NNNNNNNNNN` and hold the instance's name.
 * The attempt id makes creates "protected" (as in Apache Curator and
 * register.ts): a create whose reply is lost to a connection loss may still
 * have happened, so before creating again the children are listed and a node
 * carrying one of our attempt ids is adopted; any other node of ours found on
 * a listing is removed, so this process never holds two live candidates.
 * Candidates are ordered by the trailing 10-digit sequence number only.
 *
 * One loop does all ZooKeeper work, one operation at a time (as register.ts):
 * watch fires, session expiry and stop() only change what is wanted and wake
 * it. Operations are issued only on a live connection; failures are retried
 * with backoff from 100 ms to 5 s.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { ConnectionClosedError, CreateMode, ZK, zkCode, type ZooKeeperConnection } from '../discovery/zk.js';
import type { Logger } from '../log.js';

/** What an election needs of a ZooKeeper connection (a ZooKeeperConnection; tests wrap one). */
export type ElectionZooKeeper = Pick<ZooKeeperConnection, 'connected' | 'options' | 'getChildren' | 'exists' | 'create' | 'mkdirp' | 'remove' | 'on' | 'off'>;

/** The parent znode of a service's election. */
export function electionPath(service: string): string {
  return `/drover/election/${service}`;
}

/** The role a candidate has right now. */
export type ElectionRole = 'none' | 'leader' | 'follower';

const BACKOFF_MIN_MS = 100;
const BACKOFF_MAX_MS = 5_000;
const PREFIX = 'n_';

/** ZooKeeper errors after which a create surely did not happen. */
const NOT_CREATED = new Set<number>([ZK.NO_NODE, ZK.NO_AUTH, ZK.INVALID_ACL, ZK.AUTH_FAILED]);

/** ZooKeeper errors retrying cannot fix (logged as errors; retried slowly anyway). */
const UNRECOVERABLE = new Set<number>([ZK.NO_AUTH, ZK.AUTH_FAILED, ZK.INVALID_ACL]);

/** One armed exists() watch. */
interface Arm {
  readonly name: string;
  fired: boolean;
}

/**
 * One candidate in one service's election. Events:
 * - `leader`: this candidate leads (its node has the lowest sequence number).
 * - `follower` ({ predecessor }): it follows, watching `predecessor` (a node
 *   name); emitted again when it re-links to another predecessor.
 * - `woken` ({ gone }): the predecessor it watched is gone (logged as
 *   `election: predecessor gone`); `leader` or `follower` follows.
 * - `lost` ({ reason, wasLeader }): its node is gone (session expiry, deleted
 *   by hand, connection closed): it is neither leader nor follower until it
 *   has joined again. A leader must stop leading at once.
 */
export class LeaderElection extends EventEmitter {
  /** The election's parent znode. */
  readonly path: string;
  /** Watch fires that woke this candidate (tests: only the successor of a dead node is woken). */
  wakes = 0;

  private currentRole: ElectionRole = 'none';
  /** Our candidate node's name (not its path), while we have one. */
  private node: string | undefined;
  /** The predecessor announced in the last `follower` event. */
  private predecessor: string | undefined;
  /** The exists() watch armed on the predecessor (or, when leading, on our own node). */
  private watching: Arm | undefined;
  /** Create attempts whose node may exist: attempt id -> session generation, settled. */
  private readonly attempts = new Map<string, { gen: number; settled: boolean }>();
  private parentReady = false;
  /** List the children before deciding anything (a watch fired, a create failed). */
  private relist = false;
  /** Session generation: bumped on expiry, so results of a dead session are ignored. */
  private gen = 0;

  private started = false;
  private stopping = false;
  private stopped = false;
  private connectionClosed = false;
  /** stop(): nothing of ours is left in ZooKeeper. */
  private gone = false;
  private running = false;
  private dirty = false;
  private wake: (() => void) | undefined;
  private left: (() => void) | undefined;
  private backoff = BACKOFF_MIN_MS;
  private closing: Promise<void> | undefined;

  constructor(
    private readonly zk: ElectionZooKeeper,
    readonly service: string,
    /** Stored as each candidate node's data, for people reading the tree. */
    readonly instance: string,
    private readonly log: Logger,
    path = electionPath(service),
  ) {
    super();
    this.path = path;
  }

  /** leader, follower, or none (joining, or stopped). */
  get role(): ElectionRole {
    return this.currentRole;
  }

  get isLeader(): boolean {
    return this.currentRole === 'leader';
  }

  /** Our candidate node's full path, while we have one. */
  get nodePath(): string | undefined {
    return this.node === undefined ? undefined : this.full(this.node);
  }

  /** Joins the election (in the background). */
  start(): void {
    if (this.started || this.stopping) return;
    this.started = true;
    this.zk.on('expired', this.onExpired);
    this.zk.on('session', this.onSession);
    this.zk.on('closed', this.onClosed);
    this.kick();
  }

  /**
   * Leaves the election: deletes our node (our successor takes over at
   * once), then ignores whatever watch still fires. Idempotent. Resolves
   * once the node is deleted, or after the session timeout (ZooKeeper
   * unreachable) while the deletion goes on being retried in the background
   * until it succeeds, the session ends, or the connection is closed.
   */
  stop(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    this.currentRole = 'none';
    this.predecessor = undefined;
    this.watching = undefined;
    if (!this.started || this.connectionClosed) return this.finish();
    const left = new Promise<'left'>((resolve) => (this.left = () => resolve('left')));
    this.kick();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), this.zk.options.sessionTimeout || 10_000)));
    const outcome = await Promise.race([left, late]);
    clearTimeout(timer);
    // The loop keeps trying: a node left behind on a connection that stays
    // open would hold its place (perhaps the lead) for as long as the process lives.
    if (outcome === 'late') {
      this.log.warn('election: could not delete our candidate node yet: still trying (it goes when the session ends)', { service: this.service, node: this.node });
    }
  }

  /** Ends a stop(): no more work, no listeners. */
  private finish(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.wake?.();
    this.zk.off('expired', this.onExpired);
    this.zk.off('session', this.onSession);
    this.zk.off('closed', this.onClosed);
    this.left?.();
    this.left = undefined;
  }

  private readonly onExpired = () => {
    this.gen++;
    // Attempts of the dead session whose outcome is known cannot have left a node.
    for (const [id, a] of this.attempts) if (a.settled) this.attempts.delete(id);
    const node = this.node;
    this.node = undefined;
    this.watching = undefined;
    this.relist = false;
    this.backoff = BACKOFF_MIN_MS;
    if (this.stopping) return this.kick();
    if (node !== undefined) this.log.warn('election: session expired: our candidate node went with it; joining again', { service: this.service, node });
    this.lose('session expired');
    this.kick();
  };

  private readonly onSession = () => {
    this.backoff = BACKOFF_MIN_MS;
    this.kick();
  };

  private readonly onClosed = () => {
    this.connectionClosed = true;
    if (!this.stopping) {
      this.log.warn('election: the ZooKeeper connection was closed: leaving the election', { service: this.service });
      this.lose('connection closed');
    }
    this.wake?.();
    if (this.stopping) this.finish();
  };

  /** Steps down: no longer leader or follower until joined again. */
  private lose(reason: string): void {
    const was = this.currentRole;
    this.currentRole = 'none';
    this.predecessor = undefined;
    if (was === 'none') return;
    if (was === 'leader') this.log.warn('election: stepping down', { service: this.service, reason });
    this.emit('lost', { reason, wasLeader: was === 'leader' });
  }

  private full(name: string): string {
    return `${this.path}/${name}`;
  }

  // -------------------------------------------------------------------------
  // The loop

  private kick(): void {
    this.dirty = true;
    this.wake?.();
    if (this.running || this.stopped || !this.started) return;
    this.running = true;
    // Never from inside an event handler: after an expiry the connection
    // switches to its new client only once its 'expired' handlers return.
    setImmediate(() => void this.run());
  }

  private async run(): Promise<void> {
    try {
      while (!this.stopped && !this.connectionClosed) {
        if (!this.zk.connected) {
          await this.connectedOrWoken();
          continue;
        }
        this.dirty = false;
        let progressed: boolean;
        try {
          progressed = await this.step();
          this.backoff = BACKOFF_MIN_MS;
        } catch (err) {
          if (this.stopped || this.connectionClosed || err instanceof ConnectionClosedError) break;
          const code = zkCode(err);
          if (code === ZK.NO_NODE) this.parentReady = false;
          const fields = { service: this.service, path: this.path, error: describeError(err), retryInMs: this.backoff };
          if (code !== undefined && UNRECOVERABLE.has(code)) this.log.error('election: ZooKeeper refused an operation: retrying', fields);
          else this.log.warn('election: ZooKeeper operation failed: retrying', fields);
          const delay = this.backoff;
          this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
          await this.sleep(delay);
          continue;
        }
        if (!progressed && !this.dirty) break;
      }
    } finally {
      this.running = false;
      if (this.stopping && (this.gone || this.connectionClosed)) this.finish();
    }
  }

  /** Waits for the connection, or until kicked or stopped. */
  private connectedOrWoken(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.zk.off('connected', done);
        if (this.wake === done) this.wake = undefined;
        resolve();
      };
      this.zk.on('connected', done);
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
      const timer = setTimeout(done, ms).unref();
      this.wake = done;
    });
  }

  /** One ZooKeeper operation (or a short sequence) towards the wanted state; false when there is nothing to do. */
  private async step(): Promise<boolean> {
    const gen = this.gen;
    if (this.stopping) return this.leave(gen);
    if (!this.parentReady) {
      await this.zk.mkdirp(this.path);
      if (gen === this.gen) this.parentReady = true;
      return true;
    }
    if (this.relist) return this.check(gen);
    if (this.node === undefined) return this.join(gen);
    return false;
  }

  /** Creates our candidate node (protected: the attempt id is in its name). */
  private async join(gen: number): Promise<boolean> {
    const id = randomBytes(8).toString('hex');
    const attempt = { gen, settled: false };
    this.attempts.set(id, attempt);
    let created: string;
    try {
      created = await this.zk.create(`${this.path}/${PREFIX}${id}_`, Buffer.from(this.instance), CreateMode.EPHEMERAL_SEQUENTIAL);
    } catch (err) {
      attempt.settled = true;
      const code = zkCode(err);
      if (code !== undefined && NOT_CREATED.has(code)) this.attempts.delete(id);
      // It may have happened: look before creating again.
      else if (gen === this.gen) this.relist = true;
      throw err;
    }
    attempt.settled = true;
    // Made by a session that has since expired: it went with it.
    if (gen !== this.gen) return true;
    this.node = created.slice(created.lastIndexOf('/') + 1);
    this.relist = true;
    this.log.debug('election: joined', { service: this.service, node: this.node, instance: this.instance });
    return true;
  }

  /** Lists the candidates, cleans up after interrupted creates, and leads or watches the predecessor. */
  private async check(gen: number): Promise<boolean> {
    this.relist = false;
    try {
      return await this.decide(gen);
    } catch (err) {
      // Whatever failed (a listing, a removal, arming the watch): look again after the backoff.
      if (gen === this.gen) this.relist = true;
      throw err;
    }
  }

  private async decide(gen: number): Promise<boolean> {
    const children = await this.zk.getChildren(this.path);
    if (gen !== this.gen || this.stopping) return true;
    for (const [id, a] of this.attempts) if (a.settled && a.gen !== gen) this.attempts.delete(id);

    const mine = sortBySequence(children.filter((c) => this.attempts.has(attemptOf(c) ?? '')));
    if (this.node === undefined && mine.length) {
      this.node = mine[0]!.name;
      this.log.info('election: adopting our candidate node left by an interrupted create', { service: this.service, node: this.node });
    }
    const removed = new Set<string>();
    for (const { name } of mine) {
      if (name === this.node) continue;
      this.log.info('election: removing a duplicate candidate node of ours', { service: this.service, node: name });
      await ignoreNoNode(this.zk.remove(this.full(name)));
      if (gen !== this.gen || this.stopping) return true;
      removed.add(name);
    }
    if (this.node === undefined) return true; // nothing of ours: create next

    const candidates = sortBySequence(children.filter((c) => !removed.has(c)));
    const i = candidates.findIndex((c) => c.name === this.node);
    if (i < 0) {
      this.log.warn('election: our candidate node is gone: joining again', { service: this.service, node: this.node });
      this.node = undefined;
      this.watching = undefined;
      this.lose('candidate node deleted');
      return true;
    }
    if (this.predecessor !== undefined && !children.includes(this.predecessor)) {
      const gone = this.predecessor;
      this.predecessor = undefined;
      this.log.info('election: predecessor gone', { service: this.service, node: this.node, predecessor: gone });
      this.emit('woken', { gone });
    }

    // The leader watches its own node (deleted by hand: join again); a follower its predecessor.
    const target = i === 0 ? this.node : candidates[i - 1]!.name;
    if (this.watching?.name !== target) {
      const arm: Arm = { name: target, fired: false };
      const exists = await this.zk.exists(this.full(target), () => this.fired(gen, arm));
      if (gen !== this.gen || this.stopping) return true;
      // The watch may fire before this read resumes (reply and event in one chunk).
      if (!exists || arm.fired) {
        this.relist = true;
        return true;
      }
      this.watching = arm;
    }

    if (i === 0) {
      if (this.currentRole !== 'leader') {
        this.currentRole = 'leader';
        this.predecessor = undefined;
        this.log.info('election: leader', { service: this.service, node: this.node, instance: this.instance });
        this.emit('leader');
      }
    } else if (this.predecessor !== target) {
      // Sequence numbers only grow, so a leader never becomes a follower with the same node.
      if (this.currentRole === 'leader') this.lose('a lower candidate appeared');
      this.currentRole = 'follower';
      this.predecessor = target;
      this.log.info('election: following', { service: this.service, node: this.node, predecessor: target });
      this.emit('follower', { predecessor: target });
    }
    return true;
  }

  private fired(gen: number, arm: Arm): void {
    if (this.stopping || this.stopped || gen !== this.gen || arm.fired) return;
    arm.fired = true;
    if (this.watching !== undefined && this.watching !== arm) return; // an older watch, no longer relevant
    this.wakes++;
    this.watching = undefined;
    this.relist = true;
    this.kick();
  }

  /** stop(): deletes our node and any node an interrupted create of this session may have left. */
  private async leave(gen: number): Promise<boolean> {
    if (this.node !== undefined) {
      const node = this.node;
      await ignoreNoNode(this.zk.remove(this.full(node)));
      if (gen === this.gen && this.node === node) {
        this.node = undefined;
        this.log.info('election: left', { service: this.service, node });
      }
      return true;
    }
    if ([...this.attempts.values()].some((a) => a.gen === gen)) {
      const children = await this.zk.getChildren(this.path).catch((err: unknown) => {
        if (zkCode(err) === ZK.NO_NODE) return [] as string[];
        throw err;
      });
      for (const c of children) if (this.attempts.has(attemptOf(c) ?? '')) await ignoreNoNode(this.zk.remove(this.full(c)));
      if (gen === this.gen) this.attempts.clear();
      return true;
    }
    this.gone = true;
    return false;
  }
}

/** The attempt id in `n_<id>_NNNNNNNNNN`, if the name has one. */
function attemptOf(name: string): string | undefined {
  const m = /^n_([0-9a-f]+)_\d{10}$/.exec(name);
  return m?.[1];
}

/** Candidate names with a trailing 10-digit sequence number, lowest first. */
export function sortBySequence(names: readonly string[]): Array<{ name: string; seq: number }> {
  const out: Array<{ name: string; seq: number }> = [];
  for (const name of names) {
    const tail = name.slice(-10);
    if (name.startsWith(PREFIX) && /^\d{10}$/.test(tail)) out.push({ name, seq: Number(tail) });
  }
  return out.sort((a, b) => a.seq - b.seq);
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
