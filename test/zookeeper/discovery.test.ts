import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import zookeeper from 'node-zookeeper-client';
import type { Member } from '../../src/config/schema.js';
import { CreateMode, ZooKeeperConnection } from '../../src/discovery/zk.js';
import { ZooKeeperSource, type ZooKeeperServiceOptions } from '../../src/discovery/zookeeper.js';
import { Logger } from '../../src/log.js';
import { startZooKeeper, zookeeperAvailable, type ZooKeeperServer } from '../fixtures/zookeeper.js';

const missing = zookeeperAvailable();
/** All rights for the identity that creates the node (missing from the package's types). */
const CREATOR_ALL = (zookeeper.ACL as unknown as { CREATOR_ALL_ACL: zookeeper.ACL[] }).CREATOR_ALL_ACL;
const ids = (members: readonly Member[]) => members.map((m) => `${m.host}:${m.port}`).sort();

/** A quiet logger that remembers its lines, for asserting on warnings. */
function memoryLog(): Logger & { lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const log = new Logger('debug', (line) => lines.push(JSON.parse(line) as Record<string, unknown>));
  return Object.assign(log, { lines });
}

/** Follows a path with a ZooKeeperSource; `until` resolves when a delivered list satisfies a condition. */
function follow(zk: ZooKeeperConnection, options: ZooKeeperServiceOptions, log = memoryLog()) {
  const source = new ZooKeeperSource(zk, options, log, 'test');
  let latest: readonly Member[] | undefined;
  let deliveries = 0;
  const waiters: Array<{ test: (m: readonly Member[]) => boolean; resolve: (m: readonly Member[]) => void }> = [];
  source.start((members) => {
    latest = members;
    deliveries++;
    for (const w of [...waiters]) {
      if (w.test(members)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(members);
      }
    }
  });
  return {
    source,
    log,
    deliveries: () => deliveries,
    until(test: (m: readonly Member[]) => boolean, what: string, limitMs = 10_000): Promise<readonly Member[]> {
      if (latest && test(latest)) return Promise.resolve(latest);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`timed out waiting for: ${what}; last: ${JSON.stringify(latest && ids(latest))}`)), limitMs);
        waiters.push({
          test,
          resolve: (m) => {
            clearTimeout(timer);
            resolve(m);
          },
        });
      });
    },
    stop: () => source.stop(),
  };
}

