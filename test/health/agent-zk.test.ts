/**
 * Backend-reported load and agent ports through a real ZooKeeper: a
 * member's `load` and `agentPort` in its znode data, and `drover register
 * --report-load` as a child process writing the load that discovery reads.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CreateMode, ZooKeeperConnection } from '../../src/discovery/zk.js';
import { idlePercent } from '../../src/health/orca.js';
import { eventually, ROOT, startHttpBackend, startProxy, type TestBackend } from '../fixtures/harness.js';
import { startZooKeeper, zookeeperAvailable, type ZooKeeperServer } from '../fixtures/zookeeper.js';
import { applied, spread, startAgent } from './helpers.js';

const missing = zookeeperAvailable();
const CLI = join(ROOT, 'dist', 'src', 'cli.js');
const id = (port: number) => `127.0.0.1:${port}`;

describe('reported load and agent ports in ZooKeeper', { skip: missing }, () => {
  let server: ZooKeeperServer;
  let zk: ZooKeeperConnection;
  let a: TestBackend;
  let b: TestBackend;
  before(async () => {
    [server, a, b] = await Promise.all([startZooKeeper(), startHttpBackend(), startHttpBackend()]);
    zk = new ZooKeeperConnection({ connect: server.connect, sessionTimeout: 5000, auth: [] });
  });
  after(async () => {
    zk?.close();
    await Promise.all([server?.destroy(), a?.stop(), b?.stop()]);
  });

  const put = async (path: string, data: object) => {
    await zk.mkdirp(path);
    return zk.create(`${path}/member_`, Buffer.from(JSON.stringify(data)), CreateMode.EPHEMERAL_SEQUENTIAL);
  };
  const proxyOn = (path: string, extra = '') =>
    startProxy(`
zookeeper: { connect: "${server.connect}", sessionTimeout: 5s }
services: { web: { zookeeper: ${path}, strategy: agent-load${extra} } }
listeners: [ { mode: http, bind: 127.0.0.1:0, service: web } ]`);

  it('gives a member registered with load 0.75 a report of 25 percent, and follows a new load', async () => {
    const nodeA = await put('/load/web', { host: '127.0.0.1', port: a.port, weight: 1, load: 0.75 });
    await put('/load/web', { host: '127.0.0.1', port: b.port, weight: 1 });
    const proxy = await proxyOn('/load/web');
    const balancer = proxy.drover.services.get('web')!;
    try {
      await eventually(() => balancer.backends.length === 2, 'both members listed');
      assert.equal(balancer.states.report(id(a.port))?.percent, 25);
      assert.equal(balancer.states.report(id(b.port)), undefined, 'no load field, no report');
      // A quarter of the weight against a full one: 20% of the requests.
      const seen = await spread(proxy.port(), 200);
      const shareA = (100 * (seen.get(a.port) ?? 0)) / 200;
      assert.ok(Math.abs(shareA - 20) <= 5, `expected about 20% on the loaded member, got ${shareA}%`);

      await zk.setData(nodeA, Buffer.from(JSON.stringify({ host: '127.0.0.1', port: a.port, weight: 1, load: 0.5 })));
      await eventually(() => balancer.states.report(id(a.port))?.percent === 50, 'the new load applied');
    } finally {
      await proxy.stop();
    }
  });

  it("asks a member's agent on the agentPort its znode data gives", async () => {
    const agent = await startAgent('drain\n');
    await put('/agentport/web', { host: '127.0.0.1', port: a.port, agentPort: agent.port });
    const proxy = await proxyOn('/agentport/web', ', agent: { interval: 50ms, timeout: 50ms }');
    try {
      await eventually(() => proxy.drover.services.get('web')!.backends.length === 1, 'the member listed');
      await applied(proxy.drover.health('web')!.agentChecks!, id(a.port), 'drain');
      assert.deepEqual(proxy.drover.services.get('web')!.states.drains(id(a.port)), ['agent']);
    } finally {
      await proxy.stop();
      await agent.close();
    }
  });

  it('drover register --report-load writes a load field that discovery picks up', async () => {
    const path = '/reported/web';
    const child = spawn(
      process.execPath,
      [CLI, 'register', '--zookeeper', server.connect, '--path', path, '--address', `127.0.0.1:${a.port}`, '--report-load', '--load-interval', '200ms'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    const proxy = await proxyOn(path);
    const balancer = proxy.drover.services.get('web')!;
    try {
      let node = '';
      await eventually(async () => {
        const children = (await zk.exists(path)) ? await zk.getChildren(path) : [];
        node = children[0] ? `${path}/${children[0]}` : '';
        return node !== '';
      }, `the registration node (output: ${output})`);
      const read = async () => {
        const { data, version } = await zk.getData(node);
        return { fields: JSON.parse(data!.toString('utf8')) as Record<string, unknown>, version };
      };
      const first = await read();
      assert.deepEqual(Object.keys(first.fields).sort(), ['host', 'load', 'port', 'weight']);
      const load = first.fields.load as number;
      // At most two decimals (0.58 * 100 is 57.99999999999999 in floating point, so compare with a tolerance).
      assert.ok(typeof load === 'number' && load >= 0 && load <= 1 && Math.abs(Math.round(load * 100) - load * 100) < 1e-9, `load ${load}`);
      // Written again every interval, even when unchanged, so reports stay fresh.
      await eventually(async () => (await read()).version >= first.version + 2, 'the load written again');
      await eventually(async () => {
        const now = (await read()).fields.load as number;
        return balancer.states.report(id(a.port))?.percent === idlePercent(now);
      }, 'the report follows the written load');
      child.kill('SIGTERM');
      const [code] = await exited;
      assert.equal(code, 0, output);
      assert.deepEqual(await zk.getChildren(path), [], 'the node is removed on SIGTERM');
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await proxy.stop();
    }
  });
});
