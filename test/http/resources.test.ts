import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { closed, connect, eventually, request, startHttpBackend, startProxy, tcpHandles, type TestBackend } from '../fixtures/harness.js';
import { startCli, watchMessages, type MessageLog } from './helpers.js';

const MB = 1024 * 1024;
/** How long the memory test keeps a reader from reading. */
const STALL_MS = 300;

interface Setup {
  backend: TestBackend;
  messages: MessageLog;
  proxy: Awaited<ReturnType<typeof startProxy>>;
  /** The backend's id in the service. */
  id: string;
}

/** A backend child process and an in-process proxy in front of it; `body` runs with both and then both are closed. */
async function withProxy(listenerExtra: string, body: (setup: Setup) => Promise<void>): Promise<void> {
  const backend = await startHttpBackend();
  try {
    const messages = watchMessages(backend);
    const proxy = await startProxy(`
services: { s: { static: [127.0.0.1:${backend.port}], timeouts: { keepAlive: 500ms } } }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, service: s ${listenerExtra} } ]`);
    try {
      await body({ backend, messages, proxy, id: `127.0.0.1:${backend.port}` });
    } finally {
      await proxy.stop();
    }
  } finally {
    await backend.stop();
  }
}

/**
 * Starts an upload of `declared` bytes, sends the headers and `sent` bytes of
 * the body, and returns the socket with the rest never sent.
 */
async function startUpload(port: number, path: string, declared: number, sent: number): Promise<Socket> {
  const s = await connect(port);
  s.on('error', () => {});
  s.write(`POST ${path} HTTP/1.1\r\nHost: example.test\r\nContent-Type: application/octet-stream\r\nContent-Length: ${declared}\r\n\r\n`);
  s.write(Buffer.alloc(sent, 0x61));
  return s;
}

/**
 * Asks for /drip (an endless response) on a fresh connection and destroys the
 * connection once the response headers and a first body byte arrived. With a
 * POST the request body is read whole before the response starts, so only
 * Drover's own handling (not http-proxy's 'aborted' listener) can abort the
 * upstream request.
 */
async function abortMidResponse(port: number, method: 'GET' | 'POST'): Promise<void> {
  const s = await connect(port);
  s.on('error', () => {});
  let head = Buffer.alloc(0);
  await new Promise<void>((resolve, reject) => {
    s.on('data', (c: Buffer) => {
      head = Buffer.concat([head, c]);
      const end = head.indexOf('\r\n\r\n');
      if (end >= 0 && head.length > end + 4) {
        s.destroy();
        if (head.toString('latin1').startsWith('HTTP/1.1 200 ')) resolve();
        else reject(new Error(`expected a 200 response: ${JSON.stringify(head.toString('latin1'))}`));
      }
    });
    // After a resolve this is a no-op.
    s.on('close', () => reject(new Error(`closed before the first body byte: ${JSON.stringify(head.toString('latin1'))}`)));
    s.write(
      method === 'GET'
        ? 'GET /drip HTTP/1.1\r\nHost: example.test\r\n\r\n'
        : 'POST /drip HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\n\r\nhello',
    );
  });
  await closed(s);
}

/** Lets a backend stopped with SIGSTOP run again (if it still exists). */
function resume(backend: TestBackend): void {
  if (backend.child.exitCode === null && backend.child.signalCode === null) backend.child.kill('SIGCONT');
}

/** The proxy's peak resident set in bytes, from /proc (VmHWM). */
function peakRss(pid: number): number {
  const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  assert.ok(kb, 'VmHWM is readable');
  return Number(kb) * 1024;
}

