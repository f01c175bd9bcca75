/**
 * The admin server over real sockets: probes, the JSON API against live
 * traffic, drain and undrain, token and bind rules, reloads through the API
 * (from a real config file), the admin server following reloads, hostile
 * input, and readiness against a real ZooKeeper.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { BackendDoc, ListenersDoc, ReadyDoc, ServiceDoc, ServicesDoc } from '../../src/admin/api.js';
import { loadConfig } from '../../src/config/load.js';
import { CreateMode, ZooKeeperConnection } from '../../src/discovery/zk.js';
import { Drover } from '../../src/drover.js';
import { ListenError } from '../../src/errors.js';
import { Logger } from '../../src/log.js';
import {
  closed,
  connect,
  eventually,
  freePort,
  rawExchange,
  request,
  startHttpBackend,
  startProxy,
  type TestBackend,
  type TestProxy,
  type TestResponse,
} from '../fixtures/harness.js';
import { startZooKeeper, zookeeperAvailable } from '../fixtures/zookeeper.js';
import { startAgent, type TestAgent } from '../health/helpers.js';

const TOKEN = 'test-token-0123456789abcdef';
const id = (port: number) => `127.0.0.1:${port}`;
const quiet = () => new Logger('error', () => {});

/** One call to the admin API; `json` is the parsed body (undefined when it is not JSON). */
async function call(
  port: number,
  method: string,
  path: string,
  options: { headers?: Record<string, string>; body?: string | Buffer } = {},
): Promise<TestResponse & { json: unknown }> {
  const res = await request(port, { method, path, ...options });
  let json: unknown;
  try {
    json = JSON.parse(res.body);
  } catch {
    json = undefined;
  }
  return { ...res, json };
}

/** The path of a drain or undrain call. */
const drainPath = (service: string, backend: string, action: 'drain' | 'undrain') =>
  `/api/services/${encodeURIComponent(service)}/backends/${encodeURIComponent(backend)}/${action}`;

/** The service named `name` from GET /api/services. */
async function service(admin: number, name: string): Promise<ServiceDoc> {
  const res = await call(admin, 'GET', '/api/services');
  assert.equal(res.status, 200);
  const found = (res.json as ServicesDoc).services.find((s) => s.name === name);
  assert.ok(found, `service ${name} listed`);
  return found;
}

const backendOf = (s: ServiceDoc, backend: string): BackendDoc => {
  const b = s.backends.find((x) => x.id === backend);
  assert.ok(b, `backend ${backend} listed`);
  return b;
};

/** Sends `n` GETs through an HTTP listener and returns the backend port of each answer. */
async function spread(port: number, n: number): Promise<number[]> {
  const ports: number[] = [];
  for (let i = 0; i < n; i++) {
    const res = await request(port, { path: '/echo' });
    assert.equal(res.status, 200, res.body);
    ports.push(Number(res.headers['x-backend']));
  }
  return ports;
}

