import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import type { Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { closed, connect, request, startHttpBackend, startProxy, type TestBackend, type TestProxy } from '../fixtures/harness.js';
import { parseRaw, rawSend, watchMessages, type MessageLog } from './helpers.js';

/** A normal request from a new client: the proxy is still serving. */
async function assertStillServing(port: number): Promise<void> {
  const res = await request(port, { path: '/echo?still-serving' });
  assert.equal(res.status, 200, 'a normal request after the hostile one gets 200');
  assert.equal(JSON.parse(res.body).url, '/echo?still-serving');
}

/** A failing test fails in seconds, not at the suite's limit. */
const quick = { timeout: 10_000 };

describe('HTTP proxy: hostile and odd input', { timeout: 60_000 }, () => {
  let backend: TestBackend;
  let messages: MessageLog;
  let proxy: TestProxy;
  let port: number;
  before(async () => {
    backend = await startHttpBackend();
    messages = watchMessages(backend);
    proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${backend.port}] } }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, service: s } ]`);
    port = proxy.port();
  });
  after(async () => {
    try {
      await proxy.stop();
    } finally {
      await backend.stop();
    }
  });

  it('forwards a GET with a Trailer header, without the Trailer header', quick, async () => {
    const res = await rawSend(port, 'GET /echo?trailer-get HTTP/1.1\r\nHost: example.test\r\nTrailer: x-foo\r\nConnection: close\r\n\r\n');
    assert.equal(res.status, 200);
    const echo = JSON.parse(res.body);
    assert.equal(echo.url, '/echo?trailer-get');
    assert.equal(echo.headers.trailer, undefined);
    await assertStillServing(port);
  });

  it('forwards a chunked POST that announces and sends a trailer, without the Trailer header', quick, async () => {
    const res = await rawSend(
      port,
      'POST /echo?trailer-post HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\nTrailer: x-foo\r\nConnection: close\r\n\r\n' +
        '5\r\nhello\r\n6\r\n world\r\n0\r\nx-foo: bar\r\n\r\n',
    );
    assert.equal(res.status, 200);
    const echo = JSON.parse(res.body);
    assert.equal(echo.url, '/echo?trailer-post');
    assert.equal(echo.method, 'POST');
    assert.equal(echo.bytes, 11);
    assert.equal(echo.headers.trailer, undefined);
    assert.equal(echo.headers['transfer-encoding'], undefined);
    await assertStillServing(port);
  });

  it('answers Expect: 100-continue with 100 Continue, then forwards the body', quick, async () => {
    const body = Buffer.alloc(10_000, 'b');
    const { informational, status, echo } = await new Promise<{ informational: number[]; status: number; echo: Record<string, unknown> }>(
      (resolve, reject) => {
        const informational: number[] = [];
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path: '/echo?expect',
            agent: false,
            headers: { expect: '100-continue', 'content-length': body.length, 'content-type': 'application/octet-stream' },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ informational, status: res.statusCode!, echo: JSON.parse(Buffer.concat(chunks).toString()) }));
            res.on('error', reject);
          },
        );
        req.on('information', (info) => informational.push(info.statusCode));
        req.on('continue', () => req.end(body));
        req.on('error', reject);
        req.flushHeaders();
      },
    );
    assert.deepEqual(informational, [100]);
    assert.equal(status, 200);
    assert.equal(echo.bytes, body.length);
    assert.equal((echo.headers as Record<string, string>).expect, undefined);
    await assertStillServing(port);
  });

  it('answers headers larger than 16 KB with 431 and a JSON body', quick, async () => {
    const big = 'x'.repeat(20 * 1024);
    const res = await rawSend(port, `GET /echo?big HTTP/1.1\r\nHost: example.test\r\nX-Big: ${big}\r\n\r\n`);
    assert.equal(res.status, 431);
    assert.match(res.headers['content-type'] ?? '', /application\/json/);
    const json = JSON.parse(res.body);
    assert.equal(json.error, 'DROVER_HEADERS_TOO_LARGE');
    assert.equal(typeof json.message, 'string');
    assert.equal(messages.filter((m) => m.type === 'request' && m.url === '/echo?big').length, 0);
    await assertStillServing(port);
  });

  describe('slow headers (slowloris), with timeouts.headers: 500ms', () => {
    let slow: TestProxy;
    before(async () => {
      slow = await startProxy(`
