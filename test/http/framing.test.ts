import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ENGINE, rawExchange, request, startBackend, startHttpBackend, startProxy, type TestBackend, type TestProxy } from '../fixtures/harness.js';
import { parseRaw } from './helpers.js';

describe('HTTP framing and targets', () => {
  let backend: TestBackend;
  let proxy: TestProxy;
  const seen: Array<{ method: string; url: string }> = [];
  before(async () => {
    backend = await startHttpBackend();
    backend.child.on('message', (m: { type?: string; method: string; url: string }) => m.type === 'request' && seen.push(m));
    proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${backend.port}] } }
listeners: [ { mode: http, bind: 127.0.0.1:0, service: s } ]`);
  });
  after(async () => {
    await proxy.stop();
    await backend.stop();
  });

  const big = 'x'.repeat(100_000);
  // A body that is itself a request: if Drover framed it wrongly upstream, the backend would see /smuggled.
  const inner = 'GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n';
  const payload = inner + 'x'.repeat(big.length - inner.length);
  const chunked = (method: string, path: string) =>
    `${method} ${path} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n${payload.length.toString(16)}\r\n${payload}\r\n0\r\n\r\n`;

  it('forwards a large chunked DELETE body whole, never as a second request', async () => {
    const reply = await rawExchange(proxy.port(), chunked('DELETE', '/echo?del') + 'GET /echo?next HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
    assert.match(reply, /"bytes":100000/);
    await request(proxy.port(), { path: '/echo?marker' });
    assert.deepEqual(seen.filter((m) => m.url === '/smuggled'), []);
  });

  it('keeps the framing when Connection names Content-Length', async () => {
    const res = await request(proxy.port(), { method: 'POST', path: '/echo?conn', headers: { connection: 'content-length' }, body: big });
    assert.equal(JSON.parse(res.body).bytes, big.length);
    await request(proxy.port(), { path: '/echo?marker2' });
    assert.deepEqual(seen.filter((m) => m.url === '/smuggled' || m.url?.startsWith('xxx')), []);
  });

  it('sends the exact path the route matched, double slashes included', async () => {
    const res = await request(proxy.port(), { path: '//admin/x//y' });
    assert.equal(JSON.parse(res.body).url, '//admin/x//y');
  });

  it('accepts an absolute-form target, routing on its authority', async () => {
    const reply = await rawExchange(proxy.port(), 'GET http://shop.example/cart?a=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n');
    const body = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)) as { url: string; headers: Record<string, string> };
    assert.equal(body.url, '/cart?a=1');
    assert.equal(body.headers.host, 'shop.example');
  });

  it('refuses an unparsable target, in a request or an upgrade, without crashing', async () => {
    assert.match(await rawExchange(proxy.port(), 'GET http://[::1/ HTTP/1.1\r\nHost: t\r\n\r\n'), /^HTTP\/1.1 400/);
    assert.match(
      await rawExchange(proxy.port(), 'GET http://[::1/ HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'),
      /^HTTP\/1.1 400/,
    );
    assert.equal((await request(proxy.port())).status, 200);
  });

  it(`answers a GET with Upgrade: h2c over HTTP/1.1, never forwarding the upgrade${ENGINE === 'http-proxy' ? ' (http-proxy engine: 501, its limit)' : ''}`, async () => {
    const reply = await rawExchange(
      proxy.port(),
      'GET /echo?h2c HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n' +
        'GET /echo?after-h2c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n',
    );
    if (ENGINE === 'http-proxy') return assert.match(reply, /^HTTP\/1.1 501/);
    const first = parseRaw(reply);
    assert.equal(first.status, 200);
    const echo = JSON.parse(first.body.slice(0, Number(first.headers['content-length']))) as { url: string; headers: Record<string, string> };
    assert.equal(echo.url, '/echo?h2c');
    assert.equal(echo.headers.upgrade, undefined, 'the h2c upgrade is not passed to the backend');
    assert.equal(echo.headers['http2-settings'], undefined);
    assert.match(reply, /"url":"\/echo\?after-h2c"/, 'the connection goes on with HTTP/1.1');
  });

  for (const mode of ['bad-status', 'bad-reason'] as const) {
    it(`survives a backend that answers with a ${mode.replace('bad-', 'malformed ')}`, async () => {
      const bad = await startBackend(mode);
      const p = await startProxy(`
services: { s: { static: [127.0.0.1:${bad.port}] } }
listeners: [ { mode: http, bind: 127.0.0.1:0, service: s } ]`);
      try {
        const res = await request(p.port());
        if (mode === 'bad-status') assert.equal(res.status, 502);
        else assert.ok(res.status === 200 || res.status === 502, String(res.status));
        assert.equal((await request(proxy.port())).status, 200, 'the process still serves');
      } finally {
        await p.stop();
        await bad.stop();
      }
    });
  }
});