describe('ZooKeeper discovery', { skip: missing }, () => {
  let server: ZooKeeperServer;
  let writer: ZooKeeperConnection;
  let reader: ZooKeeperConnection;
  before(async () => {
    server = await startZooKeeper();
    writer = new ZooKeeperConnection({ connect: server.connect, sessionTimeout: 5000, auth: [] });
    reader = new ZooKeeperConnection({ connect: server.connect, sessionTimeout: 5000, auth: [] });
  });
  after(async () => {
    writer.close();
    reader.close();
    await server.destroy();
  });

  const put = (path: string, data: string) => writer.create(path, Buffer.from(data), CreateMode.EPHEMERAL);

  it('reads every registry format, skipping an unreadable member beside valid ones', async () => {
    await writer.mkdirp('/formats');
    await put('/formats/drover', JSON.stringify({ host: '10.0.0.1', port: 8001, weight: 3, zone: 'a', meta: { v: '2' } }));
    await put(
      '/formats/curator',
      JSON.stringify({ name: 'web', id: 'b0c1', address: '10.0.0.2', port: 8002, sslPort: null, payload: null, registrationTimeUTC: 1, serviceType: 'DYNAMIC', uriSpec: null }),
    );
    await put('/formats/curator-ssl', JSON.stringify({ name: 'web', id: 'b0c2', address: '10.0.0.3', port: null, sslPort: 8443, extra: true }));
    await put(
      '/formats/member_0000000001',
      JSON.stringify({ serviceEndpoint: { host: '10.0.0.4', port: 8004 }, additionalEndpoints: { admin: { host: '10.0.0.4', port: 9990 } }, status: 'ALIVE', shard: 1 }),
    );
    await put('/formats/member_0000000002', JSON.stringify({ serviceEndpoint: { host: '10.0.0.5', port: 8005 }, status: 'DEAD' }));
    await put('/formats/nerve_0000000003', JSON.stringify({ host: '10.0.0.6', port: 8006, name: 'web-6', weight: 2, labels: { az: 'b' } }));
    // The plain recipe of a hand-made registry: /service_registry/n_0000000007 holding host:port.
    await put('/formats/n_0000000007', '10.0.0.7:8007');
    await put('/formats/n_0000000008', 'http://10.0.0.8:8008\n');
    await put('/formats/broken', '{"host": "10.0.0.9", "port": "not a port"');
    const f = follow(reader, { path: '/formats', format: 'auto' });
    try {
      const members = await f.until((m) => m.length === 7, 'seven readable members');
      assert.deepEqual(ids(members), [
        '10.0.0.1:8001',
        '10.0.0.2:8002',
        '10.0.0.3:8443',
        '10.0.0.4:8004',
        '10.0.0.6:8006',
        '10.0.0.7:8007',
        '10.0.0.8:8008',
        // 10.0.0.5 is DEAD, 10.0.0.9 unreadable
      ].sort());
      const weight = (host: string) => members.find((m) => m.host === host)!.weight;
      assert.equal(weight('10.0.0.1'), 3);
      assert.equal(weight('10.0.0.6'), 2);
      assert.equal(f.source.invalidMembers, 1);
      const warnings = f.log.lines.filter((l) => l.level === 'warn');
      assert.equal(warnings.length, 1);
      assert.equal(warnings[0]!.znode, '/formats/broken');
    } finally {
      await f.stop();
    }
  });

  it('picks a Finagle additional endpoint when asked', async () => {
    await writer.mkdirp('/finagle');
    await put('/finagle/member_0000000001', JSON.stringify({ serviceEndpoint: { host: '10.1.0.1', port: 80 }, additionalEndpoints: { admin: { host: '10.1.0.1', port: 9990 } }, status: 'ALIVE' }));
    const f = follow(reader, { path: '/finagle', format: 'finagle', endpoint: 'admin' });
    try {
      assert.deepEqual(ids(await f.until((m) => m.length === 1, 'one member')), ['10.1.0.1:9990']);
    } finally {
      await f.stop();
    }
  });

  it('follows members created, changed and deleted, within a second', async () => {
    await writer.mkdirp('/live');
    const f = follow(reader, { path: '/live', format: 'drover' });
    try {
      await f.until((m) => m.length === 0, 'the empty list');
      let started = Date.now();
      const node = await put('/live/a', JSON.stringify({ host: '10.2.0.1', port: 80 }));
      await f.until((m) => m.length === 1, 'the new member', 1000);
      assert.ok(Date.now() - started < 1000);
      started = Date.now();
      await writer.setData(node, Buffer.from(JSON.stringify({ host: '10.2.0.1', port: 80, weight: 7, drain: true })));
      const changed = await f.until((m) => m[0]?.weight === 7, 'the new weight', 1000);
      assert.equal(changed[0]!.drain, true);
      started = Date.now();
      await writer.remove(node);
      await f.until((m) => m.length === 0, 'the member gone', 1000);
      assert.ok(Date.now() - started < 1000);
    } finally {
      await f.stop();
    }
  });

  it('ends in the exact set after 50 members register and 25 leave concurrently, in few rebuilds', async () => {
    await writer.mkdirp('/burst');
    const f = follow(reader, { path: '/burst', format: 'auto' });
    try {
      await f.until((m) => m.length === 0, 'the empty list');
      const before = f.deliveries();
      const paths = await Promise.all(
        Array.from({ length: 50 }, (_, i) => writer.create('/burst/member_', Buffer.from(`10.3.0.${i + 1}:80`), CreateMode.EPHEMERAL_SEQUENTIAL)),
      );
      await Promise.all(paths.filter((_, i) => i % 2 === 0).map((p) => writer.remove(p)));
      const expected = Array.from({ length: 50 }, (_, i) => `10.3.0.${i + 1}:80`)
        .filter((_, i) => i % 2 === 1)
        .sort();
      const members = await f.until((m) => m.length === 25 && ids(m).join() === expected.join(), 'the 25 remaining members');
      assert.deepEqual(ids(members), expected);
      assert.ok(f.deliveries() - before <= 10, `${f.deliveries() - before} deliveries for 75 changes`);
    } finally {
      await f.stop();
    }
  });

  it('watches a path that does not exist yet, and a deleted path means no members', async () => {
    const f = follow(reader, { path: '/later/web', format: 'plain' });
    try {
      await f.until((m) => m.length === 0, 'no members while the path is missing');
      await writer.mkdirp('/later/web');
      await writer.create('/later/web/n_1', Buffer.from('10.4.0.1:80'), CreateMode.PERSISTENT);
      await f.until((m) => m.length === 1, 'the member under the new path');
      await writer.remove('/later/web/n_1');
      await writer.remove('/later/web');
      await f.until((m) => m.length === 0, 'no members after the path is deleted');
      await writer.mkdirp('/later/web');
      await writer.create('/later/web/n_2', Buffer.from('10.4.0.2:80'), CreateMode.PERSISTENT);
      assert.deepEqual(ids(await f.until((m) => m.length === 1, 'the path back')), ['10.4.0.2:80']);
    } finally {
      await f.stop();
    }
  });

  it('resumes after its session expires, re-listing everything', async () => {
    const { expireSession } = await import('../fixtures/zookeeper.js');
    const own = new ZooKeeperConnection({ connect: server.connect, sessionTimeout: 4000, auth: [] });
    await writer.mkdirp('/expiry');
    const f = follow(own, { path: '/expiry', format: 'plain' });
    try {
      await writer.create('/expiry/n_1', Buffer.from('10.5.0.1:80'), CreateMode.PERSISTENT);
      await f.until((m) => m.length === 1, 'the first member');
      await new Promise<void>((resolve) => (own.connected ? resolve() : own.once('connected', () => resolve())));
      const { id, password } = own.session();
      const expired = new Promise<void>((resolve) => own.once('expired', () => resolve()));
      await expireSession(server.connect, id, password);
      await expired;
      assert.equal(own.expirations, 1);
      await writer.create('/expiry/n_2', Buffer.from('10.5.0.2:80'), CreateMode.PERSISTENT);
      assert.deepEqual(ids(await f.until((m) => m.length === 2, 'the member added after the expiry')), ['10.5.0.1:80', '10.5.0.2:80']);
    } finally {
      await f.stop();
      own.close();
    }
  });

  it('keeps the last members while ZooKeeper is down, and follows changes once it is back', async () => {
    await writer.mkdirp('/outage');
    await writer.create('/outage/n_1', Buffer.from('10.6.0.1:80'), CreateMode.PERSISTENT);
    const own = new ZooKeeperConnection({ connect: server.connect, sessionTimeout: 20000, auth: [] });
    const f = follow(own, { path: '/outage', format: 'plain' });
    try {
      await f.until((m) => m.length === 1, 'the member');
      const deliveries = f.deliveries();
      const down = new Promise<void>((resolve) => own.once('disconnected', () => resolve()));
      await server.stop();
      await down;
      await server.restart();
      await writer.create('/outage/n_2', Buffer.from('10.6.0.2:80'), CreateMode.PERSISTENT);
      const members = await f.until((m) => m.length === 2, 'the member added after the outage', 20_000);
      assert.deepEqual(ids(members), ['10.6.0.1:80', '10.6.0.2:80']);
      assert.ok(f.deliveries() > deliveries);
    } finally {
      await f.stop();
      own.close();
    }
  });

  it('reads through a chroot and with digest auth, and not without the credentials', async () => {
    const admin = new ZooKeeperConnection({ connect: server.connect, sessionTimeout: 5000, auth: [{ scheme: 'digest', credentials: 'drover:secret' }] });
    try {
      await admin.mkdirp('/tenant/services');
      // Readable only by the digest identity drover:secret (CREATOR_ALL_ACL).
      await new Promise<void>((resolve, reject) =>
        (admin as unknown as { client: zookeeper.Client }).client.create(
          '/tenant/services/web',
          Buffer.alloc(0),
          CREATOR_ALL,
          zookeeper.CreateMode.PERSISTENT,
          (err) => (err ? reject(err) : resolve()),
        ),
      );
      await new Promise<void>((resolve, reject) =>
        (admin as unknown as { client: zookeeper.Client }).client.create(
          '/tenant/services/web/n_1',
          Buffer.from('10.7.0.1:80'),
          CREATOR_ALL,
          zookeeper.CreateMode.PERSISTENT,
          (err) => (err ? reject(err) : resolve()),
        ),
      );
      const chrooted = new ZooKeeperConnection({ connect: `${server.connect}/tenant`, sessionTimeout: 5000, auth: [{ scheme: 'digest', credentials: 'drover:secret' }] });
      const f = follow(chrooted, { path: '/services/web', format: 'plain' });
      const anonymous = new ZooKeeperConnection({ connect: `${server.connect}/tenant`, sessionTimeout: 5000, auth: [] });
      const g = follow(anonymous, { path: '/services/web', format: 'plain' });
      try {
        assert.deepEqual(ids(await f.until((m) => m.length === 1, 'the member through chroot and auth')), ['10.7.0.1:80']);
        await g.until(() => true, 'a listing').catch(() => undefined);
        // Without credentials the member's data cannot be read: nothing is delivered or it is skipped.
        const warned = g.log.lines.some((l) => l.level === 'warn');
        assert.ok(warned, 'reading without credentials is reported');
      } finally {
        await f.stop();
        await g.stop();
        chrooted.close();
        anonymous.close();
      }
    } finally {
      admin.close();
    }
  });
});