/** A TCP server that only holds a port. */
async function holdPort(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

/** Whether a connection to 127.0.0.1:port is refused. */
async function refused(port: number): Promise<boolean> {
  try {
    const s = await connect(port);
    s.destroy();
    await closed(s);
    return false;
  } catch {
    return true;
  }
}

describe('admin API', () => {
  let a: TestBackend;
  let b: TestBackend;
  let agent: TestAgent;
  let proxy: TestProxy;
  let admin: number;
  before(async () => {
    [a, b, agent] = await Promise.all([startHttpBackend(), startHttpBackend(), startAgent('75%\n')]);
    // The second member has no agent: it is asked on the service's port, where nothing answers.
    const noAgent = await freePort();
    proxy = await startProxy(`
admin: { listen: 127.0.0.1:0 }
services:
  web:
    static: [ { address: 127.0.0.1:${a.port}, agentPort: ${agent.port} }, { address: 127.0.0.1:${b.port}, weight: 2 } ]
    healthCheck: { type: http, path: /echo, interval: 100ms, rise: 1, fall: 1 }
    agent: { port: ${noAgent}, interval: 100ms, timeout: 100ms }
listeners:
  - { name: web, mode: http, bind: 127.0.0.1:0, service: web }
  - { name: raw, mode: tcp, bind: 127.0.0.1:0, service: web }
`);
    admin = proxy.drover.admin!.port;
  });
  after(async () => {
    try {
      await proxy.stop();
    } finally {
      await Promise.all([a.stop(), b.stop(), agent.close()]);
    }
  });

  it('answers /healthz and /readyz with 200 once the static service is listed', async () => {
    const health = await call(admin, 'GET', '/healthz');
    assert.equal(health.status, 200);
    assert.deepEqual(health.json, { status: 'ok' });
    assert.match(String(health.headers['content-type']), /^application\/json/);
    assert.equal(health.headers['cache-control'], 'no-store');
    assert.equal(health.headers['access-control-allow-origin'], undefined, 'no CORS');
    const ready = await call(admin, 'GET', '/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.json as ReadyDoc, { ready: true, stopping: false, services: { web: true } });
    const head = await call(admin, 'HEAD', '/healthz');
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
  });

  it('lists every service with its members, checks, agent reports, weights and counts that follow the traffic', async () => {
    await eventually(async () => backendOf(await service(admin, 'web'), id(a.port)).report !== null, 'the agent report arrived');
    const before = await service(admin, 'web');
    const totalBefore = before.backends.reduce((n, x) => n + x.total, 0);
    await spread(proxy.port('web'), 10);
    // A request is released when its response ended, which the client may see first.
    await eventually(async () => (await service(admin, 'web')).backends.every((x) => x.active === 0), 'no requests in flight');
    const s = await service(admin, 'web');
    assert.equal(s.ready, true);
    assert.equal(s.strategy, 'round-robin');
    assert.deepEqual(s.source, { type: 'static' });
    assert.deepEqual(s.healthCheck, { type: 'http', path: '/echo', interval: 100, rise: 1, fall: 1, shared: false });
    assert.equal(s.agent, true);
    assert.equal(s.panic, false);
    assert.deepEqual(
      s.backends.map((x) => x.id),
      [id(a.port), id(b.port)].sort(),
    );
    assert.equal(s.backends.reduce((n, x) => n + x.total, 0) - totalBefore, 10, 'every request counted once');
    const withAgent = backendOf(s, id(a.port));
    const agentLess = backendOf(s, id(b.port));
    assert.equal(withAgent.report?.percent, 75);
    assert.equal(typeof withAgent.report?.at, 'number');
    assert.equal(agentLess.report, null, 'a member without an agent has no report');
    for (const x of [withAgent, agentLess]) {
      assert.equal(x.state, 'up');
      assert.equal(x.usable, true);
      assert.equal(x.host, '127.0.0.1');
      assert.equal(x.active, 0);
      assert.ok(x.total >= 1, `${x.id} took requests`);
      assert.equal(typeof x.latencyMs, 'number', 'latency measured');
      assert.equal(x.znode, null, 'static members have no znode');
      assert.deepEqual(x.drains, []);
      assert.equal(x.ejectedUntil, null);
      assert.equal(x.ejections, 0);
      assert.equal(x.checksDown, false);
      assert.equal(x.agentDown, false);
    }
    assert.equal(withAgent.configuredWeight, 1);
    assert.equal(agentLess.configuredWeight, 2);
    assert.equal(agentLess.weight, 2);
    const one = await call(admin, 'GET', '/api/services/web');
    assert.equal(one.status, 200);
    assert.equal((one.json as ServiceDoc).name, 'web');
  });

  it('lists every listener with its bind, bound address, services and open connections', async () => {
    const open = await connect(proxy.port('raw'));
    try {
      await eventually(async () => {
        const doc = (await call(admin, 'GET', '/api/listeners')).json as ListenersDoc;
        return doc.listeners.find((l) => l.name === 'raw')?.connections === 1;
      }, 'the open TCP connection is counted');
      const doc = (await call(admin, 'GET', '/api/listeners')).json as ListenersDoc;
      assert.equal(typeof doc.time, 'number');
      assert.deepEqual(
        doc.listeners.map((l) => ({ ...l, connections: l.name === 'raw' ? l.connections : 0 })),
        [
          { name: 'web', mode: 'http', bind: '127.0.0.1:0', address: id(proxy.port('web')), connections: 0, maxConnections: 10_000, services: ['web'] },
          { name: 'raw', mode: 'tcp', bind: '127.0.0.1:0', address: id(proxy.port('raw')), connections: 1, maxConnections: 10_000, services: ['web'] },
        ],
      );
    } finally {
      open.destroy();
      await closed(open);
    }
  });

  it('drains a backend through the API so new requests avoid it, and undrains it back', async () => {
    const drained = await call(admin, 'POST', drainPath('web', id(a.port), 'drain'));
    assert.equal(drained.status, 200, drained.body);
    const doc = drained.json as { service: string; backend: BackendDoc };
    assert.equal(doc.service, 'web');
    assert.equal(doc.backend.id, id(a.port));
    assert.equal(doc.backend.state, 'draining');
    assert.equal(doc.backend.usable, false);
    assert.deepEqual(doc.backend.drains, ['api']);
    assert.deepEqual(new Set(await spread(proxy.port('web'), 12)), new Set([b.port]), 'every request avoids the drained backend');
    // The id may also come unencoded (a colon is legal in a path segment).
    const undrained = await call(admin, 'POST', `/api/services/web/backends/${id(a.port)}/undrain`);
    assert.equal(undrained.status, 200, undrained.body);
    assert.equal((undrained.json as { backend: BackendDoc }).backend.state, 'up');
    assert.deepEqual((undrained.json as { backend: BackendDoc }).backend.drains, []);
    assert.ok((await spread(proxy.port('web'), 6)).includes(a.port), 'the undrained backend takes requests again');
  });

  it('serves the status page with a restrictive CSP and no caching, and /metrics', async () => {
    const page = await call(admin, 'GET', '/');
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    assert.equal(page.headers['cache-control'], 'no-store');
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'sha256-[A-Za-z0-9+/]+=*'/);
    assert.match(csp, /connect-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.match(page.body, /<script>/);
    assert.doesNotMatch(page.body, /<script src|<link rel="stylesheet"|https?:\/\//, 'nothing is fetched from elsewhere');
    const metrics = await call(admin, 'GET', '/metrics');
    assert.equal(metrics.status, 200);
    assert.match(String(metrics.headers['content-type']), /^text\/plain/);
  });

  it('answers unknown paths 404, wrong methods 405 and bad input 400, 413 or 431 as JSON, and keeps serving', async () => {
    const expectError = (res: { status: number; json: unknown }, status: number, code: string) => {
      assert.equal(res.status, status);
      assert.equal((res.json as { error: string }).error, code);
      assert.equal(typeof (res.json as { message: string }).message, 'string');
    };
    expectError(await call(admin, 'GET', '/nope'), 404, 'DROVER_NOT_FOUND');
    expectError(await call(admin, 'GET', '/api/services/nope'), 404, 'DROVER_NOT_FOUND');
    expectError(await call(admin, 'GET', '/api/../healthz'), 404, 'DROVER_NOT_FOUND');
    expectError(await call(admin, 'POST', drainPath('nope', id(a.port), 'drain')), 404, 'DROVER_NOT_FOUND');
    expectError(await call(admin, 'POST', drainPath('web', '127.0.0.1:1', 'drain')), 404, 'DROVER_NOT_FOUND');
    expectError(await call(admin, 'POST', drainPath('web', '[::1]:80', 'drain')), 404, 'DROVER_NOT_FOUND');
    expectError(await call(admin, 'POST', drainPath('web', 'not an address', 'drain')), 404, 'DROVER_NOT_FOUND');

    const del = await call(admin, 'DELETE', '/api/services');
    expectError(del, 405, 'DROVER_METHOD_NOT_ALLOWED');
    assert.equal(del.headers.allow, 'GET, HEAD');
    const getReload = await call(admin, 'GET', '/api/reload');
    expectError(getReload, 405, 'DROVER_METHOD_NOT_ALLOWED');
    assert.equal(getReload.headers.allow, 'POST');
    expectError(await call(admin, 'POST', '/healthz'), 405, 'DROVER_METHOD_NOT_ALLOWED');
    expectError(await call(admin, 'OPTIONS', '/api/services', { headers: { origin: 'http://elsewhere.example' } }), 405, 'DROVER_METHOD_NOT_ALLOWED');

    expectError(await call(admin, 'POST', '/api/services/web/backends/%E0%A4%A/drain'), 400, 'DROVER_BAD_REQUEST');
    expectError(await call(admin, 'GET', '/api/services/%'), 400, 'DROVER_BAD_REQUEST');

    // Bodies are ignored up to 1 KB and refused beyond, declared or chunked, before anything runs.
    const small = await call(admin, 'POST', drainPath('web', id(a.port), 'undrain'), { body: 'x'.repeat(1024) });
    assert.equal(small.status, 200);
    expectError(await call(admin, 'POST', drainPath('web', id(a.port), 'drain'), { body: Buffer.alloc(2048, 0x78) }), 413, 'DROVER_BODY_TOO_LARGE');
    expectError(await call(admin, 'POST', drainPath('web', id(a.port), 'drain'), { body: Buffer.alloc(1024 * 1024, 0x78) }), 413, 'DROVER_BODY_TOO_LARGE');
    assert.equal(backendOf(await service(admin, 'web'), id(a.port)).state, 'up', 'the refused call did nothing');
    const declared = await rawExchange(admin, `POST /api/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10000000000\r\n\r\nxxxx`);
    assert.match(declared, /^HTTP\/1\.1 413 /);
    assert.match(declared, /DROVER_BODY_TOO_LARGE/);
    const chunk = 'x'.repeat(600);
    const chunked = await rawExchange(
      admin,
      `POST /api/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n${chunk}\r\n258\r\n${chunk}\r\n0\r\n\r\n`,
    );
    assert.match(chunked, /^HTTP\/1\.1 413 /);
    // An endless chunked body is cut off once it passes 64 KB.
    const endless = await rawExchange(
      admin,
      `POST /api/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n${`258\r\n${chunk}\r\n`.repeat(120)}`,
    );
    assert.match(endless, /^HTTP\/1\.1 413 /);

    // What Node's parser refuses is answered as JSON too.
    const garbage = await rawExchange(admin, 'GARBAGE\r\n\r\n');
    assert.match(garbage, /^HTTP\/1\.1 400 /);
    assert.match(garbage, /DROVER_BAD_REQUEST/);
    const bigHeaders = await rawExchange(admin, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${'y'.repeat(20_000)}\r\n\r\n`);
    assert.match(bigHeaders, /^HTTP\/1\.1 431 /);
    const absolute = await rawExchange(admin, 'GET http://127.0.0.1/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    assert.match(absolute, /^HTTP\/1\.1 200 /);
    const star = await rawExchange(admin, 'OPTIONS * HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
    assert.match(star, /^HTTP\/1\.1 400 /);
    // A client that goes away mid-request.
    const half = await connect(admin);
    half.write('POST /api/reload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nabc');
    half.destroy();
    await closed(half);

    assert.equal((await call(admin, 'GET', '/healthz')).status, 200, 'still serving');
  });

  it('refuses mutating calls from other origins and for non-loopback Host names when no token protects them', async () => {
    const cross = await call(admin, 'POST', drainPath('web', id(a.port), 'drain'), { headers: { origin: 'http://evil.example' } });
    assert.equal(cross.status, 403);
    assert.equal((cross.json as { error: string }).error, 'DROVER_FORBIDDEN');
    const rebound = await call(admin, 'POST', drainPath('web', id(a.port), 'drain'), { headers: { host: `evil.example:${admin}` } });
    assert.equal(rebound.status, 403);
    const sameOrigin = await call(admin, 'POST', drainPath('web', id(a.port), 'undrain'), { headers: { origin: `http://127.0.0.1:${admin}` } });
    assert.equal(sameOrigin.status, 200);
    assert.equal(backendOf(await service(admin, 'web'), id(a.port)).state, 'up');
  });
});

describe('admin API: tokens and binds', () => {
  let a: TestBackend;
  before(async () => {
    a = await startHttpBackend();
  });
  after(async () => {
    await a.stop();
  });
  const yaml = (admin: string) => `
admin: ${admin}
services: { web: { static: [127.0.0.1:${a.port}] } }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, service: web } ]
`;

  it('requires the configured token as a bearer token for mutating calls, and none for reads', async () => {
    const proxy = await startProxy(yaml(`{ listen: 127.0.0.1:0, token: ${TOKEN} }`));
    try {
      const admin = proxy.drover.admin!.port;
      const path = drainPath('web', id(a.port), 'drain');
      const none = await call(admin, 'POST', path);
      assert.equal(none.status, 401);
      assert.equal((none.json as { error: string }).error, 'DROVER_UNAUTHORIZED');
      assert.match(String(none.headers['www-authenticate']), /^Bearer /);
      const wrong = await call(admin, 'POST', path, { headers: { authorization: `Bearer ${TOKEN}x` } });
      assert.equal(wrong.status, 401);
      assert.match(String(wrong.headers['www-authenticate']), /invalid_token/);
      const short = await call(admin, 'POST', path, { headers: { authorization: 'Bearer x' } });
      assert.equal(short.status, 401);
      const basic = await call(admin, 'POST', path, { headers: { authorization: `Basic ${Buffer.from(`u:${TOKEN}`).toString('base64')}` } });
      assert.equal(basic.status, 401);
      assert.equal(backendOf(await service(admin, 'web'), id(a.port)).state, 'up', 'refused calls changed nothing');
      // With a token, any Origin and Host may call: a browser cannot send the token cross-site without CORS.
      const right = await call(admin, 'POST', path, { headers: { authorization: `Bearer ${TOKEN}` } });
      assert.equal(right.status, 200, right.body);
      assert.equal((right.json as { backend: BackendDoc }).backend.state, 'draining');
      assert.equal((await call(admin, 'GET', '/api/services')).status, 200, 'reads need no token');
      assert.equal((await call(admin, 'GET', '/')).status, 200);
    } finally {
      await proxy.stop();
    }
  });

  it('refuses mutating calls on a non-loopback bind without a token, and still serves reads there', async () => {
    const proxy = await startProxy(yaml('{ listen: 0.0.0.0:0 }'));
    try {
      const admin = proxy.drover.admin!.port;
      const res = await call(admin, 'POST', drainPath('web', id(a.port), 'drain'));
      assert.equal(res.status, 403);
      assert.equal((res.json as { error: string }).error, 'DROVER_FORBIDDEN');
      assert.equal((await call(admin, 'POST', '/api/reload')).status, 403);
      assert.equal((await call(admin, 'GET', '/api/services')).status, 200);
      assert.equal((await call(admin, 'GET', '/readyz')).status, 200);
    } finally {
      await proxy.stop();
    }
  });

  it('follows reloads: a new token applies at once, a moved address is bound and the old one closed, removing `admin:` stops it', async () => {
    const proxy = await startProxy(yaml('{ listen: 127.0.0.1:0 }'));
    try {
      const first = proxy.drover.admin!.port;
      const path = drainPath('web', id(a.port), 'undrain');
      assert.equal((await call(first, 'POST', path)).status, 200);
      await proxy.reload(yaml(`{ listen: 127.0.0.1:0, token: ${TOKEN} }`));
      // Port 0 in both: the same bind, so the same server, now with a token.
      assert.equal(proxy.drover.admin!.port, first);
      assert.equal((await call(first, 'POST', path)).status, 401);
      assert.equal((await call(first, 'POST', path, { headers: { authorization: `Bearer ${TOKEN}` } })).status, 200);

      const moved = await freePort();
      await proxy.reload(yaml(`{ listen: 127.0.0.1:${moved} }`));
      assert.equal(proxy.drover.admin!.port, moved);
      assert.equal((await call(moved, 'POST', path)).status, 200, 'the new config has no token');
      assert.equal(await refused(first), true, 'the old address is closed');
      // Same port, another host: the old server must let go of the port before the new one binds it.
      await proxy.reload(yaml(`{ listen: 0.0.0.0:${moved} }`));
      assert.equal(proxy.drover.admin!.address, `0.0.0.0:${moved}`);
      assert.equal((await call(moved, 'POST', path)).status, 403, 'now a non-loopback bind without a token');
      await proxy.reload(yaml(`{ listen: 127.0.0.1:${moved} }`));
      assert.equal(proxy.drover.admin!.address, `127.0.0.1:${moved}`);

      await proxy.reload(yaml('null').replace('admin: null\n', ''));
      assert.equal(proxy.drover.admin, undefined);
      assert.equal(await refused(moved), true, 'no admin server without `admin:`');
      await proxy.reload(yaml(`{ listen: 127.0.0.1:${moved} }`));
      assert.equal((await call(moved, 'GET', '/healthz')).status, 200, 'adding `admin:` back starts it');
    } finally {
      await proxy.stop();
    }
  });

  it('answers /readyz 503 while stopping, and closes once the stop is done', async () => {
    const proxy = await startProxy(yaml('{ listen: 127.0.0.1:0 }').replace('\nadmin:', '\ndrainTimeout: 10s\nadmin:'));
    const admin = proxy.drover.admin!.port;
    const open = await connect(proxy.port('web'));
    await eventually(() => proxy.drover.listener('web')!.connections === 1, 'the connection is accepted');
    const stopped = proxy.stop(10_000);
    try {
      const res = await call(admin, 'GET', '/readyz');
      assert.equal(res.status, 503);
      assert.deepEqual(res.json, { ready: false, stopping: true, services: { web: true } });
      assert.equal((await call(admin, 'GET', '/healthz')).status, 200, 'alive while draining');
    } finally {
      open.destroy();
      await closed(open);
      await stopped;
    }
    assert.equal(await refused(admin), true, 'closed by stop()');
  });

  it('fails the start with DROVER_LISTEN_FAILED when the admin address cannot be bound, closing the listeners', async () => {
    const held = await holdPort();
    const web = await freePort();
    try {
      await assert.rejects(
        startProxy(`
admin: { listen: 127.0.0.1:${held.port} }
services: { web: { static: [127.0.0.1:${a.port}] } }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:${web}, service: web } ]`),
        (err: unknown) => err instanceof ListenError && err.code === 'DROVER_LISTEN_FAILED' && err.message.includes(`127.0.0.1:${held.port}`),
      );
      assert.equal(await refused(web), true, 'the listener bound before was closed');
    } finally {
      held.server.close();
      await once(held.server, 'close');
    }
  });
});

describe('admin API: POST /api/reload', () => {
  let a: TestBackend;
  let dir: string;
  before(async () => {
    a = await startHttpBackend();
    dir = mkdtempSync(join(tmpdir(), 'drover-admin-'));
  });
  after(async () => {
    await a.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('re-reads the config file: 200 for a good one, 400 with every problem for an invalid one, 409 for a refused one', async () => {
    const file = join(dir, 'drover.yaml');
    const held = await holdPort();
    const config = (admin: string, listeners: string) => `
admin: { listen: ${admin} }
services: { web: { static: [127.0.0.1:${a.port}] } }
listeners:
${listeners}`;
    const web = '  - { name: web, mode: http, bind: 127.0.0.1:0, service: web }\n';
    writeFileSync(file, config('127.0.0.1:0', web));
    const drover = await Drover.start(await loadConfig(file), { log: quiet() });
    try {
      const admin = drover.admin!.port;
      writeFileSync(file, config('127.0.0.1:0', web + '  - { name: raw, mode: tcp, bind: 127.0.0.1:0, service: web }\n'));
      const good = await call(admin, 'POST', '/api/reload');
      assert.equal(good.status, 200, good.body);
      assert.deepEqual(good.json, { ok: true });
      assert.deepEqual(
        drover.listeners.map((l) => l.config.name),
        ['web', 'raw'],
      );

      writeFileSync(file, config('127.0.0.1:0', web).replace('static:', 'statik:'));
      const bad = await call(admin, 'POST', '/api/reload');
      assert.equal(bad.status, 400, bad.body);
      const doc = bad.json as { ok: boolean; error: string; message: string; problems: string[] };
      assert.equal(doc.ok, false);
      assert.equal(doc.error, 'DROVER_CONFIG_INVALID');
      assert.ok(doc.problems.length >= 1);
      for (const p of doc.problems) assert.match(p, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: `));
      assert.equal(drover.listeners.length, 2, 'the running config stays');

      writeFileSync(file, config('127.0.0.1:0', web + `  - { name: taken, mode: tcp, bind: 127.0.0.1:${held.port}, service: web }\n`));
      const refusedReload = await call(admin, 'POST', '/api/reload');
      assert.equal(refusedReload.status, 409, refusedReload.body);
      assert.equal((refusedReload.json as { error: string }).error, 'DROVER_LISTEN_FAILED');
      assert.equal(drover.listeners.length, 2, 'the running config stays');

      rmSync(file);
      const missing = await call(admin, 'POST', '/api/reload');
      assert.equal(missing.status, 400);
      assert.equal((missing.json as { error: string }).error, 'DROVER_CONFIG_UNREADABLE');

      // A reload that moves the admin server still answers on the old one, which then closes.
      const moved = await freePort();
      writeFileSync(file, config(`127.0.0.1:${moved}`, web));
      const move = await call(admin, 'POST', '/api/reload');
      assert.equal(move.status, 200, move.body);
      assert.equal(move.headers.connection, 'close');
      assert.equal((await call(moved, 'GET', '/healthz')).status, 200);
      assert.equal(await refused(admin), true);
    } finally {
      await drover.stop(0);
      held.server.close();
      await once(held.server, 'close');
    }
  });
});

const noZooKeeper = zookeeperAvailable();

describe('admin API with ZooKeeper', { skip: noZooKeeper }, () => {
  it('answers /readyz 503 until the first listing of a ZooKeeper service, then 200, and shows each member\'s znode', async () => {
    const a = await startHttpBackend();
    const server = await startZooKeeper();
    let proxy: TestProxy | undefined;
    try {
      const registry = new ZooKeeperConnection({ connect: server.connect, sessionTimeout: 10_000, auth: [] });
      await registry.mkdirp('/services/web');
      const znode = await registry.create('/services/web/member_', Buffer.from(JSON.stringify({ host: '127.0.0.1', port: a.port })), CreateMode.PERSISTENT_SEQUENTIAL);
      registry.close();
      // With the server down, no listing can arrive: "not ready" is certain, not a race.
      await server.stop();
      proxy = await startProxy(`
zookeeper: { connect: "${server.connect}", sessionTimeout: 10s }
admin: { listen: 127.0.0.1:0 }
services:
  web: { zookeeper: /services/web }
  local: { static: [127.0.0.1:${a.port}] }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, service: web } ]`);
      const admin = proxy.drover.admin!.port;
      assert.equal((await call(admin, 'GET', '/healthz')).status, 200, 'alive while not ready');
      const before = await call(admin, 'GET', '/readyz');
      assert.equal(before.status, 503);
      assert.deepEqual(before.json, { ready: false, stopping: false, services: { web: false, local: true } });
      assert.equal((await service(admin, 'web')).ready, false);

      await server.restart();
      await eventually(async () => (await call(admin, 'GET', '/readyz')).status === 200, '/readyz 200 after the first listing', 30_000);
      const s = await service(admin, 'web');
      assert.equal(s.ready, true);
      assert.deepEqual(s.source, { type: 'zookeeper', path: '/services/web', format: 'auto' });
      assert.equal(backendOf(s, id(a.port)).znode, znode);
    } finally {
      await proxy?.stop();
      await server.destroy();
      await a.stop();
    }
  });
});
