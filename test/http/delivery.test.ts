import assert from 'node:assert/strict';
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { ENGINE, eventually, request, startBrokenBackend, startHttpBackend, startProxy, type TestBackend, type TestProxy } from '../fixtures/harness.js';
import { watchMessages, WireClient, type MessageLog } from './helpers.js';

const MB = 1024 * 1024;

/** Skips a test on the http-proxy engine, naming the limit (listed in the README) that makes it fail there. */
function limit(what: string): { skip: string | false; timeout: number } {
  return { skip: ENGINE === 'http-proxy' && !process.env.DROVER_TEST_LIMITS ? `http-proxy engine limit: ${what}` : false, timeout: 60_000 };
}

/** A POST of `size` bytes on `agent`, streamed in 64 KB pieces; resolves with the answer and whether the socket was reused. */
function upload(port: number, agent: Agent, path: string, size: number): Promise<{ status: number; body: string; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: 'POST', path, agent, headers: { 'content-length': size } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString(), reused: req.reusedSocket }));
    });
    // Once the answer is in, a refused rest of the body may end in EPIPE/ECONNRESET: the answer stands.
    req.on('error', (err) => (req.writableFinished ? undefined : reject(err)));
    const piece = Buffer.alloc(64 * 1024, 0x61);
    let left = size;
    const pump = () => {
      while (left > 0) {
        const n = Math.min(piece.length, left);
        left -= n;
        if (!req.write(n === piece.length ? piece : piece.subarray(0, n))) return void req.once('drain', pump);
      }
      req.end();
    };
    pump();
  });
}