describe('HTTP proxy: resources', { timeout: 120_000 }, () => {
  it('leaves no open sockets after 1,000 requests aborted mid-request and mid-response', { timeout: 60_000 }, async (t) => {
    await withProxy('', async ({ backend, messages, proxy, id }) => {
      const port = proxy.port();
      const states = proxy.drover.services.get('s')!.states;
      const listener = proxy.drover.listeners[0]!;
      const baseline = tcpHandles();
      const ROUNDS = 5;
      const PER_ROUND = 100; // of each kind
      for (let round = 0; round < ROUNDS; round++) {
        // Mid-request: half still inside the proxy's retry buffer (1 KB of a declared 100 KB),
        // half already streaming to the backend (80 KB, past the 64 KB buffer, of a declared 1 MB).
        const buffered = await Promise.all(Array.from({ length: PER_ROUND / 2 }, () => startUpload(port, '/echo?upload-buffered', 100_000, 1024)));
        const streaming = await Promise.all(Array.from({ length: PER_ROUND / 2 }, () => startUpload(port, '/echo?upload-streaming', MB, 80 * 1024)));
        // Every streaming upload is in flight on its own upstream connection before the clients go away.
        await eventually(() => states.active(id) >= PER_ROUND / 2, `round ${round}: ${PER_ROUND / 2} uploads active`);
        await eventually(async () => (await backend.connections()) >= PER_ROUND / 2, `round ${round}: upstream connections open`);
        await Promise.all([...buffered, ...streaming].map((s) => (s.destroy(), closed(s))));
        // Mid-response: each client goes away once the first body byte of an endless response arrived.
        await Promise.all(Array.from({ length: PER_ROUND }, (_, i) => abortMidResponse(port, i % 2 ? 'POST' : 'GET')));
        // The upstream response was aborted too: the backend sees each /drip response closed.
        const dripsSoFar = (round + 1) * PER_ROUND;
        await eventually(
          () => messages.filter((m) => m.type === 'closed' && m.url === '/drip').length === dripsSoFar,
          `round ${round}: ${dripsSoFar} /drip responses closed at the backend`,
        );
      }
      await eventually(() => listener.connections === 0, 'the listener holds no client connections');
      await eventually(() => states.active(id) === 0, 'no request counted active');
      // Aborted upstream requests are destroyed, not pooled; anything pooled would go after keepAlive (500 ms).
      await eventually(async () => (await backend.connections()) === 0, 'the backend holds no connections from the proxy', 2_000);
      await eventually(() => tcpHandles() === baseline, `TCP handles back to ${baseline}`);
      assert.equal(messages.filter((m) => m.type === 'closed' && m.url === '/drip').length, ROUNDS * PER_ROUND);
      assert.deepEqual(
        messages.filter((m) => m.type === 'request' && String(m.url).startsWith('/echo?upload')),
        [],
        'no aborted upload reached the backend as a complete request',
      );
      t.diagnostic(`${ROUNDS * PER_ROUND * 2} aborted requests; TCP handles ${tcpHandles()} (baseline ${baseline})`);
      // And the proxy still serves.
      assert.equal((await request(port, { path: '/echo?after' })).status, 200);
    });
  });

  it('aborts the upstream request when the client goes away while waiting for the response', { timeout: 15_000 }, async () => {
    await withProxy('', async ({ backend, messages, proxy, id }) => {
      const states = proxy.drover.services.get('s')!.states;
      // A GET whose request stream was never read, and a POST whose body was read whole before forwarding.
      for (const [method, body] of [['GET', undefined], ['POST', 'hello']] as const) {
        const path = `/hang?${method}`;
        const req = httpRequest({ host: '127.0.0.1', port: proxy.port(), method, path, agent: false });
        req.on('error', () => {});
        req.end(body);
        await messages.until((m) => m.type === 'request' && m.url === path);
        assert.equal(states.active(id), 1);
        req.destroy();
        assert.deepEqual(await messages.until((m) => m.type === 'closed' && m.url === path), { type: 'closed', url: path });
        await eventually(() => states.active(id) === 0, `the aborted ${method} no longer counts as active`);
        await eventually(async () => (await backend.connections()) === 0, `the upstream connection of the ${method} is closed`);
        await eventually(() => proxy.drover.listeners[0]!.connections === 0, 'the client connection is gone');
      }
      assert.equal((await request(proxy.port(), { path: '/echo?after' })).status, 200);
    });
  });

  it('answers 504 when response headers take longer than timeouts.response, and aborts the upstream request', { timeout: 15_000 }, async () => {
    await withProxy(', timeouts: { response: 300ms }', async ({ backend, messages, proxy, id }) => {
      const states = proxy.drover.services.get('s')!.states;
      const port = proxy.port();

      const started = performance.now();
      const slow = await request(port, { path: '/slow?ms=2000' });
      const elapsed = performance.now() - started;
      assert.equal(slow.status, 504);
      assert.match(String(slow.headers['content-type']), /application\/json/);
      assert.equal(JSON.parse(slow.body).error, 'DROVER_UPSTREAM_TIMEOUT');
      assert.ok(elapsed >= 250 && elapsed < 1500, `504 after ${elapsed.toFixed(0)} ms (timeout 300 ms, backend answers at 2000 ms)`);
      // Had the upstream request been left running, its connection would stay open until the backend answered at 2 s.
      await eventually(async () => (await backend.connections()) === 0, 'the timed-out upstream connection is closed', 1200);
      assert.equal(states.active(id), 0);

      const hang = await request(port, { path: '/hang' });
      assert.equal(hang.status, 504);
      assert.equal(JSON.parse(hang.body).error, 'DROVER_UPSTREAM_TIMEOUT');
      assert.deepEqual(await messages.until((m) => m.type === 'closed'), { type: 'closed', url: '/hang' });
      await eventually(() => states.active(id) === 0, 'the timed-out request no longer counts as active');

      assert.equal((await request(port, { path: '/echo?after-timeouts' })).status, 200);
    });
  });

  it(
    'does not answer 504 while the client is still sending its body: timeouts.response starts once the request is sent',
    { timeout: 15_000 },
    async () => {
      await withProxy(', timeouts: { response: 300ms }', async ({ proxy }) => {
        const total = 200 * 1024; // past the 64 KB buffer, so it streams
        const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = httpRequest(
            { host: '127.0.0.1', port: proxy.port(), method: 'POST', path: '/echo?slow-upload', agent: false, headers: { 'content-length': total } },
            (res) => {
              const chunks: Buffer[] = [];
              res.on('data', (c: Buffer) => chunks.push(c));
              res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString() }));
              res.on('error', reject);
            },
          );
          req.on('error', reject);
          // A slow client: 10 KB every 50 ms, about 1 s for the whole body (the backend answers at once).
          let sent = 0;
          const pace = setInterval(() => {
            if (req.destroyed) return void clearInterval(pace);
            const n = Math.min(10 * 1024, total - sent);
            sent += n;
            req.write(Buffer.alloc(n, 0x61));
            if (sent === total) {
              clearInterval(pace);
              req.end();
            }
          }, 50);
        });
        assert.equal(res.status, 200, res.body);
        assert.equal(JSON.parse(res.body).bytes, total);
      });
    },
  );

  it('streams a 200 MB upload and a 200 MB download through the drover command with bounded memory', { timeout: 60_000 }, async (t) => {
    const TOTAL = 200 * MB;
    const dir = mkdtempSync(join(tmpdir(), 'drover-http-memory-'));
    const backend = await startHttpBackend();
    const cli = startCli(
      dir,
      `
services: { s: { static: [127.0.0.1:${backend.port}] } }
listeners: [ { name: web, mode: http, bind: 127.0.0.1:0, service: s } ]`,
    );
    try {
      const port = Number(String((await cli.log('listener started')).bind).split(':').pop());
      await cli.log('drover started');
      const pid = cli.child.pid!;
      const startRss = peakRss(pid);

      // Upload: one 1 MB buffer written 200 times, honouring backpressure. The
      // backend is stopped (SIGSTOP) for the first STALL_MS, so a proxy that
      // ignored backpressure would hold whatever the client sends meanwhile.
      // This is a deliberate stall of the reader, not a wait for an event.
      const chunk = randomBytes(MB);
      const expected = createHash('sha256');
      for (let i = 0; i < TOTAL / MB; i++) expected.update(chunk);
      const echo = await new Promise<{ bytes: number; sha256: string }>((resolve, reject) => {
        const req = httpRequest(
          { host: '127.0.0.1', port, method: 'POST', path: '/echo', agent: false, headers: { 'content-type': 'application/octet-stream', 'content-length': TOTAL } },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              try {
                assert.equal(res.statusCode, 200);
                resolve(JSON.parse(Buffer.concat(chunks).toString()));
              } catch (err) {
                reject(err);
              }
            });
            res.on('error', reject);
          },
        );
        req.on('error', reject);
        backend.child.kill('SIGSTOP');
        setTimeout(() => resume(backend), STALL_MS);
        (async () => {
          for (let i = 0; i < TOTAL / MB; i++) if (!req.write(chunk)) await once(req, 'drain');
          req.end();
        })().catch(reject);
      });
      assert.equal(echo.bytes, TOTAL);
      assert.equal(echo.sha256, expected.digest('hex'));

      // Download: count the bytes of a streamed 200 MB response. The client
      // stops reading for STALL_MS after the first chunk and after 100 MB, so a
      // proxy that ignored backpressure would hold what the backend sends meanwhile.
      const downloaded = await new Promise<number>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path: `/stream?bytes=${TOTAL}`, agent: false }, (res) => {
          let bytes = 0;
          const stallAt = new Set([1, TOTAL / 2]);
          res.on('data', (c: Buffer) => {
            const before = bytes;
            bytes += c.length;
            for (const at of stallAt) {
              if (before < at && bytes >= at) {
                stallAt.delete(at);
                res.pause();
                setTimeout(() => res.resume(), STALL_MS);
              }
            }
          });
          res.on('end', () => (res.statusCode === 200 ? resolve(bytes) : reject(new Error(`status ${res.statusCode}`))));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(downloaded, TOTAL);

      const peak = peakRss(pid);
      t.diagnostic(`proxy peak RSS ${(peak / MB).toFixed(1)} MB (${(startRss / MB).toFixed(1)} MB after start)`);
      assert.ok(peak < 200 * MB, `the proxy's peak RSS stays under 200 MB while 400 MB pass through (was ${(peak / MB).toFixed(1)} MB)`);

      cli.child.kill('SIGTERM');
      assert.deepEqual(await cli.exit, [0, null]);
    } finally {
      resume(backend);
      if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill('SIGKILL');
      await cli.exit;
      await backend.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