services: { s: { static: [127.0.0.1:${backend.port}] } }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, service: s, timeouts: { headers: 500ms } } ]`);
    });
    after(async () => {
      await slow.stop();
    });

    /**
     * Connects, lets `behave` send (part of) a request, and resolves once the
     * proxy closed the connection, with the time from the first header byte
     * to the close and what the proxy sent.
     */
    async function untilClosed(behave: (s: Socket) => void): Promise<{ elapsed: number; text: string }> {
      const s = await connect(slow.port(), { allowHalfOpen: true });
      const chunks: Buffer[] = [];
      s.on('data', (c: Buffer) => chunks.push(c));
      s.on('error', () => {});
      s.on('end', () => s.end());
      const started = performance.now();
      behave(s);
      await closed(s);
      return { elapsed: performance.now() - started, text: Buffer.concat(chunks).toString('latin1') };
    }

    function assertTimedOut(text: string, elapsed: number, from = 0): void {
      assert.ok(text.slice(from) === '' || text.slice(from).startsWith('HTTP/1.1 408 '), `closed, or answered 408: ${JSON.stringify(text.slice(from, from + 40))}`);
      assert.ok(elapsed >= 400, `closed after ${elapsed.toFixed(0)} ms, not before the 500 ms headers timeout`);
      assert.ok(elapsed < 5000, `closed after ${elapsed.toFixed(0)} ms, within a few headers timeouts`);
    }

    it('closes a client that sends part of its headers and stops', quick, async () => {
      const { elapsed, text } = await untilClosed((s) => s.write('GET /echo?slowloris HTTP/1.1\r\nHost: example.test\r\nX-Slow: 1'));
      assertTimedOut(text, elapsed);
      assert.equal(messages.filter((m) => m.type === 'request' && m.url === '/echo?slowloris').length, 0);
      await assertStillServing(slow.port());
    });

    it('closes a client that keeps trickling its headers a byte at a time', quick, async () => {
      const head = `GET /echo?trickle HTTP/1.1\r\nHost: example.test\r\n${'X-Trickle: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n'.repeat(100)}\r\n`;
      let timer: NodeJS.Timeout | undefined;
      const { elapsed, text } = await untilClosed((s) => {
        let i = 0;
        // One byte every 20 ms: always under the 500 ms timeout between bytes, never done in time.
        timer = setInterval(() => s.writable && i < head.length && s.write(head[i++]!), 20);
      });
      clearInterval(timer);
      assertTimedOut(text, elapsed);
      assert.equal(messages.filter((m) => m.type === 'request' && m.url === '/echo?trickle').length, 0);
      await assertStillServing(slow.port());
    });

    it('closes a keep-alive client whose second request stops mid-headers', quick, async () => {
      let sentSecond = 0;
      let firstLength = 0;
      const { text } = await untilClosed((s) => {
        s.write('GET /echo?first HTTP/1.1\r\nHost: example.test\r\n\r\n');
        let seen = '';
        s.on('data', function onData(c: Buffer) {
          seen += c.toString('latin1');
          const first = parseRaw(seen);
          const length = Number(first.headers['content-length']);
          if (first.status === 0 || !(first.body.length >= length)) return;
          // The first response is whole: start the second request on the same connection and stop.
          s.off('data', onData);
          firstLength = seen.length - first.body.length + length;
          sentSecond = performance.now();
          s.write('GET /echo?second HTTP/1.1\r\nHost: example.test\r\nX-Slow: 1');
        });
      });
      const elapsed = performance.now() - sentSecond;
      assert.ok(sentSecond > 0, 'the first request was answered');
      assert.equal(parseRaw(text).status, 200);
      assertTimedOut(text, elapsed, firstLength);
      assert.equal(messages.filter((m) => m.type === 'request' && m.url === '/echo?second').length, 0);
      await assertStillServing(slow.port());
    });
  });

  it(
    'closes a client that declares a body and stops sending it (slow body), after timeouts.idle',
    quick,
    async () => {
      const idle = await startProxy(`
