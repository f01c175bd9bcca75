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

/** GET /drip on a fresh connection; destroys the connection once the response headers and a first body byte arrived. */
async function abortMidResponse(port: number): Promise<void> {
  const s = await connect(port);
  s.on('error', () => {});
  let head = Buffer.alloc(0);
  await new Promise<void>((resolve, reject) => {
    s.on('data', (c: Buffer) => {
      head = Buffer.concat([head, c]);
      const end = head.indexOf('\r\n\r\n');
      if (end >= 0 && head.length > end + 4) {
        assert.match(head.toString('latin1'), /^HTTP\/1\.1 200 /);
        s.destroy();
        resolve();
      }
    });
    s.on('close', () => reject(new Error(`closed before the first body byte: ${JSON.stringify(head.toString('latin1'))}`)));
    s.write('GET /drip HTTP/1.1\r\nHost: example.test\r\n\r\n');
  });
  await closed(s);
}

/** The proxy's peak resident set in bytes, from /proc (VmHWM). */
function peakRss(pid: number): number {
  const kb = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  assert.ok(kb, 'VmHWM is readable');
  return Number(kb) * 1024;
}

describe('HTTP proxy: resources', { timeout: 120_000 }, () => {
  it('leaves no open sockets after 1,000 requests aborted mid-request and mid-response', async (t) => {
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
        await eventually(() => states.active(id) === PER_ROUND / 2, `round ${round}: ${PER_ROUND / 2} uploads active`);
        await eventually(async () => (await backend.connections()) >= PER_ROUND / 2, `round ${round}: upstream connections open`);
        await Promise.all([...buffered, ...streaming].map((s) => (s.destroy(), closed(s))));
        // Mid-response: each client goes away once the first body byte of an endless response arrived.
        await Promise.all(Array.from({ length: PER_ROUND }, () => abortMidResponse(port)));
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
      await eventually(async () => (await backend.connections()) === 0, 'the backend holds no connections from the proxy');
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

  it('aborts the upstream request when the client goes away while waiting for the response', async () => {
    await withProxy('', async ({ backend, messages, proxy, id }) => {
      const states = proxy.drover.services.get('s')!.states;
      const req = httpRequest({ host: '127.0.0.1', port: proxy.port(), path: '/hang', agent: false });
      req.on('error', () => {});
      req.end();
      await messages.until((m) => m.type === 'request' && m.url === '/hang');
      assert.equal(states.active(id), 1);
      req.destroy();
      assert.deepEqual(await messages.until((m) => m.type === 'closed'), { type: 'closed', url: '/hang' });
      await eventually(() => states.active(id) === 0, 'the aborted request no longer counts as active');
      await eventually(async () => (await backend.connections()) === 0, 'the upstream connection is closed');
      assert.equal(proxy.drover.listeners[0]!.connections, 0);
    });
  });

  it('answers 504 when response headers take longer than timeouts.response, and aborts the upstream request', async () => {
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

  it('streams a 200 MB upload and a 200 MB download through the drover command with bounded memory', async (t) => {
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

      // Upload: one 1 MB buffer written 200 times, honouring backpressure.
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
        (async () => {
          for (let i = 0; i < TOTAL / MB; i++) if (!req.write(chunk)) await once(req, 'drain');
          req.end();
        })().catch(reject);
      });
      assert.equal(echo.bytes, TOTAL);
      assert.equal(echo.sha256, expected.digest('hex'));

      // Download: count the bytes of a streamed 200 MB response.
      const downloaded = await new Promise<number>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, path: `/stream?bytes=${TOTAL}`, agent: false }, (res) => {
          let bytes = 0;
          res.on('data', (c: Buffer) => (bytes += c.length));
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
      if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill('SIGKILL');
      await cli.exit;
      await backend.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
