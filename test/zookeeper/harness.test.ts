/** Tests of the real-ZooKeeper test harness itself (test/fixtures/zookeeper.ts). */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import {
  connectZk,
  nextZkEvent,
  zkClose,
  zkCreate,
  zkExists,
  zkGetData,
  zkSetData,
  zookeeper,
  type ZkClient,
} from '../fixtures/zk-client.js';
import { expireSession, fourLetter, startEnsemble, startZooKeeper, zookeeperAvailable, type Ensemble, type ZooKeeperServer } from '../fixtures/zookeeper.js';

const skip = zookeeperAvailable();

/** Retries `fn` (e.g. across a client's reconnect) every 50 ms until it succeeds or `ms` pass. */
async function eventually<T>(fn: () => Promise<T>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('zookeeperAvailable', () => {
  it('returns undefined or a message that says how to install ZooKeeper', () => {
    const reason = zookeeperAvailable();
    if (reason !== undefined) assert.match(reason, /apt-get update && apt-get install -y zookeeper/);
  });

  it('names ZOOKEEPER_HOME when it points nowhere', () => {
    const saved = process.env.ZOOKEEPER_HOME;
    process.env.ZOOKEEPER_HOME = '/nonexistent/zookeeper';
    try {
      assert.match(zookeeperAvailable() ?? '', /ZOOKEEPER_HOME.*\/nonexistent\/zookeeper.*apt-get install -y zookeeper/);
    } finally {
      if (saved === undefined) delete process.env.ZOOKEEPER_HOME;
      else process.env.ZOOKEEPER_HOME = saved;
    }
  });
});

describe('standalone ZooKeeper', { skip }, () => {
  let zk: ZooKeeperServer;
  const clients: ZkClient[] = [];
  const client = async (sessionTimeout?: number) => {
    const c = await connectZk(zk.connect, sessionTimeout === undefined ? {} : { sessionTimeout });
    clients.push(c);
    return c;
  };

  before(async () => {
    zk = await startZooKeeper();
  });

  after(async () => {
    await Promise.all(clients.map(zkClose));
    const { pid, dir } = zk;
    await zk.destroy();
    assert.equal(alive(pid), false, 'the JVM is gone after destroy()');
    assert.equal(existsSync(dir), false, 'the data directory is removed by destroy()');
  });

  it('starts on 127.0.0.1 and answers four-letter words', async () => {
    assert.equal(zk.connect, `127.0.0.1:${zk.port}`);
    assert.ok(zk.pid > 0 && alive(zk.pid));
    assert.equal(await fourLetter(zk.port, 'ruok'), 'imok');
    assert.match(await fourLetter(zk.port, 'srvr'), /^Mode: standalone$/m);
    assert.match(await fourLetter(zk.port, 'conf'), /tickTime=500/);
  });

  it('serves node-zookeeper-client: create and read a znode', async () => {
    const c = await client();
    assert.equal(await zkCreate(c, '/harness', 'hello'), '/harness');
    assert.equal(await zkGetData(c, '/harness'), 'hello');
    await zkSetData(c, '/harness', 'world');
    assert.equal(await zkGetData(c, '/harness'), 'world');
  });

  it('stop + restart keeps persistent znodes, the port, and a live session', async () => {
    const c = await client(6000);
    await zkCreate(c, '/survives', 'yes');
    const session = c.getSessionId().toString('hex');
    const oldPid = zk.pid;

    const disconnected = nextZkEvent(c, 'disconnected');
    await zk.stop();
    assert.equal(alive(oldPid), false);
    assert.equal(zk.pid, 0);
    await disconnected;
    await assert.rejects(fourLetter(zk.port, 'ruok'));

    const reconnected = nextZkEvent(c, 'connected');
    await zk.restart();
    assert.notEqual(zk.pid, oldPid);
    await reconnected;
    assert.equal(c.getSessionId().toString('hex'), session, 'the same session survives a short outage');
    assert.equal(await zkGetData(c, '/survives'), 'yes');
  });

  it('expireSession expires a live session: the client sees expired, its ephemerals vanish', async () => {
    const victim = await client(2000);
    const observer = await client();
    await zkCreate(victim, '/ephemeral', 'x', zookeeper.CreateMode.EPHEMERAL);
    assert.equal(await zkExists(observer, '/ephemeral'), true);

    const expired = nextZkEvent(victim, 'expired', 10_000);
    await expireSession(zk.connect, victim.getSessionId(), victim.getSessionPassword());
    await expired;
    assert.equal(await zkExists(observer, '/ephemeral'), false);
    assert.equal(await zkGetData(observer, '/harness'), 'world', 'other sessions are untouched');

    // The session is gone: expiring it again is reported, not silently ignored.
    await assert.rejects(expireSession(zk.connect, victim.getSessionId(), victim.getSessionPassword()), /not live/);
    const wrongPassword = Buffer.alloc(16, 7);
    await assert.rejects(expireSession(zk.connect, observer.getSessionId(), wrongPassword), /not live/);
    // (ZooKeeper drops the observer's connection before it checks the password; the session survives.)
    assert.equal(await eventually(() => zkGetData(observer, '/harness')), 'world', 'a wrong password does not end the session');
  });
});

describe('3-node ZooKeeper ensemble', { skip }, () => {
  let ens: Ensemble;
  let c: ZkClient | undefined;

  before(async () => {
    ens = await startEnsemble(3);
  });

  after(async () => {
    if (c) await zkClose(c);
    const pids = ens.pids.filter((p) => p > 0);
    await ens.destroy();
    for (const pid of pids) assert.equal(alive(pid), false);
  });

  it('elects one leader; the others follow', async () => {
    assert.equal(ens.connect, ens.ports.map((p) => `127.0.0.1:${p}`).join(','));
    const modes = await ens.modes();
    assert.deepEqual([...modes].sort(), ['follower', 'follower', 'leader']);
    assert.equal(await ens.leader(), modes.indexOf('leader'));
  });

  it('loses its leader, elects another, and a client of all three keeps reading and writing', async () => {
    c = await connectZk(ens.connect, { sessionTimeout: 10_000 });
    await zkCreate(c, '/quorum', 'before');

    const old = await ens.leader();
    await ens.stopNode(old);
    assert.equal(ens.pids[old], 0);
    const next = await ens.leader();
    assert.notEqual(next, old);
    await ens.waitServing();

    // The client may be reconnecting to another node right now; retry until it is back.
    const client = c;
    await eventually(() => zkSetData(client, '/quorum', 'after'));
    assert.equal(await zkGetData(c, '/quorum'), 'after');
    assert.equal(c.getState(), zookeeper.State.SYNC_CONNECTED, 'the session survived the leader change');

    // The old leader comes back as a follower and catches up.
    await ens.startNode(old);
    assert.equal((await ens.modes())[old], 'follower');
    const direct = await connectZk(`127.0.0.1:${ens.ports[old]}`);
    try {
      assert.equal(await zkGetData(direct, '/quorum'), 'after');
    } finally {
      await zkClose(direct);
    }
  });
});
