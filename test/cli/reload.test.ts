import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  closed,
  connect,
  freePort,
  readLine,
  request,
  startBackend,
  startCli,
  startHttpBackend,
  startProxy,
  type TestBackend,
} from '../fixtures/harness.js';

/** One GET through a keep-alive agent (or a fresh connection without one); resolves with the status or the error. */
function get(port: number, agent: Agent | false): Promise<number | Error> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/echo', agent }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
      res.on('error', resolve);
    });
    req.on('error', resolve);
    req.end();
  });
}

describe('hot reload', () => {
  let a: TestBackend;
  let b: TestBackend;
  let echo: TestBackend;
  let dir: string;
  before(async () => {
    [a, b, echo] = await Promise.all([startHttpBackend(), startHttpBackend(), startBackend('echo')]);
    dir = mkdtempSync(join(tmpdir(), 'drover-reload-'));
  });
  after(async () => {
    await Promise.all([a.stop(), b.stop(), echo.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('reloads on SIGHUP under steady load with zero failed requests, draining a removed listener and binding a new one', async () => {
    const [web, old, added] = await Promise.all([freePort(), freePort(), freePort()]);
    const config = (strategy: string, tcpListener: string) => `
drainTimeout: 5s
services:
  web: { static: [127.0.0.1:${a.port}, 127.0.0.1:${b.port}], strategy: ${strategy} }
  echo: { static: [127.0.0.1:${echo.port}] }
listeners:
  - { name: web, mode: http, bind: 127.0.0.1:${web}, routes: [ { service: web } ] }
  - ${tcpListener}
`;
    const cli = startCli(dir, config('round-robin', `{ name: old, bind: 127.0.0.1:${old}, service: echo }`));
    try {
      await cli.log('drover started');
      const onOld = await connect(old);
      assert.equal(await readLine(onOld), `hello ${echo.port}`);

      let running = true;
      const results: Array<number | Error> = [];
      const agent = new Agent({ keepAlive: true, maxSockets: 2 });
      const loop = async (useAgent: boolean) => {
        while (running) results.push(await get(web, useAgent ? agent : false));
      };
      const loops = [loop(true), loop(true), loop(false), loop(false)];
      const countAtReload = () => results.length;
      while (countAtReload() < 200) await new Promise((r) => setImmediate(r));

      writeFileSync(cli.file, config('least-connections', `{ name: added, bind: 127.0.0.1:${added}, service: echo }`));
      const atReload = results.length;
      cli.child.kill('SIGHUP');
      const reloaded = await cli.log('config reloaded');
      assert.equal(reloaded.listeners, 2);
      while (results.length < atReload + 400) await new Promise((r) => setImmediate(r));
      running = false;
      await Promise.all(loops);
      agent.destroy();

      const failures = results.filter((r) => r !== 200);
      assert.deepEqual(failures, [], `${failures.length} of ${results.length} requests failed`);
      // The removed listener refuses new clients but its open connection still works.
      const refused = await connect(old).then(
        (s) => (s.destroy(), false),
        () => true,
      );
      assert.equal(refused, true, 'the removed listener no longer accepts');
      onOld.write('through the drain\n');
      onOld.resume();
      assert.equal(await readLine(onOld), 'through the drain');
      onOld.destroy();
      await closed(onOld);
      const viaNew = await connect(added);
      assert.equal(await readLine(viaNew), `hello ${echo.port}`);
      viaNew.destroy();
      await closed(viaNew);
    } finally {
      cli.child.kill('SIGTERM');
      await cli.exit;
    }
  });

  it('keeps running the old config and logs each problem with file:line:column when the new one is invalid', async () => {
    const port = await freePort();
    const good = `
services: { web: { static: [127.0.0.1:${a.port}] } }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:${port}, routes: [ { service: web } ] } ]
`;
    const cli = startCli(dir, good);
    try {
      await cli.log('drover started');
      writeFileSync(cli.file, good.replace('static:', 'statik:'));
      cli.child.kill('SIGHUP');
      const failed = await cli.log('config reload failed: keeping the running config');
      const problems = failed.problems as string[];
      assert.ok(Array.isArray(problems) && problems.length >= 1);
      assert.ok(
        problems.some((p) => /drover-[a-z0-9]+\.yaml:2:\d+: services\.web\.statik: unknown key/.test(p)),
        problems.join('\n'),
      );
      assert.equal((await request(port)).status, 200, 'still serving with the old config');
    } finally {
      cli.child.kill('SIGTERM');
      await cli.exit;
    }
  });
});

describe('reload keeps live state', () => {
  let a: TestBackend;
  let b: TestBackend;
  before(async () => {
    [a, b] = await Promise.all([startHttpBackend(), startHttpBackend()]);
  });
  after(async () => {
    await Promise.all([a.stop(), b.stop()]);
  });

  it('keeps connection counts, latency and health of backends that remain, under a new strategy', async () => {
    const config = (strategy: string, members: TestBackend[]) => `
services:
  web:
    static: [${members.map((m) => `127.0.0.1:${m.port}`).join(', ')}]
    strategy: ${strategy}
    healthCheck: { interval: 1h }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, routes: [ { service: web } ] } ]
`;
    const proxy = await startProxy(config('round-robin', [a, b]));
    try {
      const before = proxy.drover.services.get('web')!;
      const [idA, idB] = [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`];
      const slow = request(proxy.port(), { path: '/slow?ms=300' });
      for (let i = 0; i < 4; i++) await request(proxy.port());
      await new Promise((r) => setImmediate(r));
      const busy = before.states.active(idA) === 1 ? idA : idB;
      assert.equal(before.states.active(busy), 1);
      const latency = before.states.latency(idA);
      assert.ok(latency !== undefined);
      before.states.setDown(idB, true);

      await proxy.reload(config('least-connections', [a, b]));
      const afterReload = proxy.drover.services.get('web')!;
      assert.equal(afterReload, before, 'the same balancer');
      assert.equal(afterReload.strategyLabel, 'least-connections');
      assert.equal(afterReload.states.active(busy), 1, 'the request in flight is still counted');
      assert.ok(afterReload.states.latency(idA)! > 0);
      assert.equal(afterReload.states.isDown(idB), true, 'health is kept');
      assert.equal((await slow).status, 200);
      assert.equal(afterReload.states.active(busy), 0);
    } finally {
      await proxy.stop();
    }
  });

  it('refuses a reload whose strategy fails to build over the current members, and changes nothing', async () => {
    const yaml = (strategy: string, extra = '') => `
services: { s: { static: [127.0.0.1:${a.port}, 127.0.0.1:${b.port}], strategy: ${strategy} } }
listeners:
  - { name: web, mode: http, bind: 127.0.0.1:0, routes: [ { service: s } ] }${extra}`;
    const proxy = await startProxy(yaml('round-robin'));
    try {
      await assert.rejects(
        proxy.reload(yaml('{ module: ./dist/test/fixtures/picky-strategy.js }', '\n  - { name: more, bind: 127.0.0.1:0, service: s }')),
        { code: 'DROVER_RELOAD_REFUSED', message: /service s: strategy .*picky-strategy.js failed to build/ },
      );
      assert.equal(proxy.drover.services.get('s')!.strategyLabel, 'round-robin');
      assert.equal(proxy.drover.listeners.length, 1, 'the new listener was not bound');
      assert.equal((await request(proxy.port())).status, 200);
      // A later reload with the same strategy as before is still a change to nothing.
      await proxy.reload(yaml('least-connections'));
      assert.equal(proxy.drover.services.get('s')!.strategyLabel, 'least-connections');
    } finally {
      await proxy.stop();
    }
  });

  it('refuses a reload once stopping has begun', async () => {
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${a.port}] } }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, routes: [ { service: s } ] } ]`);
    const stopped = proxy.stop();
    await assert.rejects(
      proxy.reload(`
services: { s: { static: [127.0.0.1:${a.port}] } }
listeners:
  - { name: web, mode: http, bind: 127.0.0.1:0, routes: [ { service: s } ] }
  - { name: late, bind: 127.0.0.1:0, service: s }`),
      { code: 'DROVER_RELOAD_REFUSED' },
    );
    await stopped;
    assert.equal(proxy.drover.listeners.length, 1, 'nothing was bound after the stop began');
  });

  it('refuses a reload whose new listener cannot bind, and changes nothing', async () => {
    const blocker = await startProxy(`
services: { s: { static: [127.0.0.1:${a.port}] } }
listeners: [ { bind: 127.0.0.1:0, service: s } ]`);
    const taken = blocker.port();
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${a.port}] } }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, routes: [ { service: s } ] } ]`);
    try {
      const port = proxy.port();
      await assert.rejects(
        proxy.reload(`
services: { s: { static: [127.0.0.1:${a.port}] }, t: { static: [127.0.0.1:${b.port}] } }
listeners:
  - { name: web, mode: http, bind: 127.0.0.1:${port}, routes: [ { service: t } ] }
  - { name: clash, bind: 127.0.0.1:${taken}, service: s }`),
        { code: 'DROVER_LISTEN_FAILED' },
      );
      assert.deepEqual([...proxy.drover.services.keys()], ['s']);
      assert.equal(proxy.drover.listeners.length, 1);
      assert.equal((await request(port)).headers['x-backend'], String(a.port), 'still routing with the old routes');
    } finally {
      await proxy.stop();
      await blocker.stop();
    }
  });
});


