import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { CreateMode, ZooKeeperConnection } from '../../src/discovery/zk.js';
import { Logger } from '../../src/log.js';
import { eventually, request, startHttpBackend, startProxy, type TestBackend, type TestProxy } from '../fixtures/harness.js';
import { startEnsemble, startZooKeeper, zookeeperAvailable, type ZooKeeperServer } from '../fixtures/zookeeper.js';

const missing = zookeeperAvailable();

/** Registers `port` under `path` as Drover's own JSON, on `zk`'s session. */
async function registerMember(zk: ZooKeeperConnection, path: string, port: number, weight = 1): Promise<string> {
  await zk.mkdirp(path);
  return zk.create(`${path}/member_`, Buffer.from(JSON.stringify({ host: '127.0.0.1', port, weight })), CreateMode.EPHEMERAL_SEQUENTIAL);
}

/** Sends requests in `loops` parallel loops until stopped; counts answers by backend and failures. */
function steadyLoad(port: number, loops = 4) {
  let running = true;
  const byBackend = new Map<number, number>();
  const failures: string[] = [];
  const done = Promise.all(
    Array.from({ length: loops }, async () => {
      while (running) {
        try {
          const res = await request(port, { path: '/echo' });
          if (res.status !== 200) failures.push(`status ${res.status}: ${res.body}`);
          else {
            const b = Number(res.headers['x-backend']);
            byBackend.set(b, (byBackend.get(b) ?? 0) + 1);
          }
        } catch (err) {
          failures.push(String(err));
        }
      }
    }),
  );
  return {
    byBackend,
    failures,
    async stop() {
      running = false;
      await done;
    },
  };
}

describe('Drover following ZooKeeper', { skip: missing }, () => {
  let a: TestBackend;
  let b: TestBackend;
  let c: TestBackend;
  before(async () => {
    [a, b, c] = await Promise.all([startHttpBackend(), startHttpBackend(), startHttpBackend()]);
  });
  after(async () => {
    await Promise.all([a.stop(), b.stop(), c.stop()]);
  });

  it('serves through a 10 s ZooKeeper outage with zero failed requests, then follows new members', async () => {
    const server: ZooKeeperServer = await startZooKeeper();
    const registry = new ZooKeeperConnection({ connect: server.connect, sessionTimeout: 30_000, auth: [] });
    let proxy: TestProxy | undefined;
    try {
      await registerMember(registry, '/services/web', a.port);
      await registerMember(registry, '/services/web', b.port);
      proxy = await startProxy(`
zookeeper: { connect: "${server.connect}", sessionTimeout: 30s }
services: { web: { zookeeper: /services/web } }
listeners: [ { mode: http, bind: 127.0.0.1:0, service: web } ]`);
      const p = proxy;
      await eventually(() => p.drover.services.get('web')!.backends.length === 2, 'two members listed');
      assert.equal(p.drover.ready, true);
      const load = steadyLoad(p.port());
      await eventually(() => load.byBackend.size === 2, 'traffic on both backends');
      await server.stop();
      // The outage itself is the scenario: ten seconds with no ZooKeeper at all.
      await new Promise((r) => setTimeout(r, 10_000));
      await server.restart();
      await registerMember(registry, '/services/web', c.port);
      await eventually(() => load.byBackend.has(c.port), 'traffic on the member added after the outage', 30_000);
      await load.stop();
      assert.deepEqual(load.failures, []);
      assert.ok([...load.byBackend.values()].reduce((x, y) => x + y, 0) > 100);
    } finally {
      await proxy?.stop();
      registry.close();
      await server.destroy();
    }
  });

  it('starts, is not ready, and answers 503 while ZooKeeper is unreachable', async () => {
    const proxy = await startProxy(`
zookeeper: { connect: "127.0.0.1:1", sessionTimeout: 2s }
services: { web: { zookeeper: /services/web } }
listeners: [ { mode: http, bind: 127.0.0.1:0, service: web } ]`);
    try {
      assert.equal(proxy.drover.ready, false);
      const res = await request(proxy.port());
      assert.equal(res.status, 503);
    } finally {
      await proxy.stop();
    }
  });

  it('closes a connection that never reached a server without throwing', async () => {
    // node-zookeeper-client opens its socket on the next tick and throws if closed before.
    const zk = new ZooKeeperConnection({ connect: '127.0.0.1:1', sessionTimeout: 2000, auth: [] }, new Logger('error'));
    const closed = once(zk, 'closed');
    zk.close();
    await closed;
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(zk.connected, false);
  });

  it('keeps discovering through the loss of the ensemble leader', async () => {
    const ensemble = await startEnsemble(3);
    const registry = new ZooKeeperConnection({ connect: ensemble.connect, sessionTimeout: 20_000, auth: [] });
    let proxy: TestProxy | undefined;
    try {
      await registerMember(registry, '/services/api', a.port);
      proxy = await startProxy(`
zookeeper: { connect: "${ensemble.connect}", sessionTimeout: 20s }
services: { api: { zookeeper: { path: /services/api, format: drover } } }
listeners: [ { mode: http, bind: 127.0.0.1:0, service: api } ]`);
      const p = proxy;
      await eventually(() => p.drover.services.get('api')!.backends.length === 1, 'one member listed', 20_000);
      await ensemble.stopNode(await ensemble.leader());
      await ensemble.leader();
      await registerMember(registry, '/services/api', b.port);
      await eventually(() => p.drover.services.get('api')!.backends.length === 2, 'the member added after the election', 30_000);
      const seen = new Set<number>();
      for (let i = 0; i < 10; i++) seen.add(Number((await request(p.port())).headers['x-backend']));
      assert.deepEqual([...seen].sort(), [a.port, b.port].sort());
    } finally {
      await proxy?.stop();
      registry.close();
      await ensemble.destroy();
    }
  });
});