services: { s: { static: [127.0.0.1:${backend.port}] } }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, service: s, timeouts: { idle: 500ms } } ]`);
      try {
        // One stalls inside the proxy's 64 KB retry buffer, one after the proxy started streaming upstream.
        const outcomes = await Promise.all(
          [10, 80 * 1024].map(async (sent) => {
            const s = await connect(idle.port());
            s.on('error', () => {});
            const started = performance.now();
            s.write(`POST /echo?slow-body-${sent} HTTP/1.1\r\nHost: example.test\r\nContent-Length: 1000000\r\n\r\n`);
            s.write(Buffer.alloc(sent, 0x61));
            // Bounded: a connection still open after 5 s is the failure this test reports.
            let deadline: NodeJS.Timeout | undefined;
            await Promise.race([closed(s), new Promise((r) => (deadline = setTimeout(r, 5000)))]);
            clearTimeout(deadline);
            const outcome = { sent, closed: s.closed, elapsed: performance.now() - started };
            s.destroy();
            return outcome;
          }),
        );
        for (const o of outcomes) {
          assert.ok(o.closed, `a client silent for 5 s after ${o.sent} body bytes is closed (idle: 500ms)`);
          assert.ok(o.elapsed >= 400, `closed after ${o.elapsed.toFixed(0)} ms, not before the idle timeout`);
        }
        await assertStillServing(idle.port());
      } finally {
        await idle.stop();
      }
    },
  );

  for (const [what, bytes] of [
    ['a request line that is not HTTP', 'GARBAGE\r\n\r\n'],
    ['an unknown HTTP version', 'GET /echo?bad-version HTTP/9.9\r\nHost: example.test\r\n\r\n'],
    ['a request line ending in a bare LF', 'GET /echo?bare-lf HTTP/1.1\nHost: example.test\n\n'],
    ['a space inside the target', 'GET /echo?bad target HTTP/1.1\r\nHost: example.test\r\n\r\n'],
    ['a header line without a colon', 'GET /echo?no-colon HTTP/1.1\r\nHost: example.test\r\nNoColonHere\r\n\r\n'],
  ] as const) {
    it(`answers ${what} with 400`, quick, async () => {
      const res = await rawSend(port, bytes);
      assert.equal(res.status, 400, `got ${JSON.stringify(res.text.slice(0, 60))}`);
      assert.equal(JSON.parse(res.body).error, 'DROVER_BAD_REQUEST');
      await assertStillServing(port);
    });
  }

  it(
    'answers a request line without an HTTP version (HTTP/0.9 style) with 400',
    quick,
    async () => {
      const res = await rawSend(port, 'GET /echo?no-version\r\nHost: example.test\r\n\r\n');
      assert.equal(res.status, 400, `got ${JSON.stringify(res.text.slice(0, 60))}`);
      assert.equal(messages.filter((m) => m.type === 'request' && m.url === '/echo?no-version').length, 0);
      await assertStillServing(port);
    },
  );

  it('answers 501 to a transfer coding it cannot decode before chunked, forwarding nothing', quick, async () => {
    const res = await rawSend(port, 'POST /echo?gzipped HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n');
    assert.equal(res.status, 501);
    assert.equal(JSON.parse(res.body).error, 'DROVER_NOT_IMPLEMENTED');
    assert.equal(messages.filter((m) => m.type === 'request' && m.url === '/echo?gzipped').length, 0);
    await assertStillServing(port);
  });

  it('answers 405 to CONNECT instead of dropping the connection silently', quick, async () => {
    const res = await rawSend(port, 'CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n');
    assert.equal(res.status, 405);
    assert.equal(JSON.parse(res.body).error, 'DROVER_METHOD_NOT_ALLOWED');
    await assertStillServing(port);
  });

  describe('request smuggling shapes are rejected and never reach the backend', () => {
    const shapes: Array<[string, (path: string) => string]> = [
      [
        'both Content-Length and Transfer-Encoding',
        (p) => `POST ${p} HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET ${p}inner HTTP/1.1\r\nHost: example.test\r\n\r\n`,
      ],
      [
        'Transfer-Encoding before Content-Length',
        (p) => `POST ${p} HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\nGET ${p}inner HTTP/1.1\r\nHost: example.test\r\n\r\n`,
      ],
      [
        'two different Content-Length values',
        (p) => `POST ${p} HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\nContent-Length: 44\r\n\r\nhello` + `GET ${p}inner HTTP/1.1\r\nHost: example.test\r\n\r\n`,
      ],
      ['two equal Content-Length values', (p) => `POST ${p} HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello`],
      ['a Content-Length list', (p) => `POST ${p} HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5, 5\r\n\r\nhello`],
      [
        'an obs-fold header continuation line',
        (p) => `POST ${p} HTTP/1.1\r\nHost: example.test\r\nX-Folded: first\r\n second\r\nContent-Length: 5\r\n\r\nhello`,
      ],
      [
        'an obs-fold continuation of Transfer-Encoding',
        (p) => `POST ${p} HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n`,
      ],
      ['Transfer-Encoding: chunked, identity', (p) => `POST ${p} HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n`],
      ['Transfer-Encoding: identity', (p) => `POST ${p} HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: identity\r\n\r\nhello`],
      ['chunked in an HTTP/1.0 request', (p) => `POST ${p} HTTP/1.0\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`],
      ['a fragment in the request target', (p) => `GET ${p}#frag HTTP/1.1\r\nHost: example.test\r\n\r\n`],
      ['Transfer-Encoding: xchunked', (p) => `POST ${p} HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`],
      [
        'chunked twice in Transfer-Encoding',
        (p) => `POST ${p} HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
      ],
      [
        'a space before the colon of Transfer-Encoding',
        (p) => `POST ${p} HTTP/1.1\r\nHost: example.test\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`,
      ],
    ];
    shapes.forEach(([what, build], i) => {
      it(`rejects ${what} with 400 and forwards nothing`, quick, async () => {
        const path = `/smuggle/${i}/`;
        const res = await rawSend(port, build(path));
        assert.ok(res.status === 400 || res.text === '', `400 or closed, got ${JSON.stringify(res.text.slice(0, 60))}`);
        if (res.status === 400) assert.equal(JSON.parse(res.body).error, 'DROVER_BAD_REQUEST');
        // A later request on the same backend is reported after anything the proxy could have forwarded before it.
        const marker = `/echo?after-smuggle-${i}`;
        assert.equal((await request(port, { path: marker })).status, 200);
        await messages.until((m) => m.type === 'request' && m.url === marker);
        const leaked = messages.filter((m) => m.type === 'request' && String(m.url).startsWith(path));
        assert.deepEqual(leaked, [], 'the backend received no part of the rejected request');
        await assertStillServing(port);
      });
    });

    it('none of the rejected requests reached the backend later either', quick, async () => {
      assert.equal((await request(port, { path: '/echo?after-all-smuggling' })).status, 200);
      await messages.until((m) => m.type === 'request' && m.url === '/echo?after-all-smuggling');
      assert.deepEqual(messages.filter((m) => m.type === 'request' && String(m.url).startsWith('/smuggle/')), []);
    });
  });

  it('answers a request no route matches with 404 and a JSON body', quick, async () => {
    const routed = await startProxy(`
services: { s: { static: [127.0.0.1:${backend.port}] } }
listeners:
  - name: web
    mode: http
    bind: 127.0.0.1:0
    routes:
      - match: { pathPrefix: /api }
        service: s`);
    try {
      const res = await request(routed.port(), { path: '/elsewhere' });
      assert.equal(res.status, 404);
      assert.match(String(res.headers['content-type']), /application\/json/);
      const json = JSON.parse(res.body);
      assert.equal(json.error, 'DROVER_NO_ROUTE');
      assert.equal(typeof json.message, 'string');
      assert.equal(messages.filter((m) => m.type === 'request' && m.url === '/elsewhere').length, 0);
      const ok = await request(routed.port(), { path: '/api/echo' });
      assert.equal(ok.status, 200);
      assert.equal(JSON.parse(ok.body).url, '/api/echo');
    } finally {
      await routed.stop();
    }
  });

  it('answers 503 with Retry-After and a JSON body when the service has no usable backend', quick, async () => {
    const own = await startProxy(`
services: { s: { static: [127.0.0.1:${backend.port}] } }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, service: s } ]`);
    try {
      const states = own.drover.services.get('s')!.states;
      const id = `127.0.0.1:${backend.port}`;
      states.setDown(id, true);
      const res = await request(own.port(), { path: '/echo?while-down' });
      assert.equal(res.status, 503);
      assert.ok(res.headers['retry-after'] !== undefined, 'Retry-After is set');
      assert.ok(Number(res.headers['retry-after']) >= 0);
      assert.match(String(res.headers['content-type']), /application\/json/);
      const json = JSON.parse(res.body);
      assert.equal(json.error, 'DROVER_NO_BACKEND');
      assert.equal(typeof json.message, 'string');
      assert.equal(messages.filter((m) => m.type === 'request' && m.url === '/echo?while-down').length, 0);
      assert.equal(states.active(id), 0);
      states.setDown(id, false);
      await assertStillServing(own.port());
    } finally {
      await own.stop();
    }
  });
});