/** A GET on `agent`; resolves with status, body and whether the socket was reused. */
function get(port: number, agent: Agent, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; reused: boolean; res: IncomingMessage }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString(), reused: req.reusedSocket, res }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** One request on `agent` with an `x-test-id`; resolves with status, echoed id and body. */
function answerTo(port: number, agent: Agent, method: string, path: string, id: string): Promise<{ status: number; id: string | undefined; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, agent, headers: { 'x-test-id': id } }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => resolve({ status: r.statusCode!, id: r.headers['x-test-id'] as string | undefined, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('HTTP delivery: early answers, pipelining, broken backends', { timeout: 120_000 }, () => {
  let backend: TestBackend;
  let messages: MessageLog;
  let broken: TestBackend;
  let brokenMessages: MessageLog;
  before(async () => {
    [backend, broken] = await Promise.all([startHttpBackend(), startBrokenBackend()]);
    messages = watchMessages(backend);
    brokenMessages = watchMessages(broken);
  });
  after(async () => {
    await Promise.all([backend.stop(), broken.stop()]);
  });

  async function proxyFor(target: TestBackend, service = '', listener = ''): Promise<TestProxy> {
    return startProxy(`
services: { s: { static: [127.0.0.1:${target.port}] ${service} } }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, service: s ${listener} } ]`);
  }

  it(
    'delivers an early 413 to a 1 MB, 4 MB and 16 MB upload, frees the pool slot, and answers the next request on the keep-alive connection',
    limit('the rest of an upload the backend did not read stays in the client socket, and the next request on that connection is never answered'),
    async () => {
      const proxy = await proxyFor(backend, ', maxSockets: 2');
      const states = proxy.drover.services.get('s')!.states;
      const id = `127.0.0.1:${backend.port}`;
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (const size of [MB, 4 * MB, 16 * MB]) {
          const early = await upload(proxy.port(), agent, `/early?status=413&size=${size}`, size);
          assert.equal(early.status, 413, `the backend's early answer to ${size} bytes reaches the client`);
          assert.equal(early.body, 'early');
          const next = await get(proxy.port(), agent, `/echo?after=${size}`);
          assert.equal(next.status, 200, `the request after the ${size}-byte upload is answered`);
          assert.equal(JSON.parse(next.body).url, `/echo?after=${size}`);
          if (size === MB) assert.ok(next.reused, 'after 1 MB the rest is read and dropped and the connection kept');
          await eventually(() => states.active(id) === 0, `no request of the ${size}-byte round still counts on the backend`);
        }
        // Two slots only: had an early answer kept its slot, these would queue behind them.
        const again = await Promise.all([1, 2, 3].map((i) => request(proxy.port(), { path: `/echo?slot=${i}` })));
        assert.deepEqual(
          again.map((r) => r.status),
          [200, 200, 200],
        );
      } finally {
        agent.destroy();
        await proxy.stop();
      }
    },
  );

  it(
    'delivers an early 413 with Connection: close from a backend that never reads the upload',
    limit('an early answer from a backend that then closes reaches the client as 502, a bare close, or, when the machine is busy, not at all'),
    async () => {
      const proxy = await proxyFor(broken);
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      try {
        for (const size of [MB, 4 * MB]) {
          const early = await upload(proxy.port(), agent, `/early-close?size=${size}`, size);
          assert.equal(early.status, 413);
          assert.equal(early.body, 'too large');
          await brokenMessages.until((m) => m.type === 'request' && m.url === `/early-close?size=${size}`);
          assert.equal((await get(proxy.port(), agent, '/ok')).status, 200, 'the next request is answered (on a new connection)');
        }
      } finally {
        agent.destroy();
        await proxy.stop();
      }
    },
  );

  it(
    'answers 2,000 pipelined GETs in order on one upstream slot while another client is served',
    limit('node:http dispatches every pipelined request at once, taking a slot each'),
    async () => {
      // Two slots, no queue: had the pipelining client taken both, the other client would get 503 at once.
      const proxy = await proxyFor(backend, ', maxSockets: 2, queue: { size: 0 }');
      const pipelined = await WireClient.open(proxy.port());
      const other = await WireClient.open(proxy.port());
      try {
        const N = 2000;
        let text = '';
        for (let i = 0; i < N; i++) text += `GET /echo?p=${i} HTTP/1.1\r\nHost: t\r\nx-test-id: p${i}\r\n\r\n`;
        pipelined.write(text);
        const latencies: number[] = [];
        let received = 0;
        const reading = (async () => {
          for (; received < N; received++) {
            const r = await pipelined.next();
            assert.equal(r.status, 200);
            assert.equal(JSON.parse(r.body.toString()).url, `/echo?p=${received}`, 'answers come in request order');
          }
        })();
        // The other client, one request at a time, while the pipeline is being answered.
        let round = 0;
        while (received < N / 2) {
          const started = performance.now();
          other.write(`GET /echo?other=${round} HTTP/1.1\r\nHost: t\r\n\r\n`);
          const r = await other.next();
          latencies.push(performance.now() - started);
          assert.equal(r.status, 200, `the other client's request ${round} is served, not refused (${r.body.toString()})`);
          round++;
        }
        await reading;
        latencies.sort((a, b) => a - b);
        assert.ok(round > 0, 'the other client was served while the pipeline ran');
      } finally {
        pipelined.destroy();
        other.destroy();
        await proxy.stop();
      }
    },
  );

  it('forwards a pipelined POST and the GET behind it in order', limit('node:http dispatches pipelined requests at once, so the GET can overtake the POST'), async () => {
    const proxy = await proxyFor(backend);
    try {
      for (let i = 0; i < 20; i++) {
        const c = await WireClient.open(proxy.port());
        c.write(`POST /echo?order=p1-${i} HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET /echo?order=p2-${i} HTTP/1.1\r\nHost: t\r\n\r\n`);
        assert.equal((await c.next()).status, 200);
        assert.equal((await c.next()).status, 200);
        c.destroy();
      }
      const order = messages.filter((m) => m.type === 'request' && String(m.url).startsWith('/echo?order=')).map((m) => String(m.url));
      for (let i = 0; i < 20; i++) assert.ok(order.indexOf(`/echo?order=p1-${i}`) < order.indexOf(`/echo?order=p2-${i}`), `p1 before p2 in round ${i}: ${order.join(' ')}`);
    } finally {
      await proxy.stop();
    }
  });

  it('never forwards a request pipelined behind one Drover refused and closed on', async () => {
    const proxy = await proxyFor(backend);
    try {
      const refused = [
        ['501', 'POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'],
        ['400', 'GET http://[::1/ HTTP/1.1\r\nHost: t\r\n\r\n'],
      ] as const;
      for (const [status, bytes] of refused) {
        for (let i = 0; i < 10; i++) {
          const c = await WireClient.open(proxy.port());
          c.write(`${bytes}GET /echo?behind-${status}-${i} HTTP/1.1\r\nHost: t\r\n\r\n`);
          const r = await c.next();
          assert.equal(String(r.status), status);
          assert.equal(r.headers.connection, 'close');
          await c.closed;
          assert.equal(c.unread.length, 0, 'nothing else was answered');
        }
      }
      const marker = await request(proxy.port(), { path: '/echo?marker-after-refusals' });
      assert.equal(marker.status, 200);
      await messages.until((m) => m.type === 'request' && m.url === '/echo?marker-after-refusals');
      assert.deepEqual(
        messages.filter((m) => m.type === 'request' && String(m.url).startsWith('/echo?behind-')),
        [],
        'no request behind a refusal reached the backend',
      );
    } finally {
      await proxy.stop();
    }
  });

  for (const [path, why] of [
    ['/chunk-zz', 'a chunk size of zz'],
    ['/chunk-overflow', 'a chunk size past 64 bits'],
    ['/trailer-cl', 'a Content-Length trailer'],
    ['/switch', 'a 101 to a request that asked for no upgrade'],
    ['/gzip-te', 'a transfer coding other than chunked (gzip, chunked)'],
  ] as const) {
    it(`answers 502 with a reason, at once, to ${why}`, limit('a broken answer from a backend reaches the client as a bare close (a 101 as a 504 after the response timeout)'), async () => {
      const proxy = await proxyFor(broken, '', ', timeouts: { response: 10s }');
      try {
        const started = performance.now();
        const res = await request(proxy.port(), { path });
        assert.equal(res.status, 502);
        const body = JSON.parse(res.body) as { error: string; message: string };
        assert.equal(body.error, 'DROVER_UPSTREAM_FAILED');
        assert.match(body.message, /invalid response/);
        assert.ok(performance.now() - started < 5000, 'not after the response timeout');
        assert.equal((await request(proxy.port(), { path: '/ok' })).status, 200, 'the next request is served');
      } finally {
        await proxy.stop();
      }
    });
  }

  it('stops reading a client that does not read its answers, however many requests it pipelines', limit('node:http keeps reading and answering, then closes the connection'), async () => {
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${backend.port}] } }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, routes: [ { match: { pathPrefix: /only }, service: s } ] } ]`);
    const c = await WireClient.open(proxy.port());
    try {
      c.socket.pause(); // reads nothing: every 404 stays with Drover or in the socket buffers
      const batch = Buffer.from('GET /nowhere HTTP/1.1\r\nHost: t\r\n\r\n'.repeat(1000));
      let sent = 0;
      // Writes until the socket pushes back: Drover stopped reading. Were it reading on, this would go on for ever.
      while (c.socket.write(batch)) {
        sent += 1000;
        assert.ok(sent < 2_000_000, 'Drover kept reading 2,000,000 pipelined requests of a client that reads nothing');
        await new Promise((r) => setImmediate(r));
      }
      sent += 1000;
      // And it still answers, in order, once the client reads.
      c.socket.resume();
      for (let i = 0; i < 2000; i++) assert.equal((await c.next()).status, 404, `answer ${i} of ${sent}`);
    } finally {
      c.destroy();
      await proxy.stop();
    }
  });

  it('closes a connection that sends only blank lines, after the headers timeout, while a real request may keep one open', limit('blank lines between requests keep a used connection open'), async () => {
    const proxy = await proxyFor(backend, '', ', timeouts: { headers: 500ms, idle: 500ms }');
    try {
      for (const used of [false, true]) {
        const c = await WireClient.open(proxy.port());
        if (used) {
          c.write('GET /echo?first HTTP/1.1\r\nHost: t\r\n\r\n');
          assert.equal((await c.next()).status, 200);
        }
        const started = performance.now();
        const trickle = setInterval(() => c.socket.writable && c.socket.write('\r\n'), 100);
        let deadline: NodeJS.Timeout | undefined;
        await Promise.race([c.closed, new Promise((r) => (deadline = setTimeout(r, 5000)))]);
        clearInterval(trickle);
        clearTimeout(deadline);
        assert.ok(c.ended, `${used ? 'a used' : 'a fresh'} connection sending a blank line every 100 ms is closed (500 ms timeouts)`);
        assert.ok(performance.now() - started >= 400, 'not before the timeout');
        c.destroy();
      }
    } finally {
      await proxy.stop();
    }
  });

  it('answers a HEAD whose backend also sent a body with the headers alone, and never reuses that connection', limit('the stray body breaks the client connection'), async () => {
    const proxy = await proxyFor(broken);
    const c = await WireClient.open(proxy.port());
    try {
      c.write('HEAD /head-body HTTP/1.1\r\nHost: t\r\n\r\n');
      const head = await c.next(true);
      assert.equal(head.status, 200);
      assert.equal(head.headers['content-length'], '5');
      c.write('GET /ok HTTP/1.1\r\nHost: t\r\nx-test-id: after-head\r\n\r\n');
      const next = await c.next();
      assert.equal(next.status, 200);
      assert.equal(next.body.toString(), 'ok after-head', 'the stray body never reaches the next answer');
    } finally {
      c.destroy();
      await proxy.stop();
    }
  });

  it(
    'keeps bytes a backend sends unasked in the same write as an answer away from every client (40 keep-alive clients, each answer checked against its own request)',
    limit('a body after a HEAD or 204 answer, or a second response, breaks the connection of the client that gets it'),
    async () => {
      const proxy = await proxyFor(broken);
      try {
        // Each unasked-for byte comes in the same write as an answer: a body after a 204 or a HEAD answer, a second response.
        const paths = ['/ok', '/extra', '/ok', '/204-body', '/ok', '/head-body'];
        await Promise.all(
          Array.from({ length: 40 }, async (_, client) => {
            const agent = new Agent({ keepAlive: true, maxSockets: 1 });
            try {
              for (let i = 0; i < 24; i++) {
                const path = paths[i % paths.length]!;
                const id = `c${client}-r${i}`;
                const res = await answerTo(proxy.port(), agent, path === '/head-body' ? 'HEAD' : 'GET', path, id);
                if (path === '/204-body') assert.deepEqual([res.status, res.body], [204, ''], `${id}: a 204 with no body`);
                else if (path === '/head-body') assert.deepEqual([res.status, res.body], [200, ''], `${id}: a HEAD answer with no body`);
                else {
                  assert.equal(res.status, 200, id);
                  assert.equal(res.id, id, `${id} got its own answer`);
                  assert.ok(res.body === 'ok' || res.body === `ok ${id}`, `${id}: body ${JSON.stringify(res.body)}`);
                }
              }
            } finally {
              agent.destroy();
            }
          }),
        );
      } finally {
        await proxy.stop();
      }
    },
  );

  it('closes a pooled connection whose backend speaks unasked while it is idle, so the next request gets its own answer', async () => {
    const proxy = await proxyFor(broken);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 20; i++) {
        const sent = brokenMessages.until((m) => m.type === 'stray-sent' && m.id === `late-${i}`);
        const late = await answerTo(proxy.port(), agent, 'GET', '/late-extra', `late-${i}`);
        assert.equal(late.id, `late-${i}`);
        await sent;
        const next = await answerTo(proxy.port(), agent, 'GET', '/ok', `next-${i}`);
        assert.equal(next.id, `next-${i}`, `round ${i}: the request after the stray got its own answer, not ${JSON.stringify(next)}`);
      }
    } finally {
      agent.destroy();
      await proxy.stop();
    }
  });

  it('tunnels an upgrade other than WebSocket that the backend accepts with 101', limit('only WebSocket upgrades pass; others get 501'), async () => {
    const proxy = await proxyFor(broken);
    const c = await WireClient.open(proxy.port());
    try {
      c.write('GET /upgrade HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: drover-test\r\n\r\n');
      const switched = await c.next(true);
      assert.equal(switched.status, 101);
      assert.equal(switched.headers.upgrade, 'drover-test');
      c.write('ping');
      await eventually(() => c.unread.toString() === 'echo:ping', 'the tunnel echoes');
      const states = proxy.drover.services.get('s')!.states;
      assert.equal(states.active(`127.0.0.1:${broken.port}`), 1, 'the tunnel counts as active');
      c.destroy();
      await eventually(() => states.active(`127.0.0.1:${broken.port}`) === 0, 'released when the client leaves');
    } finally {
      c.destroy();
      await proxy.stop();
    }
  });

  it('passes response trailers to a client that sent TE: trailers, and only to it', limit('trailers are dropped'), async () => {
    const proxy = await proxyFor(backend);
    const agent = new Agent({ keepAlive: false });
    try {
      const withTe = await get(proxy.port(), agent, '/trailers', { te: 'trailers' });
      assert.equal(withTe.body, 'hello world');
      assert.equal(withTe.res.trailers['x-checksum'], 'abc123');
      const without = await get(proxy.port(), agent, '/trailers');
      assert.equal(without.body, 'hello world');
      assert.deepEqual(without.res.trailers, {});
    } finally {
      agent.destroy();
      await proxy.stop();
    }
  });
});
