import assert from 'node:assert/strict';
import type { EventEmitter } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { ZK, ZooKeeperConnection } from '../../src/discovery/zk.js';
import { LeaderElection, sortBySequence } from '../../src/health/election.js';
import { Logger } from '../../src/log.js';
import { expireSession, startZooKeeper, zookeeperAvailable, type ZooKeeperServer } from '../fixtures/zookeeper.js';

const missing = zookeeperAvailable();

type Line = Record<string, unknown>;

/** A quiet logger that remembers its lines. */
function memoryLog(): Logger & { lines: Line[] } {
  const lines: Line[] = [];
  const log = new Logger('debug', (line) => lines.push(JSON.parse(line) as Line));
  return Object.assign(log, { lines });
}

/** Resolves with the first argument of `emitter`'s next event among `events`; rejects after `limitMs`. */
function next<T = unknown>(emitter: EventEmitter, events: string | readonly string[], limitMs = 10_000): Promise<T> {
  const names = typeof events === 'string' ? [events] : events;
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      for (const e of names) emitter.off(e, on);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out waiting for ${names.join(' or ')}`));
    }, limitMs);
    const on = (value: T) => {
      done();
      resolve(value);
    };
    for (const e of names) emitter.on(e, on);
  });
}

const base = (path: string | undefined) => path?.slice(path.lastIndexOf('/') + 1);

interface Candidate {
  readonly name: string;
  readonly zk: ZooKeeperConnection;
  readonly election: LeaderElection;
  readonly log: Logger & { lines: Line[] };
  /** Log lines with this message. */
  count(msg: string): number;
  lines(msg: string): Line[];
}

describe('leader election', { skip: missing }, () => {
  let server: ZooKeeperServer;
  let observer: ZooKeeperConnection;
  const open: Candidate[] = [];
  let serviceNo = 0;

  before(async () => {
    server = await startZooKeeper();
    observer = new ZooKeeperConnection({ connect: server.connect, sessionTimeout: 5000, auth: [] });
  });
  after(async () => {
    await Promise.all(open.map((c) => c.election.stop()));
    for (const c of open) c.zk.close();
    observer.close();
    await server.destroy();
  });

  /** One candidate on its own connection (its own session), started; resolves once it leads or follows. */
  async function join(service: string, name: string, zk = new ZooKeeperConnection({ connect: server.connect, sessionTimeout: 4000, auth: [] })): Promise<Candidate> {
    const log = memoryLog();
    const election = new LeaderElection(zk, service, name, log);
    const c: Candidate = {
      name,
      zk,
      election,
      log,
      count: (msg) => log.lines.filter((l) => l.msg === msg).length,
      lines: (msg) => log.lines.filter((l) => l.msg === msg),
    };
    open.push(c);
    const settled = next(election, ['leader', 'follower']);
    election.start();
    await settled;
    return c;
  }

  /** `n` candidates joined one after another, so candidate i holds the i-th sequence number. */
  async function group(n: number): Promise<{ service: string; cs: Candidate[] }> {
    const service = `svc${++serviceNo}`;
    const cs: Candidate[] = [];
    for (let i = 0; i < n; i++) cs.push(await join(service, `candidate-${i}`));
    return { service, cs };
  }

  /**
   * A round trip on each candidate's connection. ZooKeeper delivers a watch
   * event before the reply to any later request on the same connection, so
   * afterwards every watch that a past change fired has reached its candidate.
   */
  async function barrier(cs: readonly Candidate[]): Promise<void> {
    await Promise.all(cs.map((c) => c.zk.exists('/')));
  }

  async function leave(cs: readonly Candidate[]): Promise<void> {
    await Promise.all(cs.map((c) => c.election.stop()));
    for (const c of cs) c.zk.close();
  }

  it('orders candidates by the trailing sequence number, whatever the attempt id', () => {
    const sorted = sortBySequence(['n_ffff_0000000002', 'n_0000_0000000010', 'n_aaaa_0000000001', 'lock', 'n_bbbb_12']);
    assert.deepEqual(
      sorted.map((c) => c.name),
      ['n_aaaa_0000000001', 'n_ffff_0000000002', 'n_0000_0000000010'],
    );
  });

  it('elects exactly one leader; each follower watches only its immediate predecessor', async () => {
    const { service, cs } = await group(5);
    try {
      assert.deepEqual(
        cs.map((c) => c.election.role),
        ['leader', 'follower', 'follower', 'follower', 'follower'],
      );
      assert.equal(cs.reduce((n, c) => n + c.count('election: leader'), 0), 1);
      const children = sortBySequence(await observer.getChildren(`/drover/election/${service}`)).map((c) => c.name);
      assert.deepEqual(children, cs.map((c) => base(c.election.nodePath)));
      for (let i = 1; i < cs.length; i++) {
        const following = cs[i]!.lines('election: following');
        assert.equal(following.length, 1);
        assert.equal(following[0]!.predecessor, children[i - 1], `candidate ${i} watches candidate ${i - 1}`);
      }
      // Each node holds its candidate's name.
      const data = await observer.getData(`/drover/election/${service}/${children[2]}`);
      assert.equal(data.data?.toString(), 'candidate-2');
    } finally {
      await leave(cs);
    }
  });

  it("the leader's death wakes exactly one follower, which becomes leader", async () => {
    const { cs } = await group(5);
    try {
      const [first, second, ...rest] = cs as [Candidate, Candidate, ...Candidate[]];
      const dead = base(first.election.nodePath);
      const started = Date.now();
      const led = next(second.election, 'leader');
      first.zk.close(); // the session ends: its ephemeral node is deleted at once
      await led;
      const handover = Date.now() - started;
      assert.ok(handover < 2000, `handover took ${handover} ms`);
      assert.equal(second.election.isLeader, true);
      assert.equal(first.election.isLeader, false);
      assert.deepEqual(
        second.lines('election: predecessor gone').map((l) => l.predecessor),
        [dead],
      );
      assert.equal(second.count('election: leader'), 1);
      await barrier(rest);
      for (const c of rest) {
        assert.equal(c.election.wakes, 0, `${c.name} was not woken`);
        assert.equal(c.count('election: predecessor gone'), 0);
        assert.equal(c.count('election: following'), 1);
        assert.equal(c.count('election: leader'), 0);
      }
      assert.equal(second.election.wakes, 1);
    } finally {
      await leave(cs);
    }
  });

  it('a middle candidate leaving re-links only its successor, to its predecessor', async () => {
    const { cs } = await group(5);
    try {
      const [c0, c1, c2, c3, c4] = cs as [Candidate, Candidate, Candidate, Candidate, Candidate];
      const middle = base(c2.election.nodePath);
      const before = base(c1.election.nodePath);
      const relinked = next<{ predecessor: string }>(c3.election, 'follower');
      c2.zk.close();
      assert.equal((await relinked).predecessor, before);
      assert.deepEqual(
        c3.lines('election: predecessor gone').map((l) => l.predecessor),
        [middle],
      );
      assert.deepEqual(
        c3.lines('election: following').map((l) => l.predecessor),
        [middle, before],
      );
      await barrier([c0, c1, c4]);
      for (const c of [c0, c1, c4]) {
        assert.equal(c.election.wakes, 0, `${c.name} was not woken`);
        assert.equal(c.count('election: predecessor gone'), 0);
      }
      assert.equal(c0.election.isLeader, true);
      assert.equal(cs.reduce((n, c) => n + c.count('election: leader'), 0), 1);
      assert.equal(c1.count('election: following'), 1);
      assert.equal(c4.count('election: following'), 1);
    } finally {
      await leave(cs);
    }
  });

  it("stop() deletes the candidate's node at once and ignores watches that fire later", async () => {
    const { service, cs } = await group(3);
    try {
      const [c0, c1, c2] = cs as [Candidate, Candidate, Candidate];
      const gone = base(c1.election.nodePath);
      const relinked = next<{ predecessor: string }>(c2.election, 'follower');
      await c1.election.stop();
      assert.equal(c1.election.role, 'none');
      assert.equal(c1.election.nodePath, undefined);
      assert.equal(c1.count('election: left'), 1);
      assert.equal((await relinked).predecessor, base(c0.election.nodePath));
      const children = await observer.getChildren(`/drover/election/${service}`);
      assert.equal(children.length, 2);
      assert.ok(!children.includes(gone!));
      // c1's exists() watch on c0 is still registered in its client: let it fire.
      const lines = c1.log.lines.length;
      const events: string[] = [];
      for (const e of ['leader', 'follower', 'woken', 'lost']) c1.election.on(e, () => events.push(e));
      const led = next(c2.election, 'leader');
      c0.zk.close();
      await led;
      await barrier([c1]);
      assert.deepEqual(events, []);
      assert.equal(c1.log.lines.length, lines);
      assert.equal(c1.election.wakes, 0);
      await c1.election.stop(); // idempotent
    } finally {
      await leave(cs);
    }
  });

  it('hands leadership over when the leader’s session expires; the old leader steps down and rejoins last', async () => {
    const { service, cs } = await group(3);
    try {
      const [c0, c1, c2] = cs as [Candidate, Candidate, Candidate];
      const { id, password } = c0.zk.session();
      const lost = next<{ wasLeader: boolean; reason: string }>(c0.election, 'lost');
      const led = next(c1.election, 'leader');
      const rejoined = next<{ predecessor: string }>(c0.election, 'follower');
      await expireSession(server.connect, id, password);
      const was = await lost;
      assert.equal(was.wasLeader, true);
      assert.equal(c0.election.isLeader, false);
      await led;
      // The new node of the old leader is the last: it follows c2.
      assert.equal((await rejoined).predecessor, base(c2.election.nodePath));
      assert.deepEqual(
        cs.map((c) => c.election.role),
        ['follower', 'leader', 'follower'],
      );
      assert.equal(c0.count('election: stepping down'), 1);
      assert.equal(c2.election.wakes, 0);
      const children = sortBySequence(await observer.getChildren(`/drover/election/${service}`)).map((c) => c.name);
      assert.deepEqual(children, [c1, c2, c0].map((c) => base(c.election.nodePath)));
    } finally {
      await leave(cs);
    }
  });

  it('re-lists at once when the predecessor is gone before its watch is set; a leader whose node is deleted rejoins', async () => {
    /** Deletes the node it is asked to watch just before watching it (the first time). */
    class Racy extends ZooKeeperConnection {
      raced: string | undefined;
      override async exists(path: string, watch?: () => void): Promise<boolean> {
        if (watch && !this.raced && !path.endsWith(this.mine ?? '\0')) {
          this.raced = path;
          await super.remove(path);
        }
        return super.exists(path, watch);
      }
      mine: string | undefined;
      override async create(path: string, data: Buffer | null, mode: number): Promise<string> {
        const created = await super.create(path, data, mode);
        this.mine = created.slice(created.lastIndexOf('/') + 1);
        return created;
      }
    }
    const service = `svc${++serviceNo}`;
    const first = await join(service, 'first');
    const firstNode = base(first.election.nodePath);
    const firstLost = next<{ reason: string; wasLeader: boolean }>(first.election, 'lost');
    const firstBack = next<{ predecessor: string }>(first.election, 'follower');
    const racy = new Racy({ connect: server.connect, sessionTimeout: 4000, auth: [] });
    const second = await join(service, 'second', racy);
    try {
      assert.equal(racy.raced, `/drover/election/${service}/${firstNode}`);
      assert.equal(second.election.role, 'leader');
      assert.equal(second.count('election: following'), 0, 'it never announced following a node that was gone');
      assert.equal(second.count('election: predecessor gone'), 0);
      // The old leader's watch on its own node tells it the node is gone: it steps down and rejoins behind.
      assert.deepEqual(await firstLost, { reason: 'candidate node deleted', wasLeader: true });
      assert.equal((await firstBack).predecessor, base(second.election.nodePath));
      assert.equal(first.count('election: our candidate node is gone: joining again'), 1);
    } finally {
      await leave([first, second]);
    }
  });

  it('keeps every watch through a ZooKeeper restart: no new leader, and a later death still wakes only the successor', async () => {
    const { cs } = await group(3);
    try {
      const [c0, c1, c2] = cs as [Candidate, Candidate, Candidate];
      const back = Promise.all(cs.map((c) => next(c.zk, 'connected', 15_000)));
      await server.stop();
      await server.restart();
      await back;
      assert.deepEqual(
        cs.map((c) => c.election.role),
        ['leader', 'follower', 'follower'],
      );
      const led = next(c1.election, 'leader');
      c0.zk.close();
      await led;
      await barrier([c2]);
      assert.equal(c2.election.wakes, 0);
      assert.equal(cs.reduce((n, c) => n + c.count('election: leader'), 0), 2);
      assert.equal(cs.reduce((n, c) => n + c.count('election: predecessor gone'), 0), 1);
    } finally {
      await leave(cs);
    }
  });

  it('a create whose reply is lost is adopted, not repeated; a duplicate create is removed', async () => {
    /** Creates as asked, then fails as if the reply were lost (first call), or creates twice (second call). */
    class Flaky extends ZooKeeperConnection {
      creates = 0;
      override async create(path: string, data: Buffer | null, mode: number): Promise<string> {
        this.creates++;
        const created = await super.create(path, data, mode);
        if (this.creates === 1) throw Object.assign(new Error('connection loss'), { name: 'CONNECTION_LOSS', getCode: () => ZK.CONNECTION_LOSS });
        if (this.creates === 2) return super.create(path, data, mode);
        return created;
      }
    }
    const service = `svc${++serviceNo}`;
    const leader = await join(service, 'leader');
    const flaky = new Flaky({ connect: server.connect, sessionTimeout: 4000, auth: [] });
    const lossy = await join(service, 'lossy', flaky);
    try {
      assert.equal(flaky.creates, 1);
      assert.equal(lossy.count('election: adopting our candidate node left by an interrupted create'), 1);
      assert.equal(lossy.election.role, 'follower');
      let children = sortBySequence(await observer.getChildren(`/drover/election/${service}`)).map((c) => c.name);
      assert.deepEqual(children, [leader, lossy].map((c) => base(c.election.nodePath)));

      // Session expiry: the next create happens twice; the listing removes the other one.
      const rejoined = next(lossy.election, 'follower');
      const { id, password } = flaky.session();
      await expireSession(server.connect, id, password);
      await rejoined;
      assert.equal(flaky.creates, 2);
      assert.equal(lossy.count('election: removing a duplicate candidate node of ours'), 1);
      children = sortBySequence(await observer.getChildren(`/drover/election/${service}`)).map((c) => c.name);
      assert.deepEqual(children, [leader, lossy].map((c) => base(c.election.nodePath)));
    } finally {
      await leave([leader, lossy]);
    }
  });
});
