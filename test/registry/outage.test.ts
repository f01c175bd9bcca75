import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ZooKeeperConnection } from '../../src/discovery/zk.js';
import { register } from '../../src/registry/register.js';
import { eventually } from '../fixtures/harness.js';
import { startZooKeeper, zookeeperAvailable } from '../fixtures/zookeeper.js';

describe('registration through a long ZooKeeper outage', { skip: zookeeperAvailable() }, () => {
  it('comes back after an outage longer than its session timeout, as exactly one node', { timeout: 90_000 }, async () => {
    const server = await startZooKeeper();
    const reader = new ZooKeeperConnection({ connect: server.connect, sessionTimeout: 30_000, auth: [] });
    const reg = await register({ zookeeper: { connect: server.connect, sessionTimeout: 4000 }, path: '/services/outage', address: '127.0.0.1:9001' });
    const ours = async () => {
      const children = await reader.getChildren('/services/outage');
      // A child can go between the listing and the read (the old session ending).
      const datas = await Promise.all(children.map((c) => reader.getData(`/services/outage/${c}`).catch(() => undefined)));
      return datas.filter((d) => d && String(d.data).includes('"port":9001')).length;
    };
    try {
      assert.equal(await ours(), 1);
      await server.stop();
      // The scenario: longer than the registration's session timeout and its
      // client's reconnect watchdog (10 s), so its session is given up.
      await new Promise((r) => setTimeout(r, 12_000));
      await server.restart();
      // The restarted server revives the old session's timer; only when it
      // runs out (4 s, nobody pinging it) does the old node go. Wait past it.
      await new Promise((r) => setTimeout(r, 6_000));
      await eventually(async () => (await ours()) === 1 && reg.path !== undefined && (await reader.exists(reg.path)), 'exactly one live node', 30_000);
    } finally {
      await reg.close();
      reader.close();
      await server.destroy();
    }
  });
});
