import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { serviceDoc } from '../../src/admin/api.js';
import { closed, connect, ENGINE, eventually, freePort, request, startHttpBackend, startProxy, type TestBackend, type TestResponse } from '../fixtures/harness.js';

/** Lines the proxy logged for failed requests (`request failed: 5xx`). */
function failures(lines: Array<Record<string, unknown>>): Array<Record<string, unknown>> {
  return lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('request failed: '));
}

/** Starts a POST that declares `declared` bytes, sends `sent` of them and stops. */
async function stalledUpload(port: number, path: string, declared: number, sent: number): Promise<Socket> {
  const s = await connect(port);
  s.on('error', () => {});
  s.write(`POST ${path} HTTP/1.1\r\nHost: t\r\nContent-Length: ${declared}\r\n\r\n`);
  s.write(Buffer.alloc(sent, 0x61));
  return s;
}

describe('HTTP limits: slots, the queue, the whole-request deadline, failure logs', { timeout: 120_000 }, () => {
  let backend: TestBackend;
  let id: string;
  before(async () => {
    backend = await startHttpBackend();
    id = `127.0.0.1:${backend.port}`;
  });
  after(async () => {
    await backend.stop();
  });

  for (const [what, service] of [
    ['a member at its maxConnections', `static: [ { address: 127.0.0.1:PORT, maxConnections: 1 } ]`],
    ['a backend at maxSockets', `static: [127.0.0.1:PORT], maxSockets: 1`],
  ] as const) {
    it(`queues a request for ${what} until the slot frees, and answers 503 DROVER_QUEUE_FULL past the queue's size`, async () => {
      const proxy = await startProxy(
        `
services: { s: { ${service.replace('PORT', String(backend.port))}, queue: { size: 1, timeout: 10s } } }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, service: s } ]`,
        'warn',
      );
      const balancer = proxy.drover.services.get('s')!;
      try {
        const order: string[] = [];
        const first = request(proxy.port(), { path: '/slow?ms=300' }).then((r) => (order.push('first'), r));
        await eventually(() => balancer.states.active(id) === 1, 'the first request holds the slot');
        const queued = request(proxy.port(), { path: '/echo?queued' }).then((r) => (order.push('queued'), r));
        await eventually(() => balancer.queue.length === 1, 'the second request waits in the queue');
        assert.equal(serviceDoc(balancer, undefined).queued, 1, 'the admin API shows it waiting');
        const full = await request(proxy.port(), { path: '/echo?full' });
        assert.equal(full.status, 503);
        assert.equal(JSON.parse(full.body).error, 'DROVER_QUEUE_FULL');
        assert.equal(full.headers['retry-after'], '1');
        const [a, b] = await Promise.all([first, queued]);
        assert.deepEqual([a.status, b.status], [200, 200]);
        assert.deepEqual(order, ['first', 'queued'], 'the queued request went after the slot freed');
        assert.equal(JSON.parse(b.body).url, '/echo?queued');
        const logged = failures(proxy.lines);
        assert.equal(logged.length, 1);
        assert.equal(logged[0]!.level, 'warn');
        assert.deepEqual(
          { listener: logged[0]!.listener, service: logged[0]!.service, reason: logged[0]!.reason, status: logged[0]!.status, code: logged[0]!.code },
          { listener: 'web', service: 's', reason: 'queue_full', status: 503, code: 'DROVER_QUEUE_FULL' },
        );
        assert.equal(logged[0]!.requestId, full.headers['x-request-id'], 'the answer carries the request id the log line names');
      } finally {
        await proxy.stop();
      }
    });
  }

  it('wakes a request queued on one service when another service frees the slot of a backend they share', async () => {
    const proxy = await startProxy(`
services:
  a: { static: [127.0.0.1:${backend.port}], maxSockets: 1, queue: { timeout: 5s } }
  b: { static: [127.0.0.1:${backend.port}], maxSockets: 1, queue: { timeout: 5s } }
listeners:
  - name: web
    mode: http
    bind: 127.0.0.1:0
    routes: [ { match: { pathPrefix: /slow }, service: a }, { service: b } ]`);
    try {
      const first = request(proxy.port(), { path: '/slow?ms=200' });
      await eventually(() => proxy.drover.services.get('a')!.states.active(id) === 1, 'service a holds the one slot');
      const started = performance.now();
      const second = await request(proxy.port(), { path: '/echo?b' });
      assert.equal(second.status, 200, second.body);
      assert.ok(performance.now() - started < 4000, 'served once a freed the slot, not at the queue timeout');
      assert.equal((await first).status, 200);
    } finally {
      await proxy.stop();
    }
  });

  it('answers 503 DROVER_QUEUE_TIMEOUT to a request that waited its queue timeout for a slot', async () => {
    const proxy = await startProxy(
      `
services: { s: { static: [ { address: 127.0.0.1:${backend.port}, maxConnections: 1 } ], queue: { timeout: 300ms } } }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, service: s } ]`,
      'warn',
    );
    const balancer = proxy.drover.services.get('s')!;
    try {
      const holder = request(proxy.port(), { path: '/hang' }).catch(() => undefined);
      await eventually(() => balancer.states.active(id) === 1, 'the first request holds the slot');
      const started = performance.now();
      const late = await request(proxy.port(), { path: '/echo?late' });
      const waited = performance.now() - started;
      assert.equal(late.status, 503);
      assert.equal(JSON.parse(late.body).error, 'DROVER_QUEUE_TIMEOUT');
      assert.ok(waited >= 250, `answered after ${waited.toFixed(0)} ms, not before the 300 ms queue timeout`);
      assert.equal(balancer.queue.length, 0);
      assert.deepEqual(
        failures(proxy.lines).map((l) => l.reason),
        ['queue_timeout'],
      );
      await proxy.stop(0);
      await holder;
    } finally {
      await proxy.stop();
    }
  });

  it('queues behind the agent maxconn too, and a request that is never full gets 503 DROVER_NO_BACKEND at once', async () => {
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${backend.port}], queue: { size: 5, timeout: 10s } } }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, service: s } ]`);
    const balancer = proxy.drover.services.get('s')!;
    try {
      balancer.states.setMaxConn(id, 1);
      const first = request(proxy.port(), { path: '/slow?ms=200' });
      await eventually(() => balancer.states.active(id) === 1, 'the first request holds the slot');
      const second = request(proxy.port(), { path: '/echo?after-maxconn' });
      await eventually(() => balancer.queue.length === 1, 'the second request waits for the slot');
      assert.deepEqual((await Promise.all([first, second])).map((r: TestResponse) => r.status), [200, 200]);
      balancer.states.setMaxConn(id, undefined);
      balancer.states.setDown(id, true);
      const down = await request(proxy.port(), { path: '/echo?down' });
      assert.equal(JSON.parse(down.body).error, 'DROVER_NO_BACKEND', 'a down backend is not waited for');
    } finally {
      await proxy.stop();
    }
  });

  it('closes an upload slower than timeouts.request (408 when nothing was answered yet) and frees its backend slot', async () => {
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${backend.port}] } }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, service: s, timeouts: { request: 600ms, headers: 600ms, idle: 5s } } ]`);
    const states = proxy.drover.services.get('s')!.states;
    try {
      // 70 KB (past the 64 KB held for retries, so a backend slot is taken), then a byte every 100 ms: never idle, never done.
      const s = await stalledUpload(proxy.port(), '/echo?trickle', 1_000_000, 70 * 1024);
      const received: Buffer[] = [];
      s.on('data', (c: Buffer) => received.push(c));
      const started = performance.now();
      const drip = setInterval(() => s.writable && s.write('a'), 100);
      await eventually(() => states.active(id) === 1, 'the upload holds a backend slot');
      await closed(s);
      clearInterval(drip);
      const elapsed = performance.now() - started;
      assert.ok(elapsed >= 400 && elapsed < 5000, `closed after ${elapsed.toFixed(0)} ms (request timeout 600 ms, idle 5 s)`);
      const text = Buffer.concat(received).toString('latin1');
      assert.ok(text === '' || text.startsWith('HTTP/1.1 408 '), `408 or a bare close: ${JSON.stringify(text.slice(0, 40))}`);
      await eventually(() => states.active(id) === 0, 'the slot is free again');
      await eventually(async () => (await backend.connections()) === 0, 'the upstream request was aborted');
    } finally {
      await proxy.stop();
    }
  });

  it('serves another client while 300 clients hold uploads open, once timeouts.request cuts them', async () => {
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${backend.port}], maxSockets: 256 } }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, service: s, timeouts: { request: 1s, headers: 1s, idle: 30s } } ]`);
    const states = proxy.drover.services.get('s')!.states;
    const uploads: Socket[] = [];
    try {
      for (let i = 0; i < 300; i++) uploads.push(await stalledUpload(proxy.port(), `/echo?slow-${i}`, 1_000_000, 70 * 1024));
      await eventually(() => states.active(id) === 256, 'every backend slot is held by a slow upload', 20_000);
      const res = await request(proxy.port(), { path: '/echo?served' });
      assert.equal(res.status, 200, `the other client is served: ${res.body}`);
      assert.equal(JSON.parse(res.body).url, '/echo?served');
    } finally {
      for (const s of uploads) s.destroy();
      await proxy.stop();
    }
  });

  it('logs each 502 and 504 at warn with listener, service, backend, reason and request id, once per service and reason at first', async () => {
    const dead = await freePort();
    const proxy = await startProxy(
      `
