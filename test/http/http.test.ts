import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { eventually, freePort, request, startHttpBackend, startProxy, type TestBackend } from '../fixtures/harness.js';

const json = (body: string) => JSON.parse(body) as { port: number; headers: Record<string, string>; bytes: number; method: string; url: string };

describe('HTTP mode', () => {
  let a: TestBackend;
  let b: TestBackend;
  let c: TestBackend;
  before(async () => {
    [a, b, c] = await Promise.all([startHttpBackend(), startHttpBackend(), startHttpBackend()]);
  });
  after(async () => {
    await Promise.all([a.stop(), b.stop(), c.stop()]);
  });

  it('routes by host, path prefix, method and header, first match wins, with a default route', async () => {
    const proxy = await startProxy(`
services:
  api-canary: { static: [127.0.0.1:${a.port}] }
  web: { static: [127.0.0.1:${b.port}] }
  fallback: { static: [127.0.0.1:${c.port}] }
listeners:
  - mode: http
    bind: 127.0.0.1:0
    routes:
      - match: { host: api.example.com, pathPrefix: /v1, method: [GET, HEAD], headers: { x-canary: "1" } }
        service: api-canary
      - match: { host: "*.example.com" }
        service: web
      - service: fallback`);
    try {
      const to = async (host: string, path: string, method = 'GET', headers: Record<string, string> = {}) => {
        const res = await request(proxy.port(), { method, path, headers: { host, ...headers } });
        return Number(res.headers['x-backend']);
      };
      assert.equal(await to('api.example.com', '/v1/users', 'GET', { 'x-canary': '1' }), a.port);
      assert.equal(await to('API.Example.com:8080', '/v1/users', 'GET', { 'x-canary': '1' }), a.port, 'host is case-insensitive, port ignored');
      assert.equal(await to('api.example.com', '/v1/users', 'POST', { 'x-canary': '1' }), b.port, 'method not listed');
      assert.equal(await to('api.example.com', '/v1/users', 'GET', { 'x-canary': '2' }), b.port, 'header value differs');
      assert.equal(await to('api.example.com', '/v2/users', 'GET', { 'x-canary': '1' }), b.port, 'path prefix differs');
      assert.equal(await to('www.example.com', '/'), b.port);
      assert.equal(await to('example.com', '/'), c.port, '*.example.com does not match example.com');
      assert.equal(await to('other.org', '/'), c.port);
    } finally {
      await proxy.stop();
    }
  });

  it('answers 404 with a JSON body when no route matches', async () => {
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${a.port}] } }
listeners: [ { mode: http, bind: 127.0.0.1:0, routes: [ { match: { pathPrefix: /api }, service: s } ] } ]`);
    try {
      const res = await request(proxy.port(), { path: '/other' });
      assert.equal(res.status, 404);
      assert.equal(res.headers['content-type'], 'application/json');
      assert.equal(JSON.parse(res.body).error, 'DROVER_NO_ROUTE');
    } finally {
      await proxy.stop();
    }
  });

  it('adds X-Forwarded-For/-Proto/-Host, keeps Host, and drops hop-by-hop headers', async () => {
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${a.port}] } }
listeners: [ { mode: http, bind: 127.0.0.1:0, service: s } ]`);
    try {
      const res = await request(proxy.port(), {
        headers: {
          host: 'shop.example.com',
          'x-forwarded-for': '203.0.113.9',
          connection: 'keep-alive, x-secret-hop',
          'x-secret-hop': 'private',
          'keep-alive': 'timeout=5',
          te: 'trailers',
          'proxy-authorization': 'Basic abc',
          'x-end-to-end': 'kept',
        },
      });
      assert.equal(res.status, 200);
      const seen = json(res.body).headers;
      assert.equal(seen.host, 'shop.example.com');
      assert.equal(seen['x-forwarded-for'], '203.0.113.9, 127.0.0.1');
      assert.equal(seen['x-forwarded-proto'], 'http');
      assert.equal(seen['x-forwarded-host'], 'shop.example.com');
      assert.equal(seen['x-end-to-end'], 'kept');
      for (const hop of ['x-secret-hop', 'keep-alive', 'te', 'proxy-authorization']) {
        assert.equal(seen[hop], undefined, `${hop} must not be forwarded`);
      }
    } finally {
      await proxy.stop();
    }
  });

  it('hashes on the first untrusted X-Forwarded-For address only when the peer is trusted', async () => {
    const config = (trust: string) => `
services: { s: { static: [127.0.0.1:${a.port}, 127.0.0.1:${b.port}, 127.0.0.1:${c.port}], strategy: ip-hash } }
listeners: [ { mode: http, bind: 127.0.0.1:0, service: s, trustForwardedFor: ${trust} } ]`;
    const clients = Array.from({ length: 30 }, (_, i) => `198.51.100.${i + 1}`);
    const backendsFor = async (port: number) =>
      new Set(
        await Promise.all(
          clients.map(async (ip) => (await request(port, { headers: { 'x-forwarded-for': `${ip}, 10.0.0.7` } })).headers['x-backend']),
        ),
      );
    const trusted = await startProxy(config('[127.0.0.1, 10.0.0.0/8]'));
    const untrusted = await startProxy(config('false'));
    try {
      // 10.0.0.7 is a trusted hop too, so the client is the address left of it.
      assert.ok((await backendsFor(trusted.port())).size > 1, 'trusted: clients spread by their own address');
      assert.equal((await backendsFor(untrusted.port())).size, 1, 'untrusted: every request hashes on the peer 127.0.0.1');
      const again = await request(trusted.port(), { headers: { 'x-forwarded-for': `${clients[0]}, 10.0.0.7` } });
      const first = await request(trusted.port(), { headers: { 'x-forwarded-for': `${clients[0]}, 10.0.0.7` } });
      assert.equal(again.headers['x-backend'], first.headers['x-backend'], 'the same client stays on one backend');
    } finally {
      await Promise.all([trusted.stop(), untrusted.stop()]);
    }
  });

  it('passes a WebSocket through, counting it as active while open', async () => {
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${a.port}], strategy: least-connections } }
listeners: [ { mode: http, bind: 127.0.0.1:0, service: s } ]`);
    try {
      const ws = new WebSocket(`ws://127.0.0.1:${proxy.port()}/chat`);
      const messages: string[] = [];
      const got = (n: number) => eventually(() => messages.length >= n, `${n} websocket messages`);
      ws.on('message', (m) => messages.push(m.toString()));
      await once(ws, 'open');
      await got(1);
      assert.equal(messages[0], `hello from ${a.port}`);
      ws.send('ping through the proxy');
      await got(2);
      assert.equal(messages[1], 'ping through the proxy');
      assert.equal(proxy.drover.services.get('s')!.states.active(`127.0.0.1:${a.port}`), 1);
      ws.close();
      await once(ws, 'close');
      await eventually(() => proxy.drover.services.get('s')!.states.active(`127.0.0.1:${a.port}`) === 0, 'websocket released');
    } finally {
      await proxy.stop();
    }
  });

  it('closes an idle WebSocket after the listener idle timeout', async () => {
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${a.port}] } }
listeners: [ { mode: http, bind: 127.0.0.1:0, service: s, timeouts: { idle: 300ms } } ]`);
    try {
      const ws = new WebSocket(`ws://127.0.0.1:${proxy.port()}/`);
      await once(ws, 'message');
      const started = Date.now();
      await once(ws, 'close');
      assert.ok(Date.now() - started >= 250, 'closed before the idle timeout');
    } finally {
      await proxy.stop();
    }
  });

  it('retries a refused backend for any method, POST included', async () => {
    const dead = await freePort();
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${dead}, 127.0.0.1:${a.port}], retries: 1 } }
listeners: [ { mode: http, bind: 127.0.0.1:0, service: s } ]`);
    try {
      for (let i = 0; i < 4; i++) {
        const res = await request(proxy.port(), { method: 'POST', body: 'x'.repeat(200_000) });
        assert.equal(res.status, 200);
        assert.equal(json(res.body).bytes, 200_000, 'a large streamed body survives a refused first backend');
      }
    } finally {
      await proxy.stop();
    }
  });

  it('a GET survives the death of its backend with no client error', async () => {
    const doomed = await startHttpBackend('mortal');
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${doomed.port}, 127.0.0.1:${a.port}], retries: 1 } }
listeners: [ { mode: http, bind: 127.0.0.1:0, service: s } ]`);
    try {
      // Round robin sends one of the two to the doomed backend, which dies holding it.
      const exited = once(doomed.child, 'exit');
      const results = await Promise.all([request(proxy.port(), { path: '/die' }), request(proxy.port(), { path: '/die' })]);
      await exited;
      assert.deepEqual(
        results.map((r) => [r.status, Number(r.headers['x-backend'])]),
        [
          [200, a.port],
          [200, a.port],
        ],
      );
      const later = await Promise.all([1, 2, 3, 4].map(() => request(proxy.port(), { path: '/echo' })));
      assert.deepEqual(
        later.map((r) => r.status),
        [200, 200, 200, 200],
      );
    } finally {
      await proxy.stop();
      await doomed.stop();
    }
  });

  it('retries a PUT whose backend resets before answering, but answers 502 to such a POST', async () => {
    const resetter = await startHttpBackend('mortal');
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${resetter.port}, 127.0.0.1:${a.port}], retries: 1 } }
listeners: [ { mode: http, bind: 127.0.0.1:0, service: s } ]`);
    try {
      const puts = await Promise.all([1, 2, 3, 4].map(() => request(proxy.port(), { method: 'PUT', path: '/reset', body: 'v=1' })));
      assert.deepEqual(
        puts.map((r) => [r.status, Number(r.headers['x-backend'])]),
        [1, 2, 3, 4].map(() => [200, a.port]),
      );
      const posts = await Promise.all([1, 2, 3, 4].map(() => request(proxy.port(), { method: 'POST', path: '/reset', body: 'v=1' })));
      const statuses = posts.map((r) => r.status).sort();
      assert.deepEqual(statuses, [200, 200, 502, 502], 'the POSTs that hit the resetting backend are not sent again');
    } finally {
      await proxy.stop();
      await resetter.stop();
    }
  });

  it('delivers a POST exactly once when its backend dies after receiving it, and answers 502', async () => {
    const doomed = await startHttpBackend('mortal');
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${doomed.port}], retries: 2 } }
listeners: [ { mode: http, bind: 127.0.0.1:0, service: s } ]`);
    proxy.drover.services.get('s')!.update([
      { host: '127.0.0.1', port: doomed.port, weight: 1 },
      { host: '127.0.0.1', port: a.port, weight: 1 },
    ]);
    const deliveries: string[] = [];
    const count = (m: { type?: string; id?: string }) => m.type === 'request' && m.id === 'post-1' && deliveries.push(m.id);
    doomed.child.on('message', count);
    a.child.on('message', count);
    try {
      // Round robin: make the doomed backend the next pick.
      let res = await request(proxy.port(), { path: '/echo' });
      if (Number(res.headers['x-backend']) === doomed.port) res = await request(proxy.port(), { path: '/echo' });
      res = await request(proxy.port(), { method: 'POST', path: '/die', headers: { 'x-test-id': 'post-1' }, body: 'pay 10 EUR' });
      assert.equal(res.status, 502);
      assert.equal(JSON.parse(res.body).error, 'DROVER_UPSTREAM_FAILED');
      // A marker request through backend a: its report arrives after any earlier one from a.
      await request(proxy.port(), { path: '/echo' });
      await request(proxy.port(), { path: '/echo' });
      assert.deepEqual(deliveries, ['post-1'], 'the POST reached exactly one backend');
    } finally {
      a.child.off('message', count);
      await proxy.stop();
      await doomed.stop();
    }
  });

  it('answers 503 with Retry-After when no backend is usable', async () => {
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${a.port}] } }
listeners: [ { mode: http, bind: 127.0.0.1:0, service: s } ]`);
    try {
      proxy.drover.services.get('s')!.states.setDown(`127.0.0.1:${a.port}`, true);
      const res = await request(proxy.port());
      assert.equal(res.status, 503);
      assert.equal(res.headers['retry-after'], '1');
      assert.equal(JSON.parse(res.body).error, 'DROVER_NO_BACKEND');
    } finally {
      await proxy.stop();
    }
  });

  it('answers 504 when response headers are late, and aborts the upstream request', async () => {
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${b.port}] } }
listeners: [ { mode: http, bind: 127.0.0.1:0, service: s, timeouts: { response: 300ms } } ]`);
    try {
      const closed = b.next('closed');
      const started = Date.now();
      const res = await request(proxy.port(), { path: '/hang' });
      assert.equal(res.status, 504);
      assert.equal(JSON.parse(res.body).error, 'DROVER_UPSTREAM_TIMEOUT');
      assert.ok(Date.now() - started >= 250);
      assert.deepEqual(await closed, { type: 'closed', url: '/hang' });
    } finally {
      await proxy.stop();
    }
  });

  it('counts in-flight requests for least-connections and samples time to headers for response-time', async () => {
    const proxy = await startProxy(`
services:
  lc: { static: [127.0.0.1:${b.port}, 127.0.0.1:${c.port}], strategy: least-connections }
  rt: { static: [127.0.0.1:${b.port}], strategy: response-time }
listeners:
  - { name: lc, mode: http, bind: 127.0.0.1:0, service: lc }
  - { name: rt, mode: http, bind: 127.0.0.1:0, service: rt }`);
    try {
      const lc = proxy.drover.services.get('lc')!.states;
      const hanging = request(proxy.port('lc'), { path: '/hang' }).catch(() => undefined);
      await eventually(() => lc.active(`127.0.0.1:${b.port}`) + lc.active(`127.0.0.1:${c.port}`) === 1, 'one request in flight');
      const busy = lc.active(`127.0.0.1:${b.port}`) === 1 ? b.port : c.port;
      const idle = busy === b.port ? c.port : b.port;
      for (let i = 0; i < 3; i++) {
        const res = await request(proxy.port('lc'));
        assert.equal(Number(res.headers['x-backend']), idle, 'the backend holding a request gets none');
      }
      await request(proxy.port('rt'), { path: '/slow?ms=120' });
      const latency = proxy.drover.services.get('rt')!.states.latency(`127.0.0.1:${b.port}`)!;
      assert.ok(latency >= 100 && latency < 2000, `sampled ${latency} ms`);
      await proxy.stop(0);
      await hanging;
    } finally {
      await proxy.stop();
    }
  });
});
