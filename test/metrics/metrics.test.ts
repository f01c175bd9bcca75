import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { loadConfig } from '../../src/config/load.js';
import { CreateMode, ZooKeeperConnection } from '../../src/discovery/zk.js';
import { Drover } from '../../src/drover.js';
import { Logger } from '../../src/log.js';
import { REQUEST_BUCKETS } from '../../src/metrics/metrics.js';
import {
  closed,
  connect,
  eventually,
  freePort,
  readAll,
  readLine,
  request,
  startBackend,
  startHttpBackend,
  startProxy,
  type TestBackend,
  type TestProxy,
} from '../fixtures/harness.js';
import { startZooKeeper, zookeeperAvailable, type ZooKeeperServer } from '../fixtures/zookeeper.js';
import { scrape, scrapeUntil, type Scrape } from './helpers.js';

const id = (b: TestBackend | number) => `127.0.0.1:${typeof b === 'number' ? b : b.port}`;

/** Every series that names `backend`, as text lines (for "the series are gone"). */
const linesOf = (s: Scrape, backend: string) => s.text.split('\n').filter((l) => l.includes(`backend="${backend}"`));

describe('Prometheus metrics', () => {
  let a: TestBackend;
  let b: TestBackend;
  let failing: TestBackend;
  let quiet: TestBackend;
  let echoA: TestBackend;
  let echoB: TestBackend;
  before(async () => {
    [a, b, failing, quiet, echoA, echoB] = await Promise.all([
      startHttpBackend(),
      startHttpBackend(),
      startHttpBackend('failing'),
      startBackend('quiet-echo'),
      startBackend('echo'),
      startBackend('echo'),
    ]);
  });
  after(async () => {
    await Promise.all([a, b, failing, quiet, echoA, echoB].map((x) => x.stop()));
  });

  it('counts HTTP requests per backend and status class, body bytes and durations, exactly', async () => {
    const proxy = await startProxy(`
admin: {}
services:
  web: { static: [${id(a)}, ${id(b)}], strategy: round-robin }
  bad: { static: [${id(failing)}] }
listeners:
  - name: front
    mode: http
    bind: 127.0.0.1:0
    routes:
      - { match: { pathPrefix: /bad }, service: bad }
      - { match: { pathPrefix: /echo }, service: web }
      - { match: { pathPrefix: /stream }, service: web }
`);
    try {
      const port = proxy.port();
      // /stream answers without x-backend; round-robin alternates: 5 and 5, 100 body bytes each.
      for (let i = 0; i < 10; i++) {
        const res = await request(port, { path: '/stream?bytes=100' });
        assert.equal(res.status, 200);
        assert.equal(res.body.length, 100);
      }
      const out = new Map<string, number>([
        [id(a), 500],
        [id(b), 500],
      ]);
      const served = new Map<string, number>();
      for (let i = 0; i < 4; i++) {
        const res = await request(port, { method: 'POST', path: '/echo', body: 'x'.repeat(1000) });
        assert.equal(res.status, 200);
        const backend = id(Number(res.headers['x-backend']));
        out.set(backend, out.get(backend)! + Buffer.byteLength(res.body));
        served.set(backend, (served.get(backend) ?? 0) + 1);
      }
      assert.deepEqual([...served.values()], [2, 2]);
      assert.equal((await request(port, { path: '/nowhere' })).status, 404);
      for (let i = 0; i < 2; i++) assert.equal((await request(port, { path: '/bad' })).status, 500);

      const s = await scrapeUntil(proxy.drover, (x) => x.sum('drover_requests_total') === 17, '17 requests counted');
      for (const backend of [id(a), id(b)]) {
        const labels = { listener: 'front', service: 'web', backend };
        assert.equal(s.value('drover_requests_total', { ...labels, code: '2xx' }), 7, backend);
        assert.equal(s.all('drover_requests_total', labels).length, 1, 'only 2xx');
        assert.equal(s.value('drover_bytes_total', { ...labels, direction: 'in' }), 2000);
        assert.equal(s.value('drover_bytes_total', { ...labels, direction: 'out' }), out.get(backend));
        assert.equal(s.value('drover_active_connections', labels), 0);
        assert.equal(s.value('drover_connections_total', labels), undefined, 'HTTP requests are not connections');
        assert.equal(s.value('drover_backend_up', { service: 'web', backend }), 1);
        assert.equal(s.value('drover_backend_weight', { service: 'web', backend }), 1);
        assert.ok(s.value('drover_backend_ewma_seconds', { service: 'web', backend })! > 0);
        assert.equal(s.value('drover_backend_agent_load', { service: 'web', backend }), undefined);
      }
      // Unrouted: no service, no backend.
      assert.equal(s.value('drover_requests_total', { listener: 'front', service: '', backend: '', code: '4xx' }), 1);
      assert.equal(s.value('drover_requests_total', { service: 'bad', backend: id(failing), code: '5xx' }), 2);
      assert.equal(s.value('drover_upstream_errors_total', { service: 'bad', backend: id(failing), reason: '5xx' }), 2);
      assert.equal(s.all('drover_upstream_errors_total', { service: 'web' }).length, 0);
      assert.equal(s.value('drover_discovery_members', { service: 'web' }), 2);
      assert.equal(s.value('drover_discovery_updates_total', { service: 'web' }), 1, 'a static list counts once');

      const buckets = s.all('drover_request_duration_seconds_bucket', { listener: 'front', service: 'web' });
      assert.deepEqual(
        buckets.map((x) => x.labels.le),
        [...REQUEST_BUCKETS.map(String), '+Inf'],
      );
      assert.deepEqual(REQUEST_BUCKETS.slice(0, 1), [0.0005]);
      assert.equal(REQUEST_BUCKETS.at(-1), 10);
      assert.equal(buckets.at(-1)!.value, 14);
      assert.equal(s.value('drover_request_duration_seconds_count', { listener: 'front', service: 'web' }), 14);
      assert.equal(s.value('drover_request_duration_seconds_count', { listener: 'front', service: '' }), 1);
      assert.equal(s.value('drover_request_duration_seconds_count', { listener: 'front', service: 'bad' }), 2);
      // No ZooKeeper here: no ZooKeeper series (a 0 would read as "disconnected").
      assert.equal(s.value('drover_zookeeper_connected'), undefined);
    } finally {
      await proxy.stop();
    }
  });

  it('counts TCP connections and bytes both ways; active connections return to 0', async () => {
    const proxy = await startProxy(`
admin: {}
services: { echo: { static: [${id(quiet)}] } }
listeners: [ { name: raw, bind: 127.0.0.1:0, service: echo } ]`);
    try {
      const clients = await Promise.all([0, 1, 2].map(() => connect(proxy.port(), { allowHalfOpen: true })));
      const labels = { listener: 'raw', service: 'echo', backend: id(quiet) };
      // Active counts from the connect attempt, connections_total once connected.
      const open = await scrapeUntil(proxy.drover, (x) => x.value('drover_connections_total', labels) === 3, 'three connections established');
      assert.equal(open.value('drover_active_connections', labels), 3);
      const echoed = await Promise.all(
        clients.map((c, i) => {
          const all = readAll(c);
          c.end('x'.repeat(1000 * (i + 1)));
          return all;
        }),
      );
      assert.deepEqual(
        echoed.map((x) => x.length),
        [1000, 2000, 3000],
      );
      await Promise.all(clients.map((c) => (c.destroy(), closed(c))));
      const s = await scrapeUntil(proxy.drover, (x) => x.value('drover_bytes_total', { ...labels, direction: 'out' }) === 6000, 'bytes counted at close');
      assert.equal(s.value('drover_bytes_total', { ...labels, direction: 'in' }), 6000);
      assert.equal(s.value('drover_connections_total', labels), 3);
      const settled = await scrapeUntil(proxy.drover, (x) => x.value('drover_active_connections', labels) === 0, 'active back to 0');
      assert.equal(settled.all('drover_requests_total').length, 0);
    } finally {
      await proxy.stop();
    }
  });

  it('counts a WebSocket tunnel as a connection, active while open', async () => {
    const proxy = await startProxy(`
admin: {}
services: { web: { static: [${id(a)}] } }
listeners: [ { name: front, mode: http, bind: 127.0.0.1:0, service: web } ]`);
    try {
      const labels = { listener: 'front', service: 'web', backend: id(a) };
      const ws = new WebSocket(`ws://127.0.0.1:${proxy.port()}/chat`);
      const greeting = once(ws, 'message');
      await once(ws, 'open');
      assert.equal(String((await greeting)[0]), `hello from ${a.port}`);
      const open = await scrape(proxy.drover);
      assert.equal(open.value('drover_connections_total', labels), 1);
      assert.equal(open.value('drover_active_connections', labels), 1);
      ws.close();
      await once(ws, 'close');
      const s = await scrapeUntil(proxy.drover, (x) => x.value('drover_active_connections', labels) === 0, 'tunnel closed');
      assert.equal(s.value('drover_connections_total', labels), 1);
      assert.equal(s.all('drover_requests_total').length, 0, 'an upgrade is not an HTTP request here');
    } finally {
      await proxy.stop();
    }
  });

  it('counts retries, refused upstreams and no-backend refusals', async () => {
    const dead = await freePort();
    const proxy = await startProxy(`
admin: {}
services:
  web: { static: [${id(dead)}, ${id(a)}], strategy: round-robin, retries: 1 }
  drained: { static: [${id(b)}] }
  tcpdead: { static: [${id(dead)}], retries: 0 }
listeners:
  - { name: front, mode: http, bind: 127.0.0.1:0, routes: [ { match: { pathPrefix: /drained }, service: drained }, { service: web } ] }
  - { name: raw, bind: 127.0.0.1:0, service: tcpdead }
`);
    try {
      // Round-robin puts the dead member first every other request.
      for (let i = 0; i < 4; i++) assert.equal((await request(proxy.port('front'), { path: '/echo' })).status, 200);
      proxy.drover.services.get('drained')!.states.setDraining(id(b), true);
      assert.equal((await request(proxy.port('front'), { path: '/drained' })).status, 503);
      const c = await connect(proxy.port('raw'));
      c.on('error', () => {});
      await closed(c);

      const s = await scrapeUntil(proxy.drover, (x) => x.sum('drover_upstream_errors_total', { service: 'tcpdead' }) === 1 && x.sum('drover_requests_total') === 5, 'all counted');
      assert.equal(s.value('drover_retries_total', { service: 'web' }), 2);
      assert.equal(s.value('drover_upstream_errors_total', { service: 'web', backend: id(dead), reason: 'refused' }), 2);
      assert.equal(s.all('drover_upstream_errors_total', { service: 'web' }).length, 1);
      assert.equal(s.value('drover_requests_total', { listener: 'front', service: 'web', backend: id(a), code: '2xx' }), 4);
      assert.equal(s.all('drover_requests_total', { backend: id(dead) }).length, 0, 'a retried request counts for the backend that answered');
      assert.equal(s.value('drover_active_connections', { listener: 'front', service: 'web', backend: id(dead) }), 0);
      assert.equal(s.value('drover_no_backend_total', { service: 'drained' }), 1);
      assert.equal(s.value('drover_requests_total', { service: 'drained', backend: '', code: '5xx' }), 1);
      assert.equal(s.value('drover_backend_up', { service: 'drained', backend: id(b) }), 0);
      assert.equal(s.value('drover_upstream_errors_total', { service: 'tcpdead', backend: id(dead), reason: 'refused' }), 1);
      assert.equal(s.value('drover_retries_total', { service: 'tcpdead' }), undefined);
      assert.equal(s.value('drover_connections_total', { service: 'tcpdead' }), undefined);
      assert.equal(s.value('drover_active_connections', { listener: 'raw', service: 'tcpdead', backend: id(dead) }), 0);
    } finally {
      await proxy.stop();
    }
  });

  it("drops a backend's series when it leaves, once its connections are closed", async () => {
    const config = (members: TestBackend[]) => `
admin: {}
services: { echo: { static: [${members.map(id).join(', ')}], strategy: round-robin } }
listeners: [ { name: raw, bind: 127.0.0.1:0, service: echo } ]`;
    const proxy = await startProxy(config([echoA, echoB]));
    try {
      const clients = await Promise.all([0, 1].map(() => connect(proxy.port())));
      const greetings = await Promise.all(clients.map((c) => readLine(c)));
      const onB = clients[greetings.indexOf(`hello ${echoB.port}`)]!;
      const onA = clients[greetings.indexOf(`hello ${echoA.port}`)]!;
      assert.ok(onA && onB);
      const before = await scrape(proxy.drover);
      assert.equal(before.value('drover_active_connections', { backend: id(echoB) }), 1);

      await proxy.reload(config([echoA]));
      const draining = await scrape(proxy.drover);
      assert.equal(draining.value('drover_backend_up', { backend: id(echoB) }), undefined, 'not a member any more');
      assert.equal(draining.value('drover_backend_weight', { backend: id(echoB) }), undefined);
      assert.equal(draining.value('drover_active_connections', { backend: id(echoB) }), 1, 'still open: its series stay');
      assert.equal(draining.value('drover_connections_total', { backend: id(echoB) }), 1);
      assert.equal(draining.value('drover_discovery_members', { service: 'echo' }), 1);

      onB.destroy();
      const after = await scrapeUntil(proxy.drover, (x) => linesOf(x, id(echoB)).length === 0, 'the left backend has no series');
      assert.deepEqual(linesOf(after, id(echoB)), []);
      assert.equal(after.value('drover_connections_total', { backend: id(echoA) }), 1, 'the other stays');
      assert.equal(after.value('drover_active_connections', { backend: id(echoA) }), 1);
      onA.destroy();
      await closed(onA);
    } finally {
      await proxy.stop();
    }
  });

  it('exports default process metrics with the prefix, and no path or client-address label anywhere', async () => {
    const proxy = await startProxy(`
admin: {}
services: { web: { static: [${id(a)}] }, echo: { static: [${id(quiet)}] } }
listeners:
  - { name: front, mode: http, bind: 127.0.0.1:0, service: web }
  - { name: raw, bind: 127.0.0.1:0, service: echo }`);
    try {
      await request(proxy.port('front'), { path: '/echo/secret-path?token=abc', headers: { 'x-forwarded-for': '203.0.113.9' } });
      await request(proxy.port('front'), { path: '/missing-thing' });
      const c = await connect(proxy.port('raw'), { allowHalfOpen: true });
      const all = readAll(c);
      c.end('hi');
      await all;
      c.destroy();
      const s = await scrapeUntil(proxy.drover, (x) => x.sum('drover_bytes_total', { listener: 'raw', direction: 'out' }) === 2, 'TCP bytes counted');
      for (const name of ['drover_process_cpu_seconds_total', 'drover_process_resident_memory_bytes', 'drover_nodejs_eventloop_lag_seconds', 'drover_nodejs_heap_size_used_bytes']) {
        assert.ok(s.all(name).length > 0, `${name} is exported`);
      }
      for (const sample of s.samples) assert.match(sample.name, /^drover_/);
      for (const line of s.text.split('\n')) if (line.startsWith('# TYPE')) assert.match(line, /^# TYPE drover_/);
      const labelNames = new Set(s.samples.flatMap((x) => Object.keys(x.labels)));
      for (const banned of ['path', 'url', 'client', 'client_address', 'address', 'ip', 'remote', 'method']) assert.ok(!labelNames.has(banned), `no ${banned} label`);
      const values = s.samples.flatMap((x) => Object.values(x.labels));
      for (const v of values) {
        assert.ok(!v.includes('/'), `no path in a label value: ${v}`);
        assert.ok(!['127.0.0.1', '::ffff:127.0.0.1', '203.0.113.9'].includes(v), `no client address as a label value: ${v}`);
      }
      assert.ok(!s.text.includes('secret-path') && !s.text.includes('203.0.113.9'));
    } finally {
      await proxy.stop();
    }
  });

  it('counts config reloads from the file, and creates the metrics on the reload that adds admin:', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'drover-metrics-'));
    const file = join(dir, 'drover.yaml');
    const config = (admin: boolean) => `
${admin ? 'admin: {}' : ''}
services: { web: { static: [${id(a)}] } }
listeners: [ { name: front, mode: http, bind: 127.0.0.1:0, service: web } ]`;
    writeFileSync(file, config(false));
    const drover = await Drover.start(await loadConfig(file), { log: new Logger('error', () => {}) });
    try {
      assert.equal(drover.metrics, undefined, 'no admin: no metrics');
      assert.equal(drover.listeners[0]!.observer, undefined, 'and listeners observe nothing');
      writeFileSync(file, config(true));
      assert.equal((await drover.reloadFile()).ok, true);
      assert.ok(drover.metrics);
      let s = await scrape(drover);
      assert.equal(s.value('drover_config_reloads_total', { result: 'success' }), 1);
      assert.equal(s.value('drover_config_reloads_total', { result: 'failure' }), 0);
      assert.equal(s.value('drover_config_last_reload_success'), 1);
      assert.ok(drover.listeners[0]!.observer, 'the listener counts from now on');
      const port = Number(drover.listeners[0]!.address.split(':').pop());
      assert.equal((await request(port)).status, 200);

      writeFileSync(file, 'services: [ this is not valid');
      assert.equal((await drover.reloadFile()).ok, false);
      s = await scrape(drover);
      assert.equal(s.value('drover_config_reloads_total', { result: 'success' }), 1);
      assert.equal(s.value('drover_config_reloads_total', { result: 'failure' }), 1);
      assert.equal(s.value('drover_config_last_reload_success'), 0);

      writeFileSync(file, config(true));
      assert.equal((await drover.reloadFile()).ok, true);
      s = await scrapeUntil(drover, (x) => x.sum('drover_requests_total') === 1, 'the request counted');
      assert.equal(s.value('drover_config_reloads_total', { result: 'success' }), 2);
      assert.equal(s.value('drover_config_last_reload_success'), 1);
      assert.equal(s.value('drover_requests_total', { listener: 'front', service: 'web', backend: id(a), code: '2xx' }), 1);
    } finally {
      await drover.stop(0);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const missing = zookeeperAvailable();

describe('Prometheus metrics with ZooKeeper', { skip: missing }, () => {
  let server: ZooKeeperServer;
  let registry: ZooKeeperConnection;
  let a: TestBackend;
  let b: TestBackend;
  let c: TestBackend;
  before(async () => {
    [server, a, b, c] = await Promise.all([startZooKeeper(), startHttpBackend(), startHttpBackend(), startHttpBackend()]);
    registry = new ZooKeeperConnection({ connect: server.connect, sessionTimeout: 30_000, auth: [] });
  });
  after(async () => {
    registry.close();
    await Promise.all([server.destroy(), a.stop(), b.stop(), c.stop()]);
  });

  it('exports connection state, members, updates, invalid members and update latency; a deleted member loses its series', async () => {
    const path = '/services/metrics';
    await registry.mkdirp(path);
    const register = (port: number) => registry.create(`${path}/member_`, Buffer.from(JSON.stringify({ host: '127.0.0.1', port })), CreateMode.EPHEMERAL_SEQUENTIAL);
    const [, znodeB] = await Promise.all([register(a.port), register(b.port)]);
    let proxy: TestProxy | undefined;
    try {
      proxy = await startProxy(`
admin: {}
zookeeper: { connect: "${server.connect}", sessionTimeout: 30s }
services: { web: { zookeeper: ${path}, strategy: round-robin } }
listeners: [ { name: front, mode: http, bind: 127.0.0.1:0, service: web } ]`);
      const p = proxy;
      await eventually(() => p.drover.services.get('web')!.backends.length === 2, 'two members');
      for (let i = 0; i < 4; i++) assert.equal((await request(p.port())).status, 200);
      // The first session's event makes the source list once more, 20 ms after
      // the first listing: the baseline is taken once that one is in (observed).
      let s = await scrapeUntil(
        p.drover,
        (x) => x.sum('drover_requests_total') === 4 && (x.value('drover_discovery_update_seconds_count', { service: 'web' }) ?? 0) >= 1,
        'requests counted and the first session listing observed',
      );
      assert.equal(s.value('drover_zookeeper_connected'), 1);
      assert.equal(s.value('drover_zookeeper_session_expirations_total'), 0);
      assert.equal(s.value('drover_discovery_members', { service: 'web' }), 2);
      assert.equal(s.value('drover_discovery_invalid_members_total', { service: 'web' }), 0);
      assert.equal(s.value('drover_requests_total', { backend: id(b), code: '2xx' }), 2);
      const updates = s.value('drover_discovery_updates_total', { service: 'web' })!;
      assert.ok(updates >= 1);
      const observed = s.value('drover_discovery_update_seconds_count', { service: 'web' })!;

      await register(c.port);
      s = await scrapeUntil(p.drover, (x) => x.value('drover_discovery_members', { service: 'web' }) === 3, 'three members');
      assert.equal(s.value('drover_discovery_updates_total', { service: 'web' }), updates + 1);
      assert.equal(s.value('drover_discovery_update_seconds_count', { service: 'web' }), observed + 1);
      const seconds = s.value('drover_discovery_update_seconds_sum', { service: 'web' })!;
      assert.ok(seconds > 0 && seconds < 10, `update latency ${seconds} s`);
      assert.equal(s.value('drover_backend_up', { service: 'web', backend: id(c) }), 1);

      await registry.create(`${path}/member_`, Buffer.from('not json at all'), CreateMode.EPHEMERAL_SEQUENTIAL);
      s = await scrapeUntil(p.drover, (x) => x.value('drover_discovery_invalid_members_total', { service: 'web' }) === 1, 'the bad znode counted');
      assert.equal(s.value('drover_discovery_members', { service: 'web' }), 3);
      assert.equal(s.value('drover_discovery_updates_total', { service: 'web' }), updates + 2);

      assert.ok(linesOf(s, id(b)).length > 0);
      await registry.remove(znodeB);
      s = await scrapeUntil(p.drover, (x) => linesOf(x, id(b)).length === 0, "the deleted member's series gone");
      assert.equal(s.value('drover_discovery_members', { service: 'web' }), 2);
      assert.equal(s.value('drover_requests_total', { backend: id(a), code: '2xx' }), 2);
    } finally {
      await proxy?.stop();
    }
  });
});