services:
  gone: { static: [127.0.0.1:${dead}], retries: 0 }
  slow: { static: [127.0.0.1:${backend.port}] }
listeners:
  - { name: a, mode: http, bind: 127.0.0.1:0, service: gone }
  - { name: b, mode: http, bind: 127.0.0.1:0, service: slow, timeouts: { response: 200ms } }`,
      'warn',
    );
    try {
      for (let i = 0; i < 5; i++) assert.equal((await request(proxy.port('a'), { headers: { 'x-request-id': `gone-${i}` } })).status, 502);
      const timedOut = await request(proxy.port('b'), { path: '/hang' });
      assert.equal(timedOut.status, 504);
      const logged = failures(proxy.lines);
      assert.deepEqual(
        logged.map((l) => [l.listener, l.service, l.backend, l.reason, l.status]),
        [
          ['a', 'gone', `127.0.0.1:${dead}`, 'upstream_failed', 502],
          ['b', 'slow', `127.0.0.1:${backend.port}`, 'upstream_timeout', 504],
        ],
        'five 502s of one service and reason make one line (the rest are counted until the next)',
      );
      assert.equal(logged[0]!.requestId, 'gone-0', "the client's own request id is kept");
      assert.equal(typeof logged[1]!.requestId, 'string');
      assert.equal(logged[1]!.requestId, timedOut.headers['x-request-id']);
    } finally {
      await proxy.stop();
    }
  });

  it(`falls back to the http-proxy engine with one warning when Node's parser is not there${ENGINE === 'http-proxy' ? ' (already on it)' : ''}`, async () => {
    const proxy = await startProxy(
      `
services: { s: { static: [127.0.0.1:${backend.port}] } }
listeners:
  - { name: one, mode: http, bind: 127.0.0.1:0, service: s }
  - { name: two, mode: http, bind: 127.0.0.1:0, service: s, engine: native }`,
      'warn',
      { httpParser: () => ({ HTTPParser: undefined }) },
    );
    try {
      assert.deepEqual(
        proxy.drover.listeners.map((l) => (l as { engine?: string }).engine),
        ['http-proxy', 'http-proxy'],
      );
      const warned = proxy.lines.filter((l) => l.msg === 'native HTTP engine unavailable: HTTP listeners use the http-proxy engine');
      assert.equal(warned.length, 1, 'one warning for the whole process');
      assert.match(String(warned[0]!.reason), /HTTPParser/);
      assert.equal((await request(proxy.port('one'), { path: '/echo?fallback' })).status, 200);
      assert.equal((await request(proxy.port('two'), { path: '/echo?fallback' })).status, 200);
    } finally {
      await proxy.stop();
    }
  });
});
